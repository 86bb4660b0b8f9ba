//! `verify --canary-rollback`: proof, on a live cluster, that a canary whose gate rejects the load
//! tester's calls is rolled back by Flagger, and that the demo recovers.
//!
//! 1. Refuses to start while a canary analysis is running.
//! 2. Replaces the load tester's token (Secret `rfma-loadtester-token`) with a random one that no
//!    entry of the gate knows, and waits until the load tester's mounted file holds it (the
//!    kubelet refreshes Secret volumes within about a minute; checked in memory, never printed).
//! 3. Starts a canary: an annotation on httpbin's pod template (Flux does not own it, so Flux
//!    leaves it). Every authenticated call of the analysis now gets 403 from the canary's gate:
//!    Flagger's built-in success rate (5xx only) would promote it; the gate-denial metric fails it.
//! 4. Waits for phase `Failed` (a `Succeeded` here is a FAIL: a broken gate was promoted) and checks
//!    that the primary did not take the new template.
//! 5. Always restores the token and removes the annotation, then waits for the next analysis to
//!    promote (phase `Succeeded`), so the demo is left as it was.

use super::{Outcome, PROXY};
use crate::cluster::Cluster;
use crate::deploy::tokens;
use anyhow::{Context, Result, bail};
use base64::Engine;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The pod-template annotation that starts the canary.
pub const TRIGGER_ANNOTATION: &str = "istio-demo.dev/verify-rollback";
/// Where the load tester mounts its token.
pub const LOADTESTER_TOKEN_PATH: &str = "/var/run/secrets/rfma/token";
const CANARY: &str = "httpbin";

fn deployment_ref(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}})
}

/// Whether a canary in `phase` is idle (no analysis running).
pub fn idle(phase: Option<&str>) -> bool {
    matches!(phase, Some("Initialized" | "Succeeded" | "Failed"))
}

/// Polls the Canary until its phase is in `want` (Ok, with the phases seen) or in `bad` (Err).
async fn wait_phase(
    cluster: &Cluster,
    ns: &str,
    want: &[&str],
    bad: &[&str],
    since: Option<&str>,
    timeout: Duration,
) -> Result<Vec<String>> {
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let c = cluster
            .get("flagger.app/v1beta1", "Canary", Some(ns), CANARY)
            .await?
            .with_context(|| format!("no Canary {ns}/{CANARY}"))?;
        let phase = c
            .data
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if seen.last() != Some(&phase) {
            seen.push(phase.clone());
        }
        // A phase left over from before the trigger does not count until another was seen.
        let fresh = since.is_none_or(|s| seen.len() > 1 || phase != s);
        if fresh && want.contains(&phase.as_str()) {
            return Ok(seen);
        }
        if fresh && bad.contains(&phase.as_str()) {
            bail!(
                "the canary reached phase {phase} (phases seen: {})",
                seen.join(" → ")
            );
        }
        if start.elapsed() + cluster.poll > timeout {
            bail!(
                "no phase {} after {}s (phases seen: {})",
                want.join("/"),
                timeout.as_secs(),
                seen.join(" → ")
            );
        }
        tokio::time::sleep(cluster.poll).await;
    }
}

/// Waits until the load tester's mounted token is `want` (compared in memory).
async fn wait_mounted(cluster: &Cluster, want: &str, timeout: Duration) -> Result<Duration> {
    let spec = tokens::find("loadtester")?;
    let pods = cluster
        .list("v1", "Pod", Some(spec.namespace), Some("app=loadtester"))
        .await?;
    let pod = pods
        .iter()
        .find(|p| p.data.pointer("/status/phase") == Some(&json!("Running")))
        .with_context(|| {
            format!(
                "no running load tester pod (app=loadtester) in {}",
                spec.namespace
            )
        })?;
    let name = pod.name_any();
    let container = pod
        .data
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] != PROXY))
        .and_then(|c| c["name"].as_str())
        .context("the load tester pod has no container besides the sidecar")?
        .to_string();
    let start = Instant::now();
    loop {
        let out = cluster
            .exec(
                spec.namespace,
                &name,
                &container,
                &["cat", LOADTESTER_TOKEN_PATH],
            )
            .await?;
        if out.stdout.trim() == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!(
                "the load tester's {LOADTESTER_TOKEN_PATH} did not change within {}s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn set_token(cluster: &Cluster, encoded: &Value) -> Result<()> {
    let spec = tokens::find("loadtester")?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": spec.secret, "namespace": spec.namespace}});
    if !cluster
        .merge_patch(&secret, &json!({"data": {tokens::SECRET_KEY: encoded}}))
        .await?
    {
        bail!("no Secret {}/{}", spec.namespace, spec.secret);
    }
    Ok(())
}

async fn set_trigger(cluster: &Cluster, ns: &str, value: Value) -> Result<()> {
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {TRIGGER_ANNOTATION: value}}}}});
    if !cluster
        .merge_patch(&deployment_ref(ns, CANARY), &patch)
        .await?
    {
        bail!("no Deployment {ns}/{CANARY}");
    }
    Ok(())
}

