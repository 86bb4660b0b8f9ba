//! The index template: what it maps, and whether it maps each format field with its ECS type.

use super::*;
use serde_json::{Map, Value, json};

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

/// What is wrong with the template's mapping of the format's fields: the ECS type (and its
/// multi-fields) for each ECS field, keyword for `rfma.*`, `ignore_malformed` on `ip` fields
/// (Envoy prints a non-IP peer such as `envoy` or a pipe path there), and nothing else mapped.
pub(super) fn template_against(fields: &[Field], facts: &Value, template: &Value) -> Vec<String> {
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
