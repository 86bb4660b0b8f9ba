//! The running sandbox's gate, as a rotation drives it: read the plugin configuration that runs,
//! replace it without a restart, read each token's usage.
//!
//! # The state file
//!
//! While `istio-demo sandbox` runs, it keeps `sandbox.json` in its state directory
//! (`--state-dir`, else `$ISTIO_DEMO_STATE_DIR`, else `$XDG_RUNTIME_DIR/istio-demo`, else
//! `/tmp/istio-demo-<uid>`; see [`super::state`]). The directory is the user's own (mode 0700),
//! the file is readable by its owner only (0600) and replaced atomically. It is JSON:
//!
//! ```json
//! {
//!   "version": 2,
//!   "pid": 4242,
//!   "envoy": {
//!     "admin": "127.0.0.1:41001", "listener": "127.0.0.1:41002", "upstream": "127.0.0.1:41003",
//!     "ecds_file": "/tmp/istio-demo-envoy-x/ecds/filter.json",
//!     "wasm": "/src/istio-demo/target/rfma_filter.wasm",
//!     "access_log": "/tmp/istio-demo-envoy-x/access.log", "log": "/tmp/istio-demo-envoy-x/envoy.log"
//!   },
//!   "plugin_config": { "header": "x-rfma-token", "tokens": [ ... ], ... }
//! }
//! ```
//!
//! `envoy` and `plugin_config` are absent while the sandbox is starting. `plugin_config` is the
//! configuration running now, except that a plain-text token (`value`) other than the demo's
//! fixed `demo-plain-token` is stored as its digest (`sha256`), which the filter treats alike:
//! the file never holds a token the sandbox did not print. The file goes when the sandbox
//! stops; one left by a killed sandbox (its pid gone) is stale: no gate opens on it, and the next
//! sandbox replaces it.
//!
//! The filter's configuration is served from `ecds_file` through Envoy's file-based ECDS (the
//! listener names the filter and subscribes to its configuration, as Istio delivers a
//! WasmPlugin), so [`SandboxGate::apply`] replaces only the filter's configuration, by writing
//! that file and waiting for Envoy's answer. No listener is replaced and none drains: the next
//! request on every open connection meets the new configuration, so a keep-alive client can
//! switch to a new token without reconnecting.

use super::DEMO_PLAIN_NAME;
use super::state::{self, EnvoyState, State, redacted};
use anyhow::Context;
use envoy_harness::bootstrap::{self, FailurePolicy};
use envoy_harness::{EcdsCounters, EcdsOutcome};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long [`SandboxGate::apply`] waits for Envoy to accept or reject an update.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The per-token counter in `/stats/prometheus` (the filter's, tagged by the bootstrap's rule).
pub const TOKEN_METRIC: &str = "rfma_token_allowed_total";

/// Why the gate could not do what it was asked; inside the `anyhow::Error`s it returns, so a
/// caller tells the cases apart with `downcast_ref::<GateError>()`.
#[derive(Debug)]
pub enum GateError {
    /// No sandbox runs with this state directory: no state file, its process is gone, or it is
    /// still starting.
    NotRunning { state_file: PathBuf, why: String },
    /// The filter's own parser refuses the configuration (its words); nothing was changed.
    InvalidConfig(String),
    /// Envoy refused the update (a NACK): it serves the previous configuration on. `reason` is
    /// Envoy's log about it, the filter's own error line included.
    Rejected { reason: String },
    /// Envoy neither accepted nor rejected the update within [`APPLY_TIMEOUT`].
    NoAnswer,
}

impl std::fmt::Display for GateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GateError::NotRunning { state_file, why } => write!(
                f,
                "no sandbox runs ({why}; state file {}): start one with `make sandbox`",
                state_file.display()
            ),
            GateError::InvalidConfig(e) => write!(f, "invalid plugin config: {e}"),
            GateError::Rejected { reason } => write!(
                f,
                "the sandbox's Envoy rejected the update and serves the previous configuration: \
                 {reason}"
            ),
            GateError::NoAnswer => write!(
                f,
                "the sandbox's Envoy neither accepted nor rejected the update within {}s",
                APPLY_TIMEOUT.as_secs()
            ),
        }
    }
}

