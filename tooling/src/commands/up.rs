//! `istio-demo up`: preflight, then a staged server-side apply that cannot get the order wrong:
//! CRDs (wait Established, refresh discovery), namespaces (labelled before any workload), Flux
//! controllers, Flux sources and Kustomizations, then waits on everything Flux deploys.

use crate::cluster::{
    self, Check, Cluster, KubeArgs, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Outcome, Target,
};
use crate::manifests;
use anyhow::{Context, Result, bail};
use clap::Args;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The Flux release `up` installs.
pub const FLUX_VERSION: &str = "v2.9.0";
/// Its install manifest. No checksum is pinned in the source: it could not be verified where this
/// tool was written, so `up` requires `--flux-sha256` (checked before anything is applied) or a
/// local `--flux-manifest` file.
pub const FLUX_INSTALL_URL: &str =
    "https://github.com/fluxcd/flux2/releases/download/v2.9.0/install.yaml";
/// Bound on the downloaded manifest.
const FLUX_MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Args)]
#[command(
    about = "Deploy the whole demo: preflight, CRDs, namespaces, Flux and its sources, then wait for everything",
    long_about = "Checks the cluster first (API server version, RBAC via SelfSubjectAccessReview, which of Istio, \
Flux and Flagger are installed, whether a load balancer exists), then applies in stages with server-side apply and \
one field manager (istio-demo, forced): 1 CRDs, waiting until Established and refreshing discovery; 2 namespaces, \
labelled for sidecar injection before any workload exists; 3 the Flux controllers (from --flux-manifest FILE, or \
the pinned Flux release downloaded and checked against --flux-sha256); 4 Flux's GitRepository and Kustomizations \
from flux/ (URL and branch from --git-url/--git-branch, default this repository's origin and branch); then waits on \
the Flux Kustomizations, the Istio control plane, monitoring, Flagger, the apps, the Canary (Initialized) and ELK, \
each with its own timeout. A failed wait prints the object's conditions and recent Events and exits 1. \
--dry-run sends every write as a server-side dry run (dryRun=All), prints what would change, and writes nothing."
)]
pub struct UpArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Server-side dry run: print the plan and what would change; write nothing, wait for nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Timeout of every wait stage (e.g. 90s, 10m); default: each stage's own (1m to 15m).
    #[arg(long, value_name = "DURATION", value_parser = cluster::parse_duration)]
    pub timeout: Option<Duration>,
    /// Flux's install.yaml from a local file (clusters without internet access).
    #[arg(long, value_name = "FILE")]
    pub flux_manifest: Option<PathBuf>,
    /// Expected SHA-256 (hex) of Flux's install.yaml: required to download it; checks --flux-manifest too.
    #[arg(long, value_name = "HEX")]
    pub flux_sha256: Option<String>,
    /// Git URL Flux syncs from (default: this repository's `origin` remote).
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,
    /// Branch Flux syncs (default: the checked-out branch).
    #[arg(long, value_name = "BRANCH")]
    pub git_branch: Option<String>,
    /// The repository holding flux/ and the manifest directories (default: found from the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: &'static str,
    pub apply: Vec<Value>,
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
            wait: Vec::new(),
            refresh_discovery: false,
            namespaces: false,
            timeout: Duration::from_secs(secs),
        }
    }
}

/// The objects a Flux Kustomization syncs: its `spec.path` and the rendered objects there.
#[derive(Debug, Clone)]
pub struct Synced {
    pub path: String,
    pub objects: Vec<Value>,
}

