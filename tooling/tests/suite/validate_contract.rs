//! The manifests agree with the filter's public contract (issue 2), checked against the filter
//! crate itself rather than against copies of its names:
//! - the Elasticsearch index template maps every field of a real access record with a fitting type;
//! - Filebeat routes and decodes exactly the records the filter writes, into that template's data stream;
//! - the mesh access log prints the filter state key the filter sets, and the Telemetry uses it;
//! - the Grafana dashboard queries every counter the filter defines, through its one prefix variable.

use crate::ecs_record::{self, FACTS, FORMAT, TEMPLATE, Yields};
use rfma_filter::gate::{Decision, Reason};
use rfma_filter::handover;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
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

/// Every decision the gate makes: allowed, bypassed, and denied for each reason.
fn decisions() -> Vec<Decision> {
    [Decision::Allow { token: 0 }, Decision::Bypass]
        .into_iter()
        .chain(Reason::ALL.into_iter().map(Decision::Deny))
        .collect()
}

/// The record Envoy prints for `decision`, rendered from the format file: where the format prints
/// filter state, what the filter hands over for that decision (`handover::values`); a plausible
/// value for every other operator; nothing where the value is empty (`omit_empty_values`).
fn rendered(decision: Decision) -> Value {
    let handed: BTreeMap<String, String> =
        handover::values(decision, Some("sleep"), Some(b"httpbin.demo:8000"))
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
    render(&ecs_record::json_file(FORMAT), &handed).expect("a record has fields")
}

fn render(node: &Value, handed: &BTreeMap<String, String>) -> Option<Value> {
    match node {
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), render(v, handed)?)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::String(s) => match ecs_record::operator(s) {
            None => Some(node.clone()),
            Some(("FILTER_STATE", Some(args))) => {
                let key = args.strip_prefix("wasm.")?.split(':').next()?;
                handed.get(key).map(|v| json!(v))
            }
            Some(("START_TIME", _)) => Some(json!("2026-12-05T07:20:27.660Z")),
            Some((name, args)) => match ecs_record::operator_yields(name, args) {
                Yields::Number => Some(json!(1234)),
                Yields::OneOf(values) => values.into_iter().next().map(Value::String),
                Yields::List(items) => Some(json!(items)),
                Yields::Text if name.contains("ADDRESS") => Some(json!("10.0.0.7")),
                Yields::Text => Some(json!("x")),
            },
        },
        other => Some(other.clone()),
    }
}

#[test]
fn the_index_template_maps_every_record_field_with_a_fitting_type() {
    let template = ecs_record::json_file(TEMPLATE);
    let facts = ecs_record::json_file(FACTS);
    let mut checked = 0;
    for decision in decisions() {
        let record = rendered(decision);
        let line = record.to_string();
        let problems = ecs_record::check_record_line(&line, &facts, Some(&template));
        assert!(problems.is_empty(), "{line}:\n{problems:#?}");
        // What the filter hands over lands where the record names it.
        let at = |pointer: &str| record.pointer(pointer).and_then(Value::as_str);
        assert_eq!(at("/rfma/decision"), Some(decision.code()), "{line}");
        assert_eq!(at("/url/domain"), Some("httpbin.demo"), "{line}");
        match decision {
            Decision::Deny(reason) => {
                assert_eq!(at("/rfma/reason"), Some(reason.code()), "{line}");
                assert_eq!(at("/event/reason"), Some(reason.code()), "{line}");
            }
            Decision::Allow { .. } => assert_eq!(at("/rfma/token/name"), Some("sleep"), "{line}"),
            Decision::Bypass => assert_eq!(at("/rfma/reason"), None, "{line}"),
        }
        let mut fields = Vec::new();
        ecs_record::leaves("", &record, &mut fields);
        checked += fields.len();
    }
    assert!(checked > 7 * 30, "only {checked} fields checked");
}

/// Whether Filebeat's `regexp` condition matches `text`. Filebeat's regexps are Go's RE2; the
/// ones in filebeat.yml use nothing where ECMA 262 (JSON Schema's `pattern`, evaluated by the
/// jsonschema crate the validate command uses) means something else.
fn regexp_matches(pattern: &str, text: &str) -> bool {
    jsonschema::validator_for(&json!({"type": "string", "pattern": pattern}))
        .unwrap_or_else(|e| panic!("`{pattern}` is not a regular expression: {e}"))
        .is_valid(&json!(text))
}

