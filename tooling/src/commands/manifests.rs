//! `istio-demo manifests push oci://HOST/REPO:TAG --dir DIR`: pack a manifest tree as a Flux OCI
//! artifact (the layout `flux push artifact` makes, see `deploy::artifact`) and push it; print
//! its digest for an `OCIRepository`'s `spec.ref.digest`.

use crate::deploy::artifact;
use crate::oci::{self, Reference};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(about = "Ship manifests as a Flux OCI artifact that an OCIRepository follows")]
pub struct ManifestsArgs {
    #[command(subcommand)]
    pub command: ManifestsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ManifestsCommand {
    /// Pack a manifest tree as a Flux OCI artifact and push it; print its digest.
    #[command(
        long_about = "Packs DIR as a Flux OCI artifact, laid out as `flux push artifact` lays it out: \
an OCI image manifest with one application/vnd.cncf.flux.content.v1.tar+gzip layer (a gzip'd tar of DIR), \
the application/vnd.cncf.flux.config.v1+json config, and the org.opencontainers.image.source and \
org.opencontainers.image.revision annotations. Like Flux it leaves out .git, .gitignore, .gitmodules, \
.gitattributes, images and archives. Packing is reproducible: no time stamps, owners or permission bits \
beyond executable or not, so the same tree and revision always give the same digest. Pushes it with the \
OCI distribution API (credentials from the Docker config, as `wasm push`), then prints the manifest digest \
on stdout and the pinned oci://HOST/REPO@sha256:... reference on stderr."
    )]
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Artifact reference oci://HOST/REPO:TAG, e.g. oci://localhost:5000/istio-demo/manifests:latest.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The manifest tree to pack (a directory, or a single YAML file).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The org.opencontainers.image.source annotation. Default: the `origin` URL of DIR's Git checkout.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// The org.opencontainers.image.revision annotation, in Flux's <branch|tag>@sha1:<commit> format.
    /// Default: the branch and commit of DIR's Git checkout.
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Talk plain HTTP to the registry (local registries such as kind's or `registry:2` on localhost).
    #[arg(long)]
    pub insecure: bool,
}

/// `git -C dir ARGS`, trimmed; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The directory git should look in: DIR itself, or the directory holding a single file.
fn git_dir(dir: &Path) -> PathBuf {
    if dir.is_file() {
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn default_source(dir: &Path) -> Result<String> {
    git(&git_dir(dir), &["remote", "get-url", "origin"]).with_context(|| {
        format!(
            "--source is needed: {} is not in a Git checkout with an `origin` remote",
            dir.display()
        )
    })
}

/// Flux's revision format: `<branch>@sha1:<commit>`, or `sha1:<commit>` on a detached HEAD.
fn default_revision(dir: &Path) -> Result<String> {
    let at = git_dir(dir);
    let commit = git(&at, &["rev-parse", "HEAD"]).with_context(|| {
        format!(
            "--revision is needed: {} is not in a Git checkout with a commit",
            dir.display()
        )
    })?;
    let algorithm = if commit.len() == 64 { "sha256" } else { "sha1" };
    let revision = match git(&at, &["rev-parse", "--abbrev-ref", "HEAD"]) {
        Some(branch) if branch != "HEAD" => format!("{branch}@{algorithm}:{commit}"),
        _ => format!("{algorithm}:{commit}"),
    };
    if git(&at, &["status", "--porcelain", "--", "."]).is_some() {
        eprintln!(
            "istio-demo: warning: {} has uncommitted changes; the revision {revision} does not describe them (pass --revision)",
            dir.display()
        );
    }
    Ok(revision)
}

/// Runs `manifests push`, writing the digest to `out`.
pub fn push(args: &PushArgs, out: &mut impl Write) -> Result<()> {
    let reference = Reference::parse(&args.reference)?;
    if !args.dir.exists() {
        bail!(
            "--dir {}: no such directory (give the manifest tree to pack)",
            args.dir.display()
        );
    }
    let source = match &args.source {
        Some(s) => s.clone(),
        None => default_source(&args.dir)?,
    };
    let revision = match &args.revision {
        Some(r) => r.clone(),
        None => default_revision(&args.dir)?,
    };
    let built = artifact::build(&args.dir, &source, &revision)?;
    let credentials = oci::credentials_for(&reference)?;
    eprintln!(
        "istio-demo: pushing {} ({} entries, {} byte layer) to oci://{reference} as a Flux artifact, revision {revision}{}",
        args.dir.display(),
        built.entries().len(),
        built.layer().len(),
        if credentials.is_some() {
            " with Docker config credentials"
        } else {
            ""
        }
    );
    let digest = crate::cluster::runtime()?.block_on(artifact::push_with_credentials(
        &built,
        &reference,
        args.insecure,
        credentials,
    ))?;
    writeln!(out, "{digest}")?;
    eprintln!("istio-demo: pushed {}", reference.pinned(&digest));
    Ok(())
}

/// Entry point from `main`.
pub fn run(args: &ManifestsArgs) -> Result<ExitCode> {
    match &args.command {
        ManifestsCommand::Push(p) => push(p, &mut std::io::stdout().lock())?,
    }
    Ok(ExitCode::SUCCESS)
}
