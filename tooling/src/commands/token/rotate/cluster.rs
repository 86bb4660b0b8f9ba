//! `token rotate` against a cluster deployed by `istio-demo up` (OCI source). Flux owns the gate
//! object and would revert a patch to it, so the rotation never touches it: it changes what the
//! gate is rendered from. The demo token Secrets record each slot's entries ([`tokens`]); every
//! change is written there first, then the manifests are rendered again (as `up` renders them),
//! pushed as a new Flux artifact, the OCIRepository is pinned to it, Flux is asked to reconcile,
//! and the rotation waits until the gate's Kustomization has applied that artifact and the gate
//! object carries the expected list. A later `up` renders the same list from the same Secrets.

use super::engine::{Backend, CountReader, Counts};
use super::{RotateArgs, next_name, rfc3339};
use crate::cluster::Cluster;
use crate::commands::token::usage::{self, GATE_API, GATE_KINDS, Gate};
use crate::commands::{token, up, verify};
use crate::deploy::registry::{self, Access};
use crate::deploy::render::{
    self, FLUX_NAMESPACE, MANIFESTS_REPOSITORY, Profile, Release, SELF_KUSTOMIZATION, SourceKind,
    TAG,
};
use crate::deploy::tokens::{self, DEMO_TOKENS, Entry, Step, Token};
use crate::deploy::{artifact, wait};
use anyhow::{Context, Result, bail};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Flux's annotation asking a controller to reconcile now (any new value will do).
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
const KUSTOMIZE_API: &str = "kustomize.toolkit.fluxcd.io/v1";
/// Longest Flux may take to apply a pushed artifact, and the proxies to load the result.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// A rotation of one demo token slot in a cluster.
pub struct ClusterRotation<'a> {
    cluster: &'a Cluster,
    repo: PathBuf,
    access: Access,
    ns: String,
    /// Every slot's token: rendering needs them all.
    tokens: Vec<Token>,
    slot: usize,
    gate: Gate,
    /// The gate object as deployed: name, module reference.
    gate_obj: DynamicObject,
    /// Its kind (one of [`GATE_KINDS`]): list items need not say it.
    gate_kind: &'static str,
    profile: Profile,
    pub old: String,
    pub new: String,
    not_after: Option<String>,
    apply_timeout: Duration,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

