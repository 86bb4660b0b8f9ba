//! The project's rules for its manifests, beyond what a schema can say. Each rule has a name
//! (shown as `error[<rule>]`) and names the object and field it objects to.
//!
//! Four entry points, by what a rule must see:
//! - per kustomization: [`lint_kustomization`] (`duplicate-object`) and, for one rendered from
//!   files, [`flux_paths`] (`flux-path`);
//! - per object: [`lint_object`], whose `match` sends each kind to its rules;
//! - across every object of a run: [`lint_set`] (the rules relating objects to each other and,
//!   when the run is the whole repository or a rendered stream, the whole-deploy rules);
//! - placeholders: [`placeholders`] in a rendered stream, [`placeholders_in_repository`] in Git.
//!
//! One file per concern:
//!
//! | File | Rules |
//! | --- | --- |
//! | `duplicates.rs` | `duplicate-object` |
//! | `workload.rs` | walks each workload's containers through the next four; `inject-annotation` |
//! | `images.rs` | `image-pinned` |
//! | `resources.rs` | `resources`; across objects, `hpa-cpu-requests` |
//! | `security.rs` | `security-context` and its waivers, `host-network`, `hostpath-readonly` |
//! | `credentials.rs` | `secret-env`, `elastic-password-secret` |
//! | `wasm.rs` | `wasm-plugin`, `wasm-plugin-config` (the filter's own configuration parser accepts `pluginConfig`) |
//! | `charts.rs` | `chart-pinned` (a HelmRelease names an exact chart version) |
//! | `traffic.rs` | `retry-on`, `canary-mesh-gateway` |
//! | `mtls.rs` | `peer-authentication-strict` |
//! | `canary.rs` | across objects: `canary-owns-replicas`, `canary-owns-routing`, `wasm-selector` (the WasmPlugin covers Flagger's primary and canary pods), `canary-selector` (so does every other Istio policy that selects the canaried pods) |
//! | `flux.rs` | across objects: `flux-dependency`, `flux-source`; per kustomization: `flux-path` |
//! | `repository.rs` | the whole deploy: `namespace-exists`, `required-object` (a STRICT PeerAuthentication for `demo`, a WasmPlugin for httpbin), `wasm-selector` when no plugin gates a canaried Deployment at all |
//! | `placeholders.rs` | `placeholder`: an error in a rendered stream, a warning in the repository where the release template puts one |
//! | `objects.rs` | no rule: what the rules read from objects |
//!
//! Exceptions: a workload may carry the annotation [`ALLOW_ANNOTATION`] with a comma-separated
//! list from [`ALLOWABLE`] *and* a non-empty [`REASON_ANNOTATION`]; nothing else can be waived.

mod canary;
mod charts;
mod credentials;
mod duplicates;
mod flux;
mod images;
mod mtls;
mod objects;
mod placeholders;
mod repository;
mod resources;
mod security;
mod traffic;
mod wasm;
mod workload;

pub use canary::{FLAGGER_SELECTOR_LABELS, flagger_primary_labels};
pub use charts::is_exact_version;
pub use duplicates::lint_kustomization;
pub use flux::flux_paths;
pub use images::image_pinned;
pub use mtls::DEMO_NAMESPACE;
pub use placeholders::{
    PLACEHOLDER_PREFIX, PLACEHOLDER_TEXTS, placeholders, placeholders_in_repository,
};
pub use repository::PROVIDED_NAMESPACES;
pub use security::{ALLOW_ANNOTATION, ALLOWABLE, REASON_ANNOTATION};
pub use workload::pod_spec_pointer;

use super::{Finding, Manifest};

/// What a run covers: the whole repository (so required objects must exist) or some paths; and
/// whether the objects come from a YAML stream (`validate -`) rather than from files in a tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct LintOptions {
    pub whole_repository: bool,
    /// A rendered stream: no directory to resolve a Flux `spec.path` in (`flux-path` is skipped),
    /// and every Flux source must be in the stream (`flux-source`), since `up` applies it too.
    pub stream: bool,
}

/// Every rule that looks at one object alone.
pub fn lint_object(m: &Manifest) -> Vec<Finding> {
    let mut out = Vec::new();
    workload::lint(m, &mut out);
    match (m.group(), m.kind()) {
        ("extensions.istio.io", "WasmPlugin") => {
            wasm::lint(m, "spec", m.object.get("spec"), &mut out)
        }
        ("extensions.istio.io", "TrafficExtension") => {
            wasm::lint(m, "spec.wasm", m.object.pointer("/spec/wasm"), &mut out)
        }
        ("helm.toolkit.fluxcd.io", "HelmRelease") => charts::lint_helm_release(m, &mut out),
        ("networking.istio.io", "VirtualService") => traffic::lint_virtual_service(m, &mut out),
        ("flagger.app", "Canary") => traffic::lint_canary(m, &mut out),
        ("security.istio.io", "PeerAuthentication") if m.namespace() == Some(DEMO_NAMESPACE) => {
            mtls::lint_peer_authentication(m, &mut out)
        }
        _ => {}
    }
    out
}

/// Rules that relate objects to each other, over everything a run loaded.
pub fn lint_set(all: &[Manifest], options: LintOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    let gated = canary::lint_canaries(all, &mut out);
    resources::lint_autoscalers(all, &mut out);
    flux::lint_wiring(all, options.stream, &mut out);
    if options.whole_repository {
        repository::lint_whole(all, gated, &mut out);
    }
    out
}
