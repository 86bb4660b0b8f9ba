//! A pod's effective request as the scheduler computes it (containers, native sidecars, init
//! containers), whether Istio injects a sidecar into it, and that sidecar's resources.

use super::quantity::{bytes, millis, quantity};
use super::{Resources, chart, object_id, str_at};
use anyhow::Result;
use serde_json::Value;

/// A `resources` map (`requests`/`limits` of `cpu`/`memory`); `what` names it in errors.
pub(super) fn container_resources(resources: Option<&Value>, what: &str) -> Result<Resources> {
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
pub(super) fn pod_resources(pod: &Value, what: &str) -> Result<Resources> {
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
pub(super) fn injected(pod_meta: Option<&Value>, namespace_label: Option<&str>) -> bool {
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
pub(super) fn sidecar_for(
    pod_meta: Option<&Value>,
    default: Resources,
    what: &str,
) -> Result<Resources> {
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
pub(super) fn mesh_sidecar(objects: &[Value]) -> Result<Resources> {
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
