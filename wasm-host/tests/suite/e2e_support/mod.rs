//! Shared pieces of the end-to-end tests: a real Envoy 1.40 (V8) running the compiled filter
//! in front of a real httpbin, both on free loopback ports, one stack per test.
//!
//! Binaries: `ENVOY_BIN` (else `envoy` on PATH, else the repository's `.venv/bin/envoy`);
//! modules: `RFMA_WASM` and `RFMA_TRAP_WASM` (the Makefile exports all three). A missing one
//! fails the test with a message saying how to get it; nothing is skipped.
#![allow(dead_code, unused_imports)] // each test module uses its own subset

pub use envoy_harness::bootstrap::{self, BootstrapSpec, FailurePolicy, ListenerSource, TlsFiles};
pub use envoy_harness::http1::{Request, Response};
pub use envoy_harness::{self as envoy, LogFollower, Stack, StackConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Demo tokens (test values only).
pub const ALPHA: &str = "alpha-token-e2e-1";
pub const BRAVO: &str = "bravo-token-e2e-2";
pub const WRONG: &str = "not-a-configured-token";
/// How long a test waits for a log line, a stat or a config change.
pub const WAIT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Envoy binary, or a panic that says how to install it.
pub fn envoy_bin() -> PathBuf {
    match envoy::find_envoy(None) {
        Ok(p) => p,
        Err(e) => {
            let venv = repo_root().join(".venv/bin/envoy");
            if std::env::var_os("ENVOY_BIN").is_none() && venv.is_file() {
                return venv;
            }
            panic!("end-to-end tests need Envoy 1.40: {e}")
        }
    }
}

fn module(var: &str, default: &str, make_target: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default));
    assert!(
        path.is_file(),
        "{var}: the module {} does not exist; build it with `make {make_target}` (or run `make test`)",
        path.display()
    );
    path
}

/// The shipped module (`make wasm`).
pub fn wasm() -> PathBuf {
    module("RFMA_WASM", "target/rfma_filter.wasm", "wasm")
}

/// The test-only build that traps on `x-rfma-test-trap` (`make wasm-trap`).
pub fn trap_wasm() -> PathBuf {
    module(
        "RFMA_TRAP_WASM",
        "target/rfma_filter_trap.wasm",
        "wasm-trap",
    )
}

/// The standard test configuration: `alpha` by plain value, `bravo` by digest, a bypass for
/// `GET`/`HEAD` under `/status/`.
pub fn base_config() -> Value {
    json!({
        "tokens": [
            { "name": "alpha", "value": ALPHA },
            { "name": "bravo", "sha256": sha256_hex(BRAVO) },
        ],
        "bypass": [{ "path_prefix": "/status/", "methods": ["GET", "HEAD"] }],
    })
}

pub fn stack_config(wasm: PathBuf, config: &Value) -> StackConfig {
    StackConfig {
        envoy_bin: envoy_bin(),
        wasm,
        plugin_config: config.to_string(),
        options: Default::default(),
    }
}

/// Envoy + httpbin with the shipped module and `config`.
pub fn start(config: &Value) -> Stack {
    start_with(wasm(), config, |_, _| Ok(()))
}

pub fn start_with(
    wasm: PathBuf,
    config: &Value,
    prepare: impl FnOnce(&mut BootstrapSpec, &Path) -> Result<(), String>,
) -> Stack {
    Stack::start_with(&stack_config(wasm, config), prepare)
        .unwrap_or_else(|e| panic!("cannot start the stack: {e}"))
}

/// Sends an HTTP/1.1 request to the plain listener.
pub fn send(stack: &Stack, req: Request) -> Response {
    let addr = stack.plain().unwrap();
    req.send(addr)
        .unwrap_or_else(|e| panic!("request to {addr}: {e}"))
}

pub fn get_with_token(stack: &Stack, path: &str, token: &str) -> Response {
    send(stack, Request::get(path).header("x-rfma-token", token))
}

