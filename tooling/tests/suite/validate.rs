//! `istio-demo validate` end to end: the repository's manifests pass, and broken copies of them
//! (made at test time from the real files, so the tests follow the manifests) fail with a message
//! naming the file, the object, the field and the problem.
//!
//! Needs `kubectl` (with kustomize) on PATH or in $KUBECTL, and the pinned schemas in
//! `$ISTIO_DEMO_SCHEMAS` or `<repo>/../shared/schemas`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn schemas() -> PathBuf {
    match std::env::var_os("ISTIO_DEMO_SCHEMAS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo().join("../shared/schemas"),
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// A scratch copy of some of the repository's manifest directories.
struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    fn of(dirs: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in dirs {
            copy_tree(&repo().join(d), &dir.path().join(d));
        }
        Copy { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replaces `from` (which must be present, so a changed manifest breaks the test loudly) by `to`.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(from),
            "{file} no longer contains {from:?}: update this test"
        );
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.path(file), text).unwrap();
    }

    /// Runs `istio-demo validate` on the given directories of this copy.
    fn validate(&self, dirs: &[&str]) -> (i32, String) {
        let paths: Vec<PathBuf> = dirs.iter().map(|d| self.path(d)).collect();
        run(&paths, self.dir.path())
    }
}

fn run(paths: &[PathBuf], cwd: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .arg("validate")
        .arg("--schemas")
        .arg(schemas())
        .args(paths)
        .current_dir(cwd)
        .output()
        .expect("run istio-demo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The error lines of `output` that contain every one of `parts`.
fn expect_error(output: &str, parts: &[&str]) {
    let hit = output
        .lines()
        .any(|l| l.starts_with("error") && parts.iter().all(|p| l.contains(p)));
    assert!(hit, "no error line with {parts:?} in:\n{output}");
}

#[test]
fn the_repository_validates_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemas"])
        .arg(schemas())
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" 0 errors"), "{text}");
    // Every kind the demo uses was really checked: the summary counts objects from all directories.
    let objects: usize = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("validate: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(objects >= 60, "only {objects} objects rendered:\n{text}");
}

#[test]
fn a_misspelt_canary_field_is_caught() {
    let c = Copy::of(&["flagger"]);
    c.edit("flagger/canary.yaml", "stepWeight: 20", "stepWieght: 20");
    let (code, out) = c.validate(&["flagger"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[schema]",
            "flagger/canary.yaml",
            "Canary/demo/httpbin",
            "spec.analysis",
            "'stepWieght' was unexpected",
        ],
    );
}

#[test]
fn an_unknown_metadata_field_in_a_custom_resource_is_caught() {
    let c = Copy::of(&["flagger"]);
    c.edit(
        "flagger/metric-template.yaml",
        "  name: latency-p99\n",
        "  name: latency-p99\n  lables: {a: b}\n",
    );
    let (code, out) = c.validate(&["flagger"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "MetricTemplate/demo/latency-p99",
            "metadata",
            "'lables' was unexpected",
        ],
    );
}

#[test]
fn a_wrong_type_in_a_deployment_is_caught() {
    let c = Copy::of(&["demo"]);
    c.edit(
        "demo/httpbin.yaml",
        "containerPort: 8000",
        "containerPort: eight-thousand",
    );
    let (code, out) = c.validate(&["demo"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[schema]",
            "demo/httpbin.yaml",
            "Deployment/demo/httpbin",
            "spec.template.spec.containers[0].ports[0].containerPort",
            "\"eight-thousand\" is not of type",
        ],
    );
}