/// A processor's or a route's `when.equals`, written nested or with a dotted key.
fn when_equals(v: &Value) -> Option<&Map<String, Value>> {
    v.pointer("/when/equals")
        .or_else(|| v.get("when.equals"))
        .and_then(Value::as_object)
}

#[test]
fn filebeat_routes_the_records_into_the_templates_data_stream() {
    let format = ecs_record::json_file(FORMAT);
    let dataset = ecs_record::format_constant(&format, "event.dataset")
        .expect("the format's event.dataset is a constant");
    let config = yaml("elk/files/filebeat.yml").remove(0);
    let template = ecs_record::json_file(TEMPLATE);

    // Routed on event.dataset into the data stream the template matches.
    let routes = config["output.elasticsearch"]["indices"]
        .as_array()
        .unwrap();
    let route = routes
        .iter()
        .find(|r| when_equals(r).and_then(|w| w.get("event.dataset")) == Some(&json!(dataset)))
        .unwrap_or_else(|| panic!("no route on event.dataset: {dataset} in {routes:?}"));
    let index = route["index"].as_str().unwrap();
    assert!(index.starts_with(&format!("logs-{dataset}-")), "{index}");
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
        template["data_stream"].is_object(),
        "Filebeat writes a data stream: the template must declare one"
    );

    // Both runtimes' log files, each through the container parser and the Kubernetes metadata.
    let inputs = config["filebeat.inputs"].as_array().unwrap();
    for path in [
        "/var/log/containers/*.log",
        "/var/lib/docker/containers/*/*.log",
    ] {
        let input = inputs
            .iter()
            .find(|i| {
                i["paths"]
                    .as_array()
                    .is_some_and(|p| p.contains(&json!(path)))
            })
            .unwrap_or_else(|| panic!("no input reads {path}"));
        assert_eq!(input["type"], "filestream", "{path}");
        let parsers = input["parsers"].as_array().unwrap();
        assert!(
            parsers.iter().any(|p| p.get("container").is_some()),
            "{path}"
        );
        let processors = input["processors"].as_array().unwrap();
        assert!(
            processors
                .iter()
                .any(|p| p.get("add_kubernetes_metadata").is_some()),
            "{path}"
        );
    }
    let ids: std::collections::BTreeSet<&str> =
        inputs.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(
        ids.len(),
        inputs.len(),
        "each filestream input needs its own id"
    );

    // The global processors (they run after each input's, so the metadata is there).
    let processors = config["processors"].as_array().unwrap();
    let record_line = rendered(decisions()[0]).to_string();
    let drops_blank = processors.iter().any(|p| {
        p.pointer("/drop_event/when/regexp/message")
            .and_then(Value::as_str)
            .is_some_and(|pattern| {
                ["-", "", "   ", " -\t"]
                    .iter()
                    .all(|line| regexp_matches(pattern, line))
                    && !regexp_matches(pattern, &record_line)
                    && !regexp_matches(pattern, "--")
            })
    });
    assert!(
        drops_blank,
        "no drop_event for lines that are only `-` or blank"
    );

    // The decode step fires only on the sidecar's lines that are one of the records.
    let (condition, then) = processors
        .iter()
        .find_map(|p| Some((p.get("if")?, p.get("then")?.as_array()?)))
        .expect("an if/then processor decodes the records");
    let all = condition["and"].as_array().expect("an `and` of conditions");
    assert!(
        all.iter()
            .any(|c| c.pointer("/equals/kubernetes.container.name") == Some(&json!("istio-proxy"))),
        "{condition}"
    );
    let pattern = all
        .iter()
        .find_map(|c| c.pointer("/regexp/message").and_then(Value::as_str))
        .expect("a regexp on the line");
    for decision in decisions() {
        let line = rendered(decision).to_string();
        assert!(regexp_matches(pattern, &line), "`{pattern}` misses {line}");
        assert!(
            regexp_matches(pattern, &format!("{line} \r")),
            "trailing whitespace"
        );
        let other = line.replace(&format!("\"{dataset}\""), "\"other.dataset\"");
        assert!(
            !regexp_matches(pattern, &other),
            "`{pattern}` takes {other}"
        );
    }
    for line in ecs_record::SAMPLE_LINES {
        assert!(regexp_matches(pattern, line), "`{pattern}` misses {line}");
    }
    assert!(!regexp_matches(
        pattern,
        r#"{"level":"info","msg":"Envoy proxy is ready"}"#
    ));

    let step = |wanted: &dyn Fn(&Value) -> bool, what: &str| {
        then.iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("no {what} in {then:?}"))
    };
    let decode = step(
        &|p| p.get("decode_json_fields").is_some(),
        "decode_json_fields",
    );
    assert_eq!(
        then[decode]["decode_json_fields"]["fields"],
        json!(["message"])
    );
    assert_eq!(then[decode]["decode_json_fields"]["target"], json!(""));
    // The raw line goes once decoded (decoded: its event.dataset is the record's).
    let drop_message = step(
        &|p| p.pointer("/drop_fields/fields") == Some(&json!(["message"])),
        "drop_fields of message",
    );
    assert!(
        drop_message > decode,
        "message is dropped before it is decoded"
    );
    assert_eq!(
        when_equals(&then[drop_message]["drop_fields"]).and_then(|w| w.get("event.dataset")),
        Some(&json!(dataset))
    );
    // The document id is the line's fingerprint, taken before the line goes.
    let fingerprint = step(&|p| p.get("fingerprint").is_some(), "fingerprint");
    assert!(fingerprint < drop_message);
    assert_eq!(
        then[fingerprint]["fingerprint"]["fields"],
        json!(["message"])
    );
    assert_eq!(
        then[fingerprint]["fingerprint"]["target_field"],
        json!("@metadata._id")
    );
    // No response flag, no field.
    let flags = step(
        &|p| p.pointer("/drop_fields/fields") == Some(&json!(["rfma.response_flags"])),
        "drop_fields of rfma.response_flags",
    );
    assert!(flags > decode);
    assert_eq!(
        when_equals(&then[flags]["drop_fields"]).and_then(|w| w.get("rfma.response_flags")),
        Some(&json!("-"))
    );
    // Envoy's status 0 ("no response was sent") is not a status.
    let status = step(
        &|p| p.pointer("/drop_fields/fields") == Some(&json!(["http.response.status_code"])),
        "drop_fields of http.response.status_code",
    );
    assert!(status > decode);
    assert_eq!(
        when_equals(&then[status]["drop_fields"]).and_then(|w| w.get("http.response.status_code")),
        Some(&json!(0))
    );
    // The data stream fields name the index the route writes.
    let fields = then
        .iter()
        .find_map(|p| p.get("add_fields").filter(|a| a["target"] == "data_stream"))
        .map(|a| &a["fields"])
        .expect("add_fields for data_stream.*");
    assert_eq!(fields["dataset"], json!(dataset));
    let named = ["type", "dataset", "namespace"].map(|k| fields[k].as_str().unwrap_or(""));
    assert_eq!(index, named.join("-"));
}

