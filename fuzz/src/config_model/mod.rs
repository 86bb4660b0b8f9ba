//! A reference model of the plugin configuration contract (issues 2 and 15), written from the
//! contract rather than from the filter's code: it checks a JSON tree and says either what
//! policy the filter must build, or every field that is wrong (the filter must name one),
//! with the message where the contract fixes its words.
//!
//! This file holds what the model expects and how the filter is compared with it; reading the
//! tree is in `expect.rs` (the root and bypass rules), `token.rs` (one token) and `walk.rs`
//! (errors, field paths, members), the RFC 3339 reader in `timestamp.rs`.

use rfma_filter::config::{Policy, Sink};
use sha2::{Digest as _, Sha256};

mod expect;
mod timestamp;
mod token;
mod walk;

pub use expect::expect;
pub use timestamp::{StampError, rfc3339};

/// Nesting the filter's JSON reader accepts (its documented `MAX_DEPTH`).
pub const MAX_JSON_DEPTH: usize = 16;
pub const MAX_TOKENS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedToken {
    pub name: String,
    pub digest: [u8; 32],
    pub principals: Vec<String>,
    /// The validity window, nanoseconds since 1970 UTC, both ends inclusive.
    pub not_before: Option<u64>,
    pub not_after: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPolicy {
    pub header: String,
    pub realm: String,
    pub tokens: Vec<ExpectedToken>,
    pub bypass: Vec<(String, Vec<String>)>,
    pub strip_header: bool,
    pub sink: &'static str,
    pub log_allowed: bool,
    pub log_denied: bool,
    pub plain_text_tokens: usize,
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A field the model finds wrong. `message`, when known, is what the filter must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrong {
    pub field: String,
    pub message: Option<&'static str>,
}

/// `log.sink` values that are gone on purpose: the record is Envoy's access log's now, and
/// the rejection says so rather than only listing what is left.
pub const REMOVED_SINKS: [&str; 2] = ["proxy_log", "both"];
pub const REMOVED_SINK_MESSAGE: &str = "the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)";
pub const UNKNOWN_SINK_MESSAGE: &str = "expected one of: filter_state, none";
/// What the filter says of a `not_before`/`not_after` that is not an RFC 3339 timestamp (the
/// contract's example message), of one the proxy's clock cannot tell, and of a window that ends
/// before it begins.
pub const TIMESTAMP_MESSAGE: &str = "expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z";
pub const TIMESTAMP_RANGE_MESSAGE: &str =
    "expected a time the proxy's clock can tell, from 1970-01-01T00:00:00Z to 2554-07-21T23:34:33Z";
pub const WINDOW_MESSAGE: &str = "must be later than not_before";

/// The filter's error against the model's: it must name a field the model finds wrong,
/// and say what the model says there when the model knows the words.
pub fn check_error(
    error: &rfma_filter::config::ConfigError,
    wrong: &[Wrong],
) -> Result<(), String> {
    let fields: Vec<&str> = wrong.iter().map(|w| w.field.as_str()).collect();
    let at: Vec<&Wrong> = wrong.iter().filter(|w| w.field == error.field).collect();
    if at.is_empty() {
        return Err(format!(
            "the error names {:?} ({error}); the model's errors are at {fields:?}",
            error.field
        ));
    }
    if at
        .iter()
        .any(|w| w.message.is_none_or(|m| m == error.message))
    {
        return Ok(());
    }
    let said: Vec<&str> = at.iter().filter_map(|w| w.message).collect();
    Err(format!(
        "the error at {} says {:?}; the model says {said:?}",
        error.field, error.message
    ))
}

/// Compares the filter's policy with the model's, field by field.
pub fn check_policy(actual: &Policy, expected: &ExpectedPolicy) -> Result<(), String> {
    let sink = match actual.log.sink {
        Sink::FilterState => "filter_state",
        Sink::None => "none",
    };
    let tokens: Vec<ExpectedToken> = actual
        .tokens
        .iter()
        .zip(&actual.digests)
        .map(|(t, d)| ExpectedToken {
            name: t.name.clone(),
            digest: *d,
            principals: t.principals.clone(),
            not_before: t.not_before,
            not_after: t.not_after,
        })
        .collect();
    let got = ExpectedPolicy {
        header: actual.header.clone(),
        realm: actual.realm.clone(),
        tokens,
        bypass: actual
            .bypass
            .iter()
            .map(|b| (b.path_prefix.clone(), b.methods.clone()))
            .collect(),
        strip_header: actual.strip_header,
        sink,
        log_allowed: actual.log.allowed,
        log_denied: actual.log.denied,
        plain_text_tokens: actual.plain_text_tokens,
    };
    if actual.digests.len() != actual.tokens.len() {
        return Err(format!(
            "{} digests for {} tokens",
            actual.digests.len(),
            actual.tokens.len()
        ));
    }
    if got != *expected {
        return Err(format!(
            "policy differs:\n  filter {got:?}\n  model  {expected:?}"
        ));
    }
    Ok(())
}
