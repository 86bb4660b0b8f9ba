//! A reference model of the plugin configuration contract (issues 2 and 15), written from the
//! contract rather than from the filter's code: it checks a JSON tree and says either what
//! policy the filter must build, or every field that is wrong (the filter must name one),
//! with the message where the contract fixes its words.

use crate::tree::J;
use rfma_filter::config::{Policy, Sink};
use sha2::{Digest as _, Sha256};

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

/// Why a text is not a window bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampError {
    /// Not RFC 3339 §5.6 `date-time`, or no such date or time.
    Syntax,
    /// A real instant outside 1970-01-01T00:00:00Z..=2554-07-21T23:34:33.709551615Z (u64 ns).
    Range,
}

fn ascii_number(text: &str, len: usize) -> Option<i64> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn month_days(year: i64, month: i64) -> i64 {
    [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][(month - 1) as usize]
}

/// An RFC 3339 `date-time` as nanoseconds since 1970 UTC, from RFC 3339 §5.6 and the contract
/// (docs/filter.md): `T`/`Z` in either case; `Z` or `±hh:mm`; fractional seconds of any length,
/// counted to the nanosecond (the rest dropped); `:60` only for a leap second, which is
/// 23:59:60 in UTC, counted as the next second (as the Unix clock does). Written apart from
/// the filter's parser: it splits the text, and counts days year by year.
pub fn rfc3339(text: &str) -> Result<u64, StampError> {
    use StampError::{Range, Syntax};
    if !text.is_ascii() || text.len() < 20 {
        return Err(Syntax);
    }
    let (date, rest) = text.split_at(10);
    let rest = rest.strip_prefix(['T', 't']).ok_or(Syntax)?;
    let mut ymd = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (ymd.next(), ymd.next(), ymd.next(), ymd.next())
    else {
        return Err(Syntax);
    };
    let (year, month, day) = (
        ascii_number(y, 4).ok_or(Syntax)?,
        ascii_number(mo, 2).ok_or(Syntax)?,
        ascii_number(d, 2).ok_or(Syntax)?,
    );
    let (time, offset_minutes) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else {
        let cut = rest.len().checked_sub(6).ok_or(Syntax)?;
        let (time, offset) = rest.split_at(cut);
        let sign = match &offset[..1] {
            "+" => 1,
            "-" => -1,
            _ => return Err(Syntax),
        };
        let (oh, om) = offset[1..].split_once(':').ok_or(Syntax)?;
        let (oh, om) = (
            ascii_number(oh, 2).ok_or(Syntax)?,
            ascii_number(om, 2).ok_or(Syntax)?,
        );
        if oh > 23 || om > 59 {
            return Err(Syntax);
        }
        (time, sign * (oh * 60 + om))
    };
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut parts = hms.split(':');
    let (Some(h), Some(mi), Some(sec), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Syntax);
    };
    let (hour, minute, second) = (
        ascii_number(h, 2).ok_or(Syntax)?,
        ascii_number(mi, 2).ok_or(Syntax)?,
        ascii_number(sec, 2).ok_or(Syntax)?,
    );
    let nanos: i128 = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut nine: String = f.chars().take(9).collect();
            while nine.len() < 9 {
                nine.push('0');
            }
            nine.parse().map_err(|_| Syntax)?
        }
        Some(_) => return Err(Syntax),
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(Syntax);
    }
    let utc_minute_of_day = (hour * 60 + minute - offset_minutes).rem_euclid(24 * 60);
    if second == 60 && utc_minute_of_day != 23 * 60 + 59 {
        return Err(Syntax);
    }
    // Nothing before 1969 or after 2554 can land in range, whatever its offset.
    if !(1969..=2554).contains(&year) {
        return Err(Range);
    }
    let mut days: i64 = (1..month).map(|m| month_days(year, m)).sum::<i64>() + day - 1;
    if year >= 1970 {
        days += (1970..year)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    } else {
        days -= (year..1970)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    }
    let seconds = i128::from(days) * 86_400 + i128::from(hour * 3600 + minute * 60 + second)
        - i128::from(offset_minutes) * 60;
    u64::try_from(seconds * 1_000_000_000 + nanos).map_err(|_| Range)
}

