//! The callgrind numbers: instructions per request, their JSON and their section.

use super::*;

impl Report<'_> {
    /// Instructions per request of a variant in a scenario.
    pub(super) fn instruction(&self, scenario: &str, key: &str) -> Option<f64> {
        self.instructions
            .iter()
            .find(|m| m.scenario == scenario && m.variant == key)
            .map(Measurement::per_request)
    }

    /// `a`'s instructions per request minus `b`'s, in one scenario.
    pub(super) fn diff(&self, scenario: &str, a: &str, b: &str) -> Option<f64> {
        Some(self.instruction(scenario, a)? - self.instruction(scenario, b)?)
    }

    /// Instructions per request over those of (a) no gate in the same scenario.
    pub(super) fn added(&self, scenario: &str, key: &str) -> Option<f64> {
        self.diff(scenario, key, "a")
    }

    /// The scenarios of the callgrind runs, in the order they ran.
    pub(super) fn instruction_scenarios(&self) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> = Vec::new();
        for m in self.instructions {
            if !keys.contains(&m.scenario) {
                keys.push(m.scenario);
            }
        }
        keys
    }

    pub(super) fn instructions_json(&self) -> Value {
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
    pub(super) fn instructions_section(&self, out: &mut String) {
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
}
