//! The benchmark: variants × scenarios, in alternating rounds, a fresh Envoy for every run,
//! every run checked (statuses, the filter's counters, one access-log line per request, no
//! token in the log) before its numbers count.

use crate::load::{self, Load, Measured, Protocol};
use crate::probe::Probe;
use crate::rig::{
    self, AccessLog, Counters, Envoy, Gate, HEADER, Sink, TOKENS, WRONG_TOKEN, plugin_config,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What runs in front of the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NoGate,
    /// No gate, and the record's ECS fields as a plain line (see [`AccessLog::Plain`]).
    NoGatePlainLog,
    Rbac,
    Lua,
    /// The shipped filter; `bypass`: the requests hit a bypass rule instead of carrying a token.
    Filter {
        sink: Sink,
        strip: bool,
        bypass: bool,
    },
    Probe(Probe),
}

/// One benchmark variant.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// `a`…`e` for the variants, `p1`… for the profiling ones.
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
}

/// The five variants, in the order they alternate.
pub const STANDARD: [Variant; 5] = [
    Variant {
        key: "a",
        label: "(a) no gate",
        kind: Kind::NoGate,
    },
    Variant {
        key: "b",
        label: "(b) Envoy RBAC header match",
        kind: Kind::Rbac,
    },
    Variant {
        key: "c",
        label: "(c) Lua check + strip",
        kind: Kind::Lua,
    },
    Variant {
        key: "d",
        label: "(d) rfma filter, record (filter_state) + strip",
        kind: Kind::Filter {
            sink: Sink::FilterState,
            strip: true,
            bypass: false,
        },
    },
    Variant {
        key: "e",
        label: "(e) rfma filter, logging off (sink none)",
        kind: Kind::Filter {
            sink: Sink::None,
            strip: true,
            bypass: false,
        },
    },
];

/// Variants that split the filter's cost (`--profile`).
pub const PROFILE: [Variant; 14] = [
    Variant {
        key: "p1",
        label: "(p1) no gate, plain ECS line (no CEL, no filter state)",
        kind: Kind::NoGatePlainLog,
    },
    Variant {
        key: "p2",
        label: "(p2) rfma, sink none, no strip",
        kind: Kind::Filter {
            sink: Sink::None,
            strip: false,
            bypass: false,
        },
    },
    Variant {
        key: "p3",
        label: "(p3) rfma, record, bypass hit (no token)",
        kind: Kind::Filter {
            sink: Sink::FilterState,
            strip: true,
            bypass: true,
        },
    },
    Variant {
        key: "p4",
        label: "(p4) probe: empty Wasm filter",
        kind: Kind::Probe(Probe::Empty),
    },
    Variant {
        key: "p5",
        label: "(p5) probe: empty + read header map",
        kind: Kind::Probe(Probe::Headers),
    },
    Variant {
        key: "p6",
        label: "(p6) probe: empty + 3 get_property",
        kind: Kind::Probe(Probe::Properties),
    },
    Variant {
        key: "p7",
        label: "(p7) probe: empty + set_property 400 B",
        kind: Kind::Probe(Probe::SetProperty),
    },
    Variant {
        key: "p8",
        label: "(p8) probe: empty + 1 absent get_property",
        kind: Kind::Probe(Probe::AbsentProperty),
    },
    // The SDK-shaped probes: a module built with the Rust SDK (as the filter is) exports
    // every HTTP callback, so Envoy calls five more per request than for (p4). (p10)–(p14)
    // each add one host call the filter makes to (p9).
    Variant {
        key: "p9",
        label: "(p9) probe: SDK-shaped empty (all callbacks)",
        kind: Kind::Probe(Probe::Sdk),
    },
    Variant {
        key: "p10",
        label: "(p10) probe: SDK-shaped + clock",
        kind: Kind::Probe(Probe::SdkClock),
    },
    Variant {
        key: "p11",
        label: "(p11) probe: SDK-shaped + counter increment",
        kind: Kind::Probe(Probe::SdkCounter),
    },
    Variant {
        key: "p12",
        label: "(p12) probe: SDK-shaped + remove token header",
        kind: Kind::Probe(Probe::SdkRemoveHeader),
    },
    Variant {
        key: "p13",
        label: "(p13) probe: SDK-shaped + get response :status",
        kind: Kind::Probe(Probe::SdkResponseStatus),
    },
    Variant {
        key: "p14",
        label: "(p14) probe: SDK-shaped + 1 get_property",
        kind: Kind::Probe(Probe::SdkProperty),
    },
];