#[test]
fn a_removed_api_version_is_caught() {
    let c = Copy::of(&["flagger"]);
    c.edit(
        "flagger/hpa.yaml",
        "apiVersion: autoscaling/v2",
        "apiVersion: autoscaling/v2beta1",
    );
    let (code, out) = c.validate(&["flagger"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "HorizontalPodAutoscaler/demo/httpbin",
            "no schema for apiVersion `autoscaling/v2beta1`",
            "horizontalpodautoscaler-autoscaling-v2",
        ],
    );

    let c = Copy::of(&["istio"]);
    c.edit(
        "istio/system/istiod.yaml",
        "helm.toolkit.fluxcd.io/v2",
        "helm.toolkit.fluxcd.io/v2beta1",
    );
    let (code, out) = c.validate(&["istio/system"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "HelmRelease/istio-system/istiod",
            "serve HelmRelease only as helm.toolkit.fluxcd.io/v2",
        ],
    );
}

#[test]
fn a_clear_token_in_the_wasm_plugin_is_caught() {
    let c = Copy::of(&["istio"]);
    c.edit(
        "istio/wasm/wasmplugin/wasmplugin.yaml",
        "      - name: external\n",
        "      - name: legacy\n        value: test1\n      - name: external\n",
    );
    let (code, out) = c.validate(&["istio/wasm/wasmplugin"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[wasm-plugin]",
            "wasmplugin.yaml",
            "WasmPlugin/demo/rfma-token-gate",
            "spec.pluginConfig.tokens[2].value",
            "clear-text token",
        ],
    );
    // The message never repeats the token.
    assert!(!out.contains("test1"), "{out}");
}

#[test]
fn a_clear_token_in_the_traffic_extension_is_caught() {
    let c = Copy::of(&["istio"]);
    c.edit(
        "istio/wasm/trafficextension/trafficextension.yaml",
        "        - name: external\n",
        "        - name: legacy\n          value: test1\n        - name: external\n",
    );
    let (code, out) = c.validate(&["istio/wasm/trafficextension"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "TrafficExtension/demo/rfma-token-gate",
            "spec.wasm.pluginConfig.tokens[2].value",
            "clear-text token",
        ],
    );
}

#[test]
fn an_unpinned_or_fail_open_wasm_plugin_is_caught() {
    let c = Copy::of(&["istio"]);
    c.edit(
        "istio/wasm/release/filter-release.yaml",
        "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter:latest",
    );
    c.edit(
        "istio/wasm/release/filter-release.yaml",
        "digest: \"0000000000000000000000000000000000000000000000000000000000000000\"",
        "digest: \"\"",
    );
    c.edit(
        "istio/wasm/wasmplugin/wasmplugin.yaml",
        "failStrategy: FAIL_CLOSE",
        "failStrategy: FAIL_OPEN",
    );
    let (code, out) = c.validate(&["istio/wasm/wasmplugin"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "WasmPlugin/demo/rfma-token-gate",
            "spec.sha256",
            "is not pinned",
        ],
    );
    expect_error(
        &out,
        &[
            "WasmPlugin/demo/rfma-token-gate",
            "spec.failStrategy",
            "FAIL_OPEN",
        ],
    );
}

#[test]
fn a_wasm_plugin_that_misses_flaggers_primary_pods_is_caught() {
    let c = Copy::of(&["istio", "demo", "flagger"]);
    c.edit(
        "istio/wasm/wasmplugin/wasmplugin.yaml",
        "istio-demo.dev/token-gate: enabled",
        "app: httpbin",
    );
    let (code, out) = c.validate(&["demo", "flagger", "istio/wasm/wasmplugin"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[wasm-selector]",
            "WasmPlugin/demo/rfma-token-gate",
            "spec.selector.matchLabels",
            "rewrites label `app` to `httpbin-primary`",
        ],
    );
    // And the real selector covers both: same run without the edit is clean of that rule.
    let c = Copy::of(&["istio", "demo", "flagger"]);
    let (_, out) = c.validate(&["demo", "flagger", "istio/wasm/wasmplugin"]);
    assert!(!out.contains("wasm-selector"), "{out}");
}