/// Collects errors while walking the tree.
struct Errors(Vec<Wrong>);

impl Errors {
    fn add(&mut self, field: impl Into<String>) {
        self.0.push(Wrong {
            field: field.into(),
            message: None,
        });
    }

    fn add_with(&mut self, field: impl Into<String>, message: &'static str) {
        self.0.push(Wrong {
            field: field.into(),
            message: Some(message),
        });
    }
}

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

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// An unknown key as the error names it: control characters and U+2028/2029 written as
/// Rust escapes (`\n`, `\u{0}`), so that the error is one log line; the empty key as `""`.
fn shown_key(key: &str) -> String {
    if key.is_empty() {
        return "\"\"".to_owned();
    }
    let mut out = String::new();
    for c in key.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The members of an object, after reporting the ones not in `known`.
fn members<'a>(
    errors: &mut Errors,
    path: &str,
    value: &'a J,
    known: &[&str],
) -> Option<&'a [(String, J)]> {
    let J::Obj(members) = value else {
        errors.add(if path.is_empty() {
            "configuration"
        } else {
            path
        });
        return None;
    };
    for (key, _) in members {
        if !known.contains(&key.as_str()) {
            errors.add(child(path, &shown_key(key)));
        }
    }
    Some(members)
}

fn lookup<'a>(members: &'a [(String, J)], key: &str) -> Option<&'a J> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn is_header_char(c: char) -> bool {
    // RFC 9110 `tchar`.
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn starts_or_ends_with_whitespace(s: &str) -> bool {
    s.chars().next().is_some_and(char::is_whitespace)
        || s.chars().last().is_some_and(char::is_whitespace)
}

/// What the filter must do with this configuration tree.
pub fn expect(root: &J) -> Result<ExpectedPolicy, Vec<Wrong>> {
    if root.depth() > MAX_JSON_DEPTH || root.has_duplicate_keys() {
        let mut errors = Errors(Vec::new());
        errors.add("configuration");
        return Err(errors.0);
    }
    let mut errors = Errors(Vec::new());
    let Some(top) = members(
        &mut errors,
        "",
        root,
        &["header", "realm", "tokens", "bypass", "strip_header", "log"],
    ) else {
        return Err(errors.0);
    };

    let header = match lookup(top, "header") {
        None => "x-rfma-token".to_owned(),
        // Not a header the access record prints, the deny reply copies or the tracer reads:
        // the token would land there.
        Some(J::Str(h))
            if (1..=128).contains(&h.len())
                && h.chars().all(is_header_char)
                && !["x-request-id", "user-agent", "traceparent", "x-b3-traceid"]
                    .contains(&h.to_lowercase().as_str()) =>
        {
            h.to_lowercase()
        }
        Some(_) => {
            errors.add("header");
            String::new()
        }
    };

    // The realm goes into a quoted-string as is: printable ASCII, no `"` or `\`.
    let realm = match lookup(top, "realm") {
        None => "istio-demo".to_owned(),
        Some(J::Str(r))
            if (1..=64).contains(&r.len())
                && r.chars()
                    .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\') =>
        {
            r.clone()
        }
        Some(_) => {
            errors.add("realm");
            String::new()
        }
    };

    let mut tokens = Vec::new();
    let mut plain_text_tokens = 0;
    match lookup(top, "tokens") {
        Some(J::Arr(entries)) => {
            if entries.is_empty() || entries.len() > MAX_TOKENS {
                errors.add("tokens");
            }
            for (i, entry) in entries.iter().enumerate() {
                if let Some((token, plain)) = expect_token(&mut errors, i, entry, &tokens) {
                    plain_text_tokens += usize::from(plain);
                    tokens.push(token);
                }
            }
        }
        _ => errors.add("tokens"),
    }

    let mut bypass = Vec::new();
    match lookup(top, "bypass") {
        None => {}
        Some(J::Arr(rules)) => {
            for (i, rule) in rules.iter().enumerate() {
                if let Some(rule) = expect_bypass(&mut errors, &format!("bypass[{i}]"), rule) {
                    bypass.push(rule);
                }
            }
        }
        Some(_) => errors.add("bypass"),
    }

    let strip_header = match lookup(top, "strip_header") {
        None => true,
        Some(J::Bool(b)) => *b,
        Some(_) => {
            errors.add("strip_header");
            true
        }
    };

    let (mut sink, mut log_allowed, mut log_denied) = ("filter_state", true, true);
    if let Some(log) = lookup(top, "log")
        && let Some(fields) = members(&mut errors, "log", log, &["sink", "allowed", "denied"])
    {
        match lookup(fields, "sink") {
            None => {}
            Some(J::Str(s)) => match ["filter_state", "none"]
                .iter()
                .find(|known| **known == s.as_str())
            {
                Some(known) => sink = known,
                None if REMOVED_SINKS.contains(&s.as_str()) => {
                    errors.add_with("log.sink", REMOVED_SINK_MESSAGE)
                }
                None => errors.add_with("log.sink", UNKNOWN_SINK_MESSAGE),
            },
            Some(_) => errors.add("log.sink"),
        }
        for (key, slot) in [("allowed", &mut log_allowed), ("denied", &mut log_denied)] {
            match lookup(fields, key) {
                None => {}
                Some(J::Bool(b)) => *slot = *b,
                Some(_) => errors.add(format!("log.{key}")),
            }
        }
    }

    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    Ok(ExpectedPolicy {
        header,
        realm,
        tokens,
        bypass,
        strip_header,
        sink,
        log_allowed,
        log_denied,
        plain_text_tokens,
    })
}

