//! The sandbox's state file and its gate ([`SandboxGate`]) against a real sandbox: the file
//! comes and goes with the sandbox and keeps a second one out; a configuration applied through
//! the gate serves without a restart and without dropping a request; a refused one leaves the
//! previous one serving, with the reason; the per-token counts follow the requests.

use super::*;
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

/// What the client threads of the next test saw.
#[derive(Default)]
struct Load {
    ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// One client: the demo token, over one kept-alive connection or a new one per request, until
/// `stop` (or the bounds: then a failure).
fn client(
    addr: SocketAddr,
    keep_alive: bool,
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
        let req = Request::get("/get").header("x-rfma-token", DEMO);
        let result = if keep_alive {
            // A connection the server closes (`connection: close`) is replaced: not a loss.
            if conn.as_ref().is_none_or(Connection::closing) {
                conn = Connection::open(addr).map_err(&fail).ok();
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
                load.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(r) => fail(format!("{} {}", r.status, r.text())),
            Err(e) => {
                conn = None;
                fail(format!("lost: {e}"));
            }
        }
        // Pacing the load, not waiting for anything.
        std::thread::sleep(PACE);
    }
}

#[test]
fn a_token_applied_through_the_gate_works_at_once_without_dropping_a_request() {
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

    let (stop, budget, load) = (
        AtomicBool::new(false),
        AtomicUsize::new(MAX_REQUESTS),
        Load::default(),
    );
    let extra_status = std::thread::scope(|scope| {
        for keep_alive in [true, false] {
            let (stop, budget, load) = (&stop, &budget, &load);
            scope.spawn(move || client(envoy, keep_alive, stop, budget, load));
        }
        let until = |n: usize| {
            let deadline = Instant::now() + WAIT;
            while load.ok.load(Ordering::SeqCst) < n && load.failures.lock().unwrap().is_empty() {
                assert!(Instant::now() < deadline, "the clients do not get through");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        until(10);
        let applied = gate.apply(&with_extra(&running));
        // When apply returns, the new token works on a new connection, at once.
        let status = get(envoy, EXTRA).status;
        let after = load.ok.load(Ordering::SeqCst);
        until(after + 10);
        stop.store(true, Ordering::SeqCst);
        applied.unwrap();
        status
    });
    let failures = load.failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "requests lost or refused: {failures:#?}"
    );
    assert_eq!(extra_status, 200);

    assert_eq!(
        token_names(&gate.config().unwrap()),
        ["demo-plain", "demo-digest", "extra"]
    );
    assert!(
        !std::fs::read_to_string(sb.state_file())
            .unwrap()
            .contains(EXTRA)
    );
    // Every request the clients got a 200 for was counted against the demo token.
    let counts = gate.token_counts().unwrap();
    let ok = load.ok.load(Ordering::SeqCst) as u64;
    assert_eq!(counts.get("demo-plain"), Some(&ok), "{counts:?}");
    assert_eq!(counts.get("extra"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("demo-digest"), Some(&0), "{counts:?}");
    // The sandbox's stream names the new token, never the token itself.
    let out = sb.wait_for("a line for the extra token", |s| {
        Some(s.stdout()).filter(|o| o.contains("token=extra"))
    });
    assert!(!out.contains(EXTRA));

    // The same configuration again: nothing to do.
    gate.apply(&gate.config().unwrap()).unwrap();
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
    let lds_file = PathBuf::from(sb.state()["envoy"]["lds_file"].as_str().unwrap());
    let listener_before = std::fs::read(&lds_file).unwrap();
    let accepted = admin_stat(&sb.state(), "listener_manager.lds.update_success");

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
    assert_eq!(std::fs::read(&lds_file).unwrap(), listener_before);
    assert_eq!(
        admin_stat(&sb.state(), "listener_manager.lds.update_success"),
        accepted
    );

    // Envoy refuses it (the module it names no longer loads): a NACK, told with Envoy's words;
    // the previous configuration serves on, and the file says so again.
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
    assert!(msg.contains("rfma_plain"), "{msg}");
    assert_eq!(get(envoy, DEMO).status, 200);
    assert_eq!(get(envoy, EXTRA).status, 403);
    assert_eq!(gate.config().unwrap(), running);
    assert_eq!(std::fs::read(&lds_file).unwrap(), listener_before);

    // With the module back, the same update goes through.
    std::fs::copy(wasm(), &module).unwrap();
    gate.apply(&with_extra(&running)).unwrap();
    assert_eq!(get(envoy, EXTRA).status, 200);
    assert_eq!(get(envoy, DEMO).status, 200);
}
