//! The probe: a hand-written WAT module that calls the host from every callback and stores
//! what it got back in filter state under `out.*`, and the helpers that load and read it.

use crate::common::Data;
use rfma_wasm_host::abi::serialize_pairs;
use rfma_wasm_host::{Host, Module};

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
pub(super) fn probe_module() -> Module {
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

pub(super) fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    rfma_wasm_host::abi::deserialize_pairs(bytes)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

pub(super) fn configured() -> Host {
    let mut host = Host::load(&probe_module()).unwrap();
    host.configure("ok").unwrap();
    host
}
