//! The benchmark's unit tests: variants, traffic expectations, the checks on a run.

use super::traffic::check_counters;
use super::*;
use crate::probe::Probe;
use crate::rig::BYPASS_PREFIX;
use crate::rig::{self, AccessLog, Counters, Sink, WRONG_TOKEN, plugin_config};
use std::path::Path;

#[test]
fn filter_configs_are_accepted_by_the_filters_own_parser() {
    for sink in [Sink::FilterState, Sink::None] {
        for strip in [true, false] {
            let text = plugin_config(sink, strip);
            rfma_filter::config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }
}

#[test]
fn traffic_expectations() {
    let d = STANDARD[3].kind;
    let allowed = traffic(d, Mix::Allowed);
    assert_eq!(
        (allowed.status, allowed.counter, allowed.decision),
        (200, Some("rfma_allowed_total"), Some("allow"))
    );
    let denied = traffic(d, Mix::Denied);
    assert_eq!((denied.status, denied.decision), (403, Some("deny")));
    let bypass = traffic(d, Mix::Bypass);
    assert!(bypass.path.starts_with(BYPASS_PREFIX) && bypass.headers.is_empty());
    assert_eq!(
        (bypass.status, bypass.counter, bypass.decision),
        (200, Some("rfma_bypassed_total"), Some("bypass"))
    );
    // Sink none: the filter decides and counts, but writes nothing for the record.
    let e = traffic(STANDARD[4].kind, Mix::Denied);
    assert_eq!((e.status, e.decision), (403, None));
    assert_eq!(traffic(Kind::NoGate, Mix::Denied).status, 200);
    assert_eq!(
        traffic(Kind::NoGateLog(AccessLog::Plain), Mix::Bypass).status,
        200
    );
    assert_eq!(traffic(Kind::Rbac, Mix::Denied).status, 403);
    assert_eq!(traffic(Kind::Lua, Mix::Bypass).status, 403);
    // The bypass-hit variant sends bypass traffic in any scenario.
    let p5 = variant("p5").unwrap();
    let hit = traffic(p5.kind, Mix::Allowed);
    assert!(hit.path.starts_with(BYPASS_PREFIX) && hit.headers.is_empty());
    assert_eq!(hit.decision, Some("bypass"));
    // The probes prove their host call: the counter by its counter, the write by the
    // record.
    assert_eq!(
        traffic(Kind::Probe(Probe::Counter), Mix::Allowed).counter,
        Some(crate::probe::COUNTER)
    );
    assert_eq!(
        traffic(Kind::Probe(Probe::SetProperty), Mix::Allowed).decision,
        Some("allow")
    );
    assert_eq!(
        traffic(Kind::Probe(Probe::Empty), Mix::Allowed).decision,
        None
    );
}

#[test]
fn variants_are_selected_by_key_in_the_benchmarks_order() {
    let keys: Vec<String> = ["p1", "e", "a", "d", "c"].map(String::from).to_vec();
    let chosen: Vec<&str> = select(&keys).unwrap().iter().map(|v| v.key).collect();
    assert_eq!(chosen, ["a", "c", "d", "e", "p1"]);
    let e = select(&["x".to_owned()]).unwrap_err();
    assert!(
        e.contains("unknown variant \"x\"") && e.contains("p8"),
        "{e}"
    );
    let keys: Vec<&str> = STANDARD
        .iter()
        .chain(PROFILE.iter())
        .map(|v| v.key)
        .collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(!keys[..i].contains(k), "{k} twice");
    }
}

#[test]
fn the_record_formats_run_by_default_the_other_profiling_variants_with_profile() {
    let keys = |profile| -> Vec<&str> { default_variants(profile).iter().map(|v| v.key).collect() };
    assert_eq!(keys(false), ["a", "b", "c", "d", "e", "p1", "p2", "p3"]);
    assert_eq!(keys(true).len(), STANDARD.len() + PROFILE.len());
    for k in RECORD_FORMATS {
        assert!(
            matches!(variant(k).unwrap().kind, Kind::NoGateLog(_)),
            "{k}"
        );
    }
}

#[test]
fn profiling_variants_run_with_allowed_http1_only_and_no_bypass_for_rbac_or_lua() {
    let sc = |k: &str| scenario(k).unwrap();
    for p in PROFILE {
        assert!(runs_in(&p, &sc("h1-allowed")), "{}", p.key);
        assert!(!runs_in(&p, &sc("h1-denied")) && !runs_in(&p, &sc("h2-allowed")));
    }
    for v in STANDARD {
        assert!(runs_in(&v, &sc("h1-denied")) && runs_in(&v, &sc("h2-allowed")));
    }
    let bypass: Vec<&str> = STANDARD
        .iter()
        .filter(|v| runs_in(v, &sc("h1-bypass")))
        .map(|v| v.key)
        .collect();
    assert_eq!(bypass, ["a", "d", "e"]);
}

