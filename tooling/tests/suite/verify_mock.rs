//! `istio-demo verify`: the parse layer on canned outputs, the authorization stages read from the
//! repository's own manifests, and the exec request shape against kube's tower-test mock.

use crate::support::*;
use istio_demo::cluster::Cluster;
use istio_demo::commands::verify::{self, Ctx, Outcome, Verdict, VerifyArgs};
use serde_json::json;
use std::time::Duration;

#[test]
fn curl_output() {
    assert_eq!(
        verify::parse_code_time("504 1.003412"),
        Some((504, 1.003412))
    );
    assert_eq!(verify::parse_code_time("401"), Some((401, 0.0)));
    assert_eq!(
        verify::parse_code_time("curl: (6) Could not resolve host"),
        None
    );
    assert_eq!(verify::parse_code_time(""), None);
}

const STATS: &str = "\
cluster.outbound|8000||httpbin.demo.svc.cluster.local.upstream_rq_retry: 2
cluster.outbound|8000||httpbin.demo.svc.cluster.local.upstream_rq_retry_success: 0
cluster.outbound|8000||httpbin.demo.svc.cluster.local.upstream_rq_pending_overflow: 7
cluster.outbound|8000|primary|httpbin.demo.svc.cluster.local.upstream_rq_pending_overflow: 1
cluster.outbound|80||grafana.monitoring.svc.cluster.local.upstream_rq_retry: 40
cluster.outbound|8000||httpbin-primary.demo.svc.cluster.local.upstream_rq_retry: 3
cluster.outbound|8000||httpbin-primary-x.demo.svc.cluster.local.upstream_rq_retry: 100
cluster_manager.cds.update_success: 12
";

#[test]
fn envoy_stats() {
    let hosts = verify::canary_hosts("httpbin.demo.svc.cluster.local");
    assert_eq!(
        hosts,
        [
            "httpbin.demo.svc.cluster.local",
            "httpbin-primary.demo.svc.cluster.local",
            "httpbin-canary.demo.svc.cluster.local"
        ]
    );
    assert_eq!(
        verify::parse_stat(STATS, &hosts, "upstream_rq_retry"),
        Some(5),
        "httpbin and its primary add up; other services and other counters are not counted"
    );
    assert_eq!(
        verify::parse_stat(STATS, &hosts, "upstream_rq_pending_overflow"),
        Some(8),
        "subsets add up"
    );
    assert_eq!(verify::parse_stat(STATS, &hosts, "upstream_cx_total"), None);
    let sleep = verify::canary_hosts("sleep.demo.svc.cluster.local");
    assert_eq!(verify::parse_stat(STATS, &sleep, "upstream_rq_retry"), None);
}

#[test]
fn fortio_output() {
    let out = "\
Fortio 1.69.5 running at 0 queries per second, 2->2 procs, for 30 calls: http://httpbin.demo:8000/get
Aggregated Function Time : count 30 avg 0.0123 +/- 0.01 min 0.001 max 0.05 sum 0.37
# target 50% 0.008
Sockets used: 9 (for perfect keepalive, would be 3)
Code 401 : 21 (70.0 %)
Code 503 : 9 (30.0 %)
All done 30 calls (plus 0 warmup) 12.3 ms avg, 243.9 qps
";
    let codes = verify::parse_fortio_codes(out);
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), [(401, 21), (503, 9)]);
    assert!(
        verify::parse_fortio_codes("Code -1 : 3 (100.0 %)").is_empty(),
        "socket errors are not HTTP codes"
    );
}

#[test]
fn sidecar_log_record() {
    let id = "istio-demo-verify-allow-0a0b0c0d0e0f";
    let log = format!(
        "2026-01-01T00:00:00.000Z\twarning\tenvoy wasm\tsomething else mentioning {id}\n\
         {{\"@timestamp\":\"2026-01-01T00:00:01.000Z\",\"event\":{{\"kind\":\"event\"}},\"http\":{{\"request\":{{\"id\":\"other\"}}}},\"rfma\":{{\"decision\":\"deny\"}}}}\n\
         {{\"@timestamp\":\"2026-01-01T00:00:02.000Z\",\"http\":{{\"request\":{{\"id\":\"{id}\",\"method\":\"GET\"}}}},\"rfma\":{{\"decision\":\"allow\",\"token\":{{\"name\":\"sleep\"}}}}}}\n"
    );
    let r = verify::find_record(&log, id).unwrap();
    assert_eq!(r["rfma"]["decision"], "allow");
    assert_eq!(r["rfma"]["token"]["name"], "sleep");
    assert!(verify::find_record(&log, "istio-demo-verify-none-1").is_none());
}

