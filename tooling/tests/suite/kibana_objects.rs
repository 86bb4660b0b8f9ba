//! The Kibana saved objects (`elk/files/rfma-kibana.ndjson`, imported by the bootstrap Job) stand
//! on the record: every field a panel aggregates, filters or queries on is one the format file
//! prints and the index template maps; the data view is the template's index pattern; the
//! dashboard `rfma-gate` references each of its panels and nothing else; and the file pins the
//! saved-object versions of the Kibana that elk/kibana.yaml runs.

use crate::ecs_record::{self, FORMAT, TEMPLATE, Yields};
use rfma_filter::gate::{Decision, Reason};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const OBJECTS: &str = "elk/files/rfma-kibana.ndjson";
const DASHBOARD: &str = "rfma-gate";
/// The Kibana these saved objects are written for: elk/kibana.yaml's image tag.
const KIBANA: &str = "9.1.0";
/// Kibana 9.1's saved-object versions: core's, and per type the last migration the file's
/// shape has had (newer model versions of those types only add mappings). Importing runs the
/// migrations after these; a version newer than Kibana knows is refused.
const CORE_MIGRATION_VERSION: &str = "8.8.0";
const TYPE_MIGRATION_VERSIONS: &[(&str, &str)] = &[
    ("index-pattern", "8.0.0"),
    ("lens", "8.9.0"),
    ("dashboard", "8.9.0"),
];
/// Lens operations that need a number.
const NUMERIC_OPERATIONS: &[&str] = &[
    "percentile",
    "percentile_rank",
    "average",
    "median",
    "sum",
    "min",
    "max",
    "standard_deviation",
];

fn objects() -> Vec<Value> {
    let text = std::fs::read_to_string(ecs_record::repo().join(OBJECTS)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{OBJECTS}: {e}: {l}")))
        .collect()
}

fn of_type<'a>(objects: &'a [Value], ty: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["type"] == ty).collect()
}

fn parse_json_string(v: &Value, what: &str) -> Value {
    serde_json::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("{what} is a JSON string")),
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The `field : value` terms of a KQL query: each name right before a `:` (outside quotes), with
/// the quoted value after it, if any.
fn kql_terms(query: &str) -> Vec<(String, Option<String>)> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut i = 0;
    let quoted_until = |from: usize| {
        let mut k = from;
        while k < chars.len() && chars[k] != '"' {
            k += if chars[k] == '\\' { 2 } else { 1 };
        }
        k.min(chars.len())
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i = quoted_until(i + 1) + 1;
            word.clear();
        } else if c == ':' && !word.is_empty() {
            let field = std::mem::take(&mut word);
            let mut j = i + 1;
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            if chars.get(j) == Some(&'"') {
                let end = quoted_until(j + 1);
                out.push((field, Some(chars[j + 1..end].iter().collect())));
                i = end + 1;
            } else {
                out.push((field, None));
                i = j;
            }
        } else {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '@') {
                word.push(c);
            } else if !(c.is_whitespace()
                && chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&':'))
            {
                word.clear();
            }
            i += 1;
        }
    }
    out
}

/// (field, operation) for each column, and the KQL queries.
type Uses = (Vec<(String, String)>, Vec<String>);

