//! The access record is ECS. Its one definition, `filter/access-log-format.json` (Envoy's
//! `json_format`), is read field by field: the leaf path, the Envoy command operator, and what
//! that operator prints (a number, any string, one of a few strings, a constant list). Each field
//! is then checked
//! (a) against the ECS facts the project keeps (`tooling/tests/ecs-facts.json`: types, allowed
//!     values, each category's expected event types),
//! (b) against the full ECS definitions in `../shared/ecs/` when they are there (and the facts
//!     against them),
//! (c) for being ECS unless it is under `rfma.`,
//! (d) against the index template, which must map it with its ECS type.
//! Sample lines as Envoy prints them go through the same check, [`check_record_line`], which
//! needs nothing but `serde_json`: another crate may copy the marked section as a whole.
//!
//! The other modules (validate_contract, kibana_objects) read the format and the template through
//! this one: [`format_fields`], [`mapping`], [`operator`], [`cel_results`].

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "filter/access-log-format.json";
pub const TEMPLATE: &str = "elk/files/rfma-index-template.json";
pub const FACTS: &str = "tooling/tests/ecs-facts.json";
/// The one prefix for fields ECS does not define.
pub const OWN_PREFIX: &str = "rfma.";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn json_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

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

/// Every field path the template maps (leaves: not objects, not multi-fields).
pub fn mapped_fields(template: &Value) -> Vec<String> {
    fn walk(prefix: &str, props: &Map<String, Value>, out: &mut Vec<String>) {
        for (k, v) in props {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v.get("properties").and_then(Value::as_object) {
                Some(inner) => walk(&path, inner, out),
                None => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    if let Some(props) = template
        .pointer("/template/mappings/properties")
        .and_then(Value::as_object)
    {
        walk("", props, &mut out);
    }
    out
}

/// The ECS definitions of `ecs_flat-<version>.yml`, when `../shared/ecs` holds them, as facts in
/// the shape of `ecs-facts.json` (every ECS field). Read once per run.
fn ecs_definitions(version: &str) -> Option<Value> {
    static READ: std::sync::OnceLock<(String, Option<Value>)> = std::sync::OnceLock::new();
    let (read_version, definitions) =
        READ.get_or_init(|| (version.to_string(), read_ecs_definitions(version)));
    assert_eq!(read_version, version, "one ECS version per run");
    definitions.clone()
}

fn read_ecs_definitions(version: &str) -> Option<Value> {
    let path = repo()
        .parent()?
        .join("shared/ecs")
        .join(format!("ecs_flat-{version}.yml"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "note: {} is not here; the checks against the full ECS definitions are skipped",
            path.display()
        );
        return None;
    };
    let flat: Value = serde_yaml_ng::from_str(&text).expect("ECS definitions are YAML");
    let mut fields = Map::new();
    let mut allowed = Map::new();
    let mut expected = Map::new();
    for (name, def) in flat.as_object().expect("a map of fields") {
        let mut field = Map::new();
        field.insert("type".into(), def["type"].clone());
        let normalize = def["normalize"].as_array().cloned().unwrap_or_default();
        if normalize.contains(&json!("array")) {
            field.insert("array".into(), json!(true));
        }
        if let Some(multi) = def["multi_fields"].as_array() {
            let multi: Map<String, Value> = multi
                .iter()
                .map(|m| (m["name"].as_str().unwrap().to_string(), m["type"].clone()))
                .collect();
            field.insert("multi_fields".into(), Value::Object(multi));
        }
        fields.insert(name.clone(), Value::Object(field));
        if let Some(values) = def["allowed_values"].as_array() {
            allowed.insert(
                name.clone(),
                values.iter().map(|v| v["name"].clone()).collect(),
            );
            if name == "event.category" {
                for v in values {
                    expected.insert(
                        v["name"].as_str().unwrap().to_string(),
                        v["expected_event_types"].clone(),
                    );
                }
            }
        }
    }
    Some(json!({
        "ecs_version": version,
        "fields": fields,
        "allowed_values": allowed,
        "expected_event_types": expected,
    }))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

const NUMERIC: &[&str] = &[
    "long",
    "integer",
    "short",
    "byte",
    "unsigned_long",
    "double",
    "float",
    "half_float",
    "scaled_float",
];
const STRINGS: &[&str] = &[
    "keyword",
    "constant_keyword",
    "wildcard",
    "match_only_text",
    "text",
    "ip",
    "date",
    "version",
];

/// What is wrong with the format's fields, measured against `facts` (the project's table or the
/// full definitions, same shape). Fields under [`OWN_PREFIX`] are not ECS's and are skipped.
fn format_against(fields: &[Field], facts: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_path = BTreeMap::new();
    for f in fields {
        by_path.insert(f.path.as_str(), f);
        if f.path.starts_with(OWN_PREFIX) {
            continue;
        }
        let Some(ecs) = facts["fields"].get(&f.path) else {
            problems.push(format!(
                "{} is not an ECS field (not in the facts): take its ECS name, or move it under {OWN_PREFIX}",
                f.path
            ));
            continue;
        };
        let ty = ecs["type"].as_str().unwrap_or("");
        let array = ecs["array"] == json!(true);
        let fits = match &f.yields {
            Yields::Number => NUMERIC.contains(&ty),
            Yields::Text | Yields::OneOf(_) => STRINGS.contains(&ty),
            Yields::List(_) => array && STRINGS.contains(&ty),
        };
        if !fits {
            problems.push(format!(
                "{} prints {:?} but ECS types it {ty}{}",
                f.path,
                f.yields,
                if array { " (array)" } else { "" }
            ));
        }
        if let Some(allowed) = facts["allowed_values"].get(&f.path) {
            let allowed = strings(allowed);
            let printed: BTreeSet<String> = match &f.yields {
                Yields::OneOf(v) => v.clone(),
                Yields::List(v) => v.iter().cloned().collect(),
                _ => {
                    problems.push(format!(
                        "{} has allowed values in ECS; the format must print one of them, not {:?}",
                        f.path, f.yields
                    ));
                    continue;
                }
            };
            for v in printed.difference(&allowed) {
                problems.push(format!("{} = {v} is not an allowed ECS value", f.path));
            }
        }
    }
    // Each category's expected event types cover every event.type the record prints.
    let values = |path: &str| match by_path.get(path).map(|f| &f.yields) {
        Some(Yields::List(v)) => v.clone(),
        Some(Yields::OneOf(v)) => v.iter().cloned().collect(),
        _ => Vec::new(),
    };
    for category in values("event.category") {
        let expected = strings(&facts["expected_event_types"][&category]);
        for ty in values("event.type") {
            if !expected.contains(&ty) {
                problems.push(format!(
                    "event.type {ty} is not an expected type of event.category {category} ({expected:?})"
                ));
            }
        }
    }
    problems
}

/// What is wrong with the template's mapping of the format's fields: the ECS type (and its
/// multi-fields) for each ECS field, keyword for `rfma.*`, `ignore_malformed` on `ip` fields
/// (Envoy prints a non-IP peer such as `envoy` or a pipe path there), and nothing else mapped.
fn template_against(fields: &[Field], facts: &Value, template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut wanted: Vec<(String, Value)> = fields
        .iter()
        .map(|f| {
            let ecs = if f.path.starts_with(OWN_PREFIX) {
                json!({"type": "keyword"})
            } else {
                facts["fields"].get(&f.path).cloned().unwrap_or(Value::Null)
            };
            (f.path.clone(), ecs)
        })
        .collect();
    for name in [
        "data_stream.type",
        "data_stream.dataset",
        "data_stream.namespace",
    ] {
        wanted.push((name.to_string(), facts["fields"][name].clone()));
    }
    for (path, ecs) in &wanted {
        let Some(m) = mapping(template, path) else {
            problems.push(format!("the index template does not map {path}"));
            continue;
        };
        let Some(ty) = ecs["type"].as_str() else {
            problems.push(format!("{path}: no ECS type to compare with"));
            continue;
        };
        if m["type"] != ty {
            problems.push(format!(
                "{path} is mapped as {} but ECS says {ty}",
                m["type"]
            ));
        }
        let multi = ecs["multi_fields"].as_object().cloned().unwrap_or_default();
        let mapped_multi = m["fields"].as_object().cloned().unwrap_or_default();
        for (name, ty) in &multi {
            if mapped_multi.get(name).map(|f| &f["type"]) != Some(ty) {
                problems.push(format!(
                    "{path}.{name} must be mapped as {ty} (an ECS multi-field)"
                ));
            }
        }
        for name in mapped_multi.keys().filter(|n| !multi.contains_key(*n)) {
            problems.push(format!("{path}.{name}: a multi-field ECS does not define"));
        }
        if ty == "ip" && m["ignore_malformed"] != json!(true) {
            problems.push(format!(
                "{path} is an ip field: map it with ignore_malformed so a peer that is not an IP does not cost the document"
            ));
        }
    }
    for path in mapped_fields(template) {
        if !wanted.iter().any(|(w, _)| *w == path) {
            problems.push(format!(
                "the index template maps {path}, which the format does not print"
            ));
        }
    }
    problems
}

fn facts() -> Value {
    json_file(FACTS)
}

fn fields() -> Vec<Field> {
    format_fields(&json_file(FORMAT))
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// --- The line check. Needs only serde_json: copy from here to the end marker, as a whole. ---

/// Every leaf of a JSON object, by dotted path; arrays are leaves.
pub fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// The mapping of `path` (`a.b.c`) in an index template, through nested `properties` or dotted
/// names (as Elastic's own component templates write them).
pub fn mapping<'a>(template: &'a Value, path: &str) -> Option<&'a Value> {
    fn lookup<'a>(props: &'a Value, parts: &[&str]) -> Option<&'a Value> {
        (1..=parts.len()).find_map(|n| {
            let node = props.get(parts[..n].join("."))?;
            if n == parts.len() {
                Some(node)
            } else {
                lookup(node.get("properties")?, &parts[n..])
            }
        })
    }
    let parts: Vec<&str> = path.split('.').collect();
    lookup(template.pointer("/template/mappings/properties")?, &parts)
}

fn scalar_fits(ty: &str, v: &Value) -> bool {
    match ty {
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_i64() || v.is_u64(),
        "double" | "float" | "half_float" | "scaled_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "date" => v.is_string() || v.is_u64(),
        "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" | "ip"
        | "version" => v.is_string(),
        _ => false,
    }
}

/// What is wrong with one access-record line, field by field: each field is ECS (`facts`, in the
/// shape of `tooling/tests/ecs-facts.json`) or under `rfma.` (a string); its JSON value fits the
/// ECS type (a list only where ECS normalizes to an array); a value with allowed values is one
/// of them, and each event.category expects each event.type; `@timestamp` is there. With a
/// `template`, each field is also mapped with that ECS type, and an `ip` field that holds no IP
/// (Envoy's `envoy`, a pipe path) is accepted only where the mapping ignores malformed values.
pub fn check_record_line(line: &str, facts: &Value, template: Option<&Value>) -> Vec<String> {
    let record: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => return vec![format!("not a JSON object: {other}")],
        Err(e) => return vec![format!("not JSON ({e}): {line}")],
    };
    let mut fields = Vec::new();
    leaves("", &record, &mut fields);
    let mut problems = Vec::new();
    if !fields.iter().any(|(p, _)| p == "@timestamp") {
        problems.push("no @timestamp".to_string());
    }
    for (path, value) in &fields {
        let ecs = facts["fields"].get(path);
        let ty = match ecs {
            Some(ecs) => ecs["type"].as_str().unwrap_or(""),
            None if path.starts_with("rfma.") => "keyword",
            None => {
                problems.push(format!("{path} is neither an ECS field nor under rfma."));
                continue;
            }
        };
        let array = ecs.is_some_and(|e| e["array"] == Value::Bool(true));
        // ECS normalizes some fields to arrays: those are lists even with one value.
        let fits = match value {
            Value::Array(items) => array && items.iter().all(|i| scalar_fits(ty, i)),
            v => !array && scalar_fits(ty, v),
        };
        if !fits {
            let list = if array { " (a list)" } else { "" };
            problems.push(format!("{path} = {value} does not fit its type {ty}{list}"));
        }
        let values: Vec<&str> = match value {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            v => v.as_str().into_iter().collect(),
        };
        if let Some(allowed) = facts["allowed_values"].get(path).and_then(Value::as_array) {
            for v in &values {
                if !allowed.iter().any(|a| a == v) {
                    problems.push(format!("{path} = {v} is not an allowed ECS value"));
                }
            }
        }
        let mapped = template.map(|t| mapping(t, path));
        if let Some(mapped) = mapped {
            match mapped {
                None => problems.push(format!("{path} is not mapped by the index template")),
                Some(m) if m["type"] != ty => {
                    problems.push(format!("{path} is mapped as {} but is {ty}", m["type"]))
                }
                Some(_) => {}
            }
        }
        if ty == "ip" {
            for v in &values {
                if v.parse::<std::net::IpAddr>().is_err() {
                    let ignored = mapped
                        .flatten()
                        .is_some_and(|m| m["ignore_malformed"] == Value::Bool(true));
                    if !ignored {
                        problems.push(format!(
                            "{path} = {v} is not an IP address (and nothing ignores it)"
                        ));
                    }
                }
            }
        }
    }
    let text = |path: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(p, _)| p == path)
            .flat_map(|(_, v)| match v {
                Value::Array(items) => items.clone(),
                v => vec![v.clone()],
            })
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    for category in text("event.category") {
        let expected = facts["expected_event_types"][&category]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for ty in text("event.type") {
            if !expected.iter().any(|e| *e == ty) {
                problems.push(format!(
                    "event.type {ty} is not expected for event.category {category}"
                ));
            }
        }
    }
    problems
}