/// Which requests a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Every request carries a configured token.
    Allowed,
    /// Every request carries a wrong token.
    Denied,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub key: &'static str,
    pub protocol: Protocol,
    pub mix: Mix,
}

pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        key: "h1-allowed",
        protocol: Protocol::Http1,
        mix: Mix::Allowed,
    },
    Scenario {
        key: "h1-denied",
        protocol: Protocol::Http1,
        mix: Mix::Denied,
    },
    Scenario {
        key: "h2-allowed",
        protocol: Protocol::Http2,
        mix: Mix::Allowed,
    },
    Scenario {
        key: "h2-denied",
        protocol: Protocol::Http2,
        mix: Mix::Denied,
    },
];

pub fn scenario(key: &str) -> Result<Scenario, String> {
    SCENARIOS
        .iter()
        .copied()
        .find(|s| s.key == key)
        .ok_or_else(|| {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.key).collect();
            format!("unknown scenario {key:?}; known: {}", known.join(", "))
        })
}

/// A path the filter's bypass rule matches.
const BYPASS_PATH: &str = "/status/bench";
const PATH: &str = "/get";

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

/// The requests of a scenario for a variant: path, headers, and the status and filter
/// decision each must get.
pub(crate) struct Traffic {
    pub(crate) path: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) status: u16,
    /// The counter each request increments (filter variants, and the counter probe).
    pub(crate) counter: Option<&'static str>,
    /// `rfma.decision` in the record.
    pub(crate) decision: Option<&'static str>,
}

pub(crate) fn traffic(kind: Kind, mix: Mix) -> Traffic {
    let token = match mix {
        Mix::Allowed => TOKENS[0].1,
        Mix::Denied => WRONG_TOKEN,
    };
    let headers = vec![(HEADER.to_owned(), token.to_owned())];
    let gated = !matches!(kind, Kind::NoGate | Kind::NoGatePlainLog | Kind::Probe(_));
    let status = if gated && mix == Mix::Denied {
        403
    } else {
        200
    };
    match kind {
        Kind::Filter { bypass: true, .. } => Traffic {
            path: BYPASS_PATH,
            headers: Vec::new(),
            status: 200,
            counter: Some("rfma_bypassed_total"),
            decision: Some("bypass"),
        },
        Kind::Filter { sink, .. } => Traffic {
            path: PATH,
            headers,
            status,
            counter: Some(match mix {
                Mix::Allowed => "rfma_allowed_total",
                Mix::Denied => "rfma_denied_invalid_token_total",
            }),
            decision: (sink == Sink::FilterState).then_some(match mix {
                Mix::Allowed => "allow",
                Mix::Denied => "deny",
            }),
        },
        // The probe's own counter: proof that its host call really ran on every request.
        Kind::Probe(Probe::SdkCounter) => Traffic {
            path: PATH,
            headers,
            status,
            counter: Some(crate::probe::COUNTER),
            decision: None,
        },
        _ => Traffic {
            path: PATH,
            headers,
            status,
            counter: None,
            decision: None,
        },
    }
}

/// The gate and access log of a variant with the filter module `wasm` (probe modules are
/// written into `dir`).
pub(crate) fn gate(wasm: &Path, kind: Kind, dir: &Path) -> Result<(Gate, AccessLog), String> {
    Ok(match kind {
        Kind::NoGate => (Gate::None, AccessLog::Shipped),
        Kind::NoGatePlainLog => (Gate::None, AccessLog::Plain),
        Kind::Rbac => (Gate::Rbac, AccessLog::Shipped),
        Kind::Lua => (Gate::Lua, AccessLog::Shipped),
        Kind::Filter { sink, strip, .. } => (
            Gate::Wasm {
                module: wasm.to_path_buf(),
                config: plugin_config(sink, strip),
            },
            AccessLog::Shipped,
        ),
        Kind::Probe(p) => {
            let module = dir.join("probe.wasm");
            std::fs::write(&module, p.wasm()?).map_err(|e| format!("{}: {e}", module.display()))?;
            (
                Gate::Wasm {
                    module,
                    config: String::new(),
                },
                AccessLog::Shipped,
            )
        }
    })
}

