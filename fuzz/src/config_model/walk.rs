//! Walking the configuration tree: collecting the fields found wrong, field paths as the
//! filter names them, an object's members, and the small checks on names and values.

use super::*;
use crate::tree::J;

/// Collects errors while walking the tree.
pub(super) struct Errors(pub(super) Vec<Wrong>);

impl Errors {
    pub(super) fn add(&mut self, field: impl Into<String>) {
        self.0.push(Wrong {
            field: field.into(),
            message: None,
        });
    }

    pub(super) fn add_with(&mut self, field: impl Into<String>, message: &'static str) {
        self.0.push(Wrong {
            field: field.into(),
            message: Some(message),
        });
    }
}

pub(super) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// An unknown key as the error names it: control characters and U+2028/2029 written as
/// Rust escapes (`\n`, `\u{0}`), so that the error is one log line; the empty key as `""`.
pub(super) fn shown_key(key: &str) -> String {
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
pub(super) fn members<'a>(
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

pub(super) fn lookup<'a>(members: &'a [(String, J)], key: &str) -> Option<&'a J> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub(super) fn is_header_char(c: char) -> bool {
    // RFC 9110 `tchar`.
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

pub(super) fn starts_or_ends_with_whitespace(s: &str) -> bool {
    s.chars().next().is_some_and(char::is_whitespace)
        || s.chars().last().is_some_and(char::is_whitespace)
}
