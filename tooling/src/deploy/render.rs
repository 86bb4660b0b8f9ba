//! Rendering what `up` deploys: a copy of the manifest tree with the release values filled in (the
//! module's digest and in-cluster reference, the token digests), rendered with kustomize from a
//! Flux entry point (`flux/clusters/<profile>`) and every path its Kustomizations sync.
//!
//! The repository's `istio/wasm/release/filter-release.yaml` is a template: its values are
//! placeholders that only this module replaces, in a copy. Whatever is rendered for a deploy is
//! checked for placeholders before anything is written to a cluster.

use super::tokens::{Entry, RELEASE_KEY_SUFFIX};
use crate::manifests::{self, Manifest};
use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Namespace of the in-cluster registry (no sidecar injection).
pub const REGISTRY_NAMESPACE: &str = "istio-demo-registry";
/// The registry as pods (istio-agent, Flux's source-controller) reach it: plain HTTP.
pub const REGISTRY_HOST: &str = "registry.istio-demo-registry.svc.cluster.local:5000";
/// The registry's container port, where `up` port-forwards to.
pub const REGISTRY_PORT: u16 = 5000;
/// Label that selects the registry's pod.
pub const REGISTRY_SELECTOR: &str = "app.kubernetes.io/name=registry";
/// Repository of the filter module in that registry.
pub const MODULE_REPOSITORY: &str = "istio-demo/rfma-filter";
/// Repository of the Flux OCI artifact holding the rendered manifests.
pub const MANIFESTS_REPOSITORY: &str = "istio-demo/manifests";
/// The tag both are pushed under (they are deployed by digest; the tag is for people).
pub const TAG: &str = "latest";
/// The directory of the registry's manifests, applied by `up` itself (not by Flux).
pub const REGISTRY_DIR: &str = "registry";
/// The OCIRepository `up` applies (not synced by Flux, so self-sync never reverts it).
pub const OCI_SOURCE_DIR: &str = "flux/sources/oci";
/// The release template.
pub const RELEASE_FILE: &str = "istio/wasm/release/filter-release.yaml";
/// Name and namespace of the Flux source every Kustomization refers to.
pub const SOURCE_NAME: &str = "istio-demo";
pub const FLUX_NAMESPACE: &str = "flux-system";
/// The self-managing Kustomization of every entry point.
pub const SELF_KUSTOMIZATION: &str = "istio-demo";

/// How much of the demo to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// The gate, Istio, Flagger and metrics; no ELK.
    Minimal,
    /// Everything, with ELK logging.
    Full,
}

/// Where Flux reads the manifests from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// An OCI artifact `up` renders and pushes to the in-cluster registry (no fork, no commit).
    Oci,
    /// A Git repository (your fork), which must carry the release values itself.
    Git,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Minimal => "minimal",
            Profile::Full => "full",
        }
    }
}

/// The Flux entry point for a profile and a source: `flux/clusters/<entry>`.
pub fn entry_dir(profile: Profile, source: SourceKind) -> String {
    match source {
        SourceKind::Oci => format!("flux/clusters/{}", profile.name()),
        SourceKind::Git => format!("flux/clusters/git-{}", profile.name()),
    }
}

/// The entry point a self-managing Kustomization's `spec.path` names, back to profile and source.
pub fn entry_of_path(path: &str) -> Option<(Profile, SourceKind)> {
    let dir = path.trim_start_matches("./").trim_end_matches('/');
    [Profile::Minimal, Profile::Full]
        .into_iter()
        .flat_map(|p| [(p, SourceKind::Oci), (p, SourceKind::Git)])
        .find(|(p, s)| entry_dir(*p, *s) == dir)
}

/// The objects a Flux Kustomization syncs: its `spec.path` and what kustomize renders there.
#[derive(Debug, Clone)]
pub struct Synced {
    pub path: String,
    pub objects: Vec<Value>,
}

