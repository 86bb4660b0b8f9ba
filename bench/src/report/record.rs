//! "What the record costs": the shipped format's parts and the filter's writes.

use super::*;

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

impl Report<'_> {
    /// The parts of the shipped format's cost over a plain line, each with the variants it is
    /// the difference of: the CEL fields, `omit_empty_values`, the filter-state operators.
    pub(super) fn format_split(&self) -> Vec<(String, f64)> {
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
    pub(super) fn record(&self, out: &mut String) {
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
}
