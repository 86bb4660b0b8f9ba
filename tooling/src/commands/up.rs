//! `istio-demo up`: from an empty cluster to the running demo, with nothing to edit. Reads the
//! cluster (preflight, existing tokens), renders the manifests with the real release values,
//! refuses placeholders, then runs the plan (`deploy::plan`) stage by stage.

use crate::cluster::{Cluster, KubeArgs};
use crate::deploy::plan::{self, Inputs};
use crate::deploy::registry::{Access, ManifestsPayload, Payload};
use crate::deploy::render::{
    self, FLUX_NAMESPACE, OCI_SOURCE_DIR, Profile, REGISTRY_DIR, Release, SOURCE_NAME, SourceKind,
};
use crate::deploy::{artifact, execute, flux, preflight, resources, tokens};
use crate::{cluster, manifests, oci};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `--dry-run`, as kubectl spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Apply nothing; do everything for real.
    None,
    /// Ask the API server: every write as a server-side dry run; nothing is written or pushed.
    Server,
    /// No cluster at all: print the plan (with -o yaml, every object in apply order).
    Client,
}

/// `-o`: what a client dry run prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Yaml,
}

#[derive(Debug, Clone, Args)]
#[command(
    about = "Deploy the whole demo to the current cluster: registry, tokens, Flux and every stage, waiting, with progress",
    long_about = "From an empty cluster (kind, k3d or any Kubernetes 1.33-1.35) to the running demo, with nothing to \
edit: preflight (API server, RBAC, installed products, load balancer, memory for the profile); the demo's tokens \
(kept from the cluster's Secrets, else 256 random bits each, never printed); the manifests rendered with the \
module's digest, the in-cluster registry's name and the token digests (placeholders refused); then, with \
server-side apply: CRDs, namespaces, token Secrets, the in-cluster registry, a push of the module and of the \
manifests as a Flux OCI artifact through a port-forward, Flux's controllers, the Flux source and Kustomizations, \
and waits for the Istio control plane, monitoring, Flagger, the apps, the Canary and (profile full) ELK. \
A failed wait prints the object's conditions and recent Events and exits 1.\n\n\
--dry-run=server sends every write as a server-side dry run; --dry-run=client -o yaml needs no cluster and prints \
every object `up` would apply, in apply order (token Secrets without their data).\n\n\
--source git deploys from your fork instead (--git-url, --git-branch): the fork must carry the release values \
`up` prints, and Flux's self-sync no longer touches the source."
)]
pub struct UpArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// none, server (what a bare --dry-run means) or client (no cluster; see -o).
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_value = "none", default_missing_value = "server")]
    pub dry_run: DryRun,
    /// With --dry-run=client: print every object as one YAML stream.
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
    /// minimal: the gate, Istio, Flagger and metrics; full: also ELK.
    #[arg(long, value_enum, default_value = "full")]
    pub profile: Profile,
    /// Where Flux reads the manifests: an OCI artifact in the in-cluster registry, or your Git fork.
    #[arg(long, value_enum, default_value = "oci")]
    pub source: SourceKind,
    /// With --source git: the URL Flux clones (default: this checkout's `origin`, SSH made HTTPS).
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,
    /// With --source git: the branch (default: the checked-out branch).
    #[arg(long, value_name = "BRANCH")]
    pub git_branch: Option<String>,
    /// The filter module to deploy (default: <repo>/target/rfma_filter.wasm, from `make wasm`).
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,
    /// Timeout of every wait stage (e.g. 90s, 10m); default: each stage's own (1m to 15m).
    #[arg(long, value_name = "DURATION", value_parser = cluster::parse_duration)]
    pub timeout: Option<Duration>,
    /// Flux's install.yaml from a local file (clusters without internet access).
    #[arg(long, value_name = "FILE")]
    pub flux_manifest: Option<PathBuf>,
    /// Expected SHA-256 (hex) of Flux's install.yaml, checked before it is applied.
    #[arg(long, value_name = "HEX")]
    pub flux_sha256: Option<String>,
    /// The repository holding flux/ and the manifest directories (default: found from the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
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

/// The Flux GitRepository for `--source git`. Applied by `up` only, never synced by Flux.
pub fn git_repository(url: &str, branch: &str) -> Result<Value> {
    if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("ssh://")) {
        bail!("--git-url {url:?}: Flux needs an http(s):// or ssh:// URL");
    }
    if url.contains("your-org") {
        bail!("--git-url {url:?} is the old placeholder: give your fork's URL");
    }
    Ok(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": SOURCE_NAME, "namespace": FLUX_NAMESPACE},
        "spec": {
            "interval": "1m",
            "url": url,
            "ref": {"branch": branch},
            // Only the manifest directories: a change to the filter's source is no reason to sync.
            "ignore": "/*\n!/flux/\n!/istio/\n!/monitoring/\n!/flagger/\n!/demo/\n!/elk/\n!/registry/\n",
        },
    }))
}

