//! Validity windows on the compiled module: a token is accepted from its `not_before` to its
//! `not_after`, both instants included, to the nanosecond of the proxy's clock (the host's
//! clock is set per request with `at_ns`); outside it the deny is 401 `token_not_yet_valid` or
//! `expired_token`, with its challenge, its counter and the token's name handed over. The clock
//! is read only for a matched token that has a window, and before its principals are checked.

use crate::common::{
    LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_SPIFFE, SLEEP_TOKEN, config, host_with, sha256_hex,
    token_counter,
};
use rfma_wasm_host::{Response, Status};
use serde_json::{Value, json};

const CLOCK: &str = "proxy_get_current_time_nanoseconds";
const PEER: &str = "proxy_get_property";

const S: u64 = 1_000_000_000;
/// Far in the future (2554), with room for the host's request latency on its clock.
const LAST_NS: u64 = u64::MAX - S;
/// 2026-03-01T00:00:00Z, `march`'s `not_before`.
const MARCH_1: u64 = 1_772_323_200 * S;
/// 2026-03-31T23:59:59.999999999Z, `march`'s `not_after`.
const MARCH_31_END: u64 = 1_775_001_600 * S - 1;

const MARCH_TOKEN: &str = "march-demo-token";
const BOUND_TOKEN: &str = "bound-march-demo-token";
const FUTURE_TOKEN: &str = "future-demo-token";
const EXPIRED_TOKEN: &str = "expired-demo-token";

/// The test configuration plus windowed tokens: `march` (2026-03 in UTC, given in +02:00 and
/// Z), `bound-march` (the same window, bound to `sleep`), `future` (from 2100), `expired`
/// (until 2000).
fn windowed_config() -> Value {
    let mut cfg = config();
    let tokens = cfg["tokens"].as_array_mut().unwrap();
    tokens.push(json!({"name": "march", "sha256": sha256_hex(MARCH_TOKEN),
        "not_before": "2026-03-01T02:00:00+02:00", "not_after": "2026-03-31T23:59:59.999999999Z"}));
    tokens.push(
        json!({"name": "bound-march", "sha256": sha256_hex(BOUND_TOKEN),
        "not_before": "2026-03-01T00:00:00Z", "not_after": "2026-03-31T23:59:59.999999999Z",
        "principals": [SLEEP_SPIFFE]}),
    );
    tokens.push(json!({"name": "future", "sha256": sha256_hex(FUTURE_TOKEN),
        "not_before": "2100-01-01T00:00:00Z"}));
    tokens.push(
        json!({"name": "expired", "sha256": sha256_hex(EXPIRED_TOKEN),
        "not_after": "1999-12-31T23:59:59Z"}),
    );
    cfg
}

fn calls(r: &Response, name: &str) -> usize {
    r.calls().iter().filter(|c| c.name == name).count()
}

fn assert_window_deny(r: &Response, reason: &str, token: &str) {
    let reply = r
        .local_reply()
        .unwrap_or_else(|| panic!("expected 401 {reason}, got {r:?}"));
    assert_eq!(reply.status, 401, "{r:?}");
    assert_eq!(reply.body_json()["error"], reason);
    assert_eq!(reply.details, format!("rfma_{reason}"));
    assert!(!r.is_forwarded());
    assert_eq!(
        r.client().unwrap().headers.get_all("www-authenticate"),
        vec![format!(
            r#"RFMA-Token realm="istio-demo", header="x-rfma-token", error="{reason}""#
        )]
    );
    let handed = r.handover();
    assert_eq!(handed["decision"], "deny");
    assert_eq!(handed["reason"], reason);
    assert_eq!(handed["token"], token, "the deny names the token to re-key");
}

