//! Properties: Envoy's byte encodings, the header-derived attributes' lifetime, absent ones,
//! and `set_property` through filter state.

use super::probe::configured;
use crate::common::{NOT_FOUND, statuses};
use rfma_wasm_host::DEFAULT_START_TIME_NS;

#[test]
fn properties_use_envoy_byte_encodings() {
    let mut host = configured();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .source("10.1.2.3:4567")
        .peer("spiffe://cluster.local/ns/demo/sa/sleep")
        .protocol("HTTP/2")
        .request_id("abc-123")
        .upstream_status(204)
        .latency_ns(7_000_000)
        .send();
    assert_eq!(
        r.filter_state("wasm.out.source_address"),
        Some(&b"10.1.2.3:4567"[..])
    );
    assert_eq!(
        r.filter_state("wasm.out.source_port"),
        Some(&4567i64.to_le_bytes()[..])
    );
    assert_eq!(
        r.filter_state("wasm.out.request_time"),
        Some(&(DEFAULT_START_TIME_NS as i64).to_le_bytes()[..])
    );
    assert_eq!(r.filter_state("wasm.out.protocol"), Some(&b"HTTP/2"[..]));
    assert_eq!(
        r.filter_state("wasm.out.san"),
        Some(&b"spiffe://cluster.local/ns/demo/sa/sleep"[..])
    );
    assert_eq!(r.filter_state("wasm.out.request_id"), Some(&b"abc-123"[..]));
    // response.code in the response phase and at log: int64, 8 bytes LE.
    assert_eq!(
        r.filter_state("wasm.out.code_in_response"),
        Some(&204i64.to_le_bytes()[..])
    );
    assert_eq!(
        r.filter_state("wasm.out.code_at_log"),
        Some(&204i64.to_le_bytes()[..])
    );
    assert_eq!(
        r.filter_state("wasm.out.duration"),
        Some(&7_000_000i64.to_le_bytes()[..])
    );
    // proxy_get_current_time_nanoseconds: u64 LE, the time the headers arrived.
    assert_eq!(
        r.filter_state("wasm.out.now"),
        Some(&DEFAULT_START_TIME_NS.to_le_bytes()[..])
    );
}

#[test]
fn request_attributes_from_headers_follow_the_header_map_lifetime() {
    let mut host = configured();
    let mut plugin = host.plugin().unwrap();
    // Continued: Envoy has dropped request_headers_, so request.id is gone by the response.
    let r = plugin.request().request_id("rid-7").send();
    assert_eq!(r.filter_state("wasm.out.request_id"), Some(&b"rid-7"[..]));
    assert!(r.filter_state("wasm.out.request_id_in_response").is_none());
    // Stopped (local reply): the request map is still there on the response path.
    let r = plugin
        .request()
        .request_id("rid-8")
        .header("x-local", "1")
        .send();
    assert_eq!(
        r.filter_state("wasm.out.request_id_in_response"),
        Some(&b"rid-8"[..])
    );
}

#[test]
fn absent_properties_are_not_found() {
    let mut host = configured();
    // No mTLS peer; a client that resets before any response: no response.code.
    let r = host
        .plugin()
        .unwrap()
        .request()
        .without_property("source.address")
        .client_resets()
        .send();
    assert!(r.filter_state("wasm.out.san").is_none());
    assert!(r.filter_state("wasm.out.source_address").is_none());
    assert!(r.filter_state("wasm.out.code_at_log").is_none());
    assert_eq!(r.status(), None);
    let get_property = statuses(&r, "proxy_get_property");
    assert!(get_property.contains(&NOT_FOUND), "{get_property:?}");
}

#[test]
fn set_property_round_trips_through_filter_state() {
    let mut host = configured();
    let r = host.plugin().unwrap().request().send();
    assert_eq!(r.filter_state("wasm.probe_state"), Some(&b"hello"[..]));
    assert_eq!(r.filter_state("wasm.out.probe_state"), Some(&b"hello"[..]));
    // Filter state is per stream: the next request starts empty, then sets it again.
    let r2 = host.plugin().unwrap().request().send();
    assert_eq!(r2.filter_state("wasm.probe_state"), Some(&b"hello"[..]));
}
