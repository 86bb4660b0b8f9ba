//! `istio-demo down` against kube's tower-test mock: reverse order, waits for finalizers, and
//! namespaces that existed before `up` are never deleted.

mod support;

use istio_demo::cluster::Cluster;
use istio_demo::commands::down;
use istio_demo::commands::up::Synced;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

fn ns(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn flux_dir() -> Vec<Value> {
    vec![
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "istio-demo", "namespace": "flux-system"}}),
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "infra", "namespace": "flux-system"}}),
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"}}),
    ]
}

fn synced() -> Vec<Synced> {
    vec![
        Synced {
            path: "./demo".into(),
            objects: vec![ns("demo", json!({"istio-injection": "enabled"}))],
        },
        Synced {
            path: "./elk".into(),
            objects: vec![ns("elk", json!({}))],
        },
    ]
}

#[test]
fn deletion_order_is_the_reverse_of_up() {
    let names: Vec<String> = down::sync_objects(&flux_dir())
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "Kustomization/apps",
            "Kustomization/infra",
            "GitRepository/istio-demo"
        ]
    );
    let nss: Vec<String> = down::namespaces(&flux_dir(), &synced())
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nss, ["demo", "elk"]);
}

#[tokio::test]
async fn down_deletes_in_reverse_waits_for_finalizers_and_keeps_pre_existing_namespaces() {
    let (client, handle) = mock();
    let ks = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations";
    let git = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/istio-demo";
    let live = |name: &str, labels: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    let ok = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let terminating = |o: Value| {
        let mut o = o;
        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        o["metadata"]["finalizers"] = json!(["finalizers.fluxcd.io"]);
        o
    };
    let apps = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"}});
    let server = serve(
        handle,
        vec![
            get(
                "/api/v1",
                resources("v1", &[("Namespace", "namespaces", false)]),
            ),
            get(
                "/api/v1/namespaces/demo",
                live(
                    "demo",
                    json!({"app.kubernetes.io/managed-by": "istio-demo", "istio-injection": "enabled"}),
                ),
            ),
            get(
                "/api/v1/namespaces/elk",
                live("elk", json!({"team": "logging"})),
            ),
            // The user's namespace: protected from Flux's pruning (read, then SSA of the annotation).
            get(
                "/api/v1/namespaces/elk",
                live("elk", json!({"team": "logging"})),
            ),
            apply("/api/v1/namespaces/elk"),
            get(
                "/apis/kustomize.toolkit.fluxcd.io/v1",
                resources(
                    "kustomize.toolkit.fluxcd.io/v1",
                    &[("Kustomization", "kustomizations", true)],
                ),
            ),
            step(
                "DELETE",
                format!("{ks}/apps"),
                200,
                terminating(apps.clone()),
            ),
            get(format!("{ks}/apps"), terminating(apps.clone())), // finalizer still pruning
            not_found(format!("{ks}/apps")),
            step("DELETE", format!("{ks}/infra"), 200, ok.clone()),
            not_found(format!("{ks}/infra")),
            get(
                "/apis/source.toolkit.fluxcd.io/v1",
                resources(
                    "source.toolkit.fluxcd.io/v1",
                    &[("GitRepository", "gitrepositories", true)],
                ),
            ),
            step("DELETE", git, 200, ok.clone()),
            not_found(git),
            step(
                "DELETE",
                "/api/v1/namespaces/demo",
                200,
                terminating(live("demo", json!({}))),
            ),
            not_found("/api/v1/namespaces/demo"),
            get(
                "/api/v1/namespaces/flux-system",
                live("flux-system", json!({"app.kubernetes.io/part-of": "flux"})),
            ),
        ],
    );
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let mut out = Vec::new();
    down::run_with(
        &cluster,
        &flux_dir(),
        &synced(),
        Duration::from_secs(30),
        false,
        &mut out,
    )
    .await
    .unwrap();
    let log = finish(server).await;
    let text = String::from_utf8(out).unwrap();

    let deletes: Vec<&str> = log
        .iter()
        .filter(|e| e.method == "DELETE")
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        deletes,
        [
            format!("{ks}/apps").as_str(),
            &format!("{ks}/infra"),
            git,
            "/api/v1/namespaces/demo"
        ]
    );
    assert!(
        !deletes
            .iter()
            .any(|d| d.ends_with("/elk") || d.ends_with("/flux-system")),
        "pre-existing namespaces are never deleted"
    );
    let protect = log.iter().find(|e| e.method == "PATCH").unwrap();
    assert_eq!(protect.path, "/api/v1/namespaces/elk");
    assert!(
        protect.params_are(&[("fieldManager", "istio-demo"), ("force", "true")]),
        "{}",
        protect.line()
    );
    assert_eq!(
        protect.body["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"],
        "disabled"
    );
    for want in [
        "keeping Namespace/elk: it existed before istio-demo",
        "deleted: Kustomization/flux-system/apps",
        "deleted: Namespace/demo",
        "left in place: Flux was installed before istio-demo",
        "the demo is down",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[tokio::test]
async fn down_dry_run_deletes_nothing() {
    let (client, handle) = mock();
    let ks = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations";
    let ok = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let server = serve(
        handle,
        vec![
            get(
                "/api/v1",
                resources("v1", &[("Namespace", "namespaces", false)]),
            ),
            get(
                "/api/v1/namespaces/demo",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": {"app.kubernetes.io/managed-by": "istio-demo"}}}),
            ),
            not_found("/api/v1/namespaces/elk"),
            get(
                "/apis/kustomize.toolkit.fluxcd.io/v1",
                resources(
                    "kustomize.toolkit.fluxcd.io/v1",
                    &[("Kustomization", "kustomizations", true)],
                ),
            ),
            step("DELETE", format!("{ks}/apps"), 200, ok.clone()),
            step("DELETE", format!("{ks}/infra"), 200, ok.clone()),
            not_found("/apis/source.toolkit.fluxcd.io/v1"),
            step("DELETE", "/api/v1/namespaces/demo", 200, ok.clone()),
            not_found("/api/v1/namespaces/flux-system"),
        ],
    );
    let cluster = Cluster::new(client, true);
    let mut out = Vec::new();
    down::run_with(
        &cluster,
        &flux_dir(),
        &synced(),
        Duration::from_secs(30),
        false,
        &mut out,
    )
    .await
    .unwrap();
    let log = finish(server).await;
    for e in log.iter().filter(|e| e.method != "GET") {
        assert_eq!(e.method, "DELETE");
        // kube sends DeleteOptions in the body: a server-side dry run deletes nothing.
        assert_eq!(e.body["dryRun"], json!(["All"]), "{} {}", e.line(), e.body);
    }
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("would delete: Namespace/demo"), "{text}");
    assert!(
        text.contains("dry run complete: nothing was deleted"),
        "{text}"
    );
}

