//! `istio-demo down`: tear the demo down in the reverse order of `up`, without racing Flux. The
//! self-managing Kustomization is suspended first (so nothing re-creates what is deleted), then
//! each Kustomization goes in reverse dependency order (its finalizer prunes what it applied), the
//! source, the token Secrets, the registry and the namespaces `up` created, and Flux if `up`
//! installed it. What existed before `up` stays.

use crate::cluster::{self, Cluster, KubeArgs};
use crate::deploy::execute::{FLUX_PRUNE_ANNOTATION, ours};
use crate::deploy::plan::{self, is_flux_kustomization};
use crate::deploy::render::{
    self, FLUX_NAMESPACE, Profile, SELF_KUSTOMIZATION, SOURCE_NAME, SourceKind,
};
use crate::deploy::tokens::DEMO_TOKENS;
use crate::deploy::wait::{self, Check, Target};
use crate::manifests;
use anyhow::{Result, bail};
use clap::Args;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Label on every object of Flux's install manifest.
pub const FLUX_PART_OF: &str = "app.kubernetes.io/part-of=flux";

#[derive(Debug, Clone, Args)]
#[command(
    about = "Tear the demo down in reverse order, waiting for finalizers; keeps what existed before `up`",
    long_about = "Suspends the self-managing Flux Kustomization `istio-demo` first, so Flux cannot re-create what \
is deleted; then deletes the Flux Kustomizations in reverse dependency order (each one's finalizer prunes what it \
applied; waits until they are gone), the self-managing one and the source, the token Secrets, then the namespaces \
`up` created (labelled app.kubernetes.io/managed-by=istio-demo, the registry's among them), then Flux itself (its \
CRDs, cluster roles and the flux-system namespace) only if `up` installed it. A namespace that existed before `up` \
is never deleted: it is annotated kustomize.toolkit.fluxcd.io/prune=disabled first so Flux's garbage collection \
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

/// What `down` deletes, from the rendered manifests (every profile, every source).
#[derive(Debug, Clone, Default)]
pub struct Teardown {
    /// Flux Kustomizations other than the self-managing one, in deletion order (dependants first).
    pub kustomizations: Vec<Value>,
    /// Namespaces the manifests declare, `flux-system` excluded.
    pub namespaces: Vec<Value>,
}

