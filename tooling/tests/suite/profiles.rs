//! The Flux entry points (`flux/clusters/<entry>`) and what each profile asks of a cluster.
//!
//! Each entry point is rendered with kustomize like Flux would, then every path its Kustomizations
//! sync, plus `registry/` (which `istio-demo up` applies itself): the layout rules `up` relies on
//! are checked, and the CPU and memory requests and limits of each profile are summed with
//! `deploy::resources` and printed
//! (`cargo test -p istio-demo --test suite profiles:: -- --nocapture`); the table in
//! docs/gitops.md ("Deploy details") quotes them.
//!
//! Needs `kubectl` (with kustomize) on PATH or in $KUBECTL.

use istio_demo::deploy::resources::{self, Resources};
use istio_demo::manifests::{self, Manifest};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const ENTRIES: [(&str, &str); 4] = [
    ("minimal", "OCIRepository"),
    ("full", "OCIRepository"),
    ("git-minimal", "GitRepository"),
    ("git-full", "GitRepository"),
];

struct Rendered {
    /// The entry point's own objects.
    entry: Vec<Manifest>,
    /// (`spec.path`, its objects) for every Kustomization but the self-managing one.
    synced: Vec<(String, Vec<Manifest>)>,
}

impl Rendered {
    fn all(&self) -> impl Iterator<Item = &Manifest> {
        self.entry
            .iter()
            .chain(self.synced.iter().flat_map(|(_, m)| m))
    }
}

