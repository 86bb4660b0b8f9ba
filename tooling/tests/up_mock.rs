//! `istio-demo up` against kube's tower-test mock: stage order, CRD Established then discovery
//! refresh, server-side apply with one field manager and force, a dry run that writes nothing, and
//! a failed wait that prints conditions and Events.

mod support;

use istio_demo::cluster::{Check, Cluster, Target};
use istio_demo::commands::up::{self, Inputs, Stage, Synced};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kustomizations.kustomize.toolkit.fluxcd.io";

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
           "spec": {"group": "kustomize.toolkit.fluxcd.io", "names": {"kind": "Kustomization", "plural": "kustomizations"},
                    "scope": "Namespaced", "versions": []}})
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn deployment(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}}})
}

fn kustomization(name: &str, path: &str) -> Value {
    json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
           "metadata": {"name": name, "namespace": "flux-system"},
           "spec": {"path": path, "interval": "10m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "istio-demo"}}})
}

fn inputs() -> Inputs {
    Inputs {
        flux_install: vec![
            crd(),
            namespace("flux-system", json!({})),
            deployment("flux-system", "kustomize-controller"),
        ],
        flux_dir: vec![
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                   "metadata": {"name": "istio-demo", "namespace": "flux-system"},
                   "spec": {"url": "https://github.com/your-org/istio-demo", "ref": {"branch": "main"}, "interval": "1m"}}),
            kustomization("demo", "./demo"),
        ],
        synced: vec![
            Synced {
                path: "./demo".into(),
                objects: vec![
                    namespace("demo", json!({"istio-injection": "enabled"})),
                    deployment("demo", "httpbin"),
                ],
            },
            Synced {
                path: "./istio/system".into(),
                objects: vec![
                    json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                                     "metadata": {"name": "istiod", "namespace": "istio-system"},
                                     "spec": {"chart": {"spec": {"chart": "istiod", "version": "1.30.3"}}}}),
                ],
            },
            Synced {
                path: "./flagger".into(),
                objects: vec![
                    json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "httpbin", "namespace": "demo"}, "spec": {}}),
                ],
            },
            Synced {
                path: "./elk".into(),
                objects: vec![deployment("elk", "kibana")],
            },
        ],
        git_url: Some("https://example.test/me/istio-demo.git".into()),
        git_branch: Some("feature".into()),
    }
}

#[test]
fn plan_orders_stages_and_overrides_the_git_source() {
    let stages = up::plan(&inputs(), None);
    let names: Vec<&str> = stages.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "CRDs",
            "namespaces",
            "Flux controllers",
            "Flux sources",
            "Flux Kustomizations",
            "Istio control plane",
            "monitoring",
            "Flagger",
            "apps",
            "Canary",
            "ELK"
        ]
    );
    assert_eq!(stages[0].apply, vec![crd()]);
    assert_eq!(stages[0].wait[0].check, Check::Established);
    assert!(stages[0].refresh_discovery);
    let ns: Vec<&str> = stages[1]
        .apply
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        ns,
        ["flux-system", "demo"],
        "namespaces come before any workload"
    );
    let git = &stages[3].apply[0];
    assert_eq!(git["spec"]["url"], "https://example.test/me/istio-demo.git");
    assert_eq!(git["spec"]["ref"], json!({"branch": "feature"}));
    assert_eq!(stages[4].wait[0].id(), "Kustomization/flux-system/demo");
    assert_eq!(stages[5].wait[0].id(), "HelmRelease/istio-system/istiod");
    assert_eq!(stages[8].wait[0].id(), "Deployment/demo/httpbin");
    assert_eq!(stages[9].wait[0].check, Check::CanaryInitialized);
    assert_eq!(stages[10].wait[0].id(), "Deployment/elk/kibana");
    assert!(stages.iter().all(|s| s.timeout >= Duration::from_secs(60)));
    let t = up::plan(&inputs(), Some(Duration::from_secs(7)));
    assert!(
        t.iter().all(|s| s.timeout == Duration::from_secs(7)),
        "--timeout applies to every stage"
    );
}