/// What a Lens saved object reads from the data: (field, operation) for each column, and the
/// KQL queries of the panel (its query, its filters, column filters, `filters` buckets).
fn lens_uses(lens: &Value) -> Uses {
    let state = &lens["attributes"]["state"];
    let mut columns = Vec::new();
    let mut queries = Vec::new();
    queries.extend(
        state
            .pointer("/query/query")
            .and_then(Value::as_str)
            .map(String::from),
    );
    for filter in state["filters"].as_array().into_iter().flatten() {
        if let Some(key) = filter.pointer("/meta/key").and_then(Value::as_str) {
            queries.push(format!("{key} : *"));
        }
    }
    let layers = state
        .pointer("/datasourceStates/formBased/layers")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{}: no formBased layers", lens["id"]));
    for layer in layers.values() {
        for column in layer["columns"].as_object().unwrap().values() {
            let op = column["operationType"].as_str().unwrap_or("").to_string();
            if let Some(field) = column["sourceField"].as_str() {
                columns.push((field.to_string(), op.clone()));
            }
            for field in column
                .pointer("/params/secondaryFields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                columns.push((field.to_string(), op.clone()));
            }
            queries.extend(
                column
                    .pointer("/filter/query")
                    .and_then(Value::as_str)
                    .map(String::from),
            );
            for f in column
                .pointer("/params/filters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                queries.extend(
                    f.pointer("/input/query")
                        .and_then(Value::as_str)
                        .map(String::from),
                );
            }
        }
    }
    (columns, queries)
}

#[test]
fn every_field_the_saved_objects_use_is_one_the_record_has_and_the_template_maps() {
    let objects = objects();
    let format = ecs_record::json_file(FORMAT);
    let template = ecs_record::json_file(TEMPLATE);
    let fields: BTreeMap<String, Yields> = ecs_record::format_fields(&format)
        .into_iter()
        .map(|f| (f.path, f.yields))
        .collect();
    let decisions = ["allow", "bypass", "deny"].map(|d| d.to_string());
    let reasons: BTreeSet<String> = Reason::ALL.iter().map(|r| r.code().to_string()).collect();
    let known = |field: &str, what: &str| {
        assert!(
            fields.contains_key(field),
            "{what} uses {field}, which the format does not print"
        );
        assert!(
            ecs_record::mapping(&template, field).is_some(),
            "{what} uses {field}, which the index template does not map"
        );
    };
    let lenses = of_type(&objects, "lens");
    assert!(lenses.len() >= 4, "{} Lens objects", lenses.len());
    let mut checked = 0;
    for lens in lenses {
        let what = format!("Lens {}", lens["id"]);
        let (columns, queries) = lens_uses(lens);
        for (field, op) in &columns {
            if field == "___records___" {
                continue;
            }
            known(field, &what);
            if NUMERIC_OPERATIONS.contains(&op.as_str()) {
                assert_eq!(fields[field], Yields::Number, "{what}: {op} of {field}");
            }
            if op == "date_histogram" {
                let m = ecs_record::mapping(&template, field).unwrap();
                assert_eq!(m["type"], "date", "{what}: date histogram on {field}");
            }
            checked += 1;
        }
        for query in &queries {
            let terms = kql_terms(query);
            assert!(
                !terms.is_empty() || query.trim().is_empty(),
                "{what}: `{query}` names no field"
            );
            for (field, value) in terms {
                known(&field, &format!("{what} (`{query}`)"));
                let Some(value) = value else { continue };
                let possible: Option<BTreeSet<String>> = match (field.as_str(), &fields[&field]) {
                    ("rfma.decision", _) => Some(decisions.iter().cloned().collect()),
                    ("rfma.reason" | "event.reason", _) => Some(reasons.clone()),
                    (_, Yields::OneOf(values)) => Some(values.clone()),
                    _ => None,
                };
                if let Some(possible) = possible {
                    assert!(
                        possible.contains(&value),
                        "{what}: {field} is never {value} (it is one of {possible:?})"
                    );
                }
                checked += 1;
            }
        }
        // Each layer reads the data view; each accessor names a column of its layer.
        let state = &lens["attributes"]["state"];
        let layers = state["datasourceStates"]["formBased"]["layers"]
            .as_object()
            .unwrap();
        for (id, layer) in layers {
            let reference = lens["references"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == format!("indexpattern-datasource-layer-{id}"))
                .unwrap_or_else(|| panic!("{what}: layer {id} has no data view reference"));
            assert_eq!(reference["type"], "index-pattern", "{what}");
            let dataview = objects
                .iter()
                .find(|o| o["id"] == reference["id"])
                .unwrap_or_else(|| {
                    panic!("{what}: data view {} is not in the file", reference["id"])
                });
            assert_eq!(dataview["type"], "index-pattern");
            let columns: BTreeSet<&String> = layer["columns"].as_object().unwrap().keys().collect();
            let order: BTreeSet<&String> = layer["columnOrder"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    Value::String(s) => s,
                    other => panic!("{what}: column id {other}"),
                })
                .collect();
            assert_eq!(columns, order, "{what}: columnOrder lists the columns");
        }
        let mut accessors = Vec::new();
        let vis = &state["visualization"];
        let vis_layers: Vec<&Value> = match vis["layers"].as_array() {
            Some(l) => l.iter().collect(),
            None => vec![vis],
        };
        for l in vis_layers {
            let id = l["layerId"].as_str().unwrap();
            let columns = layers[id]["columns"].as_object().unwrap();
            for key in ["xAccessor", "splitAccessor", "metricAccessor"] {
                accessors.extend(l[key].as_str().map(|a| (id, a.to_string())));
            }
            for a in l["accessors"].as_array().into_iter().flatten() {
                accessors.push((id, a.as_str().unwrap().to_string()));
            }
            for c in l["columns"].as_array().into_iter().flatten() {
                accessors.push((id, c["columnId"].as_str().unwrap().to_string()));
            }
            for (_, a) in accessors.iter().filter(|(l, _)| *l == id) {
                assert!(columns.contains_key(a), "{what}: accessor {a} is no column");
            }
        }
        assert!(!accessors.is_empty(), "{what} shows nothing");
    }
    assert!(checked >= 8, "only {checked} uses checked");
}

