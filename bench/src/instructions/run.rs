//! One run: Envoy under callgrind, the warm-up, the counters zeroed, the measured window,
//! the dump read back, and the checks (Envoy's counters, `hey`'s statuses, the access log)
//! that the window held exactly the requests sent.

use super::{
    CONNECTIONS, CONTROL_TIMEOUT, Measurement, PER_REQUEST_LIMIT, READY_TIMEOUT, Tools,
    VALGRIND_OPTIONS, parse_dump, parse_hey,
};
use crate::bench::{self, Scenario, Variant};
use crate::rig::{self, Envoy, Launch};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
pub(super) fn check_window(
    delta: &rig::Counters,
    t: &bench::Traffic,
    requests: u64,
) -> Result<(), String> {
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
