//! `istio-demo status` against kube's tower-test mock: which declared objects are shown (registry,
//! source, entry point, synced, each once, only kinds with a status), one row per object in the
//! table or the JSON, a TrafficExtension shown without readiness, and the entry point read back
//! from the live self-managing Kustomization.

use crate::support::*;
use istio_demo::cluster::Cluster;
use istio_demo::commands::status::{self, Output};
use istio_demo::deploy::render::{Profile, SourceKind, Synced};
use kube::api::DynamicObject;
use serde_json::{Value, json};

// 2026-01-01T01:00:00Z
const NOW: i64 = 1_767_229_200;

/// A live object as the API server returns it: typed metadata, the rest as JSON.
fn live(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

fn object(api_version: &str, kind: &str, ns: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}})
}

fn kustomization(name: &str) -> Value {
    object(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "flux-system",
        name,
    )
}

fn oci_source() -> Value {
    object(
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        "flux-system",
        "istio-demo",
    )
}

const OCI_SOURCE: &str =
    "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/ocirepositories/istio-demo";

fn discovery_sources() -> Step {
    discovery(
        "source.toolkit.fluxcd.io/v1",
        &[("OCIRepository", "ocirepositories", true)],
    )
}

/// The live OCIRepository, Ready with `message`, made at `created`.
fn ready_oci_source(created: &str, message: &str) -> Value {
    let mut o = oci_source();
    o["metadata"]["creationTimestamp"] = json!(created);
    o["metadata"]["generation"] = json!(3);
    o["status"] = json!({"observedGeneration": 3,
                         "conditions": [{"type": "Ready", "status": "True", "message": message}]});
    o
}

fn registry() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-demo-registry"}}),
        object("apps/v1", "Deployment", "istio-demo-registry", "registry"),
        object("v1", "Service", "istio-demo-registry", "registry"),
    ]
}

fn entry() -> Vec<Value> {
    vec![kustomization("istio-demo"), kustomization("apps")]
}

fn synced() -> Vec<Synced> {
    vec![
        Synced {
            path: "./flux/apps".into(),
            objects: vec![
                object(
                    "helm.toolkit.fluxcd.io/v2",
                    "HelmRelease",
                    "istio-system",
                    "istiod",
                ),
                object("apps/v1", "Deployment", "demo", "sleep"),
                object("flagger.app/v1beta1", "Canary", "demo", "httpbin"),
                object(
                    "extensions.istio.io/v1alpha1",
                    "WasmPlugin",
                    "demo",
                    "rfma-token-gate",
                ),
                object("v1", "ConfigMap", "demo", "no-status"),
            ],
        },
        Synced {
            // The self-managing Kustomization syncs the entry point again: shown once.
            path: "./flux/clusters/full".into(),
            objects: vec![kustomization("apps")],
        },
    ]
}

fn ids(objects: &[Value]) -> Vec<String> {
    objects.iter().map(istio_demo::cluster::object_id).collect()
}

#[test]
fn declared_objects_are_in_deploy_order_each_once_and_only_those_with_a_status() {
    let objects = status::declared(&registry(), &oci_source(), &entry(), &synced());
    assert_eq!(
        ids(&objects),
        [
            "Deployment/istio-demo-registry/registry",
            "OCIRepository/flux-system/istio-demo",
            "Kustomization/flux-system/istio-demo",
            "Kustomization/flux-system/apps",
            "HelmRelease/istio-system/istiod",
            "Deployment/demo/sleep",
            "Canary/demo/httpbin",
            "WasmPlugin/demo/rfma-token-gate",
        ],
        "registry, source, entry point, then what it syncs; no Namespace, Service or ConfigMap"
    );
}

/// `status` of `objects` over the conversation `steps`: whether all are ready, and what it printed.
async fn status_of(objects: &[Value], steps: Vec<Step>, output: Output) -> (bool, Vec<u8>) {
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, false);
    let mut out = Vec::new();
    let all_ready = status::run_with(&cluster, objects, output, NOW, &mut out)
        .await
        .unwrap();
    finish(server).await;
    (all_ready, out)
}