/// The values of the release ConfigMap (`data`), all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `oci://HOST/REPO@sha256:<hex>`.
    pub image: String,
    /// `<hex>` of the module's image manifest (what Istio checks the pull against).
    pub digest: String,
    /// (`<name>-token-sha256`, digest).
    pub tokens: Vec<(String, String)>,
    /// The gate's token entries per slot (a template entry's name) as the token Secrets record
    /// them; empty, or each slot holding just its own name, leaves the template's list to the
    /// kustomize replacements. See [`write_gate_tokens`].
    pub gate: Vec<(String, Vec<Entry>)>,
}

impl Release {
    /// The release of a module pushed as `manifest_digest` (`sha256:<hex>`) to the in-cluster registry.
    pub fn in_cluster(manifest_digest: &str, tokens: Vec<(String, String)>) -> Result<Self> {
        let hex = manifest_digest
            .strip_prefix("sha256:")
            .with_context(|| format!("{manifest_digest:?} is not a sha256 digest"))?;
        Ok(Release {
            image: format!("oci://{REGISTRY_HOST}/{MODULE_REPOSITORY}@{manifest_digest}"),
            digest: hex.to_string(),
            tokens,
            gate: Vec::new(),
        })
    }

    /// The same release with the gate's entries per slot (from `tokens::gate_entries`).
    pub fn with_gate(self, gate: Vec<(String, Vec<Entry>)>) -> Self {
        Release { gate, ..self }
    }

    /// Whether some slot is renamed or carries a rotation: then the copy's token lists are
    /// written by [`write_gate_tokens`] instead of the template's replacements.
    pub fn rotated(&self) -> bool {
        self.gate
            .iter()
            .any(|(slot, e)| e.len() != 1 || e[0].name != *slot || e[0].not_after.is_some())
    }

    fn values(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("image".to_string(), self.image.clone()),
            ("digest".to_string(), self.digest.clone()),
        ];
        v.extend(self.tokens.iter().cloned());
        v
    }
}

/// The manifest directories a deploy copies and renders.
fn tree_dirs() -> impl Iterator<Item = &'static str> {
    manifests::MANIFEST_DIRS.iter().copied()
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("reading {}", from.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", from.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let kind = e.file_type()?;
        let target = to.join(e.file_name());
        if kind.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(e.path(), &target)
                .with_context(|| format!("copying {}", e.path().display()))?;
        } else {
            bail!(
                "{}: neither a file nor a directory (links are not deployed)",
                e.path().display()
            );
        }
    }
    Ok(())
}

/// Writes `release` into the copy's release ConfigMap. Every key must already be in the template,
/// and every key of the template must get a value: a token the template lacks, or a template key
/// nothing fills, is a mismatch between the template and the token list, and an error.
pub fn write_release(tree: &Path, release: &Release) -> Result<()> {
    let file = tree.join(RELEASE_FILE);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let mut config: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{}: not one YAML object", file.display()))?;
    let data = config
        .get_mut("data")
        .and_then(Value::as_object_mut)
        .with_context(|| format!("{}: no data map", file.display()))?;
    let values = release.values();
    for (k, _) in &values {
        if !data.contains_key(k) {
            bail!(
                "{RELEASE_FILE} has no key {k:?}: the template and the demo's token list disagree"
            );
        }
    }
    if let Some(unfilled) = data.keys().find(|k| !values.iter().any(|(v, _)| v == *k)) {
        bail!("{RELEASE_FILE}: nothing fills the key {unfilled:?}");
    }
    for (k, v) in values {
        data.insert(k, Value::String(v));
    }
    let text = format!(
        "# Rendered by istio-demo from the template {RELEASE_FILE}.\n{}",
        serde_yaml_ng::to_string(&config)?
    );
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))
}

