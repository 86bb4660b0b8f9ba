//! Sending raw HTTP/1.1 bytes (or curl over h2c) to an Envoy with the gate, and checking
//! each exchange: who answered, the one access-log record, what reached httpbin, and that
//! the token and its digest are nowhere.

use crate::e2e_support::*;
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The gate's only token: configured by digest, so its clear text is in no file at all.
pub(super) const TOKEN: &str = "hostile-Q7vX9kLm2Rp4-e2e";
/// Envoy's default limit on a request head: `max_request_headers_kb` 60.
pub(super) const HEAD_LIMIT: usize = 60 * 1024;
/// Envoy's default `max_headers_count`.
pub(super) const HEADER_COUNT_LIMIT: usize = 100;

pub(super) fn config() -> Value {
    json!({
        "tokens": [{ "name": "hostile", "sha256": sha256_hex(TOKEN) }],
        "bypass": [{ "path_prefix": "/status/", "methods": ["GET", "HEAD"] }],
    })
}

/// A raw HTTP/1.1 request head: `host` and `connection: close` plus `headers`, verbatim.
pub(super) fn head(target: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    head_with(
        target,
        headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())),
    )
}

pub(super) fn head_with(
    target: &str,
    headers: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Vec<u8> {
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
pub(super) struct Exchange {
    pub(super) response: Response,
    /// Why writing stopped early (Envoy answered and closed before reading everything).
    pub(super) write_error: Option<String>,
}

/// Writes `chunks` to a new connection, pausing `pause` between them (the pauses are part of
/// the scenario: a slow client), while reading the response on this thread until Envoy
/// closes the connection, with a bounded deadline.
pub(super) fn exchange_chunks(addr: SocketAddr, chunks: Vec<Vec<u8>>, pause: Duration) -> Exchange {
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

pub(super) fn exchange(stack: &Stack, request: Vec<u8>) -> Exchange {
    exchange_chunks(stack.plain().unwrap(), vec![request], Duration::ZERO)
}

/// One stack, its access log and the upstream request count, for a series of requests.
pub(super) struct Probe {
    pub(super) stack: Stack,
    pub(super) log: LogFollower,
    pub(super) lines: usize,
}

impl Probe {
    pub(super) fn new(stack: Stack) -> Self {
        let log = LogFollower::new(&stack.envoy.access_log);
        Probe {
            stack,
            log,
            lines: 0,
        }
    }

    pub(super) fn upstream_requests(&self) -> u64 {
        self.stack
            .envoy
            .stat("cluster.httpbin.upstream_rq_total")
            .unwrap()
            .unwrap_or(0)
    }

    /// The next access-log line: exactly one, a valid JSON record.
    pub(super) fn record(&mut self) -> Value {
        self.lines += 1;
        next_records(&mut self.log, 1).remove(0)
    }

    /// Sends `request`; Envoy must answer `status` itself: its own plain-text reply, a record
    /// of Envoy's fields only (the filter never ran, so no `rfma.decision`), nothing upstream.
    pub(super) fn refused_by_envoy(
        &mut self,
        what: &str,
        request: Vec<u8>,
        status: u16,
    ) -> Exchange {
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
    pub(super) fn denied(
        &mut self,
        what: &str,
        request: Vec<u8>,
        status: u16,
        reason: &str,
    ) -> Value {
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
    pub(super) fn passed(
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
    pub(super) fn tokenless(&mut self, target: &str, decision: &str) -> Value {
        match decision {
            "bypass" => self.passed(target, head(target, &[]), decision, 200).1,
            "deny" => self.denied(target, head(target, &[]), 401, "missing_token"),
            other => panic!("unknown decision {other}"),
        }
    }

    /// No line in the access log beyond the ones the requests accounted for, and the token,
    /// its digest and the digest's first half appear in no Envoy or httpbin output.
    pub(super) fn finish(mut self) {
        let extra = self.log.new_lines();
        assert!(extra.is_empty(), "unexpected access-log lines: {extra:#?}");
        let access = std::fs::read_to_string(&self.stack.envoy.access_log).unwrap_or_default();
        assert_eq!(access.lines().count(), self.lines, "{access}");
        assert_secrets_nowhere(&self.stack);
    }
}

pub(super) fn assert_secrets_nowhere(stack: &Stack) {
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
pub(super) fn assert_echo_has_no_token(r: &Response) -> Value {
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
pub(super) fn h2c(stack: &Stack, args: &[String], path: &str) -> (i32, String) {
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
pub(super) fn start_patched(hcm: Value) -> Stack {
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
