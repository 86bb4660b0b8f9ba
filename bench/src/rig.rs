//! One Envoy for one measured run: a bootstrap whose only route is a `direct_response` (so
//! nothing upstream is measured), one gate in front of it, and one access-log line per
//! request written to a file; plus the process, pinned to a core, and its admin API.
//!
//! Process supervision and the HTTP/1.1 client come from the Envoy harness
//! (`envoy_harness`); the bootstrap is our own, because the harness's always routes to
//! httpbin.
//!
//! This file is self-contained (it names no other module of this crate), so the soak test in
//! `wasm-host/tests/suite/main.rs` can include it with `#[path]` for `e2e_soak`.

use envoy_harness::bootstrap::{self as harness, FailurePolicy};
use envoy_harness::http1;
use envoy_harness::process::Managed;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The token header every gate checks.
pub const HEADER: &str = "x-rfma-token";
/// Demo tokens (benchmark values, not secrets).
pub const TOKENS: [(&str, &str); 2] = [
    ("alpha", "alpha-bench-token-0001"),
    ("bravo", "bravo-bench-token-0002"),
];
/// A token that none of the gates accepts.
pub const WRONG_TOKEN: &str = "wrong-bench-token-0003";
/// The body of the `direct_response` route.
pub const BODY: &str = "ok\n";
/// The HTTP connection manager's stat prefix: `http.bench.downstream_rq_*`.
pub const STAT_PREFIX: &str = "bench";
/// How long Envoy may take to become ready, and the access log to catch up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// The bypass rule of the filter's configuration (GET and HEAD under this prefix).
pub const BYPASS_PREFIX: &str = "/status/";

/// The filter's `log.sink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    FilterState,
    None,
}

impl Sink {
    pub fn name(self) -> &'static str {
        match self {
            Sink::FilterState => "filter_state",
            Sink::None => "none",
        }
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The filter's plugin configuration: both tokens by digest, one bypass rule, and every
/// decision handed to the access log through `sink` (`filter_state`: the `wasm.rfma_*`
/// values the shipped format prints; `none`: nothing).
pub fn plugin_config(sink: Sink, strip: bool) -> String {
    let tokens: Vec<Value> = TOKENS
        .iter()
        .map(|(name, token)| json!({ "name": name, "sha256": sha256_hex(token) }))
        .collect();
    json!({
        "header": HEADER,
        "tokens": tokens,
        "bypass": [{ "path_prefix": BYPASS_PREFIX, "methods": ["GET", "HEAD"] }],
        "strip_header": strip,
        "log": { "sink": sink.name(), "allowed": true, "denied": true },
    })
    .to_string()
}

/// What sits in front of the route.
#[derive(Debug, Clone)]
pub enum Gate {
    /// Nothing: the router answers every request.
    None,
    /// Envoy's RBAC filter: allow when the header equals one of the tokens (clear text).
    Rbac,
    /// A Lua filter: a table lookup of the header, a 403 otherwise, and the header stripped.
    Lua,
    /// A Proxy-Wasm module on V8 with its plugin configuration.
    Wasm { module: PathBuf, config: String },
}

/// What each request's access-log line is. Besides the shipped record, three formats that
/// each leave out one more part of it, so that, with no gate, the differences split what the
/// shipped format costs over a plain line of the same facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// The shipped record, `filter/access-log-format.json` with `omit_empty_values` (what the
    /// mesh writes), for every gate: the "added over no gate" figures compare like with like.
    Shipped,
    /// The shipped record with each `%CEL(..)%` value replaced by a plain operator (see
    /// [`log_format`]); filter state and `omit_empty_values` kept.
    NoCel,
    /// As [`AccessLog::NoCel`], without `omit_empty_values`.
    NoCelKeepEmpty,
    /// The same ECS fields with plain operators only: no `%CEL%`, no filter state, no
    /// `omit_empty_values`.
    Plain,
}