#[test]
fn unpinned_images_and_missing_limits_are_caught() {
    let c = Copy::of(&["demo"]);
    c.edit(
        "demo/sleep.yaml",
        "docker.io/curlimages/curl:8.11.1",
        "docker.io/curlimages/curl:latest",
    );
    c.edit(
        "demo/httpbin.yaml",
        "docker.io/mccutchen/go-httpbin:v2.18.1",
        "docker.io/mccutchen/go-httpbin",
    );
    c.edit("demo/httpbin.yaml", "              memory: 128Mi\n", "");
    let (code, out) = c.validate(&["demo"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[image-pinned]",
            "Deployment/demo/sleep",
            "containers[0].image",
            "moving tag `latest`",
        ],
    );
    expect_error(
        &out,
        &[
            "error[image-pinned]",
            "Deployment/demo/httpbin",
            "is not pinned",
        ],
    );
    expect_error(
        &out,
        &[
            "error[resources]",
            "Deployment/demo/httpbin",
            "resources.limits.memory",
            "no memory limits",
        ],
    );
}

#[test]
fn duplicate_objects_in_one_kustomization_are_caught() {
    let c = Copy::of(&["demo"]);
    c.write(
        "demo/again.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sleep\n  namespace: demo\nautomountServiceAccountToken: false\n",
    );
    // Kustomize itself refuses exact duplicates; the lint also sees duplicates that differ in
    // apiVersion only, which kustomize lets through.
    c.edit(
        "demo/kustomization.yaml",
        "  - sleep.yaml\n",
        "  - sleep.yaml\n  - again.yaml\n",
    );
    let (code, out) = c.validate(&["demo"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ServiceAccount") && out.contains("sleep"),
        "{out}"
    );

    let files = tempfile::tempdir().unwrap();
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: demo}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: demo}\n";
    std::fs::write(files.path().join("twice.yaml"), text).unwrap();
    let (code, out) = run(&[files.path().join("twice.yaml")], files.path());
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[duplicate-object]",
            "twice.yaml",
            "ConfigMap/demo/a",
            "duplicate object",
        ],
    );
}

#[test]
fn the_old_tutorial_bugs_are_caught() {
    let c = Copy::of(&["demo", "flagger", "istio"]);
    c.edit("flagger/canary.yaml", "      - mesh\n", "");
    c.edit(
        "flagger/canary.yaml",
        "      retryOn: \"5xx,connect-failure,reset\"\n",
        "",
    );
    c.edit(
        "demo/httpbin.yaml",
        "spec:\n  selector:\n    matchLabels:\n      app: httpbin",
        "spec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: httpbin",
    );
    c.edit(
        "demo/sleep.yaml",
        "  labels:\n    app: sleep\nspec:",
        "  labels:\n    app: sleep\n  annotations:\n    sidecar.istio.io/inject: \"true\"\nspec:",
    );
    c.write(
        "istio/extra-vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: httpbin\n  namespace: demo\nspec:\n  hosts: [httpbin]\n  http:\n    - route:\n        - destination: {host: httpbin}\n      retries: {attempts: 3}\n",
    );
    c.edit(
        "istio/kustomization.yaml",
        "  - gateway.yaml\n",
        "  - gateway.yaml\n  - extra-vs.yaml\n",
    );
    let (code, out) = c.validate(&["demo", "flagger", "istio"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[canary-mesh-gateway]",
            "Canary/demo/httpbin",
            "spec.service.gateways",
        ],
    );
    expect_error(
        &out,
        &[
            "error[retry-on]",
            "Canary/demo/httpbin",
            "spec.service.retries.retryOn",
        ],
    );
    expect_error(
        &out,
        &[
            "error[retry-on]",
            "VirtualService/demo/httpbin",
            "spec.http[0].retries.retryOn",
        ],
    );
    expect_error(
        &out,
        &[
            "error[canary-owns-replicas]",
            "Deployment/demo/httpbin",
            "spec.replicas",
        ],
    );
    expect_error(
        &out,
        &[
            "error[canary-owns-routing]",
            "VirtualService/demo/httpbin",
            "spec.hosts",
        ],
    );
    expect_error(
        &out,
        &[
            "error[inject-annotation]",
            "Deployment/demo/sleep",
            "pod template",
        ],
    );
}

