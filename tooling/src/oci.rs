//! OCI images: the filter as the wasm image Istio's `WasmPlugin` fetches, and (through the same
//! push) the Flux OCI artifact of `crate::deploy::artifact`. The distribution protocol is the
//! `oci-client` crate's and the Docker logins the `docker_credential` crate's; what is ours is
//! the layouts and the push by digest.
//!
//! - `image`: what a push sends (`Parts`: blobs, then the manifest naming them) and the filter
//!   packaged in Istio's "compat" layout, reproducibly (the same module, the same digest).
//! - `reference`: `[registry/]repository:tag` as Docker parses it.
//! - `credentials`: where the Docker config is, and what counts as no login.
//! - `distribution`: `push_parts` over oci-client, with errors that say what to do.

mod credentials;
mod distribution;
mod image;
mod reference;

pub use credentials::{credentials_for, credentials_in, docker_config_path, load_credentials};
pub use distribution::{check_parts, push_parts};
pub use image::{
    BlobRef, CONFIG_MEDIA_TYPE, Image, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MAX_WASM_BYTES,
    Parts, WASM_FILE_NAME, check_wasm, extract_wasm, package, sha256_digest,
};
pub use oci_client::secrets::RegistryAuth;
pub use reference::Reference;

use anyhow::Result;

/// Packages and pushes `wasm` to `reference`; returns the image and the manifest digest to pin.
pub async fn push(
    wasm: &[u8],
    reference: &Reference,
    insecure: bool,
    credentials: Option<RegistryAuth>,
) -> Result<(Image, String)> {
    let image = package(wasm)?;
    let digest = push_parts(&image.parts(), reference, insecure, credentials).await?;
    Ok((image, digest))
}