// --- End of the line check. ---

/// Lines as Envoy prints them with the format (the first is a real one): allowed, denied, and
/// bypassed requests, over HTTP/1.1 and HTTP/2, one from a peer that is not an IP address.
pub const SAMPLE_LINES: &[&str] = &[
    r#"{"@timestamp":"2026-12-05T07:20:27.660Z","destination":{"address":"127.0.0.1","ip":"127.0.0.1","port":19900},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":100342,"kind":"event","module":"rfma","outcome":"success","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":97,"id":"31d4af67-5d1e-4c3e-9e58-0d1f1c2e7a11","method":"GET"},"response":{"body":{"bytes":2},"bytes":118,"status_code":200},"version":"1.1"},"network":{"protocol":"http"},"rfma":{"decision":"allow","token":{"name":"sleep"},"response_flags":"-","route":"r1"},"source":{"address":"127.0.0.1","ip":"127.0.0.1","port":40666},"url":{"original":"/anything/x?a=1&b=2","path":"/anything/x","query":"a=1&b=2","scheme":"http","domain":"127.0.0.1"},"user_agent":{"original":"curl/7.88.1"}}"#,
    r#"{"@timestamp":"2026-12-05T07:21:02.014Z","destination":{"address":"10.244.0.12","ip":"10.244.0.12","port":8080},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":412877,"kind":"event","module":"rfma","outcome":"failure","reason":"missing_token","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":212,"id":"8a1c0b7e-0f4e-4d55-9a3b-6f0e2d1c9b84","method":"POST"},"response":{"body":{"bytes":0},"bytes":91,"status_code":401},"version":"1.1"},"network":{"protocol":"http"},"rfma":{"decision":"deny","reason":"missing_token","principal":"spiffe://cluster.local/ns/demo/sa/sleep","route":"default","response_flags":"-"},"source":{"address":"10.244.0.9","ip":"10.244.0.9","port":51514},"url":{"original":"/post","path":"/post","scheme":"http","domain":"httpbin.demo"},"user_agent":{"original":"curl/8.11.1"}}"#,
    r#"{"@timestamp":"2026-12-05T07:22:45.301Z","destination":{"address":"fd00:10:244::c","ip":"fd00:10:244::c","port":8080},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":733120,"kind":"event","module":"rfma","outcome":"failure","reason":"principal_mismatch","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":64,"id":"c0ffee00-1111-4222-8333-944445555666","method":"GET"},"response":{"body":{"bytes":0},"bytes":27,"status_code":403},"version":"2"},"network":{"protocol":"http"},"rfma":{"decision":"deny","reason":"principal_mismatch","principal":"spiffe://cluster.local/ns/other/sa/default","route":"default","response_flags":"-","upstream":{"cluster":"inbound|8000||"}},"source":{"address":"fd00:10:244::7","ip":"fd00:10:244::7","port":39002},"trace":{"id":"0af7651916cd43dd8448eb211c80319c"},"url":{"original":"/headers","path":"/headers","scheme":"https","domain":"httpbin.demo"},"user_agent":{"original":"Go-http-client/2.0"}}"#,
    r#"{"@timestamp":"2026-12-05T07:23:10.000Z","destination":{"address":"10.244.0.12","ip":"10.244.0.12","port":15021},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":58211,"kind":"event","module":"rfma","outcome":"success","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":88,"id":"5b3e9f0a-7c1d-4e2f-8a9b-0c1d2e3f4a5b","method":"GET"},"response":{"body":{"bytes":2},"bytes":75,"status_code":200},"version":"1.1"},"network":{"protocol":"http"},"rfma":{"decision":"bypass","route":"health","response_flags":"-","upstream":{"address":"127.0.0.1:8080","cluster":"inbound|8080||"}},"source":{"address":"envoy","ip":"envoy","port":0},"url":{"original":"/healthz/ready","path":"/healthz/ready","scheme":"http"},"user_agent":{"original":"kube-probe/1.33"}}"#,
];

