//! What a Flagger Canary owns, across every object of a run: `canary-owns-replicas` (old bug 3:
//! the HPA, through Flagger, owns the replica count), `canary-owns-routing` (Flagger generates the
//! VirtualService and DestinationRules of the canaried service), and that every Istio policy
//! with a workload selector treats primary and canary pods alike: `wasm-selector` for the gate's
//! plugin, `canary-selector` for every other policy.

use super::objects::{array, find, is_canary, labels_of, selects};
use crate::manifests::{Finding, Manifest};
use serde_json::Value;
use std::collections::BTreeMap;

/// Label keys Flagger rewrites on primary pods (its `-selector-labels` default), in its order.
pub const FLAGGER_SELECTOR_LABELS: &[&str] = &["app", "name", "app.kubernetes.io/name"];

/// The pod labels of Flagger's primary copy of a Deployment: the template's labels, with the
/// value of the first of [`FLAGGER_SELECTOR_LABELS`] found in the Deployment's selector
/// rewritten to `<value>-primary`, and without Flux's `*toolkit.fluxcd.io*` labels (as Flagger's
/// `makePrimaryLabels` does). Returns the rewritten key too.
pub fn flagger_primary_labels(deployment: &Manifest) -> (BTreeMap<String, String>, Option<String>) {
    let mut labels = labels_of(deployment.object.pointer("/spec/template/metadata/labels"));
    // Flagger also drops Flux's own labels (keys containing `toolkit.fluxcd.io`) from primary pods.
    labels.retain(|k, _| !k.contains("toolkit.fluxcd.io"));
    let selector = labels_of(deployment.object.pointer("/spec/selector/matchLabels"));
    let key = FLAGGER_SELECTOR_LABELS
        .iter()
        .find(|k| selector.contains_key(**k))
        .map(|k| k.to_string());
    if let Some(k) = &key
        && let Some(v) = selector.get(k)
    {
        labels.insert(k.clone(), format!("{v}-primary"));
    }
    (labels, key)
}

/// The canary rules over everything a run loaded. Returns whether some WasmPlugin or
/// TrafficExtension gates both the primary and the canary pods of a canaried Deployment.
pub(super) fn lint_canaries(all: &[Manifest], out: &mut Vec<Finding>) -> bool {
    let mut gated = false;
    for canary in all.iter().filter(|m| is_canary(m)) {
        let target = canary
            .object
            .pointer("/spec/targetRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(deployment) = find(all, "Deployment", canary.namespace(), target) else {
            continue;
        };
        // canary-owns-replicas (old bug 3): the HPA, through Flagger, owns the replica count.
        if deployment.object.pointer("/spec/replicas").is_some() {
            out.push(Finding::error(
                "canary-owns-replicas",
                deployment,
                "spec.replicas",
                format!("{} is canaried by {}: leave `replicas` out (the HPA owns it), or Flux and Flagger fight over it", deployment.id(), canary.id()),
            ));
        }
        owns_routing(all, canary, target, out);
        gated |= selectors(all, canary, deployment, out);
    }
    gated
}

/// canary-owns-routing: Flagger generates the VirtualService and DestinationRules.
fn owns_routing(all: &[Manifest], canary: &Manifest, target: &str, out: &mut Vec<Finding>) {
    let service = canary
        .object
        .pointer("/spec/service/name")
        .and_then(Value::as_str)
        .unwrap_or(target);
    let ns = canary.namespace().unwrap_or("default");
    let hosts = [
        service.to_string(),
        format!("{service}.{ns}"),
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}.svc.cluster.local"),
    ];
    for m in all.iter().filter(|m| m.group() == "networking.istio.io") {
        let claimed = match m.kind() {
            "VirtualService" => {
                array(&m.object, "/spec/hosts")
                    .iter()
                    .any(|h| h.as_str().is_some_and(|h| hosts.contains(&h.to_string())))
                    && m.namespace() == canary.namespace()
            }
            "DestinationRule" => m
                .object
                .pointer("/spec/host")
                .and_then(Value::as_str)
                .is_some_and(|h| {
                    hosts[1..].contains(&h.to_string())
                        || (h == service && m.namespace() == canary.namespace())
                }),
            _ => false,
        };
        if claimed {
            out.push(Finding::error(
                "canary-owns-routing",
                m,
                if m.kind() == "VirtualService" { "spec.hosts" } else { "spec.host" },
                format!("{} routes the service canaried by {}: put timeouts, retries and traffic policy in the Canary's spec.service", m.id(), canary.id()),
            ));
        }
    }
}

/// wasm-selector: the filter must gate the primary pods as well as the canary pods of
/// `deployment`; canary-selector: so must every other Istio policy that selects them. Returns
/// whether a plugin gates both.
fn selectors(
    all: &[Manifest],
    canary: &Manifest,
    deployment: &Manifest,
    out: &mut Vec<Finding>,
) -> bool {
    let mut gated = false;
    let canary_labels = labels_of(deployment.object.pointer("/spec/template/metadata/labels"));
    let (primary_labels, rewritten) = flagger_primary_labels(deployment);
    // Every Istio policy with a workload selector must treat primary and canary pods alike:
    // a selector on the label Flagger rewrites covers only the canary pods.
    for object in all.iter().filter(|o| o.namespace() == canary.namespace()) {
        let (pointer, field) = match (object.group(), object.kind()) {
            ("extensions.istio.io", "WasmPlugin" | "TrafficExtension")
            | (
                "security.istio.io",
                "AuthorizationPolicy" | "PeerAuthentication" | "RequestAuthentication",
            )
            | ("telemetry.istio.io", "Telemetry") => {
                ("/spec/selector/matchLabels", "spec.selector.matchLabels")
            }
            ("networking.istio.io", "Sidecar" | "EnvoyFilter") => (
                "/spec/workloadSelector/labels",
                "spec.workloadSelector.labels",
            ),
            _ => continue,
        };
        let Some(selector) = object.object.pointer(pointer) else {
            continue;
        };
        let selector = labels_of(Some(selector));
        if !selects(&selector, &canary_labels) {
            continue; // selects some other workload
        }
        let is_plugin = object.group() == "extensions.istio.io";
        let covers_primary = selects(&selector, &primary_labels);
        gated |= is_plugin && covers_primary;
        if !covers_primary {
            let key = rewritten.clone().unwrap_or_default();
            let consequence = if is_plugin {
                "so production traffic would be ungated"
            } else {
                "so the primary (production) pods would not get this policy"
            };
            out.push(Finding::error(
                if is_plugin { "wasm-selector" } else { "canary-selector" },
                object,
                field,
                format!(
                    "selects the canary pods of {} but not the primary ones: Flagger rewrites label `{key}` to `{}` on primary pods, {consequence}; select on a label Flagger leaves alone",
                    deployment.id(),
                    primary_labels.get(&key).cloned().unwrap_or_default()
                ),
            ));
        }
    }
    gated
}
