//! One `tokens[i]` entry: name, value or digest, principals, validity window.

use super::walk::*;
use super::*;
use crate::tree::J;

/// One `tokens[i]` entry; `None` when it is wrong (the errors say where).
pub(super) fn expect_token(
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
        (Some(sha), Some(value)) => {
            errors.add(path.clone());
            // Each is also wrong on its own when it is not even a string.
            for (key, given) in [("sha256", sha), ("value", value)] {
                if !matches!(given, J::Str(_)) {
                    errors.add(format!("{path}.{key}"));
                }
            }
            (None, false)
        }
        (None, None) => {
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
