//! What the probes say: the floor of any Proxy-Wasm filter and the host calls' share.

use super::*;

impl Report<'_> {
    /// What the probes say about the targets: the least any Proxy-Wasm filter that reads the
    /// request headers costs in this Envoy, and how much of the filter's cost its host calls
    /// explain.
    pub(super) fn floor(&self, out: &mut String) {
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
                 code (the token's SHA-256, the lookup; `cargo run -p rfma-wasm-host --bin fuel` counts \
                 it) and what the calls cost together beyond their sum.",
                signed_thousands(counter),
                signed_thousands(strip),
                signed_thousands(write),
                signed_thousands(counters + strip + writes),
                signed_thousands(calls),
                signed_thousands(filter),
                signed_thousands(filter - calls),
            );
            self.why_missed(out, filter, lua, calls, write);
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

    /// Why a missed target is missed, from the same probes: by how much, what one filter-state
    /// write (the domain's, the only one the record could do without) would give back, and
    /// whether the host calls an allowed request needs already exceed what the ratio allows.
    fn why_missed(&self, out: &mut String, filter: f64, lua: f64, calls: f64, write: f64) {
        let mut why = Vec::new();
        if filter > ADDED_TARGET {
            why.push(format!(
                "The {} target is missed by {} ({:.0} %). Of the {WRITES_ALLOWED} writes, the \
                 domain's (`url.domain`, the authority without its port) is the only one the \
                 record could do without: Envoy has no operator for it, and Istio's access-log \
                 provider gives the format's CEL no string functions to cut the port off. \
                 Without it an allowed request would cost about {} ({}), at the price of a field \
                 the record is meant to keep; it keeps it.",
                thousands(ADDED_TARGET),
                signed_thousands(filter - ADDED_TARGET),
                (filter - ADDED_TARGET) * 100.0 / ADDED_TARGET,
                signed_thousands(filter - write),
                if filter - write <= ADDED_TARGET {
                    "inside the target"
                } else {
                    "still above it"
                },
            ));
        }
        if let Some(r) = ratio(filter, lua)
            && r > LUA_RATIO_TARGET
        {
            let allowed = LUA_RATIO_TARGET * lua;
            let verdict = if calls > allowed {
                "already above it before the filter's own code runs: with these host calls no \
                 filter, however small its code, meets the ratio"
            } else {
                "inside it; the filter's own code and the calls' joint cost take it over"
            };
            why.push(format!(
                "The ratio target allows {} ({LUA_RATIO_TARGET} × Lua's {}); the host calls an \
                 allowed request needs (the floor, the counters, stripping, the writes) are {}, \
                 {verdict}.",
                signed_thousands(allowed),
                signed_thousands(lua),
                signed_thousands(calls),
            ));
        }
        if !why.is_empty() {
            let _ = writeln!(out, "\n{}", why.join(" "));
        }
    }
}
