//! `istio-demo up`'s deploy pipeline against kube's tower-test mock: stage order, CRD Established
//! then discovery refresh, server-side apply with one field manager and force, a dry run that
//! writes nothing, a failed wait that prints conditions and Events, a canary that Flagger rolls
//! back, and a preflight that stops a profile the nodes cannot hold.

use crate::support::*;
use istio_demo::cluster::Cluster;
use istio_demo::commands::up;
use istio_demo::deploy::execute;
use istio_demo::deploy::plan::{self, Inputs, Stage};
use istio_demo::deploy::preflight;
use istio_demo::deploy::registry::Access;
use istio_demo::deploy::render::{Profile, SourceKind, Synced};
use istio_demo::deploy::wait::{Check, Target};
use serde_json::{Value, json};
use std::time::Duration;

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

fn oci_repository() -> Value {
    json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
           "metadata": {"name": "istio-demo", "namespace": "flux-system"},
           "spec": {"url": "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/manifests",
                    "insecure": true, "interval": "1m", "ref": {"digest": "sha256:abc"}}})
}

fn inputs() -> Inputs {
    Inputs {
        profile: Profile::Full,
        source: SourceKind::Oci,
        flux_install: vec![
            crd(),
            namespace("flux-system", json!({})),
            deployment("flux-system", "kustomize-controller"),
        ],
        registry: vec![],
        secrets: vec![],
        push: None,
        flux_source: oci_repository(),
        entry: vec![kustomization("demo", "./demo")],
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
    }
}

fn secret(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns,
           "annotations": {"istio-demo.dev/token-sha256": "ab"}}, "type": "Opaque"})
}

/// `inputs()` with what the OCI source adds: the registry, the token Secrets and the push.
fn full_inputs() -> Inputs {
    let mut i = inputs();
    i.registry = vec![
        namespace(
            "istio-demo-registry",
            json!({"istio-injection": "disabled"}),
        ),
        deployment("istio-demo-registry", "registry"),
    ];
    i.secrets = vec![
        secret("demo", "rfma-demo-token"),
        secret("flagger-system", "rfma-loadtester-token"),
    ];
    i.push = Some(istio_demo::deploy::registry::Payload {
        wasm: b"\0asm\x01\0\0\0".to_vec(),
        module_digest: "sha256:m".into(),
        manifests: None,
    });
    i.entry
        .push(kustomization("istio-system", "./istio/system"));
    i.entry[0]["spec"]["dependsOn"] = json!([{"name": "istio-system"}]);
    i
}

#[test]
fn plan_orders_stages_secrets_before_workloads_and_the_source_before_kustomizations() {
    let stages = plan::plan(&full_inputs(), None);
    let names: Vec<&str> = stages.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "CRDs",
            "namespaces",
            "token Secrets",
            "in-cluster registry",
            "push the module and the manifests",
            "Flux controllers",
            "Flux source and Kustomizations",
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
        ["flux-system", "istio-demo-registry", "demo"],
        "every namespace comes before any Secret or workload"
    );
    assert_eq!(
        stages[2].apply.len(),
        2,
        "the token Secrets, right after the namespaces"
    );
    assert!(stages[2].apply.iter().all(|o| o["kind"] == "Secret"));
    assert_eq!(
        stages[3].wait[0].id(),
        "Deployment/istio-demo-registry/registry"
    );
    assert!(matches!(stages[4].action, Some(plan::Action::Push(_))));
    let src = &stages[6];
    assert_eq!(
        src.apply[0]["kind"], "OCIRepository",
        "the source before what uses it"
    );
    assert_eq!(src.apply[0]["spec"]["ref"]["digest"], "sha256:abc");
    let waited: Vec<String> = src.wait.iter().map(Target::id).collect();
    assert_eq!(
        waited,
        [
            "OCIRepository/flux-system/istio-demo",
            "Kustomization/flux-system/istio-system",
            "Kustomization/flux-system/demo"
        ],
        "Kustomizations in dependsOn order"
    );
    assert_eq!(stages[7].wait[0].id(), "HelmRelease/istio-system/istiod");
    assert_eq!(stages[10].wait[0].id(), "Deployment/demo/httpbin");
    assert_eq!(stages[11].wait[0].check, Check::CanaryInitialized);
    assert_eq!(stages[12].wait[0].id(), "Deployment/elk/kibana");
    assert!(stages.iter().all(|s| s.timeout >= Duration::from_secs(60)));
    let t = plan::plan(&full_inputs(), Some(Duration::from_secs(7)));
    assert!(
        t.iter().all(|s| s.timeout == Duration::from_secs(7)),
        "--timeout applies to every stage"
    );
    let minimal = plan::plan(
        &Inputs {
            profile: Profile::Minimal,
            ..full_inputs()
        },
        None,
    );
    assert_eq!(
        minimal.last().unwrap().name,
        "Canary",
        "the minimal profile waits for no ELK"
    );
}

