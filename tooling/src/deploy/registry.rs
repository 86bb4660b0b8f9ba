//! The in-cluster registry: finding its ready pod, a local port-forward to it through the API server
//! (no node port, no kind configuration), and pushing the module and the Flux artifact through it.
//!
//! Pods reach the registry as [`REGISTRY_HOST`](super::render::REGISTRY_HOST) over plain HTTP; `up`
//! reaches the same registry as `127.0.0.1:<port>` through the forward. Both pushes are checked
//! against the digests computed locally before the push, which are the ones the rendered manifests
//! already carry: a registry that stored something else fails the deploy.

use super::render::{
    MANIFESTS_REPOSITORY, MODULE_REPOSITORY, REGISTRY_NAMESPACE, REGISTRY_PORT, REGISTRY_SELECTOR,
    TAG,
};
use crate::cluster::Cluster;
use crate::oci;
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::net::SocketAddr;
use std::path::PathBuf;

/// How `up` reaches the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A kube port-forward to the registry's pod (what a real `up` does).
    PortForward,
    /// A registry already reachable at `host:port` (tests: a real registry on loopback).
    Direct(String),
}

/// What to push, with the digests the rendered manifests already name.
#[derive(Debug, Clone)]
pub struct Payload {
    pub wasm: Vec<u8>,
    /// `sha256:…` of the module's image manifest.
    pub module_digest: String,
    /// The Flux artifact (OCI source only).
    pub manifests: Option<ManifestsPayload>,
}

/// The rendered tree, packed as the Flux artifact.
#[derive(Debug, Clone)]
pub struct ManifestsPayload {
    pub tree: PathBuf,
    pub source: String,
    pub revision: String,
    /// `sha256:…` of the artifact's manifest.
    pub digest: String,
}

/// The name of a Running, Ready pod of the registry.
pub async fn ready_pod(cluster: &Cluster) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), REGISTRY_NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(REGISTRY_SELECTOR))
        .await
        .with_context(|| format!("listing the registry's pods in {REGISTRY_NAMESPACE}"))?;
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find(|p| {
            p.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Running")
                    && s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .and_then(|p| p.metadata.name.clone())
        .with_context(|| {
            format!(
                "no ready registry pod in {REGISTRY_NAMESPACE} ({} pod(s) with {REGISTRY_SELECTOR})",
                list.items.len()
            )
        })
}

/// A local port forwarded to the registry pod's port until the returned guard is dropped: each
/// local connection gets its own forward stream.
pub struct Forward {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn forward(cluster: &Cluster, pod: &str) -> Result<Forward> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("binding a local port for the registry port-forward")?;
    let addr = listener.local_addr()?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), REGISTRY_NAMESPACE);
    let pod = pod.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut local, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let Ok(mut pf) = pods.portforward(&pod, &[REGISTRY_PORT]).await else {
                    return;
                };
                if let Some(mut remote) = pf.take_stream(REGISTRY_PORT) {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                }
                let _ = pf.join().await;
            });
        }
    });
    Ok(Forward { addr, task })
}

/// Pushes the module and the artifact to `endpoint` (`host:port`, plain HTTP) and checks both
/// digests.
pub async fn push_to(endpoint: &str, payload: &Payload) -> Result<()> {
    let module_ref = oci::Reference::parse(&format!("{endpoint}/{MODULE_REPOSITORY}:{TAG}"))?;
    let (_, digest) = oci::push(&payload.wasm, &module_ref, true, None)
        .await
        .with_context(|| format!("pushing the module to {endpoint}/{MODULE_REPOSITORY}"))?;
    if digest != payload.module_digest {
        bail!(
            "the registry stored the module as {digest}, the manifests name {}",
            payload.module_digest
        );
    }
    let Some(m) = &payload.manifests else {
        return Ok(());
    };
    let artifact_ref = format!("{endpoint}/{MANIFESTS_REPOSITORY}:{TAG}");
    let artifact = super::artifact::build(&m.tree, &m.source, &m.revision)?;
    let digest = super::artifact::push(&artifact, &artifact_ref, true)
        .await
        .with_context(|| format!("pushing the manifests to {artifact_ref}"))?;
    if digest != m.digest {
        bail!(
            "the registry stored the manifests as {digest}, the OCIRepository names {}",
            m.digest
        );
    }
    Ok(())
}

/// Finds the registry, forwards a port to it (unless `access` is direct) and pushes.
pub async fn push(cluster: &Cluster, access: &Access, payload: &Payload) -> Result<String> {
    let pod = ready_pod(cluster).await?;
    let (endpoint, guard) = match access {
        Access::Direct(e) => (e.clone(), None),
        Access::PortForward => {
            let f = forward(cluster, &pod).await?;
            (f.addr.to_string(), Some(f))
        }
    };
    push_to(&endpoint, payload).await?;
    drop(guard);
    Ok(format!("pod {pod} via {endpoint}"))
}
