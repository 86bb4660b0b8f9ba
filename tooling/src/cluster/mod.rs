//! Talking to the cluster for `up`, `status`, `verify` and `down`: discovery of dynamic kinds,
//! server-side apply with one field manager, waits with timeouts that explain themselves, deletes,
//! and exec into a named container.
//!
//! Discovery is per group-version (`/api/v1`, `/apis/<group>/<version>`) and cached; after new CRDs
//! are Established, [`Cluster::refresh_discovery`] drops the cache so their kinds resolve.

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, AttachParams, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Longest a command run by exec may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

/// The one field manager every write uses.
pub const FIELD_MANAGER: &str = "istio-demo";
/// Label put on namespaces `up` creates; `down` deletes only namespaces carrying it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "istio-demo";

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

/// A kind the API server serves.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// What an apply did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// Changed, with the paths of what changed (e.g. `spec.url`).
    Configured(Vec<String>),
    Unchanged,
    /// Dry run only: the kind is not served yet (its CRD is applied earlier in the plan).
    KindPending,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured(paths) if !paths.is_empty() => {
                return write!(f, "configured ({})", paths.join(", "));
            }
            Outcome::Configured(_) => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::KindPending => "created (kind served once its CRD is established)",
        })
    }
}

/// `Kind/namespace/name` or `Kind/name`.
pub fn object_id(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("?");
    let name = obj["metadata"]["name"].as_str().unwrap_or("?");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Output of a command run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// Exit code (0 on success); `None` when the API did not report one.
    pub code: Option<i32>,
}

/// (kind, plural, namespaced) of a served resource.
type ServedKind = (String, String, bool);

