//! `token rotate --sandbox` against a real sandbox (the CLI's own, Envoy and httpbin on loopback),
//! its wait in fake time: no traffic, so quiet from the first read.

use super::*;
use istio_demo::commands::sandbox::gate::SandboxGate;

/// The sandbox's fixed plain-text demo token.
const DEMO_PLAIN: &str = "demo-plain-token";

/// A sandbox of the real CLI (Envoy, httpbin) with its state in a temporary directory; stopped
/// with SIGTERM, as Ctrl-C stops it, when dropped.
struct LiveSandbox {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for LiveSandbox {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn start_sandbox() -> (LiveSandbox, SandboxGate) {
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .arg("sandbox")
        .arg("--wasm")
        .arg(crate::sandbox::wasm())
        .arg("--envoy")
        .arg(crate::sandbox::envoy_bin())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut sb = LiveSandbox { child, dir };
    // Readiness: the gate opens once the sandbox has published its Envoy and configuration.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(g) = SandboxGate::open(Some(&sb.dir.path().join("state")))
            && g.config().is_ok()
        {
            return (sb, g);
        }
        assert!(
            sb.child.try_wait().unwrap().is_none(),
            "the sandbox exited before it was ready"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no sandbox after 60 s"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn status_with(addr: std::net::SocketAddr, token: &str) -> u16 {
    envoy_harness::http1::Request::get("/get")
        .header("x-rfma-token", token)
        .send(addr)
        .unwrap()
        .status
}

#[tokio::test]
async fn the_sandbox_rotates_a_token_in_place_and_prints_the_new_one_once() {
    let (sb, gate) = start_sandbox();
    let addr = gate.listener();
    assert_eq!(status_with(addr, DEMO_PLAIN), 200);
    let a = RotateArgs {
        sandbox: true,
        state_dir: Some(sb.dir.path().join("state")),
        overlap: Some(Duration::from_secs(3600)),
        ..args("demo-plain")
    };
    let clock = ManualClock::default();
    let mut out = Vec::new();
    let code = rotate::run_sandbox(&a, &clock, Duration::from_secs(10), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    use rotate::engine::Clock;
    assert_eq!(
        clock.now(),
        Duration::from_secs(20),
        "no traffic: quiet from the first read"
    );
    // The new token is the line after the hand-over's, printed once.
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains("your token demo-plain-r2 (shown only now)"))
        .unwrap_or_else(|| panic!("{text}"));
    let new = lines[i + 1];
    assert_eq!(text.matches(new).count(), 1, "{text}");
    assert!(
        !text.contains(DEMO_PLAIN),
        "the old token is never printed: {text}"
    );
    assert_mentions(
        &text,
        &[
            "demo-plain-r2 (sha256 ",
            "beside demo-plain (valid until ",
            &format!(
                "removed: token demo-plain (sha256 {}…",
                &istio_demo::commands::token::digest(DEMO_PLAIN)[..12]
            ),
        ],
    );
    // In force at once, without a restart: the new token passes, the old one no longer does.
    assert_eq!(status_with(addr, new), 200);
    assert_eq!(status_with(addr, DEMO_PLAIN), 403);
    let names: Vec<String> = gate.config().unwrap()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"demo-plain-r2".to_string()) && !names.contains(&"demo-plain".to_string()),
        "{names:?}"
    );
}
