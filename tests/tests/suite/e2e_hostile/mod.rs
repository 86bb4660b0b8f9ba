//! Hostile requests through a real Envoy 1.40 with the filter, sent as raw bytes over TCP
//! (a normal client refuses most of them). For each: the status the client gets, who gave it
//! (Envoy itself, before the filter runs, or the filter), the access-log line (one valid JSON
//! record when the filter ran, Envoy's `-` when it did not), what reached httpbin, and that
//! the token and its digest appear in no Envoy output, no httpbin log and no header httpbin
//! received.
//!
//! What Envoy does before the filter, with the defaults this harness (and Istio) keeps:
//! - a request head (request line to blank line) over 60 KiB (`max_request_headers_kb`
//!   60, i.e. 61,440 bytes) or with more than 100 headers (`max_headers_count`): 431 over
//!   HTTP/1.1, a stream reset over HTTP/2;
//! - NUL and other control characters (except tab) in a header value, a target that is not
//!   an origin path, a raw non-ASCII byte or a space in the path: 400;
//! - a fragment (`#...`) in the request target: 400;
//! - a bare CR inside a value is dropped, a bare LF ends the header line, an obs-fold
//!   continuation is joined with a space; bytes 0x80-0xFF are passed on as they are.
//! - no path normalisation: `normalize_path` and `merge_slashes` are off and escaped slashes
//!   are kept, so the filter sees the path as sent (Istio turns `normalize_path` on; see
//!   `paths_normalised_by_envoy_first_still_need_a_token_outside_the_bypass_prefix`).

use crate::e2e_support::*;
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The gate's only token: configured by digest, so its clear text is in no file at all.
const TOKEN: &str = "hostile-Q7vX9kLm2Rp4-e2e";
/// Envoy's default limit on a request head: `max_request_headers_kb` 60.
const HEAD_LIMIT: usize = 60 * 1024;
/// Envoy's default `max_headers_count`.
const HEADER_COUNT_LIMIT: usize = 100;

fn config() -> Value {
    json!({
        "tokens": [{ "name": "hostile", "sha256": sha256_hex(TOKEN) }],
        "bypass": [{ "path_prefix": "/status/", "methods": ["GET", "HEAD"] }],
    })
}

/// A raw HTTP/1.1 request head: `host` and `connection: close` plus `headers`, verbatim.
fn head(target: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    head_with(
        target,
        headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())),
    )
}

fn head_with(target: &str, headers: impl IntoIterator<Item = (String, Vec<u8>)>) -> Vec<u8> {
    let mut out = format!("GET {target} HTTP/1.1\r\nhost: hostile\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// What came back on one connection.
#[derive(Debug)]
struct Exchange {
    response: Response,
    /// Why writing stopped early (Envoy answered and closed before reading everything).
    write_error: Option<String>,
}

/// Writes `chunks` to a new connection, pausing `pause` between them (the pauses are part of
/// the scenario: a slow client), while reading the response on this thread until Envoy
/// closes the connection, with a bounded deadline.
fn exchange_chunks(addr: SocketAddr, chunks: Vec<Vec<u8>>, pause: Duration) -> Exchange {
    let stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut writer_stream = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || -> Option<String> {
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(pause);
            }
            if let Err(e) = writer_stream.write_all(chunk) {
                return Some(e.to_string());
            }
        }
        None
    });
    let deadline = Instant::now() + WAIT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut reader = &stream;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    Instant::now() < deadline,
                    "no complete response within {}s; got {:?}",
                    WAIT.as_secs(),
                    String::from_utf8_lossy(&raw)
                );
            }
            // Envoy resets after answering a request it did not read to the end.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => panic!("reading from {addr}: {e}"),
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    let write_error = writer.join().unwrap();
    let response = Response::parse(&raw).unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} (write error: {write_error:?})",
            String::from_utf8_lossy(&raw)
        )
    });
    Exchange {
        response,
        write_error,
    }
}

fn exchange(stack: &Stack, request: Vec<u8>) -> Exchange {
    exchange_chunks(stack.plain().unwrap(), vec![request], Duration::ZERO)
}

/// One stack, its access log and the upstream request count, for a series of requests.
struct Probe {
    stack: Stack,
    log: LogFollower,
    lines: usize,
}

impl Probe {
    fn new(stack: Stack) -> Self {
        let log = LogFollower::new(&stack.envoy.access_log);
        Probe {
            stack,
            log,
            lines: 0,
        }
    }

