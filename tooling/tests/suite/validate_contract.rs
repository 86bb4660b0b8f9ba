//! The manifests agree with the filter's public contract (issue 2), checked against the filter
//! crate itself rather than against copies of its names:
//! - the Elasticsearch index template maps every field of a real access record with a fitting type;
//! - Filebeat routes and decodes exactly the records the filter writes, into that template's data stream;
//! - the mesh access log prints the filter state key the filter sets, and the Telemetry uses it;
//! - the Grafana dashboard queries every counter the filter defines, through its one prefix variable.

use rfma_filter::gate::{Decision, Reason};
use rfma_filter::record::AccessRecord;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(&read(rel))
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Records with every optional field present, for each kind of decision.
fn records() -> Vec<Value> {
    let decisions = [Decision::Allow { token: 0 }, Decision::Bypass]
        .into_iter()
        .chain(Reason::ALL.into_iter().map(Decision::Deny));
    decisions
        .map(|decision| {
            let record = AccessRecord {
                timestamp_ns: 1_764_000_000_123_000_000,
                decision,
                token_name: matches!(decision, Decision::Allow { .. }).then_some("sleep"),
                method: b"GET",
                path: b"/get",
                query: Some(b"a=1"),
                status: Some(200),
                duration_ns: Some(1_500_000),
                request_id: Some(b"0f1e2d3c"),
                protocol: Some(b"HTTP/1.1"),
                authority: Some(b"httpbin.demo:8000"),
                source_address: Some(b"10.0.0.7:41234"),
                user_agent: Some(b"curl/8.11.1"),
                traceparent: Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                b3_trace_id: None,
                principal: Some(b"spiffe://cluster.local/ns/demo/sa/sleep"),
            };
            let mut bytes = Vec::new();
            record.write(&mut bytes);
            let line = String::from_utf8(bytes).expect("a record is UTF-8");
            assert!(!line.contains('\n'));
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("record is not JSON ({e}): {line}"))
        })
        .collect()
}

fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
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

fn mapping_type<'a>(template: &'a Value, path: &str) -> Option<&'a str> {
    let mut node = template.pointer("/template/mappings")?;
    for part in path.split('.') {
        node = node.get("properties")?.get(part)?;
    }
    node.get("type")?.as_str()
}

#[test]
fn the_index_template_maps_every_record_field_with_a_fitting_type() {
    let template: Value =
        serde_json::from_str(&read("elk/files/rfma-index-template.json")).unwrap();
    let mut checked = 0;
    for record in records() {
        let mut fields = Vec::new();
        leaves("", &record, &mut fields);
        for (path, value) in fields {
            let ty = mapping_type(&template, &path)
                .unwrap_or_else(|| panic!("the index template does not map `{path}`"));
            let fits = match (&value, path.as_str()) {
                (_, "@timestamp") => ty == "date",
                (_, "source.ip") => ty == "ip",
                (Value::Number(_), _) => matches!(ty, "long" | "integer"),
                (Value::String(_), _) => matches!(ty, "keyword" | "wildcard" | "constant_keyword"),
                (Value::Array(items), _) => items.iter().all(Value::is_string) && ty == "keyword",
                _ => false,
            };
            assert!(fits, "`{path}` = {value} is mapped as `{ty}`");
            checked += 1;
        }
    }
    assert!(checked > 7 * 15, "only {checked} fields checked");
}

#[test]
fn filebeat_routes_the_records_into_the_templates_data_stream() {
    let record = &records()[0];
    let action = record
        .pointer("/event/action")
        .and_then(Value::as_str)
        .unwrap();
    let config = yaml("elk/files/filebeat.yml").remove(0);
    let route = &config["output.elasticsearch"]["indices"][0];
    assert_eq!(route["when.equals"]["event.action"], action, "{route}");
    let index = route["index"].as_str().unwrap();
    let template: Value =
        serde_json::from_str(&read("elk/files/rfma-index-template.json")).unwrap();
    let patterns: Vec<&str> = template["index_patterns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        patterns
            .iter()
            .any(|p| index.starts_with(p.trim_end_matches('*'))),
        "{index} matches none of {patterns:?}"
    );
    assert!(
        template.get("data_stream").is_some(),
        "Filebeat writes a data stream: the template must declare one"
    );
    // The decode step only fires on the filter's records, in the sidecar's container.
    let input = &config["filebeat.inputs"][0];
    assert_eq!(input["type"], "filestream");
    assert!(
        input["parsers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.get("container").is_some())
    );
    let processors = input["processors"].to_string();
    assert!(
        processors.contains("add_kubernetes_metadata"),
        "{processors}"
    );
    assert!(
        processors.contains("decode_json_fields")
            && processors.contains(action)
            && processors.contains("istio-proxy"),
        "{processors}"
    );
}

#[test]
fn the_mesh_access_log_prints_the_filter_state_the_filter_sets() {
    let key = std::str::from_utf8(rfma_filter::host::ACCESS_RECORD).unwrap();
    let format = format!("%FILTER_STATE(wasm.{key}:PLAIN)%");
    let istiod = yaml("istio/system/istiod.yaml").remove(0);
    let providers = istiod
        .pointer("/spec/values/meshConfig/extensionProviders")
        .and_then(Value::as_array)
        .unwrap();
    let provider = providers
        .iter()
        .find(|p| {
            p.pointer("/envoyFileAccessLog/logFormat/text")
                .and_then(Value::as_str)
                == Some(&format!("{format}\n"))
        })
        .unwrap_or_else(|| panic!("no extension provider prints exactly {format}: {providers:?}"));
    let name = provider["name"].as_str().unwrap();
    let telemetry = yaml("istio/telemetry.yaml").remove(0);
    assert_eq!(
        telemetry
            .pointer("/spec/accessLogging/0/providers/0/name")
            .and_then(Value::as_str),
        Some(name)
    );
    // And the plugin's configuration keeps the record in that filter state.
    let plugin = yaml("istio/wasm/wasmplugin/wasmplugin.yaml").remove(0);
    let sink = plugin
        .pointer("/spec/pluginConfig/log/sink")
        .and_then(Value::as_str);
    assert!(matches!(sink, Some("filter_state" | "both")), "{sink:?}");
}

#[test]
fn the_dashboard_queries_every_counter_through_one_prefix_variable() {
    let dashboard: Value =
        serde_json::from_str(&read("monitoring/dashboards/rfma-token-gate.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for counter in rfma_filter::response::COUNTERS {
        let wanted = format!("${{metric_prefix}}{counter}");
        assert!(
            exprs.iter().any(|e| e.contains(&wanted)),
            "no query uses {wanted}"
        );
    }
    // Every mention of a counter goes through the variable, so fixing the names is one edit.
    for e in &exprs {
        let bare = e.replace("${metric_prefix}rfma_", "");
        assert!(
            !bare.contains("rfma_"),
            "a query names a counter without ${{metric_prefix}}: {e}"
        );
    }
    let vars = dashboard
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "metric_prefix" && v["type"] == "constant")
    );
}
