//! The step between `cargo build` and the module that ships (`make wasm`, `make wasm-trap`;
//! the binary is `wasm-post --exports filter/exports.json IN.wasm -o OUT.wasm`).
//!
//! The proxy-wasm SDK exports every Proxy-Wasm callback, and Envoy calls each exported one on
//! every request. This keeps only the exports that `filter/exports.json` reaches from its
//! roots (the graph format wasm-metadce reads, so the file stays the one list of what the
//! module exports), removes the code and data only the dropped exports reached, and drops
//! every custom section (names, producers, target features): Envoy reads none of them.
//!
//! Pure Rust, so building the shipped module needs cargo and rustup's wasm target and
//! nothing else, on Linux and macOS alike. The same input gives the same bytes.

use anyhow::{Context, Result, ensure};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The export names that the graph's roots reach. Each node is an object with a `name`, and
/// optionally `root: true`, `reaches` (names of other nodes) and `export` (the export it
/// stands for); anything else is refused rather than silently ignored.
pub fn kept_exports(graph: &str) -> Result<BTreeSet<String>> {
    let nodes: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(graph).context("not a JSON list of graph nodes")?;
    let mut by_name = BTreeMap::new();
    for node in &nodes {
        for key in node.keys() {
            ensure!(
                matches!(key.as_str(), "name" | "root" | "reaches" | "export"),
                "node {node:?}: unknown field {key:?} (wasm-post knows name, root, reaches, export)"
            );
        }
        let name = node
            .get("name")
            .and_then(|n| n.as_str())
            .with_context(|| format!("node {node:?} has no string \"name\""))?;
        ensure!(
            by_name.insert(name, node).is_none(),
            "two nodes are named {name:?}"
        );
    }
    let mut pending: Vec<&str> = by_name
        .iter()
        .filter(|(_, node)| node.get("root").and_then(|r| r.as_bool()) == Some(true))
        .map(|(name, _)| *name)
        .collect();
    ensure!(!pending.is_empty(), "no node has \"root\": true");
    let mut seen = BTreeSet::new();
    let mut keep = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name) {
            continue;
        }
        let node = by_name
            .get(name)
            .with_context(|| format!("a node reaches {name:?}, which is not a node"))?;
        if let Some(export) = node.get("export") {
            let export = export
                .as_str()
                .with_context(|| format!("node {name:?}: \"export\" is not a string"))?;
            keep.insert(export.to_owned());
        }
        if let Some(reaches) = node.get("reaches") {
            let reaches = reaches
                .as_array()
                .with_context(|| format!("node {name:?}: \"reaches\" is not a list"))?;
            for target in reaches {
                pending.push(
                    target
                        .as_str()
                        .with_context(|| format!("node {name:?}: {target} is not a name"))?,
                );
            }
        }
    }
    Ok(keep)
}

/// Keeps the exports named in `keep` (each must exist), then removes whatever no kept export,
/// start function or active segment reaches, and every custom section.
pub fn post_process(wasm: &[u8], keep: &BTreeSet<String>) -> Result<Vec<u8>> {
    let mut config = walrus::ModuleConfig::new();
    config
        .generate_name_section(false)
        .generate_producers_section(false)
        .generate_dwarf(false);
    let mut module = config.parse(wasm).context("not a valid wasm module")?;

    let present: BTreeSet<&str> = module.exports.iter().map(|e| e.name.as_str()).collect();
    let missing: Vec<&str> = keep
        .iter()
        .map(String::as_str)
        .filter(|name| !present.contains(name))
        .collect();
    ensure!(
        missing.is_empty(),
        "the module does not export {missing:?}, which the graph keeps"
    );
    let dropped: Vec<_> = module
        .exports
        .iter()
        .filter(|e| !keep.contains(&e.name))
        .map(|e| e.id())
        .collect();
    for id in dropped {
        module.exports.delete(id);
    }
    let customs: Vec<_> = module.customs.iter().map(|(id, _)| id).collect();
    for id in customs {
        module.customs.delete(id);
    }
    walrus::passes::gc::run(&mut module);
    Ok(module.emit_wasm())
}