/// The `log_format` of `log`. The shipped format is read from its one definition; the
/// others replace each `%CEL(..)%` value by the plain operator that carries the same raw fact
/// (`event.outcome`: the status, `http.version`: the protocol, `url.query`: the whole path),
/// [`AccessLog::Plain`] also drops the filter-state values.
pub fn log_format(log: AccessLog) -> Value {
    fn rewrite(value: &Value, path: &str, filter_state: bool) -> Option<Value> {
        match value {
            Value::Object(map) => Some(Value::Object(
                map.iter()
                    .filter_map(|(k, v)| {
                        rewrite(v, &dotted(path, k), filter_state).map(|v| (k.clone(), v))
                    })
                    .collect(),
            )),
            Value::String(s) if !filter_state && s.contains("%FILTER_STATE(") => None,
            Value::String(s) if s.contains("%CEL(") => Some(Value::String(
                match path {
                    "event.outcome" => "%RESPONSE_CODE%",
                    "http.version" => "%PROTOCOL%",
                    _ => "%REQ(:PATH)%",
                }
                .to_owned(),
            )),
            other => Some(other.clone()),
        }
    }
    let shipped = harness::record_log_format();
    let (filter_state, omit_empty_values) = match log {
        AccessLog::Shipped => return shipped,
        AccessLog::NoCel => (true, true),
        AccessLog::NoCelKeepEmpty => (true, false),
        AccessLog::Plain => (false, false),
    };
    let format = rewrite(&shipped["json_format"], "", filter_state).unwrap_or_default();
    if omit_empty_values {
        json!({ "json_format": format, "omit_empty_values": true })
    } else {
        json!({ "json_format": format })
    }
}

/// The fields of a `json_format` object whose value uses `operator` (`%CEL(`,
/// `%FILTER_STATE(`), as dotted paths (`event.outcome`, …), in the format's order.
pub fn format_fields(format: &Value, operator: &str) -> Vec<String> {
    fn walk(value: &Value, path: &str, operator: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, &dotted(path, k), operator, out);
                }
            }
            Value::String(s) if s.contains(operator) => out.push(path.to_owned()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(format, "", operator, &mut out);
    out
}

/// `event` + `outcome` → `event.outcome`.
fn dotted(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The Lua gate: the same decision as RBAC, plus stripping like the filter.
pub fn lua_source() -> String {
    let allowed: Vec<String> = TOKENS
        .iter()
        .map(|(_, t)| format!("[\"{t}\"] = true"))
        .collect();
    format!(
        r#"local allowed = {{ {} }}
function envoy_on_request(handle)
  local headers = handle:headers()
  local token = headers:get("{HEADER}")
  if token == nil or not allowed[token] then
    handle:respond({{[":status"] = "403", ["content-type"] = "application/json"}}, '{{"error":"denied"}}')
    return
  end
  headers:remove("{HEADER}")
end
"#,
        allowed.join(", ")
    )
}

fn gate_filter(gate: &Gate) -> Option<Value> {
    match gate {
        Gate::None => None,
        Gate::Rbac => {
            let principals: Vec<Value> = TOKENS
                .iter()
                .map(|(_, t)| json!({ "header": { "name": HEADER, "string_match": { "exact": t } } }))
                .collect();
            Some(json!({
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": {
                        "action": "ALLOW",
                        "policies": { "tokens": { "permissions": [{ "any": true }], "principals": principals } },
                    },
                },
            }))
        }
        Gate::Lua => Some(json!({
            "name": "envoy.filters.http.lua",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": { "inline_string": lua_source() },
            },
        })),
        Gate::Wasm { module, config } => Some(harness::wasm_filter(
            module,
            config,
            FailurePolicy::FailClosed,
        )),
    }
}

