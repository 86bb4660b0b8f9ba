//! `istio-demo wasm push` end to end against a real registry on loopback: Debian's
//! `docker-registry` (distribution 2.8), started by each test on 127.0.0.1 and a free port, with
//! filesystem storage in a temporary directory. The image is pulled back over HTTP and checked:
//! media types, digests and the layer's `plugin.wasm`. Auth is checked three ways: none, basic
//! (htpasswd) and bearer tokens (the registry's token auth, with a static token endpoint on
//! loopback issuing an RS256 JWT signed by a throwaway openssl key).

use crate::support::registry::{get, htpasswd, pull_blob, sha256, start_registry};
use base64::Engine;
use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_istio-demo");

/// The module to push: the shipped one when `make wasm` built it, else a small valid module.
fn module(dir: &Path) -> (PathBuf, Vec<u8>) {
    if let Some(p) = std::env::var_os("RFMA_WASM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        let bytes = std::fs::read(&p).unwrap();
        return (p, bytes);
    }
    // Magic, version 1, and a custom section "rfma" with a payload, so the content is not trivial.
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    let payload = b"istio-demo wasm push test module";
    bytes.extend_from_slice(&[0, (5 + payload.len()) as u8, 4]);
    bytes.extend_from_slice(b"rfma");
    bytes.extend_from_slice(payload);
    let p = dir.join("test.wasm");
    std::fs::write(&p, &bytes).unwrap();
    (p, bytes)
}

fn push(
    reference: &str,
    wasm: &Path,
    docker_config: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(BIN)
        .args(["wasm", "push", reference, "--wasm"])
        .arg(wasm)
        .args(extra)
        .env("DOCKER_CONFIG", docker_config)
        .output()
        .unwrap()
}

