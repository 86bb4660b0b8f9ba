//! What a run sends for a variant in a scenario, the gate and access log it runs with, and
//! the checks before its numbers count: the first request, the counters, every record.

use super::*;
use crate::load;
use crate::probe::Probe;
use crate::rig::{
    AccessLog, Counters, Envoy, Gate, HEADER, Sink, TOKENS, WRONG_TOKEN, plugin_config,
};
use serde_json::Value;
use std::path::Path;

/// A path the filter's bypass rule matches.
const BYPASS_PATH: &str = "/status/bench";
const PATH: &str = "/get";

/// The requests of a scenario for a variant: path, headers, and the status, counter and
/// record each must get.
pub(crate) struct Traffic {
    pub(crate) path: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) status: u16,
    /// The counter each request increments (filter variants, and the counter probe).
    pub(crate) counter: Option<&'static str>,
    /// `rfma.decision` in the record: what the filter (sink `filter_state`) or the
    /// set-property probe wrote to filter state; absent for every other variant.
    pub(crate) decision: Option<&'static str>,
}

pub(crate) fn traffic(kind: Kind, mix: Mix) -> Traffic {
    // The bypass-hit variant sends bypass traffic whatever the scenario.
    let mix = match kind {
        Kind::Filter { bypass: true, .. } => Mix::Bypass,
        _ => mix,
    };
    let (path, token) = match mix {
        Mix::Allowed => (PATH, Some(TOKENS[0].1)),
        Mix::Denied => (PATH, Some(WRONG_TOKEN)),
        Mix::Bypass => (BYPASS_PATH, None),
    };
    let headers = token
        .map(|t| (HEADER.to_owned(), t.to_owned()))
        .into_iter()
        .collect();
    let status = match (kind, mix) {
        // A wrong token is a 403 for every gate; no token is one for the gates without a
        // bypass rule.
        (Kind::Rbac | Kind::Lua | Kind::Filter { .. }, Mix::Denied)
        | (Kind::Rbac | Kind::Lua, Mix::Bypass) => 403,
        _ => 200,
    };
    let (counter, decision) = match kind {
        Kind::Filter { sink, .. } => {
            let (counter, decision) = match mix {
                Mix::Allowed => ("rfma_allowed_total", "allow"),
                Mix::Denied => ("rfma_denied_invalid_token_total", "deny"),
                Mix::Bypass => ("rfma_bypassed_total", "bypass"),
            };
            (
                Some(counter),
                (sink == Sink::FilterState).then_some(decision),
            )
        }
        // The probes' own evidence that their host call really ran on every request.
        Kind::Probe(Probe::Counter) => (Some(crate::probe::COUNTER), None),
        Kind::Probe(Probe::SetProperty) => (None, Some(crate::probe::PROPERTY_VALUE)),
        _ => (None, None),
    };
    Traffic {
        path,
        headers,
        status,
        counter,
        decision,
    }
}

/// The gate and access log of a variant with the filter module `wasm` (probe modules are
/// written into `dir`).
pub(crate) fn gate(wasm: &Path, kind: Kind, dir: &Path) -> Result<(Gate, AccessLog), String> {
    Ok(match kind {
        Kind::NoGate => (Gate::None, AccessLog::Shipped),
        Kind::NoGateLog(log) => (Gate::None, log),
        Kind::Rbac => (Gate::Rbac, AccessLog::Shipped),
        Kind::Lua => (Gate::Lua, AccessLog::Shipped),
        Kind::Filter { sink, strip, .. } => (
            Gate::Wasm {
                module: wasm.to_path_buf(),
                config: plugin_config(sink, strip),
            },
            AccessLog::Shipped,
        ),
        Kind::Probe(p) => {
            let module = dir.join("probe.wasm");
            std::fs::write(&module, p.wasm()?).map_err(|e| format!("{}: {e}", module.display()))?;
            (
                Gate::Wasm {
                    module,
                    config: String::new(),
                },
                AccessLog::Shipped,
            )
        }
    })
}

/// One request before any measurement: the variant answers as it must.
pub(crate) fn check_first_request(envoy: &Envoy, t: &Traffic) -> Result<(), String> {
    let mut request = envoy_harness::http1::Request::get(t.path);
    for (n, val) in &t.headers {
        request = request.header(n, val);
    }
    let first = envoy.send(&request)?;
    if first.status != t.status {
        return Err(format!(
            "expected status {}, got {} {}",
            t.status,
            first.status,
            first.text()
        ));
    }
    Ok(())
}

/// Requests a load generator may leave half-done when its time is up (it closes connections
/// with requests in flight): twice the requests in flight, for the warm-up and the window.
/// Envoy counts such a request in `total` (and the filter may have decided it) but sends no
/// response, so `completed` does not count it; and one that straddles a counter snapshot lands
/// on different sides of it for different counters. Every other count must be exact.
pub const SLACK: u64 = 2 * load::WRK_CONNECTIONS as u64;

/// Every response of the window had the expected status class (exactly), and the filter's
/// decision counter matches the requests up to the load generator's cut-off.
pub(super) fn check_counters(delta: &Counters, t: &Traffic) -> Result<(), String> {
    let completed = delta.get("completed");
    if completed == 0 {
        return Err("no request completed during the load window".to_owned());
    }
    let class = format!("{}xx", t.status / 100);
    if delta.get(&class) != completed {
        return Err(format!(
            "{completed} requests completed but {} got {class}: {:?}",
            delta.get(&class),
            delta.0
        ));
    }
    if delta.get("total").abs_diff(completed) > SLACK {
        return Err(format!(
            "far more requests arrived than completed: {:?}",
            delta.0
        ));
    }
    if let Some(counter) = t.counter
        && delta.get(counter).abs_diff(completed) > SLACK
    {
        return Err(format!(
            "{completed} requests completed but {counter} rose by {}: {:?}",
            delta.get(counter),
            delta.0
        ));
    }
    Ok(())
}

/// Every line is a JSON object with the expected status and `rfma.decision` (the filter's
/// value in filter state, absent for variants that write none), but for requests cut off by
/// the load generator, which have status 0 (no response); no token, right or wrong, appears.
pub(crate) fn check_access_log(path: &Path, t: &Traffic) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for token in TOKENS.iter().map(|(_, token)| *token).chain([WRONG_TOKEN]) {
        if text.contains(token) {
            return Err(format!(
                "a token appears in the access log {}",
                path.display()
            ));
        }
    }
    let mut cut_off = 0;
    for line in text.lines() {
        let record: Value = serde_json::from_str(line)
            .map_err(|e| format!("access log line is not JSON ({e}): {line:?}"))?;
        let decision = record["rfma"]["decision"].as_str();
        let status = record["http"]["response"]["status_code"].as_u64();
        if status == Some(0) && decision == t.decision {
            cut_off += 1;
        } else if decision != t.decision || status != Some(u64::from(t.status)) {
            return Err(format!(
                "record has decision {decision:?} and status {status:?}, expected {:?} and {}: {line}",
                t.decision, t.status
            ));
        }
    }
    if cut_off > SLACK {
        return Err(format!("{cut_off} records without a response (status 0)"));
    }
    Ok(())
}