#[test]
fn the_client_dry_run_stream_is_every_object_in_apply_order() {
    let inputs = full_inputs();
    let stages = plan::plan(&inputs, None);
    let mut out = Vec::new();
    plan::write_yaml(&stages, &plan::synced_in_order(&inputs), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let mut want: Vec<Value> = plan::objects(&stages).cloned().collect();
    // Then what Flux applies: istio-system first (demo dependsOn it), then demo, then the rest.
    let synced = plan::synced_in_order(&inputs);
    let paths: Vec<&str> = synced.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["./istio/system", "./demo", "./flagger", "./elk"]);
    let up_applies = want.clone();
    want.extend(
        synced
            .iter()
            .flat_map(|s| s.objects.iter().cloned())
            .filter(|o| !up_applies.contains(o)),
    );
    assert_eq!(
        docs, want,
        "each object once: the namespaces where up applies them"
    );
    assert!(
        text.contains(
            "# stage: push the module and the manifests (module sha256:m, manifests none)"
        ),
        "{text}"
    );
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let first = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        first("Namespace") < first("Secret") && first("Secret") < first("Deployment"),
        "{kinds:?}"
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
    preflight::preflight(&cluster, None, &mut out)
        .await
        .unwrap();
    execute::run(
        &cluster,
        &plan::plan(&inputs(), None),
        &Access::PortForward,
        &mut out,
    )
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
        "[1/13] CRDs",
        "  would be created: CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io",
        "  would wait for CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io (Established",
        "  discovery refreshed",
        "[2/13] namespaces",
        "  would be created: Namespace/flux-system",
        "  would be unchanged: Namespace/demo (existed before: stays yours, `down` keeps it)",
        "[3/13] token Secrets",
        "  nothing to do",
        "[4/13] in-cluster registry",
        "  nothing to do",
        "[5/13] push the module and the manifests",
        "  nothing to do",
        "[6/13] Flux controllers",
        "  would be configured (spec.template.spec): Deployment/flux-system/kustomize-controller",
        "  would wait for Deployment/flux-system/kustomize-controller (Workload",
        "[7/13] Flux source and Kustomizations",
        "  would be created (kind served once its CRD is established): OCIRepository/flux-system/istio-demo",
        "  would be created (kind served once its CRD is established): Kustomization/flux-system/demo",
        "  would wait for OCIRepository/flux-system/istio-demo (Ready",
        "  would wait for Kustomization/flux-system/demo (Ready",
        "[8/13] Istio control plane",
        "  would wait for HelmRelease/istio-system/istiod (Ready",
        "[9/13] monitoring",
        "  nothing to do",
        "[10/13] Flagger",
        "[11/13] apps",
        "  would wait for Deployment/demo/httpbin (Workload",
        "[12/13] Canary",
        "  would wait for Canary/demo/httpbin (CanaryInitialized",
        "[13/13] ELK",
        "  would wait for Deployment/elk/kibana (Workload",
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
        action: None,
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
    execute::run(&cluster, &[crds, sources], &Access::PortForward, &mut out)
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
        action: None,
        refresh_discovery: false,
        namespaces: false,
        timeout: Duration::ZERO,
    };
    let mut out = Vec::new();
    let err = execute::run(&cluster, &[stage], &Access::PortForward, &mut out)
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
    let p = preflight::preflight(&cluster, None, &mut out)
        .await
        .unwrap();
    let log = finish(server).await;
    assert_eq!(
        p.denied,
        [
            "create customresourcedefinitions.apiextensions.k8s.io",
            "create namespaces",
            "create clusterrolebindings.rbac.authorization.k8s.io"
        ]
    );
    assert!(
        log.iter()
            .all(|e| e.method == "GET" || e.path.ends_with("selfsubjectaccessreviews"))
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
    let order: Vec<&str> = plan::dependency_order(vec![&c, &cyc1, &b, &git, &a, &cyc2])
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
    let p = preflight::preflight(&cluster, None, &mut out)
        .await
        .unwrap();
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
        preflight::image_tag("ghcr.io/fluxcd/source-controller:v1.7.0@sha256:ab"),
        Some("v1.7.0".into())
    );
    assert_eq!(preflight::image_tag("localhost:5000/istio/pilot"), None);
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

