//! A Flux OCI artifact made from a directory tree, laid out as `flux push artifact` lays it out, so
//! that a Flux `OCIRepository` (and the `flux` CLI) reads it; and its unpacking.
//!
//! Layout (fluxcd/pkg `oci/push.go`, `oci/build.go`, `oci/globals.go`, `tar/tar.go`, as used by
//! flux2's `cmd/flux/push_artifact.go` in Flux 2.9):
//!
//! - An OCI image manifest with one layer, `application/vnd.cncf.flux.content.v1.tar+gzip`: a gzip'd
//!   tar of the tree. Entries come in `filepath.WalkDir` order (depth first, each directory's names
//!   sorted bytewise), starting with the root as `.`; directories have no trailing slash; uid, gid,
//!   user and group names and all times are zero; USTAR headers written byte for byte as Go's
//!   `archive/tar` writes them; the gzip header has no name and mtime 0.
//! - The config blob, `application/vnd.cncf.flux.config.v1+json`, is what Flux 2.9 pushes: the
//!   empty image config of go-containerregistry v0.21.6, `{"architecture":"","created":
//!   "0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":null},"config":{}}`.
//!   (fluxcd/pkg oci v0.67+ sets `created` on that config, but go-containerregistry v0.21.6 keeps
//!   the original config blob of a non-image config media type, so the pushed bytes carry none.)
//! - Manifest annotations `org.opencontainers.image.source`, `org.opencontainers.image.revision`,
//!   and `org.opencontainers.image.created` set to `1970-01-01T00:00:00Z`, the value
//!   `flux push artifact --reproducible` writes. The manifest JSON is written as Go's
//!   `encoding/json` writes go-containerregistry's `v1.Manifest` (field order, sorted annotation
//!   keys, `<`, `>` and `&` escaped).
//! - Skipped, as Flux's default `--ignore-paths` skips them (fluxcd/pkg `sourceignore`
//!   `ExcludeVCS` and `ExcludeExt`, matched as gitignore names at any depth): `.git/`,
//!   `.gitignore`, `.gitmodules`, `.gitattributes`, `*.jpg`, `*.jpeg`, `*.gif`, `*.png`, `*.wmv`,
//!   `*.flv`, `*.tar.gz`, `*.zip`. Fifos, sockets and devices are skipped as Flux skips them.
//!
//! Where this differs from Flux, it does so to be reproducible or safe: file modes are normalised
//! to 0644 (0755 when the owner may execute) and directories to 0755, where Flux copies the
//! file's permission bits, so a checkout's umask does not change the digest; a symbolic link is
//! followed when it stays inside the tree (as `flux push artifact --resolve-symlinks` does) and
//! refused when it leaves it, where Flux drops links silently; names that USTAR cannot hold
//! (non-ASCII, or too long to split) and names with a backslash (Flux's own untar refuses them)
//! are refused. The deflate stream is flate2's at Go's default level 6, not Go's: the same tree
//! gives the same bytes on any machine with this tool, but not the same bytes as the `flux` CLI.

#[cfg(test)]
mod tests;
mod tree;
mod unpack;
mod ustar;

pub use unpack::unpack;

use crate::oci::{self, MANIFEST_MEDIA_TYPE, Parts, Reference, RegistryAuth};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Flux's config media type (fluxcd/pkg `oci.CanonicalConfigMediaType`).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
/// Flux's content layer media type (fluxcd/pkg `oci.CanonicalContentMediaType`).
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
pub const SOURCE_ANNOTATION: &str = "org.opencontainers.image.source";
pub const REVISION_ANNOTATION: &str = "org.opencontainers.image.revision";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// The creation time `flux push artifact --reproducible` writes: the Unix epoch.
pub const REPRODUCIBLE_CREATED: &str = "1970-01-01T00:00:00Z";
/// The config blob Flux 2.9 pushes (see the module documentation).
pub const FLUX_CONFIG: &str = r#"{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":null},"config":{}}"#;
/// Largest total of file sizes packed or unpacked: fluxcd/pkg `tar.DefaultMaxUntarSize`, the most
/// Flux's source-controller unpacks by default.
pub const MAX_CONTENT_BYTES: u64 = 100 << 20;
/// Most entries packed or unpacked; a manifest tree is nowhere near this.
pub const MAX_ENTRIES: usize = 100_000;

/// A Flux OCI artifact: its blobs, its manifest and the manifest's digest.
#[derive(Debug, Clone)]
pub struct Artifact {
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
    manifest: Vec<u8>,
    digest: String,
    entries: Vec<String>,
}

impl Artifact {
    /// `sha256:…` of the manifest: what an `OCIRepository` pins (`spec.ref.digest`).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The image manifest (`application/vnd.oci.image.manifest.v1+json`).
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The content layer, a gzip'd tar (`CONTENT_MEDIA_TYPE`).
    pub fn layer(&self) -> &[u8] {
        &self.layer
    }

    pub fn layer_digest(&self) -> &str {
        &self.layer_digest
    }

