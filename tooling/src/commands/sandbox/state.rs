//! The sandbox's state file: where it is, what it holds, and who may write it. The format is
//! described in [`super::gate`], which reads it.
//!
//! A running sandbox owns `<state dir>/sandbox.json` through a [`Claim`]: taken before anything
//! starts (an exclusive create, so two sandboxes starting at once cannot both get it), filled
//! in once Envoy is ready ([`Claim::publish`]), removed when the claim is dropped (Ctrl-C, a
//! child that died, an error on the way up). A file whose process is gone (the sandbox was
//! killed) is stale and replaced.

use super::DEMO_PLAIN_TOKEN;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The environment variable naming the state directory (the `--state-dir` flag wins over it).
pub const STATE_DIR_ENV: &str = "ISTIO_DEMO_STATE_DIR";
/// The state file's name in the state directory.
pub const STATE_FILE: &str = "sandbox.json";
/// The default state directory: this folder under `$XDG_RUNTIME_DIR` (per user, private, gone at
/// logout), else `/tmp/istio-demo-<uid>`.
pub const DEFAULT_STATE_SUBDIR: &str = "istio-demo";
/// The state file's format; a reader refuses another one. Version 1 named an LDS file: that
/// sandbox took its configuration through a listener update, which this gate no longer writes.
pub const STATE_VERSION: u32 = 2;

/// The state directory: `explicit` (`--state-dir`), else `$ISTIO_DEMO_STATE_DIR`, else the
/// default ([`DEFAULT_STATE_SUBDIR`]).
pub fn state_dir(explicit: Option<&Path>) -> PathBuf {
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    resolve_state_dir(explicit, |name| std::env::var_os(name), uid)
}

fn resolve_state_dir(
    explicit: Option<&Path>,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
    uid: u32,
) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(STATE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    match var("XDG_RUNTIME_DIR") {
        Some(run) => Path::new(&run).join(DEFAULT_STATE_SUBDIR),
        None => std::env::temp_dir().join(format!("{DEFAULT_STATE_SUBDIR}-{uid}")),
    }
}

/// Where the running sandbox's Envoy can be reached, and its files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvoyState {
    /// The admin API (stats, config dump).
    pub admin: SocketAddr,
    /// The plain-text listener the clients use.
    pub listener: SocketAddr,
    /// httpbin, behind Envoy.
    pub upstream: SocketAddr,
    /// The watched ECDS file holding the Wasm filter's configuration: replacing it updates the
    /// gate.
    pub ecds_file: PathBuf,
    /// The filter module (absolute), named again in every configuration update.
    pub wasm: PathBuf,
    pub access_log: PathBuf,
    /// Envoy's own log, where it says why it rejected an update.
    pub log: PathBuf,
}

/// The state file's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub version: u32,
    /// The sandbox's process.
    pub pid: u32,
    /// Absent while the sandbox is starting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy: Option<EnvoyState>,
    /// The plugin configuration running now, as [`redacted`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_config: Option<Value>,
}

/// `config` with every plain-text token (`value`) other than the demo's fixed one replaced by
/// its digest (`sha256`): the filter treats both alike, and the state file never holds a
/// token in clear text that the sandbox did not print itself.
pub fn redacted(config: &Value) -> Value {
    let mut config = config.clone();
    for token in config["tokens"].as_array_mut().into_iter().flatten() {
        let Some(entry) = token.as_object_mut() else {
            continue;
        };
        let plain = entry
            .get("value")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(value) = plain.filter(|v| v != DEMO_PLAIN_TOKEN) {
            entry.remove("value");
            entry.insert(
                "sha256".into(),
                Value::String(super::hex(&rfma_filter::digest::sha256(value.as_bytes()))),
            );
        }
    }
    config
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists, under another user.
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reads a state file; `Ok(None)` when there is none.
pub fn read(file: &Path) -> anyhow::Result<Option<State>> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let state: State = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a sandbox state file", file.display()))?;
    if state.version != STATE_VERSION {
        bail!(
            "{}: state file version {} (this istio-demo reads {STATE_VERSION})",
            file.display(),
            state.version
        );
    }
    Ok(Some(state))
}

/// Replaces a state file atomically (a sibling, then a rename), readable by its owner only.
pub fn write(file: &Path, state: &State) -> anyhow::Result<()> {
    let tmp = file.with_extension(format!("json.{}.tmp", std::process::id()));
    let bytes = serde_json::to_vec_pretty(state).context("cannot render the state file")?;
    envoy_harness::write_private(&tmp, &bytes).map_err(anyhow::Error::msg)?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot replace {}", file.display()))
}

/// Makes the state directory (owner only), or checks that an existing one is ours and not
/// writable by others: the state file tells a rotation which Envoy to reconfigure.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let me = unsafe { libc::getuid() };
    if meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        bail!(
            "the state directory {} belongs to another user or others may write to it; \
             pass --state-dir DIR or set {STATE_DIR_ENV}",
            dir.display()
        );
    }
    Ok(())
}

/// Another sandbox runs with this state directory.
#[derive(Debug)]
pub struct AlreadyRunning {
    pub pid: u32,
    pub file: PathBuf,
}

impl std::fmt::Display for AlreadyRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a sandbox is already running (pid {}, state file {}): stop it with Ctrl-C first, \
             or give this one its own --state-dir DIR",
            self.pid,
            self.file.display()
        )
    }
}

