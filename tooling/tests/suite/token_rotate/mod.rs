//! `istio-demo token rotate NAME` against kube's tower-test mock and a real registry on loopback:
//! the token Secrets written step by step, the re-rendered manifests pushed as a Flux artifact and
//! the OCIRepository pinned to it, Flux's answer (applied revision, the gate's list), the proxies'
//! counters read through the pod proxy until quiet, then the removal. Time is a manual clock, so
//! a ten-minute quiet period costs nothing; the API's replies that depend on what the command
//! computed (the artifact's digest, the Secrets it wrote) are made from the conversation.

use crate::support::registry::{Registry, start_registry};
use crate::support::*;
use base64::Engine;
use istio_demo::cluster::Cluster;
use istio_demo::commands::token::rotate::{self, RotateArgs, engine::ManualClock};
use istio_demo::deploy::registry::Access;
use istio_demo::deploy::tokens::{self, DEMO_TOKENS, Token};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod sandbox;
mod show;
mod stops;
mod up_keeps;

const PODS: &str = "/api/v1/namespaces/demo/pods";
const REGISTRY_PODS: &str = "/api/v1/namespaces/istio-demo-registry/pods";
const WASMPLUGINS: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/demo/wasmplugins";
const KS: &str = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations";
const OCIREPO: &str =
    "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/ocirepositories/istio-demo";

fn secret_path(t: &Token) -> String {
    format!(
        "/api/v1/namespaces/{}/secrets/{}",
        t.spec.namespace, t.spec.secret
    )
}

fn args(name: &str) -> RotateArgs {
    RotateArgs {
        name: name.into(),
        kube: Default::default(),
        namespace: "demo".into(),
        new_name: None,
        overlap: None,
        quiet_for: Duration::from_secs(20),
        timeout: Duration::from_secs(30),
        dry_run: false,
        repo: None,
        sandbox: false,
        state_dir: None,
    }
}

/// The three demo tokens as `up` left them.
fn deployed() -> Vec<Token> {
    DEMO_TOKENS
        .iter()
        .map(|s| tokens::fresh(*s).unwrap())
        .collect()
}

/// The gate as Flux applied it from `secrets` (each slot's entries, in the template's order).
fn gate_from(secrets: &[Value]) -> Value {
    let mut list = Vec::new();
    for s in secrets {
        let a = &s["metadata"]["annotations"];
        match a[tokens::ROTATION_ANNOTATION].as_str() {
            Some(r) => {
                let r: Value = serde_json::from_str(r).unwrap();
                for e in [&r["old"], &r["new"]] {
                    list.push(json!({"name": e["name"], "sha256": e["sha256"]}));
                }
            }
            None => list.push(
                json!({"name": a[tokens::NAME_ANNOTATION], "sha256": a[tokens::DIGEST_ANNOTATION]}),
            ),
        }
    }
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "rfma-token-gate", "namespace": "demo"},
        "spec": {
            "selector": {"matchLabels": {"istio-demo.dev/token-gate": "enabled"}},
            "url": format!("oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/rfma-filter@sha256:{}", "ab".repeat(32)),
            "sha256": "ab".repeat(32),
            "pluginConfig": {"header": "x-rfma-token", "tokens": list}
        }
    })
}

/// The gate as it stands after the client's Secrets were last written in `log` (else `initial`).
fn gate_now(log: &[Exchange], initial: &[Token]) -> Value {
    let secrets: Vec<Value> = initial
        .iter()
        .map(|t| {
            log.iter()
                .rev()
                .find(|e| e.method == "PATCH" && e.path == secret_path(t))
                .map(|e| e.body.clone())
                .unwrap_or_else(|| t.secret(false))
        })
        .collect();
    gate_from(&secrets)
}

fn stats(counts: &[(&str, u64)]) -> String {
    let mut s = String::from("# TYPE rfma_token_allowed_total counter\n");
    for (n, c) in counts {
        s.push_str(&format!("rfma_token_allowed_total{{token=\"{n}\"}} {c}\n"));
    }
    s
}

fn pod_list(ns: &str, names: &[&str]) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": names.iter().map(|n| json!({
        "metadata": {"name": n, "namespace": ns},
        "status": {"phase": "Running", "podIP": "10.0.0.9", "conditions": [{"type": "Ready", "status": "True"}]}
    })).collect::<Vec<_>>()})
}

/// One read of both proxies' counters.
fn read_proxies(a: &str, b: &str) -> Vec<Step> {
    vec![
        get(PODS, pod_list("demo", &["httpbin-a", "httpbin-b"])),
        text(
            format!("{PODS}/httpbin-a:15020/proxy/stats/prometheus"),
            200,
            a,
        ),
        text(
            format!("{PODS}/httpbin-b:15020/proxy/stats/prometheus"),
            200,
            b,
        ),
    ]
}

