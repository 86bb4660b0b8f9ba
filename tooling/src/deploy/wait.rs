//! Waiting for objects: a readiness rule per kind ([`Check`]), how an object stands against it
//! ([`evaluate`], pure), and [`wait`], which polls until it passes and, when it does not, explains
//! itself with the object's conditions and recent Events.

use crate::cluster::Cluster;
use kube::api::DynamicObject;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The HTTP status of the API error behind `e`, if it is one (kube's typed error, never its text).
pub fn api_code(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|cause| match cause.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => Some(status.code),
            _ => None,
        })
}

/// A readiness rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// CustomResourceDefinition: `Established=True`.
    Established,
    /// Flux and Helm objects: `Ready=True` for the current generation.
    Ready,
    /// Deployment, StatefulSet, DaemonSet: rolled out and available.
    Workload,
    /// Flagger Canary: phase `Initialized` (or `Succeeded` after a promotion).
    CanaryInitialized,
    /// The object no longer exists (deletes, finalizers).
    Gone,
}

/// An object to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub check: Check,
}

impl Target {
    pub fn of(obj: &Value, check: Check) -> Self {
        Target {
            api_version: obj["apiVersion"].as_str().unwrap_or_default().to_string(),
            kind: obj["kind"].as_str().unwrap_or_default().to_string(),
            namespace: obj["metadata"]["namespace"].as_str().map(str::to_string),
            name: obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            check,
        }
    }
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// Where an object stands against a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done,
    Waiting(String),
    /// Will not get better by waiting (e.g. a Canary in phase Failed).
    Failed(String),
}

/// `status.conditions` of an object's schemaless part (its `data`).
fn conditions(data: &Value) -> Vec<&Value> {
    data.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn condition<'a>(data: &'a Value, kind: &str) -> Option<&'a Value> {
    conditions(data).into_iter().find(|c| c["type"] == kind)
}

/// One line per condition: `Type=Status Reason: message`.
pub fn describe_conditions(obj: &DynamicObject) -> Vec<String> {
    conditions(&obj.data)
        .iter()
        .map(|c| {
            let mut s = format!(
                "{}={}",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?")
            );
            if let Some(r) = c["reason"].as_str().filter(|r| !r.is_empty()) {
                s.push_str(&format!(" {r}"));
            }
            if let Some(m) = c["message"].as_str().filter(|m| !m.is_empty()) {
                s.push_str(&format!(": {m}"));
            }
            s
        })
        .collect()
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

/// Evaluates `check` on the object as last read (`None`: it does not exist).
pub fn evaluate(check: Check, obj: Option<&DynamicObject>) -> Progress {
    let Some(live) = obj else {
        return if check == Check::Gone {
            Progress::Done
        } else {
            Progress::Waiting("not found".into())
        };
    };
    // The kind's own fields (spec, status) are schemaless here; the metadata is typed.
    let obj = &live.data;
    let kind = live.types.as_ref().map_or("", |t| t.kind.as_str());
    let generation_seen = || match (
        live.metadata.generation,
        int(obj, "/status/observedGeneration"),
    ) {
        (Some(g), Some(o)) => o >= g,
        (Some(_), None) => false,
        _ => true,
    };
    let cond_true = |t: &str| condition(obj, t).is_some_and(|c| c["status"] == "True");
    let cond_message = |t: &str| {
        condition(obj, t)
            .map(|c| {
                format!(
                    "{t}={} {}",
                    c["status"].as_str().unwrap_or("?"),
                    c["message"].as_str().unwrap_or("")
                )
                .trim()
                .to_string()
            })
            .unwrap_or_else(|| format!("no {t} condition yet"))
    };
    match check {
        Check::Gone => {
            let fin = live.metadata.finalizers.as_ref().map_or(0, Vec::len);
            Progress::Waiting(if live.metadata.deletion_timestamp.is_some() {
                format!("terminating, {fin} finalizer(s) left")
            } else {
                "still present".into()
            })
        }
        Check::Established => {
            if cond_true("Established") {
                Progress::Done
            } else if condition(obj, "NamesAccepted").is_some_and(|c| c["status"] == "False") {
                Progress::Failed(cond_message("NamesAccepted"))
            } else {
                Progress::Waiting(cond_message("Established"))
            }
        }
        Check::Ready => {
            // An OCI HelmRepository is static in Flux 2: it never reports Ready.
            let static_source = kind == "HelmRepository"
                && obj.pointer("/spec/type").and_then(Value::as_str) == Some("oci");
            if static_source || (cond_true("Ready") && generation_seen()) {
                Progress::Done
            } else {
                Progress::Waiting(cond_message("Ready"))
            }
        }
        Check::CanaryInitialized => match obj.pointer("/status/phase").and_then(Value::as_str) {
            Some("Initialized" | "Succeeded") => Progress::Done,
            Some("Failed") => {
                Progress::Failed(format!("phase Failed: {}", cond_message("Promoted")))
            }
            Some(p) => Progress::Waiting(format!("phase {p}")),
            None => Progress::Waiting("no phase yet".into()),
        },
        Check::Workload => {
            if !generation_seen() {
                return Progress::Waiting(
                    "controller has not observed the latest generation".into(),
                );
            }
            let (want, have, what) = match kind {
                "DaemonSet" => (
                    int(obj, "/status/desiredNumberScheduled").unwrap_or(0),
                    int(obj, "/status/numberReady")
                        .unwrap_or(0)
                        .min(int(obj, "/status/updatedNumberScheduled").unwrap_or(0)),
                    "pods ready",
                ),
                "StatefulSet" => (
                    int(obj, "/spec/replicas").unwrap_or(1),
                    int(obj, "/status/readyReplicas")
                        .unwrap_or(0)
                        .min(int(obj, "/status/updatedReplicas").unwrap_or(0)),
                    "replicas ready",
                ),
                _ => (
                    int(obj, "/spec/replicas").unwrap_or(1),
                    int(obj, "/status/availableReplicas")
                        .unwrap_or(0)
                        .min(int(obj, "/status/updatedReplicas").unwrap_or(0)),
                    "replicas available",
                ),
            };
            if let Some(c) =
                condition(obj, "Progressing").filter(|c| c["reason"] == "ProgressDeadlineExceeded")
            {
                return Progress::Failed(format!(
                    "rollout stuck: {}",
                    c["message"].as_str().unwrap_or("")
                ));
            }
            if have >= want {
                Progress::Done
            } else {
                Progress::Waiting(format!("{have}/{want} {what}"))
            }
        }
    }
}

/// A wait that did not succeed: what was seen, the object's conditions and its recent Events.
#[derive(Debug)]
pub struct WaitFailure {
    pub target: String,
    pub reason: String,
    pub conditions: Vec<String>,
    pub events: Vec<String>,
}

impl std::fmt::Display for WaitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {}", self.target, self.reason)?;
        if self.conditions.is_empty() {
            writeln!(f, "  conditions: none reported")?;
        } else {
            writeln!(f, "  conditions:")?;
            for c in &self.conditions {
                writeln!(f, "    {c}")?;
            }
        }
        if self.events.is_empty() {
            write!(f, "  events: none recent")
        } else {
            write!(f, "  recent events:")?;
            for e in &self.events {
                write!(f, "\n    {e}")?;
            }
            Ok(())
        }
    }
}

