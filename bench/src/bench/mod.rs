//! The benchmark: variants × scenarios, in alternating rounds, a fresh Envoy for every run,
//! every run checked (statuses, the filter's counters, one access-log line per request, no
//! token in the log) before its numbers count.
//!
//! What runs (`variants`, `scenarios`), what a run sends and the checks before its numbers
//! count (`traffic`), one run on a fresh Envoy (`run`); the unit tests are in `tests.rs`.

mod run;
mod scenarios;
mod traffic;
mod variants;

pub use run::{Run, Setup, cpu_seconds, default_scratch, run_one, tempdir};
pub use scenarios::{Mix, SCENARIOS, Scenario, scenario};
pub use traffic::SLACK;
pub(crate) use traffic::{Traffic, check_access_log, check_first_request, gate, traffic};
pub use variants::{
    Kind, PROFILE, PROFILE_SCENARIO, RECORD_FORMATS, STANDARD, Variant, default_variants, runs_in,
    select, variant,
};

#[cfg(test)]
mod tests;
