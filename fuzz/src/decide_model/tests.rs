//! The unit tests of the decide model: the contract on the fixed policy, the validity windows,
//! and generated policies the filter accepts.

use super::policy::instant;
use super::*;
use crate::lines::secret;

fn h(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn the_model_follows_the_contract_on_the_fixed_policy() {
    let p = PolicySpec::fixed();
    let mut asked = Lookups::default();
    let mut run = |headers: &[(&str, &str)], peer: Peer| {
        decide(
            &p,
            &h(headers),
            false,
            &peer,
            Clock::At(DEFAULT_NOW),
            &mut asked,
        )
    };
    let sleep = Peer::Uri(PRINCIPALS[0].as_bytes().to_vec());
    assert_eq!(
        run(
            &[(":method", "GET"), (":path", "/status/200")],
            Peer::Absent
        ),
        Expected::Bypass
    );
    assert_eq!(
        run(
            &[(":method", "POST"), (":path", "/status/200")],
            Peer::Absent
        ),
        Expected::Deny("missing_token")
    );
    assert_eq!(
        run(
            &[(":method", "GET"), (":path", "/status/../x")],
            Peer::Absent
        ),
        Expected::Deny("missing_token")
    );
    assert_eq!(
        run(
            &[(":method", "GET"), (":path", "/status/%2E%2e")],
            Peer::Absent
        ),
        Expected::Deny("missing_token")
    );
    assert_eq!(
        run(
            &[(":path", "/get"), ("X-RFMA-TOKEN", secret(0))],
            Peer::Absent
        ),
        Expected::Allow(0)
    );
    assert_eq!(
        run(&[(":path", "/get"), ("x-rfma-token", " \t")], Peer::Absent),
        Expected::Deny("missing_token")
    );
    assert_eq!(
        run(
            &[("x-rfma-token", secret(0)), ("x-rfma-token", secret(0))],
            Peer::Absent
        ),
        Expected::Deny("duplicate_token")
    );
    assert_eq!(
        run(&[("x-rfma-token", "nope")], Peer::Absent),
        Expected::Deny("invalid_token")
    );
    assert_eq!(
        run(&[("x-rfma-token", secret(1))], sleep.clone()),
        Expected::Allow(1)
    );
    assert_eq!(
        run(&[("x-rfma-token", secret(1))], Peer::Absent),
        Expected::Deny("principal_mismatch")
    );
    assert_eq!(
        run(&[("x-rfma-token", secret(1))], Peer::LookupFails),
        Expected::Deny("internal_error")
    );
    assert_eq!(
        run(&[("x-rfma-token", secret(3))], sleep),
        Expected::Deny("invalid_token")
    );
    assert_eq!(asked, Lookups::default());
    assert_eq!(
        decide(
            &p,
            &[],
            true,
            &Peer::Absent,
            Clock::At(DEFAULT_NOW),
            &mut asked
        ),
        Expected::Deny("internal_error")
    );
}

#[test]
fn the_model_holds_windows_at_both_ends_before_the_principals() {
    let p = PolicySpec::fixed();
    let mut asked = Lookups::default();
    let run = |token: u8, peer: Peer, clock: Clock, asked: &mut Lookups| {
        decide(
            &p,
            &h(&[(":path", "/get"), ("x-rfma-token", secret(token))]),
            false,
            &peer,
            clock,
            asked,
        )
    };
    let start = instant("2026-01-01T00:00:00Z");
    let end = instant("2027-01-01T00:00:00Z") - 1;
    for (now, want) in [
        (start - 1, Expected::Deny("token_not_yet_valid")),
        (start, Expected::Allow(3)),
        (end, Expected::Allow(3)),
        (end + 1, Expected::Deny("expired_token")),
    ] {
        assert_eq!(run(4, Peer::Absent, Clock::At(now), &mut asked), want);
        assert_eq!(
            asked,
            Lookups {
                peer: false,
                clock: true,
                matched: Some(3)
            }
        );
    }
    assert_eq!(
        run(4, Peer::Absent, Clock::Fails, &mut asked),
        Expected::Deny("internal_error")
    );
    // tok-4: until the leap second, which is 2026-07-01T00:00:00Z; bound to sleep, but an
    // expired token is refused before the peer is asked.
    let leap = instant("2026-07-01T00:00:00Z");
    let other = Peer::Uri(PRINCIPALS[1].as_bytes().to_vec());
    assert_eq!(
        run(5, other.clone(), Clock::At(leap + 1), &mut asked),
        Expected::Deny("expired_token")
    );
    assert!(!asked.peer);
    assert_eq!(
        run(5, other, Clock::At(leap), &mut asked),
        Expected::Deny("principal_mismatch")
    );
    assert!(asked.peer && asked.clock);
    let sleep = Peer::Uri(PRINCIPALS[0].as_bytes().to_vec());
    assert_eq!(
        run(5, sleep, Clock::At(leap), &mut asked),
        Expected::Allow(4)
    );
    // No window, no clock.
    assert_eq!(
        run(0, Peer::Absent, Clock::Fails, &mut asked),
        Expected::Allow(0)
    );
    assert!(!asked.clock);
}

#[test]
fn generated_policies_are_valid_configurations() {
    for seed in 0u32..500 {
        let bytes: Vec<u8> = (0..64)
            .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 97) >> 7) as u8)
            .collect();
        let spec = PolicySpec::from_bytes(&bytes);
        let json = spec.to_json();
        let policy =
            rfma_filter::config::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(policy.tokens.len(), spec.tokens.len());
    }
}
