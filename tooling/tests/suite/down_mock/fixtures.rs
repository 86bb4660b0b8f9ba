//! The inputs of a teardown plan: Kustomizations, namespaces, entry points, what `up` synced,
//! the registry; and the check that dependants go first.

use istio_demo::commands::down::{self, Teardown};
use istio_demo::deploy::plan;
use istio_demo::deploy::render::Synced;
use serde_json::{Value, json};

pub(super) const KS: &str =
    "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations";
pub(super) const SOURCES: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system";
pub(super) const NS: &str = "/api/v1/namespaces";
pub(super) const MANAGED: (&str, &str) = ("app.kubernetes.io/managed-by", "istio-demo");

pub(super) fn kustomization(name: &str, path: &str, depends_on: &[&str]) -> Value {
    let mut k = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                       "metadata": {"name": name, "namespace": "flux-system"},
                       "spec": {"path": path, "interval": "10m", "prune": true,
                                "sourceRef": {"kind": "OCIRepository", "name": "istio-demo"}}});
    if !depends_on.is_empty() {
        k["spec"]["dependsOn"] = depends_on.iter().map(|d| json!({"name": d})).collect();
    }
    k
}

pub(super) fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// Two entry points (full and minimal) listing their Kustomizations in an order where the reverse
/// of the listing is not a valid deletion order.
pub(super) fn entries() -> Vec<Vec<Value>> {
    vec![
        vec![
            kustomization("istio-demo", "./flux/clusters/full", &[]),
            kustomization("apps", "./flux/apps", &["infrastructure"]),
            kustomization("logging", "./flux/logging", &["infrastructure"]),
            kustomization("infrastructure", "./flux/infrastructure", &[]),
            kustomization("notifications", "./flux/notifications", &["apps"]),
        ],
        vec![
            kustomization("istio-demo", "./flux/clusters/minimal", &[]),
            kustomization("apps", "./flux/apps", &["infrastructure"]),
            kustomization("infrastructure", "./flux/infrastructure", &[]),
            kustomization("notifications", "./flux/notifications", &["apps"]),
        ],
    ]
}

pub(super) fn synced() -> Vec<Synced> {
    vec![
        Synced {
            path: "./demo".into(),
            objects: vec![namespace("demo", json!({"istio-injection": "enabled"}))],
        },
        Synced {
            path: "./flagger/system".into(),
            objects: vec![
                namespace("flagger-system", json!({})),
                // Flux's own namespace is never the demo's to delete.
                namespace("flux-system", json!({})),
            ],
        },
        Synced {
            path: "./elk".into(),
            objects: vec![
                namespace("elk", json!({})),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "kibana", "namespace": "elk"}}),
            ],
        },
        Synced {
            // An entry point synced again by the self-managing Kustomization: no duplicates.
            path: "./demo".into(),
            objects: vec![namespace("demo", json!({}))],
        },
    ]
}

pub(super) fn registry() -> Vec<Value> {
    vec![
        namespace(
            "istio-demo-registry",
            json!({"istio-injection": "disabled"}),
        ),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "namespace": "istio-demo-registry"}}),
    ]
}

pub(super) fn plan() -> Teardown {
    down::teardown(&entries(), &synced(), &registry())
}

pub(super) fn names(objects: &[Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

/// Asserts that each Kustomization of `t` is deleted before every one it depends on.
pub(super) fn assert_dependants_first(t: &Teardown) {
    let order = names(&t.kustomizations);
    let at = |n: &str| order.iter().position(|x| *x == n);
    for k in &t.kustomizations {
        for d in k["spec"]["dependsOn"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap();
            assert!(
                at(plan::name(k)) < at(dep),
                "{} must be deleted before {dep}: {order:?}",
                plan::name(k)
            );
        }
    }
}
