//! Turns the plugin configuration into an immutable, pre-computed [`Policy`].
//!
//! Everything a request needs is computed here once (digests, lower-cased header name,
//! parsed rules), so the per-request path does no parsing. Every error names the
//! offending field with a path such as `tokens[1].sha256`.
//!
//! Three steps, a file each: [`document`] reads the JSON (`serde_json`) into a tree,
//! [`shape`] is the fields and their kinds (serde's derive, unknown fields refused), and
//! [`rules`] checks what each value must be beyond its kind. Errors keep one format,
//! `<field>: <problem>`, whichever step finds them.

mod document;
mod rules;
mod shape;
#[cfg(test)]
mod tests;

pub use document::MAX_DEPTH;

use crate::digest::Digest;
use document::{Node, Wrong};
use serde_path_to_error::Segment;
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
    let tree = document::read(bytes)
        .map_err(|e| error("configuration", format!("not valid JSON: {e}")))?;
    // A document that is not an object fails here too, at the empty path: `configuration`.
    let config: shape::Config =
        serde_path_to_error::deserialize(Node(&tree)).map_err(|e| shape_error(&e))?;

    let header = match config.header {
        None => DEFAULT_HEADER.to_owned(),
        Some(name) => rules::header_name("header", &name)?,
    };
    let realm = match config.realm {
        None => DEFAULT_REALM.to_owned(),
        Some(realm) => rules::realm("realm", realm)?,
    };
    let (digests, tokens, plain_text_tokens) = rules::token_list("tokens", config.tokens)?;
    let bypass = match config.bypass {
        None => Vec::new(),
        Some(rules) => rules::bypass_list("bypass", rules)?,
    };
    let log = match config.log {
        None => LogPolicy {
            sink: Sink::FilterState,
            allowed: true,
            denied: true,
        },
        Some(log) => rules::log_policy("log", log)?,
    };
    Ok(Policy {
        header,
        realm,
        digests,
        tokens,
        bypass,
        strip_header: config.strip_header.unwrap_or(true),
        log,
        plain_text_tokens,
    })
}

/// A shape error as `<field>: <problem>`: the path `serde_path_to_error` kept, plus the
/// missing member if that is the problem.
fn shape_error(e: &serde_path_to_error::Error<Wrong>) -> ConfigError {
    let mut field = String::new();
    let member = |field: &mut String, key: &str| {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(&printable(key));
    };
    for segment in e.path() {
        match segment {
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Map { key } => member(&mut field, key),
            // Neither occurs (no enums, and JSON keys are strings); named for completeness.
            Segment::Enum { variant } => member(&mut field, variant),
            Segment::Unknown => member(&mut field, "?"),
        }
    }
    let wrong = e.inner();
    if let Some(missing) = wrong.member {
        member(&mut field, missing);
    }
    if field.is_empty() {
        field.push_str("configuration");
    }
    error(field, wrong.message.clone())
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
