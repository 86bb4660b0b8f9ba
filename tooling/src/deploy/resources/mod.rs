//! What a set of rendered manifests asks of a cluster: the CPU and memory requests and limits of
//! every pod it would run, so `up`'s preflight can compare a profile with the nodes' allocatable
//! memory and docs/gitops.md can say what each profile needs.
//!
//! What [`sum`] counts, per pod, times the pods of each workload:
//! - Workloads in the objects (Deployment, StatefulSet, ReplicaSet, DaemonSet, Job, CronJob, Pod):
//!   `spec.replicas` (default 1), raised to an HPA's `minReplicas` when one scales the workload; a
//!   DaemonSet counts one pod (one node); a Job or CronJob its `parallelism` (default 1). A
//!   Deployment that a Flagger `Canary` targets counts twice: Flagger runs a primary copy of it,
//!   and during an analysis the canary pods run next to the primary ones.
//! - Each pod's effective request, as the scheduler computes it: the sum of its containers (and of
//!   restartable init containers, i.e. native sidecars), or its largest ordinary init container
//!   if that is larger.
//! - An Istio sidecar in every pod that the injector would inject: pods in a namespace labelled
//!   `istio-injection: enabled`, or labelled `sidecar.istio.io/inject: "true"` themselves, unless
//!   opted out. Its resources are istiod's `global.proxy.resources` (from the `istiod` HelmRelease
//!   among the objects, else Istio 1.30's default), or the pod's `sidecar.istio.io/proxyCPU`,
//!   `proxyMemory`, `proxyCPULimit`, `proxyMemoryLimit` annotations. The `istio-init` container has
//!   the same resources as the sidecar, so it never raises the pod's effective request.
//! - HelmReleases of the charts this repository installs, from their `values` (defaults of the
//!   pinned chart where a value is not set): `istiod` (`resources` × `replicaCount`), `gateway`
//!   (`resources` × `autoscaling.minReplicas`, no extra sidecar: its one container is the proxy),
//!   `flagger` (`resources` × `leaderElection.replicaCount`), `loadtester` (`resources` ×
//!   `replicaCount`, plus a sidecar when `podLabels` or its namespace ask for injection),
//!   `prometheus` (`server.resources` and `configmapReload.prometheus.resources` ×
//!   `server.replicaCount`), `grafana` (`resources` and `sidecar.resources` × `replicas`); `base`
//!   runs no pod.
//!
//! Not known, so not counted: containers a chart adds without resources in `values` (counted as
//! zero), charts not listed above (reported by [`itemize`] as not counted), `valuesFrom`, pods that
//! operators create at run time beyond Flagger's primary copy, HPA scale-up above the minimum,
//! Flux's own controllers, and Kubernetes' system pods. A container with a request but no limit
//! counts its request as its limit (a lower bound: it has no limit); one with a limit but no request
//! requests its limit, as Kubernetes defaults it.
//!
//! This file holds the sums and the walk over the objects; how a quantity is read is in
//! `quantity.rs`, a pod and its sidecar in `pods.rs`, the charts' HelmReleases in `charts.rs`.

use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;

mod charts;
mod pods;
mod quantity;

use charts::{count_at, helm_release};
use pods::{injected, mesh_sidecar, pod_resources, sidecar_for};
pub use quantity::parse_quantity;

/// CPU and memory, requested and limited, summed over pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request_millis: u64,
    pub cpu_limit_millis: u64,
    pub memory_request_bytes: u64,
    pub memory_limit_bytes: u64,
}

impl Resources {
    /// `self` for `n` pods.
    pub fn times(self, n: u64) -> Self {
        Resources {
            cpu_request_millis: self.cpu_request_millis.saturating_mul(n),
            cpu_limit_millis: self.cpu_limit_millis.saturating_mul(n),
            memory_request_bytes: self.memory_request_bytes.saturating_mul(n),
            memory_limit_bytes: self.memory_limit_bytes.saturating_mul(n),
        }
    }

    /// Field by field, the larger of the two.
    pub fn max(self, other: Self) -> Self {
        Resources {
            cpu_request_millis: self.cpu_request_millis.max(other.cpu_request_millis),
            cpu_limit_millis: self.cpu_limit_millis.max(other.cpu_limit_millis),
            memory_request_bytes: self.memory_request_bytes.max(other.memory_request_bytes),
            memory_limit_bytes: self.memory_limit_bytes.max(other.memory_limit_bytes),
        }
    }
}

impl std::ops::Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_request_millis: self.cpu_request_millis.saturating_add(o.cpu_request_millis),
            cpu_limit_millis: self.cpu_limit_millis.saturating_add(o.cpu_limit_millis),
            memory_request_bytes: self
                .memory_request_bytes
                .saturating_add(o.memory_request_bytes),
            memory_limit_bytes: self.memory_limit_bytes.saturating_add(o.memory_limit_bytes),
        }
    }
}

impl std::ops::AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Resources {
    fn sum<I: Iterator<Item = Resources>>(iter: I) -> Self {
        iter.fold(Resources::default(), |a, b| a + b)
    }
}

