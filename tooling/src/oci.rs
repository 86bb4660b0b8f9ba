//! OCI images over the distribution HTTP API: the filter as the wasm image Istio's `WasmPlugin`
//! fetches, and (through the same push) the Flux OCI artifact of `crate::deploy::artifact`.
//!
//! - `image`: what a push sends (`Parts`: blobs, then the manifest naming them) and the filter
//!   packaged in Istio's "compat" layout, reproducibly (the same module, the same digest).
//! - `reference`: `[registry/]repository:tag` as Docker parses it.
//! - `credentials`: logins from the Docker config file and its credential helpers.
//! - `distribution`: the registry client (Basic and Bearer challenges) and `push_parts`.

mod credentials;
mod distribution;
mod image;
mod reference;

pub use credentials::{
    CredentialSource, Credentials, credentials_for, credentials_in_config, docker_config_path,
    load_credentials,
};
pub use distribution::{Challenge, Registry, Reply, check_parts, parse_challenge, push_parts};
pub use image::{
    BlobRef, CONFIG_MEDIA_TYPE, Image, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MAX_WASM_BYTES,
    Parts, WASM_FILE_NAME, check_wasm, extract_wasm, package, sha256_digest,
};
pub use reference::Reference;

use anyhow::Result;

/// Packages and pushes `wasm` to `reference`; returns the image and the manifest digest to pin.
pub fn push(
    wasm: &[u8],
    reference: &Reference,
    insecure: bool,
    credentials: Option<Credentials>,
) -> Result<(Image, String)> {
    let image = package(wasm)?;
    let digest = push_parts(&image.parts(), reference, insecure, credentials)?;
    Ok((image, digest))
}
