//! Where the access record is written: one line of ECS JSON from plain data.
//!
//! A hand-written serializer: the record has a fixed shape, so building it is a handful of
//! appends into one pre-sized buffer, with no intermediate tree and no allocation per field.

use crate::gate::Decision;

/// Everything the record can say about a request. Byte fields come from headers and may
/// hold anything (invalid UTF-8, quotes, control characters); they are escaped on write.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// When the request headers arrived, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    pub decision: Decision,
    /// The name of the token that was allowed.
    pub token_name: Option<&'a str>,
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    /// The status the client got; `None` when no response was sent.
    pub status: Option<u64>,
    pub duration_ns: Option<u64>,
    pub request_id: Option<&'a [u8]>,
    /// `request.protocol` as Envoy reports it, e.g. `HTTP/1.1`.
    pub protocol: Option<&'a [u8]>,
    /// The `:authority`, with or without a port.
    pub authority: Option<&'a [u8]>,
    /// `source.address` as Envoy reports it: `ip:port` or `[ipv6]:port`.
    pub source_address: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub traceparent: Option<&'a [u8]>,
    pub b3_trace_id: Option<&'a [u8]>,
    pub principal: Option<&'a [u8]>,
}

impl AccessRecord<'_> {
    /// Writes the record as one line of JSON (no trailing newline) into `out`. The bytes are
    /// always valid UTF-8: fixed text is ASCII and every field goes through [`push_string`].
    pub fn write(&self, out: &mut Vec<u8>) {
        // One allocation for the usual record: the fixed text is under 400 bytes.
        out.reserve(self.variable_len().saturating_add(400));
        out.extend_from_slice(b"{\"@timestamp\":\"");
        write_timestamp(out, self.timestamp_ns);
        let allowed = self.decision.is_allowed();
        out.extend_from_slice(if allowed {
            b"\",\"event\":{\"kind\":\"event\",\"category\":[\"web\"],\"type\":[\"access\",\"allowed\"],\"action\":\"rfma-token-gate\",\"outcome\":\"success\""
        } else {
            b"\",\"event\":{\"kind\":\"event\",\"category\":[\"web\"],\"type\":[\"access\",\"denied\"],\"action\":\"rfma-token-gate\",\"outcome\":\"failure\""
        });
        if let Decision::Deny(reason) = self.decision {
            out.extend_from_slice(b",\"reason\":\"");
            out.extend_from_slice(reason.code().as_bytes());
            out.push(b'"');
        }
        if let Some(duration) = self.duration_ns {
            out.extend_from_slice(b",\"duration\":");
            push_u64(out, duration);
        }

        out.extend_from_slice(b"},\"http\":{\"request\":{\"method\":");
        push_string(out, self.method);
        if let Some(id) = self.request_id {
            out.extend_from_slice(b",\"id\":");
            push_string(out, id);
        }
        out.push(b'}');
        if let Some(status) = self.status {
            out.extend_from_slice(b",\"response\":{\"status_code\":");
            push_u64(out, status);
            out.push(b'}');
        }
        if let Some(version) = self.protocol.and_then(http_version) {
            out.extend_from_slice(b",\"version\":\"");
            out.extend_from_slice(version.as_bytes());
            out.push(b'"');
        }

        out.extend_from_slice(b"},\"url\":{\"path\":");
        push_string(out, self.path);
        if let Some(query) = self.query {
            out.extend_from_slice(b",\"query\":");
            push_string(out, query);
        }
        if let Some(domain) = self
            .authority
            .map(host_without_port)
            .filter(|d| !d.is_empty())
        {
            out.extend_from_slice(b",\"domain\":");
            push_string(out, domain);
        }
        out.push(b'}');

        if let Some((ip, port)) = self.source_address.and_then(split_address) {
            out.extend_from_slice(b",\"source\":{\"ip\":");
            push_string(out, ip);
            if let Some(port) = port {
                out.extend_from_slice(b",\"port\":");
                push_u64(out, u64::from(port));
            }
            out.push(b'}');
        }
        if let Some(agent) = self.user_agent {
            out.extend_from_slice(b",\"user_agent\":{\"original\":");
            push_string(out, agent);
            out.push(b'}');
        }
        let trace = self
            .traceparent
            .and_then(traceparent_trace_id)
            .or_else(|| self.b3_trace_id.and_then(b3_trace_id));
        if let Some(trace) = trace {
            out.extend_from_slice(b",\"trace\":{\"id\":");
            push_string(out, trace);
            out.push(b'}');
        }

        out.extend_from_slice(b",\"rfma\":{\"decision\":\"");
        out.extend_from_slice(self.decision.code().as_bytes());
        out.push(b'"');
        if let Decision::Deny(reason) = self.decision {
            out.extend_from_slice(b",\"reason\":\"");
            out.extend_from_slice(reason.code().as_bytes());
            out.push(b'"');
        }
        if let Some(name) = self.token_name {
            out.extend_from_slice(b",\"token\":{\"name\":");
            push_string(out, name.as_bytes());
            out.push(b'}');
        }
        if let Some(principal) = self.principal {
            out.extend_from_slice(b",\"principal\":");
            push_string(out, principal);
        }
        out.extend_from_slice(b"}}");
    }

    /// The bytes the fields bring, before escaping.
    fn variable_len(&self) -> usize {
        let len = |field: Option<&[u8]>| field.map_or(0, <[u8]>::len);
        [
            self.method.len(),
            self.path.len(),
            len(self.query),
            len(self.request_id),
            len(self.authority),
            len(self.source_address),
            len(self.user_agent),
            len(self.principal),
            len(self.token_name.map(str::as_bytes)),
        ]
        .iter()
        .fold(0usize, |sum, n| sum.saturating_add(*n))
    }
}

