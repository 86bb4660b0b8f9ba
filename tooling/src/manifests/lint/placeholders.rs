//! `placeholder`: a value that must never reach a cluster. Deployed, a placeholder module
//! reference pulls nothing and the gate fails closed on every request, a placeholder token digest
//! matches no token, and a placeholder URL fetches nothing. In a rendered stream each is an error
//! ([`placeholders`]); in the repository ([`placeholders_in_repository`]) the release template's
//! are warnings where it puts them, since `istio-demo up` renders them.

use super::objects::is_gate_plugin;
use crate::manifests::{Finding, Manifest, field_path};
use serde_json::Value;

/// A digest starting with 32 zeros marks a value of the release template that `istio-demo up`
/// fills in (the all-zero module digest, and the token digests `0…01`, `0…02`, …); no real
/// SHA-256 starts so.
pub const PLACEHOLDER_PREFIX: &str = "00000000000000000000000000000000";
/// Placeholder texts that must never reach a cluster: the old example registry and the old fork owner.
pub const PLACEHOLDER_TEXTS: &[&str] = &["registry.example.com", "your-org"];

/// Placeholders in any string of any object: [`PLACEHOLDER_TEXTS`], or a 64-hex-digit run that
/// starts with [`PLACEHOLDER_PREFIX`] (the all-zero digest and its `0…01`-style siblings). Each is
/// an error (`placeholder`) naming the file, the object and the field: deployed, a placeholder
/// module reference pulls nothing and the gate fails closed on every request, a placeholder token
/// digest matches no token, and a placeholder URL fetches nothing. This is the rule for a rendered
/// stream; [`placeholders_in_repository`] is the repository's.
pub fn placeholders(manifests: &[Manifest]) -> Vec<Finding> {
    placeholder_findings(manifests, false)
}

/// [`placeholders`] for the repository as it is in Git, where the release template's values are
/// placeholders on purpose: in the WasmPlugin and TrafficExtension (which copy them from
/// istio/wasm/release/filter-release.yaml) they are warnings, since `istio-demo up` renders them;
/// anywhere else nothing renders them, so they stay errors.
pub fn placeholders_in_repository(manifests: &[Manifest]) -> Vec<Finding> {
    placeholder_findings(manifests, true)
}

fn placeholder_findings(manifests: &[Manifest], template_warns: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in manifests {
        let from_template = template_warns && is_gate_plugin(m);
        let mut found = Vec::new();
        find_placeholders(&m.object, String::new(), &mut found);
        for (pointer, what) in found {
            let path = field_path(&pointer);
            out.push(if from_template {
                Finding::warning(
                    "placeholder",
                    m,
                    path,
                    format!("placeholder {what} from the release template istio/wasm/release/filter-release.yaml: `istio-demo up` renders the real value (check its output with `istio-demo validate -`)"),
                )
            } else {
                Finding::error(
                    "placeholder",
                    m,
                    path,
                    format!("placeholder {what}: deployed, it pulls or matches nothing (a placeholder module makes the gate deny every request); render the real value first, as `istio-demo up` does"),
                )
            });
        }
    }
    out
}

fn find_placeholders(v: &Value, pointer: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            for text in PLACEHOLDER_TEXTS {
                if s.contains(text) {
                    out.push((pointer.clone(), format!("`{text}`")));
                }
            }
            if has_placeholder_digest(s) {
                out.push((pointer, "digest (zeros)".to_string()));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_placeholders(item, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                find_placeholders(item, format!("{pointer}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// A run of exactly 64 hex digits starting with [`PLACEHOLDER_PREFIX`] somewhere in `s`.
fn has_placeholder_digest(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_hexdigit())
        .any(|run| run.len() == 64 && run.starts_with(PLACEHOLDER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::Severity;

    fn manifest(object: Value) -> Manifest {
        Manifest {
            source: "f.yaml".into(),
            object,
        }
    }

    #[test]
    fn placeholder_digests_are_64_hex_digits_starting_with_32_zeros() {
        let zeros = "0".repeat(64);
        assert!(has_placeholder_digest(&zeros));
        assert!(has_placeholder_digest(&format!("{}3", &zeros[1..])));
        assert!(has_placeholder_digest(&format!("oci://r/x@sha256:{zeros}")));
        // A real digest, a longer hex run, and a short run of zeros are not placeholders.
        let real = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(!has_placeholder_digest(real));
        assert!(!has_placeholder_digest(&format!("{zeros}0")));
        assert!(!has_placeholder_digest("replicas: 0000"));
    }

    #[test]
    fn placeholders_name_the_field_and_are_warnings_only_in_the_template_s_targets() {
        let plugin = manifest(serde_json::json!({
            "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "p", "namespace": "demo"},
            "spec": {"url": format!("oci://registry.example.com/f@sha256:{}", "0".repeat(64))}}));
        let source = manifest(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "g", "namespace": "flux-system"},
            "spec": {"url": "https://github.com/your-org/x"}}));
        let objects = [plugin, source];
        let strict = placeholders(&objects);
        assert_eq!(strict.len(), 3, "{strict:?}");
        assert!(strict.iter().all(|f| f.severity == Severity::Error));
        assert!(strict.iter().any(|f| f.object == "WasmPlugin/demo/p"
            && f.path == "spec.url"
            && f.message.contains("registry.example.com")));
        let repo = placeholders_in_repository(&objects);
        let severity = |object: &str| {
            repo.iter()
                .filter(|f| f.object == object)
                .map(|f| f.severity)
                .collect::<Vec<_>>()
        };
        assert_eq!(severity("WasmPlugin/demo/p"), [Severity::Warning; 2]);
        assert_eq!(severity("GitRepository/flux-system/g"), [Severity::Error]);
    }
}
