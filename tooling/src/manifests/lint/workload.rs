//! Workloads: find the pod spec of each workload kind and run every container, init containers
//! first, through the container rules (`image-pinned`, `resources`, `security-context`,
//! `hostpath-readonly`, `secret-env`, `elastic-password-secret`) in one pass; and
//! `inject-annotation`, the one rule about the workload's own metadata.

use super::objects::{Container, array};
use super::{credentials, images, resources, security};
use crate::manifests::{Finding, Manifest, field_path};
use serde_json::Value;

/// The JSON pointer of the pod spec of a workload kind, if it is one.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some("/spec/template/spec")
        }
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Pod" => Some("/spec"),
        _ => None,
    }
}

/// The workload rules of `m`; nothing when it is not a workload.
pub(super) fn lint(m: &Manifest, out: &mut Vec<Finding>) {
    let Some(pointer) = pod_spec_pointer(m.kind()) else {
        return;
    };
    if let Some(pod) = m.object.pointer(pointer) {
        lint_pod(m, pointer, pod, out);
    }
    if m.annotation("sidecar.istio.io/inject").is_some() {
        out.push(Finding::error(
            "inject-annotation",
            m,
            "metadata.annotations.sidecar.istio.io/inject",
            "`sidecar.istio.io/inject` on the workload does nothing: put it on the pod template (spec.template.metadata), or label the namespace",
        ));
    }
}

fn lint_pod(m: &Manifest, pointer: &str, pod: &Value, out: &mut Vec<Finding>) {
    let base = field_path(pointer);
    let defaults = security::lint_pod(m, &base, pod, out);
    for list in ["initContainers", "containers"] {
        for (i, spec) in array(pod, &format!("/{list}")).iter().enumerate() {
            let container = Container {
                manifest: m,
                at: format!("{base}.{list}[{i}]"),
                name: spec.get("name").and_then(Value::as_str).unwrap_or("?"),
                image: spec.get("image").and_then(Value::as_str).unwrap_or(""),
                spec,
            };
            images::lint_container(&container, out);
            resources::lint_container(&container, out);
            security::lint_container(&container, &defaults, out);
            credentials::lint_container(&container, out);
        }
    }
}