/// Writes beside the target and renames, so a failed run never leaves a partial module
/// where the tests or the sandbox would load it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH: &str = r#"[
        {"name": "root", "root": true, "reaches": ["export:memory", "export:kept"]},
        {"name": "export:memory", "export": "memory"},
        {"name": "export:kept", "export": "kept"},
        {"name": "export:unreached", "export": "dropped"}
    ]"#;

    const MODULE: &str = r#"(module
        (import "env" "used" (func $used))
        (import "env" "unused" (func $unused))
        (memory (export "memory") 1)
        (func $helper call $used)
        (func $only_dropped call $unused)
        (func (export "kept") call $helper)
        (func (export "dropped") call $only_dropped)
        (@custom "note" "x")
        (@custom "target_features" "y"))"#;

    fn names(wasm: &[u8]) -> (Vec<String>, Vec<String>, usize, Vec<String>) {
        let module = walrus::Module::from_buffer(wasm).unwrap();
        let exports = module.exports.iter().map(|e| e.name.clone()).collect();
        let imports = module.imports.iter().map(|i| i.name.clone()).collect();
        let customs = module
            .customs
            .iter()
            .map(|(_, c)| c.name().to_owned())
            .collect();
        (exports, imports, module.funcs.iter_local().count(), customs)
    }

    #[test]
    fn keeps_what_the_roots_reach_only() {
        let keep = kept_exports(GRAPH).unwrap();
        assert_eq!(keep, BTreeSet::from(["memory".into(), "kept".into()]));
    }

    #[test]
    fn drops_the_other_exports_their_code_their_imports_and_custom_sections() {
        let wasm = wat::parse_str(MODULE).unwrap();
        assert_eq!(names(&wasm).3, ["note", "target_features"]);
        let out = post_process(&wasm, &kept_exports(GRAPH).unwrap()).unwrap();
        let (exports, imports, local_funcs, customs) = names(&out);
        assert_eq!(exports, ["memory", "kept"]);
        assert_eq!(imports, ["used"]);
        assert_eq!(local_funcs, 2, "kept and its helper");
        assert!(customs.is_empty(), "{customs:?}");
        assert!(out.len() < wasm.len());
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let wasm = wat::parse_str(MODULE).unwrap();
        let keep = kept_exports(GRAPH).unwrap();
        assert_eq!(
            post_process(&wasm, &keep).unwrap(),
            post_process(&wasm, &keep).unwrap()
        );
    }

    #[test]
    fn a_kept_export_the_module_lacks_is_an_error() {
        let wasm = wat::parse_str(MODULE).unwrap();
        let keep = BTreeSet::from(["kept".into(), "proxy_on_typo".into()]);
        let err = post_process(&wasm, &keep).unwrap_err().to_string();
        assert!(err.contains("proxy_on_typo"), "{err}");
    }

    #[test]
    fn a_graph_it_cannot_read_exactly_is_an_error() {
        for (graph, expected) in [
            (r#"[{"name": "a", "export": "a"}]"#, "root"),
            (
                r#"[{"name": "a", "root": true, "reaches": ["b"]}]"#,
                "\"b\"",
            ),
            (
                r#"[{"name": "a", "root": true, "import": ["env", "f"]}]"#,
                "import",
            ),
            (
                r#"[{"name": "a", "root": true}, {"name": "a"}]"#,
                "two nodes",
            ),
            (r#"{"name": "a"}"#, "list"),
        ] {
            let err = format!("{:#}", kept_exports(graph).unwrap_err());
            assert!(err.contains(expected), "{graph}: {err}");
        }
    }

    #[test]
    fn the_projects_graph_keeps_what_envoy_needs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../filter/exports.json");
        let keep = kept_exports(&std::fs::read_to_string(path).unwrap()).unwrap();
        for name in ["memory", "_initialize", "proxy_on_request_headers"] {
            assert!(keep.contains(name), "{name}");
        }
    }
}