#[test]
fn a_window_holds_from_not_before_to_not_after_both_included_to_the_nanosecond() {
    let mut host = host_with(&windowed_config());
    let mut plugin = host.plugin().unwrap();
    let mut at = |ns: u64| {
        plugin
            .request()
            .header("x-rfma-token", MARCH_TOKEN)
            .at_ns(ns)
            .send()
    };
    for ns in [MARCH_1, MARCH_1 + 1, MARCH_31_END - 1, MARCH_31_END] {
        let r = at(ns);
        assert!(r.is_forwarded(), "at {ns}: {r:?}");
        assert_eq!(r.handover()["token"], "march");
        assert_eq!(calls(&r, CLOCK), 1);
    }
    assert_window_deny(&at(MARCH_1 - 1), "token_not_yet_valid", "march");
    assert_window_deny(&at(MARCH_31_END + 1), "expired_token", "march");
    assert_window_deny(&at(0), "token_not_yet_valid", "march");
    assert_window_deny(&at(LAST_NS), "expired_token", "march");
}

#[test]
fn open_ended_windows_limit_one_side_only() {
    let mut host = host_with(&windowed_config());
    let mut plugin = host.plugin().unwrap();
    let mut send = |token: &str, ns: u64| {
        plugin
            .request()
            .header("x-rfma-token", token)
            .at_ns(ns)
            .send()
    };
    let year_2100 = 4_102_444_800 * S;
    assert_window_deny(
        &send(FUTURE_TOKEN, year_2100 - 1),
        "token_not_yet_valid",
        "future",
    );
    assert!(send(FUTURE_TOKEN, year_2100).is_forwarded());
    assert!(send(FUTURE_TOKEN, LAST_NS).is_forwarded());
    let end_of_1999 = 946_684_799 * S;
    assert!(send(EXPIRED_TOKEN, 0).is_forwarded());
    assert!(send(EXPIRED_TOKEN, end_of_1999).is_forwarded());
    assert_window_deny(
        &send(EXPIRED_TOKEN, end_of_1999 + 1),
        "expired_token",
        "expired",
    );
    // The host's default clock (2026-01-02) is long past 1999.
    let r = plugin
        .request()
        .header("x-rfma-token", EXPIRED_TOKEN)
        .send();
    assert_window_deny(&r, "expired_token", "expired");
}

#[test]
fn only_a_matched_token_with_a_window_reads_the_clock() {
    let mut host = host_with(&windowed_config());
    let mut plugin = host.plugin().unwrap();
    let no_clock = [
        plugin.request().header("x-rfma-token", LEGACY_TOKEN).send(),
        plugin
            .request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(SLEEP_SPIFFE)
            .send(),
        plugin.request().send(),
        plugin.request().header("x-rfma-token", "nope").send(),
        plugin
            .request()
            .header("x-rfma-token", MARCH_TOKEN)
            .header("x-rfma-token", MARCH_TOKEN)
            .send(),
        plugin
            .request()
            .path("/status/200")
            .header("x-rfma-token", EXPIRED_TOKEN)
            .send(),
    ];
    for r in &no_clock {
        assert_eq!(calls(r, CLOCK), 0, "{r:?}");
    }
    let windowed = [MARCH_TOKEN, FUTURE_TOKEN, EXPIRED_TOKEN]
        .map(|t| plugin.request().header("x-rfma-token", t).send());
    for r in &windowed {
        assert_eq!(calls(r, CLOCK), 1, "{r:?}");
    }
}

#[test]
fn a_clock_the_proxy_cannot_read_is_500_and_nothing_passes() {
    let mut host = host_with(&windowed_config());
    host.inject_fault(CLOCK, Status::InternalFailure);
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .header("x-rfma-token", MARCH_TOKEN)
        .at_ns(MARCH_1)
        .send();
    assert_eq!(r.status(), Some(500), "{r:?}");
    assert!(!r.is_forwarded());
    assert_eq!(r.handover()["reason"], "internal_error");
    assert!(!r.handover().contains_key("token"));
    // A token without a window does not need the clock.
    let r = plugin.request().header("x-rfma-token", LEGACY_TOKEN).send();
    assert!(r.is_forwarded());
}