#[tokio::test]
async fn down_removes_flux_only_when_istio_demo_installed_it() {
    let (client, handle) = mock();
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crb = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    let list = |kind: &str, items: Value| json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {}, "items": items});
    let ok = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let server = serve(
        handle,
        vec![
            get(
                "/api/v1",
                resources("v1", &[("Namespace", "namespaces", false)]),
            ),
            get(
                "/api/v1/namespaces/flux-system",
                json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "flux-system", "labels": {"app.kubernetes.io/managed-by": "istio-demo"}}}),
            ),
            get(
                "/apis/apiextensions.k8s.io/v1",
                resources(
                    "apiextensions.k8s.io/v1",
                    &[(
                        "CustomResourceDefinition",
                        "customresourcedefinitions",
                        false,
                    )],
                ),
            ),
            get(
                crds,
                list(
                    "CustomResourceDefinition",
                    json!([{"metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"}}]),
                ),
            ),
            step(
                "DELETE",
                format!("{crds}/kustomizations.kustomize.toolkit.fluxcd.io"),
                200,
                ok.clone(),
            ),
            not_found(format!("{crds}/kustomizations.kustomize.toolkit.fluxcd.io")),
            get(
                "/apis/rbac.authorization.k8s.io/v1",
                resources(
                    "rbac.authorization.k8s.io/v1",
                    &[
                        ("ClusterRoleBinding", "clusterrolebindings", false),
                        ("ClusterRole", "clusterroles", false),
                    ],
                ),
            ),
            get(
                crb,
                list(
                    "ClusterRoleBinding",
                    json!([{"metadata": {"name": "cluster-reconciler-flux-system"}}]),
                ),
            ),
            step(
                "DELETE",
                format!("{crb}/cluster-reconciler-flux-system"),
                200,
                ok.clone(),
            ),
            not_found(format!("{crb}/cluster-reconciler-flux-system")),
            get(
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                list("ClusterRole", json!([])),
            ),
            step("DELETE", "/api/v1/namespaces/flux-system", 200, ok.clone()),
            not_found("/api/v1/namespaces/flux-system"),
        ],
    );
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let mut out = Vec::new();
    down::run_with(&cluster, &[], &[], Duration::from_secs(30), false, &mut out)
        .await
        .unwrap();
    let log = finish(server).await;
    for e in log
        .iter()
        .filter(|e| e.method == "GET" && e.query.contains("labelSelector"))
    {
        assert_eq!(
            e.params().get("labelSelector").map(String::as_str),
            Some("app.kubernetes.io/part-of=flux"),
            "{}",
            e.line()
        );
    }
    let deletes = log.iter().filter(|e| e.method == "DELETE").count();
    assert_eq!(deletes, 3);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(
            "deleted: CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io"
        ),
        "{text}"
    );
    assert!(text.contains("deleted: Namespace/flux-system"), "{text}");

    // With --keep-flux, nothing of Flux is touched.
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            get(
                "/api/v1",
                resources("v1", &[("Namespace", "namespaces", false)]),
            ),
            get(
                "/api/v1/namespaces/flux-system",
                json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "flux-system", "labels": {"app.kubernetes.io/managed-by": "istio-demo"}}}),
            ),
        ],
    );
    let cluster = Cluster::new(client, false);
    let mut out = Vec::new();
    down::run_with(&cluster, &[], &[], Duration::from_secs(30), true, &mut out)
        .await
        .unwrap();
    finish(server).await;
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("left in place (--keep-flux)")
    );
}
