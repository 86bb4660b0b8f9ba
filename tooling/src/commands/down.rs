//! `istio-demo down`: tear the demo down in the reverse order of `up`, waiting for finalizers.
//! Namespaces that existed before `up` (no `app.kubernetes.io/managed-by=istio-demo` label) are
//! never deleted, and are protected from Flux's garbage collection first.

use crate::cluster::{self, Check, Cluster, KubeArgs, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Target};
use crate::commands::up::{self, Synced};
use crate::manifests;
use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flux skips garbage collection of objects carrying this annotation.
pub const FLUX_PRUNE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/prune";
/// Label on every object of Flux's install manifest.
pub const FLUX_PART_OF: &str = "app.kubernetes.io/part-of=flux";

#[derive(Debug, Clone, Args)]
#[command(
    about = "Tear the demo down in reverse order, waiting for finalizers; never deletes pre-existing namespaces",
    long_about = "Deletes what `up` created, in reverse order: first the Flux Kustomizations and sources from flux/ \
(Flux's finalizers prune everything they applied; waits until they are gone), then the namespaces `up` created \
(those labelled app.kubernetes.io/managed-by=istio-demo; waits until they are gone), then Flux itself (its CRDs, \
cluster roles and the flux-system namespace) only if `up` installed it. A namespace that existed before `up` is \
never deleted: it is annotated kustomize.toolkit.fluxcd.io/prune=disabled first so Flux's garbage collection \
keeps it too. --dry-run sends the deletes as server-side dry runs and waits for nothing."
)]
pub struct DownArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Server-side dry run: print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Timeout of each wait for deletion (e.g. 5m); default 10m.
    #[arg(long, value_name = "DURATION", value_parser = cluster::parse_duration)]
    pub timeout: Option<Duration>,
    /// Keep Flux installed even if `up` installed it.
    #[arg(long)]
    pub keep_flux: bool,
    /// The repository holding flux/ and the manifest directories (default: found from the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn ours(ns: &Value) -> bool {
    ns.pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        == Some(MANAGED_BY_VALUE)
}

/// The Flux objects of flux/ in deletion order: Kustomizations and HelmReleases (last first), then sources.
pub fn sync_objects(flux_dir: &[Value]) -> Vec<Value> {
    let relevant: Vec<&Value> = flux_dir
        .iter()
        .filter(|o| !matches!(kind(o), "Namespace" | "CustomResourceDefinition"))
        .collect();
    let (appliers, rest): (Vec<&Value>, Vec<&Value>) = relevant
        .into_iter()
        .partition(|o| matches!(kind(o), "Kustomization" | "HelmRelease"));
    appliers
        .into_iter()
        .rev()
        .chain(rest.into_iter().rev())
        .cloned()
        .collect()
}

