//! Writing: server-side apply with one field manager and what it changed, a merge patch for
//! fields apply must not take over, and deletes.

use super::{Cluster, FIELD_MANAGER, is_not_found};
use anyhow::{Context, Result, anyhow, bail};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, TypeMeta};
use serde_json::Value;

/// What an apply did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// Changed, with the paths of what changed (e.g. `spec.url`).
    Configured(Vec<String>),
    Unchanged,
    /// Dry run only: the kind is not served yet (its CRD is applied earlier in the plan).
    KindPending,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured(paths) if !paths.is_empty() => {
                return write!(f, "configured ({})", paths.join(", "));
            }
            Outcome::Configured(_) => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::KindPending => "created (kind served once its CRD is established)",
        })
    }
}

/// `Kind/namespace/name` or `Kind/name`.
pub fn object_id(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("?");
    let name = obj["metadata"]["name"].as_str().unwrap_or("?");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

impl Cluster {
    /// Server-side apply with [`FIELD_MANAGER`] and `force`; a server-side dry run when `dry_run`.
    pub async fn apply(&self, obj: &Value) -> Result<Outcome> {
        let (id, object, api_version, kind) = typed(obj)?;
        let name = object
            .metadata
            .name
            .as_deref()
            .ok_or_else(|| anyhow!("{id}: no metadata.name"))?;
        let Some(api) = self
            .api_for(&api_version, &kind, object.metadata.namespace.as_deref())
            .await?
        else {
            if self.dry_run {
                return Ok(Outcome::KindPending);
            }
            bail!(
                "{id}: the API server does not serve {kind} in {api_version} (is its CRD installed and established?)"
            );
        };
        let before = match api.get(name).await {
            Ok(o) => Some(comparable(o)?),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e).with_context(|| format!("reading {id}")),
        };
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if self.dry_run {
            params = params.dry_run();
        }
        let after = api
            .patch(name, &params, &Patch::Apply(&object))
            .await
            .with_context(|| format!("applying {id}"))?;
        let after = comparable(after)?;
        Ok(match before {
            None => Outcome::Created,
            Some(b) if b == after => Outcome::Unchanged,
            Some(b) => Outcome::Configured(changed_paths(&b, &after, "", 3)),
        })
    }

    /// A JSON merge patch of `patch` onto the object named by `obj` (apiVersion, kind, metadata);
    /// `false` when it is not there. For a field another manager owns or we must not take over
    /// with server-side apply (e.g. `spec.suspend` of a Kustomization we applied whole).
    pub async fn merge_patch(&self, obj: &Value, patch: &Value) -> Result<bool> {
        let (id, object, api_version, kind) = typed(obj)?;
        let Some(name) = object.metadata.name.as_deref() else {
            bail!("{id}: apiVersion, kind and metadata.name are needed to patch it");
        };
        let Some(api) = self
            .api_for(&api_version, &kind, object.metadata.namespace.as_deref())
            .await?
        else {
            return Ok(false);
        };
        let mut params = PatchParams::default();
        if self.dry_run {
            params = params.dry_run();
        }
        match api.patch(name, &params, &Patch::Merge(patch)).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("patching {id}")),
        }
    }

    /// Deletes an object; `false` when it was not there.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool> {
        let Some(api) = self.api_for(api_version, kind, namespace).await? else {
            return Ok(false);
        };
        let mut dp = DeleteParams::background();
        if self.dry_run {
            dp = dp.dry_run();
        }
        match api.delete(name, &dp).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("deleting {kind}/{name}")),
        }
    }
}

/// Dotted paths where `a` and `b` differ, descending into objects at most `depth` levels.
pub fn changed_paths(a: &Value, b: &Value, prefix: &str, depth: usize) -> Vec<String> {
    if a == b {
        return Vec::new();
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth > 0 => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    changed_paths(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        &path,
                        depth - 1,
                    )
                })
                .collect()
        }
        _ => vec![if prefix.is_empty() {
            "(object)".to_string()
        } else {
            prefix.to_string()
        }],
    }
}

/// A rendered manifest as the object it names: its id, the `DynamicObject` (typed metadata, the
/// rest as JSON), apiVersion and kind.
fn typed(obj: &Value) -> Result<(String, DynamicObject, String, String)> {
    let id = object_id(obj);
    let object: DynamicObject = serde_json::from_value(obj.clone())
        .with_context(|| format!("{id}: not a Kubernetes object (its metadata)"))?;
    let Some(TypeMeta { api_version, kind }) = object.types.clone() else {
        bail!("{id}: apiVersion and kind are needed");
    };
    Ok((id, object, api_version, kind))
}

/// An object without the fields the server changes on every write, for "unchanged" detection.
fn comparable(mut obj: DynamicObject) -> Result<Value> {
    let m = &mut obj.metadata;
    m.resource_version = None;
    m.managed_fields = None;
    m.generation = None;
    m.creation_timestamp = None;
    m.uid = None;
    if let Some(data) = obj.data.as_object_mut() {
        data.remove("status");
    }
    Ok(serde_json::to_value(obj)?)
}
