//! The `decide` target's policies and its reference model of the request contract (issue 2,
//! "Behaviour for each request"; issue 15, validity windows), written from the contract, not
//! from the filter's code.

use crate::config_model::{hex, rfc3339, sha256};
use crate::lines::secret;
use arbitrary::{Arbitrary, Unstructured};
use std::collections::HashMap;

pub const HEADERS: &[&str] = &[
    "x-rfma-token",
    "X-Rfma-Token",
    "authorization",
    "x-api-key",
    "x-token",
];
pub const PRINCIPALS: &[&str] = &[
    "spiffe://cluster.local/ns/demo/sa/sleep",
    "spiffe://cluster.local/ns/demo/sa/other",
    "spiffe://cluster.local/ns/demo/sa/sleep/x",
    "spiffe://cluster.local/ns/demo/sa/\u{e9}",
];
pub const PREFIXES: &[&str] = &[
    "/status/",
    "/public",
    "/",
    "/healthz",
    "/a;b/",
    "/St%61tus/",
    "/.well-known/",
];
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "DELETE", "OPTIONS", "M-SEARCH", "X_Y",
];
pub const SINKS: &[&str] = &["filter_state", "none"];
/// Window bounds, valid RFC 3339 in several spellings; the model reads their instants with
/// its own parser ([`rfc3339`]).
pub const STAMPS: &[&str] = &[
    "2026-01-01T00:00:00Z",
    "2026-03-01T02:00:00+02:00",
    "2026-06-30T23:59:60Z",
    "2026-12-31T23:59:59.999999999Z",
    "2026-12-31T18:59:59-05:00",
    "1970-01-01T00:00:00Z",
    "2554-07-21T23:34:33.709551615Z",
    "2100-02-28t23:59:59.5z",
];
/// The clock of a request that names none: 2026-03-01T00:00:00Z.
pub const DEFAULT_NOW: u64 = 1_772_323_200_000_000_000;

fn pick(pool: &[&'static str], index: u8) -> &'static str {
    pool.get(usize::from(index) % pool.len())
        .copied()
        .unwrap_or_default()
}

/// How a token is written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    Value,
    Sha256Lower,
    Sha256Upper,
}

#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub name: String,
    /// The plain-text token (the model knows it even when the config only has its digest).
    pub secret: &'static str,
    pub spelling: Spelling,
    pub principals: Vec<&'static str>,
    /// `not_before` and `not_after`, as written in the configuration.
    pub not_before: Option<&'static str>,
    pub not_after: Option<&'static str>,
}

/// A bound's instant, by the model's own reading of RFC 3339.
fn instant(stamp: &str) -> u64 {
    rfc3339(stamp).unwrap_or_else(|e| panic!("harness: {stamp} is not a bound: {e:?}"))
}

#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub header: &'static str,
    pub tokens: Vec<TokenSpec>,
    pub bypass: Vec<(&'static str, Vec<&'static str>)>,
    pub strip_header: bool,
    pub sink: &'static str,
    pub log_allowed: bool,
    pub log_denied: bool,
}

#[derive(Arbitrary, Debug)]
struct TokenGen {
    secret: u8,
    spelling: u8,
    principals: Vec<u8>,
    not_before: Option<u8>,
    not_after: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct PolicyGen {
    header: u8,
    tokens: Vec<TokenGen>,
    bypass: Vec<(u8, Vec<u8>)>,
    strip_header: bool,
    sink: u8,
    log_allowed: bool,
    log_denied: bool,
}

impl PolicySpec {
    /// The policy every seed with an empty first line uses: docs/filter.md's example, plus a
    /// token given by upper-case digest, and two with validity windows: `tok-3` (secret 4) for
    /// 2026 in UTC, `tok-4` (secret 5) until the leap second 2026-06-30T23:59:60Z (that is,
    /// 2026-07-01T00:00:00Z) and bound to `sleep`.
    pub fn fixed() -> PolicySpec {
        let token = |i: u8, spelling, principals: Vec<&'static str>| TokenSpec {
            name: format!("tok-{i}"),
            secret: secret(i),
            spelling,
            principals,
            not_before: None,
            not_after: None,
        };
        PolicySpec {
            header: "x-rfma-token",
            tokens: vec![
                token(0, Spelling::Value, vec![]),
                token(1, Spelling::Sha256Lower, vec![PRINCIPALS[0]]),
                token(2, Spelling::Sha256Upper, vec![PRINCIPALS[0], PRINCIPALS[3]]),
                TokenSpec {
                    name: "tok-3".into(),
                    secret: secret(4),
                    spelling: Spelling::Value,
                    principals: vec![],
                    not_before: Some(STAMPS[0]),
                    not_after: Some(STAMPS[3]),
                },
                TokenSpec {
                    name: "tok-4".into(),
                    secret: secret(5),
                    spelling: Spelling::Sha256Lower,
                    principals: vec![PRINCIPALS[0]],
                    not_before: None,
                    not_after: Some(STAMPS[2]),
                },
            ],
            bypass: vec![("/status/", vec!["GET", "HEAD"]), ("/public", vec![])],
            strip_header: true,
            sink: "filter_state",
            log_allowed: true,
            log_denied: true,
        }
    }

