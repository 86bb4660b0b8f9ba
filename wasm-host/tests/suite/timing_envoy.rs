//! Constant-time rejection in a real Envoy: the time a client waits for the 403 that rejects
//! a wrong token does not depend on how many leading bytes the token's SHA-256 shares with a
//! configured digest.
//!
//! Method: one configured digest, crafted to share 31 leading bytes with the digest of a
//! "near" token, and a "far" token whose digest shares none (same token length). The classes
//! alternate request by request, in a random order within each pair, over one keep-alive
//! connection to an Envoy with one worker, so load from other processes falls on both
//! classes alike. Client-side latencies are compared with a Mann-Whitney U test (two-sided,
//! tie-corrected normal approximation), and the median of the paired differences (near minus
//! far, request by request) must have a 99% confidence interval inside a small tolerance. A
//! positive control, interleaved in the same run, shows that the same
//! measurement does see a real difference in the work Envoy and the filter do per request.
//!
//! The exact, deterministic version of this property is `timing_fuel.rs` (wasm instruction
//! counts); this test shows nothing in the real proxy path adds a measurable dependence.

use crate::e2e_support::*;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Measured requests per class.
const PER_CLASS: usize = 5_000;
/// Requests per class before measuring (V8 tiering, connection and allocator warm-up).
const WARM_UP: usize = 200;
/// Significance level of the Mann-Whitney test (two-sided).
const ALPHA: f64 = 0.001;
/// Bytes of the positive control's extra user-agent.
const CONTROL_EXTRA: usize = 4096;
/// The bound the 99% interval of the median paired difference must stay within: this many
/// microseconds, or this fraction of the median latency, whichever is larger (measured
/// intervals are about ±0.3 µs, on a loaded 2-core machine too).
const TOLERANCE_US: f64 = 2.0;
const TOLERANCE_FRACTION: f64 = 0.02;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// xorshift64: a deterministic order for the pairs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One keep-alive HTTP/1.1 connection; a request is timed from its first byte written to the
/// last byte of its response read.
struct KeepAlive {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    reconnects: usize,
}

impl KeepAlive {
    fn new(addr: SocketAddr) -> Self {
        KeepAlive {
            addr,
            stream: None,
            reconnects: 0,
        }
    }

    fn connect(&mut self) -> &mut TcpStream {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10)).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            self.stream = Some(s);
            self.reconnects += 1;
        }
        self.stream.as_mut().unwrap()
    }

    /// Sends `request`, returns (status, latency). Reconnects (untimed) if Envoy closed.
    fn exchange(&mut self, request: &[u8]) -> (u16, Duration) {
        let stream = self.connect();
        let start = Instant::now();
        stream.write_all(request).unwrap();
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 4096];
        let (head_end, content_length) = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "Envoy closed the connection mid-response");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                break (end + 4, len);
            }
        };
        while buf.len() < head_end + content_length {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "Envoy closed the connection mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let elapsed = start.elapsed();
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        if head.contains("\r\nconnection: close") {
            self.stream = None;
        }
        (status, elapsed)
    }
}

fn request(token: &str, extra: &str) -> Vec<u8> {
    format!("GET /anything HTTP/1.1\r\nhost: timing\r\nx-rfma-token: {token}\r\n{extra}\r\n")
        .into_bytes()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Mann-Whitney U test, two-sided, normal approximation with tie correction and continuity
/// correction. Returns (U of `a`, z, p).
fn mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_a += all[i..=j].iter().filter(|e| e.1).count() as f64 * avg_rank;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    let diff = u - mean;
    let z = (diff.abs() - 0.5).max(0.0) / var.sqrt() * diff.signum();
    let p = erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0);
    (u, z, p)
}

/// Distribution-free 99% confidence interval for the median of `d`: the order statistics
/// whose ranks the sign test puts 2.576 standard deviations either side of n/2.
fn median_ci_99(d: &[f64]) -> (f64, f64) {
    let mut s = d.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let k = (n / 2.0 - 2.576 * n.sqrt() / 2.0).floor().max(0.0) as usize;
    (s[k], s[s.len() - 1 - k])
}

