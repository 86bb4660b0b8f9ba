//! `istio-demo down` against kube's tower-test mock: the self-managing Kustomization is suspended
//! (JSON merge patch) before anything is deleted; Kustomizations go dependants first and the
//! self-managing one after them; every delete waits for the finalizers; namespaces that existed
//! before `up` are kept (and protected from Flux's pruning), and so are token Secrets in them that
//! istio-demo did not make; the registry's namespace goes with the others; a dry run deletes
//! nothing; Flux goes only when istio-demo installed it.

use crate::support::*;
use istio_demo::cluster::Cluster;
use istio_demo::commands::down::{self, Teardown};
use istio_demo::deploy::plan;
use istio_demo::deploy::render::Synced;
use serde_json::{Value, json};
use std::time::Duration;

const KS: &str = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations";
const SOURCES: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system";
const NS: &str = "/api/v1/namespaces";
const MANAGED: (&str, &str) = ("app.kubernetes.io/managed-by", "istio-demo");

fn kustomization(name: &str, path: &str, depends_on: &[&str]) -> Value {
    let mut k = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                       "metadata": {"name": name, "namespace": "flux-system"},
                       "spec": {"path": path, "interval": "10m", "prune": true,
                                "sourceRef": {"kind": "OCIRepository", "name": "istio-demo"}}});
    if !depends_on.is_empty() {
        k["spec"]["dependsOn"] = depends_on.iter().map(|d| json!({"name": d})).collect();
    }
    k
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// Two entry points (full and minimal) listing their Kustomizations in an order where the reverse
/// of the listing is not a valid deletion order.
fn entries() -> Vec<Vec<Value>> {
    vec![
        vec![
            kustomization("istio-demo", "./flux/clusters/full", &[]),
            kustomization("apps", "./flux/apps", &["infrastructure"]),
            kustomization("logging", "./flux/logging", &["infrastructure"]),
            kustomization("infrastructure", "./flux/infrastructure", &[]),
            kustomization("notifications", "./flux/notifications", &["apps"]),
        ],
        vec![
            kustomization("istio-demo", "./flux/clusters/minimal", &[]),
            kustomization("apps", "./flux/apps", &["infrastructure"]),
            kustomization("infrastructure", "./flux/infrastructure", &[]),
            kustomization("notifications", "./flux/notifications", &["apps"]),
        ],
    ]
}

fn synced() -> Vec<Synced> {
    vec![
        Synced {
            path: "./demo".into(),
            objects: vec![namespace("demo", json!({"istio-injection": "enabled"}))],
        },
        Synced {
            path: "./flagger/system".into(),
            objects: vec![
                namespace("flagger-system", json!({})),
                // Flux's own namespace is never the demo's to delete.
                namespace("flux-system", json!({})),
            ],
        },
        Synced {
            path: "./elk".into(),
            objects: vec![
                namespace("elk", json!({})),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "kibana", "namespace": "elk"}}),
            ],
        },
        Synced {
            // An entry point synced again by the self-managing Kustomization: no duplicates.
            path: "./demo".into(),
            objects: vec![namespace("demo", json!({}))],
        },
    ]
}

fn registry() -> Vec<Value> {
    vec![
        namespace(
            "istio-demo-registry",
            json!({"istio-injection": "disabled"}),
        ),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "namespace": "istio-demo-registry"}}),
    ]
}

fn plan() -> Teardown {
    down::teardown(&entries(), &synced(), &registry())
}

