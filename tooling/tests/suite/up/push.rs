//! The in-cluster registry: its ready pod, and the pushes read back by digest from a real registry.

use super::*;

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
    let e = istio_demo::deploy::registry::push_to(&reg.addr, &wrong)
        .await
        .unwrap_err();
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
