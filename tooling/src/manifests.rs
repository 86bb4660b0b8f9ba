//! The repository's Kubernetes manifests as data: render a kustomization (or read a YAML file)
//! into objects that remember the file they came from, validate them against the pinned schemas
//! ([`schema`]) and check the project's rules ([`lint`]).
//!
//! `validate` uses all of it; `up`, `status`, `verify` and `down` use [`render`] and [`Manifest`].
//!
//! Rendering runs `kubectl kustomize` (offline, no Helm inflation) on a small wrapper kustomization
//! that turns on kustomize's origin annotations, so every object knows its source file; the
//! annotation is removed again, so [`Manifest::object`] is exactly what `kubectl apply -k` sends.

pub mod lint;
pub mod schema;

use serde_json::Value;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The directories at the repository root that hold the demo's manifests, in the order they are
/// applied: `registry/` (the in-cluster registry, applied by `istio-demo up` before Flux), then
/// `flux/` (the sources and the entry points `flux/clusters/<profile>`), then what the Flux
/// Kustomizations point at.
pub const MANIFEST_DIRS: &[&str] = &[
    "registry",
    "flux",
    "istio",
    "monitoring",
    "flagger",
    "demo",
    "elk",
];

/// File names kustomize accepts for a kustomization.
pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Environment variable naming the kubectl binary (default `kubectl` on `PATH`).
pub const KUBECTL_ENV: &str = "KUBECTL";

const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";

/// One rendered Kubernetes object and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The YAML file that declared the object (for generated objects, the kustomization that generated it).
    pub source: PathBuf,
    /// The object as it would be sent to the API server.
    pub object: Value,
}

impl Manifest {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.object.pointer(pointer).and_then(Value::as_str)
    }

    /// `apiVersion`, e.g. `apps/v1` (empty when missing).
    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion").unwrap_or("")
    }

    /// The API group: `apps` for `apps/v1`, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// `kind`, e.g. `Deployment` (empty when missing).
    pub fn kind(&self) -> &str {
        self.str_at("/kind").unwrap_or("")
    }

    /// `metadata.name` (empty when missing).
    pub fn name(&self) -> &str {
        self.str_at("/metadata/name").unwrap_or("")
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace")
    }

    /// `metadata.labels`, if any.
    pub fn labels(&self) -> Option<&serde_json::Map<String, Value>> {
        self.object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
    }

    /// `metadata.annotations[key]`, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }

    /// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects: how messages name an object.
    pub fn id(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{}/{}", self.kind(), ns, self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// Why manifests could not be loaded.
#[derive(Debug)]
pub enum ManifestError {
    /// A file or directory could not be read.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// kubectl could not be started.
    Kubectl {
        program: String,
        error: std::io::Error,
    },
    /// `kubectl kustomize` failed; `stderr` is its message.
    Kustomize { dir: PathBuf, stderr: String },
    /// A YAML document could not be parsed.
    Yaml { source: PathBuf, message: String },
    /// A document is not a Kubernetes object (not a mapping, or no `apiVersion`/`kind`/`metadata.name`).
    NotAnObject {
        source: PathBuf,
        document: usize,
        message: String,
    },
    /// The schema folder is missing or broken.
    Schemas { path: PathBuf, message: String },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Self::Kubectl { program, error } => write!(
                f,
                "cannot run `{program} kustomize`: {error} (install kubectl, which includes kustomize, or set {KUBECTL_ENV})"
            ),
            Self::Kustomize { dir, stderr } => {
                write!(
                    f,
                    "{}: kubectl kustomize failed: {}",
                    dir.display(),
                    stderr.trim()
                )
            }
            Self::Yaml { source, message } => {
                write!(f, "{}: invalid YAML: {message}", source.display())
            }
            Self::NotAnObject {
                source,
                document,
                message,
            } => {
                write!(f, "{}: document {document}: {message}", source.display())
            }
            Self::Schemas { path, message } => write!(f, "schemas {}: {message}", path.display()),
        }
    }
}

impl std::error::Error for ManifestError {}

/// True when `dir` holds a kustomization file.
pub fn is_kustomization(dir: &Path) -> bool {
    KUSTOMIZATION_FILES.iter().any(|f| dir.join(f).is_file())
}

/// True when the kustomization in `dir` is a kustomize `Component` (`kind: Component`).
pub fn is_component(dir: &Path) -> bool {
    KUSTOMIZATION_FILES.iter().any(|f| {
        std::fs::read_to_string(dir.join(f)).is_ok_and(|text| {
            serde_yaml_ng::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("kind")
                        .and_then(Value::as_str)
                        .map(|k| k == "Component")
                })
                .unwrap_or(false)
        })
    })
}