#[test]
fn every_format_field_agrees_with_the_projects_ecs_facts() {
    let format = json_file(FORMAT);
    let facts = facts();
    assert_eq!(
        format.pointer("/ecs/version"),
        facts.get("ecs_version"),
        "the record's ecs.version and the facts' ECS version"
    );
    let fields = format_fields(&format);
    assert!(fields.len() > 30, "only {} fields read", fields.len());
    assert_none(
        "the format against the ECS facts",
        format_against(&fields, &facts),
    );
    // The facts hold what the record uses (and the data stream's fields), nothing stale.
    for name in facts["fields"].as_object().unwrap().keys() {
        assert!(
            name.starts_with("data_stream.") || fields.iter().any(|f| f.path == *name),
            "ecs-facts.json keeps {name}, which the format does not print"
        );
    }
}

#[test]
fn the_format_and_the_facts_agree_with_the_full_ecs_definitions() {
    let facts = facts();
    let version = facts["ecs_version"].as_str().unwrap();
    let Some(ecs) = ecs_definitions(version) else {
        return;
    };
    let fields = fields();
    assert_none(
        "the format against the ECS definitions",
        format_against(&fields, &ecs),
    );
    // The project's facts are the definitions' own.
    for (name, fact) in facts["fields"].as_object().unwrap() {
        assert_eq!(Some(fact), ecs["fields"].get(name), "{name}");
    }
    for (name, values) in facts["allowed_values"].as_object().unwrap() {
        assert_eq!(Some(values), ecs["allowed_values"].get(name), "{name}");
    }
    assert_eq!(facts["expected_event_types"], ecs["expected_event_types"]);
    // And the check itself is not empty: a field ECS types differently is caught.
    let wrong = vec![Field {
        path: "http.response.status_code".into(),
        operator: None,
        yields: Yields::Text,
    }];
    assert_eq!(format_against(&wrong, &ecs).len(), 1);
}

