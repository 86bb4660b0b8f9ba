//! A token's life in a real Envoy 1.40: a token used before its `not_before` or after its
//! `not_after` (the proxy's own clock), what a client is told when it is refused (the
//! `WWW-Authenticate` challenge), how often each token is used (`rfma_token_allowed_total`, one
//! series per token name through the bootstrap's tag-extraction rule, as Istio's
//! `extraStatTags` renders it), and that no token or digest reaches any output on the way.

use crate::e2e_support::*;
use serde_json::json;

const CHALLENGE: &str = r#"RFMA-Token realm="istio-demo", header="x-rfma-token""#;
const METRIC: &str = "rfma_token_allowed_total";

/// Every token and digest of `tokens` (and an 8-character piece of each) is absent from `text`.
fn assert_no_secret(what: &str, text: &str, tokens: &[&str]) {
    for token in tokens {
        let digest = sha256_hex(token);
        for secret in [token.to_string(), digest.clone(), digest[..8].to_string()] {
            assert!(
                !text.contains(&secret),
                "{what} carries a token or its digest ({}...)",
                &secret[..4]
            );
        }
    }
}

const EXPIRED: &str = "expired-token-e2e-5";
const FUTURE: &str = "future-token-e2e-6";
const CURRENT: &str = "current-token-e2e-7";

/// `alpha` and `bravo` without a window, `expired` until 2000, `future` from 2100, `current`
/// from 2000 to 2100.
fn windowed_config() -> serde_json::Value {
    let mut config = base_config();
    let tokens = config["tokens"].as_array_mut().unwrap();
    tokens.push(json!({ "name": "expired", "sha256": sha256_hex(EXPIRED),
        "not_after": "1999-12-31T23:59:59.999Z" }));
    tokens.push(json!({ "name": "future", "sha256": sha256_hex(FUTURE),
        "not_before": "2100-01-01T00:00:00+01:00" }));
    tokens.push(json!({ "name": "current", "sha256": sha256_hex(CURRENT),
        "not_before": "2000-01-01T00:00:00Z", "not_after": "2100-01-01T00:00:00Z" }));
    config
}

