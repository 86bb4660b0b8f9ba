//! Against a real cluster (kind, Docker Desktop...), opt-in only:
//!
//! ```text
//! ISTIO_DEMO_CLUSTER_TESTS=1 cargo test -p istio-demo --test cluster_real -- --ignored --test-threads=1
//! ```
//!
//! uses the current kubeconfig context (or `KUBECONFIG`). With `ISTIO_DEMO_CLUSTER_TESTS=1` it
//! runs `up --dry-run` and `status -o json`, which change nothing. With
//! `ISTIO_DEMO_CLUSTER_TESTS=deploy` and `ISTIO_DEMO_FLUX_MANIFEST=<Flux install.yaml>` it also
//! deploys (`up`), runs `verify`, and tears down (`down`).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_istio-demo");

fn mode() -> String {
    let m = std::env::var("ISTIO_DEMO_CLUSTER_TESTS").unwrap_or_default();
    assert!(
        m == "1" || m == "deploy",
        "these tests need a cluster: set ISTIO_DEMO_CLUSTER_TESTS=1 (read-only) or =deploy (see the file's header)"
    );
    m
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

#[test]
#[ignore = "needs a Kubernetes cluster: ISTIO_DEMO_CLUSTER_TESTS=1"]
fn dry_run_and_status_against_the_cluster() {
    mode();
    let mut args = vec!["up", "--dry-run"];
    let manifest = std::env::var("ISTIO_DEMO_FLUX_MANIFEST").ok();
    if let Some(m) = &manifest {
        args.extend(["--flux-manifest", m]);
    }
    let (ok, out) = istio_demo(&args);
    assert!(ok, "up --dry-run failed:\n{out}");
    assert!(
        out.contains("preflight: API server")
            && out.contains("[1/11] CRDs")
            && out.contains("[11/11] ELK")
    );
    assert!(out.contains("dry run complete: nothing was changed"));
    let (_, out) = istio_demo(&["status", "-o", "json"]);
    let json_start = out.find('[').expect("status prints a JSON array");
    let end = out.rfind(']').unwrap();
    let rows: serde_json::Value = serde_json::from_str(&out[json_start..=end]).unwrap();
    assert!(rows.as_array().is_some_and(|r| !r.is_empty()));
}

#[test]
#[ignore = "deploys the demo: ISTIO_DEMO_CLUSTER_TESTS=deploy and ISTIO_DEMO_FLUX_MANIFEST"]
fn up_verify_down() {
    if mode() != "deploy" {
        panic!("set ISTIO_DEMO_CLUSTER_TESTS=deploy to deploy into the cluster");
    }
    let manifest = std::env::var("ISTIO_DEMO_FLUX_MANIFEST")
        .expect("ISTIO_DEMO_FLUX_MANIFEST=<Flux install.yaml>");
    let (ok, out) = istio_demo(&["up", "--flux-manifest", &manifest]);
    assert!(ok, "up failed:\n{out}");
    let (ok, out) = istio_demo(&["verify"]);
    assert!(ok, "verify failed:\n{out}");
    assert!(!out.contains("FAIL "));
    let (ok, out) = istio_demo(&["down"]);
    assert!(ok, "down failed:\n{out}");
}
