//! `istio-demo sandbox` as a user runs it: the real binary, a real Envoy and httpbin; and its
//! gate as `token rotate --sandbox` drives it, in `gate`.
//!
//! Each sandbox here keeps its state file in its own directory (`--state-dir`), so the tests
//! run side by side. Needs Envoy (`ENVOY_BIN`, else `envoy` on PATH, else the repository's `.venv/bin/envoy`)
//! and the module (`RFMA_WASM`, else `target/rfma_filter.wasm`); a missing one fails the test
//! with a message saying how to get it.

mod gate;

use envoy_harness::http1::Request;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_istio-demo");
const WAIT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn envoy_bin() -> PathBuf {
    envoy_harness::find_envoy(None)
        .or_else(|e| {
            Some(repo_root().join(".venv/bin/envoy"))
                .filter(|p| p.is_file())
                .ok_or(e)
        })
        .unwrap_or_else(|e| panic!("the sandbox tests need Envoy 1.40: {e}"))
}

pub(crate) fn wasm() -> PathBuf {
    let p = std::env::var_os("RFMA_WASM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/rfma_filter.wasm"));
    assert!(
        p.is_file(),
        "RFMA_WASM: {} does not exist; build it with `make wasm`",
        p.display()
    );
    p
}

/// The sandbox running in the background; SIGTERM (handled like Ctrl-C) when dropped.
struct Sandbox {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn start(extra: &[&str]) -> Sandbox {
        Sandbox::start_in(tempfile::tempdir().unwrap(), &wasm(), extra)
    }

