//! The `WWW-Authenticate` challenge on the compiled module: every 401 carries exactly one,
//! naming the realm and the token header (RFC 9110 §15.5.2), and no other status does, whether
//! the filter or the upstream answered.

use crate::common::{LEGACY_TOKEN, OTHER_SPIFFE, SLEEP_TOKEN, config, host, host_with, sha256_hex};
use rfma_wasm_host::{Response, Status};
use serde_json::json;

const DEFAULT_CHALLENGE: &str = r#"RFMA-Token realm="istio-demo", header="x-rfma-token""#;

/// The challenges the client got: every `www-authenticate` value of the response.
fn challenges(r: &Response) -> Vec<String> {
    r.client()
        .unwrap_or_else(|| panic!("no response reached the client: {r:?}"))
        .headers
        .get_all("www-authenticate")
}

#[test]
fn a_missing_or_blank_token_is_401_with_the_default_challenge() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    for r in [
        plugin.request().send(),
        plugin.request().header("x-rfma-token", "").send(),
        plugin.request().header("x-rfma-token", " \t ").send(),
    ] {
        assert_eq!(r.status(), Some(401), "{r:?}");
        assert_eq!(challenges(&r), vec![DEFAULT_CHALLENGE], "{r:?}");
        // The module set it on its local reply; nothing else added one.
        assert_eq!(
            r.local_reply().unwrap().headers.get_all("www-authenticate"),
            vec![DEFAULT_CHALLENGE]
        );
    }
}

#[test]
fn the_challenge_names_the_configured_realm_and_header() {
    let mut cfg = config();
    cfg["realm"] = json!("payments api");
    cfg["header"] = json!("X-Api-Key");
    let mut host = host_with(&cfg);
    let r = host.plugin().unwrap().request().send();
    assert_eq!(r.status(), Some(401));
    assert_eq!(
        challenges(&r),
        vec![r#"RFMA-Token realm="payments api", header="x-api-key""#]
    );
}

#[test]
fn no_other_status_carries_a_challenge() {
    let mut host = host();
    let mut plugin = host.plugin().unwrap();
    let cases = [
        (
            plugin
                .request()
                .header("x-rfma-token", LEGACY_TOKEN)
                .header("x-rfma-token", LEGACY_TOKEN)
                .send(),
            400,
        ),
        (plugin.request().header("x-rfma-token", "nope").send(), 403),
        (
            plugin
                .request()
                .header("x-rfma-token", SLEEP_TOKEN)
                .peer(OTHER_SPIFFE)
                .send(),
            403,
        ),
        (
            plugin.request().header("x-rfma-token", LEGACY_TOKEN).send(),
            200,
        ),
        (plugin.request().path("/status/200").send(), 200),
        // The upstream's own answers pass as they are: the filter adds nothing to them.
        (
            plugin
                .request()
                .header("x-rfma-token", LEGACY_TOKEN)
                .upstream_status(401)
                .send(),
            401,
        ),
        (
            plugin
                .request()
                .path("/status/403")
                .upstream_status(403)
                .send(),
            403,
        ),
    ];
    for (r, status) in cases {
        assert_eq!(r.status(), Some(status), "{r:?}");
        assert_eq!(challenges(&r), Vec::<String>::new(), "{r:?}");
    }
    plugin
        .host()
        .inject_fault("proxy_get_header_map_pairs", Status::InternalFailure);
    let r = plugin.request().send();
    assert_eq!(r.status(), Some(500), "{r:?}");
    assert_eq!(challenges(&r), Vec::<String>::new());
}

#[test]
fn the_challenge_never_carries_a_token_or_a_digest() {
    let mut cfg = config();
    cfg["tokens"] = json!([{"name": "a", "sha256": sha256_hex(LEGACY_TOKEN)}]);
    let mut host = host_with(&cfg);
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-rfma-token", "  ")
        .send();
    let challenge = challenges(&r).join("\n");
    assert_eq!(challenge, DEFAULT_CHALLENGE);
    assert!(!challenge.contains(LEGACY_TOKEN));
    assert!(!challenge.contains(&sha256_hex(LEGACY_TOKEN)[..8]));
}

/// Every deny reason the module sends, each once: a challenge exactly on the 401s, with
/// `error` naming the reason when a token was used outside its validity window.
#[test]
fn every_deny_reason_has_a_challenge_exactly_when_it_is_a_401() {
    let mut cfg = config();
    cfg["tokens"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "y2026", "value": "y2026-demo-token",
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-12-31T23:59:59Z"}));
    let mut host = host_with(&cfg);
    let mut plugin = host.plugin().unwrap();
    let windowed = |p: &mut rfma_wasm_host::Plugin<'_>, ns: u64| {
        p.request()
            .header("x-rfma-token", "y2026-demo-token")
            .at_ns(ns)
            .send()
    };
    let mut replies = vec![
        plugin.request().send(),
        plugin
            .request()
            .header("x-rfma-token", "a")
            .header("x-rfma-token", "b")
            .send(),
        plugin.request().header("x-rfma-token", "nope").send(),
        plugin
            .request()
            .header("x-rfma-token", SLEEP_TOKEN)
            .peer(OTHER_SPIFFE)
            .send(),
        windowed(&mut plugin, 1_798_761_600_000_000_000),
        windowed(&mut plugin, 1_767_225_599_999_999_999),
    ];
    plugin.host().inject_fault(
        "proxy_get_current_time_nanoseconds",
        Status::InternalFailure,
    );
    replies.push(windowed(&mut plugin, 1_767_225_600_000_000_000));
    let mut seen = Vec::new();
    for r in &replies {
        let reason = r.handover()["reason"].clone();
        let status = r.status().unwrap();
        let want: Vec<String> = match (status, reason.as_str()) {
            (401, "missing_token") => vec![DEFAULT_CHALLENGE.to_owned()],
            (401, _) => vec![format!(r#"{DEFAULT_CHALLENGE}, error="{reason}""#)],
            _ => Vec::new(),
        };
        assert_eq!(challenges(r), want, "{reason}: {r:?}");
        seen.push((reason, status));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("duplicate_token", 400),
            ("expired_token", 401),
            ("internal_error", 500),
            ("invalid_token", 403),
            ("missing_token", 401),
            ("principal_mismatch", 403),
            ("token_not_yet_valid", 401),
        ]
        .map(|(r, s)| (r.to_owned(), s))
    );
}
