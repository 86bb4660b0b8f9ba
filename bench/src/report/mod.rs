//! `docs/performance.md` (and the raw numbers beside it as JSON, which the plot reads).
//!
//! Every number in the report comes from the run; the only constants are the targets (and the
//! one figure they are measured against from before the record moved to Envoy's access log).

use crate::bench::{PROFILE, PROFILE_SCENARIO, Run, STANDARD, Variant};
use crate::instructions::{self, Measurement};
use crate::load::{H2_CONNECTIONS, H2_STREAMS, WRK_CONNECTIONS};
use crate::probe;
use crate::rig::{self, AccessLog};
use crate::soak::SoakResult;
use crate::summary::{MemRow, Row, paired, rounds_at_most};
use serde_json::{Value, json};
use std::fmt::Write as _;

mod callgrind;
mod floor;
mod fmt;
mod method;
mod record;
mod targets;

use fmt::*;

/// The module-size target, in bytes.
pub const MODULE_TARGET_BYTES: u64 = 100_000;
/// The memory target per worker, in KiB.
pub const RSS_TARGET_KIB: f64 = 10.0 * 1024.0;
/// Issue #13's target: Envoy instructions the filter adds to an allowed HTTP/1.1 request, with
/// the record and stripping, (d) − (a), callgrind.
pub const ADDED_TARGET: f64 = 45_000.0;
/// Issue #13's target: ((d) − (a)) / ((c) − (a)), the filter's added instructions over Lua's.
pub const LUA_RATIO_TARGET: f64 = 2.2;
/// (d) − (a) before the split, when the filter built the record itself in `on_log`
/// (`docs/performance.md` of commit b527aed): what the target is measured against.
pub const ADDED_BEFORE_SPLIT: f64 = 80_776.0;
/// The filter-state writes the filter makes for an allowed request that names an authority:
/// the decision, the token's name, the domain (`rfma_filter::handover::values`; a test keeps
/// this in step).
pub const WRITES_ALLOWED: u32 = 3;
/// The counter increments the filter makes for an allowed request: its decision's counter and
/// its token's (`rfma_token_allowed_total{token}`), see `settle` in `filter/src/filter.rs`.
pub const INCREMENTS_ALLOWED: u32 = 2;

/// Everything a report is made of.
#[derive(Debug)]
pub struct Report<'a> {
    pub meta: Value,
    pub rounds: u32,
    pub warmup_s: u64,
    pub duration_s: u64,
    pub pinned: Option<(usize, usize)>,
    pub scenarios: Vec<&'static str>,
    pub runs: &'a [Run],
    pub rows: &'a [Row],
    pub memory: &'a [MemRow],
    pub load_before: f64,
    pub load_after: f64,
    pub soak: Option<&'a SoakResult>,
    pub soak_requests: u64,
    pub soak_batch: u64,
    pub soak_reference: u64,
    /// One callgrind run per variant and scenario (empty: not measured).
    pub instructions: &'a [Measurement],
    /// `--instructions`: requests per callgrind run (0: skipped).
    pub instructions_requests: u64,
    /// `valgrind --version` of the callgrind runs.
    pub instructions_tool: Option<String>,
}

/// The pairs of variants whose difference isolates one cost, and the scenario it is taken
/// in: in CPU (paired by round) and in instructions (one callgrind run each).
const COST_SPLIT: [(&str, &str, &str, &str); 19] = [
    ("h1-allowed", "The whole filter over Lua", "d", "c"),
    (
        "h1-allowed",
        "The filter's part of the record: its filter-state writes (decision, token name, domain), printed by Envoy, over sink none",
        "d",
        "e",
    ),
    (
        "h1-allowed",
        "The shipped format over a plain ECS line of the same facts, no gate (paid by every variant)",
        "a",
        "p1",
    ),
    (
        "h1-allowed",
        "Of that: its CEL fields, each replaced by a plain operator",
        "a",
        "p2",
    ),
    ("h1-allowed", "Of that: `omit_empty_values`", "p2", "p3"),
    (
        "h1-allowed",
        "Of that: its filter-state operators, which find nothing without the filter",
        "p3",
        "p1",
    ),
    ("h1-allowed", "Stripping the token header", "e", "p4"),
    (
        "h1-allowed",
        "The token check (SHA-256, lookup, strip, the token's name) over a bypass hit",
        "d",
        "p5",
    ),
    (
        "h1-allowed",
        "The filter with sink none over an empty Wasm filter",
        "e",
        "p6",
    ),
    (
        "h1-allowed",
        "An empty Wasm filter over no filter (the Wasm boundary)",
        "p6",
        "a",
    ),
    (
        "h1-allowed",
        "One `proxy_get_header_map_pairs` (the whole request map)",
        "p7",
        "p6",
    ),
    (
        "h1-allowed",
        "One `proxy_set_property` (`rfma_decision` = `allow`, printed in the record)",
        "p8",
        "p6",
    ),
    ("h1-allowed", "One `proxy_increment_metric`", "p9", "p6"),
    (
        "h1-allowed",
        "One `proxy_remove_header_map_value` (the token header)",
        "p10",
        "p6",
    ),
    ("h1-allowed", "Lua (check + strip) over no gate", "c", "a"),
    ("h1-allowed", "Envoy RBAC over no gate", "b", "a"),
    ("h1-denied", "Denied: the filter over Lua", "d", "c"),
    (
        "h1-denied",
        "Denied: the filter-state writes (decision, reason, domain) over sink none",
        "d",
        "e",
    ),
    (
        "h1-bypass",
        "Bypassed: the filter-state writes (decision, domain) over sink none",
        "d",
        "e",
    ),
];

