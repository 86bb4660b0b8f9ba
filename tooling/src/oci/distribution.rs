//! The one push every image goes through, over the `oci-client` crate (the distribution API, its
//! Basic and Bearer challenges, blob uploads): each blob the repository lacks, then the manifest
//! as the very bytes given, under the reference's tag. The manifest is never re-serialised, so the
//! digest computed before the push (and already written into the manifests `up` renders) is the
//! one the registry stores; the push checks that it is.
//!
//! What oci-client leaves to its caller, and this file does: a rustls crypto provider (ring, as
//! kube's), and errors that say what to do (`docker login`, `--insecure`) in place of raw HTTP ones.

use super::{Parts, Reference, sha256_digest};
use anyhow::{Context, Result, anyhow, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use serde_json::Value;
use std::time::Duration;

/// Checks that `parts` is consistent before anything is sent: each blob matches its digest, and
/// the manifest names exactly the blobs given (its config and layers).
pub fn check_parts(parts: &Parts<'_>) -> Result<()> {
    for blob in &parts.blobs {
        let actual = sha256_digest(blob.data);
        if actual != blob.digest {
            bail!(
                "the {} is labelled {} but its bytes hash to {actual}",
                blob.what,
                blob.digest
            );
        }
    }
    let manifest: Value =
        serde_json::from_slice(parts.manifest).context("the manifest to push is not JSON")?;
    let mut named: Vec<&str> = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().into_iter().flatten())
        .map(|d| d["digest"].as_str().unwrap_or_default())
        .collect();
    let mut given: Vec<&str> = parts.blobs.iter().map(|b| b.digest).collect();
    named.sort_unstable();
    given.sort_unstable();
    if named != given {
        bail!("the manifest names the blobs {named:?} but the push carries {given:?}");
    }
    Ok(())
}

/// A registry client; `insecure`: plain HTTP (local registries, the port-forward of `up`).
fn client(insecure: bool) -> Result<Client> {
    // oci-client is built without a provider of its own (its default would be aws-lc-rs, which
    // needs a C toolchain); kube already links ring. An error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_from(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        // One POST and one PUT per blob, as `docker push` does for a small blob.
        use_monolithic_push: true,
        connect_timeout: Some(Duration::from_secs(15)),
        read_timeout: Some(Duration::from_secs(300)),
        ..ClientConfig::default()
    })
    .context("cannot build the registry client")
}

/// Pushes `parts` to `reference`: each blob the repository lacks, then the manifest under the
/// reference's tag. Returns the manifest digest, which must be the registry's too.
pub async fn push_parts(
    parts: &Parts<'_>,
    reference: &Reference,
    insecure: bool,
    credentials: Option<RegistryAuth>,
) -> Result<String> {
    check_parts(parts)?;
    let expected = sha256_digest(parts.manifest);
    let why = |e: OciDistributionError| explain(e, reference, insecure, credentials.is_some());
    let client = client(insecure)?;
    let image = reference.to_oci();
    let auth = credentials.clone().unwrap_or(RegistryAuth::Anonymous);
    client
        .auth(&image, &auth, RegistryOperation::Push)
        .await
        .map_err(why)?;
    for blob in &parts.blobs {
        let uploaded = async {
            if !client.blob_exists(&image, blob.digest).await? {
                client
                    .push_blob(&image, blob.data.to_vec(), blob.digest)
                    .await?;
            }
            Ok::<_, OciDistributionError>(())
        };
        uploaded
            .await
            .map_err(why)
            .with_context(|| format!("uploading the {}", blob.what))?;
    }
    let location = client
        .push_manifest_raw(
            &image,
            parts.manifest.to_vec(),
            parts.manifest_media_type.parse()?,
        )
        .await
        .map_err(why)
        .context("putting the manifest")?;
    // The registry answers with where the manifest is, by digest (distribution, and oci-client
    // for registries that leave it out); a location without one says nothing against ours.
    let stored = location
        .rsplit('/')
        .next()
        .and_then(|last| last.split(['?', '#']).next())
        .filter(|d| d.starts_with("sha256:"))
        .unwrap_or(&expected);
    if stored != expected {
        bail!(
            "the registry stored the manifest as {stored}, not {expected}: refusing to print a digest that would not match"
        );
    }
    Ok(expected)
}

