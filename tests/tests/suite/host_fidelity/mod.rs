//! The host itself behaves like Envoy: each test runs a small hand-written
//! Proxy-Wasm module (WAT) that makes host calls and stores what it got back
//! in filter state, then checks the result against Envoy's semantics.
//! One row of `tests/HOST.md` per test.

use crate::common::{BAD_ARGUMENT, Data, NOT_FOUND, OK, statuses};
use rfma_tests::abi::serialize_pairs;
use rfma_tests::{
    Action, ConfigureError, DEFAULT_START_TIME_NS, Host, HostError, HostOptions, LogLevel,
    LogOrigin, Module,
};

const IMPORTS: &str = r#"
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_hv (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $rm_h (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_h (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $send (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $def (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (import "env" "proxy_get_metric" (func $getm (param i32 i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
"#;

/// Scratch slots: 16 = returned pointer, 20 = returned size, 24 = metric id,
/// 32 = a u64, 48 = an iovec. The bump allocator starts at 64 KiB.
fn probe_module() -> Module {
    let mut d = Data::new(1024);
    let x_dup = d.add(b"X-Dup");
    let x_missing = d.add(b"x-missing");
    let x_remove = d.add(b"x-remove-me");
    let x_added = d.add(b"x-added");
    let yes = d.add(b"yes");
    let x_local = d.add(b"x-local");
    let x_trap = d.add(b"x-trap");
    let status = d.add(b":status");
    let path = d.add(b":path");
    let p_src_addr = d.add(b"source\0address");
    let p_src_port = d.add(b"source\0port");
    let p_time = d.add(b"request\0time");
    let p_proto = d.add(b"request\0protocol");
    let p_san = d.add(b"connection\0uri_san_peer_certificate");
    let p_id = d.add(b"request\0id");
    let p_code = d.add(b"response\0code");
    let p_duration = d.add(b"request\0duration");
    let p_state = d.add(b"probe_state");
    let hello = d.add(b"hello");
    let metric = d.add(b"probe_total");
    let warn = d.add(b"probe warn");
    let stdout = d.add(b"to stdout\n");
    let details = d.add(b"probe details");
    let body = d.add(br#"{"a":1}"#);
    let reply_headers = d.add(&serialize_pairs(&[
        ("Content-Type", "application/json"),
        ("X-Extra", "1"),
    ]));
    let mut out = |name: &str| d.add(format!("out.{name}").as_bytes());
    let o_first = out("first");
    let o_first_raw = out("first_raw");
    let o_pairs = out("pairs");
    let o_src_addr = out("source_address");
    let o_src_port = out("source_port");
    let o_time = out("request_time");
    let o_proto = out("protocol");
    let o_san = out("san");
    let o_id = out("request_id");
    let o_state = out("probe_state");
    let o_metric = out("metric");
    let o_now = out("now");
    let o_status = out("status");
    let o_code_resp = out("code_in_response");
    let o_id_resp = out("request_id_in_response");
    let o_code_log = out("code_at_log");
    let o_log_pairs = out("log_pairs");
    let o_duration = out("duration");
    let segments = d.segments().to_string();
    let wat = format!(
        r#"(module
  {IMPORTS}
  (memory (export "memory") 4)
  {segments}
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func $save (param $k i32) (param $kl i32)
    (drop (call $set_prop (local.get $k) (local.get $kl) (i32.load (i32.const 16)) (i32.load (i32.const 20)))))
  (func $hv (param $map i32) (param $k i32) (param $kl i32) (result i32)
    (call $get_hv (local.get $map) (local.get $k) (local.get $kl) (i32.const 16) (i32.const 20)))
  (func $prop (param $p i32) (param $pl i32) (result i32)
    (call $get_prop (local.get $p) (local.get $pl) (i32.const 16) (i32.const 20)))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $get_buf (i32.const 6) (i32.const 0) (local.get 1) (i32.const 16) (i32.const 20)))
    (drop (call $log (i32.const 1) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $get_buf (i32.const 7) (i32.const 0) (local.get 1) (i32.const 16) (i32.const 20)))
    (drop (call $log (i32.const 2) (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (if (i32.eq (i32.load8_u (i32.load (i32.const 16))) (i32.const 117)) (then unreachable))
    (i32.ne (i32.load8_u (i32.load (i32.const 16))) (i32.const 120)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $hv (i32.const 0) {x_dup})) (then (call $save {o_first})))
    (drop (call $set_prop {o_first_raw} (i32.const 16) (i32.const 8)))
    (drop (call $hv (i32.const 0) {x_missing}))
    (drop (call $get_pairs (i32.const 0) (i32.const 16) (i32.const 20)))
    (call $save {o_pairs})
    (drop (call $rm_h (i32.const 0) {x_remove}))
    (drop (call $add_h (i32.const 0) {x_added} {yes}))
    (if (i32.eqz (call $prop {p_src_addr})) (then (call $save {o_src_addr})))
    (if (i32.eqz (call $prop {p_src_port})) (then (call $save {o_src_port})))
    (if (i32.eqz (call $prop {p_time})) (then (call $save {o_time})))
    (if (i32.eqz (call $prop {p_proto})) (then (call $save {o_proto})))
    (if (i32.eqz (call $prop {p_san})) (then (call $save {o_san})))
    (if (i32.eqz (call $prop {p_id})) (then (call $save {o_id})))
    (drop (call $set_prop {p_state} {hello}))
    (if (i32.eqz (call $prop {p_state})) (then (call $save {o_state})))
    (drop (call $def (i32.const 0) {metric} (i32.const 24)))
    (drop (call $inc (i32.load (i32.const 24)) (i64.const 3)))
    (drop (call $inc (i32.load (i32.const 24)) (i64.const 0)))
    (drop (call $getm (i32.load (i32.const 24)) (i32.const 32)))
    (drop (call $set_prop {o_metric} (i32.const 32) (i32.const 8)))
    (drop (call $log (i32.const 3) {warn}))
    (i32.store (i32.const 48) (i32.const {stdout_ptr}))
    (i32.store (i32.const 52) (i32.const {stdout_len}))
    (drop (call $fd_write (i32.const 1) (i32.const 48) (i32.const 1) (i32.const 56)))
    (drop (call $now (i32.const 32)))
    (drop (call $set_prop {o_now} (i32.const 32) (i32.const 8)))
    (drop (call $get_buf (i32.const 7) (i32.const 0) (i32.const 100) (i32.const 16) (i32.const 20)))
    (if (i32.eqz (call $hv (i32.const 0) {x_trap})) (then unreachable))
    (if (i32.eqz (call $hv (i32.const 0) {x_local}))
      (then (drop (call $send (i32.const 418) {details} {body} {reply_headers} (i32.const -1)))))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $hv (i32.const 2) {status})) (then (call $save {o_status})))
    (drop (call $hv (i32.const 0) {path}))
    (if (i32.eqz (call $prop {p_code})) (then (call $save {o_code_resp})))
    (if (i32.eqz (call $prop {p_id})) (then (call $save {o_id_resp})))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32)
    (if (i32.eqz (call $prop {p_code})) (then (call $save {o_code_log})))
    (if (i32.eqz (call $prop {p_duration})) (then (call $save {o_duration})))
    (drop (call $get_pairs (i32.const 0) (i32.const 16) (i32.const 20)))
    (call $save {o_log_pairs}))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32))
)"#,
        stdout_ptr = stdout.split(' ').nth(1).unwrap().trim_end_matches(')'),
        stdout_len = stdout.split(' ').nth(3).unwrap().trim_end_matches(')'),
    );
    let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("probe WAT: {e}\n{wat}"));
    Module::from_bytes(&bytes, "probe.wat").unwrap()
}

fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    rfma_tests::abi::deserialize_pairs(bytes)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

fn configured() -> Host {
    let mut host = Host::load(&probe_module()).unwrap();
    host.configure("ok").unwrap();
    host
}

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

#[test]
fn local_reply_is_captured_and_the_request_is_not_forwarded() {
    let mut host = configured();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-local", "1")
        .send();
    let reply = r.local_reply().expect("local reply");
    assert_eq!(reply.status, 418);
    assert_eq!(
        reply.details, "probe_details",
        "Envoy replaces whitespace in details"
    );
    assert_eq!(reply.body_json(), serde_json::json!({"a": 1}));
    assert_eq!(
        reply.headers.pairs(),
        vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-extra".to_string(), "1".to_string())
        ]
    );
    assert_eq!(reply.grpc_status, -1);
    assert!(!r.is_forwarded());
    // The module returned Continue, but a local reply stops the iteration.
    assert_eq!(r.request_action(), Some(Action::Pause(1)));
    let client = r.client().unwrap();
    assert_eq!(client.status, 418);
    assert!(client.from_local_reply);
    assert_eq!(client.headers.get("content-length").as_deref(), Some("7"));
    assert_eq!(
        client.headers.get_all("content-type"),
        vec!["application/json"]
    );
    // The local reply goes through the encoder path: on_response_headers sees it.
    assert_eq!(r.filter_state("wasm.out.status"), Some(&b"418"[..]));
    assert_eq!(
        r.callbacks(),
        [
            "proxy_on_context_create",
            "proxy_on_request_headers",
            "proxy_on_response_headers",
            "proxy_on_log",
            "proxy_on_done",
            "proxy_on_delete"
        ]
    );
}

