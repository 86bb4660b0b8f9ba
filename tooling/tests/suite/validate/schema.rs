//! Strict schemas: a misspelt or unknown field, a wrong type and a removed apiVersion are errors
//! naming the file, the object and the field, in core kinds and custom resources alike.

use super::{Copy, expect_error};

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
