//! The gate's own objects, a WasmPlugin (`spec`) or a TrafficExtension (`spec.wasm`):
//! `wasm-plugin` (no clear-text token, well-formed token digests, never FAIL_OPEN, the module
//! pinned by a digest that agrees with itself) and `wasm-plugin-config` (the filter's own
//! configuration parser accepts `pluginConfig`).

use crate::manifests::{Finding, Manifest};
use serde_json::Value;

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The rules of the plugin specification `spec` at field path `base` of `m`.
pub(super) fn lint(m: &Manifest, base: &str, spec: Option<&Value>, out: &mut Vec<Finding>) {
    let Some(spec) = spec else {
        out.push(Finding::error(
            "wasm-plugin",
            m,
            base,
            "no wasm plugin specification",
        ));
        return;
    };
    let tokens = spec
        .pointer("/pluginConfig/tokens")
        .and_then(Value::as_array);
    for (i, token) in tokens.map_or(&[][..], Vec::as_slice).iter().enumerate() {
        if token.get("value").is_some() {
            out.push(Finding::error(
                "wasm-plugin",
                m,
                format!("{base}.pluginConfig.tokens[{i}].value"),
                "clear-text token in Git: replace `value` with `sha256` (istio-demo token hash)",
            ));
        }
        if let Some(digest) = token.get("sha256")
            && !digest.as_str().is_some_and(is_hex64)
        {
            out.push(Finding::error(
                "wasm-plugin",
                m,
                format!("{base}.pluginConfig.tokens[{i}].sha256"),
                "token digest must be 64 lowercase hex digits",
            ));
        }
    }
    // The filter's own parser decides: a configuration it refuses denies every request.
    if let Some(config) = spec.get("pluginConfig") {
        let text = serde_json::to_vec(config).unwrap_or_default();
        if let Err(e) = rfma_filter::config::parse(&text) {
            let path = if e.field == "configuration" {
                format!("{base}.pluginConfig")
            } else {
                format!("{base}.pluginConfig.{}", e.field)
            };
            out.push(Finding::error(
                "wasm-plugin-config",
                m,
                path,
                format!(
                    "the filter would refuse this configuration (and so refuse every request): {}",
                    e.message
                ),
            ));
        }
    }
    if spec.get("failStrategy").and_then(Value::as_str) == Some("FAIL_OPEN") {
        out.push(Finding::error(
            "wasm-plugin",
            m,
            format!("{base}.failStrategy"),
            "FAIL_OPEN lets every request through unchecked once the module fails: use FAIL_CLOSE or FAIL_RELOAD",
        ));
    }
    let url = spec.get("url").and_then(Value::as_str).unwrap_or("");
    let url_digest = url.split_once("@sha256:").map(|(_, d)| d);
    let sha = spec
        .get("sha256")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match (url_digest, sha) {
        (None, None) => out.push(Finding::error(
            "wasm-plugin",
            m,
            format!("{base}.sha256"),
            format!("module `{url}` is not pinned: set `sha256` or reference the image by digest (@sha256:...)"),
        )),
        (Some(d), Some(s)) if d != s => out.push(Finding::error(
            "wasm-plugin",
            m,
            format!("{base}.sha256"),
            format!("`sha256` {s} differs from the digest in the url ({d})"),
        )),
        _ => {}
    }
    for digest in url_digest.into_iter().chain(sha) {
        // A placeholder digest is well-formed: `placeholders` reports it.
        if !is_hex64(digest) {
            out.push(Finding::error(
                "wasm-plugin",
                m,
                format!("{base}.url"),
                format!("malformed digest `{digest}`"),
            ));
        }
    }
}