#[test]
fn continue_forwards_and_the_upstream_status_reaches_client_and_module() {
    let mut host = configured();
    let r = host.plugin().unwrap().request().upstream_status(201).send();
    assert!(r.is_forwarded());
    assert!(r.local_reply().is_none());
    assert_eq!(r.status(), Some(201));
    assert!(!r.client().unwrap().from_local_reply);
    assert_eq!(r.filter_state("wasm.out.status"), Some(&b"201"[..]));
}

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

#[test]
fn configurations_are_delivered_and_plugin_config_only_during_configure() {
    let options = HostOptions {
        vm_configuration: b"vm-config".to_vec(),
        ..HostOptions::default()
    };
    let mut host = Host::load_with(&probe_module(), options).unwrap();
    host.configure("ok plugin config").unwrap();
    let logs = host.logs();
    assert_eq!(logs[0].level, LogLevel::Debug);
    assert_eq!(logs[0].message, "vm-config");
    assert_eq!(logs[1].level, LogLevel::Info);
    assert_eq!(logs[1].message, "ok plugin config");
    assert_eq!(logs[1].context_id, 1, "the root context configures");
    let r = host.plugin().unwrap().request().send();
    assert_eq!(statuses(&r, "proxy_get_buffer_bytes"), vec![NOT_FOUND]);
}

