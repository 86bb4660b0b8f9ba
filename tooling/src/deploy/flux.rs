//! Flux's own install manifest: from `--flux-manifest FILE`; else from the `flux` CLI on PATH
//! (`flux install --export`, which is pinned to that CLI's version); else the pinned release's
//! `install.yaml`, downloaded over HTTPS, whose SHA-256 is printed (and checked when
//! `--flux-sha256` is given).

use crate::manifests;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The Flux release `up` installs when it downloads the manifest.
pub const FLUX_VERSION: &str = "v2.9.0";
/// Its install manifest.
pub const FLUX_INSTALL_URL: &str =
    "https://github.com/fluxcd/flux2/releases/download/v2.9.0/install.yaml";
/// Bound on the downloaded manifest.
const FLUX_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Environment variable naming the `flux` binary (default: `flux` on PATH).
pub const FLUX_ENV: &str = "FLUX";

/// Where the manifest came from, for the progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    /// `flux install --export`, with the CLI's version line.
    Cli(String),
    Download {
        sha256: String,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Cli(v) => write!(f, "`flux install --export` ({v})"),
            Origin::Download { sha256 } => {
                write!(f, "{FLUX_INSTALL_URL} (SHA-256 {sha256})")
            }
        }
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn flux_cli(program: &str) -> Option<(String, String)> {
    let program = program.to_string();
    let out = std::process::Command::new(&program)
        .arg("--version")
        .output()
        .ok()?;
    out.status.success().then(|| {
        (
            program,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    })
}

/// Whether a `flux` CLI answers (`$FLUX`, else `flux` on PATH).
pub fn cli_available() -> bool {
    flux_cli(&std::env::var(FLUX_ENV).unwrap_or_else(|_| "flux".into())).is_some()
}

/// The manifest's bytes and origin. `sha256`, when given, must match whatever the source.
pub fn fetch(file: Option<&Path>, sha256: Option<&str>) -> Result<(Vec<u8>, Origin)> {
    let program = std::env::var(FLUX_ENV).unwrap_or_else(|_| "flux".into());
    fetch_with(file, sha256, &program)
}

fn fetch_with(file: Option<&Path>, sha256: Option<&str>, flux: &str) -> Result<(Vec<u8>, Origin)> {
    let want = sha256.map(|s| s.trim().to_ascii_lowercase());
    if let Some(w) = &want
        && (w.len() != 64 || !w.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        bail!("--flux-sha256: expected 64 hex digits");
    }
    let (bytes, origin) = if let Some(f) = file {
        let bytes = std::fs::read(f)
            .with_context(|| format!("cannot read --flux-manifest {}", f.display()))?;
        (bytes, Origin::File(f.to_path_buf()))
    } else if let (None, Some((program, version))) = (&want, flux_cli(flux)) {
        let out = std::process::Command::new(&program)
            .args(["install", "--export"])
            .output()
            .with_context(|| format!("running `{program} install --export`"))?;
        if !out.status.success() {
            bail!(
                "`{program} install --export` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        (out.stdout, Origin::Cli(version))
    } else {
        let mut resp = ureq::get(FLUX_INSTALL_URL).call().with_context(|| {
            format!(
                "downloading {FLUX_INSTALL_URL} (no `flux` CLI on PATH; offline, pass --flux-manifest FILE)"
            )
        })?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(FLUX_MAX_BYTES)
            .read_to_vec()
            .context("reading Flux's install.yaml")?;
        let sha256 = hex_sha256(&body);
        (body, Origin::Download { sha256 })
    };
    if let Some(w) = &want {
        let got = hex_sha256(&bytes);
        if &got != w {
            bail!("{origin}: SHA-256 is {got}, expected {w}: refusing to apply it");
        }
    }
    Ok((bytes, origin))
}

/// Parses and checks Flux's install manifest.
pub fn parse(bytes: Vec<u8>, origin: &Origin) -> Result<Vec<Value>> {
    let source = PathBuf::from(origin.to_string());
    let text = String::from_utf8(bytes).with_context(|| format!("{origin}: not UTF-8"))?;
    let objects: Vec<Value> = manifests::parse_documents(&text, &source)?
        .into_iter()
        .map(|m| m.object)
        .collect();
    let has_crd = objects.iter().any(|o| {
        o["kind"] == "CustomResourceDefinition"
            && o["spec"]["group"] == "kustomize.toolkit.fluxcd.io"
    });
    let has_oci = objects.iter().any(|o| {
        o["kind"] == "CustomResourceDefinition"
            && o["metadata"]["name"] == "ocirepositories.source.toolkit.fluxcd.io"
    });
    let has_ns = objects
        .iter()
        .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "flux-system");
    if !has_crd || !has_ns {
        bail!(
            "{origin}: does not look like Flux's install.yaml (needs the kustomize.toolkit.fluxcd.io CRDs and the flux-system Namespace)"
        );
    }
    if !has_oci {
        bail!("{origin}: this Flux has no OCIRepository CRD (Flux 2.6 or later is needed)");
    }
    Ok(objects)
}

/// Fetches and parses.
pub fn load(file: Option<&Path>, sha256: Option<&str>) -> Result<(Vec<Value>, Origin)> {
    let (bytes, origin) = fetch(file, sha256)?;
    Ok((parse(bytes, &origin)?, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n---\n\
apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: kustomizations.kustomize.toolkit.fluxcd.io\nspec:\n  group: kustomize.toolkit.fluxcd.io\n---\n\
apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ocirepositories.source.toolkit.fluxcd.io\nspec:\n  group: source.toolkit.fluxcd.io\n";

    #[test]
    fn a_file_is_checked_against_the_given_digest() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("install.yaml");
        std::fs::write(&f, MINIMAL).unwrap();
        let right = hex_sha256(MINIMAL.as_bytes());
        let (objects, origin) = load(Some(&f), Some(&right.to_uppercase())).unwrap();
        assert_eq!(objects.len(), 3);
        assert_eq!(origin, Origin::File(f.clone()));
        let e = load(Some(&f), Some(&"0".repeat(64)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing to apply it"), "{e}");
        assert!(
            load(Some(&f), Some("abc"))
                .unwrap_err()
                .to_string()
                .contains("64 hex")
        );
    }

    #[test]
    fn not_flux_or_too_old_is_refused() {
        let o = Origin::File("x.yaml".into());
        let e = parse(
            b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n".to_vec(),
            &o,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not look like Flux"), "{e}");
        let old = MINIMAL.split("---").take(2).collect::<Vec<_>>().join("---");
        let e = parse(old.into_bytes(), &o).unwrap_err().to_string();
        assert!(e.contains("no OCIRepository CRD"), "{e}");
    }

    #[test]
    fn the_flux_cli_is_used_when_on_path() {
        // A stand-in `flux` that prints a version and a manifest, as the real CLI does.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("flux");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$1\" in --version) echo 'flux version 2.9.0';; install) cat <<'EOF'\n{MINIMAL}EOF\n;; *) exit 2;; esac\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (bytes, origin) = fetch_with(None, None, script.to_str().unwrap()).unwrap();
        let objects = parse(bytes, &origin).unwrap();
        assert_eq!(origin, Origin::Cli("flux version 2.9.0".into()));
        assert_eq!(objects.len(), 3);
    }
}
