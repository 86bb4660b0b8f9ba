//! The API's side of a teardown, scripted for tower-test: discovery, the reads and deletes of
//! the plan's objects, finalizers; and running `down` over it.

use super::fixtures::*;
use crate::support::*;
use istio_demo::cluster::Cluster;
use istio_demo::commands::down;
use serde_json::{Value, json};
use std::time::Duration;

pub(super) fn discovery_kustomize() -> Step {
    discovery(
        "kustomize.toolkit.fluxcd.io/v1",
        &[("Kustomization", "kustomizations", true)],
    )
}

pub(super) fn discovery_core() -> Step {
    discovery(
        "v1",
        &[
            ("Namespace", "namespaces", false),
            ("Secret", "secrets", true),
        ],
    )
}

pub(super) fn discovery_sources() -> Step {
    discovery(
        "source.toolkit.fluxcd.io/v1",
        &[
            ("OCIRepository", "ocirepositories", true),
            ("GitRepository", "gitrepositories", true),
        ],
    )
}

pub(super) fn token_secret(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "data": {"token": "c2VjcmV0"}})
}

pub(super) fn terminating(mut o: Value) -> Value {
    o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    o["metadata"]["finalizers"] = json!(["finalizers.fluxcd.io"]);
    o
}

/// The whole teardown of [`plan`] against a cluster where `demo` (holding one token Secret
/// istio-demo made and one it did not) existed before `up`, `elk` is gone already, and Flux was
/// there before istio-demo. Without `dry_run`, every accepted delete is followed by the reads of
/// the wait, `notifications` finalizing for one read.
pub(super) fn conversation(dry_run: bool) -> Vec<Step> {
    let wait = |path: String| -> Vec<Step> {
        if dry_run {
            vec![]
        } else {
            vec![not_found(path)]
        }
    };
    let mut steps = vec![
        step(
            "PATCH",
            format!("{KS}/istio-demo"),
            200,
            kustomization("istio-demo", "./flux/clusters/full", &[]),
        ),
        // Which namespaces are ours.
        discovery_core(),
        get(
            format!("{NS}/demo"),
            namespace("demo", json!({"team": "web"})),
        ),
        get(
            format!("{NS}/demo"),
            namespace("demo", json!({"team": "web"})),
        ),
        apply(format!("{NS}/demo")),
        get(
            format!("{NS}/flagger-system"),
            namespace("flagger-system", json!({MANAGED.0: MANAGED.1})),
        ),
        not_found(format!("{NS}/elk")),
        get(
            format!("{NS}/istio-demo-registry"),
            namespace("istio-demo-registry", json!({MANAGED.0: MANAGED.1})),
        ),
    ];
    let notifications = kustomization("notifications", "./flux/notifications", &[]);
    steps.push(step(
        "DELETE",
        format!("{KS}/notifications"),
        200,
        terminating(notifications.clone()),
    ));
    if !dry_run {
        steps.push(get(
            format!("{KS}/notifications"),
            terminating(notifications),
        ));
    }
    steps.extend(wait(format!("{KS}/notifications")));
    for k in ["logging", "apps", "infrastructure", "istio-demo"] {
        steps.push(delete(format!("{KS}/{k}")));
        steps.extend(wait(format!("{KS}/{k}")));
    }
    steps.push(discovery_sources());
    steps.push(delete(format!("{SOURCES}/ocirepositories/istio-demo")));
    steps.extend(wait(format!("{SOURCES}/ocirepositories/istio-demo")));
    steps.push(not_found_on(
        "DELETE",
        format!("{SOURCES}/gitrepositories/istio-demo"),
    ));
    // Token Secrets in the user's namespace: only the one istio-demo made goes.
    steps.push(get(
        format!("{NS}/demo/secrets/rfma-demo-token"),
        token_secret("demo", "rfma-demo-token", json!({MANAGED.0: MANAGED.1})),
    ));
    steps.push(delete(format!("{NS}/demo/secrets/rfma-demo-token")));
    steps.extend(wait(format!("{NS}/demo/secrets/rfma-demo-token")));
    steps.push(get(
        format!("{NS}/demo/secrets/rfma-external-token"),
        token_secret("demo", "rfma-external-token", json!({"owner": "me"})),
    ));
    for n in ["flagger-system", "istio-demo-registry"] {
        steps.push(delete(format!("{NS}/{n}")));
        steps.extend(wait(format!("{NS}/{n}")));
    }
    steps.push(get(
        format!("{NS}/flux-system"),
        namespace("flux-system", json!({"app.kubernetes.io/part-of": "flux"})),
    ));
    steps
}

/// Runs [`plan`]'s teardown over [`conversation`]; returns what `run_with` sent (the discovery of
/// the Kustomization kind, done beforehand, left out) and what it printed.
pub(super) async fn teardown_conversation(dry_run: bool) -> (Vec<Exchange>, String) {
    let (client, handle) = mock();
    let mut steps = vec![discovery_kustomize()];
    steps.extend(conversation(dry_run));
    let server = serve(handle, steps);
    let mut cluster = Cluster::new(client, dry_run);
    cluster.poll = Duration::from_millis(1);
    // Discovery first, so that the first request `run_with` makes is its own.
    cluster
        .resolve("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    down::run_with(&cluster, &plan(), Duration::from_secs(30), false, &mut out)
        .await
        .unwrap();
    let mut log = finish(server).await;
    log.remove(0);
    (log, String::from_utf8(out).unwrap())
}

pub(super) fn deletes(log: &[Exchange]) -> Vec<&str> {
    log.iter()
        .filter(|e| e.method == "DELETE")
        .map(|e| e.path.as_str())
        .collect()
}