#[test]
fn the_data_view_is_the_templates_index_pattern() {
    let objects = objects();
    let template = ecs_record::json_file(TEMPLATE);
    let views = of_type(&objects, "index-pattern");
    assert_eq!(views.len(), 1);
    let view = &views[0]["attributes"];
    let patterns = template["index_patterns"].as_array().unwrap();
    assert!(
        patterns.contains(&view["title"]),
        "{} vs {patterns:?}",
        view["title"]
    );
    let time = view["timeFieldName"].as_str().unwrap();
    assert_eq!(
        ecs_record::mapping(&template, time).unwrap()["type"],
        "date"
    );
}

#[test]
fn the_dashboard_references_each_of_its_panels_and_nothing_else() {
    let objects = objects();
    let dashboard = objects
        .iter()
        .find(|o| o["type"] == "dashboard" && o["id"] == DASHBOARD)
        .unwrap_or_else(|| panic!("no dashboard {DASHBOARD}"));
    let panels = parse_json_string(&dashboard["attributes"]["panelsJSON"], "panelsJSON");
    let panels = panels.as_array().unwrap();
    let references = dashboard["references"].as_array().unwrap();
    let mut used = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let index = panel["panelIndex"].as_str().unwrap();
        assert_eq!(panel["gridData"]["i"], index);
        let name = format!("{index}:{}", panel["panelRefName"].as_str().unwrap());
        let reference = references
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("panel {index}: no reference {name}"));
        assert_eq!(reference["type"], panel["type"], "panel {index}");
        let target = objects
            .iter()
            .find(|o| o["id"] == reference["id"] && o["type"] == reference["type"])
            .unwrap_or_else(|| panic!("panel {index}: {} is not in the file", reference["id"]));
        used.insert(target["id"].as_str().unwrap().to_string());
        // On the 48-column grid, and no two panels on one cell.
        let g = &panel["gridData"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(x + w <= 48, "panel {index} is wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "panel {index} overlaps another");
            }
        }
    }
    assert_eq!(used.len(), panels.len(), "two panels show one object");
    assert_eq!(references.len(), panels.len(), "a reference no panel uses");
    let lenses: BTreeSet<String> = of_type(&objects, "lens")
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(used, lenses, "every Lens object is on the dashboard");
    parse_json_string(&dashboard["attributes"]["optionsJSON"], "optionsJSON");
    parse_json_string(
        &dashboard["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"],
        "searchSourceJSON",
    );
}

