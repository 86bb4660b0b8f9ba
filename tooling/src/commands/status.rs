//! `istio-demo status`: one table of every object the demo owns that has a status.

use crate::cluster::{self, Cluster, KubeArgs};
use crate::deploy::render::{
    self, FLUX_NAMESPACE, Profile, SELF_KUSTOMIZATION, SOURCE_NAME, SourceKind, Synced,
};
use crate::deploy::wait::{Check, Progress};
use crate::manifests;
use anyhow::Result;
use clap::{Args, ValueEnum};
use kube::api::DynamicObject;
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Args)]
#[command(
    about = "Show every object the demo owns that has a status: NAME, KIND, READY, MESSAGE, AGE",
    long_about = "Reads, from the live cluster, every object of the demo that reports a status: Flux sources and \
Kustomizations, HelmReleases, Deployments, StatefulSets and DaemonSets, the Canary (phase and weight) and the \
WasmPlugin, as rendered from flux/ and the paths its Kustomizations sync. Prints one table (NAME, KIND, READY, \
MESSAGE, AGE), or a JSON array with -o json. Exits 1 when an object is missing or not ready."
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// The repository holding flux/ and the manifest directories (default: found from the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub name: String,
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub ready: String,
    pub message: String,
    pub age: String,
}

/// Kinds shown, with the check that says whether they are ready (`None`: no readiness, e.g. WasmPlugin).
pub fn check_for(kind: &str, api_version: &str) -> Option<Option<Check>> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("source.toolkit.fluxcd.io", _)
        | ("kustomize.toolkit.fluxcd.io", "Kustomization")
        | ("helm.toolkit.fluxcd.io", "HelmRelease") => Some(Some(Check::Ready)),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => Some(Some(Check::Workload)),
        ("flagger.app", "Canary") => Some(Some(Check::CanaryInitialized)),
        ("extensions.istio.io", "WasmPlugin" | "TrafficExtension") => Some(None),
        _ => None,
    }
}

