//! Istio routing and Flagger's service: `retry-on` (retries that cover 5xx, or a 500 is never
//! retried: `gateway-error` covers 502-504 only) in a VirtualService and a Canary, and
//! `canary-mesh-gateway` (a Canary's gateways include `mesh`, or in-mesh traffic never follows
//! the canary weights).

use super::objects::array;
use crate::manifests::{Finding, Manifest};
use serde_json::Value;

/// `retry-on` for every HTTP route of a VirtualService.
pub(super) fn lint_virtual_service(m: &Manifest, out: &mut Vec<Finding>) {
    for (i, route) in array(&m.object, "/spec/http").iter().enumerate() {
        check_retries(
            m,
            &format!("spec.http[{i}].retries"),
            route.get("retries"),
            out,
        );
    }
}

/// `retry-on` and `canary-mesh-gateway` for a Canary's service.
pub(super) fn lint_canary(m: &Manifest, out: &mut Vec<Finding>) {
    check_retries(
        m,
        "spec.service.retries",
        m.object.pointer("/spec/service/retries"),
        out,
    );
    if let Some(gateways) = m
        .object
        .pointer("/spec/service/gateways")
        .and_then(Value::as_array)
        && !gateways.iter().any(|g| g == "mesh")
    {
        out.push(Finding::error(
            "canary-mesh-gateway",
            m,
            "spec.service.gateways",
            "gateways must include `mesh`, or in-mesh traffic never follows the canary weights",
        ));
    }
}

fn check_retries(m: &Manifest, path: &str, retries: Option<&Value>, out: &mut Vec<Finding>) {
    let Some(retries) = retries else { return };
    let attempts = retries.get("attempts").and_then(Value::as_i64).unwrap_or(0);
    let retry_on = retries.get("retryOn").and_then(Value::as_str).unwrap_or("");
    if attempts > 0 && !retry_on.split(',').any(|c| c.trim() == "5xx") {
        out.push(Finding::error(
            "retry-on",
            m,
            format!("{path}.retryOn"),
            "retries without `retryOn` covering 5xx never retry a 500: use e.g. `5xx,connect-failure,reset`",
        ));
    }
}
