//! The demo's tokens: where each one lives (a Secret per token), keeping the cluster's tokens on a
//! second `up`, making the missing ones (256 random bits), and the check that every token digest the
//! filter is configured with has a Secret behind it.
//!
//! The token *names* (and their principals) are defined once, in the WasmPlugin's `pluginConfig`
//! (istio/wasm/wasmplugin/wasmplugin.yaml); [`DEMO_TOKENS`] only says where each one's Secret lives,
//! and a test checks that the two lists name the same tokens. Each name there is a *slot*: after
//! `istio-demo token rotate` the slot's Secret carries the token's current name and digest (its
//! annotations) and, while a rotation is under way, both entries ([`ROTATION_ANNOTATION`]). The
//! Secrets are the one record of the deployed token list, so `up` renders what they say and a later
//! `up` never undoes a rotation. No token is ever written to Git, to the
//! registry or to the output: the rendered manifests carry digests only, and `up --dry-run=client`
//! prints the Secrets without their data.

use crate::commands::token::{digest, generate};
use anyhow::{Context, Result, bail};
use base64::Engine;
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};

mod rotation;
pub use rotation::{Entry, Rotation, Step};

/// The key of the token in each Secret (what the pods mount as a file).
pub const SECRET_KEY: &str = "token";
/// Annotation on each token Secret: the token's name in the filter's configuration.
pub const NAME_ANNOTATION: &str = "istio-demo.dev/token-name";
/// Annotation on each token Secret: the SHA-256 the filter is configured with (safe to show).
pub const DIGEST_ANNOTATION: &str = "istio-demo.dev/token-sha256";
/// Annotation on a token Secret while a rotation is under way: the [`Rotation`] as JSON (names,
/// digests and the old entry's `not_after`; never a token).
pub const ROTATION_ANNOTATION: &str = "istio-demo.dev/token-rotation";
/// Key of the new token in the Secret between adding it to the gate and handing it to the client.
pub const NEXT_KEY: &str = "next";
/// Key prefix of the token digests in the release ConfigMap (`<name>-token-sha256`).
pub const RELEASE_KEY_SUFFIX: &str = "-token-sha256";

/// Where one demo token's Secret lives, and who reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoToken {
    /// `tokens[].name` in the filter's configuration.
    pub name: &'static str,
    pub namespace: &'static str,
    pub secret: &'static str,
    /// Who uses it, for messages.
    pub used_by: &'static str,
}

/// One Secret per token of the WasmPlugin.
pub const DEMO_TOKENS: &[DemoToken] = &[
    DemoToken {
        name: "sleep",
        namespace: "demo",
        secret: "rfma-demo-token",
        used_by: "the sleep pod (mounted at /var/run/secrets/rfma/token)",
    },
    DemoToken {
        name: "loadtester",
        namespace: "flagger-system",
        secret: "rfma-loadtester-token",
        used_by: "Flagger's load tester (mounted at /var/run/secrets/rfma/token)",
    },
    DemoToken {
        name: "external",
        namespace: "demo",
        secret: "rfma-external-token",
        used_by: "callers through the ingress gateway (`istio-demo token show external`)",
    },
];

/// The demo token called `name`.
pub fn find(name: &str) -> Result<&'static DemoToken> {
    DEMO_TOKENS
        .iter()
        .find(|t| t.name == name)
        .with_context(|| {
            format!(
                "no demo token named {name:?} (the demo's tokens: {})",
                DEMO_TOKENS
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// A token, in memory only.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub spec: DemoToken,
    value: String,
    pub sha256: String,
    /// Read from the cluster (kept) rather than made now.
    pub existing: bool,
    /// The name the gate knows `value` by: the slot's name until a rotation renames it.
    pub name: String,
    /// The rotation under way, if any.
    pub rotation: Option<Rotation>,
    /// With [`Step::Added`]: the new token, not yet handed to the client.
    next: Option<String>,
}

impl std::fmt::Debug for Token {
    // Never print the value, not even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("slot", &self.spec.name)
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("existing", &self.existing)
            .field("rotation", &self.rotation)
            .finish()
    }
}

impl Token {
    /// The token's value, for the one place that needs it (`token show`, the Secret's data).
    pub fn reveal(&self) -> &str {
        &self.value
    }

    /// The Secret that holds it. With `redacted`, the data is left out (for printed plans).
    pub fn secret(&self, redacted: bool) -> Value {
        let mut s = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.spec.secret,
                "namespace": self.spec.namespace,
                "labels": {
                    crate::cluster::MANAGED_BY_LABEL: crate::cluster::MANAGED_BY_VALUE,
                    "app.kubernetes.io/part-of": "istio-demo",
                },
                "annotations": {
                    NAME_ANNOTATION: self.name,
                    DIGEST_ANNOTATION: self.sha256,
                },
            },
            "type": "Opaque",
        });
        if let Some(r) = &self.rotation {
            // serde_json cannot fail on this plain struct of strings.
            s["metadata"]["annotations"][ROTATION_ANNOTATION] =
                json!(serde_json::to_string(r).unwrap_or_default());
        }
        if !redacted {
            let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
            s["data"] = json!({ SECRET_KEY: b64(&self.value) });
            if let Some(next) = &self.next {
                s["data"][NEXT_KEY] = json!(b64(next));
            }
        }
        s
    }
}

