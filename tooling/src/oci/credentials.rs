//! Registry credentials from the Docker config file (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): an `auths` entry (`auth` = base64 `user:password`, or
//! `username`/`password`, or `identitytoken`), or a credential helper (`credHelpers` /
//! `credsStore`, run as `docker-credential-<name> get`).

use super::Reference;
use anyhow::{Context, Result, anyhow};
use base64::Engine;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A user name and password (or identity token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The keys under which Docker stores a registry's credentials.
fn config_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        return [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
        ]
        .map(String::from)
        .to_vec();
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ]
}

/// Where credentials for `registry` come from in a parsed Docker config.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialSource {
    None,
    Auths(Credentials),
    Helper { helper: String, server: String },
}

/// Finds credentials for `registry` in a Docker config (`credHelpers` first, then `auths`, then `credsStore`).
pub fn credentials_in_config(config: &Value, registry: &str) -> Result<CredentialSource> {
    let keys = config_keys(registry);
    if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
        for k in &keys {
            if let Some(h) = helpers.get(k).and_then(Value::as_str) {
                return Ok(CredentialSource::Helper {
                    helper: h.to_string(),
                    server: k.clone(),
                });
            }
        }
    }
    let auths = config.get("auths").and_then(Value::as_object);
    for k in &keys {
        let Some(entry) = auths.and_then(|a| a.get(k)) else {
            continue;
        };
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .with_context(|| format!("auths[{k:?}].auth is not base64"))?;
            let text = String::from_utf8(raw)
                .with_context(|| format!("auths[{k:?}].auth is not UTF-8"))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| anyhow!("auths[{k:?}].auth must encode user:password"))?;
            return Ok(CredentialSource::Auths(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(CredentialSource::Auths(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
        if let Some(t) = entry.get("identitytoken").and_then(Value::as_str) {
            return Ok(CredentialSource::Auths(Credentials {
                username: "<token>".into(),
                password: t.into(),
            }));
        }
    }
    if let Some(store) = config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return Ok(CredentialSource::Helper {
            helper: store.to_string(),
            server: keys[0].clone(),
        });
    }
    Ok(CredentialSource::None)
}

/// Runs `docker-credential-<helper> get` for `server` (Docker Desktop's `desktop`, `osxkeychain`...).
fn run_helper(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run the Docker credential helper {program}"))?;
    child
        .stdin
        .take()
        .context("helper stdin")?
        .write_all(server.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        // "credentials not found" is not an error: push anonymously.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{program} printed invalid JSON"))?;
    let u = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let p = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    if p.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: u.to_string(),
        password: p.to_string(),
    }))
}

/// Credentials for `registry` from the Docker config file at `path` (missing file: none).
pub fn load_credentials(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    match credentials_in_config(&config, registry).with_context(|| path.display().to_string())? {
        CredentialSource::None => Ok(None),
        CredentialSource::Auths(c) => Ok(Some(c)),
        CredentialSource::Helper { helper, server } => run_helper(&helper, &server),
    }
}

/// Credentials for `reference`'s registry from the Docker config (none when there is no config).
pub fn credentials_for(reference: &Reference) -> Result<Option<Credentials>> {
    match docker_config_path() {
        Some(cfg) => load_credentials(&cfg, &reference.registry),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_config_credentials() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let cfg = json!({"auths": {"registry.example:5000": {"auth": auth}, "https://index.docker.io/v1/": {"username": "bob", "password": "pw"}}});
        assert_eq!(
            credentials_in_config(&cfg, "registry.example:5000").unwrap(),
            CredentialSource::Auths(Credentials {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            credentials_in_config(&cfg, "docker.io").unwrap(),
            CredentialSource::Auths(Credentials {
                username: "bob".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            credentials_in_config(&cfg, "other.example").unwrap(),
            CredentialSource::None
        );
        let cfg =
            json!({"auths": {}, "credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}});
        assert_eq!(
            credentials_in_config(&cfg, "gcr.io").unwrap(),
            CredentialSource::Helper {
                helper: "gcloud".into(),
                server: "gcr.io".into()
            }
        );
        assert_eq!(
            credentials_in_config(&cfg, "docker.io").unwrap(),
            CredentialSource::Helper {
                helper: "desktop".into(),
                server: "https://index.docker.io/v1/".into()
            }
        );
        let bad = json!({"auths": {"r.example": {"auth": "%%%"}}});
        assert!(
            credentials_in_config(&bad, "r.example")
                .unwrap_err()
                .to_string()
                .contains("not base64")
        );
        let debug = format!(
            "{:?}",
            Credentials {
                username: "a".into(),
                password: "hidden".into()
            }
        );
        assert!(!debug.contains("hidden"));
    }
}
