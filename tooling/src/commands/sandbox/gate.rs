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
//!   "version": 1,
//!   "pid": 4242,
//!   "envoy": {
//!     "admin": "127.0.0.1:41001", "listener": "127.0.0.1:41002", "upstream": "127.0.0.1:41003",
//!     "lds_file": "/tmp/istio-demo-envoy-x/lds/listeners.json",
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
//! The listener is served from `lds_file` through Envoy's file-based LDS (as istiod pushes
//! listener updates), so [`SandboxGate::apply`] replaces the filter's configuration by writing
//! that file and waiting for Envoy's answer.

use super::DEMO_PLAIN_NAME;
use super::state::{self, EnvoyState, State, redacted};
use anyhow::Context;
use envoy_harness::bootstrap::{self, BootstrapSpec, ListenerSource};
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
    /// filter's own parser ([`GateError::InvalidConfig`]), writes the listener with it to the
    /// LDS file atomically, and waits (at most [`APPLY_TIMEOUT`]) until Envoy has accepted it
    /// and its worker serves it, so a request sent after this returns meets the new
    /// configuration. A rejection ([`GateError::Rejected`]) puts the previous listener file back;
    /// Envoy serves the previous configuration throughout. Then updates the state file.
    pub fn apply(&self, config: &Value) -> anyhow::Result<()> {
        let text = config.to_string();
        // The filter's parser, as `check_config` runs it, with its error kept apart by type.
        rfma_filter::config::parse(text.as_bytes())
            .map_err(|e| GateError::InvalidConfig(e.to_string()))?;
        // Still the same sandbox, before anything is written.
        let mut state = self.state()?;
        let e = &self.envoy;
        let mut spec = BootstrapSpec::new(e.upstream.port(), &e.wasm, &text, &e.access_log);
        spec.listener_port = e.listener.port();
        spec.listener_source = ListenerSource::Dynamic {
            file: e.lds_file.clone(),
        };
        let previous = std::fs::read(&e.lds_file)
            .with_context(|| format!("cannot read the sandbox's {}", e.lds_file.display()))?;
        let document = bootstrap::lds_document(&[bootstrap::plain_listener(&spec)]);
        let unchanged = serde_json::from_slice::<Value>(&previous).ok() == Some(document);
        if !unchanged {
            let before = self.counters()?;
            let log_from = file_len(&e.log);
            bootstrap::write_lds_file(&e.lds_file, &[bootstrap::plain_listener(&spec)])
                .with_context(|| format!("cannot write {}", e.lds_file.display()))?;
            if self.answer(&before, true)? == Answer::Rejected {
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

    fn counters(&self) -> anyhow::Result<Counters> {
        let stat = |name: &str| {
            envoy_harness::admin_stat(self.envoy.admin, name)
                .map(Option::unwrap_or_default)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("cannot read {name} from the sandbox's Envoy"))
        };
        Ok(Counters {
            accepted: stat("listener_manager.lds.update_success")?,
            rejected: stat("listener_manager.lds.update_rejected")?,
            on_workers: stat("listener_manager.listener_create_success")?,
            workers: stat("server.concurrency")?.max(1),
        })
    }

    /// Waits for Envoy's answer to the update written after `before` was read. With
    /// `on_workers`, an accepted listener counts only once every worker has it: Envoy ACKs an
    /// update when the listener is built, and hands it to its workers after.
    fn answer(&self, before: &Counters, on_workers: bool) -> anyhow::Result<Answer> {
        let deadline = Instant::now() + APPLY_TIMEOUT;
        loop {
            let now = self.counters()?;
            if now.rejected > before.rejected {
                return Ok(Answer::Rejected);
            }
            let served = !on_workers || now.on_workers >= before.on_workers + now.workers;
            if now.accepted > before.accepted && served {
                return Ok(Answer::Accepted);
            }
            if Instant::now() >= deadline {
                return Err(GateError::NoAnswer.into());
            }
            std::thread::sleep(envoy_harness::POLL);
        }
    }

    /// Puts back the listener file Envoy still serves, so the file and Envoy agree again.
    /// Envoy finds the listener unchanged: it ACKs and hands nothing to its workers.
    fn restore(&self, previous: &[u8]) -> anyhow::Result<()> {
        let before = self.counters()?;
        let file = &self.envoy.lds_file;
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, previous)
            .and_then(|()| std::fs::rename(&tmp, file))
            .with_context(|| format!("cannot put {} back", file.display()))?;
        match self.answer(&before, false) {
            Ok(Answer::Accepted) => Ok(()),
            Ok(Answer::Rejected) => Err(anyhow::anyhow!(
                "Envoy rejected the previous listener file put back in {}",
                file.display()
            )),
            Err(e) => Err(e.context(format!("after putting {} back", file.display()))),
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

/// Envoy's answer to a listener update.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// An ACK (with the workers serving it, when asked).
    Accepted,
    /// A NACK: the previous listener serves on.
    Rejected,
}

/// The listener manager's counters that tell an update's fate.
#[derive(Debug)]
struct Counters {
    accepted: u64,
    rejected: u64,
    /// Listeners handed to workers, one per worker per listener (an in-place update too).
    on_workers: u64,
    workers: u64,
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Envoy's lines about a rejected update, from its log past `from`: the LDS rejection and the
/// filter's own error line (which names the field, never a token).
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
            "listener_manager.lds.update_rejected went up; see {}",
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
             [2026-01-01 00:00:01.000][1][warning][config] lds: listener 'rfma_plain' config rejected\n\
             [2026-01-01 00:00:01.000][1][info][main] unrelated\n",
        )
        .unwrap();
        let from = "[2026-01-01 00:00:00.000][1][info][main] old line rejected\n".len() as u64;
        assert_eq!(
            rejection_reason(&log, from),
            "wasm log rfma: invalid plugin config: tokens[1].sha256: bad; \
             lds: listener 'rfma_plain' config rejected"
        );
        assert!(rejection_reason(&log, file_len(&log)).contains("update_rejected went up"));
    }
}