    fn upstream_requests(&self) -> u64 {
        self.stack
            .envoy
            .stat("cluster.httpbin.upstream_rq_total")
            .unwrap()
            .unwrap_or(0)
    }

    /// The next access-log line: exactly one, a valid JSON record.
    fn record(&mut self) -> Value {
        self.lines += 1;
        next_records(&mut self.log, 1).remove(0)
    }

    /// Sends `request`; Envoy must answer `status` itself: its own plain-text reply, a record
    /// of Envoy's fields only (the filter never ran, so no `rfma.decision`), nothing upstream.
    fn refused_by_envoy(&mut self, what: &str, request: Vec<u8>, status: u16) -> Exchange {
        let before = self.upstream_requests();
        let x = exchange(&self.stack, request);
        assert_eq!(x.response.status, status, "{what}: {:?}", x.response);
        assert_ne!(
            x.response.header("content-type"),
            Some("application/json"),
            "{what}: expected Envoy's own reply, got the filter's: {}",
            x.response.text()
        );
        let rec = self.record();
        assert_eq!(
            rec["http"]["response"]["status_code"],
            json!(status),
            "{what}: {rec}"
        );
        assert!(
            rec["rfma"].get("decision").is_none(),
            "{what}: Envoy answered before the filter, so the record has no decision: {rec}"
        );
        assert_eq!(self.upstream_requests(), before, "{what}: reached httpbin");
        x
    }

    /// Sends `request`; the filter must deny it with `status`/`reason`, logging one valid
    /// record that says so. Returns the record.
    fn denied(&mut self, what: &str, request: Vec<u8>, status: u16, reason: &str) -> Value {
        let before = self.upstream_requests();
        let x = exchange(&self.stack, request);
        assert_deny(&x.response, status, reason);
        let rec = self.record();
        assert_eq!(rec["rfma"]["decision"], "deny", "{what}: {rec}");
        assert_eq!(rec["rfma"]["reason"], reason, "{what}: {rec}");
        assert_eq!(
            rec["http"]["response"]["status_code"],
            json!(status),
            "{what}: {rec}"
        );
        assert_eq!(self.upstream_requests(), before, "{what}: reached httpbin");
        rec
    }

    /// Sends `request`; the filter must let it through (`decision` allow or bypass) to
    /// httpbin, which answers `status`. Returns the response and the record.
    fn passed(
        &mut self,
        what: &str,
        request: Vec<u8>,
        decision: &str,
        status: u16,
    ) -> (Response, Value) {
        let before = self.upstream_requests();
        let x = exchange(&self.stack, request);
        assert_eq!(x.response.status, status, "{what}: {:?}", x.response);
        let rec = self.record();
        assert_eq!(rec["rfma"]["decision"], decision, "{what}: {rec}");
        assert_eq!(
            rec["http"]["response"]["status_code"],
            json!(status),
            "{what}: {rec}"
        );
        assert_eq!(
            self.upstream_requests(),
            before + 1,
            "{what}: did not reach httpbin"
        );
        (x.response, rec)
    }

    /// A GET of `target` without a token: `bypass` (httpbin's `/status/200` answers 200) or
    /// `deny` (401 missing_token). Returns the record.
    fn tokenless(&mut self, target: &str, decision: &str) -> Value {
        match decision {
            "bypass" => self.passed(target, head(target, &[]), decision, 200).1,
            "deny" => self.denied(target, head(target, &[]), 401, "missing_token"),
            other => panic!("unknown decision {other}"),
        }
    }

    /// No line in the access log beyond the ones the requests accounted for, and the token,
    /// its digest and the digest's first half appear in no Envoy or httpbin output.
    fn finish(mut self) {
        let extra = self.log.new_lines();
        assert!(extra.is_empty(), "unexpected access-log lines: {extra:#?}");
        let access = std::fs::read_to_string(&self.stack.envoy.access_log).unwrap_or_default();
        assert_eq!(access.lines().count(), self.lines, "{access}");
        assert_secrets_nowhere(&self.stack);
    }
}

