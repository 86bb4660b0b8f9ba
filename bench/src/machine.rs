//! The machine, the versions and the command behind a set of numbers.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_else(|| format!("({program} not runnable)"))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The 1-minute load average (how busy the shared machine was).
pub fn load_average() -> f64 {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Everything worth knowing about where and with what the numbers were taken.
pub fn describe(envoy: &Path, wasm: &Path, command: &str) -> Value {
    let cpuinfo = read_trimmed("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let mem_kib: u64 = read_trimmed("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let git = |args: &[&str]| first_line("git", args);
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    json!({
        "date_utc": first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
        "os": read_trimmed("/etc/debian_version"),
        "envoy": first_line(&envoy.to_string_lossy(), &["--version"]),
        "wrk": first_line("wrk", &["-v"]),
        "h2load": first_line("h2load", &["--version"]),
        "rustc": first_line("rustc", &["--version"]),
        "commit": format!("{}{}", git(&["rev-parse", "--short", "HEAD"]), if dirty { " (with uncommitted changes)" } else { "" }),
        "module": wasm.to_string_lossy(),
        "module_bytes": std::fs::metadata(wasm).map(|m| m.len()).unwrap_or(0),
        "command": command,
    })
}