/// `5s`, `12m`, `3h`, `4d` from RFC 3339 `created` to `now` (seconds since the epoch).
pub fn age(created: Option<&str>, now: i64) -> String {
    let Some(t) = created.and_then(|c| c.parse::<jiff_like::Timestamp>().ok()) else {
        return "-".into();
    };
    let s = (now - t.0).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Minimal RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`) parsing, as the API server writes timestamps.
mod jiff_like {
    pub struct Timestamp(pub i64);
    impl std::str::FromStr for Timestamp {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let b = s.as_bytes();
            if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
                return Err(());
            }
            let n =
                |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or(());
            let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
            let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
            // Days from civil (Howard Hinnant's algorithm).
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let mp = (m + 9) % 12;
            let doy = (153 * mp + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146097 + doe - 719468;
            Ok(Timestamp(days * 86400 + hh * 3600 + mm * 60 + ss))
        }
    }
}

/// The row for a declared object and what the cluster has (`None`: not found).
pub fn row(declared: &Value, live: Option<&DynamicObject>, now: i64) -> Row {
    let kind = declared["kind"].as_str().unwrap_or_default().to_string();
    let name = cluster::object_id(declared)
        .split_once('/')
        .map(|(_, n)| n.to_string())
        .unwrap_or_default();
    let api_version = declared["apiVersion"].as_str().unwrap_or_default();
    let Some(live) = live else {
        return Row {
            name,
            kind,
            ready: "False".into(),
            message: "not found".into(),
            age: "-".into(),
        };
    };
    let created = live
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string());
    let age = age(created.as_deref(), now);
    let check = check_for(&kind, api_version).flatten();
    let (ready, mut message) = match check.map(|c| crate::deploy::wait::evaluate(c, Some(live))) {
        None => ("-".to_string(), String::new()),
        Some(Progress::Done) => ("True".to_string(), String::new()),
        Some(Progress::Waiting(m)) => ("False".to_string(), m),
        Some(Progress::Failed(m)) => ("False".to_string(), m),
    };
    match check {
        Some(Check::Ready) => {
            if let Some(c) = live
                .data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|c| c["type"] == "Ready"))
            {
                message = c["message"].as_str().unwrap_or_default().to_string();
            }
        }
        Some(Check::CanaryInitialized) => {
            let phase = live
                .data
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let weight = live
                .data
                .pointer("/status/canaryWeight")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            message = format!("phase {phase}, canary weight {weight}%");
        }
        Some(Check::Workload) => {
            let (want, have) = match kind.as_str() {
                "DaemonSet" => (
                    live.data.pointer("/status/desiredNumberScheduled"),
                    live.data.pointer("/status/numberReady"),
                ),
                "StatefulSet" => (
                    live.data.pointer("/spec/replicas"),
                    live.data.pointer("/status/readyReplicas"),
                ),
                _ => (
                    live.data.pointer("/spec/replicas"),
                    live.data.pointer("/status/availableReplicas"),
                ),
            };
            let want = want.and_then(Value::as_i64).unwrap_or(1);
            let have = have.and_then(Value::as_i64).unwrap_or(0);
            if ready == "True" {
                message = format!("{have}/{want} ready");
            }
        }
        _ => {
            // A WasmPlugin names its module at spec.url, a TrafficExtension at spec.wasm.url.
            let url = live
                .data
                .pointer("/spec/url")
                .or_else(|| live.data.pointer("/spec/wasm/url"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            message = format!(
                "url {url} (Istio reports no readiness for Wasm extensions; see `istio-demo verify`)"
            );
        }
    }
    Row {
        name,
        kind,
        ready,
        message,
        age,
    }
}

/// The declared objects `status` shows, in the order they are deployed: the registry, the Flux
/// source, the entry point's Kustomizations, then what they sync.
pub fn declared(
    registry: &[Value],
    source: &Value,
    entry: &[Value],
    synced: &[Synced],
) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    registry
        .iter()
        .chain(std::iter::once(source))
        .chain(entry)
        .chain(synced.iter().flat_map(|s| &s.objects))
        .filter(|o| {
            check_for(
                o["kind"].as_str().unwrap_or_default(),
                o["apiVersion"].as_str().unwrap_or_default(),
            )
            .is_some()
        })
        // flux/ syncs itself too: show each object once.
        .filter(|o| {
            seen.insert(format!(
                "{}/{}",
                o["apiVersion"].as_str().unwrap_or_default(),
                cluster::object_id(o)
            ))
        })
        .cloned()
        .collect()
}

/// Prints the table.
pub fn print_table(rows: &[Row], out: &mut impl Write) -> std::io::Result<()> {
    let headers = ["NAME", "KIND", "READY", "MESSAGE", "AGE"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| [r.name.as_str(), &r.kind, &r.ready, &r.message, &r.age])
        .collect();
    let mut widths = headers.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: [&str; 5], out: &mut dyn Write| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (cell, w)) in c.iter().zip(widths).enumerate() {
            if i == 4 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(headers, out)?;
    for c in cells {
        line(c, out)?;
    }
    Ok(())
}

/// Reads every declared object and prints the table (or JSON). Returns whether all are ready.
pub async fn run_with(
    cluster: &Cluster,
    objects: &[Value],
    output: Output,
    now: i64,
    out: &mut impl Write,
) -> Result<bool> {
    let mut rows = Vec::new();
    for o in objects {
        let t = crate::deploy::wait::Target::of(o, Check::Ready);
        let live = cluster
            .get(&t.api_version, &t.kind, t.namespace.as_deref(), &t.name)
            .await?;
        rows.push(row(o, live.as_ref(), now));
    }
    match output {
        Output::Table => print_table(&rows, out)?,
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?,
    }
    Ok(rows.iter().all(|r| r.ready != "False"))
}

/// The entry point `up` deployed, read from the self-managing Kustomization's `spec.path`
/// (profile full, OCI source when there is none yet).
pub async fn deployed_entry(cluster: &Cluster) -> Result<(Profile, SourceKind)> {
    let live = cluster
        .get(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some(FLUX_NAMESPACE),
            SELF_KUSTOMIZATION,
        )
        .await?;
    Ok(live
        .as_ref()
        .and_then(|k| k.data.pointer("/spec/path"))
        .and_then(Value::as_str)
        .and_then(render::entry_of_path)
        .unwrap_or((Profile::Full, SourceKind::Oci)))
}

/// Entry point from `main`.
pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    let repo = args.repo.clone().unwrap_or_else(manifests::repo_root);
    cluster::runtime()?.block_on(async {
        let cluster = Cluster::new(args.kube.client().await?, false);
        let (profile, source) = deployed_entry(&cluster).await?;
        let rendered = render::render_as_is(&repo, profile, source)?;
        let registry: Vec<Value> = manifests::render(&repo.join(render::REGISTRY_DIR))?
            .into_iter()
            .map(|m| m.object)
            .collect();
        let source_object = serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": match source { SourceKind::Oci => "OCIRepository", SourceKind::Git => "GitRepository" },
            "metadata": {"name": SOURCE_NAME, "namespace": FLUX_NAMESPACE},
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let stdout = std::io::stdout();
        let all_ready = run_with(
            &cluster,
            &declared(&registry, &source_object, &rendered.entry_objects(), &rendered.synced()),
            args.output,
            now,
            &mut stdout.lock(),
        )
        .await?;
        if !all_ready {
            anyhow::bail!("some objects are missing or not ready");
        }
        Ok(ExitCode::SUCCESS)
    })
}