/// A cluster connection with a discovery cache.
pub struct Cluster {
    pub client: Client,
    pub dry_run: bool,
    /// How often waits poll.
    pub poll: Duration,
    cache: Mutex<HashMap<String, Option<Vec<ServedKind>>>>,
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Cluster {
    pub fn new(client: Client, dry_run: bool) -> Self {
        Cluster {
            client,
            dry_run,
            poll: Duration::from_secs(2),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets what discovery found, so kinds of newly established CRDs resolve.
    pub fn refresh_discovery(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Resolves `apiVersion` + `kind` to a served resource, or `None` when the server does not serve it.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(api_version)
            .cloned();
        let list = match cached {
            Some(l) => l,
            None => {
                let answer = if api_version.contains('/') {
                    self.client.list_api_group_resources(api_version).await
                } else {
                    self.client.list_core_api_resources(api_version).await
                };
                let list = match answer {
                    Ok(l) => Some(
                        l.resources
                            .into_iter()
                            .filter(|r| !r.name.contains('/'))
                            .map(|r| (r.kind, r.name, r.namespaced))
                            .collect::<Vec<_>>(),
                    ),
                    Err(e) if is_not_found(&e) => None,
                    Err(e) => return Err(e).with_context(|| format!("discovery of {api_version}")),
                };
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(api_version.to_string(), list.clone());
                list
            }
        };
        let Some(list) = list else { return Ok(None) };
        let Some((kind, plural, namespaced)) = list.into_iter().find(|(k, _, _)| k == kind) else {
            return Ok(None);
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Ok(Some(Resolved {
            resource: ApiResource {
                group: group.to_string(),
                version: version.to_string(),
                api_version: api_version.to_string(),
                kind,
                plural,
            },
            namespaced,
        }))
    }

    async fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Option<Api<DynamicObject>>> {
        let Some(r) = self.resolve(api_version, kind).await? else {
            return Ok(None);
        };
        Ok(Some(match (r.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &r.resource),
            (true, None) => bail!("{kind} is namespaced but the object has no metadata.namespace"),
            (false, _) => Api::all_with(self.client.clone(), &r.resource),
        }))
    }

    /// Reads an object; `None` when it (or its kind) does not exist.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let Some(api) = self.api_for(api_version, kind, namespace).await? else {
            return Ok(None);
        };
        match api.get(name).await {
            Ok(o) => Ok(Some(serde_json::to_value(o)?)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {kind}/{name}")),
        }
    }

    /// Lists objects of a kind (all namespaces when `namespace` is `None` for a namespaced kind).
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Vec<Value>> {
        let Some(r) = self.resolve(api_version, kind).await? else {
            return Ok(Vec::new());
        };
        let api: Api<DynamicObject> = match (r.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &r.resource),
            _ => Api::all_with(self.client.clone(), &r.resource),
        };
        let mut lp = ListParams::default();
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        let list = api
            .list(&lp)
            .await
            .with_context(|| format!("listing {kind}"))?;
        list.items
            .into_iter()
            .map(|o| Ok(serde_json::to_value(o)?))
            .collect()
    }

    /// Server-side apply with [`FIELD_MANAGER`] and `force`; a server-side dry run when `dry_run`.
    pub async fn apply(&self, obj: &Value) -> Result<Outcome> {
        let id = object_id(obj);
        let api_version = obj["apiVersion"]
            .as_str()
            .ok_or_else(|| anyhow!("{id}: no apiVersion"))?;
        let kind = obj["kind"]
            .as_str()
            .ok_or_else(|| anyhow!("{id}: no kind"))?;
        let name = obj["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("{id}: no metadata.name"))?;
        let ns = obj["metadata"]["namespace"].as_str();
        let Some(api) = self.api_for(api_version, kind, ns).await? else {
            if self.dry_run {
                return Ok(Outcome::KindPending);
            }
            bail!(
                "{id}: the API server does not serve {kind} in {api_version} (is its CRD installed and established?)"
            );
        };
        let before = match api.get(name).await {
            Ok(o) => Some(serde_json::to_value(o)?),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e).with_context(|| format!("reading {id}")),
        };
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if self.dry_run {
            params = params.dry_run();
        }
        let after = api
            .patch(name, &params, &Patch::Apply(obj))
            .await
            .with_context(|| format!("applying {id}"))?;
        let after = serde_json::to_value(after)?;
        Ok(match before {
            None => Outcome::Created,
            Some(b) if comparable(&b) == comparable(&after) => Outcome::Unchanged,
            Some(b) => {
                Outcome::Configured(changed_paths(&comparable(&b), &comparable(&after), "", 3))
            }
        })
    }

    /// A JSON merge patch of `patch` onto the object named by `obj` (apiVersion, kind, metadata);
    /// `false` when it is not there. For a field another manager owns or we must not take over
    /// with server-side apply (e.g. `spec.suspend` of a Kustomization we applied whole).
    pub async fn merge_patch(&self, obj: &Value, patch: &Value) -> Result<bool> {
        let id = object_id(obj);
        let (Some(api_version), Some(kind), Some(name)) = (
            obj["apiVersion"].as_str(),
            obj["kind"].as_str(),
            obj["metadata"]["name"].as_str(),
        ) else {
            bail!("{id}: apiVersion, kind and metadata.name are needed to patch it");
        };
        let Some(api) = self
            .api_for(api_version, kind, obj["metadata"]["namespace"].as_str())
            .await?
        else {
            return Ok(false);
        };
        let mut params = PatchParams::default();
        if self.dry_run {
            params = params.dry_run();
        }
        match api.patch(name, &params, &Patch::Merge(patch)).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("patching {id}")),
        }
    }

    /// Deletes an object; `false` when it was not there.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool> {
        let Some(api) = self.api_for(api_version, kind, namespace).await? else {
            return Ok(false);
        };
        let mut dp = DeleteParams::background();
        if self.dry_run {
            dp = dp.dry_run();
        }
        match api.delete(name, &dp).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("deleting {kind}/{name}")),
        }
    }

    /// The newest Events about an object (at most `limit`), one line each.
    pub async fn events(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let api: Api<Event> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let lp = ListParams::default().fields(&format!(
            "involvedObject.kind={kind},involvedObject.name={name}"
        ));
        let mut events = api.list(&lp).await.context("listing events")?.items;
        let when = |e: &Event| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default()
        };
        events.sort_by_key(when);
        let skip = events.len().saturating_sub(limit);
        Ok(events
            .iter()
            .skip(skip)
            .map(|e| {
                format!(
                    "{} {} {} (x{}): {}",
                    when(e),
                    e.type_.as_deref().unwrap_or("?"),
                    e.reason.as_deref().unwrap_or("?"),
                    e.count.unwrap_or(1),
                    e.message.as_deref().unwrap_or("").trim()
                )
            })
            .collect())
    }

    /// Runs `command` in `container` of `pod` (the container is always named); gives up after
    /// [`EXEC_TIMEOUT`].
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<ExecOutput> {
        match tokio::time::timeout(
            EXEC_TIMEOUT,
            self.exec_unbounded(namespace, pod, container, command),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => bail!(
                "exec in {namespace}/{pod} container {container}: no answer within {}s",
                EXEC_TIMEOUT.as_secs()
            ),
        }
    }

    async fn exec_unbounded(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<ExecOutput> {
        use tokio::io::AsyncReadExt;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let ap = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut proc = pods
            .exec(
                pod,
                command.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &ap,
            )
            .await
            .with_context(|| format!("exec in {namespace}/{pod} container {container}"))?;
        let mut out = proc
            .stdout()
            .ok_or_else(|| anyhow!("exec: no stdout stream"))?;
        let mut err = proc
            .stderr()
            .ok_or_else(|| anyhow!("exec: no stderr stream"))?;
        let status = proc.take_status();
        let mut so = Vec::new();
        let mut se = Vec::new();
        let (r1, r2) = tokio::join!(out.read_to_end(&mut so), err.read_to_end(&mut se));
        r1?;
        r2?;
        let code = match status {
            Some(s) => s.await.map(|st| exit_code(&st)),
            None => None,
        };
        proc.join().await.context("exec session")?;
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&so).into(),
            stderr: String::from_utf8_lossy(&se).into(),
            code,
        })
    }
}