#[test]
fn security_context_rules_are_enforced() {
    let c = Copy::of(&["demo", "elk", "istio"]);
    c.edit(
        "demo/sleep.yaml",
        "            allowPrivilegeEscalation: false\n",
        "",
    );
    c.edit(
        "demo/sleep.yaml",
        "              drop: [\"ALL\"]",
        "              drop: [\"NET_RAW\"]",
    );
    c.edit(
        "demo/httpbin.yaml",
        "            runAsNonRoot: true\n            runAsUser: 65532",
        "            runAsUser: 0",
    );
    c.edit(
        "demo/httpbin.yaml",
        "            readOnlyRootFilesystem: true\n",
        "",
    );
    c.edit("demo/httpbin.yaml", "      automountServiceAccountToken: false\n      securityContext:", "      automountServiceAccountToken: false\n      hostNetwork: true\n      securityContext:");
    c.edit(
        "elk/filebeat.yaml",
        "              mountPath: /var/log/pods\n              readOnly: true\n",
        "              mountPath: /var/log/pods\n",
    );
    c.edit(
        "elk/elasticsearch.yaml",
        "            - name: ELASTIC_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: elastic-credentials\n                  key: elastic-password\n",
        "            - name: ELASTIC_PASSWORD\n              value: changeme\n",
    );
    c.edit("elk/kibana.yaml", "    lint.istio-demo.dev/reason: \"Kibana writes optimizer and plugin state under its install directory.\"\n", "");
    c.edit(
        "istio/peer-authentication.yaml",
        "mode: STRICT",
        "mode: PERMISSIVE",
    );
    let (code, out) = c.validate(&["demo", "elk", "istio"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "Deployment/demo/sleep",
            "securityContext.allowPrivilegeEscalation",
        ],
    );
    expect_error(
        &out,
        &[
            "Deployment/demo/sleep",
            "securityContext.capabilities.drop",
            "drop ALL",
        ],
    );
    expect_error(
        &out,
        &[
            "Deployment/demo/httpbin",
            "securityContext.runAsNonRoot",
            "non-root",
        ],
    );
    expect_error(
        &out,
        &[
            "Deployment/demo/httpbin",
            "securityContext.readOnlyRootFilesystem",
        ],
    );
    expect_error(
        &out,
        &[
            "error[host-network]",
            "Deployment/demo/httpbin",
            "spec.template.spec.hostNetwork",
        ],
    );
    expect_error(
        &out,
        &[
            "error[hostpath-readonly]",
            "DaemonSet/logging/filebeat",
            "volumeMounts[3].readOnly",
            "varlogpods",
        ],
    );
    expect_error(
        &out,
        &[
            "error[secret-env]",
            "StatefulSet/logging/elasticsearch",
            "ELASTIC_PASSWORD",
        ],
    );
    expect_error(
        &out,
        &[
            "error[elastic-password-secret]",
            "StatefulSet/logging/elasticsearch",
        ],
    );
    expect_error(
        &out,
        &[
            "error[security-context]",
            "Deployment/logging/kibana",
            "needs a reason",
        ],
    );
    expect_error(
        &out,
        &[
            "error[peer-authentication-strict]",
            "PeerAuthentication/demo/default",
            "spec.mtls.mode",
            "PERMISSIVE",
        ],
    );
    assert!(
        !out.contains("changeme"),
        "a literal password must not be echoed:\n{out}"
    );
}

#[test]
fn a_kustomize_failure_is_reported_with_its_directory() {
    let c = Copy::of(&["demo"]);
    c.edit(
        "demo/kustomization.yaml",
        "  - sleep.yaml\n",
        "  - sleep.yaml\n  - missing.yaml\n",
    );
    let (code, out) = c.validate(&["demo"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("error[load]")
            && l.contains("demo")
            && l.contains("missing.yaml")),
        "{out}"
    );
}

#[test]
fn a_missing_schema_folder_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemas", "/nonexistent/schemas"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/schemas") && err.contains("--schemas"),
        "{err}"
    );
}

