//! The sandbox's state file and its gate ([`SandboxGate`]) against a real sandbox: the file
//! comes and goes with the sandbox and keeps a second one out; a configuration applied through
//! the gate (file-based ECDS) serves without a restart, on open keep-alive connections too, and
//! without dropping a request; a refused one leaves the previous one serving, with the reason;
//! the per-token counts follow the requests.

use super::*;
use envoy_harness::bootstrap::ecds_stat;
use envoy_harness::http1::Connection;
use istio_demo::commands::sandbox::gate::{GateError, SandboxGate};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const DEMO: &str = "demo-plain-token";
const EXTRA: &str = "extra-token-sandbox-gate-1";
/// Bounds of the client load in the test that applies a configuration under traffic.
const MAX_REQUESTS: usize = 5_000;
const PACE: Duration = Duration::from_millis(5);

fn sha256_hex(text: &str) -> String {
    istio_demo::commands::token::digest(text)
}

impl Sandbox {
    fn state_file(&self) -> PathBuf {
        self.state_dir().join("sandbox.json")
    }

    fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state_file()).unwrap()).unwrap()
    }

    fn gate(&self) -> SandboxGate {
        SandboxGate::open(Some(&self.state_dir())).unwrap()
    }
}

fn get(addr: SocketAddr, token: &str) -> envoy_harness::http1::Response {
    Request::get("/get")
        .header("x-rfma-token", token)
        .send(addr)
        .unwrap()
}

fn admin_stat(state: &Value, name: &str) -> u64 {
    let admin = state["envoy"]["admin"].as_str().unwrap().parse().unwrap();
    envoy_harness::admin_stat(admin, name).unwrap().unwrap_or(0)
}

fn token_names(config: &Value) -> Vec<&str> {
    config["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

fn with_extra(config: &Value) -> Value {
    let mut config = config.clone();
    config["tokens"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "extra", "sha256": sha256_hex(EXTRA) }));
    config
}

#[test]
fn the_state_file_comes_and_goes_and_keeps_a_second_sandbox_out() {
    let mut sb = Sandbox::start(&[]);
    let banner = sb.banner();
    let file = sb.state_file();
    assert!(
        banner.contains(&format!("state file    {}", file.display())),
        "{banner}"
    );
    // The rotation finds this sandbox through the same directory.
    assert!(
        banner.contains(&format!(
            "ISTIO_DEMO_STATE_DIR={} istio-demo token rotate demo-digest --sandbox --quiet-for 30s",
            sb.state_dir().display()
        )),
        "{banner}"
    );
    let digest_token = token_of(&banner, "demo-digest ");
    let state = sb.state();
    assert_eq!(state["pid"], sb.child.id());
    assert_eq!(
        state["envoy"]["listener"],
        address_after(&banner, "Envoy on").to_string()
    );
    assert_eq!(
        state["envoy"]["admin"],
        address_after(&banner, "envoy admin").to_string()
    );
    let tokens = &state["plugin_config"]["tokens"];
    assert_eq!(tokens[0], json!({ "name": "demo-plain", "value": DEMO }));
    assert_eq!(
        tokens[1],
        json!({ "name": "demo-digest", "sha256": sha256_hex(&digest_token) })
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(&digest_token),
        "the generated token is never stored"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&sb.state_dir()), 0o700);
    let gate = sb.gate();
    assert_eq!(
        gate.proxy(),
        format!("sandbox ({})", address_after(&banner, "Envoy on"))
    );

    // A second sandbox on the same state directory: refused before anything starts.
    let out = Command::new(BIN)
        .args(["sandbox", "--wasm"])
        .arg(wasm())
        .arg("--envoy")
        .arg(envoy_bin())
        .arg("--state-dir")
        .arg(sb.state_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "a sandbox is already running (pid {}, state file {})",
            sb.child.id(),
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("starting httpbin"), "{err}");
    assert_eq!(sb.state()["pid"], sb.child.id(), "the first keeps its file");

    sb.signal(libc::SIGINT);
    assert_eq!(sb.wait_exit().code(), Some(0), "{}", sb.stderr());
    assert!(!file.exists(), "the state file goes with the sandbox");
    let e = SandboxGate::open(Some(&sb.state_dir())).unwrap_err();
    assert!(
        matches!(
            e.downcast_ref::<GateError>(),
            Some(GateError::NotRunning { .. })
        ),
        "{e:#}"
    );

    // A file left by a sandbox that was killed: no gate opens on it, the next sandbox replaces it.
    let mut stale = state.clone();
    stale["pid"] = json!(1 << 30);
    std::fs::write(&file, stale.to_string()).unwrap();
    let e = format!(
        "{:#}",
        SandboxGate::open(Some(&sb.state_dir())).unwrap_err()
    );
    assert!(
        e.starts_with("no sandbox runs (its process 1073741824 is gone; state file "),
        "{e}"
    );
    let dir = std::mem::replace(&mut sb.dir, tempfile::tempdir().unwrap());
    let mut next = Sandbox::start_in(dir, &wasm(), &[]);
    next.banner();
    assert!(
        next.stderr().contains(&format!(
            "replacing {}: its sandbox (pid 1073741824) is gone",
            file.display()
        )),
        "{}",
        next.stderr()
    );
    assert_eq!(next.state()["pid"], next.child.id());
}

