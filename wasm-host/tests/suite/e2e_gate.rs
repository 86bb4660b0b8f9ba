//! The gate's decisions in a real Envoy in front of a real httpbin, over HTTP/1.1 and h2c.

use crate::e2e_support::*;
use serde_json::json;

#[test]
fn http1_decisions_match_the_contract() {
    let stack = start(&base_config());

    // Allowed by plain value and by digest: httpbin answers.
    let echo = assert_upstream(&get_with_token(&stack, "/headers", ALPHA));
    assert!(
        echo["headers"].is_object(),
        "httpbin's /headers echo: {echo}"
    );
    assert_upstream(&get_with_token(&stack, "/headers", BRAVO));

    // Missing, wrong, duplicate.
    assert_deny(
        &send(&stack, Request::get("/headers")),
        401,
        "missing_token",
    );
    assert_deny(
        &get_with_token(&stack, "/headers", WRONG),
        403,
        "invalid_token",
    );
    let dup = Request::get("/headers")
        .header("x-rfma-token", ALPHA)
        .header("x-rfma-token", ALPHA);
    assert_deny(&send(&stack, dup), 400, "duplicate_token");
    let dup_mixed = Request::get("/headers")
        .header("X-Rfma-Token", ALPHA)
        .header("x-rfma-token", WRONG);
    assert_deny(&send(&stack, dup_mixed), 400, "duplicate_token");

    // The header name is case-insensitive.
    assert_upstream(&send(
        &stack,
        Request::get("/headers").header("X-RFMA-TOKEN", ALPHA),
    ));
    assert_upstream(&send(
        &stack,
        Request::get("/headers").header("x-Rfma-tOKEN", BRAVO),
    ));

    // Empty and whitespace-only values are missing tokens; surrounding whitespace is trimmed.
    assert_deny(
        &send(&stack, Request::get("/headers").header("x-rfma-token", "")),
        401,
        "missing_token",
    );
    assert_deny(
        &send(
            &stack,
            Request::get("/headers").header("x-rfma-token", " \t "),
        ),
        401,
        "missing_token",
    );
    assert_upstream(&send(
        &stack,
        Request::get("/headers").header("x-rfma-token", &format!(" \t{ALPHA}\t  ")),
    ));
    // Inner whitespace is part of the token.
    let inner = format!("{} {}", &ALPHA[..5], &ALPHA[5..]);
    assert_deny(
        &send(
            &stack,
            Request::get("/headers").header("x-rfma-token", &inner),
        ),
        403,
        "invalid_token",
    );
    // A query string does not change the decision.
    assert_upstream(&send(
        &stack,
        Request::get("/get?a=1&b=two").header("x-rfma-token", ALPHA),
    ));
}

#[test]
fn bypass_rules_need_prefix_and_method_and_no_dot_segments() {
    let stack = start(&base_config());
    // GET and HEAD under /status/ pass without a token; httpbin answers with the asked status.
    assert_eq!(send(&stack, Request::get("/status/200")).status, 200);
    assert_eq!(send(&stack, Request::get("/status/418")).status, 418);
    assert_eq!(
        send(&stack, Request::new("HEAD", "/status/204")).status,
        204
    );
    // Other methods, other paths and the prefix without its slash need a token.
    assert_deny(
        &send(&stack, Request::new("POST", "/status/200")),
        401,
        "missing_token",
    );
    assert_deny(&send(&stack, Request::get("/status")), 401, "missing_token");
    assert_deny(
        &send(&stack, Request::get("/headers")),
        401,
        "missing_token",
    );
    // Dot-segments and encoded dots or slashes never bypass (Envoy forwards the path as sent).
    for path in [
        "/status/../headers",
        "/status/./200",
        "/status/%2e%2e/headers",
        "/status/%2fheaders",
        "/status/%5cx",
    ] {
        assert_deny(&send(&stack, Request::get(path)), 401, "missing_token");
    }
    // A token still works under a bypassed prefix.
    assert_eq!(get_with_token(&stack, "/status/200", ALPHA).status, 200);
}

