//! The `istio-demo` command line as a library, so its integration tests drive each command.
//! One module per subcommand under `commands`; shared machinery beside it.

pub mod cluster;
pub mod commands;
pub mod deploy;
pub mod manifests;
pub mod oci;
