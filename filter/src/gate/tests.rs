//! The decision as a whole: the order of the checks, each rule and deny reason, validity
//! windows at their edges, and which host lookups each request costs.

use super::*;
use crate::config;
use std::cell::Cell;
// In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn policy() -> Policy {
    let bound = digest::sha256(b"bound-token")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    config::parse(
        format!(
            r#"{{"tokens":[
                {{"name":"legacy","value":"test1"}},
                {{"name":"sleep","sha256":"{bound}","principals":["spiffe://cluster.local/ns/demo/sa/sleep"]}}
            ],
            "bypass":[{{"path_prefix":"/status/","methods":["GET","HEAD"]}},{{"path_prefix":"/public"}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn run(method: &str, path: &str, tokens: &[&str], peer: Option<&str>) -> Decision {
    let values: Vec<&[u8]> = tokens.iter().map(|t| t.as_bytes()).collect();
    decide::<()>(
        &policy(),
        Request {
            method: method.as_bytes(),
            path: path.as_bytes(),
        },
        values,
        || Ok(peer.map(str::to_owned)),
        || panic!("no token of this policy has a window: the clock is never read"),
    )
    .decision
}

const GET: Request<'static> = Request {
    method: b"GET",
    path: b"/get",
};

/// A policy with windowed tokens: `window` (2026 inclusive, bound to a principal),
/// `from` (from 2026 on), `until` (until the end of 2026), `always` (no window).
fn windowed() -> Policy {
    config::parse(
        br#"{"tokens":[
            {"name":"window","value":"w","not_before":"2026-01-01T00:00:00Z","not_after":"2026-12-31T23:59:59.999999999Z",
             "principals":["spiffe://cluster.local/ns/demo/sa/sleep"]},
            {"name":"from","value":"f","not_before":"2026-01-01T00:00:00+01:00"},
            {"name":"until","value":"u","not_after":"2026-12-31T23:59:59Z"},
            {"name":"always","value":"a"}
        ]}"#,
    )
    .unwrap()
}

/// Decides `token` at `now` (from a peer that is `sleep`), counting the clock reads.
fn at(policy: &Policy, token: &str, now: Result<u64, ()>, reads: &Cell<u32>) -> Verdict {
    decide(
        policy,
        GET,
        [token.as_bytes()],
        || Ok(Some("spiffe://cluster.local/ns/demo/sa/sleep".to_owned())),
        || {
            reads.set(reads.get().saturating_add(1));
            now
        },
    )
}

const S: u64 = 1_000_000_000;
/// 2026-01-01T00:00:00Z and 2026-12-31T23:59:59Z.
const START_2026: u64 = 1_767_225_600 * S;
const LAST_SECOND_2026: u64 = 1_798_761_599 * S;

#[test]
fn a_listed_token_is_allowed_with_its_index() {
    assert_eq!(
        run("GET", "/get", &["test1"], None),
        Decision::Allow { token: 0 }
    );
    assert_eq!(
        run("POST", "/anything?a=b", &["  test1\t"], None),
        Decision::Allow { token: 0 }
    );
}

#[test]
fn missing_or_empty_tokens_are_401() {
    assert_eq!(
        run("GET", "/get", &[], None),
        Decision::Deny(Reason::MissingToken)
    );
    assert_eq!(
        run("GET", "/get", &[""], None),
        Decision::Deny(Reason::MissingToken)
    );
    assert_eq!(
        run("GET", "/get", &[" \t "], None),
        Decision::Deny(Reason::MissingToken)
    );
}

#[test]
fn more_than_one_token_header_is_400_even_if_both_are_valid() {
    assert_eq!(
        run("GET", "/get", &["test1", "test1"], None),
        Decision::Deny(Reason::DuplicateToken)
    );
    assert_eq!(
        run("GET", "/get", &["", ""], None),
        Decision::Deny(Reason::DuplicateToken)
    );
}

#[test]
fn unknown_tokens_are_403_including_near_misses() {
    for wrong in ["test2", "TEST1", "test", "test1x", "t est1", "dGVzdDE="] {
        assert_eq!(
            run("GET", "/get", &[wrong], None),
            Decision::Deny(Reason::InvalidToken),
            "{wrong}"
        );
    }
}

