//! The soak run: many requests, allowed and denied, over HTTP/1.1 and HTTP/2, through one
//! Envoy with the filter (sink `filter_state`, stripping on) and the shipped record. Every
//! batch is checked completely: each request got its status and the filter counted its
//! decision, the access log holds one valid record per request with the status, decision and
//! token name or deny reason the filter handed over, and no token; and Envoy's resident memory
//! at the end is within a bound of its value after the first `reference_after` requests.
//!
//! Self-contained apart from `crate::rig` (both files are included by `wasm-host/tests/suite/main.rs`
//! with `#[path]`, so the CI variant, `e2e_soak`, runs this very code).

use crate::rig::{self, AccessLog, Envoy, Gate, HEADER, Sink, TOKENS, WRONG_TOKEN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One kind of request in the mix.
#[derive(Debug, Clone, Copy)]
pub struct RequestKind {
    pub name: &'static str,
    pub path: &'static str,
    pub token: Option<&'static str>,
    pub status: u16,
    pub decision: &'static str,
    /// `rfma.token.name` in the record (allowed requests).
    pub token_name: Option<&'static str>,
    /// `rfma.reason` in the record (denied requests).
    pub reason: Option<&'static str>,
    /// The filter counter it increments.
    pub counter: &'static str,
}

/// The mix, in the order batches cycle through it.
pub const MIX: [RequestKind; 5] = [
    RequestKind {
        name: "allowed (alpha)",
        path: "/get",
        token: Some(TOKENS[0].1),
        status: 200,
        decision: "allow",
        token_name: Some(TOKENS[0].0),
        reason: None,
        counter: "rfma_allowed_total",
    },
    RequestKind {
        name: "wrong token",
        path: "/get",
        token: Some(WRONG_TOKEN),
        status: 403,
        decision: "deny",
        token_name: None,
        reason: Some("invalid_token"),
        counter: "rfma_denied_invalid_token_total",
    },
    RequestKind {
        name: "allowed (bravo)",
        path: "/anything/x?y=1",
        token: Some(TOKENS[1].1),
        status: 200,
        decision: "allow",
        token_name: Some(TOKENS[1].0),
        reason: None,
        counter: "rfma_allowed_total",
    },
    RequestKind {
        name: "missing token",
        path: "/get",
        token: None,
        status: 401,
        decision: "deny",
        token_name: None,
        reason: Some("missing_token"),
        counter: "rfma_denied_missing_token_total",
    },
    RequestKind {
        name: "bypass",
        path: "/status/ok",
        token: None,
        status: 200,
        decision: "bypass",
        token_name: None,
        reason: None,
        counter: "rfma_bypassed_total",
    },
];

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakSpec {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub requests: u64,
    pub batch: u64,
    /// The memory reference point: after this many requests (a multiple of `batch`).
    pub reference_after: u64,
    /// Allowed growth of `VmRSS` from the reference point to the end, in percent.
    pub max_growth_percent: f64,
    pub cores: Option<(usize, usize)>,
    /// Give up (an error) when a batch ends after this much time.
    pub deadline: Option<std::time::Duration>,
}

/// What it measured.
#[derive(Debug, Clone)]
pub struct SoakResult {
    pub requests: u64,
    pub batches: u64,
    pub seconds: f64,
    pub rss_reference_kib: u64,
    pub rss_end_kib: u64,
    pub hwm_end_kib: u64,
    /// `VmRSS` after each batch.
    pub rss_after_batch_kib: Vec<u64>,
    pub growth_percent: f64,
}

/// `h2load`'s totals for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct H2loadCounts {
    pub done: u64,
    pub errored: u64,
    pub timeout: u64,
    /// 2xx, 3xx, 4xx, 5xx.
    pub classes: [u64; 4],
}

/// Parses `requests: …` and `status codes: …` from `h2load`'s output.
pub fn parse_h2load_counts(stdout: &str) -> Result<H2loadCounts, String> {
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .ok_or_else(|| format!("h2load printed no `{prefix}` line:\n{stdout}"))
    };
    let field = |text: &str, suffix: &str| -> Result<u64, String> {
        text.split(',')
            .find_map(|p| p.trim().strip_suffix(suffix)?.trim().parse().ok())
            .ok_or_else(|| format!("h2load: no `{suffix}` count in {text:?}"))
    };
    let requests = line("requests: ")?;
    let statuses = line("status codes: ")?;
    Ok(H2loadCounts {
        done: field(requests, "done")?,
        errored: field(requests, "errored")?,
        timeout: field(requests, "timeout")?,
        classes: [
            field(statuses, "2xx")?,
            field(statuses, "3xx")?,
            field(statuses, "4xx")?,
            field(statuses, "5xx")?,
        ],
    })
}

