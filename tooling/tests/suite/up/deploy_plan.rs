//! The plan, pure: stage order, the client dry run's stream, dependsOn order, the Git source.

use super::*;

#[test]
fn plan_orders_stages_secrets_before_workloads_and_the_source_before_kustomizations() {
    let stages = plan::plan(&full_inputs(), None);
    let names: Vec<&str> = stages.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "CRDs",
            "namespaces",
            "token Secrets",
            "in-cluster registry",
            "push the module and the manifests",
            "Flux controllers",
            "Flux source and Kustomizations",
            "Istio control plane",
            "monitoring",
            "Flagger",
            "apps",
            "Canary",
            "ELK"
        ]
    );
    assert_eq!(stages[0].apply, vec![crd()]);
    assert_eq!(stages[0].wait[0].check, Check::Established);
    assert!(stages[0].refresh_discovery);
    let ns: Vec<&str> = stages[1]
        .apply
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        ns,
        ["flux-system", "istio-demo-registry", "demo"],
        "every namespace comes before any Secret or workload"
    );
    assert_eq!(
        stages[2].apply.len(),
        2,
        "the token Secrets, right after the namespaces"
    );
    assert!(stages[2].apply.iter().all(|o| o["kind"] == "Secret"));
    assert_eq!(
        stages[3].wait[0].id(),
        "Deployment/istio-demo-registry/registry"
    );
    assert!(matches!(stages[4].action, Some(plan::Action::Push(_))));
    let src = &stages[6];
    assert_eq!(
        src.apply[0]["kind"], "OCIRepository",
        "the source before what uses it"
    );
    assert_eq!(src.apply[0]["spec"]["ref"]["digest"], "sha256:abc");
    let waited: Vec<String> = src.wait.iter().map(Target::id).collect();
    assert_eq!(
        waited,
        [
            "OCIRepository/flux-system/istio-demo",
            "Kustomization/flux-system/istio-system",
            "Kustomization/flux-system/demo"
        ],
        "Kustomizations in dependsOn order"
    );
    assert_eq!(stages[7].wait[0].id(), "HelmRelease/istio-system/istiod");
    assert_eq!(stages[10].wait[0].id(), "Deployment/demo/httpbin");
    assert_eq!(stages[11].wait[0].check, Check::CanaryInitialized);
    assert_eq!(stages[12].wait[0].id(), "Deployment/elk/kibana");
    assert!(stages.iter().all(|s| s.timeout >= Duration::from_secs(60)));
    let t = plan::plan(&full_inputs(), Some(Duration::from_secs(7)));
    assert!(
        t.iter().all(|s| s.timeout == Duration::from_secs(7)),
        "--timeout applies to every stage"
    );
    let minimal = plan::plan(
        &Inputs {
            profile: Profile::Minimal,
            ..full_inputs()
        },
        None,
    );
    assert_eq!(
        minimal.last().unwrap().name,
        "Canary",
        "the minimal profile waits for no ELK"
    );
}

#[test]
fn the_client_dry_run_stream_is_every_object_in_apply_order() {
    let inputs = full_inputs();
    let stages = plan::plan(&inputs, None);
    let mut out = Vec::new();
    plan::write_yaml(&stages, &plan::synced_in_order(&inputs), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let mut want: Vec<Value> = plan::objects(&stages).cloned().collect();
    // Then what Flux applies: istio-system first (demo dependsOn it), then demo, then the rest.
    let synced = plan::synced_in_order(&inputs);
    let paths: Vec<&str> = synced.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["./istio/system", "./demo", "./flagger", "./elk"]);
    let up_applies = want.clone();
    want.extend(
        synced
            .iter()
            .flat_map(|s| s.objects.iter().cloned())
            .filter(|o| !up_applies.contains(o)),
    );
    assert_eq!(
        docs, want,
        "each object once: the namespaces where up applies them"
    );
    assert!(
        text.contains(
            "# stage: push the module and the manifests (module sha256:m, manifests none)"
        ),
        "{text}"
    );
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let first = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        first("Namespace") < first("Secret") && first("Secret") < first("Deployment"),
        "{kinds:?}"
    );
}

#[test]
fn kustomizations_follow_depends_on() {
    let ks = |n: &str, deps: &[&str]| {
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": n, "namespace": "flux-system"},
               "spec": {"dependsOn": deps.iter().map(|d| json!({"name": d})).collect::<Vec<_>>()}})
    };
    let (c, b, a, cyc1, cyc2) = (
        ks("c", &["b"]),
        ks("b", &["a", "external"]),
        ks("a", &[]),
        ks("x", &["y"]),
        ks("y", &["x"]),
    );
    let git = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "g"}});
    let order: Vec<&str> = plan::dependency_order(vec![&c, &cyc1, &b, &git, &a, &cyc2])
        .into_iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["g", "a", "b", "c", "x", "y"],
        "a dependency outside the set is ignored; a cycle keeps its order"
    );
}

#[test]
fn ssh_remotes_become_https_for_flux() {
    assert_eq!(
        up::https_url("git@github.com:me/istio-demo.git"),
        "https://github.com/me/istio-demo.git"
    );
    assert_eq!(
        up::https_url("https://example.test/x.git\n"),
        "https://example.test/x.git"
    );
}

#[test]
fn git_sources_need_a_real_url() {
    let g = up::git_repository("https://example.test/me/istio-demo.git", "feature").unwrap();
    assert_eq!(g["spec"]["url"], "https://example.test/me/istio-demo.git");
    assert_eq!(g["spec"]["ref"], json!({"branch": "feature"}));
    assert_eq!(g["metadata"]["name"], "istio-demo");
    for bad in [
        "git@github.com:me/x.git",
        "https://github.com/your-org/istio-demo",
    ] {
        assert!(up::git_repository(bad, "main").is_err(), "{bad}");
    }
}