#[tokio::test]
async fn dry_run_prints_the_full_plan_in_stage_order_and_writes_nothing() {
    let (client, handle) = mock();
    let ns_path = "/api/v1/namespaces";
    let user_demo = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "resourceVersion": "1", "labels": {"istio-injection": "enabled"}}});
    let mut steps = preflight_steps(true);
    steps.extend([
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
        not_found(CRD_PATH),
        apply(CRD_PATH),
        get(
            "/api/v1",
            resources(
                "v1",
                &[
                    ("Namespace", "namespaces", false),
                    ("Event", "events", true),
                ],
            ),
        ),
        not_found(format!("{ns_path}/flux-system")),
        not_found(format!("{ns_path}/flux-system")),
        apply(format!("{ns_path}/flux-system")),
        get(format!("{ns_path}/demo"), user_demo.clone()),
        get(format!("{ns_path}/demo"), user_demo.clone()),
        step("PATCH", format!("{ns_path}/demo"), 200, user_demo.clone()),
        get(
            "/apis/apps/v1",
            resources("apps/v1", &[("Deployment", "deployments", true)]),
        ),
        // An older controller is there: the dry run says what would change.
        get("/apis/apps/v1/namespaces/flux-system/deployments/kustomize-controller", {
            let mut old = deployment("flux-system", "kustomize-controller");
            old["spec"]["template"]["spec"]["containers"] = json!([{"name": "manager", "image": "ghcr.io/fluxcd/kustomize-controller:v1.0.0"}]);
            old["metadata"]["resourceVersion"] = json!("41");
            old["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
            old["status"] = json!({"replicas": 1});
            old
        }),
        apply("/apis/apps/v1/namespaces/flux-system/deployments/kustomize-controller"),
        not_found("/apis/source.toolkit.fluxcd.io/v1"),
        not_found("/apis/kustomize.toolkit.fluxcd.io/v1"),
    ]);
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, true);
    let mut out = Vec::new();
    up::run_with(&cluster, inputs(), None, &mut out)
        .await
        .unwrap();
    let log = finish(server).await;
    let text = String::from_utf8(out).unwrap();

    // Every write is a server-side dry run with our field manager; nothing else writes.
    for ex in &log {
        match ex.method.as_str() {
            "GET" => {}
            "POST" => assert!(
                ex.path.ends_with("/selfsubjectaccessreviews"),
                "unexpected write {}",
                ex.line()
            ),
            "PATCH" => assert!(
                ex.params_are(&[
                    ("dryRun", "All"),
                    ("fieldManager", "istio-demo"),
                    ("force", "true")
                ]),
                "{}",
                ex.line()
            ),
            _ => panic!("unexpected write {}", ex.line()),
        }
    }
    // Our namespace gets the managed-by label; the user's existing one does not.
    let patches: Vec<&Exchange> = log.iter().filter(|e| e.method == "PATCH").collect();
    assert_eq!(
        patches[1].body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "istio-demo"
    );
    assert!(
        patches[2].body["metadata"]["labels"]
            .get("app.kubernetes.io/managed-by")
            .is_none(),
        "{:?}",
        patches[2].body
    );
    assert_eq!(
        patches[2].body["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"], "disabled",
        "a pre-existing namespace is protected from Flux's garbage collection"
    );
    assert_eq!(
        patches[2].body["metadata"]["labels"]["istio-injection"], "enabled",
        "the manifest's labels are applied"
    );

    let expected_in_order = [
        "preflight: API server v1.34.2 reachable",
        "preflight: RBAC ok",
        "preflight: Flux: not installed",
        "preflight: load balancer: none seen",
        "plan (server-side dry run: nothing is written):",
        "[1/11] CRDs",
        "  would be created: CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io",
        "  would wait for CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io (Established",
        "  discovery refreshed",
        "[2/11] namespaces",
        "  would be created: Namespace/flux-system",
        "  would be unchanged: Namespace/demo (existed before: stays yours, `down` keeps it)",
        "[3/11] Flux controllers",
        "  would be configured (spec.template.spec): Deployment/flux-system/kustomize-controller",
        "  would wait for Deployment/flux-system/kustomize-controller (Workload",
        "[4/11] Flux sources",
        "  would be created (kind served once its CRD is established): GitRepository/flux-system/istio-demo",
        "  would be created (kind served once its CRD is established): Kustomization/flux-system/demo",
        "  would wait for GitRepository/flux-system/istio-demo (Ready",
        "[5/11] Flux Kustomizations",
        "  would wait for Kustomization/flux-system/demo (Ready",
        "[6/11] Istio control plane",
        "  would wait for HelmRelease/istio-system/istiod (Ready",
        "[7/11] monitoring",
        "  nothing to do",
        "[8/11] Flagger",
        "[9/11] apps",
        "  would wait for Deployment/demo/httpbin (Workload",
        "[10/11] Canary",
        "  would wait for Canary/demo/httpbin (CanaryInitialized",
        "[11/11] ELK",
        "  would wait for Deployment/elk/kibana (Workload",
        "dry run complete: nothing was changed",
    ];
    let mut pos = 0;
    for want in expected_in_order {
        let found = text[pos..]
            .find(want)
            .unwrap_or_else(|| panic!("missing (in order) {want:?} in:\n{text}"));
        pos += found + want.len();
    }
}

