//! Formatting helpers: numbers, labels, the per-scenario results table, verdicts.

use super::*;

pub(super) fn variant(key: &str) -> Option<&'static Variant> {
    STANDARD.iter().chain(PROFILE.iter()).find(|v| v.key == key)
}

pub(super) fn label(key: &str) -> &'static str {
    variant(key).map_or("?", |v| v.label)
}

pub(super) fn row<'r>(rows: &'r [Row], scenario: &str, v: &str) -> Option<&'r Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.variant == v)
}

pub(super) fn mib(kib: f64) -> String {
    format!("{:.1}", kib / 1024.0)
}

/// `180,093`: whole instructions with thousands separators.
pub(super) fn thousands(v: f64) -> String {
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
pub(super) fn signed_thousands(v: f64) -> String {
    if v.round() >= 0.0 {
        format!("+{}", thousands(v))
    } else {
        thousands(v)
    }
}

/// `a / b` when `b` is positive (a ratio to a cost that is no cost means nothing).
pub(super) fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

pub(super) fn fmt_added(r: &Row) -> String {
    match r.added_cpu_us {
        None => "—".to_owned(),
        Some(s) => format!("{:+.1} ({:+.1} … {:+.1})", s.median, s.min, s.max),
    }
}

pub(super) fn table(out: &mut String, rows: &[Row], scenario: &str, keys: &[&str]) {
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

pub(super) fn scenario_title(key: &str) -> &'static str {
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
pub(super) fn instruction_title(key: &str) -> &'static str {
    match key {
        "h1-allowed" => "Allowed requests: a configured token (200, token stripped)",
        "h1-denied" => "Denied requests: a wrong token (403 from each gate, 200 without one)",
        "h1-bypass" => {
            "Bypassed requests: `GET /status/…` without a token (the filter's bypass rule; RBAC and Lua have none and do not run)"
        }
        _ => "Other requests",
    }
}

pub(super) fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}
