//! Each counter on the compiled module counts its own path and nothing else.

mod common;

use common::{COUNTERS, LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_TOKEN, host};
use rfma_tests::{Plugin, Status};

fn snapshot(plugin: &Plugin<'_>) -> Vec<u64> {
    COUNTERS.iter().map(|c| plugin.counter(c)).collect()
}

/// Sends one request with `send`, then checks that only `counter` moved, by one.
fn only_moves(counter: &str, send: impl FnOnce(&mut Plugin<'_>)) {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let before = snapshot(&plugin);
    assert!(before.iter().all(|v| *v == 0), "{before:?}");
    send(&mut plugin);
    let after = snapshot(&plugin);
    for (i, name) in COUNTERS.iter().enumerate() {
        let expected = u64::from(*name == counter);
        assert_eq!(
            after[i] - before[i],
            expected,
            "{name} after a {counter} request"
        );
    }
}

#[test]
fn all_seven_counters_are_defined_at_configure_time() {
    let mut host = host();
    let plugin = host.plugin().unwrap();
    assert_eq!(plugin.metric_names(), COUNTERS);
}

#[test]
fn allowed_total() {
    only_moves("rfma_allowed_total", |p| {
        p.request().header("x-rfma-token", LEGACY_TOKEN).send();
    });
}

#[test]
fn bypassed_total() {
    only_moves("rfma_bypassed_total", |p| {
        p.request().path("/status/200").send();
    });
}

#[test]
fn denied_missing_token_total() {
    only_moves("rfma_denied_missing_token_total", |p| {
        p.request().send();
    });
}

#[test]
fn denied_invalid_token_total() {
    only_moves("rfma_denied_invalid_token_total", |p| {
        p.request().header("x-rfma-token", "nope").send();
    });
}

#[test]
fn denied_duplicate_token_total() {
    only_moves("rfma_denied_duplicate_token_total", |p| {
        p.request()
            .header("x-rfma-token", LEGACY_TOKEN)
            .header("x-rfma-token", LEGACY_TOKEN)
            .send();
    });
}

#[test]
fn denied_principal_mismatch_total() {
    only_moves("rfma_denied_principal_mismatch_total", |p| {
        p.request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(OTHER_SPIFFE)
            .send();
    });
}

#[test]
fn denied_internal_error_total() {
    only_moves("rfma_denied_internal_error_total", |p| {
        p.host()
            .inject_fault("proxy_get_header_map_pairs", Status::InternalFailure);
        p.request().header("x-rfma-token", LEGACY_TOKEN).send();
    });
}

#[test]
fn counters_accumulate_over_requests_and_survive_a_configuration_push() {
    let mut host = host();
    {
        let mut plugin = host.plugin().unwrap();
        for _ in 0..3 {
            plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
        }
        plugin.request().send();
    }
    host.configure(common::config().to_string()).unwrap();
    let mut plugin = host.plugin().unwrap();
    plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert_eq!(plugin.counter("rfma_allowed_total"), 4);
    assert_eq!(plugin.counter("rfma_denied_missing_token_total"), 1);
}