/// Checks every record of a batch: valid one-line JSON, the expected status, and what the
/// filter handed over (decision, token name or deny reason), no token anywhere. Returns how
/// many records there were.
pub fn check_records(text: &str, kind: &RequestKind) -> Result<u64, String> {
    for (_, token) in TOKENS.iter().chain([&("wrong", WRONG_TOKEN)]) {
        if text.contains(token) {
            return Err(format!("a token ({token}) appears in the access log"));
        }
    }
    let mut n = 0;
    for line in text.lines() {
        let record: Value = serde_json::from_str(line)
            .map_err(|e| format!("access log line is not JSON ({e}): {line:?}"))?;
        let rfma = &record["rfma"];
        let got = (
            rfma["decision"].as_str(),
            record["http"]["response"]["status_code"].as_u64(),
            rfma["token"]["name"].as_str(),
            rfma["reason"].as_str(),
        );
        let want = (
            Some(kind.decision),
            Some(u64::from(kind.status)),
            kind.token_name,
            kind.reason,
        );
        if got != want {
            return Err(format!(
                "{}: expected (decision, status, token name, reason) {want:?}, got {got:?} in the record {line}",
                kind.name
            ));
        }
        n += 1;
    }
    Ok(n)
}

/// Runs the soak in `dir` (Envoy's files and the access log go there).
pub fn run(
    spec: &SoakSpec,
    dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<SoakResult, String> {
    if spec.batch == 0
        || !spec.requests.is_multiple_of(spec.batch)
        || !spec.reference_after.is_multiple_of(spec.batch)
    {
        return Err(format!(
            "soak: requests ({}) and the reference point ({}) must be multiples of the batch ({})",
            spec.requests, spec.reference_after, spec.batch
        ));
    }
    if spec.reference_after == 0 || spec.reference_after >= spec.requests {
        return Err("soak: the reference point must lie inside the run".to_owned());
    }
    let h2load = rig::which("h2load").ok_or(
        "h2load not found on PATH; `bash scripts/install-deps.sh` installs it (nghttp2-client)",
    )?;
    let access_log = dir.join("access.log");
    let gate = Gate::Wasm {
        module: spec.wasm.clone(),
        config: rig::plugin_config(Sink::FilterState, true),
    };
    let bootstrap = rig::bootstrap(&gate, AccessLog::Shipped, &access_log);
    let mut envoy = Envoy::start(
        &spec.envoy,
        &bootstrap,
        &access_log,
        dir,
        spec.cores.map(|c| c.0),
        1,
    )?;
    let pid = envoy.pid();
    let started = Instant::now();
    let batches = spec.requests / spec.batch;
    let mut rss_after_batch_kib = Vec::new();
    let mut rss_reference_kib = 0;
    let mut done = 0;
    for b in 0..batches {
        let kind = MIX[(b as usize) % MIX.len()];
        // Alternate the protocol every full cycle of the mix.
        let http1 = (b as usize / MIX.len()) % 2 == 1;
        let before = envoy.request_counters()?;
        let mut cmd = rig::pinned(spec.cores.map(|c| c.1), &h2load);
        cmd.args(["-t1", "-n", &spec.batch.to_string()]);
        if http1 {
            cmd.args(["--h1", "-c", "32", "-m", "1"]);
        } else {
            cmd.args(["-c", "4", "-m", "8"]);
        }
        if let Some(token) = kind.token {
            cmd.args(["-H", &format!("{HEADER}: {token}")]);
        }
        cmd.arg(format!("http://{}{}", envoy.listener, kind.path));
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run h2load: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("h2load failed ({}): {stdout}", out.status));
        }
        let counts = parse_h2load_counts(&stdout)?;
        let class = usize::from(kind.status / 100 - 2);
        let context = format!(
            "batch {} of {batches} ({}, {}, requests {}-{})",
            b + 1,
            kind.name,
            if http1 { "HTTP/1.1" } else { "HTTP/2" },
            done + 1,
            done + spec.batch
        );
        let mut expected = [0u64; 4];
        expected[class] = spec.batch;
        if counts.done != spec.batch
            || counts.errored + counts.timeout > 0
            || counts.classes != expected
        {
            return Err(format!(
                "{context}: unexpected statuses or errors from h2load: {counts:?}, expected {} × {}",
                spec.batch, kind.status
            ));
        }
        let delta = envoy.request_counters()?.since(&before);
        let status_class = format!("{}xx", kind.status / 100);
        for name in ["total", "completed", status_class.as_str(), kind.counter] {
            if delta.get(name) != spec.batch {
                return Err(format!(
                    "{context}: {name} rose by {}, expected {}: {:?}",
                    delta.get(name),
                    spec.batch,
                    delta.0
                ));
            }
        }
        envoy
            .wait_access_log_lines(spec.batch, spec.batch)
            .map_err(|e| format!("{context}: {e}"))?;
        let text = std::fs::read_to_string(&access_log)
            .map_err(|e| format!("{}: {e}", access_log.display()))?;
        let records = check_records(&text, &kind).map_err(|e| format!("{context}: {e}"))?;
        if records != spec.batch {
            return Err(format!(
                "{context}: {records} records for {} requests",
                spec.batch
            ));
        }
        // Envoy appends (O_APPEND), so after truncation its next line starts the file again.
        std::fs::File::create(&access_log)
            .map_err(|e| format!("cannot truncate {}: {e}", access_log.display()))?;
        done += spec.batch;
        let (_, rss) = rig::memory_kib(pid)?;
        rss_after_batch_kib.push(rss);
        if done == spec.reference_after {
            rss_reference_kib = rss;
        }
        progress(&format!("{context}: ok, VmRSS {rss} KiB"));
        if let Some(limit) = spec
            .deadline
            .filter(|l| started.elapsed() > *l && done < spec.requests)
        {
            return Err(format!(
                "soak: only {done} of {} requests after {}s (limit {}s); the machine is too slow or Envoy stalls",
                spec.requests,
                started.elapsed().as_secs(),
                limit.as_secs()
            ));
        }
    }
    let (hwm_end_kib, rss_end_kib) = rig::memory_kib(pid)?;
    let growth_percent =
        (rss_end_kib as f64 - rss_reference_kib as f64) * 100.0 / rss_reference_kib.max(1) as f64;
    let result = SoakResult {
        requests: done,
        batches,
        seconds: started.elapsed().as_secs_f64(),
        rss_reference_kib,
        rss_end_kib,
        hwm_end_kib,
        rss_after_batch_kib,
        growth_percent,
    };
    if envoy.process.exited().is_some() {
        return Err(envoy.process.death_report().unwrap_or_default());
    }
    if growth_percent > spec.max_growth_percent {
        return Err(format!(
            "Envoy's resident memory grew {growth_percent:.2} % (from {rss_reference_kib} KiB after {} requests to {rss_end_kib} KiB after {done}), more than {} %: {:?}",
            spec.reference_after, spec.max_growth_percent, result.rss_after_batch_kib
        ));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_what_the_filter_handed_over() {
        let alpha = MIX[0];
        let good = r#"{"rfma":{"decision":"allow","token":{"name":"alpha"}},"http":{"response":{"status_code":200}},"url":{"domain":"127.0.0.1"}}"#;
        assert_eq!(check_records(&format!("{good}\n{good}\n"), &alpha), Ok(2));
        // Another token's name, a deny reason on an allowed request, no name at all.
        for bad in [
            good.replace("alpha", "bravo"),
            good.replace(
                r#""decision":"allow""#,
                r#""decision":"allow","reason":"x""#,
            ),
            good.replace(r#","token":{"name":"alpha"}"#, ""),
        ] {
            assert!(check_records(&bad, &alpha).is_err(), "{bad}");
        }
        let missing = MIX[3];
        let denied = r#"{"rfma":{"decision":"deny","reason":"missing_token"},"http":{"response":{"status_code":401}}}"#;
        assert_eq!(check_records(denied, &missing), Ok(1));
        assert!(check_records(&denied.replace("missing", "invalid"), &missing).is_err());
        let bypass = r#"{"rfma":{"decision":"bypass"},"http":{"response":{"status_code":200}}}"#;
        assert_eq!(check_records(bypass, &MIX[4]), Ok(1));
    }
}