/// Every kustomization at or below `root`, sorted. Hidden directories, `target` and `testdata`
/// (where the tests keep deliberately broken copies) are skipped.
pub fn find_kustomizations(root: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if is_kustomization(&dir) {
            found.push(dir.clone());
        }
        let entries = std::fs::read_dir(&dir).map_err(|error| ManifestError::Io {
            path: dir.clone(),
            error,
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| ManifestError::Io {
                path: dir.clone(),
                error,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                || name == "target"
                || name == "testdata"
                || name == "node_modules"
            {
                continue;
            }
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Renders the kustomization in `dir` with `kubectl kustomize` (offline; set [`KUBECTL_ENV`] to use
/// another binary) and returns its objects in output order, each with the file that declared it.
pub fn render(dir: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let dir = std::fs::canonicalize(dir).map_err(|error| ManifestError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    if !is_kustomization(&dir) {
        return Err(ManifestError::Kustomize {
            dir,
            stderr: format!("no {} in this directory", KUSTOMIZATION_FILES.join(" or ")),
        });
    }
    // A wrapper kustomization that adds origin annotations. Kustomize refuses absolute resource
    // paths, so point at the target through a relative path from the wrapper's directory.
    let wrapper = tempfile::Builder::new()
        .prefix("istio-demo-render-")
        .tempdir()
        .map_err(|error| ManifestError::Io {
            path: std::env::temp_dir(),
            error,
        })?;
    let wrapper_dir = std::fs::canonicalize(wrapper.path()).map_err(|error| ManifestError::Io {
        path: wrapper.path().into(),
        error,
    })?;
    let relative = relative_path(&wrapper_dir, &dir);
    // A kustomize Component cannot be a resource, only included as a component (it then renders
    // nothing on its own, but kustomize still reads and checks it).
    let field = if is_component(&dir) {
        "components"
    } else {
        "resources"
    };
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nbuildMetadata: [originAnnotations]\n{field}:\n  - {}\n",
        serde_json::to_string(&relative.to_string_lossy()).unwrap_or_default()
    );
    let file = wrapper_dir.join("kustomization.yaml");
    std::fs::write(&file, kustomization).map_err(|error| ManifestError::Io {
        path: file.clone(),
        error,
    })?;

    let program = std::env::var(KUBECTL_ENV).unwrap_or_else(|_| "kubectl".to_string());
    let output = Command::new(&program)
        .arg("kustomize")
        .arg(&wrapper_dir)
        .output()
        .map_err(|error| ManifestError::Kubectl {
            program: program.clone(),
            error,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr)
            .replace(&*wrapper_dir.to_string_lossy(), "<wrapper>");
        return Err(ManifestError::Kustomize { dir, stderr });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut manifests = parse_documents(&text, &dir.join("kustomization.yaml"))?;
    for manifest in &mut manifests {
        if let Some(origin) = take_origin(&mut manifest.object) {
            manifest.source = normalize(&wrapper_dir.join(origin));
        }
    }
    Ok(manifests)
}

/// Reads a YAML file of one or more Kubernetes objects (no kustomize).
pub fn load_file(path: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|error| ManifestError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_documents(&text, path)
}

/// Loads `path`: a directory holding a kustomization is rendered, a file is read as YAML.
pub fn load(path: &Path) -> Result<Vec<Manifest>, ManifestError> {
    if path.is_dir() {
        render(path)
    } else {
        load_file(path)
    }
}

/// Parses multi-document YAML into objects; empty documents are skipped, and `kind: List` is expanded.
pub fn parse_documents(text: &str, source: &Path) -> Result<Vec<Manifest>, ManifestError> {
    use serde::Deserialize;
    let mut manifests = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(document).map_err(|e| ManifestError::Yaml {
            source: source.to_path_buf(),
            message: e.to_string(),
        })?;
        let number = index + 1;
        match value {
            Value::Null => continue,
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = map
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    manifests.push(check_object(item, source, number)?);
                }
            }
            other => manifests.push(check_object(other, source, number)?),
        }
    }
    Ok(manifests)
}

fn check_object(value: Value, source: &Path, document: usize) -> Result<Manifest, ManifestError> {
    let fail = |message: &str| ManifestError::NotAnObject {
        source: source.to_path_buf(),
        document,
        message: message.into(),
    };
    let map = value.as_object().ok_or_else(|| fail("not a mapping"))?;
    for (pointer, field) in [
        ("/apiVersion", "apiVersion"),
        ("/kind", "kind"),
        ("/metadata/name", "metadata.name"),
    ] {
        match value.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => {
                return Err(fail(&format!(
                    "`{field}` is missing or not a non-empty string"
                )));
            }
        }
    }
    debug_assert!(map.contains_key("kind"));
    Ok(Manifest {
        source: source.to_path_buf(),
        object: value,
    })
}

/// Removes kustomize's origin annotation (and an `annotations` map it leaves empty); returns the origin path.
fn take_origin(object: &mut Value) -> Option<PathBuf> {
    let metadata = object.get_mut("metadata")?.as_object_mut()?;
    let annotations = metadata.get_mut("annotations")?.as_object_mut()?;
    let origin = annotations.remove(ORIGIN_ANNOTATION)?;
    if annotations.is_empty() {
        metadata.remove("annotations");
    }
    let origin: Value = serde_yaml_ng::from_str(origin.as_str()?).ok()?;
    // Declared in a file: `path`; generated by a kustomization: `configuredIn`.
    let path = origin
        .get("path")
        .or_else(|| origin.get("configuredIn"))?
        .as_str()?;
    Some(PathBuf::from(path))
}

/// `to` relative to `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to[common..] {
        out.push(part.as_os_str());
    }
    out
}