#[test]
fn rejection_latency_in_envoy_does_not_depend_on_how_much_of_the_digest_matches() {
    // "near": its digest shares 31 leading bytes with the configured one; "far": none.
    let near = "timing-token-near-000000000000";
    let d_near = sha256(near.as_bytes());
    let mut configured = d_near;
    configured[31] ^= 0x01;
    let far = (0u32..)
        .map(|i| format!("timing-token-far-{i:013}"))
        .find(|t| sha256(t.as_bytes())[0] != configured[0])
        .unwrap();
    assert_eq!(far.len(), near.len());
    let shared = |t: &str| {
        sha256(t.as_bytes())
            .iter()
            .zip(&configured)
            .take_while(|(x, y)| x == y)
            .count()
    };
    assert_eq!((shared(near), shared(&far)), (31, 0));

    let config = json!({ "tokens": [{ "name": "target", "sha256": hex(&configured) }] });
    let stack = start(&config);
    let mut conn = KeepAlive::new(stack.plain().unwrap());
    let near_req = request(near, "");
    let far_req = request(&far, "");
    // Positive control: the far token plus a 4 KiB user-agent, which Envoy parses and the
    // filter copies, escapes into the access record and stores: tens of microseconds more.
    let control_req = request(
        &far,
        &format!("user-agent: {}\r\n", "u".repeat(CONTROL_EXTRA)),
    );

    let started = Instant::now();
    for _ in 0..WARM_UP {
        for r in [&near_req, &far_req, &control_req] {
            assert_eq!(conn.exchange(r).0, 403);
        }
    }
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let (mut t_near, mut t_far, mut t_control) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..PER_CLASS {
        // A random order within each pair; the control every fourth round, also at a random
        // place, so it does not sit in a fixed position relative to the pair.
        let mut order: Vec<u8> = if rng.next().is_multiple_of(2) {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        if i.is_multiple_of(4) {
            order.insert((rng.next() % 3) as usize, 2);
        }
        for class in order {
            let (req, out) = match class {
                0 => (&near_req, &mut t_near),
                1 => (&far_req, &mut t_far),
                _ => (&control_req, &mut t_control),
            };
            let (status, elapsed) = conn.exchange(req);
            assert_eq!(status, 403, "a wrong token must be rejected");
            out.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    let wall = started.elapsed();

    let total = (WARM_UP * 3 + 2 * PER_CLASS + t_control.len()) as u64;
    let prom = stack.envoy.prometheus().unwrap();
    assert_eq!(
        prometheus_value(&prom, "rfma_denied_invalid_token_total"),
        Some(total)
    );

    let (m_near, m_far, m_control) = (median(&t_near), median(&t_far), median(&t_control));
    let (_, z, p) = mann_whitney(&t_near, &t_far);
    // Paired differences: round i's near and far requests were sent one after the other, so
    // whatever load the machine had then falls on both and cancels.
    let paired: Vec<f64> = t_near.iter().zip(&t_far).map(|(a, b)| a - b).collect();
    let m_paired = median(&paired);
    let (lo, hi) = median_ci_99(&paired);
    let (_, z_c, p_c) = mann_whitney(&t_control, &t_far);
    println!(
        "rejection latency over {} requests in {:.1}s ({} connection(s)):\n  \
         near (31 bytes shared): median {m_near:.1} µs\n  \
         far (0 bytes shared):   median {m_far:.1} µs\n  \
         Mann-Whitney near vs far: z = {z:.2}, p = {p:.3}; difference of medians {:.1} µs\n  \
         paired differences near - far: median {m_paired:.2} µs, 99% CI [{lo:.2}, {hi:.2}] µs\n  \
         control (+4 KiB user-agent, n = {}): median {m_control:.1} µs, z = {z_c:.1}, p = {p_c:.2e}",
        t_near.len() + t_far.len() + t_control.len(),
        wall.as_secs_f64(),
        conn.reconnects,
        m_near - m_far,
        t_control.len()
    );

    // No significant difference between the classes...
    assert!(
        p >= ALPHA,
        "rejection time depends on the shared digest prefix: Mann-Whitney p = {p:.2e} < {ALPHA} \
         (near median {m_near:.1} µs, far {m_far:.1} µs)"
    );
    // ...and the whole 99% interval for the median paired difference is within the tolerance.
    let tolerance = TOLERANCE_US.max(TOLERANCE_FRACTION * m_far);
    assert!(
        lo > -tolerance && hi < tolerance,
        "the median paired difference is not bounded by ±{tolerance:.1} µs: 99% CI [{lo:.2}, {hi:.2}] µs"
    );
    // The measurement is not blind: the control's extra 4 KiB are seen, in the right direction.
    assert!(
        p_c < 1e-6 && m_control > m_far,
        "the positive control was not detected (p = {p_c:.2e}, medians {m_control:.1} vs {m_far:.1} µs): \
         the measurement cannot resolve a difference of this size"
    );
}
