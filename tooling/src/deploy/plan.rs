//! The deployment plan: every object `up` applies, in stages that cannot get the order wrong, and
//! what each stage waits for. Pure: built from rendered objects, checked without a cluster, and
//! printed as one YAML stream by `up --dry-run=client -o yaml`.

use super::registry::Payload;
use super::render::{Profile, SourceKind, Synced};
use super::wait::{Check, Target};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Something a stage does besides applying objects.
#[derive(Debug, Clone)]
pub enum Action {
    /// Push the module and the Flux artifact to the in-cluster registry.
    Push(Box<Payload>),
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: &'static str,
    pub apply: Vec<Value>,
    pub action: Option<Action>,
    pub wait: Vec<Target>,
    /// Drop the discovery cache after the waits (new CRDs).
    pub refresh_discovery: bool,
    /// Namespaces: keep pre-existing ones as the user's.
    pub namespaces: bool,
    pub timeout: Duration,
}

impl Stage {
    fn new(name: &'static str, secs: u64) -> Self {
        Stage {
            name,
            apply: Vec::new(),
            action: None,
            wait: Vec::new(),
            refresh_discovery: false,
            namespaces: false,
            timeout: Duration::from_secs(secs),
        }
    }
}

/// Everything the plan is made from.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub profile: Profile,
    pub source: SourceKind,
    /// Flux's install manifest (empty when Flux is already installed).
    pub flux_install: Vec<Value>,
    /// The registry's objects (`registry/`), with the OCI source only.
    pub registry: Vec<Value>,
    /// The token Secrets.
    pub secrets: Vec<Value>,
    /// What to push, with the OCI source only.
    pub push: Option<Payload>,
    /// The Flux source (OCIRepository or GitRepository) named `istio-demo`.
    pub flux_source: Value,
    /// The entry point rendered: Flux Kustomizations, the self-managing one included.
    pub entry: Vec<Value>,
    /// What each Kustomization syncs.
    pub synced: Vec<Synced>,
}

