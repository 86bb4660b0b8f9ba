//! What loading a module takes: every import links (unknown ones trap when called), no proxy
//! call during start, the ABI version export.

use rfma_wasm_host::{Host, HostError, Module};

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
