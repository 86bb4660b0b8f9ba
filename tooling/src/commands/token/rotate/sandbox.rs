//! `token rotate NAME --sandbox`: the same rotation against the running `istio-demo sandbox`, for
//! a user without a cluster. The sandbox's one Envoy is the only proxy; its configuration is
//! replaced in place ([`SandboxGate::apply`], the filter configuration replaced by ECDS, no restart) and its counters are
//! read from its admin API. The sandbox's user is the client, so step 2 prints the new token, once:
//! the only time a rotation shows a token (the sandbox prints its demo tokens the same way).

use super::engine::{Backend, CountReader, Counts};
use super::{RotateArgs, next_name, rfc3339};
use crate::commands::sandbox::gate::SandboxGate;
use crate::commands::token::{self, digest};
use crate::deploy::tokens::Entry;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::Write;

/// A rotation of one entry of the sandbox's configuration.
pub struct SandboxRotation {
    gate: SandboxGate,
    pub old: String,
    pub new: String,
    not_after: Option<String>,
    /// The new token, from step 1 to step 2 only.
    token: Option<String>,
}

/// The `tokens` array of a plugin configuration.
fn tokens_of(config: &mut Value) -> Result<&mut Vec<Value>> {
    config
        .get_mut("tokens")
        .and_then(Value::as_array_mut)
        .context("the sandbox's configuration has no token list")
}

fn position(tokens: &[Value], name: &str) -> Option<usize> {
    tokens.iter().position(|t| t["name"] == name)
}

/// `config` with an entry `new` (digest `sha256`) right after `old`, copying what restricts it
/// (principals), not its token or its validity; `old` gets `not_after` when given.
pub fn with_added(
    mut config: Value,
    old: &str,
    new: &str,
    sha256: &str,
    not_after: Option<&str>,
) -> Result<Value> {
    let tokens = tokens_of(&mut config)?;
    let i = position(tokens, old).with_context(|| format!("token {old} is not configured"))?;
    let mut entry = tokens[i].clone();
    if let Some(o) = entry.as_object_mut() {
        for k in ["value", "not_before", "not_after"] {
            o.remove(k);
        }
    }
    entry["name"] = Value::String(new.to_string());
    entry["sha256"] = Value::String(sha256.to_string());
    if let Some(t) = not_after {
        tokens[i]["not_after"] = Value::String(t.to_string());
    }
    tokens.insert(i + 1, entry);
    Ok(config)
}

/// `config` without the entry `old`, and that entry as a rotation prints it (its digest, never a
/// plain-text `value`).
pub fn without(mut config: Value, old: &str) -> Result<(Value, Entry)> {
    let tokens = tokens_of(&mut config)?;
    let i = position(tokens, old).with_context(|| format!("token {old} is not configured"))?;
    let t = tokens.remove(i);
    let sha256 = match (t["sha256"].as_str(), t["value"].as_str()) {
        (Some(s), _) => s.to_ascii_lowercase(),
        (None, Some(v)) => digest(v),
        (None, None) => bail!("token {old} has neither sha256 nor value"),
    };
    let entry = Entry {
        name: old.to_string(),
        sha256,
        not_after: t["not_after"].as_str().map(str::to_string),
    };
    Ok((config, entry))
}

impl SandboxRotation {
    /// Finds the sandbox and NAME in its configuration. NAME with the new name already beside
    /// it (a rotation that stopped while waiting) is resumed.
    pub fn open(args: &RotateArgs, now: u64) -> Result<Self> {
        let gate = SandboxGate::open(args.state_dir.as_deref())?;
        let mut config = gate.config()?;
        let tokens = tokens_of(&mut config)?;
        let names: Vec<&str> = tokens.iter().filter_map(|t| t["name"].as_str()).collect();
        if !names.contains(&args.name.as_str()) {
            bail!(
                "token {} is not configured in the sandbox (configured: {})",
                args.name,
                names.join(", ")
            );
        }
        let new = args
            .new_name
            .clone()
            .unwrap_or_else(|| next_name(&args.name));
        token::check_name(&new)?;
        Ok(SandboxRotation {
            gate,
            old: args.name.clone(),
            new,
            not_after: args
                .overlap
                .map(|o| rfc3339(now.saturating_add(o.as_secs()))),
            token: None,
        })
    }
}