#[tokio::test]
async fn a_canary_flagger_rolls_back_fails_the_deploy_with_its_reason() {
    // The gate of the canary pods rejects the load tester (a broken token or module): Flagger's
    // gate-denial metric check fails, it rolls back and sets phase Failed. `up` must not wait out
    // its timeout, nor report success: it stops at once with Flagger's reason and events.
    let (client, handle) = mock();
    let path = "/apis/flagger.app/v1beta1/namespaces/demo/canaries/httpbin";
    let canary = |phase: &str, message: &str| {
        json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
               "metadata": {"name": "httpbin", "namespace": "demo", "generation": 2},
               "status": {"phase": phase, "canaryWeight": 0, "failedChecks": 5, "conditions": [
                   {"type": "Promoted", "status": if phase == "Failed" { "False" } else { "Unknown" },
                    "reason": phase, "message": message}]}})
    };
    let events = json!({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": [
        {"metadata": {"name": "e1", "namespace": "demo"}, "involvedObject": {"kind": "Canary", "name": "httpbin"},
         "type": "Warning", "reason": "Synced", "message": "Halt httpbin.demo advancement gate-denials 100.00 > 1", "count": 5,
         "lastTimestamp": "2026-01-01T00:00:05Z"},
        {"metadata": {"name": "e2", "namespace": "demo"}, "involvedObject": {"kind": "Canary", "name": "httpbin"},
         "type": "Warning", "reason": "Synced", "message": "Rolling back httpbin.demo failed checks threshold reached 5", "count": 1,
         "lastTimestamp": "2026-01-01T00:00:09Z"}]});
    let server = serve(
        handle,
        vec![
            get(
                "/apis/flagger.app/v1beta1",
                resources("flagger.app/v1beta1", &[("Canary", "canaries", true)]),
            ),
            get(path, canary("Progressing", "New revision detected")),
            get(
                path,
                canary(
                    "Failed",
                    "Canary analysis failed, Deployment scaled to zero.",
                ),
            ),
            get("/api/v1/namespaces/demo/events", events),
        ],
    );
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let stage = Stage {
        name: "Canary",
        apply: vec![],
        action: None,
        wait: vec![Target::of(&canary("", ""), Check::CanaryInitialized)],
        refresh_discovery: false,
        namespaces: false,
        timeout: Duration::from_secs(600),
    };
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    let err = execute::run(&cluster, &[stage], &Access::PortForward, &mut out)
        .await
        .unwrap_err();
    finish(server).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a rolled-back canary is final: no waiting out the 600 s timeout"
    );
    assert!(
        err.to_string().contains("Canary/demo/httpbin is not ready"),
        "{err}"
    );
    let text = String::from_utf8(out).unwrap();
    for want in [
        "FAILED: Canary/demo/httpbin: phase Failed",
        "Canary analysis failed, Deployment scaled to zero.",
        "Halt httpbin.demo advancement gate-denials 100.00 > 1",
        "Rolling back httpbin.demo failed checks threshold reached 5",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[tokio::test]
async fn preflight_stops_a_profile_the_nodes_cannot_hold() {
    let (client, handle) = mock();
    let mut steps = preflight_steps(true);
    let node = |name: &str, memory: &str, unschedulable: bool| {
        json!({"metadata": {"name": name}, "spec": {"unschedulable": unschedulable},
               "status": {"allocatable": {"cpu": "2", "memory": memory}}})
    };
    steps.push(get(
        "/api/v1/nodes",
        json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [
            node("a", "2Gi", false), node("b", "1048576Ki", false), node("cordoned", "64Gi", true)]}),
    ));
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, false);
    let needed = istio_demo::deploy::resources::Resources {
        cpu_request_millis: 1500,
        cpu_limit_millis: 9000,
        memory_request_bytes: 4 << 30,
        memory_limit_bytes: 9 << 30,
    };
    let mut out = Vec::new();
    let p = preflight::preflight(&cluster, Some((&needed, "full")), &mut out)
        .await
        .unwrap();
    finish(server).await;
    assert_eq!(
        p.allocatable_memory,
        3 << 30,
        "the cordoned node does not count"
    );
    let short = p.memory_short.expect("4 GiB requested on 3 GiB");
    assert!(
        short.contains("--profile minimal")
            && short.contains("4.0 GiB")
            && short.contains("3.0 GiB"),
        "{short}"
    );
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("preflight: memory: NOT ENOUGH"), "{text}");

    // Requests fit, limits do not: a warning, not a stop.
    let (short, tight) = preflight::memory_verdict(
        10 << 30,
        &istio_demo::deploy::resources::Resources {
            memory_request_bytes: 3 << 30,
            memory_limit_bytes: 12 << 30,
            ..needed
        },
        "minimal",
    );
    assert!(short.is_none());
    assert!(tight.unwrap().contains("12.0 GiB"));
}

