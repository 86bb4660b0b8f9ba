//! `istio-demo token usage` against kube's tower-test mock: the gate's token names and selector,
//! each selected proxy's Prometheus text through the pod proxy subresource and its istio-proxy
//! log, and what happens when one of them cannot be read. `token rotate --dry-run`: the plan from
//! the same reads, and no write.

use crate::support::*;
use istio_demo::cluster::Cluster;
use istio_demo::commands::token::rotate::{self, RotateArgs};
use istio_demo::commands::token::usage::{self, UsageArgs};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

const DISCOVERY: &str = "/apis/extensions.istio.io/v1alpha1";
const WASMPLUGINS: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/demo/wasmplugins";
const EXTENSIONS: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/demo/trafficextensions";
const PODS: &str = "/api/v1/namespaces/demo/pods";
const SELECTOR: &str = "istio-demo.dev/token-gate=enabled";
/// The deployed digests: they must never reach the output.
const DIGESTS: [&str; 3] = [
    "5e2bf57d3f40c4b6df69daf1936cb766f832374b4fc0259a7cbff06e2f70f269",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
];

fn args(json: bool) -> UsageArgs {
    UsageArgs {
        kube: Default::default(),
        namespace: "demo".into(),
        since: Duration::from_secs(3600),
        json,
    }
}

fn discovery_core() -> Step {
    crate::support::discovery("v1", &[("Secret", "secrets", true)])
}

fn discovery() -> Step {
    get(
        DISCOVERY,
        resources(
            "extensions.istio.io/v1alpha1",
            &[
                ("WasmPlugin", "wasmplugins", true),
                ("TrafficExtension", "trafficextensions", true),
            ],
        ),
    )
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": "extensions.istio.io/v1alpha1", "metadata": {}, "items": items})
}

/// The deployed WasmPlugin: three tokens (with their digests, as the cluster has them).
fn wasmplugin() -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "rfma-token-gate", "namespace": "demo"},
        "spec": {
            "selector": {"matchLabels": {"istio-demo.dev/token-gate": "enabled"}},
            "pluginConfig": {"header": "x-rfma-token", "tokens": [
                {"name": "sleep", "sha256": DIGESTS[0]},
                {"name": "loadtester", "sha256": DIGESTS[1]},
                {"name": "external", "sha256": DIGESTS[2]},
            ]}
        }
    })
}

fn pods(names: &[&str]) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": names.iter().map(|n| json!({
        "metadata": {"name": n, "namespace": "demo"}, "status": {"phase": "Running", "podIP": "10.0.0.9"}
    })).collect::<Vec<_>>()})
}

fn stats_path(pod: &str) -> String {
    format!("{PODS}/{pod}:15020/proxy/stats/prometheus")
}

fn log_path(pod: &str) -> String {
    format!("{PODS}/{pod}/log")
}

/// The conversation up to the pod list: discovery, the two gate kinds, the selected pods.
fn find_gate(pod_names: &[&str]) -> Vec<Step> {
    vec![
        discovery(),
        get(WASMPLUGINS, list("WasmPlugin", vec![wasmplugin()])),
        get(EXTENSIONS, list("TrafficExtension", vec![])),
        get(PODS, pods(pod_names)),
    ]
}

fn record(at: &str, decision: &str, reason: &str, token: &str) -> String {
    let mut r = json!({"@timestamp": at, "http": {"response": {"status_code": 200}},
                       "rfma": {"decision": decision, "token": {"name": token}}});
    if !reason.is_empty() {
        r["rfma"]["reason"] = json!(reason);
    }
    r.to_string()
}

