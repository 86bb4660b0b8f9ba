//! The ECS facts: the full definitions in `../shared/ecs/` when present, and the format's
//! fields measured against facts of either source.

use super::*;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The ECS definitions of `ecs_flat-<version>.yml`, when `../shared/ecs` holds them, as facts in
/// the shape of `ecs-facts.json` (every ECS field). Read once per run.
pub(super) fn ecs_definitions(version: &str) -> Option<Value> {
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

pub(super) fn strings(v: &Value) -> BTreeSet<String> {
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
pub(super) fn format_against(fields: &[Field], facts: &Value) -> Vec<String> {
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
