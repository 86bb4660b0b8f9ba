//! The `decide` target's policies and its reference model of the request contract (issue 2,
//! "Behaviour for each request"; issue 15, validity windows), written from the contract, not
//! from the filter's code.//!
//! The pools the fuzz bytes pick from (`pools.rs`), a policy and its configuration
//! (`policy.rs`), what the gate must decide and look up (`decide.rs`), the request's headers as
//! the model reads them and as the ABI serializes them (`headers.rs`); the unit tests are in
//! `tests.rs`.

mod decide;
mod headers;
mod policy;
mod pools;
#[cfg(test)]
mod tests;

pub use decide::{Clock, Expected, Lookups, Peer, decide};
pub use headers::{ambiguous, first, serialize};
pub use policy::{PolicySpec, Spelling, TokenSpec};
pub use pools::{DEFAULT_NOW, HEADERS, METHODS, PREFIXES, PRINCIPALS, SINKS, STAMPS};
