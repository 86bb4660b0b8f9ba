//! `chart-pinned`: a HelmRelease names an exact chart version, so Flux installs the chart that was
//! reviewed and never upgrades it on its own.

use crate::manifests::{Finding, Manifest};
use serde_json::Value;

/// An exact semantic version (`1.30.3`, `v1.44.0`, `2.0.0-rc.1`), not a range or wildcard.
pub fn is_exact_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, pre) = v.split_once('-').unwrap_or((v, ""));
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// `chart-pinned` for a HelmRelease that names a chart.
pub(super) fn lint_helm_release(m: &Manifest, out: &mut Vec<Finding>) {
    let version = m
        .object
        .pointer("/spec/chart/spec/version")
        .and_then(Value::as_str);
    if m.object.pointer("/spec/chart").is_some() && !version.is_some_and(is_exact_version) {
        out.push(Finding::error(
            "chart-pinned",
            m,
            "spec.chart.spec.version",
            format!(
                "chart version {} is not pinned: give an exact version such as 1.2.3 (no range, no wildcard)",
                version.map_or("(none)".to_string(), |v| format!("`{v}`"))
            ),
        ));
    }
}