#[tokio::test]
async fn crd_established_then_discovery_refresh_then_custom_resources_apply() {
    let (client, handle) = mock();
    let ks_gv = "/apis/kustomize.toolkit.fluxcd.io/v1";
    let ks_path = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps";
    let crd_with = |status: &str| {
        let mut c = crd();
        c["status"] = json!({"conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": status}]});
        c
    };
    let server = serve(
        handle,
        vec![
            not_found(ks_gv), // before: the kind is unknown, and discovery caches that
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
            not_found(CRD_PATH),
            apply(CRD_PATH),
            get(CRD_PATH, crd_with("False")),
            get(CRD_PATH, crd_with("True")),
            // After Established, discovery is asked again: the kind resolves now.
            get(
                ks_gv,
                resources(
                    "kustomize.toolkit.fluxcd.io/v1",
                    &[("Kustomization", "kustomizations", true)],
                ),
            ),
            not_found(ks_path),
            apply(ks_path),
        ],
    );
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    assert!(
        cluster
            .resolve("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
            .await
            .unwrap()
            .is_none()
    );
    let mut crds = Stage {
        name: "CRDs",
        apply: vec![crd()],
        wait: vec![Target::of(&crd(), Check::Established)],
        refresh_discovery: true,
        namespaces: false,
        timeout: Duration::from_secs(30),
    };
    let mut sources = crds.clone();
    sources.name = "Flux sources";
    sources.apply = vec![kustomization("apps", "./apps")];
    sources.wait.clear();
    sources.refresh_discovery = false;
    crds.timeout = Duration::from_secs(30);
    let mut out = Vec::new();
    up::run_stages(&cluster, &[crds, sources], &mut out)
        .await
        .unwrap();
    let log = finish(server).await;
    let text = String::from_utf8(out).unwrap();

    let patches: Vec<&Exchange> = log.iter().filter(|e| e.method == "PATCH").collect();
    assert_eq!(patches.len(), 2);
    for p in &patches {
        assert!(
            p.params_are(&[("fieldManager", "istio-demo"), ("force", "true")]),
            "SSA with our field manager, forced, not a dry run: {}",
            p.line()
        );
    }
    assert_eq!(patches[0].body["kind"], "CustomResourceDefinition");
    assert_eq!(
        patches[1].body,
        kustomization("apps", "./apps"),
        "the object is sent as rendered"
    );
    assert!(
        text.contains(
            "created: CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io"
        ),
        "{text}"
    );
    assert!(
        text.contains("ready: CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io"),
        "{text}"
    );
    assert!(text.contains("discovery refreshed"), "{text}");
    assert!(
        text.contains("created: Kustomization/flux-system/apps"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_wait_prints_conditions_and_events_and_fails() {
    let (client, handle) = mock();
    let obj = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system", "generation": 3},
        "status": {"observedGeneration": 3, "conditions": [
            {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "building"},
            {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "kustomize build failed: accumulating resources"}]}});
    let events = json!({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": [
        {"metadata": {"name": "e2", "namespace": "flux-system"}, "involvedObject": {"kind": "Kustomization", "name": "apps"},
         "type": "Warning", "reason": "ReconciliationFailed", "message": "kustomization path not found", "count": 4, "lastTimestamp": "2026-01-01T00:00:09Z"},
        {"metadata": {"name": "e1", "namespace": "flux-system"}, "involvedObject": {"kind": "Kustomization", "name": "apps"},
         "type": "Normal", "reason": "Progressing", "message": "started", "count": 1, "lastTimestamp": "2026-01-01T00:00:01Z"}]});
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
                obj.clone(),
            ),
            get("/api/v1/namespaces/flux-system/events", events),
        ],
    );
    let cluster = Cluster::new(client, false);
    let stage = Stage {
        name: "Flux Kustomizations",
        apply: vec![],
        wait: vec![Target::of(&obj, Check::Ready)],
        refresh_discovery: false,
        namespaces: false,
        timeout: Duration::ZERO,
    };
    let mut out = Vec::new();
    let err = up::run_stages(&cluster, &[stage], &mut out)
        .await
        .unwrap_err();
    let log = finish(server).await;
    assert!(
        err.to_string()
            .contains("Kustomization/flux-system/apps is not ready"),
        "{err}"
    );
    assert!(
        log[2].params_are(&[(
            "fieldSelector",
            "involvedObject.kind=Kustomization,involvedObject.name=apps"
        )]),
        "{}",
        log[2].line()
    );
    let text = String::from_utf8(out).unwrap();
    for want in [
        "FAILED: Kustomization/flux-system/apps: not ready after 0s: Ready=False kustomize build failed",
        "Ready=False BuildFailed: kustomize build failed: accumulating resources",
        "Reconciling=True Progressing: building",
        "recent events:",
        "Normal Progressing (x1): started",
        "Warning ReconciliationFailed (x4): kustomization path not found",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        text.find("Progressing (x1)").unwrap() < text.find("ReconciliationFailed").unwrap(),
        "events oldest first"
    );
}

