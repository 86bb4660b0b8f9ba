//! What `up` decides before writing anything: placeholders and token digests refused, the
//! repository rendered offline with the module named by digest.

use super::*;

/// A copy of the repository's manifest directories, with `edit` applied to one file.
fn repo_copy(file: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let repo = istio_demo::manifests::repo_root();
    let dir = tempfile::tempdir().unwrap();
    for d in istio_demo::manifests::MANIFEST_DIRS {
        let status = std::process::Command::new("cp")
            .arg("-R")
            .arg(repo.join(d))
            .arg(dir.path().join(d))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    dir
}

fn up_args(extra: &[&str]) -> up::UpArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        up: up::UpArgs,
    }
    let wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wasm.path(), b"\0asm\x01\0\0\0").unwrap();
    let (_, path) = wasm.keep().unwrap();
    let mut argv = vec![
        "up".to_string(),
        "--dry-run=client".into(),
        "--wasm".into(),
        path.display().to_string(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(argv).up
}

const GHOST_TOKEN: &str =
    "      - name: external\n        sha256: set-by-kustomize-from-filter-release\n";

#[tokio::test]
async fn a_placeholder_digest_is_refused_before_anything_is_written() {
    let repo = repo_copy("istio/wasm/wasmplugin/wasmplugin.yaml", |t| {
        t.replace(
            GHOST_TOKEN,
            &format!(
                "{GHOST_TOKEN}      - name: ghost\n        sha256: \"{}\"\n",
                "0".repeat(64)
            ),
        )
    });
    let e = up::prepare(&up_args(&[]), repo.path(), None, vec![])
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("refusing to deploy placeholders"), "{e}");
    assert!(e.contains("WasmPlugin/demo/rfma-token-gate"), "{e}");
}

#[tokio::test]
async fn a_token_digest_without_a_secret_is_refused() {
    let repo = repo_copy("istio/wasm/wasmplugin/wasmplugin.yaml", |t| {
        t.replace(
            GHOST_TOKEN,
            &format!(
                "{GHOST_TOKEN}      - name: ghost\n        sha256: \"{}\"\n",
                "ab".repeat(32)
            ),
        )
    });
    let e = up::prepare(&up_args(&[]), repo.path(), None, vec![])
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("no Secret of this deploy holds"), "{e}");
    assert!(e.contains("token \"ghost\""), "{e}");
}

#[tokio::test]
async fn the_release_template_and_the_token_list_must_agree() {
    // A token the template has no key for is a mismatch, named, never a silent deny-all.
    let repo = repo_copy("istio/wasm/release/filter-release.yaml", |t| {
        t.replace("  external-token-sha256:", "  outsider-token-sha256:")
    });
    let e = format!(
        "{:#}",
        up::prepare(&up_args(&[]), repo.path(), None, vec![])
            .await
            .unwrap_err()
    );
    assert!(e.contains("external-token-sha256"), "{e}");
}

#[tokio::test]
async fn the_repository_prepares_without_a_cluster_and_names_the_module_by_digest() {
    let repo = istio_demo::manifests::repo_root();
    let args = up_args(&["--profile", "minimal"]);
    let p = up::prepare(&args, &repo, None, vec![]).await.unwrap();
    let module = istio_demo::oci::package(b"\0asm\x01\0\0\0").unwrap();
    assert_eq!(
        p.release.image,
        format!(
            "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@{}",
            module.manifest_digest
        )
    );
    assert!(
        p.tokens.iter().all(|t| !t.existing),
        "no cluster: every token is new"
    );
    let plugin = p
        .inputs
        .synced
        .iter()
        .flat_map(|s| &s.objects)
        .find(|o| o["kind"] == "WasmPlugin")
        .unwrap();
    assert_eq!(plugin["spec"]["url"], p.release.image.as_str());
    assert_eq!(
        p.inputs.flux_source["spec"]["ref"]["digest"],
        p.inputs
            .push
            .as_ref()
            .unwrap()
            .manifests
            .as_ref()
            .unwrap()
            .digest
            .as_str(),
        "the OCIRepository is pinned to the artifact up pushes"
    );
    assert!(
        p.inputs.synced.iter().all(|s| !s.path.contains("elk")),
        "the minimal profile syncs no ELK"
    );
    assert!(p.needed.memory_request_bytes > 0);
    // The same inputs give the same artifact: its digest depends on the tokens, not on time.
    let again = up::prepare(&args, &repo, None, vec![]).await.unwrap();
    assert_ne!(
        again.inputs.flux_source["spec"]["ref"]["digest"],
        p.inputs.flux_source["spec"]["ref"]["digest"],
        "fresh tokens, new digests, new artifact"
    );
}
