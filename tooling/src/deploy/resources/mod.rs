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

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;

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

/// Parses a Kubernetes quantity (`500m`, `1.5`, `128Mi`, `2Gi`, `1k`, `1e3`, `0.5M`) into base
/// units: cores for CPU, bytes for memory. Binary suffixes `Ki Mi Gi Ti Pi Ei`, decimal suffixes
/// `n u m k M G T P E`, or a decimal exponent `e`/`E` followed by an integer; an optional sign.
pub fn parse_quantity(text: &str) -> Result<f64> {
    let s = text.trim();
    let digits_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(digits_end);
    let unsigned = number.trim_start_matches(['+', '-']);
    if unsigned.is_empty()
        || unsigned == "."
        || unsigned.matches('.').count() > 1
        || number.len() - unsigned.len() > 1
    {
        bail!(
            "{text:?} is not a Kubernetes quantity (expected a number such as 500m, 1.5 or 128Mi)"
        );
    }
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a Kubernetes quantity"))?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        other => {
            // A decimal exponent: `e` or `E` then a signed integer (`E` alone is exa, above).
            let exponent = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .filter(|e| {
                    let d = e.strip_prefix(['+', '-']).unwrap_or(e);
                    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
                })
                .with_context(|| {
                    format!("{text:?} is not a Kubernetes quantity: unknown suffix {other:?} (use m, k, M, G, Ki, Mi, Gi...)")
                })?;
            let exponent: i32 = exponent
                .parse()
                .with_context(|| format!("{text:?}: exponent out of range"))?;
            10f64.powi(exponent)
        }
    };
    let v = value * factor;
    if !v.is_finite() {
        bail!("{text:?} is out of range");
    }
    Ok(v)
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

/// `Kind/namespace/name` of an object, for messages.
fn object_id(o: &Value) -> String {
    let kind = str_at(o, "/kind").unwrap_or("?");
    let name = str_at(o, "/metadata/name").unwrap_or("?");
    match str_at(o, "/metadata/namespace") {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// A quantity in a manifest: a string, or a bare YAML number (`cpu: 1`).
fn quantity(v: &Value, what: &str) -> Result<f64> {
    let q = match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64().context("not a finite number"),
        other => bail!("{other} is not a quantity"),
    }
    .with_context(|| format!("{what}: cannot parse the quantity {v}"))?;
    if q < 0.0 {
        bail!("{what}: negative quantity {v}");
    }
    Ok(q)
}

fn millis(cores: f64) -> u64 {
    // Kubernetes rounds CPU up to whole millicores.
    (cores * 1000.0 - 1e-9).ceil().max(0.0) as u64
}

fn bytes(b: f64) -> u64 {
    (b - 1e-9).ceil().max(0.0) as u64
}

/// A `resources` map (`requests`/`limits` of `cpu`/`memory`); `what` names it in errors.
fn container_resources(resources: Option<&Value>, what: &str) -> Result<Resources> {
    let get = |section: &str, name: &str| -> Result<Option<f64>> {
        match resources
            .and_then(|r| r.get(section))
            .and_then(|s| s.get(name))
        {
            None | Some(Value::Null) => Ok(None),
            Some(v) => quantity(v, &format!("{what}.{section}.{name}")).map(Some),
        }
    };
    let cpu_limit = get("limits", "cpu")?;
    let memory_limit = get("limits", "memory")?;
    // Kubernetes defaults a missing request to the limit.
    let cpu_request = get("requests", "cpu")?.or(cpu_limit).unwrap_or(0.0);
    let memory_request = get("requests", "memory")?.or(memory_limit).unwrap_or(0.0);
    Ok(Resources {
        cpu_request_millis: millis(cpu_request),
        cpu_limit_millis: millis(cpu_limit.unwrap_or(cpu_request)),
        memory_request_bytes: bytes(memory_request),
        memory_limit_bytes: bytes(memory_limit.unwrap_or(memory_request)),
    })
}

/// The effective resources of one pod spec, without any injected sidecar.
fn pod_resources(pod: &Value, what: &str) -> Result<Resources> {
    let list = |key: &str| {
        pod.get(key)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
    };
    let mut running = Resources::default();
    for (i, c) in list("containers").iter().enumerate() {
        running += container_resources(
            c.get("resources"),
            &format!("{what}.containers[{i}].resources"),
        )?;
    }
    let mut largest_init = Resources::default();
    for (i, c) in list("initContainers").iter().enumerate() {
        let r = container_resources(
            c.get("resources"),
            &format!("{what}.initContainers[{i}].resources"),
        )?;
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            // A native sidecar runs for the pod's whole life, next to the containers.
            running += r;
        } else {
            largest_init = largest_init.max(r);
        }
    }
    Ok(running.max(largest_init))
}

