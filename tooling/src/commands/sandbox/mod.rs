//! `istio-demo sandbox`: the filter in a real Envoy in front of a real httpbin, on loopback.
//!
//! Starts httpbin (gunicorn) and Envoy as supervised children, prints the demo tokens and
//! ready-to-paste `curl` lines, then prints one short line per request from the filter's
//! access records. Ctrl-C (or SIGTERM, SIGHUP) stops both and exits 0; a child that dies is
//! named, with its exit status and last output, and the command exits 1.
//!
//! The filter's configuration is served from a watched file of its own (file-based ECDS, as
//! Istio delivers a WasmPlugin), so it can be replaced while the sandbox runs, and the next
//! request on every open connection meets it: [`gate::SandboxGate`] does it, through the state
//! file the sandbox keeps while it runs ([`state`]; one sandbox per state directory).

pub mod gate;
pub mod state;

use anyhow::{Context, bail};
use clap::Args;
use envoy_harness::{self as envoy, LogFollower, Stack, StackConfig};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The demo's plain-text token: a demo value, given to the filter as `value`.
pub const DEMO_PLAIN_TOKEN: &str = "demo-plain-token";
pub const DEMO_PLAIN_NAME: &str = "demo-plain";
pub const DEMO_DIGEST_NAME: &str = "demo-digest";

#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Your own plugin configuration (JSON), checked before Envoy starts [default: a demo
    /// configuration with one plain-text token and one random digest token]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The filter module [default: $RFMA_WASM, else target/rfma_filter.wasm]
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,
    /// The Envoy binary [default: $ENVOY_BIN, else `envoy` on PATH]
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// Port of Envoy's listener on 127.0.0.1 [default: a free port]
    #[arg(long)]
    pub port: Option<u16>,
    /// Print the access records unchanged, one JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Where to keep the state file (sandbox.json) that `token rotate --sandbox` reads
    /// [default: $ISTIO_DEMO_STATE_DIR, else $XDG_RUNTIME_DIR/istio-demo, else
    /// /tmp/istio-demo-UID]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The plugin configuration the sandbox runs, and what to show the user about it.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Passed to the filter byte for byte.
    pub json: String,
    /// The token header.
    pub header: String,
    /// `(name, token)` pairs the user can paste (only tokens we know in clear text).
    pub known_tokens: Vec<(String, String)>,
    /// Names of tokens configured only by digest, whose value we do not know.
    pub digest_only: Vec<String>,
}

/// The demo configuration: one plain-text token, one digest token whose random value is
/// generated now (and so never written anywhere but the user's terminal).
pub fn demo_config() -> anyhow::Result<SandboxConfig> {
    let secret = random_token()?;
    let digest = hex(&rfma_filter::digest::sha256(secret.as_bytes()));
    let config = json!({
        "header": "x-rfma-token",
        "tokens": [
            { "name": DEMO_PLAIN_NAME, "value": DEMO_PLAIN_TOKEN },
            { "name": DEMO_DIGEST_NAME, "sha256": digest },
        ],
        "bypass": [{ "path_prefix": "/status/", "methods": ["GET", "HEAD"] }],
        "strip_header": true,
        "log": { "sink": "filter_state", "allowed": true, "denied": true },
    });
    let text = config.to_string();
    check_config(text.as_bytes())?;
    Ok(SandboxConfig {
        json: text,
        header: "x-rfma-token".to_owned(),
        known_tokens: vec![
            (DEMO_PLAIN_NAME.to_owned(), DEMO_PLAIN_TOKEN.to_owned()),
            (DEMO_DIGEST_NAME.to_owned(), secret),
        ],
        digest_only: Vec::new(),
    })
}

/// Reads and checks a user's configuration with the filter's own parser, so the error is the
/// one the filter would log.
pub fn load_config(file: &Path) -> anyhow::Result<SandboxConfig> {
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read --config {}", file.display()))?;
    let policy = check_config(&bytes).with_context(|| file.display().to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "{}: invalid plugin config: configuration: not UTF-8",
            file.display()
        )
    })?;
    // The parser accepted it, so it is a JSON object with a valid token list.
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut known_tokens = Vec::new();
    let mut digest_only = Vec::new();
    for t in value["tokens"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or_default().to_owned();
        match t["value"].as_str() {
            Some(v) => known_tokens.push((name, v.trim().to_owned())),
            None => digest_only.push(name),
        }
    }
    Ok(SandboxConfig {
        json: text,
        header: policy.header,
        known_tokens,
        digest_only,
    })
}

