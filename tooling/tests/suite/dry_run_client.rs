//! `istio-demo up --dry-run=client -o yaml` on the repository's manifests, with no cluster and no
//! kubeconfig: the binary prints one YAML stream of what `up` would apply (and then what Flux
//! applies), in order, free of placeholders; the WasmPlugin names the module by the digest `wasm
//! push` gives it; token Secrets come without their data, carry the digests the WasmPlugin is
//! configured with, and precede the workloads that mount them; the OCIRepository is pinned to the
//! manifests artifact by digest. Not opt-in: it needs only kubectl (for kustomize), as the rest of
//! the test suite does.

use istio_demo::deploy::render::{MODULE_REPOSITORY, REGISTRY_HOST};
use istio_demo::deploy::tokens::{DEMO_TOKENS, DIGEST_ANNOTATION};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_istio-demo");

/// The smallest valid wasm module: magic and version.
const TINY_WASM: &[u8] = b"\0asm\x01\0\0\0";

struct Stream {
    text: String,
    docs: Vec<Value>,
    /// `sha256:<hex>` of the module as `wasm push` packages it.
    module_digest: String,
}

impl Stream {
    fn of_kind(&self, kind: &str) -> Vec<(usize, &Value)> {
        self.docs
            .iter()
            .enumerate()
            .filter(|(_, d)| d["kind"] == kind)
            .collect()
    }

    /// Token Secrets: (position in the stream, namespace/name, digest annotation).
    fn token_secrets(&self) -> Vec<(usize, String, String)> {
        self.of_kind("Secret")
            .into_iter()
            .map(|(i, s)| {
                (
                    i,
                    format!(
                        "{}/{}",
                        s["metadata"]["namespace"].as_str().unwrap_or("?"),
                        s["metadata"]["name"].as_str().unwrap_or("?")
                    ),
                    s["metadata"]["annotations"][DIGEST_ANNOTATION]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }
}

/// Runs the client dry run as a user would, with KUBECONFIG naming a file that does not exist and
/// no `flux` CLI (so the output does not depend on the machine); returns the parsed stream.
fn client_dry_run() -> Stream {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("tiny.wasm");
    std::fs::write(&wasm, TINY_WASM).unwrap();
    let out = Command::new(BIN)
        .args(["up", "--dry-run=client", "-o", "yaml", "--wasm"])
        .arg(&wasm)
        .arg("--repo")
        .arg(repo)
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("FLUX", dir.path().join("no-such-flux"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{err}\nstdout:\n{text}",
        out.status.code()
    );
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, d)| {
            Value::deserialize(d).unwrap_or_else(|e| panic!("document {i} does not parse: {e}"))
        })
        .collect();
    assert!(!docs.is_empty(), "an empty stream:\n{text}\nstderr:\n{err}");
    for (i, d) in docs.iter().enumerate() {
        assert!(
            d["apiVersion"].is_string()
                && d["kind"].is_string()
                && d["metadata"]["name"].is_string(),
            "document {i} is not a Kubernetes object: {d}"
        );
    }
    Stream {
        text,
        docs,
        module_digest: istio_demo::oci::package(TINY_WASM).unwrap().manifest_digest,
    }
}

/// The `sha256:<hex>` digests the push stage's comment names: (module, manifests).
fn pushed(text: &str) -> (String, String) {
    let line = text
        .lines()
        .find(|l| l.starts_with("# stage: push the module and the manifests"))
        .unwrap_or_else(|| panic!("no push stage in:\n{text}"));
    let digests: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',' || c == ')')
        .filter(|w| w.starts_with("sha256:"))
        .collect();
    assert_eq!(digests.len(), 2, "{line}");
    (digests[0].to_string(), digests[1].to_string())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[test]
fn up_dry_run_client_needs_no_cluster() {
    let s = client_dry_run();

    // No placeholder anywhere.
    for p in ["registry.example.com", "your-org", &"0".repeat(64)] {
        assert!(
            !s.text.contains(p),
            "the stream carries the placeholder {p:?}"
        );
    }

    // The module is pushed under the digest `wasm push` gives the same module.
    let (module, manifests) = pushed(&s.text);
    assert_eq!(module, s.module_digest);

    // One Secret per demo token, without its data, carrying the token's digest.
    let secrets = s.token_secrets();
    let mut names: Vec<&str> = secrets.iter().map(|(_, n, _)| n.as_str()).collect();
    names.sort();
    let mut want: Vec<String> = DEMO_TOKENS
        .iter()
        .map(|t| format!("{}/{}", t.namespace, t.secret))
        .collect();
    want.sort();
    assert_eq!(names, want);
    for (i, name, digest) in &secrets {
        let doc = &s.docs[*i];
        assert!(
            doc.get("data").is_none() && doc.get("stringData").is_none(),
            "Secret {name} is printed with its token: {doc}"
        );
        assert!(
            is_sha256(digest),
            "Secret {name}: {DIGEST_ANNOTATION} is {digest:?}"
        );
    }
    let mut digests: Vec<&str> = secrets.iter().map(|(_, _, d)| d.as_str()).collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), secrets.len(), "every token is its own");