#[tokio::test]
async fn missing_rbac_stops_before_any_write() {
    let (client, handle) = mock();
    let server = serve(handle, preflight_steps(false));
    let cluster = Cluster::new(client, false);
    let mut out = Vec::new();
    let err = up::run_with(&cluster, inputs(), None, &mut out)
        .await
        .unwrap_err();
    let log = finish(server).await;
    assert!(
        err.to_string()
            .contains("missing permissions: create customresourcedefinitions.apiextensions.k8s.io"),
        "{err}"
    );
    assert!(
        log.iter()
            .all(|e| e.method == "GET" || e.path.ends_with("selfsubjectaccessreviews"))
    );
}

#[test]
fn flux_manifest_must_be_given_or_checksum_verified() {
    let err = up::load_flux_manifest(None, None).unwrap_err().to_string();
    assert!(
        err.contains("--flux-manifest")
            && err.contains("--flux-sha256")
            && err.contains(up::FLUX_INSTALL_URL),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("install.yaml");
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: kustomizations.kustomize.toolkit.fluxcd.io\nspec:\n  group: kustomize.toolkit.fluxcd.io\n";
    std::fs::write(&file, yaml).unwrap();
    let objs = up::load_flux_manifest(Some(&file), None).unwrap();
    assert_eq!(objs.len(), 2);
    let sum = istio_demo::oci::sha256_digest(yaml.as_bytes())
        .trim_start_matches("sha256:")
        .to_string();
    assert_eq!(
        up::load_flux_manifest(Some(&file), Some(&sum))
            .unwrap()
            .len(),
        2
    );
    let wrong = "0".repeat(64);
    let err = up::load_flux_manifest(Some(&file), Some(&wrong))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refusing to apply") && err.contains(&sum),
        "{err}"
    );
    assert!(
        up::load_flux_manifest(Some(&file), Some("abc"))
            .unwrap_err()
            .to_string()
            .contains("64 hex digits")
    );
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )
    .unwrap();
    assert!(
        up::load_flux_manifest(Some(&file), None)
            .unwrap_err()
            .to_string()
            .contains("does not look like Flux")
    );
}

