//! Rules for a run that is the whole deploy (the repository without PATH, or a rendered stream):
//! `namespace-exists` (every namespace used is created by a manifest, or by Flux or Kubernetes),
//! and what must be there at all: `required-object` (a namespace-wide STRICT PeerAuthentication
//! in `demo`; a Canary and a plugin for it) and `wasm-selector` (some plugin gates both the
//! primary and the canary pods).

use super::mtls::DEMO_NAMESPACE;
use super::objects::{is_canary, is_gate_plugin};
use crate::manifests::{Finding, Manifest, Severity};
use serde_json::Value;

/// Namespaces that exist without this repository creating them.
pub const PROVIDED_NAMESPACES: &[&str] = &["flux-system", "kube-system", "default"];

/// The whole-deploy rules over everything a run loaded; `gated` tells whether some plugin gates
/// both the primary and the canary pods of a canaried Deployment.
pub(super) fn lint_whole(all: &[Manifest], gated: bool, out: &mut Vec<Finding>) {
    // namespace-exists: every namespace used is created by the repository (or by Flux itself).
    let created: Vec<&str> = all
        .iter()
        .filter(|m| m.kind() == "Namespace")
        .map(|m| m.name())
        .collect();
    for m in all {
        if let Some(ns) = m.namespace()
            && !created.contains(&ns)
            && !PROVIDED_NAMESPACES.contains(&ns)
        {
            out.push(Finding::error(
                "namespace-exists",
                m,
                "metadata.namespace",
                format!(
                    "namespace `{ns}` is not created by any manifest (nor by Flux or Kubernetes)"
                ),
            ));
        }
    }

    let strict = all.iter().any(|m| {
        m.kind() == "PeerAuthentication"
            && m.namespace() == Some(DEMO_NAMESPACE)
            && m.object.pointer("/spec/selector").is_none()
            && m.object.pointer("/spec/mtls/mode").and_then(Value::as_str) == Some("STRICT")
    });
    if !strict {
        out.push(missing(
            "required-object",
            format!("PeerAuthentication/{DEMO_NAMESPACE}/*"),
            format!(
                "no namespace-wide PeerAuthentication with mtls.mode STRICT in `{DEMO_NAMESPACE}`"
            ),
        ));
    }
    if !gated {
        out.push(missing(
            "wasm-selector",
            "WasmPlugin/*".into(),
            "no WasmPlugin or TrafficExtension selects both the primary and the canary pods of a canaried Deployment".into(),
        ));
    }
    if !all.iter().any(is_canary) || !all.iter().any(is_gate_plugin) {
        out.push(missing(
            "required-object",
            "WasmPlugin+Canary".into(),
            "the repository must have a Canary and a WasmPlugin for it, so the selector check can run".into(),
        ));
    }
}

/// An error about an object that is not there, so no file and no field to name.
fn missing(rule: &'static str, object: String, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        rule,
        source: Default::default(),
        object,
        path: String::new(),
        message,
    }
}
