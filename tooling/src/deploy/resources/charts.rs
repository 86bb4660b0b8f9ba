//! The pods of a HelmRelease of a chart this repository installs (istiod, gateway, flagger,
//! loadtester, prometheus, grafana), from its values and the pinned chart's defaults.

use super::pods::{container_resources, injected};
use super::{Item, Resources, chart};
use anyhow::{Context, Result};
use serde_json::Value;

pub(super) fn count_at(v: &Value, pointer: &str, default: u64, what: &str) -> Result<u64> {
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

/// The pods of a HelmRelease of a chart this repository installs, from its values.
pub(super) fn helm_release(
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