impl std::error::Error for GateError {}

/// A running sandbox's gate, found through its state file.
#[derive(Debug)]
pub struct SandboxGate {
    state_file: PathBuf,
    pid: u32,
    envoy: EnvoyState,
}

impl SandboxGate {
    /// Finds the sandbox running with `state_dir` (default: see the module's documentation); a
    /// [`GateError::NotRunning`] when there is none.
    pub fn open(state_dir: Option<&Path>) -> anyhow::Result<SandboxGate> {
        let state_file = state::state_dir(state_dir).join(state::STATE_FILE);
        let (pid, envoy) = live_state(&state_file)?;
        Ok(SandboxGate {
            state_file,
            pid,
            envoy,
        })
    }

    /// The plugin configuration running now (plain-text tokens as digests, but the demo's).
    pub fn config(&self) -> anyhow::Result<Value> {
        self.state()?
            .plugin_config
            .context("the state file holds no plugin configuration")
    }

    /// Replaces the running plugin configuration without a restart: checks it with the
    /// filter's own parser ([`GateError::InvalidConfig`]), writes the filter's configuration to
    /// the ECDS file atomically, and waits (at most [`APPLY_TIMEOUT`]) until Envoy has applied it
    /// on every worker, so a request sent after this returns, on a new connection or an open
    /// one, meets the new configuration. A rejection ([`GateError::Rejected`]) puts the previous
    /// file back; Envoy serves the previous configuration throughout. Then updates the state
    /// file.
    pub fn apply(&self, config: &Value) -> anyhow::Result<()> {
        let text = config.to_string();
        // The filter's parser, as `check_config` runs it, with its error kept apart by type.
        rfma_filter::config::parse(text.as_bytes())
            .map_err(|e| GateError::InvalidConfig(e.to_string()))?;
        // Still the same sandbox, before anything is written.
        let mut state = self.state()?;
        let e = &self.envoy;
        // The sandbox's filter fails closed (the default of its bootstrap), as the mesh's does.
        let typed = bootstrap::wasm_typed_config(&e.wasm, &text, FailurePolicy::FailClosed);
        let previous = std::fs::read(&e.ecds_file)
            .with_context(|| format!("cannot read the sandbox's {}", e.ecds_file.display()))?;
        let unchanged = serde_json::from_slice::<Value>(&previous).ok()
            == Some(bootstrap::ecds_document(&typed));
        // Envoy takes an unchanged configuration without a word (nothing to wait for).
        if !unchanged {
            let before = self.counters()?;
            let log_from = file_len(&e.log);
            bootstrap::write_ecds_file(&e.ecds_file, &typed)
                .with_context(|| format!("cannot write {}", e.ecds_file.display()))?;
            if self.answer(&before)? == EcdsOutcome::Rejected {
                let reason = rejection_reason(&e.log, log_from);
                self.restore(&previous)?;
                return Err(GateError::Rejected { reason }.into());
            }
        }
        state.plugin_config = Some(redacted(config));
        state::write(&self.state_file, &state)
    }

    /// `rfma_token_allowed_total{token}` from the admin API: the requests each configured token
    /// let through since the sandbox started, by token name (a removed token keeps its count).
    pub fn token_counts(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let text = envoy_harness::admin_prometheus(self.envoy.admin)
            .map_err(anyhow::Error::msg)
            .context("cannot read the sandbox's stats")?;
        Ok(parse_token_counts(&text))
    }

    /// A name for output: `sandbox (127.0.0.1:PORT)`, the listener's address.
    pub fn proxy(&self) -> String {
        format!("sandbox ({})", self.envoy.listener)
    }

    /// The plain-text listener's address.
    pub fn listener(&self) -> SocketAddr {
        self.envoy.listener
    }

    /// The state file this gate was opened from.
    pub fn state_file(&self) -> &Path {
        &self.state_file
    }

