//! The deny response and the counters: the parts of the contract a client or a dashboard sees.

use crate::gate::{Decision, Reason};

/// The JSON body of a deny: `{"error":"<reason>","request_id":"<x-request-id or empty>"}`.
/// It never carries the token or its digest: it is built from the reason code and the ID.
pub fn deny_body(reason: Reason, request_id: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(b"{\"error\":\"");
    body.extend_from_slice(reason.code().as_bytes());
    body.extend_from_slice(b"\",\"request_id\":");
    push_string(&mut body, request_id.unwrap_or_default());
    body.push(b'}');
    body
}

/// The auth-scheme of the challenge.
pub const CHALLENGE_SCHEME: &str = "RFMA-Token";

/// The `WWW-Authenticate` value of a 401 (RFC 9110 §15.5.2 requires one):
/// `RFMA-Token realm="<realm>", header="<header>"`, plus `, error="<reason>"` when the reason
/// says more than "no token" (a token used outside its validity window). `None` for every
/// other status. Built from the configuration and the reason code alone, never from the
/// request: the realm is checked to need no escaping, the header name is HTTP token characters.
pub fn challenge(realm: &str, header: &str, reason: Reason) -> Option<String> {
    if reason.status() != 401 {
        return None;
    }
    let mut out = String::with_capacity(64);
    out.push_str(CHALLENGE_SCHEME);
    out.push_str(" realm=\"");
    out.push_str(realm);
    out.push_str("\", header=\"");
    out.push_str(header);
    out.push('"');
    if reason != Reason::MissingToken {
        out.push_str(", error=\"");
        out.push_str(reason.code());
        out.push('"');
    }
    Some(out)
}

/// Appends `bytes` as a JSON string: quotes, backslashes and control characters escaped,
/// invalid UTF-8 replaced by U+FFFD, so the body is valid JSON whatever the client sent.
pub fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let code = u32::from(c);
                out.extend_from_slice(b"\\u00");
                for shift in [4u32, 0] {
                    let digit = (code >> shift) & 0xf;
                    out.push(HEX.get(digit as usize).copied().unwrap_or(b'0'));
                }
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Counter names, in the order of [`counter_index`].
pub const COUNTERS: [&str; 9] = [
    "rfma_allowed_total",
    "rfma_bypassed_total",
    "rfma_denied_missing_token_total",
    "rfma_denied_invalid_token_total",
    "rfma_denied_duplicate_token_total",
    "rfma_denied_principal_mismatch_total",
    "rfma_denied_internal_error_total",
    "rfma_denied_expired_token_total",
    "rfma_denied_token_not_yet_valid_total",
];

/// The per-token counter: how many requests each configured token allowed. In Prometheus it is
/// `rfma_token_allowed_total{token="<name>"}`, one series per name rather than one metric per name.
pub const TOKEN_ALLOWED_COUNTER: &str = "rfma_token_allowed_total";
/// The tag (Prometheus label) that carries the token's name.
pub const TOKEN_TAG: &str = "token";

/// The metric name the filter defines for the token `name`: `token=.=<name>;.;rfma_token_allowed_total`.
///
/// A Proxy-Wasm metric has a name and no tags; the tag is spelt into the name in Istio's
/// encoding (`<tag>=.=<value>;.;`), and a tag-extraction rule in the proxy's bootstrap takes it
/// out again. Istio 1.30 renders that rule for every tag listed in ProxyConfig `extraStatTags`
/// (`(<tag>=\.=(.*?);\.;)`: the first group is cut from the name, the second is the value), so
/// `extraStatTags: [token]` is all the mesh needs; the harness's bootstrap has the same rule.
/// Envoy files the metric as `wasmcustom.<name>`; with the tag cut out that is
/// `wasmcustom.rfma_token_allowed_total`, which `/stats/prometheus` prints without the
/// `wasmcustom.` namespace. Token names (`[a-z0-9._-]`) hold neither `;` nor `=`, so the value
/// ends where the name does.
pub fn token_counter_name(name: &str) -> String {
    let mut out = String::with_capacity(
        TOKEN_TAG
            .len()
            .saturating_add(name.len())
            .saturating_add(TOKEN_ALLOWED_COUNTER.len())
            .saturating_add(6),
    );
    out.push_str(TOKEN_TAG);
    out.push_str("=.=");
    out.push_str(name);
    out.push_str(";.;");
    out.push_str(TOKEN_ALLOWED_COUNTER);
    out
}

