//! What the rules read from objects, shared among them: arrays and label maps, an object by kind
//! and name, the gate's plugins, and a container as the container rules see it. No rule lives
//! here.

use crate::manifests::{Finding, Manifest};
use serde_json::Value;
use std::collections::BTreeMap;

/// The array at `pointer` in `v`, or an empty slice when there is none.
pub(super) fn array<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A label map (a selector's `matchLabels`, a pod template's labels); non-string values are skipped.
pub(super) fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// True when pods labelled `labels` match every pair of `selector`.
pub(super) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The object of `kind` named `name` in namespace `ns`, among everything a run loaded.
pub(super) fn find<'a>(
    all: &'a [Manifest],
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> Option<&'a Manifest> {
    all.iter()
        .find(|m| m.kind() == kind && m.namespace() == ns && m.name() == name)
}

/// A WasmPlugin or a TrafficExtension: the two kinds that deploy the gate.
pub(super) fn is_gate_plugin(m: &Manifest) -> bool {
    m.group() == "extensions.istio.io" && matches!(m.kind(), "WasmPlugin" | "TrafficExtension")
}

/// A Flagger Canary.
pub(super) fn is_canary(m: &Manifest) -> bool {
    m.group() == "flagger.app" && m.kind() == "Canary"
}

/// One container of a workload (an init container too), as each container rule sees it.
pub(super) struct Container<'a> {
    /// The workload that declares it.
    pub manifest: &'a Manifest,
    /// Its field path, e.g. `spec.template.spec.containers[0]`.
    pub at: String,
    /// Its `name` (`?` when missing).
    pub name: &'a str,
    /// Its `image` (empty when missing).
    pub image: &'a str,
    /// The container itself.
    pub spec: &'a Value,
}

impl Container<'_> {
    /// An error of `rule` at `field` below the container (e.g. `image`, `securityContext.privileged`).
    pub fn error(&self, rule: &'static str, field: &str, message: String) -> Finding {
        Finding::error(rule, self.manifest, format!("{}.{field}", self.at), message)
    }
}