/// Everything the plan is made from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Flux's install.yaml (empty when Flux is already installed and no manifest was given).
    pub flux_install: Vec<Value>,
    /// flux/ rendered.
    pub flux_dir: Vec<Value>,
    /// What each Flux Kustomization of flux/ will apply.
    pub synced: Vec<Synced>,
    pub git_url: Option<String>,
    pub git_branch: Option<String>,
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}
fn group(o: &Value) -> &str {
    o["apiVersion"]
        .as_str()
        .and_then(|a| a.rsplit_once('/'))
        .map_or("", |(g, _)| g)
}
fn is_workload(o: &Value) -> bool {
    group(o) == "apps" && matches!(kind(o), "Deployment" | "StatefulSet" | "DaemonSet")
}
fn chart(o: &Value) -> &str {
    o.pointer("/spec/chart/spec/chart")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Orders Flux Kustomizations so that each comes after those it `dependsOn` (same namespace);
/// other objects keep their place. A cycle or a missing dependency keeps the remaining order.
pub fn dependency_order(objects: Vec<&Value>) -> Vec<&Value> {
    let is_ks = |o: &Value| kind(o) == "Kustomization" && group(o) == "kustomize.toolkit.fluxcd.io";
    let name = |o: &Value| {
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (ks, mut rest): (Vec<&Value>, Vec<&Value>) = objects.into_iter().partition(|o| is_ks(o));
    let names: std::collections::BTreeSet<String> = ks.iter().map(|o| name(o)).collect();
    let mut placed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
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

/// Builds the stages in order. Pure: the tests check it without a cluster.
pub fn plan(inputs: &Inputs, timeout: Option<Duration>) -> Vec<Stage> {
    let mut crds = Stage::new("CRDs", 120);
    crds.refresh_discovery = true;
    let mut namespaces = Stage::new("namespaces", 60);
    namespaces.namespaces = true;
    let mut flux = Stage::new("Flux controllers", 300);
    let mut sources = Stage::new("Flux sources", 180);
    let mut kustomizations = Stage::new("Flux Kustomizations", 900);
    let mut istio = Stage::new("Istio control plane", 600);
    let mut monitoring = Stage::new("monitoring", 600);
    let mut flagger = Stage::new("Flagger", 300);
    let mut apps = Stage::new("apps", 300);
    let mut canary = Stage::new("Canary", 600);
    let mut elk = Stage::new("ELK", 900);

    let mut seen_ns = std::collections::BTreeSet::new();
    let mut seen_crd = std::collections::BTreeSet::new();
    let all_sources = inputs
        .flux_install
        .iter()
        .chain(&inputs.flux_dir)
        .chain(inputs.synced.iter().flat_map(|s| &s.objects));
    for o in all_sources {
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if kind(o) == "CustomResourceDefinition" && seen_crd.insert(name.clone()) {
            crds.wait.push(Target::of(o, Check::Established));
            crds.apply.push(o.clone());
        } else if kind(o) == "Namespace" && group(o).is_empty() && seen_ns.insert(name) {
            namespaces.apply.push(o.clone());
        }
    }
    for o in inputs
        .flux_install
        .iter()
        .filter(|o| !matches!(kind(o), "CustomResourceDefinition" | "Namespace"))
    {
        if is_workload(o) {
            flux.wait.push(Target::of(o, Check::Workload));
        }
        flux.apply.push(o.clone());
    }
    // Sources first, then what uses them; Kustomizations waited for in dependsOn order.
    let mut flux_objects: Vec<&Value> = inputs
        .flux_dir
        .iter()
        .filter(|o| !matches!(kind(o), "CustomResourceDefinition" | "Namespace"))
        .collect();
    flux_objects.sort_by_key(|o| group(o) != "source.toolkit.fluxcd.io");
    let flux_objects = dependency_order(flux_objects);
    for o in flux_objects {
        let mut o = o.clone();
        if kind(&o) == "GitRepository" {
            if let Some(url) = &inputs.git_url {
                o["spec"]["url"] = json!(url);
            }
            if let Some(branch) = &inputs.git_branch {
                o["spec"]["ref"] = json!({"branch": branch});
            }
        }
        if group(&o) == "source.toolkit.fluxcd.io" {
            sources.wait.push(Target::of(&o, Check::Ready));
        }
        if group(&o) == "kustomize.toolkit.fluxcd.io" && kind(&o) == "Kustomization" {
            kustomizations.wait.push(Target::of(&o, Check::Ready));
        }
        sources.apply.push(o);
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
        crds,
        namespaces,
        flux,
        sources,
        kustomizations,
        istio,
        monitoring,
        flagger,
        apps,
        canary,
        elk,
    ];
    if let Some(t) = timeout {
        for s in &mut stages {
            s.timeout = t;
        }
    }
    stages
}

/// Reads and checks Flux's install manifest: a local file, or the pinned release checked against `sha256`.
pub fn load_flux_manifest(file: Option<&Path>, sha256: Option<&str>) -> Result<Vec<Value>> {
    let want = sha256.map(|s| s.trim().to_ascii_lowercase());
    if let Some(w) = &want
        && (w.len() != 64 || !w.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        bail!("--flux-sha256: expected 64 hex digits");
    }
    let (bytes, source) = match file {
        Some(f) => (
            std::fs::read(f)
                .with_context(|| format!("cannot read --flux-manifest {}", f.display()))?,
            f.to_path_buf(),
        ),
        None => {
            let Some(_) = &want else {
                bail!(
                    "Flux is not installed and no Flux manifest was given: pass --flux-manifest FILE (Flux {FLUX_VERSION}'s install.yaml, \
                     from {FLUX_INSTALL_URL}) or --flux-sha256 HEX (its SHA-256, which you verified) to download and check it"
                );
            };
            let mut resp = ureq::get(FLUX_INSTALL_URL)
                .call()
                .with_context(|| format!("downloading {FLUX_INSTALL_URL}"))?;
            let body = resp
                .body_mut()
                .with_config()
                .limit(FLUX_MAX_BYTES)
                .read_to_vec()
                .context("reading Flux's install.yaml")?;
            (body, PathBuf::from(FLUX_INSTALL_URL))
        }
    };
    if let Some(w) = &want {
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if &got != w {
            bail!(
                "{}: SHA-256 is {got}, expected {w}: refusing to apply it",
                source.display()
            );
        }
    }
    let text =
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", source.display()))?;
    let objects: Vec<Value> = manifests::parse_documents(&text, &source)?
        .into_iter()
        .map(|m| m.object)
        .collect();
    let has_crd = objects.iter().any(|o| {
        kind(o) == "CustomResourceDefinition" && o["spec"]["group"] == "kustomize.toolkit.fluxcd.io"
    });
    let has_ns = objects
        .iter()
        .any(|o| kind(o) == "Namespace" && o["metadata"]["name"] == "flux-system");
    if !has_crd || !has_ns {
        bail!(
            "{}: does not look like Flux's install.yaml (needs the kustomize.toolkit.fluxcd.io CRDs and the flux-system Namespace)",
            source.display()
        );
    }
    Ok(objects)
}

/// `git@host:org/repo.git` becomes `https://host/org/repo.git` (Flux needs a secret for SSH).
pub fn https_url(remote: &str) -> String {
    let r = remote.trim();
    if let Some(rest) = r.strip_prefix("git@")
        && let Some((host, path)) = rest.split_once(':')
    {
        return format!("https://{host}/{path}");
    }
    r.to_string()
}

fn git(repo: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty() && s != "HEAD")
}

/// Renders flux/ and every path its Kustomizations sync.
pub fn render_repo(repo: &Path) -> Result<(Vec<Value>, Vec<Synced>)> {
    let flux_dir: Vec<Value> = manifests::render(&repo.join("flux"))?
        .into_iter()
        .map(|m| m.object)
        .collect();
    let mut synced = Vec::new();
    for k in flux_dir
        .iter()
        .filter(|o| kind(o) == "Kustomization" && group(o) == "kustomize.toolkit.fluxcd.io")
    {
        let Some(path) = k.pointer("/spec/path").and_then(Value::as_str) else {
            continue;
        };
        let dir = repo.join(path.trim_start_matches("./"));
        let objects = manifests::render(&dir)?
            .into_iter()
            .map(|m| m.object)
            .collect();
        synced.push(Synced {
            path: path.to_string(),
            objects,
        });
    }
    Ok((flux_dir, synced))
}

/// What preflight found.
#[derive(Debug, Default)]
pub struct Preflight {
    pub version: String,
    pub denied: Vec<String>,
    pub flux: Option<String>,
    pub istio: Option<String>,
    pub flagger: Option<String>,
    pub load_balancer: Option<String>,
}

/// RBAC `up` needs, checked with SelfSubjectAccessReview: (verb, group, resource).
pub const REQUIRED_ACCESS: &[(&str, &str, &str)] = &[
    (
        "create",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ),
    ("create", "", "namespaces"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
];

/// CRDs that show each product is installed.
pub const PRODUCT_CRDS: &[(&str, &str)] = &[
    ("Flux", "kustomizations.kustomize.toolkit.fluxcd.io"),
    ("Istio", "wasmplugins.extensions.istio.io"),
    ("Flagger", "canaries.flagger.app"),
];

/// Where each product's controller runs: a label selector over all namespaces.
pub const PRODUCT_CONTROLLERS: &[(&str, &str)] = &[
    ("Flux", "app=source-controller"),
    ("Istio", "app=istiod"),
    ("Flagger", "app.kubernetes.io/name=flagger"),
];

/// The tag of the product's controller image, e.g. `1.30.3` from `docker.io/istio/pilot:1.30.3`.
pub fn image_tag(image: &str) -> Option<String> {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, t)| t.to_string())
}

async fn controller_version(cluster: &Cluster, product: &str) -> Option<String> {
    let selector = PRODUCT_CONTROLLERS.iter().find(|(p, _)| *p == product)?.1;
    let deployments = cluster
        .list("apps/v1", "Deployment", None, Some(selector))
        .await
        .ok()?;
    let image = deployments
        .first()?
        .pointer("/spec/template/spec/containers/0/image")?
        .as_str()?
        .to_string();
    image_tag(&image).map(|t| format!("{t}, from the {selector} image"))
}

pub async fn preflight(cluster: &Cluster, out: &mut impl Write) -> Result<Preflight> {
    let mut p = Preflight::default();
    let v = cluster
        .client
        .apiserver_version()
        .await
        .context("the API server is not reachable")?;
    p.version = v.git_version.clone();
    let minor: u32 = v.minor.trim_end_matches('+').parse().unwrap_or(0);
    writeln!(out, "preflight: API server {} reachable", v.git_version)?;
    if !(33..=35).contains(&minor) {
        writeln!(
            out,
            "preflight: warning: Kubernetes 1.{minor} is outside the tested range 1.33-1.35"
        )?;
    }
    let ssar: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    for (verb, group, resource) in REQUIRED_ACCESS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = ssar
            .create(&PostParams::default(), &review)
            .await
            .context("SelfSubjectAccessReview")?;
        let allowed = r.status.as_ref().is_some_and(|s| s.allowed);
        if !allowed {
            p.denied.push(format!(
                "{verb} {resource}{}",
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                }
            ));
        }
    }
    if p.denied.is_empty() {
        writeln!(
            out,
            "preflight: RBAC ok (can create CRDs, namespaces and cluster role bindings)"
        )?;
    } else {
        writeln!(
            out,
            "preflight: RBAC: not allowed to {}",
            p.denied.join(", ")
        )?;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    for (product, crd) in PRODUCT_CRDS {
        let found = crds
            .get_opt(crd)
            .await
            .with_context(|| format!("reading CRD {crd}"))?;
        let status = match found {
            None => None,
            Some(c) => {
                let label = c
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/version").cloned());
                Some(match label {
                    Some(v) => v,
                    None => controller_version(cluster, product)
                        .await
                        .unwrap_or_else(|| "version unknown".into()),
                })
            }
        };
        writeln!(
            out,
            "preflight: {product}: {}",
            status
                .as_deref()
                .map(|v| format!("installed ({v})"))
                .unwrap_or_else(|| "not installed".into())
        )?;
        match *product {
            "Flux" => p.flux = status,
            "Istio" => p.istio = status,
            _ => p.flagger = status,
        }
    }
    let services: Api<Service> = Api::all(cluster.client.clone());
    let lbs = services
        .list(&ListParams::default())
        .await
        .context("listing services")?;
    p.load_balancer = lbs.items.iter().find_map(|s| {
        let ingress = s
            .status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?;
        let addr = ingress.ip.clone().or_else(|| ingress.hostname.clone())?;
        Some(format!(
            "{}/{} has {addr}",
            s.metadata.namespace.as_deref().unwrap_or("?"),
            s.metadata.name.as_deref().unwrap_or("?")
        ))
    });
    match &p.load_balancer {
        Some(lb) => writeln!(out, "preflight: load balancer: yes ({lb})")?,
        None => writeln!(
            out,
            "preflight: load balancer: none seen (no LoadBalancer Service has an address); on kind use \
             `kubectl -n istio-ingress port-forward svc/istio-ingressgateway 8080:80`"
        )?,
    }
    Ok(p)
}