#[test]
fn kustomizations_follow_depends_on() {
    let ks = |n: &str, deps: &[&str]| {
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": n, "namespace": "flux-system"},
               "spec": {"dependsOn": deps.iter().map(|d| json!({"name": d})).collect::<Vec<_>>()}})
    };
    let (c, b, a, cyc1, cyc2) = (
        ks("c", &["b"]),
        ks("b", &["a", "external"]),
        ks("a", &[]),
        ks("x", &["y"]),
        ks("y", &["x"]),
    );
    let git = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "g"}});
    let order: Vec<&str> = up::dependency_order(vec![&c, &cyc1, &b, &git, &a, &cyc2])
        .into_iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["g", "a", "b", "c", "x", "y"],
        "a dependency outside the set is ignored; a cycle keeps its order"
    );
}

#[tokio::test]
async fn preflight_reports_installed_products_and_their_versions() {
    let (client, handle) = mock();
    let mut steps = preflight_steps(true);
    // Flux's CRD carries its version label; Istio's does not: the istiod image tag tells.
    steps[4] = get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kustomizations.kustomize.toolkit.fluxcd.io",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io", "labels": {"app.kubernetes.io/version": "v2.9.0"}},
               "spec": {"group": "kustomize.toolkit.fluxcd.io", "names": {"kind": "Kustomization", "plural": "kustomizations"}, "scope": "Namespaced", "versions": []}}),
    );
    steps[5] = get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/wasmplugins.extensions.istio.io",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "wasmplugins.extensions.istio.io"},
               "spec": {"group": "extensions.istio.io", "names": {"kind": "WasmPlugin", "plural": "wasmplugins"}, "scope": "Namespaced", "versions": []}}),
    );
    steps.insert(
        6,
        get(
            "/apis/apps/v1",
            resources("apps/v1", &[("Deployment", "deployments", true)]),
        ),
    );
    steps.insert(
        7,
        get(
            "/apis/apps/v1/deployments",
            json!({"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {}, "items": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "namespace": "istio-system"},
                 "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.30.3"}]}}}}]}),
        ),
    );
    let last = steps.len() - 1;
    steps[last] = get(
        "/api/v1/services",
        json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": [
        {"metadata": {"name": "istio-ingressgateway", "namespace": "istio-ingress"}, "spec": {"type": "LoadBalancer"},
         "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.200"}]}}}]}),
    );
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, false);
    let mut out = Vec::new();
    let p = up::preflight(&cluster, &mut out).await.unwrap();
    let log = finish(server).await;
    assert_eq!(
        log[7].params().get("labelSelector").map(String::as_str),
        Some("app=istiod")
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(p.flux.as_deref(), Some("v2.9.0"));
    assert_eq!(
        p.istio.as_deref(),
        Some("1.30.3, from the app=istiod image")
    );
    assert_eq!(p.flagger, None);
    assert!(
        text.contains("preflight: Flux: installed (v2.9.0)"),
        "{text}"
    );
    assert!(
        text.contains("preflight: Istio: installed (1.30.3, from the app=istiod image)"),
        "{text}"
    );
    assert!(text.contains("preflight: Flagger: not installed"), "{text}");
    assert!(
        text.contains(
            "preflight: load balancer: yes (istio-ingress/istio-ingressgateway has 172.18.255.200)"
        ),
        "{text}"
    );
    assert_eq!(
        up::image_tag("ghcr.io/fluxcd/source-controller:v1.7.0@sha256:ab"),
        Some("v1.7.0".into())
    );
    assert_eq!(up::image_tag("localhost:5000/istio/pilot"), None);
}

