//! Flux goes only when istio-demo installed it.

use super::conversation::*;
use super::fixtures::*;
use crate::support::*;
use istio_demo::cluster::Cluster;
use istio_demo::commands::down::{self, Teardown};
use serde_json::{Value, json};
use std::time::Duration;

/// Nothing of the demo left; Flux's namespace as `flux_system` says.
fn flux_only(flux_system: Step) -> Vec<Step> {
    vec![
        discovery_kustomize(),
        not_found_on("PATCH", format!("{KS}/istio-demo")),
        not_found_on("DELETE", format!("{KS}/istio-demo")),
        not_found("/apis/source.toolkit.fluxcd.io/v1"),
        discovery_core(),
        flux_system,
    ]
}

fn ours_flux_system() -> Step {
    get(
        format!("{NS}/flux-system"),
        namespace("flux-system", json!({MANAGED.0: MANAGED.1})),
    )
}

async fn down_empty(steps: Vec<Step>, keep_flux: bool) -> (Vec<Exchange>, String) {
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let mut out = Vec::new();
    down::run_with(
        &cluster,
        &Teardown::default(),
        Duration::from_secs(30),
        keep_flux,
        &mut out,
    )
    .await
    .unwrap();
    (finish(server).await, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn down_removes_flux_only_when_istio_demo_installed_it() {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crb = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    // A label-selected list of `kind` at `path` holding `name`, then its delete and the wait.
    let listed = |path: &str, kind: &str, name: Option<&str>| -> Vec<Step> {
        let items: Vec<Value> = name
            .iter()
            .map(|n| json!({"metadata": {"name": n}}))
            .collect();
        let mut v = vec![get(
            path,
            json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {}, "items": items}),
        )];
        if let Some(n) = name {
            v.extend([
                delete(format!("{path}/{n}")),
                not_found(format!("{path}/{n}")),
            ]);
        }
        v
    };
    let mut steps = flux_only(ours_flux_system());
    steps.push(discovery(
        "apiextensions.k8s.io/v1",
        &[(
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )],
    ));
    steps.extend(listed(
        crds,
        "CustomResourceDefinition",
        Some("kustomizations.kustomize.toolkit.fluxcd.io"),
    ));
    steps.push(discovery(
        "rbac.authorization.k8s.io/v1",
        &[
            ("ClusterRoleBinding", "clusterrolebindings", false),
            ("ClusterRole", "clusterroles", false),
        ],
    ));
    steps.extend(listed(
        crb,
        "ClusterRoleBinding",
        Some("cluster-reconciler-flux-system"),
    ));
    steps.extend(listed(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRole",
        None,
    ));
    steps.extend([
        delete(format!("{NS}/flux-system")),
        not_found(format!("{NS}/flux-system")),
    ]);
    let (log, text) = down_empty(steps, false).await;
    let lists: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "GET" && e.query.contains("labelSelector"))
        .collect();
    assert_eq!(lists.len(), 3, "CRDs, ClusterRoleBindings, ClusterRoles");
    for e in lists {
        assert_eq!(
            e.params().get("labelSelector").map(String::as_str),
            Some("app.kubernetes.io/part-of=flux"),
            "{}",
            e.line()
        );
    }
    assert_eq!(
        deletes(&log),
        [
            format!("{KS}/istio-demo"),
            format!("{crds}/kustomizations.kustomize.toolkit.fluxcd.io"),
            format!("{crb}/cluster-reconciler-flux-system"),
            format!("{NS}/flux-system"),
        ]
    );
    assert_mentions(
        &text,
        &[
            "absent: Kustomization/flux-system/istio-demo",
            "deleted: CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io",
            "deleted: Namespace/flux-system",
        ],
    );

    // With --keep-flux, nothing of Flux is touched.
    let (log, text) = down_empty(flux_only(ours_flux_system()), true).await;
    assert_eq!(deletes(&log), [format!("{KS}/istio-demo")]);
    assert!(text.contains("left in place (--keep-flux)"), "{text}");

    // Flux that was there before istio-demo stays.
    let users = get(
        format!("{NS}/flux-system"),
        namespace("flux-system", json!({"app.kubernetes.io/part-of": "flux"})),
    );
    let (log, text) = down_empty(flux_only(users), false).await;
    assert_eq!(deletes(&log), [format!("{KS}/istio-demo")]);
    assert!(
        text.contains("left in place: Flux was installed before istio-demo"),
        "{text}"
    );
}