/// Asserts a deny: status, JSON content type, body `{"error","request_id"}` where the id is
/// the one Envoy generated (echoed in the `x-request-id` response header).
pub fn assert_deny(r: &Response, status: u16, reason: &str) {
    assert_eq!(
        r.status,
        status,
        "expected {status} {reason}, got {} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let body = r.json().unwrap();
    let request_id = r
        .header("x-request-id")
        .expect("Envoy sets x-request-id on the response");
    assert_eq!(
        request_id.len(),
        36,
        "Envoy's x-request-id is a UUID: {request_id}"
    );
    assert_eq!(
        body,
        json!({ "error": reason, "request_id": request_id }),
        "deny body"
    );
}

/// Asserts httpbin answered: status 200 and the JSON it echoes.
pub fn assert_upstream(r: &Response) -> Value {
    assert_eq!(
        r.status,
        200,
        "expected httpbin's 200, got {} {}",
        r.status,
        r.text()
    );
    r.json().unwrap()
}

/// A header as httpbin saw it (httpbin echoes names in Title-Case).
pub fn echoed_header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// Polls `f` until it returns `Some`, for at most [`WAIT`].
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {}s waiting for {what}",
            WAIT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// No listener was replaced since Envoy started (`listener_manager.listener_modified` is 0):
/// an update that came by ECDS drained nothing.
pub fn assert_no_listener_replaced(stack: &Stack) {
    let modified = stack
        .envoy
        .stat("listener_manager.listener_modified")
        .unwrap();
    assert_eq!(modified, Some(0), "a listener was replaced");
}

/// The next `n` access-log lines, parsed as JSON records.
pub fn next_records(log: &mut LogFollower, n: usize) -> Vec<Value> {
    let lines = log.wait_lines(n, WAIT).unwrap();
    assert_eq!(
        lines.len(),
        n,
        "exactly {n} access-log lines expected: {lines:#?}"
    );
    envoy::parse_records(&lines).unwrap()
}

/// A response from curl: the parsed response and the HTTP version it came over.
#[derive(Debug)]
pub struct CurlResponse {
    pub response: Response,
    /// `1.1` or `2`.
    pub http_version: String,
}

/// Runs curl (HTTP/2 and TLS clients) with `args`, writing headers to a file in `dir`.
pub fn curl(dir: &Path, args: &[&str]) -> CurlResponse {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let headers_file = dir.join(format!(
        "curl-headers-{}",
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--dump-header",
        ])
        .arg(&headers_file)
        .args(["--write-out", "%{stderr}%{http_code} %{http_version}"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (installed by scripts/install-deps.sh): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl {args:?} failed: {stderr}");
    let (status, version) = stderr
        .trim()
        .rsplit_once('\n')
        .map(|(_, l)| l)
        .unwrap_or(stderr.trim())
        .split_once(' ')
        .unwrap();
    let headers = std::fs::read_to_string(&headers_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let _ = std::fs::remove_file(&headers_file);
    let response = Response {
        status: status.parse().unwrap(),
        headers,
        body: out.stdout,
    };
    CurlResponse {
        response,
        http_version: version.to_owned(),
    }
}

/// `http://addr/path`.
pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// Everything Envoy wrote: its own log and the access log.
pub fn all_envoy_output(stack: &Stack) -> String {
    let access = std::fs::read_to_string(&stack.envoy.access_log).unwrap_or_default();
    format!("{}\n{access}", stack.envoy.process.log_text())
}

/// The value of `rfma_token_allowed_total{token="<name>"}` in a `/stats/prometheus` text.
pub fn token_allowed(prometheus: &str, name: &str) -> Option<u64> {
    let series = format!("rfma_token_allowed_total{{token=\"{name}\"}} ");
    prometheus
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.parse().ok())
}

/// The value of a `/stats/prometheus` sample `name{}`, if present.
pub fn prometheus_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (metric, value) = l.rsplit_once(' ')?;
        let bare = metric.split('{').next()?;
        (bare == name).then(|| value.parse().ok())?
    })
}
