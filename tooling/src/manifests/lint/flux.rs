//! Flux wiring: `flux-dependency` (`dependsOn` names an object that exists), `flux-source` (a
//! source reference names a source that exists) and, per kustomization rendered from files,
//! `flux-path` (a Kustomization's `spec.path` is a directory with a kustomization). Each broken
//! link is an object that never becomes ready or never reconciles, with nothing to say why.

use super::objects::array;
use crate::manifests::{Finding, Manifest, is_kustomization};
use serde_json::Value;

/// Flux wiring: `dependsOn` names an object that exists (`flux-dependency`), and a source
/// reference names a source that exists (`flux-source`). In the repository, the Kustomizations'
/// GitRepository is exempt: `istio-demo up --source git` generates it from --git-url (and no entry
/// point may contain it, or Flux's self-sync would revert the URL); in a stream (`stream`) it
/// must be there.
pub(super) fn lint_wiring(all: &[Manifest], stream: bool, out: &mut Vec<Finding>) {
    for m in all {
        let group = m.group();
        if group != "kustomize.toolkit.fluxcd.io" && group != "helm.toolkit.fluxcd.io" {
            continue;
        }
        for (i, dep) in array(&m.object, "/spec/dependsOn").iter().enumerate() {
            let name = dep.get("name").and_then(Value::as_str).unwrap_or("");
            let ns = dep
                .get("namespace")
                .and_then(Value::as_str)
                .or(m.namespace());
            let found = all.iter().any(|o| {
                o.group() == group
                    && o.kind() == m.kind()
                    && o.name() == name
                    && o.namespace() == ns
            });
            if !found {
                out.push(Finding::error(
                    "flux-dependency",
                    m,
                    format!("spec.dependsOn[{i}]"),
                    format!("depends on {}/{}/{name}, which no manifest declares: it would never become ready", m.kind(), ns.unwrap_or("")),
                ));
            }
        }
        let (pointer, field) = match m.kind() {
            "Kustomization" => ("/spec/sourceRef", "spec.sourceRef"),
            "HelmRelease" => ("/spec/chart/spec/sourceRef", "spec.chart.spec.sourceRef"),
            _ => continue,
        };
        let Some(source) = m.object.pointer(pointer) else {
            continue;
        };
        let kind = source.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = source.get("name").and_then(Value::as_str).unwrap_or("");
        let ns = source
            .get("namespace")
            .and_then(Value::as_str)
            .or(m.namespace());
        if !stream && m.kind() == "Kustomization" && kind == "GitRepository" {
            continue;
        }
        let found = all.iter().any(|o| {
            o.group() == "source.toolkit.fluxcd.io"
                && o.kind() == kind
                && o.name() == name
                && o.namespace() == ns
        });
        if !found {
            out.push(Finding::error(
                "flux-source",
                m,
                field,
                format!(
                    "reads {kind}/{}/{name}, which no manifest declares: it would never reconcile",
                    ns.unwrap_or("")
                ),
            ));
        }
    }
}

/// `flux-path`: every Flux Kustomization in `manifests` (one kustomization's objects, from files)
/// points at a directory holding a kustomization, looked up from the directory of the file that
/// declares it and each of its ancestors: the source's root is the repository root, whatever the
/// source kind (the OCI artifact `up` pushes has the repository's layout). Runs per kustomization,
/// so every entry point's own self-sync path is checked, not just the first one seen.
pub fn flux_paths(manifests: &[Manifest]) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in manifests {
        if m.group() != "kustomize.toolkit.fluxcd.io" || m.kind() != "Kustomization" {
            continue;
        }
        let path = m
            .object
            .pointer("/spec/path")
            .and_then(Value::as_str)
            .unwrap_or("./");
        let rel = path.trim_start_matches("./").trim_start_matches('/');
        let exists = m
            .source
            .ancestors()
            .skip(1)
            .any(|dir| is_kustomization(&dir.join(rel)));
        if !exists {
            out.push(Finding::error(
                "flux-path",
                m,
                "spec.path",
                format!("`{path}` is not a directory with a kustomization in this repository"),
            ));
        }
    }
    out
}