fn render_entry(name: &str) -> Rendered {
    let dir = format!("flux/clusters/{name}");
    let entry = manifests::render(&repo().join(&dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
    let mut synced = Vec::new();
    for k in entry.iter().filter(|m| m.kind() == "Kustomization") {
        let path = k.object["spec"]["path"].as_str().unwrap().to_string();
        if path == format!("./{dir}") {
            continue;
        }
        let objects = manifests::render(&repo().join(path.trim_start_matches("./")))
            .unwrap_or_else(|e| panic!("{path}, synced by {}: {e}", k.id()));
        synced.push((path, objects));
    }
    Rendered { entry, synced }
}

fn kustomizations(r: &Rendered) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r
        .entry
        .iter()
        .filter(|m| m.kind() == "Kustomization")
        .map(|m| {
            (
                m.name().to_string(),
                m.object["spec"]["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_entry_point_syncs_itself_from_a_source_it_does_not_contain() {
    for (name, source_kind) in ENTRIES {
        let r = render_entry(name);
        let own = format!("./flux/clusters/{name}");
        let selves: Vec<&Manifest> = r
            .entry
            .iter()
            .filter(|m| m.kind() == "Kustomization" && m.name() == "istio-demo")
            .collect();
        assert_eq!(selves.len(), 1, "{name}: one self-managing Kustomization");
        assert_eq!(selves[0].namespace(), Some("flux-system"));
        assert_eq!(selves[0].object["spec"]["path"], own.as_str(), "{name}");
        for m in &r.entry {
            // `up` applies the source itself; an entry point that carried it would let Flux's
            // self-sync revert what `up` set (the old bug with the GitRepository's URL).
            assert!(
                !matches!(m.kind(), "GitRepository" | "OCIRepository"),
                "{name} contains the source {}",
                m.id()
            );
            if m.kind() == "Kustomization" {
                assert_eq!(
                    m.object["spec"]["sourceRef"],
                    serde_json::json!({"kind": source_kind, "name": "istio-demo"}),
                    "{name}: {}",
                    m.id()
                );
            }
        }
        // No object twice in an entry point, nor in anything it syncs.
        let all: Vec<Manifest> = r.all().cloned().collect();
        let duplicates = istio_demo::manifests::lint::lint_kustomization(&all);
        assert!(duplicates.is_empty(), "{name}: {duplicates:?}");
    }
}

#[test]
fn the_git_entry_points_differ_from_the_oci_ones_only_in_the_source() {
    for profile in ["minimal", "full"] {
        let oci = kustomizations(&render_entry(profile));
        let git = kustomizations(&render_entry(&format!("git-{profile}")));
        let strip_self = |v: Vec<(String, String)>| -> Vec<(String, String)> {
            v.into_iter().filter(|(n, _)| n != "istio-demo").collect()
        };
        assert_eq!(strip_self(oci), strip_self(git), "{profile}");
    }
}

#[test]
fn the_oci_source_is_the_one_up_applies() {
    let objects = manifests::render(&repo().join("flux/sources/oci")).unwrap();
    assert_eq!(objects.len(), 1);
    let o = &objects[0].object;
    assert_eq!(objects[0].id(), "OCIRepository/flux-system/istio-demo");
    assert_eq!(
        o["spec"]["url"],
        "oci://registry.istio-demo-registry.svc.cluster.local:5000/istio-demo/manifests"
    );
    assert_eq!(o["spec"]["ref"]["tag"], "latest");
    assert_eq!(o["spec"]["insecure"], true);
    // Istio pulls the module from the same registry, and only that one is allowed plain HTTP.
    let istiod = manifests::render(&repo().join("istio/system"))
        .unwrap()
        .into_iter()
        .find(|m| m.id() == "HelmRelease/istio-system/istiod")
        .unwrap();
    assert_eq!(
        istiod.object.pointer(
            "/spec/values/meshConfig/defaultConfig/proxyMetadata/WASM_INSECURE_REGISTRIES"
        ),
        Some(&serde_json::json!(
            "registry.istio-demo-registry.svc.cluster.local:5000"
        ))
    );
}

fn profile_objects(name: &str) -> Vec<serde_json::Value> {
    let r = render_entry(name);
    let registry = manifests::render(&repo().join("registry")).unwrap();
    r.all()
        .chain(registry.iter())
        .map(|m| m.object.clone())
        .collect()
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn cpus(millis: u64) -> String {
    format!("{:.2}", millis as f64 / 1000.0)
}

#[test]
fn minimal_runs_less_than_full_and_no_logging() {
    let mut sums: Vec<(&str, Resources)> = Vec::new();
    for profile in ["minimal", "full"] {
        let objects = profile_objects(profile);
        let items = resources::itemize(&objects).unwrap();
        println!("\n{profile}: pods × (requests cpu/memory, limits cpu/memory), sidecars included");
        for i in &items {
            if let Some(why) = &i.not_counted {
                println!("  {:<58} not counted: {why}", i.object);
                continue;
            }
            println!(
                "  {:<58} {} pod(s) {:>2} sidecar(s)  {:>5} {:>9}  {:>5} {:>9}",
                i.object,
                i.pods,
                i.sidecars,
                cpus(i.resources.cpu_request_millis),
                gib(i.resources.memory_request_bytes),
                cpus(i.resources.cpu_limit_millis),
                gib(i.resources.memory_limit_bytes)
            );
        }
        // Every chart the profile installs is one the sum knows: a new one must be taught to it.
        let unknown: Vec<&String> = items
            .iter()
            .filter(|i| i.not_counted.is_some())
            .map(|i| &i.object)
            .collect();
        assert!(unknown.is_empty(), "{profile}: not counted: {unknown:?}");
        let total = resources::sum(&objects).unwrap();
        assert_eq!(total, items.iter().map(|i| i.resources).sum::<Resources>());
        sums.push((profile, total));
    }
    println!("\n| Profile | CPU requests | memory requests | CPU limits | memory limits |");
    for (profile, r) in &sums {
        println!(
            "| {profile} | {} | {} | {} | {} |",
            cpus(r.cpu_request_millis),
            gib(r.memory_request_bytes),
            cpus(r.cpu_limit_millis),
            gib(r.memory_limit_bytes)
        );
    }
    let (minimal, full) = (sums[0].1, sums[1].1);
    assert!(minimal.cpu_request_millis < full.cpu_request_millis);
    assert!(minimal.memory_request_bytes < full.memory_request_bytes);
    assert!(minimal.cpu_limit_millis < full.cpu_limit_millis);
    assert!(minimal.memory_limit_bytes < full.memory_limit_bytes);
    // The sum really covers the demo: Istio, Prometheus, Grafana, Flagger and the apps alone
    // request well over 1 GiB.
    assert!(minimal.memory_request_bytes > 1 << 30, "{minimal:?}");

    // Minimal has no logging at all; full has the ELK stack.
    let minimal_objects = profile_objects("minimal");
    let logging: Vec<String> = minimal_objects
        .iter()
        .filter(|o| {
            o.pointer("/metadata/namespace").and_then(|v| v.as_str()) == Some("logging")
                || (o["kind"] == "Namespace" && o["metadata"]["name"] == "logging")
                || (o["kind"] == "Kustomization" && o["metadata"]["name"] == "logging")
        })
        .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
        .collect();
    assert!(logging.is_empty(), "minimal deploys logging: {logging:?}");
    let full_objects = profile_objects("full");
    assert!(
        full_objects
            .iter()
            .any(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "elasticsearch"),
        "full has no Elasticsearch"
    );
}