/// Lines as Envoy writes them with the shipped format (`omit_empty_values`: no
/// `rfma.decision` without filter state).
#[test]
fn access_log_check_reads_decision_and_status_of_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let check = |lines: &[&str], t: &Traffic| {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        check_access_log(&path, t)
    };
    let allow = r#"{"http":{"response":{"status_code":200}},"rfma":{"decision":"allow","token":{"name":"alpha"}}}"#;
    let plain = r#"{"http":{"response":{"status_code":200}},"url":{"domain":"127.0.0.1"}}"#;
    let gone = r#"{"http":{"response":{"status_code":0}},"rfma":{"decision":"allow"}}"#;
    let d = traffic(STANDARD[3].kind, Mix::Allowed);
    let a = traffic(Kind::NoGate, Mix::Allowed);
    assert!(check(&[allow, allow, gone], &d).is_ok());
    assert!(check(&[plain], &a).is_ok());
    // A record without the decision for (d), or with one for (a), is wrong.
    assert!(check(&[allow, plain], &d).is_err());
    assert!(check(&[allow], &a).is_err());
    // A cut-off request of (a) has no decision either.
    let a_gone = r#"{"http":{"response":{"status_code":0}}}"#;
    assert!(check(&[plain, a_gone], &a).is_ok());
    let rbac = traffic(Kind::Rbac, Mix::Denied);
    assert!(
        check(&[plain], &rbac)
            .unwrap_err()
            .contains("expected None and 403")
    );
    assert!(check(&["not json"], &a).unwrap_err().contains("not JSON"));
    let leaked = format!(r#"{{"http":{{"response":{{"status_code":200}}}},"x":"{WRONG_TOKEN}"}}"#);
    assert!(
        check(&[&leaked], &a)
            .unwrap_err()
            .contains("a token appears")
    );
}

/// (p1)–(p3) log the same facts as the shipped format, each leaving out one more part:
/// the CEL values, then `omit_empty_values`, then the filter-state values; nothing else
/// changes.
#[test]
fn the_format_variants_each_leave_out_one_more_part_of_the_shipped_one() {
    let shipped = rig::log_format(AccessLog::Shipped);
    assert_eq!(shipped, envoy_harness::bootstrap::record_log_format());
    assert_eq!(shipped["omit_empty_values"], true);
    let text = |log| rig::log_format(log)["json_format"].to_string();
    assert!(text(AccessLog::Shipped).contains("%CEL("));
    let no_cel = rig::log_format(AccessLog::NoCel);
    assert_eq!(no_cel["omit_empty_values"], true);
    assert!(!text(AccessLog::NoCel).contains("%CEL("));
    assert!(text(AccessLog::NoCel).contains("%FILTER_STATE("));
    let f = &no_cel["json_format"];
    assert_eq!(f["event"]["outcome"], "%RESPONSE_CODE%");
    assert_eq!(f["http"]["version"], "%PROTOCOL%");
    assert_eq!(f["url"]["query"], "%REQ(:PATH)%");
    assert_eq!(f["url"]["path"], shipped["json_format"]["url"]["path"]);
    let keep_empty = rig::log_format(AccessLog::NoCelKeepEmpty);
    assert_eq!(keep_empty["json_format"], no_cel["json_format"]);
    assert!(keep_empty.get("omit_empty_values").is_none());
    let plain = rig::log_format(AccessLog::Plain);
    assert!(plain.get("omit_empty_values").is_none());
    assert!(!text(AccessLog::Plain).contains("%FILTER_STATE("));
    let p = &plain["json_format"];
    assert!(p["rfma"].get("decision").is_none() && p["url"].get("domain").is_none());
    assert_eq!(p["event"]["outcome"], "%RESPONSE_CODE%");
    let bootstrap = rig::bootstrap(&rig::Gate::None, AccessLog::Plain, Path::new("/x"));
    let format = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["access_log"][0]["typed_config"]["log_format"];
    assert_eq!(format, &plain);
    // The no-gate format variants are p1, p2, p3, in that order.
    let logs: Vec<AccessLog> = PROFILE
        .iter()
        .filter_map(|v| match v.kind {
            Kind::NoGateLog(log) => Some(log),
            _ => None,
        })
        .collect();
    assert_eq!(
        logs,
        [
            AccessLog::Plain,
            AccessLog::NoCel,
            AccessLog::NoCelKeepEmpty
        ]
    );
}

#[test]
fn cpu_time_of_this_process_is_readable() {
    let t = cpu_seconds(std::process::id()).unwrap();
    assert!(t >= 0.0);
}

#[test]
fn counters_check_rejects_a_wrong_class() {
    let t = traffic(Kind::Rbac, Mix::Denied);
    let mut c = Counters::default();
    c.0.insert("http.bench.downstream_rq_completed".into(), 10);
    c.0.insert("http.bench.downstream_rq_total".into(), 10);
    c.0.insert("http.bench.downstream_rq_4xx".into(), 9);
    c.0.insert("http.bench.downstream_rq_5xx".into(), 1);
    assert!(check_counters(&c, &t).is_err());
    c.0.insert("http.bench.downstream_rq_4xx".into(), 10);
    assert!(check_counters(&c, &t).is_ok());
}
