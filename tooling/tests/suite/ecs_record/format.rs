//! Reading the format: each field's path, its Envoy command operator and what that operator
//! prints (CEL expressions included).

use serde_json::Value;
use std::collections::BTreeSet;

/// What a field of the format prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yields {
    /// A JSON number (Envoy's typed operators).
    Number,
    /// A string Envoy fills in: any value.
    Text,
    /// One of these strings: a constant, or a CEL expression whose every result is a literal.
    OneOf(BTreeSet<String>),
    /// This list of strings, printed as written.
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Field {
    /// The dotted path, `http.response.status_code`.
    pub path: String,
    /// The command operator's name (`RESPONSE_CODE`), none for a constant.
    pub operator: Option<String>,
    pub yields: Yields,
}

/// Envoy command operators whose value the JSON formatter prints as a number.
const NUMBER_OPERATORS: &[&str] = &[
    "RESPONSE_CODE",
    "DOWNSTREAM_REMOTE_PORT",
    "DOWNSTREAM_LOCAL_PORT",
    "BYTES_RECEIVED",
    "BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "COMMON_DURATION",
    "DURATION",
];
/// Envoy command operators that print a string.
const TEXT_OPERATORS: &[&str] = &[
    "START_TIME",
    "REQ",
    "PATH",
    "FILTER_STATE",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "TRACE_ID",
    "DOWNSTREAM_PEER_URI_SAN",
    "ROUTE_NAME",
    "RESPONSE_FLAGS",
    "UPSTREAM_HOST",
    "UPSTREAM_CLUSTER",
];

/// `%NAME%` or `%NAME(args)%` (the arguments may hold `%`, as START_TIME's do): the name and the
/// arguments. `None` for a string that is not exactly one operator.
pub fn operator(value: &str) -> Option<(&str, Option<&str>)> {
    let inner = value.strip_prefix('%')?.strip_suffix('%')?;
    let (name, args) = match inner.find('(') {
        Some(open) => (&inner[..open], Some(inner[open + 1..].strip_suffix(')')?)),
        None => (inner, None),
    };
    let is_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_name.then_some((name, args))
}