#[test]
fn the_dashboard_shows_decisions_by_reason_top_tokens_denied_paths_and_p95_duration() {
    let objects = objects();
    let lenses = of_type(&objects, "lens");
    let uses: Vec<Uses> = lenses.iter().map(|l| lens_uses(l)).collect();
    let has_column = |field: &str, op: &str| {
        uses.iter()
            .position(|(c, _)| c.iter().any(|(f, o)| f == field && o == op))
    };
    // Decisions over time, a series for each decision and each deny reason.
    let over_time = uses
        .iter()
        .find(|(c, _)| c.iter().any(|(_, o)| o == "date_histogram"))
        .expect("a panel over time");
    let terms: Vec<(String, Option<String>)> =
        over_time.1.iter().flat_map(|q| kql_terms(q)).collect();
    let values = |field: &str| -> BTreeSet<String> {
        terms
            .iter()
            .filter(|(f, _)| f == field)
            .filter_map(|(_, v)| v.clone())
            .collect()
    };
    let decisions = [
        Decision::Allow { token: 0 },
        Decision::Bypass,
        Decision::Deny(Reason::MissingToken),
    ]
    .map(|d| d.code().to_string());
    assert_eq!(values("rfma.decision"), decisions.into_iter().collect());
    let reasons: BTreeSet<String> = Reason::ALL.iter().map(|r| r.code().to_string()).collect();
    assert_eq!(values("rfma.reason"), reasons);
    // Top token names; top denied paths; the 95th percentile of the duration.
    assert!(has_column("rfma.token.name", "terms").is_some());
    let paths = has_column("url.path", "terms").expect("a top of url.path");
    let denied = uses[paths]
        .1
        .iter()
        .flat_map(|q| kql_terms(q))
        .any(|(f, v)| f == "rfma.decision" && v.as_deref() == Some("deny"));
    assert!(denied, "the url.path panel is limited to denied requests");
    let p95 = lenses[has_column("event.duration", "percentile").expect("a percentile")];
    let column = p95["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|l| l["columns"].as_object().unwrap().values())
        .find(|c| c["operationType"] == "percentile")
        .unwrap();
    assert_eq!(
        column.pointer("/params/percentile"),
        Some(&serde_json::json!(95))
    );
}

#[test]
fn the_saved_objects_pin_the_format_of_the_kibana_deployed() {
    let kibana = std::fs::read_to_string(ecs_record::repo().join("elk/kibana.yaml")).unwrap();
    let image = kibana
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("image: docker.elastic.co/kibana/kibana:")
        })
        .expect("elk/kibana.yaml names Kibana's image");
    assert_eq!(
        image, KIBANA,
        "Kibana moved: check the saved-object versions of {OBJECTS} against it (re-export from that Kibana), then update this test's table"
    );
    for object in objects() {
        let ty = object["type"].as_str().unwrap();
        let wanted = TYPE_MIGRATION_VERSIONS
            .iter()
            .find(|(t, _)| *t == ty)
            .unwrap_or_else(|| panic!("no version pinned for type {ty}"))
            .1;
        assert_eq!(object["typeMigrationVersion"], wanted, "{}", object["id"]);
        assert_eq!(
            object["coreMigrationVersion"], CORE_MIGRATION_VERSION,
            "{}",
            object["id"]
        );
    }
}

#[test]
fn kql_terms_are_field_names_before_a_colon() {
    assert_eq!(
        kql_terms(r#"rfma.decision : "deny" and rfma.reason:"a:b" or not url.path : * "x: y""#),
        vec![
            ("rfma.decision".to_string(), Some("deny".to_string())),
            ("rfma.reason".to_string(), Some("a:b".to_string())),
            ("url.path".to_string(), None),
        ]
    );
}
