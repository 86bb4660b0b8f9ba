//! `istio-demo status` against kube's tower-test mock: one row per object with a status.

mod support;

use istio_demo::cluster::Cluster;
use istio_demo::commands::status::{self, Output};
use serde_json::{Value, json};
use support::*;

// 2026-01-01T01:00:00Z
const NOW: i64 = 1_767_229_200;

fn declared() -> Vec<Value> {
    vec![
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"}}),
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "istiod", "namespace": "istio-system"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sleep", "namespace": "demo"}}),
        json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "httpbin", "namespace": "demo"}}),
        json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": "rfma-token-gate", "namespace": "demo"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "no-status", "namespace": "demo"}}),
    ]
}

#[tokio::test]
async fn status_table_has_one_row_per_object_with_a_status() {
    // flux/ syncs itself: an object both in flux/ and in a synced path is shown once.
    let again = istio_demo::commands::up::Synced {
        path: "./flux".into(),
        objects: vec![declared()[0].clone()],
    };
    let objects = status::declared(&declared(), &[again]);
    assert_eq!(
        objects.len(),
        5,
        "the ConfigMap has no status and is not shown"
    );
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            get(
                "/apis/kustomize.toolkit.fluxcd.io/v1",
                resources(
                    "kustomize.toolkit.fluxcd.io/v1",
                    &[("Kustomization", "kustomizations", true)],
                ),
            ),
            get(
                "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps",
                json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "apps", "namespace": "flux-system", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "message": "Applied revision: main@sha1:abc"}]}}),
            ),
            get(
                "/apis/helm.toolkit.fluxcd.io/v2",
                resources(
                    "helm.toolkit.fluxcd.io/v2",
                    &[("HelmRelease", "helmreleases", true)],
                ),
            ),
            not_found(
                "/apis/helm.toolkit.fluxcd.io/v2/namespaces/istio-system/helmreleases/istiod",
            ),
            get(
                "/apis/apps/v1",
                resources("apps/v1", &[("Deployment", "deployments", true)]),
            ),
            get(
                "/apis/apps/v1/namespaces/demo/deployments/sleep",
                json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "sleep", "namespace": "demo", "generation": 2, "creationTimestamp": "2026-01-01T00:59:30Z"},
                "spec": {"replicas": 2}, "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 1}}),
            ),
            get(
                "/apis/flagger.app/v1beta1",
                resources("flagger.app/v1beta1", &[("Canary", "canaries", true)]),
            ),
            get(
                "/apis/flagger.app/v1beta1/namespaces/demo/canaries/httpbin",
                json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
                "metadata": {"name": "httpbin", "namespace": "demo", "creationTimestamp": "2025-12-30T01:00:00Z"},
                "status": {"phase": "Progressing", "canaryWeight": 20}}),
            ),
            get(
                "/apis/extensions.istio.io/v1alpha1",
                resources(
                    "extensions.istio.io/v1alpha1",
                    &[("WasmPlugin", "wasmplugins", true)],
                ),
            ),
            get(
                "/apis/extensions.istio.io/v1alpha1/namespaces/demo/wasmplugins/rfma-token-gate",
                json!({
                "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
                "metadata": {"name": "rfma-token-gate", "namespace": "demo", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"url": "oci://registry.example/rfma@sha256:ab"}}),
            ),
        ],
    );
    let cluster = Cluster::new(client, false);
    let mut out = Vec::new();
    let all_ready = status::run_with(&cluster, &objects, Output::Table, NOW, &mut out)
        .await
        .unwrap();
    finish(server).await;
    assert!(!all_ready);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    let cols = |l: &str| {
        l.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(cols(lines[0]), ["NAME", "KIND", "READY", "MESSAGE", "AGE"]);
    assert_eq!(
        cols(lines[1]),
        [
            "flux-system/apps",
            "Kustomization",
            "True",
            "Applied revision: main@sha1:abc",
            "1h"
        ]
    );
    assert_eq!(
        cols(lines[2]),
        [
            "istio-system/istiod",
            "HelmRelease",
            "False",
            "not found",
            "-"
        ]
    );
    assert_eq!(
        cols(lines[3]),
        [
            "demo/sleep",
            "Deployment",
            "False",
            "1/2 replicas available",
            "30s"
        ]
    );
    assert_eq!(
        cols(lines[4]),
        [
            "demo/httpbin",
            "Canary",
            "False",
            "phase Progressing, canary weight 20%",
            "2d"
        ]
    );
    assert_eq!(
        cols(lines[5])[..3],
        ["demo/rfma-token-gate", "WasmPlugin", "-"]
    );
    assert!(lines[5].contains("url oci://registry.example/rfma@sha256:ab"));
    // Columns line up.
    let at = lines[0].find("KIND").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[at..].starts_with(|c: char| c.is_ascii_alphabetic())),
        "{text}"
    );
}

#[test]
fn json_rows_and_ages() {
    let live = json!({"kind": "Canary", "metadata": {"creationTimestamp": "2026-01-01T00:59:55Z"}, "status": {"phase": "Initialized", "canaryWeight": 0}});
    let declared = json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "httpbin", "namespace": "demo"}});
    let row = status::row(&declared, Some(&live), NOW);
    assert_eq!(
        serde_json::to_value(&row).unwrap(),
        json!({"name": "demo/httpbin", "kind": "Canary", "ready": "True", "message": "phase Initialized, canary weight 0%", "age": "5s"})
    );
    assert_eq!(status::age(Some("2025-12-31T21:00:00Z"), NOW), "4h");
    assert_eq!(status::age(Some("garbage"), NOW), "-");
}