/// The HTTP status behind an oci-client error, when there is one.
fn status(e: &OciDistributionError) -> Option<u16> {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            .then_some(401),
        OciDistributionError::RequestError(r) => r.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// True when the error's causes hold a refused TCP connection.
fn refused(e: &OciDistributionError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// What to do about an oci-client error: log in, fix the login, start the registry, or talk plain
/// HTTP to it. The error itself stays as the cause (it names no secret: URLs and statuses).
fn explain(
    e: OciDistributionError,
    reference: &Reference,
    insecure: bool,
    with_login: bool,
) -> anyhow::Error {
    let registry = &reference.registry;
    let advice = match status(&e) {
        Some(401 | 403) if !with_login => format!(
            "{registry} asks for a login and there are no credentials for it in the Docker config (run `docker login`)"
        ),
        Some(401 | 403) => {
            format!("{registry}: access denied with the Docker config's credentials")
        }
        Some(_) => return anyhow!(e),
        None if refused(&e) => format!("{registry}: connection refused (is the registry running?)"),
        None if !insecure && matches!(e, OciDistributionError::RequestError(_)) => format!(
            "{registry} cannot be reached over HTTPS (a plain-HTTP registry needs --insecure)"
        ),
        None => return anyhow!(e),
    };
    anyhow::Error::new(e).context(advice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{BlobRef, MANIFEST_MEDIA_TYPE, package};

    #[test]
    fn check_parts_refuses_inconsistent_pushes() {
        let image = package(b"\0asm\x01\0\0\0").unwrap();
        check_parts(&image.parts()).unwrap();

        let mut missing = image.parts();
        missing.blobs.pop();
        let err = check_parts(&missing).unwrap_err().to_string();
        assert!(err.contains("names the blobs"), "{err}");

        let mut lying = image.parts();
        lying.blobs[0] = BlobRef {
            what: "layer",
            digest: &image.layer_digest,
            data: b"other bytes",
        };
        let err = check_parts(&lying).unwrap_err().to_string();
        assert!(err.contains("the layer is labelled"), "{err}");

        let not_json = Parts {
            manifest: b"<html>",
            manifest_media_type: MANIFEST_MEDIA_TYPE,
            blobs: vec![],
        };
        assert!(
            check_parts(&not_json)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }

    #[test]
    fn errors_say_what_to_do() {
        let r = Reference::parse("127.0.0.1:5000/rfma/filter:v1").unwrap();
        let unauthorized = || OciDistributionError::UnauthorizedError {
            url: "http://127.0.0.1:5000/v2/rfma/filter/blobs/uploads/".into(),
        };
        let e = format!("{:#}", explain(unauthorized(), &r, true, false));
        assert!(
            e.contains("no credentials") && e.contains("docker login"),
            "{e}"
        );
        let e = format!("{:#}", explain(unauthorized(), &r, true, true));
        assert!(e.contains("access denied"), "{e}");
        let denied = OciDistributionError::ServerError {
            code: 403,
            url: "u".into(),
            message: "denied".into(),
        };
        assert!(format!("{:#}", explain(denied, &r, true, true)).contains("access denied"));
        let other = OciDistributionError::ServerError {
            code: 500,
            url: "u".into(),
            message: "boom".into(),
        };
        let e = format!("{:#}", explain(other, &r, false, false));
        assert!(e.contains("500") && !e.contains("--insecure"), "{e}");
    }

    /// A port nobody listens on: refused, and said so; over HTTPS the same port also says so
    /// (refused comes first: --insecure would not help).
    #[tokio::test]
    async fn a_registry_that_is_not_there_is_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Reference::parse(&format!("127.0.0.1:{port}/rfma/filter:v1")).unwrap();
        let image = package(b"\0asm\x01\0\0\0").unwrap();
        for insecure in [true, false] {
            let e = push_parts(&image.parts(), &r, insecure, None)
                .await
                .unwrap_err();
            let e = format!("{e:#}");
            assert!(
                e.contains("connection refused (is the registry running?)"),
                "{e}"
            );
        }
    }
}
