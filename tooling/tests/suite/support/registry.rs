//! A real registry for the push tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1
//! and a free port, with filesystem storage in a temporary directory, killed on drop; and plain
//! HTTP reads of what was pushed.

#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn registry_bin() -> PathBuf {
    let p = std::env::var_os("DOCKER_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/docker-registry".into());
    assert!(
        p.is_file(),
        "{} is missing: install Debian's docker-registry package (scripts/install-deps.sh does) or set DOCKER_REGISTRY_BIN",
        p.display()
    );
    p
}

pub fn sha256(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// A running registry, killed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Basic auth for user `alice` with this password (htpasswd, bcrypt).
pub fn htpasswd(password: &str) -> impl FnOnce(&Path) -> String {
    move |dir| {
        let hash = bcrypt::hash(password, 5).unwrap();
        let file = dir.join("htpasswd");
        std::fs::write(&file, format!("alice:{hash}\n")).unwrap();
        format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            file.display()
        )
    }
}

/// Starts the registry; `auth` writes what it needs in the registry's directory and returns the
/// `auth:` section of its configuration.
pub fn start_registry(auth: impl FnOnce(&Path) -> String) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let auth = auth(dir.path());
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth}",
        dir.path().join("data").display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new(registry_bin())
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let reg = Registry {
        child,
        addr,
        _dir: dir,
    };
    // Readiness: poll /v2/ (200, or 401 with auth on) with a bounded deadline.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = agent.get(&format!("http://{}/v2/", reg.addr)).call()
            && (r.status() == 200 || r.status() == 401)
        {
            return reg;
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not answer on {} within 30 s",
            reg.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET url` with `Accept`; (status, headers, body up to 128 MiB).
pub fn get(url: &str, accept: &str, auth: Option<&str>) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url).header("Accept", accept);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let mut r = req.call().unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .body_mut()
        .with_config()
        .limit(128 * 1024 * 1024)
        .read_to_vec()
        .unwrap();
    (status, headers, body)
}

/// `GET` a blob (with `auth` as the Authorization header) and check it against its digest.
pub fn pull_blob(addr: &str, repo: &str, digest: &str, auth: Option<&str>) -> Vec<u8> {
    let (status, _, body) = get(
        &format!("http://{addr}/v2/{repo}/blobs/{digest}"),
        "*/*",
        auth,
    );
    assert_eq!(status, 200, "GET blob {digest}: HTTP {status}");
    assert_eq!(
        sha256(&body),
        digest,
        "blob content does not match its digest"
    );
    body
}
