//! Reading what the tools print: the total of a callgrind dump and the status and error
//! counts of `hey`'s summary.

use std::collections::BTreeMap;

/// The total `Ir` of a callgrind dump: its `summary:` line (the cost of the whole part),
/// else its `totals:` line (older writers).
pub fn parse_dump(text: &str) -> Result<u64, String> {
    for key in ["summary:", "totals:"] {
        if let Some(rest) = text.lines().find_map(|l| l.strip_prefix(key)) {
            // One number per event; `Ir` is the only event of a plain callgrind run, and
            // the first in any case.
            let first = rest.split_whitespace().next().unwrap_or_default();
            return first
                .parse()
                .map_err(|e| format!("callgrind dump: {key}{rest}: {e}"));
        }
    }
    Err(
        "callgrind dump has no `summary:` or `totals:` line (incomplete or not a callgrind file)"
            .to_owned(),
    )
}

/// What `hey` reported: responses per status code, and failed requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeyReport {
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no response (the sum of its error distribution).
    pub errors: u64,
}

/// Parses the `Status code distribution:` and `Error distribution:` sections of `hey`'s
/// summary (`  [200]\t2000 responses`, `  [3]\tGet "…": EOF`).
pub fn parse_hey(stdout: &str) -> Result<HeyReport, String> {
    let mut report = HeyReport::default();
    let mut section = "";
    let mut saw_summary = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t.starts_with("Summary:") {
            saw_summary = true;
        }
        if t.ends_with(':') && !t.starts_with('[') {
            section = t;
            continue;
        }
        let Some(rest) = t.strip_prefix('[') else {
            continue;
        };
        let Some((n, what)) = rest.split_once(']') else {
            continue;
        };
        let bad = || format!("hey: cannot read {line:?}");
        match section {
            "Status code distribution:" => {
                let code: u16 = n.parse().map_err(|_| bad())?;
                let count: u64 = what
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(bad)?;
                *report.statuses.entry(code).or_default() += count;
            }
            "Error distribution:" => {
                report.errors += n.parse::<u64>().map_err(|_| bad())?;
            }
            _ => {}
        }
    }
    if !saw_summary {
        return Err(format!("hey printed no summary:\n{stdout}"));
    }
    Ok(report)
}