pub fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}
pub fn group(o: &Value) -> &str {
    o["apiVersion"]
        .as_str()
        .and_then(|a| a.rsplit_once('/'))
        .map_or("", |(g, _)| g)
}
pub fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}
fn is_workload(o: &Value) -> bool {
    group(o) == "apps" && matches!(kind(o), "Deployment" | "StatefulSet" | "DaemonSet")
}
pub fn is_flux_kustomization(o: &Value) -> bool {
    kind(o) == "Kustomization" && group(o) == "kustomize.toolkit.fluxcd.io"
}
fn chart(o: &Value) -> &str {
    o.pointer("/spec/chart/spec/chart")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Orders Flux Kustomizations so that each comes after those it `dependsOn` (same namespace);
/// other objects keep their place, before them. A cycle or a missing dependency keeps the
/// remaining order.
pub fn dependency_order(objects: Vec<&Value>) -> Vec<&Value> {
    let (ks, mut rest): (Vec<&Value>, Vec<&Value>) =
        objects.into_iter().partition(|o| is_flux_kustomization(o));
    let names: BTreeSet<&str> = ks.iter().map(|o| name(o)).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut ordered = Vec::new();
    let mut pending = ks;
    while !pending.is_empty() {
        let ready = |o: &&Value| {
            o.pointer("/spec/dependsOn")
                .and_then(Value::as_array)
                .is_none_or(|deps| {
                    deps.iter()
                        .filter_map(|d| d["name"].as_str())
                        .all(|d| placed.contains(d) || !names.contains(d))
                })
        };
        let (now, later): (Vec<&Value>, Vec<&Value>) = pending.into_iter().partition(ready);
        if now.is_empty() {
            ordered.extend(later);
            break;
        }
        placed.extend(now.iter().map(|o| name(o)));
        ordered.extend(now);
        pending = later;
    }
    rest.extend(ordered);
    rest
}

/// Builds the stages in order.
pub fn plan(inputs: &Inputs, timeout: Option<Duration>) -> Vec<Stage> {
    let mut crds = Stage::new("CRDs", 120);
    crds.refresh_discovery = true;
    let mut namespaces = Stage::new("namespaces", 60);
    namespaces.namespaces = true;
    let mut secrets = Stage::new("token Secrets", 60);
    let mut registry = Stage::new("in-cluster registry", 300);
    let mut push = Stage::new("push the module and the manifests", 120);
    let mut flux = Stage::new("Flux controllers", 300);
    let mut sources = Stage::new("Flux source and Kustomizations", 900);
    let mut istio = Stage::new("Istio control plane", 600);
    let mut monitoring = Stage::new("monitoring", 600);
    let mut flagger = Stage::new("Flagger", 300);
    let mut apps = Stage::new("apps", 300);
    let mut canary = Stage::new("Canary", 600);
    let mut elk = Stage::new("ELK", 900);

    let mut seen_ns = BTreeSet::new();
    let mut seen_crd = BTreeSet::new();
    let everything = inputs
        .flux_install
        .iter()
        .chain(&inputs.registry)
        .chain(&inputs.entry)
        .chain(inputs.synced.iter().flat_map(|s| &s.objects));
    for o in everything {
        if kind(o) == "CustomResourceDefinition" && seen_crd.insert(name(o).to_string()) {
            crds.wait.push(Target::of(o, Check::Established));
            crds.apply.push(o.clone());
        } else if kind(o) == "Namespace"
            && group(o).is_empty()
            && seen_ns.insert(name(o).to_string())
        {
            namespaces.apply.push(o.clone());
        }
    }
    let not_crd_or_ns = |o: &&Value| !matches!(kind(o), "CustomResourceDefinition" | "Namespace");
    for o in inputs.flux_install.iter().filter(not_crd_or_ns) {
        if is_workload(o) {
            flux.wait.push(Target::of(o, Check::Workload));
        }
        flux.apply.push(o.clone());
    }
    secrets.apply.extend(inputs.secrets.iter().cloned());
    for o in inputs.registry.iter().filter(not_crd_or_ns) {
        if is_workload(o) {
            registry.wait.push(Target::of(o, Check::Workload));
        }
        registry.apply.push(o.clone());
    }
    push.action = inputs.push.clone().map(|p| Action::Push(Box::new(p)));

    // The source first, then the Kustomizations, waited for in dependsOn order.
    sources
        .wait
        .push(Target::of(&inputs.flux_source, Check::Ready));
    sources.apply.push(inputs.flux_source.clone());
    let entry: Vec<&Value> = inputs.entry.iter().filter(not_crd_or_ns).collect();
    for o in dependency_order(entry) {
        if is_flux_kustomization(o) {
            sources.wait.push(Target::of(o, Check::Ready));
        }
        sources.apply.push(o.clone());
    }
    for s in &inputs.synced {
        let path = s.path.trim_start_matches("./").trim_end_matches('/');
        for o in &s.objects {
            if kind(o) == "HelmRelease" {
                let stage = match chart(o) {
                    "base" | "istiod" | "gateway" | "cni" | "ztunnel" => &mut istio,
                    c if c.contains("flagger") || c == "loadtester" => &mut flagger,
                    _ if path.starts_with("elk") => &mut elk,
                    _ => &mut monitoring,
                };
                stage.wait.push(Target::of(o, Check::Ready));
            } else if kind(o) == "Canary" {
                canary.wait.push(Target::of(o, Check::CanaryInitialized));
            } else if is_workload(o) {
                let stage = if path.starts_with("elk") {
                    &mut elk
                } else if path.starts_with("flagger/system") {
                    &mut flagger
                } else if path.starts_with("monitoring") {
                    &mut monitoring
                } else if path.starts_with("istio/system") {
                    &mut istio
                } else {
                    &mut apps
                };
                stage.wait.push(Target::of(o, Check::Workload));
            }
        }
    }
    let mut stages = vec![
        crds, namespaces, secrets, registry, push, flux, sources, istio, monitoring, flagger, apps,
        canary,
    ];
    if inputs.profile == Profile::Full {
        stages.push(elk);
    }
    if let Some(t) = timeout {
        for s in &mut stages {
            s.timeout = t;
        }
    }
    stages
}

/// Every object of the plan in apply order (what `up --dry-run=client -o yaml` prints).
pub fn objects(stages: &[Stage]) -> impl Iterator<Item = &Value> {
    stages.iter().flat_map(|s| &s.apply)
}

/// What Flux applies after `up`: each synced path's objects, in the dependsOn order of the
/// Kustomizations that sync them.
pub fn synced_in_order(inputs: &Inputs) -> Vec<&Synced> {
    let ks: Vec<&Value> = inputs
        .entry
        .iter()
        .filter(|o| is_flux_kustomization(o))
        .collect();
    let mut ordered: Vec<&Synced> = Vec::new();
    for k in dependency_order(ks) {
        let path = k
            .pointer("/spec/path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(s) = inputs.synced.iter().find(|s| s.path == path)
            && !ordered.iter().any(|o| std::ptr::eq(*o, s))
        {
            ordered.push(s);
        }
    }
    for s in &inputs.synced {
        if !ordered.iter().any(|o| std::ptr::eq(*o, s)) {
            ordered.push(s);
        }
    }
    ordered
}

/// Writes the plan as one YAML stream: a comment line per stage, then its objects; then what Flux
/// applies from each synced path (the WasmPlugin with its `oci://…@sha256:` reference among them).
pub fn write_yaml(
    stages: &[Stage],
    synced: &[&Synced],
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let mut first = true;
    let mut doc = |o: &Value, out: &mut dyn std::io::Write| -> anyhow::Result<()> {
        if !first {
            writeln!(out, "---")?;
        }
        first = false;
        write!(out, "{}", serde_yaml_ng::to_string(o)?)?;
        Ok(())
    };
    for s in stages {
        if let Some(Action::Push(p)) = &s.action {
            let manifests = p.manifests.as_ref().map_or("none", |m| m.digest.as_str());
            writeln!(
                out,
                "# stage: {} (module {}, manifests {manifests})",
                s.name, p.module_digest
            )?;
        } else {
            writeln!(out, "# stage: {}", s.name)?;
        }
        for o in &s.apply {
            doc(o, out)?;
        }
    }
    // Namespaces and CRDs `up` applied itself are printed once, where `up` applies them.
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["apiVersion"].as_str().unwrap_or_default(),
            crate::cluster::object_id(o)
        )
    };
    let printed: BTreeSet<String> = objects(stages).map(key).collect();
    for s in synced {
        writeln!(out, "# applied by Flux from {}", s.path)?;
        for o in s.objects.iter().filter(|o| !printed.contains(&key(o))) {
            doc(o, out)?;
        }
    }
    Ok(())
}