/// The OCIRepository, pinned to the artifact's digest (a new `up` moves it; Flux follows at once).
pub fn oci_repository(repo: &Path, artifact_digest: &str) -> Result<Value> {
    let mut objects = manifests::render(&repo.join(OCI_SOURCE_DIR))?;
    let Some(m) = objects.pop().filter(|_| objects.is_empty()) else {
        bail!("{OCI_SOURCE_DIR} must render exactly one OCIRepository");
    };
    let mut o = m.object;
    if o["kind"] != "OCIRepository" || o["metadata"]["name"] != SOURCE_NAME {
        bail!("{OCI_SOURCE_DIR} must render the OCIRepository {SOURCE_NAME}");
    }
    o["spec"]["ref"] = json!({ "digest": artifact_digest });
    Ok(o)
}

/// What the git source needs from the fork: its rendered WasmPlugin must carry these values.
fn git_release_mismatch(rendered: &render::Rendered, release: &Release) -> Vec<String> {
    let objects: Vec<Value> = rendered.all().map(|m| m.object.clone()).collect();
    let mut wrong = Vec::new();
    for o in objects.iter().filter(|o| o["kind"] == "WasmPlugin") {
        if o["spec"]["url"].as_str() != Some(release.image.as_str()) {
            wrong.push(format!("{}: spec.url", cluster::object_id(o)));
        }
        if o["spec"]["sha256"].as_str() != Some(release.digest.as_str()) {
            wrong.push(format!("{}: spec.sha256", cluster::object_id(o)));
        }
    }
    for (id, name, sha) in tokens::configured_digests(&objects) {
        let key = format!("{name}{}", tokens::RELEASE_KEY_SUFFIX);
        if !release.tokens.iter().any(|(k, v)| *k == key && *v == sha) {
            wrong.push(format!("{id}: token {name:?}"));
        }
    }
    wrong
}

/// The artifact's revision, in Flux's `<name>@<digest>` form: the branch and commit when the
/// manifest directories are committed as they are; else `local@` the digest of the artifact's
/// content layer, so the same content always gets the same revision.
fn revision(repo: &Path, branch: Option<&str>, tree: &Path, source: &str) -> Result<String> {
    let mut status_args = vec!["status", "--porcelain", "--"];
    status_args.extend(manifests::MANIFEST_DIRS);
    let clean = git(repo, &status_args).is_none();
    if let (true, Some(b), Some(c)) = (clean, branch, git(repo, &["rev-parse", "HEAD"])) {
        return Ok(format!("{b}@sha1:{c}"));
    }
    let provisional = format!("local@sha256:{}", "0".repeat(64));
    let layer = artifact::build(tree, source, &provisional)?
        .layer_digest()
        .to_string();
    Ok(format!("local@{layer}"))
}

/// The Flux artifact of a rendered `tree`, with the source and revision `up` gives it (also what
/// `token rotate` pushes when it changes the gate's token list).
pub fn manifests_payload(repo: &Path, tree: &Path) -> Result<ManifestsPayload> {
    let source = git(repo, &["remote", "get-url", "origin"])
        .map(|u| https_url(&u))
        .unwrap_or_else(|| "istio-demo".into());
    let branch = git(repo, &["rev-parse", "--abbrev-ref", "HEAD"]);
    let revision = revision(repo, branch.as_deref(), tree, &source)?;
    let digest = artifact::build(tree, &source, &revision)?
        .digest()
        .to_string();
    Ok(ManifestsPayload {
        tree: tree.to_path_buf(),
        source,
        revision,
        digest,
    })
}

/// Reads the token Secrets `up` would keep; `None` for a client dry run (no cluster).
async fn live_secrets(cluster: Option<&Cluster>) -> Result<Vec<(String, DynamicObject)>> {
    let mut found = Vec::new();
    if let Some(c) = cluster {
        for t in tokens::DEMO_TOKENS {
            if let Some(s) = c.get("v1", "Secret", Some(t.namespace), t.secret).await? {
                found.push((t.name.to_string(), s));
            }
        }
    }
    Ok(found)
}

/// Everything `up` decided before touching the cluster.
#[derive(Debug)]
pub struct Prepared {
    pub inputs: Inputs,
    pub tokens: Vec<tokens::Token>,
    pub release: Release,
    /// With the git source: what the fork must carry but does not.
    pub git_mismatch: Vec<String>,
    pub needed: resources::Resources,
}