fn stdout_field(out: &std::process::Output, key: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| {
            panic!(
                "no {key:?} line in {text:?} (stderr: {})",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .trim()
        .to_string()
}

struct Pulled {
    manifest: Value,
    manifest_type: String,
    manifest_digest_header: String,
    manifest_bytes: Vec<u8>,
}

fn pull_manifest(addr: &str, repo: &str, tag: &str, auth: Option<&str>) -> Pulled {
    let (status, headers, body) = get(
        &format!("http://{addr}/v2/{repo}/manifests/{tag}"),
        "application/vnd.oci.image.manifest.v1+json",
        auth,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    Pulled {
        manifest: serde_json::from_slice(&body).unwrap(),
        manifest_type: headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string(),
        manifest_digest_header: headers
            .get("docker-content-digest")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string(),
        manifest_bytes: body,
    }
}

/// Checks everything Istio's fetcher relies on; returns the manifest digest.
fn check_image(addr: &str, repo: &str, tag: &str, wasm: &[u8], auth: Option<&str>) -> String {
    let p = pull_manifest(addr, repo, tag, auth);
    assert_eq!(
        p.manifest_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(p.manifest["schemaVersion"], 2);
    assert_eq!(
        p.manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(sha256(&p.manifest_bytes), p.manifest_digest_header);
    assert_eq!(
        p.manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = p.manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "compat layout has exactly one layer");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let layer_digest = layers[0]["digest"].as_str().unwrap();
    let layer = pull_blob(addr, repo, layer_digest, auth);
    assert_eq!(layers[0]["size"].as_u64().unwrap(), layer.len() as u64);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&layer[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        files.push((name, content));
    }
    assert_eq!(files.len(), 1, "a single file in the layer");
    assert_eq!(files[0].0, "plugin.wasm");
    assert!(
        files[0].1 == wasm,
        "plugin.wasm differs from the pushed module"
    );

    let config = pull_blob(
        addr,
        repo,
        p.manifest["config"]["digest"].as_str().unwrap(),
        auth,
    );
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar_bytes));
    assert!(config["architecture"].is_string() && config["os"].is_string());
    p.manifest_digest_header
}

#[test]
fn push_to_a_local_registry_and_pull_it_back() {
    let reg = start_registry(|_| String::new());
    let work = tempfile::tempdir().unwrap();
    let (wasm_path, wasm) = module(work.path());
    let reference = format!("{}/rfma/filter:test", reg.addr);

    let out = push(&reference, &wasm_path, work.path(), &["--insecure"]);
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = stdout_field(&out, "digest:");
    assert_eq!(
        stdout_field(&out, "url:"),
        format!("oci://{}/rfma/filter@{digest}", reg.addr)
    );

    let pulled = check_image(&reg.addr, "rfma/filter", "test", &wasm, None);
    assert_eq!(
        pulled, digest,
        "printed digest must be the registry's manifest digest"
    );
    // The digest resolves too (what a pinned WasmPlugin url fetches).
    let by_digest = pull_manifest(&reg.addr, "rfma/filter", &digest, None);
    assert_eq!(by_digest.manifest_digest_header, digest);

    // Reproducible: pushing the same module again (blobs already there) gives the same digest.
    let again = push(
        &format!("{}/rfma/filter:again", reg.addr),
        &wasm_path,
        work.path(),
        &["--insecure"],
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(stdout_field(&again, "digest:"), digest);
}

#[test]
fn push_uses_docker_config_basic_auth() {
    let reg = start_registry(htpasswd("wonderland"));
    let work = tempfile::tempdir().unwrap();
    let (wasm_path, wasm) = module(work.path());
    let reference = format!("{}/rfma/filter:auth", reg.addr);

    // No credentials: a clear refusal and a non-zero exit.
    let out = push(&reference, &wasm_path, work.path(), &["--insecure"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no credentials") && err.contains("docker login"),
        "{err}"
    );

    // Wrong password: refused.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cfg = |user_pw: &str| {
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{}"}}}}}}"#,
            reg.addr,
            b64(user_pw)
        )
    };
    std::fs::write(work.path().join("config.json"), cfg("alice:wrong")).unwrap();
    let out = push(&reference, &wasm_path, work.path(), &["--insecure"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("access denied"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password must never be printed: {err}"
    );

    // The right credentials in $DOCKER_CONFIG/config.json.
    std::fs::write(work.path().join("config.json"), cfg("alice:wonderland")).unwrap();
    let out = push(&reference, &wasm_path, work.path(), &["--insecure"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = stdout_field(&out, "digest:");
    let auth = format!("Basic {}", b64("alice:wonderland"));
    assert_eq!(
        check_image(&reg.addr, "rfma/filter", "auth", &wasm, Some(&auth)),
        digest
    );
}

#[test]
fn push_errors_are_clear_and_change_nothing() {
    let reg = start_registry(|_| String::new());
    let work = tempfile::tempdir().unwrap();
    let (wasm_path, _) = module(work.path());

    // HTTPS against a plain-HTTP registry: the error points at --insecure.
    let out = push(
        &format!("{}/rfma/filter:tls", reg.addr),
        &wasm_path,
        work.path(),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--insecure"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not a wasm module.
    let bogus = work.path().join("bogus.wasm");
    std::fs::write(&bogus, b"#!/bin/sh\necho hi\n").unwrap();
    let out = push(
        &format!("{}/rfma/filter:bogus", reg.addr),
        &bogus,
        work.path(),
        &["--insecure"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly module"));

    // Missing file, and a reference without a tag.
    let out = push(
        &format!("{}/rfma/filter:x", reg.addr),
        &work.path().join("nope.wasm"),
        work.path(),
        &["--insecure"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("make wasm"));
    let out = push(
        &format!("{}/rfma/filter", reg.addr),
        &wasm_path,
        work.path(),
        &["--insecure"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing tag"));

    // Nothing was written for any of them.
    let (status, _, _) = get(
        &format!("http://{}/v2/rfma/filter/tags/list", reg.addr),
        "*/*",
        None,
    );
    assert_eq!(
        status, 404,
        "the repository must not exist after failed pushes"
    );
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A registry token (RS256 JWT with the issuer's certificate in `x5c`) granting pull and push on
/// `repository`, as a token service issues them.
fn registry_jwt(dir: &Path, repository: &str) -> String {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "issuer.key",
            "-out",
            "issuer.pem",
            "-days",
            "1",
            "-subj",
            "/CN=test-issuer",
        ],
        dir,
    );
    let der = openssl(&["x509", "-in", "issuer.pem", "-outform", "DER"], dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [base64::engine::general_purpose::STANDARD.encode(der)]});
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": "alice", "aud": "test-registry", "jti": "istio-demo-test",
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "access": [{"type": "repository", "name": repository, "actions": ["pull", "push"]}],
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    std::fs::write(dir.join("input"), &input).unwrap();
    let sig = openssl(&["dgst", "-sha256", "-sign", "issuer.key", "input"], dir);
    format!("{input}.{}", b64url(&sig))
}

/// What the token endpoint saw: each request's first line and Authorization header.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A token endpoint on loopback answering every request with `token`, recording each request's
/// first line and Authorization header. Stops after `max` requests.
fn token_endpoint(token: String, max: usize) -> (String, Seen) {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line
                    .strip_prefix("Authorization: ")
                    .or_else(|| line.strip_prefix("authorization: "))
                {
                    auth = v.trim().to_string();
                }
            }
            log.lock().unwrap().push((first.trim().to_string(), auth));
            let body = serde_json::json!({"token": token, "expires_in": 3600}).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn push_answers_a_bearer_token_challenge() {
    let work = tempfile::tempdir().unwrap();
    let jwt = registry_jwt(work.path(), "rfma/filter");
    let (realm, seen) = token_endpoint(jwt.clone(), 8);
    let cert = work.path().join("issuer.pem");
    let reg = start_registry(|_| {
        format!(
            "auth:\n  token:\n    realm: {realm}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
            cert.display()
        )
    });
    let (wasm_path, wasm) = module(work.path());
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        work.path().join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{b64}"}}}}}}"#, reg.addr),
    )
    .unwrap();

    let out = push(
        &format!("{}/rfma/filter:bearer", reg.addr),
        &wasm_path,
        work.path(),
        &["--insecure"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = stdout_field(&out, "digest:");

    // The token was asked for with the Docker config's credentials, for this repository and service.
    let requests = seen.lock().unwrap().clone();
    assert!(!requests.is_empty(), "the token endpoint was never asked");
    let (line, auth) = &requests[0];
    assert!(line.starts_with("GET /token?"), "{line}");
    assert!(
        line.contains("scope=repository%3Arfma%2Ffilter%3Apull%2Cpush"),
        "{line}"
    );
    assert!(line.contains("service=test-registry"), "{line}");
    assert_eq!(auth, &format!("Basic {b64}"));

    // The registry really enforces the token.
    let (status, _, _) = get(
        &format!("http://{}/v2/rfma/filter/manifests/bearer", reg.addr),
        "*/*",
        None,
    );
    assert_eq!(status, 401);
    let bearer = format!("Bearer {jwt}");
    assert_eq!(
        check_image(&reg.addr, "rfma/filter", "bearer", &wasm, Some(&bearer)),
        digest
    );
}