impl<'a> ClusterRotation<'a> {
    /// Reads the token Secrets, the gate and the entry point; decides the names. A rotation of
    /// NAME already under way (a Secret recording NAME as its old entry) is resumed where it stands.
    pub async fn open(
        cluster: &'a Cluster,
        args: &RotateArgs,
        repo: PathBuf,
        access: Access,
        now: u64,
    ) -> Result<Self> {
        let name = &args.name;
        let mut found = Vec::new();
        for spec in DEMO_TOKENS {
            let secret = cluster
                .get("v1", "Secret", Some(spec.namespace), spec.secret)
                .await?;
            let t = secret
                .map(|s| tokens::from_secret(*spec, &s))
                .transpose()?
                .flatten()
                .with_context(|| {
                    format!(
                        "no token in Secret {}/{}: the demo is not deployed here (run `istio-demo up`)",
                        spec.namespace, spec.secret
                    )
                })?;
            found.push(t);
        }
        let slot = found
            .iter()
            .position(|t| match &t.rotation {
                Some(r) => r.old.name == *name,
                None => t.name == *name,
            })
            .with_context(|| {
                if let Some(r) = found
                    .iter()
                    .filter_map(|t| t.rotation.as_ref())
                    .find(|r| r.new.name == *name)
                {
                    return format!(
                        "{name} is the new token of the rotation of {} under way: run \
                         `istio-demo token rotate {}` to finish it",
                        r.old.name, r.old.name
                    );
                }
                format!(
                    "token {name} is not a demo token with a Secret (the demo's tokens now: {}); \
                     only those can be rotated here",
                    found
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let (new, not_after) = match &found[slot].rotation {
            Some(r) => {
                if args.new_name.as_ref().is_some_and(|n| *n != r.new.name) {
                    bail!(
                        "the rotation of {name} to {} is under way: run without --new-name to finish it",
                        r.new.name
                    );
                }
                (r.new.name.clone(), r.old.not_after.clone())
            }
            None => {
                let new = args.new_name.clone().unwrap_or_else(|| next_name(name));
                token::check_name(&new)?;
                (
                    new,
                    args.overlap
                        .map(|o| rfc3339(now.saturating_add(o.as_secs()))),
                )
            }
        };

        let ns = &args.namespace;
        let mut gate = None;
        for kind in GATE_KINDS {
            let objs = cluster
                .list(GATE_API, kind, Some(ns), None)
                .await
                .map_err(|e| {
                    let plural = format!("{}s.extensions.istio.io", kind.to_ascii_lowercase());
                    usage::classify(e, "list", &plural, ns)
                })?;
            if let Some(found) = objs.into_iter().find_map(|o| {
                usage::gate_of(kind, &o)
                    .filter(|g| g.tokens.contains(name))
                    .map(|g| (g, o, kind))
            }) {
                gate = Some(found);
                break;
            }
        }
        let Some((gate, gate_obj, gate_kind)) = gate else {
            bail!(
                "token {name} is not configured in any WasmPlugin or TrafficExtension of namespace {ns}"
            );
        };
        if found[slot].rotation.is_none()
            && (gate.tokens.contains(&new) || found.iter().any(|t| t.names(&new)))
        {
            bail!(
                "token {new} is already configured in {ns}/{}: pass another --new-name",
                gate.id
            );
        }

        let entry = cluster
            .get(KUSTOMIZE_API, "Kustomization", Some(FLUX_NAMESPACE), SELF_KUSTOMIZATION)
            .await?
            .with_context(|| {
                format!("no Kustomization {FLUX_NAMESPACE}/{SELF_KUSTOMIZATION}: was the demo deployed with `istio-demo up`?")
            })?;
        let path = entry
            .data
            .pointer("/spec/path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let profile = match render::entry_of_path(path) {
            Some((p, SourceKind::Oci)) => p,
            Some((_, SourceKind::Git)) => bail!(
                "the demo is deployed from your Git fork (--source git): rotate by committing the \
                 token list there; `token rotate` changes the OCI artifact that `up` pushes"
            ),
            None => bail!(
                "Kustomization {SELF_KUSTOMIZATION} syncs {path:?}, not an entry point of this repository"
            ),
        };
        Ok(ClusterRotation {
            cluster,
            repo,
            access,
            ns: ns.clone(),
            tokens: found,
            slot,
            gate,
            gate_obj,
            gate_kind,
            profile,
            old: name.clone(),
            new,
            not_after,
            apply_timeout: APPLY_TIMEOUT,
        })
    }

    /// Bounds the waits for Flux and the proxies (tests make it short).
    pub fn with_apply_timeout(mut self, d: Duration) -> Self {
        self.apply_timeout = d;
        self
    }

    fn token(&self) -> &Token {
        &self.tokens[self.slot]
    }

    fn secret_id(&self) -> String {
        let s = self.token().spec;
        format!("Secret {}/{}", s.namespace, s.secret)
    }

    async fn write_secret(&self) -> Result<()> {
        self.cluster
            .apply(&self.token().secret(false))
            .await
            .with_context(|| format!("writing {}", self.secret_id()))?;
        Ok(())
    }

    /// Renders the manifests from the Secrets' state, pushes them, points Flux at them and waits
    /// until the gate carries the list.
    async fn publish(&self, out: &mut dyn Write) -> Result<()> {
        let spec = |p: &str| {
            let data = &self.gate_obj.data;
            data.pointer(&format!("/spec{p}"))
                .or_else(|| data.pointer(&format!("/spec/wasm{p}")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("{}: no spec{p}", self.gate.id))
        };
        // The module as deployed: rotating a token must not change the filter.
        let release = Release {
            image: spec("/url")?,
            digest: spec("/sha256")?,
            tokens: tokens::release_values(&self.tokens),
            gate: tokens::gate_entries(&self.tokens),
        };
        let rendered = render::render_release(&self.repo, self.profile, SourceKind::Oci, &release)?;
        render::refuse_placeholders(rendered.all())?;
        let all: Vec<Value> = rendered.all().map(|m| m.object.clone()).collect();
        tokens::check_backed(&all, &self.tokens)?;
        let (kind, name) = (self.gate_kind, self.gate_obj.name_any());
        let name = name.as_str();
        let is_gate = |o: &Value| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"] == *self.ns
        };
        let rendered_gate: Option<DynamicObject> = all
            .iter()
            .find(|o| is_gate(o))
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .with_context(|| format!("the rendered {}", self.gate.id))?;
        let want = rendered_gate
            .as_ref()
            .and_then(|o| usage::gate_of(kind, o))
            .with_context(|| format!("the rendered manifests have no {}", self.gate.id))?;
        let want_digests = digests_of(all.iter().find(|o| is_gate(o)));
        let synced_by = rendered
            .synced
            .iter()
            .find(|(_, objs)| objs.iter().any(|m| is_gate(&m.object)))
            .map(|(path, _)| path.clone())
            .with_context(|| format!("no Flux Kustomization syncs {}", self.gate.id))?;
        let kustomization = rendered
            .entry
            .iter()
            .find(|m| {
                m.kind() == "Kustomization"
                    && m.object.pointer("/spec/path").and_then(Value::as_str) == Some(&synced_by)
            })
            .map(|m| m.object.clone())
            .with_context(|| format!("no Flux Kustomization has path {synced_by}"))?;

        let payload = up::manifests_payload(&self.repo, &rendered.tree)?;
        let pod = registry::ready_pod(self.cluster).await?;
        let (endpoint, forward) = match &self.access {
            Access::Direct(e) => (e.clone(), None),
            Access::PortForward => {
                let f = registry::forward(self.cluster, &pod).await?;
                (f.addr.to_string(), Some(f))
            }
        };
        let built = artifact::build(&payload.tree, &payload.source, &payload.revision)?;
        let target = format!("{endpoint}/{MANIFESTS_REPOSITORY}:{TAG}");
        let pushed = artifact::push(&built, &target, true)
            .await
            .with_context(|| format!("pushing the manifests to {target}"))?;
        drop(forward);
        if pushed != payload.digest {
            bail!(
                "the registry stored the manifests as {pushed}, expected {}",
                payload.digest
            );
        }
        writeln!(out, "   pushed the manifests {pushed} (registry pod {pod})")?;

        let asked = rfc3339(now_secs());
        let mut source = up::oci_repository(&self.repo, &pushed)?;
        source["metadata"]["annotations"][REQUESTED_AT] = json!(asked);
        self.cluster.apply(&source).await?;
        let ks_name = kustomization["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.cluster
            .merge_patch(
                &kustomization,
                &json!({"metadata": {"annotations": {REQUESTED_AT: asked}}}),
            )
            .await?;
        writeln!(
            out,
            "   OCIRepository {FLUX_NAMESPACE}/{} pinned to it; Kustomization {ks_name} asked to reconcile",
            source["metadata"]["name"].as_str().unwrap_or_default()
        )?;
        out.flush()?;
        self.wait_applied(&kustomization, &pushed).await?;
        self.wait_gate(&want, &want_digests).await?;
        writeln!(
            out,
            "   {} applied: {} carries {}",
            ks_name,
            self.gate.id,
            want.tokens.join(", ")
        )?;
        Ok(())
    }

    /// Polls until `deadline`, with `what` saying what was last seen when it passes.
    async fn until<T>(
        &self,
        what: &str,
        mut check: impl AsyncFnMut() -> Result<Result<T, String>>,
    ) -> Result<T> {
        let start = Instant::now();
        loop {
            match check().await? {
                Ok(v) => return Ok(v),
                Err(seen) if start.elapsed() + self.cluster.poll > self.apply_timeout => bail!(
                    "{what}: not done after {}s ({seen})",
                    self.apply_timeout.as_secs()
                ),
                Err(_) => tokio::time::sleep(self.cluster.poll).await,
            }
        }
    }

    /// The Kustomization has applied the artifact `digest` and is Ready (wait.rs's rule).
    async fn wait_applied(&self, ks: &Value, digest: &str) -> Result<()> {
        let name = ks["metadata"]["name"].as_str().unwrap_or_default();
        self.until(
            &format!("Kustomization {name} applying {digest}"),
            async || {
                let obj = self
                    .cluster
                    .get(KUSTOMIZE_API, "Kustomization", Some(FLUX_NAMESPACE), name)
                    .await?;
                let rev = obj
                    .as_ref()
                    .and_then(|o| o.data.pointer("/status/lastAppliedRevision"))
                    .and_then(Value::as_str)
                    .unwrap_or("none");
                // Flux writes `<tag>@sha256:…`, or the bare digest for a source pinned by digest.
                if !(rev == digest || rev.ends_with(&format!("@{digest}"))) {
                    return Ok(Err(format!("last applied revision {rev}")));
                }
                Ok(match wait::evaluate(wait::Check::Ready, obj.as_ref()) {
                    wait::Progress::Done => Ok(()),
                    wait::Progress::Waiting(w) | wait::Progress::Failed(w) => Err(w),
                })
            },
        )
        .await
    }

    /// The live gate object carries the rendered token list (names and digests).
    async fn wait_gate(&self, want: &Gate, digests: &[String]) -> Result<()> {
        let (kind, name) = (self.gate_kind, self.gate_obj.name_any());
        let name = name.as_str();
        self.until(
            &format!("{} getting the new token list", self.gate.id),
            async || {
                let live = self
                    .cluster
                    .get(GATE_API, kind, Some(&self.ns), name)
                    .await?;
                // In the manifest's shape, which the digest reader takes.
                let manifest = live.as_ref().map(serde_json::to_value).transpose()?;
                let names = live
                    .as_ref()
                    .and_then(|o| usage::gate_of(kind, o))
                    .map(|g| g.tokens);
                Ok(
                    if names.as_ref() == Some(&want.tokens)
                        && digests_of(manifest.as_ref()) == digests
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "it carries {}",
                            names.unwrap_or_default().join(", ")
                        ))
                    },
                )
            },
        )
        .await
    }

    /// Every gated proxy has a series for `name`: its Envoy runs a configuration that knows it
    /// (the filter defines each name's counter when it is configured).
    async fn wait_loaded(&self, name: &str, out: &mut dyn Write) -> Result<()> {
        self.until(&format!("every proxy loading {name}"), async || {
            let mut missing = Vec::new();
            for (pod, stats) in self.stats().await? {
                let counts = stats
                    .and_then(|t| usage::token_counts(&t).map_err(|e| format!("{e:#}")))
                    .map_err(|e| anyhow::anyhow!("{pod}: {e}"))?;
                if !counts.contains_key(name) {
                    missing.push(pod);
                }
            }
            Ok(if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("not yet on {}", missing.join(", ")))
            })
        })
        .await?;
        writeln!(out, "   every proxy of {} has loaded {name}", self.gate.id)?;
        Ok(())
    }

    /// Each gated pod's Prometheus text, or why it could not be read.
    async fn stats(&self) -> Result<Vec<(String, Result<String, String>)>> {
        let pods = verify::running_pods(self.cluster, &self.ns, &self.gate.selector)
            .await
            .map_err(|e| usage::classify(e, "list", "pods", &self.ns))?;
        let mut all = Vec::new();
        for (pod, _) in pods {
            let stats = usage::proxy_stats(self.cluster, &self.ns, &pod).await?;
            all.push((pod, stats));
        }
        Ok(all)
    }
}