/// Where a workload's resources came from, and how many pods of it were counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `Kind/namespace/name`, or `HelmRelease/namespace/name (chart)`.
    pub object: String,
    /// Pods counted.
    pub pods: u64,
    /// Of which, pods with an Istio sidecar.
    pub sidecars: u64,
    /// Everything those pods request and limit (sidecars included).
    pub resources: Resources,
    /// Why nothing was counted for this object, when nothing could be (e.g. a chart not known here).
    pub not_counted: Option<String>,
}

/// The sum over [`itemize`]: what `objects` would run, sidecars included.
pub fn sum(objects: &[Value]) -> Result<Resources> {
    Ok(itemize(objects)?.iter().map(|i| i.resources).sum())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The chart of a HelmRelease.
fn chart(o: &Value) -> Option<&str> {
    str_at(o, "/spec/chart/spec/chart")
}

/// `Kind/namespace/name` of an object, for messages.
fn object_id(o: &Value) -> String {
    let kind = str_at(o, "/kind").unwrap_or("?");
    let name = str_at(o, "/metadata/name").unwrap_or("?");
    match str_at(o, "/metadata/namespace") {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Every workload and known HelmRelease in `objects`, with the pods counted and what they ask for.
pub fn itemize(objects: &[Value]) -> Result<Vec<Item>> {
    let namespaces: BTreeMap<&str, Option<&str>> = objects
        .iter()
        .filter(|o| str_at(o, "/kind") == Some("Namespace"))
        .filter_map(|o| {
            Some((
                str_at(o, "/metadata/name")?,
                str_at(o, "/metadata/labels/istio-injection"),
            ))
        })
        .collect();
    let injection = |ns: Option<&str>| ns.and_then(|ns| namespaces.get(ns).copied().flatten());
    let sidecar = mesh_sidecar(objects)?;

    let mut items = Vec::new();
    for o in objects {
        let kind = str_at(o, "/kind").unwrap_or("");
        let id = object_id(o);
        let namespace = str_at(o, "/metadata/namespace");
        let (template, pods) = match kind {
            "Deployment" | "StatefulSet" | "ReplicaSet" => {
                let mut n = count_at(o, "/spec/replicas", 1, &id)?;
                n = n.max(hpa_min_replicas(objects, o, &id)?);
                if kind == "Deployment" && canaried(objects, o) {
                    n *= 2;
                }
                (o.pointer("/spec/template"), n)
            }
            "DaemonSet" => (o.pointer("/spec/template"), 1),
            "Job" => (
                o.pointer("/spec/template"),
                count_at(o, "/spec/parallelism", 1, &id)?,
            ),
            "CronJob" => (
                o.pointer("/spec/jobTemplate/spec/template"),
                count_at(o, "/spec/jobTemplate/spec/parallelism", 1, &id)?,
            ),
            "Pod" => (Some(o), 1),
            "HelmRelease" => {
                // The chart's pods run in spec.targetNamespace when set.
                let pods_namespace = str_at(o, "/spec/targetNamespace").or(namespace);
                items.push(helm_release(o, &id, sidecar, injection(pods_namespace))?);
                continue;
            }
            _ => continue,
        };
        let Some(template) = template else { continue };
        let spec = template.get("spec").unwrap_or(&Value::Null);
        let meta = template.get("metadata");
        let mut per_pod = pod_resources(spec, &format!("{id}: pod spec"))?;
        let with_sidecar = injected(meta, injection(namespace));
        if with_sidecar {
            per_pod += sidecar_for(meta, sidecar, &id)?;
        }
        items.push(Item {
            object: id,
            pods,
            sidecars: if with_sidecar { pods } else { 0 },
            resources: per_pod.times(pods),
            not_counted: None,
        });
    }
    Ok(items)
}

/// An HPA's `minReplicas` for this workload (0 when none scales it).
fn hpa_min_replicas(objects: &[Value], workload: &Value, id: &str) -> Result<u64> {
    let mut min = 0;
    for hpa in objects.iter().filter(|h| {
        str_at(h, "/kind") == Some("HorizontalPodAutoscaler")
            && str_at(h, "/metadata/namespace") == str_at(workload, "/metadata/namespace")
            && str_at(h, "/spec/scaleTargetRef/kind") == str_at(workload, "/kind")
            && str_at(h, "/spec/scaleTargetRef/name") == str_at(workload, "/metadata/name")
    }) {
        min = min.max(count_at(hpa, "/spec/minReplicas", 1, id)?);
    }
    Ok(min)
}

/// Whether a Flagger Canary targets this Deployment.
fn canaried(objects: &[Value], deployment: &Value) -> bool {
    objects.iter().any(|c| {
        str_at(c, "/kind") == Some("Canary")
            && str_at(c, "/metadata/namespace") == str_at(deployment, "/metadata/namespace")
            && str_at(c, "/spec/targetRef/kind").unwrap_or("Deployment") == "Deployment"
            && str_at(c, "/spec/targetRef/name") == str_at(deployment, "/metadata/name")
    })
}

#[cfg(test)]
mod tests;
