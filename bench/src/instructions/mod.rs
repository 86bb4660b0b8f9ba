//! Envoy instructions per request, counted by valgrind's callgrind: deterministic where the
//! CPU time of `bench/` is not. On a shared machine CPU µs per request swing by several µs
//! from run to run; the instructions Envoy executes for the same requests do not depend on
//! the machine's load (two runs of the same variant agree within about 0.1 %), so variants
//! a few percent apart can be told apart from one run each.
//!
//! Each HTTP/1.1 scenario of `--instruction-scenarios` (allowed, denied and bypassed requests by
//! default) gets its own runs, of the variants that run in it ([`bench::runs_in`]).
//!
//! One run: Envoy (the real ELF binary, not the virtualenv's Python wrapper, which valgrind
//! would follow no further than its `exec`) starts under callgrind with the same bootstrap
//! as a CPU run; `hey` sends a warm-up (V8 compiles and tiers up the module, Envoy fills its
//! caches); `callgrind_control -z` zeroes the counters; `hey -n N -c 4` sends exactly N
//! requests; `callgrind_control -d` dumps the counters to a file, whose total (all of Envoy's
//! threads, JIT code included thanks to `--smc-check=all-non-file`) divided by N is the
//! result. Envoy's counters, `hey`'s status counts and the access log must show exactly the
//! N requests with the expected status (and decision) in that window, or the run fails.//!
//! Here: the defaults, the plan and a run's result. Finding the tools and the Envoy binary is
//! in `tools.rs`, reading callgrind's dump and `hey`'s summary in `parse.rs`, one run under
//! callgrind and the checks of its window in `run.rs`; the unit tests are in `tests.rs`.

mod parse;
mod run;
#[cfg(test)]
mod tests;
mod tools;

pub use parse::{HeyReport, parse_dump, parse_hey};
pub use run::{Setup, measure};
pub use tools::{Tools, check_tools, resolve_envoy_binary};

use crate::bench::{self, Scenario, Variant};
use crate::load::Protocol;
use serde_json::{Value, json};
use std::time::Duration;

/// The scenarios measured by default: an allowed, a denied and a bypassed request.
pub const DEFAULT_SCENARIOS: &str = "h1-allowed,h1-denied,h1-bypass";

/// Requests per measured window (`--instructions`).
pub const DEFAULT_REQUESTS: u64 = 2000;
/// Requests before the counters are zeroed.
pub const WARMUP_REQUESTS: u64 = 500;
/// `hey -c`: concurrent connections (keep-alive), each sending its next request when the
/// previous one is answered.
pub const CONNECTIONS: u32 = 4;
/// Envoy starts in about 40 s under callgrind on this machine; far longer when it is busy.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one `callgrind_control` may take (it reaches valgrind through `vgdb`, which
/// interrupts Envoy's threads where they wait in system calls).
pub(super) const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
/// A request under callgrind takes milliseconds; a load run may take this long per request
/// (plus a minute) before it counts as hung.
pub(super) const PER_REQUEST_LIMIT: Duration = Duration::from_millis(100);
/// The valgrind options of every run. `--smc-check=all-non-file`: V8 writes and rewrites
/// machine code (the Wasm module, Lua is interpreted) in anonymous memory; without it
/// valgrind could run stale translations of that code.
pub const VALGRIND_OPTIONS: [&str; 2] = ["--tool=callgrind", "--smc-check=all-non-file"];

/// The runs, scenario by scenario: each variant of `variants` that runs in the scenario.
/// `hey` speaks HTTP/1.1 only, so an HTTP/2 scenario is refused.
pub fn plan(
    scenarios: &[Scenario],
    variants: &[Variant],
) -> Result<Vec<(Scenario, Variant)>, String> {
    let mut runs = Vec::new();
    for sc in scenarios {
        if sc.protocol != Protocol::Http1 {
            return Err(format!(
                "--instruction-scenarios: {} is not HTTP/1.1 (hey, which sends the counted requests, speaks HTTP/1.1)",
                sc.key
            ));
        }
        runs.extend(
            variants
                .iter()
                .filter(|v| bench::runs_in(v, sc))
                .map(|v| (*sc, *v)),
        );
    }
    Ok(runs)
}

/// One callgrind run of one variant in one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub scenario: &'static str,
    pub variant: &'static str,
    /// Requests in the window (all completed with the expected status).
    pub requests: u64,
    /// Instructions Envoy executed in the window, all threads (`Ir`).
    pub instructions: u64,
    /// Wall time of the window (valgrind runs Envoy some 50 times slower than natively).
    pub window_s: f64,
}

impl Measurement {
    pub fn per_request(&self) -> f64 {
        self.instructions as f64 / self.requests.max(1) as f64
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "variant": self.variant,
            "requests": self.requests,
            "instructions": self.instructions,
            "instructions_per_request": self.per_request(),
            "window_s": self.window_s,
        })
    }
}
