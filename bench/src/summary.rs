//! Medians over rounds, and the added CPU of each gate relative to no gate in the same round.

use crate::bench::Run;
use serde_json::{Value, json};

/// The median of the values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        Some(Spread {
            median: median(values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    fn to_json(self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

/// One variant in one scenario, over all rounds.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    pub variant: &'static str,
    pub rounds: usize,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us: Spread,
    /// Per round: this variant's CPU per request minus the no-gate variant's.
    pub added_cpu_us: Option<Spread>,
    pub utilisation: f64,
    pub vm_hwm_kib: f64,
}

impl Row {
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "variant": self.variant,
            "rounds": self.rounds,
            "rps": self.rps,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "cpu_us_per_request": self.cpu_us.to_json(),
            "added_cpu_us_per_request": self.added_cpu_us.map(Spread::to_json),
            "envoy_utilisation": self.utilisation,
            "vm_hwm_kib": self.vm_hwm_kib,
        })
    }
}

/// The row of each (scenario, variant) that has runs, in the order given; `baseline` is the
/// variant the added CPU is measured against.
pub fn summarise(
    runs: &[Run],
    scenarios: &[&'static str],
    variants: &[&'static str],
    baseline: &str,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &sc in scenarios {
        for &v in variants {
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.scenario == sc && r.variant == v)
                .collect();
            let Some(cpu_us) = Spread::of(
                &mine
                    .iter()
                    .map(|r| r.cpu_us_per_request)
                    .collect::<Vec<_>>(),
            ) else {
                continue;
            };
            let added: Vec<f64> = mine
                .iter()
                .filter_map(|r| {
                    let base = runs.iter().find(|b| {
                        b.scenario == sc && b.variant == baseline && b.round == r.round
                    })?;
                    Some(r.cpu_us_per_request - base.cpu_us_per_request)
                })
                .collect();
            let m = |f: fn(&Run) -> f64| median(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
            rows.push(Row {
                scenario: sc,
                variant: v,
                rounds: mine.len(),
                rps: m(|r| r.measured.rps()),
                p50_us: m(|r| r.measured.p50_us),
                p99_us: m(|r| r.measured.p99_us),
                cpu_us,
                added_cpu_us: if v == baseline {
                    None
                } else {
                    Spread::of(&added)
                },
                utilisation: m(|r| r.envoy_utilisation),
                vm_hwm_kib: m(|r| r.vm_hwm_kib as f64),
            });
        }
    }
    rows
}

/// Peak memory of one variant with one and with two workers (medians over rounds, KiB).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemRow {
    pub variant: &'static str,
    pub one_worker_kib: f64,
    pub two_workers_kib: f64,
}

impl MemRow {
    /// What each further worker adds.
    pub fn per_worker_kib(&self) -> f64 {
        self.two_workers_kib - self.one_worker_kib
    }

    pub fn to_json(self) -> Value {
        json!({
            "variant": self.variant,
            "vm_hwm_kib_1_worker": self.one_worker_kib,
            "vm_hwm_kib_2_workers": self.two_workers_kib,
        })
    }
}

/// Medians of `(workers, variant, VmHWM KiB)` samples, per variant in the order given.
pub fn memory_rows(samples: &[(u32, &'static str, u64)], variants: &[&'static str]) -> Vec<MemRow> {
    let m = |w: u32, v: &str| {
        median(
            &samples
                .iter()
                .filter(|s| s.0 == w && s.1 == v)
                .map(|s| s.2 as f64)
                .collect::<Vec<_>>(),
        )
    };
    variants
        .iter()
        .map(|&v| MemRow {
            variant: v,
            one_worker_kib: m(1, v),
            two_workers_kib: m(2, v),
        })
        .filter(|r| r.one_worker_kib.is_finite() && r.two_workers_kib.is_finite())
        .collect()
}

/// `a`'s CPU per request minus `b`'s, paired by round: median and range.
pub fn paired(runs: &[Run], scenario: &str, a: &str, b: &str) -> Option<Spread> {
    let diffs: Vec<f64> = runs
        .iter()
        .filter(|r| r.scenario == scenario && r.variant == a)
        .filter_map(|ra| {
            let rb = runs
                .iter()
                .find(|r| r.scenario == scenario && r.variant == b && r.round == ra.round)?;
            Some(ra.cpu_us_per_request - rb.cpu_us_per_request)
        })
        .collect();
    Spread::of(&diffs)
}

/// In how many rounds `a`'s CPU per request was at most `b`'s.
pub fn rounds_at_most(runs: &[Run], scenario: &str, a: &str, b: &str) -> (usize, usize) {
    let mut wins = 0;
    let mut total = 0;
    for ra in runs
        .iter()
        .filter(|r| r.scenario == scenario && r.variant == a)
    {
        if let Some(rb) = runs
            .iter()
            .find(|r| r.scenario == scenario && r.variant == b && r.round == ra.round)
        {
            total += 1;
            if ra.cpu_us_per_request <= rb.cpu_us_per_request {
                wins += 1;
            }
        }
    }
    (wins, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Measured;

    fn run(round: u32, variant: &'static str, cpu: f64) -> Run {
        Run {
            round,
            scenario: "h1-allowed",
            variant,
            measured: Measured {
                requests: 100,
                seconds: 1.0,
                p50_us: 1.0,
                p99_us: 2.0,
                socket_errors: 0,
            },
            requests: 100,
            cpu_us_per_request: cpu,
            envoy_utilisation: 1.0,
            vm_hwm_kib: 1000,
            vm_rss_kib: 900,
        }
    }

    #[test]
    fn memory_rows_take_medians_per_worker_count() {
        let samples = [
            (1, "a", 100),
            (1, "a", 110),
            (1, "a", 90),
            (2, "a", 150),
            (1, "d", 200),
            (2, "d", 260),
        ];
        let rows = memory_rows(&samples, &["a", "d", "x"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].one_worker_kib, rows[0].per_worker_kib()),
            (100.0, 50.0)
        );
        assert_eq!(rows[1].per_worker_kib(), 60.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn added_cpu_is_paired_by_round() {
        // Round 2 is noisy for both: pairing by round cancels it.
        let runs = vec![
            run(1, "a", 10.0),
            run(1, "d", 12.0),
            run(2, "a", 20.0),
            run(2, "d", 22.5),
            run(3, "a", 11.0),
            run(3, "d", 13.5),
        ];
        let rows = summarise(&runs, &["h1-allowed"], &["a", "d"], "a");
        assert_eq!(rows.len(), 2);
        assert!(rows[0].added_cpu_us.is_none());
        let added = rows[1].added_cpu_us.unwrap();
        assert_eq!((added.median, added.min, added.max), (2.5, 2.0, 2.5));
        assert_eq!(rows[1].cpu_us.median, 13.5);
        assert_eq!(rounds_at_most(&runs, "h1-allowed", "a", "d"), (3, 3));
        let p = paired(&runs, "h1-allowed", "d", "a").unwrap();
        assert_eq!((p.median, p.min, p.max), (2.5, 2.0, 2.5));
        assert!(paired(&runs, "h1-allowed", "d", "x").is_none());
        assert_eq!(rounds_at_most(&runs, "h1-allowed", "d", "a"), (0, 3));
    }
}