#[tokio::test]
async fn status_table_has_one_row_per_object_with_a_status() {
    let objects = status::declared(&[], &oci_source(), &entry()[1..], &synced()[..1]);
    assert_eq!(objects.len(), 6);
    let steps = vec![
        discovery_sources(),
        get(
            OCI_SOURCE,
            ready_oci_source(
                "2025-12-31T23:00:00Z",
                "stored artifact for digest 'latest@sha256:ab'",
            ),
        ),
        discovery(
            "kustomize.toolkit.fluxcd.io/v1",
            &[("Kustomization", "kustomizations", true)],
        ),
        get(
            "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps",
            json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "apps", "namespace": "flux-system", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "message": "Applied revision: latest@sha256:ab"}]}}),
        ),
        discovery(
            "helm.toolkit.fluxcd.io/v2",
            &[("HelmRelease", "helmreleases", true)],
        ),
        not_found("/apis/helm.toolkit.fluxcd.io/v2/namespaces/istio-system/helmreleases/istiod"),
        discovery("apps/v1", &[("Deployment", "deployments", true)]),
        get(
            "/apis/apps/v1/namespaces/demo/deployments/sleep",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "sleep", "namespace": "demo", "generation": 2, "creationTimestamp": "2026-01-01T00:59:30Z"},
                "spec": {"replicas": 2}, "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 1}}),
        ),
        discovery("flagger.app/v1beta1", &[("Canary", "canaries", true)]),
        get(
            "/apis/flagger.app/v1beta1/namespaces/demo/canaries/httpbin",
            json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
                "metadata": {"name": "httpbin", "namespace": "demo", "creationTimestamp": "2025-12-30T01:00:00Z"},
                "status": {"phase": "Progressing", "canaryWeight": 20}}),
        ),
        discovery(
            "extensions.istio.io/v1alpha1",
            &[("WasmPlugin", "wasmplugins", true)],
        ),
        get(
            "/apis/extensions.istio.io/v1alpha1/namespaces/demo/wasmplugins/rfma-token-gate",
            json!({
                "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
                "metadata": {"name": "rfma-token-gate", "namespace": "demo", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"url": "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@sha256:ab"}}),
        ),
    ];
    let (all_ready, out) = status_of(&objects, steps, Output::Table).await;
    assert!(!all_ready, "istiod is missing and sleep is not available");
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
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
            "flux-system/istio-demo",
            "OCIRepository",
            "True",
            "stored artifact for digest 'latest@sha256:ab'",
            "2h"
        ]
    );
    assert_eq!(
        cols(lines[2]),
        [
            "flux-system/apps",
            "Kustomization",
            "True",
            "Applied revision: latest@sha256:ab",
            "1h"
        ]
    );
    assert_eq!(
        cols(lines[3]),
        [
            "istio-system/istiod",
            "HelmRelease",
            "False",
            "not found",
            "-"
        ]
    );
    assert_eq!(
        cols(lines[4]),
        [
            "demo/sleep",
            "Deployment",
            "False",
            "1/2 replicas available",
            "30s"
        ]
    );
    assert_eq!(
        cols(lines[5]),
        [
            "demo/httpbin",
            "Canary",
            "False",
            "phase Progressing, canary weight 20%",
            "2d"
        ]
    );
    assert_eq!(
        cols(lines[6])[..3],
        ["demo/rfma-token-gate", "WasmPlugin", "-"]
    );
    assert!(
        lines[6].contains(
            "url oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@sha256:ab"
        ),
        "{text}"
    );
    // Columns line up.
    let at = lines[0].find("KIND").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[at..].starts_with(|c: char| c.is_ascii_alphabetic())),
        "{text}"
    );
}

fn traffic_extension() -> Value {
    object(
        "extensions.istio.io/v1alpha1",
        "TrafficExtension",
        "demo",
        "rfma-token-gate",
    )
}

fn live_traffic_extension() -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "TrafficExtension",
        "metadata": {"name": "rfma-token-gate", "namespace": "demo", "creationTimestamp": "2026-01-01T00:58:00Z"},
        "spec": {"wasm": {"url": "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@sha256:cd",
                          "sha256": "cd"}}})
}