#[test]
fn git_sources_need_a_real_url() {
    let g = up::git_repository("https://example.test/me/istio-demo.git", "feature").unwrap();
    assert_eq!(g["spec"]["url"], "https://example.test/me/istio-demo.git");
    assert_eq!(g["spec"]["ref"], json!({"branch": "feature"}));
    assert_eq!(g["metadata"]["name"], "istio-demo");
    for bad in [
        "git@github.com:me/x.git",
        "https://github.com/your-org/istio-demo",
    ] {
        assert!(up::git_repository(bad, "main").is_err(), "{bad}");
    }
}

fn pod_list(ready: bool) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
        {"metadata": {"name": "registry-7c9d-old", "namespace": "istio-demo-registry", "deletionTimestamp": "2026-01-01T00:00:00Z"},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "registry-7c9d-x2", "namespace": "istio-demo-registry"},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}]})
}

/// The registry comes up, then the module and the manifests are pushed to it and read back by
/// digest. A real registry on loopback stands in for the port-forward (tower-test cannot carry
/// the forward's WebSocket), so the conversation covers finding the ready registry pod and the
/// push itself is real.
#[tokio::test]
async fn the_registry_comes_up_then_the_module_and_the_manifests_are_pushed_by_digest() {
    let reg = crate::support::registry::start_registry(|_| String::new());
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(
        tree.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n",
    )
    .unwrap();
    let wasm = b"\0asm\x01\0\0\0".to_vec();
    let module_digest = istio_demo::oci::package(&wasm).unwrap().manifest_digest;
    let artifact = istio_demo::deploy::artifact::build(
        tree.path(),
        "istio-demo",
        "main@sha1:0123456789abcdef0123456789abcdef01234567",
    )
    .unwrap();
    let payload = istio_demo::deploy::registry::Payload {
        wasm,
        module_digest: module_digest.clone(),
        manifests: Some(istio_demo::deploy::registry::ManifestsPayload {
            tree: tree.path().to_path_buf(),
            source: "istio-demo".into(),
            revision: "main@sha1:0123456789abcdef0123456789abcdef01234567".into(),
            digest: artifact.digest().to_string(),
        }),
    };
    let deployment_path = "/apis/apps/v1/namespaces/istio-demo-registry/deployments/registry";
    let mut ready = deployment("istio-demo-registry", "registry");
    ready["metadata"]["generation"] = json!(1);
    ready["status"] =
        json!({"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1});
    let pods = "/api/v1/namespaces/istio-demo-registry/pods";
    let (client, handle) = mock();
    let steps = serve(
        handle,
        vec![
            get(
                "/apis/apps/v1",
                resources("apps/v1", &[("Deployment", "deployments", true)]),
            ),
            not_found(deployment_path),
            apply(deployment_path),
            get(deployment_path, ready),
            get(pods, pod_list(true)),
        ],
    );
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let mut stages = plan::plan(
        &Inputs {
            registry: vec![deployment("istio-demo-registry", "registry")],
            ..inputs()
        },
        None,
    );
    stages.retain(|s| {
        s.name == "in-cluster registry" || s.name == "push the module and the manifests"
    });
    stages[1].action = Some(plan::Action::Push(Box::new(payload.clone())));
    let mut out = Vec::new();
    execute::run(
        &cluster,
        &stages,
        &Access::Direct(reg.addr.clone()),
        &mut out,
    )
    .await
    .unwrap();
    let log = finish(steps).await;
    let text = String::from_utf8(out).unwrap();
    assert!(
        log[4].params_are(&[("labelSelector", "app.kubernetes.io/name=registry")]),
        "{}",
        log[4].line()
    );
    assert!(
        text.contains("ready: Deployment/istio-demo-registry/registry"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "pushed the module {module_digest} and the manifests {}",
            artifact.digest()
        )),
        "{text}"
    );
    assert!(
        text.contains("pod registry-7c9d-x2"),
        "the terminating pod is not used: {text}"
    );
    for (repo, digest, accept) in [
        (
            "istio-demo/rfma-filter",
            module_digest.as_str(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "istio-demo/manifests",
            artifact.digest(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
    ] {
        let (status, _, body) = crate::support::registry::get(
            &format!("http://{}/v2/{repo}/manifests/{digest}", reg.addr),
            accept,
            None,
        );
        assert_eq!(status, 200, "{repo}@{digest}");
        assert_eq!(
            crate::support::registry::sha256(&body),
            digest,
            "{repo}: stored as computed before the push"
        );
        let (_, _, tagged) = crate::support::registry::get(
            &format!("http://{}/v2/{repo}/manifests/latest", reg.addr),
            accept,
            None,
        );
        assert_eq!(
            crate::support::registry::sha256(&tagged),
            digest,
            "{repo}:latest"
        );
    }

    // A payload whose manifests differ from what the OCIRepository names is refused after the push.
    let mut wrong = payload;
    wrong.manifests.as_mut().unwrap().digest = format!("sha256:{}", "0".repeat(64));
    let e = istio_demo::deploy::registry::push_to(&reg.addr, &wrong).unwrap_err();
    assert!(
        format!("{e:#}").contains("the OCIRepository names sha256:000"),
        "{e:#}"
    );
}

#[tokio::test]
async fn no_ready_registry_pod_is_a_clear_error() {
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![get(
            "/api/v1/namespaces/istio-demo-registry/pods",
            pod_list(false),
        )],
    );
    let cluster = Cluster::new(client, false);
    let e = istio_demo::deploy::registry::ready_pod(&cluster)
        .await
        .unwrap_err();
    finish(server).await;
    assert!(
        e.to_string()
            .contains("no ready registry pod in istio-demo-registry (2 pod(s)"),
        "{e}"
    );
}

/// A copy of the repository's manifest directories, with `edit` applied to one file.
fn repo_copy(file: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let repo = istio_demo::manifests::repo_root();
    let dir = tempfile::tempdir().unwrap();
    for d in istio_demo::manifests::MANIFEST_DIRS {
        let status = std::process::Command::new("cp")
            .arg("-R")
            .arg(repo.join(d))
            .arg(dir.path().join(d))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    dir
}

fn up_args(extra: &[&str]) -> up::UpArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        up: up::UpArgs,
    }
    let wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wasm.path(), b"\0asm\x01\0\0\0").unwrap();
    let (_, path) = wasm.keep().unwrap();
    let mut argv = vec![
        "up".to_string(),
        "--dry-run=client".into(),
        "--wasm".into(),
        path.display().to_string(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(argv).up
}

const GHOST_TOKEN: &str =
    "      - name: external\n        sha256: set-by-kustomize-from-filter-release\n";

#[tokio::test]
async fn a_placeholder_digest_is_refused_before_anything_is_written() {
    let repo = repo_copy("istio/wasm/wasmplugin/wasmplugin.yaml", |t| {
        t.replace(
            GHOST_TOKEN,
            &format!(
                "{GHOST_TOKEN}      - name: ghost\n        sha256: \"{}\"\n",
                "0".repeat(64)
            ),
        )
    });
    let e = up::prepare(&up_args(&[]), repo.path(), None, vec![])
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("refusing to deploy placeholders"), "{e}");
    assert!(e.contains("WasmPlugin/demo/rfma-token-gate"), "{e}");
}

#[tokio::test]
async fn a_token_digest_without_a_secret_is_refused() {
    let repo = repo_copy("istio/wasm/wasmplugin/wasmplugin.yaml", |t| {
        t.replace(
            GHOST_TOKEN,
            &format!(
                "{GHOST_TOKEN}      - name: ghost\n        sha256: \"{}\"\n",
                "ab".repeat(32)
            ),
        )
    });
    let e = up::prepare(&up_args(&[]), repo.path(), None, vec![])
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("no Secret of this deploy holds"), "{e}");
    assert!(e.contains("token \"ghost\""), "{e}");
}

#[tokio::test]
async fn the_release_template_and_the_token_list_must_agree() {
    // A token the template has no key for is a mismatch, named, never a silent deny-all.
    let repo = repo_copy("istio/wasm/release/filter-release.yaml", |t| {
        t.replace("  external-token-sha256:", "  outsider-token-sha256:")
    });
    let e = format!(
        "{:#}",
        up::prepare(&up_args(&[]), repo.path(), None, vec![])
            .await
            .unwrap_err()
    );
    assert!(e.contains("external-token-sha256"), "{e}");
}

#[tokio::test]
async fn the_repository_prepares_without_a_cluster_and_names_the_module_by_digest() {
    let repo = istio_demo::manifests::repo_root();
    let args = up_args(&["--profile", "minimal"]);
    let p = up::prepare(&args, &repo, None, vec![]).await.unwrap();
    let module = istio_demo::oci::package(b"\0asm\x01\0\0\0").unwrap();
    assert_eq!(
        p.release.image,
        format!(
            "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@{}",
            module.manifest_digest
        )
    );
    assert!(
        p.tokens.iter().all(|t| !t.existing),
        "no cluster: every token is new"
    );
    let plugin = p
        .inputs
        .synced
        .iter()
        .flat_map(|s| &s.objects)
        .find(|o| o["kind"] == "WasmPlugin")
        .unwrap();
    assert_eq!(plugin["spec"]["url"], p.release.image.as_str());
    assert_eq!(
        p.inputs.flux_source["spec"]["ref"]["digest"],
        p.inputs
            .push
            .as_ref()
            .unwrap()
            .manifests
            .as_ref()
            .unwrap()
            .digest
            .as_str(),
        "the OCIRepository is pinned to the artifact up pushes"
    );
    assert!(
        p.inputs.synced.iter().all(|s| !s.path.contains("elk")),
        "the minimal profile syncs no ELK"
    );
    assert!(p.needed.memory_request_bytes > 0);
    // The same inputs give the same artifact: its digest depends on the tokens, not on time.
    let again = up::prepare(&args, &repo, None, vec![]).await.unwrap();
    assert_ne!(
        again.inputs.flux_source["spec"]["ref"]["digest"],
        p.inputs.flux_source["spec"]["ref"]["digest"],
        "fresh tokens, new digests, new artifact"
    );
}