/// `HTTP/1.1` → `1.1`, `HTTP/2` → `2`: ECS wants the bare version.
fn http_version(protocol: &[u8]) -> Option<&'static str> {
    match protocol {
        b"HTTP/1.0" => Some("1.0"),
        b"HTTP/1.1" => Some("1.1"),
        b"HTTP/2" => Some("2"),
        b"HTTP/3" => Some("3"),
        _ => None,
    }
}

/// `example.com:8000` → `example.com`, `[::1]:80` → `::1`.
fn host_without_port(authority: &[u8]) -> &[u8] {
    if let Some(rest) = authority.strip_prefix(b"[") {
        return match rest.iter().position(|&b| b == b']') {
            Some(end) => rest.get(..end).unwrap_or(rest),
            None => authority,
        };
    }
    match authority.iter().rposition(|&b| b == b':') {
        Some(colon) => authority.get(..colon).unwrap_or(authority),
        None => authority,
    }
}

/// Splits Envoy's `source.address` into IP and port.
fn split_address(address: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let parse_port = |p: &[u8]| std::str::from_utf8(p).ok()?.parse::<u16>().ok();
    if let Some(rest) = address.strip_prefix(b"[") {
        let end = rest.iter().position(|&b| b == b']')?;
        let ip = rest.get(..end)?;
        let port = rest
            .get(end.saturating_add(1)..)
            .and_then(|r| r.strip_prefix(b":"))
            .and_then(parse_port);
        return Some((ip, port));
    }
    match address.iter().rposition(|&b| b == b':') {
        Some(colon) => Some((
            address.get(..colon)?,
            address.get(colon.saturating_add(1)..).and_then(parse_port),
        )),
        None if address.is_empty() => None,
        None => Some((address, None)),
    }
}

/// The trace ID of a W3C `traceparent` (`version-traceid-parentid-flags`).
fn traceparent_trace_id(header: &[u8]) -> Option<&[u8]> {
    let mut parts = header.trim_ascii().split(|&b| b == b'-');
    let _version = parts.next()?;
    let id = parts.next()?;
    let valid =
        id.len() == 32 && id.iter().all(|b| b.is_ascii_hexdigit()) && id.iter().any(|&b| b != b'0');
    valid.then_some(id)
}

fn b3_trace_id(header: &[u8]) -> Option<&[u8]> {
    let id = header.trim_ascii();
    let valid = (id.len() == 16 || id.len() == 32) && id.iter().all(|b| b.is_ascii_hexdigit());
    valid.then_some(id)
}

fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start = start.saturating_sub(1);
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0'.saturating_add((value % 10) as u8);
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// What a byte of valid UTF-8 needs in a JSON string: [`PLAIN`] (copied as is), the
/// letter of a short escape (`"`, `\\`, `n`, `r`, `t`), [`UNICODE`] for a `\\u00XX`
/// escape, or [`LEAD`] for the first byte of a character that may need one.
static ESCAPES: [u8; 256] = escape_table();
const PLAIN: u8 = 0;
const UNICODE: u8 = b'u';
const LEAD: u8 = 1;

// Evaluated at compile time: an index out of range or an overflow is a build error, never
// a panic.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn escape_table() -> [u8; 256] {
    let mut table = [PLAIN; 256];
    let mut byte = 0usize;
    while byte < 0x20 {
        table[byte] = UNICODE;
        byte += 1;
    }
    table[0x7f] = UNICODE;
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    // C1 controls (U+0080..U+009F) are C2 80..C2 9F; U+2028/U+2029 are E2 80 A8/A9.
    table[0xc2] = LEAD;
    table[0xe2] = LEAD;
    table
}

/// Appends `bytes` as a JSON string: quotes, backslashes and control characters escaped,
/// invalid UTF-8 replaced by U+FFFD, so the line is always valid JSON and always one line.
pub fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut rest = bytes;
    loop {
        let (run, tail) = rest
            .split_at_checked(plain_prefix_len(rest))
            .unwrap_or((rest, &[]));
        out.extend_from_slice(run);
        let Some(&byte) = tail.first() else { break };
        if byte >= 0x80 {
            // Non-ASCII text is rare in headers: validate and escape the rest the careful way.
            push_text(out, tail);
            break;
        }
        match byte {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', byte]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => push_unicode_escape(out, u32::from(byte)),
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    out.push(b'"');
}

/// How many leading bytes of `bytes` go into a JSON string as they are: printable ASCII
/// other than `"` and `\\`. Header values are mostly that, so this runs 8 bytes at a time.
fn plain_prefix_len(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The top bit of each byte of `word` that is zero. A borrow can flag bytes above a zero
    // byte too, but never below the first one: the lowest flag is exact.
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut plain = 0usize;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let attention = (word.wrapping_sub(ONES.wrapping_mul(0x20)) & !word & HIGH) // < 0x20
            | zero_bytes(word ^ ONES.wrapping_mul(u64::from(b'"')))
            | zero_bytes(word ^ ONES.wrapping_mul(u64::from(b'\\')))
            | zero_bytes(word ^ ONES.wrapping_mul(0x7f))
            | (word & HIGH); // non-ASCII
        if attention != 0 {
            // Little-endian: the lowest flagged bit belongs to the first such byte.
            return plain.saturating_add((attention.trailing_zeros() / 8) as usize);
        }
        plain = plain.saturating_add(8);
    }
    let tail = chunks.remainder();
    let in_tail = tail
        .iter()
        .position(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
        .unwrap_or(tail.len());
    plain.saturating_add(in_tail)
}

/// Appends text that may hold any bytes (the inside of a JSON string): valid UTF-8 is
/// escaped where JSON or a line-based reader needs it, invalid UTF-8 becomes U+FFFD.
fn push_text(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        push_escaped(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

/// Escapes valid UTF-8, copying the runs that need no escaping in one go.
fn push_escaped(out: &mut Vec<u8>, text: &[u8]) {
    let mut run_start = 0usize;
    let mut i = 0usize;
    while let Some(&byte) = text.get(i) {
        let class = ESCAPES.get(usize::from(byte)).copied().unwrap_or(PLAIN);
        if class == PLAIN {
            i = i.saturating_add(1);
            continue;
        }
        // (the code point to write as \\uXXXX, or 0 for a short escape; bytes it replaces)
        let (code, len): (u32, usize) = match class {
            LEAD => {
                let next = text.get(i.saturating_add(1)).copied();
                let third = text.get(i.saturating_add(2)).copied();
                match (byte, next, third) {
                    (0xc2, Some(low @ 0x80..=0x9f), _) => (u32::from(low), 2),
                    (0xe2, Some(0x80), Some(last @ (0xa8 | 0xa9))) => {
                        (0x2000 | (u32::from(last) & 0x7f), 3)
                    }
                    _ => {
                        i = i.saturating_add(1);
                        continue;
                    }
                }
            }
            UNICODE => (u32::from(byte), 1),
            _ => (0, 1),
        };
        out.extend_from_slice(text.get(run_start..i).unwrap_or_default());
        if class == UNICODE || class == LEAD {
            push_unicode_escape(out, code);
        } else {
            out.extend_from_slice(&[b'\\', class]);
        }
        i = i.saturating_add(len);
        run_start = i;
    }
    out.extend_from_slice(text.get(run_start..).unwrap_or_default());
}

fn push_unicode_escape(out: &mut Vec<u8>, code: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |shift: u32| {
        HEX.get(((code >> shift) & 0xf) as usize)
            .copied()
            .unwrap_or(b'0')
    };
    out.extend_from_slice(&[b'\\', b'u', digit(12), digit(8), digit(4), digit(0)]);
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T20:54:26.123Z`.
pub fn write_timestamp(out: &mut Vec<u8>, unix_ns: u64) {
    let total_ms = unix_ns / 1_000_000;
    let millis = total_ms % 1000;
    let secs = total_ms / 1000;
    let days = secs / 86_400;
    let day_secs = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let digit = |v: u64| b'0'.saturating_add((v % 10) as u8);
    let hours = day_secs / 3600;
    let minutes = day_secs / 60 % 60;
    let seconds = day_secs % 60;
    out.extend_from_slice(&[
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
        b'T',
        digit(hours / 10),
        digit(hours),
        b':',
        digit(minutes / 10),
        digit(minutes),
        b':',
        digit(seconds / 10),
        digit(seconds),
        b'.',
        digit(millis / 100),
        digit(millis / 10),
        digit(millis),
        b'Z',
    ]);
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by counting 400-year
/// eras of 146 097 days from 0000-03-01 (so the leap day falls at the end of each year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = day_of_era
        .saturating_sub(day_of_era / 1460)
        .saturating_add(day_of_era / 36_524)
        .saturating_sub(day_of_era / 146_096)
        / 365;
    // doe - (365 * yoe + yoe / 4 - yoe / 100), in an order that never goes below zero
    // (subtracting yoe / 4 before adding yoe / 100 clamped to 0 on 2100-03-01 and gave the 2nd).
    let day_of_year = day_of_era
        .saturating_sub(365u64.saturating_mul(year_of_era))
        .saturating_add(year_of_era / 100)
        .saturating_sub(year_of_era / 4);
    let shifted_month = (day_of_year.saturating_mul(5).saturating_add(2)) / 153; // 0 = March
    let day = day_of_year
        .saturating_sub((shifted_month.saturating_mul(153).saturating_add(2)) / 5)
        .saturating_add(1);
    let month = if shifted_month < 10 {
        shifted_month.saturating_add(3)
    } else {
        shifted_month.saturating_sub(9)
    };
    let year = year_of_era
        .saturating_add(era.saturating_mul(400))
        .saturating_add(u64::from(month <= 2));
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Reason;

    /// A tiny JSON reader for the tests lives in `crate::json`; reuse it to parse records back.
    use crate::json::{self, Value};

    fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
        path.split('.').try_fold(v, |v, key| match v {
            Value::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        })
    }

    fn base() -> AccessRecord<'static> {
        AccessRecord {
            timestamp_ns: 1_764_104_066_123_456_789,
            decision: Decision::Allow { token: 0 },
            token_name: Some("sleep"),
            method: b"GET",
            path: b"/get",
            query: None,
            status: Some(200),
            duration_ns: None,
            request_id: None,
            protocol: None,
            authority: None,
            source_address: None,
            user_agent: None,
            traceparent: None,
            b3_trace_id: None,
            principal: None,
        }
    }

    fn render(r: &AccessRecord<'_>) -> (String, Value) {
        let mut bytes = Vec::new();
        r.write(&mut bytes);
        let out = String::from_utf8(bytes).expect("a record is always valid UTF-8");
        let v = json::parse(out.as_bytes()).unwrap_or_else(|e| panic!("invalid JSON {e}: {out}"));
        (out, v)
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    #[test]
    fn an_allowed_record_has_every_contract_field_with_its_type() {
        let r = AccessRecord {
            query: Some(b"a=1&b=%22"),
            duration_ns: Some(1_234_567),
            request_id: Some(b"4f1c1d7e-req"),
            protocol: Some(b"HTTP/2"),
            authority: Some(b"httpbin.demo:8000"),
            source_address: Some(b"10.1.2.3:45678"),
            user_agent: Some(b"curl/8.5.0"),
            traceparent: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            principal: Some(b"spiffe://cluster.local/ns/demo/sa/sleep"),
            ..base()
        };
        let (line, v) = render(&r);
        assert!(!line.contains('\n'));
        assert_eq!(get(&v, "@timestamp"), Some(&s("2025-11-25T20:54:26.123Z")));
        assert_eq!(get(&v, "event.kind"), Some(&s("event")));
        assert_eq!(
            get(&v, "event.category"),
            Some(&Value::Array(vec![s("web")]))
        );
        assert_eq!(
            get(&v, "event.type"),
            Some(&Value::Array(vec![s("access"), s("allowed")]))
        );
        assert_eq!(get(&v, "event.action"), Some(&s("rfma-token-gate")));
        assert_eq!(get(&v, "event.outcome"), Some(&s("success")));
        assert_eq!(
            get(&v, "event.duration"),
            Some(&Value::Number("1234567".into()))
        );
        assert_eq!(get(&v, "event.reason"), None);
        assert_eq!(get(&v, "http.request.method"), Some(&s("GET")));
        assert_eq!(get(&v, "http.request.id"), Some(&s("4f1c1d7e-req")));
        assert_eq!(
            get(&v, "http.response.status_code"),
            Some(&Value::Number("200".into()))
        );
        assert_eq!(get(&v, "http.version"), Some(&s("2")));
        assert_eq!(get(&v, "url.path"), Some(&s("/get")));
        assert_eq!(get(&v, "url.query"), Some(&s("a=1&b=%22")));
        assert_eq!(get(&v, "url.domain"), Some(&s("httpbin.demo")));
        assert_eq!(get(&v, "source.ip"), Some(&s("10.1.2.3")));
        assert_eq!(get(&v, "source.port"), Some(&Value::Number("45678".into())));
        assert_eq!(get(&v, "user_agent.original"), Some(&s("curl/8.5.0")));
        assert_eq!(
            get(&v, "trace.id"),
            Some(&s("4bf92f3577b34da6a3ce929d0e0e4736"))
        );
        assert_eq!(get(&v, "rfma.decision"), Some(&s("allow")));
        assert_eq!(get(&v, "rfma.token.name"), Some(&s("sleep")));
        assert_eq!(get(&v, "rfma.reason"), None);
        assert_eq!(
            get(&v, "rfma.principal"),
            Some(&s("spiffe://cluster.local/ns/demo/sa/sleep"))
        );
    }

    #[test]
    fn a_denied_record_carries_the_reason_twice_and_no_token_name() {
        let r = AccessRecord {
            decision: Decision::Deny(Reason::InvalidToken),
            token_name: None,
            status: Some(403),
            ..base()
        };
        let (_, v) = render(&r);
        assert_eq!(
            get(&v, "event.type"),
            Some(&Value::Array(vec![s("access"), s("denied")]))
        );
        assert_eq!(get(&v, "event.outcome"), Some(&s("failure")));
        assert_eq!(get(&v, "event.reason"), Some(&s("invalid_token")));
        assert_eq!(get(&v, "rfma.reason"), Some(&s("invalid_token")));
        assert_eq!(get(&v, "rfma.decision"), Some(&s("deny")));
        assert_eq!(get(&v, "rfma.token"), None);
        assert_eq!(
            get(&v, "http.response.status_code"),
            Some(&Value::Number("403".into()))
        );
    }

    #[test]
    fn a_bypassed_record_counts_as_allowed() {
        let (_, v) = render(&AccessRecord {
            decision: Decision::Bypass,
            token_name: None,
            ..base()
        });
        assert_eq!(get(&v, "rfma.decision"), Some(&s("bypass")));
        assert_eq!(
            get(&v, "event.type"),
            Some(&Value::Array(vec![s("access"), s("allowed")]))
        );
        assert_eq!(get(&v, "event.outcome"), Some(&s("success")));
    }

    #[test]
    fn absent_fields_are_left_out_never_null() {
        let (line, v) = render(&AccessRecord {
            status: None,
            ..base()
        });
        assert!(!line.contains("null"));
        for field in [
            "http.response",
            "event.duration",
            "http.request.id",
            "http.version",
            "url.query",
            "url.domain",
            "source",
            "user_agent",
            "trace",
            "rfma.principal",
        ] {
            assert_eq!(get(&v, field), None, "{field}");
        }
    }

    #[test]
    fn hostile_header_values_still_give_one_line_of_valid_json() {
        let nasty: &[u8] =
            b"a\"b\\c\nd\re\tf\x00g\x1fh\x7fi\xff\xfej\xe2\x80\xa8k \xf0\x9f\x98\x80";
        let r = AccessRecord {
            user_agent: Some(nasty),
            path: nasty,
            method: b"G\"ET",
            ..base()
        };
        let (line, v) = render(&r);
        assert!(!line.contains(['\n', '\r', '\u{2028}']));
        assert_eq!(
            get(&v, "user_agent.original"),
            Some(&s(
                "a\"b\\c\nd\re\tf\u{0}g\u{1f}h\u{7f}i\u{FFFD}\u{FFFD}j\u{2028}k 😀"
            ))
        );
        let long = vec![b'x'; 100_000];
        let (_, v) = render(&AccessRecord {
            user_agent: Some(&long),
            ..base()
        });
        assert_eq!(
            get(&v, "user_agent.original"),
            Some(&Value::String("x".repeat(100_000)))
        );
    }

    #[test]
    fn versions_domains_addresses_and_trace_ids_are_normalised() {
        assert_eq!(http_version(b"HTTP/1.1"), Some("1.1"));
        assert_eq!(http_version(b"HTTP/1.0"), Some("1.0"));
        assert_eq!(http_version(b"HTTP/3"), Some("3"));
        assert_eq!(http_version(b"SPDY"), None);
        assert_eq!(host_without_port(b"a.example:80"), b"a.example");
        assert_eq!(host_without_port(b"a.example"), b"a.example");
        assert_eq!(host_without_port(b"[::1]:8080"), b"::1");
        assert_eq!(
            split_address(b"127.0.0.1:5"),
            Some((b"127.0.0.1".as_slice(), Some(5)))
        );
        assert_eq!(
            split_address(b"[::1]:443"),
            Some((b"::1".as_slice(), Some(443)))
        );
        assert_eq!(
            split_address(b"10.0.0.1"),
            Some((b"10.0.0.1".as_slice(), None))
        );
        assert_eq!(split_address(b""), None);
        assert_eq!(
            traceparent_trace_id(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(traceparent_trace_id(b"garbage"), None);
        assert_eq!(
            b3_trace_id(b"463ac35c9f6413ad"),
            Some(b"463ac35c9f6413ad".as_slice())
        );
        assert_eq!(b3_trace_id(b"xyz"), None);
        // traceparent wins over b3; b3 is used when traceparent is unusable.
        let (_, v) = render(&AccessRecord {
            traceparent: Some(b"bad"),
            b3_trace_id: Some(b"463ac35c9f6413ad"),
            ..base()
        });
        assert_eq!(get(&v, "trace.id"), Some(&s("463ac35c9f6413ad")));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let ts = |ns: u64| {
            let mut out = Vec::new();
            write_timestamp(&mut out, ns);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(ts(1_709_251_199_999_000_000), "2024-02-29T23:59:59.999Z");
        assert_eq!(ts(4_102_444_800_007_000_000), "2100-01-01T00:00:00.007Z");
        // 2100 is not a leap year: found by the `record` fuzz target's seed corpus.
        assert_eq!(ts(4_107_542_399_999_000_000), "2100-02-28T23:59:59.999Z");
        assert_eq!(ts(4_107_542_400_000_000_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(ts(7_263_216_000_000_000_000), "2200-03-01T00:00:00.000Z");
        assert_eq!(ts(u64::MAX), "2554-07-21T23:34:33.709Z");
    }

    #[test]
    fn integers_are_written_in_full() {
        for n in [0u64, 7, 10, 200, 65_535, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
