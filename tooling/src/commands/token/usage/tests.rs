//! The pure parts of `token usage`: the Prometheus counters, the last records, the gates, the table.

use super::*;
use serde_json::json;

const STATS: &str = "\
# TYPE istio_requests_total counter
istio_requests_total{response_code=\"200\",source_workload=\"sleep\"} 40
# TYPE rfma_allowed_total counter
rfma_allowed_total 45
# TYPE rfma_token_allowed_total counter
rfma_token_allowed_total{token=\"sleep\"} 42
rfma_token_allowed_total{token=\"loadtester\"} 3 1764921600000
rfma_token_allowed_totally{token=\"sleep\"} 9
";

#[test]
fn counts_per_token_from_prometheus_text() {
    let c = token_counts(STATS).unwrap();
    assert_eq!(
        c.into_iter().collect::<Vec<_>>(),
        [("loadtester".to_string(), 3), ("sleep".to_string(), 42)]
    );
    assert!(token_counts("rfma_allowed_total 3\n").unwrap().is_empty());
    assert_eq!(
        token_counts("rfma_token_allowed_total{ token=\"a.b_c-1\" , } 4e0\n").unwrap()["a.b_c-1"],
        4
    );
}

#[test]
fn malformed_counter_lines_are_errors_with_their_line() {
    for (text, want) in [
        (
            "x 1\nrfma_token_allowed_total{token=\"sleep\" 3\n",
            "line 2",
        ),
        (
            "rfma_token_allowed_total{token=\"sleep} 3\n",
            "unterminated",
        ),
        ("rfma_token_allowed_total{token=\"sleep\"}\n", "no value"),
        ("rfma_token_allowed_total\n", "no value"),
        (
            "rfma_token_allowed_total{token=\"sleep\"} many\n",
            "not a number",
        ),
        (
            "rfma_token_allowed_total{token=\"sleep\"} 1 2 3\n",
            "unexpected",
        ),
        (
            "rfma_token_allowed_total{token=\"sleep\"} -1\n",
            "not a count",
        ),
        (
            "rfma_token_allowed_total{token=\"sleep\"} 1.5\n",
            "not a count",
        ),
        (
            "rfma_token_allowed_total{token=\"sleep\"} NaN\n",
            "not a count",
        ),
        ("rfma_token_allowed_total 3\n", "without the token label"),
        (
            "rfma_token_allowed_total{1=\"a\"} 3\n",
            "cannot start a label name",
        ),
        (
            "rfma_token_allowed_total{token=\"a\",token=\"b\"} 3\n",
            "twice",
        ),
        ("rfma_token_allowed_total{token=\"a\\q\"} 3\n", "bad escape"),
        (
            "rfma_token_allowed_total{token=\"a\"} 3\nrfma_token_allowed_total{token=\"a\"} 4\n",
            "two rfma_token_allowed_total series for token a",
        ),
    ] {
        let err = format!("{:#}", token_counts(text).unwrap_err());
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn last_seen_is_the_newest_record_naming_the_token() {
    let log = "\
2026-12-05T08:00:00.000000Z\tinfo\twasm\tplain Envoy line naming sleep
{\"@timestamp\":\"2026-12-05T08:00:01.000Z\",\"rfma\":{\"decision\":\"allow\",\"token\":{\"name\":\"sleep\"}}}
{\"@timestamp\":\"2026-12-05T08:00:03.000Z\",\"rfma\":{\"decision\":\"allow\",\"token\":{\"name\":\"sleep\"}}}
{\"@timestamp\":\"2026-12-05T08:00:02.000Z\",\"rfma\":{\"decision\":\"allow\",\"token\":{\"name\":\"sleep\"}}}
{\"@timestamp\":\"2026-12-05T08:00:04.000Z\",\"rfma\":{\"decision\":\"deny\",\"reason\":\"expired_token\",\"token\":{\"name\":\"old\"}}}
{\"@timestamp\":\"2026-12-05T08:00:05.000Z\",\"rfma\":{\"decision\":\"deny\",\"reason\":\"missing_token\"}}
{\"@timestamp\":\"2026-12-05T08:00:06.000Z\",\"rfma\":{\"decision\":\"bypass\",\"token\":{\"name\":\"-\"}}}
not json {
";
    let s = last_seen(log);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(
        s["sleep"],
        Seen {
            at: "2026-12-05T08:00:03.000Z".into(),
            decision: "allow".into()
        }
    );
    assert_eq!(s["old"].decision, "deny expired_token");
}

/// An extension as the API server returns it.
fn live(v: serde_json::Value) -> kube::api::DynamicObject {
    serde_json::from_value(v).unwrap()
}

#[test]
fn gates_of_both_kinds() {
    let wp = json!({"kind": "WasmPlugin", "metadata": {"name": "rfma-token-gate"},
        "spec": {"selector": {"matchLabels": {"istio-demo.dev/token-gate": "enabled"}},
                 "pluginConfig": {"tokens": [{"name": "sleep", "sha256": "ab"}, {"name": "external", "sha256": "cd"}]}}});
    assert_eq!(
        gate_of("WasmPlugin", &live(wp)).unwrap(),
        Gate {
            id: "WasmPlugin/rfma-token-gate".into(),
            selector: "istio-demo.dev/token-gate=enabled".into(),
            tokens: vec!["sleep".into(), "external".into()],
            principals: BTreeMap::new(),
        }
    );
    let te = json!({"kind": "TrafficExtension", "metadata": {"name": "g"},
        "spec": {"wasm": {"pluginConfig": {"tokens": [{"name": "a", "sha256": "ab"}]}}}});
    let g = gate_of("TrafficExtension", &live(te)).unwrap();
    assert_eq!((g.selector.as_str(), g.tokens.len()), ("", 1));
    let other = json!({"kind": "WasmPlugin", "metadata": {"name": "x"}, "spec": {"pluginConfig": {"foo": 1}}});
    assert_eq!(gate_of("WasmPlugin", &live(other)), None);
}

#[test]
fn table_says_what_is_missing() {
    let names = ["sleep".to_string(), "external".to_string()];
    let u = Usage {
        namespace: "demo".into(),
        since_seconds: 5400,
        gates: vec!["WasmPlugin/g".into()],
        proxies: vec![
            proxy_usage(
                "httpbin-1",
                &names,
                Ok("rfma_token_allowed_total{token=\"sleep\"} 7\n".into()),
                Ok(String::new()),
            ),
            proxy_usage("httpbin-2", &names, Err("503".into()), Err("gone".into())),
        ],
    };
    assert!(!u.complete());
    let mut out = Vec::new();
    print_table(&u, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("httpbin-1  sleep                  7  not in the last 1h30m"),
        "{text}"
    );
    assert!(
        text.contains("httpbin-1  external  0 (no counter)  not in the last 1h30m"),
        "{text}"
    );
    assert!(
        text.contains("httpbin-2  sleep                  ?  ? (log unreadable)"),
        "{text}"
    );
    assert!(text.contains("httpbin-2: stats not read: 503"), "{text}");
    assert!(text.contains("httpbin-2: log not read: gone"), "{text}");
    assert_eq!(human(Duration::from_secs(90)), "1m30s");
    assert_eq!(human(Duration::from_secs(3600)), "1h");
}