/// Renders and checks everything; writes nothing.
pub async fn prepare(
    args: &UpArgs,
    repo: &Path,
    cluster: Option<&Cluster>,
    flux_install: Vec<Value>,
) -> Result<Prepared> {
    let wasm_path = args
        .wasm
        .clone()
        .unwrap_or_else(|| repo.join("target/rfma_filter.wasm"));
    let wasm = std::fs::read(&wasm_path).with_context(|| {
        format!(
            "cannot read the filter module {} (build it with `make wasm`, or pass --wasm PATH)",
            wasm_path.display()
        )
    })?;
    let module = oci::package(&wasm).with_context(|| wasm_path.display().to_string())?;

    let live = live_secrets(cluster).await?;
    let tokens = tokens::resolve(|spec| {
        Ok(live
            .iter()
            .find(|(n, _)| n == spec.name)
            .map(|(_, s)| s.clone()))
    })?;
    let release = Release::in_cluster(&module.manifest_digest, tokens::release_values(&tokens))?
        .with_gate(tokens::gate_entries(&tokens));

    let (rendered, git_mismatch) = match args.source {
        SourceKind::Oci => (
            render::render_release(repo, args.profile, args.source, &release)?,
            Vec::new(),
        ),
        SourceKind::Git => {
            let r = render::render_as_is(repo, args.profile, args.source)?;
            let wrong = git_release_mismatch(&r, &release);
            (r, wrong)
        }
    };
    if git_mismatch.is_empty() {
        render::refuse_placeholders(rendered.all())?;
        let all: Vec<Value> = rendered.all().map(|m| m.object.clone()).collect();
        tokens::check_backed(&all, &tokens)?;
    }

    let source_url = git(repo, &["remote", "get-url", "origin"]).map(|u| https_url(&u));
    let branch = git(repo, &["rev-parse", "--abbrev-ref", "HEAD"]);
    let (flux_source, manifests_payload) = match args.source {
        SourceKind::Oci => {
            let payload = manifests_payload(repo, &rendered.tree)?;
            (oci_repository(repo, &payload.digest)?, Some(payload))
        }
        SourceKind::Git => {
            let url = args.git_url.clone().or(source_url).context(
                "--source git needs --git-url URL (this checkout has no `origin` remote)",
            )?;
            let branch = args
                .git_branch
                .clone()
                .or(branch)
                .context("--source git needs --git-branch BRANCH (detached HEAD)")?;
            (git_repository(&url, &branch)?, None)
        }
    };
    let registry = manifests::render(&repo.join(REGISTRY_DIR))?
        .into_iter()
        .map(|m| m.object)
        .collect();
    let redact = args.dry_run == DryRun::Client;
    let inputs = Inputs {
        profile: args.profile,
        source: args.source,
        flux_install,
        registry,
        secrets: tokens.iter().map(|t| t.secret(redact)).collect(),
        push: Some(Payload {
            wasm,
            module_digest: module.manifest_digest.clone(),
            manifests: manifests_payload,
        }),
        flux_source,
        entry: rendered.entry_objects(),
        synced: rendered.synced(),
    };
    let all: Vec<Value> = plan::plan(&inputs, None)
        .iter()
        .flat_map(|s| s.apply.clone())
        .chain(inputs.synced.iter().flat_map(|s| s.objects.clone()))
        .collect();
    let needed = resources::sum(&all)?;
    Ok(Prepared {
        inputs,
        tokens,
        release,
        git_mismatch,
        needed,
    })
}

/// Flux's install objects, unless Flux is already there and none was asked for.
async fn flux_install(
    args: &UpArgs,
    cluster: Option<&Cluster>,
    err: &mut impl Write,
) -> Result<Vec<Value>> {
    let asked = args.flux_manifest.is_some() || args.flux_sha256.is_some();
    if let Some(c) = cluster
        && !asked
    {
        let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
        let installed = crds
            .get_opt("kustomizations.kustomize.toolkit.fluxcd.io")
            .await
            .context("the API server is not reachable")?
            .is_some();
        if installed {
            writeln!(
                err,
                "istio-demo up: Flux is already installed; using it (pass --flux-manifest to apply {} anyway)",
                flux::FLUX_VERSION
            )?;
            return Ok(Vec::new());
        }
    }
    if cluster.is_none() && !asked && !flux::cli_available() {
        writeln!(
            err,
            "istio-demo up: Flux's own install manifest is left out (no `flux` CLI on PATH and no --flux-manifest FILE)"
        )?;
        return Ok(Vec::new());
    }
    let (objects, origin) = flux::load(args.flux_manifest.as_deref(), args.flux_sha256.as_deref())?;
    writeln!(err, "istio-demo up: Flux from {origin}")?;
    Ok(objects)
}

