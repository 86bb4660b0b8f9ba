//! What a set of rendered objects asks of the cluster: CPU and memory requests and limits summed
//! over every container, so the preflight can compare a profile with the nodes' allocatable memory
//! and the README can state what each profile needs.
//!
//! Counted: every container and init container of Deployments, StatefulSets, DaemonSets (one node),
//! Jobs and CronJobs (one run), times `replicas` (1 when unset: the HPA starts there); every
//! `resources` map with requests or limits found in a HelmRelease's `values` (the charts' workloads:
//! istiod, the gateway, Prometheus, Grafana, Flagger, the load tester), once; and an Istio sidecar
//! (`global.proxy.resources` of the istiod HelmRelease) per pod that gets one: pods in namespaces
//! labelled `istio-injection: enabled` unless the pod opts out, pods labelled
//! `sidecar.istio.io/inject: "true"`, and HelmReleases whose `podLabels` ask for injection.
//! Not known from the manifests: what a chart runs without resources in its values, and what
//! Flux's own controllers need (from its install manifest, counted when it is in the objects).

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Summed requests and limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request_millis: u64,
    pub cpu_limit_millis: u64,
    pub memory_request_bytes: u64,
    pub memory_limit_bytes: u64,
}

impl Resources {
    fn add(&mut self, other: &Resources, times: u64) {
        self.cpu_request_millis += other.cpu_request_millis * times;
        self.cpu_limit_millis += other.cpu_limit_millis * times;
        self.memory_request_bytes += other.memory_request_bytes * times;
        self.memory_limit_bytes += other.memory_limit_bytes * times;
    }
}

/// A Kubernetes quantity in base units (cores, bytes): `250m`, `1.5`, `64Mi`, `1G`, `2e3`.
pub fn parse_quantity(q: &str) -> Result<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number
        .parse()
        .with_context(|| format!("{q:?} is not a Kubernetes quantity"))?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        s if s.starts_with(['e', 'E']) => 10f64.powi(
            s[1..]
                .parse()
                .with_context(|| format!("{q:?}: bad exponent"))?,
        ),
        s => bail!("{q:?}: unknown quantity suffix {s:?}"),
    };
    let v = n * scale;
    if !v.is_finite() || v < 0.0 {
        bail!("{q:?}: not a non-negative quantity");
    }
    Ok(v)
}

fn quantity(v: Option<&Value>) -> Result<Option<f64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_quantity(s).map(Some),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => bail!("{other} is not a quantity"),
    }
}

/// One `resources` map (`requests`, `limits`).
pub fn of_map(r: &Value) -> Result<Resources> {
    let get = |section: &str, what: &str| quantity(r.get(section).and_then(|s| s.get(what)));
    let millis = |v: Option<f64>| v.map_or(0, |c| (c * 1000.0).round() as u64);
    let bytes = |v: Option<f64>| v.map_or(0, |b| b.round() as u64);
    Ok(Resources {
        cpu_request_millis: millis(get("requests", "cpu")?),
        cpu_limit_millis: millis(get("limits", "cpu")?),
        memory_request_bytes: bytes(get("requests", "memory")?),
        memory_limit_bytes: bytes(get("limits", "memory")?),
    })
}

fn id(o: &Value) -> String {
    crate::cluster::object_id(o)
}

fn pod_template(o: &Value) -> Option<&Value> {
    match o["kind"].as_str()? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => o.pointer("/spec/template"),
        "CronJob" => o.pointer("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// Every `resources` map with requests or limits below `v`, except `global.proxy` (the sidecar).
fn values_resources(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                if p == ".global.proxy" {
                    continue;
                }
                if k == "resources" && (x.get("requests").is_some() || x.get("limits").is_some()) {
                    out.push((p, x.clone()));
                } else {
                    values_resources(x, &p, out);
                }
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| values_resources(x, &format!("{path}[{i}]"), out)),
        _ => {}
    }
}

