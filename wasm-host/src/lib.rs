//! A wasmtime Proxy-Wasm host that behaves like Envoy, for testing the
//! compiled `rfma_filter.wasm` (see `wasm-host/HOST.md` for the fidelity table).
//!
//! ```no_run
//! use rfma_wasm_host::{Host, filter_module};
//! let mut host = Host::load(filter_module()).unwrap();
//! let mut plugin = host.configure(r#"{"tokens":[{"name":"demo","value":"test1"}]}"#).unwrap();
//! let r = plugin.request().path("/get").header("x-rfma-token", "test1").send();
//! assert!(r.is_forwarded());
//! ```

pub mod abi;
pub mod fuel;
pub mod headers;
mod host;
mod imports;
mod module;
mod request;
mod state;

pub use abi::{Action, LogLevel, Status};
pub use headers::Headers;
pub use host::{
    ConfigureError, DEFAULT_START_TIME_NS, Host, HostError, HostOptions, Plugin, VmFailure,
};
pub use imports::UNSUPPORTED_PROXY_CALLS;
pub use module::{FUEL_PER_CALL, Module, engine, filter_module, module_path, trap_module};
pub use request::{ClientResponse, HANDOVER_PREFIX, RequestBuilder, Response};
pub use state::{HostCall, LocalReply, LogLine, LogOrigin};