/// The whole bootstrap: admin and listener on kernel-picked loopback ports.
pub fn bootstrap(gate: &Gate, log: AccessLog, access_log: &Path) -> Value {
    let format = log_format(log);
    let mut filters: Vec<Value> = gate_filter(gate).into_iter().collect();
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    }));
    let hcm = json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": STAT_PREFIX,
            "codec_type": "AUTO",
            "access_log": [{
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": access_log.to_string_lossy(),
                    "log_format": format,
                },
            }],
            "route_config": {
                "name": "direct",
                "virtual_hosts": [{
                    "name": "direct",
                    "domains": ["*"],
                    "routes": [{
                        "match": { "prefix": "/" },
                        "direct_response": { "status": 200, "body": { "inline_string": BODY } },
                    }],
                }],
            },
            "http_filters": filters,
        },
    });
    let loopback =
        |port: u16| json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } });
    json!({
        "node": { "id": "rfma-bench", "cluster": "rfma-bench" },
        "admin": { "address": loopback(0) },
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": loopback(0),
                "filter_chains": [{ "filters": [hcm] }],
            }],
        },
    })
}

/// `taskset` on PATH and at least two usable cores: then Envoy and the load generator each
/// get their own.
pub fn can_pin() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores >= 2 && which("taskset").is_some()
}

/// A program on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `program args…`, under `taskset -c core` when `core` is given.
pub fn pinned(core: Option<usize>, program: &Path) -> Command {
    match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &core.to_string()]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A running Envoy (stopped, with its whole process group, when dropped).
#[derive(Debug)]
pub struct Envoy {
    pub process: Managed,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    pub access_log: PathBuf,
    /// How long to wait for Envoy (start, access log): longer under valgrind.
    timeout: Duration,
}

/// How [`Envoy::launch`] starts the process.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The core to pin Envoy to (with `taskset`).
    pub core: Option<usize>,
    /// A program and its arguments to run Envoy under (valgrind), which must keep Envoy in
    /// its own process (so the child's pid is Envoy's); empty: run Envoy itself.
    pub wrapper: Vec<std::ffi::OsString>,
    /// Environment variables for the child.
    pub env: Vec<(String, std::ffi::OsString)>,
    /// How long Envoy may take to become ready, and the access log to catch up
    /// ([`READY_TIMEOUT`] when `None`).
    pub timeout: Option<Duration>,
}

impl Envoy {
    /// Writes `bootstrap` to `dir`, starts Envoy with `workers` worker threads (on `core` if
    /// given) and waits until its admin API says it is ready and the listener is bound.
    pub fn start(
        envoy_bin: &Path,
        bootstrap: &Value,
        access_log: &Path,
        dir: &Path,
        core: Option<usize>,
        workers: u32,
    ) -> Result<Envoy, String> {
        let launch = Launch {
            core,
            ..Launch::default()
        };
        Envoy::launch(envoy_bin, bootstrap, access_log, dir, workers, &launch)
    }