fn names(objects: &[Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[test]
fn teardown_deletes_dependants_first_and_every_namespace_once() {
    let t = plan();
    assert_eq!(
        names(&t.kustomizations),
        ["notifications", "logging", "apps", "infrastructure"],
        "dependants first, each once, the self-managing one left out (it is suspended, then deleted last)"
    );
    // The rule, not just this list: a Kustomization is deleted before everything it depends on.
    assert_dependants_first(&t);
    assert_eq!(
        names(&t.namespaces),
        ["demo", "flagger-system", "elk", "istio-demo-registry"],
        "the synced namespaces and the registry's, flux-system excluded, each once"
    );
}

/// Asserts that each Kustomization of `t` is deleted before every one it depends on.
fn assert_dependants_first(t: &Teardown) {
    let order = names(&t.kustomizations);
    let at = |n: &str| order.iter().position(|x| *x == n);
    for k in &t.kustomizations {
        for d in k["spec"]["dependsOn"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap();
            assert!(
                at(plan::name(k)) < at(dep),
                "{} must be deleted before {dep}: {order:?}",
                plan::name(k)
            );
        }
    }
}

/// The repository's own manifests (rendered with kubectl, as `down` does): every profile's
/// Kustomizations and namespaces, the registry's among them.
#[test]
fn teardown_of_the_repository_covers_every_profile_and_the_registry() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let t = down::teardown_of_repo(repo).unwrap();
    let rendered = |dir: &str| -> Vec<Value> {
        istio_demo::manifests::render(&repo.join(dir))
            .unwrap()
            .into_iter()
            .map(|m| m.object)
            .collect()
    };

    // Every Flux Kustomization of every entry point but the self-managing one, once each.
    let mut want: Vec<String> = Vec::new();
    for entry in [
        "flux/clusters/full",
        "flux/clusters/minimal",
        "flux/clusters/git-full",
        "flux/clusters/git-minimal",
    ] {
        for o in rendered(entry) {
            if plan::is_flux_kustomization(&o) && plan::name(&o) != "istio-demo" {
                want.push(plan::name(&o).to_string());
            }
        }
    }
    want.sort();
    want.dedup();
    let mut got: Vec<String> = names(&t.kustomizations)
        .into_iter()
        .map(String::from)
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        got.len(),
        t.kustomizations.len(),
        "each Kustomization once: {:?}",
        names(&t.kustomizations)
    );
    assert!(
        got.iter().any(|k| k == "logging"),
        "the full profile's ELK is torn down too, whatever was deployed"
    );
    assert_dependants_first(&t);

    // Namespaces: the registry's and those of what the Kustomizations sync; never Flux's.
    let ns = names(&t.namespaces);
    let mut unique = ns.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ns.len(), "each namespace once: {ns:?}");
    for o in rendered("registry") {
        if o["kind"] == "Namespace" {
            assert!(
                ns.contains(&plan::name(&o)),
                "{} not in {ns:?}",
                plan::name(&o)
            );
        }
    }
    for want in [
        "istio-demo-registry",
        "demo",
        "istio-system",
        "flagger-system",
    ] {
        assert!(ns.contains(&want), "{want} not in {ns:?}");
    }
    assert!(!ns.contains(&"flux-system"), "{ns:?}");
    assert!(
        t.namespaces
            .iter()
            .all(|n| n["apiVersion"] == "v1" && n["kind"] == "Namespace"),
        "{:?}",
        t.namespaces
    );
}

fn discovery_kustomize() -> Step {
    discovery(
        "kustomize.toolkit.fluxcd.io/v1",
        &[("Kustomization", "kustomizations", true)],
    )
}

fn discovery_core() -> Step {
    discovery(
        "v1",
        &[
            ("Namespace", "namespaces", false),
            ("Secret", "secrets", true),
        ],
    )
}

fn discovery_sources() -> Step {
    discovery(
        "source.toolkit.fluxcd.io/v1",
        &[
            ("OCIRepository", "ocirepositories", true),
            ("GitRepository", "gitrepositories", true),
        ],
    )
}

fn token_secret(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "data": {"token": "c2VjcmV0"}})
}

fn terminating(mut o: Value) -> Value {
    o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    o["metadata"]["finalizers"] = json!(["finalizers.fluxcd.io"]);
    o
}

