//! Bypass rules on the compiled module: prefix and method matching, and paths
//! that could normalise elsewhere (dot-segments, encoded characters) never bypass.

use crate::common::{LEGACY_TOKEN, config, host, host_with};
use serde_json::json;

#[test]
fn a_matching_prefix_and_method_passes_without_a_token() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for (method, path) in [
        ("GET", "/status/200"),
        ("HEAD", "/status/418"),
        ("GET", "/status/"),
        ("GET", "/status/200?code=1"),
    ] {
        let r = plugin.request().method(method).path(path).send();
        assert!(
            r.local_reply().is_none(),
            "{method} {path} was denied: {r:?}"
        );
        assert!(r.is_forwarded(), "{method} {path}");
        assert_eq!(r.decision().as_deref(), Some("bypass"));
    }
}

#[test]
fn another_method_on_a_bypass_prefix_needs_a_token() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for method in ["POST", "PUT", "DELETE", "get"] {
        let r = plugin.request().method(method).path("/status/200").send();
        assert_eq!(r.status(), Some(401), "{method}");
        let r = plugin
            .request()
            .method(method)
            .path("/status/200")
            .header("x-rfma-token", LEGACY_TOKEN)
            .send();
        assert!(r.is_forwarded(), "{method} with a token");
        assert_eq!(r.decision().as_deref(), Some("allow"));
    }
}

#[test]
fn a_rule_without_methods_matches_every_method() {
    let mut cfg = config();
    cfg["bypass"] = json!([{"path_prefix": "/public"}]);
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    for method in ["GET", "POST", "DELETE", "PATCH"] {
        let r = plugin.request().method(method).path("/public/x").send();
        assert!(r.is_forwarded(), "{method}");
    }
    // A prefix is a plain string prefix of the path.
    assert!(plugin.request().path("/publication").send().is_forwarded());
    assert_eq!(plugin.request().path("/pub").send().status(), Some(401));
}

#[test]
fn paths_outside_the_prefix_need_a_token() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for path in [
        "/status",
        "/statuses/1",
        "/get",
        "/",
        "/STATUS/200",
        "/x/status/200",
    ] {
        let r = plugin.request().path(path).send();
        assert_eq!(r.status(), Some(401), "{path}");
    }
}

#[test]
fn the_query_is_not_part_of_the_bypass_match() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin.request().path("/get?next=/status/200").send();
    assert_eq!(r.status(), Some(401));
    let r = plugin.request().path("/status?/200").send();
    assert_eq!(r.status(), Some(401));
}

#[test]
fn dot_segments_and_encoded_characters_are_never_bypassed() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for path in [
        "/status/../anything",
        "/status/./200",
        "/status/..",
        "/status/..;/admin",
        "/status/.;x/200",
        "/status/%2e%2e/admin",
        "/status/%2E%2E/admin",
        "/status/%2e/200",
        "/status/%2fadmin",
        "/status/%2F..",
        "/status/%5c..",
        "/status/%5Cadmin",
        "/status/\\..\\admin",
    ] {
        let r = plugin.request().path(path).send();
        assert_eq!(r.status(), Some(401), "{path} was bypassed");
        assert!(!r.is_forwarded(), "{path}");
        // With a valid token the same path is an ordinary allowed request.
        let r = plugin
            .request()
            .path(path)
            .header("x-rfma-token", LEGACY_TOKEN)
            .send();
        assert!(r.is_forwarded(), "{path} with a token");
        assert_eq!(r.decision().as_deref(), Some("allow"), "{path}");
    }
}

#[test]
fn dots_inside_a_segment_are_not_dot_segments() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for path in [
        "/status/a..b",
        "/status/.well-known",
        "/status/v1.2/x",
        "/status/...",
        "/status/%41",
    ] {
        let r = plugin.request().path(path).send();
        assert!(r.is_forwarded(), "{path} should bypass");
    }
}

#[test]
fn bypass_wins_over_a_bad_or_duplicate_token() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .path("/status/200")
        .header("x-rfma-token", "wrong")
        .header("x-rfma-token", "twice")
        .send();
    assert!(r.is_forwarded());
    assert_eq!(r.decision().as_deref(), Some("bypass"));
}
