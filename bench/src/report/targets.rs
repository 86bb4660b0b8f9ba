//! "Where we stand against the targets".

use super::*;

impl Report<'_> {
    pub(super) fn targets(&self, out: &mut String) {
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
}
