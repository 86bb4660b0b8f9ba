//! The ECS access record on the compiled module: every field, its type, when
//! it is left out, escaping, secrecy, and the sinks.

mod common;

use common::{
    LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_SPIFFE, SLEEP_TOKEN, config, field, host, host_with,
    sha256_hex,
};
use rfma_tests::{ACCESS_RECORD_KEY, LogLevel, Response, Status};
use serde_json::{Value, json};

fn record_of(r: &Response) -> Value {
    let raw = r.record().expect("a record");
    assert!(!raw.contains('\n'), "the record must be one line: {raw:?}");
    r.record_json()
}

fn nulls(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(path.to_string()),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| nulls(v, &format!("{path}.{k}"), out)),
        Value::Array(a) => a.iter().for_each(|v| nulls(v, path, out)),
        _ => {}
    }
}

#[test]
fn timestamp_is_rfc3339_utc_milliseconds_of_when_the_headers_arrived() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    // 2024-02-29T23:59:59.999999999Z, with a 5 s response: the time is still the request's.
    let r = plugin
        .request()
        .at_ns(1_709_251_199_999_999_999)
        .latency_ns(5_000_000_000)
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    assert_eq!(
        record_of(&r)["@timestamp"],
        json!("2024-02-29T23:59:59.999Z")
    );
    let r = plugin.request().at_ns(1_000_000).send();
    assert_eq!(
        record_of(&r)["@timestamp"],
        json!("1970-01-01T00:00:00.001Z")
    );
}

#[test]
fn event_fields_of_an_allowed_request() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    let v = record_of(&r);
    assert_eq!(v["event"]["kind"], json!("event"));
    assert_eq!(v["event"]["category"], json!(["web"]));
    assert_eq!(v["event"]["type"], json!(["access", "allowed"]));
    assert_eq!(v["event"]["action"], json!("rfma-token-gate"));
    assert_eq!(v["event"]["outcome"], json!("success"));
    assert_eq!(v["rfma"]["decision"], json!("allow"));
    assert_eq!(v["rfma"]["token"]["name"], json!("legacy"));
    assert!(field(&v, "event.reason").is_none());
    assert!(field(&v, "rfma.reason").is_none());
}

#[test]
fn event_fields_of_a_denied_request_carry_the_reason() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for (request, reason) in [
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
    ] {
        let v = record_of(&request);
        assert_eq!(v["event"]["type"], json!(["access", "denied"]), "{reason}");
        assert_eq!(v["event"]["outcome"], json!("failure"));
        assert_eq!(v["event"]["reason"], json!(reason));
        assert_eq!(v["rfma"]["decision"], json!("deny"));
        assert_eq!(v["rfma"]["reason"], json!(reason));
        assert!(field(&v, "rfma.token").is_none(), "{v}");
    }
}

#[test]
fn internal_error_denies_are_recorded_with_their_reason() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    plugin
        .host()
        .inject_fault("proxy_remove_header_map_value", Status::InternalFailure);
    let v = record_of(&plugin.request().header("x-rfma-token", LEGACY_TOKEN).send());
    assert_eq!(v["rfma"]["reason"], json!("internal_error"));
    assert_eq!(v["http"]["response"]["status_code"], json!(500));
}

#[test]
fn a_bypassed_request_is_recorded_as_allowed_with_decision_bypass() {
    let mut host = host();
    let r = host.plugin().unwrap().request().path("/status/200").send();
    let v = record_of(&r);
    assert_eq!(v["rfma"]["decision"], json!("bypass"));
    assert_eq!(v["event"]["type"], json!(["access", "allowed"]));
    assert_eq!(v["event"]["outcome"], json!("success"));
    assert!(field(&v, "rfma.token").is_none());
}

#[test]
fn method_path_and_query() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .method("PATCH")
        .path("/anything/x?a=1&b=%22q%22")
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    let v = record_of(&r);
    assert_eq!(v["http"]["request"]["method"], json!("PATCH"));
    assert_eq!(v["url"]["path"], json!("/anything/x"));
    assert_eq!(v["url"]["query"], json!("a=1&b=%22q%22"));
    let v = record_of(&plugin.request().path("/get").send());
    assert_eq!(v["url"]["path"], json!("/get"));
    assert!(field(&v, "url.query").is_none());
}

#[test]
fn status_code_is_the_integer_status_the_client_got() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .upstream_status(503)
        .send();
    assert_eq!(record_of(&r)["http"]["response"]["status_code"], json!(503));
    let r = plugin.request().send();
    assert_eq!(record_of(&r)["http"]["response"]["status_code"], json!(401));
}