#[test]
fn a_plugin_config_the_filter_would_refuse_is_caught() {
    let c = Copy::of(&["istio"]);
    c.edit(
        "istio/wasm/wasmplugin/wasmplugin.yaml",
        "      - path_prefix: /status/",
        "      - path_prefix: status/",
    );
    let (code, out) = c.validate(&["istio/wasm/wasmplugin"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[wasm-plugin-config]",
            "WasmPlugin/demo/rfma-token-gate",
            "spec.pluginConfig.bypass[0].path_prefix",
            "refuse",
        ],
    );

    let c = Copy::of(&["istio"]);
    c.edit(
        "istio/wasm/trafficextension/trafficextension.yaml",
        "      header: x-rfma-token",
        "      header: \"x rfma token\"",
    );
    let (code, out) = c.validate(&["istio/wasm/trafficextension"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[wasm-plugin-config]",
            "TrafficExtension/demo/rfma-token-gate",
            "spec.wasm.pluginConfig.header",
        ],
    );
}

#[test]
fn unpinned_charts_and_broken_flux_wiring_are_caught() {
    let c = Copy::of(&[
        "registry",
        "flux",
        "istio",
        "demo",
        "flagger",
        "monitoring",
        "elk",
    ]);
    c.edit(
        "istio/system/istiod.yaml",
        "      version: 1.30.3",
        "      version: \">=1.30.0\"",
    );
    c.edit(
        "flux/apps/apps.yaml",
        "path: ./istio/authorization/stage-4-allow-get-with-token",
        "path: ./istio/authorization/stage-5",
    );
    c.edit(
        "flux/apps/apps.yaml",
        "    - name: flagger-system\n",
        "    - name: flagger\n",
    );
    // A git entry point whose self-sync names a directory that does not exist.
    c.edit(
        "flux/clusters/git-minimal/kustomization.yaml",
        "value: ./flux/clusters/git-minimal",
        "value: ./flux/clusters/git-minimall",
    );
    // A HelmRelease reading a HelmRepository that is not declared.
    c.edit(
        "istio/system/istiod.yaml",
        "        name: istio\n",
        "        name: istio-charts\n",
    );
    let (code, out) = c.validate(&["flux", "istio/system"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[chart-pinned]",
            "HelmRelease/istio-system/istiod",
            "spec.chart.spec.version",
            "`>=1.30.0` is not pinned",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-path]",
            "Kustomization/flux-system/istio-demo",
            "`./flux/clusters/git-minimall`",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-source]",
            "HelmRelease/istio-system/istiod",
            "spec.chart.spec.sourceRef",
            "HelmRepository/istio-system/istio-charts",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-path]",
            "flux/apps/apps.yaml",
            "Kustomization/flux-system/authorization",
            "spec.path",
            "./istio/authorization/stage-5",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-dependency]",
            "Kustomization/flux-system/canary",
            "spec.dependsOn[0]",
            "Kustomization/flux-system/flagger",
        ],
    );
}

