//! `rfma-filter`: a Proxy-Wasm HTTP filter that gates requests on a hashed token allowlist
//! and hands its decision to Envoy's access log, which writes one ECS record per request.
//!
//! Pure logic over plain data: [`config`] (plugin configuration → immutable policy, its
//! timestamps read by [`timestamp`]),
//! [`gate`] (where a request is decided), [`handover`] (what the access log gets).
//! [`host`] is the only code that touches the Proxy-Wasm ABI; [`filter`] wires them into
//! the SDK's contexts.

// Tests assert by panicking; the no-panic rule is for the filter itself.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
pub mod digest;
pub mod gate;
pub mod handover;
pub mod headers;
pub mod host;
pub mod response;
pub mod timestamp;

#[cfg(target_arch = "wasm32")]
mod filter;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    filter::register();
}}