/// Whether the injector adds a sidecar to a pod with these labels and annotations in a namespace
/// with this `istio-injection` label (Istio's default webhooks: the namespace label, or the pod
/// label `sidecar.istio.io/inject: "true"` outside namespaces labelled `disabled`).
fn injected(pod_meta: Option<&Value>, namespace_label: Option<&str>) -> bool {
    let label = pod_meta
        .and_then(|m| m.pointer("/labels/sidecar.istio.io~1inject"))
        .and_then(Value::as_str);
    let annotation = pod_meta
        .and_then(|m| m.pointer("/annotations/sidecar.istio.io~1inject"))
        .and_then(Value::as_str);
    if label == Some("false") || namespace_label == Some("disabled") {
        return false;
    }
    if label == Some("true") {
        return true;
    }
    namespace_label == Some("enabled") && annotation != Some("false")
}

/// The sidecar of a pod: the mesh default, overridden by the pod's proxy annotations.
fn sidecar_for(pod_meta: Option<&Value>, default: Resources, what: &str) -> Result<Resources> {
    let annotation = |key: &str| {
        pod_meta
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(key))
    };
    let mut r = default;
    let set = |key: &str, apply: &mut dyn FnMut(f64)| -> Result<()> {
        if let Some(v) = annotation(key) {
            apply(quantity(v, &format!("{what}: annotation {key}"))?);
        }
        Ok(())
    };
    set("sidecar.istio.io/proxyCPU", &mut |q| {
        r.cpu_request_millis = millis(q)
    })?;
    set("sidecar.istio.io/proxyCPULimit", &mut |q| {
        r.cpu_limit_millis = millis(q)
    })?;
    set("sidecar.istio.io/proxyMemory", &mut |q| {
        r.memory_request_bytes = bytes(q)
    })?;
    set("sidecar.istio.io/proxyMemoryLimit", &mut |q| {
        r.memory_limit_bytes = bytes(q)
    })?;
    Ok(r)
}

/// The mesh's sidecar resources: the `istiod` HelmRelease's `global.proxy.resources`, else Istio
/// 1.30's default (istio-discovery chart values: 100m / 128Mi requested, 2 CPUs / 1 GiB limits).
fn mesh_sidecar(objects: &[Value]) -> Result<Resources> {
    let istiod = objects
        .iter()
        .find(|o| str_at(o, "/kind") == Some("HelmRelease") && chart(o) == Some("istiod"));
    if let Some(istiod) = istiod
        && let Some(r) = istiod.pointer("/spec/values/global/proxy/resources")
    {
        let what = format!("{}: spec.values.global.proxy.resources", object_id(istiod));
        return container_resources(Some(r), &what);
    }
    let default = serde_json::json!({
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "2000m", "memory": "1024Mi"}});
    container_resources(Some(&default), "Istio's default sidecar")
}

fn chart(o: &Value) -> Option<&str> {
    str_at(o, "/spec/chart/spec/chart")
}

