//! The project's rules for its manifests, beyond what a schema can say. Each rule has a name
//! (shown as `error[<rule>]`) and names the object and field it objects to.
//!
//! Per kustomization ([`lint_kustomization`]): `duplicate-object`.
//! Per object ([`lint_object`]): `image-pinned`, `resources`, `wasm-plugin`, `wasm-plugin-config`
//! (the filter's own configuration parser accepts `pluginConfig`), `security-context`,
//! `host-network`, `hostpath-readonly`, `secret-env`, `elastic-password-secret`, `inject-annotation`,
//! `retry-on`, `peer-authentication-strict`, `canary-mesh-gateway`.
//! Across every object of a run ([`lint_set`]): `wasm-selector` (the WasmPlugin covers Flagger's
//! primary and canary pods), `canary-selector` (so does every other Istio policy that selects
//! the canaried pods), `canary-owns-replicas`, `canary-owns-routing`, `hpa-cpu-requests`,
//! `flux-dependency`, `flux-source`, and, when the run is the whole repository (or a rendered
//! stream), `namespace-exists` and `required-object` (a STRICT PeerAuthentication for `demo`, a
//! WasmPlugin for httpbin).
//! Per object also: `chart-pinned` (a HelmRelease names an exact chart version).
//! Per kustomization rendered from files ([`flux_paths`]): `flux-path`.
//! Placeholders ([`placeholders`]): `placeholder`, an error in a rendered stream; in the repository
//! ([`placeholders_in_repository`]) a warning where the release template puts them.
//!
//! Exceptions: a workload may carry the annotation [`ALLOW_ANNOTATION`] with a comma-separated
//! list from [`ALLOWABLE`] *and* a non-empty [`REASON_ANNOTATION`]; nothing else can be waived.

use super::{Finding, Manifest, Severity};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Annotation listing the waived security rules of one workload.
pub const ALLOW_ANNOTATION: &str = "lint.istio-demo.dev/allow";
/// Annotation that must explain a waiver.
pub const REASON_ANNOTATION: &str = "lint.istio-demo.dev/reason";
/// The rules a workload may waive (with a reason): running as root, a writable root filesystem.
pub const ALLOWABLE: &[&str] = &["run-as-root", "writable-rootfs"];
/// The namespace whose mTLS must be STRICT and whose httpbin the filter gates.
pub const DEMO_NAMESPACE: &str = "demo";
/// Label keys Flagger rewrites on primary pods (its `-selector-labels` default), in its order.
pub const FLAGGER_SELECTOR_LABELS: &[&str] = &["app", "name", "app.kubernetes.io/name"];
/// A digest starting with 32 zeros marks a value of the release template that `istio-demo up`
/// fills in (the all-zero module digest, and the token digests `0…01`, `0…02`, …); no real
/// SHA-256 starts so.
pub const PLACEHOLDER_PREFIX: &str = "00000000000000000000000000000000";
/// Placeholder texts that must never reach a cluster: the old example registry and the old fork owner.
pub const PLACEHOLDER_TEXTS: &[&str] = &["registry.example.com", "your-org"];

/// Namespaces that exist without this repository creating them.
pub const PROVIDED_NAMESPACES: &[&str] = &["flux-system", "kube-system", "default"];

/// What a run covers: the whole repository (so required objects must exist) or some paths; and
/// whether the objects come from a YAML stream (`validate -`) rather than from files in a tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct LintOptions {
    pub whole_repository: bool,
    /// A rendered stream: no directory to resolve a Flux `spec.path` in (`flux-path` is skipped),
    /// and every Flux source must be in the stream (`flux-source`), since `up` applies it too.
    pub stream: bool,
}

/// No two objects share apiVersion group, kind, namespace and name in one kustomization.
pub fn lint_kustomization(manifests: &[Manifest]) -> Vec<Finding> {
    let mut seen: HashMap<(String, String, String, String), &Manifest> = HashMap::new();
    let mut findings = Vec::new();
    for m in manifests {
        let key = (
            m.group().to_string(),
            m.kind().to_string(),
            m.namespace().unwrap_or("").to_string(),
            m.name().to_string(),
        );
        if let Some(first) = seen.get(&key) {
            findings.push(Finding::error(
                "duplicate-object",
                m,
                "metadata.name",
                format!(
                    "duplicate object: {} is also declared in {} (one would silently replace the other)",
                    m.id(),
                    super::display_path(&first.source)
                ),
            ));
        } else {
            seen.insert(key, m);
        }
    }
    findings
}

/// The JSON pointer of the pod spec of a workload kind, if it is one.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some("/spec/template/spec")
        }
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Pod" => Some("/spec"),
        _ => None,
    }
}

