//! The header maps as Envoy keeps them: lower-cased names, the first of duplicates, empty
//! values, order and pseudo-headers, a map out of phase, removals and additions.

use super::probe::{configured, pairs};
use crate::common::{BAD_ARGUMENT, NOT_FOUND, OK, statuses};

#[test]
fn header_names_reach_the_module_lower_cased() {
    let mut host = configured();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("X-Dup", "first")
        .header("User-Agent", "probe")
        .send();
    let names: Vec<String> = pairs(r.filter_state("wasm.out.pairs").unwrap())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(names.contains(&"x-dup".to_string()), "{names:?}");
    assert!(names.contains(&"user-agent".to_string()), "{names:?}");
    assert!(names.iter().all(|n| *n == n.to_lowercase()), "{names:?}");
    // A lookup with an upper-case key still finds it.
    assert_eq!(r.filter_state("wasm.out.first"), Some(&b"first"[..]));
}

#[test]
fn single_value_lookup_returns_the_first_of_duplicates() {
    let mut host = configured();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-dup", "first")
        .header("x-other", "o")
        .header("X-DUP", "second")
        .send();
    assert_eq!(r.filter_state("wasm.out.first"), Some(&b"first"[..]));
}

#[test]
fn an_empty_value_comes_back_as_a_null_pointer_and_size_zero() {
    let mut host = configured();
    let r = host.plugin().unwrap().request().header("x-dup", "").send();
    assert_eq!(statuses(&r, "proxy_get_header_map_value")[0], OK);
    // proxy-wasm-cpp-host's copyToPointerSize allocates nothing for an empty value.
    assert_eq!(r.filter_state("wasm.out.first_raw"), Some(&[0u8; 8][..]));
    assert_eq!(r.filter_state("wasm.out.first"), Some(&b""[..]));
}

#[test]
fn full_header_map_keeps_duplicates_order_and_pseudo_headers_first() {
    let mut host = configured();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .method("POST")
        .path("/anything?x=1")
        .authority("svc:8000")
        .header("x-dup", "first")
        .header("x-other", "o")
        .header("x-dup", "second")
        .request_id("rid-1")
        .send();
    let got = pairs(r.filter_state("wasm.out.pairs").unwrap());
    let expected: Vec<(String, String)> = [
        (":authority", "svc:8000"),
        (":path", "/anything?x=1"),
        (":method", "POST"),
        (":scheme", "http"),
        ("x-dup", "first"),
        ("x-other", "o"),
        ("x-dup", "second"),
        ("x-request-id", "rid-1"),
        ("x-forwarded-proto", "http"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, expected);
}

#[test]
fn missing_header_is_not_found_and_a_map_out_of_phase_is_bad_argument() {
    let mut host = configured();
    let r = host.plugin().unwrap().request().header("x-dup", "1").send();
    // Request phase: x-dup found, x-missing NotFound, x-trap NotFound, x-local NotFound;
    // response phase: :status found, then the request map is gone after Continue.
    assert_eq!(
        statuses(&r, "proxy_get_header_map_value"),
        vec![OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK, BAD_ARGUMENT]
    );
}

#[test]
fn remove_takes_every_value_and_add_appends_before_forwarding() {
    let mut host = configured();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-remove-me", "a")
        .header("x-keep", "k")
        .header("X-Remove-Me", "b")
        .send();
    let fwd = r.forwarded_headers().expect("forwarded");
    assert!(!fwd.contains("x-remove-me"), "{fwd:?}");
    assert_eq!(fwd.get("x-keep").as_deref(), Some("k"));
    assert_eq!(fwd.names().last().map(String::as_str), Some("x-added"));
    // The access-log phase sees the request as it went upstream.
    let at_log = pairs(r.filter_state("wasm.out.log_pairs").unwrap());
    assert!(at_log.iter().all(|(k, _)| k != "x-remove-me"));
    assert!(at_log.contains(&("x-added".to_string(), "yes".to_string())));
}