/// Builds the teardown from rendered entry points and what they sync.
pub fn teardown(entries: &[Vec<Value>], synced: &[render::Synced], registry: &[Value]) -> Teardown {
    let mut seen = std::collections::BTreeSet::new();
    let ks: Vec<&Value> = entries
        .iter()
        .flatten()
        .filter(|o| is_flux_kustomization(o) && plan::name(o) != SELF_KUSTOMIZATION)
        .filter(|o| seen.insert(plan::name(o).to_string()))
        .collect();
    let mut kustomizations: Vec<Value> = plan::dependency_order(ks).into_iter().cloned().collect();
    kustomizations.reverse();
    let mut seen = std::collections::BTreeSet::new();
    let namespaces = synced
        .iter()
        .flat_map(|s| &s.objects)
        .chain(registry)
        .filter(|o| plan::kind(o) == "Namespace" && o["apiVersion"] == "v1")
        .filter(|o| plan::name(o) != FLUX_NAMESPACE)
        .filter(|o| seen.insert(plan::name(o).to_string()))
        .cloned()
        .collect();
    Teardown {
        kustomizations,
        namespaces,
    }
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
    match wait::wait(cluster, &t, timeout).await {
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

fn flux_object(kind: &str, api_version: &str, name: &str) -> Value {
    reference(api_version, kind, Some(FLUX_NAMESPACE), name)
}

/// The smallest manifest that names an object, for deleting and waiting on it.
fn reference(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Value {
    let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = namespace {
        o["metadata"]["namespace"] = json!(ns);
    }
    o
}

/// Runs the teardown against `cluster`.
pub async fn run_with(
    cluster: &Cluster,
    plan: &Teardown,
    timeout: Duration,
    keep_flux: bool,
    out: &mut impl Write,
) -> Result<()> {
    // 1. Stop Flux's self-sync, so no Kustomization is re-created behind our back.
    writeln!(out, "[1/6] suspend the self-managing Kustomization")?;
    let self_ks = flux_object(
        "Kustomization",
        "kustomize.toolkit.fluxcd.io/v1",
        SELF_KUSTOMIZATION,
    );
    if cluster
        .merge_patch(&self_ks, &json!({"spec": {"suspend": true}}))
        .await?
    {
        writeln!(
            out,
            "  {}suspended: Kustomization/{FLUX_NAMESPACE}/{SELF_KUSTOMIZATION}",
            if cluster.dry_run { "would be " } else { "" }
        )?;
    } else {
        writeln!(
            out,
            "  absent: Kustomization/{FLUX_NAMESPACE}/{SELF_KUSTOMIZATION}"
        )?;
    }
    // 2. Which namespaces are ours; protect the user's from Flux's garbage collection.
    writeln!(out, "[2/6] namespaces: ours or the user's")?;
    let mut delete_ns = Vec::new();
    let mut users_ns = Vec::new();
    for ns in &plan.namespaces {
        let name = plan::name(ns);
        match cluster.get("v1", "Namespace", None, name).await? {
            None => writeln!(out, "  absent: Namespace/{name}")?,
            Some(live) if ours(&live) => delete_ns.push(ns.clone()),
            Some(_) => {
                let mut protect = ns.clone();
                protect["metadata"]["annotations"][FLUX_PRUNE_ANNOTATION] = json!("disabled");
                cluster.apply(&protect).await?;
                users_ns.push(name.to_string());
                writeln!(
                    out,
                    "  keeping Namespace/{name}: it existed before istio-demo (protected from Flux's pruning)"
                )?;
            }
        }
    }
    // 3. The Kustomizations, dependants first: their finalizers prune what they applied.
    writeln!(out, "[3/6] Flux Kustomizations, dependants first")?;
    for o in &plan.kustomizations {
        delete_and_wait(cluster, o, timeout, out).await?;
    }
    // 4. The suspended self-managing Kustomization (its children are gone) and the source.
    writeln!(
        out,
        "[4/6] the self-managing Kustomization and the Flux source"
    )?;
    delete_and_wait(cluster, &self_ks, timeout, out).await?;
    for kind in ["OCIRepository", "GitRepository"] {
        delete_and_wait(
            cluster,
            &flux_object(kind, "source.toolkit.fluxcd.io/v1", SOURCE_NAME),
            timeout,
            out,
        )
        .await?;
    }
    // 5. Token Secrets in namespaces that stay (the others go with their namespace).
    writeln!(
        out,
        "[5/6] token Secrets and the namespaces istio-demo created"
    )?;
    for t in DEMO_TOKENS
        .iter()
        .filter(|t| users_ns.iter().any(|n| n == t.namespace))
    {
        let secret = reference("v1", "Secret", Some(t.namespace), t.secret);
        match cluster
            .get("v1", "Secret", Some(t.namespace), t.secret)
            .await?
        {
            Some(live) if ours(&live) => delete_and_wait(cluster, &secret, timeout, out).await?,
            Some(_) => writeln!(
                out,
                "  keeping Secret/{}/{}: not made by istio-demo",
                t.namespace, t.secret
            )?,
            None => writeln!(out, "  absent: Secret/{}/{}", t.namespace, t.secret)?,
        }
    }
    for ns in &delete_ns {
        delete_and_wait(cluster, ns, timeout, out).await?;
    }
    // 6. Flux itself, only if we installed it.
    writeln!(out, "[6/6] Flux")?;
    match cluster.get("v1", "Namespace", None, FLUX_NAMESPACE).await? {
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
                // A list's items do not say what they are; the query does.
                for o in cluster
                    .list(api_version, kind, None, Some(FLUX_PART_OF))
                    .await?
                {
                    let named = reference(api_version, kind, None, &o.name_any());
                    delete_and_wait(cluster, &named, timeout, out).await?;
                }
            }
            let named = reference("v1", "Namespace", None, &ns.name_any());
            delete_and_wait(cluster, &named, timeout, out).await?;
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

/// The teardown of the repository's manifests: every entry point (both profiles, both sources).
pub fn teardown_of_repo(repo: &std::path::Path) -> Result<Teardown> {
    let full = render::render_as_is(repo, Profile::Full, SourceKind::Oci)?;
    let mut entries = vec![full.entry_objects()];
    for (p, s) in [
        (Profile::Minimal, SourceKind::Oci),
        (Profile::Full, SourceKind::Git),
        (Profile::Minimal, SourceKind::Git),
    ] {
        let dir = repo.join(render::entry_dir(p, s));
        entries.push(
            manifests::render(&dir)?
                .into_iter()
                .map(|m| m.object)
                .collect(),
        );
    }
    let registry: Vec<Value> = manifests::render(&repo.join(render::REGISTRY_DIR))?
        .into_iter()
        .map(|m| m.object)
        .collect();
    Ok(teardown(&entries, &full.synced(), &registry))
}

/// Entry point from `main`.
pub fn run(args: &DownArgs) -> Result<ExitCode> {
    let repo = args.repo.clone().unwrap_or_else(manifests::repo_root);
    let plan = teardown_of_repo(&repo)?;
    cluster::runtime()?.block_on(async {
        let cluster = Cluster::new(args.kube.client().await?, args.dry_run);
        let stdout = std::io::stdout();
        run_with(
            &cluster,
            &plan,
            args.timeout.unwrap_or(Duration::from_secs(600)),
            args.keep_flux,
            &mut stdout.lock(),
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}
