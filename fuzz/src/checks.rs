//! Properties of the filter's outputs, checked with `serde_json` (the filter itself has no
//! JSON writer to trust): the access record and the deny body, and that neither leaks.

use crate::config_model::{hex, sha256};
use rfma_filter::gate::Decision;
use rfma_filter::record::AccessRecord;
use serde_json::Value;
use std::collections::HashSet;

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Days in each month of a year.
fn month_lengths(year: u64) -> [u64; 12] {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ]
}

/// RFC 3339 UTC with milliseconds, by counting whole years and months from 1970.
pub fn timestamp(unix_ns: u64) -> String {
    let ms = unix_ns / 1_000_000;
    let (mut days, day_ms) = (ms / 86_400_000, ms % 86_400_000);
    let mut year = 1970;
    loop {
        let len: u64 = month_lengths(year).iter().sum();
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    for len in month_lengths(year) {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    let secs = day_ms / 1000;
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        days + 1,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        day_ms % 1000
    )
}

fn reason(decision: Decision) -> Option<&'static str> {
    match decision {
        Decision::Deny(r) => Some(r.code()),
        _ => None,
    }
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(has_null),
        Value::Object(m) => m.values().any(has_null),
        _ => false,
    }
}

/// The trace ID the record must carry: the W3C `traceparent` one if usable, else B3's.
fn expected_trace_id(traceparent: Option<&[u8]>, b3: Option<&[u8]>) -> Option<String> {
    let hex_digits = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    let w3c = traceparent.and_then(|t| {
        let text = t.trim_ascii();
        let id = text.split(|&b| b == b'-').nth(1)?;
        (id.len() == 32 && hex_digits(id) && id.iter().any(|&b| b != b'0')).then(|| lossy(id))
    });
    w3c.or_else(|| {
        let id = b3?.trim_ascii();
        ((id.len() == 16 || id.len() == 32) && hex_digits(id)).then(|| lossy(id))
    })
}

fn expected_version(protocol: Option<&[u8]>) -> Option<&'static str> {
    match protocol? {
        b"HTTP/1.0" => Some("1.0"),
        b"HTTP/1.1" => Some("1.1"),
        b"HTTP/2" => Some("2"),
        b"HTTP/3" => Some("3"),
        _ => None,
    }
}

/// Checks a written record against the contract and the data it was built from.
pub fn check_record(r: &AccessRecord<'_>, line: &str) -> Result<Value, String> {
    if line.contains(['\n', '\r', '\u{2028}', '\u{2029}']) {
        return Err("the record is not one line".into());
    }
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e})"))?;
    if has_null(&v) {
        return Err("a field is null".into());
    }
    let Value::Object(top) = &v else {
        return Err("not an object".into());
    };
    for key in top.keys() {
        if ![
            "@timestamp",
            "event",
            "http",
            "url",
            "source",
            "user_agent",
            "trace",
            "rfma",
        ]
        .contains(&key.as_str())
        {
            return Err(format!("unexpected top-level field {key}"));
        }
    }
    let at = |path: &str| path.split('.').try_fold(&v, |v, k| v.get(k));
    let text = |s: &str| Some(Value::String(s.to_owned()));
    let number = |n: u64| Some(Value::from(n));
    let allowed = !matches!(r.decision, Decision::Deny(_));
    let domain = r.authority.and_then(|a| {
        // `[v6]:port` gives the address inside the brackets; an unclosed `[` is kept as written.
        let host = match a.strip_prefix(b"[") {
            Some(rest) if rest.contains(&b']') => {
                rest.split(|&b| b == b']').next().unwrap_or_default()
            }
            Some(_) => a,
            None => match a.iter().rposition(|&b| b == b':') {
                Some(colon) => &a[..colon],
                None => a,
            },
        };
        (!host.is_empty()).then(|| lossy(host))
    });
    let expectations: Vec<(&str, Option<Value>)> = vec![
        ("@timestamp", text(&timestamp(r.timestamp_ns))),
        ("event.kind", text("event")),
        ("event.category", Some(serde_json::json!(["web"]))),
        (
            "event.type",
            Some(serde_json::json!([
                "access",
                if allowed { "allowed" } else { "denied" }
            ])),
        ),
        ("event.action", text("rfma-token-gate")),
        (
            "event.outcome",
            text(if allowed { "success" } else { "failure" }),
        ),
        ("event.reason", reason(r.decision).and_then(text)),
        ("event.duration", r.duration_ns.and_then(number)),
        ("http.request.method", text(&lossy(r.method))),
        (
            "http.request.id",
            r.request_id.map(lossy).and_then(|s| text(&s)),
        ),
        ("http.response.status_code", r.status.and_then(number)),
        ("http.version", expected_version(r.protocol).and_then(text)),
        ("url.path", text(&lossy(r.path))),
        ("url.query", r.query.map(lossy).and_then(|s| text(&s))),
        ("url.domain", domain.and_then(|s| text(&s))),
        (
            "user_agent.original",
            r.user_agent.map(lossy).and_then(|s| text(&s)),
        ),
        (
            "trace.id",
            expected_trace_id(r.traceparent, r.b3_trace_id).and_then(|s| text(&s)),
        ),
        ("rfma.decision", text(r.decision.code())),
        ("rfma.reason", reason(r.decision).and_then(text)),
        ("rfma.token.name", r.token_name.and_then(text)),
        (
            "rfma.principal",
            r.principal.map(lossy).and_then(|s| text(&s)),
        ),
    ];
    for (path, want) in expectations {
        if at(path) != want.as_ref() {
            return Err(format!("{path}: got {:?}, want {want:?}", at(path)));
        }
    }
    if r.status.is_none() && at("http.response").is_some() {
        return Err("http.response present without a status".into());
    }
    if let Some(source) = at("source") {
        let address = lossy(r.source_address.unwrap_or_default());
        let ip = source
            .get("ip")
            .and_then(Value::as_str)
            .ok_or("source.ip missing")?;
        if !address.contains(ip) {
            return Err(format!("source.ip {ip:?} is not from {address:?}"));
        }
        if let Some(port) = source.get("port") {
            let port = port
                .as_u64()
                .filter(|p| *p <= 65_535)
                .ok_or("bad source.port")?;
            // The port as written after the last colon may be spelt `080` or `+80`.
            let written = address
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u64>().ok());
            if written != Some(port) {
                return Err(format!("source.port {port} is not from {address:?}"));
            }
        }
    }
    Ok(v)
}