/// Every operator string in the format, with its dotted field path.
fn operators(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                operators(&path, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        _ => {}
    }
}

#[test]
fn the_mesh_access_log_is_the_shipped_format_and_prints_what_the_filter_hands_over() {
    let format: Value = serde_json::from_str(&read("filter/access-log-format.json")).unwrap();
    let istiod = yaml("istio/system/istiod.yaml").remove(0);
    let providers = istiod
        .pointer("/spec/values/meshConfig/extensionProviders")
        .and_then(Value::as_array)
        .unwrap();
    let provider = providers
        .iter()
        .find(|p| p.pointer("/envoyFileAccessLog/logFormat/labels").is_some())
        .unwrap_or_else(|| panic!("no envoyFileAccessLog provider with labels: {providers:?}"));
    // The mesh's copy is the file, field for field (YAML and JSON parse to the same value).
    assert_eq!(
        provider["envoyFileAccessLog"]["logFormat"]["labels"], format,
        "istio/system/istiod.yaml's access-log labels differ from filter/access-log-format.json"
    );
    assert_eq!(
        provider["envoyFileAccessLog"]["omitEmptyValues"],
        json!(true),
        "absent values must be left out, as in the harness"
    );
    let name = provider["name"].as_str().unwrap();
    let telemetry = yaml("istio/telemetry.yaml").remove(0);
    assert_eq!(
        telemetry
            .pointer("/spec/accessLogging/0/providers/0/name")
            .and_then(Value::as_str),
        Some(name)
    );

    // The format prints every value the filter hands over, and no filter state it does not.
    let mut fields = Vec::new();
    operators("", &format, &mut fields);
    let printed: Vec<String> = fields
        .iter()
        .filter_map(|(_, op)| {
            let key = op.strip_prefix("%FILTER_STATE(wasm.")?;
            Some(key.strip_suffix(":PLAIN)%")?.to_owned())
        })
        .collect();
    for key in rfma_filter::handover::KEYS {
        let key = std::str::from_utf8(key).unwrap();
        assert!(
            printed.iter().any(|p| p == key),
            "the format never prints wasm.{key}"
        );
    }
    for key in &printed {
        assert!(
            rfma_filter::handover::KEYS.contains(&key.as_bytes()),
            "the format prints wasm.{key}, which the filter never sets"
        );
    }
    // A header the record prints cannot be the token header: the filter refuses it as one.
    for (path, op) in &fields {
        for header in op.split("%REQ(").skip(1) {
            let name = header
                .split([')', '?'])
                .next()
                .unwrap()
                .to_ascii_lowercase();
            if name.starts_with(':') {
                continue;
            }
            assert!(
                rfma_filter::config::RESERVED_HEADERS.contains(&name.as_str()),
                "{path} prints {name}, which the filter would accept as its token header"
            );
        }
    }

    // And the plugin's configuration hands its decision over.
    let plugin = yaml("istio/wasm/wasmplugin/wasmplugin.yaml").remove(0);
    let sink = plugin
        .pointer("/spec/pluginConfig/log/sink")
        .and_then(Value::as_str);
    assert!(matches!(sink, None | Some("filter_state")), "{sink:?}");
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

/// The per-token counter reaches the mesh's Prometheus as `rfma_token_allowed_total{token="<name>"}`:
/// the gated workload's ProxyConfig (the `proxy.istio.io/config` annotation, which the injector
/// validates) lists `token` in `extraStatTags` and nothing else; the rule Istio 1.30.3's
/// bootstrap template renders for that entry, applied as Envoy applies a tag extractor (the first
/// group is cut from the name, the second is the value), turns every name the filter defines for
/// the WasmPlugin's tokens into that one metric and the token's name; the harness's bootstrap
/// renders the same rule, so the end-to-end suite (`e2e_lifecycle_tokens`) proves it in Envoy.
#[test]
fn the_gated_workloads_stat_tag_extracts_the_token_from_every_per_token_counter() {
    use rfma_filter::response::{COUNTERS, TOKEN_ALLOWED_COUNTER, TOKEN_TAG, token_counter_name};

    let plugin = yaml("istio/wasm/wasmplugin/wasmplugin.yaml")
        .into_iter()
        .find(|d| d["kind"] == "WasmPlugin")
        .unwrap();
    let selector = plugin["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
        .clone();
    let gated: Vec<Value> = yaml("demo/httpbin.yaml")
        .into_iter()
        .filter(|d| {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            d["kind"] == "Deployment" && selector.iter().all(|(k, v)| labels[k] == *v)
        })
        .collect();
    assert_eq!(gated.len(), 1, "the WasmPlugin selects httpbin's pods");
    let annotation = gated[0]
        .pointer("/spec/template/metadata/annotations/proxy.istio.io~1config")
        .and_then(Value::as_str)
        .expect("httpbin's pod template has a proxy.istio.io/config annotation");
    let proxy_config: Value = serde_yaml_ng::from_str(annotation).unwrap();
    // Least privilege: the annotation adds the tag and changes nothing else of the proxy.
    assert_eq!(proxy_config, json!({ "extraStatTags": [TOKEN_TAG] }));
    assert_eq!(
        envoy_harness::bootstrap::EXTRA_STAT_TAGS,
        [TOKEN_TAG],
        "the harness extracts the tags the mesh does"
    );
    // Not mesh-wide: no other proxy gets the rule.
    let istiod = yaml("istio/system/istiod.yaml");
    assert!(
        istiod[0]
            .pointer("/spec/values/meshConfig/defaultConfig/extraStatTags")
            .is_none()
    );

    // Istio 1.30.3, tools/packaging/common/envoy_bootstrap.json, one entry of `.extraStatTags`.
    const TEMPLATE: &str = r#"{"regex": "({{ $tag }}=\\.=(.*?);\\.;)", "tag_name": "{{ $tag }}"}"#;
    let rule: Value = serde_json::from_str(&TEMPLATE.replace("{{ $tag }}", TOKEN_TAG)).unwrap();
    assert_eq!(
        envoy_harness::bootstrap::istio_extra_stat_tag(TOKEN_TAG),
        rule
    );
    // The rule's regex is `(token=\.=(.*?);\.;)`: its leftmost match starts at the first
    // `token=.=` and, `.*?` being lazy, ends at the first `;.;` after it. That is Envoy's
    // extraction here, written out (the e2e suite runs the regex itself in Envoy).
    let pattern = rule["regex"].as_str().unwrap();
    assert_eq!(pattern, format!(r"({TOKEN_TAG}=\.=(.*?);\.;)"));
    let opening = format!("{TOKEN_TAG}=.=");
    let extract = |stat: &str| -> Option<(String, String)> {
        let start = stat.find(&opening)?;
        let value_start = start + opening.len();
        let value_len = stat[value_start..].find(";.;")?;
        let end = value_start + value_len + ";.;".len();
        assert!(regexp_matches(pattern, stat), "{stat}");
        let name = format!("{}{}", &stat[..start], &stat[end..]);
        Some((name, stat[value_start..value_start + value_len].to_owned()))
    };

    let mut names: Vec<String> = plugin["spec"]["pluginConfig"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"sleep".to_owned()), "{names:?}");
    // And the edges of what a name may be: [a-z0-9._-], 1 to 63 characters.
    names.extend(["a", "v2.1", "-_.", "token", "rfma_token_allowed_total"].map(str::to_owned));
    names.push("z".repeat(63));
    for name in &names {
        // Envoy files a Wasm metric under its `wasmcustom` namespace, and Istio's stats matcher
        // always includes the prefix `wasm` (requiredEnvoyStatsMatcherInclusionPrefixes).
        let stat = format!("wasmcustom.{}", token_counter_name(name));
        assert!(stat.starts_with("wasm"));
        assert_eq!(
            extract(&stat),
            Some((
                format!("wasmcustom.{TOKEN_ALLOWED_COUNTER}"),
                name.to_owned()
            )),
            "{stat}"
        );
        // Istio's own unanchored rules leave the configured names alone.
        if plugin["spec"]["pluginConfig"]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == name.as_str())
        {
            for own in [
                r"(cache\.(.+?)\.)",
                r"(component\.(.+?)\.)",
                r"(tag\.(.+?);\.)",
                r"(wasm_filter\.(.+?)\.)",
            ] {
                assert!(!regexp_matches(own, &stat), "{own} matches {stat}");
            }
        }
    }
    // The Grafana dashboard reads the per-token counter by its label.
    let dashboard: Value =
        serde_json::from_str(&read("monitoring/dashboards/rfma-token-gate.json")).unwrap();
    let wanted = format!("sum by ({TOKEN_TAG}) (rate(${{metric_prefix}}{TOKEN_ALLOWED_COUNTER}{{");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(
        panels
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap())
            .any(|t| t["expr"].as_str().unwrap().starts_with(&wanted)),
        "no panel queries {wanted}"
    );
    // The decision counters keep their names.
    for counter in COUNTERS {
        let stat = format!("wasmcustom.{counter}");
        assert_eq!(extract(&stat), None, "{counter}");
        assert!(!regexp_matches(pattern, &stat), "{counter}");
    }
}
