//! Turns the plugin configuration into an immutable, pre-computed [`Policy`].
//!
//! Everything a request needs is computed here once (digests, lower-cased header name,
//! parsed rules), so the per-request path does no parsing. Every error names the
//! offending field with a path such as `tokens[1].sha256`.

use crate::digest::{self, Digest};
use crate::json::{self, Value};
use crate::timestamp::{self, TimestampError};
use std::fmt;

pub const DEFAULT_HEADER: &str = "x-rfma-token";
/// The realm of the `WWW-Authenticate` challenge every 401 carries.
pub const DEFAULT_REALM: &str = "istio-demo";
pub const MAX_TOKENS: usize = 1024;
/// Headers the access record prints (`filter/access-log-format.json`), the deny reply copies, or
/// the proxy's tracer reads. As the token header, one of them would carry the token into the
/// record or the reply.
pub const RESERVED_HEADERS: [&str; 4] =
    ["x-request-id", "user-agent", "traceparent", "x-b3-traceid"];
const MAX_NAME_LEN: usize = 63;
const MAX_HEADER_NAME_LEN: usize = 128;
const MAX_METHOD_LEN: usize = 32;
const MAX_REALM_LEN: usize = 64;

/// Whether the filter hands its decision to the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Filter state (`wasm.rfma_decision` and the rest, see [`crate::handover`]), which the
    /// access-log format prints.
    FilterState,
    /// Nothing: the record has Envoy's fields only.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPolicy {
    pub sink: Sink,
    /// Hand over the decision of allowed (and bypassed) requests.
    pub allowed: bool,
    /// Hand over the decision of denied requests.
    pub denied: bool,
}

/// One allowlist entry, without its digest (digests live in [`Policy::digests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRule {
    pub name: String,
    /// SPIFFE IDs the token is bound to; empty means any peer.
    pub principals: Vec<String>,
    /// The first instant the token is valid, in nanoseconds since 1970 (UTC), inclusive.
    pub not_before: Option<u64>,
    /// The last instant the token is valid, in nanoseconds since 1970 (UTC), inclusive.
    pub not_after: Option<u64>,
}

