//! The resource sums' unit tests: quantities, pods, sidecars, canaries and charts.

use super::*;
use serde_json::json;

const MI: u64 = 1024 * 1024;

#[test]
fn quantities_parse_like_kubernetes() {
    let cases = [
        ("500m", 0.5),
        ("1", 1.0),
        ("1.5", 1.5),
        ("0.1", 0.1),
        ("250u", 0.000_25),
        ("100n", 1e-7),
        ("128Mi", 128.0 * 1024.0 * 1024.0),
        ("1Gi", 1024f64.powi(3)),
        ("64Ki", 65536.0),
        ("2Ti", 2.0 * 1024f64.powi(4)),
        ("1k", 1000.0),
        ("1M", 1e6),
        ("2G", 2e9),
        ("1.5Gi", 1.5 * 1024f64.powi(3)),
        ("1e3", 1000.0),
        ("1E3", 1000.0),
        ("5e-1", 0.5),
        ("1E", 1e18),
        ("+2", 2.0),
        (" 3 ", 3.0),
    ];
    for (text, want) in cases {
        let got = parse_quantity(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(
            (got - want).abs() <= want.abs() * 1e-12,
            "{text}: {got} != {want}"
        );
    }
}

#[test]
fn bad_quantities_are_errors() {
    for text in [
        "", "m", "Mi", "1.2.3", "12Zi", "1mi", "1 Gi", "--1", "1e", "1e+", "abc", ".",
    ] {
        assert!(parse_quantity(text).is_err(), "{text:?} parsed");
    }
    let e = parse_quantity("12Zi").unwrap_err().to_string();
    assert!(e.contains("12Zi") && e.contains("suffix"), "{e}");
}

fn deployment(ns: &str, name: &str, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"template": {"metadata": {}, "spec": {"containers": containers}}}})
}

fn container(req_cpu: &str, req_mem: &str, lim_cpu: &str, lim_mem: &str) -> Value {
    json!({"name": "c", "resources": {
        "requests": {"cpu": req_cpu, "memory": req_mem},
        "limits": {"cpu": lim_cpu, "memory": lim_mem}}})
}

#[test]
fn containers_and_replicas_add_up() {
    let mut d = deployment(
        "ns",
        "a",
        json!([
            container("100m", "64Mi", "1", "128Mi"),
            container("50m", "32Mi", "500m", "64Mi")
        ]),
    );
    d["spec"]["replicas"] = json!(3);
    let r = sum(&[d]).unwrap();
    assert_eq!(
        r,
        Resources {
            cpu_request_millis: 450,
            cpu_limit_millis: 4500,
            memory_request_bytes: 3 * 96 * MI,
            memory_limit_bytes: 3 * 192 * MI,
        }
    );
}

#[test]
fn init_containers_count_as_the_scheduler_counts_them() {
    let mut d = deployment(
        "ns",
        "a",
        json!([container("100m", "64Mi", "200m", "128Mi")]),
    );
    // An ordinary init container larger than the containers sets the request; a native
    // sidecar (restartPolicy Always) adds to the containers.
    d["spec"]["template"]["spec"]["initContainers"] = json!([
        container("300m", "16Mi", "300m", "16Mi"),
        {"name": "side", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"cpu": "10m", "memory": "8Mi"}}}
    ]);
    let r = sum(&[d]).unwrap();
    assert_eq!(r.cpu_request_millis, 300);
    assert_eq!(r.memory_request_bytes, 72 * MI);
    assert_eq!(r.cpu_limit_millis, 300);
    assert_eq!(r.memory_limit_bytes, 136 * MI);
}

#[test]
fn a_missing_request_is_the_limit_and_a_missing_limit_the_request() {
    let d = deployment(
        "ns",
        "a",
        json!([{"name": "c", "resources": {"limits": {"cpu": 1, "memory": "1G"}}},
               {"name": "d", "resources": {"requests": {"cpu": "0.25", "memory": "1e6"}}}]),
    );
    let r = sum(&[d]).unwrap();
    assert_eq!(r.cpu_request_millis, 1250);
    assert_eq!(r.cpu_limit_millis, 1250);
    assert_eq!(r.memory_request_bytes, 1_001_000_000);
    assert_eq!(r.memory_limit_bytes, 1_001_000_000);
}

