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
    /// No gate, and another access-log format than the shipped one (see [`AccessLog`]).
    NoGateLog(AccessLog),
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
    /// `a`…`e` for the issue's variants, `p1`… for the profiling ones.
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
}

/// The five variants every scenario compares, in the order they alternate. Each logs one
/// record per request with the shipped format (`filter/access-log-format.json`), so what a
/// gate adds over (a) is the gate alone.
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
        label: "(d) rfma filter, sink filter_state + strip",
        kind: Kind::Filter {
            sink: Sink::FilterState,
            strip: true,
            bypass: false,
        },
    },
    Variant {
        key: "e",
        label: "(e) rfma filter, sink none + strip",
        kind: Kind::Filter {
            sink: Sink::None,
            strip: true,
            bypass: false,
        },
    },
];

/// Variants that split the cost of an allowed HTTP/1.1 request: the record's format (no gate,
/// [`RECORD_FORMATS`], which always run), and with `--profile` other filter configurations
/// and probe modules (`probe.rs`) that each add one host call of the filter to an empty Wasm
/// filter.
pub const PROFILE: [Variant; 10] = [
    Variant {
        key: "p1",
        label: "(p1) no gate, plain ECS line (no CEL, no filter state)",
        kind: Kind::NoGateLog(AccessLog::Plain),
    },
    Variant {
        key: "p2",
        label: "(p2) no gate, shipped format without CEL",
        kind: Kind::NoGateLog(AccessLog::NoCel),
    },
    Variant {
        key: "p3",
        label: "(p3) no gate, as (p2) without omit_empty_values",
        kind: Kind::NoGateLog(AccessLog::NoCelKeepEmpty),
    },
    Variant {
        key: "p4",
        label: "(p4) rfma, sink none, no strip",
        kind: Kind::Filter {
            sink: Sink::None,
            strip: false,
            bypass: false,
        },
    },
    Variant {
        key: "p5",
        label: "(p5) rfma, sink filter_state, bypass hit (no token)",
        kind: Kind::Filter {
            sink: Sink::FilterState,
            strip: true,
            bypass: true,
        },
    },
    Variant {
        key: "p6",
        label: "(p6) probe: empty Wasm filter",
        kind: Kind::Probe(Probe::Empty),
    },
    Variant {
        key: "p7",
        label: "(p7) probe: empty + read header map",
        kind: Kind::Probe(Probe::Headers),
    },
    Variant {
        key: "p8",
        label: "(p8) probe: empty + set_property rfma_decision",
        kind: Kind::Probe(Probe::SetProperty),
    },
    Variant {
        key: "p9",
        label: "(p9) probe: empty + counter increment",
        kind: Kind::Probe(Probe::Counter),
    },
    Variant {
        key: "p10",
        label: "(p10) probe: empty + remove token header",
        kind: Kind::Probe(Probe::RemoveHeader),
    },
];

/// The profiling variants that run without `--profile` too: the no-gate record formats, with
/// which the report states what the record itself costs next to the targets.
pub const RECORD_FORMATS: [&str; 3] = ["p1", "p2", "p3"];

/// The variants of a run without `--variants`: (a)–(e) and the record formats, and with
/// `profile` every profiling variant.
pub fn default_variants(profile: bool) -> Vec<Variant> {
    STANDARD
        .iter()
        .chain(
            PROFILE
                .iter()
                .filter(|v| profile || RECORD_FORMATS.contains(&v.key)),
        )
        .copied()
        .collect()
}

/// The one scenario the profiling variants run in.
pub const PROFILE_SCENARIO: &str = "h1-allowed";

/// The variant with this key.
pub fn variant(key: &str) -> Option<Variant> {
    STANDARD
        .iter()
        .chain(PROFILE.iter())
        .copied()
        .find(|v| v.key == key)
}

/// The variants named by `keys`, in the benchmark's order (`a`…`e`, `p1`…).
pub fn select(keys: &[String]) -> Result<Vec<Variant>, String> {
    if let Some(unknown) = keys.iter().find(|k| variant(k.trim()).is_none()) {
        let known: Vec<&str> = STANDARD
            .iter()
            .chain(PROFILE.iter())
            .map(|v| v.key)
            .collect();
        return Err(format!(
            "unknown variant {unknown:?}; known: {}",
            known.join(", ")
        ));
    }
    Ok(STANDARD
        .iter()
        .chain(PROFILE.iter())
        .copied()
        .filter(|v| keys.iter().any(|k| k.trim() == v.key))
        .collect())
}