/// The `tokens[].sha256` of a gate object, in order.
fn digests_of(obj: Option<&Value>) -> Vec<String> {
    obj.map(|o| tokens::configured_digests(std::slice::from_ref(o)))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, _, sha)| sha)
        .collect()
}

impl CountReader for ClusterRotation<'_> {
    async fn counts(&mut self) -> Result<Counts> {
        Ok(self
            .stats()
            .await?
            .into_iter()
            .map(|(pod, stats)| {
                // No series: this proxy never counted the old name (a count of 0).
                let count = stats
                    .and_then(|t| usage::token_counts(&t).map_err(|e| format!("{e:#}")))
                    .map(|c| c.get(&self.old).copied().unwrap_or(0));
                (pod, count)
            })
            .collect())
    }
}

impl Backend for ClusterRotation<'_> {
    async fn add(&mut self, out: &mut dyn Write) -> Result<()> {
        let (old, new) = (self.old.clone(), self.new.clone());
        match self.token().rotation.as_ref().map(|r| r.step) {
            Some(Step::Switched) => {
                writeln!(
                    out,
                    "   already done: {} records {new} beside {old}",
                    self.secret_id()
                )?;
                return Ok(());
            }
            Some(Step::Added) => writeln!(
                out,
                "   resuming: {} already records {new} beside {old}",
                self.secret_id()
            )?,
            None => {
                let value = token::generate()?;
                let not_after = self.not_after.clone();
                self.tokens[self.slot].begin_rotation(&new, &value, not_after)?;
                self.write_secret().await?;
                let valid = match &self.not_after {
                    Some(t) => format!("valid until {t}"),
                    None => "valid until removed".into(),
                };
                writeln!(
                    out,
                    "   {}: {new} (sha256 {}…) recorded beside {old} ({valid}); the client still reads {old}",
                    self.secret_id(),
                    short(
                        &self
                            .token()
                            .rotation
                            .as_ref()
                            .map(|r| r.new.sha256.clone())
                            .unwrap_or_default()
                    )
                )?;
            }
        }
        // The Secret records the new entry now: a failure from here on is resumed by running the
        // same command again.
        let published = match self.publish(out).await {
            Ok(()) => self.wait_loaded(&new, out).await,
            Err(e) => Err(e),
        };
        published.with_context(|| {
            format!(
                "{} records {new} beside {old}; run `istio-demo token rotate {old}` again to resume",
                self.secret_id()
            )
        })
    }

    async fn hand_over(&mut self, out: &mut dyn Write) -> Result<()> {
        if self.token().rotation.as_ref().map(|r| r.step) == Some(Step::Switched) {
            writeln!(
                out,
                "   already done: {} holds {}",
                self.secret_id(),
                self.new
            )?;
            return Ok(());
        }
        self.tokens[self.slot].switch()?;
        self.write_secret().await?;
        writeln!(
            out,
            "   {} now holds {} (key {}): {} picks it up",
            self.secret_id(),
            self.new,
            tokens::SECRET_KEY,
            self.token().spec.used_by
        )?;
        Ok(())
    }

    async fn remove(&mut self, out: &mut dyn Write) -> Result<Entry> {
        let removed = self.tokens[self.slot].finish_rotation()?;
        self.write_secret().await?;
        writeln!(
            out,
            "   {}: {} no longer recorded",
            self.secret_id(),
            removed.name
        )?;
        self.publish(out).await.with_context(|| {
            format!(
                "{} no longer records {}, but the gate may still carry it: `istio-demo up` renders \
                 and pushes the list the Secrets record",
                self.secret_id(),
                removed.name
            )
        })?;
        Ok(removed)
    }
}
