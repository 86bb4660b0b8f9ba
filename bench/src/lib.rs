//! `make bench`: what the token gate costs in a real Envoy, next to no gate, Envoy's RBAC
//! filter and a Lua filter, measured the same way in alternating rounds; probe modules that
//! split the filter's cost; Envoy's instructions per request under callgrind (deterministic
//! where CPU time is noisy); and the soak run (a million requests, memory flat).

pub mod bench;
pub mod instructions;
pub mod load;
pub mod machine;
pub mod probe;
pub mod report;
pub mod rig;
pub mod soak;
pub mod summary;
