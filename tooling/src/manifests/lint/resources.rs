//! `resources`: every container requests and limits CPU and memory. `hpa-cpu-requests` (old bug
//! 4): an autoscaler on CPU utilisation needs CPU requests on every container it scales, or it
//! has nothing to compute a utilisation from.

use super::objects::{Container, array, find};
use crate::manifests::{Finding, Manifest};
use serde_json::Value;

pub(super) fn lint_container(c: &Container, out: &mut Vec<Finding>) {
    for section in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            if c.spec
                .pointer(&format!("/resources/{section}/{resource}"))
                .is_none()
            {
                out.push(c.error(
                    "resources",
                    &format!("resources.{section}.{resource}"),
                    format!("container `{}` has no {resource} {section}", c.name),
                ));
            }
        }
    }
}

/// `hpa-cpu-requests`, over everything a run loaded.
pub(super) fn lint_autoscalers(all: &[Manifest], out: &mut Vec<Finding>) {
    for hpa in all.iter().filter(|m| m.kind() == "HorizontalPodAutoscaler") {
        let uses_cpu = array(&hpa.object, "/spec/metrics")
            .iter()
            .any(|metric| metric.pointer("/resource/name") == Some(&Value::from("cpu")));
        let target = hpa
            .object
            .pointer("/spec/scaleTargetRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let (true, Some(d)) = (uses_cpu, find(all, "Deployment", hpa.namespace(), target)) {
            let missing = array(&d.object, "/spec/template/spec/containers")
                .iter()
                .any(|c| c.pointer("/resources/requests/cpu").is_none());
            if missing {
                out.push(Finding::error(
                    "hpa-cpu-requests",
                    hpa,
                    "spec.metrics",
                    format!(
                        "scales on CPU but {} has a container without CPU requests",
                        d.id()
                    ),
                ));
            }
        }
    }
}
