//! Failing closed in a real Envoy, with the test-only build that traps (wasm `unreachable`) on
//! a request carrying `x-rfma-test-trap`, and with a module that is not Wasm at all.
//!
//! `fail_open: false` (Istio's `failStrategy: FAIL_CLOSE`, what the manifests use): the trapping
//! request gets a 503 and the worker's VM stays dead, so every later request on that worker
//! gets a 503 too, until the filter is reloaded (a new listener config). Nothing reaches httpbin.
//! `failure_policy: FAIL_RELOAD`: the trapping request gets a 503; after the reload back-off a
//! fresh VM serves again (`wasm.rfma.vm_reload_success`). `fail_open: true` (never used here)
//! would forward the trapping request and every later one unchecked. Envoy runs one worker, so "that
//! worker" is every request.

use crate::e2e_support::*;
use serde_json::json;

fn trap(stack: &Stack, path: &str) -> Response {
    send(
        stack,
        Request::get(path)
            .header("x-rfma-test-trap", "1")
            .header("x-rfma-token", ALPHA),
    )
}

/// A 503 that Envoy made (no httpbin body) and that httpbin never saw.
fn assert_refused(stack: &Stack, r: &Response, path_marker: &str) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.body.is_empty(), "{}", r.text());
    assert!(
        !stack
            .httpbin
            .served_paths()
            .unwrap()
            .iter()
            .any(|p| p.contains(path_marker)),
        "{path_marker} reached httpbin: {:?}",
        stack.httpbin.served_paths().unwrap()
    );
}

#[test]
fn fail_closed_a_trap_kills_the_vm_and_nothing_is_forwarded() {
    let stack = start_with(trap_wasm(), &base_config(), |spec, _| {
        spec.failure = FailurePolicy::FailClosed;
        Ok(())
    });
    let mut log = LogFollower::new(&stack.envoy.access_log);
    assert_upstream(&get_with_token(&stack, "/anything/before", ALPHA));
    assert_eq!(next_records(&mut log, 1)[0]["rfma"]["decision"], "allow");

    assert_refused(&stack, &trap(&stack, "/anything/trapped"), "trapped");
    // The VM is dead: valid tokens, bypassed paths and missing tokens all get 503.
    assert_refused(
        &stack,
        &get_with_token(&stack, "/anything/after-valid", ALPHA),
        "after-valid",
    );
    assert_refused(
        &stack,
        &send(&stack, Request::get("/status/200?after-bypass")),
        "after-bypass",
    );
    assert_refused(
        &stack,
        &send(&stack, Request::get("/anything/after-missing")),
        "after-missing",
    );
    // The trap is logged; the dead VM hands nothing over: Envoy's records, without a decision.
    let envoy_log = stack.envoy.process.log_text();
    assert!(
        envoy_log.contains("Uncaught RuntimeError: unreachable"),
        "{envoy_log}"
    );
    for rec in next_records(&mut log, 4) {
        assert_eq!(rec["http"]["response"]["status_code"], 503, "{rec}");
        assert_eq!(rec["event"]["outcome"], "failure", "{rec}");
        assert!(rec["rfma"].get("decision").is_none(), "{rec}");
    }
    assert_eq!(
        stack.envoy.stat("wasm.rfma.vm_reload_success").unwrap(),
        Some(0)
    );
}

#[test]
fn fail_closed_a_dead_vm_serves_again_after_a_listener_update() {
    let port = envoy::free_port().unwrap();
    let mut saved = None;
    let stack = start_with(trap_wasm(), &base_config(), |spec, dir| {
        let file = dir.join("lds").join("listeners.json");
        std::fs::create_dir(dir.join("lds")).map_err(|e| e.to_string())?;
        spec.listener_port = port;
        spec.listener_source = ListenerSource::Dynamic { file: file.clone() };
        bootstrap::write_lds_file(&file, &[bootstrap::plain_listener(spec)])
            .map_err(|e| e.to_string())?;
        saved = Some((spec.clone(), file));
        Ok(())
    });
    let (mut spec, file) = saved.unwrap();
    assert_refused(&stack, &trap(&stack, "/anything/trapped"), "trapped");
    assert_refused(
        &stack,
        &get_with_token(&stack, "/anything/dead", ALPHA),
        "dead",
    );
    // What a control plane does on a config push: a new listener with a new filter config.
    spec.plugin_config = json!({ "tokens": [{ "name": "alpha", "value": ALPHA }] }).to_string();
    bootstrap::write_lds_file(&file, &[bootstrap::plain_listener(&spec)]).unwrap();
    eventually("a new VM after the listener update", || {
        (get_with_token(&stack, "/get", ALPHA).status == 200).then_some(())
    });
    assert_deny(&get_with_token(&stack, "/get", WRONG), 403, "invalid_token");
}

