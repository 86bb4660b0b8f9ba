//! The integration tests of `rfma-wasm-host`, one binary (as cargo's own test suite and
//! `tooling/tests/suite/` are laid out): a module per former test file, so a test is still
//! named `file::test` (`cargo test -p rfma-wasm-host --test suite e2e_soak::`).
//!
//! - `common`: helpers for the tests on the wasmtime host (`host_fidelity` and the tests on the
//!   compiled module);
//! - `e2e_support`: the real Envoy in front of a real httpbin, for `e2e_*` and `timing_envoy`;
//! - `rig` and `soak`: the benchmark's own soak code (`bench/src/`), at the crate root because
//!   `soak.rs` names `crate::rig`; `e2e_soak` runs it so CI and `make bench` cannot drift apart.

mod common;
mod e2e_support;

#[path = "../../../bench/src/rig.rs"]
#[allow(dead_code)]
mod rig;
#[path = "../../../bench/src/soak.rs"]
#[allow(dead_code)]
mod soak;

// The wasmtime host (wasm-host/HOST.md) and the compiled module in it.
mod bypass;
mod challenge;
mod config_errors;
mod counters;
mod fuel_budget;
mod gate_decisions;
mod handover;
mod host_fidelity;
mod module_exports;
mod random_requests;
mod timing_fuel;
mod vm_trap;
mod windows;

// A real Envoy.
mod e2e_failure;
mod e2e_gate;
mod e2e_hostile;
mod e2e_lifecycle;
mod e2e_lifecycle_tokens;
mod e2e_principals;
mod e2e_records;
mod e2e_rotation;
mod e2e_soak;
mod timing_envoy;