#[test]
fn the_whole_repository_run_requires_namespaces_and_strict_mtls() {
    let c = Copy::of(&[
        "registry",
        "flux",
        "istio",
        "demo",
        "flagger",
        "monitoring",
        "elk",
    ]);
    // Make the copy look like the repository root, so `validate` without PATH checks all of it.
    std::fs::create_dir_all(c.path("tooling")).unwrap();
    c.write("tooling/Cargo.toml", "[package]\nname = \"stand-in\"\n");
    c.edit(
        "istio/kustomization.yaml",
        "  - peer-authentication.yaml\n",
        "",
    );
    c.edit(
        "monitoring/prometheus.yaml",
        "  namespace: monitoring",
        "  namespace: monitorring",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .arg("validate")
        .arg("--schemas")
        .arg(schemas())
        .current_dir(c.path("demo"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    expect_error(
        &text,
        &[
            "error[namespace-exists]",
            "HelmRelease/monitorring/prometheus",
            "`monitorring`",
        ],
    );
    expect_error(
        &text,
        &[
            "error[required-object]",
            "PeerAuthentication/demo",
            "STRICT",
        ],
    );
}

#[test]
fn a_policy_that_misses_flaggers_primary_pods_is_caught() {
    let c = Copy::of(&["istio", "demo", "flagger"]);
    c.edit(
        "istio/telemetry.yaml",
        "istio-demo.dev/token-gate: enabled",
        "app: httpbin",
    );
    c.edit(
        "istio/authorization/base/allow-ingress-gateway.yaml",
        "istio-demo.dev/token-gate: enabled",
        "app: httpbin",
    );
    let (code, out) = c.validate(&["demo", "flagger", "istio"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[canary-selector]",
            "Telemetry/demo/httpbin-rfma-access-log",
            "spec.selector.matchLabels",
            "primary (production) pods",
        ],
    );
    expect_error(
        &out,
        &[
            "error[canary-selector]",
            "AuthorizationPolicy/demo/httpbin-allow-ingress-gateway",
            "`httpbin-primary`",
        ],
    );
    assert!(!out.contains("error[wasm-selector]"), "{out}");
}

#[test]
fn help_explains_paths_schemas_and_exit_status() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "[PATHS]",
        "--schemas <DIR>",
        "ISTIO_DEMO_SCHEMAS",
        "shared/schemas",
        "Exit status",
        "field path",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemaz", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schemaz"));
}

