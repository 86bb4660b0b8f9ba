//! The plugin configuration's life cycle in a real Envoy.
//!
//! Static bootstrap: a configuration the filter rejects stops Envoy from starting (exit 1).
//! Dynamic listener (file-based LDS, how Istio pushes listener updates): an update whose
//! filter rejects its configuration is NACKed (`listener_manager.lds.update_rejected`), the
//! filter's error line says why, and the listener keeps serving the previous, valid
//! configuration; a later valid update replaces it.

use crate::e2e_support::*;
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

/// Log lines containing `needle`, by Envoy thread id, split into (main thread, others).
fn count_by_thread(log: &str, needle: &str) -> (usize, usize) {
    let tid = |l: &str| {
        l.split('[')
            .nth(2)
            .and_then(|t| t.split(']').next())
            .map(str::to_owned)
    };
    let main = log
        .lines()
        .find(|l| l.contains("starting main dispatch loop"))
        .and_then(tid)
        .expect("Envoy logs its main thread starting");
    log.lines()
        .filter(|l| l.contains(needle))
        .fold((0, 0), |(m, o), l| {
            if tid(l).as_deref() == Some(main.as_str()) {
                (m + 1, o)
            } else {
                (m, o + 1)
            }
        })
}

/// A push reuses the worker's VM: counters carry over, and the once-per-VM plain-text warning
/// is not repeated by the worker (the main thread logs it again from the throw-away VM Envoy
/// configures the new plugin in first).
#[test]
fn a_push_reuses_the_workers_vm_and_keeps_counting() {
    let port = envoy::free_port().unwrap();
    let mut saved = None;
    let stack = start_with(wasm(), &base_config(), |spec, dir| {
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
    const WARNING: &str = "plain text is discouraged";
    assert_upstream(&get_with_token(&stack, "/get", ALPHA));
    assert_upstream(&get_with_token(&stack, "/get", BRAVO));
    let (main_before, worker_before) = count_by_thread(&stack.envoy.process.log_text(), WARNING);
    assert_eq!(worker_before, 1, "the worker's VM warns once");

    // The same tokens under new names: a new plugin configuration, still with a plain value.
    let mut c = base_config();
    c["tokens"][0]["name"] = json!("alpha-renamed");
    spec.plugin_config = c.to_string();
    bootstrap::write_lds_file(&file, &[bootstrap::plain_listener(&spec)]).unwrap();
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let mut sent = 2;
    let record = eventually("the new configuration to serve", || {
        assert_upstream(&get_with_token(&stack, "/get", ALPHA));
        sent += 1;
        let recs = envoy::parse_records(&log.wait_lines(1, WAIT).unwrap()).unwrap();
        recs.into_iter()
            .find(|r| r["rfma"]["token"]["name"] == "alpha-renamed")
    });
    assert_eq!(record["rfma"]["decision"], "allow");
    let (main_after, worker_after) = count_by_thread(&stack.envoy.process.log_text(), WARNING);
    assert_eq!(
        worker_after, 1,
        "the worker's VM was reused, so it does not warn again"
    );
    assert!(
        main_after > main_before,
        "the new plugin was first configured on the main thread"
    );
    // Every allowed request counted, before and after the push (each one's record was read,
    // so its stream is complete).
    let prom = stack.envoy.prometheus().unwrap();
    assert_eq!(
        prometheus_value(&prom, "rfma_allowed_total"),
        Some(sent),
        "{prom}"
    );
}

/// The filter's configuration by file-based ECDS (how Istio delivers a WasmPlugin): an update
/// is applied (`extension_config_discovery.http_filter.rfma.config_reload`) and reaches the next
/// request on a connection opened before it. An update whose filter refuses its configuration
/// is counted (`update_rejected`, `config_fail`), Envoy and the filter say why, and the previous
/// configuration serves on, on that same connection too. Envoy 1.40 counts the refused update
/// in `config_reload` as well, and takes the same refused file written again silently: what
/// [`envoy::EcdsCounters`] reads around.
#[test]
fn ecds_takes_an_update_on_open_connections_and_keeps_the_last_valid_one() {
    let mut saved = None;
    let stack = start_with(wasm(), &base_config(), |spec, dir| {
        saved = Some((
            spec.clone(),
            bootstrap::serve_filter_config_from_file(spec, dir)?,
        ));
        Ok(())
    });
    let (spec, file) = saved.unwrap();
    let admin = stack.envoy.admin().unwrap();
    let counters = || envoy::EcdsCounters::read(admin).unwrap();
    let stat = |counter: &str| {
        stack
            .envoy
            .stat(&bootstrap::ecds_stat(counter))
            .unwrap()
            .unwrap_or(0)
    };
    let push = |config: &Value| {
        let before = counters();
        let typed = bootstrap::wasm_typed_config(&spec.wasm, &config.to_string(), spec.failure);
        bootstrap::write_ecds_file(&file, &typed).unwrap();
        before
    };
    let outcome = |before: envoy::EcdsCounters| {
        eventually("Envoy's answer to the ECDS update", || {
            before.outcome(&counters())
        })
    };
    let start = counters();
    assert_eq!(
        (start.reloads, start.rejected, start.taken),
        (1, 0, 1),
        "the first configuration, applied before the listener served"
    );
    assert_eq!(stat("config_fail"), 0);
    let mut conn = envoy_harness::http1::Connection::open(stack.plain().unwrap()).unwrap();
    let mut on_conn = |token: &str| {
        let r = conn
            .send(&Request::get("/get").header("x-rfma-token", token))
            .unwrap();
        assert!(!conn.closing(), "Envoy keeps the connection open: {r:?}");
        r
    };
    assert_upstream(&on_conn(ALPHA));

    // Refused by the filter: counted, told, and the previous configuration serves on.
    let log_from = stack.envoy.process.log_text().len();
    let before = push(&invalid_config());
    assert_eq!(outcome(before), envoy::EcdsOutcome::Rejected);
    assert_eq!(stat("config_fail"), 1);
    let log = stack.envoy.process.log_text()[log_from..].to_owned();
    assert!(
        log.contains("rfma: invalid plugin config: tokens[1].sha256: "),
        "{log}"
    );
    assert!(
        log.contains("config update rejected: Unable to create Wasm plugin rfma"),
        "{log}"
    );
    assert_upstream(&on_conn(ALPHA));
    assert_upstream(&on_conn(BRAVO));
    assert_upstream(&get_with_token(&stack, "/get", ALPHA));

    // Envoy 1.40 remembers the refused configuration: the same file again is taken without a
    // word (no reload, no rejection), and the previous one still serves.
    let before = push(&invalid_config());
    eventually("the same refused file to be taken", || {
        (counters().taken > before.taken).then_some(())
    });
    let now = counters();
    assert_eq!(
        (now.reloads, now.rejected),
        (before.reloads, before.rejected)
    );
    assert_upstream(&on_conn(ALPHA));

    // A valid update: applied, and the next request on the same connection meets it.
    let before = push(&json!({ "tokens": [{ "name": "charlie", "sha256": sha256_hex(CHARLIE) }] }));
    assert_eq!(outcome(before), envoy::EcdsOutcome::Applied);
    assert_upstream(&on_conn(CHARLIE));
    assert_deny(&on_conn(ALPHA), 403, "invalid_token");
    assert_deny(&get_with_token(&stack, "/get", BRAVO), 403, "invalid_token");
    assert_eq!(stat("config_fail"), 1);
    assert_no_listener_replaced(&stack);
}
