//! The deploy pipeline behind `istio-demo up`, `down` and `status`, one concern per module.
//!
//! Data flow of `up`: `preflight` reads the cluster; `tokens` keeps the cluster's demo tokens or
//! makes new ones; `render` copies the manifest tree with the release values filled in (module
//! digest, registry name, token digests) and refuses placeholders; `plan` orders every object into
//! stages; `registry` brings up the in-cluster registry and pushes through a port-forward the
//! module and the `artifact` (Flux OCI artifact of the rendered tree); `flux` supplies Flux's own
//! install manifest; `wait` knows when an object is ready.

pub mod artifact;
pub mod execute;
pub mod flux;
pub mod plan;
pub mod preflight;
pub mod registry;
pub mod render;
pub mod resources;
pub mod tokens;
pub mod wait;
