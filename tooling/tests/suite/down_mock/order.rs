//! The teardown plan's order: dependants first, every namespace once, every profile of the
//! repository's own manifests covered.

use super::fixtures::*;
use istio_demo::commands::down;
use istio_demo::deploy::plan;
use serde_json::Value;

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