    /// The state file as it is now, still the same sandbox's.
    fn state(&self) -> anyhow::Result<State> {
        let state = state::read(&self.state_file)?.ok_or_else(|| GateError::NotRunning {
            state_file: self.state_file.clone(),
            why: "it has stopped".into(),
        })?;
        if state.pid != self.pid {
            return Err(GateError::NotRunning {
                state_file: self.state_file.clone(),
                why: format!("sandbox {} has stopped; {} runs now", self.pid, state.pid),
            }
            .into());
        }
        Ok(state)
    }

    fn counters(&self) -> anyhow::Result<EcdsCounters> {
        EcdsCounters::read(self.envoy.admin)
            .map_err(anyhow::Error::msg)
            .context("cannot read the ECDS counters of the sandbox's Envoy")
    }

    /// Waits for Envoy's answer to the update written after `before` was read: applied (on
    /// every worker: Envoy counts the reload once each has it) or rejected.
    fn answer(&self, before: &EcdsCounters) -> anyhow::Result<EcdsOutcome> {
        let deadline = Instant::now() + APPLY_TIMEOUT;
        loop {
            if let Some(outcome) = before.outcome(&self.counters()?) {
                return Ok(outcome);
            }
            if Instant::now() >= deadline {
                return Err(GateError::NoAnswer.into());
            }
            std::thread::sleep(envoy_harness::POLL);
        }
    }

    /// Puts back the ECDS file whose configuration Envoy still serves, so the file and Envoy
    /// agree again. Envoy remembers the refused configuration as the last one it saw (and would
    /// take that same file again without a word), so it reads the previous one as a change: it
    /// applies it again, or refuses it again when what broke the update breaks it too (the
    /// module, say). Either way its workers never left the previous configuration and the one it
    /// remembers is the file's again, so the next update is read as the change it is; waiting
    /// for the subscription to have taken or refused the file is enough.
    fn restore(&self, previous: &[u8]) -> anyhow::Result<()> {
        let before = self.counters()?;
        let file = &self.envoy.ecds_file;
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, previous)
            .and_then(|()| std::fs::rename(&tmp, file))
            .with_context(|| format!("cannot put {} back", file.display()))?;
        let deadline = Instant::now() + APPLY_TIMEOUT;
        loop {
            let now = self.counters()?;
            if now.taken > before.taken || now.rejected > before.rejected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(anyhow::Error::new(GateError::NoAnswer)
                    .context(format!("after putting {} back", file.display())));
            }
            std::thread::sleep(envoy_harness::POLL);
        }
    }
}

/// The state file's sandbox, if it runs and has started.
fn live_state(state_file: &Path) -> anyhow::Result<(u32, EnvoyState)> {
    let not_running = |why: String| GateError::NotRunning {
        state_file: state_file.to_path_buf(),
        why,
    };
    let state = state::read(state_file)?.ok_or_else(|| not_running("no state file".into()))?;
    if !state::alive(state.pid) {
        return Err(not_running(format!("its process {} is gone", state.pid)).into());
    }
    let envoy = state
        .envoy
        .ok_or_else(|| not_running(format!("sandbox {} is still starting", state.pid)))?;
    Ok((state.pid, envoy))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Envoy's lines about a rejected update, from its log past `from`: the ECDS file's rejection
/// and the filter's own error line (which names the field, never a token).
fn rejection_reason(log: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log)
        && f.seek(SeekFrom::Start(from)).is_ok()
    {
        let _ = f.take(1 << 20).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("rejected") || l.contains("rfma:") || l.contains("Wasm"))
        .map(|l| l.rsplit_once("] ").map_or(l, |(_, msg)| msg).trim())
        .collect();
    if lines.is_empty() {
        format!(
            "{} went up; see {}",
            bootstrap::ecds_stat("update_rejected"),
            log.display()
        )
    } else {
        lines.join("; ")
    }
}