#[test]
fn only_rfma_fields_are_outside_ecs() {
    let facts = facts();
    let ecs = ecs_definitions(facts["ecs_version"].as_str().unwrap());
    let known = |name: &str| match &ecs {
        Some(ecs) => ecs["fields"].get(name).is_some(),
        None => facts["fields"].get(name).is_some(),
    };
    let fields = fields();
    let outside: Vec<&str> = fields
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| !known(p))
        .collect();
    let own: Vec<&str> = fields
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.starts_with(OWN_PREFIX))
        .collect();
    assert_eq!(
        outside, own,
        "the fields outside ECS are exactly the rfma.* ones"
    );
    assert!(own.contains(&"rfma.decision") && own.contains(&"rfma.token.name"));
    if let Some(ecs) = &ecs {
        let clash: Vec<&String> = ecs["fields"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(OWN_PREFIX))
            .collect();
        assert!(clash.is_empty(), "ECS defines {clash:?}");
    }
}

#[test]
fn the_index_template_maps_every_format_field_with_its_ecs_type() {
    let format = json_file(FORMAT);
    let template = json_file(TEMPLATE);
    let facts = facts();
    let fields = format_fields(&format);
    assert_none(
        "the index template against the format and ECS",
        template_against(&fields, &facts, &template),
    );
    if let Some(ecs) = ecs_definitions(facts["ecs_version"].as_str().unwrap()) {
        assert_none(
            "the index template against the ECS definitions",
            template_against(&fields, &ecs, &template),
        );
    }
    // The data stream's constant fields say what the index pattern says.
    let dataset = format_constant(&format, "event.dataset").expect("event.dataset is a constant");
    let pattern = template["index_patterns"][0].as_str().unwrap();
    assert_eq!(pattern, format!("logs-{dataset}-*"));
    for (field, value) in [
        ("data_stream.type", "logs"),
        ("data_stream.dataset", dataset.as_str()),
    ] {
        let m = mapping(&template, field).unwrap();
        assert!(
            m.get("value").is_none_or(|v| v == value),
            "{field} = {m} in a template for {pattern}"
        );
    }
}