fn elapsed(start: Instant) -> String {
    format!("{:.1}s", start.elapsed().as_secs_f64())
}

/// Applies a namespace: ours get the managed-by label; one that existed without it stays the user's.
async fn apply_namespace(cluster: &Cluster, ns: &Value, out: &mut impl Write) -> Result<()> {
    let name = ns["metadata"]["name"].as_str().unwrap_or_default();
    let existing = cluster.get("v1", "Namespace", None, name).await?;
    let users = existing.as_ref().is_some_and(|e| {
        e.pointer(&format!(
            "/metadata/labels/{}",
            MANAGED_BY_LABEL.replace('/', "~1")
        ))
        .and_then(Value::as_str)
            != Some(MANAGED_BY_VALUE)
    });
    let mut obj = ns.clone();
    if users {
        // Flux must never garbage-collect a namespace the user had before.
        obj["metadata"]["annotations"][crate::commands::down::FLUX_PRUNE_ANNOTATION] =
            json!("disabled");
    } else {
        obj["metadata"]["labels"][MANAGED_BY_LABEL] = json!(MANAGED_BY_VALUE);
    }
    let outcome = cluster.apply(&obj).await?;
    let note = if users {
        " (existed before: stays yours, `down` keeps it)"
    } else {
        ""
    };
    writeln!(
        out,
        "  {} {}{note}",
        verb(cluster, &outcome),
        cluster::object_id(&obj)
    )?;
    Ok(())
}

