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

mod deploy_plan;
mod execute_stages;
mod preflight_checks;
mod prepare;
mod push;

pub(crate) const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kustomizations.kustomize.toolkit.fluxcd.io";

pub(crate) fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
           "spec": {"group": "kustomize.toolkit.fluxcd.io", "names": {"kind": "Kustomization", "plural": "kustomizations"},
                    "scope": "Namespaced", "versions": []}})
}

pub(crate) fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

pub(crate) fn deployment(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}}})
}

pub(crate) fn kustomization(name: &str, path: &str) -> Value {
    json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
           "metadata": {"name": name, "namespace": "flux-system"},
           "spec": {"path": path, "interval": "10m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "istio-demo"}}})
}

pub(crate) fn oci_repository() -> Value {
    json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
           "metadata": {"name": "istio-demo", "namespace": "flux-system"},
           "spec": {"url": "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/manifests",
                    "insecure": true, "interval": "1m", "ref": {"digest": "sha256:abc"}}})
}

pub(crate) fn inputs() -> Inputs {
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

pub(crate) fn secret(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns,
           "annotations": {"istio-demo.dev/token-sha256": "ab"}}, "type": "Opaque"})
}

/// `inputs()` with what the OCI source adds: the registry, the token Secrets and the push.
pub(crate) fn full_inputs() -> Inputs {
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
