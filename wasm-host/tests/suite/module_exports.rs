//! The shipped module exports only what `filter/exports.json` lists (`make wasm` runs
//! wasm-post with it), and Envoy calls only exported callbacks: a request costs three
//! trips into the module, not one per callback the SDK knows. `proxy_on_log` is not among
//! them: the access record is Envoy's, and the export alone cost about 1.6k instructions.

use crate::common::{LEGACY_TOKEN, config};
use rfma_wasm_host::{Host, filter_module};
use std::collections::BTreeSet;

fn listed_exports() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../filter/exports.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let graph: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    graph
        .as_array()
        .unwrap_or_else(|| panic!("{path}: not a list of graph nodes"))
        .iter()
        .filter_map(|node| node["export"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_module_exports_exactly_the_listed_names() {
    let exported: BTreeSet<String> = filter_module().export_names().into_iter().collect();
    assert_eq!(exported, listed_exports());
    // What Envoy needs to load a module and run an HTTP filter in it.
    for required in [
        "memory",
        "_initialize",
        "proxy_abi_version_0_2_1",
        "proxy_on_memory_allocate",
        "proxy_on_vm_start",
        "proxy_on_configure",
        "proxy_on_context_create",
        "proxy_on_request_headers",
        "proxy_on_delete",
    ] {
        assert!(exported.contains(required), "{required} is not exported");
    }
    assert!(!exported.contains("proxy_on_log"));
}

#[test]
fn every_request_makes_three_callbacks_whatever_the_decision() {
    let mut host = Host::load(filter_module()).unwrap_or_else(|e| panic!("{e}"));
    host.configure(config().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut plugin = host.plugin().unwrap_or_else(|| panic!("not configured"));
    let allowed = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    let denied = plugin.request().header("x-rfma-token", "wrong").send();
    let bypassed = plugin.request().path("/status/200").send();
    assert!(allowed.is_forwarded());
    assert_eq!(denied.status(), Some(403));
    assert!(bypassed.is_forwarded());
    for r in [&allowed, &denied, &bypassed] {
        assert_eq!(
            r.callbacks(),
            [
                "proxy_on_context_create",
                "proxy_on_request_headers",
                "proxy_on_delete"
            ],
            "{r:?}"
        );
        assert!(r.decision().is_some(), "{r:?}");
    }
}