/// One `tokens[i]` entry; `None` when it is wrong (the errors say where).
fn expect_token(
    errors: &mut Errors,
    index: usize,
    entry: &J,
    earlier: &[ExpectedToken],
) -> Option<(ExpectedToken, bool)> {
    let path = format!("tokens[{index}]");
    let before = errors.0.len();
    let fields = members(
        errors,
        &path,
        entry,
        &[
            "name",
            "sha256",
            "value",
            "principals",
            "not_before",
            "not_after",
        ],
    )?;

    let name = match lookup(fields, "name") {
        Some(J::Str(n))
            if (1..=63).contains(&n.len())
                && n.chars()
                    .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-')) =>
        {
            if earlier.iter().any(|t| t.name == *n) {
                errors.add(format!("{path}.name"));
            }
            n.clone()
        }
        _ => {
            errors.add(format!("{path}.name"));
            String::new()
        }
    };

    let (digest, plain) = match (lookup(fields, "sha256"), lookup(fields, "value")) {
        (Some(_), Some(_)) | (None, None) => {
            errors.add(path.clone());
            (None, false)
        }
        (Some(sha), None) => {
            let digest = match sha {
                J::Str(text) => unhex(text),
                _ => None,
            };
            if digest.is_none() {
                errors.add(format!("{path}.sha256"));
            }
            (digest.map(|d| (d, "sha256")), false)
        }
        (None, Some(value)) => {
            let digest = match value {
                J::Str(text) if !text.is_empty() && !starts_or_ends_with_whitespace(text) => {
                    Some(sha256(text.as_bytes()))
                }
                _ => None,
            };
            if digest.is_none() {
                errors.add(format!("{path}.value"));
            }
            (digest.map(|d| (d, "value")), true)
        }
    };
    if let Some((d, field)) = digest
        && earlier.iter().any(|t| t.digest == d)
    {
        errors.add(format!("{path}.{field}"));
    }

    let mut principals = Vec::new();
    match lookup(fields, "principals") {
        None => {}
        Some(J::Arr(ids)) if !ids.is_empty() => {
            for (j, id) in ids.iter().enumerate() {
                match id {
                    J::Str(s)
                        if s.len() > "spiffe://".len()
                            && s.starts_with("spiffe://")
                            && !s.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                    {
                        principals.push(s.clone())
                    }
                    _ => errors.add(format!("{path}.principals[{j}]")),
                }
            }
        }
        Some(_) => errors.add(format!("{path}.principals")),
    }

    let mut bound = |key: &str| match lookup(fields, key) {
        None => None,
        Some(J::Str(text)) => match rfc3339(text) {
            Ok(ns) => Some(ns),
            Err(StampError::Syntax) => {
                errors.add_with(format!("{path}.{key}"), TIMESTAMP_MESSAGE);
                None
            }
            Err(StampError::Range) => {
                errors.add_with(format!("{path}.{key}"), TIMESTAMP_RANGE_MESSAGE);
                None
            }
        },
        Some(_) => {
            errors.add(format!("{path}.{key}"));
            None
        }
    };
    let not_before = bound("not_before");
    let not_after = bound("not_after");
    if let (Some(first), Some(last)) = (not_before, not_after)
        && last <= first
    {
        errors.add_with(format!("{path}.not_after"), WINDOW_MESSAGE);
    }

    if errors.0.len() != before {
        return None;
    }
    let (digest, _) = digest?;
    Some((
        ExpectedToken {
            name,
            digest,
            principals,
            not_before,
            not_after,
        },
        plain,
    ))
}