fn verb(cluster: &Cluster, o: &Outcome) -> String {
    if cluster.dry_run {
        format!("would be {o}:")
    } else {
        format!("{o}:")
    }
}

/// Runs the stages; returns an error after printing the failure.
pub async fn run_stages(cluster: &Cluster, stages: &[Stage], out: &mut impl Write) -> Result<()> {
    let total = stages.len();
    for (i, stage) in stages.iter().enumerate() {
        let start = Instant::now();
        writeln!(out, "[{}/{total}] {}", i + 1, stage.name)?;
        if stage.apply.is_empty() && stage.wait.is_empty() {
            writeln!(out, "  nothing to do")?;
            continue;
        }
        for o in &stage.apply {
            if stage.namespaces {
                apply_namespace(cluster, o, out).await?;
            } else {
                let outcome = cluster.apply(o).await?;
                writeln!(
                    out,
                    "  {} {}",
                    verb(cluster, &outcome),
                    cluster::object_id(o)
                )?;
            }
        }
        for t in &stage.wait {
            if cluster.dry_run {
                writeln!(
                    out,
                    "  would wait for {} ({:?}, timeout {}s)",
                    t.id(),
                    t.check,
                    stage.timeout.as_secs()
                )?;
                continue;
            }
            let t0 = Instant::now();
            writeln!(
                out,
                "  waiting for {} (up to {}s)...",
                t.id(),
                stage.timeout.as_secs()
            )?;
            out.flush()?;
            match crate::deploy::wait::wait(cluster, t, stage.timeout).await {
                Ok(()) => writeln!(out, "  ready: {} ({})", t.id(), elapsed(t0))?,
                Err(f) => {
                    writeln!(out, "  FAILED: {f}")?;
                    bail!("stage {} failed: {} is not ready", stage.name, t.id());
                }
            }
        }
        if stage.refresh_discovery {
            cluster.refresh_discovery();
            writeln!(out, "  discovery refreshed")?;
        }
        writeln!(out, "  done in {}", elapsed(start))?;
    }
    Ok(())
}

