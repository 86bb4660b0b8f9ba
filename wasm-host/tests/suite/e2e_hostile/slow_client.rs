//! A request written in slow chunks is decided as if it was sent at once.

use super::support::*;
use crate::e2e_support::*;
use std::time::{Duration, Instant};

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