impl TokenRule {
    /// Whether using the token needs the proxy's clock.
    pub fn has_window(&self) -> bool {
        self.not_before.is_some() || self.not_after.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BypassRule {
    pub path_prefix: String,
    /// Methods the rule applies to; empty means every method.
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The token header name, lower-cased (Envoy lower-cases header names).
    pub header: String,
    /// The challenge's realm: printable ASCII without `"` or `\`, so it goes into a
    /// quoted-string as is.
    pub realm: String,
    /// `digests[i]` is the digest of `tokens[i]`; kept contiguous for the constant-time scan.
    pub digests: Vec<Digest>,
    pub tokens: Vec<TokenRule>,
    pub bypass: Vec<BypassRule>,
    pub strip_header: bool,
    pub log: LogPolicy,
    /// How many tokens were given as plain-text `value`s (worth a warning).
    pub plain_text_tokens: usize,
}

impl Policy {
    /// Whether the decision on a request of this class goes into its access record.
    pub fn records(&self, allowed: bool) -> bool {
        self.log.sink != Sink::None
            && if allowed {
                self.log.allowed
            } else {
                self.log.denied
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the offending field, e.g. `tokens[1].sha256`; `configuration` for the whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses and checks a plugin configuration.
pub fn parse(bytes: &[u8]) -> Result<Policy, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(error(
            "configuration",
            "empty; expected a JSON object with a \"tokens\" list",
        ));
    }
    let value =
        json::parse(bytes).map_err(|e| error("configuration", format!("not valid JSON: {e}")))?;
    let root = Object::new("", &value)?;
    root.only(&["header", "realm", "tokens", "bypass", "strip_header", "log"])?;

    let header = match root.get("header") {
        None => DEFAULT_HEADER.to_owned(),
        Some(v) => header_name(&root.path("header"), v)?,
    };
    let realm = match root.get("realm") {
        None => DEFAULT_REALM.to_owned(),
        Some(v) => realm(&root.path("realm"), v)?,
    };
    let (digests, tokens, plain_text_tokens) = match root.get("tokens") {
        None => return Err(error("tokens", "required")),
        Some(v) => token_list(&root.path("tokens"), v)?,
    };
    let bypass = match root.get("bypass") {
        None => Vec::new(),
        Some(v) => bypass_list(&root.path("bypass"), v)?,
    };
    let strip_header = match root.get("strip_header") {
        None => true,
        Some(v) => boolean(&root.path("strip_header"), v)?,
    };
    let log = match root.get("log") {
        None => LogPolicy {
            sink: Sink::FilterState,
            allowed: true,
            denied: true,
        },
        Some(v) => log_policy(&root.path("log"), v)?,
    };
    Ok(Policy {
        header,
        realm,
        digests,
        tokens,
        bypass,
        strip_header,
        log,
        plain_text_tokens,
    })
}

/// An object being read, with its path for error messages.
struct Object<'a> {
    path: String,
    members: &'a [(String, Value)],
}

impl<'a> Object<'a> {
    fn new(path: &str, value: &'a Value) -> Result<Self, ConfigError> {
        match value {
            Value::Object(members) => Ok(Object {
                path: path.to_owned(),
                members,
            }),
            other => Err(error(
                if path.is_empty() {
                    "configuration"
                } else {
                    path
                },
                format!("expected an object, got {}", other.type_name()),
            )),
        }
    }

    fn path(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.members
            .iter()
            .find(|(key, _)| key == field)
            .map(|(_, value)| value)
    }

    /// Rejects any member not in `known`: a misspelt field must not be silently ignored.
    fn only(&self, known: &[&str]) -> Result<(), ConfigError> {
        match self
            .members
            .iter()
            .find(|(key, _)| !known.contains(&key.as_str()))
        {
            Some((key, _)) => Err(error(
                self.path(&printable(key)),
                format!("unknown field (expected one of: {})", known.join(", ")),
            )),
            None => Ok(()),
        }
    }
}

/// A key as an error path shows it: control characters (and the Unicode line and paragraph
/// separators) escaped, so the error stays one log line whatever the configuration holds,
/// and the empty key as `""`, so the error still names something.
fn printable(key: &str) -> String {
    if key.is_empty() {
        return "\"\"".to_owned();
    }
    key.chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn string<'a>(path: &str, value: &'a Value) -> Result<&'a str, ConfigError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(error(
            path,
            format!("expected a string, got {}", other.type_name()),
        )),
    }
}

fn boolean(path: &str, value: &Value) -> Result<bool, ConfigError> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => Err(error(
            path,
            format!("expected true or false, got {}", other.type_name()),
        )),
    }
}

fn array<'a>(path: &str, value: &'a Value) -> Result<&'a [Value], ConfigError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(error(
            path,
            format!("expected an array, got {}", other.type_name()),
        )),
    }
}

/// RFC 9110 `tchar`: the characters allowed in a header name or a method.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn header_name(path: &str, value: &Value) -> Result<String, ConfigError> {
    let name = string(path, value)?;
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
fn realm(path: &str, value: &Value) -> Result<String, ConfigError> {
    let realm = string(path, value)?;
    let printable = |b: u8| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\';
    if realm.is_empty() || realm.len() > MAX_REALM_LEN || !realm.bytes().all(printable) {
        return Err(error(
            path,
            format!("expected 1-{MAX_REALM_LEN} printable ASCII characters without '\"' or '\\'"),
        ));
    }
    Ok(realm.to_owned())
}

