//! Reaching a cluster: `--kubeconfig` and `--context` to a client, the async runtime the
//! cluster commands run on, and the durations their `--timeout` flags take.

use anyhow::{Context, Result, bail};
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;
use std::time::Duration;

/// `--kubeconfig` and `--context`, as kubectl users expect.
#[derive(Debug, Clone, Args, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME", global = true)]
    pub context: Option<String>,
}

impl KubeArgs {
    /// A client for the selected cluster and context.
    pub async fn client(&self) -> Result<Client> {
        let opts = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
                Config::from_custom_kubeconfig(kc, &opts).await?
            }
            None if self.context.is_some() => Config::from_kubeconfig(&opts).await?,
            None => Config::infer()
                .await
                .context("no cluster configured (set KUBECONFIG or pass --kubeconfig)")?,
        };
        Client::try_from(config).context("cannot build a Kubernetes client")
    }
}

/// The runtime every cluster command runs on (two workers: the forward and the waits).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Parses `90s`, `5m`, `1h30m`, `2h` (kubectl's duration style) or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty duration");
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().with_context(|| {
            format!("{s:?}: expected a number before {c:?} (e.g. 90s, 5m, 1h30m)")
        })?;
        total += match c {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            _ => bail!("{s:?}: unknown unit {c:?} (use s, m or h)"),
        };
        num.clear();
    }
    if !num.is_empty() {
        bail!("{s:?}: missing unit after {num} (use s, m or h)");
    }
    Ok(Duration::from_secs(total))
}