/// One request before any measurement: the variant answers as it must.
pub(crate) fn check_first_request(envoy: &Envoy, t: &Traffic) -> Result<(), String> {
    let mut request = envoy_harness::http1::Request::get(t.path);
    for (n, val) in &t.headers {
        request = request.header(n, val);
    }
    let first = envoy.send(&request)?;
    if first.status != t.status {
        return Err(format!(
            "expected status {}, got {} {}",
            t.status,
            first.status,
            first.text()
        ));
    }
    Ok(())
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
    check_access_log(&access_log, log, &t).map_err(context)?;
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

/// Requests a load generator may leave half-done when its time is up (it closes connections
/// with requests in flight): twice the requests in flight, for the warm-up and the window.
/// Envoy counts such a request in `total` (and the filter may have decided it) but sends no
/// response, so `completed` does not count it; and one that straddles a counter snapshot lands
/// on different sides of it for different counters. Every other count must be exact.
pub const SLACK: u64 = 2 * load::WRK_CONNECTIONS as u64;

/// Every response of the window had the expected status class (exactly), and the filter's
/// decision counter matches the requests up to the load generator's cut-off.
fn check_counters(delta: &Counters, t: &Traffic) -> Result<(), String> {
    let completed = delta.get("completed");
    if completed == 0 {
        return Err("no request completed during the load window".to_owned());
    }
    let class = format!("{}xx", t.status / 100);
    if delta.get(&class) != completed {
        return Err(format!(
            "{completed} requests completed but {} got {class}: {:?}",
            delta.get(&class),
            delta.0
        ));
    }
    if delta.get("total").abs_diff(completed) > SLACK {
        return Err(format!(
            "far more requests arrived than completed: {:?}",
            delta.0
        ));
    }
    if let Some(counter) = t.counter
        && delta.get(counter).abs_diff(completed) > SLACK
    {
        return Err(format!(
            "{completed} requests completed but {counter} rose by {}: {:?}",
            delta.get(counter),
            delta.0
        ));
    }
    Ok(())
}

/// Every line is a JSON object; the filter's records carry the expected decision and status
/// (but for requests cut off by the load generator, which have no status); no token appears.
pub(crate) fn check_access_log(path: &Path, log: AccessLog, t: &Traffic) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (_, token) in TOKENS {
        if text.contains(token) {
            return Err(format!(
                "a token appears in the access log {}",
                path.display()
            ));
        }
    }
    let mut cut_off = 0;
    for line in text.lines() {
        let record: Value = serde_json::from_str(line)
            .map_err(|e| format!("access log line is not JSON ({e}): {line:?}"))?;
        if log == AccessLog::Shipped {
            let decision = record["rfma"]["decision"].as_str();
            let status = record["http"]["response"]["status_code"].as_u64();
            if status.is_none() && decision == t.decision {
                cut_off += 1;
            } else if decision != t.decision || status != Some(u64::from(t.status)) {
                return Err(format!(
                    "record has decision {decision:?} and status {status:?}, expected {:?} and {}: {line}",
                    t.decision, t.status
                ));
            }
        }
    }
    if cut_off > SLACK {
        return Err(format!("{cut_off} records without a status"));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::BYPASS_PREFIX;

    #[test]
    fn filter_configs_are_accepted_by_the_filters_own_parser() {
        for sink in [Sink::FilterState, Sink::None] {
            for strip in [true, false] {
                let text = plugin_config(sink, strip);
                rfma_filter::config::parse(text.as_bytes())
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
            }
        }
    }

    #[test]
    fn traffic_expectations() {
        let d = STANDARD[3].kind;
        assert_eq!(traffic(d, Mix::Allowed).status, 200);
        let denied = traffic(d, Mix::Denied);
        assert_eq!((denied.status, denied.decision), (403, Some("deny")));
        assert_eq!(traffic(Kind::NoGate, Mix::Denied).status, 200);
        assert_eq!(traffic(Kind::Rbac, Mix::Denied).status, 403);
        let bypass = traffic(PROFILE[2].kind, Mix::Allowed);
        assert!(bypass.path.starts_with(BYPASS_PREFIX) && bypass.headers.is_empty());
    }

    #[test]
    fn cpu_time_of_this_process_is_readable() {
        let t = cpu_seconds(std::process::id()).unwrap();
        assert!(t >= 0.0);
    }

    #[test]
    fn counters_check_rejects_a_wrong_class() {
        let t = traffic(Kind::Rbac, Mix::Denied);
        let mut c = Counters::default();
        c.0.insert("http.bench.downstream_rq_completed".into(), 10);
        c.0.insert("http.bench.downstream_rq_total".into(), 10);
        c.0.insert("http.bench.downstream_rq_4xx".into(), 9);
        c.0.insert("http.bench.downstream_rq_5xx".into(), 1);
        assert!(check_counters(&c, &t).is_err());
        c.0.insert("http.bench.downstream_rq_4xx".into(), 10);
        assert!(check_counters(&c, &t).is_ok());
    }
}
