//! Real record lines, as a real Envoy 1.40 writes them with the shipped format
//! (`filter/access-log-format.json`) and the shipped module, checked field by field against ECS
//! and against the index template Filebeat writes them into: every field an ECS field (or
//! `rfma.*`), with its ECS type and allowed values, and mapped with that type.

use crate::ecs_record::{FACTS, TEMPLATE, check_record_line, json_file};
use crate::sandbox::{envoy_bin, wasm};
use envoy_harness::http1::Request;
use envoy_harness::{LogFollower, Stack, StackConfig};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "ecs-demo-token";

#[test]
fn every_line_envoy_writes_is_ecs_and_mapped_by_the_template() {
    let config = json!({
        "tokens": [{ "name": "ecs", "value": TOKEN }],
        "bypass": [{ "path_prefix": "/status/", "methods": ["GET"] }],
    });
    let stack = Stack::start(&StackConfig {
        envoy_bin: envoy_bin(),
        wasm: wasm(),
        plugin_config: config.to_string(),
        options: Default::default(),
    })
    .unwrap_or_else(|e| panic!("cannot start Envoy and httpbin: {e}"));
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let addr = stack.plain().unwrap();
    let requests = [
        // allowed, with a query, a user agent and a domain with a port
        Request::get("/get?a=1")
            .header("host", "httpbin.demo:8000")
            .header("user-agent", "ecs-check/1.0")
            .header("x-rfma-token", TOKEN),
        // bypassed; the upstream answers 503
        Request::get("/status/503"),
        // each deny the gate can give over plain text
        Request::new("POST", "/post"),
        Request::get("/get").header("x-rfma-token", "wrong"),
        Request::get("/get")
            .header("x-rfma-token", TOKEN)
            .header("x-rfma-token", TOKEN),
        // refused by Envoy before the filter: a record without the filter's part
        Request::get("/get").header("x-big", &"b".repeat(61 * 1024)),
    ];
    let statuses: Vec<u16> = requests
        .into_iter()
        .map(|r| r.send(addr).unwrap_or_else(|e| panic!("{e}")).status)
        .collect();
    assert_eq!(statuses, [200, 503, 401, 403, 400, 431]);
    let lines = log
        .wait_lines(statuses.len(), Duration::from_secs(30))
        .unwrap();
    assert_eq!(lines.len(), statuses.len(), "{lines:#?}");

    let facts = json_file(FACTS);
    let template = json_file(TEMPLATE);
    let mut decisions = Vec::new();
    for line in &lines {
        let problems = check_record_line(line, &facts, Some(&template));
        assert!(problems.is_empty(), "{line}\n{problems:#?}");
        let record: Value = serde_json::from_str(line).unwrap();
        decisions.push(record["rfma"]["decision"].as_str().map(str::to_owned));
    }
    // The lines are the requests', in order: the checks above ran on every kind of record.
    assert_eq!(
        decisions,
        [
            Some("allow"),
            Some("bypass"),
            Some("deny"),
            Some("deny"),
            Some("deny"),
            None
        ]
        .map(|d| d.map(str::to_owned))
    );
}