#[test]
fn the_outcome_cel_prints_exactly_the_ecs_outcomes() {
    let facts = facts();
    let outcome = fields()
        .into_iter()
        .find(|f| f.path == "event.outcome")
        .expect("the record has event.outcome");
    assert_eq!(outcome.operator.as_deref(), Some("CEL"));
    assert_eq!(
        outcome.yields,
        Yields::OneOf(strings(&facts["allowed_values"]["event.outcome"]))
    );
    // The reading of CEL is what makes that hold: results, not compared literals.
    let (values, open) =
        cel_results("a == 'HTTP/2' ? '2' : (b >= 400 ? 'x' : request.headers[':never'])");
    assert_eq!(
        (values, open),
        (BTreeSet::from(["2".into(), "x".into()]), false)
    );
    let (values, open) = cel_results("request.query != '' ? request.query : 'none'");
    assert_eq!((values, open), (BTreeSet::from(["none".into()]), true));
}

#[test]
fn the_index_template_is_a_logs_data_stream_with_a_lifecycle() {
    let template = json_file(TEMPLATE);
    assert!(template["data_stream"].is_object());
    let composed = strings(&template["composed_of"]);
    for c in ["logs@settings", "logs@mappings", "ecs@mappings"] {
        assert!(composed.contains(c), "composed_of lacks {c}: {composed:?}");
    }
    // Above Elasticsearch's own `logs` template (priority 100) for logs-*-*.
    assert!(template["priority"].as_u64().unwrap() > 100);
    let retention = template
        .pointer("/template/lifecycle/data_retention")
        .and_then(Value::as_str)
        .expect("a data stream lifecycle with a retention");
    assert!(retention.ends_with('d'), "{retention}");
    // logs@settings names an ILM policy (rollover, no delete); without this the policy would
    // manage the backing indices and the retention would never apply.
    assert_eq!(
        template.pointer("/template/settings/index/lifecycle/prefer_ilm"),
        Some(&json!(false))
    );
}

