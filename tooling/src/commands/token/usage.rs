//! `istio-demo token usage`: for every proxy the gate runs in, how many requests each configured
//! token let through (the filter's `rfma_token_allowed_total{token="<name>"}` counter) and when a
//! record last named it (the `rfma.token.name` of the access records in the proxy's log).
//!
//! Everything goes through the API server: the gate objects (WasmPlugin, TrafficExtension) for the
//! token names and the pods they select, the pod proxy subresource for each sidecar's Prometheus
//! text (`pods/<pod>:15020/proxy/stats/prometheus`, Istio's merged stats, which carry Envoy's), and
//! the `istio-proxy` container's log. Only names are read and printed: never a token or a digest.

use crate::cluster::{self, Cluster, KubeArgs};
use crate::commands::verify::{self, PROXY};
use crate::deploy::wait::api_code;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, GetParams, LogParams};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The per-token counter, as `/stats/prometheus` shows it.
pub const METRIC: &str = "rfma_token_allowed_total";
/// Its tag, the token's name (ProxyConfig `extraStatTags: [token]`).
pub const TOKEN_LABEL: &str = "token";
/// The API version of the gate's kinds.
pub const GATE_API: &str = "extensions.istio.io/v1alpha1";
/// The kinds that can carry the gate (Istio's WasmPlugin, Istio 1.30+'s TrafficExtension).
pub const GATE_KINDS: [&str; 2] = ["WasmPlugin", "TrafficExtension"];
/// pilot-agent's port, whose `/stats/prometheus` merges Envoy's stats with the app's.
pub const STATS_PORT: u16 = 15020;
/// Longest one read (a pod's stats or log) may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of the gate (its WasmPlugin or TrafficExtension) and of the pods it selects.
    #[arg(long, default_value = "demo")]
    pub namespace: String,
    /// How far back to read each proxy's log for the last record naming a token (90s, 30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = cluster::parse_duration)]
    pub since: Duration,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A gate object as far as usage needs it: which pods it selects and its token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// `WasmPlugin/rfma-token-gate`.
    pub id: String,
    /// `spec.selector.matchLabels` as a label selector (`k=v,...`); empty: every pod of the namespace.
    pub selector: String,
    /// `tokens[].name` of its `pluginConfig`, in order.
    pub tokens: Vec<String>,
    /// `tokens[].principals` by name, for the names that have some (never a digest).
    pub principals: BTreeMap<String, Vec<String>>,
}

/// The gate in a WasmPlugin (`spec.pluginConfig`) or a TrafficExtension (`spec.wasm.pluginConfig`)
/// of kind `kind`; `None` for an extension whose configuration has no `tokens` (not this filter).
pub fn gate_of(kind: &str, gate: &DynamicObject) -> Option<Gate> {
    // The extension's spec is schemaless here; only its name is typed.
    let obj = &gate.data;
    let config = obj
        .pointer("/spec/pluginConfig")
        .or_else(|| obj.pointer("/spec/wasm/pluginConfig"))?;
    let entries = config.get("tokens")?.as_array()?;
    let tokens = entries
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let principals = entries
        .iter()
        .filter_map(|t| {
            let name = t.get("name").and_then(Value::as_str)?;
            let p: Vec<String> = t
                .get("principals")?
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            (!p.is_empty()).then(|| (name.to_string(), p))
        })
        .collect();
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Some(Gate {
        id: format!("{kind}/{}", gate.metadata.name.as_deref().unwrap_or("?")),
        selector,
        tokens,
        principals,
    })
}

