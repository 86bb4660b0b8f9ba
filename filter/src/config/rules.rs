//! What each value must be beyond its JSON kind, checked once the shape is read: header and
//! token names, digests, validity windows, realm, bypass rules, sinks. Each error names the
//! field as the configuration wrote it.

use super::shape;
use super::{
    BypassRule, ConfigError, LogPolicy, MAX_TOKENS, RESERVED_HEADERS, Sink, TokenRule, error,
};
use crate::digest::{self, Digest};
use crate::timestamp::{self, TimestampError};

const MAX_NAME_LEN: usize = 63;
const MAX_HEADER_NAME_LEN: usize = 128;
const MAX_METHOD_LEN: usize = 32;
const MAX_REALM_LEN: usize = 64;

/// RFC 9110 `tchar`: the characters allowed in a header name or a method.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

pub fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(is_tchar) {
        return Err(error(
            path,
            format!(
                "expected an HTTP header name (1-{MAX_HEADER_NAME_LEN} token characters, no pseudo-header)"
            ),
        ));
    }
    let name = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(error(
            path,
            format!(
                "{name} is read for the access record and the deny reply; choose another header"
            ),
        ));
    }
    Ok(name)
}

/// The realm goes into the challenge as `realm="<realm>"`: printable ASCII only, and neither of
/// the two characters a quoted-string would need to escape.
pub fn realm(path: &str, realm: String) -> Result<String, ConfigError> {
    let printable = |b: u8| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\';
    if realm.is_empty() || realm.len() > MAX_REALM_LEN || !realm.bytes().all(printable) {
        return Err(error(
            path,
            format!("expected 1-{MAX_REALM_LEN} printable ASCII characters without '\"' or '\\'"),
        ));
    }
    Ok(realm)
}

/// The allowlist: digests (`digests[i]` for `tokens[i]`), the rules, and how many tokens were
/// given in plain text.
pub type Tokens = (Vec<Digest>, Vec<TokenRule>, usize);

pub fn token_list(path: &str, entries: Vec<shape::Token>) -> Result<Tokens, ConfigError> {
    if entries.is_empty() || entries.len() > MAX_TOKENS {
        return Err(error(
            path,
            format!("expected 1 to {MAX_TOKENS} entries, got {}", entries.len()),
        ));
    }
    let mut digests: Vec<Digest> = Vec::with_capacity(entries.len());
    let mut tokens: Vec<TokenRule> = Vec::with_capacity(entries.len());
    let mut plain_text = 0usize;
    for (index, entry) in entries.into_iter().enumerate() {
        let entry_path = format!("{path}[{index}]");
        let field = |name: &str| format!("{entry_path}.{name}");

        let name = token_name(&field("name"), entry.name)?;
        if let Some(first) = tokens.iter().position(|t| t.name == name) {
            return Err(error(
                field("name"),
                format!("duplicate name \"{name}\" (also {path}[{first}])"),
            ));
        }

        let (digest_field, digest) = match (entry.sha256, entry.value) {
            (Some(_), Some(_)) => {
                return Err(error(
                    &entry_path,
                    "set exactly one of \"sha256\" or \"value\", not both",
                ));
            }
            (None, None) => {
                return Err(error(
                    &entry_path,
                    "set exactly one of \"sha256\" or \"value\"",
                ));
            }
            (Some(hex), None) => {
                let at = field("sha256");
                let digest =
                    digest::parse_hex(&hex).ok_or_else(|| error(&at, "expected 64 hex digits"))?;
                (at, digest)
            }
            (None, Some(token)) => {
                let at = field("value");
                if token.is_empty() {
                    return Err(error(&at, "must not be empty"));
                }
                if token.trim() != token {
                    // Presented tokens are trimmed before hashing, so this one could never match.
                    return Err(error(&at, "must not start or end with whitespace"));
                }
                plain_text = plain_text.saturating_add(1);
                (at, digest::sha256(token.as_bytes()))
            }
        };
        if let Some(first) = digests.iter().position(|d| *d == digest) {
            return Err(error(
                digest_field,
                format!("duplicate token digest (same as {path}[{first}])"),
            ));
        }

        let principals = match entry.principals {
            None => Vec::new(),
            Some(ids) => principal_list(&field("principals"), ids)?,
        };
        let not_before = entry
            .not_before
            .map(|text| instant(&field("not_before"), &text))
            .transpose()?;
        let not_after = entry
            .not_after
            .map(|text| instant(&field("not_after"), &text))
            .transpose()?;
        if let (Some(start), Some(end)) = (not_before, not_after)
            && end <= start
        {
            return Err(error(field("not_after"), "must be later than not_before"));
        }
        digests.push(digest);
        tokens.push(TokenRule {
            name,
            principals,
            not_before,
            not_after,
        });
    }
    Ok((digests, tokens, plain_text))
}