#[test]
fn bound_tokens_need_a_listed_peer() {
    let sleep = "spiffe://cluster.local/ns/demo/sa/sleep";
    assert_eq!(
        run("GET", "/get", &["bound-token"], Some(sleep)),
        Decision::Allow { token: 1 }
    );
    assert_eq!(
        run(
            "GET",
            "/get",
            &["bound-token"],
            Some("spiffe://cluster.local/ns/demo/sa/other")
        ),
        Decision::Deny(Reason::PrincipalMismatch)
    );
    assert_eq!(
        run("GET", "/get", &["bound-token"], None),
        Decision::Deny(Reason::PrincipalMismatch)
    );
    assert_eq!(
        run("GET", "/get", &["bound-token"], Some(&format!("{sleep}/x"))),
        Decision::Deny(Reason::PrincipalMismatch)
    );
}

#[test]
fn the_peer_is_only_asked_for_bound_tokens_and_a_failed_lookup_denies() {
    let p = policy();
    let req = Request {
        method: b"GET",
        path: b"/get",
    };
    let asked = std::cell::Cell::new(0);
    let lookup = || -> Result<Option<String>, ()> {
        asked.set(asked.get() + 1);
        Err(())
    };
    let clock = || -> Result<u64, ()> { panic!("no window: no clock") };
    assert_eq!(
        decide(&p, req, [b"test1".as_slice()], lookup, clock).decision,
        Decision::Allow { token: 0 }
    );
    assert_eq!(asked.get(), 0);
    assert_eq!(
        decide(&p, req, [b"bound-token".as_slice()], lookup, clock),
        Verdict {
            decision: Decision::Deny(Reason::InternalError),
            token: Some(1)
        }
    );
    assert_eq!(asked.get(), 1);
}

#[test]
fn a_window_is_inclusive_at_both_ends_to_the_nanosecond() {
    let p = windowed();
    let reads = Cell::new(0);
    let last = LAST_SECOND_2026 + S - 1;
    let cases = [
        (START_2026 - 1, Decision::Deny(Reason::TokenNotYetValid)),
        (START_2026, Decision::Allow { token: 0 }),
        (START_2026 + 1, Decision::Allow { token: 0 }),
        (last - 1, Decision::Allow { token: 0 }),
        (last, Decision::Allow { token: 0 }),
        (last + 1, Decision::Deny(Reason::ExpiredToken)),
        (0, Decision::Deny(Reason::TokenNotYetValid)),
        (u64::MAX, Decision::Deny(Reason::ExpiredToken)),
    ];
    for (now, want) in cases {
        let verdict = at(&p, "w", Ok(now), &reads);
        assert_eq!(
            verdict,
            Verdict {
                decision: want,
                token: Some(0)
            },
            "at {now}"
        );
    }
    assert_eq!(reads.get(), 8, "one clock read per request");
}

#[test]
fn either_bound_alone_limits_one_side() {
    let p = windowed();
    let reads = Cell::new(0);
    // `from` starts at 2026-01-01T00:00:00+01:00, an hour before START_2026.
    let from = START_2026 - 3600 * S;
    assert_eq!(
        at(&p, "f", Ok(from - 1), &reads).decision,
        Decision::Deny(Reason::TokenNotYetValid)
    );
    assert_eq!(
        at(&p, "f", Ok(from), &reads).decision,
        Decision::Allow { token: 1 }
    );
    assert_eq!(
        at(&p, "f", Ok(u64::MAX), &reads).decision,
        Decision::Allow { token: 1 }
    );
    assert_eq!(
        at(&p, "u", Ok(0), &reads).decision,
        Decision::Allow { token: 2 }
    );
    assert_eq!(
        at(&p, "u", Ok(LAST_SECOND_2026), &reads).decision,
        Decision::Allow { token: 2 }
    );
    assert_eq!(
        at(&p, "u", Ok(LAST_SECOND_2026 + 1), &reads).decision,
        Decision::Deny(Reason::ExpiredToken)
    );
    assert_eq!(reads.get(), 6);
}