/// Sums what `objects` request and limit.
pub fn sum(objects: &[Value]) -> Result<Resources> {
    let injected_ns: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .filter(|o| o.pointer("/metadata/labels/istio-injection") == Some(&Value::from("enabled")))
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let sidecar = objects
        .iter()
        .find(|o| {
            o["kind"] == "HelmRelease"
                && o.pointer("/spec/chart/spec/chart") == Some(&Value::from("istiod"))
        })
        .and_then(|o| o.pointer("/spec/values/global/proxy/resources"))
        .map(of_map)
        .transpose()?
        .unwrap_or_default();
    let mut total = Resources::default();
    for o in objects {
        if let Some(t) = pod_template(o) {
            let replicas = o
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            let mut pod = Resources::default();
            for list in ["/spec/containers", "/spec/initContainers"] {
                for c in t
                    .pointer(list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(r) = c.get("resources") {
                        let r = of_map(r).with_context(|| {
                            format!("{}: container {}", id(o), c["name"].as_str().unwrap_or("?"))
                        })?;
                        pod.add(&r, 1);
                    }
                }
            }
            let inject_label = t.pointer("/metadata/labels/sidecar.istio.io~1inject");
            let inject_annotation = t.pointer("/metadata/annotations/sidecar.istio.io~1inject");
            let opted = inject_label.or(inject_annotation).and_then(Value::as_str);
            let in_injected_ns = o["metadata"]["namespace"]
                .as_str()
                .is_some_and(|ns| injected_ns.contains(&ns));
            if opted == Some("true") || (in_injected_ns && opted != Some("false")) {
                pod.add(&sidecar, 1);
            }
            total.add(&pod, replicas);
        } else if o["kind"] == "HelmRelease" {
            let Some(values) = o.pointer("/spec/values") else {
                continue;
            };
            let mut found = Vec::new();
            values_resources(values, "", &mut found);
            for (path, r) in found {
                let r = of_map(&r).with_context(|| format!("{}: values{path}", id(o)))?;
                total.add(&r, 1);
            }
            if values.pointer("/podLabels/sidecar.istio.io~1inject") == Some(&Value::from("true")) {
                total.add(&sidecar, 1);
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("250m").unwrap(), 0.25);
        assert_eq!(parse_quantity("1.5").unwrap(), 1.5);
        assert_eq!(parse_quantity("64Mi").unwrap(), 67_108_864.0);
        assert_eq!(parse_quantity("1G").unwrap(), 1e9);
        assert_eq!(parse_quantity("2e3").unwrap(), 2000.0);
        assert_eq!(parse_quantity("16384Ki").unwrap(), 16_777_216.0);
        for bad in ["", "Mi", "1Qi", "-1", "1.2.3"] {
            assert!(parse_quantity(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn workloads_charts_and_sidecars_add_up() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": {"istio-injection": "enabled"}}}),
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "istiod", "namespace": "istio-system"},
                   "spec": {"chart": {"spec": {"chart": "istiod"}}, "values": {
                       "pilot": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
                       "global": {"proxy": {"resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}}}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "demo"},
                   "spec": {"replicas": 2, "template": {"spec": {"containers": [
                       {"name": "c", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b", "namespace": "other"},
                   "spec": {"template": {"spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "1Gi"}}}]}}}}),
        ];
        let r = sum(&objects).unwrap();
        let mi = 1024 * 1024;
        // istiod 256Mi + 2 × (16Mi + 64Mi sidecar) + 1Gi.
        assert_eq!(r.memory_request_bytes, (256 + 2 * 80 + 1024) * mi);
        assert_eq!(r.cpu_request_millis, 100 + 2 * 30);
        assert_eq!(r.memory_limit_bytes, (1024 + 2 * (32 + 256)) * mi);
        assert_eq!(r.cpu_limit_millis, 1000 + 2 * 600);
    }

    #[test]
    fn a_bad_quantity_names_the_object() {
        let o = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"},
                       "spec": {"template": {"spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "lots"}}}]}}}});
        let e = format!("{:#}", sum(&[o]).unwrap_err());
        assert!(
            e.contains("Deployment/n/x: container c") && e.contains("lots"),
            "{e}"
        );
    }
}
