//! Carrying out stages against the tower-test mock: SSA with one field manager, CRDs then discovery,
//! waits that explain themselves, a rolled-back canary that stops the deploy.

use super::*;

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
