//! The plugin configuration's life cycle in a real Envoy.
//!
//! Static bootstrap: a configuration the filter rejects stops Envoy from starting (exit 1).
//! Dynamic listener (file-based LDS, how Istio pushes listener updates): an update whose
//! filter rejects its configuration is NACKed (`listener_manager.lds.update_rejected`), the
//! filter's error line says why, and the listener keeps serving the previous, valid
//! configuration; a later valid update replaces it.

mod e2e_support;
use e2e_support::*;
use serde_json::{Value, json};
use std::time::Duration;

const CHARLIE: &str = "charlie-token-e2e-4";

fn invalid_config() -> Value {
    json!({ "tokens": [{ "name": "alpha", "value": ALPHA }, { "name": "bad", "sha256": "zz" }] })
}

#[test]
fn static_bootstrap_with_a_rejected_configuration_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let spec = BootstrapSpec::new(
        1,
        &wasm(),
        &invalid_config().to_string(),
        &dir.path().join("access.log"),
    );
    let mut envoy =
        envoy::Envoy::spawn(&envoy_bin(), &spec, dir.path(), &Default::default()).unwrap();
    let status = envoy
        .process
        .wait_exit(Duration::from_secs(60))
        .expect("Envoy should exit on its own");
    assert_eq!(status.code(), Some(1), "{}", envoy.process.log_text());
    let log = envoy.process.log_text();
    assert!(
        log.contains("rfma: invalid plugin config: tokens[1].sha256: "),
        "the filter's error line names the field:\n{log}"
    );
    assert!(log.contains("Unable to create Wasm plugin rfma"), "{log}");
}

#[test]
fn dynamic_listener_keeps_the_last_valid_configuration_and_takes_a_new_one() {
    let port = envoy::free_port().unwrap();
    let mut saved = None;
    let stack = start_with(wasm(), &base_config(), |spec, dir| {
        let lds = dir.join("lds");
        std::fs::create_dir(&lds).map_err(|e| e.to_string())?;
        let file = lds.join("listeners.json");
        spec.listener_port = port;
        spec.listener_source = ListenerSource::Dynamic { file: file.clone() };
        bootstrap::write_lds_file(&file, &[bootstrap::plain_listener(spec)])
            .map_err(|e| e.to_string())?;
        saved = Some((spec.clone(), file));
        Ok(())
    });
    let (mut spec, file) = saved.unwrap();
    let stat = |name: &str| stack.envoy.stat(name).unwrap().unwrap_or(0);
    assert_eq!(stat("listener_manager.lds.update_success"), 1);
    assert_upstream(&get_with_token(&stack, "/get", ALPHA));

    // An invalid configuration: rejected, with the filter's reason, and the old one serves on.
    spec.plugin_config = invalid_config().to_string();
    bootstrap::write_lds_file(&file, &[bootstrap::plain_listener(&spec)]).unwrap();
    eventually("the update to be rejected", || {
        (stat("listener_manager.lds.update_rejected") == 1).then_some(())
    });
    let log = stack.envoy.process.log_text();
    assert!(
        log.contains("rfma: invalid plugin config: tokens[1].sha256: "),
        "{log}"
    );
    assert!(
        log.contains("lds: listener 'rfma_plain' config rejected"),
        "{log}"
    );
    assert_eq!(stat("listener_manager.lds.update_success"), 1);
    assert_upstream(&get_with_token(&stack, "/get", ALPHA));
    assert_upstream(&get_with_token(&stack, "/get", BRAVO));
    assert_deny(
        &get_with_token(&stack, "/get", CHARLIE),
        403,
        "invalid_token",
    );

    // A new valid configuration with a different token: the new passes, the old is denied.
    spec.plugin_config =
        json!({ "tokens": [{ "name": "charlie", "sha256": sha256_hex(CHARLIE) }] }).to_string();
    bootstrap::write_lds_file(&file, &[bootstrap::plain_listener(&spec)]).unwrap();
    eventually("the new listener to be accepted", || {
        (stat("listener_manager.lds.update_success") == 2).then_some(())
    });
    // The old listener drains; new connections reach the new one.
    eventually("the new token to pass", || {
        (get_with_token(&stack, "/get", CHARLIE).status == 200).then_some(())
    });
    assert_deny(&get_with_token(&stack, "/get", ALPHA), 403, "invalid_token");
    assert_deny(&get_with_token(&stack, "/get", BRAVO), 403, "invalid_token");
    assert_deny(
        &send(&stack, Request::get("/status/200")),
        401,
        "missing_token",
    );
    assert_eq!(stat("listener_manager.lds.update_rejected"), 1);
}
