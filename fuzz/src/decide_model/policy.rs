//! A policy: the fixed one every seed with an empty first line uses, one derived from fuzz
//! bytes (always a valid configuration), and the plugin configuration that states it.

use super::pools::{HEADERS, METHODS, PREFIXES, PRINCIPALS, SINKS, STAMPS, pick};
use crate::config_model::{hex, rfc3339, sha256};
use crate::lines::secret;
use arbitrary::{Arbitrary, Unstructured};

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
pub(super) fn instant(stamp: &str) -> u64 {
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
