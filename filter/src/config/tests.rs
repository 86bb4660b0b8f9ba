//! The configuration contract: what each field accepts, its defaults, and every error's words.

use super::*;
use crate::digest;
// In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const SLEEP_DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // sha256("test")

fn err(config: &str) -> String {
    parse(config.as_bytes()).unwrap_err().to_string()
}

#[test]
fn full_configuration_is_precomputed() {
    let p = parse(
        format!(
            r#"{{
            "header": "X-RFMA-Token",
            "tokens": [
                {{"name": "sleep", "sha256": "{SLEEP_DIGEST}", "principals": ["spiffe://cluster.local/ns/demo/sa/sleep"]}},
                {{"name": "legacy", "value": "test1"}}
            ],
            "bypass": [{{"path_prefix": "/status/", "methods": ["GET", "HEAD"]}}, {{"path_prefix": "/healthz"}}],
            "strip_header": false,
            "log": {{"sink": "filter_state", "allowed": false, "denied": true}}
        }}"#
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(p.header, "x-rfma-token");
    assert_eq!(
        p.digests,
        vec![digest::sha256(b"test"), digest::sha256(b"test1")]
    );
    assert_eq!(p.tokens[0].name, "sleep");
    assert_eq!(
        p.tokens[0].principals,
        vec!["spiffe://cluster.local/ns/demo/sa/sleep".to_owned()]
    );
    assert!(p.tokens[1].principals.is_empty());
    assert_eq!(
        p.bypass[0],
        BypassRule {
            path_prefix: "/status/".into(),
            methods: vec!["GET".into(), "HEAD".into()]
        }
    );
    assert!(p.bypass[1].methods.is_empty());
    assert!(!p.strip_header);
    assert_eq!(
        p.log,
        LogPolicy {
            sink: Sink::FilterState,
            allowed: false,
            denied: true
        }
    );
    assert_eq!(p.plain_text_tokens, 1);
    assert!(!p.records(true));
    assert!(p.records(false));
}

