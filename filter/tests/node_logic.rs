//! The filter's pure logic (configuration, decision, record) compiled for
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
use rfma_filter::json::{self, Value};
use rfma_filter::record::AccessRecord;
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
            "log":{{"sink":"both","denied":false}}}}"#,
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
    )
}

fn config_error(text: &str) -> String {
    match config::parse(text.as_bytes()) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| match v {
        Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    })
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

#[wasm_bindgen_test]
fn configuration_is_parsed_with_its_defaults() {
    let p = policy();
    assert_eq!(p.header, "x-rfma-token");
    assert_eq!(p.tokens.len(), 2);
    assert_eq!(p.tokens[0].principals, vec![SLEEP_PEER.to_owned()]);
    assert_eq!(p.plain_text_tokens, 1);
    assert!(p.strip_header);
    assert_eq!(p.log.sink, Sink::Both);
    assert!(p.log.allowed && !p.log.denied);
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

#[wasm_bindgen_test]
fn the_record_has_every_field_with_its_type() {
    let record = AccessRecord {
        timestamp_ns: 1_764_104_066_123_456_789,
        decision: Decision::Allow { token: 0 },
        token_name: Some("sleep"),
        method: b"GET",
        path: b"/get",
        query: Some(b"a=1"),
        status: Some(200),
        duration_ns: Some(1_234_567),
        request_id: Some(b"req-1"),
        protocol: Some(b"HTTP/2"),
        authority: Some(b"httpbin.demo:8000"),
        source_address: Some(b"10.1.2.3:45678"),
        user_agent: Some(b"curl/8.5.0"),
        traceparent: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        b3_trace_id: None,
        principal: Some(SLEEP_PEER.as_bytes()),
    };
    let mut bytes = Vec::new();
    record.write(&mut bytes);
    let line = String::from_utf8(bytes).expect("a record is UTF-8");
    assert!(!line.contains('\n'));
    let v = json::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(
        get(&v, "@timestamp"),
        Some(&string("2025-11-25T20:54:26.123Z"))
    );
    assert_eq!(get(&v, "event.kind"), Some(&string("event")));
    assert_eq!(
        get(&v, "event.category"),
        Some(&Value::Array(vec![string("web")]))
    );
    assert_eq!(
        get(&v, "event.type"),
        Some(&Value::Array(vec![string("access"), string("allowed")]))
    );
    assert_eq!(get(&v, "event.action"), Some(&string("rfma-token-gate")));
    assert_eq!(get(&v, "event.outcome"), Some(&string("success")));
    assert_eq!(
        get(&v, "event.duration"),
        Some(&Value::Number("1234567".into()))
    );
    assert_eq!(get(&v, "http.request.method"), Some(&string("GET")));
    assert_eq!(get(&v, "http.request.id"), Some(&string("req-1")));
    assert_eq!(
        get(&v, "http.response.status_code"),
        Some(&Value::Number("200".into()))
    );
    assert_eq!(get(&v, "http.version"), Some(&string("2")));
    assert_eq!(get(&v, "url.path"), Some(&string("/get")));
    assert_eq!(get(&v, "url.query"), Some(&string("a=1")));
    assert_eq!(get(&v, "url.domain"), Some(&string("httpbin.demo")));
    assert_eq!(get(&v, "source.ip"), Some(&string("10.1.2.3")));
    assert_eq!(get(&v, "source.port"), Some(&Value::Number("45678".into())));
    assert_eq!(get(&v, "user_agent.original"), Some(&string("curl/8.5.0")));
    assert_eq!(
        get(&v, "trace.id"),
        Some(&string("4bf92f3577b34da6a3ce929d0e0e4736"))
    );
    assert_eq!(get(&v, "rfma.decision"), Some(&string("allow")));
    assert_eq!(get(&v, "rfma.token.name"), Some(&string("sleep")));
    assert_eq!(get(&v, "rfma.principal"), Some(&string(SLEEP_PEER)));
    assert_eq!(get(&v, "rfma.reason"), None);
}

#[wasm_bindgen_test]
fn a_deny_record_has_the_reason_and_leaves_unknown_fields_out() {
    let record = AccessRecord {
        timestamp_ns: 0,
        decision: Decision::Deny(Reason::InvalidToken),
        token_name: None,
        method: b"POST",
        path: b"/a\"b\\c",
        query: None,
        status: None,
        duration_ns: None,
        request_id: Some(b"\xff\x00\"x"),
        protocol: None,
        authority: None,
        source_address: None,
        user_agent: None,
        traceparent: None,
        b3_trace_id: None,
        principal: None,
    };
    let mut bytes = Vec::new();
    record.write(&mut bytes);
    let line = String::from_utf8(bytes).expect("a record is UTF-8");
    assert!(!line.contains("null"), "{line}");
    let v = json::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(get(&v, "rfma.reason"), Some(&string("invalid_token")));
    assert_eq!(get(&v, "event.reason"), Some(&string("invalid_token")));
    assert_eq!(get(&v, "event.outcome"), Some(&string("failure")));
    assert_eq!(get(&v, "url.path"), Some(&string("/a\"b\\c")));
    for absent in [
        "http.response",
        "http.version",
        "url.query",
        "source",
        "trace",
        "rfma.token",
    ] {
        assert_eq!(get(&v, absent), None, "{absent} in {line}");
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
