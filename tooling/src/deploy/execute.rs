//! Carrying out a plan against a cluster: server-side apply of each stage's objects, the stage's
//! action (the push), then its waits, with one progress line per step. The first failure stops
//! the run and says why (conditions and recent Events of the object that did not get ready).

use super::plan::{Action, Stage};
use super::registry::{self, Access};
use super::wait;
use crate::cluster::{self, Cluster, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Outcome};
use anyhow::{Result, bail};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Instant;

/// Flux skips garbage collection of objects carrying this annotation with the value `disabled`.
pub const FLUX_PRUNE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/prune";

fn elapsed(start: Instant) -> String {
    format!("{:.1}s", start.elapsed().as_secs_f64())
}

fn verb(cluster: &Cluster, o: &Outcome) -> String {
    if cluster.dry_run {
        format!("would be {o}:")
    } else {
        format!("{o}:")
    }
}

/// Whether a live object carries the label `up` puts on what it creates.
pub fn ours(live: &DynamicObject) -> bool {
    live.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

/// Applies a namespace: ours get the managed-by label; one that existed without it stays the user's.
async fn apply_namespace(cluster: &Cluster, ns: &Value, out: &mut impl Write) -> Result<()> {
    let name = ns["metadata"]["name"].as_str().unwrap_or_default();
    let existing = cluster.get("v1", "Namespace", None, name).await?;
    let users = existing.as_ref().is_some_and(|e| !ours(e));
    let mut obj = ns.clone();
    if users {
        // Flux must never garbage-collect a namespace the user had before.
        obj["metadata"]["annotations"][FLUX_PRUNE_ANNOTATION] = json!("disabled");
    } else {
        obj["metadata"]["labels"][MANAGED_BY_LABEL] = json!(MANAGED_BY_VALUE);
    }
    let outcome = cluster.apply(&obj).await?;
    let note = if users {
        " (existed before: stays yours, `down` keeps it)"
    } else {
        ""
    };
    writeln!(
        out,
        "  {} {}{note}",
        verb(cluster, &outcome),
        cluster::object_id(&obj)
    )?;
    Ok(())
}

/// Runs the stages in order.
pub async fn run(
    cluster: &Cluster,
    stages: &[Stage],
    access: &Access,
    out: &mut impl Write,
) -> Result<()> {
    let total = stages.len();
    for (i, stage) in stages.iter().enumerate() {
        let start = Instant::now();
        writeln!(out, "[{}/{total}] {}", i + 1, stage.name)?;
        if stage.apply.is_empty() && stage.wait.is_empty() && stage.action.is_none() {
            writeln!(out, "  nothing to do")?;
            continue;
        }
        for o in &stage.apply {
            if stage.namespaces {
                apply_namespace(cluster, o, out).await?;
            } else {
                let outcome = cluster.apply(o).await?;
                writeln!(
                    out,
                    "  {} {}",
                    verb(cluster, &outcome),
                    cluster::object_id(o)
                )?;
            }
        }
        if let Some(Action::Push(payload)) = &stage.action {
            let what = match &payload.manifests {
                Some(m) => format!(
                    "the module {} and the manifests {}",
                    payload.module_digest, m.digest
                ),
                None => format!("the module {}", payload.module_digest),
            };
            if cluster.dry_run {
                writeln!(out, "  would push {what}")?;
            } else {
                out.flush()?;
                let via = registry::push(cluster, access, payload).await?;
                writeln!(out, "  pushed {what} ({via})")?;
            }
        }
        for t in &stage.wait {
            if cluster.dry_run {
                writeln!(
                    out,
                    "  would wait for {} ({:?}, timeout {}s)",
                    t.id(),
                    t.check,
                    stage.timeout.as_secs()
                )?;
                continue;
            }
            let t0 = Instant::now();
            writeln!(
                out,
                "  waiting for {} (up to {}s)...",
                t.id(),
                stage.timeout.as_secs()
            )?;
            out.flush()?;
            match wait::wait(cluster, t, stage.timeout).await {
                Ok(()) => writeln!(out, "  ready: {} ({})", t.id(), elapsed(t0))?,
                Err(f) => {
                    writeln!(out, "  FAILED: {f}")?;
                    bail!("stage {} failed: {} is not ready", stage.name, t.id());
                }
            }
        }
        if stage.refresh_discovery {
            cluster.refresh_discovery();
            writeln!(out, "  discovery refreshed")?;
        }
        writeln!(out, "  done in {}", elapsed(start))?;
    }
    Ok(())
}
