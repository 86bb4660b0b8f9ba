//! The layer's bytes: USTAR headers as Go's `archive/tar` writes them, and the gzip stream.

use super::MAX_CONTENT_BYTES;
use super::tree::Entry;
use anyhow::{Context, Result, anyhow, bail};
use std::io::{Read, Write};

/// Go's `splitUSTARPath`: a name over 100 bytes split at a slash into prefix (at most 155) and
/// name (at most 100).
pub(super) fn split_ustar(name: &str) -> Option<(&str, &str)> {
    let mut length = name.len();
    if length <= 100 || !name.is_ascii() {
        return None;
    }
    if length > 156 {
        length = 156;
    } else if name.as_bytes()[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].rfind('/')?;
    let (nlen, plen) = (name.len() - i - 1, i);
    if i == 0 || nlen > 100 || nlen == 0 || plen > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's `formatOctal`: zero-padded octal leaving room for a NUL, then the NUL if it fits.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:o}");
    let padded = format!("{digits:0>width$}", width = field.len() - 1);
    put_str(field, &padded);
}

fn put_str(field: &mut [u8], s: &str) {
    field[..s.len()].copy_from_slice(s.as_bytes());
    if s.len() < field.len() {
        field[s.len()] = 0;
    }
}

/// A USTAR header as Go's `archive/tar` writes it for a `FileInfoHeader` with uid, gid, names and
/// times cleared (what fluxcd/pkg `tar.Tar` writes): mtime 0, devmajor/devminor `0000000`, the
/// checksum as six octal digits, NUL, space.
pub(super) fn ustar_header(name: &str, mode: u32, size: u64, typeflag: u8) -> Result<[u8; 512]> {
    let (prefix, short) = if name.len() <= 100 {
        ("", name)
    } else {
        split_ustar(name).ok_or_else(|| anyhow!("{name:?}: too long for a USTAR header"))?
    };
    if size >= 1 << 33 {
        bail!("{name:?}: {size} bytes is too large for a USTAR header");
    }
    let mut b = [0u8; 512];
    put_str(&mut b[0..100], short);
    put_octal(&mut b[100..108], u64::from(mode));
    put_octal(&mut b[108..116], 0); // uid
    put_octal(&mut b[116..124], 0); // gid
    put_octal(&mut b[124..136], size);
    put_octal(&mut b[136..148], 0); // mtime: the epoch
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_octal(&mut b[329..337], 0); // devmajor
    put_octal(&mut b[337..345], 0); // devminor
    put_str(&mut b[345..500], prefix);
    set_checksum(&mut b);
    Ok(b)
}

/// The header checksum as Go writes it: the bytes' sum with the field read as spaces, in six
/// octal digits, a NUL and a space.
pub(super) fn set_checksum(b: &mut [u8; 512]) {
    let sum: u64 = b
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(c)
            }
        })
        .sum();
    put_octal(&mut b[148..155], sum);
    b[155] = b' ';
}

/// The gzip'd tar of `entries`, and their names.
pub(super) fn layer(entries: &[Entry]) -> Result<(Vec<u8>, Vec<String>)> {
    let mut tar = Vec::new();
    let mut names = Vec::with_capacity(entries.len());
    let mut total = 0u64;
    for entry in entries {
        match entry {
            Entry::Dir(name) => {
                tar.extend_from_slice(&ustar_header(name, 0o755, 0, b'5')?);
                names.push(name.clone());
            }
            Entry::File {
                name,
                path,
                executable,
            } => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let mut data = Vec::new();
                file.take(MAX_CONTENT_BYTES - total + 1)
                    .read_to_end(&mut data)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                total += data.len() as u64;
                if total > MAX_CONTENT_BYTES {
                    bail!(
                        "the files add up to more than {} MiB, more than Flux unpacks",
                        MAX_CONTENT_BYTES >> 20
                    );
                }
                let mode = if *executable { 0o755 } else { 0o644 };
                tar.extend_from_slice(&ustar_header(name, mode, data.len() as u64, b'0')?);
                tar.extend_from_slice(&data);
                tar.resize(tar.len().next_multiple_of(512), 0);
                names.push(name.clone());
            }
        }
    }
    tar.resize(tar.len() + 1024, 0); // two zero blocks end the archive
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    Ok((gz.finish()?, names))
}