#[test]
fn an_expired_and_a_future_token_are_refused_and_the_record_names_them() {
    let stack = start(&windowed_config());
    let mut log = LogFollower::new(&stack.envoy.access_log);

    let expired = get_with_token(&stack, "/get", EXPIRED);
    assert_deny(&expired, 401, "expired_token");
    assert_eq!(
        expired.header("www-authenticate"),
        Some(format!(r#"{CHALLENGE}, error="expired_token""#).as_str())
    );
    let future = get_with_token(&stack, "/get", FUTURE);
    assert_deny(&future, 401, "token_not_yet_valid");
    assert_eq!(
        future.header("www-authenticate"),
        Some(format!(r#"{CHALLENGE}, error="token_not_yet_valid""#).as_str())
    );
    let current = get_with_token(&stack, "/get", CURRENT);
    let echo = assert_upstream(&current);
    assert_eq!(echoed_header(&echo, "x-rfma-token"), None, "stripped");
    assert_upstream(&get_with_token(&stack, "/get", ALPHA));

    let records = next_records(&mut log, 4);
    let summary: Vec<(String, String, String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["rfma"]["decision"].as_str().unwrap().to_owned(),
                r["rfma"]["token"]["name"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
                r["rfma"]["reason"].as_str().unwrap_or("-").to_owned(),
                r["http"]["response"]["status_code"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |d: &str, t: &str, r: &str, s| (d.to_owned(), t.to_owned(), r.to_owned(), s);
    assert_eq!(
        summary,
        [
            row("deny", "expired", "expired_token", 401),
            row("deny", "future", "token_not_yet_valid", 401),
            row("allow", "current", "-", 200),
            row("allow", "alpha", "-", 200),
        ]
    );
    assert_eq!(records[0]["event"]["reason"], "expired_token");

    let text = stack.envoy.prometheus().unwrap();
    for (counter, want) in [
        ("rfma_denied_expired_token_total", 1),
        ("rfma_denied_token_not_yet_valid_total", 1),
        ("rfma_allowed_total", 2),
    ] {
        assert_eq!(
            prometheus_value(&text, counter),
            Some(want),
            "{counter}:\n{text}"
        );
    }
    for (token, want) in [("expired", 0), ("future", 0), ("current", 1), ("alpha", 1)] {
        assert_eq!(token_allowed(&text, token), Some(want), "{token}:\n{text}");
    }
    let access_log = std::fs::read_to_string(&stack.envoy.access_log).unwrap();
    assert_no_secret("the access log", &access_log, &[EXPIRED, FUTURE, CURRENT]);
}

#[test]
fn every_401_carries_the_challenge_and_other_statuses_none() {
    let mut config = base_config();
    config["realm"] = json!("istio-demo");
    let stack = start(&config);

    for r in [
        send(&stack, Request::get("/get")),
        send(&stack, Request::get("/get").header("x-rfma-token", "   ")),
    ] {
        assert_deny(&r, 401, "missing_token");
        assert_eq!(r.header("www-authenticate"), Some(CHALLENGE), "{r:?}");
        let all: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .collect();
        assert_eq!(all.len(), 1, "one challenge: {r:?}");
    }
    let others = [
        (get_with_token(&stack, "/get", WRONG), 403),
        (
            send(
                &stack,
                Request::get("/get")
                    .header("x-rfma-token", ALPHA)
                    .header("x-rfma-token", ALPHA),
            ),
            400,
        ),
        (get_with_token(&stack, "/get", ALPHA), 200),
        (send(&stack, Request::get("/status/200")), 200),
    ];
    for (r, status) in others {
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.header("www-authenticate"), None, "{r:?}");
    }
}

#[test]
fn the_realm_and_header_of_the_challenge_come_from_the_configuration() {
    let mut config = base_config();
    config["realm"] = json!("payments api");
    config["header"] = json!("X-Api-Key");
    let stack = start(&config);
    let r = send(&stack, Request::get("/get"));
    assert_deny(&r, 401, "missing_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"RFMA-Token realm="payments api", header="x-api-key""#)
    );
}

#[test]
fn each_token_counts_its_allowed_requests_as_one_labelled_series() {
    let stack = start(&base_config());
    let mut log = LogFollower::new(&stack.envoy.access_log);

    // Defined at configure time: both series are there, at zero, before any request.
    let before = stack.envoy.prometheus().unwrap();
    assert_eq!(token_allowed(&before, "alpha"), Some(0), "{before}");
    assert_eq!(token_allowed(&before, "bravo"), Some(0), "{before}");

    let mut sent = 0;
    let mut check = |r: Response, status: u16| {
        assert_eq!(r.status, status, "{}", r.text());
        sent += 1;
    };
    for _ in 0..3 {
        check(get_with_token(&stack, "/get", ALPHA), 200);
    }
    check(get_with_token(&stack, "/anything", BRAVO), 200);
    check(get_with_token(&stack, "/get", WRONG), 403);
    check(send(&stack, Request::get("/get")), 401);
    // Bypassed while carrying a token: the bypass let it through, not the token.
    check(
        send(
            &stack,
            Request::get("/status/200").header("x-rfma-token", ALPHA),
        ),
        200,
    );
    // Every stream is complete once its record is written.
    next_records(&mut log, sent);

    let text = stack.envoy.prometheus().unwrap();
    assert_eq!(token_allowed(&text, "alpha"), Some(3), "{text}");
    assert_eq!(token_allowed(&text, "bravo"), Some(1), "{text}");
    assert_eq!(prometheus_value(&text, "rfma_allowed_total"), Some(4));
    // One metric with a label, not a metric per token; and the encoding never shows.
    assert_eq!(
        text.matches(&format!("# TYPE {METRIC} counter")).count(),
        1,
        "{text}"
    );
    let series: Vec<&str> = text.lines().filter(|l| l.contains(METRIC)).collect();
    assert_eq!(series.len(), 3, "{series:#?}");
    assert!(!text.contains("=.="), "{text}");
    assert!(!text.contains(";.;"), "{text}");
    // Envoy's own stat name keeps the tag spelt in, under its Wasm namespace.
    assert_eq!(
        stack
            .envoy
            .stat("wasmcustom.token=.=alpha;.;rfma_token_allowed_total")
            .unwrap(),
        Some(3)
    );
}

#[test]
fn no_token_or_digest_reaches_any_output() {
    let mut config = base_config();
    config["tokens"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "charlie", "sha256": sha256_hex("charlie-token-e2e-9") }));
    let stack = start(&config);
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let tokens = [ALPHA, BRAVO, "charlie-token-e2e-9"];
    let mut replies = Vec::new();
    for token in tokens {
        replies.push(get_with_token(&stack, "/get", token));
    }
    replies.push(send(&stack, Request::get("/get")));
    replies.push(get_with_token(&stack, "/get", WRONG));
    let records = next_records(&mut log, replies.len()).len();
    assert_eq!(records, replies.len());

    for (i, r) in replies.iter().enumerate() {
        // httpbin echoes what it received: the token was stripped before it went upstream.
        let headers: String = r
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\n"))
            .collect();
        assert_no_secret(&format!("reply {i} headers"), &headers, &tokens);
        assert_no_secret(&format!("reply {i} body"), &r.text(), &tokens);
    }
    let access_log = std::fs::read_to_string(&stack.envoy.access_log).unwrap();
    assert_no_secret("the access log", &access_log, &tokens);
    assert_no_secret(
        "/stats/prometheus",
        &stack.envoy.prometheus().unwrap(),
        &tokens,
    );
    assert_no_secret(
        "/stats",
        &stack.envoy.admin_get("/stats").unwrap().text(),
        &tokens,
    );
    // ALPHA is configured as a plain-text value, which Envoy's log of the configuration may
    // hold; the filter's own lines never do.
    let filter_lines: String = stack
        .envoy
        .process
        .log_text()
        .lines()
        .filter(|l| l.contains("rfma:"))
        .collect();
    assert_no_secret("the filter's log lines", &filter_lines, &tokens);
}