/// Which counter a decision increments.
pub fn counter_index(decision: Decision) -> usize {
    match decision {
        Decision::Allow { .. } => 0,
        Decision::Bypass => 1,
        Decision::Deny(Reason::MissingToken) => 2,
        Decision::Deny(Reason::InvalidToken) => 3,
        Decision::Deny(Reason::DuplicateToken) => 4,
        Decision::Deny(Reason::PrincipalMismatch) => 5,
        Decision::Deny(Reason::InternalError) => 6,
        Decision::Deny(Reason::ExpiredToken) => 7,
        Decision::Deny(Reason::TokenNotYetValid) => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn deny_bodies_carry_only_reason_and_request_id() {
        assert_eq!(
            deny_body(Reason::InvalidToken, Some(b"abc-123")),
            br#"{"error":"invalid_token","request_id":"abc-123"}"#
        );
        assert_eq!(
            deny_body(Reason::MissingToken, None),
            br#"{"error":"missing_token","request_id":""}"#
        );
        assert_eq!(
            deny_body(Reason::InternalError, Some(b"a\"b")),
            br#"{"error":"internal_error","request_id":"a\"b"}"#
        );
    }

    #[test]
    fn every_401_carries_the_challenge_and_no_other_status_does() {
        for reason in Reason::ALL {
            let challenge = challenge("istio-demo", "x-rfma-token", reason);
            match reason {
                Reason::MissingToken => assert_eq!(
                    challenge.as_deref(),
                    Some(r#"RFMA-Token realm="istio-demo", header="x-rfma-token""#)
                ),
                Reason::ExpiredToken => assert_eq!(
                    challenge.as_deref(),
                    Some(
                        r#"RFMA-Token realm="istio-demo", header="x-rfma-token", error="expired_token""#
                    )
                ),
                Reason::TokenNotYetValid => assert_eq!(
                    challenge.as_deref(),
                    Some(
                        r#"RFMA-Token realm="istio-demo", header="x-rfma-token", error="token_not_yet_valid""#
                    )
                ),
                _ => {
                    assert_ne!(reason.status(), 401, "{reason:?}");
                    assert_eq!(challenge, None, "{reason:?}");
                }
            }
        }
        assert_eq!(
            challenge("payments api", "x-key", Reason::MissingToken).as_deref(),
            Some(r#"RFMA-Token realm="payments api", header="x-key""#)
        );
    }

    #[test]
    fn request_ids_are_escaped_into_valid_json() {
        let cases: [(&[u8], &str); 6] = [
            (b"plain-id", r#""plain-id""#),
            (br#"a"b\c"#, r#""a\"b\\c""#),
            (b"tab\tnl\n\x00\x7f", r#""tab\u0009nl\u000a\u0000\u007f""#),
            (b"caf\xc3\xa9", "\"caf\u{e9}\""),
            (b"bad\xff", "\"bad\u{fffd}\""),
            // U+2028 is valid inside a JSON string (only JavaScript source once rejected it),
            // so it is written as it came; \x01 is a control character like the others.
            (b"q\"\\\x01\xe2\x80\xa8", "\"q\\\"\\\\\\u0001\u{2028}\""),
        ];
        for (raw, want) in cases {
            let mut out = Vec::new();
            push_string(&mut out, raw);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{raw:?}");
        }
    }

    #[test]
    fn whatever_the_request_id_the_body_is_json_with_exactly_two_fields() {
        // A JSON parser reads the ID back as sent (invalid UTF-8 as U+FFFD), and an ID written
        // to look like a third field stays inside the string.
        for (id, read) in [
            (&b"plain-id"[..], "plain-id"),
            (br#"a"b\c"#, r#"a"b\c"#),
            (b"tab\tnl\n\x00\x7f", "tab\tnl\n\u{0}\u{7f}"),
            (br#"","token":"x"#, r#"","token":"x"#),
            (b"caf\xc3\xa9", "caf\u{e9}"),
            (b"bad\xff", "bad\u{fffd}"),
        ] {
            let body = deny_body(Reason::InvalidToken, Some(id));
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                parsed,
                serde_json::json!({"error": "invalid_token", "request_id": read}),
                "{id:?}"
            );
        }
    }

    #[test]
    fn a_token_counter_spells_its_tag_in_istios_encoding() {
        assert_eq!(
            token_counter_name("sleep"),
            "token=.=sleep;.;rfma_token_allowed_total"
        );
        assert_eq!(
            token_counter_name("a.b-c_9"),
            "token=.=a.b-c_9;.;rfma_token_allowed_total"
        );
    }

    #[test]
    fn each_decision_has_its_own_counter() {
        let decisions = [
            Decision::Allow { token: 3 },
            Decision::Bypass,
            Decision::Deny(Reason::MissingToken),
            Decision::Deny(Reason::InvalidToken),
            Decision::Deny(Reason::DuplicateToken),
            Decision::Deny(Reason::PrincipalMismatch),
            Decision::Deny(Reason::InternalError),
            Decision::Deny(Reason::ExpiredToken),
            Decision::Deny(Reason::TokenNotYetValid),
        ];
        let names: Vec<&str> = decisions
            .iter()
            .map(|d| COUNTERS[counter_index(*d)])
            .collect();
        assert_eq!(names, COUNTERS.to_vec());
        for reason in Reason::ALL {
            assert_eq!(
                COUNTERS[counter_index(Decision::Deny(reason))],
                format!("rfma_denied_{}_total", reason.code())
            );
        }
    }
}
