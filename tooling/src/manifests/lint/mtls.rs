//! `peer-authentication-strict`: mTLS in the demo namespace is STRICT, for the whole namespace
//! and on every port: a token bound to `principals` trusts the caller's SPIFFE identity, which
//! only mTLS proves (SECURITY.md).

use crate::manifests::{Finding, Manifest};
use serde_json::Value;

/// The namespace whose mTLS must be STRICT and whose httpbin the filter gates.
pub const DEMO_NAMESPACE: &str = "demo";

/// `peer-authentication-strict` for a PeerAuthentication in [`DEMO_NAMESPACE`].
pub(super) fn lint_peer_authentication(m: &Manifest, out: &mut Vec<Finding>) {
    let mode = mode_of(m.object.pointer("/spec/mtls"));
    if mode != "STRICT" {
        out.push(Finding::error(
            "peer-authentication-strict",
            m,
            "spec.mtls.mode",
            format!("mTLS in namespace `{DEMO_NAMESPACE}` must be STRICT, found {mode}"),
        ));
    }
    if let Some(ports) = m
        .object
        .pointer("/spec/portLevelMtls")
        .and_then(Value::as_object)
    {
        for (port, setting) in ports {
            let mode = mode_of(Some(setting));
            if mode != "STRICT" {
                out.push(Finding::error(
                    "peer-authentication-strict",
                    m,
                    format!("spec.portLevelMtls.{port}.mode"),
                    format!("port {port} weakens mTLS to {mode} in namespace `{DEMO_NAMESPACE}`"),
                ));
            }
        }
    }
}

/// The `mode` of an mTLS setting, `UNSET` when it has none.
fn mode_of(setting: Option<&Value>) -> &str {
    setting
        .and_then(|s| s.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("UNSET")
}