#[test]
fn sample_record_lines_are_ecs_field_by_field() {
    let facts = facts();
    let template = json_file(TEMPLATE);
    let ecs = ecs_definitions(facts["ecs_version"].as_str().unwrap());
    let format_paths: BTreeSet<String> = fields().into_iter().map(|f| f.path).collect();
    let decisions = ["allow", "deny", "bypass"];
    let reasons: Vec<&str> = rfma_filter::gate::Reason::ALL
        .iter()
        .map(|r| r.code())
        .collect();
    for line in SAMPLE_LINES {
        assert_none(line, check_record_line(line, &facts, Some(&template)));
        if let Some(ecs) = &ecs {
            assert_none(line, check_record_line(line, ecs, Some(&template)));
        }
        let record: Value = serde_json::from_str(line).unwrap();
        let mut leaves_of_line = Vec::new();
        leaves("", &record, &mut leaves_of_line);
        for (path, _) in &leaves_of_line {
            assert!(format_paths.contains(path), "{path} is not in the format");
        }
        let decision = record.pointer("/rfma/decision").and_then(Value::as_str);
        assert!(decision.is_some_and(|d| decisions.contains(&d)), "{line}");
        let reason = record.pointer("/rfma/reason").and_then(Value::as_str);
        assert_eq!(
            reason,
            record.pointer("/event/reason").and_then(Value::as_str)
        );
        assert_eq!(reason.is_some(), decision == Some("deny"), "{line}");
        assert!(reason.is_none_or(|r| reasons.contains(&r)), "{line}");
    }
}