    /// A policy derived from fuzz bytes; always a valid configuration.
    pub fn from_bytes(bytes: &[u8]) -> PolicySpec {
        if bytes.is_empty() {
            return PolicySpec::fixed();
        }
        let Ok(g) = PolicyGen::arbitrary(&mut Unstructured::new(bytes)) else {
            return PolicySpec::fixed();
        };
        let mut tokens: Vec<TokenSpec> = Vec::new();
        for t in g.tokens.iter().take(8) {
            let s = secret(t.secret);
            if tokens.iter().any(|x| x.secret == s) {
                continue;
            }
            tokens.push(TokenSpec {
                name: format!("tok-{}", tokens.len()),
                secret: s,
                spelling: match t.spelling % 3 {
                    0 => Spelling::Value,
                    1 => Spelling::Sha256Lower,
                    _ => Spelling::Sha256Upper,
                },
                principals: t
                    .principals
                    .iter()
                    .take(4)
                    .map(|p| pick(PRINCIPALS, *p))
                    .collect(),
                not_before: t.not_before.map(|i| pick(STAMPS, i)),
                // A window must end after it begins: a bound that would not is left out.
                not_after: t.not_after.map(|i| pick(STAMPS, i)).filter(|last| {
                    t.not_before
                        .is_none_or(|first| instant(last) > instant(pick(STAMPS, first)))
                }),
            });
        }
        if tokens.is_empty() {
            return PolicySpec::fixed();
        }
        PolicySpec {
            header: pick(HEADERS, g.header),
            tokens,
            bypass: g
                .bypass
                .iter()
                .take(4)
                .map(|(p, ms)| {
                    (
                        pick(PREFIXES, *p),
                        ms.iter().take(4).map(|m| pick(METHODS, *m)).collect(),
                    )
                })
                .collect(),
            strip_header: g.strip_header,
            sink: pick(SINKS, g.sink),
            log_allowed: g.log_allowed,
            log_denied: g.log_denied,
        }
    }

    /// The plugin configuration for this policy.
    pub fn to_json(&self) -> String {
        use serde_json::json;
        let tokens: Vec<serde_json::Value> = self
            .tokens
            .iter()
            .map(|t| {
                let mut entry = serde_json::Map::new();
                entry.insert("name".into(), json!(t.name));
                let digest = hex(&sha256(t.secret.as_bytes()));
                match t.spelling {
                    Spelling::Value => entry.insert("value".into(), json!(t.secret)),
                    Spelling::Sha256Lower => entry.insert("sha256".into(), json!(digest)),
                    Spelling::Sha256Upper => {
                        entry.insert("sha256".into(), json!(digest.to_uppercase()))
                    }
                };
                if !t.principals.is_empty() {
                    entry.insert("principals".into(), json!(t.principals));
                }
                if let Some(first) = t.not_before {
                    entry.insert("not_before".into(), json!(first));
                }
                if let Some(last) = t.not_after {
                    entry.insert("not_after".into(), json!(last));
                }
                serde_json::Value::Object(entry)
            })
            .collect();
        let bypass: Vec<serde_json::Value> = self
            .bypass
            .iter()
            .map(|(prefix, methods)| {
                if methods.is_empty() {
                    json!({ "path_prefix": prefix })
                } else {
                    json!({ "path_prefix": prefix, "methods": methods })
                }
            })
            .collect();
        json!({
            "header": self.header,
            "tokens": tokens,
            "bypass": bypass,
            "strip_header": self.strip_header,
            "log": { "sink": self.sink, "allowed": self.log_allowed, "denied": self.log_denied },
        })
        .to_string()
    }
}

/// What the host says when the gate asks for the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Nanoseconds since 1970 UTC.
    At(u64),
    /// The host call fails.
    Fails,
}

/// What the gate had to look up for a request, and the configured token it matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lookups {
    pub peer: bool,
    pub clock: bool,
    /// The token whose digest matched the presented one, whatever came of it.
    pub matched: Option<usize>,
}

/// What the host says when the gate asks for the peer's URI SAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate (or no URI SAN).
    Absent,
    Uri(Vec<u8>),
    /// The host call fails.
    LookupFails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Bypass,
    /// Allowed with this index into the policy's tokens.
    Allow(usize),
    /// Denied with this reason code.
    Deny(&'static str),
}

