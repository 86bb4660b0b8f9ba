//! Preflight: what `up` checks before it writes anything. The API server's version, the RBAC it
//! needs (SelfSubjectAccessReview), which of Istio, Flux and Flagger are installed, whether a load
//! balancer exists, and whether the nodes have the memory the chosen profile requests.

use super::resources::{Resources, parse_quantity};
use crate::cluster::Cluster;
use anyhow::{Context, Result};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use std::io::Write;

/// What preflight found.
#[derive(Debug, Default)]
pub struct Preflight {
    pub version: String,
    pub denied: Vec<String>,
    pub flux: Option<String>,
    pub istio: Option<String>,
    pub flagger: Option<String>,
    pub load_balancer: Option<String>,
    /// Allocatable memory over all schedulable nodes, in bytes.
    pub allocatable_memory: u64,
    /// The profile needs more memory than that (requests): the deploy cannot schedule.
    pub memory_short: Option<String>,
}

/// RBAC `up` needs, checked with SelfSubjectAccessReview: (verb, group, resource).
pub const REQUIRED_ACCESS: &[(&str, &str, &str)] = &[
    (
        "create",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ),
    ("create", "", "namespaces"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
];

/// CRDs that show each product is installed.
pub const PRODUCT_CRDS: &[(&str, &str)] = &[
    ("Flux", "kustomizations.kustomize.toolkit.fluxcd.io"),
    ("Istio", "wasmplugins.extensions.istio.io"),
    ("Flagger", "canaries.flagger.app"),
];

/// Where each product's controller runs: a label selector over all namespaces.
pub const PRODUCT_CONTROLLERS: &[(&str, &str)] = &[
    ("Flux", "app=source-controller"),
    ("Istio", "app=istiod"),
    ("Flagger", "app.kubernetes.io/name=flagger"),
];

/// The tag of the product's controller image, e.g. `1.30.3` from `docker.io/istio/pilot:1.30.3`.
pub fn image_tag(image: &str) -> Option<String> {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, t)| t.to_string())
}

async fn controller_version(cluster: &Cluster, product: &str) -> Option<String> {
    let selector = PRODUCT_CONTROLLERS.iter().find(|(p, _)| *p == product)?.1;
    let deployments = cluster
        .list("apps/v1", "Deployment", None, Some(selector))
        .await
        .ok()?;
    let image = deployments
        .first()?
        .data
        .pointer("/spec/template/spec/containers/0/image")?
        .as_str()?
        .to_string();
    image_tag(&image).map(|t| format!("{t}, from the {selector} image"))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Compares what a profile requests and limits with the nodes' allocatable memory. `None` when it
/// fits; else what is short and what to do.
pub fn memory_verdict(
    allocatable: u64,
    needed: &Resources,
    profile: &str,
) -> (Option<String>, Option<String>) {
    let short = (needed.memory_request_bytes > allocatable).then(|| {
        format!(
            "the {profile} profile requests {} of memory, the nodes have {} allocatable: pods would stay Pending. \
             Use --profile minimal, or give the cluster more memory (Docker Desktop: Settings > Resources; \
             kind/k3d: a larger Docker VM or another node)",
            gib(needed.memory_request_bytes),
            gib(allocatable)
        )
    });
    let tight = (short.is_none() && needed.memory_limit_bytes > allocatable).then(|| {
        format!(
            "the {profile} profile's memory limits add up to {}, above the nodes' {} allocatable: \
             it schedules, but under load the kernel may kill pods",
            gib(needed.memory_limit_bytes),
            gib(allocatable)
        )
    });
    (short, tight)
}

/// Allocatable memory of the nodes that take pods (not cordoned).
pub async fn allocatable_memory(cluster: &Cluster) -> Result<u64> {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .context("listing nodes")?;
    let mut total = 0u64;
    for n in &list.items {
        if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            continue;
        }
        if let Some(q) = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("memory"))
        {
            let bytes = parse_quantity(&q.0).with_context(|| {
                format!(
                    "node {}: allocatable memory {:?}",
                    n.metadata.name.as_deref().unwrap_or("?"),
                    q.0
                )
            })?;
            total = total.saturating_add(bytes.max(0.0) as u64);
        }
    }
    Ok(total)
}

