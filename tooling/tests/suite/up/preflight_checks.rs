//! The preflight: RBAC, installed products and versions, memory for the profile.

use super::*;

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
