//! The `istio-demo` command line as a library, so the end-to-end tests reuse its Envoy harness.
//! One module per subcommand under `commands`; shared machinery beside it.

pub mod cluster;
pub mod commands;
pub mod deploy;
pub mod envoy;
pub mod manifests;
pub mod oci;
