//! Every configuration error on the compiled module: `proxy_on_configure`
//! returns false (the proxy refuses the plugin) after exactly one error line
//! that names the offending field, and never echoes a token.

use crate::common::{LEGACY_TOKEN, config, host_with, rejected, sha256_hex};
use rfma_wasm_host::{ConfigureError, Host, LogLevel, filter_module};
use serde_json::json;

/// A token value that must never appear in a log line.
const SECRET: &str = "s3cr3t-demo-value";

fn check(config: impl AsRef<str>, field: &str) {
    let errors = rejected(config.as_ref());
    assert_eq!(errors.len(), 1, "expected one error line, got {errors:?}");
    let line = &errors[0];
    assert_eq!(line.level, LogLevel::Error);
    let prefix = format!("rfma: invalid plugin config: {field}: ");
    assert!(
        line.message.starts_with(&prefix),
        "expected {prefix:?}..., got {:?}",
        line.message
    );
    assert!(
        !line.message.contains(SECRET),
        "the error echoes a token: {}",
        line.message
    );
    assert!(
        !line.message.contains(&sha256_hex(SECRET)),
        "{}",
        line.message
    );
}

fn tokens(list: serde_json::Value) -> String {
    json!({ "tokens": list }).to_string()
}

fn with(key: &str, value: serde_json::Value) -> String {
    let mut cfg = json!({"tokens": [{"name": "a", "value": SECRET}]});
    cfg[key] = value;
    cfg.to_string()
}

macro_rules! rejects {
    ($($name:ident: $config:expr => $field:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check($config, $field);
            }
        )*
    };
}

rejects! {
    empty_configuration: "" => "configuration";
    blank_configuration: " \n\t" => "configuration";
    not_json: r#"{"tokens": ["# => "configuration";
    not_an_object: "[1, 2]" => "configuration";
    unknown_top_level_field: with("tokenz", json!([])) => "tokenz";
    tokens_missing: json!({"header": "x-rfma-token"}).to_string() => "tokens";
    tokens_not_a_list: tokens(json!({"name": "a"})) => "tokens";
    tokens_empty: tokens(json!([])) => "tokens";
    too_many_tokens: tokens(json!((0..1025).map(|i| json!({"name": format!("t{i}"), "value": format!("v{i}")})).collect::<Vec<_>>())) => "tokens";
    token_not_an_object: tokens(json!(["abc"])) => "tokens[0]";
    unknown_token_field: tokens(json!([{"name": "a", "value": SECRET, "scope": "x"}])) => "tokens[0].scope";
    name_missing: tokens(json!([{"value": SECRET}])) => "tokens[0].name";
    name_empty: tokens(json!([{"name": "", "value": SECRET}])) => "tokens[0].name";
    name_upper_case: tokens(json!([{"name": "Sleep", "value": SECRET}])) => "tokens[0].name";
    name_bad_character: tokens(json!([{"name": "a b", "value": SECRET}])) => "tokens[0].name";
    name_too_long: tokens(json!([{"name": "a".repeat(64), "value": SECRET}])) => "tokens[0].name";
    duplicate_name: tokens(json!([{"name": "a", "value": "one1"}, {"name": "a", "value": SECRET}])) => "tokens[1].name";
    both_sha256_and_value: tokens(json!([{"name": "a", "value": SECRET, "sha256": sha256_hex("x")}])) => "tokens[0]";
    neither_sha256_nor_value: tokens(json!([{"name": "a"}])) => "tokens[0]";
    empty_value: tokens(json!([{"name": "a", "value": ""}])) => "tokens[0].value";
    value_not_a_string: tokens(json!([{"name": "a", "value": 12345}])) => "tokens[0].value";
    sha256_too_short: tokens(json!([{"name": "a", "value": "x1"}, {"name": "b", "sha256": &sha256_hex(SECRET)[1..]}])) => "tokens[1].sha256";
    sha256_not_hex: tokens(json!([{"name": "a", "sha256": "g".repeat(64)}])) => "tokens[0].sha256";
    duplicate_digest_value_then_sha256: tokens(json!([{"name": "a", "value": SECRET}, {"name": "b", "sha256": sha256_hex(SECRET)}])) => "tokens[1].sha256";
    duplicate_digest_two_values: tokens(json!([{"name": "a", "value": SECRET}, {"name": "b", "value": SECRET}])) => "tokens[1].value";
    not_before_not_a_timestamp: tokens(json!([{"name": "a", "value": SECRET, "not_before": "next monday"}])) => "tokens[0].not_before";
    not_before_without_an_offset: tokens(json!([{"name": "a", "value": SECRET, "not_before": "2026-01-01T00:00:00"}])) => "tokens[0].not_before";
    not_before_a_date_only: tokens(json!([{"name": "a", "value": SECRET, "not_before": "2026-01-01"}])) => "tokens[0].not_before";
    not_before_not_a_string: tokens(json!([{"name": "a", "value": SECRET, "not_before": 1767225600}])) => "tokens[0].not_before";
    not_before_before_1970: tokens(json!([{"name": "a", "value": SECRET, "not_before": "1969-12-31T23:59:59Z"}])) => "tokens[0].not_before";
    not_after_no_such_day: tokens(json!([{"name": "a", "value": "x1"}, {"name": "b", "value": SECRET, "not_after": "2026-02-29T00:00:00Z"}])) => "tokens[1].not_after";
    not_after_bad_offset: tokens(json!([{"name": "a", "value": SECRET, "not_after": "2026-12-31T23:59:59+2:00"}])) => "tokens[0].not_after";
    not_after_past_2554: tokens(json!([{"name": "a", "value": SECRET, "not_after": "2600-01-01T00:00:00Z"}])) => "tokens[0].not_after";
    not_after_equal_to_not_before: tokens(json!([{"name": "a", "value": SECRET, "not_before": "2026-12-31T23:59:59Z", "not_after": "2027-01-01T01:59:59+02:00"}])) => "tokens[0].not_after";
    not_after_before_not_before: tokens(json!([{"name": "a", "value": "x1"}, {"name": "b", "value": SECRET, "not_before": "2027-01-01T00:00:00Z", "not_after": "2026-12-31T23:59:59Z"}])) => "tokens[1].not_after";
    principal_not_spiffe: tokens(json!([{"name": "a", "value": SECRET, "principals": ["cluster.local/ns/demo/sa/sleep"]}])) => "tokens[0].principals[0]";
    principal_empty_spiffe: tokens(json!([{"name": "a", "value": SECRET, "principals": ["spiffe://"]}])) => "tokens[0].principals[0]";
    principals_empty_list: tokens(json!([{"name": "a", "value": SECRET, "principals": []}])) => "tokens[0].principals";
    header_with_space: with("header", json!("x rfma")) => "header";
    header_pseudo: with("header", json!(":authority")) => "header";
    header_empty: with("header", json!("")) => "header";
    header_not_a_string: with("header", json!(1)) => "header";
    bypass_not_a_list: with("bypass", json!({"path_prefix": "/x"})) => "bypass";
    bypass_prefix_missing: with("bypass", json!([{"methods": ["GET"]}])) => "bypass[0].path_prefix";
    bypass_prefix_without_slash: with("bypass", json!([{"path_prefix": "status/"}])) => "bypass[0].path_prefix";
    bypass_prefix_with_query: with("bypass", json!([{"path_prefix": "/status?x"}])) => "bypass[0].path_prefix";
    bypass_method_lower_case: with("bypass", json!([{"path_prefix": "/s/", "methods": ["get"]}])) => "bypass[0].methods[0]";
    bypass_method_with_space: with("bypass", json!([{"path_prefix": "/s/", "methods": ["GET", "GE T"]}])) => "bypass[0].methods[1]";
    bypass_methods_empty: with("bypass", json!([{"path_prefix": "/s/", "methods": []}])) => "bypass[0].methods";
    bypass_unknown_field: with("bypass", json!([{"path_prefix": "/s/", "prefix": "/t"}])) => "bypass[0].prefix";
    realm_empty: with("realm", json!("")) => "realm";
    realm_too_long: with("realm", json!("r".repeat(65))) => "realm";
    realm_with_a_quote: with("realm", json!("a\"b")) => "realm";
    realm_with_a_backslash: with("realm", json!("a\\b")) => "realm";
    realm_not_ascii: with("realm", json!("caf\u{e9}")) => "realm";
    realm_with_a_control_character: with("realm", json!("a\nb")) => "realm";
    realm_not_a_string: with("realm", json!(["istio-demo"])) => "realm";
    strip_header_not_a_boolean: with("strip_header", json!("yes")) => "strip_header";
    log_sink_unknown: with("log", json!({"sink": "stdout"})) => "log.sink";
    log_unknown_field: with("log", json!({"sink": "both", "level": "info"})) => "log.level";
    log_allowed_not_a_boolean: with("log", json!({"allowed": 1})) => "log.allowed";
    log_denied_not_a_boolean: with("log", json!({"denied": "no"})) => "log.denied";
    log_not_an_object: with("log", json!("both")) => "log";
}