fn assert_secrets_nowhere(stack: &Stack) {
    let digest = sha256_hex(TOKEN);
    let outputs = [
        ("Envoy's log and access log", all_envoy_output(stack)),
        ("httpbin's log", stack.httpbin.process.log_text()),
        (
            "httpbin's access log",
            std::fs::read_to_string(&stack.httpbin.access_log).unwrap_or_default(),
        ),
    ];
    for (name, text) in &outputs {
        for secret in [TOKEN, &TOKEN[8..], &digest, &digest[..32]] {
            assert!(
                !text
                    .to_ascii_lowercase()
                    .contains(&secret.to_ascii_lowercase()),
                "{name} contains the token or its digest ({secret})"
            );
        }
    }
}

/// httpbin's echo must not carry the token (the filter strips it before forwarding).
fn assert_echo_has_no_token(r: &Response) -> Value {
    let echo = r.json().unwrap();
    let text = echo.to_string().to_ascii_lowercase();
    assert!(
        !text.contains(&TOKEN.to_ascii_lowercase()) && !text.contains(&sha256_hex(TOKEN)),
        "httpbin received the token: {echo}"
    );
    assert_eq!(echoed_header(&echo, "x-rfma-token"), None, "{echo}");
    echo
}

/// Runs curl over h2c with these extra arguments; returns (exit code, stderr).
fn h2c(stack: &Stack, args: &[String], path: &str) -> (i32, String) {
    let out = std::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--http2-prior-knowledge",
            "--output",
            "/dev/null",
        ])
        .args(args)
        .arg(url(stack.plain().unwrap(), path))
        .output()
        .expect("curl (installed by scripts/install-deps.sh)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Envoy with the plain listener's connection manager patched (fields merged at its top
/// level), loaded through file-based LDS.
fn start_patched(hcm: Value) -> Stack {
    start_with(wasm(), &config(), |spec, dir| {
        let lds = dir.join("lds");
        std::fs::create_dir(&lds).map_err(|e| e.to_string())?;
        let file = lds.join("listeners.json");
        spec.listener_source = ListenerSource::Dynamic { file: file.clone() };
        let mut listener = bootstrap::plain_listener(spec);
        let typed = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        for (k, v) in hcm.as_object().expect("an object") {
            typed[k] = v.clone();
        }
        bootstrap::write_lds_file(&file, &[listener]).map_err(|e| e.to_string())
    })
}

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

#[test]
fn control_bytes_in_header_values_are_refused_by_envoy_or_reach_the_filter_harmlessly() {
    let mut p = Probe::new(start(&config()));
    // NUL, other C0 controls and DEL in any header value, the token's included: Envoy's 400.
    for byte in [0x00u8, 0x01, 0x1b, 0x7f] {
        let mut ua = b"agent-".to_vec();
        ua.push(byte);
        p.refused_by_envoy(
            &format!("user-agent with 0x{byte:02x}"),
            head("/get", &[("user-agent", &ua)]),
            400,
        );
        let mut token = TOKEN.as_bytes().to_vec();
        token.push(byte);
        let x = p.refused_by_envoy(
            &format!("token followed by 0x{byte:02x}"),
            head("/get", &[("x-rfma-token", &token)]),
            400,
        );
        assert_eq!(x.response.text(), "Bad Request");
    }
    // A bare CR inside a value: Envoy drops it, the filter sees the rest.
    let rec = p.denied(
        "bare CR in user-agent",
        head("/get", &[("user-agent", b"a\rb")]),
        401,
        "missing_token",
    );
    assert_eq!(rec["user_agent"]["original"], "ab");
    // A bare LF ends the line: what follows is a header of its own, here a token header,
    // which is then a real token header (the client sent one; nothing is smuggled past).
    let lf = format!("agent\nx-rfma-token: {TOKEN}");
    let (r, rec) = p.passed(
        "bare LF in user-agent",
        head("/headers", &[("user-agent", lf.as_bytes())]),
        "allow",
        200,
    );
    assert_eq!(rec["user_agent"]["original"], "agent");
    assert_echo_has_no_token(&r);
    // CR LF followed by a space (obsolete line folding): joined with a space.
    let rec = p.denied(
        "folded user-agent",
        head("/get", &[("user-agent", b"first\r\n second")]),
        401,
        "missing_token",
    );
    assert_eq!(rec["user_agent"]["original"], "first second");
    // A tab is allowed, and escaped in the record.
    let rec = p.denied(
        "tab in user-agent",
        head("/get", &[("user-agent", b"a\tb")]),
        401,
        "missing_token",
    );
    assert_eq!(rec["user_agent"]["original"], "a\tb");
    // A token with a CR LF and a second token header after it: two token headers.
    let split = format!("{TOKEN}\r\nx-rfma-token: {TOKEN}");
    p.denied(
        "token header value with CR LF",
        head("/get", &[("x-rfma-token", split.as_bytes())]),
        400,
        "duplicate_token",
    );
    p.finish();
}

#[test]
fn quotes_unicode_and_invalid_utf8_in_header_values_give_one_valid_json_record() {
    let mut p = Probe::new(start(&config()));
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "JSON injection",
            br#"x","rfma":{"decision":"allow"},"y":"\"#,
            r#"x","rfma":{"decision":"allow"},"y":"\"#,
        ),
        (
            "backslashes",
            br"\\server\share\n\u0000",
            r"\\server\share\n\u0000",
        ),
        (
            "unicode",
            "é✓😀 ﻿ \u{2028}\u{2029}".as_bytes(),
            "é✓😀 ﻿ \u{2028}\u{2029}",
        ),
        // Envoy's JSON writer keeps the line valid by writing each byte of an invalid
        // sequence as the code point of the same number (`\u00ff` for 0xff).
        ("lone 0xff", b"a\xffb", "a\u{ff}b"),
        ("truncated sequence", b"a\xc3(b", "a\u{c3}(b"),
        ("lone continuation", b"\x80\x80", "\u{80}\u{80}"),
        ("overlong slash", b"\xc0\xaf", "\u{c0}\u{af}"),
        ("surrogate half", b"\xed\xa0\x80", "\u{ed}\u{a0}\u{80}"),
    ];
    for (what, ua, expected) in cases {
        // Denied (no token) and allowed (token): both records are one valid JSON line with
        // the value as sent.
        let rec = p.denied(
            what,
            head("/get", &[("user-agent", ua)]),
            401,
            "missing_token",
        );
        assert_eq!(
            rec["user_agent"]["original"],
            json!(expected),
            "{what}: {rec}"
        );
        let (r, rec) = p.passed(
            what,
            head(
                "/headers",
                &[("x-rfma-token", TOKEN.as_bytes()), ("user-agent", ua)],
            ),
            "allow",
            200,
        );
        assert_eq!(
            rec["user_agent"]["original"],
            json!(expected),
            "{what}: {rec}"
        );
        assert_eq!(rec["rfma"]["token"]["name"], "hostile");
        assert_echo_has_no_token(&r);
    }
    // Hostile trace headers: valid JSON, and no trace id made out of them (`trace.id` is
    // Envoy's own trace, and this Envoy has no tracer).
    for traceparent in [
        &br#"00-"}{-x-01"#[..],
        br#"00-4bf92f3577b34da6a3ce929d0e0e4736-"},{"-01"#,
    ] {
        let rec = p.denied(
            "hostile trace headers",
            head(
                "/get",
                &[("traceparent", traceparent), ("x-b3-traceid", b"\"\\\xff")],
            ),
            401,
            "missing_token",
        );
        assert_eq!(rec.get("trace"), None, "{rec}");
    }
    // The token itself with quotes or invalid UTF-8: a wrong token, nothing echoed.
    for bad in [&b"\"quoted\""[..], b"tok\xffen", "tökén".as_bytes()] {
        let rec = p.denied(
            "odd token bytes",
            head("/get", &[("x-rfma-token", bad)]),
            403,
            "invalid_token",
        );
        assert!(!rec.to_string().contains("quoted"), "{rec}");
    }
    p.finish();
}

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
        p.stack.httpbin.served_paths(),
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
        let served = p.stack.httpbin.served_paths();
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

