//! Properties of the filter's outputs, checked with `serde_json` (the filter itself has no
//! JSON writer to trust): the deny body, and that no output leaks a token.

use crate::config_model::{hex, sha256};
use serde_json::Value;
use std::collections::HashSet;

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `text` is exactly one JSON string (quotes included, nothing around them) that reads as
/// `bytes`, invalid UTF-8 as U+FFFD: what `response::push_string` must write.
pub fn check_json_string(text: &str, bytes: &[u8]) -> Result<(), String> {
    // serde_json takes whitespace around a value: the quotes must be the first and last bytes.
    if !(text.len() >= 2 && text.starts_with('"') && text.ends_with('"')) {
        return Err(format!("not one JSON string: {text:?}"));
    }
    let read: String =
        serde_json::from_str(text).map_err(|e| format!("not one JSON string ({e}): {text:?}"))?;
    if read != lossy(bytes) {
        return Err(format!(
            "the JSON string reads {read:?}, written from {:?}",
            lossy(bytes)
        ));
    }
    Ok(())
}

/// The deny body is exactly `{"error":"<reason>","request_id":<id or "">}`, byte for byte
/// around the id: valid JSON, one line, these two members in this order, nothing else.
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
    // Equal as values still allows a repeated key, whitespace or another order: the text too.
    let id = body
        .strip_prefix(&format!(r#"{{"error":"{code}","request_id":"#))
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(|| format!("deny body is not exactly the two fields: {body}"))?;
    check_json_string(id, request_id.unwrap_or_default())
        .map_err(|e| format!("deny body's request_id: {e}"))
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
    }

    #[test]
    fn the_deny_body_is_its_two_fields_and_nothing_else() {
        let code = Reason::InvalidToken.code();
        check_deny_body(br#"{"error":"invalid_token","request_id":""}"#, code, None).unwrap();
        check_deny_body(
            b"{\"error\":\"invalid_token\",\"request_id\":\"a\\u0000\\\"\xef\xbf\xbd\"}",
            code,
            Some(b"a\0\"\xff"),
        )
        .unwrap();
        for bad in [
            r#"{"error":"invalid_token","request_id":"","t":1}"#,
            r#"{"error":"invalid_token","request_id":"x","request_id":""}"#,
            r#"{"request_id":"","error":"invalid_token"}"#,
            r#"{"error":"invalid_token", "request_id":""}"#,
            r#"{"error":"invalid_token","request_id":"" }"#,
            r#"{"error":"missing_token","request_id":""}"#,
            r#"{"error":"invalid_token","request_id":"x"}"#,
            r#"{"error":"invalid_token","request_id":""}
"#,
        ] {
            assert!(
                check_deny_body(bad.as_bytes(), code, None).is_err(),
                "{bad}"
            );
        }
        check_json_string(r#""a\u00e9""#, "a\u{e9}".as_bytes()).unwrap();
        assert!(check_json_string(r#" "a""#, b"a").is_err());
        assert!(check_json_string(r#""a"""#, b"a").is_err());
        assert!(check_json_string(r#""\ud800""#, b"\xed\xa0\x80").is_err());
    }
}
