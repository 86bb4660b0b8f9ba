//! Metrics with Envoy's rules (define, increment, get) and logs with their levels and origins.

use super::probe::configured;
use crate::common::{BAD_ARGUMENT, OK, statuses};
use rfma_wasm_host::{LogLevel, LogOrigin};

#[test]
fn metrics_define_increment_get_with_envoy_rules() {
    let mut host = configured();
    let r = host.plugin().unwrap().request().send();
    // increment by 3 is Ok, by 0 is BadArgument for a counter.
    assert_eq!(
        statuses(&r, "proxy_increment_metric"),
        vec![OK, BAD_ARGUMENT]
    );
    assert_eq!(
        r.filter_state("wasm.out.metric"),
        Some(&3u64.to_le_bytes()[..])
    );
    let mut plugin = host.plugin().unwrap();
    plugin.request().send();
    assert_eq!(plugin.counter("probe_total"), 6);
    assert_eq!(plugin.metric_names(), vec!["probe_total"]);
}

#[test]
fn logs_are_captured_with_levels_and_stdout_is_info() {
    let mut host = configured();
    let r = host.plugin().unwrap().request().send();
    let warn = r.logs().iter().find(|l| l.message == "probe warn").unwrap();
    assert_eq!(warn.level, LogLevel::Warn);
    assert_eq!(warn.origin, LogOrigin::ProxyLog);
    assert_eq!(warn.context_id, r.context_id());
    let out = r.logs().iter().find(|l| l.message == "to stdout").unwrap();
    assert_eq!(out.level, LogLevel::Info);
    assert_eq!(out.origin, LogOrigin::Stdout);
}