/// The token under `key` of a live Secret, trimmed; `None` when absent or empty.
fn secret_value(spec: DemoToken, secret: &DynamicObject, key: &str) -> Result<Option<String>> {
    let Some(encoded) = secret
        .data
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .with_context(|| {
            format!(
                "Secret {}/{}: data.{key} is not base64",
                spec.namespace, spec.secret
            )
        })?;
    let value = String::from_utf8(bytes).with_context(|| {
        format!(
            "Secret {}/{}: the token is not UTF-8",
            spec.namespace, spec.secret
        )
    })?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.contains(['\n', '\r']) || trimmed.len() > 4096 {
        bail!(
            "Secret {}/{}: data.{key} is not one token (several lines or over 4 KiB); \
             fix or delete the Secret and run `istio-demo up` again",
            spec.namespace,
            spec.secret
        );
    }
    Ok(Some(trimmed.to_string()))
}

/// The token in a live Secret, if it holds a usable one, with the name and the rotation its
/// annotations record. A rotation that does not match the Secret's tokens is an error (the gate
/// would be rendered with digests no client holds).
pub fn from_secret(spec: DemoToken, secret: &DynamicObject) -> Result<Option<Token>> {
    let Some(value) = secret_value(spec, secret, SECRET_KEY)? else {
        return Ok(None);
    };
    let where_ = || format!("Secret {}/{}", spec.namespace, spec.secret);
    let annotation = |k: &str| secret.annotations().get(k).map(String::as_str);
    let name = annotation(NAME_ANNOTATION).unwrap_or(spec.name).to_string();
    crate::commands::token::check_name(&name)
        .with_context(|| format!("{}: annotation {NAME_ANNOTATION}", where_()))?;
    let sha256 = digest(&value);
    let rotation: Option<Rotation> = annotation(ROTATION_ANNOTATION)
        .map(serde_json::from_str)
        .transpose()
        .with_context(|| format!("{}: annotation {ROTATION_ANNOTATION}", where_()))?;
    let next = secret_value(spec, secret, NEXT_KEY)?;
    if let Some(r) = &rotation {
        let (holds, next_ok) = match r.step {
            Step::Added => (
                r.old.name == name && r.old.sha256 == sha256,
                next.as_deref().map(digest).as_ref() == Some(&r.new.sha256),
            ),
            Step::Switched => (r.new.name == name && r.new.sha256 == sha256, next.is_none()),
        };
        if !holds || !next_ok || r.old.name == r.new.name || r.old.sha256 == r.new.sha256 {
            bail!(
                "{}: the rotation of {} to {} recorded in {ROTATION_ANNOTATION} does not match the \
                 Secret's tokens (data.{SECRET_KEY}, data.{NEXT_KEY}); remove that annotation and \
                 data.{NEXT_KEY}, then run `istio-demo up`",
                where_(),
                r.old.name,
                r.new.name,
            );
        }
    }
    Ok(Some(Token {
        spec,
        sha256,
        value,
        existing: true,
        name,
        next: rotation.as_ref().and(next),
        rotation,
    }))
}

/// A new random token for `spec`.
pub fn fresh(spec: DemoToken) -> Result<Token> {
    let value = generate()?;
    Ok(Token {
        spec,
        sha256: digest(&value),
        value,
        existing: false,
        name: spec.name.to_string(),
        rotation: None,
        next: None,
    })
}

/// Every demo token: the one in `live(spec)` when the cluster has it, else a new one.
pub fn resolve(live: impl Fn(&DemoToken) -> Result<Option<DynamicObject>>) -> Result<Vec<Token>> {
    DEMO_TOKENS
        .iter()
        .map(|spec| match live(spec)? {
            Some(secret) => match from_secret(*spec, &secret)? {
                Some(t) => Ok(t),
                None => fresh(*spec),
            },
            None => fresh(*spec),
        })
        .collect()
}

/// The release values for the tokens: `<name>-token-sha256` → digest.
pub fn release_values(tokens: &[Token]) -> Vec<(String, String)> {
    tokens
        .iter()
        .map(|t| {
            (
                format!("{}{RELEASE_KEY_SUFFIX}", t.spec.name),
                t.sha256.clone(),
            )
        })
        .collect()
}

/// Every `tokens[].sha256` in the filter's configuration of a WasmPlugin or TrafficExtension,
/// with where it sits: (object id, token name, digest).
pub fn configured_digests(objects: &[Value]) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        let config = match kind {
            "WasmPlugin" => o.pointer("/spec/pluginConfig"),
            "TrafficExtension" => o.pointer("/spec/wasm/pluginConfig"),
            _ => None,
        };
        let Some(tokens) = config
            .and_then(|c| c.get("tokens"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for t in tokens {
            if let Some(sha) = t.get("sha256").and_then(Value::as_str) {
                found.push((
                    crate::cluster::object_id(o),
                    t.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    sha.to_ascii_lowercase(),
                ));
            }
        }
    }
    found
}

