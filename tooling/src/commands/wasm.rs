//! `istio-demo wasm push REF`: package the filter as an OCI image in Istio's compat layout and push
//! it to a registry; print the digest to pin in the WasmPlugin.

use crate::oci::{self, Reference};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(about = "Ship the filter module as an OCI image that Istio's WasmPlugin can fetch")]
pub struct WasmArgs {
    #[command(subcommand)]
    pub command: WasmCommand,
}

#[derive(Debug, Subcommand)]
pub enum WasmCommand {
    /// Package the module (a single plugin.wasm in a tar+gzip layer) and push it; print the digest.
    #[command(
        long_about = "Packages the filter module as an OCI image in the \"compat\" layout that Istio's \
image fetcher reads (an OCI image manifest with one application/vnd.oci.image.layer.v1.tar+gzip layer holding \
a single file, plugin.wasm), pushes it with the OCI distribution API (blob upload, then manifest PUT), and \
prints the manifest digest and a pinned oci:// URL for the WasmPlugin's `url` (or its `sha256` field). \
Credentials come from the Docker config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json): \
`auths` entries or credential helpers, as written by `docker login`. Packaging is reproducible: the same \
module always gives the same digest."
    )]
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Image reference REGISTRY/REPOSITORY:TAG, e.g. localhost:5000/rfma-filter:0.1.0 (an oci:// prefix is accepted).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The module to ship. Default: $RFMA_WASM, else target/rfma_filter.wasm (built by `make wasm`).
    #[arg(long, value_name = "FILE")]
    pub wasm: Option<PathBuf>,
    /// Talk plain HTTP to the registry (local registries such as kind's or `registry:2` on localhost).
    #[arg(long)]
    pub insecure: bool,
}

fn default_wasm() -> PathBuf {
    match std::env::var_os("RFMA_WASM").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => crate::manifests::repo_root()
            .join("target")
            .join("rfma_filter.wasm"),
    }
}

/// Runs `wasm push`, writing the result to `out`.
pub fn push(args: &PushArgs, out: &mut impl Write) -> Result<()> {
    let reference = Reference::parse(&args.reference)?;
    let path = args.wasm.clone().unwrap_or_else(default_wasm);
    let file = std::fs::File::open(&path).with_context(|| {
        format!(
            "cannot open the module {} (build it with `make wasm`, or pass --wasm FILE)",
            path.display()
        )
    })?;
    let mut wasm = Vec::new();
    file.take(oci::MAX_WASM_BYTES + 1)
        .read_to_end(&mut wasm)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if wasm.len() as u64 > oci::MAX_WASM_BYTES {
        bail!(
            "{}: larger than {} bytes; is this really the filter module?",
            path.display(),
            oci::MAX_WASM_BYTES
        );
    }
    oci::check_wasm(&wasm).with_context(|| path.display().to_string())?;
    let credentials = oci::credentials_for(&reference)?;
    eprintln!(
        "istio-demo: pushing {} ({} bytes) to {reference}{}",
        path.display(),
        wasm.len(),
        if credentials.is_some() {
            " with Docker config credentials"
        } else {
            ""
        }
    );
    let (image, digest) = crate::cluster::runtime()?.block_on(oci::push(
        &wasm,
        &reference,
        args.insecure,
        credentials,
    ))?;
    writeln!(out, "digest: {digest}")?;
    writeln!(out, "url: {}", reference.pinned(&digest))?;
    eprintln!(
        "istio-demo: pushed layer {} ({} bytes). Pin it in the WasmPlugin: `url: {}` (or keep the tag and set `sha256: {}`).",
        image.layer_digest,
        image.layer.len(),
        reference.pinned(&digest),
        digest.trim_start_matches("sha256:")
    );
    Ok(())
}

/// Entry point from `main`.
pub fn run(args: &WasmArgs) -> Result<std::process::ExitCode> {
    match &args.command {
        WasmCommand::Push(p) => push(p, &mut std::io::stdout().lock())?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}