/// What an operator prints; panics on one the table does not know yet.
pub fn operator_yields(name: &str, args: Option<&str>) -> Yields {
    if name == "CEL" {
        let expr = args.expect("CEL takes an expression");
        let (values, open) = cel_results(expr);
        return if open || values.is_empty() {
            Yields::Text
        } else {
            Yields::OneOf(values)
        };
    }
    if NUMBER_OPERATORS.contains(&name) {
        Yields::Number
    } else if TEXT_OPERATORS.contains(&name) {
        Yields::Text
    } else {
        panic!(
            "%{name}% is in no table of tooling/tests/suite/ecs_record.rs: add it to NUMBER_OPERATORS or TEXT_OPERATORS (Envoy's docs say which)"
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(String),
    Question,
    Colon,
    Open,
    Close,
    Other(String),
}

fn cel_tokens(expr: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = expr.chars().peekable();
    let flush = |word: &mut String, out: &mut Vec<Tok>| {
        if !word.is_empty() {
            out.push(Tok::Other(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                flush(&mut word, &mut out);
                let mut lit = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => lit.extend(chars.next()),
                        d if d == c => break,
                        d => lit.push(d),
                    }
                }
                out.push(Tok::Lit(lit));
            }
            '?' | ':' | '(' | ')' => {
                flush(&mut word, &mut out);
                out.push(match c {
                    '?' => Tok::Question,
                    ':' => Tok::Colon,
                    '(' => Tok::Open,
                    _ => Tok::Close,
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Without the parentheses that enclose the whole of `toks`.
fn unwrap_parens(mut toks: &[Tok]) -> &[Tok] {
    while toks.first() == Some(&Tok::Open) {
        let mut depth = 0;
        let closes_at = toks.iter().position(|t| {
            match t {
                Tok::Open => depth += 1,
                Tok::Close => depth -= 1,
                _ => {}
            }
            depth == 0
        });
        if closes_at != Some(toks.len() - 1) {
            break;
        }
        toks = &toks[1..toks.len() - 1];
    }
    toks
}

fn cel_leaves(toks: &[Tok], values: &mut BTreeSet<String>, open: &mut bool) {
    let toks = unwrap_parens(toks);
    let mut depth = 0;
    let question = toks.iter().position(|t| {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            _ => {}
        }
        depth == 0 && *t == Tok::Question
    });
    if let Some(q) = question {
        // The `:` that closes this `?`: nested conditionals in between bring their own.
        let (mut depth, mut pending) = (0, 0);
        let colon = (q + 1..toks.len()).find(|&i| {
            match &toks[i] {
                Tok::Open => depth += 1,
                Tok::Close => depth -= 1,
                Tok::Question if depth == 0 => pending += 1,
                Tok::Colon if depth == 0 => {
                    if pending == 0 {
                        return true;
                    }
                    pending -= 1;
                }
                _ => {}
            }
            false
        });
        let colon = colon.unwrap_or_else(|| panic!("a `?` without its `:` in {toks:?}"));
        cel_leaves(&toks[q + 1..colon], values, open);
        cel_leaves(&toks[colon + 1..], values, open);
        return;
    }
    match toks {
        [Tok::Lit(value)] => {
            values.insert(value.clone());
        }
        // `request.headers[':never']`: a pseudo-header no request has, the format's way to print
        // nothing (omit_empty_values drops the field).
        [Tok::Other(map), Tok::Lit(name), Tok::Other(close)]
            if map == "request.headers["
                && close == "]"
                && name.starts_with(':')
                && ![":path", ":method", ":authority", ":scheme", ":protocol"]
                    .contains(&name.as_str()) => {}
        _ => *open = true,
    }
}

/// The results of a CEL expression made of conditionals (`c ? a : b`, nested): the string
/// literals it can print, and whether some result is not a literal (then any string may come).
/// Literals that are only compared against (`request.protocol == 'HTTP/2'`) are not results.
pub fn cel_results(expr: &str) -> (BTreeSet<String>, bool) {
    let (mut values, mut open) = (BTreeSet::new(), false);
    cel_leaves(&cel_tokens(expr), &mut values, &mut open);
    (values, open)
}

fn collect_fields(prefix: &str, node: &Value, out: &mut Vec<Field>) {
    let path = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let Value::Object(map) = node else {
        panic!("{prefix}: not an object")
    };
    for (k, v) in map {
        let path = path(k);
        let (operator_name, yields) = match v {
            Value::Object(_) => {
                collect_fields(&path, v, out);
                continue;
            }
            Value::String(s) => match operator(s) {
                Some((name, args)) => (Some(name.to_string()), operator_yields(name, args)),
                None if s.contains('%') => {
                    panic!(
                        "{path}: `{s}` mixes operators and text; the table reads one operator per field"
                    )
                }
                None => (None, Yields::OneOf(BTreeSet::from([s.clone()]))),
            },
            Value::Array(items) => (
                None,
                Yields::List(
                    items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .unwrap_or_else(|| panic!("{path}: a list of strings"))
                                .to_string()
                        })
                        .collect(),
                ),
            ),
            other => panic!("{path}: {other} is neither an operator nor a constant string"),
        };
        out.push(Field {
            path,
            operator: operator_name,
            yields,
        });
    }
}

/// Every leaf of the format, in the file's order.
pub fn format_fields(format: &Value) -> Vec<Field> {
    let mut out = Vec::new();
    collect_fields("", format, &mut out);
    out
}

/// The format's constant at `path` (`event.dataset`), if that field is one.
pub fn format_constant(format: &Value, path: &str) -> Option<String> {
    format_fields(format)
        .into_iter()
        .find(|f| f.path == path)
        .and_then(|f| match f.yields {
            Yields::OneOf(values) if f.operator.is_none() => values.into_iter().next(),
            _ => None,
        })
}