async fn break_and_observe(
    cluster: &Cluster,
    ns: &str,
    timeout: Duration,
    o: &mut Outcome,
) -> Result<()> {
    let wrong = tokens::fresh(*tokens::find("loadtester")?)?;
    set_token(
        cluster,
        &json!(base64::engine::general_purpose::STANDARD.encode(wrong.reveal())),
    )
    .await?;
    let took = wait_mounted(cluster, wrong.reveal(), timeout).await?;
    o.check(
        true,
        format!(
            "load tester token replaced by an unknown one (mounted after {}s)",
            took.as_secs()
        ),
    );
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    set_trigger(cluster, ns, json!(stamp.to_string())).await?;
    let seen = wait_phase(cluster, ns, &["Failed"], &["Succeeded"], None, timeout).await?;
    o.check(
        true,
        format!("canary rolled back (phases {})", seen.join(" → ")),
    );
    let primary = cluster
        .get(
            "apps/v1",
            "Deployment",
            Some(ns),
            &format!("{CANARY}-primary"),
        )
        .await?
        .with_context(|| format!("no Deployment {ns}/{CANARY}-primary"))?;
    let took_new = primary
        .data
        .pointer("/spec/template/metadata/annotations")
        .and_then(|a| a.get(TRIGGER_ANNOTATION))
        .is_some();
    o.check(
        !took_new,
        format!(
            "primary {}",
            if took_new {
                "TOOK the broken revision"
            } else {
                "kept the previous revision"
            }
        ),
    );
    Ok(())
}

/// The scenario; never leaves the token broken.
pub async fn canary_rollback(cluster: &Cluster, ns: &str, timeout: Duration) -> Outcome {
    let mut o = Outcome::new("canary rollback");
    let prepared = async {
        let canary = cluster
            .get("flagger.app/v1beta1", "Canary", Some(ns), CANARY)
            .await?
            .with_context(|| format!("no Canary {ns}/{CANARY}"))?;
        let phase = canary.data.pointer("/status/phase").and_then(Value::as_str);
        if !idle(phase) {
            bail!("a canary analysis is running (phase {phase:?}): try again when it ends");
        }
        let spec = tokens::find("loadtester")?;
        let secret = cluster
            .get("v1", "Secret", Some(spec.namespace), spec.secret)
            .await?
            .with_context(|| {
                format!(
                    "no Secret {}/{} (run `istio-demo up`)",
                    spec.namespace, spec.secret
                )
            })?;
        let original = secret
            .data
            .pointer(&format!("/data/{}", tokens::SECRET_KEY))
            .cloned()
            .with_context(|| format!("Secret {}/{} has no token", spec.namespace, spec.secret))?;
        Ok::<Value, anyhow::Error>(original)
    }
    .await;
    let original = match prepared {
        Ok(v) => v,
        Err(e) => {
            o.check(false, format!("{e:#}"));
            return o;
        }
    };
    if let Err(e) = break_and_observe(cluster, ns, timeout, &mut o).await {
        o.check(false, format!("{e:#}"));
    }
    // Restore, whatever happened above.
    let restored = async {
        set_token(cluster, &original).await?;
        set_trigger(cluster, ns, Value::Null).await?;
        wait_phase(
            cluster,
            ns,
            &["Succeeded"],
            &["Failed"],
            Some("Failed"),
            timeout,
        )
        .await
    }
    .await;
    match restored {
        Ok(seen) => o.check(
            true,
            format!(
                "token restored; the next analysis promoted (phases {})",
                seen.join(" → ")
            ),
        ),
        Err(e) => o.check(false, format!("restoring: {e:#}")),
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_idle_canary_may_be_broken() {
        for p in ["Initialized", "Succeeded", "Failed"] {
            assert!(idle(Some(p)), "{p}");
        }
        for p in ["Progressing", "Promoting", "Finalising", "Waiting", ""] {
            assert!(!idle(Some(p)), "{p}");
        }
        assert!(!idle(None));
    }
}