/// Discovery of the gate's group, then the WasmPlugins of `demo`: the one made from `secrets`.
fn gate_list(secrets: &[Value]) -> [Step; 2] {
    [
        discovery(
            "extensions.istio.io/v1alpha1",
            &[
                ("WasmPlugin", "wasmplugins", true),
                ("TrafficExtension", "trafficextensions", true),
            ],
        ),
        get(
            WASMPLUGINS,
            json!({"kind": "WasmPluginList", "apiVersion": "extensions.istio.io/v1alpha1",
                   "metadata": {}, "items": [gate_from(secrets)]}),
        ),
    ]
}

/// Reading the three Secrets, the gate and the entry point.
fn open(secrets: &[Value], tokens: &[Token]) -> Vec<Step> {
    let mut v = vec![discovery(
        "v1",
        &[("Secret", "secrets", true), ("Pod", "pods", true)],
    )];
    for (t, s) in tokens.iter().zip(secrets) {
        v.push(get(secret_path(t), s.clone()));
    }
    v.extend(gate_list(secrets));
    v.extend([
        discovery(
            "kustomize.toolkit.fluxcd.io/v1",
            &[("Kustomization", "kustomizations", true)],
        ),
        get(
            format!("{KS}/istio-demo"),
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "istio-demo", "namespace": "flux-system"},
                   "spec": {"path": "./flux/clusters/minimal"}}),
        ),
    ]);
    v
}

/// A Secret written with server-side apply: read, then patched.
fn write_secret(t: &Token) -> Vec<Step> {
    vec![get(secret_path(t), t.secret(false)), apply(secret_path(t))]
}

/// One publication: the registry's pod, the OCIRepository pinned, the Kustomization asked, then
/// Flux's answer made from what was pushed and written.
fn publish(first: bool, initial: Vec<Token>) -> Vec<Step> {
    let mut v = vec![get(
        REGISTRY_PODS,
        pod_list("istio-demo-registry", &["registry-0"]),
    )];
    if first {
        v.push(discovery(
            "source.toolkit.fluxcd.io/v1",
            &[("OCIRepository", "ocirepositories", true)],
        ));
    }
    v.extend([
        get(OCIREPO, json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                            "metadata": {"name": "istio-demo", "namespace": "flux-system"}})),
        apply(OCIREPO),
        step(
            "PATCH",
            format!("{KS}/istio-policies"),
            200,
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "istio-policies", "namespace": "flux-system"}}),
        ),
        get_computed(format!("{KS}/istio-policies"), |log| {
            let pinned = log
                .iter()
                .rev()
                .find(|e| e.method == "PATCH" && e.path == OCIREPO)
                .map(|e| e.body["spec"]["ref"]["digest"].as_str().unwrap().to_string())
                .unwrap();
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "istio-policies", "namespace": "flux-system", "generation": 3},
                   "status": {"observedGeneration": 3, "lastAppliedRevision": format!("latest@{pinned}"),
                              "conditions": [{"type": "Ready", "status": "True"}]}})
        }),
        get_computed(format!("{WASMPLUGINS}/rfma-token-gate"), move |log| {
            gate_now(log, &initial)
        }),
    ]);
    v
}

async fn run(
    steps: Vec<Step>,
    args: &RotateArgs,
    reg: &Registry,
) -> (anyhow::Result<ExitCode>, String, Vec<Exchange>, Duration) {
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let clock = ManualClock::default();
    let mut out = Vec::new();
    let result = rotate::run_with(
        &cluster,
        args,
        &istio_demo::manifests::repo_root(),
        Access::Direct(reg.addr.clone()),
        &clock,
        Duration::from_secs(10),
        &mut out,
    )
    .await;
    let log = finish(server).await;
    use rotate::engine::Clock;
    (result, String::from_utf8(out).unwrap(), log, clock.now())
}

fn patches_of<'a>(log: &'a [Exchange], path: &str) -> Vec<&'a Exchange> {
    log.iter()
        .filter(|e| e.method == "PATCH" && e.path == path)
        .collect()
}

fn data(secret: &Value, key: &str) -> Option<String> {
    secret["data"][key].as_str().map(|b| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
    })
}

fn rotation(secret: &Value) -> Option<Value> {
    secret["metadata"]["annotations"][tokens::ROTATION_ANNOTATION]
        .as_str()
        .map(|r| serde_json::from_str(r).unwrap())
}