/// The exit code from an exec `Status`: 0 on Success, the `ExitCode` cause otherwise.
pub fn exit_code(st: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
    if st.status.as_deref() == Some("Success") {
        return 0;
    }
    st.details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_ref())
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
}

/// Dotted paths where `a` and `b` differ, descending into objects at most `depth` levels.
pub fn changed_paths(a: &Value, b: &Value, prefix: &str, depth: usize) -> Vec<String> {
    if a == b {
        return Vec::new();
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth > 0 => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    changed_paths(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        &path,
                        depth - 1,
                    )
                })
                .collect()
        }
        _ => vec![if prefix.is_empty() {
            "(object)".to_string()
        } else {
            prefix.to_string()
        }],
    }
}

/// An object without the fields the server changes on every write, for "unchanged" detection.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "managedFields",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            m.remove(k);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(
            parse_duration("5x")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(
            parse_duration("m")
                .unwrap_err()
                .to_string()
                .contains("expected a number")
        );
        assert!(
            parse_duration("5m3")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
    }

    #[test]
    fn changed_paths_name_what_changed() {
        let a = json!({"spec": {"url": "a", "ref": {"branch": "main"}, "interval": "1m"}, "metadata": {"labels": {"x": "1"}}});
        let b = json!({"spec": {"url": "b", "ref": {"branch": "dev"}, "interval": "1m"}, "metadata": {"labels": {"x": "1", "y": "2"}}});
        assert_eq!(
            changed_paths(&a, &b, "", 3),
            ["metadata.labels.y", "spec.ref.branch", "spec.url"]
        );
        assert_eq!(changed_paths(&a, &b, "", 1), ["metadata", "spec"]);
        assert!(changed_paths(&a, &a, "", 3).is_empty());
        assert_eq!(
            Outcome::Configured(vec!["spec.url".into()]).to_string(),
            "configured (spec.url)"
        );
    }

    #[test]
    fn exit_codes() {
        let st: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
            serde_json::from_value(json!({
                "status": "Failure", "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}
            }))
            .unwrap();
        assert_eq!(exit_code(&st), 7);
        let ok: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
            serde_json::from_value(json!({"status": "Success"})).unwrap();
        assert_eq!(exit_code(&ok), 0);
    }
}