/// The deny body is exactly `{"error":"<reason>","request_id":"<id or empty>"}`.
pub fn check_deny_body(body: &[u8], code: &str, request_id: Option<&[u8]>) -> Result<(), String> {
    let body = std::str::from_utf8(body).map_err(|e| format!("the deny body is not UTF-8: {e}"))?;
    if body.contains(['\n', '\r']) {
        return Err("the deny body is not one line".into());
    }
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("deny body is not JSON ({e}): {body}"))?;
    let want =
        serde_json::json!({ "error": code, "request_id": lossy(request_id.unwrap_or_default()) });
    if v != want {
        return Err(format!("deny body {v} is not {want}"));
    }
    Ok(())
}

/// A hasher for 8-byte pieces read as a u64: one multiply (the leak scan looks up every
/// position of outputs that can be hundreds of kilobytes long).
#[derive(Default)]
pub struct PieceHasher(u64);

impl std::hash::Hasher for PieceHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Every 8-byte piece of the given tokens and of their digests (hex, both cases).
pub struct Secrets {
    pieces: HashSet<u64, std::hash::BuildHasherDefault<PieceHasher>>,
}

pub const PIECE: usize = 8;

impl Secrets {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Secrets {
        let mut pieces = HashSet::default();
        for token in tokens {
            let digest = hex(&sha256(token.as_bytes()));
            for form in [token.to_owned(), digest.clone(), digest.to_uppercase()] {
                for w in form.as_bytes().windows(PIECE) {
                    pieces.insert(u64::from_le_bytes(w.try_into().unwrap_or_default()));
                }
            }
        }
        Secrets { pieces }
    }

