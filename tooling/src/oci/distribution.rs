//! A client for the OCI distribution HTTP API, and the one push every image goes through.
//!
//! Push: for each blob `HEAD` (skip if present), else `POST /v2/<name>/blobs/uploads/` and a
//! monolithic `PUT <location>?digest=...`; then `PUT /v2/<name>/manifests/<tag>`. Basic and Bearer
//! (token service) challenges are both answered, with the credentials given.

use super::{Credentials, Parts, Reference, sha256_digest};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::Value;
use std::time::Duration;

/// Largest response body we read from a registry (manifests, token answers, errors).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// A challenge from `WWW-Authenticate`.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.as_str() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            "scope" => scope = Some(value.to_string()),
            _ => {}
        }
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
        scope,
    })
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response, read whole (bounded).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn error_text(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body = body.trim();
        if body.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!(
                "HTTP {}: {}",
                self.status,
                body.chars().take(500).collect::<String>()
            )
        }
    }
}

/// A client for one repository of one registry.
pub struct Registry {
    agent: ureq::Agent,
    base: String,
    repository: String,
    credentials: Option<Credentials>,
    authorization: Option<String>,
}

impl Registry {
    /// `insecure`: plain HTTP (local registries).
    pub fn new(reference: &Reference, insecure: bool, credentials: Option<Credentials>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .timeout_connect(Some(Duration::from_secs(15)))
            .max_redirects(5)
            .build()
            .into();
        let scheme = if insecure { "http" } else { "https" };
        Registry {
            agent,
            base: format!("{scheme}://{}", reference.api_host()),
            repository: reference.repository.clone(),
            credentials,
            authorization: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(auth) = &self.authorization {
            builder = builder.header("Authorization", auth.as_str());
        }
        let result = match body {
            Some(b) => self.agent.run(builder.body(b)?),
            None => self.agent.run(builder.body(())?),
        };
        let mut resp = result.map_err(|e| match e {
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                anyhow!("{method} {url}: connection refused (is the registry running?)")
            }
            other => anyhow!(
                "{method} {url}: {other}{}",
                if url.starts_with("https") {
                    " (a plain-HTTP registry needs --insecure)"
                } else {
                    ""
                }
            ),
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            resp.body_mut()
                .with_config()
                .limit(MAX_RESPONSE_BYTES)
                .read_to_vec()
                .unwrap_or_default()
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends a request; on 401 answers the challenge once and retries.
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        let reply = self.send_once(method, url, headers, body)?;
        if reply.status != 401 {
            return Ok(reply);
        }
        let challenge = reply.header("www-authenticate").and_then(parse_challenge);
        match challenge {
            Some(Challenge::Basic) => {
                let c = self.credentials.clone().ok_or_else(|| {
                    anyhow!("{} asks for a login and there are no credentials for it in the Docker config (run `docker login`)", self.base)
                })?;
                let raw = format!("{}:{}", c.username, c.password);
                self.authorization = Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ));
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull,push", self.repository));
                let mut token_url = format!("{realm}?scope={}", percent_encode(&scope));
                if let Some(s) = service {
                    token_url.push_str(&format!("&service={}", percent_encode(&s)));
                }
                let mut req = self.agent.get(&token_url);
                if let Some(c) = &self.credentials {
                    let raw = format!("{}:{}", c.username, c.password);
                    req = req.header(
                        "Authorization",
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(raw)
                        ),
                    );
                }
                let mut resp = req
                    .call()
                    .with_context(|| format!("token request to {realm}"))?;
                let status = resp.status().as_u16();
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec()
                    .unwrap_or_default();
                if status != 200 {
                    bail!(
                        "token service {realm} refused: HTTP {status} (check the credentials for this registry)"
                    );
                }
                let v: Value =
                    serde_json::from_slice(&body).context("token service answered invalid JSON")?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("token service answered without a token"))?;
                self.authorization = Some(format!("Bearer {token}"));
            }
            None => bail!("{method} {url}: HTTP 401 without a usable WWW-Authenticate challenge"),
        }
        let reply = self.send_once(method, url, headers, body)?;
        if reply.status == 401 || reply.status == 403 {
            bail!(
                "{method} {url}: access denied with the Docker config's credentials ({})",
                reply.error_text()
            );
        }
        Ok(reply)
    }

    /// Checks the registry speaks the distribution API (`GET /v2/`).
    pub fn ping(&mut self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let r = self.send("GET", &url, &[], None)?;
        if r.status != 200 {
            bail!("{url}: not an OCI registry ({})", r.error_text());
        }
        Ok(())
    }

    /// True when the repository already holds the blob.
    pub fn has_blob(&mut self, digest: &str) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        let r = self.send("HEAD", &url, &[], None)?;
        Ok(r.status == 200)
    }

    /// Uploads a blob: `POST` an upload session, then one monolithic `PUT` with the digest.
    pub fn upload_blob(&mut self, data: &[u8], digest: &str) -> Result<()> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let url = self.url("blobs/uploads/");
        let r = self.send("POST", &url, &[("Content-Length", "0")], Some(&[]))?;
        if r.status != 202 {
            bail!(
                "POST {url}: cannot start a blob upload ({})",
                r.error_text()
            );
        }
        let location = r
            .header("location")
            .ok_or_else(|| anyhow!("POST {url}: no Location in the answer"))?;
        let mut put = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            bail!("POST {url}: unexpected Location {location:?}");
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={}", percent_encode(digest)));
        let len = data.len().to_string();
        let r = self.send(
            "PUT",
            &put,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
            ],
            Some(data),
        )?;
        if r.status != 201 {
            bail!("PUT blob {digest}: upload refused ({})", r.error_text());
        }
        Ok(())
    }

    /// Puts the manifest under `tag`; returns the digest the registry reports (or ours).
    pub fn put_manifest(&mut self, tag: &str, manifest: &[u8], media_type: &str) -> Result<String> {
        let url = self.url(&format!("manifests/{tag}"));
        let r = self.send("PUT", &url, &[("Content-Type", media_type)], Some(manifest))?;
        if r.status != 201 {
            bail!("PUT {url}: manifest refused ({})", r.error_text());
        }
        Ok(r.header("docker-content-digest")
            .map(str::to_string)
            .unwrap_or_else(|| sha256_digest(manifest)))
    }
}

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

/// Pushes `parts` to `reference`: each blob the repository lacks, then the manifest under the
/// reference's tag. Returns the manifest digest, which must be the registry's too.
pub fn push_parts(
    parts: &Parts<'_>,
    reference: &Reference,
    insecure: bool,
    credentials: Option<Credentials>,
) -> Result<String> {
    check_parts(parts)?;
    let expected = sha256_digest(parts.manifest);
    let mut registry = Registry::new(reference, insecure, credentials);
    registry.ping()?;
    for blob in &parts.blobs {
        registry
            .upload_blob(blob.data, blob.digest)
            .with_context(|| format!("uploading the {}", blob.what))?;
    }
    let digest =
        registry.put_manifest(&reference.tag, parts.manifest, parts.manifest_media_type)?;
    if digest != expected {
        bail!(
            "the registry stored the manifest as {digest}, not {expected}: refusing to print a digest that would not match"
        );
    }
    Ok(digest)
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
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"registry\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a/b:pull,push\""
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
    }
}