/// A validity-window bound: an RFC 3339 timestamp, as nanoseconds since 1970 (UTC).
fn instant(path: &str, text: &str) -> Result<u64, ConfigError> {
    timestamp::parse_rfc3339(text).map_err(|e| match e {
        TimestampError::Syntax => error(
            path,
            "expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z",
        ),
        TimestampError::OutOfRange => error(
            path,
            "expected a time the proxy's clock can tell, from 1970-01-01T00:00:00Z to 2554-07-21T23:34:33Z",
        ),
    })
}

fn token_name(path: &str, name: String) -> Result<String, ConfigError> {
    let valid_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(valid_char) {
        return Err(error(
            path,
            format!("expected 1-{MAX_NAME_LEN} characters of [a-z0-9._-]"),
        ));
    }
    Ok(name)
}

fn principal_list(path: &str, ids: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if ids.is_empty() {
        return Err(error(
            path,
            "expected at least one SPIFFE ID (leave the field out to accept any peer)",
        ));
    }
    for (index, id) in ids.iter().enumerate() {
        let rest = id.strip_prefix("spiffe://").unwrap_or_default();
        if rest.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(error(
                format!("{path}[{index}]"),
                "expected a SPIFFE ID starting with \"spiffe://\"",
            ));
        }
    }
    Ok(ids)
}

pub fn bypass_list(path: &str, rules: Vec<shape::Bypass>) -> Result<Vec<BypassRule>, ConfigError> {
    rules
        .into_iter()
        .enumerate()
        .map(|(index, rule)| {
            let prefix_field = format!("{path}[{index}].path_prefix");
            let path_prefix = rule.path_prefix;
            if !path_prefix.starts_with('/') {
                return Err(error(prefix_field, "must start with \"/\""));
            }
            if path_prefix
                .bytes()
                .any(|b| b == b'?' || b == b'#' || b.is_ascii_control() || b == b' ')
            {
                return Err(error(
                    prefix_field,
                    "must be a plain path (no query, fragment, space or control character)",
                ));
            }
            let methods = match rule.methods {
                None => Vec::new(),
                Some(methods) => method_list(&format!("{path}[{index}].methods"), methods)?,
            };
            Ok(BypassRule {
                path_prefix,
                methods,
            })
        })
        .collect()
}

fn method_list(path: &str, methods: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if methods.is_empty() {
        return Err(error(
            path,
            "expected at least one method (leave the field out to match every method)",
        ));
    }
    // Methods are case-sensitive; an upper-case token catches "get", which would never match.
    let valid = |b: u8| b.is_ascii_uppercase() || b == b'-' || b == b'_';
    for (index, method) in methods.iter().enumerate() {
        if method.is_empty() || method.len() > MAX_METHOD_LEN || !method.bytes().all(valid) {
            return Err(error(
                format!("{path}[{index}]"),
                "expected an upper-case HTTP method such as \"GET\"",
            ));
        }
    }
    Ok(methods)
}

pub fn log_policy(path: &str, log: shape::Log) -> Result<LogPolicy, ConfigError> {
    let sink = match log.sink.as_deref() {
        None | Some("filter_state") => Sink::FilterState,
        Some("none") => Sink::None,
        // Removed on purpose: the record is Envoy's (filter/access-log-format.json);
        // a line of the filter's own would cost the properties the split saved.
        Some("proxy_log" | "both") => {
            return Err(error(
                format!("{path}.sink"),
                "the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)",
            ));
        }
        Some(_) => {
            return Err(error(
                format!("{path}.sink"),
                "expected one of: filter_state, none",
            ));
        }
    };
    Ok(LogPolicy {
        sink,
        allowed: log.allowed.unwrap_or(true),
        denied: log.denied.unwrap_or(true),
    })
}