#[test]
fn a_token_differing_in_case_is_rejected_and_surrounding_whitespace_is_trimmed() {
    let mut p = Probe::new(start(&config()));
    let upper = TOKEN.to_ascii_uppercase();
    let lower = TOKEN.to_ascii_lowercase();
    let mut one_flipped = TOKEN.to_string();
    one_flipped.replace_range(0..1, &TOKEN[..1].to_ascii_uppercase());
    for (what, value) in [
        ("upper case", upper.as_str()),
        ("lower case", lower.as_str()),
        ("first letter flipped", one_flipped.as_str()),
    ] {
        assert_ne!(value, TOKEN);
        p.denied(
            what,
            head("/headers", &[("x-rfma-token", value.as_bytes())]),
            403,
            "invalid_token",
        );
    }
    // Spaces and tabs around the value are trimmed (by Envoy's codec or by the filter).
    for value in [
        format!("{TOKEN} "),
        format!("{TOKEN}\t"),
        format!("{TOKEN} \t \t"),
        format!("  \t{TOKEN}"),
        format!("\t {TOKEN} \t"),
    ] {
        let (r, rec) = p.passed(
            &format!("{value:?}"),
            head("/headers", &[("x-rfma-token", value.as_bytes())]),
            "allow",
            200,
        );
        assert_eq!(rec["rfma"]["token"]["name"], "hostile");
        assert_echo_has_no_token(&r);
    }
    // Whitespace inside, a trailing non-breaking space or vertical tab: not the token.
    let inner = format!("{} {}", &TOKEN[..8], &TOKEN[8..]);
    p.denied(
        "inner space",
        head("/headers", &[("x-rfma-token", inner.as_bytes())]),
        403,
        "invalid_token",
    );
    let nbsp = format!("{TOKEN}\u{a0}");
    p.denied(
        "trailing no-break space",
        head("/headers", &[("x-rfma-token", nbsp.as_bytes())]),
        403,
        "invalid_token",
    );
    let mut vt = TOKEN.as_bytes().to_vec();
    vt.push(0x0b);
    p.refused_by_envoy(
        "trailing vertical tab",
        head("/headers", &[("x-rfma-token", &vt)]),
        400,
    );
    p.finish();
}