    /// Starts a sandbox with its output, and its state directory `state`, in `dir`.
    fn start_in(dir: tempfile::TempDir, wasm: &Path, extra: &[&str]) -> Sandbox {
        let out = std::fs::File::create(dir.path().join("stdout")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let child = Command::new(BIN)
            .arg("sandbox")
            .arg("--wasm")
            .arg(wasm)
            .arg("--envoy")
            .arg(envoy_bin())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Sandbox { child, dir }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Polls until `f(self)` yields, the sandbox exits, or the deadline passes.
    fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&Sandbox) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the sandbox exited ({status}) while waiting for {what}:\n{}\n{}",
                    self.stderr(),
                    self.stdout()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}\n{}",
                self.stderr(),
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for the banner, and returns it.
    fn banner(&mut self) -> String {
        self.wait_for("the banner", |s| {
            Some(s.stderr()).filter(|e| e.contains("Ctrl-C stops"))
        })
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the sandbox did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// The address after `label` in the banner, e.g. `Envoy on http://127.0.0.1:1234`.
fn address_after(banner: &str, label: &str) -> SocketAddr {
    let rest = banner
        .split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{banner}"));
    let rest = rest.trim_start().trim_start_matches("http://");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

fn token_of(banner: &str, name: &str) -> String {
    let line = banner
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{banner}"));
    line.split_whitespace().nth(1).unwrap().to_owned()
}

fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

#[test]
fn prints_tokens_and_working_curl_lines_streams_decisions_and_stops_on_ctrl_c() {
    let mut sb = Sandbox::start(&[]);
    let banner = sb.banner();
    let envoy = address_after(&banner, "Envoy on");
    let httpbin = address_after(&banner, "-> httpbin on");
    let admin = address_after(&banner, "envoy admin");
    let plain = token_of(&banner, "demo-plain ");
    let digest = token_of(&banner, "demo-digest ");
    assert_eq!(plain, "demo-plain-token");
    assert!(digest.starts_with("rfma-") && digest.len() > 40, "{digest}");

    // The printed curl lines, pasted into a shell: allowed, missing, wrong.
    let curls: Vec<&str> = banner
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(curls.len(), 3, "{banner}");
    let statuses: Vec<String> = curls
        .iter()
        .map(|c| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("{c} -s -o /dev/null -w '%{{http_code}}'"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    assert_eq!(statuses, ["200", "401", "403"], "{banner}");

    // The random digest token works too, and a bypassed path needs none.
    let r = Request::get("/headers")
        .header("x-rfma-token", &digest)
        .send(envoy)
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        !r.text().contains(&digest),
        "httpbin must not see the token: {}",
        r.text()
    );
    assert_eq!(Request::get("/status/204").send(envoy).unwrap().status, 204);

    let lines = sb.wait_for("five summary lines", |s| {
        let out = s.stdout();
        (out.lines().count() >= 5).then(|| out.lines().map(str::to_owned).collect::<Vec<_>>())
    });
    let words: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let tail = |w: &Vec<&str>| w[1..].join(" ");
    assert_eq!(
        tail(&words[0]),
        "GET /headers 200 allow token=demo-plain",
        "{lines:?}"
    );
    assert_eq!(tail(&words[1]), "GET /headers 401 deny missing_token");
    assert_eq!(tail(&words[2]), "GET /headers 403 deny invalid_token");
    assert_eq!(tail(&words[3]), "GET /headers 200 allow token=demo-digest");
    assert_eq!(tail(&words[4]), "GET /status/204 204 bypass");
    // The time column is HH:MM:SS.mmm.
    assert_eq!(words[0][0].len(), 12, "{}", lines[0]);
    // Tokens never reach the stream.
    assert!(!sb.stdout().contains(&digest) && !sb.stdout().contains(&plain));

    sb.signal(libc::SIGINT);
    let status = sb.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", sb.stderr());
    assert!(
        refused(envoy) && refused(admin) && refused(httpbin),
        "Envoy and httpbin must be stopped"
    );
}

#[test]
fn json_mode_passes_records_through_and_port_is_honoured() {
    let port = envoy_harness::free_port().unwrap();
    let mut sb = Sandbox::start(&["--json", "--port", &port.to_string()]);
    let banner = sb.banner();
    let envoy = address_after(&banner, "Envoy on");
    assert_eq!(envoy.port(), port);
    assert_eq!(
        Request::get("/get")
            .header("x-rfma-token", "demo-plain-token")
            .send(envoy)
            .unwrap()
            .status,
        200
    );
    assert_eq!(Request::get("/get?x=1").send(envoy).unwrap().status, 401);
    let lines = sb.wait_for("two records", |s| {
        let out = s.stdout();
        (out.lines().count() >= 2).then(|| out.lines().map(str::to_owned).collect::<Vec<_>>())
    });
    let recs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[0]["rfma"]["token"]["name"], "demo-plain");
    assert_eq!(recs[1]["rfma"]["reason"], "missing_token");
    assert_eq!(recs[1]["url"]["query"], "x=1");
    // SIGTERM stops it as cleanly as Ctrl-C.
    sb.signal(libc::SIGTERM);
    assert_eq!(sb.wait_exit().code(), Some(0), "{}", sb.stderr());
    assert!(refused(envoy));
}

#[test]
fn a_dying_child_is_named_and_the_sandbox_fails() {
    let mut sb = Sandbox::start(&[]);
    let banner = sb.banner();
    let admin = address_after(&banner, "envoy admin");
    let httpbin = address_after(&banner, "-> httpbin on");
    // Envoy's admin API can shut it down: the sandbox must notice and say so.
    let r = Request::new("POST", "/quitquitquit").send(admin).unwrap();
    assert_eq!(r.status, 200);
    let status = sb.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", sb.stderr());
    let err = sb.stderr();
    assert!(err.contains("istio-demo sandbox: envoy (pid "), "{err}");
    assert!(err.contains("exited with status 0"), "{err}");
    assert!(refused(httpbin), "httpbin must be stopped too");
    assert!(
        !sb.state_dir().join("sandbox.json").exists(),
        "the state file goes with a failed sandbox too"
    );
}

#[test]
fn bad_configuration_or_binary_fails_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"tokens":[{"name":"a","value":"x"},{"name":"b","sha256":"abc"}]}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("sandbox")
            .arg("--wasm")
            .arg(wasm())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--config",
        config.to_str().unwrap(),
        "--envoy",
        envoy_bin().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}: invalid plugin config: tokens[1].sha256: ",
            config.display()
        )),
        "{err}"
    );
    assert!(
        !err.contains("starting httpbin"),
        "nothing may start: {err}"
    );

    std::fs::write(&config, "").unwrap();
    let out = run(&["--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid plugin config: configuration: empty"),
        "{err}"
    );

    let out = run(&["--envoy", "/nonexistent/envoy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--envoy: /nonexistent/envoy does not exist"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["sandbox", "--wasm", "/nonexistent.wasm"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the filter module /nonexistent.wasm does not exist"),
        "{err}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "no state file before the checks pass"
    );
}