#[test]
fn deny_body_carries_envoys_request_id_and_nothing_of_the_token() {
    let stack = start(&base_config());
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let r = get_with_token(&stack, "/anything", WRONG);
    assert_deny(&r, 403, "invalid_token");
    let id = r.header("x-request-id").unwrap().to_owned();
    // The same id is in the access record: it is the one Envoy generated for this request.
    let rec = &next_records(&mut log, 1)[0];
    assert_eq!(rec["http"]["request"]["id"], json!(id));
    assert!(!r.text().contains(WRONG) && !r.text().contains(&sha256_hex(WRONG)));
    // Each request gets its own id.
    let r2 = send(&stack, Request::get("/anything"));
    assert_deny(&r2, 401, "missing_token");
    assert_ne!(r2.header("x-request-id"), Some(id.as_str()));
}

#[test]
fn token_header_is_stripped_before_httpbin_unless_configured_not_to() {
    let stack = start(&base_config());
    let echo = assert_upstream(&send(
        &stack,
        Request::get("/headers")
            .header("X-Rfma-Token", ALPHA)
            .header("x-other", "kept"),
    ));
    assert_eq!(
        echoed_header(&echo, "x-rfma-token"),
        None,
        "httpbin saw the token: {echo}"
    );
    assert_eq!(echoed_header(&echo, "x-other"), Some("kept"), "{echo}");
    // A bypassed request keeps its (unchecked) header: nothing was accepted, nothing to hide.
    drop(stack);

    let mut config = base_config();
    config["strip_header"] = json!(false);
    let stack = start(&config);
    let echo = assert_upstream(&get_with_token(&stack, "/headers", ALPHA));
    assert_eq!(echoed_header(&echo, "x-rfma-token"), Some(ALPHA), "{echo}");
}

#[test]
fn custom_header_name_is_case_insensitive_and_the_default_is_not_read() {
    let mut config = base_config();
    config["header"] = json!("X-Api-Key");
    let stack = start(&config);
    assert_upstream(&send(
        &stack,
        Request::get("/get").header("x-api-key", ALPHA),
    ));
    assert_upstream(&send(
        &stack,
        Request::get("/get").header("X-API-KEY", BRAVO),
    ));
    assert_deny(&get_with_token(&stack, "/get", ALPHA), 401, "missing_token");
    let echo = assert_upstream(&send(
        &stack,
        Request::get("/headers").header("X-Api-Key", ALPHA),
    ));
    assert_eq!(echoed_header(&echo, "x-api-key"), None, "{echo}");
}

#[test]
fn h2c_prior_knowledge_gets_the_same_decisions() {
    let stack = start(&base_config());
    let dir = stack.dir.path();
    let addr = stack.plain().unwrap();
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let h2 = |extra: &[&str], path: &str| {
        let u = url(addr, path);
        let mut args = vec!["--http2-prior-knowledge"];
        args.extend_from_slice(extra);
        args.push(&u);
        curl(dir, &args)
    };
    let tok = format!("x-rfma-token: {ALPHA}");
    let ok = h2(&["-H", &tok], "/headers");
    assert_eq!(ok.http_version, "2");
    assert_eq!(
        echoed_header(&assert_upstream(&ok.response), "x-rfma-token"),
        None
    );
    let missing = h2(&[], "/headers");
    assert_eq!(missing.http_version, "2");
    assert_deny(&missing.response, 401, "missing_token");
    let wrong = h2(&["-H", &format!("x-rfma-token: {WRONG}")], "/headers");
    assert_deny(&wrong.response, 403, "invalid_token");
    let dup = h2(
        &["-H", &tok, "-H", &format!("X-RFMA-TOKEN: {BRAVO}")],
        "/headers",
    );
    assert_deny(&dup.response, 400, "duplicate_token");
    assert_eq!(h2(&[], "/status/200").response.status, 200);

    let recs = next_records(&mut log, 5);
    for r in &recs {
        assert_eq!(r["http"]["version"], json!("2"), "{r}");
    }
    let decisions: Vec<_> = recs
        .iter()
        .map(|r| r["rfma"]["decision"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "deny", "deny", "bypass"]);

    // The same listener speaks HTTP/1.1 to an HTTP/1.1 client.
    let h1 = curl(dir, &["--http1.1", "-H", &tok, &url(addr, "/get")]);
    assert_eq!((h1.response.status, h1.http_version.as_str()), (200, "1.1"));
    assert_eq!(
        next_records(&mut log, 1)[0]["http"]["version"],
        json!("1.1")
    );
}