#[test]
fn the_full_example_configuration_is_accepted() {
    let mut host = host_with(&config());
    assert!(host.plugin().is_some());
}

#[test]
fn a_minimal_configuration_gets_the_defaults() {
    let cfg = json!({"tokens": [{"name": "demo", "value": LEGACY_TOKEN}]});
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    // Default header x-rfma-token, stripping on, the decision handed to the access log.
    let r = plugin.request().header("X-Rfma-Token", LEGACY_TOKEN).send();
    assert!(r.is_forwarded());
    assert!(!r.forwarded_headers().unwrap().contains("x-rfma-token"));
    assert_eq!(r.decision().as_deref(), Some("allow"));
    // No bypass by default.
    assert_eq!(
        plugin.request().path("/status/200").send().status(),
        Some(401)
    );
}

#[test]
fn plain_text_values_are_warned_about_once_per_vm() {
    let mut host = host_with(&config());
    let warnings = |host: &Host| {
        host.logs()
            .iter()
            .filter(|l| l.level == LogLevel::Warn && l.message.contains("plain text"))
            .count()
    };
    assert_eq!(warnings(&host), 1);
    assert!(!host.logs().iter().any(|l| l.message.contains(LEGACY_TOKEN)));
    // A configuration push to the same VM does not warn again.
    host.configure(config().to_string()).unwrap();
    assert_eq!(warnings(&host), 1);
    // Digests only: no warning on a fresh VM.
    let digests = json!({"tokens": [{"name": "a", "sha256": sha256_hex(SECRET)}]});
    let host = host_with(&digests);
    assert_eq!(warnings(&host), 0);
}

#[test]
fn a_rejected_push_leaves_the_previous_plugin_serving() {
    let mut host = host_with(&config());
    let err = host.configure("{}").unwrap_err();
    assert!(matches!(err, ConfigureError::Rejected { .. }), "{err}");
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", LEGACY_TOKEN)
        .send();
    assert!(r.is_forwarded());
}

#[test]
fn a_refused_plugin_is_never_served() {
    let mut host = Host::load(filter_module()).unwrap();
    assert!(host.configure("not json").is_err());
    assert!(host.plugin().is_none());
}
