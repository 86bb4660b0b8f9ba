//! A token's life in a real Envoy 1.40: what a client is told when it has none (the
//! `WWW-Authenticate` challenge), how often each token is used (`rfma_token_allowed_total`, one
//! series per token name through the bootstrap's tag-extraction rule, as Istio's
//! `extraStatTags` renders it), and that no token or digest reaches any output on the way.

mod e2e_support;
use e2e_support::*;
use serde_json::json;

const CHALLENGE: &str = r#"RFMA-Token realm="istio-demo", header="x-rfma-token""#;
const METRIC: &str = "rfma_token_allowed_total";

/// The value of `rfma_token_allowed_total{token="<name>"}` in a `/stats/prometheus` text.
fn token_count(prometheus: &str, name: &str) -> Option<u64> {
    let series = format!("{METRIC}{{token=\"{name}\"}} ");
    prometheus
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.parse().ok())
}

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
    assert_eq!(token_count(&before, "alpha"), Some(0), "{before}");
    assert_eq!(token_count(&before, "bravo"), Some(0), "{before}");

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
    assert_eq!(token_count(&text, "alpha"), Some(3), "{text}");
    assert_eq!(token_count(&text, "bravo"), Some(1), "{text}");
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
