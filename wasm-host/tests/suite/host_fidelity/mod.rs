//! The host itself behaves like Envoy: each test runs a small hand-written
//! Proxy-Wasm module (WAT) that makes host calls and stores what it got back
//! in filter state, then checks the result against Envoy's semantics.
//! One row of `wasm-host/HOST.md` per test.
//!
//! The probe module most tests load is in `probe.rs`; the tests, by what they hold the host
//! to: `headers` (the header maps), `replies` (local replies and forwarding), `properties`
//! (encodings, lifetimes, filter state), `metrics_logs`, `configure` (configuration delivery
//! and rejection), `vm_failure` (traps, fail closed and open, fuel), `module_load` (imports,
//! start, required exports).

mod configure;
mod headers;
mod metrics_logs;
mod module_load;
mod probe;
mod properties;
mod replies;
mod vm_failure;
