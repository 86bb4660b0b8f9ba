//! `duplicate-object`: no two objects of one kustomization share apiVersion group, kind,
//! namespace and name. Kustomize refuses exact duplicates itself, but lets through two that differ
//! in apiVersion only, and then one would silently replace the other.

use crate::manifests::{Finding, Manifest, display_path};
use std::collections::HashMap;

/// No two objects share apiVersion group, kind, namespace and name in one kustomization.
pub fn lint_kustomization(manifests: &[Manifest]) -> Vec<Finding> {
    let mut seen: HashMap<(String, String, String, String), &Manifest> = HashMap::new();
    let mut findings = Vec::new();
    for m in manifests {
        let key = (
            m.group().to_string(),
            m.kind().to_string(),
            m.namespace().unwrap_or("").to_string(),
            m.name().to_string(),
        );
        if let Some(first) = seen.get(&key) {
            findings.push(Finding::error(
                "duplicate-object",
                m,
                "metadata.name",
                format!(
                    "duplicate object: {} is also declared in {} (one would silently replace the other)",
                    m.id(),
                    display_path(&first.source)
                ),
            ));
        } else {
            seen.insert(key, m);
        }
    }
    findings
}