/// The whole teardown of [`plan`] against a cluster where `demo` (holding one token Secret
/// istio-demo made and one it did not) existed before `up`, `elk` is gone already, and Flux was
/// there before istio-demo. Without `dry_run`, every accepted delete is followed by the reads of
/// the wait, `notifications` finalizing for one read.
fn conversation(dry_run: bool) -> Vec<Step> {
    let wait = |path: String| -> Vec<Step> {
        if dry_run {
            vec![]
        } else {
            vec![not_found(path)]
        }
    };
    let mut steps = vec![
        step(
            "PATCH",
            format!("{KS}/istio-demo"),
            200,
            kustomization("istio-demo", "./flux/clusters/full", &[]),
        ),
        // Which namespaces are ours.
        discovery_core(),
        get(
            format!("{NS}/demo"),
            namespace("demo", json!({"team": "web"})),
        ),
        get(
            format!("{NS}/demo"),
            namespace("demo", json!({"team": "web"})),
        ),
        apply(format!("{NS}/demo")),
        get(
            format!("{NS}/flagger-system"),
            namespace("flagger-system", json!({MANAGED.0: MANAGED.1})),
        ),
        not_found(format!("{NS}/elk")),
        get(
            format!("{NS}/istio-demo-registry"),
            namespace("istio-demo-registry", json!({MANAGED.0: MANAGED.1})),
        ),
    ];
    let notifications = kustomization("notifications", "./flux/notifications", &[]);
    steps.push(step(
        "DELETE",
        format!("{KS}/notifications"),
        200,
        terminating(notifications.clone()),
    ));
    if !dry_run {
        steps.push(get(
            format!("{KS}/notifications"),
            terminating(notifications),
        ));
    }
    steps.extend(wait(format!("{KS}/notifications")));
    for k in ["logging", "apps", "infrastructure", "istio-demo"] {
        steps.push(delete(format!("{KS}/{k}")));
        steps.extend(wait(format!("{KS}/{k}")));
    }
    steps.push(discovery_sources());
    steps.push(delete(format!("{SOURCES}/ocirepositories/istio-demo")));
    steps.extend(wait(format!("{SOURCES}/ocirepositories/istio-demo")));
    steps.push(not_found_on(
        "DELETE",
        format!("{SOURCES}/gitrepositories/istio-demo"),
    ));
    // Token Secrets in the user's namespace: only the one istio-demo made goes.
    steps.push(get(
        format!("{NS}/demo/secrets/rfma-demo-token"),
        token_secret("demo", "rfma-demo-token", json!({MANAGED.0: MANAGED.1})),
    ));
    steps.push(delete(format!("{NS}/demo/secrets/rfma-demo-token")));
    steps.extend(wait(format!("{NS}/demo/secrets/rfma-demo-token")));
    steps.push(get(
        format!("{NS}/demo/secrets/rfma-external-token"),
        token_secret("demo", "rfma-external-token", json!({"owner": "me"})),
    ));
    for n in ["flagger-system", "istio-demo-registry"] {
        steps.push(delete(format!("{NS}/{n}")));
        steps.extend(wait(format!("{NS}/{n}")));
    }
    steps.push(get(
        format!("{NS}/flux-system"),
        namespace("flux-system", json!({"app.kubernetes.io/part-of": "flux"})),
    ));
    steps
}

