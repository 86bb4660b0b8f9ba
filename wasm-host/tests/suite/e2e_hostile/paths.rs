//! Paths against the `/status/` bypass rule: dot segments, encodings, case, queries and
//! fragments as Envoy passes them on, and with Envoy normalising them first.

use super::support::*;
use crate::e2e_support::*;
use serde_json::json;

/// Paths and what the filter decides with a `/status/` bypass rule (GET), as Envoy passes
/// them on with its defaults: `(target, decision, url.path in the record)`.
const DEFAULT_PATHS: &[(&str, &str, &str)] = &[
    ("/status/200", "bypass", "/status/200"),
    ("/status/../anything", "deny", "/status/../anything"),
    ("/status/./200", "deny", "/status/./200"),
    ("/status/200/..", "deny", "/status/200/.."),
    ("/STATUS/200", "deny", "/STATUS/200"),
    ("/Status/200", "deny", "/Status/200"),
    ("/status/%2e%2e/anything", "deny", "/status/%2e%2e/anything"),
    ("/status/%2E%2E/anything", "deny", "/status/%2E%2E/anything"),
    ("/status/.%2e/anything", "deny", "/status/.%2e/anything"),
    ("/status/..%2Fanything", "deny", "/status/..%2Fanything"),
    ("/status%2F200", "deny", "/status%2F200"),
    ("/status/..%5Canything", "deny", "/status/..%5Canything"),
    ("/status/..\\anything", "deny", "/status/..\\anything"),
    ("/status/..;/anything", "deny", "/status/..;/anything"),
    ("/%73tatus/200", "deny", "/%73tatus/200"),
    ("//status/200", "deny", "//status/200"),
    ("/anything?/status/200", "deny", "/anything"),
    ("/anything;/status/200", "deny", "/anything;/status/200"),
    // The query is not part of the path: dots in it change nothing.
    ("/status/200?next=/../anything", "bypass", "/status/200"),
    // Absolute form: Envoy takes the path out of it, unnormalised.
    (
        "http://hostile/status/../anything",
        "deny",
        "/status/../anything",
    ),
];

#[test]
fn bypass_rules_are_not_fooled_by_dot_segments_encodings_case_queries_or_fragments() {
    let mut p = Probe::new(start(&config()));
    for &(target, decision, path) in DEFAULT_PATHS {
        let rec = p.tokenless(target, decision);
        assert_eq!(rec["url"]["path"], path, "{target}: {rec}");
    }
    // A method the rule does not list needs a token under the prefix too.
    let mut post = head("/status/200", &[]);
    post.splice(0..3, *b"POST");
    p.denied("POST /status/200", post, 401, "missing_token");
    // Envoy refuses a fragment, a raw non-ASCII byte or a space in the target, and a target
    // that is not a path, before the filter.
    for target in [
        "/status/200#frag",
        "/anything#/status/",
        "/status/\u{e9}",
        "/status/200 x",
        "status/200",
    ] {
        p.refused_by_envoy(target, head(target, &[]), 400);
    }
    // Double encoding: an upstream that decodes twice would read `%252e` as `.`, so an
    // encoded `%` is never bypassed either; it needs a token like any other path.
    p.denied(
        "double-encoded dots",
        head("/status/%252e%252e/anything", &[]),
        401,
        "missing_token",
    );
    // With the token, an encoded path is forwarded exactly as sent: httpbin sees it unchanged.
    let (r, rec) = p.passed(
        "token, encoded dots",
        head("/anything/%2e%2e/x", &[("x-rfma-token", TOKEN.as_bytes())]),
        "allow",
        200,
    );
    assert_eq!(rec["url"]["path"], "/anything/%2e%2e/x");
    // httpbin (Werkzeug) decodes the path itself: what the filter saw as `%2e%2e` is `..`
    // to the application, which is why an encoded dot is never bypassed.
    let echo = assert_echo_has_no_token(&r);
    assert_eq!(echo["url"], "http://hostile/anything/../x", "{echo}");
    // Nothing else reached httpbin: the readiness probe, the two bypasses, this request.
    assert_eq!(
        p.stack.httpbin.served_paths().unwrap(),
        [
            "/status/200",
            "/status/200",
            "/status/200",
            "/anything/../x"
        ]
    );
    p.finish();
}

#[test]
fn paths_normalised_by_envoy_first_still_need_a_token_outside_the_bypass_prefix() {
    // Istio's meshConfig.pathNormalization: BASE (its default) sets normalize_path;
    // DECODE_AND_MERGE_SLASHES also decodes %2F/%5C and merges slashes. Envoy normalises
    // before any filter, so the filter and httpbin both see the normalised path:
    // (target, decision, url.path the filter saw).
    let base: &[(&str, &str, &str)] = &[
        ("/status/../anything", "deny", "/anything"),
        ("/status/%2e%2e/anything", "deny", "/anything"),
        ("/status/%2E%2E/anything", "deny", "/anything"),
        ("/status/..\\anything", "deny", "/anything"),
        ("/status/..%2Fanything", "deny", "/status/..%2Fanything"),
        ("/STATUS/200", "deny", "/STATUS/200"),
        ("//status/200", "deny", "//status/200"),
        ("/status/./200", "bypass", "/status/200"),
        ("/%73tatus/200", "bypass", "/status/200"),
        ("/anything/../status/200", "bypass", "/status/200"),
    ];
    let decode_and_merge: &[(&str, &str, &str)] = &[
        ("/status/../anything", "deny", "/anything"),
        ("/status/%2e%2e/anything", "deny", "/anything"),
        ("/status/..%2Fanything", "deny", "/anything"),
        ("/status/..%5Canything", "deny", "/anything"),
        ("/STATUS/200", "deny", "/STATUS/200"),
        ("//status/200", "bypass", "/status/200"),
        ("/status%2F200", "bypass", "/status/200"),
    ];
    for (hcm, cases) in [
        (json!({ "normalize_path": true }), base),
        (
            json!({
                "normalize_path": true,
                "merge_slashes": true,
                "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD",
            }),
            decode_and_merge,
        ),
    ] {
        let mut p = Probe::new(start_patched(hcm.clone()));
        for &(target, decision, path) in cases {
            let rec = p.tokenless(target, decision);
            assert_eq!(rec["url"]["path"], path, "{hcm}: {target}: {rec}");
        }
        // What httpbin served for the bypassed ones: the normalised path, under /status/.
        let served = p.stack.httpbin.served_paths().unwrap();
        for &(_, decision, path) in cases {
            if decision == "bypass" {
                assert!(served.iter().any(|s| s == path), "{served:?}");
            }
        }
        assert!(
            served.iter().skip(1).all(|s| s.starts_with("/status/")),
            "only bypassed /status/ paths may reach httpbin without a token: {served:?}"
        );
        p.finish();
    }
}
