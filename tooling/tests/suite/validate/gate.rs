//! The gate's own objects, the WasmPlugin and the TrafficExtension: no clear-text token, a module
//! pinned by digest, never FAIL_OPEN, and a `pluginConfig` the filter's parser accepts.

use super::{Copy, expect_error};

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