/// The filter's verdict on a configuration, worded as the filter logs it.
pub fn check_config(bytes: &[u8]) -> anyhow::Result<rfma_filter::config::Policy> {
    rfma_filter::config::parse(bytes).map_err(|e| anyhow::anyhow!("invalid plugin config: {e}"))
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read the system random source: {e}"))?;
    Ok(format!("rfma-{}", hex(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn default_wasm() -> PathBuf {
    match std::env::var_os("RFMA_WASM").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("target/rfma_filter.wasm"),
    }
}

/// Shell-quotes a value for a pasted command line.
fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What the banner says about the state file and the rotation it enables.
#[derive(Debug, Clone)]
pub struct RotationInfo {
    pub state_file: PathBuf,
    /// The `istio-demo token rotate` line to suggest, if there is a token to rotate.
    pub hint: Option<String>,
}

/// The banner: where things are, the tokens, the curl lines, and how to rotate a token.
pub fn banner(
    config: &SandboxConfig,
    listener: std::net::SocketAddr,
    stack: &Stack,
    rotation: &RotationInfo,
) -> String {
    let url = format!("http://{listener}");
    let h = &config.header;
    let mut out = String::new();
    out.push_str(&format!(
        "rfma sandbox: Envoy on {url} -> httpbin on http://{}\n",
        stack.httpbin.addr
    ));
    out.push_str(&format!(
        "  envoy admin   http://{}\n",
        stack
            .envoy
            .admin()
            .map(|a| a.to_string())
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "  envoy log     {}\n",
        stack.envoy.process.log_path().display()
    ));
    out.push_str(&format!(
        "  access log    {}\n",
        stack.envoy.access_log.display()
    ));
    out.push_str(&format!(
        "  state file    {}\n",
        rotation.state_file.display()
    ));
    out.push_str("\ntokens (header ");
    out.push_str(h);
    out.push_str("):\n");
    for (name, token) in &config.known_tokens {
        out.push_str(&format!("  {name:<14} {token}\n"));
    }
    for name in &config.digest_only {
        out.push_str(&format!(
            "  {name:<14} (configured by digest; its token is yours)\n"
        ));
    }
    let allowed = match config.known_tokens.first() {
        Some((_, t)) => sh_quote(&format!("{h}: {t}")),
        None => format!("\"{h}: $RFMA_TOKEN\""),
    };
    let wrong = sh_quote(&format!("{h}: not-a-token"));
    out.push_str("\ntry:\n");
    out.push_str(&format!(
        "  # allowed: 200 from httpbin\n  curl -i -H {allowed} {url}/headers\n"
    ));
    out.push_str(&format!(
        "  # missing token: 401\n  curl -i {url}/headers\n"
    ));
    out.push_str(&format!(
        "  # wrong token: 403\n  curl -i -H {wrong} {url}/headers\n"
    ));
    if let Some(hint) = &rotation.hint {
        out.push_str(
            "\nrotate a token without a restart (a new one beside it; it is removed once its \
             counter stays quiet):\n",
        );
        out.push_str(&format!("  {hint}\n"));
    }
    out.push_str("\nCtrl-C stops Envoy and httpbin.\n");
    out
}

/// A client-controlled string made safe for a terminal: control characters (escape
/// sequences included) are shown escaped, never sent as they are.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One short line for an access record: time, method, path, status, decision, reason or token.
pub fn summarize(line: &str) -> String {
    let Ok(r) = serde_json::from_str::<Value>(line) else {
        return format!("(an access-log line that is not a record: {line:?})");
    };
    let time = r["@timestamp"]
        .as_str()
        .and_then(|t| t.split('T').nth(1))
        .unwrap_or("?")
        .trim_end_matches('Z');
    let status = r["http"]["response"]["status_code"]
        .as_u64()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "-".into());
    // No decision: Envoy answered before the filter ran (a 431, a malformed request).
    let decision = r["rfma"]["decision"].as_str().unwrap_or("-");
    let detail = match (
        r["rfma"]["reason"].as_str(),
        r["rfma"]["token"]["name"].as_str(),
    ) {
        (Some(reason), _) => reason.to_owned(),
        (None, Some(name)) => format!("token={name}"),
        (None, None) => String::new(),
    };
    let line = format!(
        "{time}  {:<6} {:<28} {status}  {decision:<6} {detail}",
        r["http"]["request"]["method"].as_str().unwrap_or("?"),
        r["url"]["path"].as_str().unwrap_or("?"),
    );
    printable(line.trim_end())
}

/// Runs the sandbox until Ctrl-C, SIGTERM or SIGHUP (exit 0) or a child dies (exit 1); a
/// bad flag or configuration exits 2 before anything starts.
pub fn run(args: &SandboxArgs) -> anyhow::Result<ExitCode> {
    run_inner(args).or_else(super::cannot_run)
}

fn run_inner(args: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(file) => load_config(file)?,
        None => demo_config()?,
    };
    let wasm = args.wasm.clone().unwrap_or_else(default_wasm);
    if !wasm.is_file() {
        bail!(
            "the filter module {} does not exist: build it with `make wasm` or pass --wasm PATH",
            wasm.display()
        );
    }
    // Every configuration update names the module again, perhaps from another directory.
    let wasm = std::fs::canonicalize(&wasm)
        .with_context(|| format!("cannot resolve {}", wasm.display()))?;
    // The harness words its errors as plain strings.
    let envoy_bin = envoy::find_envoy(args.envoy.as_deref()).map_err(anyhow::Error::msg)?;
    let plugin_config: Value =
        serde_json::from_str(&config.json).context("the plugin configuration is not JSON")?;

    // Before anything starts: one sandbox per state directory.
    let state_dir = state::state_dir(args.state_dir.as_deref());
    let (claim, stale) = state::Claim::take(&state_dir)?;
    match stale {
        Some(0) => eprintln!("replacing {}: not a state file", claim.file().display()),
        Some(pid) => eprintln!(
            "replacing {}: its sandbox (pid {pid}) is gone",
            claim.file().display()
        ),
        None => {}
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot handle Ctrl-C")?;

    eprintln!("starting httpbin and Envoy ({})...", envoy_bin.display());
    let stack_config = StackConfig {
        envoy_bin,
        wasm: wasm.clone(),
        plugin_config: config.json.clone(),
        options: envoy::EnvoyOptions::default(),
    };
    let port = args.port;
    let mut ecds_file = None;
    let mut stack = Stack::start_with(&stack_config, |spec, dir| {
        if let Some(p) = port {
            spec.listener_port = p;
        }
        // The filter's configuration through file-based ECDS, so the gate can replace it
        // without a new listener, and keep-alive clients meet it on their open connections.
        ecds_file = Some(envoy::bootstrap::serve_filter_config_from_file(spec, dir)?);
        Ok(())
    })
    .map_err(anyhow::Error::msg)?;
    let listener = stack.plain().map_err(anyhow::Error::msg)?;
    claim.publish(
        state::EnvoyState {
            admin: stack.envoy.admin().map_err(anyhow::Error::msg)?,
            listener,
            upstream: stack.httpbin.addr,
            ecds_file: ecds_file.context("the filter's ECDS file was not written")?,
            wasm,
            access_log: stack.envoy.access_log.clone(),
            log: stack.envoy.process.log_path().to_path_buf(),
        },
        &plugin_config,
    )?;
    let rotation = RotationInfo {
        state_file: claim.file().to_path_buf(),
        // Named only when it is not the one a rotation finds by itself.
        hint: gate::rotation_hint(&plugin_config, args.state_dir.as_deref()),
    };
    eprint!("{}", banner(&config, listener, &stack, &rotation));
    eprintln!();

    let mut follower = LogFollower::new(&stack.envoy.access_log);
    let stdout = std::io::stdout();
    loop {
        for line in follower.new_lines() {
            let mut out = stdout.lock();
            // --json: records through unchanged; a line without a record is noted on stderr.
            let is_record = serde_json::from_str::<Value>(&line).is_ok();
            let _ = match (args.json, is_record) {
                (true, true) => writeln!(out, "{line}"),
                (true, false) => writeln!(std::io::stderr(), "{}", summarize(&line)),
                (false, _) => writeln!(out, "{}", summarize(&line)),
            };
            let _ = out.flush();
        }
        if stop.load(Ordering::SeqCst) {
            eprintln!("\nstopping Envoy and httpbin");
            drop(stack);
            return Ok(ExitCode::SUCCESS);
        }
        let died = [&mut stack.envoy.process, &mut stack.httpbin.process]
            .into_iter()
            .find_map(|c| c.death_report());
        if let Some(report) = died {
            eprintln!("istio-demo sandbox: {report}");
            drop(stack);
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_random() {
        let a = demo_config().unwrap();
        let b = demo_config().unwrap();
        let policy = check_config(a.json.as_bytes()).unwrap();
        assert_eq!(policy.tokens.len(), 2);
        assert_eq!(policy.plain_text_tokens, 1);
        assert_ne!(
            a.known_tokens[1].1, b.known_tokens[1].1,
            "the digest token must be fresh each run"
        );
        // Only the plain demo token is in the configuration in clear text.
        assert!(!a.json.contains(&a.known_tokens[1].1));
        assert!(a.json.contains(&hex(&rfma_filter::digest::sha256(
            a.known_tokens[1].1.as_bytes()
        ))));
    }

    #[test]
    fn bad_config_file_gets_the_filters_message() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(
            &f,
            r#"{"tokens":[{"name":"a","value":"x"},{"name":"b","sha256":"zz"}]}"#,
        )
        .unwrap();
        let e = format!("{:#}", load_config(&f).unwrap_err());
        assert!(
            e.starts_with(&format!(
                "{}: invalid plugin config: tokens[1].sha256",
                f.display()
            )),
            "{e}"
        );
        let e = format!(
            "{:#}",
            load_config(&dir.path().join("missing.json")).unwrap_err()
        );
        assert!(e.starts_with("cannot read --config"), "{e}");
    }

    #[test]
    fn user_config_tokens_are_shown_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        let digest = "a".repeat(64);
        std::fs::write(&f, format!(r#"{{"header":"X-Key","tokens":[{{"name":"d","sha256":"{digest}"}},{{"name":"p","value":"v1"}}]}}"#)).unwrap();
        let c = load_config(&f).unwrap();
        assert_eq!(c.header, "x-key");
        assert_eq!(c.known_tokens, vec![("p".to_owned(), "v1".to_owned())]);
        assert_eq!(c.digest_only, vec!["d".to_owned()]);
    }

    #[test]
    fn summary_line_shows_decision_and_reason_or_token() {
        let allow = r#"{"@timestamp":"2026-01-02T03:04:05.678Z","http":{"request":{"method":"GET"},"response":{"status_code":200}},"url":{"path":"/get"},"rfma":{"decision":"allow","token":{"name":"demo-plain"}}}"#;
        assert_eq!(
            summarize(allow),
            "03:04:05.678  GET    /get                         200  allow  token=demo-plain"
        );
        let deny = r#"{"@timestamp":"2026-01-02T03:04:05.678Z","http":{"request":{"method":"POST"},"response":{"status_code":403}},"url":{"path":"/post"},"rfma":{"decision":"deny","reason":"invalid_token"}}"#;
        assert_eq!(
            summarize(deny),
            "03:04:05.678  POST   /post                        403  deny   invalid_token"
        );
        assert!(summarize("-").starts_with("(an access-log line that is not a record"));
        // Envoy answered before the filter: a record without a decision.
        let envoy = r#"{"@timestamp":"2026-01-02T03:04:05.678Z","http":{"request":{"method":"GET"},"response":{"status_code":431}},"url":{"path":"/get"},"rfma":{"response_flags":"DPE"}}"#;
        assert_eq!(
            summarize(envoy),
            "03:04:05.678  GET    /get                         431  -"
        );
        let hostile = r#"{"http":{"request":{"method":"GET"}},"url":{"path":"/\u001b[2Jx"},"rfma":{"decision":"deny","reason":"missing_token"}}"#;
        let shown = summarize(hostile);
        assert!(
            !shown.contains('\u{1b}') && shown.contains("/\\u{1b}[2Jx"),
            "{shown}"
        );
    }

    #[test]
    fn quoting_for_pasted_commands() {
        assert_eq!(sh_quote("abc-1"), "abc-1");
        assert_eq!(sh_quote("x-rfma-token: a"), "'x-rfma-token: a'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