/// The gate's kustomizations and the object file in each, with where its token list sits.
pub const GATE_FILES: [(&str, &str, &str); 2] = [
    (
        "istio/wasm/wasmplugin",
        "wasmplugin.yaml",
        "/spec/pluginConfig/tokens",
    ),
    (
        "istio/wasm/trafficextension",
        "trafficextension.yaml",
        "/spec/wasm/pluginConfig/tokens",
    ),
];

/// Writes the token lists of the copy's gate objects from `gate` (slot → entries): each template
/// entry named after a slot becomes that slot's entries (its principals and other fields kept,
/// name, digest and `not_after` from the entry); other entries stay. The token replacements of
/// the gate's kustomization are dropped, since the digests are now literal: kustomize would
/// otherwise write the slot's current digest over an old entry still named after the slot.
pub fn write_gate_tokens(tree: &Path, gate: &[(String, Vec<Entry>)]) -> Result<()> {
    for (dir, file, pointer) in GATE_FILES {
        let path = tree.join(dir).join(file);
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut obj: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{}: not one YAML object", path.display()))?;
        let list = obj
            .pointer_mut(pointer)
            .and_then(Value::as_array_mut)
            .with_context(|| format!("{}: no token list at {pointer}", path.display()))?;
        let mut written = Vec::new();
        for t in list.drain(..) {
            let slot = t.get("name").and_then(Value::as_str).unwrap_or_default();
            let Some((_, entries)) = gate.iter().find(|(s, _)| s == slot) else {
                written.push(t);
                continue;
            };
            for e in entries {
                let mut o = t.clone();
                o["name"] = Value::String(e.name.clone());
                o["sha256"] = Value::String(e.sha256.clone());
                if let Some(na) = &e.not_after {
                    o["not_after"] = Value::String(na.clone());
                }
                written.push(o);
            }
        }
        *list = written;
        let header =
            format!("# Rendered by istio-demo from {dir}/{file}: the token Secrets' entries.\n");
        std::fs::write(&path, header + &serde_yaml_ng::to_string(&obj)?)
            .with_context(|| format!("writing {}", path.display()))?;

        let kpath = tree.join(dir).join("kustomization.yaml");
        let ktext = std::fs::read_to_string(&kpath)
            .with_context(|| format!("reading {}", kpath.display()))?;
        let mut k: Value = serde_yaml_ng::from_str(&ktext)
            .with_context(|| format!("{}: not one YAML object", kpath.display()))?;
        if let Some(r) = k.get_mut("replacements").and_then(Value::as_array_mut) {
            r.retain(|rep| {
                !rep.pointer("/source/fieldPath")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.ends_with(RELEASE_KEY_SUFFIX))
            });
        }
        std::fs::write(&kpath, serde_yaml_ng::to_string(&k)?)
            .with_context(|| format!("writing {}", kpath.display()))?;
    }
    Ok(())
}

/// A rendered deploy.
#[derive(Debug)]
pub struct Rendered {
    /// The tree the objects were rendered from (the content of the Flux artifact).
    pub tree: PathBuf,
    /// Keeps a rendered copy alive as long as this value.
    _copy: Option<tempfile::TempDir>,
    /// `flux/clusters/<entry>` rendered: the Flux Kustomizations, the self-managing one included.
    pub entry: Vec<Manifest>,
    /// What each of those Kustomizations syncs.
    pub synced: SyncedManifests,
}

fn values(m: &[Manifest]) -> Vec<Value> {
    m.iter().map(|m| m.object.clone()).collect()
}

impl Rendered {
    pub fn entry_objects(&self) -> Vec<Value> {
        values(&self.entry)
    }
    pub fn synced(&self) -> Vec<Synced> {
        self.synced
            .iter()
            .map(|(path, m)| Synced {
                path: path.clone(),
                objects: values(m),
            })
            .collect()
    }
    /// Every rendered object, entry first.
    pub fn all(&self) -> impl Iterator<Item = &Manifest> {
        self.entry
            .iter()
            .chain(self.synced.iter().flat_map(|(_, m)| m))
    }
}