#[test]
fn prometheus_text() {
    let text = "# TYPE rfma_allowed_total counter\nrfma_allowed_total 12\nrfma_denied_missing_token_total{pod=\"x\"} 3\nrfma_allowed_totally 1\n";
    assert!(verify::prometheus_has(text, "rfma_allowed_total"));
    assert!(verify::prometheus_has(
        text,
        "rfma_denied_missing_token_total"
    ));
    assert!(!verify::prometheus_has(text, "rfma_bypassed_total"));
    assert!(
        !verify::prometheus_has(
            "# TYPE rfma_bypassed_total counter\n",
            "rfma_bypassed_total"
        ),
        "a comment is not a sample"
    );
}

#[test]
fn authorization_stages_of_the_repository() {
    let repo = istio_demo::manifests::repo_root();
    let stage = |dir: &str| {
        // As the cluster would list them: the rendered manifests as DynamicObjects.
        let objs: Vec<kube::api::DynamicObject> =
            istio_demo::manifests::render(&repo.join("istio/authorization").join(dir))
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .into_iter()
                .map(|m| m.object)
                .filter(|o| o["kind"] == "AuthorizationPolicy")
                .map(|o| serde_json::from_value(o).unwrap())
                .collect();
        verify::authz_stage(&objs, "demo")
    };
    let s1 = stage("stage-1-deny-all");
    assert!(s1.default_deny && !s1.allows_namespace, "{s1:?}");
    let s2 = stage("stage-2-allow-demo-namespace");
    assert!(
        s2.default_deny && s2.allows_namespace && s2.methods.is_none(),
        "{s2:?}"
    );
    let s3 = stage("stage-3-allow-get");
    assert_eq!(
        s3.methods.as_deref(),
        Some(&["GET".to_string(), "HEAD".to_string()][..]),
        "{s3:?}"
    );
    let s4 = stage("stage-4-allow-get-with-token");
    assert!(
        s4.allows_namespace,
        "the sleep service account of demo is admitted: {s4:?}"
    );
    assert_eq!(
        s4.methods.as_deref(),
        Some(&["GET".to_string(), "HEAD".to_string()][..])
    );
    assert!(
        s4.names
            .contains(&"httpbin-allow-get-with-token".to_string())
    );
}

#[test]
fn report_lines_and_result() {
    let pass = Outcome {
        name: "timeout",
        verdict: Verdict::Pass,
        evidence: vec!["/delay/2: 504 after 1.00s".into()],
    };
    let fail = Outcome {
        name: "retries on 500",
        verdict: Verdict::Fail,
        evidence: vec!["/status/500: 500".into(), "upstream_rq_retry 0 -> 0".into()],
    };
    let mut out = Vec::new();
    assert!(verify::report(std::slice::from_ref(&pass), &mut out).unwrap());
    let mut out = Vec::new();
    assert!(!verify::report(&[pass, fail], &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("PASS  timeout            /delay/2: 504 after 1.00s"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  retries on 500     /status/500: 500; upstream_rq_retry 0 -> 0"),
        "{text}"
    );
    assert!(text.contains("verify: 1 of 2 scenarios passed"), "{text}");
}

fn args() -> VerifyArgs {
    VerifyArgs {
        kube: Default::default(),
        namespace: "demo".into(),
        url: "http://httpbin.demo:8000".into(),
        sleep_selector: "app=sleep".into(),
        sleep_container: "sleep".into(),
        fortio_selector: "app=fortio".into(),
        fortio_container: "fortio".into(),
        httpbin_selector: "istio-demo.dev/token-gate=enabled".into(),
        canary_rollback: false,
        canary_timeout: Duration::from_secs(60),
    }
}

fn pod_list(pods: &[(&str, &str)]) -> serde_json::Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods.iter().map(|(n, phase)| json!({
        "metadata": {"name": n, "namespace": "demo"}, "status": {"phase": phase, "podIP": "10.0.0.7"}
    })).collect::<Vec<_>>()})
}