#[tokio::test]
async fn a_traffic_extension_is_shown_without_readiness_in_json() {
    let synced = [Synced {
        path: "./istio".into(),
        objects: vec![traffic_extension()],
    }];
    let objects = status::declared(&[], &oci_source(), &[], &synced);
    assert_eq!(
        ids(&objects),
        [
            "OCIRepository/flux-system/istio-demo",
            "TrafficExtension/demo/rfma-token-gate"
        ]
    );
    let steps = vec![
        discovery_sources(),
        get(
            OCI_SOURCE,
            ready_oci_source("2026-01-01T00:00:00Z", "stored"),
        ),
        discovery(
            "extensions.istio.io/v1alpha1",
            &[
                ("WasmPlugin", "wasmplugins", true),
                ("TrafficExtension", "trafficextensions", true),
            ],
        ),
        get(
            "/apis/extensions.istio.io/v1alpha1/namespaces/demo/trafficextensions/rfma-token-gate",
            live_traffic_extension(),
        ),
    ];
    let (all_ready, out) = status_of(&objects, steps, Output::Json).await;
    assert!(
        all_ready,
        "an object with no readiness does not make `status` fail"
    );
    let rows: Value = serde_json::from_slice(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0],
        json!({"name": "flux-system/istio-demo", "kind": "OCIRepository", "ready": "True", "message": "stored", "age": "1h"})
    );
    assert_eq!(rows[1]["name"], "demo/rfma-token-gate");
    assert_eq!(rows[1]["kind"], "TrafficExtension");
    assert_eq!(rows[1]["ready"], "-", "Istio reports no readiness for it");
    assert_eq!(rows[1]["age"], "2m");

    // Declared but not deployed: a missing TrafficExtension is a failure like any other.
    let missing = status::row(&traffic_extension(), None, NOW);
    assert_eq!(
        (missing.ready.as_str(), missing.message.as_str()),
        ("False", "not found")
    );
}

#[test]
fn a_traffic_extension_row_names_its_module() {
    let row = status::row(
        &traffic_extension(),
        Some(&live(live_traffic_extension())),
        NOW,
    );
    assert!(
        row.message.contains(
            "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@sha256:cd"
        ),
        "{}",
        row.message
    );
}

#[test]
fn json_rows_and_ages() {
    let canary = live(
        json!({"kind": "Canary", "metadata": {"creationTimestamp": "2026-01-01T00:59:55Z"}, "status": {"phase": "Initialized", "canaryWeight": 0}}),
    );
    let declared = object("flagger.app/v1beta1", "Canary", "demo", "httpbin");
    let row = status::row(&declared, Some(&canary), NOW);
    assert_eq!(
        serde_json::to_value(&row).unwrap(),
        json!({"name": "demo/httpbin", "kind": "Canary", "ready": "True", "message": "phase Initialized, canary weight 0%", "age": "5s"})
    );
    let ready = live(
        json!({"kind": "Deployment", "metadata": {"generation": 1, "creationTimestamp": "2025-12-31T00:00:00Z"},
               "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2}}),
    );
    let row = status::row(
        &object("apps/v1", "Deployment", "demo", "sleep"),
        Some(&ready),
        NOW,
    );
    assert_eq!(
        (row.ready.as_str(), row.message.as_str(), row.age.as_str()),
        ("True", "2/2 ready", "1d")
    );
    assert_eq!(status::age(Some("2025-12-31T21:00:00Z"), NOW), "4h");
    assert_eq!(
        status::age(Some("2026-01-01T01:00:30Z"), NOW),
        "0s",
        "clock skew is not negative"
    );
    assert_eq!(status::age(Some("garbage"), NOW), "-");
    assert_eq!(status::age(None, NOW), "-");
}

const SELF_KS: &str =
    "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/istio-demo";

async fn entry_from(self_ks: Step) -> (Profile, SourceKind) {
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            discovery(
                "kustomize.toolkit.fluxcd.io/v1",
                &[("Kustomization", "kustomizations", true)],
            ),
            self_ks,
        ],
    );
    let cluster = Cluster::new(client, false);
    let entry = status::deployed_entry(&cluster).await.unwrap();
    finish(server).await;
    entry
}

fn self_ks(path: &str) -> Step {
    let mut k = kustomization("istio-demo");
    k["spec"] = json!({"path": path, "interval": "10m", "prune": true,
                       "sourceRef": {"kind": "GitRepository", "name": "istio-demo"}});
    get(SELF_KS, k)
}

#[tokio::test]
async fn deployed_entry_reads_profile_and_source_from_the_self_managing_kustomization() {
    assert_eq!(
        entry_from(self_ks("./flux/clusters/git-minimal")).await,
        (Profile::Minimal, SourceKind::Git)
    );
    assert_eq!(
        entry_from(self_ks("./flux/clusters/minimal")).await,
        (Profile::Minimal, SourceKind::Oci)
    );
    assert_eq!(
        entry_from(self_ks("flux/clusters/git-full/")).await,
        (Profile::Full, SourceKind::Git)
    );
    // Nothing deployed yet, or a path that is no entry point: the default of `up`.
    assert_eq!(
        entry_from(not_found(SELF_KS)).await,
        (Profile::Full, SourceKind::Oci)
    );
    assert_eq!(
        entry_from(self_ks("./flux")).await,
        (Profile::Full, SourceKind::Oci)
    );
}
