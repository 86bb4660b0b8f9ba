//! How a stream ends: a local reply (deferred, not forwarded, through the encoder path) or
//! forwarding, with the upstream status reaching the client and the module.

use super::probe::configured;
use rfma_wasm_host::Action;

#[test]
fn local_reply_is_captured_and_the_request_is_not_forwarded() {
    let mut host = configured();
    let r = host
        .plugin()
        .unwrap()
        .request()
        .header("x-local", "1")
        .send();
    let reply = r.local_reply().expect("local reply");
    assert_eq!(reply.status, 418);
    assert_eq!(
        reply.details, "probe_details",
        "Envoy replaces whitespace in details"
    );
    assert_eq!(reply.body_json(), serde_json::json!({"a": 1}));
    assert_eq!(
        reply.headers.pairs(),
        vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-extra".to_string(), "1".to_string())
        ]
    );
    assert_eq!(reply.grpc_status, -1);
    assert!(!r.is_forwarded());
    // The module returned Continue, but a local reply stops the iteration.
    assert_eq!(r.request_action(), Some(Action::Pause(1)));
    let client = r.client().unwrap();
    assert_eq!(client.status, 418);
    assert!(client.from_local_reply);
    assert_eq!(client.headers.get("content-length").as_deref(), Some("7"));
    assert_eq!(
        client.headers.get_all("content-type"),
        vec!["application/json"]
    );
    // The local reply goes through the encoder path: on_response_headers sees it.
    assert_eq!(r.filter_state("wasm.out.status"), Some(&b"418"[..]));
    assert_eq!(
        r.callbacks(),
        [
            "proxy_on_context_create",
            "proxy_on_request_headers",
            "proxy_on_response_headers",
            "proxy_on_log",
            "proxy_on_done",
            "proxy_on_delete"
        ]
    );
}

#[test]
fn continue_forwards_and_the_upstream_status_reaches_client_and_module() {
    let mut host = configured();
    let r = host.plugin().unwrap().request().upstream_status(201).send();
    assert!(r.is_forwarded());
    assert!(r.local_reply().is_none());
    assert_eq!(r.status(), Some(201));
    assert!(!r.client().unwrap().from_local_reply);
    assert_eq!(r.filter_state("wasm.out.status"), Some(&b"201"[..]));
}