    /// A piece of a secret in any text of a JSON `document` (keys, strings, numbers, as a
    /// reader sees them once escapes are decoded: escapes like `\u000e` are not text) that
    /// none of `inputs` contains.
    pub fn leak_in_json(&self, document: &str, inputs: &[&[u8]]) -> Option<String> {
        fn texts(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Number(n) => out.push(n.to_string()),
                Value::Array(items) => items.iter().for_each(|i| texts(i, out)),
                Value::Object(m) => m.iter().for_each(|(k, v)| {
                    out.push(k.clone());
                    texts(v, out);
                }),
                _ => {}
            }
        }
        let Ok(value) = serde_json::from_str::<Value>(document) else {
            return self.leak(document.as_bytes(), inputs);
        };
        let mut all = Vec::new();
        texts(&value, &mut all);
        all.iter().find_map(|t| self.leak(t.as_bytes(), inputs))
    }

    /// A piece of a secret in `output` that none of `inputs` (the data the output was
    /// legitimately built from, excluding the token header itself) contains.
    pub fn leak(&self, output: &[u8], inputs: &[&[u8]]) -> Option<String> {
        output.windows(PIECE).find_map(|w| {
            let piece = u64::from_le_bytes(w.try_into().ok()?);
            (self.pieces.contains(&piece)
                && !inputs.iter().any(|i| i.windows(PIECE).any(|x| x == w)))
            .then(|| lossy(w))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rfma_filter::gate::Reason;

    #[test]
    fn the_timestamp_model_counts_leap_years() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            timestamp(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            timestamp(4_107_542_399_999_000_000),
            "2100-02-28T23:59:59.999Z"
        );
        assert_eq!(
            timestamp(4_107_542_400_000_000_000),
            "2100-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn every_day_from_1970_to_2554_matches_the_filter() {
        // A calendar turned one day at a time, checked against the model now and then.
        let (mut year, mut month, mut day) = (1970u64, 1usize, 1u64);
        let mut written = Vec::new();
        for n in 0..213_000u64 {
            let ns = n * 86_400_000_000_000 + 86_399_999_000_000;
            let want = format!("{year:04}-{month:02}-{day:02}T23:59:59.999Z");
            written.clear();
            rfma_filter::record::write_timestamp(&mut written, ns);
            assert_eq!(written, want.as_bytes(), "day {n}");
            if n % 997 == 0 {
                assert_eq!(timestamp(ns), want, "day {n}");
            }
            day += 1;
            if day > month_lengths(year)[month - 1] {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            timestamp_ns: 1_764_104_066_123_456_789,
            decision: Decision::Deny(Reason::InvalidToken),
            token_name: None,
            method: b"GET",
            path: b"/a\"b",
            query: Some(b"x=\xff"),
            status: Some(403),
            duration_ns: Some(5),
            request_id: Some(b"id"),
            protocol: Some(b"HTTP/2"),
            authority: Some(b"[::1]:80"),
            source_address: Some(b"10.0.0.1:5"),
            user_agent: None,
            traceparent: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            b3_trace_id: None,
            principal: None,
        }
    }

    #[test]
    fn a_real_record_passes_and_a_tampered_one_fails() {
        let r = record();
        let mut bytes = Vec::new();
        r.write(&mut bytes);
        let line = String::from_utf8(bytes).unwrap();
        check_record(&r, &line).unwrap();
        for (from, to) in [
            ("\"403\"", "\"403\""),
            ("403", "404"),
            ("\"2\"", "\"1.1\""),
            ("::1", "::2"),
            ("\"id\"", "null"),
            ("a\\\"b", "ab"),
            ("x=\u{fffd}", "x=?"),
        ] {
            let bad = line.replacen(from, to, 1);
            if bad != line {
                assert!(check_record(&r, &bad).is_err(), "{bad}");
            }
        }
        assert!(check_record(&r, &format!("{line}\n")).is_err());
        assert!(check_record(&r, &line[..line.len() - 1]).is_err());
    }

    #[test]
    fn leaks_are_pieces_not_found_in_the_inputs() {
        let s = Secrets::new(["Zq9demoTokenAlpha7Hk2vX"]);
        assert_eq!(
            s.leak(b"{\"a\":\"xxTokenAlphaxx\"}", &[]),
            Some("TokenAlp".into())
        );
        assert_eq!(
            s.leak(b"{\"a\":\"xxTokenAlphaxx\"}", &[b"TokenAlpha"]),
            None
        );
        assert_eq!(s.leak(b"{\"a\":\"TokenAl\"}", &[]), None);
        // An escape is not text: `\u000e` + `nAlpha7` must not read as `enAlpha7`.
        let t = Secrets::new(["Zq9demoTokenAlpha7Hk2vX"]);
        assert_eq!(t.leak_in_json(r#"{"a":"\u000enAlpha7"}"#, &[]), None);
        assert_eq!(
            t.leak_in_json(r#"{"a":"\u0065nAlpha7"}"#, &[]),
            Some("enAlpha7".into())
        );
        let digest = hex(&sha256(b"Zq9demoTokenAlpha7Hk2vX")).to_uppercase();
        assert!(s.leak(&digest.as_bytes()[20..30], &[]).is_some());
        check_deny_body(
            br#"{"error":"invalid_token","request_id":""}"#,
            "invalid_token",
            None,
        )
        .unwrap();
        assert!(
            check_deny_body(
                br#"{"error":"invalid_token","request_id":"","t":1}"#,
                "invalid_token",
                None
            )
            .is_err()
        );
    }
}
