//! Random requests against the compiled module: the VM never traps, every request gets a
//! contract status and one valid record, the counters add up, and the module's linear memory
//! stops growing once warm (no leak per request).
//!
//! The generator is a seeded xorshift, so a failure names a seed that replays it exactly.

use crate::common::{COUNTERS, LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_SPIFFE, SLEEP_TOKEN, host};
use rfma_wasm_host::Plugin;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for test inputs, and reproducible from the seed.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get", "M-SEARCH",
];
const PATH_PARTS: [&str; 16] = [
    "/status/",
    "/status",
    "/STATUS/",
    "/get",
    "/anything",
    "..",
    ".",
    "%2e",
    "%2F",
    "%252e",
    "\\",
    ";",
    "?q=1",
    "#frag",
    "//",
    "200",
];

fn random_path(rng: &mut Rng) -> String {
    let parts = 1 + rng.below(5);
    let mut path = String::new();
    for _ in 0..parts {
        path.push_str(rng.pick::<&str>(&PATH_PARTS));
        if rng.below(3) == 0 {
            path.push('/');
        }
    }
    if !path.starts_with('/') && rng.below(4) != 0 {
        path.insert(0, '/');
    }
    path
}

fn random_token(rng: &mut Rng) -> Vec<u8> {
    match rng.below(7) {
        0 => LEGACY_TOKEN.as_bytes().to_vec(),
        1 => SLEEP_TOKEN.as_bytes().to_vec(),
        2 => format!(" \t{LEGACY_TOKEN} ").into_bytes(),
        3 => Vec::new(),
        4 => LEGACY_TOKEN.to_uppercase().into_bytes(),
        _ => rng.bytes(80),
    }
}

/// Sends one random request and checks what any request must satisfy.
fn send_random(plugin: &mut Plugin<'_>, rng: &mut Rng, seed: u64, i: usize) {
    let mut req = plugin
        .request()
        .method(rng.pick::<&str>(&METHODS))
        .path(&random_path(rng));
    for _ in 0..rng.below(4) {
        req = req.header_bytes(
            if rng.below(2) == 0 {
                "x-rfma-token"
            } else {
                "X-Rfma-Token"
            },
            &random_token(rng),
        );
    }
    for _ in 0..rng.below(6) {
        let name = *rng.pick(&[
            "user-agent",
            "traceparent",
            "x-b3-traceid",
            "x-request-id",
            "x-other",
            "cookie",
        ]);
        let value = rng.bytes(200);
        req = req.header_bytes(name, &value);
    }
    match rng.below(3) {
        0 => req = req.peer(SLEEP_SPIFFE),
        1 => req = req.peer(OTHER_SPIFFE),
        _ => {}
    }
    let r = req.send();
    let case = format!("seed {seed:#x}, request {i}");
    assert!(
        !r.vm_failed(),
        "{case}: the VM failed: {:?}",
        r.vm_failure()
    );
    match r.local_reply() {
        Some(reply) => assert!(
            [400, 401, 403].contains(&reply.status),
            "{case}: unexpected deny status {}",
            reply.status
        ),
        None => assert!(r.is_forwarded(), "{case}: neither replied nor forwarded"),
    }
    let handed = r.handover();
    let decision = handed
        .get("decision")
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        ["allow", "deny", "bypass"].contains(&decision),
        "{case}: decision {decision:?}"
    );
    assert_eq!(
        decision == "deny",
        r.local_reply().is_some(),
        "{case}: decision vs reply"
    );
    let record = format!("{handed:?}");
    for secret in [LEGACY_TOKEN, SLEEP_TOKEN] {
        assert!(
            !record.contains(secret),
            "{case}: a token leaked into what the access log gets"
        );
    }
}

#[test]
fn random_requests_never_trap_and_always_get_a_contract_answer() {
    for seed in [
        0x5eed_0001_u64,
        0xdead_beef_cafe_f00d,
        0x0123_4567_89ab_cdef,
    ] {
        let mut host = host();
        let mut plugin = host.plugin().unwrap();
        let mut rng = Rng(seed);
        let n = 1_500;
        for i in 0..n {
            send_random(&mut plugin, &mut rng, seed, i);
        }
        let counted: u64 = COUNTERS.iter().map(|c| plugin.counter(c)).sum();
        assert_eq!(
            counted, n as u64,
            "seed {seed:#x}: every request counted exactly once"
        );
        assert_eq!(
            plugin.counter("rfma_denied_internal_error_total"),
            0,
            "seed {seed:#x}"
        );
        for (path_kind, counter) in [
            ("allowed", "rfma_allowed_total"),
            ("denied", "rfma_denied_invalid_token_total"),
        ] {
            assert!(
                plugin.counter(counter) > 0,
                "seed {seed:#x}: the generator never produced a {path_kind} request"
            );
        }
    }
}

#[test]
fn linear_memory_stops_growing_once_warm() {
    let mut host = host();
    let mut rng = Rng(0x6d65_6d6f_7279);
    {
        let mut plugin = host.plugin().unwrap();
        for i in 0..2_000 {
            send_random(&mut plugin, &mut rng, 0x6d65_6d6f_7279, i);
        }
    }
    let warm = host.linear_memory_bytes();
    assert!(warm > 0);
    {
        let mut plugin = host.plugin().unwrap();
        for i in 2_000..22_000 {
            send_random(&mut plugin, &mut rng, 0x6d65_6d6f_7279, i);
        }
    }
    let after = host.linear_memory_bytes();
    assert_eq!(
        after, warm,
        "linear memory grew from {warm} to {after} bytes over 20,000 more requests"
    );
}
