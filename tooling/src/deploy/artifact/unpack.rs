//! Unpacking a content layer into a directory, refusing anything that could land outside it.

use super::{MAX_CONTENT_BYTES, MAX_ENTRIES};
use anyhow::{Context, Result, anyhow, bail};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Unpacks a content layer (gzip'd tar) into `into`, which must be missing or an empty directory.
/// Only directories and regular files are accepted; a name that is absolute, has a `..` part or a
/// backslash, a link or a device, more than `MAX_CONTENT_BYTES` of files or `MAX_ENTRIES` entries,
/// and the same path twice are refused. Files get mode 0644, or 0755 when the owner may execute.
pub fn unpack(layer: &[u8], into: &Path) -> Result<()> {
    match std::fs::read_dir(into) {
        Ok(mut items) => {
            if items.next().is_some() {
                bail!("{}: not empty; unpack into a new directory", into.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(into)
            .with_context(|| format!("cannot create {}", into.display()))?,
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", into.display())),
    }
    // Headers and padding take at most 1.5 KiB an entry on top of the files themselves.
    let bound = MAX_CONTENT_BYTES + (MAX_ENTRIES as u64) * 1536 + 1024;
    let gz = flate2::read::GzDecoder::new(layer);
    let mut archive = tar::Archive::new(gz.take(bound));
    let mut total = 0u64;
    let mut count = 0usize;
    for entry in archive.entries().context("the layer is not a gzip'd tar")? {
        let mut entry = entry.context("the layer is not a readable gzip'd tar")?;
        count += 1;
        if count > MAX_ENTRIES {
            bail!("the layer has more than {MAX_ENTRIES} entries");
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw)
            .map_err(|e| anyhow!("an entry name is not UTF-8: {:?}", e.as_bytes()))?;
        let rel = safe_relative(&name)?;
        let kind = entry.header().entry_type();
        let target = into.join(&rel);
        match kind {
            tar::EntryType::Directory => {
                if !rel.as_os_str().is_empty() {
                    std::fs::create_dir_all(&target)
                        .with_context(|| format!("cannot create {}", target.display()))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if rel.as_os_str().is_empty() {
                    bail!("entry {name:?} is a file in place of the root");
                }
                let size = entry.header().size().context("an entry size")?;
                total = total.saturating_add(size);
                if total > MAX_CONTENT_BYTES {
                    bail!(
                        "the layer's files add up to more than {} MiB",
                        MAX_CONTENT_BYTES >> 20
                    );
                }
                let executable = entry.header().mode().is_ok_and(|m| m & 0o100 != 0);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .with_context(|| format!("cannot read entry {name:?}"))?;
                write_new(&target, &data, executable).with_context(|| format!("entry {name:?}"))?;
            }
            other => bail!(
                "entry {name:?} is a {other:?}; a Flux artifact holds only directories and regular files"
            ),
        }
    }
    Ok(())
}

/// `name` as a path below the root: no absolute path, no `..`, no backslash, no NUL.
fn safe_relative(name: &str) -> Result<PathBuf> {
    if name.is_empty() {
        bail!("an entry has an empty name");
    }
    if name.starts_with('/') {
        bail!("entry {name:?} is an absolute path");
    }
    if name.contains('\\') || name.contains('\0') {
        bail!("entry {name:?} holds a backslash or NUL");
    }
    let mut rel = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("entry {name:?} climbs out of the tree with '..'"),
            p => rel.push(p),
        }
    }
    Ok(rel)
}

fn write_new(path: &Path, data: &[u8], executable: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if executable { 0o755 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = executable;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!("{} is in the layer twice", path.display())
        } else {
            anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    file.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))
}
