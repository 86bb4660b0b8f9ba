//! Access records (Envoy's format with the filter's decision), secrecy and counters, as a
//! real Envoy shows them.

use crate::e2e_support::*;
use serde_json::{Value, json};

/// Asserts an object has exactly these keys.
fn keys(v: &Value, expected: &[&str], what: &str) {
    let mut got: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    got.sort_unstable();
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "keys of {what} in {v}");
}

/// No `null` anywhere: absent fields are left out.
fn no_nulls(v: &Value, path: &str) {
    match v {
        Value::Null => panic!("{path} is null"),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| no_nulls(v, &format!("{path}.{k}"))),
        Value::Array(a) => a.iter().for_each(|v| no_nulls(v, path)),
        _ => {}
    }
}

/// RFC 3339, UTC, milliseconds: `2026-11-25T21:11:07.535Z`.
fn assert_timestamp(v: &Value) {
    let t = v
        .as_str()
        .unwrap_or_else(|| panic!("@timestamp is not a string: {v}"));
    let b = t.as_bytes();
    assert_eq!(b.len(), 24, "{t}");
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        };
        assert!(ok, "bad @timestamp {t}");
    }
    assert!(t.starts_with("20"), "{t}");
}

/// Checks the fields every record has.
fn common(r: &Value, method: &str, path: &str, status: u64) {
    no_nulls(r, "record");
    assert_timestamp(&r["@timestamp"]);
    assert_eq!(r["ecs"]["version"], "9.4.0");
    assert_eq!(r["event"]["kind"], "event");
    assert_eq!(r["event"]["category"], json!(["web"]));
    assert_eq!(r["event"]["type"], json!(["access"]));
    assert_eq!(r["event"]["dataset"], "rfma.access");
    // The outcome follows the status the client got, not the decision.
    assert_eq!(
        r["event"]["outcome"],
        if status < 400 { "success" } else { "failure" }
    );
    assert!(
        r["event"]["duration"].as_u64().is_some_and(|d| d > 0),
        "event.duration: {r}"
    );
    assert_eq!(r["http"]["request"]["method"], method);
    let id = r["http"]["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("http.request.id: {r}"));
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(
        r["http"]["response"]["status_code"],
        json!(status),
        "status_code is an integer: {r}"
    );
    for bytes in [
        "/http/request/bytes",
        "/http/response/bytes",
        "/http/request/body/bytes",
        "/http/response/body/bytes",
    ] {
        assert!(r.pointer(bytes).is_some_and(Value::is_u64), "{bytes}: {r}");
    }
    assert!(r["http"]["request"]["bytes"].as_u64() > Some(0), "{r}");
    assert_eq!(r["http"]["version"], "1.1");
    assert_eq!(r["network"]["protocol"], "http");
    assert_eq!(r["url"]["path"], path);
    assert_eq!(r["url"]["scheme"], "http");
    assert_eq!(r["source"]["ip"], "127.0.0.1");
    assert_eq!(r["source"]["address"], "127.0.0.1");
    assert_eq!(r["destination"]["ip"], "127.0.0.1");
    for port in ["/source/port", "/destination/port"] {
        assert!(
            r.pointer(port)
                .and_then(Value::as_u64)
                .is_some_and(|p| p > 0 && p < 65536),
            "{port}: {r}"
        );
    }
}

#[test]
fn one_ecs_record_per_request_from_envoys_format_with_the_filters_decision() {
    let stack = start(&base_config());
    let mut log = LogFollower::new(&stack.envoy.access_log);

    // Allowed, with every optional field known; header values that need escaping.
    let agent = "agent \"quoted\" \\ back\ttab";
    let r = send(
        &stack,
        Request::get("/get?x=1&y=%22")
            .header("host", "example.test:8080")
            .header("x-rfma-token", ALPHA)
            .header("user-agent", agent),
    );
    assert_eq!(r.status, 200);
    // Bypassed, no query.
    let b = send(&stack, Request::new("HEAD", "/status/204"));
    assert_eq!(b.status, 204);
    // Denied.
    let d = send(
        &stack,
        Request::new("POST", "/post").header("x-rfma-token", WRONG),
    );
    assert_eq!(d.status, 403);
    // Let through (a bypass rule), but the upstream answers 503: the outcome is the status's.
    let failed = get_with_token(&stack, "/status/503?x", ALPHA);
    assert_eq!(failed.status, 503);

    let recs = next_records(&mut log, 4);
    let [allow, bypass, deny, upstream_failed] = [&recs[0], &recs[1], &recs[2], &recs[3]];

    common(allow, "GET", "/get", 200);
    keys(
        allow,
        &[
            "@timestamp",
            "ecs",
            "event",
            "http",
            "url",
            "network",
            "source",
            "destination",
            "user_agent",
            "rfma",
        ],
        "record",
    );
    keys(
        &allow["event"],
        &[
            "kind", "category", "type", "outcome", "dataset", "module", "duration",
        ],
        "event",
    );
    keys(&allow["http"], &["request", "response", "version"], "http");
    keys(
        &allow["url"],
        &["original", "path", "query", "scheme", "domain"],
        "url",
    );
    assert_eq!(allow["url"]["original"], "/get?x=1&y=%22");
    assert_eq!(allow["url"]["query"], "x=1&y=%22");
    assert_eq!(allow["url"]["domain"], "example.test");
    assert_eq!(allow["user_agent"]["original"], agent);
    let upstream = allow["rfma"]["upstream"]["address"].as_str().unwrap();
    assert!(upstream.starts_with("127.0.0.1:"), "{allow}");
    assert_eq!(
        allow["rfma"],
        json!({
            "decision": "allow",
            "token": { "name": "alpha" },
            "response_flags": "-",
            "upstream": { "address": upstream, "cluster": "httpbin" }
        })
    );

    common(bypass, "HEAD", "/status/204", 204);
    keys(
        &bypass["url"],
        &["original", "path", "scheme", "domain"],
        "url",
    );
    assert_eq!(bypass["rfma"]["decision"], "bypass");
    assert!(bypass["rfma"].get("token").is_none(), "{bypass}");

    common(deny, "POST", "/post", 403);
    assert_eq!(deny["event"]["reason"], "invalid_token");
    assert_eq!(
        deny["rfma"],
        json!({
            "decision": "deny",
            "reason": "invalid_token",
            "response_flags": "-",
            "upstream": { "cluster": "httpbin" }
        }),
        "a local reply has the route's cluster but no upstream host: {deny}"
    );
    let id = d.header("x-request-id").unwrap();
    assert_eq!(deny["http"]["request"]["id"], id);
    assert_eq!(
        deny["http"]["response"]["body"]["bytes"],
        json!(d.body.len())
    );

    common(upstream_failed, "GET", "/status/503", 503);
    assert_eq!(upstream_failed["event"]["outcome"], "failure");
    assert_eq!(upstream_failed["rfma"]["decision"], "bypass");

    // Exactly one line per request: a marker request's record is the very next line.
    assert_eq!(
        send(&stack, Request::get("/status/200?marker=1")).status,
        200
    );
    let next = next_records(&mut log, 1);
    assert_eq!(
        next[0]["url"]["query"], "marker=1",
        "an extra line was written: {next:?}"
    );
    // And each line is one bare object.
    let raw = std::fs::read_to_string(&stack.envoy.access_log).unwrap();
    assert_eq!(raw.lines().count(), 5);
    assert!(
        raw.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{raw}"
    );
}

#[test]
fn http2_records_say_version_2() {
    let stack = start(&base_config());
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let dir = tempfile::tempdir().unwrap();
    let addr = stack.plain().unwrap();
    let r = curl(
        dir.path(),
        &[
            "--http2-prior-knowledge",
            "-H",
            &format!("x-rfma-token: {ALPHA}"),
            &url(addr, "/get"),
        ],
    );
    assert_eq!(r.response.status, 200);
    assert_eq!(r.http_version, "2");
    let rec = &next_records(&mut log, 1)[0];
    assert_eq!(rec["http"]["version"], "2");
    assert_eq!(rec["rfma"]["decision"], "allow");
    assert_eq!(rec["url"]["domain"], "127.0.0.1");
}

#[test]
fn a_client_that_goes_away_gets_a_record_without_a_status() {
    use std::io::Write;
    let stack = start(&base_config());
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let addr = stack.plain().unwrap();
    // httpbin holds the answer for two seconds; the client leaves before it comes.
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(
        &Request::get("/delay/2")
            .header("x-rfma-token", ALPHA)
            .to_bytes(addr),
    )
    .unwrap();
    eventually("httpbin to be asked", || {
        stack
            .envoy
            .stat("cluster.httpbin.upstream_rq_total")
            .unwrap()
            .filter(|n| *n >= 1)
    });
    drop(conn);
    let rec = &next_records(&mut log, 1)[0];
    no_nulls(rec, "record");
    assert_eq!(rec["rfma"]["decision"], "allow");
    assert_eq!(rec["rfma"]["token"]["name"], "alpha");
    assert_eq!(rec["url"]["path"], "/delay/2");
    // Envoy prints 0 for "no response was sent" (its documented meaning of
    // %RESPONSE_CODE% 0); Filebeat drops that field before indexing (elk/files/filebeat.yml).
    assert_eq!(rec["http"]["response"]["status_code"], 0, "{rec}");
    // No status: neither success nor failure.
    assert_eq!(rec["event"]["outcome"], "unknown");
    assert_eq!(rec["rfma"]["response_flags"], "DC", "{rec}");
}

#[test]
fn tokens_and_digests_appear_in_no_envoy_output() {
    let stack = start(&base_config());
    let mut log = LogFollower::new(&stack.envoy.access_log);
    for t in [ALPHA, BRAVO, WRONG] {
        get_with_token(&stack, "/headers", t);
    }
    send(
        &stack,
        Request::get("/headers")
            .header("x-rfma-token", ALPHA)
            .header("x-rfma-token", BRAVO),
    );
    send(
        &stack,
        Request::get(&format!("/get?q={ALPHA}")).header("x-rfma-token", &format!(" {ALPHA} ")),
    );
    next_records(&mut log, 5);
    let out = all_envoy_output(&stack);
    // The plain-text warning is there, without the value.
    assert!(
        out.contains("plain text is discouraged"),
        "the filter should warn about plain-text tokens: {out}"
    );
    for secret in [
        BRAVO,
        WRONG,
        &sha256_hex(ALPHA),
        &sha256_hex(BRAVO),
        &sha256_hex(WRONG),
    ] {
        assert!(
            !out.contains(secret),
            "{secret} appears in Envoy's output:\n{out}"
        );
    }
    // ALPHA was deliberately put in a query string; it may appear only there.
    let without_query = out.replace(&format!("q={ALPHA}"), "q=<query>");
    assert!(
        !without_query.contains(ALPHA),
        "{ALPHA} appears in Envoy's output:\n{out}"
    );
}

#[test]
fn without_the_hand_over_the_record_has_envoys_fields_only() {
    // `log.sink: none`: every request still gets Envoy's record, without the filter's part.
    let mut config = base_config();
    config["log"] = json!({ "sink": "none" });
    let stack = start(&config);
    let mut log = LogFollower::new(&stack.envoy.access_log);
    assert_eq!(get_with_token(&stack, "/get", ALPHA).status, 200);
    assert_eq!(send(&stack, Request::get("/get")).status, 401);
    for rec in next_records(&mut log, 2) {
        assert!(rec["rfma"].get("decision").is_none(), "{rec}");
        assert!(rec["url"].get("domain").is_none(), "{rec}");
        assert!(rec["http"]["response"]["status_code"].is_u64(), "{rec}");
    }
    drop(stack);

    // `allowed: false`: the decision reaches the record of denials only.
    config["log"] = json!({ "sink": "filter_state", "allowed": false });
    let stack = start(&config);
    let mut log = LogFollower::new(&stack.envoy.access_log);
    assert_eq!(get_with_token(&stack, "/get", ALPHA).status, 200);
    assert_eq!(send(&stack, Request::get("/status/200")).status, 200);
    assert_eq!(send(&stack, Request::get("/get")).status, 401);
    let recs = next_records(&mut log, 3);
    assert!(recs[0]["rfma"].get("decision").is_none(), "{}", recs[0]);
    assert!(recs[1]["rfma"].get("decision").is_none(), "{}", recs[1]);
    assert_eq!(recs[2]["rfma"]["reason"], "missing_token");
    assert_eq!(recs[2]["event"]["reason"], "missing_token");
}

/// Prometheus names of the filter's counters. Envoy keeps custom Wasm metrics under its
/// `wasmcustom` stat namespace (`wasmcustom.rfma_allowed_total` in `/stats`) and strips that
/// namespace in `/stats/prometheus`, without adding its usual `envoy_` prefix.
const COUNTERS: [&str; 9] = [
    "rfma_allowed_total",
    "rfma_bypassed_total",
    "rfma_denied_missing_token_total",
    "rfma_denied_invalid_token_total",
    "rfma_denied_duplicate_token_total",
    "rfma_denied_principal_mismatch_total",
    "rfma_denied_internal_error_total",
    "rfma_denied_expired_token_total",
    "rfma_denied_token_not_yet_valid_total",
];

#[test]
fn counters_are_exact_after_a_known_mix() {
    let mut config = base_config();
    config["tokens"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "bound", "value": "bound-token-e2e", "principals": ["spiffe://cluster.local/ns/demo/sa/sleep"] }));
    let stack = start(&config);
    let mut log = LogFollower::new(&stack.envoy.access_log);

    // Before any request every counter is exposed, at zero.
    let before = stack.envoy.prometheus().unwrap();
    for c in COUNTERS {
        assert_eq!(
            prometheus_value(&before, c),
            Some(0),
            "{c} before any request:\n{before}"
        );
        assert!(
            before.contains(&format!("# TYPE {c} counter")),
            "{c} is not a counter:\n{before}"
        );
    }

    let mut sent = 0;
    let mut check = |r: Response, status: u16| {
        assert_eq!(r.status, status, "{}", r.text());
        sent += 1;
    };
    // 3 allowed, 2 bypassed, 2 missing, 1 invalid, 1 duplicate, 1 principal mismatch.
    check(get_with_token(&stack, "/get", ALPHA), 200);
    check(get_with_token(&stack, "/get", ALPHA), 200);
    check(get_with_token(&stack, "/get", BRAVO), 200);
    check(send(&stack, Request::get("/status/200")), 200);
    check(send(&stack, Request::new("HEAD", "/status/200")), 200);
    check(send(&stack, Request::get("/get")), 401);
    check(
        send(&stack, Request::get("/get").header("x-rfma-token", "  ")),
        401,
    );
    check(get_with_token(&stack, "/get", WRONG), 403);
    check(
        send(
            &stack,
            Request::get("/get")
                .header("x-rfma-token", ALPHA)
                .header("X-Rfma-Token", ALPHA),
        ),
        400,
    );
    // A principal-bound token over plain text: no peer certificate, so no principal.
    check(get_with_token(&stack, "/get", "bound-token-e2e"), 403);
    next_records(&mut log, sent);

    let text = stack.envoy.prometheus().unwrap();
    let expected = [3, 2, 2, 1, 1, 1, 0, 0, 0];
    for (c, want) in COUNTERS.iter().zip(expected) {
        assert_eq!(prometheus_value(&text, c), Some(want), "{c}:\n{text}");
        // The same counter under Envoy's own stat name.
        assert_eq!(
            stack.envoy.stat(&format!("wasmcustom.{c}")).unwrap(),
            Some(want),
            "wasmcustom.{c}"
        );
        assert!(
            !text.contains(&format!("envoy_{c}")),
            "{c} must not get Envoy's prefix"
        );
    }
}