/// Every rule that looks at one object alone.
pub fn lint_object(m: &Manifest) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(pointer) = pod_spec_pointer(m.kind()) {
        if let Some(pod) = m.object.pointer(pointer) {
            lint_pod(m, pointer, pod, &mut out);
        }
        if m.annotation("sidecar.istio.io/inject").is_some() {
            out.push(Finding::error(
                "inject-annotation",
                m,
                "metadata.annotations.sidecar.istio.io/inject",
                "`sidecar.istio.io/inject` on the workload does nothing: put it on the pod template (spec.template.metadata), or label the namespace",
            ));
        }
    }
    match (m.group(), m.kind()) {
        ("extensions.istio.io", "WasmPlugin") => {
            lint_wasm(m, "spec", m.object.get("spec"), &mut out)
        }
        ("extensions.istio.io", "TrafficExtension") => {
            lint_wasm(m, "spec.wasm", m.object.pointer("/spec/wasm"), &mut out)
        }
        ("helm.toolkit.fluxcd.io", "HelmRelease") => {
            let version = m
                .object
                .pointer("/spec/chart/spec/version")
                .and_then(Value::as_str);
            if m.object.pointer("/spec/chart").is_some() && !version.is_some_and(is_exact_version) {
                out.push(Finding::error(
                    "chart-pinned",
                    m,
                    "spec.chart.spec.version",
                    format!(
                        "chart version {} is not pinned: give an exact version such as 1.2.3 (no range, no wildcard)",
                        version.map_or("(none)".to_string(), |v| format!("`{v}`"))
                    ),
                ));
            }
        }
        ("networking.istio.io", "VirtualService") => {
            for (i, route) in array(&m.object, "/spec/http").iter().enumerate() {
                check_retries(
                    m,
                    &format!("spec.http[{i}].retries"),
                    route.get("retries"),
                    &mut out,
                );
            }
        }
        ("flagger.app", "Canary") => {
            check_retries(
                m,
                "spec.service.retries",
                m.object.pointer("/spec/service/retries"),
                &mut out,
            );
            if let Some(gateways) = m
                .object
                .pointer("/spec/service/gateways")
                .and_then(Value::as_array)
                && !gateways.iter().any(|g| g == "mesh")
            {
                out.push(Finding::error(
                        "canary-mesh-gateway",
                        m,
                        "spec.service.gateways",
                        "gateways must include `mesh`, or in-mesh traffic never follows the canary weights",
                    ));
            }
        }
        ("security.istio.io", "PeerAuthentication") if m.namespace() == Some(DEMO_NAMESPACE) => {
            let mode = m
                .object
                .pointer("/spec/mtls/mode")
                .and_then(Value::as_str)
                .unwrap_or("UNSET");
            if mode != "STRICT" {
                out.push(Finding::error(
                    "peer-authentication-strict",
                    m,
                    "spec.mtls.mode",
                    format!("mTLS in namespace `{DEMO_NAMESPACE}` must be STRICT, found {mode}"),
                ));
            }
            if let Some(ports) = m
                .object
                .pointer("/spec/portLevelMtls")
                .and_then(Value::as_object)
            {
                for (port, setting) in ports {
                    let mode = setting
                        .get("mode")
                        .and_then(Value::as_str)
                        .unwrap_or("UNSET");
                    if mode != "STRICT" {
                        out.push(Finding::error(
                            "peer-authentication-strict",
                            m,
                            format!("spec.portLevelMtls.{port}.mode"),
                            format!(
                                "port {port} weakens mTLS to {mode} in namespace `{DEMO_NAMESPACE}`"
                            ),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

fn array<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn check_retries(m: &Manifest, path: &str, retries: Option<&Value>, out: &mut Vec<Finding>) {
    let Some(retries) = retries else { return };
    let attempts = retries.get("attempts").and_then(Value::as_i64).unwrap_or(0);
    let retry_on = retries.get("retryOn").and_then(Value::as_str).unwrap_or("");
    if attempts > 0 && !retry_on.split(',').any(|c| c.trim() == "5xx") {
        out.push(Finding::error(
            "retry-on",
            m,
            format!("{path}.retryOn"),
            "retries without `retryOn` covering 5xx never retry a 500: use e.g. `5xx,connect-failure,reset`",
        ));
    }
}

fn allowed(m: &Manifest) -> Vec<String> {
    m.annotation(ALLOW_ANNOTATION)
        .map(|a| {
            a.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn lint_pod(m: &Manifest, pointer: &str, pod: &Value, out: &mut Vec<Finding>) {
    let base = super::field_path(pointer);
    let waived = allowed(m);
    if !waived.is_empty() {
        if let Some(bad) = waived.iter().find(|w| !ALLOWABLE.contains(&w.as_str())) {
            out.push(Finding::error(
                "security-context",
                m,
                format!("metadata.annotations.{ALLOW_ANNOTATION}"),
                format!("`{bad}` cannot be waived (only {})", ALLOWABLE.join(", ")),
            ));
        }
        if m.annotation(REASON_ANNOTATION)
            .is_none_or(|r| r.trim().is_empty())
        {
            out.push(Finding::error(
                "security-context",
                m,
                format!("metadata.annotations.{REASON_ANNOTATION}"),
                format!("a waiver in {ALLOW_ANNOTATION} needs a reason in {REASON_ANNOTATION}"),
            ));
        }
    }
    let waives = |rule: &str| waived.iter().any(|w| w == rule);
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod.get(field) == Some(&Value::Bool(true)) {
            out.push(Finding::error(
                "host-network",
                m,
                format!("{base}.{field}"),
                format!("{field} must not be enabled"),
            ));
        }
    }
    let pod_non_root = pod.pointer("/securityContext/runAsNonRoot") == Some(&Value::Bool(true));
    let pod_user = pod
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64);

    // hostPath volumes, by name, so their mounts can be checked.
    let host_volumes: Vec<&str> = array(pod, "/volumes")
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();

    for list in ["initContainers", "containers"] {
        for (i, c) in array(pod, &format!("/{list}")).iter().enumerate() {
            let at = format!("{base}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            // image-pinned
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            if let Err(why) = image_pinned(image) {
                out.push(Finding::error(
                    "image-pinned",
                    m,
                    format!("{at}.image"),
                    format!("container `{name}`: {why}"),
                ));
            }
            // resources
            for section in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    if c.pointer(&format!("/resources/{section}/{resource}"))
                        .is_none()
                    {
                        out.push(Finding::error(
                            "resources",
                            m,
                            format!("{at}.resources.{section}.{resource}"),
                            format!("container `{name}` has no {resource} {section}"),
                        ));
                    }
                }
            }
            // security-context
            let sc = c.get("securityContext");
            let get = |p: &str| sc.and_then(|s| s.pointer(p));
            if get("/allowPrivilegeEscalation") != Some(&Value::Bool(false)) {
                out.push(Finding::error(
                    "security-context",
                    m,
                    format!("{at}.securityContext.allowPrivilegeEscalation"),
                    format!("container `{name}` must set allowPrivilegeEscalation: false"),
                ));
            }
            if get("/privileged") == Some(&Value::Bool(true)) {
                out.push(Finding::error(
                    "security-context",
                    m,
                    format!("{at}.securityContext.privileged"),
                    format!("container `{name}` must not be privileged"),
                ));
            }
            let drops_all = get("/capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|c| c == "ALL"));
            if !drops_all {
                out.push(Finding::error(
                    "security-context",
                    m,
                    format!("{at}.securityContext.capabilities.drop"),
                    format!("container `{name}` must drop ALL capabilities"),
                ));
            }
            if let Some(add) = get("/capabilities/add")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
            {
                out.push(Finding::error(
                    "security-context",
                    m,
                    format!("{at}.securityContext.capabilities.add"),
                    format!("container `{name}` adds capabilities {add:?}"),
                ));
            }
            let non_root = get("/runAsNonRoot").map_or(pod_non_root, |v| v == &Value::Bool(true));
            let user = get("/runAsUser").and_then(Value::as_i64).or(pod_user);
            if !waives("run-as-root") && (!non_root || user == Some(0)) {
                out.push(Finding::error(
                    "security-context",
                    m,
                    format!("{at}.securityContext.runAsNonRoot"),
                    format!("container `{name}` must run as non-root (runAsNonRoot: true and a non-zero runAsUser)"),
                ));
            }
            if !waives("writable-rootfs")
                && get("/readOnlyRootFilesystem") != Some(&Value::Bool(true))
            {
                out.push(Finding::error(
                    "security-context",
                    m,
                    format!("{at}.securityContext.readOnlyRootFilesystem"),
                    format!("container `{name}` must have a read-only root filesystem"),
                ));
            }
            // hostpath-readonly
            for (j, mount) in array(c, "/volumeMounts").iter().enumerate() {
                let volume = mount.get("name").and_then(Value::as_str).unwrap_or("");
                if host_volumes.contains(&volume)
                    && mount.get("readOnly") != Some(&Value::Bool(true))
                {
                    out.push(Finding::error(
                        "hostpath-readonly",
                        m,
                        format!("{at}.volumeMounts[{j}].readOnly"),
                        format!("container `{name}` mounts hostPath volume `{volume}` writable"),
                    ));
                }
            }
            // secret-env
            for (j, env) in array(c, "/env").iter().enumerate() {
                let var = env.get("name").and_then(Value::as_str).unwrap_or("");
                let upper = var.to_ascii_uppercase();
                let sensitive = ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY"]
                    .iter()
                    .any(|w| upper.contains(w));
                let literal = env
                    .get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty());
                if sensitive && literal {
                    out.push(Finding::error(
                        "secret-env",
                        m,
                        format!("{at}.env[{j}].value"),
                        format!("`{var}` looks like a credential: take it from a Secret (valueFrom.secretKeyRef), never a literal"),
                    ));
                }
            }
            // elastic-password-secret
            let wanted = if image.contains("/elasticsearch/elasticsearch")
                || image.starts_with("elasticsearch:")
            {
                Some("ELASTIC_PASSWORD")
            } else if image.contains("/kibana/kibana") || image.starts_with("kibana:") {
                Some("ELASTICSEARCH_PASSWORD")
            } else {
                None
            };
            if let Some(var) = wanted {
                let from_secret = array(c, "/env").iter().any(|e| {
                    e.get("name").and_then(Value::as_str) == Some(var)
                        && e.pointer("/valueFrom/secretKeyRef").is_some()
                });
                if !from_secret {
                    out.push(Finding::error(
                        "elastic-password-secret",
                        m,
                        format!("{at}.env"),
                        format!("container `{name}` must take {var} from a Secret (valueFrom.secretKeyRef)"),
                    ));
                }
            }
        }
    }
}

/// An exact semantic version (`1.30.3`, `v1.44.0`, `2.0.0-rc.1`), not a range or wildcard.
pub fn is_exact_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, pre) = v.split_once('-').unwrap_or((v, ""));
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// `Ok` when `image` names a tag other than `latest`, or a digest.
pub fn image_pinned(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("no image".into());
    }
    if let Some((_, digest)) = image.split_once("@sha256:") {
        return if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(format!("image `{image}` has a malformed sha256 digest"))
        };
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Err(format!(
            "image `{image}` is not pinned: add a version tag or a digest"
        )),
        Some((_, "latest")) => Err(format!(
            "image `{image}` uses the moving tag `latest`: pin a version"
        )),
        Some((_, "")) => Err(format!("image `{image}` has an empty tag")),
        Some(_) => Ok(()),
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn lint_wasm(m: &Manifest, base: &str, spec: Option<&Value>, out: &mut Vec<Finding>) {
    let Some(spec) = spec else {
        out.push(Finding::error(
            "wasm-plugin",
            m,
            base,
            "no wasm plugin specification",
        ));
        return;
    };
    let tokens = spec
        .pointer("/pluginConfig/tokens")
        .and_then(Value::as_array);
    for (i, token) in tokens.map_or(&[][..], Vec::as_slice).iter().enumerate() {
        if token.get("value").is_some() {
            out.push(Finding::error(
                "wasm-plugin",
                m,
                format!("{base}.pluginConfig.tokens[{i}].value"),
                "clear-text token in Git: replace `value` with `sha256` (istio-demo token hash)",
            ));
        }
        if let Some(digest) = token.get("sha256")
            && !digest.as_str().is_some_and(is_hex64)
        {
            out.push(Finding::error(
                "wasm-plugin",
                m,
                format!("{base}.pluginConfig.tokens[{i}].sha256"),
                "token digest must be 64 lowercase hex digits",
            ));
        }
    }
    // The filter's own parser decides: a configuration it refuses denies every request.
    if let Some(config) = spec.get("pluginConfig") {
        let text = serde_json::to_vec(config).unwrap_or_default();
        if let Err(e) = rfma_filter::config::parse(&text) {
            let path = if e.field == "configuration" {
                format!("{base}.pluginConfig")
            } else {
                format!("{base}.pluginConfig.{}", e.field)
            };
            out.push(Finding::error(
                "wasm-plugin-config",
                m,
                path,
                format!(
                    "the filter would refuse this configuration (and so refuse every request): {}",
                    e.message
                ),
            ));
        }
    }
    if spec.get("failStrategy").and_then(Value::as_str) == Some("FAIL_OPEN") {
        out.push(Finding::error(
            "wasm-plugin",
            m,
            format!("{base}.failStrategy"),
            "FAIL_OPEN lets every request through unchecked once the module fails: use FAIL_CLOSE or FAIL_RELOAD",
        ));
    }
    let url = spec.get("url").and_then(Value::as_str).unwrap_or("");
    let url_digest = url.split_once("@sha256:").map(|(_, d)| d);
    let sha = spec
        .get("sha256")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match (url_digest, sha) {
        (None, None) => out.push(Finding::error(
            "wasm-plugin",
            m,
            format!("{base}.sha256"),
            format!("module `{url}` is not pinned: set `sha256` or reference the image by digest (@sha256:...)"),
        )),
        (Some(d), Some(s)) if d != s => out.push(Finding::error(
            "wasm-plugin",
            m,
            format!("{base}.sha256"),
            format!("`sha256` {s} differs from the digest in the url ({d})"),
        )),
        _ => {}
    }
    for digest in url_digest.into_iter().chain(sha) {
        // A placeholder digest is well-formed: `placeholders` reports it.
        if !is_hex64(digest) {
            out.push(Finding::error(
                "wasm-plugin",
                m,
                format!("{base}.url"),
                format!("malformed digest `{digest}`"),
            ));
        }
    }
}

fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod labels of Flagger's primary copy of a Deployment: the template's labels, with the
/// value of the first of [`FLAGGER_SELECTOR_LABELS`] found in the Deployment's selector
/// rewritten to `<value>-primary`, and without Flux's `*toolkit.fluxcd.io*` labels (as Flagger's
/// `makePrimaryLabels` does). Returns the rewritten key too.
pub fn flagger_primary_labels(deployment: &Manifest) -> (BTreeMap<String, String>, Option<String>) {
    let mut labels = labels_of(deployment.object.pointer("/spec/template/metadata/labels"));
    // Flagger also drops Flux's own labels (keys containing `toolkit.fluxcd.io`) from primary pods.
    labels.retain(|k, _| !k.contains("toolkit.fluxcd.io"));
    let selector = labels_of(deployment.object.pointer("/spec/selector/matchLabels"));
    let key = FLAGGER_SELECTOR_LABELS
        .iter()
        .find(|k| selector.contains_key(**k))
        .map(|k| k.to_string());
    if let Some(k) = &key
        && let Some(v) = selector.get(k)
    {
        labels.insert(k.clone(), format!("{v}-primary"));
    }
    (labels, key)
}

/// Rules that relate objects to each other, over everything a run loaded.
pub fn lint_set(all: &[Manifest], options: LintOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    let find = |kind: &str, ns: Option<&str>, name: &str| {
        all.iter()
            .find(|m| m.kind() == kind && m.namespace() == ns && m.name() == name)
    };
    let canaries: Vec<&Manifest> = all
        .iter()
        .filter(|m| m.group() == "flagger.app" && m.kind() == "Canary")
        .collect();
    let plugins: Vec<&Manifest> = all
        .iter()
        .filter(|m| {
            m.group() == "extensions.istio.io"
                && matches!(m.kind(), "WasmPlugin" | "TrafficExtension")
        })
        .collect();

    let mut gated = false;
    for canary in &canaries {
        let target = canary
            .object
            .pointer("/spec/targetRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(deployment) = find("Deployment", canary.namespace(), target) else {
            continue;
        };
        // canary-owns-replicas (old bug 3): the HPA, through Flagger, owns the replica count.
        if deployment.object.pointer("/spec/replicas").is_some() {
            out.push(Finding::error(
                "canary-owns-replicas",
                deployment,
                "spec.replicas",
                format!("{} is canaried by {}: leave `replicas` out (the HPA owns it), or Flux and Flagger fight over it", deployment.id(), canary.id()),
            ));
        }
        // canary-owns-routing: Flagger generates the VirtualService and DestinationRules.
        let service = canary
            .object
            .pointer("/spec/service/name")
            .and_then(Value::as_str)
            .unwrap_or(target);
        let ns = canary.namespace().unwrap_or("default");
        let hosts = [
            service.to_string(),
            format!("{service}.{ns}"),
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}.svc.cluster.local"),
        ];
        for m in all.iter().filter(|m| m.group() == "networking.istio.io") {
            let claimed = match m.kind() {
                "VirtualService" => {
                    array(&m.object, "/spec/hosts")
                        .iter()
                        .any(|h| h.as_str().is_some_and(|h| hosts.contains(&h.to_string())))
                        && m.namespace() == canary.namespace()
                }
                "DestinationRule" => m
                    .object
                    .pointer("/spec/host")
                    .and_then(Value::as_str)
                    .is_some_and(|h| {
                        hosts[1..].contains(&h.to_string())
                            || (h == service && m.namespace() == canary.namespace())
                    }),
                _ => false,
            };
            if claimed {
                out.push(Finding::error(
                    "canary-owns-routing",
                    m,
                    if m.kind() == "VirtualService" { "spec.hosts" } else { "spec.host" },
                    format!("{} routes the service canaried by {}: put timeouts, retries and traffic policy in the Canary's spec.service", m.id(), canary.id()),
                ));
            }
        }
        // wasm-selector: the filter must gate the primary pods as well as the canary pods.
        let canary_labels = labels_of(deployment.object.pointer("/spec/template/metadata/labels"));
        let (primary_labels, rewritten) = flagger_primary_labels(deployment);
        // Every Istio policy with a workload selector must treat primary and canary pods alike:
        // a selector on the label Flagger rewrites covers only the canary pods.
        for object in all.iter().filter(|o| o.namespace() == canary.namespace()) {
            let (pointer, field) = match (object.group(), object.kind()) {
                ("extensions.istio.io", "WasmPlugin" | "TrafficExtension")
                | (
                    "security.istio.io",
                    "AuthorizationPolicy" | "PeerAuthentication" | "RequestAuthentication",
                )
                | ("telemetry.istio.io", "Telemetry") => {
                    ("/spec/selector/matchLabels", "spec.selector.matchLabels")
                }
                ("networking.istio.io", "Sidecar" | "EnvoyFilter") => (
                    "/spec/workloadSelector/labels",
                    "spec.workloadSelector.labels",
                ),
                _ => continue,
            };
            let Some(selector) = object.object.pointer(pointer) else {
                continue;
            };
            let selector = labels_of(Some(selector));
            if !selects(&selector, &canary_labels) {
                continue; // selects some other workload
            }
            let is_plugin = object.group() == "extensions.istio.io";
            let covers_primary = selects(&selector, &primary_labels);
            gated |= is_plugin && covers_primary;
            if !covers_primary {
                let key = rewritten.clone().unwrap_or_default();
                let consequence = if is_plugin {
                    "so production traffic would be ungated"
                } else {
                    "so the primary (production) pods would not get this policy"
                };
                out.push(Finding::error(
                    if is_plugin { "wasm-selector" } else { "canary-selector" },
                    object,
                    field,
                    format!(
                        "selects the canary pods of {} but not the primary ones: Flagger rewrites label `{key}` to `{}` on primary pods, {consequence}; select on a label Flagger leaves alone",
                        deployment.id(),
                        primary_labels.get(&key).cloned().unwrap_or_default()
                    ),
                ));
            }
        }
    }

    // hpa-cpu-requests (old bug 4): a CPU utilisation target needs CPU requests on every container.
    for hpa in all.iter().filter(|m| m.kind() == "HorizontalPodAutoscaler") {
        let uses_cpu = array(&hpa.object, "/spec/metrics")
            .iter()
            .any(|metric| metric.pointer("/resource/name") == Some(&Value::from("cpu")));
        let target = hpa
            .object
            .pointer("/spec/scaleTargetRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let (true, Some(d)) = (uses_cpu, find("Deployment", hpa.namespace(), target)) {
            let missing = array(&d.object, "/spec/template/spec/containers")
                .iter()
                .any(|c| c.pointer("/resources/requests/cpu").is_none());
            if missing {
                out.push(Finding::error(
                    "hpa-cpu-requests",
                    hpa,
                    "spec.metrics",
                    format!(
                        "scales on CPU but {} has a container without CPU requests",
                        d.id()
                    ),
                ));
            }
        }
    }

    flux_rules(all, options, &mut out);

    if options.whole_repository {
        // namespace-exists: every namespace used is created by the repository (or by Flux itself).
        let created: Vec<&str> = all
            .iter()
            .filter(|m| m.kind() == "Namespace")
            .map(|m| m.name())
            .collect();
        for m in all {
            if let Some(ns) = m.namespace()
                && !created.contains(&ns)
                && !PROVIDED_NAMESPACES.contains(&ns)
            {
                out.push(Finding::error(
                    "namespace-exists",
                    m,
                    "metadata.namespace",
                    format!(
                        "namespace `{ns}` is not created by any manifest (nor by Flux or Kubernetes)"
                    ),
                ));
            }
        }

        let strict = all.iter().any(|m| {
            m.kind() == "PeerAuthentication"
                && m.namespace() == Some(DEMO_NAMESPACE)
                && m.object.pointer("/spec/selector").is_none()
                && m.object.pointer("/spec/mtls/mode").and_then(Value::as_str) == Some("STRICT")
        });
        if !strict {
            out.push(Finding {
                severity: Severity::Error,
                rule: "required-object",
                source: Default::default(),
                object: format!("PeerAuthentication/{DEMO_NAMESPACE}/*"),
                path: String::new(),
                message: format!("no namespace-wide PeerAuthentication with mtls.mode STRICT in `{DEMO_NAMESPACE}`"),
            });
        }
        if !gated {
            out.push(Finding {
                severity: Severity::Error,
                rule: "wasm-selector",
                source: Default::default(),
                object: "WasmPlugin/*".into(),
                path: String::new(),
                message: "no WasmPlugin or TrafficExtension selects both the primary and the canary pods of a canaried Deployment".into(),
            });
        }
        if canaries.is_empty() || plugins.is_empty() {
            out.push(Finding {
                severity: Severity::Error,
                rule: "required-object",
                source: Default::default(),
                object: "WasmPlugin+Canary".into(),
                path: String::new(),
                message: "the repository must have a Canary and a WasmPlugin for it, so the selector check can run".into(),
            });
        }
    }
    out
}

/// Flux wiring: `dependsOn` names an object that exists (`flux-dependency`), and a source
/// reference names a source that exists (`flux-source`). In the repository, the Kustomizations'
/// GitRepository is exempt: `istio-demo up --source git` generates it from --git-url (and no entry
/// point may contain it, or Flux's self-sync would revert the URL); in a stream it must be there.
fn flux_rules(all: &[Manifest], options: LintOptions, out: &mut Vec<Finding>) {
    for m in all {
        let group = m.group();
        if group != "kustomize.toolkit.fluxcd.io" && group != "helm.toolkit.fluxcd.io" {
            continue;
        }
        for (i, dep) in array(&m.object, "/spec/dependsOn").iter().enumerate() {
            let name = dep.get("name").and_then(Value::as_str).unwrap_or("");
            let ns = dep
                .get("namespace")
                .and_then(Value::as_str)
                .or(m.namespace());
            let found = all.iter().any(|o| {
                o.group() == group
                    && o.kind() == m.kind()
                    && o.name() == name
                    && o.namespace() == ns
            });
            if !found {
                out.push(Finding::error(
                    "flux-dependency",
                    m,
                    format!("spec.dependsOn[{i}]"),
                    format!("depends on {}/{}/{name}, which no manifest declares: it would never become ready", m.kind(), ns.unwrap_or("")),
                ));
            }
        }
        let (pointer, field) = match m.kind() {
            "Kustomization" => ("/spec/sourceRef", "spec.sourceRef"),
            "HelmRelease" => ("/spec/chart/spec/sourceRef", "spec.chart.spec.sourceRef"),
            _ => continue,
        };
        let Some(source) = m.object.pointer(pointer) else {
            continue;
        };
        let kind = source.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = source.get("name").and_then(Value::as_str).unwrap_or("");
        let ns = source
            .get("namespace")
            .and_then(Value::as_str)
            .or(m.namespace());
        if !options.stream && m.kind() == "Kustomization" && kind == "GitRepository" {
            continue;
        }
        let found = all.iter().any(|o| {
            o.group() == "source.toolkit.fluxcd.io"
                && o.kind() == kind
                && o.name() == name
                && o.namespace() == ns
        });
        if !found {
            out.push(Finding::error(
                "flux-source",
                m,
                field,
                format!(
                    "reads {kind}/{}/{name}, which no manifest declares: it would never reconcile",
                    ns.unwrap_or("")
                ),
            ));
        }
    }
}

/// `flux-path`: every Flux Kustomization in `manifests` (one kustomization's objects, from files)
/// points at a directory holding a kustomization, looked up from the directory of the file that
/// declares it and each of its ancestors: the source's root is the repository root, whatever the
/// source kind (the OCI artifact `up` pushes has the repository's layout). Runs per kustomization,
/// so every entry point's own self-sync path is checked, not just the first one seen.
pub fn flux_paths(manifests: &[Manifest]) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in manifests {
        if m.group() != "kustomize.toolkit.fluxcd.io" || m.kind() != "Kustomization" {
            continue;
        }
        let path = m
            .object
            .pointer("/spec/path")
            .and_then(Value::as_str)
            .unwrap_or("./");
        let rel = path.trim_start_matches("./").trim_start_matches('/');
        let exists = m
            .source
            .ancestors()
            .skip(1)
            .any(|dir| super::is_kustomization(&dir.join(rel)));
        if !exists {
            out.push(Finding::error(
                "flux-path",
                m,
                "spec.path",
                format!("`{path}` is not a directory with a kustomization in this repository"),
            ));
        }
    }
    out
}

/// Placeholders in any string of any object: [`PLACEHOLDER_TEXTS`], or a 64-hex-digit run that
/// starts with [`PLACEHOLDER_PREFIX`] (the all-zero digest and its `0…01`-style siblings). Each is
/// an error (`placeholder`) naming the file, the object and the field: deployed, a placeholder
/// module reference pulls nothing and the gate fails closed on every request, a placeholder token
/// digest matches no token, and a placeholder URL fetches nothing. This is the rule for a rendered
/// stream; [`placeholders_in_repository`] is the repository's.
pub fn placeholders(manifests: &[Manifest]) -> Vec<Finding> {
    placeholder_findings(manifests, false)
}

/// [`placeholders`] for the repository as it is in Git, where the release template's values are
/// placeholders on purpose: in the WasmPlugin and TrafficExtension (which copy them from
/// istio/wasm/release/filter-release.yaml) they are warnings, since `istio-demo up` renders them;
/// anywhere else nothing renders them, so they stay errors.
pub fn placeholders_in_repository(manifests: &[Manifest]) -> Vec<Finding> {
    placeholder_findings(manifests, true)
}

fn placeholder_findings(manifests: &[Manifest], template_warns: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in manifests {
        let from_template = template_warns
            && m.group() == "extensions.istio.io"
            && matches!(m.kind(), "WasmPlugin" | "TrafficExtension");
        let mut found = Vec::new();
        find_placeholders(&m.object, String::new(), &mut found);
        for (pointer, what) in found {
            let path = super::field_path(&pointer);
            out.push(if from_template {
                Finding::warning(
                    "placeholder",
                    m,
                    path,
                    format!("placeholder {what} from the release template istio/wasm/release/filter-release.yaml: `istio-demo up` renders the real value (check its output with `istio-demo validate -`)"),
                )
            } else {
                Finding::error(
                    "placeholder",
                    m,
                    path,
                    format!("placeholder {what}: deployed, it pulls or matches nothing (a placeholder module makes the gate deny every request); render the real value first, as `istio-demo up` does"),
                )
            });
        }
    }
    out
}

fn find_placeholders(v: &Value, pointer: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            for text in PLACEHOLDER_TEXTS {
                if s.contains(text) {
                    out.push((pointer.clone(), format!("`{text}`")));
                }
            }
            if has_placeholder_digest(s) {
                out.push((pointer, "digest (zeros)".to_string()));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_placeholders(item, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                find_placeholders(item, format!("{pointer}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// A run of exactly 64 hex digits starting with [`PLACEHOLDER_PREFIX`] somewhere in `s`.
fn has_placeholder_digest(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_hexdigit())
        .any(|run| run.len() == 64 && run.starts_with(PLACEHOLDER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(object: Value) -> Manifest {
        Manifest {
            source: "f.yaml".into(),
            object,
        }
    }

    #[test]
    fn placeholder_digests_are_64_hex_digits_starting_with_32_zeros() {
        let zeros = "0".repeat(64);
        assert!(has_placeholder_digest(&zeros));
        assert!(has_placeholder_digest(&format!("{}3", &zeros[1..])));
        assert!(has_placeholder_digest(&format!("oci://r/x@sha256:{zeros}")));
        // A real digest, a longer hex run, and a short run of zeros are not placeholders.
        let real = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(!has_placeholder_digest(real));
        assert!(!has_placeholder_digest(&format!("{zeros}0")));
        assert!(!has_placeholder_digest("replicas: 0000"));
    }

    #[test]
    fn placeholders_name_the_field_and_are_warnings_only_in_the_template_s_targets() {
        let plugin = manifest(serde_json::json!({
            "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "p", "namespace": "demo"},
            "spec": {"url": format!("oci://registry.example.com/f@sha256:{}", "0".repeat(64))}}));
        let source = manifest(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "g", "namespace": "flux-system"},
            "spec": {"url": "https://github.com/your-org/x"}}));
        let objects = [plugin, source];
        let strict = placeholders(&objects);
        assert_eq!(strict.len(), 3, "{strict:?}");
        assert!(strict.iter().all(|f| f.severity == Severity::Error));
        assert!(strict.iter().any(|f| f.object == "WasmPlugin/demo/p"
            && f.path == "spec.url"
            && f.message.contains("registry.example.com")));
        let repo = placeholders_in_repository(&objects);
        let severity = |object: &str| {
            repo.iter()
                .filter(|f| f.object == object)
                .map(|f| f.severity)
                .collect::<Vec<_>>()
        };
        assert_eq!(severity("WasmPlugin/demo/p"), [Severity::Warning; 2]);
        assert_eq!(severity("GitRepository/flux-system/g"), [Severity::Error]);
    }
}