const STATS_A: &str = "\
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{cluster_name=\"inbound|8000||\"} 51
# TYPE rfma_allowed_total counter
rfma_allowed_total 45
# TYPE rfma_token_allowed_total counter
rfma_token_allowed_total{token=\"sleep\"} 42
rfma_token_allowed_total{token=\"loadtester\"} 3
rfma_token_allowed_total{token=\"external\"} 0
";

/// A proxy that has never had `loadtester` configured (no series) and has not used `external`.
const STATS_B: &str = "\
# TYPE rfma_token_allowed_total counter
rfma_token_allowed_total{token=\"sleep\"} 7
rfma_token_allowed_total{token=\"external\"} 0
";

fn log_a() -> String {
    [
        "2026-12-05T08:10:00.000000Z\tinfo\tenvoy main\tall clusters initialized".to_string(),
        record("2026-12-05T08:11:00.000Z", "allow", "", "sleep"),
        record("2026-12-05T08:12:30.250Z", "allow", "", "loadtester"),
        record("2026-12-05T08:13:00.000Z", "allow", "", "sleep"),
        record("2026-12-05T08:13:05.000Z", "deny", "missing_token", "-"),
    ]
    .join("\n")
        + "\n"
}

fn log_b() -> String {
    [
        record("2026-12-05T08:05:00.000Z", "allow", "", "sleep"),
        record(
            "2026-12-05T08:06:00.000Z",
            "deny",
            "expired_token",
            "loadtester",
        ),
    ]
    .join("\n")
        + "\n"
}

async fn run(steps: Vec<Step>, json: bool) -> (anyhow::Result<ExitCode>, String, Vec<Exchange>) {
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, false);
    let mut out = Vec::new();
    let result = usage::run_with(&cluster, &args(json), &mut out).await;
    let log = finish(server).await;
    (result, String::from_utf8(out).unwrap(), log)
}

fn assert_no_digest(text: &str) {
    for d in DIGESTS {
        assert!(!text.contains(&d[..12]), "a digest in the output:\n{text}");
    }
}

fn two_proxies() -> Vec<Step> {
    let mut steps = find_gate(&["httpbin-primary-a", "httpbin-primary-b"]);
    steps.extend([
        text(stats_path("httpbin-primary-a"), 200, STATS_A),
        text(log_path("httpbin-primary-a"), 200, &log_a()),
        text(stats_path("httpbin-primary-b"), 200, STATS_B),
        text(log_path("httpbin-primary-b"), 200, &log_b()),
    ]);
    steps
}

#[tokio::test]
async fn two_proxies_with_counts_and_last_seen() {
    let (result, out, log) = run(two_proxies(), false).await;
    assert_eq!(result.unwrap(), ExitCode::SUCCESS, "{out}");

    assert_eq!(
        log[3].params().get("labelSelector").map(String::as_str),
        Some(SELECTOR),
        "the pods the WasmPlugin selects"
    );
    for ex in [&log[5], &log[7]] {
        assert!(
            ex.params_are(&[("container", "istio-proxy"), ("sinceSeconds", "3600")]),
            "{}",
            ex.line()
        );
    }
    assert!(log.iter().all(|e| e.method == "GET"), "reads only");

    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert_mentions(lines[0], &["PROXY", "TOKEN", "ALLOWED", "LAST SEEN"]);
    let row = |pod: &str, token: &str| {
        let words = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        *lines
            .iter()
            .find(|l| words(l) == format!("{pod} {token}"))
            .unwrap_or_else(|| panic!("no row {pod} {token} in:\n{out}"))
    };
    assert_mentions(
        row("httpbin-primary-a", "sleep"),
        &[" 42 ", "2026-12-05T08:13:00.000Z (allow)"],
    );
    assert_mentions(
        row("httpbin-primary-a", "loadtester"),
        &[" 3 ", "2026-12-05T08:12:30.250Z (allow)"],
    );
    assert_mentions(
        row("httpbin-primary-a", "external"),
        &[" 0 ", "not in the last 1h"],
    );
    assert_mentions(
        row("httpbin-primary-b", "sleep"),
        &[" 7 ", "2026-12-05T08:05:00.000Z (allow)"],
    );
    // No series for loadtester on this proxy: a count of 0, said so; its last use was refused.
    assert_mentions(
        row("httpbin-primary-b", "loadtester"),
        &[
            "0 (no counter)",
            "2026-12-05T08:06:00.000Z (deny expired_token)",
        ],
    );
    // external: configured, never seen anywhere.
    assert_mentions(
        row("httpbin-primary-b", "external"),
        &[" 0 ", "not in the last 1h"],
    );
    assert_no_digest(&out);
}

#[tokio::test]
async fn json_output_for_machines() {
    let (result, out, _) = run(two_proxies(), true).await;
    assert_eq!(result.unwrap(), ExitCode::SUCCESS);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["namespace"], "demo");
    assert_eq!(v["since_seconds"], 3600);
    assert_eq!(v["gates"], json!(["WasmPlugin/rfma-token-gate"]));
    let b = &v["proxies"][1];
    assert_eq!(b["pod"], "httpbin-primary-b");
    assert_eq!(b["stats_error"], Value::Null);
    assert_eq!(
        b["tokens"],
        json!([
            {"name": "sleep", "allowed": 7, "counter": true,
             "last_seen": {"at": "2026-12-05T08:05:00.000Z", "decision": "allow"}},
            {"name": "loadtester", "allowed": 0, "counter": false,
             "last_seen": {"at": "2026-12-05T08:06:00.000Z", "decision": "deny expired_token"}},
            {"name": "external", "allowed": 0, "counter": true, "last_seen": null},
        ])
    );
    assert_eq!(v["proxies"][0]["tokens"][0]["allowed"], 42);
    assert_no_digest(&out);
}

#[tokio::test]
async fn forbidden_pods_proxy_names_the_missing_grant() {
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "pods \"httpbin-primary-a:15020\" is forbidden: User \"dev\" cannot get resource \"pods/proxy\""});
    let mut steps = find_gate(&["httpbin-primary-a", "httpbin-primary-b"]);
    steps.push(step("GET", stats_path("httpbin-primary-a"), 403, forbidden));
    let (result, out, log) = run(steps, false).await;
    let err = result.unwrap_err();
    let msg = format!("{err:#}");
    assert_mentions(
        &msg,
        &["forbidden (403)", "`get` `pods/proxy` in namespace demo"],
    );
    assert_eq!(
        log.len(),
        5,
        "stops at the first refusal: every pod would fail alike"
    );
    assert!(out.is_empty(), "{out}");
}

#[tokio::test]
async fn forbidden_logs_name_the_missing_grant() {
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "forbidden"});
    let mut steps = find_gate(&["httpbin-primary-a"]);
    steps.push(text(stats_path("httpbin-primary-a"), 200, STATS_A));
    steps.push(step("GET", log_path("httpbin-primary-a"), 403, forbidden));
    let (result, _, _) = run(steps, false).await;
    let msg = format!("{:#}", result.unwrap_err());
    assert_mentions(&msg, &["`get` `pods/log` in namespace demo"]);
}