fn check_args(args: &UpArgs) -> Result<()> {
    if args.output.is_some() && args.dry_run != DryRun::Client {
        bail!("-o yaml goes with --dry-run=client (the plan printed without a cluster)");
    }
    if args.source == SourceKind::Oci && (args.git_url.is_some() || args.git_branch.is_some()) {
        bail!("--git-url and --git-branch go with --source git");
    }
    Ok(())
}

/// `up` against a cluster (or a server-side dry run).
pub async fn run_with(
    cluster: &Cluster,
    args: &UpArgs,
    repo: &Path,
    access: &Access,
    out: &mut impl Write,
) -> Result<()> {
    let flux_objects = flux_install(args, Some(cluster), &mut std::io::stderr()).await?;
    let prepared = prepare(args, repo, Some(cluster), flux_objects).await?;
    let pre =
        preflight::preflight(cluster, Some((&prepared.needed, args.profile.name())), out).await?;
    if !pre.denied.is_empty() {
        bail!(
            "missing permissions: {} (use a cluster-admin context)",
            pre.denied.join(", ")
        );
    }
    if let Some(short) = &pre.memory_short {
        bail!("not enough memory: {short}");
    }
    for t in &prepared.tokens {
        // After `token rotate`, a slot's token has its own name, and may be mid-rotation.
        let rotation = t
            .rotation
            .as_ref()
            .map(|r| {
                format!(
                    "; rotation of {} to {} under way: `istio-demo token rotate {}` finishes it",
                    r.old.name, r.new.name, r.old.name
                )
            })
            .unwrap_or_default();
        writeln!(
            out,
            "token {}: {} (Secret {}/{}, sha256 {}…{rotation})",
            t.name,
            if t.existing { "kept" } else { "new" },
            t.spec.namespace,
            t.spec.secret,
            &t.sha256[..12]
        )?;
    }
    let mut stages = plan::plan(&prepared.inputs, args.timeout);
    if !prepared.git_mismatch.is_empty() {
        // The fork cannot carry digests of tokens that do not exist yet: make them, push the
        // module, then say what to commit.
        let push = stages
            .iter()
            .position(|s| s.action.is_some())
            .map_or(stages.len(), |i| i + 1);
        stages.truncate(push);
        execute::run(cluster, &stages, access, out).await?;
        let r = &prepared.release;
        let mut values = format!("  image: {}\n  digest: \"{}\"\n", r.image, r.digest);
        for (k, v) in &r.tokens {
            values.push_str(&format!("  {k}: \"{v}\"\n"));
        }
        bail!(
            "your fork does not carry this deploy's release values ({}). The tokens and the module are in the \
             cluster now; set `data` in {} to\n{values}commit, push, and run the same command again",
            prepared.git_mismatch.join(", "),
            render::RELEASE_FILE
        );
    }
    if cluster.dry_run {
        writeln!(
            out,
            "plan (server-side dry run: nothing is written or pushed):"
        )?;
    }
    execute::run(cluster, &stages, access, out).await?;
    writeln!(
        out,
        "{}",
        if cluster.dry_run {
            "dry run complete: nothing was changed"
        } else {
            "the demo is up: run `istio-demo verify`"
        }
    )?;
    Ok(())
}

/// `up --dry-run=client`: the plan with no cluster.
pub async fn client_dry_run(args: &UpArgs, repo: &Path, out: &mut impl Write) -> Result<()> {
    let flux_objects = flux_install(args, None, &mut std::io::stderr()).await?;
    let prepared = prepare(args, repo, None, flux_objects).await?;
    if !prepared.git_mismatch.is_empty() {
        bail!(
            "your fork does not carry the release values: {}",
            prepared.git_mismatch.join(", ")
        );
    }
    let stages = plan::plan(&prepared.inputs, args.timeout);
    match args.output {
        Some(Output::Yaml) => {
            plan::write_yaml(&stages, &plan::synced_in_order(&prepared.inputs), out)?
        }
        None => {
            for (i, s) in stages.iter().enumerate() {
                writeln!(
                    out,
                    "[{}/{}] {}: {} object(s), {} wait(s)",
                    i + 1,
                    stages.len(),
                    s.name,
                    s.apply.len(),
                    s.wait.len()
                )?;
            }
        }
    }
    Ok(())
}

/// Entry point from `main`.
pub fn run(args: &UpArgs) -> Result<ExitCode> {
    check_args(args)?;
    let repo = args.repo.clone().unwrap_or_else(manifests::repo_root);
    cluster::runtime()?.block_on(async {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if args.dry_run == DryRun::Client {
            client_dry_run(args, &repo, &mut out).await?;
        } else {
            let client = args.kube.client().await?;
            let cluster = Cluster::new(client, args.dry_run == DryRun::Server);
            run_with(&cluster, args, &repo, &Access::PortForward, &mut out).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