impl std::error::Error for WaitFailure {}

/// Polls `target` until its check passes; on timeout or a permanent failure, reports the
/// object's conditions and recent Events. A zero `timeout` checks exactly once.
pub async fn wait(
    cluster: &Cluster,
    target: &Target,
    timeout: Duration,
) -> Result<(), WaitFailure> {
    let start = Instant::now();
    let fail = |reason: String, obj: Option<&DynamicObject>| WaitFailure {
        target: target.id(),
        reason,
        conditions: obj.map(describe_conditions).unwrap_or_default(),
        events: Vec::new(),
    };
    let mut failure = loop {
        let obj = match cluster
            .get(
                &target.api_version,
                &target.kind,
                target.namespace.as_deref(),
                &target.name,
            )
            .await
        {
            Ok(o) => Ok(o),
            // A read refused by RBAC or authentication will not get better; anything else (a
            // restarting API server, a timeout, a 5xx) is retried until the deadline.
            Err(e) if api_code(&e).is_some_and(|c| c == 401 || c == 403) => {
                break fail(format!("cannot read it: {e:#}"), None);
            }
            Err(e) => Err(format!("cannot read it: {e:#}")),
        };
        let progress = match &obj {
            Ok(o) => evaluate(target.check, o.as_ref()),
            Err(e) => Progress::Waiting(e.clone()),
        };
        let obj = obj.ok().flatten();
        match progress {
            Progress::Done => return Ok(()),
            Progress::Failed(why) => break fail(why, obj.as_ref()),
            Progress::Waiting(why) => {
                if start.elapsed() + cluster.poll > timeout {
                    break fail(
                        format!("not ready after {}s: {why}", timeout.as_secs()),
                        obj.as_ref(),
                    );
                }
            }
        }
        tokio::time::sleep(cluster.poll).await;
    };
    failure.events = cluster
        .events(&target.kind, target.namespace.as_deref(), &target.name, 10)
        .await
        .unwrap_or_else(|e| vec![format!("(could not list events: {e:#})")]);
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A live object as the API server returns it.
    fn live(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn checks() {
        let crd = |s: &str| {
            live(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {"conditions": [{"type": "Established", "status": s}]}}),
            )
        };
        assert_eq!(
            evaluate(Check::Established, Some(&crd("True"))),
            Progress::Done
        );
        assert!(matches!(
            evaluate(Check::Established, Some(&crd("False"))),
            Progress::Waiting(_)
        ));
        let ks = live(
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"generation": 2}, "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert!(
            matches!(evaluate(Check::Ready, Some(&ks)), Progress::Waiting(_)),
            "old generation is not ready"
        );
        let dep = |avail: i64| {
            live(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": avail}}),
            )
        };
        assert_eq!(evaluate(Check::Workload, Some(&dep(2))), Progress::Done);
        assert_eq!(
            evaluate(Check::Workload, Some(&dep(1))),
            Progress::Waiting("1/2 replicas available".into())
        );
        let canary = |p: &str| {
            live(
                json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "status": {"phase": p}}),
            )
        };
        assert_eq!(
            evaluate(Check::CanaryInitialized, Some(&canary("Initialized"))),
            Progress::Done
        );
        assert!(matches!(
            evaluate(Check::CanaryInitialized, Some(&canary("Failed"))),
            Progress::Failed(_)
        ));
        let oci = live(
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "spec": {"type": "oci"}}),
        );
        assert_eq!(evaluate(Check::Ready, Some(&oci)), Progress::Done);
        let https = live(
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "spec": {"url": "https://x"}}),
        );
        assert!(matches!(
            evaluate(Check::Ready, Some(&https)),
            Progress::Waiting(_)
        ));
        assert_eq!(evaluate(Check::Gone, None), Progress::Done);
        assert!(matches!(evaluate(Check::Ready, None), Progress::Waiting(_)));
    }
}
