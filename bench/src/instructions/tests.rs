//! The unit tests of the instruction runs: the parsers, the window's checks, the Envoy binary,
//! the plan.

use super::run::check_window;
use super::*;
use crate::bench::{Kind, Mix, PROFILE, STANDARD};
use crate::probe::Probe;
use crate::rig;
use std::collections::BTreeMap;

#[test]
fn dump_total_comes_from_summary_else_totals() {
    let dump = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 4168\n\
                part: 1\ndesc: Trigger: dump\n\npositions: line\nevents: Ir\nsummary: 275607947\n\n\
                fn=(1) main\n0 610\n\ntotals: 275989958\n";
    assert_eq!(parse_dump(dump).unwrap(), 275_607_947);
    assert_eq!(
        parse_dump("events: Ir\nfn=(1) x\n0 5\ntotals: 42\n").unwrap(),
        42
    );
    // More events: Ir is the first.
    assert_eq!(parse_dump("events: Ir Dr\nsummary: 7 3\n").unwrap(), 7);
}

#[test]
fn dump_without_a_total_is_an_error() {
    let e = parse_dump("# callgrind format\nevents: Ir\nfn=(1) x\n0 5\n").unwrap_err();
    assert!(e.contains("no `summary:` or `totals:`"), "{e}");
    assert!(parse_dump("").is_err());
    assert!(parse_dump("summary: lots\n").is_err());
}

const HEY_OK: &str = "\nSummary:\n  Total:\t6.0262 secs\n  Requests/sec:\t331.8829\n\n\
    Response time histogram:\n  0.002 [1]\t|\n  0.005 [47]\t|■■■\n\n\
    Latency distribution:\n  10% in 0.0074 secs\n\n\
    Status code distribution:\n  [200]\t2000 responses\n\n\n";

#[test]
fn hey_status_and_error_counts() {
    let r = parse_hey(HEY_OK).unwrap();
    assert_eq!(r.statuses, BTreeMap::from([(200, 2000)]));
    assert_eq!(r.errors, 0);
    let mixed = format!(
        "{HEY_OK}  [403]\t3 responses\n\nError distribution:\n  [2]\tGet \"http://127.0.0.1:1/get\": EOF\n  [1]\tGet \"http://127.0.0.1:1/get\": reset\n"
    );
    let r = parse_hey(&mixed).unwrap();
    assert_eq!(r.statuses, BTreeMap::from([(200, 2000), (403, 3)]));
    assert_eq!(r.errors, 3);
    assert!(parse_hey("Usage: hey [options...] <url>\n").is_err());
}

#[test]
fn window_must_hold_exactly_the_requests() {
    let t = bench::traffic(STANDARD[3].kind, Mix::Allowed);
    let mut c = rig::Counters::default();
    for k in ["total", "completed", "2xx"] {
        c.0.insert(format!("http.bench.downstream_rq_{k}"), 2000);
    }
    c.0.insert("wasmcustom.rfma_allowed_total".into(), 2000);
    assert!(check_window(&c, &t, 2000).is_ok());
    // A request of the warm-up counted in the window (or one missing) is an error.
    c.0.insert("wasmcustom.rfma_allowed_total".into(), 2001);
    let e = check_window(&c, &t, 2000).unwrap_err();
    assert!(e.contains("rfma_allowed_total rose by 2001"), "{e}");
    // Variants without a counter: the request counters alone.
    let a = bench::traffic(Kind::NoGate, Mix::Allowed);
    assert!(check_window(&c, &a, 2000).is_ok());
    c.0.insert("http.bench.downstream_rq_2xx".into(), 1999);
    assert!(check_window(&c, &a, 2000).is_err());
}

#[test]
fn the_counter_probe_is_checked_by_its_counter() {
    let v = PROFILE
        .iter()
        .find(|v| v.kind == Kind::Probe(Probe::Counter))
        .unwrap();
    let t = bench::traffic(v.kind, Mix::Allowed);
    assert_eq!(t.counter, Some(crate::probe::COUNTER));
}

#[test]
fn a_script_that_is_not_python_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("envoy");
    std::fs::write(&script, "#!/bin/sh\nexec true\n").unwrap();
    let e = resolve_envoy_binary(&script).unwrap_err();
    assert!(e.contains("--envoy"), "{e}");
    // An ELF file is taken as it is.
    let elf = dir.path().join("elf");
    std::fs::write(&elf, b"\x7fELF\x02\x01\x01").unwrap();
    assert_eq!(resolve_envoy_binary(&elf).unwrap(), elf);
}

#[test]
fn per_request_is_the_total_over_the_requests() {
    let m = Measurement {
        scenario: "h1-allowed",
        variant: "d",
        requests: 2000,
        instructions: 360_185_527,
        window_s: 6.0,
    };
    assert!((m.per_request() - 180_092.763_5).abs() < 1e-3);
    assert_eq!(m.to_json()["instructions"], 360_185_527);
    assert_eq!(m.to_json()["scenario"], "h1-allowed");
}

#[test]
fn the_plan_runs_each_variant_where_it_means_something() {
    let scenarios: Vec<Scenario> = DEFAULT_SCENARIOS
        .split(',')
        .map(|k| bench::scenario(k).unwrap())
        .collect();
    let all: Vec<Variant> = STANDARD.iter().chain(PROFILE.iter()).copied().collect();
    let runs: Vec<(&str, &str)> = plan(&scenarios, &all)
        .unwrap()
        .iter()
        .map(|(sc, v)| (sc.key, v.key))
        .collect();
    let in_scenario =
        |k: &str| -> Vec<&str> { runs.iter().filter(|r| r.0 == k).map(|r| r.1).collect() };
    assert_eq!(
        in_scenario("h1-allowed").len(),
        STANDARD.len() + PROFILE.len()
    );
    assert_eq!(in_scenario("h1-denied"), ["a", "b", "c", "d", "e"]);
    assert_eq!(in_scenario("h1-bypass"), ["a", "d", "e"]);
    let h2 = [bench::scenario("h2-allowed").unwrap()];
    assert!(plan(&h2, &all).unwrap_err().contains("not HTTP/1.1"));
}
