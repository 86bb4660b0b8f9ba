//! What a push sends (`Parts`: blobs and the manifest that names them), and the filter packaged as
//! an Istio "compat" wasm image.
//!
//! Compat layout: an image manifest (`application/vnd.oci.image.manifest.v1+json`) whose single
//! layer (`application/vnd.oci.image.layer.v1.tar+gzip`) is a gzip'd tar holding one file,
//! `plugin.wasm`, and an image config (`application/vnd.oci.image.config.v1+json`) whose
//! `rootfs.diff_ids` names the uncompressed tar. The tar entry and the gzip header carry no time
//! stamp, so the same module always gives the same digest.

use anyhow::{Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file name Istio's fetcher looks for in a compat layer.
pub const WASM_FILE_NAME: &str = "plugin.wasm";
/// Largest module we package (Istio's own fetch limit is larger; a filter this big is a mistake).
pub const MAX_WASM_BYTES: u64 = 64 * 1024 * 1024;

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let mut s = String::from("sha256:");
    for b in Sha256::digest(data) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// One blob of a push: what it is (for messages), its digest and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct BlobRef<'a> {
    /// "layer", "config": names the blob in error messages.
    pub what: &'static str,
    pub digest: &'a str,
    pub data: &'a [u8],
}

/// Everything one push sends: the blobs (uploaded in this order), then the manifest, which must
/// name exactly these blobs. Both the wasm image and the Flux artifact push through this.
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    pub manifest: &'a [u8],
    pub manifest_media_type: &'a str,
    pub blobs: Vec<BlobRef<'a>>,
}

impl<'a> Parts<'a> {
    /// An OCI image manifest with one layer and its config: the wasm image and the Flux artifact.
    pub fn one_layer(
        manifest: &'a [u8],
        (layer_digest, layer): (&'a str, &'a [u8]),
        (config_digest, config): (&'a str, &'a [u8]),
    ) -> Self {
        Parts {
            manifest,
            manifest_media_type: MANIFEST_MEDIA_TYPE,
            blobs: vec![
                BlobRef {
                    what: "layer",
                    digest: layer_digest,
                    data: layer,
                },
                BlobRef {
                    what: "config",
                    digest: config_digest,
                    data: config,
                },
            ],
        }
    }
}

/// A packaged wasm image: every blob and the manifest, with their digests.
#[derive(Debug, Clone)]
pub struct Image {
    /// gzip'd tar with `plugin.wasm`.
    pub layer: Vec<u8>,
    pub layer_digest: String,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

impl Image {
    /// The blobs and manifest to push.
    pub fn parts(&self) -> Parts<'_> {
        Parts::one_layer(
            &self.manifest,
            (&self.layer_digest, &self.layer),
            (&self.config_digest, &self.config),
        )
    }
}

/// Checks that `wasm` is a WebAssembly binary module (magic and version 1).
pub fn check_wasm(wasm: &[u8]) -> Result<()> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        bail!("not a WebAssembly module (no \\0asm magic at the start)");
    }
    if wasm[4..8] != [1, 0, 0, 0] {
        bail!(
            "unsupported WebAssembly binary version {:?} (expected 1)",
            &wasm[4..8]
        );
    }
    Ok(())
}

/// Packages a module in the compat layout.
pub fn package(wasm: &[u8]) -> Result<Image> {
    check_wasm(wasm)?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path(WASM_FILE_NAME)?;
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, wasm)?;
    let tar = tar.into_inner()?;
    let diff_id = sha256_digest(&tar);

    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar)?;
    let layer = gz.finish()?;
    let layer_digest = sha256_digest(&layer);

    // The OCI image config requires architecture, os and rootfs; a Proxy-Wasm module is wasm/wasip1.
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let config_digest = sha256_digest(&config);

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": LAYER_MEDIA_TYPE,
            "digest": layer_digest,
            "size": layer.len(),
            "annotations": {"org.opencontainers.image.title": WASM_FILE_NAME},
        }],
        "annotations": {"org.opencontainers.image.title": "rfma-filter"},
    }))?;
    let manifest_digest = sha256_digest(&manifest);
    Ok(Image {
        layer,
        layer_digest,
        diff_id,
        config,
        config_digest,
        manifest,
        manifest_digest,
    })
}

/// Extracts `plugin.wasm` from a compat layer (gzip'd tar), as Istio's fetcher does.
pub fn extract_wasm(layer: &[u8]) -> Result<Vec<u8>> {
    let gz = flate2::read::GzDecoder::new(layer);
    let mut archive = tar::Archive::new(gz.take(MAX_WASM_BYTES * 2));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let is_wasm = entry
            .path()?
            .file_name()
            .is_some_and(|n| n == WASM_FILE_NAME);
        if is_wasm {
            let mut out = Vec::new();
            entry.read_to_end(&mut out)?;
            return Ok(out);
        }
    }
    bail!("{WASM_FILE_NAME} not found in the layer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const TINY_WASM: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn package_is_compat_layout_and_reproducible() {
        let a = package(TINY_WASM).unwrap();
        let b = package(TINY_WASM).unwrap();
        assert_eq!(
            a.manifest_digest, b.manifest_digest,
            "packaging must be deterministic"
        );
        assert_eq!(extract_wasm(&a.layer).unwrap(), TINY_WASM);
        let m: Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(m["layers"][0]["digest"], a.layer_digest);
        assert_eq!(m["layers"][0]["size"], a.layer.len());
        assert_eq!(m["config"]["digest"], a.config_digest);
        let c: Value = serde_json::from_slice(&a.config).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"][0], a.diff_id);
        assert_eq!(a.manifest_digest, sha256_digest(&a.manifest));
    }

    /// The digests the compat packaging gave before the push was shared with the Flux artifact:
    /// a module pinned in a WasmPlugin must keep its digest across releases of this tool.
    #[test]
    fn package_digests_are_pinned() {
        assert_eq!(
            package(TINY_WASM).unwrap().manifest_digest,
            "sha256:f733d8f08c1714bee43d1cccec7f31aaca615f9618ff0ba16184cdb79442ff97"
        );
        let mut big = TINY_WASM.to_vec();
        big.extend((0..5000u32).map(|i| (i * 7 % 251) as u8));
        assert_eq!(
            package(&big).unwrap().manifest_digest,
            "sha256:69cb5daeec71e229190fc33f92e6768e7d782a2e8fd264c5e0c668f056391cf1"
        );
    }

    #[test]
    fn parts_name_the_manifest_blobs() {
        let image = package(TINY_WASM).unwrap();
        let parts = image.parts();
        assert_eq!(parts.manifest, &image.manifest[..]);
        assert_eq!(parts.manifest_media_type, MANIFEST_MEDIA_TYPE);
        let digests: Vec<&str> = parts.blobs.iter().map(|b| b.digest).collect();
        assert_eq!(digests, [&image.layer_digest, &image.config_digest]);
        for b in &parts.blobs {
            assert_eq!(sha256_digest(b.data), b.digest, "{}", b.what);
        }
    }

    #[test]
    fn rejects_non_wasm() {
        assert!(
            package(b"#!/bin/sh\n")
                .unwrap_err()
                .to_string()
                .contains("not a WebAssembly module")
        );
        assert!(
            package(b"\0asm\x0d\0\x01\0")
                .unwrap_err()
                .to_string()
                .contains("version")
        );
    }
}
