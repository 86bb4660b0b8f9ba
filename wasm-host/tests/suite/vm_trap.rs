//! A trap inside the module is a failed VM: with Envoy's default
//! (fail closed) the trapping request and every later one get 503.

use crate::common::{LEGACY_TOKEN, config};
use rfma_wasm_host::{Host, HostOptions, filter_module, trap_module};

fn trap_host(fail_open: bool) -> Host {
    let options = HostOptions {
        fail_open,
        ..HostOptions::default()
    };
    let mut host = Host::load_with(trap_module(), options).unwrap_or_else(|e| panic!("{e}"));
    host.configure(config().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    host
}

#[test]
fn the_trap_build_is_an_ordinary_filter_without_the_marker() {
    let mut host = trap_host(false);
    let mut plugin = host.plugin().unwrap();
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert!(r.is_forwarded());
    assert_eq!(plugin.request().send().status(), Some(401));
    assert!(plugin.host_ref().failure().is_none());
}

#[test]
fn the_marker_header_traps_and_fails_the_vm_closed() {
    let mut host = trap_host(false);
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .header("x-rfma-test-trap", "1")
        .send();
    let failure = r.vm_failure().expect("the VM fails");
    assert_eq!(failure.during, "proxy_on_request_headers");
    assert!(
        failure
            .trap
            .as_deref()
            .unwrap_or_default()
            .contains("unreachable"),
        "{failure:?}"
    );
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.client().unwrap().details, "wasm_fail_stream");
    assert!(
        !r.is_forwarded(),
        "a failed VM must not let the request through"
    );
    assert!(
        r.handover().is_empty(),
        "the VM trapped before handing anything over"
    );
    // Every later request, even a valid one, fails closed without reaching the module.
    for _ in 0..3 {
        let later = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
        assert_eq!(later.status(), Some(503));
        assert!(!later.is_forwarded());
        assert!(later.callbacks().is_empty());
    }
    assert_eq!(plugin.counter("rfma_allowed_total"), 0);
}

#[test]
fn with_fail_open_a_failed_vm_lets_requests_through_unfiltered() {
    let mut host = trap_host(true);
    let mut plugin = host.plugin().unwrap();
    let r = plugin.request().header("x-rfma-test-trap", "1").send();
    assert!(r.vm_failure().is_some());
    assert!(r.is_forwarded());
    let later = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert!(later.is_forwarded());
    assert!(
        later.forwarded_headers().unwrap().contains("x-rfma-token"),
        "no filter ran, so nothing was stripped"
    );
}

#[test]
fn the_shipped_module_ignores_the_marker_header() {
    let mut host = Host::load(filter_module()).unwrap();
    let mut plugin = host.configure(config().to_string()).unwrap();
    let r = plugin
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .header("x-rfma-test-trap", "1")
        .send();
    assert!(r.vm_failure().is_none());
    assert!(r.is_forwarded());
}

#[test]
fn every_import_of_the_shipped_module_is_provided() {
    let host = Host::load(filter_module()).unwrap();
    assert!(
        host.unknown_imports().is_empty(),
        "{:?}",
        host.unknown_imports()
    );
    let host = Host::load(trap_module()).unwrap();
    assert!(
        host.unknown_imports().is_empty(),
        "{:?}",
        host.unknown_imports()
    );
}
