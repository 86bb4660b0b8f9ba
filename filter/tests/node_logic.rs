//! The filter's pure logic (configuration, decision, access-log hand-over, deny body) compiled for
//! `wasm32-unknown-unknown` and run in Node.js, whose V8 is the engine Istio's
//! Envoy runs the module in. `make test-wasm-bindgen` (part of `make test`).
#![cfg(target_arch = "wasm32")]
// Tests assert by panicking; the no-panic rule is for the filter itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rfma_filter::config::{self, Sink};
use rfma_filter::digest;
use rfma_filter::gate::{self, Decision, Reason, Request};
use rfma_filter::handover;
use rfma_filter::response;
use wasm_bindgen_test::wasm_bindgen_test;

const SLEEP_PEER: &str = "spiffe://cluster.local/ns/demo/sa/sleep";

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn policy() -> config::Policy {
    let text = format!(
        r#"{{"header":"X-Rfma-Token",
            "tokens":[{{"name":"sleep","sha256":"{}","principals":["{SLEEP_PEER}"]}},
                      {{"name":"legacy","value":"test1"}}],
            "bypass":[{{"path_prefix":"/status/","methods":["GET","HEAD"]}}],
            "log":{{"sink":"filter_state","denied":false}}}}"#,
        hex(&digest::sha256(b"sleep-token"))
    );
    config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn decide(method: &str, path: &str, tokens: &[&str], peer: Option<&str>) -> Decision {
    gate::decide(
        &policy(),
        Request {
            method: method.as_bytes(),
            path: path.as_bytes(),
        },
        tokens.iter().map(|t| t.as_bytes()),
        || Ok::<_, ()>(peer.map(str::to_owned)),
        || panic!("no token of this policy has a validity window: the clock is never read"),
    )
    .decision
}

