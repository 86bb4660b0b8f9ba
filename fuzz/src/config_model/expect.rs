//! What the filter must do with a configuration tree: the root's fields and each bypass rule
//! (one token is `token.rs`).

use super::token::expect_token;
use super::walk::*;
use super::*;
use crate::tree::J;

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
