//! Every rule of the gate and every deny reason, on the compiled module.

use crate::common;

use crate::common::{
    LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_SPIFFE, SLEEP_TOKEN, config, host, host_with, sha256_hex,
};
use rfma_wasm_host::{Action, Response, Status};
use serde_json::json;

/// Checks a deny: the status, the JSON body, content-type, nothing forwarded.
fn assert_denied(r: &Response, status: u32, reason: &str) {
    let reply = r
        .local_reply()
        .unwrap_or_else(|| panic!("expected a {status} {reason} deny, got {r:?}"));
    assert_eq!(reply.status, status, "{r:?}");
    assert_eq!(
        reply.headers.get_all("content-type"),
        vec!["application/json"]
    );
    let body = reply.body_json();
    assert_eq!(body["error"], json!(reason), "{body}");
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["error", "request_id"]
    );
    assert_eq!(reply.details, format!("rfma_{reason}"));
    assert!(!r.is_forwarded(), "a denied request must not go upstream");
    assert_eq!(r.status(), Some(status));
    assert_eq!(r.request_action(), Some(Action::Pause(1)));
}

fn assert_allowed(r: &Response) {
    assert!(r.local_reply().is_none(), "unexpected deny: {r:?}");
    assert!(r.is_forwarded());
    assert_eq!(r.request_action(), Some(Action::Continue));
}

#[test]
fn a_listed_plain_text_token_is_allowed() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .path("/get")
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    assert_allowed(&r);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.handover()["token"], "legacy");
}

#[test]
fn a_digest_token_from_its_principal_is_allowed() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", SLEEP_TOKEN)
        .peer(SLEEP_SPIFFE)
        .send();
    assert_allowed(&r);
    assert_eq!(r.handover()["token"], "sleep");
}

#[test]
fn surrounding_whitespace_of_the_presented_token_is_trimmed() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", &format!(" \t{LEGACY_TOKEN}  "))
        .send();
    assert_allowed(&r);
}

#[test]
fn the_header_name_is_matched_case_insensitively() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("X-RFMA-Token", LEGACY_TOKEN)
        .send();
    assert_allowed(&r);
    // A custom header name, configured in upper case.
    let mut cfg = config();
    cfg["header"] = json!("X-Api-Key");
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    assert_allowed(&plugin.request().header("x-api-key", LEGACY_TOKEN).send());
    assert_denied(
        &plugin.request().header("x-rfma-token", LEGACY_TOKEN).send(),
        401,
        "missing_token",
    );
}

#[test]
fn no_token_header_is_401_missing_token() {
    let mut host = host();
    let r = host.plugin().unwrap().request().path("/get").send();
    assert_denied(&r, 401, "missing_token");
}

#[test]
fn an_empty_or_blank_token_is_401_missing_token() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for blank in ["", " ", "\t \t"] {
        let r = plugin.request().header("x-rfma-token", blank).send();
        assert_denied(&r, 401, "missing_token");
    }
}

#[test]
fn two_token_headers_are_400_duplicate_token_even_when_both_are_valid() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .header("X-Rfma-Token", LEGACY_TOKEN)
        .send();
    assert_denied(&r, 400, "duplicate_token");
    // The duplicate is found even when another header sits between them
    // (Envoy's single-value lookup would only have returned the first).
    let r = plugin
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .header("accept", "*/*")
        .header("x-rfma-token", "wrong")
        .send();
    assert_denied(&r, 400, "duplicate_token");
}

#[test]
fn an_unknown_token_is_403_invalid_token_including_near_misses() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let digest = sha256_hex(LEGACY_TOKEN);
    for wrong in [
        "test2",
        "Test1",
        "test1x",
        "tes",
        digest.as_str(),
        "t e s t 1",
    ] {
        let r = plugin.request().header("x-rfma-token", wrong).send();
        assert_denied(&r, 403, "invalid_token");
    }
}

#[test]
fn a_bound_token_from_another_or_no_peer_is_403_principal_mismatch() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .header("x-rfma-token", SLEEP_TOKEN)
        .peer(OTHER_SPIFFE)
        .send();
    assert_denied(&r, 403, "principal_mismatch");
    let r = plugin.request().header("x-rfma-token", SLEEP_TOKEN).send();
    assert_denied(&r, 403, "principal_mismatch");
    // An unbound token accepts any peer.
    let r = plugin
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .peer(OTHER_SPIFFE)
        .send();
    assert_allowed(&r);
}

