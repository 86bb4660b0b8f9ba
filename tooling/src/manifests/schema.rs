//! Strict JSON Schema validation of rendered objects against the pinned upstream schemas
//! (`shared/schemas`, see its README):
//!
//! - core kinds: `kubernetes/v1.35.0/<kind>-<group>-<version>.json`, the "local-strict" variant
//!   (unknown fields rejected everywhere), `$ref`s into `_definitions.json` resolved by `$id`;
//! - custom resources: the `openAPIV3Schema` of every *served* version of every CRD found under
//!   `crds/`. CRD schemas allow unknown fields unless told otherwise, but the API server prunes
//!   them silently, so a misspelt field would be dropped without a word. We apply the structural
//!   pruning rule as an error instead: an object schema without `additionalProperties` and
//!   without `x-kubernetes-preserve-unknown-fields: true` gets `additionalProperties: false`.
//!   `metadata` is checked against the core `ObjectMeta`, `apiVersion`/`kind` must match, and
//!   OpenAPI's `nullable` is honoured.
//!
//! Not modelled (as in the API server's own schema stage): CEL rules (`x-kubernetes-validations`),
//! defaulting, and string formats.

use super::{Finding, Manifest, ManifestError, field_path};
use anyhow::{Context, anyhow, bail};
use jsonschema::{Draft, Registry, Validator};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Kubernetes version whose core schemas are used.
pub const KUBERNETES_VERSION: &str = "v1.35.0";
const DEFINITIONS_ID: &str = "https://kubernetes.io/api/_definitions.json";
const OBJECT_META: &str = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The schema folder, loaded; validators are compiled on first use of each kind and cached.
pub struct Schemas {
    root: PathBuf,
    core_dir: PathBuf,
    registry: Registry<'static>,
    /// (apiVersion, kind) -> strict schema, for every served CRD version.
    crds: HashMap<(String, String), Value>,
    /// kind -> served apiVersions, for "did you mean" messages.
    crd_versions: BTreeMap<String, BTreeSet<String>>,
    cache: Mutex<HashMap<(String, String), Arc<Validator>>>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas")
            .field("root", &self.root)
            .field("crds", &self.crds.len())
            .finish()
    }
}

impl Schemas {
    /// Loads `dir` (the folder with `kubernetes/` and `crds/`).
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let fail = |message: String| ManifestError::Schemas {
            path: dir.to_path_buf(),
            message,
        };
        let core_dir = dir.join("kubernetes").join(KUBERNETES_VERSION);
        let definitions_file = core_dir.join("_definitions.json");
        let definitions = read_json(&definitions_file).map_err(|e| {
            fail(format!(
                "{e:#} (pass --schemas DIR or set {} to the shared schema folder)",
                super::SCHEMAS_ENV
            ))
        })?;
        let registry = Registry::new()
            .add(DEFINITIONS_ID, definitions)
            .and_then(|b| b.prepare())
            .map_err(|e| fail(format!("{}: {e}", definitions_file.display())))?;

        let mut crds = HashMap::new();
        let mut crd_versions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let crd_dir = dir.join("crds");
        let mut files = Vec::new();
        collect_yaml(&crd_dir, &mut files).map_err(|e| fail(format!("{e:#}")))?;
        if files.is_empty() {
            return Err(fail(format!("no CRD files under {}", crd_dir.display())));
        }
        for file in files {
            for crd in super::load_file(&file)? {
                if crd.kind() != "CustomResourceDefinition" {
                    continue;
                }
                let spec = &crd.object["spec"];
                let (Some(group), Some(kind)) =
                    (spec["group"].as_str(), spec["names"]["kind"].as_str())
                else {
                    return Err(fail(format!(
                        "{}: CRD {} has no spec.group or spec.names.kind",
                        file.display(),
                        crd.name()
                    )));
                };
                for version in spec["versions"].as_array().into_iter().flatten() {
                    let (Some(name), true) = (
                        version["name"].as_str(),
                        version["served"].as_bool().unwrap_or(false),
                    ) else {
                        continue;
                    };
                    let api_version = format!("{group}/{name}");
                    let Some(schema) = version.pointer("/schema/openAPIV3Schema") else {
                        return Err(fail(format!(
                            "{}: {kind} {api_version} has no openAPIV3Schema",
                            file.display()
                        )));
                    };
                    let schema = strict_crd_schema(schema.clone(), &api_version, kind);
                    crd_versions
                        .entry(kind.to_string())
                        .or_default()
                        .insert(api_version.clone());
                    crds.insert((api_version, kind.to_string()), schema);
                }
            }
        }
        Ok(Self {
            root: dir.to_path_buf(),
            core_dir,
            registry,
            crds,
            crd_versions,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The folder this was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many custom (apiVersion, kind) pairs have a schema.
    pub fn custom_kinds(&self) -> usize {
        self.crds.len()
    }

    /// Validates one object; every violation becomes a [`Finding`] with rule `schema`, and so does
    /// a kind or version with no schema (nothing unchecked passes) or a schema that cannot be used.
    pub fn validate(&self, manifest: &Manifest) -> Vec<Finding> {
        let validator = match self.validator(manifest.api_version(), manifest.kind()) {
            Ok(v) => v,
            Err(e) => return vec![Finding::error("schema", manifest, "", format!("{e:#}"))],
        };
        let mut findings: Vec<Finding> = validator
            .iter_errors(&manifest.object)
            .map(|e| {
                Finding::error(
                    "schema",
                    manifest,
                    field_path(e.instance_path().as_str()),
                    e.to_string(),
                )
            })
            .collect();
        findings.dedup();
        findings
    }

    fn validator(&self, api_version: &str, kind: &str) -> anyhow::Result<Arc<Validator>> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(v) = self
            .cache
            .lock()
            .map_err(|_| anyhow!("schema cache poisoned"))?
            .get(&key)
        {
            return Ok(v.clone());
        }
        let schema = match self.crds.get(&key) {
            Some(schema) => schema.clone(),
            None => self.core_schema(api_version, kind)?,
        };
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&schema)
            .with_context(|| format!("cannot compile the schema of {api_version} {kind}"))?;
        let validator = Arc::new(validator);
        self.cache
            .lock()
            .map_err(|_| anyhow!("schema cache poisoned"))?
            .insert(key, validator.clone());
        Ok(validator)
    }