#[test]
fn render_returns_applyable_objects_with_their_source_files() {
    let objects = istio_demo::manifests::render(&repo().join("elk")).unwrap();
    let by_id = |id: &str| {
        objects
            .iter()
            .find(|m| m.id() == id)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    let job = by_id("Job/logging/elastic-bootstrap");
    assert!(
        job.source.ends_with("elk/bootstrap.yaml"),
        "{}",
        job.source.display()
    );
    assert!(job.source.is_absolute());
    let generated = objects
        .iter()
        .find(|m| m.kind() == "ConfigMap" && m.name().starts_with("filebeat-config-"))
        .unwrap();
    assert!(
        generated.source.ends_with("elk/kustomization.yaml"),
        "{}",
        generated.source.display()
    );
    for m in &objects {
        assert!(
            m.annotation("config.kubernetes.io/origin").is_none(),
            "{} keeps kustomize's origin annotation",
            m.id()
        );
        // An annotations map emptied by removing the origin is removed too.
        if let Some(a) = m.object.pointer("/metadata/annotations") {
            assert!(
                !a.as_object().unwrap().is_empty(),
                "{} has an empty annotations map",
                m.id()
            );
        }
    }
    // The Job's own annotation survives; the namespace transformer ran.
    assert_eq!(
        job.annotation("kustomize.toolkit.fluxcd.io/force"),
        Some("enabled")
    );
    assert!(
        objects
            .iter()
            .filter(|m| m.kind() != "ClusterRole"
                && m.kind() != "ClusterRoleBinding"
                && m.kind() != "Namespace")
            .all(|m| m.namespace() == Some("logging"))
    );
    // A directory without a kustomization is an error naming it.
    let err = istio_demo::manifests::render(&repo().join("elk/files"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("elk/files") && err.contains("kustomization"),
        "{err}"
    );
}

#[test]
fn each_authorization_stage_keeps_its_own_policy_and_never_locks_out_gateway_or_load_tester() {
    let stages = [
        "stage-1-deny-all",
        "stage-2-allow-demo-namespace",
        "stage-3-allow-get",
        "stage-4-allow-get-with-token",
    ];
    let mut own: Vec<(String, PathBuf)> = Vec::new();
    for stage in stages {
        let objects =
            istio_demo::manifests::render(&repo().join("istio/authorization").join(stage)).unwrap();
        assert!(
            objects
                .iter()
                .all(|m| m.kind() == "AuthorizationPolicy" && m.namespace() == Some("demo"))
        );
        let principals: String = objects
            .iter()
            .map(|m| m.object["spec"].to_string())
            .collect();
        for caller in [
            "cluster.local/ns/istio-ingress/sa/istio-ingressgateway",
            "cluster.local/ns/flagger-system/sa/flagger-loadtester",
        ] {
            assert!(
                principals.contains(caller),
                "{stage} does not allow {caller}"
            );
        }
        let deny_all = objects
            .iter()
            .find(|m| m.name() == "demo-deny-all")
            .unwrap_or_else(|| panic!("{stage} has no default deny"));
        assert_eq!(deny_all.object["spec"], serde_json::json!({}));
        let extra: Vec<_> = objects
            .iter()
            .filter(|m| !m.source.to_string_lossy().contains("/base/"))
            .collect();
        if stage == "stage-1-deny-all" {
            assert!(extra.is_empty(), "stage 1 is the base alone");
        } else {
            assert_eq!(extra.len(), 1, "{stage}: one policy of its own");
            assert!(extra[0].source.parent().unwrap().ends_with(stage));
            own.push((extra[0].name().to_string(), extra[0].source.clone()));
        }
    }
    let mut names: Vec<_> = own.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        3,
        "stages 2-4 must have distinct names: {own:?}"
    );
}

#[test]
fn a_tcp_connection_pool_in_the_canary_is_caught() {
    // Flagger 1.44's Canary has only `http` connection-pool limits; the API server would silently
    // prune `tcp`, leaving a circuit breaker that never trips. validate makes it an error.
    let c = Copy::of(&["flagger"]);
    c.edit(
        "flagger/canary.yaml",
        "      connectionPool:\n        http:\n",
        "      connectionPool:\n        tcp:\n          maxConnections: 1\n        http:\n",
    );
    let (code, out) = c.validate(&["flagger"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[schema]",
            "Canary/demo/httpbin",
            "spec.service.trafficPolicy.connectionPool",
            "'tcp' was unexpected",
        ],
    );
}

#[test]
fn retries_that_skip_a_500_are_caught() {
    // gateway-error covers 502-504 only: a 500 would still never be retried.
    let c = Copy::of(&["flagger"]);
    c.edit(
        "flagger/canary.yaml",
        "retryOn: \"5xx,connect-failure,reset\"",
        "retryOn: \"gateway-error,connect-failure\"",
    );
    let (code, out) = c.validate(&["flagger"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[retry-on]",
            "Canary/demo/httpbin",
            "spec.service.retries.retryOn",
            "never retry a 500",
        ],
    );
}

/// `istio-demo validate -` with `stream` on stdin.
fn validate_stream(stream: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "--schemas"])
        .arg(schemas())
        .arg("-")
        .current_dir(repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run istio-demo");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// What a deploy of the minimal profile applies, as one YAML stream, rendered from a copy of the
/// repository whose release template carries well-formed (made-up) digests, as `istio-demo up`
/// renders it: the registry, the OCIRepository, the entry point and every path it syncs.
fn rendered_stream(release: &[(&str, &str)]) -> String {
    let c = Copy::of(&[
        "registry",
        "flux",
        "istio",
        "demo",
        "flagger",
        "monitoring",
        "elk",
    ]);
    for (from, to) in release {
        c.edit("istio/wasm/release/filter-release.yaml", from, to);
    }
    let render = |rel: &str| istio_demo::manifests::render(&c.path(rel)).unwrap();
    let mut objects = render("registry");
    objects.extend(render("flux/sources/oci"));
    let entry = render("flux/clusters/minimal");
    for k in entry.iter().filter(|m| m.kind() == "Kustomization") {
        let path = k.object["spec"]["path"].as_str().unwrap();
        if path != "./flux/clusters/minimal" {
            objects.extend(render(path.trim_start_matches("./")));
        }
    }
    objects.extend(entry);
    objects
        .iter()
        .map(|m| serde_yaml_ng::to_string(&m.object).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn digest_of(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// The release template's values, replaced by real-looking ones.
fn real_release() -> Vec<(String, String)> {
    let zeros = "0".repeat(64);
    let module = digest_of("module");
    vec![
        (format!("@sha256:{zeros}"), format!("@sha256:{module}")),
        (
            format!("digest: \"{zeros}\""),
            format!("digest: \"{module}\""),
        ),
        (
            format!("{}1\"", &zeros[1..]),
            format!("{}\"", digest_of("sleep")),
        ),
        (
            format!("{}2\"", &zeros[1..]),
            format!("{}\"", digest_of("loadtester")),
        ),
        (
            format!("{}3\"", &zeros[1..]),
            format!("{}\"", digest_of("external")),
        ),
    ]
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[test]
fn a_rendered_stream_without_placeholders_validates_from_stdin() {
    let release = real_release();
    let stream = rendered_stream(&as_refs(&release));
    assert!(
        !stream.contains(&"0".repeat(64)),
        "the release was not rendered"
    );
    let (code, out) = validate_stream(&stream);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 errors, 0 warnings"), "{out}");
    assert!(out.contains("from stdin"), "{out}");
}

#[test]
fn a_placeholder_in_a_stream_is_an_error_naming_object_and_field() {
    // The release template as it is in Git: its zero digests reach the WasmPlugin.
    let (code, out) = validate_stream(&rendered_stream(&[]));
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "<stdin>",
            "WasmPlugin/demo/rfma-token-gate",
            "spec.url",
            "digest (zeros)",
        ],
    );
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "WasmPlugin/demo/rfma-token-gate",
            "spec.pluginConfig.tokens[1].sha256",
        ],
    );
    assert!(!out.contains("warning[placeholder]"), "{out}");

    // A rendered stream with the old fork URL in a GitRepository, and the same stream without the
    // OCIRepository its Kustomizations read.
    let release = real_release();
    let stream = rendered_stream(&as_refs(&release));
    let git = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: fork\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://github.com/your-org/istio-demo\n  ref:\n    branch: main\n";
    let (code, out) = validate_stream(&format!("{stream}---\n{git}"));
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "GitRepository/flux-system/fork",
            "spec.url",
            "`your-org`",
        ],
    );
    let without_source: Vec<&str> = stream
        .split("---\n")
        .filter(|doc| !doc.lines().any(|l| l == "kind: OCIRepository"))
        .collect();
    let (code, out) = validate_stream(&without_source.join("---\n"));
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[flux-source]",
            "Kustomization/flux-system/istio-demo",
            "spec.sourceRef",
            "OCIRepository/flux-system/istio-demo",
        ],
    );
}