/// The files of the artifact pushed under `digest`, read back from the registry.
fn artifact_file(reg: &Registry, digest: &str, file: &str) -> String {
    let (status, _, manifest) = crate::support::registry::get(
        &format!(
            "http://{}/v2/istio-demo/manifests/manifests/{digest}",
            reg.addr
        ),
        "application/vnd.oci.image.manifest.v1+json",
        None,
    );
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let layer = crate::support::registry::pull_blob(
        &reg.addr,
        "istio-demo/manifests",
        manifest["layers"][0]["digest"].as_str().unwrap(),
        None,
    );
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&layer[..]));
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy().trim_start_matches("./") == file {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            return s;
        }
    }
    panic!("{file} not in the artifact {digest}");
}

#[tokio::test]
async fn a_full_rotation_adds_hands_over_waits_quiet_and_removes() {
    let reg = start_registry(|_| String::new());
    let initial = deployed();
    let secrets: Vec<Value> = initial.iter().map(|t| t.secret(false)).collect();
    let sleep = &initial[0];
    let quiet = stats(&[("sleep", 40), ("sleep-r2", 3)]);
    let mut steps = open(&secrets, &initial);
    steps.extend(write_secret(sleep)); // 1: add
    steps.extend(publish(true, initial.clone()));
    steps.extend(read_proxies(
        &stats(&[("sleep", 40), ("sleep-r2", 0)]),
        &stats(&[("sleep-r2", 0)]),
    ));
    steps.extend(write_secret(sleep)); // 2: hand over
    // 3: a still moves once at 10 s, then both stand still for 20 s.
    steps.extend(read_proxies(&stats(&[("sleep", 41)]), &quiet));
    steps.extend(read_proxies(&stats(&[("sleep", 42)]), &quiet));
    steps.extend(read_proxies(&stats(&[("sleep", 42)]), &quiet));
    steps.extend(read_proxies(&stats(&[("sleep", 42)]), &quiet));
    steps.extend(write_secret(sleep)); // 4: remove
    steps.extend(publish(false, initial.clone()));

    let (result, out, log, waited) = run(steps, &args("sleep"), &reg).await;
    assert_eq!(result.unwrap(), ExitCode::SUCCESS, "{out}");
    assert_eq!(waited, Duration::from_secs(30), "quiet from 10 s, for 20 s");

    let writes = patches_of(&log, &secret_path(sleep));
    assert_eq!(writes.len(), 3, "{out}");
    let old = sleep.reveal();
    // Step 1: the client still reads the old token; the new one waits beside it.
    let r = rotation(&writes[0].body).unwrap();
    assert_eq!(
        (
            r["old"]["name"].as_str(),
            r["new"]["name"].as_str(),
            r["step"].as_str()
        ),
        (Some("sleep"), Some("sleep-r2"), Some("added"))
    );
    assert_eq!(r["old"]["sha256"], sleep.sha256.as_str());
    assert!(r["old"].get("not_after").is_none(), "no --overlap: no end");
    assert_eq!(data(&writes[0].body, "token").as_deref(), Some(old));
    let new = data(&writes[0].body, "next").unwrap();
    assert_eq!(
        istio_demo::commands::token::digest(&new),
        r["new"]["sha256"].as_str().unwrap()
    );
    // Step 2: the client's key holds the new token.
    assert_eq!(
        data(&writes[1].body, "token").as_deref(),
        Some(new.as_str())
    );
    assert_eq!(data(&writes[1].body, "next"), None);
    assert_eq!(rotation(&writes[1].body).unwrap()["step"], "switched");
    assert_eq!(
        writes[1].body["metadata"]["annotations"][tokens::NAME_ANNOTATION],
        "sleep-r2"
    );
    // Step 4: the old entry is no longer recorded.
    assert_eq!(rotation(&writes[2].body), None);
    assert_eq!(
        data(&writes[2].body, "token").as_deref(),
        Some(new.as_str())
    );

    // What Flux was given: the gate with both entries, then with the new one only.
    let pinned: Vec<String> = patches_of(&log, OCIREPO)
        .iter()
        .map(|e| {
            e.body["spec"]["ref"]["digest"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(pinned.len(), 2);
    let first = artifact_file(&reg, &pinned[0], "istio/wasm/wasmplugin/wasmplugin.yaml");
    assert!(
        first.contains("name: sleep\n") && first.contains("name: sleep-r2\n"),
        "{first}"
    );
    assert!(first.contains(&sleep.sha256), "{first}");
    let second = artifact_file(&reg, &pinned[1], "istio/wasm/wasmplugin/wasmplugin.yaml");
    assert!(
        !second.contains("name: sleep\n") && !second.contains(&sleep.sha256),
        "{second}"
    );
    assert!(second.contains("name: sleep-r2\n"), "{second}");
    for p in patches_of(&log, &format!("{KS}/istio-policies")) {
        assert!(p.body["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"].is_string());
        assert_eq!(p.content_type, "application/merge-patch+json");
    }
    assert!(
        log.iter()
            .all(|e| !e.path.contains("wasmplugins/") || e.method == "GET"),
        "the gate Flux owns is never written"
    );

    assert_mentions(
        &out,
        &[
            "token rotate sleep: sleep-r2 replaces it",
            "every proxy of WasmPlugin/rfma-token-gate has loaded sleep-r2",
            "Secret demo/rfma-demo-token now holds sleep-r2",
            "waiting on httpbin-a, httpbin-b",
            "sleep unused for 20s on every proxy (waited 30s)",
            &format!("removed: token sleep (sha256 {}…)", &sleep.sha256[..12]),
        ],
    );
    assert!(
        !out.contains(old) && !out.contains(&new),
        "a token in the output:\n{out}"
    );
}

/// A rotation that has handed the new token over (Secret in step `switched`): resuming it goes
/// straight to the wait.
fn switched() -> (Vec<Token>, Vec<Value>) {
    let mut t = deployed();
    t[1].begin_rotation(
        "loadtester-r2",
        &istio_demo::commands::token::generate().unwrap(),
        None,
    )
    .unwrap();
    t[1].switch().unwrap();
    let secrets = t.iter().map(|t| t.secret(false)).collect();
    (t, secrets)
}

#[tokio::test]
async fn overlap_gives_the_old_entry_its_not_after() {
    let reg = start_registry(|_| String::new());
    let initial = deployed();
    let secrets: Vec<Value> = initial.iter().map(|t| t.secret(false)).collect();
    let mut steps = open(&secrets, &initial);
    steps.extend(write_secret(&initial[2]));
    // The registry has no ready pod: the rotation stops after step 1's Secret write, which a
    // later run resumes.
    steps.push(get(REGISTRY_PODS, pod_list("istio-demo-registry", &[])));
    let a = RotateArgs {
        new_name: Some("external-2027".into()),
        overlap: Some(Duration::from_secs(86_400)),
        ..args("external")
    };
    let secs = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 86_400
    };
    let (before, _) = (secs(), ());
    let (result, _, log, _) = run(steps, &a, &reg).await;
    let after = secs();
    let e = format!("{:#}", result.unwrap_err());
    assert_mentions(
        &e,
        &[
            "no ready registry pod",
            "Secret demo/rfma-external-token records external-2027 beside external; run `istio-demo token rotate external` again to resume",
        ],
    );
    let w = patches_of(&log, &secret_path(&initial[2]));
    let r = rotation(&w[0].body).unwrap();
    assert_eq!(r["new"]["name"], "external-2027");
    let not_after = r["old"]["not_after"].as_str().unwrap();
    assert!(
        (rotate::rfc3339(before).as_str()..=rotate::rfc3339(after).as_str()).contains(&not_after),
        "now + 24h: {not_after}"
    );
}

#[tokio::test]
async fn dry_run_sends_only_gets_and_sees_a_rotation_under_way() {
    let reg = start_registry(|_| String::new());
    let (t, secrets) = switched();
    let mut steps = Vec::from(gate_list(&secrets));
    steps.extend([
        get(
            "/apis/extensions.istio.io/v1alpha1/namespaces/demo/trafficextensions",
            json!({"kind": "TrafficExtensionList", "apiVersion": "extensions.istio.io/v1alpha1", "metadata": {}, "items": []}),
        ),
        get(PODS, pod_list("demo", &["httpbin-a"])),
        text(
            format!("{PODS}/httpbin-a:15020/proxy/stats/prometheus"),
            200,
            &stats(&[("loadtester", 4)]),
        ),
        text(format!("{PODS}/httpbin-a/log"), 200, ""),
        discovery("v1", &[("Secret", "secrets", true)]),
        get(secret_path(&t[0]), secrets[0].clone()),
        get(secret_path(&t[1]), secrets[1].clone()),
    ]);
    let a = RotateArgs {
        dry_run: true,
        ..args("loadtester")
    };
    let (result, out, log, _) = run(steps, &a, &reg).await;
    assert_eq!(result.unwrap(), ExitCode::SUCCESS, "{out}");
    assert!(log.iter().all(|e| e.method == "GET"), "{log:?}");
    assert_mentions(
        &out,
        &[
            "the plan (dry run: nothing is changed)",
            "a rotation of loadtester to loadtester-r2 is under way (steps 1 and 2 are done): without --dry-run it resumes there",
            "Secret flagger-system/rfma-loadtester-token",
            "httpbin-a: 4 allowed now",
        ],
    );
}