#[tokio::test]
async fn finds_running_pods_and_execs_naming_the_container() {
    let (client, handle) = mock();
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                           "message": "pods \"sleep-1\" is forbidden: cannot create resource \"pods/exec\""});
    let server = serve(
        handle,
        vec![
            get(
                "/api/v1/namespaces/demo/pods",
                pod_list(&[("sleep-0", "Pending"), ("sleep-1", "Running")]),
            ),
            get(
                "/api/v1/namespaces/demo/pods",
                pod_list(&[("fortio-1", "Running")]),
            ),
            get(
                "/api/v1/namespaces/demo/pods",
                pod_list(&[("httpbin-primary-1", "Running")]),
            ),
            step(
                "GET",
                "/api/v1/namespaces/demo/pods/sleep-1/exec",
                403,
                forbidden,
            ),
        ],
    );
    let cluster = Cluster::new(client, false);
    let a = args();
    let pods = verify::find_pods(&cluster, &a).await.unwrap();
    assert_eq!(pods.sleep, "sleep-1", "only a running pod is used");
    assert_eq!(pods.fortio.as_deref(), Some("fortio-1"));
    let ctx = Ctx {
        cluster: &cluster,
        args: &a,
        pods,
    };
    let o = verify::timeout(&ctx).await;
    let log = finish(server).await;

    assert_eq!(
        log[0].params().get("labelSelector").map(String::as_str),
        Some("app=sleep")
    );
    assert_eq!(
        log[1].params().get("labelSelector").map(String::as_str),
        Some("app=fortio")
    );
    assert_eq!(
        log[2].params().get("labelSelector").map(String::as_str),
        Some("istio-demo.dev/token-gate=enabled")
    );
    let exec = &log[3];
    let params = exec.pairs();
    let get = |k: &str| {
        params
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("container"), ["sleep"], "the container is always named");
    assert_eq!(get("stdout"), ["true"]);
    assert_eq!(get("stderr"), ["true"]);
    assert!(get("stdin").iter().all(|v| *v == "false"));
    let command = get("command");
    assert_eq!(command[..2], ["sh", "-c"]);
    assert!(
        command[2].contains("curl") && command[2].contains("http://httpbin.demo:8000/delay/2"),
        "{command:?}"
    );
    assert!(
        command[2].contains("/var/run/secrets/rfma/token"),
        "the token is read inside the pod: {command:?}"
    );

    // An exec that cannot run is a FAIL with the reason, not a crash.
    assert_eq!(o.verdict, Verdict::Fail);
    assert!(
        o.evidence[0].contains("exec in demo/sleep-1 container sleep"),
        "{:?}",
        o.evidence
    );
}

#[tokio::test]
async fn no_sleep_pod_is_a_clear_error() {
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![get("/api/v1/namespaces/demo/pods", pod_list(&[]))],
    );
    let cluster = Cluster::new(client, false);
    let err = verify::find_pods(&cluster, &args()).await.unwrap_err();
    finish(server).await;
    assert!(
        err.to_string()
            .contains("no running pod matches app=sleep in namespace demo"),
        "{err}"
    );
}

#[tokio::test]
async fn canary_rollback_never_breaks_a_token_during_a_running_analysis() {
    // The scenario changes the cluster: it must refuse to start mid-analysis, and then send no write.
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            get(
                "/apis/flagger.app/v1beta1",
                resources("flagger.app/v1beta1", &[("Canary", "canaries", true)]),
            ),
            get(
                "/apis/flagger.app/v1beta1/namespaces/demo/canaries/httpbin",
                json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
                       "metadata": {"name": "httpbin", "namespace": "demo"},
                       "status": {"phase": "Progressing", "canaryWeight": 40}}),
            ),
        ],
    );
    let cluster = Cluster::new(client, false);
    let o = verify::rollback::canary_rollback(&cluster, "demo", Duration::from_secs(5)).await;
    let log = finish(server).await;
    assert_eq!(o.verdict, Verdict::Fail);
    assert!(
        o.evidence
            .iter()
            .any(|e| e.contains("a canary analysis is running")),
        "{:?}",
        o.evidence
    );
    assert!(log.iter().all(|e| e.method == "GET"), "no write: {log:?}");
}