impl CountReader for SandboxRotation {
    async fn counts(&mut self) -> Result<Counts> {
        // The sandbox is one proxy; a name without a series never let a request through.
        let count = self
            .gate
            .token_counts()
            .map(|c| c.get(&self.old).copied().unwrap_or(0))
            .map_err(|e| format!("{e:#}"));
        Ok(Counts::from([(self.gate.proxy(), count)]))
    }
}

impl Backend for SandboxRotation {
    async fn add(&mut self, out: &mut dyn Write) -> Result<()> {
        let mut config = self.gate.config()?;
        if position(tokens_of(&mut config)?, &self.new).is_some() {
            writeln!(
                out,
                "   already done: {} runs {} beside {} (resuming; its token was printed then)",
                self.gate.proxy(),
                self.new,
                self.old
            )?;
            return Ok(());
        }
        let token = token::generate()?;
        let sha = digest(&token);
        let config = with_added(
            config,
            &self.old,
            &self.new,
            &sha,
            self.not_after.as_deref(),
        )?;
        self.gate.apply(&config)?;
        let valid = match &self.not_after {
            Some(t) => format!("valid until {t}"),
            None => "valid until removed".into(),
        };
        writeln!(
            out,
            "   {} runs {} (sha256 {}…) beside {} ({valid})",
            self.gate.proxy(),
            self.new,
            &sha[..12],
            self.old
        )?;
        self.token = Some(token);
        Ok(())
    }

    async fn hand_over(&mut self, out: &mut dyn Write) -> Result<()> {
        match self.token.take() {
            Some(t) => writeln!(
                out,
                "   you are the sandbox's client: your token {} (shown only now):\n{t}",
                self.new
            )?,
            None => writeln!(
                out,
                "   already done: {}'s token was printed when it was added",
                self.new
            )?,
        }
        out.flush()?;
        Ok(())
    }

    async fn remove(&mut self, out: &mut dyn Write) -> Result<Entry> {
        let (config, removed) = without(self.gate.config()?, &self.old)?;
        self.gate.apply(&config)?;
        writeln!(out, "   {} runs without {}", self.gate.proxy(), self.old)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_new_entry_goes_beside_the_old_and_the_old_one_goes_alone() {
        let config = json!({"header": "x-rfma-token", "tokens": [
            {"name": "demo-plain", "value": "demo-plain-token"},
            {"name": "demo-digest", "sha256": "ab".repeat(32), "principals": ["spiffe://a/b"],
             "not_before": "2026-01-01T00:00:00Z"},
        ]});
        let added = with_added(
            config,
            "demo-digest",
            "demo-digest-r2",
            &"cd".repeat(32),
            Some("2027-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            added["tokens"],
            json!([
                {"name": "demo-plain", "value": "demo-plain-token"},
                {"name": "demo-digest", "sha256": "ab".repeat(32), "principals": ["spiffe://a/b"],
                 "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z"},
                {"name": "demo-digest-r2", "sha256": "cd".repeat(32), "principals": ["spiffe://a/b"]},
            ])
        );
        // The filter accepts what the sandbox will be given.
        rfma_filter::config::parse(added.to_string().as_bytes()).unwrap();

        let (left, removed) = without(added.clone(), "demo-digest").unwrap();
        assert_eq!(removed.sha256, "ab".repeat(32));
        assert_eq!(removed.not_after.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(left["tokens"].as_array().unwrap().len(), 2);
        // A plain-text entry is reported by its digest, never its value.
        let (_, plain) = without(added, "demo-plain").unwrap();
        assert_eq!(plain.sha256, digest("demo-plain-token"));
        assert!(with_added(json!({"tokens": []}), "x", "y", "00", None).is_err());
    }
}
