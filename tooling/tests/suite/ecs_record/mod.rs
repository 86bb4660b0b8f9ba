//! The access record is ECS. Its one definition, `filter/access-log-format.json` (Envoy's
//! `json_format`), is read field by field: the leaf path, the Envoy command operator, and what
//! that operator prints (a number, any string, one of a few strings, a constant list). Each field
//! is then checked
//! (a) against the ECS facts the project keeps (`tooling/tests/ecs-facts.json`: types, allowed
//!     values, each category's expected event types),
//! (b) against the full ECS definitions in `../shared/ecs/` when they are there (and the facts
//!     against them),
//! (c) for being ECS unless it is under `rfma.`,
//! (d) against the index template, which must map it with its ECS type.
//! Sample lines as Envoy prints them go through the same check, [`check_record_line`], which
//! needs nothing but `serde_json`: another crate may copy the marked section as a whole.
//!
//! The other modules (validate_contract, kibana_objects) read the format and the template through
//! this one: [`format_fields`], [`mapping`], [`operator`], [`cel_results`].

use serde_json::Value;

use std::path::{Path, PathBuf};

mod facts;
mod format;
mod line_check;
mod template;
mod tests;

use facts::*;
pub use format::*;
pub use line_check::*;
pub use template::*;

pub const FORMAT: &str = "filter/access-log-format.json";
pub const TEMPLATE: &str = "elk/files/rfma-index-template.json";
pub const FACTS: &str = "tooling/tests/ecs-facts.json";
/// The one prefix for fields ECS does not define.
pub const OWN_PREFIX: &str = "rfma.";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn json_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// Lines as Envoy prints them with the format (the first is a real one): allowed, denied, and
/// bypassed requests, over HTTP/1.1 and HTTP/2, one from a peer that is not an IP address.
pub const SAMPLE_LINES: &[&str] = &[
    r#"{"@timestamp":"2026-12-05T07:20:27.660Z","destination":{"address":"127.0.0.1","ip":"127.0.0.1","port":19900},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":100342,"kind":"event","module":"rfma","outcome":"success","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":97,"id":"31d4af67-5d1e-4c3e-9e58-0d1f1c2e7a11","method":"GET"},"response":{"body":{"bytes":2},"bytes":118,"status_code":200},"version":"1.1"},"network":{"protocol":"http"},"rfma":{"decision":"allow","token":{"name":"sleep"},"response_flags":"-","route":"r1"},"source":{"address":"127.0.0.1","ip":"127.0.0.1","port":40666},"url":{"original":"/anything/x?a=1&b=2","path":"/anything/x","query":"a=1&b=2","scheme":"http","domain":"127.0.0.1"},"user_agent":{"original":"curl/7.88.1"}}"#,
    r#"{"@timestamp":"2026-12-05T07:21:02.014Z","destination":{"address":"10.244.0.12","ip":"10.244.0.12","port":8080},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":412877,"kind":"event","module":"rfma","outcome":"failure","reason":"missing_token","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":212,"id":"8a1c0b7e-0f4e-4d55-9a3b-6f0e2d1c9b84","method":"POST"},"response":{"body":{"bytes":0},"bytes":91,"status_code":401},"version":"1.1"},"network":{"protocol":"http"},"rfma":{"decision":"deny","reason":"missing_token","principal":"spiffe://cluster.local/ns/demo/sa/sleep","route":"default","response_flags":"-"},"source":{"address":"10.244.0.9","ip":"10.244.0.9","port":51514},"url":{"original":"/post","path":"/post","scheme":"http","domain":"httpbin.demo"},"user_agent":{"original":"curl/8.11.1"}}"#,
    r#"{"@timestamp":"2026-12-05T07:22:45.301Z","destination":{"address":"fd00:10:244::c","ip":"fd00:10:244::c","port":8080},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":733120,"kind":"event","module":"rfma","outcome":"failure","reason":"principal_mismatch","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":64,"id":"c0ffee00-1111-4222-8333-944445555666","method":"GET"},"response":{"body":{"bytes":0},"bytes":27,"status_code":403},"version":"2"},"network":{"protocol":"http"},"rfma":{"decision":"deny","reason":"principal_mismatch","principal":"spiffe://cluster.local/ns/other/sa/default","route":"default","response_flags":"-","upstream":{"cluster":"inbound|8000||"}},"source":{"address":"fd00:10:244::7","ip":"fd00:10:244::7","port":39002},"trace":{"id":"0af7651916cd43dd8448eb211c80319c"},"url":{"original":"/headers","path":"/headers","scheme":"https","domain":"httpbin.demo"},"user_agent":{"original":"Go-http-client/2.0"}}"#,
    r#"{"@timestamp":"2026-12-05T07:23:10.000Z","destination":{"address":"10.244.0.12","ip":"10.244.0.12","port":15021},"ecs":{"version":"9.4.0"},"event":{"category":["web"],"dataset":"rfma.access","duration":58211,"kind":"event","module":"rfma","outcome":"success","type":["access"]},"http":{"request":{"body":{"bytes":0},"bytes":88,"id":"5b3e9f0a-7c1d-4e2f-8a9b-0c1d2e3f4a5b","method":"GET"},"response":{"body":{"bytes":2},"bytes":75,"status_code":200},"version":"1.1"},"network":{"protocol":"http"},"rfma":{"decision":"bypass","route":"health","response_flags":"-","upstream":{"address":"127.0.0.1:8080","cluster":"inbound|8080||"}},"source":{"address":"envoy","ip":"envoy","port":0},"url":{"original":"/healthz/ready","path":"/healthz/ready","scheme":"http"},"user_agent":{"original":"kube-probe/1.33"}}"#,
];