/// The tokens the clients of the next test send: index 0 the demo's, 1 the one applied.
const SENT: [&str; 2] = [DEMO, EXTRA];

/// What the client threads of the next test saw.
#[derive(Default)]
struct Load {
    /// 200s per token sent.
    ok: [AtomicUsize; 2],
    /// Requests completed by the keep-alive client, and with which token its last one went.
    kept_alive_done: AtomicUsize,
    kept_alive_last: AtomicUsize,
    /// Connections the keep-alive client opened.
    kept_alive_connections: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// One client: the token `token` says, over one kept-alive connection or a new one per
/// request, until `stop` (or the bounds: then a failure). The keep-alive client never opens a
/// second connection on its own: one the server closed shows in `kept_alive_connections`.
fn client(
    addr: SocketAddr,
    keep_alive: bool,
    token: &AtomicUsize,
    stop: &AtomicBool,
    budget: &AtomicUsize,
    load: &Load,
) {
    let deadline = Instant::now() + WAIT;
    let mut conn: Option<Connection> = None;
    let fail = |e: String| load.failures.lock().unwrap().push(e);
    while !stop.load(Ordering::SeqCst) {
        let spent = budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_err();
        if spent || Instant::now() >= deadline {
            fail("the load's bounds were reached before the test finished".into());
            return;
        }
        let t = token.load(Ordering::SeqCst);
        let req = Request::get("/get").header("x-rfma-token", SENT[t]);
        let result = if keep_alive {
            if conn.as_ref().is_none_or(Connection::closing) {
                conn = Connection::open(addr).map_err(&fail).ok();
                load.kept_alive_connections.fetch_add(1, Ordering::SeqCst);
            }
            match conn.as_mut() {
                Some(c) => c.send(&req),
                None => continue,
            }
        } else {
            req.send(addr)
        };
        match result {
            Ok(r) if r.status == 200 => {
                load.ok[t].fetch_add(1, Ordering::SeqCst);
            }
            Ok(r) => fail(format!("token {t}: {} {}", r.status, r.text())),
            Err(e) => {
                conn = None;
                fail(format!("token {t}: lost: {e}"));
            }
        }
        if keep_alive {
            load.kept_alive_last.store(t, Ordering::SeqCst);
            load.kept_alive_done.fetch_add(1, Ordering::SeqCst);
        }
        // Pacing the load, not waiting for anything.
        std::thread::sleep(PACE);
    }
}

/// Applied through the gate (ECDS), a new token works at once on a new connection and on the
/// keep-alive client's open one: it switches to the new token right after `apply` returns,
/// without reconnecting, and not one request is lost or refused.
#[test]
fn a_token_applied_through_the_gate_works_at_once_on_open_connections_without_dropping_a_request() {
    let mut sb = Sandbox::start(&[]);
    let banner = sb.banner();
    let envoy = address_after(&banner, "Envoy on");
    let gate = sb.gate();
    let running = gate.config().unwrap();
    assert_eq!(token_names(&running), ["demo-plain", "demo-digest"]);
    let counts = gate.token_counts().unwrap();
    assert_eq!(counts.get("demo-plain"), Some(&0), "{counts:?}");
    assert_eq!(counts.get("demo-digest"), Some(&0), "{counts:?}");
    assert_eq!(get(envoy, EXTRA).status, 403);
    let state = sb.state();
    let reloads = admin_stat(&state, &ecds_stat("config_reload"));

    let (token, stop, budget, load) = (
        AtomicUsize::new(0),
        AtomicBool::new(false),
        AtomicUsize::new(MAX_REQUESTS),
        Load::default(),
    );
    let (applied, extra_status, switched_at) = std::thread::scope(|scope| {
        for keep_alive in [true, false] {
            let (token, stop, budget, load) = (&token, &stop, &budget, &load);
            scope.spawn(move || client(envoy, keep_alive, token, stop, budget, load));
        }
        let ok = |t: usize| load.ok[t].load(Ordering::SeqCst);
        let until = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + WAIT;
            while !done() && load.failures.lock().unwrap().is_empty() {
                assert!(Instant::now() < deadline, "the clients do not get {what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        until("through with the demo token", &|| ok(0) >= 10);
        let applied = gate.apply(&with_extra(&running));
        // When apply returns, the new token works on a new connection, at once ...
        let status = get(envoy, EXTRA).status;
        // ... and on the open ones: the clients switch now, the keep-alive one on its connection.
        token.store(1, Ordering::SeqCst);
        let switched_at = load.kept_alive_done.load(Ordering::SeqCst);
        until("through with the new token", &|| {
            ok(1) >= 20
                && load.kept_alive_done.load(Ordering::SeqCst) >= switched_at + 10
                && load.kept_alive_last.load(Ordering::SeqCst) == 1
        });
        stop.store(true, Ordering::SeqCst);
        (applied, status, switched_at)
    });
    applied.unwrap();
    let failures = load.failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "requests lost or refused: {failures:#?}"
    );
    assert_eq!(extra_status, 200);
    assert!(
        switched_at >= 1,
        "the keep-alive client sent before the switch"
    );
    assert_eq!(
        load.kept_alive_connections.load(Ordering::SeqCst),
        1,
        "the keep-alive client kept its one connection through the update"
    );
    // One ECDS reload, and no listener replaced.
    let state = sb.state();
    assert_eq!(admin_stat(&state, &ecds_stat("config_reload")), reloads + 1);
    assert_eq!(admin_stat(&state, "listener_manager.listener_modified"), 0);

    assert_eq!(
        token_names(&gate.config().unwrap()),
        ["demo-plain", "demo-digest", "extra"]
    );
    assert!(
        !std::fs::read_to_string(sb.state_file())
            .unwrap()
            .contains(EXTRA)
    );
    // Every request the clients got a 200 for was counted against the token it carried.
    let counts = gate.token_counts().unwrap();
    let [demo_ok, extra_ok] = load.ok.map(|n| n.into_inner() as u64);
    assert_eq!(counts.get("demo-plain"), Some(&demo_ok), "{counts:?}");
    assert_eq!(counts.get("extra"), Some(&(extra_ok + 1)), "{counts:?}");
    assert_eq!(counts.get("demo-digest"), Some(&0), "{counts:?}");
    // The sandbox's stream names the new token, never the token itself.
    let out = sb.wait_for("a line for the extra token", |s| {
        Some(s.stdout()).filter(|o| o.contains("token=extra"))
    });
    assert!(!out.contains(EXTRA));

    // The same configuration again: nothing to do, nothing reloaded.
    gate.apply(&gate.config().unwrap()).unwrap();
    assert_eq!(
        admin_stat(&sb.state(), &ecds_stat("config_reload")),
        reloads + 1
    );
}

#[test]
fn a_refused_configuration_leaves_the_previous_one_serving_with_the_reason() {
    // A copy of the module this test can break, to make Envoy itself refuse an update.
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("rfma_filter.wasm");
    std::fs::copy(wasm(), &module).unwrap();
    let mut sb = Sandbox::start_in(dir, &module, &[]);
    let banner = sb.banner();
    let envoy = address_after(&banner, "Envoy on");
    let gate = sb.gate();
    let running = gate.config().unwrap();
    let ecds_file = PathBuf::from(sb.state()["envoy"]["ecds_file"].as_str().unwrap());
    let filter_before = std::fs::read(&ecds_file).unwrap();
    let taken = admin_stat(&sb.state(), &ecds_stat("update_success"));
    // A keep-alive client's connection, open through both refusals.
    let mut conn = Connection::open(envoy).unwrap();
    let mut on_conn = |token: &str| {
        conn.send(&Request::get("/get").header("x-rfma-token", token))
            .unwrap()
            .status
    };
    assert_eq!(on_conn(DEMO), 200);

    // The filter's own parser refuses it: nothing is written, its words name the field.
    let mut bad = with_extra(&running);
    bad["tokens"][2]["sha256"] = json!("zz");
    let e = gate.apply(&bad).unwrap_err();
    assert!(
        matches!(
            e.downcast_ref::<GateError>(),
            Some(GateError::InvalidConfig(_))
        ),
        "{e:#}"
    );
    assert!(
        format!("{e:#}").starts_with("invalid plugin config: tokens[2].sha256: "),
        "{e:#}"
    );
    assert_eq!(std::fs::read(&ecds_file).unwrap(), filter_before);
    assert_eq!(admin_stat(&sb.state(), &ecds_stat("update_success")), taken);

    // Envoy refuses it (the module it names no longer loads): told with Envoy's words; the
    // previous configuration serves on, on the open connection too, and the file says so again.
    std::fs::write(&module, b"not a wasm module").unwrap();
    let e = gate.apply(&with_extra(&running)).unwrap_err();
    assert!(
        matches!(
            e.downcast_ref::<GateError>(),
            Some(GateError::Rejected { .. })
        ),
        "{e:#}"
    );
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with(
            "the sandbox's Envoy rejected the update and serves the previous configuration: "
        ),
        "{msg}"
    );
    assert!(
        msg.contains("config update rejected: Unable to create Wasm plugin rfma"),
        "{msg}"
    );
    // Two refusals: the update, and the previous file put back, which Envoy reads as a change
    // (it remembers the refused one) and cannot build from the broken module either. Its
    // workers never left the previous configuration.
    assert_eq!(admin_stat(&sb.state(), &ecds_stat("update_rejected")), 2);
    assert_eq!(get(envoy, DEMO).status, 200);
    assert_eq!(get(envoy, EXTRA).status, 403);
    assert_eq!(on_conn(DEMO), 200);
    assert_eq!(on_conn(EXTRA), 403);
    assert_eq!(gate.config().unwrap(), running);
    assert_eq!(std::fs::read(&ecds_file).unwrap(), filter_before);

    // With the module back, the same update goes through.
    std::fs::copy(wasm(), &module).unwrap();
    gate.apply(&with_extra(&running)).unwrap();
    assert_eq!(get(envoy, EXTRA).status, 200);
    assert_eq!(get(envoy, DEMO).status, 200);
    assert_eq!(on_conn(EXTRA), 200);
}
