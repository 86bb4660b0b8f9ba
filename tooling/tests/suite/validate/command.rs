//! The command as a whole: the repository validates cleanly, a run without PATH is the whole
//! repository (so every namespace must be created and STRICT mTLS must exist), load failures and
//! a missing schema folder are clear errors, `--help` explains it, and one kustomization never
//! declares an object twice.

use super::{Copy, expect_error, repo, run, schemas};
use std::process::Command;

#[test]
fn the_repository_validates_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemas"])
        .arg(schemas())
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" 0 errors"), "{text}");
    // Every kind the demo uses was really checked: the summary counts objects from all directories.
    let objects: usize = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("validate: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(objects >= 60, "only {objects} objects rendered:\n{text}");
}

#[test]
fn the_whole_repository_run_requires_namespaces_and_strict_mtls() {
    let c = Copy::whole();
    // Make the copy look like the repository root, so `validate` without PATH checks all of it.
    std::fs::create_dir_all(c.path("tooling")).unwrap();
    c.write("tooling/Cargo.toml", "[package]\nname = \"stand-in\"\n");
    c.edit(
        "istio/kustomization.yaml",
        "  - peer-authentication.yaml\n",
        "",
    );
    c.edit(
        "monitoring/prometheus.yaml",
        "  namespace: monitoring",
        "  namespace: monitorring",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .arg("validate")
        .arg("--schemas")
        .arg(schemas())
        .current_dir(c.path("demo"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    expect_error(
        &text,
        &[
            "error[namespace-exists]",
            "HelmRelease/monitorring/prometheus",
            "`monitorring`",
        ],
    );
    expect_error(
        &text,
        &[
            "error[required-object]",
            "PeerAuthentication/demo",
            "STRICT",
        ],
    );
}

#[test]
fn duplicate_objects_in_one_kustomization_are_caught() {
    let c = Copy::of(&["demo"]);
    c.write(
        "demo/again.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sleep\n  namespace: demo\nautomountServiceAccountToken: false\n",
    );
    // Kustomize itself refuses exact duplicates; the lint also sees duplicates that differ in
    // apiVersion only, which kustomize lets through.
    c.edit(
        "demo/kustomization.yaml",
        "  - sleep.yaml\n",
        "  - sleep.yaml\n  - again.yaml\n",
    );
    let (code, out) = c.validate(&["demo"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ServiceAccount") && out.contains("sleep"),
        "{out}"
    );

    let files = tempfile::tempdir().unwrap();
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: demo}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: demo}\n";
    std::fs::write(files.path().join("twice.yaml"), text).unwrap();
    let (code, out) = run(&[files.path().join("twice.yaml")], files.path());
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[duplicate-object]",
            "twice.yaml",
            "ConfigMap/demo/a",
            "duplicate object",
        ],
    );
}

#[test]
fn a_kustomize_failure_is_reported_with_its_directory() {
    let c = Copy::of(&["demo"]);
    c.edit(
        "demo/kustomization.yaml",
        "  - sleep.yaml\n",
        "  - sleep.yaml\n  - missing.yaml\n",
    );
    let (code, out) = c.validate(&["demo"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("error[load]")
            && l.contains("demo")
            && l.contains("missing.yaml")),
        "{out}"
    );
}

#[test]
fn a_missing_schema_folder_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemas", "/nonexistent/schemas"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/schemas") && err.contains("--schemas"),
        "{err}"
    );
}

#[test]
fn help_explains_paths_schemas_and_exit_status() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "[PATHS]",
        "--schemas <DIR>",
        "ISTIO_DEMO_SCHEMAS",
        "shared/schemas",
        "Exit status",
        "field path",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemaz", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schemaz"));
}