#[test]
fn defaults_apply_when_fields_are_left_out() {
    let p = parse(br#"{"tokens":[{"name":"a","value":"x"}]}"#).unwrap();
    assert_eq!(p.header, DEFAULT_HEADER);
    assert_eq!(p.realm, "istio-demo");
    assert!(p.strip_header);
    assert!(p.bypass.is_empty());
    assert_eq!(
        p.log,
        LogPolicy {
            sink: Sink::FilterState,
            allowed: true,
            denied: true
        }
    );
    let none = parse(br#"{"tokens":[{"name":"a","value":"x"}],"log":{"sink":"none"}}"#).unwrap();
    assert!(!none.records(true) && !none.records(false));
    // A log object that sets one field keeps the defaults of the others.
    let quiet = parse(br#"{"tokens":[{"name":"a","value":"x"}],"log":{"denied":false}}"#).unwrap();
    assert_eq!(
        quiet.log,
        LogPolicy {
            sink: Sink::FilterState,
            allowed: true,
            denied: false
        }
    );
    assert!(quiet.records(true) && !quiet.records(false));
}

/// A configuration whose second token has the given window fields (JSON members).
fn window(fields: &str) -> String {
    format!(r#"{{"tokens":[{{"name":"a","value":"x"}},{{"name":"b","value":"y"{fields}}}]}}"#)
}

#[test]
fn validity_windows_are_read_to_the_nanosecond_in_utc() {
    let p = parse(
        window(r#","not_before":"2026-01-01T00:00:00+01:00","not_after":"2026-12-31T23:59:59.999999999Z""#)
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(p.tokens[0].not_before, None);
    assert_eq!(p.tokens[0].not_after, None);
    assert!(!p.tokens[0].has_window());
    assert_eq!(p.tokens[1].not_before, Some(1_767_222_000_000_000_000));
    assert_eq!(p.tokens[1].not_after, Some(1_798_761_599_999_999_999));
    assert!(p.tokens[1].has_window());
    // Either bound alone is a window.
    let only_after = parse(window(r#","not_after":"2026-12-31T23:59:59Z""#).as_bytes()).unwrap();
    assert_eq!(only_after.tokens[1].not_before, None);
    assert!(only_after.tokens[1].has_window());
    let only_before = parse(window(r#","not_before":"1970-01-01T00:00:00Z""#).as_bytes()).unwrap();
    assert_eq!(only_before.tokens[1].not_before, Some(0));
    assert!(only_before.tokens[1].has_window());
    // One nanosecond is the shortest window; the same instant written two ways is none.
    assert!(
        parse(
            window(r#","not_before":"2026-06-01T00:00:00Z","not_after":"2026-06-01T00:00:00.000000001Z""#)
                .as_bytes()
        )
        .is_ok()
    );
    assert_eq!(
        err(&window(
            r#","not_before":"2026-06-01T02:00:00+02:00","not_after":"2026-06-01T00:00:00Z""#
        )),
        "tokens[1].not_after: must be later than not_before"
    );
}

const REALM_ERROR: &str = "realm: expected 1-64 printable ASCII characters without '\"' or '\\'";

#[test]
fn the_realm_is_any_printable_ascii_a_quoted_string_takes_as_is() {
    let realm = |r: &str| {
        parse(format!(r#"{{"tokens":[{{"name":"a","value":"x"}}],"realm":{r}}}"#).as_bytes())
            .map(|p| p.realm)
    };
    assert_eq!(realm(r#""payments api""#).unwrap(), "payments api");
    assert_eq!(realm(r#"" ""#).unwrap(), " ");
    let all: String = (b' '..=b'~')
        .filter(|b| *b != b'"' && *b != b'\\')
        .map(char::from)
        .take(64)
        .collect();
    assert_eq!(all.len(), 64);
    assert_eq!(realm(&format!("\"{all}\"")).unwrap(), all);
    assert_eq!(
        realm(&format!("\"{}\"", "r".repeat(65)))
            .unwrap_err()
            .to_string(),
        REALM_ERROR
    );
}

#[test]
fn uppercase_hex_digests_are_accepted() {
    let p = parse(
        format!(
            r#"{{"tokens":[{{"name":"a","sha256":"{}"}}]}}"#,
            SLEEP_DIGEST.to_uppercase()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(p.digests[0], digest::sha256(b"test"));
}

#[test]
fn a_thousand_and_twenty_four_tokens_is_the_limit() {
    let entries = |n: usize| {
        (0..n)
            .map(|i| format!(r#"{{"name":"t{i}","value":"v{i}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(
        parse(format!(r#"{{"tokens":[{}]}}"#, entries(MAX_TOKENS)).as_bytes())
            .unwrap()
            .tokens
            .len(),
        MAX_TOKENS
    );
    assert_eq!(
        err(&format!(r#"{{"tokens":[{}]}}"#, entries(MAX_TOKENS + 1))),
        "tokens: expected 1 to 1024 entries, got 1025"
    );
}

#[test]
fn every_error_names_its_field() {
    let t = |rest: &str| format!(r#"{{"tokens":[{{"name":"a","value":"x"}}]{rest}}}"#);
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "configuration: empty; expected a JSON object with a \"tokens\" list"),
        ("  \n".into(), "configuration: empty; expected a JSON object with a \"tokens\" list"),
        // serde_json's words for a syntax error, with a line and column.
        ("hello: [".into(), "configuration: not valid JSON: expected value at line 1 column 1"),
        ("{".into(), "configuration: not valid JSON: EOF while parsing an object at line 1 column 1"),
        ("true".into(), "configuration: expected an object, got a boolean"),
        ("[]".into(), "configuration: expected an object, got an array"),
        ("{}".into(), "tokens: required"),
        (r#"{"tokens": {}}"#.into(), "tokens: expected an array, got an object"),
        (r#"{"tokens": []}"#.into(), "tokens: expected 1 to 1024 entries, got 0"),
        (r#"{"tokens": ["x"]}"#.into(), "tokens[0]: expected an object, got a string"),
        (t(r#","extra":1"#), "extra: unknown field (expected one of: header, realm, tokens, bypass, strip_header, log)"),
        (r#"{"tokens":[{"value":"x"}]}"#.into(), "tokens[0].name: required"),
        (r#"{"tokens":[{"name":"A","value":"x"}]}"#.into(), "tokens[0].name: expected 1-63 characters of [a-z0-9._-]"),
        (r#"{"tokens":[{"name":"","value":"x"}]}"#.into(), "tokens[0].name: expected 1-63 characters of [a-z0-9._-]"),
        (
            format!(r#"{{"tokens":[{{"name":"{}","value":"x"}}]}}"#, "a".repeat(64)),
            "tokens[0].name: expected 1-63 characters of [a-z0-9._-]",
        ),
        (r#"{"tokens":[{"name":7,"value":"x"}]}"#.into(), "tokens[0].name: expected a string, got a number"),
        (
            r#"{"tokens":[{"name":"a","value":"x"},{"name":"a","value":"y"}]}"#.into(),
            "tokens[1].name: duplicate name \"a\" (also tokens[0])",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x"},{"name":"b","value":"x"}]}"#.into(),
            "tokens[1].value: duplicate token digest (same as tokens[0])",
        ),
        (
            format!(r#"{{"tokens":[{{"name":"a","value":"test"}},{{"name":"b","sha256":"{SLEEP_DIGEST}"}}]}}"#),
            "tokens[1].sha256: duplicate token digest (same as tokens[0])",
        ),
        (r#"{"tokens":[{"name":"a"}]}"#.into(), "tokens[0]: set exactly one of \"sha256\" or \"value\""),
        (
            format!(r#"{{"tokens":[{{"name":"a","value":"x","sha256":"{SLEEP_DIGEST}"}}]}}"#),
            "tokens[0]: set exactly one of \"sha256\" or \"value\", not both",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x"},{"name":"b","sha256":"abc"}]}"#.into(),
            "tokens[1].sha256: expected 64 hex digits",
        ),
        (
            format!(r#"{{"tokens":[{{"name":"a","sha256":"{}"}}]}}"#, SLEEP_DIGEST.replace('f', "g")),
            "tokens[0].sha256: expected 64 hex digits",
        ),
        (r#"{"tokens":[{"name":"a","value":""}]}"#.into(), "tokens[0].value: must not be empty"),
        (r#"{"tokens":[{"name":"a","value":" x"}]}"#.into(), "tokens[0].value: must not start or end with whitespace"),
        (r#"{"tokens":[{"name":"a","value":1}]}"#.into(), "tokens[0].value: expected a string, got a number"),
        (window(r#","not_before":"2026-12-31""#), "tokens[1].not_before: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
        (window(r#","not_after":"2026-12-31T23:59:59""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
        (window(r#","not_after":"2026-02-29T00:00:00Z""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
        (window(r#","not_after":"2026-12-31 23:59:59Z""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
        (window(r#","not_after":"tomorrow""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
        (window(r#","not_after":"""#), "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z"),
        (window(r#","not_after":1798761599"#), "tokens[1].not_after: expected a string, got a number"),
        (window(r#","not_before":null"#), "tokens[1].not_before: expected a string, got null"),
        (window(r#","not_before":"1969-12-31T23:59:59Z""#), "tokens[1].not_before: expected a time the proxy's clock can tell, from 1970-01-01T00:00:00Z to 2554-07-21T23:34:33Z"),
        (window(r#","not_after":"2554-07-21T23:34:34Z""#), "tokens[1].not_after: expected a time the proxy's clock can tell, from 1970-01-01T00:00:00Z to 2554-07-21T23:34:33Z"),
        (
            window(r#","not_before":"2026-12-31T23:59:59Z","not_after":"2026-12-31T23:59:59Z""#),
            "tokens[1].not_after: must be later than not_before",
        ),
        (
            window(r#","not_before":"2027-01-01T00:00:00Z","not_after":"2026-12-31T23:59:59Z""#),
            "tokens[1].not_after: must be later than not_before",
        ),
        (
            window(r#","not_before":"2027-01-01T00:00:00Z","not_after":"soon""#),
            "tokens[1].not_after: expected an RFC 3339 timestamp such as 2026-12-31T23:59:59Z",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x","nmae":"b"}]}"#.into(),
            "tokens[0].nmae: unknown field (expected one of: name, sha256, value, principals, not_before, not_after)",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x","principals":["cluster.local/ns/demo/sa/sleep"]}]}"#.into(),
            "tokens[0].principals[0]: expected a SPIFFE ID starting with \"spiffe://\"",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x","principals":["spiffe://"]}]}"#.into(),
            "tokens[0].principals[0]: expected a SPIFFE ID starting with \"spiffe://\"",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x","principals":[]}]}"#.into(),
            "tokens[0].principals: expected at least one SPIFFE ID (leave the field out to accept any peer)",
        ),
        (
            r#"{"tokens":[{"name":"a","value":"x","principals":"spiffe://a"}]}"#.into(),
            "tokens[0].principals: expected an array, got a string",
        ),
        (t(r#","header":"x token""#), "header: expected an HTTP header name (1-128 token characters, no pseudo-header)"),
        (t(r#","header":":path""#), "header: expected an HTTP header name (1-128 token characters, no pseudo-header)"),
        (t(r#","header":"""#), "header: expected an HTTP header name (1-128 token characters, no pseudo-header)"),
        // Found writing the fuzz targets: a token sent in x-request-id was echoed in the deny body.
        (
            t(r#","header":"X-Request-Id""#),
            "header: x-request-id is read for the access record and the deny reply; choose another header",
        ),
        (
            t(r#","header":"user-agent""#),
            "header: user-agent is read for the access record and the deny reply; choose another header",
        ),
        (t(r#","bypass":{}"#), "bypass: expected an array, got an object"),
        (t(r#","bypass":[{"methods":["GET"]}]"#), "bypass[0].path_prefix: required"),
        (t(r#","bypass":[{"path_prefix":"status/"}]"#), "bypass[0].path_prefix: must start with \"/\""),
        (
            t(r#","bypass":[{"path_prefix":"/a?b"}]"#),
            "bypass[0].path_prefix: must be a plain path (no query, fragment, space or control character)",
        ),
        (
            t(r#","bypass":[{"path_prefix":"/a","methods":["get"]}]"#),
            "bypass[0].methods[0]: expected an upper-case HTTP method such as \"GET\"",
        ),
        (
            t(r#","bypass":[{"path_prefix":"/a","methods":["GET","PO ST"]}]"#),
            "bypass[0].methods[1]: expected an upper-case HTTP method such as \"GET\"",
        ),
        (
            t(r#","bypass":[{"path_prefix":"/a","methods":[]}]"#),
            "bypass[0].methods: expected at least one method (leave the field out to match every method)",
        ),
        (
            t(r#","bypass":[{"path_prefix":"/a","method":["GET"]}]"#),
            "bypass[0].method: unknown field (expected one of: path_prefix, methods)",
        ),
        (t(r#","realm":"""#), REALM_ERROR),
        (t(r#","realm":7"#), "realm: expected a string, got a number"),
        (t(r#","realm":"a\"b""#), REALM_ERROR),
        (t(r#","realm":"a\\b""#), REALM_ERROR),
        (t(r#","realm":"tab\there""#), REALM_ERROR),
        (t(r#","realm":"caf\u00e9""#), REALM_ERROR),
        (t(r#","realm":"line\nbreak""#), REALM_ERROR),
        (t(&format!(r#","realm":"{}""#, "r".repeat(65))), REALM_ERROR),
        (t(r#","strip_header":"yes""#), "strip_header: expected true or false, got a string"),
        (t(r#","log":[]"#), "log: expected an object, got an array"),
        (t(r#","log":{"sink":"stdout"}"#), "log.sink: expected one of: filter_state, none"),
        (t(r#","log":{"sink":"proxy_log"}"#), "log.sink: the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)"),
        (t(r#","log":{"sink":"both"}"#), "log.sink: the filter no longer writes its own log line; Envoy's access log writes the record (expected one of: filter_state, none)"),
        (t(r#","log":{"allowed":1}"#), "log.allowed: expected true or false, got a number"),
        (t(r#","log":{"denied":null}"#), "log.denied: expected true or false, got null"),
        (t(r#","log":{"level":"info"}"#), "log.level: unknown field (expected one of: sink, allowed, denied)"),
    ];
    for (config, expected) in cases {
        assert_eq!(err(&config), expected, "config: {config}");
    }
}

#[test]
fn an_unknown_key_with_control_characters_is_escaped_onto_one_line() {
    // Found by the `config` fuzz target: the key was copied raw into the log line.
    assert_eq!(
        err("{\"a\\nb\\u0000\\u2028\":1}"),
        "a\\nb\\u{0}\\u{2028}: unknown field (expected one of: header, realm, tokens, bypass, strip_header, log)"
    );
    assert_eq!(
        err(r#"{"tokens":[{"name":"a","value":"x","k\r":1}]}"#),
        "tokens[0].k\\r: unknown field (expected one of: name, sha256, value, principals, not_before, not_after)"
    );
    // Found by the `config` fuzz target: an empty key gave an empty field.
    assert_eq!(
        err(r#"{"":1}"#),
        r#""": unknown field (expected one of: header, realm, tokens, bypass, strip_header, log)"#
    );
    assert_eq!(
        err(r#"{"tokens":[{"name":"a","value":"x"}],"log":{"":true}}"#),
        r#"log."": unknown field (expected one of: sink, allowed, denied)"#
    );
}

#[test]
fn a_duplicate_key_anywhere_is_an_error_of_the_whole_document() {
    // Which of the two would count is a guess no reader of the configuration should have to make.
    assert_eq!(
        err(r#"{"tokens":[{"name":"a","name":"b","value":"x"}]}"#),
        "configuration: not valid JSON: duplicate object key at line 1 column 29"
    );
    assert_eq!(
        err(r#"{"tokens":[{"name":"a","value":"x"}],"x":1,"x":2}"#),
        "configuration: not valid JSON: duplicate object key at line 1 column 46"
    );
}

#[test]
fn escapes_are_decoded_before_the_rules() {
    let p = parse(br#"{"tokens":[{"name":"\u0061","value":"caf\u00e9"}],"realm":"a\/b"}"#).unwrap();
    assert_eq!(p.tokens[0].name, "a");
    assert_eq!(p.digests[0], digest::sha256("caf\u{e9}".as_bytes()));
    assert_eq!(p.realm, "a/b");
}

#[test]
fn a_value_of_the_wrong_kind_is_named_before_any_rule() {
    // The shape (fields and kinds) is read whole first, then the rules run: the kind error is
    // the one named, even where a rule on an earlier field would also fail.
    assert_eq!(
        err(r#"{"tokens":[{"name":"A","value":1}]}"#),
        "tokens[0].value: expected a string, got a number"
    );
    assert_eq!(
        err(r#"{"tokens":[{"name":"a","value":"x","sha256":{}}]}"#),
        "tokens[0].sha256: expected a string, got an object"
    );
    // A member written as null is given, and of the wrong kind; only a left-out one is absent.
    assert_eq!(
        err(r#"{"tokens":[{"name":"a","value":"x"}],"bypass":null}"#),
        "bypass: expected an array, got null"
    );
}

#[test]
fn non_utf8_and_deeply_nested_input_are_errors_not_panics() {
    assert!(parse(b"\xff\xfe").is_err());
    let deep = format!("{{\"tokens\":{}}}", "[".repeat(10_000));
    assert_eq!(
        err(&deep),
        "configuration: not valid JSON: nesting too deep at line 1 column 26"
    );
}