/// The per-token counts in a proxy's Prometheus text: name -> allowed. A token without a series
/// is absent. A malformed series of the counter, one without the `token` label, or two series for
/// one name are errors.
pub fn token_counts(prometheus: &str) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for s in verify::prometheus_samples(prometheus, METRIC)? {
        let Some(name) = s.labels.get(TOKEN_LABEL) else {
            bail!(
                "a {METRIC} series without the {TOKEN_LABEL} label (is `extraStatTags: [{TOKEN_LABEL}]` \
                 in the pod's proxy.istio.io/config?)"
            );
        };
        let v = s.value;
        if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64) {
            bail!("{METRIC}{{{TOKEN_LABEL}=\"{name}\"}} is {v}, not a count");
        }
        if counts.insert(name.clone(), v as u64).is_some() {
            bail!("two {METRIC} series for token {name}");
        }
    }
    Ok(counts)
}

/// The newest record naming a token: when, and what the filter decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// The record's `@timestamp` (UTC, `%Y-%m-%dT%H:%M:%S.%3fZ`).
    pub at: String,
    /// `allow`, or the deny reason (`expired_token`, `token_not_yet_valid`).
    pub decision: String,
}

/// The newest access record naming each token in a proxy's log (`rfma.token.name`, `@timestamp`).
/// The timestamps share one fixed UTC format, so the greatest string is the newest; on a tie the
/// later line wins.
pub fn last_seen(log: &str) -> BTreeMap<String, Seen> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for r in verify::log_objects(log) {
        let (Some(name), Some(at)) = (
            r.pointer("/rfma/token/name").and_then(Value::as_str),
            r.get("@timestamp").and_then(Value::as_str),
        ) else {
            continue;
        };
        if name.is_empty() || name == "-" || at.is_empty() {
            continue;
        }
        let decision = match r.pointer("/rfma/decision").and_then(Value::as_str) {
            Some("deny") => r
                .pointer("/rfma/reason")
                .and_then(Value::as_str)
                .map_or("deny".to_string(), |reason| format!("deny {reason}")),
            Some(d) => d.to_string(),
            None => "?".to_string(),
        };
        if seen.get(name).is_none_or(|s| s.at.as_str() <= at) {
            seen.insert(
                name.to_string(),
                Seen {
                    at: at.to_string(),
                    decision,
                },
            );
        }
    }
    seen
}

/// One token on one proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    pub name: String,
    /// Requests it allowed; `None` when the proxy's stats could not be read.
    pub allowed: Option<u64>,
    /// Whether the proxy has a series for it (no series is a count of 0: an old proxy, or a name
    /// the proxy's configuration does not have yet).
    pub counter: bool,
    /// The newest record naming it within `--since`; `None` when there is none (or no log).
    pub last_seen: Option<Seen>,
}

/// One gated proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyUsage {
    pub pod: String,
    pub tokens: Vec<TokenUsage>,
    /// Why its stats could not be read, if they could not.
    pub stats_error: Option<String>,
    /// Why its log could not be read, if it could not.
    pub log_error: Option<String>,
}

/// What `token usage` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub namespace: String,
    pub since_seconds: u64,
    pub gates: Vec<String>,
    pub proxies: Vec<ProxyUsage>,
}

impl Usage {
    /// True when every proxy's stats and log were read.
    pub fn complete(&self) -> bool {
        self.proxies
            .iter()
            .all(|p| p.stats_error.is_none() && p.log_error.is_none())
    }
}

/// Builds one proxy's rows from what was read (`Err`: why it could not be read).
pub fn proxy_usage(
    pod: &str,
    tokens: &[String],
    stats: Result<String, String>,
    log: Result<String, String>,
) -> ProxyUsage {
    let counts = stats.and_then(|text| token_counts(&text).map_err(|e| format!("{e:#}")));
    let seen = log.as_deref().map(last_seen);
    ProxyUsage {
        pod: pod.to_string(),
        tokens: tokens
            .iter()
            .map(|name| {
                let count = counts.as_ref().ok().map(|c| c.get(name).copied());
                TokenUsage {
                    name: name.clone(),
                    allowed: count.map(|c| c.unwrap_or(0)),
                    counter: count.flatten().is_some(),
                    last_seen: seen.as_ref().ok().and_then(|s| s.get(name).cloned()),
                }
            })
            .collect(),
        stats_error: counts.err(),
        log_error: log.err(),
    }
}