#[test]
fn ssh_remotes_become_https_for_flux() {
    assert_eq!(
        up::https_url("git@github.com:me/istio-demo.git"),
        "https://github.com/me/istio-demo.git"
    );
    assert_eq!(
        up::https_url("https://example.test/x.git\n"),
        "https://example.test/x.git"
    );
}

#[test]
fn plan_of_the_repository_manifests() {
    // The repository's own flux/ and the paths its Kustomizations sync (rendered with kubectl kustomize).
    let repo = istio_demo::manifests::repo_root();
    let (flux_dir, synced) = up::render_repo(&repo).unwrap();
    let stages = up::plan(
        &Inputs {
            flux_dir,
            synced,
            ..Default::default()
        },
        None,
    );
    let ids = |i: usize| stages[i].wait.iter().map(Target::id).collect::<Vec<_>>();
    let names = |i: usize| {
        stages[i]
            .apply
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // Every namespace the demo uses is created (and labelled) before anything else.
    for ns in ["demo", "istio-system", "istio-ingress"] {
        assert!(
            names(1).contains(&ns.to_string()),
            "namespaces stage lacks {ns}: {:?}",
            names(1)
        );
    }
    let demo = stages[1]
        .apply
        .iter()
        .find(|o| o["metadata"]["name"] == "demo")
        .unwrap();
    assert_eq!(
        demo["metadata"]["labels"]["istio-injection"], "enabled",
        "injection label set before any pod"
    );
    assert!(
        ids(3).contains(&"GitRepository/flux-system/istio-demo".to_string()),
        "{:?}",
        ids(3)
    );
    // Waited for in dependsOn order: every Kustomization after those it depends on.
    let order: Vec<String> = ids(4)
        .iter()
        .map(|i| i.rsplit('/').next().unwrap().to_string())
        .collect();
    let pos = |n: &str| {
        order
            .iter()
            .position(|o| o == n)
            .unwrap_or_else(|| panic!("{n} not waited: {order:?}"))
    };
    assert!(
        pos("istio-system") < pos("monitoring") && pos("monitoring") < pos("flagger-system"),
        "{order:?}"
    );
    assert!(
        pos("demo") < pos("istio-policies") && pos("istio-policies") < pos("authorization"),
        "{order:?}"
    );
    assert!(pos("flagger-system") < pos("canary"), "{order:?}");
    assert_eq!(
        stages[3].apply[0]["kind"], "GitRepository",
        "the source is applied before what uses it"
    );
    for k in [
        "istio-system",
        "monitoring",
        "flagger-system",
        "logging",
        "demo",
        "canary",
    ] {
        assert!(
            ids(4).contains(&format!("Kustomization/flux-system/{k}")),
            "{k} not waited: {:?}",
            ids(4)
        );
    }
    assert!(
        ids(5)
            .iter()
            .any(|t| t.starts_with("HelmRelease/istio-system/")),
        "{:?}",
        ids(5)
    );
    assert!(ids(7).iter().any(|t| t.contains("flagger")), "{:?}", ids(7));
    assert!(
        ids(8).contains(&"Deployment/demo/httpbin".to_string())
            && ids(8).contains(&"Deployment/demo/sleep".to_string()),
        "{:?}",
        ids(8)
    );
    assert_eq!(ids(9), ["Canary/demo/httpbin"]);
    assert!(
        ids(10).iter().any(|t| t.starts_with("StatefulSet/"))
            && ids(10).iter().any(|t| t.starts_with("DaemonSet/")),
        "{:?}",
        ids(10)
    );
}

#[tokio::test]
async fn a_wait_rides_out_a_transient_api_error() {
    let (client, handle) = mock();
    let path = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps";
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
            step(
                "GET",
                path,
                503,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable", "code": 503, "message": "etcd leader changed"}),
            ),
            get(
                path,
                json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                       "metadata": {"name": "apps", "namespace": "flux-system", "generation": 1},
                       "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
        ],
    );
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let t = Target::of(&kustomization("apps", "./apps"), Check::Ready);
    istio_demo::deploy::wait::wait(&cluster, &t, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(finish(server).await.len(), 3);
}
