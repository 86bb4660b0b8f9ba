//! `istio-demo validate -`: one rendered YAML stream from stdin, checked as a whole deploy, where
//! every placeholder is an error; and, for contrast, the repository, where only the release
//! template's placeholders are warnings.

use super::{Copy, expect_error, repo, schemas};
use std::process::Command;

/// `istio-demo validate -` with `stream` on stdin.
fn validate_stream(stream: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemas"])
        .arg(schemas())
        .arg("-")
        .current_dir(repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run istio-demo");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// What a deploy of the minimal profile applies, as one YAML stream, rendered from a copy of the
/// repository whose release template carries well-formed (made-up) digests, as `istio-demo up`
/// renders it: the registry, the OCIRepository, the entry point and every path it syncs.
fn rendered_stream(release: &[(&str, &str)]) -> String {
    let c = Copy::whole();
    for (from, to) in release {
        c.edit("istio/wasm/release/filter-release.yaml", from, to);
    }
    let render = |rel: &str| istio_demo::manifests::render(&c.path(rel)).unwrap();
    let mut objects = render("registry");
    objects.extend(render("flux/sources/oci"));
    let entry = render("flux/clusters/minimal");
    for k in entry.iter().filter(|m| m.kind() == "Kustomization") {
        let path = k.object["spec"]["path"].as_str().unwrap();
        if path != "./flux/clusters/minimal" {
            objects.extend(render(path.trim_start_matches("./")));
        }
    }
    objects.extend(entry);
    objects
        .iter()
        .map(|m| serde_yaml_ng::to_string(&m.object).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn digest_of(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// The release template's values, replaced by real-looking ones.
fn real_release() -> Vec<(String, String)> {
    let zeros = "0".repeat(64);
    let module = digest_of("module");
    vec![
        (format!("@sha256:{zeros}"), format!("@sha256:{module}")),
        (
            format!("digest: \"{zeros}\""),
            format!("digest: \"{module}\""),
        ),
        (
            format!("{}1\"", &zeros[1..]),
            format!("{}\"", digest_of("sleep")),
        ),
        (
            format!("{}2\"", &zeros[1..]),
            format!("{}\"", digest_of("loadtester")),
        ),
        (
            format!("{}3\"", &zeros[1..]),
            format!("{}\"", digest_of("external")),
        ),
    ]
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[test]
fn a_rendered_stream_without_placeholders_validates_from_stdin() {
    let release = real_release();
    let stream = rendered_stream(&as_refs(&release));
    assert!(
        !stream.contains(&"0".repeat(64)),
        "the release was not rendered"
    );
    let (code, out) = validate_stream(&stream);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 errors, 0 warnings"), "{out}");
    assert!(out.contains("from stdin"), "{out}");
}

#[test]
fn a_placeholder_in_a_stream_is_an_error_naming_object_and_field() {
    // The release template as it is in Git: its zero digests reach the WasmPlugin.
    let (code, out) = validate_stream(&rendered_stream(&[]));
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "<stdin>",
            "WasmPlugin/demo/rfma-token-gate",
            "spec.url",
            "digest (zeros)",
        ],
    );
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "WasmPlugin/demo/rfma-token-gate",
            "spec.pluginConfig.tokens[1].sha256",
        ],
    );
    assert!(!out.contains("warning[placeholder]"), "{out}");

    // A rendered stream with the old fork URL in a GitRepository, and the same stream without the
    // OCIRepository its Kustomizations read.
    let release = real_release();
    let stream = rendered_stream(&as_refs(&release));
    let git = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: fork\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://github.com/your-org/istio-demo\n  ref:\n    branch: main\n";
    let (code, out) = validate_stream(&format!("{stream}---\n{git}"));
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "GitRepository/flux-system/fork",
            "spec.url",
            "`your-org`",
        ],
    );
    let without_source: Vec<&str> = stream
        .split("---\n")
        .filter(|doc| !doc.lines().any(|l| l == "kind: OCIRepository"))
        .collect();
    let (code, out) = validate_stream(&without_source.join("---\n"));
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[flux-source]",
            "Kustomization/flux-system/istio-demo",
            "spec.sourceRef",
            "OCIRepository/flux-system/istio-demo",
        ],
    );
}

#[test]
fn stdin_is_the_only_path_when_given() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "-", "demo"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`-`"));
    let (code, out) = validate_stream("apiVersion: v1\nkind: [not, a, kind]\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error[load]") && out.contains("<stdin>"),
        "{out}"
    );
}

#[test]
fn in_the_repository_only_the_release_template_may_hold_placeholders() {
    // The template's zeros are warnings that say who renders them.
    let c = Copy::of(&["istio"]);
    let (code, out) = c.validate(&["istio/wasm/wasmplugin"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("warning[placeholder]")
            && l.contains("WasmPlugin/demo/rfma-token-gate")
            && l.contains("spec.sha256")
            && l.contains("`istio-demo up` renders")),
        "{out}"
    );
    // The same placeholder anywhere else is an error: nothing renders it.
    let c = Copy::of(&["flux"]);
    c.write(
        "flux/sources/oci/git.yaml",
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: istio-demo\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://github.com/your-org/istio-demo\n  ref:\n    branch: main\n",
    );
    c.edit(
        "flux/sources/oci/kustomization.yaml",
        "  - ocirepository.yaml\n",
        "  - ocirepository.yaml\n  - git.yaml\n",
    );
    let (code, out) = c.validate(&["flux/sources"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "flux/sources/oci/git.yaml",
            "GitRepository/flux-system/istio-demo",
            "spec.url",
            "`your-org`",
        ],
    );
}
