//! Flagger's canary: what it owns (replicas, routing), retries that cover a 500, the mesh gateway,
//! and every policy (the gate's plugin first) selecting the primary pods as well as the canary
//! ones.

use super::{Copy, expect_error};

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
