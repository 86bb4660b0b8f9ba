//! Each counter on the compiled module counts its own path and nothing else, and each
//! configured token has its own counter of the requests it allowed.

use crate::common;

use crate::common::{
    COUNTERS, LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_SPIFFE, SLEEP_TOKEN, config, host, host_with,
    token_counter,
};
use rfma_wasm_host::{Host, Plugin, Status};
use serde_json::json;

/// Every counter the test configuration defines: the decision counters, then one per token.
fn all_counters() -> Vec<String> {
    COUNTERS
        .iter()
        .map(|c| c.to_string())
        .chain(["sleep", "legacy"].map(token_counter))
        .collect()
}

fn snapshot(plugin: &Plugin<'_>) -> Vec<u64> {
    all_counters().iter().map(|c| plugin.counter(c)).collect()
}

/// Sends one request with `send`, then checks that only `counters` moved, each by one.
fn only_moves(counters: &[&str], send: impl FnOnce(&mut Plugin<'_>)) {
    only_moves_in(host(), counters, send)
}

fn only_moves_in(mut host: Host, counters: &[&str], send: impl FnOnce(&mut Plugin<'_>)) {
    let mut plugin = host.plugin().unwrap();
    let before = snapshot(&plugin);
    assert!(before.iter().all(|v| *v == 0), "{before:?}");
    send(&mut plugin);
    let after = snapshot(&plugin);
    for (i, name) in all_counters().iter().enumerate() {
        let expected = u64::from(counters.contains(&name.as_str()));
        assert_eq!(
            after[i] - before[i],
            expected,
            "{name} after a {counters:?} request"
        );
    }
}

fn defined_metrics(host: &Host) -> usize {
    host.calls()
        .iter()
        .filter(|c| c.name == "proxy_define_metric")
        .count()
}

#[test]
fn every_counter_is_defined_at_configure_time_one_per_token_name() {
    let mut host = host();
    assert_eq!(defined_metrics(&host), all_counters().len());
    let plugin = host.plugin().unwrap();
    assert_eq!(plugin.metric_names(), all_counters());
    assert_eq!(
        token_counter("sleep"),
        "token=.=sleep;.;rfma_token_allowed_total"
    );
}

#[test]
fn allowed_total() {
    only_moves(&["rfma_allowed_total", &token_counter("legacy")], |p| {
        p.request().header("x-rfma-token", LEGACY_TOKEN).send();
    });
}

#[test]
fn a_principal_bound_token_counts_under_its_own_name() {
    only_moves(&["rfma_allowed_total", &token_counter("sleep")], |p| {
        p.request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(SLEEP_SPIFFE)
            .send();
    });
}

#[test]
fn bypassed_total() {
    only_moves(&["rfma_bypassed_total"], |p| {
        p.request().path("/status/200").send();
    });
}

#[test]
fn denied_missing_token_total() {
    only_moves(&["rfma_denied_missing_token_total"], |p| {
        p.request().send();
    });
}

#[test]
fn denied_invalid_token_total() {
    only_moves(&["rfma_denied_invalid_token_total"], |p| {
        p.request().header("x-rfma-token", "nope").send();
    });
}

#[test]
fn denied_duplicate_token_total() {
    only_moves(&["rfma_denied_duplicate_token_total"], |p| {
        p.request()
            .header("x-rfma-token", LEGACY_TOKEN)
            .header("x-rfma-token", LEGACY_TOKEN)
            .send();
    });
}

#[test]
fn denied_principal_mismatch_total() {
    only_moves(&["rfma_denied_principal_mismatch_total"], |p| {
        p.request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(OTHER_SPIFFE)
            .send();
    });
}

#[test]
fn denied_internal_error_total() {
    only_moves(&["rfma_denied_internal_error_total"], |p| {
        p.host()
            .inject_fault("proxy_get_header_map_pairs", Status::InternalFailure);
        p.request().header("x-rfma-token", LEGACY_TOKEN).send();
    });
}

/// The test configuration with a token valid in 2026 only (the host's clock is in 2026).
fn with_window() -> Host {
    let mut cfg = config();
    cfg["tokens"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "y2026", "value": "y2026-demo-token",
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-12-31T23:59:59Z"}));
    host_with(&cfg)
}

#[test]
fn denied_expired_token_total() {
    only_moves_in(with_window(), &["rfma_denied_expired_token_total"], |p| {
        p.request()
            .header("x-rfma-token", "y2026-demo-token")
            .at_ns(1_798_761_600_000_000_000)
            .send();
    });
}

#[test]
fn denied_token_not_yet_valid_total() {
    only_moves_in(
        with_window(),
        &["rfma_denied_token_not_yet_valid_total"],
        |p| {
            p.request()
                .header("x-rfma-token", "y2026-demo-token")
                .at_ns(1_767_225_599_999_999_999)
                .send();
        },
    );
}

#[test]
fn a_windowed_token_inside_its_window_counts_as_allowed_under_its_name() {
    only_moves_in(
        with_window(),
        &["rfma_allowed_total", &token_counter("y2026")],
        |p| {
            p.request()
                .header("x-rfma-token", "y2026-demo-token")
                .send();
        },
    );
}

#[test]
fn a_token_counter_counts_only_the_requests_its_token_allowed() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for _ in 0..3 {
        plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    }
    plugin
        .request()
        .header("x-rfma-token", SLEEP_TOKEN)
        .peer(SLEEP_SPIFFE)
        .send();
    // The token matched, but the request was denied: not a use of the token.
    plugin
        .request()
        .header("x-rfma-token", SLEEP_TOKEN)
        .peer(OTHER_SPIFFE)
        .send();
    // Bypassed with a token in hand: the token was not what let it through.
    plugin
        .request()
        .path("/status/200")
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    plugin
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    assert_eq!(plugin.counter(&token_counter("legacy")), 3);
    assert_eq!(plugin.counter(&token_counter("sleep")), 1);
    assert_eq!(plugin.counter("rfma_allowed_total"), 4);
}

/// A push defines only the names it adds: a name that stays keeps its id (and its count), a
/// name that goes stops counting (Envoy cannot remove a stat), a new name starts at zero.
#[test]
fn a_push_keeps_the_ids_of_names_that_stay_and_defines_only_new_names() {
    let mut host = host();
    host.plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    let before = defined_metrics(&host);
    let mut pushed = config();
    pushed["tokens"] = json!([
        {"name": "legacy", "value": LEGACY_TOKEN},
        {"name": "fresh", "value": "fresh-demo-token"}
    ]);
    host.configure(pushed.to_string()).unwrap();
    assert_eq!(
        defined_metrics(&host) - before,
        1,
        "only the new name is defined on a push"
    );
    let mut plugin = host.plugin().unwrap();
    plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    plugin
        .request()
        .header("x-rfma-token", "fresh-demo-token")
        .send();
    plugin.request().header("x-rfma-token", SLEEP_TOKEN).send();
    assert_eq!(plugin.counter(&token_counter("legacy")), 2);
    assert_eq!(plugin.counter(&token_counter("fresh")), 1);
    assert_eq!(plugin.counter(&token_counter("sleep")), 0);
    assert_eq!(plugin.counter("rfma_denied_invalid_token_total"), 1);
    // Pushing the first configuration back defines nothing at all.
    let again = defined_metrics(&host);
    host.configure(config().to_string()).unwrap();
    assert_eq!(defined_metrics(&host), again);
}

#[test]
fn a_thousand_and_twenty_four_token_counters_are_defined_and_count() {
    let tokens: Vec<_> = (0..1024)
        .map(|i| json!({"name": format!("t{i}"), "value": format!("v{i}")}))
        .collect();
    let mut host = host_with(&json!({ "tokens": tokens }));
    let mut plugin = host.plugin().unwrap();
    plugin.request().header("x-rfma-token", "v1023").send();
    assert_eq!(plugin.metric_names().len(), COUNTERS.len() + 1024);
    assert_eq!(plugin.counter(&token_counter("t1023")), 1);
    assert_eq!(plugin.counter(&token_counter("t0")), 0);
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
