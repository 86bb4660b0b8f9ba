//! Packaging the filter as an OCI image that Istio's `WasmPlugin` fetches, and pushing it with the
//! OCI distribution HTTP API.
//!
//! Layout: Istio's image fetcher accepts three formats; we produce the "compat" variant with
//! standard OCI media types, which every registry stores: an image manifest
//! (`application/vnd.oci.image.manifest.v1+json`) whose single layer
//! (`application/vnd.oci.image.layer.v1.tar+gzip`) is a gzip'd tar holding one file, `plugin.wasm`,
//! and an image config (`application/vnd.oci.image.config.v1+json`) whose `rootfs.diff_ids` names the
//! uncompressed tar. The tar entry and the gzip header carry no time stamp, so the same module
//! always gives the same digest.
//!
//! Push: for each blob `HEAD` (skip if present), else `POST /v2/<name>/blobs/uploads/` and a
//! monolithic `PUT <location>?digest=...`; then `PUT /v2/<name>/manifests/<tag>`. Credentials come
//! from the Docker config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): an
//! `auths` entry (`auth` = base64 `user:password`, or `username`/`password`), or a credential
//! helper (`credHelpers` / `credsStore`, run as `docker-credential-<name> get`). Basic and Bearer
//! (token service) challenges are both answered.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file name Istio's fetcher looks for in a compat layer.
pub const WASM_FILE_NAME: &str = "plugin.wasm";
/// Largest module we package (Istio's own fetch limit is larger; a filter this big is a mistake).
pub const MAX_WASM_BYTES: u64 = 64 * 1024 * 1024;
/// Largest response body we read from a registry (manifests, token answers, errors).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let mut s = String::from("sha256:");
    for b in Sha256::digest(data) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A packaged image: every blob and the manifest, with their digests.
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

/// An image reference `[registry/]repository:tag`, parsed as Docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// As written by the user (`docker.io` for Docker Hub).
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.strip_prefix("oci://").unwrap_or(s);
        if s.is_empty() {
            bail!("empty image reference");
        }
        if s.contains('@') {
            bail!(
                "{s:?}: give a tag, not a digest: the digest is computed and printed by the push"
            );
        }
        let (name, tag) = match s.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => bail!(
                "{s:?}: missing tag (write REGISTRY/REPOSITORY:TAG, e.g. localhost:5000/rfma-filter:0.1.0)"
            ),
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !tag_ok {
            bail!(
                "{s:?}: invalid tag {tag:?} (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
            );
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if repository.is_empty() || !repository.split('/').all(component_ok) {
            bail!(
                "{s:?}: invalid repository {repository:?} (lowercase letters, digits and . _ - between slashes)"
            );
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.to_string(),
        })
    }

    /// The host that serves the registry API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// `oci://registry/repository@digest`, what a WasmPlugin `url` pins.
    pub fn pinned(&self, digest: &str) -> String {
        format!("oci://{}/{}@{digest}", self.registry, self.repository)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

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

/// Packages and pushes `wasm` to `reference`; returns the manifest digest to pin.
pub fn push(
    wasm: &[u8],
    reference: &Reference,
    insecure: bool,
    credentials: Option<Credentials>,
) -> Result<(Image, String)> {
    let image = package(wasm)?;
    let mut registry = Registry::new(reference, insecure, credentials);
    registry.ping()?;
    registry
        .upload_blob(&image.layer, &image.layer_digest)
        .context("uploading the layer")?;
    registry
        .upload_blob(&image.config, &image.config_digest)
        .context("uploading the config")?;
    let digest = registry.put_manifest(&reference.tag, &image.manifest, MANIFEST_MEDIA_TYPE)?;
    if digest != image.manifest_digest {
        bail!(
            "the registry stored the manifest as {digest}, not {}: refusing to print a digest that would not match",
            image.manifest_digest
        );
    }
    Ok((image, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn references() {
        let r = Reference::parse("127.0.0.1:5000/rfma/filter:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "rfma/filter", "v1")
        );
        assert_eq!(
            r.pinned("sha256:ab"),
            "oci://127.0.0.1:5000/rfma/filter@sha256:ab"
        );
        let r = Reference::parse("oci://ghcr.io/acme/rfma-filter:0.1.0").unwrap();
        assert_eq!(r.api_host(), "ghcr.io");
        let r = Reference::parse("acme/filter:1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.api_host()),
            ("docker.io", "registry-1.docker.io")
        );
        assert_eq!(
            Reference::parse("filter:1").unwrap().repository,
            "library/filter"
        );
        assert!(
            Reference::parse("localhost:5000/filter")
                .unwrap_err()
                .to_string()
                .contains("missing tag")
        );
        assert!(
            Reference::parse("localhost:5000/Filter:1")
                .unwrap_err()
                .to_string()
                .contains("invalid repository")
        );
        assert!(
            Reference::parse("x/y@sha256:00")
                .unwrap_err()
                .to_string()
                .contains("not a digest")
        );
        assert!(
            Reference::parse("x/y:-bad")
                .unwrap_err()
                .to_string()
                .contains("invalid tag")
        );
    }

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
