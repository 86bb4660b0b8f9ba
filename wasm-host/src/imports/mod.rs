//! The functions the host gives the module: the Proxy-Wasm ABI 0.2.1 (`env`)
//! and the small part of WASI preview 1 a Rust `wasm32-wasip1` module uses.
//! Semantics follow Envoy's `context.cc` and proxy-wasm-cpp-host's `exports.cc`.
//!
//! This file holds what every import shares (the `proxy!`/`wasi!` wrappers,
//! the start-time restriction) and `define`, which links them all and stubs
//! the rest. The functions themselves: `proxy.rs` (logging, clock, properties,
//! shared data, metrics, contexts), `stream.rs` (buffers, header maps, stream
//! control, local replies), `wasi.rs`; `memory.rs` reads and writes the
//! module's memory.

use wasmtime::{Caller, Error, ExternType, Linker, Store, Val, ValType};

use crate::abi::Status;
use crate::module::Module;
use crate::state::State;

type C<'a> = Caller<'a, State>;
type HostResult = wasmtime::Result<Status>;

/// `proxy_*` functions Envoy has and this host deliberately does not model:
/// they return `Unimplemented` (12) and are listed by `Host::unsupported_calls`.
pub const UNSUPPORTED_PROXY_CALLS: &[&str] = &[
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_get_buffer_status",
    "proxy_set_buffer_bytes",
];

const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(status) => return Ok(status),
        }
    };
}

/// Envoy runs `_initialize` with only WASI allowed ("restricted_callback").
fn check_allowed(c: &mut C<'_>, name: &str) -> wasmtime::Result<()> {
    if c.data().restricted {
        c.data_mut().record_call(name, None);
        return Err(Error::msg(format!(
            "restricted_callback: {name} called during the module's start (_initialize); \
             Envoy allows only WASI calls there"
        )));
    }
    Ok(())
}

macro_rules! proxy {
    ($linker:expr, $name:literal, |$c:ident $(, $a:ident : $t:ty)*| $body:block) => {
        $linker.func_wrap(
            "env",
            $name,
            |mut caller: Caller<'_, State>, $($a: $t),*| -> wasmtime::Result<i32> {
                check_allowed(&mut caller, $name)?;
                let fuel_left = caller.get_fuel().ok();
                if let Some(fault) = caller.data().faults.get($name).copied() {
                    caller.data_mut().record_call_with_fuel($name, Some(fault.code()), fuel_left);
                    return Ok(fault.code());
                }
                let status: Status = {
                    let $c = &mut caller;
                    #[allow(clippy::redundant_closure_call)]
                    let r: HostResult = (|| $body)();
                    r?
                };
                caller.data_mut().record_call_with_fuel($name, Some(status.code()), fuel_left);
                Ok(status.code())
            },
        )?;
    };
}

macro_rules! wasi {
    ($linker:expr, $name:literal, |$c:ident $(, $a:ident : $t:ty)*| $body:block) => {
        for module in WASI_MODULES {
            $linker.func_wrap(
                module,
                $name,
                |mut caller: Caller<'_, State>, $($a: $t),*| -> wasmtime::Result<i32> {
                    let errno: i32 = {
                        let $c = &mut caller;
                        #[allow(clippy::redundant_closure_call)]
                        let r: wasmtime::Result<i32> = (|| $body)();
                        r?
                    };
                    caller.data_mut().record_call(concat!("wasi:", $name), Some(errno));
                    Ok(errno)
                },
            )?;
        }
    };
}

mod memory;
mod proxy;
mod stream;
mod wasi;

use proxy::define_proxy;
use stream::define_stream;
use wasi::define_wasi;

/// Defines every import: the Proxy-Wasm ABI, WASI, and, for any other import
/// the module declares, a stub (`Unimplemented` or a clear trap) so linking
/// never fails. Returns the imports that got a trapping stub.
pub(crate) fn define(
    linker: &mut Linker<State>,
    store: &mut Store<State>,
    module: &Module,
) -> wasmtime::Result<Vec<String>> {
    define_proxy(linker)?;
    define_stream(linker)?;
    define_wasi(linker)?;
    let mut unknown = Vec::new();
    for import in module.inner.imports() {
        let (m, n) = (import.module().to_string(), import.name().to_string());
        let ExternType::Func(ty) = import.ty() else {
            return Err(Error::msg(format!(
                "the module imports {m}.{n}, which is not a function; Envoy provides none"
            )));
        };
        if linker.get(&mut *store, &m, &n).is_ok() {
            continue;
        }
        let full = format!("{m}.{n}");
        let returns_status =
            ty.results().len() == 1 && matches!(ty.results().next(), Some(ValType::I32));
        if m == "env" && UNSUPPORTED_PROXY_CALLS.contains(&n.as_str()) && returns_status {
            let name = n.clone();
            linker.func_new(
                &m,
                &n,
                ty,
                move |mut c, _params: &[Val], results: &mut [Val]| {
                    c.data_mut().unsupported.push(name.clone());
                    c.data_mut()
                        .record_call(&name, Some(Status::Unimplemented.code()));
                    results[0] = Val::I32(Status::Unimplemented.code());
                    Ok(())
                },
            )?;
        } else {
            unknown.push(full.clone());
            linker.func_new(
                &m,
                &n,
                ty,
                move |mut c, _params: &[Val], _results: &mut [Val]| {
                    c.data_mut().record_call(&full, None);
                    Err(Error::msg(format!(
                        "the module called {full}, which this host does not provide"
                    )))
                },
            )?;
        }
    }
    Ok(unknown)
}