#[test]
fn on_configure_false_is_a_rejected_plugin() {
    let mut host = Host::load(&probe_module()).unwrap();
    let err = host.configure("x-bad").unwrap_err();
    match &err {
        ConfigureError::Rejected { logs } => assert_eq!(logs.last().unwrap().message, "x-bad"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(host.plugin().is_none(), "a rejected plugin serves nothing");
    assert!(
        err.to_string()
            .contains("proxy_on_configure returned false")
    );
}

#[test]
fn trap_in_configure_fails_the_vm() {
    let mut host = Host::load(&probe_module()).unwrap();
    let err = host.configure("unreachable please").unwrap_err();
    let ConfigureError::VmFailed(failure) = err else {
        panic!("expected VmFailed, got {err:?}")
    };
    assert_eq!(failure.during, "proxy_on_configure");
    assert!(host.failure().is_some());
}

#[test]
fn trap_fails_the_vm_and_fail_closed_refuses_every_later_request() {
    let mut host = configured();
    let mut plugin = host.plugin().unwrap();
    let r = plugin.request().header("x-trap", "1").send();
    let failure = r.vm_failure().expect("the trap fails the VM");
    assert_eq!(failure.during, "proxy_on_request_headers");
    assert!(
        failure
            .trap
            .as_deref()
            .unwrap_or("")
            .contains("unreachable"),
        "{failure:?}"
    );
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.client().unwrap().details, "wasm_fail_stream");
    assert!(!r.is_forwarded());
    assert_eq!(
        r.callbacks(),
        ["proxy_on_context_create", "proxy_on_request_headers"]
    );
    // Later requests never reach the module and get 503 too.
    let later = plugin.request().send();
    assert_eq!(later.status(), Some(503));
    assert!(later.callbacks().is_empty());
    assert!(!later.is_forwarded());
    assert!(later.vm_failed());
    assert!(
        later.vm_failure().is_none(),
        "the failure came from the earlier request"
    );
}

#[test]
fn trap_with_fail_open_lets_requests_through_unfiltered() {
    let options = HostOptions {
        fail_open: true,
        ..HostOptions::default()
    };
    let mut host = Host::load_with(&probe_module(), options).unwrap();
    let mut plugin = host.configure("ok").unwrap();
    let r = plugin.request().header("x-trap", "1").send();
    assert!(r.vm_failure().is_some());
    assert!(r.is_forwarded());
    assert_eq!(r.status(), Some(200));
    let later = plugin.request().header("x-remove-me", "still here").send();
    assert!(later.callbacks().is_empty());
    let fwd = later.forwarded_headers().unwrap();
    assert!(fwd.contains("x-remove-me"), "no filter ran: {fwd:?}");
}

#[test]
fn every_import_links_unknown_ones_trap_clearly_unsupported_ones_return_unimplemented() {
    let wat = r#"(module
      (import "env" "proxy_http_call" (func $http (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_from_the_future" (func $future (param i32) (result i32)))
      (import "env" "proxy_set_property" (func $set_prop (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "status")
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (i32.store (i32.const 200)
          (call $http (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
        (drop (call $set_prop (i32.const 100) (i32.const 6) (i32.const 200) (i32.const 4)))
        (i32.const 0))
      (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
        (call $future (i32.const 1))))"#;
    let module = Module::from_bytes(&wat::parse_str(wat).unwrap(), "imports.wat").unwrap();
    let mut host = Host::load(&module).unwrap();
    assert_eq!(host.unknown_imports(), ["env.proxy_from_the_future"]);
    let mut plugin = host.configure("").unwrap();
    let r = plugin.request().send();
    assert_eq!(
        r.filter_state("wasm.status"),
        Some(&12i32.to_le_bytes()[..])
    );
    let failure = r.vm_failure().expect("calling an unknown import traps");
    assert_eq!(failure.during, "proxy_on_response_headers");
    assert!(
        failure.message.contains("env.proxy_from_the_future"),
        "{}",
        failure.message
    );
    assert_eq!(plugin.host_ref().unsupported_calls(), ["proxy_http_call"]);
}

#[test]
fn proxy_calls_during_initialize_are_refused_like_envoy() {
    let wat = r#"(module
      (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
      (func (export "_initialize") (drop (call $log (i32.const 2) (i32.const 0) (i32.const 0)))))"#;
    let module = Module::from_bytes(&wat::parse_str(wat).unwrap(), "init.wat").unwrap();
    match Host::load(&module) {
        Err(HostError::Start(f)) => {
            assert_eq!(f.during, "_initialize");
            assert!(f.message.contains("restricted_callback"), "{}", f.message);
        }
        other => panic!("expected a start failure, got {other:?}"),
    }
}

#[test]
fn a_module_without_the_abi_version_export_is_refused() {
    let wat = r#"(module (memory (export "memory") 1)
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0)))"#;
    let module = Module::from_bytes(&wat::parse_str(wat).unwrap(), "noabi.wat").unwrap();
    let err = Host::load(&module).unwrap_err();
    assert!(matches!(err, HostError::Abi { .. }), "{err:?}");
}

#[test]
fn an_endless_loop_runs_out_of_fuel_and_fails_the_vm() {
    let wat = r#"(module (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (loop $l (br $l)) (i32.const 0)))"#;
    let module = Module::from_bytes(&wat::parse_str(wat).unwrap(), "loop.wat").unwrap();
    let options = HostOptions {
        fuel_per_call: 5_000_000,
        ..HostOptions::default()
    };
    let mut host = Host::load_with(&module, options).unwrap();
    let mut plugin = host.configure("").unwrap();
    let r = plugin.request().send();
    let failure = r.vm_failure().expect("out of fuel");
    assert!(
        failure.trap.as_deref().unwrap_or("").contains("fuel"),
        "{failure:?}"
    );
    assert_eq!(r.status(), Some(503));
}