#[test]
fn a_request_written_in_slow_chunks_is_decided_as_if_sent_at_once() {
    let mut p = Probe::new(start(&config()));
    let addr = p.stack.plain().unwrap();
    // Cut inside the method, inside the path, between CR and LF, inside a header name,
    // inside the token, between CR and LF again, and between the last CR and LF; 120 ms
    // between writes.
    let pause = Duration::from_millis(120);
    let cut = |request: &[u8], at: &[(&str, usize)]| -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut start = 0;
        for (marker, offset) in at {
            let pos = start
                + request[start..]
                    .windows(marker.len())
                    .position(|w| w == marker.as_bytes())
                    .unwrap_or_else(|| panic!("{marker:?} not in the request"));
            chunks.push(request[start..pos + offset].to_vec());
            start = pos + offset;
        }
        chunks.push(request[start..].to_vec());
        chunks
    };
    for (token, status, decision) in [
        (TOKEN, 200u16, "allow"),
        ("hostile-wrong-token-e2e!", 403, "deny"),
    ] {
        let request = head("/headers", &[("x-rfma-token", token.as_bytes())]);
        let markers = [
            ("GET", 1),
            ("/headers", 4),
            ("\r\nhost", 1),
            ("x-rfma-token", 6),
            (&token[4..12], 4),
            ("\r\nconnection", 1),
            ("close\r\n\r\n", 8),
        ];
        let chunks = cut(&request, &markers);
        assert_eq!(chunks.len(), 8);
        assert_eq!(chunks.concat(), request);
        let before = p.upstream_requests();
        let started = Instant::now();
        let x = exchange_chunks(addr, chunks, pause);
        assert!(
            started.elapsed() >= pause * 7,
            "the writes were not spread out"
        );
        assert_eq!(x.write_error, None);
        assert_eq!(x.response.status, status, "{:?}", x.response);
        let rec = p.record();
        assert_eq!(rec["rfma"]["decision"], decision, "{rec}");
        assert_eq!(rec["url"]["path"], "/headers");
        if decision == "allow" {
            assert_eq!(p.upstream_requests(), before + 1);
            assert_echo_has_no_token(&x.response);
            assert_eq!(rec["rfma"]["token"]["name"], "hostile");
        } else {
            assert_deny(&x.response, 403, "invalid_token");
            assert_eq!(p.upstream_requests(), before);
        }
    }
    // Byte by byte, for the first 40 bytes, then the rest: still one request, one record.
    let request = head("/headers", &[("x-rfma-token", TOKEN.as_bytes())]);
    let mut chunks: Vec<Vec<u8>> = request[..40].iter().map(|b| vec![*b]).collect();
    chunks.push(request[40..].to_vec());
    let x = exchange_chunks(addr, chunks, Duration::from_millis(5));
    assert_eq!(x.response.status, 200);
    assert_echo_has_no_token(&x.response);
    assert_eq!(p.record()["rfma"]["decision"], "allow");
    p.finish();
}
