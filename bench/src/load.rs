//! The load generators: `wrk` (HTTP/1.1, keep-alive) and `h2load` (HTTP/2 with prior
//! knowledge), each on its own core when pinning is possible, each for a bounded time, with
//! what they report parsed into one shape.

use crate::rig::{pinned, which};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Open connections of `wrk` (one thread).
pub const WRK_CONNECTIONS: u32 = 32;
/// `h2load`: connections × concurrent streams per connection = requests in flight, as `wrk`.
pub const H2_CONNECTIONS: u32 = 4;
pub const H2_STREAMS: u32 = 8;

/// The wire protocol of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        }
    }

    pub fn tool(self) -> &'static str {
        match self {
            Protocol::Http1 => "wrk",
            Protocol::Http2 => "h2load",
        }
    }
}

/// One load run: every request is `GET path` with `headers`.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    pub protocol: Protocol,
    pub target: SocketAddr,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub duration: Duration,
    pub core: Option<usize>,
    /// Where the tool's script, per-request log and output go.
    pub dir: &'a Path,
}

/// What a load tool measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub requests: u64,
    pub seconds: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Connect, read, write errors and timeouts (not HTTP statuses).
    pub socket_errors: u64,
}

impl Measured {
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

fn tool(name: &str) -> Result<PathBuf, String> {
    which(name).ok_or_else(|| {
        format!("{name} not found on PATH; `bash scripts/install-deps.sh` installs it (`make bench` does)")
    })
}

/// Checks that both load generators are installed.
pub fn check_tools() -> Result<(), String> {
    tool("wrk")?;
    tool("h2load")?;
    Ok(())
}

/// Runs the load and parses what the tool reports.
pub fn run(load: &Load) -> Result<Measured, String> {
    match load.protocol {
        Protocol::Http1 => run_wrk(load),
        Protocol::Http2 => run_h2load(load),
    }
}

/// `wrk`'s `done` hook prints one machine-readable line; latencies are in microseconds.
const WRK_SCRIPT: &str = r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RFMA-BENCH %d %d %.3f %.3f %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout))
end
"#;

fn run_wrk(load: &Load) -> Result<Measured, String> {
    let script = load.dir.join("report.lua");
    std::fs::write(&script, WRK_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    let mut cmd = pinned(load.core, &tool("wrk")?);
    cmd.args(["-t1", "-c", &WRK_CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", load.duration.as_secs().max(1))])
        .args(["--timeout", "10s", "-s"])
        .arg(&script);
    for (name, value) in load.headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    cmd.arg(format!("http://{}{}", load.target, load.path));
    let stdout = output(cmd, "wrk")?;
    parse_wrk(&stdout)
}

/// Parses the `RFMA-BENCH requests duration_us p50_us p99_us socket_errors` line.
pub fn parse_wrk(stdout: &str) -> Result<Measured, String> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RFMA-BENCH "))
        .ok_or_else(|| format!("wrk printed no report line:\n{stdout}"))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("wrk report {line:?}: {e}"))?;
    let [requests, duration_us, p50_us, p99_us, socket_errors] = f[..] else {
        return Err(format!("wrk report {line:?}: expected 5 numbers"));
    };
    Ok(Measured {
        requests: requests as u64,
        seconds: duration_us / 1e6,
        p50_us,
        p99_us,
        socket_errors: socket_errors as u64,
    })
}

fn run_h2load(load: &Load) -> Result<Measured, String> {
    let log = load.dir.join("h2load-requests.tsv");
    let mut cmd = pinned(load.core, &tool("h2load")?);
    cmd.args(["-t1", "-c", &H2_CONNECTIONS.to_string()])
        .args(["-m", &H2_STREAMS.to_string()])
        .args(["-D", &load.duration.as_secs().max(1).to_string()])
        .arg("--log-file")
        .arg(&log);
    for (name, value) in load.headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    cmd.arg(format!("http://{}{}", load.target, load.path));
    let stdout = output(cmd, "h2load")?;
    let log_text = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let _ = std::fs::remove_file(&log);
    parse_h2load(&stdout, &log_text)
}

/// `h2load` prints totals but no percentiles; those come from its per-request log
/// (`start_us <TAB> status <TAB> duration_us`).
pub fn parse_h2load(stdout: &str, log: &str) -> Result<Measured, String> {
    let seconds = stdout
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|rest| rest.split(',').next())
        .and_then(parse_duration_s)
        .ok_or_else(|| format!("h2load printed no `finished in`:\n{stdout}"))?;
    let counts = stdout
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .ok_or_else(|| format!("h2load printed no request counts:\n{stdout}"))?;
    let count = |what: &str| -> u64 {
        counts
            .split(',')
            .find_map(|p| p.trim().strip_suffix(what)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut latencies: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    if latencies.is_empty() {
        return Err(format!("h2load logged no request:\n{stdout}"));
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Measured {
        requests: latencies.len() as u64,
        seconds,
        p50_us: percentile(&latencies, 50.0),
        p99_us: percentile(&latencies, 99.0),
        socket_errors: count("errored") + count("timeout"),
    })
}

/// `4.00s`, `812.3ms`, `500us`.
fn parse_duration_s(text: &str) -> Option<f64> {
    let text = text.trim();
    for (unit, scale) in [("ms", 1e-3), ("us", 1e-6), ("s", 1.0)] {
        if let Some(n) = text.strip_suffix(unit) {
            return n.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn output(mut cmd: std::process::Command, name: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{name} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_report_line_is_parsed() {
        let m =
            parse_wrk("Running 5s test\nRFMA-BENCH 100000 5000000 150.500 900.000 2\n").unwrap();
        assert_eq!(m.requests, 100_000);
        assert_eq!(m.seconds, 5.0);
        assert_eq!((m.p50_us, m.p99_us, m.socket_errors), (150.5, 900.0, 2));
        assert_eq!(m.rps(), 20_000.0);
        assert!(parse_wrk("no report").is_err());
        assert!(parse_wrk("RFMA-BENCH 1 2 3").is_err());
    }

    #[test]
    fn h2load_totals_and_log_percentiles() {
        let stdout = "finished in 2.00s, 2.00 req/s, 1KB/s\n\
                      requests: 4 total, 4 started, 4 done, 3 succeeded, 1 failed, 1 errored, 0 timeout\n";
        let log = "1\t200\t40\n2\t200\t10\n3\t403\t30\n4\t200\t20\n";
        let m = parse_h2load(stdout, log).unwrap();
        assert_eq!((m.requests, m.seconds), (4, 2.0));
        assert_eq!((m.p50_us, m.p99_us), (20.0, 40.0));
        assert_eq!(m.socket_errors, 1);
        assert!(parse_h2load(stdout, "").is_err());
        assert_eq!(parse_duration_s("812.5ms"), Some(0.8125));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