fn config_error(text: &str) -> String {
    match config::parse(text.as_bytes()) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

#[wasm_bindgen_test]
fn configuration_is_parsed_with_its_defaults() {
    let p = policy();
    assert_eq!(p.header, "x-rfma-token");
    assert_eq!(p.tokens.len(), 2);
    assert_eq!(p.tokens[0].principals, vec![SLEEP_PEER.to_owned()]);
    assert_eq!(p.plain_text_tokens, 1);
    assert!(p.strip_header);
    assert_eq!(p.log.sink, Sink::FilterState);
    assert!(p.log.allowed && !p.log.denied);
    assert!(p.records(true) && !p.records(false));
    let minimal = config::parse(br#"{"tokens":[{"name":"a","value":"x"}]}"#).unwrap();
    assert_eq!(minimal.header, config::DEFAULT_HEADER);
    assert_eq!(minimal.log.sink, Sink::FilterState);
    assert!(minimal.bypass.is_empty());
}

#[wasm_bindgen_test]
fn configuration_errors_name_the_field() {
    let d = hex(&digest::sha256(b"x"));
    for (text, field) in [
        ("", "configuration"),
        ("{", "configuration"),
        ("{}", "tokens"),
        (r#"{"tokens":[]}"#, "tokens"),
        (
            r#"{"tokens":[{"name":"a","value":"x"}],"extra":1}"#,
            "extra",
        ),
        (r#"{"tokens":[{"name":"A","value":"x"}]}"#, "tokens[0].name"),
        (
            r#"{"tokens":[{"name":"a","value":"x"},{"name":"a","value":"y"}]}"#,
            "tokens[1].name",
        ),
        (
            &format!(r#"{{"tokens":[{{"name":"a","value":"x","sha256":"{d}"}}]}}"#),
            "tokens[0]",
        ),
        (r#"{"tokens":[{"name":"a"}]}"#, "tokens[0]"),
        (r#"{"tokens":[{"name":"a","value":""}]}"#, "tokens[0].value"),
        (
            r#"{"tokens":[{"name":"a","sha256":"abc"}]}"#,
            "tokens[0].sha256",
        ),
        (
            &format!(r#"{{"tokens":[{{"name":"a","value":"x"}},{{"name":"b","sha256":"{d}"}}]}}"#),
            "tokens[1].sha256",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x","principals":["sa/sleep"]}]}"#,
            "tokens[0].principals[0]",
        ),
        (
            r#"{"header":"bad header","tokens":[{"name":"a","value":"x"}]}"#,
            "header",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x"}],"bypass":[{"path_prefix":"x"}]}"#,
            "bypass[0].path_prefix",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x"}],"bypass":[{"path_prefix":"/x","methods":["get"]}]}"#,
            "bypass[0].methods[0]",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x"}],"log":{"sink":"file"}}"#,
            "log.sink",
        ),
    ] {
        let message = config_error(text);
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{text} → {message}"
        );
    }
    // The sinks that made the filter write its own line are gone, and the error says why.
    for sink in ["proxy_log", "both"] {
        assert_eq!(
            config_error(&format!(
                r#"{{"tokens":[{{"name":"a","value":"x"}}],"log":{{"sink":"{sink}"}}}}"#
            )),
            "log.sink: the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)"
        );
    }
    let none =
        config::parse(br#"{"tokens":[{"name":"a","value":"x"}],"log":{"sink":"none"}}"#).unwrap();
    assert!(!none.records(true) && !none.records(false));
}

#[wasm_bindgen_test]
fn every_rule_of_the_decision() {
    assert_eq!(decide("GET", "/status/200", &[], None), Decision::Bypass);
    assert_eq!(
        decide("GET", "/get", &[], None),
        Decision::Deny(Reason::MissingToken)
    );
    assert_eq!(
        decide("GET", "/get", &["  "], None),
        Decision::Deny(Reason::MissingToken)
    );
    assert_eq!(
        decide("GET", "/get", &["test1", "test1"], None),
        Decision::Deny(Reason::DuplicateToken)
    );
    assert_eq!(
        decide("GET", "/get", &["test2"], None),
        Decision::Deny(Reason::InvalidToken)
    );
    assert_eq!(
        decide("GET", "/get", &["sleep-token"], None),
        Decision::Deny(Reason::PrincipalMismatch)
    );
    assert_eq!(
        decide(
            "GET",
            "/get",
            &["sleep-token"],
            Some("spiffe://cluster.local/ns/x/sa/y")
        ),
        Decision::Deny(Reason::PrincipalMismatch)
    );
    assert_eq!(
        decide("GET", "/get", &["sleep-token"], Some(SLEEP_PEER)),
        Decision::Allow { token: 0 }
    );
    assert_eq!(
        decide("POST", "/get", &[" test1 "], None),
        Decision::Allow { token: 1 }
    );
    let statuses: Vec<(&str, u32)> = Reason::ALL.iter().map(|r| (r.code(), r.status())).collect();
    for expected in [
        ("missing_token", 401),
        ("duplicate_token", 400),
        ("invalid_token", 403),
        ("principal_mismatch", 403),
        ("internal_error", 500),
    ] {
        assert!(statuses.contains(&expected), "{statuses:?}");
    }
}

#[wasm_bindgen_test]
fn dot_segments_and_encoded_characters_never_bypass() {
    for path in [
        "/status/../admin",
        "/status/./x",
        "/status/%2e%2e/a",
        "/status/%2Fa",
        "/status/%5c",
        "/status/\\a",
    ] {
        assert!(!gate::safe_to_bypass(path.as_bytes()), "{path}");
        assert_eq!(
            decide("GET", path, &[], None),
            Decision::Deny(Reason::MissingToken),
            "{path}"
        );
    }
    assert_eq!(
        decide("POST", "/status/200", &[], None),
        Decision::Deny(Reason::MissingToken)
    );
    assert_eq!(gate::split_path(b"/a?b=1"), (&b"/a"[..], Some(&b"b=1"[..])));
}

/// What `handover::values` returned, as text pairs in order.
fn handed(values: [Option<(&'static [u8], &[u8])>; 4]) -> Vec<(String, String)> {
    values
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[wasm_bindgen_test]
fn each_decision_hands_over_its_values_for_the_access_log() {
    let keys: Vec<&[u8]> = handover::KEYS.to_vec();
    assert_eq!(
        keys,
        [
            &b"rfma_decision"[..],
            b"rfma_token",
            b"rfma_reason",
            b"rfma_domain"
        ]
    );
    assert_eq!(
        handed(handover::values(
            Decision::Allow { token: 0 },
            Some("sleep"),
            Some(b"httpbin.demo:8000")
        )),
        pairs(&[
            ("rfma_decision", "allow"),
            ("rfma_token", "sleep"),
            ("rfma_domain", "httpbin.demo")
        ])
    );
    assert_eq!(
        handed(handover::values(Decision::Bypass, None, Some(b"httpbin"))),
        pairs(&[("rfma_decision", "bypass"), ("rfma_domain", "httpbin")])
    );
    // A bypass has no token name to hand over, even when one is given.
    assert_eq!(
        handed(handover::values(Decision::Bypass, Some("sleep"), None)),
        pairs(&[("rfma_decision", "bypass")])
    );
    for reason in Reason::ALL {
        // A token used outside its validity window is named: its client must be re-keyed.
        let names_token = matches!(reason, Reason::ExpiredToken | Reason::TokenNotYetValid);
        let mut want = vec![("rfma_decision", "deny")];
        if names_token {
            want.push(("rfma_token", "sleep"));
        }
        want.extend([("rfma_reason", reason.code()), ("rfma_domain", "::1")]);
        assert_eq!(
            handed(handover::values(
                Decision::Deny(reason),
                Some("sleep"),
                Some(b"[::1]:80")
            )),
            pairs(&want)
        );
    }
}

#[wasm_bindgen_test]
fn validity_windows_are_read_and_held_to_the_nanosecond() {
    let p = config::parse(
        br#"{"tokens":[{"name":"w","value":"w","not_before":"2026-03-01T02:00:00+02:00","not_after":"2026-03-31T23:59:59.999999999Z"}]}"#,
    )
    .unwrap();
    let first = 1_772_323_200_000_000_000u64;
    let last = 1_775_001_599_999_999_999u64;
    assert_eq!(p.tokens[0].not_before, Some(first));
    assert_eq!(p.tokens[0].not_after, Some(last));
    let at = |now: u64| {
        gate::decide(
            &p,
            Request {
                method: b"GET",
                path: b"/get",
            },
            [b"w".as_slice()],
            || Ok::<_, ()>(None),
            || Ok(now),
        )
    };
    assert_eq!(
        at(first - 1).decision,
        Decision::Deny(Reason::TokenNotYetValid)
    );
    assert_eq!(at(first).decision, Decision::Allow { token: 0 });
    assert_eq!(at(last).decision, Decision::Allow { token: 0 });
    assert_eq!(at(last + 1).decision, Decision::Deny(Reason::ExpiredToken));
    assert_eq!(at(last + 1).token, Some(0));
    assert!(
        config_error(r#"{"tokens":[{"name":"w","value":"w","not_after":"2026-02-29T00:00:00Z"}]}"#)
            .starts_with("tokens[0].not_after: ")
    );
}

#[wasm_bindgen_test]
fn the_domain_is_the_authority_without_its_port() {
    let cases: [(&[u8], &[u8]); 8] = [
        (b"example.com:8000", b"example.com"),
        (b"example.com", b"example.com"),
        (b"[2001:db8::1]:8080", b"2001:db8::1"),
        (b"[::1]", b"::1"),
        (b"[broken", b"[broken"),
        (b"10.0.0.1:443", b"10.0.0.1"),
        (
            b"b\xc3\xbccher.example:443",
            "b\u{fc}cher.example".as_bytes(),
        ),
        (b":80", b""),
    ];
    for (authority, domain) in cases {
        assert_eq!(
            handover::host_without_port(authority),
            domain,
            "{authority:?}"
        );
    }
    // Nothing left of the authority: no domain at all, rather than an empty one.
    for authority in [&b":80"[..], b"", b"[]:1"] {
        assert_eq!(
            handed(handover::values(Decision::Bypass, None, Some(authority))),
            pairs(&[("rfma_decision", "bypass")]),
            "{authority:?}"
        );
    }
}

#[wasm_bindgen_test]
fn deny_bodies_and_counters() {
    assert_eq!(
        response::deny_body(Reason::MissingToken, Some(b"r-1")),
        br#"{"error":"missing_token","request_id":"r-1"}"#
    );
    assert_eq!(
        response::deny_body(Reason::DuplicateToken, None),
        br#"{"error":"duplicate_token","request_id":""}"#
    );
    // Whatever the client sent as its request ID, the body is valid JSON with exactly the
    // two fields, the ID read back as sent (invalid UTF-8 as U+FFFD).
    for (id, read) in [
        (&b"plain-id"[..], "plain-id"),
        (br#"a"b\c"#, r#"a"b\c"#),
        (b"tab\tnl\n\x00\x7f", "tab\tnl\n\u{0}\u{7f}"),
        (br#"","token":"x"#, r#"","token":"x"#),
        (b"caf\xc3\xa9", "caf\u{e9}"),
        (b"bad\xff", "bad\u{fffd}"),
    ] {
        let body = response::deny_body(Reason::InvalidToken, Some(id));
        let v: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        assert_eq!(
            v,
            serde_json::json!({"error": "invalid_token", "request_id": read}),
            "{id:?}"
        );
    }
    let mut out = b"[".to_vec();
    response::push_string(&mut out, b"q\"\\\x01\xe2\x80\xa8");
    assert_eq!(out, "[\"q\\\"\\\\\\u0001\u{2028}\"".as_bytes());
    assert_eq!(
        response::COUNTERS[response::counter_index(Decision::Bypass)],
        "rfma_bypassed_total"
    );
    assert_eq!(
        response::COUNTERS[response::counter_index(Decision::Deny(Reason::PrincipalMismatch))],
        "rfma_denied_principal_mismatch_total"
    );
}

#[wasm_bindgen_test]
fn sha256_matches_the_known_vector() {
    assert_eq!(
        hex(&digest::sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let list = [digest::sha256(b"a"), digest::sha256(b"b")];
    assert_eq!(
        digest::find_constant_time(&list, &digest::sha256(b"b")),
        Some(1)
    );
    assert_eq!(
        digest::find_constant_time(&list, &digest::sha256(b"c")),
        None
    );
}