fn token_list(
    path: &str,
    value: &Value,
) -> Result<(Vec<Digest>, Vec<TokenRule>, usize), ConfigError> {
    let items = array(path, value)?;
    if items.is_empty() || items.len() > MAX_TOKENS {
        return Err(error(
            path,
            format!("expected 1 to {MAX_TOKENS} entries, got {}", items.len()),
        ));
    }
    let mut digests: Vec<Digest> = Vec::with_capacity(items.len());
    let mut tokens: Vec<TokenRule> = Vec::with_capacity(items.len());
    let mut plain_text = 0usize;
    for (index, item) in items.iter().enumerate() {
        let entry = Object::new(&format!("{path}[{index}]"), item)?;
        entry.only(&[
            "name",
            "sha256",
            "value",
            "principals",
            "not_before",
            "not_after",
        ])?;

        let name = match entry.get("name") {
            None => return Err(error(entry.path("name"), "required")),
            Some(v) => token_name(&entry.path("name"), v)?,
        };
        if let Some(first) = tokens.iter().position(|t| t.name == name) {
            return Err(error(
                entry.path("name"),
                format!("duplicate name \"{name}\" (also {path}[{first}])"),
            ));
        }

        let (field, digest) = match (entry.get("sha256"), entry.get("value")) {
            (Some(_), Some(_)) => {
                return Err(error(
                    &entry.path,
                    "set exactly one of \"sha256\" or \"value\", not both",
                ));
            }
            (None, None) => {
                return Err(error(
                    &entry.path,
                    "set exactly one of \"sha256\" or \"value\"",
                ));
            }
            (Some(v), None) => {
                let field = entry.path("sha256");
                let hex = string(&field, v)?;
                let digest = digest::parse_hex(hex)
                    .ok_or_else(|| error(&field, "expected 64 hex digits"))?;
                (field, digest)
            }
            (None, Some(v)) => {
                let field = entry.path("value");
                let token = string(&field, v)?;
                if token.is_empty() {
                    return Err(error(&field, "must not be empty"));
                }
                if token.trim() != token {
                    // Presented tokens are trimmed before hashing, so this one could never match.
                    return Err(error(&field, "must not start or end with whitespace"));
                }
                plain_text = plain_text.saturating_add(1);
                (field, digest::sha256(token.as_bytes()))
            }
        };
        if let Some(first) = digests.iter().position(|d| *d == digest) {
            return Err(error(
                field,
                format!("duplicate token digest (same as {path}[{first}])"),
            ));
        }

        let principals = match entry.get("principals") {
            None => Vec::new(),
            Some(v) => principal_list(&entry.path("principals"), v)?,
        };
        let instant = |field: &str| match entry.get(field) {
            None => Ok(None),
            Some(v) => instant(&entry.path(field), v).map(Some),
        };
        let not_before = instant("not_before")?;
        let not_after = instant("not_after")?;
        if let (Some(start), Some(end)) = (not_before, not_after)
            && end <= start
        {
            return Err(error(
                entry.path("not_after"),
                "must be later than not_before",
            ));
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
fn instant(path: &str, value: &Value) -> Result<u64, ConfigError> {
    let text = string(path, value)?;
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

fn token_name(path: &str, value: &Value) -> Result<String, ConfigError> {
    let name = string(path, value)?;
    let valid_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(valid_char) {
        return Err(error(
            path,
            format!("expected 1-{MAX_NAME_LEN} characters of [a-z0-9._-]"),
        ));
    }
    Ok(name.to_owned())
}

fn principal_list(path: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let items = array(path, value)?;
    if items.is_empty() {
        return Err(error(
            path,
            "expected at least one SPIFFE ID (leave the field out to accept any peer)",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = format!("{path}[{index}]");
            let id = string(&field, item)?;
            let rest = id.strip_prefix("spiffe://").unwrap_or_default();
            if rest.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(error(
                    field,
                    "expected a SPIFFE ID starting with \"spiffe://\"",
                ));
            }
            Ok(id.to_owned())
        })
        .collect()
}

fn bypass_list(path: &str, value: &Value) -> Result<Vec<BypassRule>, ConfigError> {
    let items = array(path, value)?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let rule = Object::new(&format!("{path}[{index}]"), item)?;
            rule.only(&["path_prefix", "methods"])?;
            let prefix_field = rule.path("path_prefix");
            let path_prefix = match rule.get("path_prefix") {
                None => return Err(error(prefix_field, "required")),
                Some(v) => string(&prefix_field, v)?,
            };
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
            let methods = match rule.get("methods") {
                None => Vec::new(),
                Some(v) => method_list(&rule.path("methods"), v)?,
            };
            Ok(BypassRule {
                path_prefix: path_prefix.to_owned(),
                methods,
            })
        })
        .collect()
}

fn method_list(path: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let items = array(path, value)?;
    if items.is_empty() {
        return Err(error(
            path,
            "expected at least one method (leave the field out to match every method)",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = format!("{path}[{index}]");
            let method = string(&field, item)?;
            // Methods are case-sensitive; an upper-case token catches "get", which would never match.
            let valid = |b: u8| b.is_ascii_uppercase() || b == b'-' || b == b'_';
            if method.is_empty() || method.len() > MAX_METHOD_LEN || !method.bytes().all(valid) {
                return Err(error(
                    field,
                    "expected an upper-case HTTP method such as \"GET\"",
                ));
            }
            Ok(method.to_owned())
        })
        .collect()
}

fn log_policy(path: &str, value: &Value) -> Result<LogPolicy, ConfigError> {
    let log = Object::new(path, value)?;
    log.only(&["sink", "allowed", "denied"])?;
    let sink = match log.get("sink") {
        None => Sink::FilterState,
        Some(v) => {
            let field = log.path("sink");
            match string(&field, v)? {
                "filter_state" => Sink::FilterState,
                "none" => Sink::None,
                // Removed on purpose: the record is Envoy's (filter/access-log-format.json);
                // a line of the filter's own would cost the properties the split saved.
                "proxy_log" | "both" => {
                    return Err(error(
                        field,
                        "the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)",
                    ));
                }
                _ => {
                    return Err(error(field, "expected one of: filter_state, none"));
                }
            }
        }
    };
    let flag = |field: &str| match log.get(field) {
        None => Ok(true),
        Some(v) => boolean(&log.path(field), v),
    };
    Ok(LogPolicy {
        sink,
        allowed: flag("allowed")?,
        denied: flag("denied")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLEEP_DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // sha256("test")

    fn err(config: &str) -> String {
        parse(config.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn full_configuration_is_precomputed() {
        let p = parse(
            format!(
                r#"{{
                "header": "X-RFMA-Token",
                "tokens": [
                    {{"name": "sleep", "sha256": "{SLEEP_DIGEST}", "principals": ["spiffe://cluster.local/ns/demo/sa/sleep"]}},
                    {{"name": "legacy", "value": "test1"}}
                ],
                "bypass": [{{"path_prefix": "/status/", "methods": ["GET", "HEAD"]}}, {{"path_prefix": "/healthz"}}],
                "strip_header": false,
                "log": {{"sink": "filter_state", "allowed": false, "denied": true}}
            }}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(p.header, "x-rfma-token");
        assert_eq!(
            p.digests,
            vec![digest::sha256(b"test"), digest::sha256(b"test1")]
        );
        assert_eq!(p.tokens[0].name, "sleep");
        assert_eq!(
            p.tokens[0].principals,
            vec!["spiffe://cluster.local/ns/demo/sa/sleep".to_owned()]
        );
        assert!(p.tokens[1].principals.is_empty());
        assert_eq!(
            p.bypass[0],
            BypassRule {
                path_prefix: "/status/".into(),
                methods: vec!["GET".into(), "HEAD".into()]
            }
        );
        assert!(p.bypass[1].methods.is_empty());
        assert!(!p.strip_header);
        assert_eq!(
            p.log,
            LogPolicy {
                sink: Sink::FilterState,
                allowed: false,
                denied: true
            }
        );
        assert_eq!(p.plain_text_tokens, 1);
        assert!(!p.records(true));
        assert!(p.records(false));
    }

    #[test]
    fn defaults_apply_when_fields_are_left_out() {
        let p = parse(br#"{"tokens":[{"name":"a","value":"x"}]}"#).unwrap();
        assert_eq!(p.header, DEFAULT_HEADER);
        assert_eq!(p.realm, "istio-demo");
        assert!(p.strip_header);
        assert!(p.bypass.is_empty());
        assert_eq!(
            p.log,
            LogPolicy {
                sink: Sink::FilterState,
                allowed: true,
                denied: true
            }
        );
        let none =
            parse(br#"{"tokens":[{"name":"a","value":"x"}],"log":{"sink":"none"}}"#).unwrap();
        assert!(!none.records(true) && !none.records(false));
    }

    /// A configuration whose second token has the given window fields (JSON members).
    fn window(fields: &str) -> String {
        format!(r#"{{"tokens":[{{"name":"a","value":"x"}},{{"name":"b","value":"y"{fields}}}]}}"#)
    }

    #[test]
    fn validity_windows_are_read_to_the_nanosecond_in_utc() {
        let p = parse(
            window(r#","not_before":"2026-01-01T00:00:00+01:00","not_after":"2026-12-31T23:59:59.999999999Z""#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(p.tokens[0].not_before, None);
        assert_eq!(p.tokens[0].not_after, None);
        assert!(!p.tokens[0].has_window());
        assert_eq!(p.tokens[1].not_before, Some(1_767_222_000_000_000_000));
        assert_eq!(p.tokens[1].not_after, Some(1_798_761_599_999_999_999));
        assert!(p.tokens[1].has_window());
        // Either bound alone is a window.
        let only_after =
            parse(window(r#","not_after":"2026-12-31T23:59:59Z""#).as_bytes()).unwrap();
        assert_eq!(only_after.tokens[1].not_before, None);
        assert!(only_after.tokens[1].has_window());
        let only_before =
            parse(window(r#","not_before":"1970-01-01T00:00:00Z""#).as_bytes()).unwrap();
        assert_eq!(only_before.tokens[1].not_before, Some(0));
        assert!(only_before.tokens[1].has_window());
        // One nanosecond is the shortest window; the same instant written two ways is none.
        assert!(
            parse(
                window(r#","not_before":"2026-06-01T00:00:00Z","not_after":"2026-06-01T00:00:00.000000001Z""#)
                    .as_bytes()
            )
            .is_ok()
        );
        assert_eq!(
            err(&window(
                r#","not_before":"2026-06-01T02:00:00+02:00","not_after":"2026-06-01T00:00:00Z""#
            )),
            "tokens[1].not_after: must be later than not_before"
        );
    }

    const REALM_ERROR: &str =
        "realm: expected 1-64 printable ASCII characters without '\"' or '\\'";

    #[test]
    fn the_realm_is_any_printable_ascii_a_quoted_string_takes_as_is() {
        let realm = |r: &str| {
            parse(format!(r#"{{"tokens":[{{"name":"a","value":"x"}}],"realm":{r}}}"#).as_bytes())
                .map(|p| p.realm)
        };
        assert_eq!(realm(r#""payments api""#).unwrap(), "payments api");
        assert_eq!(realm(r#"" ""#).unwrap(), " ");
        let all: String = (b' '..=b'~')
            .filter(|b| *b != b'"' && *b != b'\\')
            .map(char::from)
            .take(64)
            .collect();
        assert_eq!(all.len(), 64);
        assert_eq!(realm(&format!("\"{all}\"")).unwrap(), all);
        assert_eq!(
            realm(&format!("\"{}\"", "r".repeat(65)))
                .unwrap_err()
                .to_string(),
            REALM_ERROR
        );
    }

    #[test]
    fn uppercase_hex_digests_are_accepted() {
        let p = parse(
            format!(
                r#"{{"tokens":[{{"name":"a","sha256":"{}"}}]}}"#,
                SLEEP_DIGEST.to_uppercase()
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(p.digests[0], digest::sha256(b"test"));
    }

    #[test]
    fn a_thousand_and_twenty_four_tokens_is_the_limit() {
        let entries = |n: usize| {
            (0..n)
                .map(|i| format!(r#"{{"name":"t{i}","value":"v{i}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            parse(format!(r#"{{"tokens":[{}]}}"#, entries(MAX_TOKENS)).as_bytes())
                .unwrap()
                .tokens
                .len(),
            MAX_TOKENS
        );
        assert_eq!(
            err(&format!(r#"{{"tokens":[{}]}}"#, entries(MAX_TOKENS + 1))),
            "tokens: expected 1 to 1024 entries, got 1025"
        );
    }

    #[test]
    fn every_error_names_its_field() {
        let t = |rest: &str| format!(r#"{{"tokens":[{{"name":"a","value":"x"}}]{rest}}}"#);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "configuration: empty; expected a JSON object with a \"tokens\" list"),
            ("  \n".into(), "configuration: empty; expected a JSON object with a \"tokens\" list"),
            ("hello: [".into(), "configuration: not valid JSON: unexpected character at byte 0"),
            ("true".into(), "configuration: expected an object, got a boolean"),
            ("[]".into(), "configuration: expected an object, got an array"),
            ("{}".into(), "tokens: required"),
            (r#"{"tokens": {}}"#.into(), "tokens: expected an array, got an object"),
            (r#"{"tokens": []}"#.into(), "tokens: expected 1 to 1024 entries, got 0"),
            (r#"{"tokens": ["x"]}"#.into(), "tokens[0]: expected an object, got a string"),
            (t(r#","extra":1"#), "extra: unknown field (expected one of: header, realm, tokens, bypass, strip_header, log)"),
            (r#"{"tokens":[{"value":"x"}]}"#.into(), "tokens[0].name: required"),
            (r#"{"tokens":[{"name":"A","value":"x"}]}"#.into(), "tokens[0].name: expected 1-63 characters of [a-z0-9._-]"),
            (r#"{"tokens":[{"name":"","value":"x"}]}"#.into(), "tokens[0].name: expected 1-63 characters of [a-z0-9._-]"),
            (
                format!(r#"{{"tokens":[{{"name":"{}","value":"x"}}]}}"#, "a".repeat(64)),
                "tokens[0].name: expected 1-63 characters of [a-z0-9._-]",
            ),
            (r#"{"tokens":[{"name":7,"value":"x"}]}"#.into(), "tokens[0].name: expected a string, got a number"),
            (
                r#"{"tokens":[{"name":"a","value":"x"},{"name":"a","value":"y"}]}"#.into(),
                "tokens[1].name: duplicate name \"a\" (also tokens[0])",
            ),
            (
                r#"{"tokens":[{"name":"a","value":"x"},{"name":"b","value":"x"}]}"#.into(),
                "tokens[1].value: duplicate token digest (same as tokens[0])",
            ),
            (
                format!(r#"{{"tokens":[{{"name":"a","value":"test"}},{{"name":"b","sha256":"{SLEEP_DIGEST}"}}]}}"#),
                "tokens[1].sha256: duplicate token digest (same as tokens[0])",
            ),
            (r#"{"tokens":[{"name":"a"}]}"#.into(), "tokens[0]: set exactly one of \"sha256\" or \"value\""),
            (
                format!(r#"{{"tokens":[{{"name":"a","value":"x","sha256":"{SLEEP_DIGEST}"}}]}}"#),
                "tokens[0]: set exactly one of \"sha256\" or \"value\", not both",
            ),
            (
                r#"{"tokens":[{"name":"a","value":"x"},{"name":"b","sha256":"abc"}]}"#.into(),
                "tokens[1].sha256: expected 64 hex digits",
            ),
            (
                format!(r#"{{"tokens":[{{"name":"a","sha256":"{}"}}]}}"#, SLEEP_DIGEST.replace('f', "g")),
                "tokens[0].sha256: expected 64 hex digits",
            ),
            (r#"{"tokens":[{"name":"a","value":""}]}"#.into(), "tokens[0].value: must not be empty"),
            (r#"{"tokens":[{"name":"a","value":" x"}]}"#.into(), "tokens[0].value: must not start or end with whitespace"),
            (r#"{"tokens":[{"name":"a","value":1}]}"#.into(), "tokens[0].value: expected a string, got a number"),
            (window(r#","not_before":"2026-12-31""#), "tokens[1].not_before: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
            (window(r#","not_after":"2026-12-31T23:59:59""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
            (window(r#","not_after":"2026-02-29T00:00:00Z""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
            (window(r#","not_after":"2026-12-31 23:59:59Z""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
            (window(r#","not_after":"tomorrow""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
            (window(r#","not_after":"""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
            (window(r#","not_after":1798761599"#), "tokens[1].not_after: expected a string, got a number"),
            (window(r#","not_before":null"#), "tokens[1].not_before: expected a string, got null"),
            (window(r#","not_before":"1969-12-31T23:59:59Z""#), "tokens[1].not_before: expected a time the proxy's clock can tell, from 1970-01-01T00:00:00Z to 2554-07-21T23:34:33Z"),
            (window(r#","not_after":"2554-07-21T23:34:34Z""#), "tokens[1].not_after: expected a time the proxy's clock can tell, from 1970-01-01T00:00:00Z to 2554-07-21T23:34:33Z"),
            (
                window(r#","not_before":"2026-12-31T23:59:59Z","not_after":"2026-12-31T23:59:59Z""#),
                "tokens[1].not_after: must be later than not_before",
            ),
            (
                window(r#","not_before":"2027-01-01T00:00:00Z","not_after":"2026-12-31T23:59:59Z""#),
                "tokens[1].not_after: must be later than not_before",
            ),
            (
                window(r#","not_before":"2027-01-01T00:00:00Z","not_after":"soon""#),
                "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z",
            ),
            (
                r#"{"tokens":[{"name":"a","value":"x","nmae":"b"}]}"#.into(),
                "tokens[0].nmae: unknown field (expected one of: name, sha256, value, principals, not_before, not_after)",
            ),
            (
                r#"{"tokens":[{"name":"a","value":"x","principals":["cluster.local/ns/demo/sa/sleep"]}]}"#.into(),
                "tokens[0].principals[0]: expected a SPIFFE ID starting with \"spiffe://\"",
            ),
            (
                r#"{"tokens":[{"name":"a","value":"x","principals":["spiffe://"]}]}"#.into(),
                "tokens[0].principals[0]: expected a SPIFFE ID starting with \"spiffe://\"",
            ),
            (
                r#"{"tokens":[{"name":"a","value":"x","principals":[]}]}"#.into(),
                "tokens[0].principals: expected at least one SPIFFE ID (leave the field out to accept any peer)",
            ),
            (
                r#"{"tokens":[{"name":"a","value":"x","principals":"spiffe://a"}]}"#.into(),
                "tokens[0].principals: expected an array, got a string",
            ),
            (t(r#","header":"x token""#), "header: expected an HTTP header name (1-128 token characters, no pseudo-header)"),
            (t(r#","header":":path""#), "header: expected an HTTP header name (1-128 token characters, no pseudo-header)"),
            (t(r#","header":"""#), "header: expected an HTTP header name (1-128 token characters, no pseudo-header)"),
            // Found writing the fuzz targets: a token sent in x-request-id was echoed in the deny body.
            (
                t(r#","header":"X-Request-Id""#),
                "header: x-request-id is read for the access record and the deny reply; choose another header",
            ),
            (
                t(r#","header":"user-agent""#),
                "header: user-agent is read for the access record and the deny reply; choose another header",
            ),
            (t(r#","bypass":{}"#), "bypass: expected an array, got an object"),
            (t(r#","bypass":[{"methods":["GET"]}]"#), "bypass[0].path_prefix: required"),
            (t(r#","bypass":[{"path_prefix":"status/"}]"#), "bypass[0].path_prefix: must start with \"/\""),
            (
                t(r#","bypass":[{"path_prefix":"/a?b"}]"#),
                "bypass[0].path_prefix: must be a plain path (no query, fragment, space or control character)",
            ),
            (
                t(r#","bypass":[{"path_prefix":"/a","methods":["get"]}]"#),
                "bypass[0].methods[0]: expected an upper-case HTTP method such as \"GET\"",
            ),
            (
                t(r#","bypass":[{"path_prefix":"/a","methods":["GET","PO ST"]}]"#),
                "bypass[0].methods[1]: expected an upper-case HTTP method such as \"GET\"",
            ),
            (
                t(r#","bypass":[{"path_prefix":"/a","methods":[]}]"#),
                "bypass[0].methods: expected at least one method (leave the field out to match every method)",
            ),
            (
                t(r#","bypass":[{"path_prefix":"/a","method":["GET"]}]"#),
                "bypass[0].method: unknown field (expected one of: path_prefix, methods)",
            ),
            (t(r#","realm":"""#), REALM_ERROR),
            (t(r#","realm":7"#), "realm: expected a string, got a number"),
            (t(r#","realm":"a\"b""#), REALM_ERROR),
            (t(r#","realm":"a\\b""#), REALM_ERROR),
            (t(r#","realm":"tab\there""#), REALM_ERROR),
            (t(r#","realm":"caf\u00e9""#), REALM_ERROR),
            (t(r#","realm":"line\nbreak""#), REALM_ERROR),
            (t(&format!(r#","realm":"{}""#, "r".repeat(65))), REALM_ERROR),
            (t(r#","strip_header":"yes""#), "strip_header: expected true or false, got a string"),
            (t(r#","log":[]"#), "log: expected an object, got an array"),
            (t(r#","log":{"sink":"stdout"}"#), "log.sink: expected one of: filter_state, none"),
            (t(r#","log":{"sink":"proxy_log"}"#), "log.sink: the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)"),
            (t(r#","log":{"sink":"both"}"#), "log.sink: the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)"),
            (t(r#","log":{"allowed":1}"#), "log.allowed: expected true or false, got a number"),
            (t(r#","log":{"denied":null}"#), "log.denied: expected true or false, got null"),
            (t(r#","log":{"level":"info"}"#), "log.level: unknown field (expected one of: sink, allowed, denied)"),
        ];
        for (config, expected) in cases {
            assert_eq!(err(&config), expected, "config: {config}");
        }
    }

    #[test]
    fn an_unknown_key_with_control_characters_is_escaped_onto_one_line() {
        // Found by the `config` fuzz target: the key was copied raw into the log line.
        assert_eq!(
            err("{\"a\\nb\\u0000\\u2028\":1}"),
            "a\\nb\\u{0}\\u{2028}: unknown field (expected one of: header, realm, tokens, bypass, strip_header, log)"
        );
        assert_eq!(
            err(r#"{"tokens":[{"name":"a","value":"x","k\r":1}]}"#),
            "tokens[0].k\\r: unknown field (expected one of: name, sha256, value, principals, not_before, not_after)"
        );
        // Found by the `config` fuzz target: an empty key gave an empty field.
        assert_eq!(
            err(r#"{"":1}"#),
            r#""": unknown field (expected one of: header, realm, tokens, bypass, strip_header, log)"#
        );
        assert_eq!(
            err(r#"{"tokens":[{"name":"a","value":"x"}],"log":{"":true}}"#),
            r#"log."": unknown field (expected one of: sink, allowed, denied)"#
        );
    }

    #[test]
    fn non_utf8_and_deeply_nested_input_are_errors_not_panics() {
        assert!(parse(b"\xff\xfe").is_err());
        let deep = format!("{{\"tokens\":{}}}", "[".repeat(10_000));
        assert_eq!(
            err(&deep),
            "configuration: not valid JSON: nesting too deep at byte 25"
        );
    }
}
