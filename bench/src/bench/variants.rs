//! What runs in front of the route: the variants (no gate, RBAC, Lua, the filter and its
//! probes), the default and profiling sets, selection by key, and which scenarios each runs.

use super::*;
use crate::probe::Probe;
use crate::rig::{AccessLog, Sink};

/// What runs in front of the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NoGate,
    /// No gate, and another access-log format than the shipped one (see [`AccessLog`]).
    NoGateLog(AccessLog),
    Rbac,
    Lua,
    /// The shipped filter; `bypass`: the requests hit a bypass rule instead of carrying a token.
    Filter {
        sink: Sink,
        strip: bool,
        bypass: bool,
    },
    Probe(Probe),
}

/// One benchmark variant.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// `a`…`e` for the variants, `p1`… for the profiling ones.
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
}

/// The five variants every scenario compares, in the order they alternate. Each logs one
/// record per request with the shipped format (`filter/access-log-format.json`), so what a
/// gate adds over (a) is the gate alone.
pub const STANDARD: [Variant; 5] = [
    Variant {
        key: "a",
        label: "(a) no gate",
        kind: Kind::NoGate,
    },
    Variant {
        key: "b",
        label: "(b) Envoy RBAC header match",
        kind: Kind::Rbac,
    },
    Variant {
        key: "c",
        label: "(c) Lua check + strip",
        kind: Kind::Lua,
    },
    Variant {
        key: "d",
        label: "(d) rfma filter, sink filter_state + strip",
        kind: Kind::Filter {
            sink: Sink::FilterState,
            strip: true,
            bypass: false,
        },
    },
    Variant {
        key: "e",
        label: "(e) rfma filter, sink none + strip",
        kind: Kind::Filter {
            sink: Sink::None,
            strip: true,
            bypass: false,
        },
    },
];

/// Variants that split the cost of an allowed HTTP/1.1 request: the record's format (no gate,
/// [`RECORD_FORMATS`], which always run), and with `--profile` other filter configurations
/// and probe modules (`probe.rs`) that each add one host call of the filter to an empty Wasm
/// filter.
pub const PROFILE: [Variant; 10] = [
    Variant {
        key: "p1",
        label: "(p1) no gate, plain ECS line (no CEL, no filter state)",
        kind: Kind::NoGateLog(AccessLog::Plain),
    },
    Variant {
        key: "p2",
        label: "(p2) no gate, shipped format without CEL",
        kind: Kind::NoGateLog(AccessLog::NoCel),
    },
    Variant {
        key: "p3",
        label: "(p3) no gate, as (p2) without omit_empty_values",
        kind: Kind::NoGateLog(AccessLog::NoCelKeepEmpty),
    },
    Variant {
        key: "p4",
        label: "(p4) rfma, sink none, no strip",
        kind: Kind::Filter {
            sink: Sink::None,
            strip: false,
            bypass: false,
        },
    },
    Variant {
        key: "p5",
        label: "(p5) rfma, sink filter_state, bypass hit (no token)",
        kind: Kind::Filter {
            sink: Sink::FilterState,
            strip: true,
            bypass: true,
        },
    },
    Variant {
        key: "p6",
        label: "(p6) probe: empty Wasm filter",
        kind: Kind::Probe(Probe::Empty),
    },
    Variant {
        key: "p7",
        label: "(p7) probe: empty + read header map",
        kind: Kind::Probe(Probe::Headers),
    },
    Variant {
        key: "p8",
        label: "(p8) probe: empty + set_property rfma_decision",
        kind: Kind::Probe(Probe::SetProperty),
    },
    Variant {
        key: "p9",
        label: "(p9) probe: empty + counter increment",
        kind: Kind::Probe(Probe::Counter),
    },
    Variant {
        key: "p10",
        label: "(p10) probe: empty + remove token header",
        kind: Kind::Probe(Probe::RemoveHeader),
    },
];

/// The profiling variants that run without `--profile` too: the no-gate record formats, with
/// which the report states what the record itself costs next to the targets.
pub const RECORD_FORMATS: [&str; 3] = ["p1", "p2", "p3"];

/// The variants of a run without `--variants`: (a)–(e) and the record formats, and with
/// `profile` every profiling variant.
pub fn default_variants(profile: bool) -> Vec<Variant> {
    STANDARD
        .iter()
        .chain(
            PROFILE
                .iter()
                .filter(|v| profile || RECORD_FORMATS.contains(&v.key)),
        )
        .copied()
        .collect()
}

/// The one scenario the profiling variants run in.
pub const PROFILE_SCENARIO: &str = "h1-allowed";

/// The variant with this key.
pub fn variant(key: &str) -> Option<Variant> {
    STANDARD
        .iter()
        .chain(PROFILE.iter())
        .copied()
        .find(|v| v.key == key)
}

/// The variants named by `keys`, in the benchmark's order (`a`…`e`, `p1`…).
pub fn select(keys: &[String]) -> Result<Vec<Variant>, String> {
    if let Some(unknown) = keys.iter().find(|k| variant(k.trim()).is_none()) {
        let known: Vec<&str> = STANDARD
            .iter()
            .chain(PROFILE.iter())
            .map(|v| v.key)
            .collect();
        return Err(format!(
            "unknown variant {unknown:?}; known: {}",
            known.join(", ")
        ));
    }
    Ok(STANDARD
        .iter()
        .chain(PROFILE.iter())
        .copied()
        .filter(|v| keys.iter().any(|k| k.trim() == v.key))
        .collect())
}

/// Whether a variant runs in a scenario. The profiling variants split the cost of an allowed
/// HTTP/1.1 request, so they run in [`PROFILE_SCENARIO`] only; RBAC and Lua have no bypass
/// rule (every request of a bypass scenario would be a 403 that compares with nothing), so
/// they do not run with bypass traffic.
pub fn runs_in(v: &Variant, sc: &Scenario) -> bool {
    if PROFILE.iter().any(|p| p.key == v.key) {
        return sc.key == PROFILE_SCENARIO;
    }
    !(sc.mix == Mix::Bypass && matches!(v.kind, Kind::Rbac | Kind::Lua))
}
