//! The request headers the gate and the record use, picked out in one pass over the map.

/// Borrowed views into a request's headers. A single-value field holds the first value, as
/// Envoy's single-header lookup does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestHeaders<'a> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub authority: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub traceparent: Option<&'a [u8]>,
    pub b3_trace_id: Option<&'a [u8]>,
    /// The first two values of the token header: enough to tell one from several.
    pub tokens: [Option<&'a [u8]>; 2],
}

impl<'a> RequestHeaders<'a> {
    /// Reads `pairs` once. `token_header` must be lower-case; names are compared
    /// case-insensitively all the same, so a host that keeps the case does no harm.
    pub fn read(
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        token_header: &[u8],
    ) -> Self {
        let mut h = RequestHeaders::default();
        let mut method = None;
        let mut path = None;
        for (name, value) in pairs {
            let slot = match name {
                b":method" => &mut method,
                b":path" => &mut path,
                b":authority" => &mut h.authority,
                b"x-request-id" => &mut h.request_id,
                b"user-agent" => &mut h.user_agent,
                b"traceparent" => &mut h.traceparent,
                b"x-b3-traceid" => &mut h.b3_trace_id,
                _ if name.eq_ignore_ascii_case(token_header) => match &mut h.tokens {
                    [first @ None, _] => first,
                    [Some(_), second] => second,
                },
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        h.method = method.unwrap_or_default();
        h.path = path.unwrap_or_default();
        h
    }

    /// Every token header value seen (at most two), in order.
    pub fn token_values(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.tokens.into_iter().flatten()
    }

    pub fn has_token(&self) -> bool {
        matches!(self.tokens, [Some(_), _])
    }

    /// Where the fields the record uses sit in `buffer`, the header map this view was read
    /// from: kept until `on_log`, so the map is not read a second time.
    pub fn spans(&self, buffer: &[u8]) -> HeaderSpans {
        let span = |part: Option<&[u8]>| part.and_then(|p| Span::within(buffer, p));
        HeaderSpans {
            method: span(Some(self.method)),
            path: span(Some(self.path)),
            authority: span(self.authority),
            request_id: span(self.request_id),
            user_agent: span(self.user_agent),
            traceparent: span(self.traceparent),
            b3_trace_id: span(self.b3_trace_id),
        }
    }
}

/// The record's fields of a [`RequestHeaders`] as positions in its header map (no token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderSpans {
    method: Option<Span>,
    path: Option<Span>,
    authority: Option<Span>,
    request_id: Option<Span>,
    user_agent: Option<Span>,
    traceparent: Option<Span>,
    b3_trace_id: Option<Span>,
}

impl HeaderSpans {
    /// The view again, over the same buffer `spans` was given (tokens left out). A span
    /// that does not fit `buffer` reads as absent.
    pub fn view<'a>(&self, buffer: &'a [u8]) -> RequestHeaders<'a> {
        let get = |span: Option<Span>| span.and_then(|s| s.get(buffer));
        RequestHeaders {
            method: get(self.method).unwrap_or_default(),
            path: get(self.path).unwrap_or_default(),
            authority: get(self.authority),
            request_id: get(self.request_id),
            user_agent: get(self.user_agent),
            traceparent: get(self.traceparent),
            b3_trace_id: get(self.b3_trace_id),
            tokens: [None, None],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// The position of `part` in `buffer`, if `part` is a sub-slice of it.
    fn within(buffer: &[u8], part: &[u8]) -> Option<Span> {
        let start = part.as_ptr().addr().checked_sub(buffer.as_ptr().addr())?;
        let end = start.checked_add(part.len())?;
        (end <= buffer.len()).then_some(Span {
            start,
            len: part.len(),
        })
    }

    fn get(self, buffer: &[u8]) -> Option<&[u8]> {
        buffer.get(self.start..self.start.checked_add(self.len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_first_values_and_counts_token_headers() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", b"/get?x=1"),
            (b":authority", b"httpbin:8000"),
            (b"X-RFMA-Token", b"one"),
            (b"user-agent", b"curl"),
            (b"user-agent", b"second"),
            (b"x-rfma-token", b"two"),
            (b"x-rfma-token", b"three"),
            (b"x-request-id", b"id"),
            (b"traceparent", b"tp"),
            (b"x-b3-traceid", b"b3"),
            (b":method", b"POST"),
        ];
        let h = RequestHeaders::read(pairs, b"x-rfma-token");
        assert_eq!(h.method, b"GET");
        assert_eq!(h.path, b"/get?x=1");
        assert_eq!(h.authority, Some(b"httpbin:8000".as_slice()));
        assert_eq!(h.user_agent, Some(b"curl".as_slice()));
        assert_eq!(h.request_id, Some(b"id".as_slice()));
        assert_eq!(h.traceparent, Some(b"tp".as_slice()));
        assert_eq!(h.b3_trace_id, Some(b"b3".as_slice()));
        assert_eq!(
            h.token_values().collect::<Vec<_>>(),
            vec![b"one".as_slice(), b"two".as_slice()]
        );
        assert!(h.has_token());
    }

    #[test]
    fn spans_give_back_the_record_fields_of_the_same_buffer() {
        let buffer = b"GET /get?x=1 host id ua tp b3 secret".to_vec();
        let part = |from: usize, to: usize| Some(&buffer[from..to]);
        let h = RequestHeaders {
            method: &buffer[0..3],
            path: &buffer[4..12],
            authority: part(13, 17),
            request_id: part(18, 20),
            user_agent: part(21, 23),
            traceparent: part(24, 26),
            b3_trace_id: part(27, 29),
            tokens: [part(30, 36), None],
        };
        let spans = h.spans(&buffer);
        assert_eq!(
            spans.view(&buffer),
            RequestHeaders {
                tokens: [None, None],
                ..h
            }
        );
        // Slices from elsewhere (the empty default, another buffer) are not positions here.
        let other = b"elsewhere".to_vec();
        let foreign = RequestHeaders {
            authority: Some(&other[..]),
            ..RequestHeaders::default()
        };
        assert_eq!(
            foreign.spans(&buffer).view(&buffer),
            RequestHeaders::default()
        );
        // A shorter buffer never yields a slice out of range.
        assert_eq!(spans.view(&buffer[..10]).path, b"");
        assert_eq!(spans.view(&buffer[..10]).method, b"GET");
    }

    #[test]
    fn missing_headers_stay_unknown() {
        let h = RequestHeaders::read(Vec::<(&[u8], &[u8])>::new(), b"x-rfma-token");
        assert_eq!(h, RequestHeaders::default());
        assert!(!h.has_token());
        assert_eq!(h.token_values().count(), 0);
    }
}