    /// [`Envoy::start`], started as `launch` says (under a wrapper, with a longer timeout).
    pub fn launch(
        envoy_bin: &Path,
        bootstrap: &Value,
        access_log: &Path,
        dir: &Path,
        workers: u32,
        launch: &Launch,
    ) -> Result<Envoy, String> {
        let timeout = launch.timeout.unwrap_or(READY_TIMEOUT);
        let config = dir.join("envoy.json");
        let text = serde_json::to_vec_pretty(bootstrap).map_err(|e| e.to_string())?;
        envoy_harness::write_private(&config, &text)?;
        let admin_path = dir.join("admin.address");
        // `taskset` execs its program, and valgrind runs Envoy inside its own process, so
        // either way the child's pid is Envoy's.
        let mut cmd = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = pinned(launch.core, Path::new(program));
                c.args(args).arg(envoy_bin);
                c
            }
            None => pinned(launch.core, envoy_bin),
        };
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        cmd.arg("--config-path")
            .arg(&config)
            .args([
                "--concurrency",
                &workers.to_string(),
                "--disable-hot-restart",
            ])
            .args(["--file-flush-interval-msec", "200"])
            // Quiet: warnings and errors only (the filter logs nothing per request).
            .args(["--log-level", "warn"])
            .arg("--admin-address-path")
            .arg(&admin_path);
        let mut process = Managed::spawn("envoy", cmd, &dir.join("envoy.log"))?;
        let admin = wait_for(&mut process, "the admin address", timeout, || {
            std::fs::read_to_string(&admin_path)
                .ok()?
                .trim()
                .parse()
                .ok()
        })?;
        wait_for(&mut process, "admin /ready", timeout, || {
            http1::Request::get("/ready")
                .send(admin)
                .ok()
                .filter(|r| r.status == 200)
        })?;
        let listener = wait_for(&mut process, "the listener's port", timeout, || {
            let r = http1::Request::get("/listeners?format=json")
                .send(admin)
                .ok()?;
            let v = r.json().ok()?;
            let port = v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                .as_u64()?;
            Some(SocketAddr::from((
                [127, 0, 0, 1],
                u16::try_from(port).ok()?,
            )))
        })?;
        Ok(Envoy {
            process,
            admin,
            listener,
            access_log: access_log.to_path_buf(),
            timeout,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// All counters and gauges whose name matches `regex` (Envoy's `/stats` filter).
    pub fn stats(&self, regex: &str) -> Result<BTreeMap<String, u64>, String> {
        let r = http1::Request::get(&format!("/stats?filter={regex}")).send(self.admin)?;
        if r.status != 200 {
            return Err(format!("/stats: status {}: {}", r.status, r.text()));
        }
        Ok(r.text()
            .lines()
            .filter_map(|l| {
                let (name, value) = l.split_once(": ")?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// The downstream request counters of the listener's connection manager, and the
    /// filter's own (`wasmcustom.rfma_*`).
    pub fn request_counters(&self) -> Result<Counters, String> {
        self.stats(&format!(
            "^(http\\.{STAT_PREFIX}\\.downstream_rq_(total|completed|[1-5]xx)|wasmcustom\\.rfma_.*)$"
        ))
        .map(Counters)
    }

    /// Sends one HTTP/1.1 request to the listener.
    pub fn send(&self, req: &http1::Request) -> Result<http1::Response, String> {
        req.send(self.listener)
    }

    /// Waits (bounded) until the access log holds at least `min` lines; more than `max` is an
    /// error. Returns the count.
    pub fn wait_access_log_lines(&mut self, min: u64, max: u64) -> Result<u64, String> {
        let path = self.access_log.clone();
        let mut counter = LineCounter::default();
        let n = wait_for(
            &mut self.process,
            &format!("{min} access-log lines"),
            self.timeout,
            || {
                let n = counter.count(&path);
                (n >= min).then_some(n)
            },
        )?;
        if n > max {
            return Err(format!(
                "{} has {n} lines, more than one per request ({max} at most)",
                path.display()
            ));
        }
        Ok(n)
    }
}

/// A snapshot of request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    /// A counter by its short name (`total`, `completed`, `2xx`, … or `rfma_allowed_total`).
    /// `total` counts requests whose headers Envoy decoded (the filter saw them, the access
    /// log gets a line for each); `completed` and the classes count responses.
    pub fn get(&self, short: &str) -> u64 {
        let full = if short.starts_with("rfma_") {
            format!("wasmcustom.{short}")
        } else {
            format!("http.{STAT_PREFIX}.downstream_rq_{short}")
        };
        self.0.get(&full).copied().unwrap_or(0)
    }

    /// `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters(
            self.0
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(earlier.0.get(k).copied().unwrap_or(0)),
                    )
                })
                .collect(),
        )
    }
}

/// Counts the lines of a growing file, reading only what is new.
#[derive(Debug, Default)]
pub struct LineCounter {
    offset: u64,
    lines: u64,
}

impl LineCounter {
    pub fn count(&mut self, path: &Path) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        if let Ok(mut f) = std::fs::File::open(path) {
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(self.offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                self.offset += buf.len() as u64;
                self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
        self.lines
    }
}

/// Polls `check` until it yields a value, Envoy dies, or `timeout` passes.
fn wait_for<T>(
    process: &mut Managed,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if let Some(report) = process.death_report() {
            return Err(format!("{report}\n(while waiting for {what})"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "envoy: no {what} after {}s; its last output:\n{}",
                timeout.as_secs(),
                process.log_tail(2000)
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB, from `/proc/PID/status`.
pub fn memory_kib(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .ok_or_else(|| format!("/proc/{pid}/status has no {name}"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}