/// What one Kustomization syncs: its `spec.path` and the objects rendered there.
type SyncedManifests = Vec<(String, Vec<Manifest>)>;

fn render_entry(tree: &Path, entry: &str) -> Result<(Vec<Manifest>, SyncedManifests)> {
    let entry_path = tree.join(entry);
    let objects = manifests::render(&entry_path)
        .with_context(|| format!("rendering the Flux entry point {entry}"))?;
    let mut synced = Vec::new();
    for k in objects
        .iter()
        .filter(|m| m.kind() == "Kustomization" && m.group() == "kustomize.toolkit.fluxcd.io")
    {
        let Some(path) = k.object.pointer("/spec/path").and_then(Value::as_str) else {
            bail!("{}: a Flux Kustomization without spec.path", k.id());
        };
        // The self-managing Kustomization syncs the entry point itself: already rendered.
        if path.trim_start_matches("./").trim_end_matches('/') == entry {
            continue;
        }
        let dir = tree.join(path.trim_start_matches("./"));
        let rendered = manifests::render(&dir)
            .with_context(|| format!("rendering {path}, synced by {}", k.id()))?;
        synced.push((path.to_string(), rendered));
    }
    Ok((objects, synced))
}

/// Renders the repository as it is (for `down` and `status`, which only need names, and for the
/// git source, where Flux reads the repository itself).
pub fn render_as_is(repo: &Path, profile: Profile, source: SourceKind) -> Result<Rendered> {
    let (entry, synced) = render_entry(repo, &entry_dir(profile, source))?;
    Ok(Rendered {
        tree: repo.to_path_buf(),
        _copy: None,
        entry,
        synced,
    })
}

/// Copies the manifest tree, writes `release` into the copy and renders it.
pub fn render_release(
    repo: &Path,
    profile: Profile,
    source: SourceKind,
    release: &Release,
) -> Result<Rendered> {
    let copy = tempfile::Builder::new()
        .prefix("istio-demo-release-")
        .tempdir()
        .context("creating a temporary directory")?;
    for dir in tree_dirs() {
        copy_dir(&repo.join(dir), &copy.path().join(dir))?;
    }
    write_release(copy.path(), release)?;
    if release.rotated() {
        write_gate_tokens(copy.path(), &release.gate)?;
    }
    let (entry, synced) = render_entry(copy.path(), &entry_dir(profile, source))?;
    Ok(Rendered {
        tree: copy.path().to_path_buf(),
        _copy: Some(copy),
        entry,
        synced,
    })
}

