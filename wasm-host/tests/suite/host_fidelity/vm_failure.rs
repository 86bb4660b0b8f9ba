//! A failed VM: a trap with fail closed (Envoy's 503 for every later request) and fail open
//! (requests through unfiltered), and a call that runs out of fuel.

use super::probe::{configured, probe_module};
use rfma_wasm_host::{Host, HostOptions, Module};

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