/// Runs [`plan`]'s teardown over [`conversation`]; returns what `run_with` sent (the discovery of
/// the Kustomization kind, done beforehand, left out) and what it printed.
async fn teardown_conversation(dry_run: bool) -> (Vec<Exchange>, String) {
    let (client, handle) = mock();
    let mut steps = vec![discovery_kustomize()];
    steps.extend(conversation(dry_run));
    let server = serve(handle, steps);
    let mut cluster = Cluster::new(client, dry_run);
    cluster.poll = Duration::from_millis(1);
    // Discovery first, so that the first request `run_with` makes is its own.
    cluster
        .resolve("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    down::run_with(&cluster, &plan(), Duration::from_secs(30), false, &mut out)
        .await
        .unwrap();
    let mut log = finish(server).await;
    log.remove(0);
    (log, String::from_utf8(out).unwrap())
}

fn deletes(log: &[Exchange]) -> Vec<&str> {
    log.iter()
        .filter(|e| e.method == "DELETE")
        .map(|e| e.path.as_str())
        .collect()
}

#[tokio::test]
async fn down_suspends_self_sync_first_then_deletes_dependants_first_and_waits_for_finalizers() {
    let (log, text) = teardown_conversation(false).await;

    // 1. Before anything else, a JSON merge patch suspends the self-managing Kustomization.
    let first = &log[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("PATCH", format!("{KS}/istio-demo").as_str()),
        "the first request of `down`: {}",
        first.line()
    );
    assert_eq!(first.content_type, "application/merge-patch+json");
    assert_eq!(first.body, json!({"spec": {"suspend": true}}));
    assert!(
        first.params_are(&[]),
        "a plain merge patch: no fieldManager, no force (server-side apply would take over the \
         whole object): {}",
        first.line()
    );
    assert!(
        text.contains("  suspended: Kustomization/flux-system/istio-demo"),
        "{text}"
    );

    // 2. The deletes, in order; the self-managing Kustomization only after all the others.
    let ks = |n: &str| format!("{KS}/{n}");
    let ns = |n: &str| format!("{NS}/{n}");
    assert_eq!(
        deletes(&log),
        [
            ks("notifications"),
            ks("logging"),
            ks("apps"),
            ks("infrastructure"),
            ks("istio-demo"),
            format!("{SOURCES}/ocirepositories/istio-demo"),
            format!("{SOURCES}/gitrepositories/istio-demo"),
            ns("demo/secrets/rfma-demo-token"),
            ns("flagger-system"),
            ns("istio-demo-registry"),
        ]
    );

    // 3. Each delete the server accepted is waited for (re-read until it is gone) before the next;
    //    `notifications` was still finalizing at the first read.
    let delete_at: Vec<usize> = (0..log.len())
        .filter(|i| log[*i].method == "DELETE")
        .collect();
    for (n, at) in delete_at.iter().enumerate() {
        let next = delete_at.get(n + 1).copied().unwrap_or(log.len());
        let path = &log[*at].path;
        let reads = log[*at + 1..next]
            .iter()
            .filter(|e| e.method == "GET" && &e.path == path)
            .count();
        let expect = if path.ends_with("/gitrepositories/istio-demo") {
            0 // the server said 404: nothing to wait for
        } else if path.ends_with("/notifications") {
            2
        } else {
            1
        };
        assert_eq!(reads, expect, "reads of {path} after its DELETE");
    }
    assert!(
        text.contains("  deleted: Kustomization/flux-system/notifications"),
        "{text}"
    );
    assert!(
        text.contains("  absent: GitRepository/flux-system/istio-demo"),
        "{text}"
    );

    // 4. The user's namespace stays, protected from Flux's pruning by server-side apply.
    let protect: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "PATCH" && e.path == ns("demo"))
        .collect();
    assert_eq!(protect.len(), 1);
    assert!(
        protect[0].params_are(&[("fieldManager", "istio-demo"), ("force", "true")]),
        "{}",
        protect[0].line()
    );
    assert_eq!(protect[0].content_type, "application/apply-patch+yaml");
    assert_eq!(
        protect[0].body["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"],
        "disabled"
    );
    for kept in ["demo", "elk", "flux-system"] {
        assert!(
            !deletes(&log).contains(&ns(kept).as_str()),
            "Namespace/{kept} is not istio-demo's to delete"
        );
    }
    assert!(
        !deletes(&log)
            .iter()
            .any(|d| d.ends_with("/rfma-external-token")),
        "a Secret istio-demo did not make stays"
    );
    assert_mentions(
        &text,
        &[
            "keeping Namespace/demo: it existed before istio-demo",
            "absent: Namespace/elk",
            "keeping Secret/demo/rfma-external-token: not made by istio-demo",
            "deleted: Secret/demo/rfma-demo-token",
            "deleted: Namespace/istio-demo-registry",
            "left in place: Flux was installed before istio-demo",
            "the demo is down",
        ],
    );
}

#[tokio::test]
async fn down_dry_run_deletes_nothing_and_waits_for_nothing() {
    let (log, text) = teardown_conversation(true).await;
    assert_eq!(log[0].method, "PATCH");
    assert_eq!(log[0].content_type, "application/merge-patch+json");
    let writes: Vec<&Exchange> = log.iter().filter(|e| e.method != "GET").collect();
    let (real, _) = teardown_conversation(false).await;
    let lines = |l: Vec<&Exchange>| -> Vec<String> {
        l.iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect()
    };
    assert_eq!(
        lines(writes.clone()),
        lines(real.iter().filter(|e| e.method != "GET").collect()),
        "the writes of a real teardown, each as a dry run"
    );
    for e in writes {
        match e.method.as_str() {
            // kube sends DeleteOptions in the body.
            "DELETE" => assert_eq!(e.body["dryRun"], json!(["All"]), "{} {}", e.line(), e.body),
            "PATCH" => assert_eq!(
                e.params().get("dryRun").map(String::as_str),
                Some("All"),
                "{}",
                e.line()
            ),
            m => panic!("unexpected {m}: {}", e.line()),
        }
    }
    for d in deletes(&log) {
        assert!(
            !log.iter()
                .skip_while(|e| !(e.method == "DELETE" && e.path == d))
                .any(|e| e.method == "GET" && e.path == d),
            "a dry run waits for nothing, yet {d} was read after its delete"
        );
    }
    assert_mentions(
        &text,
        &[
            "would be suspended: Kustomization/flux-system/istio-demo",
            "would delete: Kustomization/flux-system/notifications",
            "would delete: Namespace/istio-demo-registry",
            "dry run complete: nothing was deleted",
        ],
    );
}