/// Whether a variant runs in a scenario. The profiling variants split the cost of an allowed
/// HTTP/1.1 request, so they run in [`PROFILE_SCENARIO`] only; RBAC and Lua have no bypass
/// rule (every request of a bypass scenario would be a 403 that compares with nothing), so
/// they do not run with bypass traffic.
pub fn runs_in(v: &Variant, sc: &Scenario) -> bool {
    if PROFILE.iter().any(|p| p.key == v.key) {
        return sc.key == PROFILE_SCENARIO;
    }
    !(sc.mix == Mix::Bypass && matches!(v.kind, Kind::Rbac | Kind::Lua))
}

/// Which requests a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Every request carries a configured token.
    Allowed,
    /// Every request carries a wrong token.
    Denied,
    /// Every request hits the filter's bypass rule (`GET /status/…`) and carries no token.
    Bypass,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub key: &'static str,
    pub protocol: Protocol,
    pub mix: Mix,
}

pub const SCENARIOS: [Scenario; 5] = [
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
    Scenario {
        key: "h1-bypass",
        protocol: Protocol::Http1,
        mix: Mix::Bypass,
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

/// The requests of a scenario for a variant: path, headers, and the status, counter and
/// record each must get.
pub(crate) struct Traffic {
    pub(crate) path: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) status: u16,
    /// The counter each request increments (filter variants, and the counter probe).
    pub(crate) counter: Option<&'static str>,
    /// `rfma.decision` in the record: what the filter (sink `filter_state`) or the
    /// set-property probe wrote to filter state; absent for every other variant.
    pub(crate) decision: Option<&'static str>,
}

pub(crate) fn traffic(kind: Kind, mix: Mix) -> Traffic {
    // The bypass-hit variant sends bypass traffic whatever the scenario.
    let mix = match kind {
        Kind::Filter { bypass: true, .. } => Mix::Bypass,
        _ => mix,
    };
    let (path, token) = match mix {
        Mix::Allowed => (PATH, Some(TOKENS[0].1)),
        Mix::Denied => (PATH, Some(WRONG_TOKEN)),
        Mix::Bypass => (BYPASS_PATH, None),
    };
    let headers = token
        .map(|t| (HEADER.to_owned(), t.to_owned()))
        .into_iter()
        .collect();
    let status = match (kind, mix) {
        // A wrong token is a 403 for every gate; no token is one for the gates without a
        // bypass rule.
        (Kind::Rbac | Kind::Lua | Kind::Filter { .. }, Mix::Denied)
        | (Kind::Rbac | Kind::Lua, Mix::Bypass) => 403,
        _ => 200,
    };
    let (counter, decision) = match kind {
        Kind::Filter { sink, .. } => {
            let (counter, decision) = match mix {
                Mix::Allowed => ("rfma_allowed_total", "allow"),
                Mix::Denied => ("rfma_denied_invalid_token_total", "deny"),
                Mix::Bypass => ("rfma_bypassed_total", "bypass"),
            };
            (
                Some(counter),
                (sink == Sink::FilterState).then_some(decision),
            )
        }
        // The probes' own evidence that their host call really ran on every request.
        Kind::Probe(Probe::Counter) => (Some(crate::probe::COUNTER), None),
        Kind::Probe(Probe::SetProperty) => (None, Some(crate::probe::PROPERTY_VALUE)),
        _ => (None, None),
    };
    Traffic {
        path,
        headers,
        status,
        counter,
        decision,
    }
}

/// The gate and access log of a variant with the filter module `wasm` (probe modules are
/// written into `dir`).
pub(crate) fn gate(wasm: &Path, kind: Kind, dir: &Path) -> Result<(Gate, AccessLog), String> {
    Ok(match kind {
        Kind::NoGate => (Gate::None, AccessLog::Shipped),
        Kind::NoGateLog(log) => (Gate::None, log),
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

/// Every line is a JSON object with the expected status and `rfma.decision` (the filter's
/// value in filter state, absent for variants that write none), but for requests cut off by
/// the load generator, which have status 0 (no response); no token, right or wrong, appears.
pub(crate) fn check_access_log(path: &Path, t: &Traffic) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for token in TOKENS.iter().map(|(_, token)| *token).chain([WRONG_TOKEN]) {
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
        let decision = record["rfma"]["decision"].as_str();
        let status = record["http"]["response"]["status_code"].as_u64();
        if status == Some(0) && decision == t.decision {
            cut_off += 1;
        } else if decision != t.decision || status != Some(u64::from(t.status)) {
            return Err(format!(
                "record has decision {decision:?} and status {status:?}, expected {:?} and {}: {line}",
                t.decision, t.status
            ));
        }
    }
    if cut_off > SLACK {
        return Err(format!("{cut_off} records without a response (status 0)"));
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
        let allowed = traffic(d, Mix::Allowed);
        assert_eq!(
            (allowed.status, allowed.counter, allowed.decision),
            (200, Some("rfma_allowed_total"), Some("allow"))
        );
        let denied = traffic(d, Mix::Denied);
        assert_eq!((denied.status, denied.decision), (403, Some("deny")));
        let bypass = traffic(d, Mix::Bypass);
        assert!(bypass.path.starts_with(BYPASS_PREFIX) && bypass.headers.is_empty());
        assert_eq!(
            (bypass.status, bypass.counter, bypass.decision),
            (200, Some("rfma_bypassed_total"), Some("bypass"))
        );
        // Sink none: the filter decides and counts, but writes nothing for the record.
        let e = traffic(STANDARD[4].kind, Mix::Denied);
        assert_eq!((e.status, e.decision), (403, None));
        assert_eq!(traffic(Kind::NoGate, Mix::Denied).status, 200);
        assert_eq!(
            traffic(Kind::NoGateLog(AccessLog::Plain), Mix::Bypass).status,
            200
        );
        assert_eq!(traffic(Kind::Rbac, Mix::Denied).status, 403);
        assert_eq!(traffic(Kind::Lua, Mix::Bypass).status, 403);
        // The bypass-hit variant sends bypass traffic in any scenario.
        let p5 = variant("p5").unwrap();
        let hit = traffic(p5.kind, Mix::Allowed);
        assert!(hit.path.starts_with(BYPASS_PREFIX) && hit.headers.is_empty());
        assert_eq!(hit.decision, Some("bypass"));
        // The probes prove their host call: the counter by its counter, the write by the
        // record.
        assert_eq!(
            traffic(Kind::Probe(Probe::Counter), Mix::Allowed).counter,
            Some(crate::probe::COUNTER)
        );
        assert_eq!(
            traffic(Kind::Probe(Probe::SetProperty), Mix::Allowed).decision,
            Some("allow")
        );
        assert_eq!(
            traffic(Kind::Probe(Probe::Empty), Mix::Allowed).decision,
            None
        );
    }

    #[test]
    fn variants_are_selected_by_key_in_the_benchmarks_order() {
        let keys: Vec<String> = ["p1", "e", "a", "d", "c"].map(String::from).to_vec();
        let chosen: Vec<&str> = select(&keys).unwrap().iter().map(|v| v.key).collect();
        assert_eq!(chosen, ["a", "c", "d", "e", "p1"]);
        let e = select(&["x".to_owned()]).unwrap_err();
        assert!(
            e.contains("unknown variant \"x\"") && e.contains("p8"),
            "{e}"
        );
        let keys: Vec<&str> = STANDARD
            .iter()
            .chain(PROFILE.iter())
            .map(|v| v.key)
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(!keys[..i].contains(k), "{k} twice");
        }
    }

    #[test]
    fn the_record_formats_run_by_default_the_other_profiling_variants_with_profile() {
        let keys =
            |profile| -> Vec<&str> { default_variants(profile).iter().map(|v| v.key).collect() };
        assert_eq!(keys(false), ["a", "b", "c", "d", "e", "p1", "p2", "p3"]);
        assert_eq!(keys(true).len(), STANDARD.len() + PROFILE.len());
        for k in RECORD_FORMATS {
            assert!(
                matches!(variant(k).unwrap().kind, Kind::NoGateLog(_)),
                "{k}"
            );
        }
    }

    #[test]
    fn profiling_variants_run_with_allowed_http1_only_and_no_bypass_for_rbac_or_lua() {
        let sc = |k: &str| scenario(k).unwrap();
        for p in PROFILE {
            assert!(runs_in(&p, &sc("h1-allowed")), "{}", p.key);
            assert!(!runs_in(&p, &sc("h1-denied")) && !runs_in(&p, &sc("h2-allowed")));
        }
        for v in STANDARD {
            assert!(runs_in(&v, &sc("h1-denied")) && runs_in(&v, &sc("h2-allowed")));
        }
        let bypass: Vec<&str> = STANDARD
            .iter()
            .filter(|v| runs_in(v, &sc("h1-bypass")))
            .map(|v| v.key)
            .collect();
        assert_eq!(bypass, ["a", "d", "e"]);
    }

    /// Lines as Envoy writes them with the shipped format (`omit_empty_values`: no
    /// `rfma.decision` without filter state).
    #[test]
    fn access_log_check_reads_decision_and_status_of_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let check = |lines: &[&str], t: &Traffic| {
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            check_access_log(&path, t)
        };
        let allow = r#"{"http":{"response":{"status_code":200}},"rfma":{"decision":"allow","token":{"name":"alpha"}}}"#;
        let plain = r#"{"http":{"response":{"status_code":200}},"url":{"domain":"127.0.0.1"}}"#;
        let gone = r#"{"http":{"response":{"status_code":0}},"rfma":{"decision":"allow"}}"#;
        let d = traffic(STANDARD[3].kind, Mix::Allowed);
        let a = traffic(Kind::NoGate, Mix::Allowed);
        assert!(check(&[allow, allow, gone], &d).is_ok());
        assert!(check(&[plain], &a).is_ok());
        // A record without the decision for (d), or with one for (a), is wrong.
        assert!(check(&[allow, plain], &d).is_err());
        assert!(check(&[allow], &a).is_err());
        // A cut-off request of (a) has no decision either.
        let a_gone = r#"{"http":{"response":{"status_code":0}}}"#;
        assert!(check(&[plain, a_gone], &a).is_ok());
        let rbac = traffic(Kind::Rbac, Mix::Denied);
        assert!(
            check(&[plain], &rbac)
                .unwrap_err()
                .contains("expected None and 403")
        );
        assert!(check(&["not json"], &a).unwrap_err().contains("not JSON"));
        let leaked =
            format!(r#"{{"http":{{"response":{{"status_code":200}}}},"x":"{WRONG_TOKEN}"}}"#);
        assert!(
            check(&[&leaked], &a)
                .unwrap_err()
                .contains("a token appears")
        );
    }

    /// (p1)–(p3) log the same facts as the shipped format, each leaving out one more part:
    /// the CEL values, then `omit_empty_values`, then the filter-state values; nothing else
    /// changes.
    #[test]
    fn the_format_variants_each_leave_out_one_more_part_of_the_shipped_one() {
        let shipped = rig::log_format(AccessLog::Shipped);
        assert_eq!(shipped, envoy_harness::bootstrap::record_log_format());
        assert_eq!(shipped["omit_empty_values"], true);
        let text = |log| rig::log_format(log)["json_format"].to_string();
        assert!(text(AccessLog::Shipped).contains("%CEL("));
        let no_cel = rig::log_format(AccessLog::NoCel);
        assert_eq!(no_cel["omit_empty_values"], true);
        assert!(!text(AccessLog::NoCel).contains("%CEL("));
        assert!(text(AccessLog::NoCel).contains("%FILTER_STATE("));
        let f = &no_cel["json_format"];
        assert_eq!(f["event"]["outcome"], "%RESPONSE_CODE%");
        assert_eq!(f["http"]["version"], "%PROTOCOL%");
        assert_eq!(f["url"]["query"], "%REQ(:PATH)%");
        assert_eq!(f["url"]["path"], shipped["json_format"]["url"]["path"]);
        let keep_empty = rig::log_format(AccessLog::NoCelKeepEmpty);
        assert_eq!(keep_empty["json_format"], no_cel["json_format"]);
        assert!(keep_empty.get("omit_empty_values").is_none());
        let plain = rig::log_format(AccessLog::Plain);
        assert!(plain.get("omit_empty_values").is_none());
        assert!(!text(AccessLog::Plain).contains("%FILTER_STATE("));
        let p = &plain["json_format"];
        assert!(p["rfma"].get("decision").is_none() && p["url"].get("domain").is_none());
        assert_eq!(p["event"]["outcome"], "%RESPONSE_CODE%");
        let bootstrap = rig::bootstrap(&rig::Gate::None, AccessLog::Plain, Path::new("/x"));
        let format = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
            [0]["typed_config"]["access_log"][0]["typed_config"]["log_format"];
        assert_eq!(format, &plain);
        // The no-gate format variants are p1, p2, p3, in that order.
        let logs: Vec<AccessLog> = PROFILE
            .iter()
            .filter_map(|v| match v.kind {
                Kind::NoGateLog(log) => Some(log),
                _ => None,
            })
            .collect();
        assert_eq!(
            logs,
            [
                AccessLog::Plain,
                AccessLog::NoCel,
                AccessLog::NoCelKeepEmpty
            ]
        );
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
