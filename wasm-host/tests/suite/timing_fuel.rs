//! Constant-time rejection, counted in fuel: the work the compiled module does to reject a
//! wrong token does not depend on how close the guess came to a configured token.
//!
//! The filter hashes the presented token and compares SHA-256 digests, so "how close" means
//! two things, and both are covered:
//! - the presented token shares 0 to 63 leading characters with a configured token (what an
//!   attacker guessing character by character controls);
//! - the presented token's digest shares 0 to 31 leading bytes with a configured digest (what
//!   a non-constant-time comparison would leak). Tokens whose digests share 1 or 2 leading
//!   bytes are found by brute force; for longer shared prefixes the test crafts the configured
//!   `sha256` instead, since it chooses the configuration.
//!
//! Fuel (about one unit per wasm instruction) is deterministic, so instead of a statistical
//! test over noisy timings these tests demand exact equality over many requests: the same
//! fuel for every class, on every request after warm-up. An early exit in the comparison, a
//! branch on the first differing byte, or a loop over a shared prefix would change the count.

use rfma_wasm_host::{Host, Response, filter_module};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// Requests sent to each fresh VM before measuring (the first requests of a VM may grow its
/// heap; later ones reuse it).
const WARM_UP: usize = 2;
/// Measured requests per class.
const ROUNDS: usize = 16;
/// Fixed request details, so nothing but the token differs between requests.
const REQUEST_ID: &str = "8c0f3d5e-2b1a-4c6d-9e7f-0a1b2c3d4e5f";
const AT_NS: u64 = 1_795_000_000_000_000_000;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How many leading bytes two digests share.
fn shared_prefix(a: &[u8; 32], b: &[u8; 32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A host configured with these `(name, digest)` entries.
fn host_with(entries: &[(&str, [u8; 32])]) -> Host {
    let tokens: Vec<_> = entries
        .iter()
        .map(|(name, d)| json!({ "name": name, "sha256": hex(d) }))
        .collect();
    let mut host = Host::load(filter_module()).unwrap_or_else(|e| panic!("{e}"));
    host.configure(json!({ "tokens": tokens }).to_string())
        .unwrap_or_else(|e| panic!("configuration refused: {e:?}"));
    host
}

/// Sends one request with this token; asserts it was rejected as `invalid_token` with the
/// reason handed to the access log, and returns its fuel.
fn reject_fuel(host: &mut Host, token: &str) -> u64 {
    let r: Response = host
        .plugin()
        .expect("configured")
        .request()
        .path("/anything")
        .request_id(REQUEST_ID)
        .at_ns(AT_NS)
        .header("x-rfma-token", token)
        .send();
    assert!(r.vm_failure().is_none(), "{:?}", r.vm_failure());
    assert_eq!(r.status(), Some(403), "{r:?}");
    let handed = r.handover();
    assert_eq!(handed["reason"], "invalid_token", "{handed:?}");
    r.fuel()
}

/// Fuel of `ROUNDS` rejections after `WARM_UP`; all must be equal (a VM in steady state
/// spends the same on the same request).
fn steady_fuel(host: &mut Host, token: &str) -> u64 {
    for _ in 0..WARM_UP {
        reject_fuel(host, token);
    }
    let samples: Vec<u64> = (0..ROUNDS).map(|_| reject_fuel(host, token)).collect();
    assert!(
        samples.iter().all(|&f| f == samples[0]),
        "the same rejection cost different fuel on one VM: {samples:?}"
    );
    samples[0]
}

/// Rejection fuel of each `(label, token)` class, the classes interleaved request by request
/// on one VM (so every class sees the same VM state), `ROUNDS` times after `WARM_UP` rounds.
fn interleaved_fuel(host: &mut Host, classes: &[(String, String)]) -> Vec<(String, u64)> {
    for _ in 0..WARM_UP {
        for (_, t) in classes {
            reject_fuel(host, t);
        }
    }
    let mut fuel = Vec::new();
    for _ in 0..ROUNDS {
        for (label, t) in classes {
            fuel.push((label.clone(), reject_fuel(host, t)));
        }
    }
    fuel
}

/// Asserts every `(label, fuel)` is the same, and returns that fuel.
fn all_equal(what: &str, fuel: &[(String, u64)]) -> u64 {
    let first = fuel[0].1;
    let differing: Vec<_> = fuel.iter().filter(|(_, f)| *f != first).collect();
    assert!(
        differing.is_empty(),
        "{what}: rejection fuel depends on the guess; first {first}, differing {differing:?}"
    );
    first
}

/// A 64-character token of `[a-z0-9]`, from a seed.
fn token_64(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize])
        })
        .collect()
}