/// The gate's entries per slot, as the Secrets record them (slot name, entries).
pub fn gate_entries(tokens: &[Token]) -> Vec<(String, Vec<Entry>)> {
    tokens
        .iter()
        .map(|t| (t.spec.name.to_string(), t.entries()))
        .collect()
}

/// Refuses a plan in which the filter would be configured with a digest that no token Secret of the
/// plan records: such an entry can never match, and for the demo's clients it means a deny-all. A
/// rotation's old entry counts: its Secret records it until `token rotate` removes it.
pub fn check_backed(objects: &[Value], tokens: &[Token]) -> Result<()> {
    let missing: Vec<String> = configured_digests(objects)
        .into_iter()
        .filter(|(_, _, sha)| {
            !tokens
                .iter()
                .any(|t| t.entries().iter().any(|e| &e.sha256 == sha))
        })
        .map(|(id, name, sha)| format!("{id}: token {name:?} (sha256 {sha})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "refusing to deploy: the filter would be configured with token digests that no Secret of this deploy holds, \
             so no client could ever pass them:\n  {}",
            missing.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Secret as the API server would return it.
    pub(super) fn live(secret: Value) -> DynamicObject {
        serde_json::from_value(secret).unwrap()
    }

    #[test]
    fn a_live_secret_is_kept_and_an_absent_one_is_made() {
        let kept = fresh(DEMO_TOKENS[0]).unwrap();
        let live = live(kept.secret(false));
        let tokens = resolve(|spec| Ok((spec.name == "sleep").then(|| live.clone()))).unwrap();
        assert_eq!(tokens.len(), DEMO_TOKENS.len());
        assert_eq!(tokens[0].reveal(), kept.reveal());
        assert_eq!(tokens[0].sha256, kept.sha256);
        assert!(tokens[0].existing);
        assert!(!tokens[1].existing && !tokens[2].existing);
        assert_ne!(tokens[1].reveal(), tokens[2].reveal());
        assert_eq!(tokens[1].reveal().len(), 43, "32 random bytes, base64url");
    }

    #[test]
    fn secrets_carry_the_digest_and_redaction_drops_the_token() {
        let t = fresh(DEMO_TOKENS[1]).unwrap();
        let full = t.secret(false);
        let shown = t.secret(true);
        assert_eq!(full["metadata"]["namespace"], "flagger-system");
        assert_eq!(
            full["metadata"]["annotations"][DIGEST_ANNOTATION],
            t.sha256.as_str()
        );
        assert!(full["data"][SECRET_KEY].is_string());
        assert!(shown.get("data").is_none());
        assert!(!shown.to_string().contains(t.reveal()));
        assert!(!format!("{t:?}").contains(t.reveal()));
    }

    #[test]
    fn bad_secrets_are_named_and_empty_ones_replaced() {
        let spec = DEMO_TOKENS[0];
        let empty = json!({"data": {"token": ""}});
        assert_eq!(from_secret(spec, &live(empty)).unwrap(), None);
        let junk = json!({"data": {"token": "%%%"}});
        let e = from_secret(spec, &live(junk)).unwrap_err().to_string();
        assert!(
            e.contains("demo/rfma-demo-token") && e.contains("base64"),
            "{e}"
        );
        let two =
            json!({"data": {"token": base64::engine::general_purpose::STANDARD.encode("a\nb")}});
        assert!(
            from_secret(spec, &live(two))
                .unwrap_err()
                .to_string()
                .contains("not one token")
        );
        let padded =
            json!({"data": {"token": base64::engine::general_purpose::STANDARD.encode("abc\n")}});
        let t = from_secret(spec, &live(padded)).unwrap().unwrap();
        assert_eq!(
            t.sha256,
            digest("abc"),
            "the filter trims the header; so do we"
        );
    }

    #[test]
    fn a_digest_without_a_secret_is_refused() {
        let tokens: Vec<Token> = DEMO_TOKENS.iter().map(|s| fresh(*s).unwrap()).collect();
        let plugin = |sha: &str| {
            json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
                   "metadata": {"name": "gate", "namespace": "demo"},
                   "spec": {"pluginConfig": {"tokens": [
                       {"name": "sleep", "sha256": tokens[0].sha256},
                       {"name": "other", "sha256": sha}]}}})
        };
        check_backed(&[plugin(&tokens[2].sha256.to_uppercase())], &tokens).unwrap();
        let e = check_backed(&[plugin(&"0".repeat(64))], &tokens)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("WasmPlugin/demo/gate") && e.contains("\"other\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        assert_eq!(find("loadtester").unwrap().secret, "rfma-loadtester-token");
        let e = find("nope").unwrap_err().to_string();
        assert!(e.contains("sleep, loadtester, external"), "{e}");
    }
}