/// Refuses objects carrying a placeholder (`registry.example.com`, `your-org`, an all-zero
/// digest): deployed, such an object pulls nothing and the gate fails closed on every request.
pub fn refuse_placeholders<'a>(objects: impl IntoIterator<Item = &'a Manifest>) -> Result<()> {
    let objects: Vec<Manifest> = objects.into_iter().cloned().collect();
    let findings = manifests::lint::placeholders(&objects);
    if findings.is_empty() {
        return Ok(());
    }
    bail!(
        "refusing to deploy placeholders (deployed, they pull nothing and the gate denies every request):\n  {}",
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_round_trip() {
        for p in [Profile::Minimal, Profile::Full] {
            for s in [SourceKind::Oci, SourceKind::Git] {
                let dir = entry_dir(p, s);
                assert_eq!(entry_of_path(&format!("./{dir}")), Some((p, s)));
            }
        }
        assert_eq!(entry_of_path("./flux"), None);
    }

    #[test]
    fn the_release_names_the_in_cluster_module_by_digest() {
        let hex = "ab".repeat(32);
        let r = Release::in_cluster(&format!("sha256:{hex}"), vec![]).unwrap();
        assert_eq!(r.digest, hex);
        assert_eq!(
            r.image,
            format!("oci://{REGISTRY_HOST}/{MODULE_REPOSITORY}@sha256:{hex}")
        );
        assert!(Release::in_cluster(&hex, vec![]).is_err());
    }

    #[test]
    fn write_release_fills_every_key_and_refuses_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(RELEASE_FILE);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: r\ndata:\n  image: x\n  digest: y\n  sleep-token-sha256: z\n";
        std::fs::write(&file, template).unwrap();
        let hex = "cd".repeat(32);
        let good = Release::in_cluster(
            &format!("sha256:{hex}"),
            vec![("sleep-token-sha256".into(), "ef".repeat(32))],
        )
        .unwrap();
        write_release(dir.path(), &good).unwrap();
        let written: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(written["data"]["digest"], hex.as_str());
        assert_eq!(
            written["data"]["sleep-token-sha256"],
            "ef".repeat(32).as_str()
        );

        std::fs::write(&file, template).unwrap();
        let extra = Release {
            tokens: vec![
                ("sleep-token-sha256".into(), "ef".repeat(32)),
                ("other-token-sha256".into(), "01".repeat(32)),
            ],
            ..good.clone()
        };
        let e = write_release(dir.path(), &extra).unwrap_err().to_string();
        assert!(e.contains("other-token-sha256"), "{e}");
        let missing = Release {
            tokens: vec![],
            ..good
        };
        let e = write_release(dir.path(), &missing).unwrap_err().to_string();
        assert!(
            e.contains("nothing fills the key \"sleep-token-sha256\""),
            "{e}"
        );
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    /// A rotated slot renders both entries (old with its not_after, principals copied) and a
    /// renamed slot its new name, with no trace of the template's replacements.
    #[test]
    fn the_secrets_entries_become_the_rendered_token_list() {
        let hex = |b: &str| b.repeat(32);
        let e = |name: &str, sha: String, na: Option<&str>| Entry {
            name: name.into(),
            sha256: sha,
            not_after: na.map(str::to_string),
        };
        let release = Release::in_cluster(
            &format!("sha256:{}", hex("cd")),
            vec![
                ("sleep-token-sha256".into(), hex("02")),
                ("loadtester-token-sha256".into(), hex("03")),
                ("external-token-sha256".into(), hex("04")),
            ],
        )
        .unwrap()
        .with_gate(vec![
            (
                "sleep".into(),
                vec![
                    e("sleep", hex("01"), Some("2027-01-01T00:05:00Z")),
                    e("sleep-r2", hex("02"), None),
                ],
            ),
            (
                "loadtester".into(),
                vec![e("loadtester-r3", hex("03"), None)],
            ),
            ("external".into(), vec![e("external", hex("04"), None)]),
        ]);
        assert!(release.rotated());
        let repo = crate::manifests::repo_root();
        let r = render_release(&repo, Profile::Minimal, SourceKind::Oci, &release).unwrap();
        let plugin = r
            .all()
            .find(|m| m.kind() == "WasmPlugin")
            .expect("a WasmPlugin");
        let tokens = plugin.object.pointer("/spec/pluginConfig/tokens").unwrap();
        assert_eq!(
            tokens,
            &serde_json::json!([
                {"name": "sleep", "sha256": hex("01"), "not_after": "2027-01-01T00:05:00Z",
                 "principals": ["spiffe://cluster.local/ns/demo/sa/sleep"]},
                {"name": "sleep-r2", "sha256": hex("02"),
                 "principals": ["spiffe://cluster.local/ns/demo/sa/sleep"]},
                {"name": "loadtester-r3", "sha256": hex("03"),
                 "principals": ["spiffe://cluster.local/ns/flagger-system/sa/flagger-loadtester"]},
                {"name": "external", "sha256": hex("04")},
            ])
        );
        assert_eq!(plugin.object["spec"]["sha256"], hex("cd").as_str());
        // The filter accepts the list it will be given.
        let config = serde_json::to_vec(&plugin.object["spec"]["pluginConfig"]).unwrap();
        rfma_filter::config::parse(&config).unwrap();
    }
}