#[test]
fn the_deny_body_carries_the_request_id_or_an_empty_one() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin.request().request_id("req-42").send();
    assert_eq!(
        r.local_reply().unwrap().body_json(),
        json!({"error": "missing_token", "request_id": "req-42"})
    );
    let r = plugin.request().no_request_id().send();
    assert_eq!(
        r.local_reply().unwrap().body_json(),
        json!({"error": "missing_token", "request_id": ""})
    );
    // A request ID with quotes still gives valid JSON.
    let r = plugin.request().request_id("a\"b\\c").send();
    assert_eq!(
        r.local_reply().unwrap().body_json()["request_id"],
        json!("a\"b\\c")
    );
}

#[test]
fn a_deny_never_carries_the_token_or_its_digest() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let presented = "wrong-secret-value-123";
    let digest = sha256_hex(presented);
    for r in [
        plugin.request().header("x-rfma-token", presented).send(),
        plugin
            .request()
            .header("x-rfma-token", presented)
            .header("x-rfma-token", presented)
            .send(),
        plugin
            .request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(OTHER_SPIFFE)
            .send(),
    ] {
        let reply = r.local_reply().unwrap();
        let text = format!("{:?} {}", reply.headers, reply.body_str());
        for secret in [
            presented,
            digest.as_str(),
            SLEEP_TOKEN,
            &sha256_hex(SLEEP_TOKEN),
        ] {
            assert!(!text.contains(secret), "deny leaks {secret}: {text}");
            assert!(
                !text.contains(&secret[..8]),
                "deny leaks part of {secret}: {text}"
            );
        }
    }
}

#[test]
fn the_token_header_is_stripped_before_going_upstream() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .header("accept", "application/json")
        .send();
    assert_allowed(&r);
    let fwd = r.forwarded_headers().unwrap();
    assert!(
        !fwd.contains("x-rfma-token"),
        "token leaked upstream: {fwd:?}"
    );
    assert_eq!(fwd.get("accept").as_deref(), Some("application/json"));
    assert_eq!(
        common::statuses(&r, "proxy_remove_header_map_value"),
        vec![common::OK]
    );
}

#[test]
fn strip_header_false_forwards_the_token() {
    let mut cfg = config();
    cfg["strip_header"] = json!(false);
    let mut host = host_with(&cfg);
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    assert_allowed(&r);
    assert_eq!(
        r.forwarded_headers()
            .unwrap()
            .get("x-rfma-token")
            .as_deref(),
        Some(LEGACY_TOKEN)
    );
}

#[test]
fn the_token_is_stripped_on_a_bypassed_request_too_when_present() {
    let mut host = host();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .path("/status/200")
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    assert!(r.is_forwarded());
    assert!(
        !r.forwarded_headers().unwrap().contains("x-rfma-token"),
        "{:?}",
        r.forwarded_headers()
    );
}

#[test]
fn a_header_map_the_proxy_cannot_supply_is_500_internal_error() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    plugin
        .host()
        .inject_fault("proxy_get_header_map_pairs", Status::InternalFailure);
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert_denied(&r, 500, "internal_error");
}

#[test]
fn a_token_that_cannot_be_stripped_is_500_and_never_forwarded() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    plugin
        .host()
        .inject_fault("proxy_remove_header_map_value", Status::BadArgument);
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert_denied(&r, 500, "internal_error");
}

#[test]
fn a_peer_that_cannot_be_looked_up_is_500_for_a_bound_token() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    plugin
        .host()
        .inject_fault("proxy_get_property", Status::InternalFailure);
    let r = plugin
        .request()
        .header("x-rfma-token", SLEEP_TOKEN)
        .peer(SLEEP_SPIFFE)
        .send();
    assert_denied(&r, 500, "internal_error");
    // An unbound token does not need the peer.
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert_allowed(&r);
}

#[test]
fn requests_are_independent_on_one_vm() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    assert_denied(&plugin.request().send(), 401, "missing_token");
    assert_allowed(&plugin.request().header("x-rfma-token", LEGACY_TOKEN).send());
    assert_denied(
        &plugin.request().header("x-rfma-token", "nope").send(),
        403,
        "invalid_token",
    );
    assert_allowed(&plugin.request().header("x-rfma-token", LEGACY_TOKEN).send());
}