/// `90s`, `30m`, `2h`, `1h30m`: a duration as `--since` takes it.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The table: PROXY, TOKEN, ALLOWED, LAST SEEN, then a line per proxy that could not be read.
pub fn print_table(u: &Usage, out: &mut impl Write) -> std::io::Result<()> {
    let since = human(Duration::from_secs(u.since_seconds));
    let mut rows = vec![[
        "PROXY".to_string(),
        "TOKEN".to_string(),
        "ALLOWED".to_string(),
        "LAST SEEN".to_string(),
    ]];
    for p in &u.proxies {
        for t in &p.tokens {
            let allowed = match (t.allowed, t.counter) {
                (None, _) => "?".to_string(),
                (Some(n), true) => n.to_string(),
                (Some(n), false) => format!("{n} (no counter)"),
            };
            let seen = match (&t.last_seen, &p.log_error) {
                (Some(s), _) => format!("{} ({})", s.at, s.decision),
                (None, Some(_)) => "? (log unreadable)".to_string(),
                (None, None) => format!("not in the last {since}"),
            };
            rows.push([p.pod.clone(), t.name.clone(), allowed, seen]);
        }
    }
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for r in &rows {
        writeln!(out, "{:<w0$}  {:<w1$}  {:>w2$}  {}", r[0], r[1], r[2], r[3])?;
    }
    for p in &u.proxies {
        if let Some(e) = &p.stats_error {
            writeln!(out, "{}: stats not read: {e}", p.pod)?;
        }
        if let Some(e) = &p.log_error {
            writeln!(out, "{}: log not read: {e}", p.pod)?;
        }
    }
    Ok(())
}

/// A 401 or 403 from the API server as the RBAC grant that is missing; other errors as they are.
pub fn classify(e: anyhow::Error, verb: &str, resource: &str, ns: &str) -> anyhow::Error {
    match api_code(&e) {
        Some(403) => e.context(format!(
            "forbidden (403): your user may not `{verb}` `{resource}` in namespace {ns} \
             (grant it with a Role: resources [\"{resource}\"], verbs [\"{verb}\"])"
        )),
        Some(401) => e.context("unauthorized (401): the kubeconfig's credentials were refused"),
        _ => e,
    }
}

/// A proxy read's failure: `Err` to stop (the user lacks a grant: every pod would fail alike),
/// `Ok(reason)` to report it for this proxy and go on (a pod going away, a proxy not ready).
fn per_proxy(
    e: anyhow::Error,
    verb: &str,
    resource: &str,
    ns: &str,
) -> Result<String, anyhow::Error> {
    match api_code(&e) {
        Some(401 | 403) => Err(classify(e, verb, resource, ns)),
        _ => Ok(format!("{e:#}")),
    }
}

async fn bounded<T>(what: String, f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(READ_TIMEOUT, f)
        .await
        .map_err(|_| anyhow!("{what}: no answer within {}s", READ_TIMEOUT.as_secs()))?
}

/// One proxy's Prometheus text through the API server's pod proxy: `Ok(Err(why))` when this
/// proxy could not be read (not ready, going away), `Err` when no proxy could be (a 401 or 403).
pub async fn proxy_stats(cluster: &Cluster, ns: &str, pod: &str) -> Result<Result<String, String>> {
    let stats = bounded(format!("stats of {ns}/{pod}"), async {
        // The pod proxy subresource; `get` builds `<path>/prometheus`.
        let req = kube::core::Request::new(format!(
            "/api/v1/namespaces/{ns}/pods/{pod}:{STATS_PORT}/proxy/stats"
        ))
        .get("prometheus", &GetParams::default())?;
        Ok(cluster.client.request_text(req).await?)
    })
    .await
    .with_context(|| format!("reading {pod}:{STATS_PORT}/stats/prometheus through the API server"));
    Ok(match stats {
        Ok(text) => Ok(text),
        Err(e) => Err(per_proxy(e, "get", "pods/proxy", ns)?),
    })
}

