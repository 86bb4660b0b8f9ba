//! The CLI's integration tests, one binary (as cargo's own test suite is laid out): a module per
//! command or concern, `support` for the scripted API conversations and the loopback registry.
//! Conversations with the Kubernetes API go through kube's `tower-test` mock, never a server;
//! pushes go to a real registry on loopback; the cluster tests are opt-in (`cluster_real`).

// Each module uses the part of the support it needs.
#![allow(dead_code)]

mod support;

mod cli;
mod cluster_real;
mod down_mock;
mod dry_run_client;
mod ecs_envoy;
mod ecs_record;
mod kibana_objects;
mod manifests_push;
mod profiles;
mod sandbox;
mod status_mock;
mod token_rotate;
mod token_usage;
mod up;
mod validate;
mod validate_contract;
mod verify_mock;
mod wasm_push;