impl Report<'_> {
    /// The raw data: settings, machine, every run, every row, the soak.
    pub fn to_json(&self) -> Value {
        json!({
            "meta": self.meta,
            "settings": {
                "rounds": self.rounds,
                "warmup_s": self.warmup_s,
                "duration_s": self.duration_s,
                "pinned_cores": self.pinned.map(|(e, l)| json!({ "envoy": e, "load": l })),
                "load_average_before": self.load_before,
                "load_average_after": self.load_after,
            },
            "variants": STANDARD.iter().chain(PROFILE.iter())
                .filter(|v| {
                    self.rows.iter().any(|r| r.variant == v.key)
                        || self.instructions.iter().any(|m| m.variant == v.key)
                })
                .map(|v| json!({ "key": v.key, "label": v.label }))
                .collect::<Vec<_>>(),
            "scenarios": self.scenarios,
            "runs": self.runs.iter().map(Run::to_json).collect::<Vec<_>>(),
            "summary": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "memory": self.memory.iter().map(|m| m.to_json()).collect::<Vec<_>>(),
            "instructions": self.instructions_json(),
            "soak": self.soak.map(|s| json!({
                "requests": s.requests,
                "batches": s.batches,
                "seconds": s.seconds,
                "rss_reference_kib": s.rss_reference_kib,
                "rss_end_kib": s.rss_end_kib,
                "hwm_end_kib": s.hwm_end_kib,
                "growth_percent": s.growth_percent,
                "rss_after_batch_kib": s.rss_after_batch_kib,
            })),
        })
    }

    /// `docs/performance.md`.
    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let s = |k: &str| m[k].as_str().unwrap_or("?").to_owned();
        let mut out = String::new();
        out.push_str("# Performance: what the token gate costs in Envoy\n\n");
        out.push_str(
            "Generated by `make bench` (`bench/`, package `rfma-bench`); do not edit by hand — rerun it.\n\
             The plot shows the same numbers; the raw data of every run is in \
             [`performance.json`](performance.json).\n\n\
             ![Added Envoy CPU per request, throughput and added instructions per request of each gate](performance.png)\n\n",
        );
        let _ = writeln!(
            out,
            "Run on {} by `{}` at commit {}.\n",
            s("date_utc"),
            s("command"),
            s("commit")
        );
        out.push_str(
            "The filter decides; Envoy writes the record. Every variant logs one JSON record per \
             request with the shipped format (`filter/access-log-format.json`, as the mesh does), \
             so what a gate adds over (a) no gate is the gate alone. The filter hands the record \
             what only it knows (its decision, the token's name or the deny reason, the domain) \
             as filter state in the request phase (`log.sink: filter_state`); with \
             `log.sink: none` it hands over nothing.\n\n",
        );

        self.targets(&mut out);

        out.push_str("## Results\n\n");
        let _ = writeln!(
            out,
            "Medians over {} rounds. *Added CPU* is, per round, the variant's Envoy CPU per request \
             minus that of (a) no gate in the same round (then the median, and the range over the \
             rounds). *Envoy core busy*: Envoy's CPU time over the wall time of the load window \
             (100 % = its core saturated). *Peak RSS*: `VmHWM` of the Envoy process at the end of \
             the run.\n",
            self.rounds
        );
        let standard: Vec<&str> = STANDARD.iter().map(|v| v.key).collect();
        for sc in &self.scenarios {
            if self.rows.iter().any(|r| r.scenario == *sc) {
                let _ = writeln!(out, "### {}\n", scenario_title(sc));
                table(&mut out, self.rows, sc, &standard);
            }
        }

        let profile: Vec<&str> = PROFILE.iter().map(|v| v.key).collect();
        if self.rows.iter().any(|r| profile.contains(&r.variant)) {
            out.push_str("## Where the time goes\n\n");
            let _ = writeln!(
                out,
                "The same measurement for variants that each change one thing, in the same rounds \
                 as (a)–(e), with HTTP/1.1 allowed traffic. (p1)–(p3) have no gate and another \
                 access-log format: (p1) a plain ECS line, the shipped format's facts with plain \
                 operators (no CEL, no filter state, no `omit_empty_values`); (p2) the shipped \
                 format with a plain operator for each CEL field; (p3) that without \
                 `omit_empty_values`; these three run without `--profile` too. With it, \
                 (p4)–(p5) are the shipped filter with another configuration. (p6)–(p10) are probe \
                 modules written in WAT (`bench/src/probe.rs`) that export exactly the callbacks the \
                 filter exports (`proxy_on_context_create`, `proxy_on_request_headers`, \
                 `proxy_on_delete` per request) and do nothing but answer them, plus one host call \
                 of the filter's each: what the Wasm boundary and each host call cost on their own; \
                 the set-property probe writes `{}` = `{}`, which the record then prints. \
                 Differences between rows are the cost of the one thing that differs.\n",
                probe::PROPERTY,
                probe::PROPERTY_VALUE
            );
            let mut keys = standard.clone();
            keys.extend(profile.iter());
            table(&mut out, self.rows, PROFILE_SCENARIO, &keys);
            let split: Vec<String> = COST_SPLIT
                .iter()
                .filter_map(|&(sc, what, a, b)| {
                    let s = paired(self.runs, sc, a, b)?;
                    Some(format!(
                        "| {what} | {sc} | ({a}) − ({b}) | {:+.1} ({:+.1} … {:+.1}) |\n",
                        s.median, s.min, s.max
                    ))
                })
                .collect();
            if !split.is_empty() {
                out.push_str(
                    "What each thing costs: the difference in Envoy CPU per request between two \
                     variants, paired by round (median, and min … max over the rounds).\n\n\
                     | What | Scenario | Variants | CPU µs per request |\n| --- | --- | --- | ---: |\n",
                );
                out.push_str(&split.concat());
                out.push('\n');
            }
        }

        self.instructions_section(&mut out);

        if !self.memory.is_empty() {
            out.push_str("## Memory\n\n");
            out.push_str(
                "Peak RSS (`VmHWM`) of Envoy after a short HTTP/1.1 load, with one and with two \
                 workers (each worker runs its own Wasm VM; the main thread has one more for the \
                 configuration), medians over the memory rounds. The difference between the two \
                 columns is what one more worker costs.\n\n\
                 | Variant | 1 worker MiB | 2 workers MiB | per further worker MiB |\n\
                 | --- | ---: | ---: | ---: |\n",
            );
            for m in self.memory {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    label(m.variant),
                    mib(m.one_worker_kib),
                    mib(m.two_workers_kib),
                    mib(m.per_worker_kib())
                );
            }
            out.push('\n');
        }

        if let Some(soak) = self.soak {
            out.push_str("## Soak\n\n");
            let _ = writeln!(
                out,
                "{} requests through one Envoy with the filter (sink `filter_state`, stripping on) \
                 and the shipped record, in {} batches of {} cycling through allowed (two tokens), \
                 wrong-token, missing-token and bypassed requests, alternating HTTP/2 and HTTP/1.1 \
                 every cycle. Every batch checked: each response had its expected status (zero \
                 unexpected), the filter's counter rose by exactly the batch, the access log held \
                 exactly one valid record per request with the expected status, decision, token \
                 name or deny reason and domain, and no token.\n",
                soak.requests, soak.batches, self.soak_batch
            );
            let _ = writeln!(
                out,
                "| Requests | Time s | VmRSS after {} requests | VmRSS at the end | growth | VmHWM at the end |\n\
                 | ---: | ---: | ---: | ---: | ---: | ---: |\n\
                 | {} | {:.0} | {} MiB | {} MiB | {:+.2} % (limit +5 %) | {} MiB |\n",
                self.soak_reference,
                soak.requests,
                soak.seconds,
                mib(soak.rss_reference_kib as f64),
                mib(soak.rss_end_kib as f64),
                soak.growth_percent,
                mib(soak.hwm_end_kib as f64),
            );
            let trail: Vec<String> = soak
                .rss_after_batch_kib
                .iter()
                .map(|k| mib(*k as f64))
                .collect();
            let _ = writeln!(out, "VmRSS (MiB) after each batch: {}.\n", trail.join(", "));
        } else if self.soak_requests == 0 {
            out.push_str("## Soak\n\nNot run this time (`--soak-requests 0`).\n\n");
        }

        self.method(&mut out);
        out
    }
}

#[cfg(test)]
mod tests;