fn expect_bypass(errors: &mut Errors, path: &str, rule: &J) -> Option<(String, Vec<String>)> {
    let fields = members(errors, path, rule, &["path_prefix", "methods"])?;
    let prefix = match lookup(fields, "path_prefix") {
        Some(J::Str(p))
            if p.starts_with('/')
                && !p
                    .chars()
                    .any(|c| c == '?' || c == '#' || c == ' ' || c.is_ascii_control()) =>
        {
            Some(p.clone())
        }
        _ => {
            errors.add(format!("{path}.path_prefix"));
            None
        }
    };
    let mut methods = Vec::new();
    match lookup(fields, "methods") {
        None => {}
        Some(J::Arr(list)) if !list.is_empty() => {
            for (j, m) in list.iter().enumerate() {
                match m {
                    J::Str(m)
                        if (1..=32).contains(&m.len())
                            && m.chars()
                                .all(|c| c.is_ascii_uppercase() || c == '-' || c == '_') =>
                    {
                        methods.push(m.clone())
                    }
                    _ => errors.add(format!("{path}.methods[{j}]")),
                }
            }
        }
        Some(_) => errors.add(format!("{path}.methods")),
    }
    Some((prefix?, methods))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_reads_rfc_3339_from_the_contract() {
        const S: u64 = 1_000_000_000;
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(rfc3339("2026-12-31T23:59:59Z"), Ok(1_798_761_599 * S));
        assert_eq!(
            rfc3339("2027-01-01t01:59:59.5+02:00"),
            Ok(1_798_761_599 * S + S / 2)
        );
        assert_eq!(rfc3339("1969-12-31T19:00:00-05:00"), Ok(0));
        assert_eq!(rfc3339("2016-12-31T23:59:60Z"), Ok(1_483_228_800 * S));
        assert_eq!(rfc3339("2017-01-01T00:59:60+01:00"), Ok(1_483_228_800 * S));
        assert_eq!(rfc3339("2554-07-21T23:34:33.709551615Z"), Ok(u64::MAX));
        assert_eq!(
            rfc3339("2554-07-21T23:34:33.709551616Z"),
            Err(StampError::Range)
        );
        assert_eq!(rfc3339("1969-12-31T23:59:59Z"), Err(StampError::Range));
        assert_eq!(rfc3339("0000-02-29T00:00:00Z"), Err(StampError::Range));
        for bad in [
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-12-31T23:59:59",
            "2026-12-31 23:59:59Z",
            "2026-12-31T23:59:60Z+01:00",
            "2026-12-31T22:59:60Z",
            "2026-12-31T23:59:59.Z",
            "2026-12-31T23:59:59+0200",
            "2026-12-31T24:00:00Z",
            "\u{ff12}026-12-31T23:59:59Z",
        ] {
            assert_eq!(rfc3339(bad), Err(StampError::Syntax), "{bad}");
        }
        assert_eq!(rfc3339("2400-02-29T00:00:00Z").map(|_| ()), Ok(()));
    }
}