#[test]
fn fail_reload_a_trap_refuses_that_request_then_a_fresh_vm_serves() {
    let stack = start_with(trap_wasm(), &base_config(), |spec, _| {
        spec.failure = FailurePolicy::FailReload { backoff_ms: 200 };
        Ok(())
    });
    assert_refused(&stack, &trap(&stack, "/anything/trapped"), "trapped");
    // After the back-off, the next request creates a new VM that gates as before.
    eventually("a reloaded VM to serve", || {
        (get_with_token(&stack, "/get", ALPHA).status == 200).then_some(())
    });
    assert!(
        stack
            .envoy
            .stat("wasm.rfma.vm_reload_success")
            .unwrap()
            .is_some_and(|n| n >= 1)
    );
    assert_deny(&get_with_token(&stack, "/get", WRONG), 403, "invalid_token");
    assert_deny(&send(&stack, Request::get("/get")), 401, "missing_token");
    // Another trap: refused again, never forwarded.
    assert_refused(
        &stack,
        &trap(&stack, "/anything/trapped-again"),
        "trapped-again",
    );
}

#[test]
fn fail_open_would_let_requests_through_unchecked_after_a_trap() {
    let stack = start_with(trap_wasm(), &base_config(), |spec, _| {
        spec.failure = FailurePolicy::FailOpen;
        Ok(())
    });
    // The trapping request itself goes upstream, token unstripped: no filter finished.
    let trapped = assert_upstream(&trap(&stack, "/anything/trapped"));
    assert_eq!(
        echoed_header(&trapped, "x-rfma-token"),
        Some(ALPHA),
        "{trapped}"
    );
    // Everything after the trap reaches httpbin with no token check at all: the reason the
    // manifests never use FAIL_OPEN for this gate.
    let unchecked = send(&stack, Request::get("/anything/no-token-at-all"));
    assert_eq!(unchecked.status, 200, "{}", unchecked.text());
    assert!(
        stack
            .httpbin
            .served_paths()
            .unwrap()
            .iter()
            .any(|p| p == "/anything/no-token-at-all")
    );
    let envoy_log = stack.envoy.process.log_text();
    assert!(
        envoy_log.contains("Uncaught RuntimeError: unreachable"),
        "{envoy_log}"
    );
}

#[test]
fn a_module_that_is_not_wasm_stops_envoy_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm but not really a module").unwrap();
    let spec = BootstrapSpec::new(
        1,
        &broken,
        &base_config().to_string(),
        &dir.path().join("access.log"),
    );
    let mut envoy =
        envoy::Envoy::spawn(&envoy_bin(), &spec, dir.path(), &Default::default()).unwrap();
    let status = envoy
        .process
        .wait_exit(std::time::Duration::from_secs(60))
        .expect("Envoy should exit");
    assert_eq!(status.code(), Some(1), "{}", envoy.process.log_text());
}

/// The manifests choose the policy the tests above prove: every `failStrategy` in `istio/` is
/// `FAIL_CLOSE`, which Istio renders as `fail_open: false` ([`FailurePolicy::FailClosed`]).
#[test]
fn the_manifests_fail_closed() {
    fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                yaml_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    yaml_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../istio"),
        &mut files,
    );
    let strategies: Vec<(String, String)> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| {
                    l.trim()
                        .strip_prefix("failStrategy:")
                        .map(|v| v.trim().to_owned())
                })
                .map(|v| (f.display().to_string(), v))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!strategies.is_empty(), "no failStrategy in istio/");
    for (file, strategy) in &strategies {
        assert_eq!(strategy, "FAIL_CLOSE", "{file}");
    }
}