#[test]
fn the_line_check_names_every_field_that_breaks_ecs() {
    let facts = facts();
    let template = json_file(TEMPLATE);
    let mut record: Value = serde_json::from_str(SAMPLE_LINES[0]).unwrap();
    record["event"]["outcome"] = json!("ok");
    record["event"]["category"] = json!("web");
    record["event"]["type"] = json!(["denied"]);
    record["source"]["port"] = json!("40666");
    record["action"] = json!("rfma-token-gate");
    record["rfma"]["extra"] = json!(1);
    let problems = check_record_line(&record.to_string(), &facts, Some(&template));
    for wanted in [
        "event.outcome = ok",
        "event.category = \"web\"",
        "event.type denied",
        "source.port",
        "action is neither",
        "rfma.extra = 1",
        "rfma.extra is not mapped",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(wanted)),
            "nothing about `{wanted}` in {problems:#?}"
        );
    }
    // A peer that is not an IP passes only where the mapping ignores malformed values.
    let mut strict = template.clone();
    strict["template"]["mappings"]["properties"]["source"]["properties"]["ip"] =
        json!({"type": "ip"});
    let envoy = SAMPLE_LINES[3];
    assert!(check_record_line(envoy, &facts, Some(&template)).is_empty());
    assert_eq!(
        check_record_line(envoy, &facts, Some(&strict)),
        ["source.ip = envoy is not an IP address (and nothing ignores it)"]
    );
    assert!(check_record_line("-", &facts, None)[0].starts_with("not"));
}