#[test]
fn rejection_fuel_is_the_same_whatever_the_token_shares_with_a_right_one() {
    let right = token_64(1);
    let other = token_64(2);
    // Wrong tokens of the same length sharing 0, 1, 16, 32, 48 and 63 leading characters with
    // the right one, and one differing only in its first character.
    let mut classes: Vec<(String, String)> = [0usize, 1, 16, 32, 48, 63]
        .iter()
        .map(|&n| {
            let mut t = right[..n].to_owned();
            t.push_str(&other[n..]);
            if t.as_bytes()[n] == right.as_bytes()[n] {
                t.replace_range(n..=n, if &right[n..=n] == "x" { "y" } else { "x" });
            }
            (format!("shares {n} leading characters"), t)
        })
        .collect();
    let mut first_differs = right.clone();
    first_differs.replace_range(0..1, if &right[..1] == "x" { "y" } else { "x" });
    classes.push(("differs only in its first character".into(), first_differs));
    for (label, t) in &classes {
        assert_eq!(t.len(), 64, "{label}");
        assert_ne!(t, &right, "{label}");
    }
    // The right token configured by digest, and (a separate VM) by plain-text value: a
    // filter comparing plain text would leak here even if it compared digests in constant time.
    let by_digest = host_with(&[("right", sha256(right.as_bytes()))]);
    let mut by_value = Host::load(filter_module()).unwrap_or_else(|e| panic!("{e}"));
    by_value
        .configure(json!({ "tokens": [{ "name": "right", "value": right }] }).to_string())
        .unwrap_or_else(|e| panic!("configuration refused: {e:?}"));
    for (how, mut host) in [("sha256", by_digest), ("value", by_value)] {
        let fuel = interleaved_fuel(&mut host, &classes);
        let f = all_equal(&format!("token prefixes, configured by {how}"), &fuel);
        println!(
            "rejection fuel (token configured by {how}), {} requests over {} classes of shared token prefix: {f} each",
            fuel.len(),
            classes.len()
        );
        // Sanity: the right token is accepted on the same VM.
        let ok = host
            .plugin()
            .unwrap()
            .request()
            .path("/anything")
            .header("x-rfma-token", &right)
            .send();
        assert!(ok.is_forwarded(), "{ok:?}");
    }
}

#[test]
fn rejection_fuel_is_the_same_for_tokens_whose_digests_share_0_1_or_2_leading_bytes() {
    let configured_token = token_64(3);
    let target = sha256(configured_token.as_bytes());
    // Brute force: 64-character tokens whose digests share exactly 0, 1 and 2 leading bytes
    // with the configured digest (2 bytes takes about 65,000 hashes).
    let mut found: [Option<String>; 3] = [None, None, None];
    let mut seed = 1_000u64;
    while found.iter().any(Option::is_none) {
        seed += 1;
        assert!(seed < 10_000_000, "brute force did not converge");
        let t = token_64(seed);
        let n = shared_prefix(&sha256(t.as_bytes()), &target);
        if n < 3 && found[n].is_none() {
            found[n] = Some(t);
        }
    }
    let tokens: Vec<(String, String)> = found
        .into_iter()
        .enumerate()
        .map(|(n, t)| (format!("digest shares {n} leading bytes"), t.unwrap()))
        .collect();
    for (label, t) in &tokens {
        let n: usize = label.split(' ').nth(2).unwrap().parse().unwrap();
        assert_eq!(shared_prefix(&sha256(t.as_bytes()), &target), n);
    }
    let mut host = host_with(&[("target", target)]);
    let fuel = interleaved_fuel(&mut host, &tokens);
    let f = all_equal("brute-forced digest prefixes", &fuel);
    println!(
        "rejection fuel, {} requests, digests sharing 0/1/2 leading bytes (brute force, {} hashes): {f} each",
        fuel.len(),
        seed - 1_000
    );
}

/// A configured digest that shares exactly `n` leading bytes with `d` (and differs in every
/// byte after them).
fn sharing_prefix(d: &[u8; 32], n: usize) -> [u8; 32] {
    let mut c = *d;
    for b in c.iter_mut().skip(n) {
        *b = !*b;
    }
    c
}

/// A configured digest equal to `d` except in byte `k`.
fn differing_only_at(d: &[u8; 32], k: usize) -> [u8; 32] {
    let mut c = *d;
    c[k] ^= 0x01;
    c
}

#[test]
fn rejection_fuel_is_the_same_for_configured_digests_sharing_0_to_31_leading_bytes() {
    let presented = "timing-probe-token-0123456789";
    let d = sha256(presented.as_bytes());
    let mut fuel = Vec::new();
    for n in 0..32 {
        let c = sharing_prefix(&d, n);
        assert_eq!(shared_prefix(&c, &d), n);
        let mut host = host_with(&[("near", c)]);
        fuel.push((
            format!("configured digest shares {n} leading bytes"),
            steady_fuel(&mut host, presented),
        ));
    }
    // Equal in 31 bytes, differing in one byte at the start, the middle or the end.
    for k in [0, 15, 31] {
        let c = differing_only_at(&d, k);
        let mut host = host_with(&[("near", c)]);
        fuel.push((
            format!("configured digest differs only in byte {k}"),
            steady_fuel(&mut host, presented),
        ));
    }
    let f = all_equal("crafted configured digests", &fuel);
    println!(
        "rejection fuel, {} VMs x {ROUNDS} requests, configured digest sharing 0..=31 leading bytes: {f} each",
        fuel.len()
    );
}

#[test]
fn rejection_fuel_does_not_depend_on_where_in_the_allowlist_the_near_miss_is() {
    // Eight entries: seven unrelated digests and one sharing 31 bytes with the presented
    // token's digest, at each position in turn; and the same list without any near miss.
    let presented = "timing-probe-token-0123456789";
    let d = sha256(presented.as_bytes());
    let unrelated: Vec<[u8; 32]> = (0..8u8).map(|i| sha256(&[b'u', i])).collect();
    let names = ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7"];
    let mut fuel = Vec::new();
    for position in 0..8 {
        let mut entries: Vec<(&str, [u8; 32])> = names
            .iter()
            .copied()
            .zip(unrelated.iter().copied())
            .collect();
        entries[position].1 = differing_only_at(&d, 31);
        let mut host = host_with(&entries);
        fuel.push((
            format!("near miss at position {position}"),
            steady_fuel(&mut host, presented),
        ));
    }
    let entries: Vec<(&str, [u8; 32])> = names
        .iter()
        .copied()
        .zip(unrelated.iter().copied())
        .collect();
    let mut host = host_with(&entries);
    fuel.push(("no near miss".into(), steady_fuel(&mut host, presented)));
    let f = all_equal("position in the allowlist", &fuel);
    println!("rejection fuel with 8 configured digests, near miss anywhere or nowhere: {f} each");
}