/// The first value of a header, by exact (already lower-case) name.
pub fn first<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// Whether a path might mean another path once a server normalises it: a `.` or `..`
/// segment (also before `;` parameters), a backslash, or a percent-encoded `.`, `/`, `\`
/// or `%` (double encoding).
pub fn ambiguous(path: &[u8]) -> bool {
    let lower = path.to_ascii_lowercase();
    let encoded = ["%2e", "%2f", "%5c", "%25"]
        .iter()
        .any(|e| lower.windows(3).any(|w| w == e.as_bytes()));
    let dot_segment = String::from_utf8_lossy(path)
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .any(|name| name == "." || name == "..");
    encoded || dot_segment || path.contains(&b'\\')
}

/// The model: what the gate must decide. `lookups` says what the gate must look up (the peer
/// only for a matched token bound to principals, the clock only for a matched token with a
/// window, the window first) and which token matched.
pub fn decide(
    policy: &PolicySpec,
    headers: &[(Vec<u8>, Vec<u8>)],
    map_damaged: bool,
    peer: &Peer,
    clock: Clock,
    lookups: &mut Lookups,
) -> Expected {
    *lookups = Lookups::default();
    if map_damaged {
        // The gate could not see every header, so it cannot tell a duplicate: fail closed.
        return Expected::Deny("internal_error");
    }
    let method = first(headers, ":method").unwrap_or(b"");
    let target = first(headers, ":path").unwrap_or(b"");
    let path_end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let path = &target[..path_end];
    let bypassed = !ambiguous(path)
        && policy.bypass.iter().any(|(prefix, methods)| {
            path.starts_with(prefix.as_bytes())
                && (methods.is_empty() || methods.iter().any(|m| m.as_bytes() == method))
        });
    if bypassed {
        return Expected::Bypass;
    }

    let wanted = policy.header.to_ascii_lowercase();
    let values: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase() == wanted.as_bytes())
        .map(|(_, v)| v.as_slice())
        .collect();
    let token = match values.as_slice() {
        [] => return Expected::Deny("missing_token"),
        [one] => one.trim_ascii(),
        _ => return Expected::Deny("duplicate_token"),
    };
    if token.is_empty() {
        return Expected::Deny("missing_token");
    }

    let allowlist: HashMap<[u8; 32], usize> = policy
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (sha256(t.secret.as_bytes()), i))
        .collect();
    let Some(&index) = allowlist.get(&sha256(token)) else {
        return Expected::Deny("invalid_token");
    };
    lookups.matched = Some(index);
    let spec = &policy.tokens[index];
    if spec.not_before.is_some() || spec.not_after.is_some() {
        lookups.clock = true;
        let Clock::At(now) = clock else {
            return Expected::Deny("internal_error");
        };
        // Both bounds are instants the token is still valid at.
        if spec.not_after.is_some_and(|last| now > instant(last)) {
            return Expected::Deny("expired_token");
        }
        if spec.not_before.is_some_and(|first| now < instant(first)) {
            return Expected::Deny("token_not_yet_valid");
        }
    }
    let bound = &spec.principals;
    if bound.is_empty() {
        return Expected::Allow(index);
    }
    lookups.peer = true;
    match peer {
        Peer::LookupFails => Expected::Deny("internal_error"),
        Peer::Uri(uri) if bound.iter().any(|p| p.as_bytes() == uri.as_slice()) => {
            Expected::Allow(index)
        }
        _ => Expected::Deny("principal_mismatch"),
    }
}

