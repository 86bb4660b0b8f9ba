//! Against a real cluster (kind, k3d, Docker Desktop...), opt-in only. Uses the current kubeconfig
//! context (or `KUBECONFIG`) and the module built by `make wasm` (target/rfma_filter.wasm).
//!
//! ```text
//! ISTIO_DEMO_CLUSTER_TESTS=1 cargo test -p istio-demo --test suite cluster_real -- --ignored --test-threads=1
//! ```
//!
//! runs `up --dry-run=server` and `status -o json`, which change nothing.
//!
//! ```text
//! ISTIO_DEMO_CLUSTER_TESTS=deploy cargo test -p istio-demo --test suite cluster_real -- --ignored --test-threads=1
//! ```
//!
//! is the README's journey on an empty cluster (`kind create cluster` and nothing else): `istio-demo
//! up` with no flags, `istio-demo verify`, then `istio-demo down`, after which `status` finds none of
//! the demo. Flux comes from the `flux` CLI on PATH, else from its pinned release (internet access).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_istio-demo");
const MODE: &str = "ISTIO_DEMO_CLUSTER_TESTS";

/// Whether this test's mode (`1` or `deploy`) is the one asked for; panics when none is.
fn asked(mode: &str) -> bool {
    let m = std::env::var(MODE).unwrap_or_default();
    assert!(
        m == "1" || m == "deploy",
        "these tests need a cluster: set {MODE}=1 (read-only) or {MODE}=deploy (see the file's header)"
    );
    if m != mode {
        eprintln!("not run: this test runs with {MODE}={mode} ({MODE}={m} was given)");
    }
    m == mode
}

fn istio_demo(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ istio-demo {}\n{all}", args.join(" "));
    (out.status.success(), all)
}

/// The `[i/N] stage` progress lines: (i, N).
fn stages(out: &str) -> Vec<(usize, usize)> {
    out.lines()
        .filter_map(|l| l.strip_prefix('['))
        .filter_map(|l| l.split_once(']'))
        .filter_map(|(n, _)| n.split_once('/'))
        .filter_map(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)))
        .collect()
}

#[test]
#[ignore = "needs a Kubernetes cluster: ISTIO_DEMO_CLUSTER_TESTS=1"]
fn server_dry_run_and_status_against_the_cluster() {
    if !asked("1") {
        return;
    }
    let (ok, out) = istio_demo(&["up", "--dry-run=server"]);
    assert!(ok, "up --dry-run=server failed:\n{out}");
    assert!(out.contains("preflight: API server"), "{out}");
    let seen = stages(&out);
    let total = seen.first().map(|(_, n)| *n).unwrap_or(0);
    assert_eq!(
        seen,
        (1..=total).map(|i| (i, total)).collect::<Vec<_>>(),
        "every stage once, in order"
    );
    assert!(out.contains("] ELK"), "the full profile by default:\n{out}");
    assert!(
        out.contains("dry run complete: nothing was changed"),
        "{out}"
    );

    let (ok, out) = istio_demo(&["status", "-o", "json"]);
    let start = out.find('[').expect("status prints a JSON array");
    let end = out.rfind(']').unwrap();
    let rows: serde_json::Value = serde_json::from_str(&out[start..=end]).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty(), "{out}");
    for r in rows {
        assert!(
            r["name"].is_string() && r["kind"].is_string() && r["ready"].is_string(),
            "{r}"
        );
    }
    assert_eq!(
        ok,
        rows.iter().all(|r| r["ready"] != "False"),
        "status succeeds exactly when nothing is missing or not ready:\n{out}"
    );
}

#[test]
#[ignore = "deploys the demo: ISTIO_DEMO_CLUSTER_TESTS=deploy"]
fn up_verify_down() {
    if !asked("deploy") {
        return;
    }
    let (ok, out) = istio_demo(&["up"]);
    assert!(ok, "up failed:\n{out}");
    assert!(out.contains("the demo is up"), "{out}");

    let (ok, out) = istio_demo(&["verify"]);
    assert!(ok, "verify failed:\n{out}");
    assert!(out.lines().any(|l| l.starts_with("PASS  ")), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("FAIL")), "{out}");

    // A canary whose gate rejects the load tester is rolled back, and the demo recovers.
    let (ok, out) = istio_demo(&["verify", "--canary-rollback"]);
    assert!(ok, "verify --canary-rollback failed:\n{out}");
    let rollback = out
        .lines()
        .find(|l| l.contains("canary rollback"))
        .unwrap_or_else(|| panic!("no canary rollback line:\n{out}"));
    assert!(rollback.starts_with("PASS"), "{rollback}");
    assert!(
        rollback.contains("canary rolled back") && rollback.contains("kept the previous revision"),
        "{rollback}"
    );

    let (ok, out) = istio_demo(&["down"]);
    assert!(ok, "down failed:\n{out}");
    assert!(out.contains("the demo is down"), "{out}");

    let (ok, out) = istio_demo(&["status"]);
    assert!(!ok, "after down, status finds none of the demo:\n{out}");
    assert!(out.contains("not found"), "{out}");
}