#[test]
fn injected_pods_get_the_mesh_sidecar() {
    let ns = |name: &str, label: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": {"istio-injection": label}}})
    };
    let istiod = json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "istiod", "namespace": "istio-system"},
        "spec": {"chart": {"spec": {"chart": "istiod"}}, "values": {
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "global": {"proxy": {"resources": {
                "requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}}}}}});
    let app = |ns: &str, name: &str| {
        deployment(ns, name, json!([container("10m", "16Mi", "100m", "32Mi")]))
    };
    let mut opted_out = app("mesh", "out");
    opted_out["spec"]["template"]["metadata"] =
        json!({"labels": {"sidecar.istio.io/inject": "false"}});
    let mut opted_in = app("plain", "in");
    opted_in["spec"]["template"]["metadata"] = json!({"labels": {"sidecar.istio.io/inject": "true"},
               "annotations": {"sidecar.istio.io/proxyMemory": "100Mi"}});
    let objects = vec![
        ns("mesh", "enabled"),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}}),
        istiod,
        app("mesh", "a"),
        opted_out,
        opted_in,
        app("plain", "b"),
    ];
    let items = itemize(&objects).unwrap();
    let get = |id: &str| {
        items
            .iter()
            .find(|i| i.object.starts_with(id))
            .unwrap()
            .clone()
    };
    assert_eq!(get("Deployment/mesh/a").sidecars, 1);
    assert_eq!(
        get("Deployment/mesh/a").resources.memory_request_bytes,
        80 * MI
    );
    assert_eq!(get("Deployment/mesh/out").sidecars, 0);
    assert_eq!(
        get("Deployment/plain/in").resources.memory_request_bytes,
        116 * MI
    );
    assert_eq!(get("Deployment/plain/b").sidecars, 0);
    let istiod = get("HelmRelease/istio-system/istiod");
    assert_eq!(istiod.pods, 1);
    assert_eq!(istiod.resources.memory_request_bytes, 256 * MI);
}

#[test]
fn canaried_deployments_count_primary_and_canary() {
    let d = deployment(
        "demo",
        "httpbin",
        json!([container("50m", "32Mi", "500m", "128Mi")]),
    );
    let canary = json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "httpbin", "namespace": "demo"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "httpbin"}}});
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "httpbin", "namespace": "demo"},
        "spec": {"minReplicas": 2, "scaleTargetRef": {"kind": "Deployment", "name": "httpbin"}}});
    assert_eq!(
        sum(std::slice::from_ref(&d)).unwrap().cpu_request_millis,
        50
    );
    assert_eq!(
        sum(&[d.clone(), canary.clone()])
            .unwrap()
            .cpu_request_millis,
        100
    );
    assert_eq!(sum(&[d, canary, hpa]).unwrap().cpu_request_millis, 200);
}

#[test]
fn helm_release_values_are_counted_per_chart() {
    let hr = |chart: &str, values: Value| {
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
               "metadata": {"name": chart, "namespace": "x"},
               "spec": {"chart": {"spec": {"chart": chart, "version": "1.0.0"}}, "values": values}})
    };
    let r = json!({"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}});
    let items = itemize(&[
        hr(
            "grafana",
            json!({"resources": r, "sidecar": {"resources": r}}),
        ),
        hr("prometheus", json!({"server": {"resources": r}})),
        hr("gateway", json!({})),
        hr(
            "loadtester",
            json!({"resources": r, "podLabels": {"sidecar.istio.io/inject": "true"}}),
        ),
        hr("mystery", json!({"resources": r})),
    ])
    .unwrap();
    assert_eq!(items[0].resources.cpu_request_millis, 200);
    assert_eq!(items[1].resources.memory_limit_bytes, 1024 * MI);
    // The gateway chart's own default, when values set none.
    assert_eq!(items[2].resources.memory_request_bytes, 128 * MI);
    // The load tester opts into injection: Istio's default sidecar is added.
    assert_eq!(items[3].sidecars, 1);
    assert_eq!(items[3].resources.memory_request_bytes, 228 * MI);
    assert!(items[4].not_counted.as_deref().unwrap().contains("mystery"));
    assert_eq!(items[4].resources, Resources::default());
}

#[test]
fn an_unparsable_quantity_names_the_object_and_field() {
    let d = deployment(
        "demo",
        "httpbin",
        json!([container("50m", "32Mb", "500m", "128Mi")]),
    );
    let e = format!("{:#}", sum(&[d]).unwrap_err());
    assert!(
        e.contains("Deployment/demo/httpbin")
            && e.contains("containers[0].resources.requests.memory")
            && e.contains("32Mb"),
        "{e}"
    );
    let hr = json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "grafana", "namespace": "monitoring"},
        "spec": {"chart": {"spec": {"chart": "grafana"}}, "values": {"resources": {"limits": {"cpu": "lots"}}}}});
    let e = format!("{:#}", sum(&[hr]).unwrap_err());
    assert!(
        e.contains("HelmRelease/monitoring/grafana")
            && e.contains("spec.values.resources.limits.cpu"),
        "{e}"
    );
}
