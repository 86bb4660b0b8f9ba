//! One measured run: a fresh Envoy for a variant in a scenario, warm-up, the load window,
//! Envoy's CPU time and memory, the checks; and where runs keep their files.

use super::traffic::check_counters;
use super::*;
use crate::load::{self, Load, Measured};
use crate::rig::{self, Envoy};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything that is the same for all runs.
#[derive(Debug, Clone)]
pub struct Setup {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub warmup: Duration,
    pub duration: Duration,
    /// Envoy's core and the load generator's, when pinning is possible.
    pub cores: Option<(usize, usize)>,
    /// Where run directories go (tmpfs when there is one: the access log costs no disk I/O).
    pub scratch: PathBuf,
    /// Envoy's worker threads (each has its own Wasm VM).
    pub workers: u32,
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Run {
    pub round: u32,
    pub scenario: &'static str,
    pub variant: &'static str,
    pub measured: Measured,
    /// Requests Envoy completed during the load window.
    pub requests: u64,
    pub cpu_us_per_request: f64,
    /// Envoy CPU time / wall time of the window (1.0 = one core busy).
    pub envoy_utilisation: f64,
    pub vm_hwm_kib: u64,
    pub vm_rss_kib: u64,
}

impl Run {
    pub fn to_json(&self) -> Value {
        json!({
            "round": self.round,
            "scenario": self.scenario,
            "variant": self.variant,
            "requests": self.requests,
            "rps": self.measured.rps(),
            "p50_us": self.measured.p50_us,
            "p99_us": self.measured.p99_us,
            "cpu_us_per_request": self.cpu_us_per_request,
            "envoy_utilisation": self.envoy_utilisation,
            "vm_hwm_kib": self.vm_hwm_kib,
            "vm_rss_kib": self.vm_rss_kib,
        })
    }
}

/// Envoy's CPU time (user + system, all threads) in seconds, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: no field {}", i + 3))
    };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here.
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return Err("sysconf(_SC_CLK_TCK) failed".to_owned());
    }
    Ok(total as f64 / hz as f64)
}

/// Runs one variant in one scenario on a fresh Envoy and checks it.
pub fn run_one(setup: &Setup, round: u32, sc: Scenario, v: Variant) -> Result<Run, String> {
    let dir = tempdir(&setup.scratch, "run-")?;
    let access_log = dir.path().join("access.log");
    let (gate, log) = gate(&setup.wasm, v.kind, dir.path())?;
    let bootstrap = rig::bootstrap(&gate, log, &access_log);
    let mut envoy = Envoy::start(
        &setup.envoy,
        &bootstrap,
        &access_log,
        dir.path(),
        setup.cores.map(|c| c.0),
        setup.workers,
    )?;
    let t = traffic(v.kind, sc.mix);
    let context = |e: String| format!("{} / {}: {e}", sc.key, v.label);

    check_first_request(&envoy, &t).map_err(context)?;

    let load = |duration| Load {
        protocol: sc.protocol,
        target: envoy.listener,
        path: t.path,
        headers: &t.headers,
        duration,
        core: setup.cores.map(|c| c.1),
        dir: dir.path(),
    };
    if !setup.warmup.is_zero() {
        load::run(&load(setup.warmup)).map_err(context)?;
    }
    let pid = envoy.pid();
    let before = envoy.request_counters().map_err(context)?;
    let cpu0 = cpu_seconds(pid)?;
    let wall0 = Instant::now();
    let measured = load::run(&load(setup.duration)).map_err(context)?;
    let cpu1 = cpu_seconds(pid)?;
    let wall = wall0.elapsed().as_secs_f64();
    let after = envoy.request_counters().map_err(context)?;
    let (vm_hwm_kib, vm_rss_kib) = rig::memory_kib(pid)?;
    let delta = after.since(&before);
    check_counters(&delta, &t).map_err(context)?;
    if measured.socket_errors > 0 {
        return Err(context(format!("{} socket errors", measured.socket_errors)));
    }
    let requests = delta.get("completed");
    // One line per request: at least one per response, at most one per request that arrived.
    envoy
        .wait_access_log_lines(after.get("completed"), after.get("total") + SLACK)
        .map_err(context)?;
    check_access_log(&access_log, &t).map_err(context)?;
    drop(envoy);
    Ok(Run {
        round,
        scenario: sc.key,
        variant: v.key,
        measured,
        requests,
        cpu_us_per_request: (cpu1 - cpu0) * 1e6 / requests.max(1) as f64,
        envoy_utilisation: (cpu1 - cpu0) / wall,
        vm_hwm_kib,
        vm_rss_kib,
    })
}

/// A private directory under `base`, removed when dropped.
pub fn tempdir(base: &Path, prefix: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .map_err(|e| format!("cannot create a directory in {}: {e}", base.display()))
}

/// `/dev/shm` when it is a writable directory, else the system temporary directory.
pub fn default_scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