fn count_at(v: &Value, pointer: &str, default: u64, what: &str) -> Result<u64> {
    match v.pointer(pointer) {
        None | Some(Value::Null) => Ok(default),
        Some(n) => n.as_u64().with_context(|| {
            format!(
                "{what}: {} is not a whole number: {n}",
                pointer.trim_start_matches('/').replace('/', ".")
            )
        }),
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

/// The pods of a HelmRelease of a chart this repository installs, from its values.
fn helm_release(
    o: &Value,
    id: &str,
    sidecar: Resources,
    namespace_injection: Option<&str>,
) -> Result<Item> {
    let chart_name = chart(o).unwrap_or("");
    let object = format!("{id} ({chart_name})");
    let empty = Value::Object(Default::default());
    let values = o.pointer("/spec/values").unwrap_or(&empty);
    let res = |pointer: &str, default: Option<&Value>| -> Result<Resources> {
        let what = format!("{id}: spec.values{}", pointer.replace('/', "."));
        container_resources(values.pointer(pointer).or(default), &what)
    };
    let count = |pointer: &str, default: u64| count_at(values, pointer, default, id);
    // (resources of one pod without sidecar, pods, whether the injector adds a sidecar)
    let (per_pod, pods, with_sidecar) = match chart_name {
        "base" => (Resources::default(), 0, false),
        "istiod" => {
            // The 1.30 chart's default: a 500m / 2 GiB request and no limit.
            let default = serde_json::json!({"requests": {"cpu": "500m", "memory": "2048Mi"}});
            let replicas = count("/autoscaleMin", 1)?.max(count("/replicaCount", 1)?);
            (res("/resources", Some(&default))?, replicas, false)
        }
        "gateway" => {
            let default = serde_json::json!({
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "2000m", "memory": "1024Mi"}});
            let replicas = if values.pointer("/autoscaling/enabled") == Some(&Value::Bool(false)) {
                count("/replicaCount", 1)?
            } else {
                count("/autoscaling/minReplicas", 1)?
            };
            (res("/resources", Some(&default))?, replicas, false)
        }
        "flagger" => (
            res("/resources", None)?,
            count("/leaderElection/replicaCount", 1)?,
            false,
        ),
        "loadtester" => {
            let labels = values.get("podLabels");
            let meta = serde_json::json!({ "labels": labels.cloned().unwrap_or(Value::Null) });
            (
                res("/resources", None)?,
                count("/replicaCount", 1)?,
                injected(Some(&meta), namespace_injection),
            )
        }
        "prometheus" => (
            res("/server/resources", None)? + res("/configmapReload/prometheus/resources", None)?,
            count("/server/replicaCount", 1)?,
            false,
        ),
        "grafana" => (
            res("/resources", None)? + res("/sidecar/resources", None)?,
            count("/replicas", 1)?,
            false,
        ),
        other => {
            return Ok(Item {
                object,
                pods: 0,
                sidecars: 0,
                resources: Resources::default(),
                not_counted: Some(format!(
                    "chart {other:?} is not known to istio-demo's resource sum"
                )),
            });
        }
    };
    let per_pod = if with_sidecar {
        per_pod + sidecar
    } else {
        per_pod
    };
    Ok(Item {
        object,
        pods,
        sidecars: if with_sidecar { pods } else { 0 },
        resources: per_pod.times(pods),
        not_counted: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MI: u64 = 1024 * 1024;

    #[test]
    fn quantities_parse_like_kubernetes() {
        let cases = [
            ("500m", 0.5),
            ("1", 1.0),
            ("1.5", 1.5),
            ("0.1", 0.1),
            ("250u", 0.000_25),
            ("100n", 1e-7),
            ("128Mi", 128.0 * 1024.0 * 1024.0),
            ("1Gi", 1024f64.powi(3)),
            ("64Ki", 65536.0),
            ("2Ti", 2.0 * 1024f64.powi(4)),
            ("1k", 1000.0),
            ("1M", 1e6),
            ("2G", 2e9),
            ("1.5Gi", 1.5 * 1024f64.powi(3)),
            ("1e3", 1000.0),
            ("1E3", 1000.0),
            ("5e-1", 0.5),
            ("1E", 1e18),
            ("+2", 2.0),
            (" 3 ", 3.0),
        ];
        for (text, want) in cases {
            let got = parse_quantity(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "{text}: {got} != {want}"
            );
        }
    }

    #[test]
    fn bad_quantities_are_errors() {
        for text in [
            "", "m", "Mi", "1.2.3", "12Zi", "1mi", "1 Gi", "--1", "1e", "1e+", "abc", ".",
        ] {
            assert!(parse_quantity(text).is_err(), "{text:?} parsed");
        }
        let e = parse_quantity("12Zi").unwrap_err().to_string();
        assert!(e.contains("12Zi") && e.contains("suffix"), "{e}");
    }

    fn deployment(ns: &str, name: &str, containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"template": {"metadata": {}, "spec": {"containers": containers}}}})
    }

    fn container(req_cpu: &str, req_mem: &str, lim_cpu: &str, lim_mem: &str) -> Value {
        json!({"name": "c", "resources": {
            "requests": {"cpu": req_cpu, "memory": req_mem},
            "limits": {"cpu": lim_cpu, "memory": lim_mem}}})
    }

    #[test]
    fn containers_and_replicas_add_up() {
        let mut d = deployment(
            "ns",
            "a",
            json!([
                container("100m", "64Mi", "1", "128Mi"),
                container("50m", "32Mi", "500m", "64Mi")
            ]),
        );
        d["spec"]["replicas"] = json!(3);
        let r = sum(&[d]).unwrap();
        assert_eq!(
            r,
            Resources {
                cpu_request_millis: 450,
                cpu_limit_millis: 4500,
                memory_request_bytes: 3 * 96 * MI,
                memory_limit_bytes: 3 * 192 * MI,
            }
        );
    }

    #[test]
    fn init_containers_count_as_the_scheduler_counts_them() {
        let mut d = deployment(
            "ns",
            "a",
            json!([container("100m", "64Mi", "200m", "128Mi")]),
        );
        // An ordinary init container larger than the containers sets the request; a native
        // sidecar (restartPolicy Always) adds to the containers.
        d["spec"]["template"]["spec"]["initContainers"] = json!([
            container("300m", "16Mi", "300m", "16Mi"),
            {"name": "side", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"cpu": "10m", "memory": "8Mi"}}}
        ]);
        let r = sum(&[d]).unwrap();
        assert_eq!(r.cpu_request_millis, 300);
        assert_eq!(r.memory_request_bytes, 72 * MI);
        assert_eq!(r.cpu_limit_millis, 300);
        assert_eq!(r.memory_limit_bytes, 136 * MI);
    }

    #[test]
    fn a_missing_request_is_the_limit_and_a_missing_limit_the_request() {
        let d = deployment(
            "ns",
            "a",
            json!([{"name": "c", "resources": {"limits": {"cpu": 1, "memory": "1G"}}},
                   {"name": "d", "resources": {"requests": {"cpu": "0.25", "memory": "1e6"}}}]),
        );
        let r = sum(&[d]).unwrap();
        assert_eq!(r.cpu_request_millis, 1250);
        assert_eq!(r.cpu_limit_millis, 1250);
        assert_eq!(r.memory_request_bytes, 1_001_000_000);
        assert_eq!(r.memory_limit_bytes, 1_001_000_000);
    }

    #[test]
    fn injected_pods_get_the_mesh_sidecar() {
        let ns = |name: &str, label: &str| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": {"istio-injection": label}}})
        };
        let istiod = json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "istiod", "namespace": "istio-system"},
            "spec": {"chart": {"spec": {"chart": "istiod"}}, "values": {
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
                "global": {"proxy": {"resources": {
                    "requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}}}}}});
        let app = |ns: &str, name: &str| {
            deployment(ns, name, json!([container("10m", "16Mi", "100m", "32Mi")]))
        };
        let mut opted_out = app("mesh", "out");
        opted_out["spec"]["template"]["metadata"] =
            json!({"labels": {"sidecar.istio.io/inject": "false"}});
        let mut opted_in = app("plain", "in");
        opted_in["spec"]["template"]["metadata"] = json!({"labels": {"sidecar.istio.io/inject": "true"},
                   "annotations": {"sidecar.istio.io/proxyMemory": "100Mi"}});
        let objects = vec![
            ns("mesh", "enabled"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}}),
            istiod,
            app("mesh", "a"),
            opted_out,
            opted_in,
            app("plain", "b"),
        ];
        let items = itemize(&objects).unwrap();
        let get = |id: &str| {
            items
                .iter()
                .find(|i| i.object.starts_with(id))
                .unwrap()
                .clone()
        };
        assert_eq!(get("Deployment/mesh/a").sidecars, 1);
        assert_eq!(
            get("Deployment/mesh/a").resources.memory_request_bytes,
            80 * MI
        );
        assert_eq!(get("Deployment/mesh/out").sidecars, 0);
        assert_eq!(
            get("Deployment/plain/in").resources.memory_request_bytes,
            116 * MI
        );
        assert_eq!(get("Deployment/plain/b").sidecars, 0);
        let istiod = get("HelmRelease/istio-system/istiod");
        assert_eq!(istiod.pods, 1);
        assert_eq!(istiod.resources.memory_request_bytes, 256 * MI);
    }

    #[test]
    fn canaried_deployments_count_primary_and_canary() {
        let d = deployment(
            "demo",
            "httpbin",
            json!([container("50m", "32Mi", "500m", "128Mi")]),
        );
        let canary = json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "httpbin", "namespace": "demo"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "httpbin"}}});
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "httpbin", "namespace": "demo"},
            "spec": {"minReplicas": 2, "scaleTargetRef": {"kind": "Deployment", "name": "httpbin"}}});
        assert_eq!(
            sum(std::slice::from_ref(&d)).unwrap().cpu_request_millis,
            50
        );
        assert_eq!(
            sum(&[d.clone(), canary.clone()])
                .unwrap()
                .cpu_request_millis,
            100
        );
        assert_eq!(sum(&[d, canary, hpa]).unwrap().cpu_request_millis, 200);
    }

    #[test]
    fn helm_release_values_are_counted_per_chart() {
        let hr = |chart: &str, values: Value| {
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": chart, "namespace": "x"},
                   "spec": {"chart": {"spec": {"chart": chart, "version": "1.0.0"}}, "values": values}})
        };
        let r = json!({"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}});
        let items = itemize(&[
            hr(
                "grafana",
                json!({"resources": r, "sidecar": {"resources": r}}),
            ),
            hr("prometheus", json!({"server": {"resources": r}})),
            hr("gateway", json!({})),
            hr(
                "loadtester",
                json!({"resources": r, "podLabels": {"sidecar.istio.io/inject": "true"}}),
            ),
            hr("mystery", json!({"resources": r})),
        ])
        .unwrap();
        assert_eq!(items[0].resources.cpu_request_millis, 200);
        assert_eq!(items[1].resources.memory_limit_bytes, 1024 * MI);
        // The gateway chart's own default, when values set none.
        assert_eq!(items[2].resources.memory_request_bytes, 128 * MI);
        // The load tester opts into injection: Istio's default sidecar is added.
        assert_eq!(items[3].sidecars, 1);
        assert_eq!(items[3].resources.memory_request_bytes, 228 * MI);
        assert!(items[4].not_counted.as_deref().unwrap().contains("mystery"));
        assert_eq!(items[4].resources, Resources::default());
    }

    #[test]
    fn an_unparsable_quantity_names_the_object_and_field() {
        let d = deployment(
            "demo",
            "httpbin",
            json!([container("50m", "32Mb", "500m", "128Mi")]),
        );
        let e = format!("{:#}", sum(&[d]).unwrap_err());
        assert!(
            e.contains("Deployment/demo/httpbin")
                && e.contains("containers[0].resources.requests.memory")
                && e.contains("32Mb"),
            "{e}"
        );
        let hr = json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "grafana", "namespace": "monitoring"},
            "spec": {"chart": {"spec": {"chart": "grafana"}}, "values": {"resources": {"limits": {"cpu": "lots"}}}}});
        let e = format!("{:#}", sum(&[hr]).unwrap_err());
        assert!(
            e.contains("HelmRelease/monitoring/grafana")
                && e.contains("spec.values.resources.limits.cpu"),
            "{e}"
        );
    }
}
