//! Walking the tree as Flux's `tar.Tar` walks it: what is packed, in which order, and which
//! names and links are refused.

use super::MAX_ENTRIES;
use super::ustar::split_ustar;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// Names skipped at any depth: (gitignore pattern without `*`, directories only, a suffix match).
const IGNORED: &[(&str, bool, bool)] = &[
    (".git", true, false),
    (".gitignore", false, false),
    (".gitmodules", false, false),
    (".gitattributes", false, false),
    (".jpg", false, true),
    (".jpeg", false, true),
    (".gif", false, true),
    (".png", false, true),
    (".wmv", false, true),
    (".flv", false, true),
    (".tar.gz", false, true),
    (".zip", false, true),
];

/// One entry of the layer, in archive order.
#[derive(Debug)]
pub(super) enum Entry {
    Dir(String),
    File {
        name: String,
        /// Where the bytes are (a link inside the tree resolved to its target).
        path: PathBuf,
        executable: bool,
    },
}

pub(super) fn is_ignored(name: &str, is_dir: bool) -> bool {
    IGNORED.iter().any(|&(pattern, dir_only, suffix)| {
        let hit = if suffix {
            name.ends_with(pattern)
        } else {
            name == pattern
        };
        hit && (is_dir || !dir_only)
    })
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o100 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// Walks `dir` as Flux does and returns the entries to pack.
pub(super) fn collect(dir: &Path) -> Result<Vec<Entry>> {
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot open the artifact tree {}", dir.display()))?;
    let meta =
        std::fs::metadata(&root).with_context(|| format!("cannot stat {}", root.display()))?;
    let mut entries = vec![Entry::Dir(".".into())];
    if meta.is_file() {
        // Flux stages a single file in a directory of its own and packs that.
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{}: the file name is not UTF-8", dir.display()))?;
        check_name(name, name)?;
        if !is_ignored(name, false) {
            entries.push(Entry::File {
                name: name.to_string(),
                path: root.clone(),
                executable: is_executable(&meta),
            });
        }
        return Ok(entries);
    }
    if !meta.is_dir() {
        bail!("{}: neither a directory nor a regular file", dir.display());
    }
    let mut chain = vec![root.clone()];
    walk(&root, &root, "", &mut chain, &mut entries)?;
    Ok(entries)
}

fn walk(
    root: &Path,
    real_dir: &Path,
    prefix: &str,
    chain: &mut Vec<PathBuf>,
    entries: &mut Vec<Entry>,
) -> Result<()> {
    let shown = |rel: &str| root.join(rel).display().to_string();
    let mut names = Vec::new();
    for item in
        std::fs::read_dir(real_dir).with_context(|| format!("cannot list {}", shown(prefix)))?
    {
        let item = item.with_context(|| format!("cannot list {}", shown(prefix)))?;
        names.push(item.file_name());
    }
    // filepath.WalkDir visits each directory's names sorted bytewise.
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for os_name in names {
        let name = os_name
            .to_str()
            .ok_or_else(|| anyhow!("{}: a name in it is not UTF-8 ({os_name:?})", shown(prefix)))?;
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let path = real_dir.join(name);
        let lmeta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot stat {}", shown(&rel)))?;
        let (real, meta) = if lmeta.file_type().is_symlink() {
            let target = path
                .canonicalize()
                .map_err(|e| anyhow!("{}: the symbolic link leads nowhere ({e})", shown(&rel)))?;
            if !target.starts_with(root) {
                bail!(
                    "{}: the symbolic link points outside the tree, to {}; copy the file in instead",
                    shown(&rel),
                    target.display()
                );
            }
            let meta = std::fs::metadata(&target)
                .with_context(|| format!("cannot stat {}", target.display()))?;
            (target, meta)
        } else {
            (path, lmeta)
        };
        if meta.is_dir() {
            if is_ignored(name, true) {
                continue;
            }
            if chain.contains(&real) {
                bail!(
                    "{}: the symbolic link makes a loop (it leads to {}, which holds it)",
                    shown(&rel),
                    real.display()
                );
            }
            check_name(&rel, name)?;
            entries.push(Entry::Dir(rel.clone()));
            chain.push(real.clone());
            walk(root, &real, &rel, chain, entries)?;
            chain.pop();
        } else if meta.is_file() {
            if is_ignored(name, false) {
                continue;
            }
            check_name(&rel, name)?;
            entries.push(Entry::File {
                name: rel,
                path: real,
                executable: is_executable(&meta),
            });
        }
        // Fifos, sockets and devices: skipped, as Flux's tar.Tar skips them.
        if entries.len() > MAX_ENTRIES {
            bail!("more than {MAX_ENTRIES} entries: is this really a manifest tree?");
        }
    }
    Ok(())
}

/// A name the layer can carry and Flux can unpack.
fn check_name(rel: &str, name: &str) -> Result<()> {
    if name.contains('\\') {
        bail!("{rel:?}: a backslash in a name (Flux refuses to unpack it)");
    }
    if !rel.is_ascii() || rel.contains('\0') {
        bail!("{rel:?}: only ASCII names are packed (a reproducible USTAR header holds no other)");
    }
    if rel.len() > 100 && split_ustar(rel).is_none() {
        bail!(
            "{rel:?}: the path is too long for a USTAR header (at most 100 bytes after the last slash, 155 before it)"
        );
    }
    Ok(())
}