#[tokio::test]
async fn malformed_prometheus_text_is_that_proxys_error() {
    let mut steps = find_gate(&["httpbin-primary-a", "httpbin-primary-b"]);
    steps.extend([
        text(
            stats_path("httpbin-primary-a"),
            200,
            "rfma_allowed_total 45\nrfma_token_allowed_total{token=\"sleep\" 42\n",
        ),
        text(log_path("httpbin-primary-a"), 200, &log_a()),
        // A proxy not ready: pilot-agent answers 503 through the pod proxy, as plain text.
        text(stats_path("httpbin-primary-b"), 503, "envoy not ready"),
        text(log_path("httpbin-primary-b"), 200, &log_b()),
    ]);
    let (result, out, _) = run(steps, false).await;
    assert_eq!(
        result.unwrap(),
        ExitCode::FAILURE,
        "a proxy not read is a failure: {out}"
    );
    assert_mentions(
        &out,
        &[
            "httpbin-primary-a: stats not read: line 2: rfma_token_allowed_total:",
            "httpbin-primary-b: stats not read: reading httpbin-primary-b:15020/stats/prometheus",
            "2026-12-05T08:13:00.000Z (allow)",
        ],
    );
    // Counts unknown, not zero; the logs were still read.
    let a_sleep = out
        .lines()
        .find(|l| l.starts_with("httpbin-primary-a  sleep"))
        .unwrap();
    assert_mentions(a_sleep, &[" ? ", "(allow)"]);
}