#[test]
fn status_code_is_left_out_when_no_response_was_sent() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .client_resets()
        .send();
    assert_eq!(r.status(), None);
    let v = record_of(&r);
    assert!(field(&v, "http.response").is_none(), "{v}");
    assert_eq!(v["rfma"]["decision"], json!("allow"));
}

#[test]
fn duration_is_integer_nanoseconds_from_headers_to_the_end() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .latency_ns(12_345_678)
        .send();
    assert_eq!(record_of(&r)["event"]["duration"], json!(12_345_678));
}

#[test]
fn request_id_when_present() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let v = record_of(&plugin.request().request_id("4f1c-req").send());
    assert_eq!(v["http"]["request"]["id"], json!("4f1c-req"));
    let v = record_of(&plugin.request().no_request_id().send());
    assert!(field(&v, "http.request.id").is_none(), "{v}");
}

#[test]
fn http_version_from_the_protocol() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for (protocol, version) in [
        ("HTTP/1.0", "1.0"),
        ("HTTP/1.1", "1.1"),
        ("HTTP/2", "2"),
        ("HTTP/3", "3"),
    ] {
        let v = record_of(&plugin.request().protocol(protocol).send());
        assert_eq!(v["http"]["version"], json!(version), "{protocol}");
    }
    let v = record_of(&plugin.request().without_property("request.protocol").send());
    assert!(field(&v, "http.version").is_none(), "{v}");
}

#[test]
fn domain_is_the_authority_without_port() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for (authority, domain) in [
        ("httpbin.demo.svc:8000", "httpbin.demo.svc"),
        ("example.com", "example.com"),
        ("[2001:db8::1]:8443", "2001:db8::1"),
    ] {
        let v = record_of(&plugin.request().authority(authority).send());
        assert_eq!(v["url"]["domain"], json!(domain), "{authority}");
    }
}

#[test]
fn source_ip_and_integer_port() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let v = record_of(&plugin.request().source("10.1.2.3:45678").send());
    assert_eq!(v["source"]["ip"], json!("10.1.2.3"));
    assert_eq!(v["source"]["port"], json!(45678));
    let v = record_of(&plugin.request().source("[fd00::7]:8080").send());
    assert_eq!(v["source"]["ip"], json!("fd00::7"));
    assert_eq!(v["source"]["port"], json!(8080));
    let v = record_of(&plugin.request().without_property("source.address").send());
    assert!(field(&v, "source").is_none(), "{v}");
}

#[test]
fn user_agent_when_present() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let v = record_of(&plugin.request().header("user-agent", "curl/8.5.0").send());
    assert_eq!(v["user_agent"]["original"], json!("curl/8.5.0"));
    let v = record_of(&plugin.request().send());
    assert!(field(&v, "user_agent").is_none());
}

#[test]
fn trace_id_from_traceparent_else_b3() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let b3 = "80f198ee56343ba864fe8b2a57d3eff7";
    let v = record_of(
        &plugin
            .request()
            .header("traceparent", w3c)
            .header("x-b3-traceid", b3)
            .send(),
    );
    assert_eq!(v["trace"]["id"], json!("4bf92f3577b34da6a3ce929d0e0e4736"));
    let v = record_of(&plugin.request().header("x-b3-traceid", b3).send());
    assert_eq!(v["trace"]["id"], json!(b3));
    let v = record_of(&plugin.request().send());
    assert!(field(&v, "trace").is_none());
}

#[test]
fn principal_when_the_peer_is_known() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let v = record_of(
        &plugin
            .request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(SLEEP_SPIFFE)
            .send(),
    );
    assert_eq!(v["rfma"]["principal"], json!(SLEEP_SPIFFE));
    // Known also for unbound tokens and denies.
    let v = record_of(&plugin.request().peer(OTHER_SPIFFE).send());
    assert_eq!(v["rfma"]["principal"], json!(OTHER_SPIFFE));
    let v = record_of(&plugin.request().header("x-rfma-token", LEGACY_TOKEN).send());
    assert!(field(&v, "rfma.principal").is_none(), "no mTLS peer: {v}");
}

#[test]
fn absent_fields_are_left_out_never_null() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .no_request_id()
        .without_property("request.protocol")
        .without_property("source.address")
        .client_resets()
        .send();
    let v = record_of(&r);
    let mut found = Vec::new();
    nulls(&v, "", &mut found);
    assert!(found.is_empty(), "null fields {found:?} in {v}");
    // Only the always-present fields remain.
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["@timestamp", "event", "http", "rfma", "url"], "{v}");
}