#[test]
fn the_window_is_checked_before_the_principals() {
    let mut host = host_with(&windowed_config());
    let mut plugin = host.plugin().unwrap();
    // Expired whoever sends it: the peer's certificate is not even read.
    let r = plugin
        .request()
        .header("x-rfma-token", BOUND_TOKEN)
        .peer(OTHER_SPIFFE)
        .at_ns(MARCH_31_END + 1)
        .send();
    assert_window_deny(&r, "expired_token", "bound-march");
    assert_eq!(calls(&r, PEER), 0);
    // Inside the window, the principals decide.
    let r = plugin
        .request()
        .header("x-rfma-token", BOUND_TOKEN)
        .peer(OTHER_SPIFFE)
        .at_ns(MARCH_1)
        .send();
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.handover()["reason"], "principal_mismatch");
    assert!(!r.handover().contains_key("token"));
    assert_eq!(
        r.client()
            .unwrap()
            .headers
            .get_all("www-authenticate")
            .len(),
        0
    );
    let r = plugin
        .request()
        .header("x-rfma-token", BOUND_TOKEN)
        .peer(SLEEP_SPIFFE)
        .at_ns(MARCH_1)
        .send();
    assert!(r.is_forwarded());
    assert_eq!(calls(&r, CLOCK), 1);
    assert_eq!(calls(&r, PEER), 1);
}

#[test]
fn each_window_deny_moves_its_own_counter_and_not_the_tokens() {
    let mut host = host_with(&windowed_config());
    let mut plugin = host.plugin().unwrap();
    for ns in [MARCH_1 - 1, MARCH_31_END + 1, MARCH_31_END + 2, MARCH_1] {
        plugin
            .request()
            .header("x-rfma-token", MARCH_TOKEN)
            .at_ns(ns)
            .send();
    }
    assert_eq!(plugin.counter("rfma_denied_token_not_yet_valid_total"), 1);
    assert_eq!(plugin.counter("rfma_denied_expired_token_total"), 2);
    assert_eq!(plugin.counter("rfma_allowed_total"), 1);
    assert_eq!(plugin.counter(&token_counter("march")), 1);
    assert_eq!(plugin.counter("rfma_denied_invalid_token_total"), 0);
}

/// The life cycle the configuration gives: a token pushed with a `not_after` in the past is
/// refused; pushed again with a later one, the same token passes (the window is the
/// configuration's, read when it is applied).
#[test]
fn a_push_that_moves_the_window_takes_effect_on_the_next_request() {
    let mut cfg = json!({"tokens": [
        {"name": "rotating", "sha256": sha256_hex(MARCH_TOKEN), "not_after": "2026-01-01T00:00:00Z"}
    ]});
    let mut host = host_with(&cfg);
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", MARCH_TOKEN)
        .send();
    assert_window_deny(&r, "expired_token", "rotating");
    cfg["tokens"][0]["not_after"] = json!("2026-01-31T00:00:00Z");
    host.configure(cfg.to_string()).unwrap();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", MARCH_TOKEN)
        .send();
    assert!(r.is_forwarded(), "{r:?}");
}

#[test]
fn no_window_deny_carries_the_token_or_its_digest() {
    let mut host = host_with(&windowed_config());
    let mut plugin = host.plugin().unwrap();
    let r = plugin
        .request()
        .header("x-rfma-token", EXPIRED_TOKEN)
        .send();
    let reply = r.local_reply().unwrap();
    let mut seen = reply.body_str();
    for (name, value) in reply.headers.pairs() {
        seen.push_str(&format!("\n{name}: {value}"));
    }
    for value in r.handover().values() {
        seen.push_str(&format!("\n{value}"));
    }
    for line in r.logs() {
        seen.push_str(&format!("\n{}", line.message));
    }
    assert!(!seen.contains(EXPIRED_TOKEN), "{seen}");
    assert!(!seen.contains(&sha256_hex(EXPIRED_TOKEN)[..8]), "{seen}");
    assert!(seen.contains("expired_token"), "{seen}");
}