    fn core_schema(&self, api_version: &str, kind: &str) -> anyhow::Result<Value> {
        let file = self.core_dir.join(core_file_name(api_version, kind));
        if file.is_file() {
            return read_json(&file);
        }
        // Explain: a removed or wrong apiVersion, or a kind nobody has a schema for.
        if let Some(served) = self.crd_versions.get(kind) {
            let served: Vec<_> = served.iter().map(String::as_str).collect();
            bail!(
                "no schema for apiVersion `{api_version}` kind `{kind}`: the pinned CRDs serve {kind} only as {}",
                served.join(", ")
            );
        }
        let prefix = format!("{}-", kind.to_ascii_lowercase());
        let mut known: Vec<String> = std::fs::read_dir(&self.core_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
            .map(|n| n.trim_end_matches(".json").to_string())
            .collect();
        known.sort();
        if known.is_empty() {
            bail!(
                "no schema for apiVersion `{api_version}` kind `{kind}` (Kubernetes {KUBERNETES_VERSION} core kinds and the pinned CRDs only; a kind we cannot check is an error)"
            )
        } else {
            bail!(
                "no schema for apiVersion `{api_version}` kind `{kind}`: removed or misspelt apiVersion? Kubernetes {KUBERNETES_VERSION} has {}",
                known.join(", ")
            )
        }
    }
}

/// kubernetes-validate's file naming: `<kind>-<group without domain>-<version>.json`, `<kind>-<version>.json` for core.
pub fn core_file_name(api_version: &str, kind: &str) -> String {
    let version = match api_version.split_once('/') {
        Some((group, version)) => format!("{}-{version}", group.split('.').next().unwrap_or(group)),
        None => api_version.to_string(),
    };
    format!("{}-{version}.json", kind.to_ascii_lowercase())
}

/// The JSON file at `path`; the error names the file.
fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

/// Every `.yaml` and `.yml` file at or below `dir`, in path order; the error names the directory.
fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| dir.display().to_string())?;
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// A CRD version's `openAPIV3Schema` made strict: see the module documentation.
pub fn strict_crd_schema(mut schema: Value, api_version: &str, kind: &str) -> Value {
    strictify(&mut schema);
    if let Some(map) = schema.as_object_mut() {
        map.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        let properties = map.entry("properties").or_insert_with(|| json!({}));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert(
                "apiVersion".into(),
                json!({"type": "string", "enum": [api_version]}),
            );
            properties.insert("kind".into(), json!({"type": "string", "enum": [kind]}));
            properties.insert("metadata".into(), json!({"$ref": OBJECT_META}));
        }
        map.insert("additionalProperties".into(), json!(false));
        let mut required: Vec<Value> = map
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for field in ["apiVersion", "kind", "metadata"] {
            if !required.iter().any(|r| r == field) {
                required.push(json!(field));
            }
        }
        map.insert("required".into(), Value::Array(required));
    }
    schema
}

/// Structural pruning as an error, applied to the structural positions of a schema
/// (`properties`, `items`, `additionalProperties`); `nullable: true` admits `null`.
fn strictify(node: &mut Value) {
    let Some(map) = node.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(strictify);
    }
    if let Some(items) = map.get_mut("items") {
        strictify(items);
    }
    if let Some(additional @ Value::Object(_)) = map.get_mut("additionalProperties") {
        strictify(additional);
    }
    if map.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(t)) = map.get("type").cloned()
    {
        map.insert("type".into(), json!([t, "null"]));
    }
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let is_object =
        map.get("type").and_then(Value::as_str) == Some("object") || map.contains_key("properties");
    if is_object && !preserve && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_file_names_follow_kubernetes_validate() {
        assert_eq!(
            core_file_name("apps/v1", "Deployment"),
            "deployment-apps-v1.json"
        );
        assert_eq!(core_file_name("v1", "ConfigMap"), "configmap-v1.json");
        assert_eq!(
            core_file_name("rbac.authorization.k8s.io/v1", "ClusterRole"),
            "clusterrole-rbac-v1.json"
        );
        assert_eq!(
            core_file_name("autoscaling/v2", "HorizontalPodAutoscaler"),
            "horizontalpodautoscaler-autoscaling-v2.json"
        );
    }

    #[test]
    fn structural_pruning_becomes_an_error() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string", "nullable": true}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "integer"}}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"y": {"type": "integer"}}}}
        }});
        let strict = strict_crd_schema(schema, "x.io/v1", "Thing");
        assert_eq!(strict["additionalProperties"], json!(false));
        assert_eq!(
            strict["properties"]["spec"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(
            strict["properties"]["spec"]["properties"]["a"]["type"],
            json!(["string", "null"])
        );
        assert!(
            strict["properties"]["free"]
                .get("additionalProperties")
                .is_none()
        );
        assert_eq!(
            strict["properties"]["map"]["additionalProperties"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(
            strict["properties"]["list"]["items"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(strict["properties"]["kind"]["enum"], json!(["Thing"]));
    }
}