#[test]
fn hostile_header_values_still_give_valid_one_line_json() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let ua = "evil\" \\ agent\n\t\u{1}\u{7f} é ✓";
    let r = plugin
        .request()
        .path("/a\"b\\c?q=\"\\")
        .header("user-agent", ua)
        .header_bytes("x-request-id", b"id-\xff\xfe-\x00-end")
        .send();
    let v = record_of(&r);
    assert_eq!(v["user_agent"]["original"], json!(ua));
    assert_eq!(v["url"]["path"], json!("/a\"b\\c"));
    assert_eq!(v["url"]["query"], json!("q=\"\\"));
    let id = v["http"]["request"]["id"].as_str().unwrap();
    assert!(id.starts_with("id-") && id.ends_with("-end"), "{id:?}");
}

#[test]
fn the_token_and_its_digest_never_appear_in_a_record() {
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
    ];
    for r in &responses {
        let raw = r.record().unwrap();
        for secret in [LEGACY_TOKEN, wrong, SLEEP_TOKEN] {
            let digest = sha256_hex(secret);
            assert!(!raw.contains(secret), "record leaks {secret}: {raw}");
            assert!(!raw.contains(&digest[..16]), "record leaks a digest: {raw}");
        }
        let logs = format!("{:?}", r.logs());
        assert!(
            !logs.contains(wrong) && !logs.contains(SLEEP_TOKEN),
            "{logs}"
        );
    }
}

#[test]
fn an_unavailable_property_in_on_log_makes_its_field_unknown() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    plugin
        .host()
        .inject_fault("proxy_get_property", Status::InternalFailure);
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert!(r.is_forwarded());
    let v = record_of(&r);
    assert!(field(&v, "http.response").is_none(), "{v}");
    assert!(field(&v, "http.version").is_none(), "{v}");
    assert!(field(&v, "source").is_none(), "{v}");
    assert_eq!(v["rfma"]["decision"], json!("allow"));
    assert_eq!(v["url"]["path"], json!("/"));
}

fn sink_config(sink: &str) -> Value {
    let mut cfg = config();
    cfg["log"] = json!({"sink": sink});
    cfg
}

#[test]
fn sink_filter_state_sets_wasm_rfma_access_log_only() {
    let mut host = host_with(&sink_config("filter_state"));
    let r = host.plugin().unwrap().request().send();
    assert!(r.filter_state(ACCESS_RECORD_KEY).is_some());
    assert!(r.logs_at(LogLevel::Info).is_empty(), "{:?}", r.logs());
}

#[test]
fn sink_proxy_log_logs_the_record_at_info_as_the_whole_message() {
    let mut host = host_with(&sink_config("proxy_log"));
    let r = host.plugin().unwrap().request().send();
    assert!(r.record().is_none());
    let info = r.logs_at(LogLevel::Info);
    assert_eq!(info.len(), 1, "{info:?}");
    let v: Value = serde_json::from_str(info[0]).unwrap();
    assert_eq!(v["rfma"]["reason"], json!("missing_token"));
}

#[test]
fn sink_both_and_none() {
    let mut host = host_with(&sink_config("both"));
    let r = host.plugin().unwrap().request().send();
    let fs = r.record().unwrap();
    assert_eq!(r.logs_at(LogLevel::Info), vec![fs.as_str()]);
    let mut host = host_with(&sink_config("none"));
    let r = host.plugin().unwrap().request().send();
    assert!(r.record().is_none());
    assert!(r.logs_at(LogLevel::Info).is_empty());
}

#[test]
fn log_allowed_false_records_only_denies() {
    let mut cfg = config();
    cfg["log"] = json!({"allowed": false});
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    assert!(
        plugin
            .request()
            .header("x-rfma-token", LEGACY_TOKEN)
            .send()
            .record()
            .is_none()
    );
    assert!(
        plugin
            .request()
            .path("/status/200")
            .send()
            .record()
            .is_none(),
        "bypass counts as allowed"
    );
    assert!(plugin.request().send().record().is_some());
}

#[test]
fn log_denied_false_records_only_allowed_and_bypassed() {
    let mut cfg = config();
    cfg["log"] = json!({"denied": false});
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    assert!(
        plugin
            .request()
            .header("x-rfma-token", LEGACY_TOKEN)
            .send()
            .record()
            .is_some()
    );
    assert!(
        plugin
            .request()
            .path("/status/200")
            .send()
            .record()
            .is_some()
    );
    assert!(plugin.request().send().record().is_none());
}
