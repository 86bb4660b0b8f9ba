//! Cost per request, counted in wasmtime fuel (roughly one unit per wasm
//! instruction), for each path through the gate with the hand-over to the access log on.
//! Counted, not timed: the same module and inputs give the same numbers.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Host, Module, Status};

/// The most fuel one allowed request may cost (all callbacks of the stream:
/// create, request headers, delete), set just above the measured figure
/// so a regression fails `fuel_budget.rs`.
pub const ALLOWED_FUEL_BUDGET: u64 = 12_500;

/// Demo tokens (not secrets) of the measured configuration.
const PLAIN_TOKEN: &str = "fuel-demo-plain";
const BOUND_TOKEN: &str = "fuel-demo-bound";
/// Valid through 2026 (`not_before`/`not_after`), which holds the host's clock.
const WINDOWED_TOKEN: &str = "fuel-demo-windowed";
/// 2027-01-01T00:00:00Z, after the windowed token's `not_after`.
const AFTER_WINDOW_NS: u64 = 1_798_761_600_000_000_000;
/// 2025-12-31T23:59:59Z, before its `not_before`.
const BEFORE_WINDOW_NS: u64 = 1_767_225_599_000_000_000;
const PEER: &str = "spiffe://cluster.local/ns/demo/sa/sleep";

/// One measured path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuelRow {
    pub path: &'static str,
    pub fuel: u64,
    /// The same fuel split by callback (`proxy_on_` dropped from the names); empty for
    /// the configuration row.
    pub by_callback: Vec<(&'static str, u64)>,
}

/// The callbacks the module exports for a stream (`filter/exports.json`), in the order Envoy
/// makes them, as the table's columns.
pub const CALLBACKS: [&str; 3] = ["context_create", "request_headers", "delete"];

/// Lower-case hex SHA-256, as the plugin configuration's `sha256` field wants it.
pub fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The contract's example configuration, records to filter state.
pub fn configuration() -> String {
    json!({
        "header": "x-rfma-token",
        "tokens": [
            {"name": "sleep", "sha256": hex_sha256(BOUND_TOKEN), "principals": [PEER]},
            {"name": "legacy", "value": PLAIN_TOKEN},
            {"name": "rotating", "sha256": hex_sha256(WINDOWED_TOKEN),
             "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-12-31T23:59:59Z"}
        ],
        "bypass": [{"path_prefix": "/status/", "methods": ["GET", "HEAD"]}],
        "strip_header": true,
        "log": {"sink": "filter_state", "allowed": true, "denied": true}
    })
    .to_string()
}

type Scenario = fn(&mut Host) -> crate::Response;

fn send(
    host: &mut Host,
    build: impl FnOnce(crate::RequestBuilder<'_>) -> crate::RequestBuilder<'_>,
) -> crate::Response {
    let mut plugin = host
        .plugin()
        .unwrap_or_else(|| panic!("the plugin is not configured"));
    let request = plugin
        .request()
        .path("/get?show_env=1")
        .header("user-agent", "curl/8.5.0")
        .header("accept", "*/*")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
    build(request).send()
}

const SCENARIOS: &[(&str, Scenario)] = &[
    ("allowed", |h| {
        send(h, |r| r.header("x-rfma-token", PLAIN_TOKEN))
    }),
    ("allowed, principal-bound token", |h| {
        send(h, |r| r.header("x-rfma-token", BOUND_TOKEN).peer(PEER))
    }),
    ("allowed, token with a validity window", |h| {
        send(h, |r| r.header("x-rfma-token", WINDOWED_TOKEN))
    }),
    ("bypass", |h| send(h, |r| r.path("/status/200"))),
    ("deny missing_token", |h| send(h, |r| r)),
    ("deny invalid_token", |h| {
        send(h, |r| r.header("x-rfma-token", "not-a-token"))
    }),
    ("deny duplicate_token", |h| {
        send(h, |r| {
            r.header("x-rfma-token", PLAIN_TOKEN)
                .header("x-rfma-token", PLAIN_TOKEN)
        })
    }),
    ("deny principal_mismatch", |h| {
        send(h, |r| {
            r.header("x-rfma-token", BOUND_TOKEN)
                .peer("spiffe://cluster.local/ns/demo/sa/other")
        })
    }),
    ("deny expired_token", |h| {
        send(h, |r| {
            r.header("x-rfma-token", WINDOWED_TOKEN)
                .at_ns(AFTER_WINDOW_NS)
        })
    }),
    ("deny token_not_yet_valid", |h| {
        send(h, |r| {
            r.header("x-rfma-token", WINDOWED_TOKEN)
                .at_ns(BEFORE_WINDOW_NS)
        })
    }),
    ("deny internal_error", |h| {
        h.inject_fault("proxy_get_header_map_pairs", Status::InternalFailure);
        send(h, |r| r.header("x-rfma-token", PLAIN_TOKEN))
    }),
];

/// Fuel of `proxy_on_configure` (with VM start) and of one request on each
/// path, measured on a fresh VM after two warm-up requests of the same path.
pub fn measure(module: &Module) -> Vec<FuelRow> {
    let mut rows = Vec::with_capacity(SCENARIOS.len() + 1);
    let mut host = Host::load(module).unwrap_or_else(|e| panic!("{e}"));
    let before = host.fuel_used();
    if let Err(e) = host.configure(configuration()) {
        panic!("the fuel configuration was refused: {e}");
    }
    rows.push(FuelRow {
        path: "configure (once per VM)",
        fuel: host.fuel_used() - before,
        by_callback: Vec::new(),
    });
    for (path, scenario) in SCENARIOS {
        let mut host = Host::load(module).unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = host.configure(configuration()) {
            panic!("the fuel configuration was refused: {e}");
        }
        let mut last = None;
        for _ in 0..3 {
            let r = scenario(&mut host);
            assert!(r.vm_failure().is_none(), "{path}: {:?}", r.vm_failure());
            assert!(
                r.decision().is_some(),
                "{path}: no decision for the access log"
            );
            last = Some(r);
        }
        let last = last.unwrap_or_else(|| panic!("{path}: no request was sent"));
        let by_callback = CALLBACKS
            .iter()
            .map(|&name| {
                let fuel = last
                    .fuel_by_callback()
                    .iter()
                    .filter(|(called, _)| called.strip_prefix("proxy_on_") == Some(name))
                    .map(|(_, fuel)| fuel)
                    .sum();
                (name, fuel)
            })
            .collect::<Vec<_>>();
        let split: u64 = by_callback.iter().map(|(_, fuel)| fuel).sum();
        assert_eq!(
            split,
            last.fuel(),
            "{path}: a callback is missing from CALLBACKS"
        );
        rows.push(FuelRow {
            path,
            fuel: last.fuel(),
            by_callback,
        });
    }
    rows
}

/// The table `cargo run -p rfma-wasm-host --bin fuel` prints.
pub fn table(rows: &[FuelRow]) -> String {
    let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<width$}  {:>9}", "path", "fuel");
    for name in CALLBACKS {
        out.push_str(&format!("  {name:>16}"));
    }
    out.push('\n');
    out.push_str(&format!("{}  {}", "-".repeat(width), "-".repeat(9)));
    for _ in CALLBACKS {
        out.push_str(&format!("  {}", "-".repeat(16)));
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("{:<width$}  {:>9}", row.path, row.fuel));
        for (_, fuel) in &row.by_callback {
            out.push_str(&format!("  {fuel:>16}"));
        }
        out.push('\n');
    }
    out
}