/// Preflight, then the stages.
pub async fn run_with(
    cluster: &Cluster,
    inputs: Inputs,
    timeout: Option<Duration>,
    out: &mut impl Write,
) -> Result<()> {
    let pre = preflight(cluster, out).await?;
    if !pre.denied.is_empty() {
        bail!(
            "missing permissions: {} (use a cluster-admin context)",
            pre.denied.join(", ")
        );
    }
    let stages = plan(&inputs, timeout);
    if cluster.dry_run {
        writeln!(out, "plan (server-side dry run: nothing is written):")?;
    }
    run_stages(cluster, &stages, out).await?;
    writeln!(
        out,
        "{}",
        if cluster.dry_run {
            "dry run complete: nothing was changed"
        } else {
            "the demo is up"
        }
    )?;
    Ok(())
}

async fn run_async(args: &UpArgs) -> Result<()> {
    let repo = args.repo.clone().unwrap_or_else(manifests::repo_root);
    let (flux_dir, synced) = render_repo(&repo)?;
    let client = args.kube.client().await?;
    let cluster = Cluster::new(client, args.dry_run);
    let flux_installed = {
        let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
        crds.get_opt(PRODUCT_CRDS[0].1)
            .await
            .context("the API server is not reachable")?
            .is_some()
    };
    let flux_install = if args.flux_manifest.is_none()
        && args.flux_sha256.is_none()
        && flux_installed
    {
        eprintln!(
            "istio-demo up: Flux is already installed; using it (pass --flux-manifest to apply Flux {FLUX_VERSION} anyway)"
        );
        Vec::new()
    } else {
        load_flux_manifest(args.flux_manifest.as_deref(), args.flux_sha256.as_deref())?
    };
    let git_url = args
        .git_url
        .clone()
        .or_else(|| git(&repo, &["remote", "get-url", "origin"]).map(|u| https_url(&u)));
    let git_branch = args
        .git_branch
        .clone()
        .or_else(|| git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]));
    if git_url.is_none() {
        eprintln!(
            "istio-demo up: no --git-url and no `origin` remote: Flux syncs the URL in flux/gitrepository.yaml"
        );
    }
    let inputs = Inputs {
        flux_install,
        flux_dir,
        synced,
        git_url,
        git_branch,
    };
    let stdout = std::io::stdout();
    run_with(&cluster, inputs, args.timeout, &mut stdout.lock()).await
}

/// Entry point from `main`.
pub fn run(args: &UpArgs) -> std::process::ExitCode {
    cluster::block_on("up", run_async(args))
}
