//! The CI variant of the soak run (`make bench` runs the long one, a million requests): mixed
//! allowed, wrong-token, missing-token and bypassed requests over HTTP/2 and HTTP/1.1 through a
//! real Envoy with the shipped filter (record through the filter-state sink, stripping on).
//! Every batch must give exactly the expected statuses, decision counters and one valid record
//! per request without a token, and Envoy's resident memory after the last batch must be
//! within 5 % of its value after the first 50,000 requests.
//!
//! The run itself is the benchmark's own code (`bench/src/soak.rs` and the Envoy rig it uses),
//! included by the suite's `main.rs` so CI and `make bench` cannot drift apart.

use crate::e2e_support;
use crate::{rig, soak};

use std::time::Duration;

/// A private directory removed at the end of the test.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn soak_mixed_traffic_keeps_statuses_exact_and_memory_flat() {
    let dir = Scratch(std::env::temp_dir().join(format!("rfma-e2e-soak-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let spec = soak::SoakSpec {
        envoy: e2e_support::envoy_bin(),
        wasm: e2e_support::wasm(),
        requests: 100_000,
        batch: 10_000,
        reference_after: 50_000,
        max_growth_percent: 5.0,
        // Other tests run beside this one: no pinning.
        cores: None,
        deadline: Some(Duration::from_secs(120)),
    };
    let result = soak::run(&spec, &dir.0, |line| eprintln!("soak: {line}"))
        .unwrap_or_else(|e| panic!("soak failed: {e}"));
    assert_eq!(result.requests, 100_000);
    assert_eq!(result.rss_after_batch_kib.len(), 10);
    assert!(result.rss_reference_kib > 0);
    eprintln!(
        "soak: {} requests in {:.1}s; VmRSS {} KiB after 50,000, {} KiB at the end ({:+.2} %)",
        result.requests,
        result.seconds,
        result.rss_reference_kib,
        result.rss_end_kib,
        result.growth_percent
    );
}

#[test]
fn soak_rejects_a_reference_point_outside_the_run() {
    let spec = soak::SoakSpec {
        envoy: "envoy".into(),
        wasm: "m.wasm".into(),
        requests: 20_000,
        batch: 10_000,
        reference_after: 20_000,
        max_growth_percent: 5.0,
        cores: None,
        deadline: None,
    };
    let err = soak::run(&spec, std::path::Path::new("/nonexistent"), |_| {}).unwrap_err();
    assert!(err.contains("reference point"), "{err}");
}

#[test]
fn h2load_counts_and_records_are_checked() {
    let out = "requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout\n\
               status codes: 0 2xx, 0 3xx, 10 4xx, 0 5xx\n";
    let c = soak::parse_h2load_counts(out).unwrap();
    assert_eq!((c.done, c.errored, c.classes), (10, 0, [0, 0, 10, 0]));
    assert!(soak::parse_h2load_counts("finished in 1s").is_err());

    let wrong = soak::MIX[1];
    let good = r#"{"rfma":{"decision":"deny","reason":"invalid_token"},"http":{"response":{"status_code":403}}}"#;
    assert_eq!(
        soak::check_records(&format!("{good}\n{good}\n"), &wrong),
        Ok(2)
    );
    // A record with another status, a line that is not JSON, or a token: each is caught.
    let other = good.replace("403", "200");
    assert!(soak::check_records(&format!("{good}\n{other}\n"), &wrong).is_err());
    assert!(soak::check_records("{not json\n", &wrong).is_err());
    let leaked = good.replace("invalid_token", rig::WRONG_TOKEN);
    assert!(soak::check_records(&leaked, &wrong).is_err());
}