/// `rfma_token_allowed_total{token="NAME"} N` lines of a `/stats/prometheus` text.
pub fn parse_token_counts(prometheus: &str) -> BTreeMap<String, u64> {
    let prefix = format!("{TOKEN_METRIC}{{token=\"");
    prometheus
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix(prefix.as_str())?.split_once("\"}")?;
            Some((name.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// The `istio-demo token rotate` line the banner suggests for `config`'s tokens: the demo's
/// digest token, else the first token configured by digest, else the first one.
pub fn rotation_hint(config: &Value, state_dir: Option<&Path>) -> Option<String> {
    let tokens = config["tokens"].as_array()?;
    let names: Vec<&str> = tokens.iter().filter_map(|t| t["name"].as_str()).collect();
    let by_digest = tokens
        .iter()
        .filter(|t| t.get("sha256").is_some())
        .find_map(|t| t["name"].as_str());
    let name = names
        .iter()
        .copied()
        .find(|n| *n == super::DEMO_DIGEST_NAME)
        .or(by_digest)
        .or(names.iter().copied().find(|n| *n != DEMO_PLAIN_NAME))
        .or(names.first().copied())?;
    // The rotation finds this sandbox through the same directory.
    let env = state_dir
        .map(|d| {
            format!(
                "{}={} ",
                state::STATE_DIR_ENV,
                super::sh_quote(&d.to_string_lossy())
            )
        })
        .unwrap_or_default();
    Some(format!(
        "{env}istio-demo token rotate {} --sandbox --quiet-for 30s",
        super::sh_quote(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_counts_are_read_from_the_tagged_series_only() {
        let text = "# TYPE rfma_token_allowed_total counter\n\
                    rfma_token_allowed_total{token=\"demo-plain\"} 3\n\
                    rfma_token_allowed_total{token=\"demo-digest\"} 0\n\
                    rfma_allowed_total{} 3\n\
                    rfma_token_allowed_total_other{token=\"x\"} 9\n";
        let counts = parse_token_counts(text);
        assert_eq!(
            counts,
            BTreeMap::from([("demo-digest".into(), 0), ("demo-plain".into(), 3)])
        );
    }

    #[test]
    fn the_hint_names_the_digest_token_and_the_state_dir_when_given() {
        let demo = json!({ "tokens": [
            { "name": "demo-plain", "value": "v" }, { "name": "demo-digest", "sha256": "x" } ] });
        assert_eq!(
            rotation_hint(&demo, None).unwrap(),
            "istio-demo token rotate demo-digest --sandbox --quiet-for 30s"
        );
        let mine =
            json!({ "tokens": [{ "name": "a", "value": "v" }, { "name": "b", "sha256": "x" }] });
        assert_eq!(
            rotation_hint(&mine, Some(Path::new("/tmp/my state"))).unwrap(),
            "ISTIO_DEMO_STATE_DIR='/tmp/my state' istio-demo token rotate b --sandbox --quiet-for 30s"
        );
        assert_eq!(rotation_hint(&json!({ "tokens": [] }), None), None);
    }

    #[test]
    fn no_state_file_is_a_clear_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let e = SandboxGate::open(Some(dir.path())).unwrap_err();
        assert!(matches!(
            e.downcast_ref::<GateError>(),
            Some(GateError::NotRunning { .. })
        ));
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("no sandbox runs (no state file; state file "),
            "{msg}"
        );
        assert!(msg.ends_with("start one with `make sandbox`"), "{msg}");
    }

    #[test]
    fn a_rejection_is_told_in_envoys_and_the_filters_words() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("envoy.log");
        std::fs::write(
            &log,
            "[2026-01-01 00:00:00.000][1][info][main] old line rejected\n\
             [2026-01-01 00:00:01.000][1][error][wasm] wasm log rfma: invalid plugin config: tokens[1].sha256: bad\n\
             [2026-01-01 00:00:01.000][1][critical][wasm] [wasm.cc:626] Plugin rfma failed to load\n\
             [2026-01-01 00:00:01.000][1][warning][config] [filesystem_subscription_impl.cc:81] Filesystem config update rejected: Unable to create Wasm plugin rfma\n\
             [2026-01-01 00:00:01.000][1][info][main] unrelated\n",
        )
        .unwrap();
        let from = "[2026-01-01 00:00:00.000][1][info][main] old line rejected\n".len() as u64;
        assert_eq!(
            rejection_reason(&log, from),
            "wasm log rfma: invalid plugin config: tokens[1].sha256: bad; \
             Filesystem config update rejected: Unable to create Wasm plugin rfma"
        );
        assert!(rejection_reason(&log, file_len(&log)).contains("update_rejected went up"));
    }
}