impl std::error::Error for AlreadyRunning {}

/// This process's hold on the state file; dropping it removes the file.
#[derive(Debug)]
pub struct Claim {
    file: PathBuf,
    pid: u32,
}

impl Claim {
    /// Takes `<dir>/sandbox.json` for this process: refuses when a live sandbox holds it
    /// ([`AlreadyRunning`]), replaces a stale one. Returns the claim and, if a stale file was
    /// replaced, the pid that had left it (0: the file was not a state file).
    pub fn take(dir: &Path) -> anyhow::Result<(Claim, Option<u32>)> {
        private_dir(dir)?;
        let file = dir.join(STATE_FILE);
        let pid = std::process::id();
        let mut replaced = None;
        // Twice at most: once to find a stale file and remove it, once to create ours.
        for _ in 0..2 {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file);
            match created {
                Ok(mut f) => {
                    let starting = State {
                        version: STATE_VERSION,
                        pid,
                        envoy: None,
                        plugin_config: None,
                    };
                    let claim = Claim { file, pid };
                    f.write_all(&serde_json::to_vec_pretty(&starting)?)
                        .with_context(|| format!("cannot write {}", claim.file.display()))?;
                    return Ok((claim, replaced));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // An unreadable file is not a sandbox's: treat it as stale.
                    let holder = read(&file).ok().flatten().map(|s| s.pid);
                    if let Some(other) = holder.filter(|&p| p != pid && alive(p)) {
                        return Err(AlreadyRunning { pid: other, file }.into());
                    }
                    replaced = Some(holder.unwrap_or(0));
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("cannot remove the stale {}", file.display())
                            });
                        }
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", file.display()));
                }
            }
        }
        bail!(
            "{} keeps coming back: is another sandbox starting with the same --state-dir?",
            file.display()
        )
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Fills in the state file once Envoy serves.
    pub fn publish(&self, envoy: EnvoyState, plugin_config: &Value) -> anyhow::Result<()> {
        let state = State {
            version: STATE_VERSION,
            pid: self.pid,
            envoy: Some(envoy),
            plugin_config: Some(redacted(plugin_config)),
        };
        write(&self.file, &state)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Only our own file: never one another sandbox wrote after ours was replaced.
        if read(&self.file).ok().flatten().map(|s| s.pid) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_tokens_other_than_the_demos_become_digests() {
        let config = json!({
            "header": "x-k",
            "tokens": [
                { "name": "demo-plain", "value": DEMO_PLAIN_TOKEN },
                { "name": "mine", "value": "s3cret", "not_after": "2100-01-01T00:00:00Z" },
                { "name": "d", "sha256": "ab".repeat(32) },
            ],
        });
        let r = redacted(&config);
        assert!(!r.to_string().contains("s3cret"));
        assert_eq!(r["tokens"][0], config["tokens"][0]);
        assert_eq!(
            r["tokens"][1],
            json!({ "name": "mine", "not_after": "2100-01-01T00:00:00Z",
                "sha256": super::super::hex(&rfma_filter::digest::sha256(b"s3cret")) })
        );
        assert_eq!(r["tokens"][2], config["tokens"][2]);
        // The filter reads the redacted configuration as the same policy.
        let (a, b) = (
            super::super::check_config(config.to_string().as_bytes()).unwrap(),
            super::super::check_config(r.to_string().as_bytes()).unwrap(),
        );
        assert_eq!(a.digests, b.digests);
    }

    #[test]
    fn a_claim_refuses_a_live_holder_replaces_a_stale_one_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STATE_FILE);
        // Our parent is alive and is not us: a live holder.
        let parent = std::os::unix::process::parent_id();
        let other = State {
            version: STATE_VERSION,
            pid: parent,
            envoy: None,
            plugin_config: None,
        };
        write(&file, &other).unwrap();
        let e = Claim::take(dir.path()).unwrap_err();
        let running = e.downcast_ref::<AlreadyRunning>().expect("AlreadyRunning");
        assert_eq!(running.pid, parent);

        // A pid no process has (above the kernel's pid_max): stale, replaced.
        write(
            &file,
            &State {
                pid: 1 << 30,
                ..other
            },
        )
        .unwrap();
        let (claim, replaced) = Claim::take(dir.path()).unwrap();
        assert_eq!(replaced, Some(1 << 30));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read(&file).unwrap().unwrap().pid, std::process::id());
        drop(claim);
        assert!(!file.exists());
        assert_eq!(read(&file).unwrap(), None);
    }

    #[test]
    fn the_state_dir_comes_from_the_flag_then_the_environment_then_the_runtime_dir() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = env(&[(STATE_DIR_ENV, "/e"), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(
            resolve_state_dir(Some(Path::new("/f")), all, 7),
            Path::new("/f")
        );
        assert_eq!(resolve_state_dir(None, all, 7), Path::new("/e"));
        let xdg = env(&[(STATE_DIR_ENV, ""), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(
            resolve_state_dir(None, xdg, 7),
            Path::new("/run/user/7/istio-demo")
        );
        assert_eq!(
            resolve_state_dir(None, env(&[]), 7),
            std::env::temp_dir().join("istio-demo-7")
        );
    }
}
