//! The reference model of what the filter hands to Envoy's access log, written from the
//! contract (docs/filter.md, `filter/access-log-format.json`), not from `handover.rs`: a few
//! filter-state values, which the format prints as `%FILTER_STATE(wasm.<key>:PLAIN)%`.
//!
//! - `rfma_decision`: always; `allow`, `bypass` or `deny`.
//! - `rfma_token`: the name of the token the request matched, when it was allowed, or denied
//!   for being used outside its validity window (`expired_token`, `token_not_yet_valid`: the
//!   record says which client must be re-keyed); no other deny names one. `rfma_reason`: the
//!   deny reason code. Neither for a bypass.
//! - `rfma_domain`: ECS `url.domain`, the request's authority without its port; left out when
//!   there is no authority or nothing is left of it.

use crate::decide_model::Expected;

/// The filter-state keys, as the access-log format names them after `wasm.`.
pub const KEYS: [&str; 4] = ["rfma_decision", "rfma_token", "rfma_reason", "rfma_domain"];

/// Every deny reason code of the contract.
pub const REASONS: [&str; 7] = [
    "missing_token",
    "duplicate_token",
    "invalid_token",
    "principal_mismatch",
    "internal_error",
    "expired_token",
    "token_not_yet_valid",
];

/// The deny reasons whose record names the matched token.
pub const NAMING_REASONS: [&str; 2] = ["expired_token", "token_not_yet_valid"];

/// ECS `url.domain` of an authority: `host:port` → `host` (everything before the last `:`),
/// `[v6]:port` and `[v6]` → `v6` (between the brackets), a `[` never closed is kept as
/// written. `None` when nothing is left (an empty authority, `:80`, `[]`).
pub fn domain(authority: &[u8]) -> Option<&[u8]> {
    let host: &[u8] = match authority.split_first() {
        Some((b'[', rest)) if rest.contains(&b']') => {
            rest.split(|&b| b == b']').next().unwrap_or_default()
        }
        Some((b'[', _)) => authority,
        // `rsplitn` yields the part after the last colon first: the last item is the host.
        _ => authority
            .rsplitn(2, |&b| b == b':')
            .last()
            .unwrap_or_default(),
    };
    (!host.is_empty()).then_some(host)
}

/// What the filter must hand over for a request decided `decision`, in the order it is
/// written: the decision, then the token name (`token_name`, the token the request matched, if
/// the decision names it), then the reason, then the domain.
pub fn values<'a>(
    decision: Expected,
    token_name: Option<&'a str>,
    authority: Option<&'a [u8]>,
) -> Vec<(&'static str, &'a [u8])> {
    let mut out = Vec::new();
    match decision {
        Expected::Bypass => out.push(("rfma_decision", &b"bypass"[..])),
        Expected::Allow(_) => {
            out.push(("rfma_decision", b"allow"));
            if let Some(name) = token_name {
                out.push(("rfma_token", name.as_bytes()));
            }
        }
        Expected::Deny(code) => {
            out.push(("rfma_decision", b"deny"));
            if let Some(name) = token_name.filter(|_| NAMING_REASONS.contains(&code)) {
                out.push(("rfma_token", name.as_bytes()));
            }
            out.push(("rfma_reason", code.as_bytes()));
        }
    }
    if let Some(domain) = authority.and_then(domain) {
        out.push(("rfma_domain", domain));
    }
    out
}

/// The filter's values (`rfma_filter::handover::values`) against the model's, in order.
pub fn check(
    got: [Option<(&'static [u8], &[u8])>; 4],
    want: &[(&'static str, &[u8])],
) -> Result<(), String> {
    let got: Vec<(&[u8], &[u8])> = got.into_iter().flatten().collect();
    let same = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((gk, gv), (wk, wv))| *gk == wk.as_bytes() && gv == wv);
    if !same {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let show = |pairs: Vec<(&[u8], &[u8])>| -> Vec<(String, String)> {
            pairs.into_iter().map(|(k, v)| (text(k), text(v))).collect()
        };
        return Err(format!(
            "handed over {:?}, the model says {:?}",
            show(got),
            show(want.iter().map(|(k, v)| (k.as_bytes(), *v)).collect()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_follows_the_contract() {
        let cases: [(&[u8], Option<&[u8]>); 12] = [
            (b"httpbin.demo:8000", Some(b"httpbin.demo")),
            (b"httpbin", Some(b"httpbin")),
            (b"[2001:db8::1]:8080", Some(b"2001:db8::1")),
            (b"[::1]", Some(b"::1")),
            (b"[::1]junk", Some(b"::1")),
            (b"[::1", Some(b"[::1")),
            (b"a:b:80", Some(b"a:b")),
            (b"h:", Some(b"h")),
            (b":80", None),
            (b"[]:80", None),
            (b"", None),
            (b"\xff:1", Some(b"\xff")),
        ];
        for (authority, want) in cases {
            assert_eq!(domain(authority), want, "{authority:?}");
        }
    }

    #[test]
    fn the_model_and_the_filter_agree_on_the_keys_and_codes() {
        let keys: Vec<&str> = rfma_filter::handover::KEYS
            .iter()
            .map(|k| std::str::from_utf8(k).unwrap())
            .collect();
        assert_eq!(keys, KEYS);
        let codes: Vec<&str> = rfma_filter::gate::Reason::ALL
            .iter()
            .map(|r| r.code())
            .collect();
        assert_eq!(codes, REASONS);
    }

    #[test]
    fn the_access_log_format_prints_every_key() {
        let format = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../filter/access-log-format.json"),
        )
        .unwrap();
        for key in KEYS {
            assert!(
                format.contains(&format!("%FILTER_STATE(wasm.{key}:PLAIN)%")),
                "{key} is not printed by filter/access-log-format.json"
            );
        }
    }

    #[test]
    fn a_wrong_handover_is_caught() {
        let want = values(Expected::Allow(0), Some("sleep"), Some(b"h:1"));
        let token: &[u8] = b"sleep";
        let ok = [
            Some((&b"rfma_decision"[..], &b"allow"[..])),
            Some((&b"rfma_token"[..], token)),
            None,
            Some((&b"rfma_domain"[..], &b"h"[..])),
        ];
        check(ok, &want).unwrap();
        let port_kept = [ok[0], ok[1], None, Some((&b"rfma_domain"[..], &b"h:1"[..]))];
        assert!(check(port_kept, &want).is_err());
        let no_name = [ok[0], None, None, ok[3]];
        assert!(check(no_name, &want).is_err());
        let swapped = [ok[0], ok[3], None, ok[1]];
        assert!(check(swapped, &want).is_err());
        // An expired token's deny names it; a principal mismatch does not.
        let expired = values(Expected::Deny("expired_token"), Some("sleep"), None);
        let named = [
            Some((&b"rfma_decision"[..], &b"deny"[..])),
            Some((&b"rfma_token"[..], token)),
            Some((&b"rfma_reason"[..], &b"expired_token"[..])),
            None,
        ];
        check(named, &expired).unwrap();
        assert!(check([named[0], None, named[2], None], &expired).is_err());
        let mismatch = values(Expected::Deny("principal_mismatch"), Some("sleep"), None);
        let reason = Some((&b"rfma_reason"[..], &b"principal_mismatch"[..]));
        check([named[0], None, reason, None], &mismatch).unwrap();
        assert!(check([named[0], named[1], reason, None], &mismatch).is_err());
    }
}
