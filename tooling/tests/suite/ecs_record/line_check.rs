//! [`check_record_line`]: one access-record line against the facts (and the template).

use serde_json::Value;

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