/// Lexically removes `.` and `..` components.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The path to show a user: relative to the current directory when it is below it.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| std::fs::canonicalize(d).ok());
    match cwd.as_deref().and_then(|cwd| path.strip_prefix(cwd).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => path.display().to_string(),
    }
}

/// The repository root: the nearest ancestor of the current directory that holds `flux/` and
/// `tooling/Cargo.toml`, else the workspace this binary was built from.
pub fn repo_root() -> PathBuf {
    let looks_right = |d: &Path| d.join("tooling/Cargo.toml").is_file() && d.join("flux").is_dir();
    if let Ok(cwd) = std::env::current_dir()
        && let Some(found) = cwd.ancestors().find(|d| looks_right(d))
    {
        return found.to_path_buf();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    built.parent().unwrap_or(built).to_path_buf()
}

/// Environment variable that overrides the schema folder.
pub const SCHEMAS_ENV: &str = "ISTIO_DEMO_SCHEMAS";

/// The schema folder: `$ISTIO_DEMO_SCHEMAS` if set, else `<repo>/../shared/schemas`.
pub fn default_schema_dir(repo: &Path) -> PathBuf {
    match std::env::var_os(SCHEMAS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo.join("..").join("shared").join("schemas"),
    }
}

/// How serious a [`Finding`] is. Errors fail `validate`; warnings are printed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem with one object: a schema violation or a broken project rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Which check: `schema`, or the lint's name (e.g. `image-pinned`).
    pub rule: &'static str,
    /// The file that declared the object.
    pub source: PathBuf,
    /// `Kind/namespace/name`.
    pub object: String,
    /// Field path inside the object, e.g. `spec.template.spec.containers[0].image` (empty: the whole object).
    pub path: String,
    pub message: String,
}

impl Finding {
    pub fn error(
        rule: &'static str,
        manifest: &Manifest,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            rule,
            source: manifest.source.clone(),
            object: manifest.id(),
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn warning(
        rule: &'static str,
        manifest: &Manifest,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(rule, manifest, path, message)
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{level}[{}]: {}: {}",
            self.rule,
            display_path(&self.source),
            self.object
        )?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Turns a JSON pointer (`/spec/containers/0/image`) into a field path (`spec.containers[0].image`).
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_read_like_kubectl_explain() {
        assert_eq!(
            field_path("/spec/template/spec/containers/0/image"),
            "spec.template.spec.containers[0].image"
        );
        assert_eq!(
            field_path("/metadata/annotations/a~1b"),
            "metadata.annotations.a/b"
        );
        assert_eq!(field_path(""), "");
    }

    #[test]
    fn relative_paths_climb_then_descend() {
        assert_eq!(
            relative_path(Path::new("/tmp/x/y"), Path::new("/work/main/demo")),
            PathBuf::from("../../../work/main/demo")
        );
        assert_eq!(
            normalize(Path::new("/tmp/x/../../work/./a")),
            PathBuf::from("/work/a")
        );
    }

    #[test]
    fn documents_need_kind_and_name() {
        let ok = parse_documents(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n---\n",
            Path::new("f.yaml"),
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].id(), "ConfigMap/n/a");
        assert_eq!(ok[0].group(), "");
        let err = parse_documents(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
            Path::new("f.yaml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        let err = parse_documents("- a\n- b\n", Path::new("f.yaml")).unwrap_err();
        assert!(err.to_string().contains("not a mapping"), "{err}");
    }
}
