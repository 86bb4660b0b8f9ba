//! A token differing only in case is rejected; whitespace around it is trimmed.

use super::support::*;
use crate::e2e_support::*;

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