    // The WasmPlugin pulls that module from the in-cluster registry, by digest, and is configured
    // with exactly the digests of the token Secrets.
    let plugins = s.of_kind("WasmPlugin");
    assert_eq!(plugins.len(), 1, "one WasmPlugin in the stream");
    let plugin = plugins[0].1;
    assert_eq!(
        plugin["spec"]["url"].as_str(),
        Some(format!("oci://{REGISTRY_HOST}/{MODULE_REPOSITORY}@{module}").as_str())
    );
    assert_eq!(
        plugin["spec"]["sha256"].as_str(),
        module.strip_prefix("sha256:")
    );
    let mut configured: Vec<&str> = plugin["spec"]["pluginConfig"]["tokens"]
        .as_array()
        .expect("the WasmPlugin's pluginConfig.tokens")
        .iter()
        .map(|t| t["sha256"].as_str().unwrap())
        .collect();
    configured.sort();
    assert_eq!(
        configured, digests,
        "each token Secret carries the digest the WasmPlugin is configured with"
    );

    // The OCIRepository reads the artifact that is pushed, by digest.
    let oci = s.of_kind("OCIRepository");
    assert_eq!(oci.len(), 1);
    let (oci_at, oci) = oci[0];
    assert_eq!(
        oci["spec"]["ref"],
        serde_json::json!({"digest": manifests}),
        "pinned by digest, no tag"
    );
    assert_eq!(
        oci["spec"]["url"].as_str(),
        Some(format!("oci://{REGISTRY_HOST}/istio-demo/manifests").as_str())
    );
    // ...and comes before every Flux Kustomization that reads it.
    for (i, k) in s.of_kind("Kustomization") {
        if k["apiVersion"]
            .as_str()
            .unwrap()
            .starts_with("kustomize.toolkit.fluxcd.io/")
        {
            assert!(
                oci_at < i,
                "Kustomization {} before its source",
                k["metadata"]["name"]
            );
        }
    }

    // Order: a Secret's namespace before it; a Secret before any workload that mounts it.
    let namespace_at = |ns: &str| {
        s.of_kind("Namespace")
            .into_iter()
            .find(|(_, n)| n["metadata"]["name"] == ns)
            .map(|(i, _)| i)
    };
    for (i, name, _) in &secrets {
        let ns = name.split('/').next().unwrap();
        assert!(
            namespace_at(ns).is_some_and(|n| n < *i),
            "Secret {name} before Namespace/{ns}"
        );
    }
    let mut mounts = Vec::new();
    for (i, w) in s.docs.iter().enumerate() {
        let volumes = w
            .pointer("/spec/template/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for v in volumes {
            let Some(secret) = v.pointer("/secret/secretName").and_then(Value::as_str) else {
                continue;
            };
            let mounted = format!(
                "{}/{secret}",
                w["metadata"]["namespace"].as_str().unwrap_or("")
            );
            if let Some((at, _, _)) = secrets.iter().find(|(_, n, _)| *n == mounted) {
                let workload = format!("{}/{}", w["kind"].as_str().unwrap(), name(w));
                assert!(
                    at < &i,
                    "{workload} mounts Secret {mounted} before it is created"
                );
                mounts.push((workload, mounted));
            }
        }
    }
    assert!(
        mounts.contains(&(
            "Deployment/sleep".to_string(),
            "demo/rfma-demo-token".to_string()
        )),
        "the sleep Deployment, which mounts its token, is in the stream: {mounts:?}"
    );
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("?")
}