#[test]
fn stdin_is_the_only_path_when_given() {
    let out = Command::new(env!("CARGO_BIN_EXE_istio-demo"))
        .args(["validate", "-", "demo"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`-`"));
    let (code, out) = validate_stream("apiVersion: v1\nkind: [not, a, kind]\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error[load]") && out.contains("<stdin>"),
        "{out}"
    );
}

#[test]
fn in_the_repository_only_the_release_template_may_hold_placeholders() {
    // The template's zeros are warnings that say who renders them.
    let c = Copy::of(&["istio"]);
    let (code, out) = c.validate(&["istio/wasm/wasmplugin"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("warning[placeholder]")
            && l.contains("WasmPlugin/demo/rfma-token-gate")
            && l.contains("spec.sha256")
            && l.contains("`istio-demo up` renders")),
        "{out}"
    );
    // The same placeholder anywhere else is an error: nothing renders it.
    let c = Copy::of(&["flux"]);
    c.write(
        "flux/sources/oci/git.yaml",
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: istio-demo\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://github.com/your-org/istio-demo\n  ref:\n    branch: main\n",
    );
    c.edit(
        "flux/sources/oci/kustomization.yaml",
        "  - ocirepository.yaml\n",
        "  - ocirepository.yaml\n  - git.yaml\n",
    );
    let (code, out) = c.validate(&["flux/sources"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[placeholder]",
            "flux/sources/oci/git.yaml",
            "GitRepository/flux-system/istio-demo",
            "spec.url",
            "`your-org`",
        ],
    );
}