#[test]
fn the_clock_is_read_only_for_a_matched_token_with_a_window() {
    let p = windowed();
    let reads = Cell::new(0);
    assert_eq!(
        at(&p, "a", Err(()), &reads),
        Verdict {
            decision: Decision::Allow { token: 3 },
            token: Some(3)
        }
    );
    for wrong in ["nope", "", "W"] {
        assert_eq!(at(&p, wrong, Err(()), &reads).token, None, "{wrong:?}");
    }
    let bypass = config::parse(
        br#"{"tokens":[{"name":"w","value":"w","not_after":"2026-01-01T00:00:00Z"}],"bypass":[{"path_prefix":"/get"}]}"#,
    )
    .unwrap();
    assert_eq!(at(&bypass, "w", Err(()), &reads).decision, Decision::Bypass);
    assert_eq!(reads.get(), 0, "no clock without a matched windowed token");
    // A clock the proxy cannot read fails closed, and the verdict still names the token.
    assert_eq!(
        at(&p, "u", Err(()), &reads),
        Verdict {
            decision: Decision::Deny(Reason::InternalError),
            token: Some(2)
        }
    );
    assert_eq!(reads.get(), 1);
}

#[test]
fn the_window_is_checked_before_the_principals() {
    let p = windowed();
    let reads = Cell::new(0u32);
    let asked = Cell::new(0u32);
    let from_other = |now: u64| {
        decide::<()>(
            &p,
            GET,
            [b"w".as_slice()],
            || {
                asked.set(asked.get().saturating_add(1));
                Ok(Some("spiffe://cluster.local/ns/demo/sa/other".to_owned()))
            },
            || {
                reads.set(reads.get().saturating_add(1));
                Ok(now)
            },
        )
    };
    // Expired, or not yet valid, whoever sends it: the peer is not even asked.
    assert_eq!(
        from_other(u64::MAX).decision,
        Decision::Deny(Reason::ExpiredToken)
    );
    assert_eq!(
        from_other(0).decision,
        Decision::Deny(Reason::TokenNotYetValid)
    );
    assert_eq!(asked.get(), 0);
    // Inside the window the principals decide.
    assert_eq!(
        from_other(START_2026),
        Verdict {
            decision: Decision::Deny(Reason::PrincipalMismatch),
            token: Some(0)
        }
    );
    assert_eq!(asked.get(), 1);
    assert_eq!(reads.get(), 3);
    assert_eq!(
        at(&p, "w", Ok(START_2026), &reads).decision,
        Decision::Allow { token: 0 }
    );
}

#[test]
fn bypass_rules_match_prefix_and_method() {
    assert_eq!(run("GET", "/status/200", &[], None), Decision::Bypass);
    assert_eq!(run("HEAD", "/status/200?x=1", &[], None), Decision::Bypass);
    assert_eq!(
        run("POST", "/status/200", &[], None),
        Decision::Deny(Reason::MissingToken)
    );
    assert_eq!(run("DELETE", "/public/x", &[], None), Decision::Bypass);
    // A bypassed request needs no token, and a bad one does not matter.
    assert_eq!(
        run("GET", "/status/200", &["wrong", "twice"], None),
        Decision::Bypass
    );
}

#[test]
fn paths_that_could_normalise_elsewhere_are_never_bypassed() {
    for path in [
        "/STATUS/200",
        "/status",
        "/status/../anything",
        "/status/./200",
        "/status/..;/admin",
        "/status/%2e%2e/admin",
        "/status/%2E%2E/admin",
        "/status%2fadmin",
        "/status/%2fa",
        "/status/%2F..",
        "/status/%5c",
        "/status/%5c..",
        "/status/\\a",
        "/status/%252e%252e/admin",
        "/status/%252F",
        "/status/\\..\\admin",
        "//status/200",
        "/status?/200",
        "/x#/status/200",
    ] {
        assert_eq!(
            run("GET", path, &[], None),
            Decision::Deny(Reason::MissingToken),
            "{path}"
        );
    }
    // Dots that are not whole segments are fine.
    assert_eq!(
        run("GET", "/status/a..b/.well", &[], None),
        Decision::Bypass
    );
}
