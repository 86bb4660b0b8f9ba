//! A request head over Envoy's 60 KiB, more than its 100 headers, and a repeated token
//! header within those limits.

use super::support::*;
use crate::e2e_support::*;
use serde_json::json;

#[test]
fn request_heads_over_60_kib_get_envoys_431_before_the_filter_runs() {
    let mut p = Probe::new(start(&config()));
    let token = ("x-rfma-token", TOKEN.as_bytes());

    // The limit is on the whole head, request line to blank line: 61,440 bytes pass...
    let pad_for = |total: usize| {
        let without = head("/anything", &[("x-pad", b"")]).len();
        vec![b'p'; total - without]
    };
    let at_limit = head("/anything", &[("x-pad", &pad_for(HEAD_LIMIT))]);
    assert_eq!(at_limit.len(), HEAD_LIMIT);
    p.denied("head of exactly 60 KiB", at_limit, 401, "missing_token");
    // ...one byte more is Envoy's 431, even with a valid token.
    let pad = pad_for(HEAD_LIMIT + 1 - token.0.len() - token.1.len() - 4);
    let over = head("/anything", &[token, ("x-pad", &pad)]);
    assert_eq!(over.len(), HEAD_LIMIT + 1);
    let x = p.refused_by_envoy("head of 60 KiB + 1 byte", over, 431);
    assert_eq!(x.response.text(), "Request Header Fields Too Large");
    assert_eq!(x.response.header("x-request-id"), None);

    // 64 KiB spread over 16 headers, and a single 1 MiB value: the same 431. Envoy answers
    // as soon as the limit is passed and closes, without reading the rest.
    let many: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| (format!("x-part-{i}"), vec![b'v'; 4096]))
        .collect();
    p.refused_by_envoy("64 KiB over 16 headers", head_with("/get", many), 431);
    let huge = vec![b'h'; 1024 * 1024];
    let x = p.refused_by_envoy(
        "a 1 MiB header",
        head("/get", &[token, ("user-agent", &huge)]),
        431,
    );
    assert_eq!(x.response.text(), "Request Header Fields Too Large");

    // Below the limit the filter decides, and a 50 KiB value goes into one valid record.
    let ua = "u".repeat(50 * 1024);
    let rec = p.denied(
        "50 KiB user-agent, wrong token",
        head(
            "/get",
            &[
                ("x-rfma-token", b"wrong-token"),
                ("user-agent", ua.as_bytes()),
            ],
        ),
        403,
        "invalid_token",
    );
    assert_eq!(rec["user_agent"]["original"], json!(ua));

    // Over HTTP/2 the same limit resets the stream: no status at all, and a record without
    // the filter's decision.
    let before = p.upstream_requests();
    let (code, stderr) = h2c(
        &p.stack,
        &[
            "-H".into(),
            format!("x-rfma-token: {TOKEN}"),
            "-H".into(),
            format!("x-big: {}", "b".repeat(HEAD_LIMIT + 1024)),
        ],
        "/get",
    );
    assert_eq!(code, 92, "curl: HTTP/2 stream not closed cleanly: {stderr}");
    assert!(stderr.contains("INTERNAL_ERROR"), "{stderr}");
    let rec = p.record();
    assert!(rec["rfma"].get("decision").is_none(), "{rec}");
    assert_eq!(
        rec["http"]["response"]["status_code"], 0,
        "reset, no status: {rec}"
    );
    assert_eq!(p.upstream_requests(), before);
    p.finish();
}

#[test]
fn more_than_100_headers_get_envoys_431_and_100_reach_the_filter() {
    let mut p = Probe::new(start(&config()));
    // `host` and `connection` count: 98 more make 100 headers.
    let headers = |n: usize| (0..n).map(|i| (format!("x-h{i}"), b"v".to_vec()));
    let rec = p.denied(
        "100 headers",
        head_with("/get", headers(HEADER_COUNT_LIMIT - 2)),
        401,
        "missing_token",
    );
    assert_eq!(rec["url"]["path"], "/get");
    p.refused_by_envoy(
        "101 headers",
        head_with("/get", headers(HEADER_COUNT_LIMIT - 1)),
        431,
    );
    let with_token = headers(498).chain([("x-rfma-token".to_string(), TOKEN.as_bytes().to_vec())]);
    p.refused_by_envoy(
        "501 headers with a valid token",
        head_with("/get", with_token),
        431,
    );

    let before = p.upstream_requests();
    let mut args = Vec::new();
    for i in 0..300 {
        args.push("-H".to_string());
        args.push(format!("x-h{i}: v"));
    }
    let (code, stderr) = h2c(&p.stack, &args, "/get");
    assert_eq!(code, 92, "{stderr}");
    let rec = p.record();
    assert!(rec["rfma"].get("decision").is_none(), "{rec}");
    assert_eq!(
        rec["http"]["response"]["status_code"], 0,
        "reset, no status: {rec}"
    );
    assert_eq!(p.upstream_requests(), before);
    p.finish();
}

#[test]
fn a_repeated_token_header_is_a_duplicate_for_the_filter_within_envoys_header_limit() {
    let mut p = Probe::new(start(&config()));
    let copies = |n: usize| (0..n).map(|_| ("x-rfma-token".to_string(), TOKEN.as_bytes().to_vec()));
    // 98 copies (100 headers with host and connection): the filter's 400 duplicate_token.
    p.denied(
        "the token 98 times",
        head_with("/headers", copies(98)),
        400,
        "duplicate_token",
    );
    // 100 copies are over Envoy's header count: its 431, before the filter.
    p.refused_by_envoy(
        "the token 100 times",
        head_with("/headers", copies(100)),
        431,
    );
    // Mixed case and mixed values are duplicates all the same.
    let mixed = [
        ("X-RFMA-TOKEN".to_string(), TOKEN.as_bytes().to_vec()),
        ("x-rfma-token".to_string(), b"other".to_vec()),
    ];
    p.denied(
        "two spellings",
        head_with("/headers", mixed),
        400,
        "duplicate_token",
    );
    p.finish();

    // With Envoy's limits raised (max_headers_count 500, 96 KiB heads), 100 copies reach
    // the filter: 400 duplicate_token, one record.
    let mut p = Probe::new(start_patched(json!({
        "max_request_headers_kb": 96,
        "common_http_protocol_options": { "max_headers_count": 500 },
    })));
    p.denied(
        "the token 100 times, raised limits",
        head_with("/headers", copies(100)),
        400,
        "duplicate_token",
    );
    let many = (0..300).map(|i| (format!("x-h{i}"), b"v".to_vec()));
    p.denied(
        "300 headers, raised limits",
        head_with("/get", many),
        401,
        "missing_token",
    );
    p.finish();
}
