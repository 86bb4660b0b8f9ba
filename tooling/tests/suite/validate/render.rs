//! `manifests::render`: objects as `kubectl apply -k` sends them, each with the file that declared
//! it; and what the authorization stages render to.

use super::repo;
use std::path::PathBuf;

#[test]
fn render_returns_applyable_objects_with_their_source_files() {
    let objects = istio_demo::manifests::render(&repo().join("elk")).unwrap();
    let by_id = |id: &str| {
        objects
            .iter()
            .find(|m| m.id() == id)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    let job = by_id("Job/logging/elastic-bootstrap");
    assert!(
        job.source.ends_with("elk/bootstrap.yaml"),
        "{}",
        job.source.display()
    );
    assert!(job.source.is_absolute());
    let generated = objects
        .iter()
        .find(|m| m.kind() == "ConfigMap" && m.name().starts_with("filebeat-config-"))
        .unwrap();
    assert!(
        generated.source.ends_with("elk/kustomization.yaml"),
        "{}",
        generated.source.display()
    );
    for m in &objects {
        assert!(
            m.annotation("config.kubernetes.io/origin").is_none(),
            "{} keeps kustomize's origin annotation",
            m.id()
        );
        // An annotations map emptied by removing the origin is removed too.
        if let Some(a) = m.object.pointer("/metadata/annotations") {
            assert!(
                !a.as_object().unwrap().is_empty(),
                "{} has an empty annotations map",
                m.id()
            );
        }
    }
    // The Job's own annotation survives; the namespace transformer ran.
    assert_eq!(
        job.annotation("kustomize.toolkit.fluxcd.io/force"),
        Some("enabled")
    );
    assert!(
        objects
            .iter()
            .filter(|m| m.kind() != "ClusterRole"
                && m.kind() != "ClusterRoleBinding"
                && m.kind() != "Namespace")
            .all(|m| m.namespace() == Some("logging"))
    );
    // A directory without a kustomization is an error naming it.
    let err = istio_demo::manifests::render(&repo().join("elk/files"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("elk/files") && err.contains("kustomization"),
        "{err}"
    );
}

#[test]
fn each_authorization_stage_keeps_its_own_policy_and_never_locks_out_gateway_or_load_tester() {
    let stages = [
        "stage-1-deny-all",
        "stage-2-allow-demo-namespace",
        "stage-3-allow-get",
        "stage-4-allow-get-with-token",
    ];
    let mut own: Vec<(String, PathBuf)> = Vec::new();
    for stage in stages {
        let objects =
            istio_demo::manifests::render(&repo().join("istio/authorization").join(stage)).unwrap();
        assert!(
            objects
                .iter()
                .all(|m| m.kind() == "AuthorizationPolicy" && m.namespace() == Some("demo"))
        );
        let principals: String = objects
            .iter()
            .map(|m| m.object["spec"].to_string())
            .collect();
        for caller in [
            "cluster.local/ns/istio-ingress/sa/istio-ingressgateway",
            "cluster.local/ns/flagger-system/sa/flagger-loadtester",
        ] {
            assert!(
                principals.contains(caller),
                "{stage} does not allow {caller}"
            );
        }
        let deny_all = objects
            .iter()
            .find(|m| m.name() == "demo-deny-all")
            .unwrap_or_else(|| panic!("{stage} has no default deny"));
        assert_eq!(deny_all.object["spec"], serde_json::json!({}));
        let extra: Vec<_> = objects
            .iter()
            .filter(|m| !m.source.to_string_lossy().contains("/base/"))
            .collect();
        if stage == "stage-1-deny-all" {
            assert!(extra.is_empty(), "stage 1 is the base alone");
        } else {
            assert_eq!(extra.len(), 1, "{stage}: one policy of its own");
            assert!(extra[0].source.parent().unwrap().ends_with(stage));
            own.push((extra[0].name().to_string(), extra[0].source.clone()));
        }
    }
    let mut names: Vec<_> = own.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        3,
        "stages 2-4 must have distinct names: {own:?}"
    );
}
