//! The request headers the filter uses, picked out in one pass over the map: the gate's, the
//! deny reply's request id, and the authority the access log gets as `url.domain`.

/// Borrowed views into a request's headers. A single-value field holds the first value, as
/// Envoy's single-header lookup does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestHeaders<'a> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub authority: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
        assert_eq!(h.request_id, Some(b"id".as_slice()));
        assert_eq!(
            h.token_values().collect::<Vec<_>>(),
            vec![b"one".as_slice(), b"two".as_slice()]
        );
        assert!(h.has_token());
    }

    #[test]
    fn missing_headers_stay_unknown() {
        let h = RequestHeaders::read(Vec::<(&[u8], &[u8])>::new(), b"x-rfma-token");
        assert_eq!(h, RequestHeaders::default());
        assert!(!h.has_token());
        assert_eq!(h.token_values().count(), 0);
    }
}