/// A header map in the Proxy-Wasm ABI's serialized form, written without the filter's help:
/// `u32 count`, `count` × (`u32 name_len`, `u32 value_len`), then each name and value + NUL.
pub fn serialize(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let le = |n: usize| (n as u32).to_le_bytes();
    let mut out = le(headers.len()).to_vec();
    for (n, v) in headers {
        out.extend(le(n.len()));
        out.extend(le(v.len()));
    }
    for (n, v) in headers {
        out.extend(n);
        out.push(0);
        out.extend(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_model_follows_the_contract_on_the_fixed_policy() {
        let p = PolicySpec::fixed();
        let mut asked = Lookups::default();
        let mut run = |headers: &[(&str, &str)], peer: Peer| {
            decide(
                &p,
                &h(headers),
                false,
                &peer,
                Clock::At(DEFAULT_NOW),
                &mut asked,
            )
        };
        let sleep = Peer::Uri(PRINCIPALS[0].as_bytes().to_vec());
        assert_eq!(
            run(
                &[(":method", "GET"), (":path", "/status/200")],
                Peer::Absent
            ),
            Expected::Bypass
        );
        assert_eq!(
            run(
                &[(":method", "POST"), (":path", "/status/200")],
                Peer::Absent
            ),
            Expected::Deny("missing_token")
        );
        assert_eq!(
            run(
                &[(":method", "GET"), (":path", "/status/../x")],
                Peer::Absent
            ),
            Expected::Deny("missing_token")
        );
        assert_eq!(
            run(
                &[(":method", "GET"), (":path", "/status/%2E%2e")],
                Peer::Absent
            ),
            Expected::Deny("missing_token")
        );
        assert_eq!(
            run(
                &[(":path", "/get"), ("X-RFMA-TOKEN", secret(0))],
                Peer::Absent
            ),
            Expected::Allow(0)
        );
        assert_eq!(
            run(&[(":path", "/get"), ("x-rfma-token", " \t")], Peer::Absent),
            Expected::Deny("missing_token")
        );
        assert_eq!(
            run(
                &[("x-rfma-token", secret(0)), ("x-rfma-token", secret(0))],
                Peer::Absent
            ),
            Expected::Deny("duplicate_token")
        );
        assert_eq!(
            run(&[("x-rfma-token", "nope")], Peer::Absent),
            Expected::Deny("invalid_token")
        );
        assert_eq!(
            run(&[("x-rfma-token", secret(1))], sleep.clone()),
            Expected::Allow(1)
        );
        assert_eq!(
            run(&[("x-rfma-token", secret(1))], Peer::Absent),
            Expected::Deny("principal_mismatch")
        );
        assert_eq!(
            run(&[("x-rfma-token", secret(1))], Peer::LookupFails),
            Expected::Deny("internal_error")
        );
        assert_eq!(
            run(&[("x-rfma-token", secret(3))], sleep),
            Expected::Deny("invalid_token")
        );
        assert_eq!(asked, Lookups::default());
        assert_eq!(
            decide(
                &p,
                &[],
                true,
                &Peer::Absent,
                Clock::At(DEFAULT_NOW),
                &mut asked
            ),
            Expected::Deny("internal_error")
        );
    }

    #[test]
    fn the_model_holds_windows_at_both_ends_before_the_principals() {
        let p = PolicySpec::fixed();
        let mut asked = Lookups::default();
        let run = |token: u8, peer: Peer, clock: Clock, asked: &mut Lookups| {
            decide(
                &p,
                &h(&[(":path", "/get"), ("x-rfma-token", secret(token))]),
                false,
                &peer,
                clock,
                asked,
            )
        };
        let start = instant("2026-01-01T00:00:00Z");
        let end = instant("2027-01-01T00:00:00Z") - 1;
        for (now, want) in [
            (start - 1, Expected::Deny("token_not_yet_valid")),
            (start, Expected::Allow(3)),
            (end, Expected::Allow(3)),
            (end + 1, Expected::Deny("expired_token")),
        ] {
            assert_eq!(run(4, Peer::Absent, Clock::At(now), &mut asked), want);
            assert_eq!(
                asked,
                Lookups {
                    peer: false,
                    clock: true,
                    matched: Some(3)
                }
            );
        }
        assert_eq!(
            run(4, Peer::Absent, Clock::Fails, &mut asked),
            Expected::Deny("internal_error")
        );
        // tok-4: until the leap second, which is 2026-07-01T00:00:00Z; bound to sleep, but an
        // expired token is refused before the peer is asked.
        let leap = instant("2026-07-01T00:00:00Z");
        let other = Peer::Uri(PRINCIPALS[1].as_bytes().to_vec());
        assert_eq!(
            run(5, other.clone(), Clock::At(leap + 1), &mut asked),
            Expected::Deny("expired_token")
        );
        assert!(!asked.peer);
        assert_eq!(
            run(5, other, Clock::At(leap), &mut asked),
            Expected::Deny("principal_mismatch")
        );
        assert!(asked.peer && asked.clock);
        let sleep = Peer::Uri(PRINCIPALS[0].as_bytes().to_vec());
        assert_eq!(
            run(5, sleep, Clock::At(leap), &mut asked),
            Expected::Allow(4)
        );
        // No window, no clock.
        assert_eq!(
            run(0, Peer::Absent, Clock::Fails, &mut asked),
            Expected::Allow(0)
        );
        assert!(!asked.clock);
    }

    #[test]
    fn generated_policies_are_valid_configurations() {
        for seed in 0u32..500 {
            let bytes: Vec<u8> = (0..64)
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 97) >> 7) as u8)
                .collect();
            let spec = PolicySpec::from_bytes(&bytes);
            let json = spec.to_json();
            let policy = rfma_filter::config::parse(json.as_bytes())
                .unwrap_or_else(|e| panic!("{e}: {json}"));
            assert_eq!(policy.tokens.len(), spec.tokens.len());
        }
    }
}
