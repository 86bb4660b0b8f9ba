//! A workload's security: `security-context` (each container refuses privilege escalation, is not
//! privileged, drops ALL capabilities and adds none, runs as non-root on a read-only root
//! filesystem), `host-network` (no host network, PID or IPC namespace) and `hostpath-readonly`
//! (a hostPath volume is mounted read-only).
//!
//! Exceptions: a workload may carry the annotation [`ALLOW_ANNOTATION`] with a comma-separated
//! list from [`ALLOWABLE`] *and* a non-empty [`REASON_ANNOTATION`]; nothing else can be waived.

use super::objects::{Container, array};
use crate::manifests::{Finding, Manifest};
use serde_json::Value;

/// Annotation listing the waived security rules of one workload.
pub const ALLOW_ANNOTATION: &str = "lint.istio-demo.dev/allow";
/// Annotation that must explain a waiver.
pub const REASON_ANNOTATION: &str = "lint.istio-demo.dev/reason";
/// The rules a workload may waive (with a reason): running as root, a writable root filesystem.
pub const ALLOWABLE: &[&str] = &["run-as-root", "writable-rootfs"];

/// What the pod spec settles for all its containers.
pub(super) struct PodDefaults<'a> {
    /// The rules the workload waives ([`ALLOW_ANNOTATION`]).
    waived: Vec<String>,
    /// The pod's `securityContext.runAsNonRoot` is true.
    non_root: bool,
    /// The pod's `securityContext.runAsUser`.
    user: Option<i64>,
    /// The names of the pod's hostPath volumes, so their mounts can be checked.
    host_volumes: Vec<&'a str>,
}

impl PodDefaults<'_> {
    fn waives(&self, rule: &str) -> bool {
        self.waived.iter().any(|w| w == rule)
    }
}

fn allowed(m: &Manifest) -> Vec<String> {
    m.annotation(ALLOW_ANNOTATION)
        .map(|a| {
            a.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The pod-level rules of the pod spec `pod` at field path `base`: a waiver that cannot be
/// granted or has no reason, and `host-network`. Returns what the container rules need.
pub(super) fn lint_pod<'a>(
    m: &Manifest,
    base: &str,
    pod: &'a Value,
    out: &mut Vec<Finding>,
) -> PodDefaults<'a> {
    let waived = allowed(m);
    if !waived.is_empty() {
        if let Some(bad) = waived.iter().find(|w| !ALLOWABLE.contains(&w.as_str())) {
            out.push(Finding::error(
                "security-context",
                m,
                format!("metadata.annotations.{ALLOW_ANNOTATION}"),
                format!("`{bad}` cannot be waived (only {})", ALLOWABLE.join(", ")),
            ));
        }
        if m.annotation(REASON_ANNOTATION)
            .is_none_or(|r| r.trim().is_empty())
        {
            out.push(Finding::error(
                "security-context",
                m,
                format!("metadata.annotations.{REASON_ANNOTATION}"),
                format!("a waiver in {ALLOW_ANNOTATION} needs a reason in {REASON_ANNOTATION}"),
            ));
        }
    }
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod.get(field) == Some(&Value::Bool(true)) {
            out.push(Finding::error(
                "host-network",
                m,
                format!("{base}.{field}"),
                format!("{field} must not be enabled"),
            ));
        }
    }
    PodDefaults {
        waived,
        non_root: pod.pointer("/securityContext/runAsNonRoot") == Some(&Value::Bool(true)),
        user: pod
            .pointer("/securityContext/runAsUser")
            .and_then(Value::as_i64),
        host_volumes: array(pod, "/volumes")
            .iter()
            .filter(|v| v.get("hostPath").is_some())
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .collect(),
    }
}

/// `security-context` and `hostpath-readonly` for one container; a container's own
/// `securityContext` overrides the pod's user settings.
pub(super) fn lint_container(c: &Container, pod: &PodDefaults, out: &mut Vec<Finding>) {
    let name = c.name;
    let sc = c.spec.get("securityContext");
    let get = |p: &str| sc.and_then(|s| s.pointer(p));
    if get("/allowPrivilegeEscalation") != Some(&Value::Bool(false)) {
        out.push(c.error(
            "security-context",
            "securityContext.allowPrivilegeEscalation",
            format!("container `{name}` must set allowPrivilegeEscalation: false"),
        ));
    }
    if get("/privileged") == Some(&Value::Bool(true)) {
        out.push(c.error(
            "security-context",
            "securityContext.privileged",
            format!("container `{name}` must not be privileged"),
        ));
    }
    let drops_all = get("/capabilities/drop")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    if !drops_all {
        out.push(c.error(
            "security-context",
            "securityContext.capabilities.drop",
            format!("container `{name}` must drop ALL capabilities"),
        ));
    }
    if let Some(add) = get("/capabilities/add")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        out.push(c.error(
            "security-context",
            "securityContext.capabilities.add",
            format!("container `{name}` adds capabilities {add:?}"),
        ));
    }
    let non_root = get("/runAsNonRoot").map_or(pod.non_root, |v| v == &Value::Bool(true));
    let user = get("/runAsUser").and_then(Value::as_i64).or(pod.user);
    if !pod.waives("run-as-root") && (!non_root || user == Some(0)) {
        out.push(c.error(
            "security-context",
            "securityContext.runAsNonRoot",
            format!("container `{name}` must run as non-root (runAsNonRoot: true and a non-zero runAsUser)"),
        ));
    }
    if !pod.waives("writable-rootfs") && get("/readOnlyRootFilesystem") != Some(&Value::Bool(true))
    {
        out.push(c.error(
            "security-context",
            "securityContext.readOnlyRootFilesystem",
            format!("container `{name}` must have a read-only root filesystem"),
        ));
    }
    for (j, mount) in array(c.spec, "/volumeMounts").iter().enumerate() {
        let volume = mount.get("name").and_then(Value::as_str).unwrap_or("");
        if pod.host_volumes.contains(&volume) && mount.get("readOnly") != Some(&Value::Bool(true)) {
            out.push(c.error(
                "hostpath-readonly",
                &format!("volumeMounts[{j}].readOnly"),
                format!("container `{name}` mounts hostPath volume `{volume}` writable"),
            ));
        }
    }
}