/// Nothing of the demo left; Flux's namespace as `flux_system` says.
fn flux_only(flux_system: Step) -> Vec<Step> {
    vec![
        discovery_kustomize(),
        not_found_on("PATCH", format!("{KS}/istio-demo")),
        not_found_on("DELETE", format!("{KS}/istio-demo")),
        not_found("/apis/source.toolkit.fluxcd.io/v1"),
        discovery_core(),
        flux_system,
    ]
}

fn ours_flux_system() -> Step {
    get(
        format!("{NS}/flux-system"),
        namespace("flux-system", json!({MANAGED.0: MANAGED.1})),
    )
}

async fn down_empty(steps: Vec<Step>, keep_flux: bool) -> (Vec<Exchange>, String) {
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let mut cluster = Cluster::new(client, false);
    cluster.poll = Duration::from_millis(1);
    let mut out = Vec::new();
    down::run_with(
        &cluster,
        &Teardown::default(),
        Duration::from_secs(30),
        keep_flux,
        &mut out,
    )
    .await
    .unwrap();
    (finish(server).await, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn down_removes_flux_only_when_istio_demo_installed_it() {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crb = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    // A label-selected list of `kind` at `path` holding `name`, then its delete and the wait.
    let listed = |path: &str, kind: &str, name: Option<&str>| -> Vec<Step> {
        let items: Vec<Value> = name
            .iter()
            .map(|n| json!({"metadata": {"name": n}}))
            .collect();
        let mut v = vec![get(
            path,
            json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {}, "items": items}),
        )];
        if let Some(n) = name {
            v.extend([
                delete(format!("{path}/{n}")),
                not_found(format!("{path}/{n}")),
            ]);
        }
        v
    };
    let mut steps = flux_only(ours_flux_system());
    steps.push(discovery(
        "apiextensions.k8s.io/v1",
        &[(
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )],
    ));
    steps.extend(listed(
        crds,
        "CustomResourceDefinition",
        Some("kustomizations.kustomize.toolkit.fluxcd.io"),
    ));
    steps.push(discovery(
        "rbac.authorization.k8s.io/v1",
        &[
            ("ClusterRoleBinding", "clusterrolebindings", false),
            ("ClusterRole", "clusterroles", false),
        ],
    ));
    steps.extend(listed(
        crb,
        "ClusterRoleBinding",
        Some("cluster-reconciler-flux-system"),
    ));
    steps.extend(listed(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRole",
        None,
    ));
    steps.extend([
        delete(format!("{NS}/flux-system")),
        not_found(format!("{NS}/flux-system")),
    ]);
    let (log, text) = down_empty(steps, false).await;
    let lists: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "GET" && e.query.contains("labelSelector"))
        .collect();
    assert_eq!(lists.len(), 3, "CRDs, ClusterRoleBindings, ClusterRoles");
    for e in lists {
        assert_eq!(
            e.params().get("labelSelector").map(String::as_str),
            Some("app.kubernetes.io/part-of=flux"),
            "{}",
            e.line()
        );
    }
    assert_eq!(
        deletes(&log),
        [
            format!("{KS}/istio-demo"),
            format!("{crds}/kustomizations.kustomize.toolkit.fluxcd.io"),
            format!("{crb}/cluster-reconciler-flux-system"),
            format!("{NS}/flux-system"),
        ]
    );
    assert_mentions(
        &text,
        &[
            "absent: Kustomization/flux-system/istio-demo",
            "deleted: CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io",
            "deleted: Namespace/flux-system",
        ],
    );

    // With --keep-flux, nothing of Flux is touched.
    let (log, text) = down_empty(flux_only(ours_flux_system()), true).await;
    assert_eq!(deletes(&log), [format!("{KS}/istio-demo")]);
    assert!(text.contains("left in place (--keep-flux)"), "{text}");

    // Flux that was there before istio-demo stays.
    let users = get(
        format!("{NS}/flux-system"),
        namespace("flux-system", json!({"app.kubernetes.io/part-of": "flux"})),
    );
    let (log, text) = down_empty(flux_only(users), false).await;
    assert_eq!(deletes(&log), [format!("{KS}/istio-demo")]);
    assert!(
        text.contains("left in place: Flux was installed before istio-demo"),
        "{text}"
    );
}
