//! Registry logins from the Docker config file (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), read by the `docker_credential` crate: `auths` entries (`auth`,
//! `username`/`password`, `identitytoken`) and credential helpers (`credHelpers`, `credsStore`,
//! run as `docker-credential-<name> get`). What stays here is where the file is, and what
//! counts as "no login": no file, no entry, or a helper that has none.

use super::Reference;
use anyhow::{Context, Result, anyhow};
use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;
use std::path::{Path, PathBuf};

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The names Docker files a registry's login under, in the order tried. `docker_credential`
/// matches `https://HOST`, `http://HOST/...` for `HOST`, and `docker.io` for Docker Hub's keys
/// other than its v1 index URL, the one Docker itself writes and hands to helpers.
fn server_keys(registry: &str) -> Vec<&str> {
    if registry == "docker.io" {
        vec!["https://index.docker.io/v1/", "docker.io"]
    } else {
        vec![registry]
    }
}

/// The login for `registry` in the Docker config `config` (its bytes), running the credential
/// helper it names; `None` when it has none.
pub fn credentials_in(config: &[u8], registry: &str) -> Result<Option<RegistryAuth>> {
    // docker_credential says only "Unable to read config"; serde_json says where.
    serde_json::from_slice::<serde::de::IgnoredAny>(config).context("invalid JSON")?;
    for server in server_keys(registry) {
        match docker_credential::get_credential_from_reader(config, server) {
            Ok(DockerCredential::UsernamePassword(_, p)) if p.is_empty() => return Ok(None),
            Ok(DockerCredential::UsernamePassword(u, p)) => {
                return Ok(Some(RegistryAuth::Basic(u, p)));
            }
            // Sent where a password goes, under the name helpers give a token: `<token>`.
            Ok(DockerCredential::IdentityToken(t)) => {
                return Ok(Some(RegistryAuth::Basic("<token>".into(), t)));
            }
            Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
            // A helper that exits non-zero has no login for it ("credentials not found"): the
            // push goes anonymously, and the registry says if it wants one.
            Err(CredentialRetrievalError::HelperFailure { .. }) => return Ok(None),
            Err(CredentialRetrievalError::HelperCommunicationError) => {
                return Err(anyhow!(
                    "cannot run the Docker credential helper it names for {server} (docker-credential-<name> on PATH)"
                ));
            }
            Err(CredentialRetrievalError::ConfigReadError) => {
                return Err(anyhow!("not a Docker config file"));
            }
            Err(e) => return Err(anyhow!("the login for {server}: {e}")),
        }
    }
    Ok(None)
}

/// The login for `registry` from the Docker config file at `path` (missing file: none).
pub fn load_credentials(path: &Path, registry: &str) -> Result<Option<RegistryAuth>> {
    let config = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    credentials_in(&config, registry).with_context(|| path.display().to_string())
}

/// The login for `reference`'s registry from the Docker config (none when there is no config).
pub fn credentials_for(reference: &Reference) -> Result<Option<RegistryAuth>> {
    match docker_config_path() {
        Some(cfg) => load_credentials(&cfg, &reference.registry),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    fn login(config: &serde_json::Value, registry: &str) -> Result<Option<RegistryAuth>> {
        credentials_in(config.to_string().as_bytes(), registry)
    }

    #[test]
    fn docker_config_credentials() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let cfg = json!({"auths": {
            "registry.example:5000": {"auth": auth},
            "https://other.example": {"username": "carol", "password": "pw2"},
            "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
            "token.example": {"identitytoken": "tok"},
        }});
        let basic = |u: &str, p: &str| Some(RegistryAuth::Basic(u.into(), p.into()));
        assert_eq!(
            login(&cfg, "registry.example:5000").unwrap(),
            basic("alice", "s3cret")
        );
        assert_eq!(login(&cfg, "other.example").unwrap(), basic("carol", "pw2"));
        assert_eq!(login(&cfg, "docker.io").unwrap(), basic("bob", "pw"));
        assert_eq!(
            login(&cfg, "token.example").unwrap(),
            basic("<token>", "tok")
        );
        assert_eq!(login(&cfg, "none.example").unwrap(), None);
        // Docker Hub under its other names.
        let hub = json!({"auths": {"docker.io": {"username": "bob", "password": "pw"}}});
        assert_eq!(login(&hub, "docker.io").unwrap(), basic("bob", "pw"));

        let bad = json!({"auths": {"r.example": {"auth": "%%%"}}});
        let err = login(&bad, "r.example").unwrap_err().to_string();
        assert!(err.contains("r.example"), "{err}");
        let err = format!(
            "{:#}",
            credentials_in(b"{not json", "r.example").unwrap_err()
        );
        assert!(
            err.contains("invalid JSON") && err.contains("line 1"),
            "{err}"
        );
        let err = credentials_in(b"[]", "r.example").unwrap_err();
        assert!(err.to_string().contains("not a Docker config"), "{err}");
        let debug = format!("{:?}", basic("a", "hidden").unwrap());
        assert!(!debug.contains("hidden"), "{debug}");
    }

    #[test]
    fn helpers_are_run_and_a_missing_one_is_named() {
        let cfg = json!({"credHelpers": {"gcr.io": "istio-demo-test-no-such-helper"}});
        let err = login(&cfg, "gcr.io").unwrap_err().to_string();
        assert!(
            err.contains("credential helper") && err.contains("gcr.io"),
            "{err}"
        );
        let cfg = json!({"credsStore": "istio-demo-test-no-such-helper"});
        assert!(login(&cfg, "docker.io").is_err());
    }

    #[test]
    fn a_missing_config_file_is_no_login() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load_credentials(&dir.path().join("config.json"), "r.example").unwrap(),
            None
        );
        let path = dir.path().join("config.json");
        std::fs::write(&path, "[").unwrap();
        let err = format!("{:#}", load_credentials(&path, "r.example").unwrap_err());
        assert!(err.contains("config.json: invalid JSON"), "{err}");
    }
}