#[tokio::test]
async fn no_gate_is_a_clear_error() {
    let steps = vec![
        discovery(),
        get(WASMPLUGINS, list("WasmPlugin", vec![])),
        get(EXTENSIONS, list("TrafficExtension", vec![])),
    ];
    let (result, _, _) = run(steps, false).await;
    let msg = format!("{:#}", result.unwrap_err());
    assert_mentions(
        &msg,
        &["no WasmPlugin or TrafficExtension with a token list in namespace demo"],
    );
}

pub(crate) fn rotate_args(name: &str, dry_run: bool) -> RotateArgs {
    RotateArgs {
        name: name.into(),
        kube: Default::default(),
        namespace: "demo".into(),
        new_name: None,
        overlap: Some(Duration::from_secs(86_400)),
        quiet_for: Duration::from_secs(600),
        timeout: Duration::from_secs(3600),
        dry_run,
        repo: None,
        sandbox: false,
        state_dir: None,
    }
}

async fn rotate_run(
    steps: Vec<Step>,
    args: &RotateArgs,
) -> (anyhow::Result<ExitCode>, String, Vec<Exchange>) {
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, false);
    let mut out = Vec::new();
    // Now: 2026-12-05T08:30:00Z.
    let result = rotate::plan_with(&cluster, args, 1_796_459_400, &mut out).await;
    let log = finish(server).await;
    (result, String::from_utf8(out).unwrap(), log)
}

#[tokio::test]
async fn rotate_dry_run_prints_the_plan_and_writes_nothing() {
    let mut steps = two_proxies();
    // No token Secret can be read: the plan names the demo slot's Secret all the same.
    steps.push(discovery_core());
    for s in [
        "demo/secrets/rfma-demo-token",
        "flagger-system/secrets/rfma-loadtester-token",
        "demo/secrets/rfma-external-token",
    ] {
        steps.push(not_found(format!("/api/v1/namespaces/{s}")));
    }
    let (result, out, log) = rotate_run(steps, &rotate_args("loadtester", true)).await;
    assert_eq!(result.unwrap(), ExitCode::SUCCESS, "{out}");
    assert!(
        log.iter().all(|e| e.method == "GET"),
        "a dry run only reads: {log:?}"
    );
    assert!(
        log[5].params_are(&[("container", "istio-proxy"), ("sinceSeconds", "600")]),
        "the log is read over --quiet-for: {}",
        log[5].line()
    );
    assert_mentions(
        &out,
        &[
            "token rotate loadtester: the plan (dry run: nothing is changed)",
            "1. add token loadtester-r2 beside loadtester in WasmPlugin/demo/rfma-token-gate",
            "loadtester stays valid until 2026-12-06T08:30:00Z (its not_after: now + --overlap 24h)",
            "2. write the new token to Secret flagger-system/rfma-loadtester-token (key token)",
            "3. wait until rfma_token_allowed_total{token=\"loadtester\"} has not changed for 10m on every proxy",
            "giving up after 1h",
            "   httpbin-primary-a: 3 allowed now, last seen 2026-12-05T08:12:30.250Z (allow)",
            "   httpbin-primary-b: 0 allowed now, last seen 2026-12-05T08:06:00.000Z (deny expired_token)",
            "4. remove loadtester from WasmPlugin/demo/rfma-token-gate and print what was removed",
        ],
    );
    assert!(!out.contains("note:"), "{out}");
    assert_no_digest(&out);
}

#[tokio::test]
async fn rotate_of_an_unknown_token_names_the_configured_ones() {
    let steps = vec![
        discovery(),
        get(WASMPLUGINS, list("WasmPlugin", vec![wasmplugin()])),
        get(EXTENSIONS, list("TrafficExtension", vec![])),
    ];
    let (result, out, _) = rotate_run(steps, &rotate_args("partner", true)).await;
    let msg = format!("{:#}", result.unwrap_err());
    assert_mentions(
        &msg,
        &[
            "token partner is not configured in namespace demo (configured: sleep, loadtester, external)",
        ],
    );
    assert!(out.is_empty());
}
