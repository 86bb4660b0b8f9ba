//! What the filter hands to Envoy's access log: a few short values in filter state.
//!
//! The access record itself is Envoy's: `filter/access-log-format.json` is a `json_format`
//! object whose `%FILTER_STATE(wasm.<key>:PLAIN)%` operators print these values next to the
//! facts Envoy already knows (status, bytes, addresses, timing), at native cost. The filter
//! only says what it decided, and the one fact Envoy cannot print: the authority without its
//! port. Each value costs the proxy a filter-state write (about 4k instructions), so a request
//! gets at most four, and only those it has.

use crate::gate::{Decision, Reason};

/// Envoy stores a property a module sets under `wasm.<key>`: these are the keys without it.
pub const DECISION: &[u8] = b"rfma_decision";
pub const TOKEN: &[u8] = b"rfma_token";
pub const REASON: &[u8] = b"rfma_reason";
pub const DOMAIN: &[u8] = b"rfma_domain";

/// Every key the filter may set, for tests and for the format's drift check.
pub const KEYS: [&[u8]; 4] = [DECISION, TOKEN, REASON, DOMAIN];

/// The values for one request, in the order they are written: the decision always; then the
/// name of the token the request matched (`token_name`) when it was allowed, or denied for being
/// used outside its validity window (its digest matched: the record says which client must be
/// re-keyed); then the deny reason; then the domain when the request named one. Other denies
/// never name a token, even one whose digest matched (a principal mismatch names no client).
pub fn values<'a>(
    decision: Decision,
    token_name: Option<&'a str>,
    authority: Option<&'a [u8]>,
) -> [Option<(&'static [u8], &'a [u8])>; 4] {
    let names_token = match decision {
        Decision::Allow { .. } => true,
        Decision::Deny(reason) => {
            matches!(reason, Reason::ExpiredToken | Reason::TokenNotYetValid)
        }
        Decision::Bypass => false,
    };
    let reason = match decision {
        Decision::Deny(reason) => Some((REASON, reason.code().as_bytes())),
        Decision::Allow { .. } | Decision::Bypass => None,
    };
    [
        Some((DECISION, decision.code().as_bytes())),
        token_name
            .filter(|_| names_token)
            .map(|name| (TOKEN, name.as_bytes())),
        reason,
        authority
            .map(host_without_port)
            .filter(|domain| !domain.is_empty())
            .map(|domain| (DOMAIN, domain)),
    ]
}

/// `example.com:8000` → `example.com`, `[::1]:80` → `::1`: ECS's `url.domain` has no port,
/// and Envoy has no operator that drops it (CEL could, but only with string functions, which
/// Istio's access-log provider cannot turn on).
pub fn host_without_port(authority: &[u8]) -> &[u8] {
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

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    use crate::gate::Reason;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn written<'a>(values: [Option<(&'static [u8], &'a [u8])>; 4]) -> Vec<(&'a str, &'a str)> {
        values
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    std::str::from_utf8(k).unwrap(),
                    std::str::from_utf8(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn each_decision_hands_over_what_it_knows() {
        assert_eq!(
            written(values(
                Decision::Allow { token: 0 },
                Some("sleep"),
                Some(b"httpbin.demo:8000")
            )),
            [
                ("rfma_decision", "allow"),
                ("rfma_token", "sleep"),
                ("rfma_domain", "httpbin.demo")
            ]
        );
        assert_eq!(
            written(values(Decision::Bypass, None, Some(b"httpbin"))),
            [("rfma_decision", "bypass"), ("rfma_domain", "httpbin")]
        );
        for reason in Reason::ALL {
            assert_eq!(
                written(values(Decision::Deny(reason), None, None)),
                [("rfma_decision", "deny"), ("rfma_reason", reason.code())]
            );
        }
    }

    #[test]
    fn a_deny_names_the_token_only_when_it_was_used_outside_its_window() {
        for reason in [Reason::ExpiredToken, Reason::TokenNotYetValid] {
            assert_eq!(
                written(values(Decision::Deny(reason), Some("sleep"), Some(b"h:1"))),
                [
                    ("rfma_decision", "deny"),
                    ("rfma_token", "sleep"),
                    ("rfma_reason", reason.code()),
                    ("rfma_domain", "h")
                ]
            );
        }
        for reason in [
            Reason::MissingToken,
            Reason::DuplicateToken,
            Reason::InvalidToken,
            Reason::PrincipalMismatch,
            Reason::InternalError,
        ] {
            assert_eq!(
                written(values(Decision::Deny(reason), Some("sleep"), None)),
                [("rfma_decision", "deny"), ("rfma_reason", reason.code())]
            );
        }
        assert_eq!(
            written(values(Decision::Bypass, Some("sleep"), None)),
            [("rfma_decision", "bypass")]
        );
    }

    #[test]
    fn the_domain_drops_the_port_and_an_empty_one_is_left_out() {
        let cases: [(&[u8], &[u8]); 10] = [
            (b"example.com:8000", b"example.com"),
            (b"example.com", b"example.com"),
            (b"[::1]:80", b"::1"),
            (b"[::1]", b"::1"),
            (b"[2001:db8::1]:8080", b"2001:db8::1"),
            (b"[broken", b"[broken"),
            (b"10.0.0.1:443", b"10.0.0.1"),
            // A non-ASCII name (UTF-8 "bücher") loses its port and nothing else, byte for byte.
            (
                b"b\xc3\xbccher.example:443",
                "b\u{fc}cher.example".as_bytes(),
            ),
            (b":80", b""),
            (b"[]:1", b""),
        ];
        for (authority, domain) in cases {
            assert_eq!(host_without_port(authority), domain, "{authority:?}");
        }
        // Nothing left of the authority: no domain at all, rather than an empty one.
        for authority in [&b":80"[..], b"", b"[]:1"] {
            assert_eq!(
                written(values(Decision::Bypass, None, Some(authority))),
                [("rfma_decision", "bypass")],
                "{authority:?}"
            );
        }
    }

    #[test]
    fn the_keys_are_the_four_the_access_log_format_reads_in_write_order() {
        assert_eq!(
            KEYS,
            [
                &b"rfma_decision"[..],
                b"rfma_token",
                b"rfma_reason",
                b"rfma_domain"
            ]
        );
    }
}
