//! What the compiled module hands to Envoy's access log: the filter-state values that
//! `filter/access-log-format.json` prints (`wasm.rfma_decision`, `wasm.rfma_token`,
//! `wasm.rfma_reason`, `wasm.rfma_domain`), when they are set and when not, that nothing else
//! is read for the record, and that no token or digest is ever handed over.

use crate::common::{
    LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_SPIFFE, SLEEP_TOKEN, config, host, host_with, sha256_hex,
    statuses,
};
use rfma_wasm_host::{Response, Status};
use serde_json::json;
use std::collections::BTreeMap;

fn handed(r: &Response) -> BTreeMap<String, String> {
    r.handover()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn an_allowed_request_hands_over_the_decision_the_token_name_and_the_domain() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .authority("httpbin.demo:8000")
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    assert!(r.is_forwarded());
    assert_eq!(
        handed(&r),
        map(&[
            ("decision", "allow"),
            ("token", "legacy"),
            ("domain", "httpbin.demo")
        ])
    );
}

#[test]
fn a_principal_bound_token_is_named_too() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", SLEEP_TOKEN)
        .peer(SLEEP_SPIFFE)
        .send();
    assert_eq!(r.handover()["token"], "sleep");
    assert_eq!(r.decision().as_deref(), Some("allow"));
}

#[test]
fn each_deny_hands_over_its_reason_and_no_token_name() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let cases = [
        (plugin.request().send(), "missing_token"),
        (
            plugin.request().header("x-rfma-token", "bad").send(),
            "invalid_token",
        ),
        (
            plugin
                .request()
                .header("x-rfma-token", "a")
                .header("x-rfma-token", "b")
                .send(),
            "duplicate_token",
        ),
        (
            plugin
                .request()
                .header("x-rfma-token", SLEEP_TOKEN)
                .peer(OTHER_SPIFFE)
                .send(),
            "principal_mismatch",
        ),
    ];
    for (r, reason) in cases {
        assert!(r.local_reply().is_some(), "{reason}");
        let mut got = handed(&r);
        assert_eq!(
            got.remove("domain").as_deref(),
            Some("httpbin.demo.svc"),
            "{reason}"
        );
        assert_eq!(got, map(&[("decision", "deny"), ("reason", reason)]));
    }
}

#[test]
fn an_internal_error_is_handed_over_with_its_reason() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    plugin
        .host()
        .inject_fault("proxy_remove_header_map_value", Status::InternalFailure);
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert_eq!(r.status(), Some(500));
    assert_eq!(r.handover()["reason"], "internal_error");
    assert_eq!(r.decision().as_deref(), Some("deny"));
}

#[test]
fn a_bypassed_request_hands_over_bypass_only() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .path("/status/200")
        .authority("[::1]:8080")
        .send();
    assert_eq!(
        handed(&r),
        map(&[("decision", "bypass"), ("domain", "::1")])
    );
}

#[test]
fn the_domain_is_the_authority_without_its_port_and_absent_without_one() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for (authority, domain) in [
        ("example.com:8000", Some("example.com")),
        ("example.com", Some("example.com")),
        ("10.1.2.3:80", Some("10.1.2.3")),
        ("[2001:db8::1]:443", Some("2001:db8::1")),
        (":80", None),
        ("", None),
    ] {
        let r = plugin
            .request()
            .authority(authority)
            .header("x-rfma-token", LEGACY_TOKEN)
            .send();
        assert_eq!(
            r.handover().get("domain").map(String::as_str),
            domain,
            "{authority:?}"
        );
    }
}

#[test]
fn the_filter_reads_no_property_and_no_clock_for_the_record() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for r in [
        plugin.request().header("x-rfma-token", LEGACY_TOKEN).send(),
        plugin.request().path("/status/200").send(),
        plugin.request().send(),
    ] {
        let names: Vec<&str> = r.calls().iter().map(|c| c.name.as_str()).collect();
        assert!(
            !names.contains(&"proxy_get_property")
                && !names.contains(&"proxy_get_current_time_nanoseconds"),
            "{names:?}"
        );
        assert!(
            !r.callbacks().contains(&"proxy_on_log"),
            "{:?}",
            r.callbacks()
        );
    }
    // The gate reads the peer's URI SAN only for a principal-bound token.
    let r = plugin
        .request()
        .header("x-rfma-token", SLEEP_TOKEN)
        .peer(SLEEP_SPIFFE)
        .send();
    assert_eq!(statuses(&r, "proxy_get_property").len(), 1);
}

#[test]
fn a_refused_write_costs_the_record_a_field_never_the_request() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    plugin
        .host()
        .inject_fault("proxy_set_property", Status::InternalFailure);
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert!(r.is_forwarded());
    assert!(r.handover().is_empty());
    let r = plugin.request().send();
    assert_eq!(r.status(), Some(401));
}

#[test]
fn the_token_and_its_digest_are_never_handed_over() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let wrong = "wrong-but-secret-9876";
    let responses = [
        plugin.request().header("x-rfma-token", LEGACY_TOKEN).send(),
        plugin.request().header("x-rfma-token", wrong).send(),
        plugin
            .request()
            .header("x-rfma-token", wrong)
            .header("x-rfma-token", LEGACY_TOKEN)
            .send(),
        plugin
            .request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(OTHER_SPIFFE)
            .send(),
        plugin
            .request()
            .path("/status/1")
            .header("x-rfma-token", SLEEP_TOKEN)
            .send(),
        // A token in the authority is the client's own doing, but it is the only header value
        // the filter hands over: it goes through as the domain, and nowhere else.
        plugin.request().authority("example.com:8000").send(),
    ];
    for r in &responses {
        let all = format!("{:?} {:?}", r.handover(), r.logs());
        for secret in [LEGACY_TOKEN, wrong, SLEEP_TOKEN] {
            let digest = sha256_hex(secret);
            assert!(!all.contains(secret), "leaks {secret}: {all}");
            assert!(!all.contains(&digest[..16]), "leaks a digest: {all}");
        }
    }
}

#[test]
fn log_sink_none_hands_over_nothing() {
    let mut cfg = config();
    cfg["log"] = json!({"sink": "none"});
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    for r in [
        plugin.request().header("x-rfma-token", LEGACY_TOKEN).send(),
        plugin.request().send(),
    ] {
        assert!(r.handover().is_empty(), "{:?}", r.handover());
        assert!(statuses(&r, "proxy_set_property").is_empty());
    }
}

#[test]
fn log_allowed_false_hands_over_only_denies() {
    let mut cfg = config();
    cfg["log"] = json!({"allowed": false});
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    let allowed = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert!(allowed.handover().is_empty());
    let bypassed = plugin.request().path("/status/200").send();
    assert!(bypassed.handover().is_empty(), "bypass counts as allowed");
    assert_eq!(plugin.request().send().decision().as_deref(), Some("deny"));
}

#[test]
fn log_denied_false_hands_over_only_allowed_and_bypassed() {
    let mut cfg = config();
    cfg["log"] = json!({"denied": false});
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    let allowed = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert_eq!(allowed.decision().as_deref(), Some("allow"));
    let bypassed = plugin.request().path("/status/200").send();
    assert_eq!(bypassed.decision().as_deref(), Some("bypass"));
    assert!(plugin.request().send().handover().is_empty());
}