    /// The config blob (`CONFIG_MEDIA_TYPE`), always `FLUX_CONFIG`.
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    /// The layer's entries in archive order: `.` first, directories without a trailing slash.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// The blobs and manifest to push.
    pub fn parts(&self) -> Parts<'_> {
        Parts::one_layer(
            &self.manifest,
            (&self.layer_digest, &self.layer),
            (&self.config_digest, &self.config),
        )
    }
}

/// Builds the artifact of `dir` (a directory, or one file packed as a directory holding it),
/// annotated with `source` (e.g. a Git URL) and `revision` (e.g. `main@sha1:<commit>`).
pub fn build(dir: &Path, source: &str, revision: &str) -> Result<Artifact> {
    check_source(source)?;
    check_revision(revision)?;
    let entries = tree::collect(dir)?;
    let (layer, names) =
        ustar::layer(&entries).with_context(|| format!("packing {}", dir.display()))?;
    let layer_digest = oci::sha256_digest(&layer);
    let config = FLUX_CONFIG.as_bytes().to_vec();
    let config_digest = oci::sha256_digest(&config);
    let manifest = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"{}","#,
            r#""config":{{"mediaType":"{}","size":{},"digest":"{}"}},"#,
            r#""layers":[{{"mediaType":"{}","size":{},"digest":"{}"}}],"#,
            r#""annotations":{{"{}":{},"{}":{},"{}":{}}}}}"#
        ),
        MANIFEST_MEDIA_TYPE,
        CONFIG_MEDIA_TYPE,
        config.len(),
        config_digest,
        CONTENT_MEDIA_TYPE,
        layer.len(),
        layer_digest,
        // Go marshals map keys sorted: created < revision < source.
        CREATED_ANNOTATION,
        go_json_string(REPRODUCIBLE_CREATED),
        REVISION_ANNOTATION,
        go_json_string(revision),
        SOURCE_ANNOTATION,
        go_json_string(source),
    )
    .into_bytes();
    let digest = oci::sha256_digest(&manifest);
    Ok(Artifact {
        config,
        config_digest,
        layer,
        layer_digest,
        manifest,
        digest,
        entries: names,
    })
}

/// Pushes `artifact` to `reference` (`[oci://]HOST/REPO:TAG`) anonymously, as to the in-cluster
/// registry; returns the manifest digest `sha256:…`. `insecure`: plain HTTP.
pub async fn push(artifact: &Artifact, reference: &str, insecure: bool) -> Result<String> {
    push_with_credentials(artifact, &Reference::parse(reference)?, insecure, None).await
}

/// Pushes `artifact` with `credentials` (e.g. `oci::credentials_for`, the Docker config's) for
/// registries that ask for a login; returns the manifest digest `sha256:…`.
pub async fn push_with_credentials(
    artifact: &Artifact,
    reference: &Reference,
    insecure: bool,
    credentials: Option<RegistryAuth>,
) -> Result<String> {
    oci::push_parts(&artifact.parts(), reference, insecure, credentials).await
}

/// `--source`: anything Flux takes (a Git or web URL), on one line.
fn check_source(source: &str) -> Result<()> {
    if source.is_empty() {
        bail!("the artifact source is empty (give the Git URL the manifests come from)");
    }
    if source.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bail!("the artifact source {source:?} holds spaces or control characters");
    }
    Ok(())
}

/// `--revision`: Flux's `<branch|tag>@sha1:<commit>` (or `@sha256:`), a bare `sha1:<commit>`, or
/// a plain tag; one line, and a digest part must be well formed.
fn check_revision(revision: &str) -> Result<()> {
    if revision.is_empty() {
        bail!("the artifact revision is empty (e.g. main@sha1:<commit>, or a tag)");
    }
    if revision
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        bail!("the artifact revision {revision:?} holds spaces or control characters");
    }
    let digest = match revision.rsplit_once('@') {
        Some(("", _)) => bail!("the artifact revision {revision:?} has nothing before '@'"),
        Some((_, d)) => Some(d),
        None if revision.starts_with("sha1:") || revision.starts_with("sha256:") => Some(revision),
        None => None,
    };
    if let Some(d) = digest {
        let ok = match d.split_once(':') {
            Some(("sha1", hex)) => hex.len() == 40,
            Some(("sha256", hex)) => hex.len() == 64,
            _ => false,
        } && d
            .split_once(':')
            .is_some_and(|(_, hex)| hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            bail!(
                "the artifact revision {revision:?}: {d:?} is not sha1:<40 hex> or sha256:<64 hex> (Flux's format is <branch|tag>@sha1:<commit>)"
            );
        }
    }
    Ok(())
}

/// A string as Go's `encoding/json` writes it: serde_json's escapes plus `<`, `>`, `&`, U+2028 and
/// U+2029, which Go escapes too.
fn go_json_string(s: &str) -> String {
    let plain = serde_json::to_string(s).expect("a string always serialises");
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}