/// Preflight; `needed` is what the chosen profile requests and limits.
pub async fn preflight(
    cluster: &Cluster,
    needed: Option<(&Resources, &str)>,
    out: &mut impl Write,
) -> Result<Preflight> {
    let mut p = Preflight::default();
    let v = cluster
        .client
        .apiserver_version()
        .await
        .context("the API server is not reachable")?;
    p.version = v.git_version.clone();
    let minor: u32 = v.minor.trim_end_matches('+').parse().unwrap_or(0);
    writeln!(out, "preflight: API server {} reachable", v.git_version)?;
    if !(33..=35).contains(&minor) {
        writeln!(
            out,
            "preflight: warning: Kubernetes 1.{minor} is outside the tested range 1.33-1.35"
        )?;
    }
    let ssar: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    for (verb, group, resource) in REQUIRED_ACCESS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = ssar
            .create(&PostParams::default(), &review)
            .await
            .context("SelfSubjectAccessReview")?;
        let allowed = r.status.as_ref().is_some_and(|s| s.allowed);
        if !allowed {
            p.denied.push(format!(
                "{verb} {resource}{}",
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                }
            ));
        }
    }
    if p.denied.is_empty() {
        writeln!(
            out,
            "preflight: RBAC ok (can create CRDs, namespaces and cluster role bindings)"
        )?;
    } else {
        writeln!(
            out,
            "preflight: RBAC: not allowed to {}",
            p.denied.join(", ")
        )?;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    for (product, crd) in PRODUCT_CRDS {
        let found = crds
            .get_opt(crd)
            .await
            .with_context(|| format!("reading CRD {crd}"))?;
        let status = match found {
            None => None,
            Some(c) => {
                let label = c
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/version").cloned());
                Some(match label {
                    Some(v) => v,
                    None => controller_version(cluster, product)
                        .await
                        .unwrap_or_else(|| "version unknown".into()),
                })
            }
        };
        writeln!(
            out,
            "preflight: {product}: {}",
            status
                .as_deref()
                .map(|v| format!("installed ({v})"))
                .unwrap_or_else(|| "not installed".into())
        )?;
        match *product {
            "Flux" => p.flux = status,
            "Istio" => p.istio = status,
            _ => p.flagger = status,
        }
    }
    let services: Api<Service> = Api::all(cluster.client.clone());
    let lbs = services
        .list(&ListParams::default())
        .await
        .context("listing services")?;
    p.load_balancer = lbs.items.iter().find_map(|s| {
        let ingress = s
            .status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?;
        let addr = ingress.ip.clone().or_else(|| ingress.hostname.clone())?;
        Some(format!(
            "{}/{} has {addr}",
            s.metadata.namespace.as_deref().unwrap_or("?"),
            s.metadata.name.as_deref().unwrap_or("?")
        ))
    });
    match &p.load_balancer {
        Some(lb) => writeln!(out, "preflight: load balancer: yes ({lb})")?,
        None => writeln!(
            out,
            "preflight: load balancer: none seen (no LoadBalancer Service has an address); on kind use \
             `kubectl -n istio-ingress port-forward svc/istio-ingressgateway 8080:80`"
        )?,
    }
    if let Some((needed, profile)) = needed {
        p.allocatable_memory = allocatable_memory(cluster).await?;
        let (short, tight) = memory_verdict(p.allocatable_memory, needed, profile);
        match (&short, &tight) {
            (Some(s), _) => writeln!(out, "preflight: memory: NOT ENOUGH: {s}")?,
            (None, Some(t)) => writeln!(out, "preflight: memory: warning: {t}")?,
            (None, None) => writeln!(
                out,
                "preflight: memory: the {profile} profile requests {} (limits {}); the nodes have {} allocatable",
                gib(needed.memory_request_bytes),
                gib(needed.memory_limit_bytes),
                gib(p.allocatable_memory)
            )?,
        }
        p.memory_short = short;
    }
    Ok(p)
}