/// The gates of the namespace that carry a token list.
pub async fn gates(cluster: &Cluster, ns: &str) -> Result<Vec<Gate>> {
    let mut found = Vec::new();
    for kind in GATE_KINDS {
        let objs = cluster
            .list(GATE_API, kind, Some(ns), None)
            .await
            .map_err(|e| {
                let plural = format!("{}s.extensions.istio.io", kind.to_ascii_lowercase());
                classify(e, "list", &plural, ns)
            })?;
        found.extend(objs.iter().filter_map(|o| gate_of(kind, o)));
    }
    Ok(found)
}

/// Reads every gated proxy's counters and log.
pub async fn collect(cluster: &Cluster, ns: &str, since: Duration) -> Result<Usage> {
    let gates = gates(cluster, ns).await?;
    if gates.is_empty() {
        bail!(
            "no WasmPlugin or TrafficExtension with a token list in namespace {ns} \
             (is the demo up? see `istio-demo status`)"
        );
    }
    collect_from(cluster, ns, gates, since).await
}

/// Reads the counters and log of every proxy that `gates` select.
pub async fn collect_from(
    cluster: &Cluster,
    ns: &str,
    gates: Vec<Gate>,
    since: Duration,
) -> Result<Usage> {
    // Pod -> the token names of the gates selecting it, in their order, each once.
    let mut pods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in &gates {
        let running = verify::running_pods(cluster, ns, &g.selector)
            .await
            .map_err(|e| classify(e, "list", "pods", ns))?;
        for (pod, _) in running {
            let names = pods.entry(pod).or_default();
            for t in &g.tokens {
                if !names.contains(t) {
                    names.push(t.clone());
                }
            }
        }
    }
    if pods.is_empty() {
        bail!(
            "no running pod in namespace {ns} is selected by {} (selector {})",
            gates
                .iter()
                .map(|g| g.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            gates
                .iter()
                .map(|g| if g.selector.is_empty() {
                    "<all>"
                } else {
                    &g.selector
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let lp = LogParams {
        container: Some(PROXY.into()),
        since_seconds: Some(i64::try_from(since.as_secs()).unwrap_or(i64::MAX).max(1)),
        ..Default::default()
    };
    let mut proxies = Vec::new();
    for (pod, tokens) in &pods {
        let stats = proxy_stats(cluster, ns, pod).await?;
        let log = bounded(format!("log of {ns}/{pod}"), async {
            Ok(api.logs(pod, &lp).await?)
        })
        .await
        .with_context(|| format!("reading the {PROXY} log of {pod}"));
        let log = match log {
            Ok(text) => Ok(text),
            Err(e) => Err(per_proxy(e, "get", "pods/log", ns)?),
        };
        proxies.push(proxy_usage(pod, tokens, stats, log));
    }
    Ok(Usage {
        namespace: ns.to_string(),
        since_seconds: since.as_secs(),
        gates: gates.into_iter().map(|g| g.id).collect(),
        proxies,
    })
}

/// `token usage` against `cluster`, writing the table or the JSON to `out`; exit status 1 when a
/// proxy's stats or log could not be read.
pub async fn run_with(
    cluster: &Cluster,
    args: &UsageArgs,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let usage = collect(cluster, &args.namespace, args.since).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &usage)?;
        writeln!(out)?;
    } else {
        print_table(&usage, out)?;
    }
    out.flush()?;
    Ok(if usage.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Entry point from `token`.
pub fn run(args: &UsageArgs, out: &mut impl Write) -> Result<ExitCode> {
    cluster::runtime()?.block_on(async {
        let cluster = Cluster::new(args.kube.client().await?, false);
        run_with(&cluster, args, out).await
    })
}

#[cfg(test)]
mod tests;
