//! Configuration: delivery to `on_vm_start` and `on_configure`, a rejected plugin, a trap while
//! configuring.

use super::probe::probe_module;
use crate::common::{NOT_FOUND, statuses};
use rfma_wasm_host::{ConfigureError, Host, HostOptions, LogLevel};

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
