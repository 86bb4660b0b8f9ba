//! Control bytes, quotes, Unicode and invalid UTF-8 in header values: refused by Envoy, or
//! through the filter with one valid JSON record.

use super::support::*;
use crate::e2e_support::*;
use serde_json::json;

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