/// Namespaces the manifests declare (flux/ and every synced path), deduplicated, `flux-system` excluded.
pub fn namespaces(flux_dir: &[Value], synced: &[Synced]) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    flux_dir
        .iter()
        .chain(synced.iter().flat_map(|s| &s.objects))
        .filter(|o| kind(o) == "Namespace" && o["apiVersion"] == "v1")
        .filter(|o| o["metadata"]["name"] != "flux-system")
        .filter(|o| {
            seen.insert(
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .cloned()
        .collect()
}

async fn delete_and_wait(
    cluster: &Cluster,
    obj: &Value,
    timeout: Duration,
    out: &mut impl Write,
) -> Result<()> {
    let t = Target::of(obj, Check::Gone);
    let deleted = cluster
        .delete(&t.api_version, &t.kind, t.namespace.as_deref(), &t.name)
        .await?;
    if !deleted {
        writeln!(out, "  absent: {}", t.id())?;
        return Ok(());
    }
    if cluster.dry_run {
        writeln!(out, "  would delete: {}", t.id())?;
        return Ok(());
    }
    let start = Instant::now();
    out.flush()?;
    match crate::deploy::wait::wait(cluster, &t, timeout).await {
        Ok(()) => writeln!(
            out,
            "  deleted: {} ({:.1}s)",
            t.id(),
            start.elapsed().as_secs_f64()
        )?,
        Err(f) => {
            writeln!(out, "  FAILED: {f}")?;
            bail!(
                "{} is still there after {}s (a finalizer is stuck?)",
                t.id(),
                timeout.as_secs()
            );
        }
    }
    Ok(())
}

/// Runs the teardown against `cluster`.
pub async fn run_with(
    cluster: &Cluster,
    flux_dir: &[Value],
    synced: &[Synced],
    timeout: Duration,
    keep_flux: bool,
    out: &mut impl Write,
) -> Result<()> {
    // 1. Which namespaces are ours; protect the user's from Flux's garbage collection.
    writeln!(out, "[1/4] namespaces: ours or the user's")?;
    let mut delete_ns = Vec::new();
    for ns in namespaces(flux_dir, synced) {
        let name = ns["metadata"]["name"].as_str().unwrap_or_default();
        match cluster.get("v1", "Namespace", None, name).await? {
            None => writeln!(out, "  absent: Namespace/{name}")?,
            Some(live) if ours(&live) => delete_ns.push(ns.clone()),
            Some(_) => {
                let mut protect = ns.clone();
                protect["metadata"]["annotations"][FLUX_PRUNE_ANNOTATION] = json!("disabled");
                cluster.apply(&protect).await?;
                writeln!(
                    out,
                    "  keeping Namespace/{name}: it existed before istio-demo (protected from Flux's pruning)"
                )?;
            }
        }
    }
    // 2. Flux's Kustomizations and sources: their finalizers prune what they applied.
    writeln!(out, "[2/4] Flux Kustomizations and sources")?;
    for o in sync_objects(flux_dir) {
        delete_and_wait(cluster, &o, timeout, out).await?;
    }
    // 3. Our namespaces.
    writeln!(out, "[3/4] namespaces created by istio-demo")?;
    if delete_ns.is_empty() {
        writeln!(out, "  none")?;
    }
    for ns in &delete_ns {
        delete_and_wait(cluster, ns, timeout, out).await?;
    }
    // 4. Flux itself, only if we installed it.
    writeln!(out, "[4/4] Flux")?;
    let flux_ns = cluster.get("v1", "Namespace", None, "flux-system").await?;
    match flux_ns {
        None => writeln!(out, "  not installed")?,
        Some(ns) if !ours(&ns) => {
            writeln!(out, "  left in place: Flux was installed before istio-demo")?
        }
        Some(_) if keep_flux => writeln!(out, "  left in place (--keep-flux)")?,
        Some(ns) => {
            for (api_version, kind) in [
                ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ] {
                for mut o in cluster
                    .list(api_version, kind, None, Some(FLUX_PART_OF))
                    .await?
                {
                    o["apiVersion"] = json!(api_version);
                    o["kind"] = json!(kind);
                    delete_and_wait(cluster, &o, timeout, out).await?;
                }
            }
            let mut ns = ns;
            ns["apiVersion"] = json!("v1");
            ns["kind"] = json!("Namespace");
            delete_and_wait(cluster, &ns, timeout, out).await?;
        }
    }
    writeln!(
        out,
        "{}",
        if cluster.dry_run {
            "dry run complete: nothing was deleted"
        } else {
            "the demo is down"
        }
    )?;
    Ok(())
}

async fn run_async(args: &DownArgs) -> Result<()> {
    let repo = args.repo.clone().unwrap_or_else(manifests::repo_root);
    let (flux_dir, synced) = up::render_repo(&repo)?;
    let cluster = Cluster::new(args.kube.client().await?, args.dry_run);
    let stdout = std::io::stdout();
    run_with(
        &cluster,
        &flux_dir,
        &synced,
        args.timeout.unwrap_or(Duration::from_secs(600)),
        args.keep_flux,
        &mut stdout.lock(),
    )
    .await
}

/// Entry point from `main`.
pub fn run(args: &DownArgs) -> std::process::ExitCode {
    cluster::block_on("down", run_async(args))
}
