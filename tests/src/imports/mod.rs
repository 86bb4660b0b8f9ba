//! The functions the host gives the module: the Proxy-Wasm ABI 0.2.1 (`env`)
//! and the small part of WASI preview 1 a Rust `wasm32-wasip1` module uses.
//! Semantics follow Envoy's `context.cc` and proxy-wasm-cpp-host's `exports.cc`.

use wasmtime::{Caller, Error, ExternType, Linker, Store, Val, ValType};

use crate::abi::{self, LogLevel, MetricType, Status, buffer_type, map_type};
use crate::headers::Headers;
use crate::module::Module;
use crate::state::{LocalReply, LogOrigin, State};

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

// WASI errno values.
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOENT: i32 = 44;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;

/// Envoy's limit on one `random_get` call.
const RANDOM_GET_MAX: i32 = 64 * 1024;

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(status) => return Ok(status),
        }
    };
}

fn read(c: &mut C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data(&*c)
        .get(start..end)
        .map(|s| s.to_vec())
        .ok_or(Status::InvalidMemoryAccess)
}

fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data_mut(&mut *c)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

fn write_u64(c: &mut C<'_>, ptr: i32, v: u64) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

/// proxy-wasm-cpp-host's `copyToPointerSize`: bytes go to memory the module
/// allocates; an empty value is a null pointer with size 0 (no allocation).
fn copy_out(c: &mut C<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let mut pointer = 0i32;
    if !bytes.is_empty() {
        let malloc = c
            .data()
            .malloc
            .clone()
            .ok_or_else(|| Error::msg("the module exports no allocator"))?;
        let len =
            i32::try_from(bytes.len()).map_err(|_| Error::msg("value too large for wasm32"))?;
        pointer = malloc.call(&mut *c, len)?;
        if pointer == 0 {
            return Ok(Status::InvalidMemoryAccess);
        }
        tri!(write(c, pointer, bytes));
    }
    tri!(write_u32(c, ptr_ptr, pointer as u32));
    tri!(write_u32(c, size_ptr, bytes.len() as u32));
    Ok(Status::Ok)
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

fn header_map_type_ok(map: i32) -> bool {
    (0..=map_type::MAX).contains(&map)
}

/// Changes a header map the module may change now (Envoy's `getMap`), else `BadArgument`.
fn edit_map(c: &mut C<'_>, map: i32, edit: impl FnOnce(&mut Headers)) -> Status {
    match c.data_mut().stream_mut().and_then(|s| s.mut_map(map)) {
        Some(headers) => {
            edit(headers);
            Status::Ok
        }
        None => Status::BadArgument,
    }
}

/// Defines every import: the Proxy-Wasm ABI, WASI, and, for any other import
/// the module declares, a stub (`Unimplemented` or a clear trap) so linking
/// never fails. Returns the imports that got a trapping stub.
pub(crate) fn define(
    linker: &mut Linker<State>,
    store: &mut Store<State>,
    module: &Module,
) -> wasmtime::Result<Vec<String>> {
    define_proxy(linker)?;
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

fn define_proxy(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    proxy!(linker, "proxy_log", |c, level: i32, ptr: i32, len: i32| {
        let Some(level) = LogLevel::from_raw(level) else {
            return Ok(Status::BadArgument);
        };
        let message = tri!(read(c, ptr, len));
        c.data_mut().log(
            level,
            String::from_utf8_lossy(&message).into_owned(),
            LogOrigin::ProxyLog,
        );
        Ok(Status::Ok)
    });

    proxy!(linker, "proxy_get_log_level", |c, ptr: i32| {
        let level = c.data().log_level as u32;
        tri!(write_u32(c, ptr, level));
        Ok(Status::Ok)
    });

    proxy!(
        linker,
        "proxy_get_current_time_nanoseconds",
        |c, ptr: i32| {
            let now = c.data().now_ns;
            tri!(write_u64(c, ptr, now));
            Ok(Status::Ok)
        }
    );

    proxy!(
        linker,
        "proxy_set_tick_period_milliseconds",
        |c, period: i32| {
            c.data_mut().tick_period_ms = period as u32;
            Ok(Status::Ok)
        }
    );

    proxy!(
        linker,
        "proxy_get_buffer_bytes",
        |c, kind: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| {
            if !(0..=buffer_type::MAX).contains(&kind) {
                return Ok(Status::BadArgument);
            }
            let buffer: Vec<u8> = match kind {
                buffer_type::VM_CONFIGURATION => c.data().vm_configuration.clone(),
                buffer_type::PLUGIN_CONFIGURATION => {
                    tri!(
                        c.data()
                            .plugin_configuration
                            .clone()
                            .ok_or(Status::NotFound)
                    )
                }
                // Headers-only requests: the body buffers exist and are empty.
                buffer_type::HTTP_REQUEST_BODY | buffer_type::HTTP_RESPONSE_BODY
                    if c.data().stream().is_some() =>
                {
                    Vec::new()
                }
                _ => return Ok(Status::NotFound),
            };
            let (start, mut length) = (start as u32 as u64, max as u32 as u64);
            if start > buffer.len() as u64 {
                length = 0;
            } else if start + length > buffer.len() as u64 {
                length = buffer.len() as u64 - start;
            }
            let slice = &buffer[start.min(buffer.len() as u64) as usize..][..length as usize];
            copy_out(c, slice, ptr_ptr, size_ptr)
        }
    );

    proxy!(
        linker,
        "proxy_get_header_map_pairs",
        |c, map: i32, ptr_ptr: i32, size_ptr: i32| {
            if !header_map_type_ok(map) {
                return Ok(Status::BadArgument);
            }
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = c
                .data()
                .stream()
                .and_then(|s| s.const_map(map))
                .map(|h| h.entries().to_vec())
                .unwrap_or_default();
            let bytes = if pairs.is_empty() {
                Vec::new()
            } else {
                abi::serialize_pairs(&pairs)
            };
            copy_out(c, &bytes, ptr_ptr, size_ptr)
        }
    );

    proxy!(
        linker,
        "proxy_set_header_map_pairs",
        |c, map: i32, ptr: i32, size: i32| {
            if !header_map_type_ok(map) {
                return Ok(Status::BadArgument);
            }
            let data = tri!(read(c, ptr, size));
            let pairs = abi::deserialize_pairs(&data).unwrap_or_default();
            Ok(edit_map(c, map, |h| {
                *h = pairs.into_iter().collect::<Headers>()
            }))
        }
    );

    proxy!(
        linker,
        "proxy_get_header_map_value",
        |c, map: i32, kptr: i32, klen: i32, vptr_ptr: i32, vsize_ptr: i32| {
            if !header_map_type_ok(map) {
                return Ok(Status::BadArgument);
            }
            let key = tri!(read(c, kptr, klen));
            let key = String::from_utf8_lossy(&key).into_owned();
            let value = {
                let Some(headers) = c.data().stream().and_then(|s| s.const_map(map)) else {
                    return Ok(Status::BadArgument);
                };
                match headers.get_bytes(&key) {
                    Some(v) => v.to_vec(),
                    None => return Ok(Status::NotFound),
                }
            };
            copy_out(c, &value, vptr_ptr, vsize_ptr)
        }
    );

    proxy!(
        linker,
        "proxy_add_header_map_value",
        |c, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| {
            if !header_map_type_ok(map) {
                return Ok(Status::BadArgument);
            }
            let key = tri!(read(c, kptr, klen));
            let value = tri!(read(c, vptr, vlen));
            Ok(edit_map(c, map, |h| h.add(key, value)))
        }
    );

    proxy!(
        linker,
        "proxy_replace_header_map_value",
        |c, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| {
            if !header_map_type_ok(map) {
                return Ok(Status::BadArgument);
            }
            let key = tri!(read(c, kptr, klen));
            let value = tri!(read(c, vptr, vlen));
            Ok(edit_map(c, map, |h| h.replace(&key, &value)))
        }
    );

    proxy!(
        linker,
        "proxy_remove_header_map_value",
        |c, map: i32, kptr: i32, klen: i32| {
            if !header_map_type_ok(map) {
                return Ok(Status::BadArgument);
            }
            let key = tri!(read(c, kptr, klen));
            Ok(edit_map(c, map, |h| {
                h.remove(&key);
            }))
        }
    );

    proxy!(
        linker,
        "proxy_get_header_map_size",
        |c, map: i32, ptr: i32| {
            if !header_map_type_ok(map) {
                return Ok(Status::BadArgument);
            }
            let Some(size) = c
                .data_mut()
                .stream_mut()
                .and_then(|s| s.mut_map(map))
                .map(|h| h.byte_size())
            else {
                return Ok(Status::BadArgument);
            };
            tri!(write_u32(c, ptr, size as u32));
            Ok(Status::Ok)
        }
    );

    proxy!(
        linker,
        "proxy_get_property",
        |c, pptr: i32, plen: i32, vptr_ptr: i32, vsize_ptr: i32| {
            let path = tri!(read(c, pptr, plen));
            let value = tri!(c.data().property(&path));
            copy_out(c, &value, vptr_ptr, vsize_ptr)
        }
    );

    proxy!(
        linker,
        "proxy_set_property",
        |c, pptr: i32, plen: i32, vptr: i32, vlen: i32| {
            let path = tri!(read(c, pptr, plen));
            let value = tri!(read(c, vptr, vlen));
            let Some(stream) = c.data_mut().stream_mut() else {
                return Ok(Status::NotFound);
            };
            let mut key = b"wasm.".to_vec();
            key.extend_from_slice(&path);
            stream.filter_state.insert(key, value);
            Ok(Status::Ok)
        }
    );

    proxy!(
        linker,
        "proxy_get_shared_data",
        |c, kptr: i32, klen: i32, vptr_ptr: i32, vsize_ptr: i32, cas_ptr: i32| {
            let key = tri!(read(c, kptr, klen));
            let Some((value, cas)) = c.data().shared_data.get(&key).cloned() else {
                return Ok(Status::NotFound);
            };
            let status = copy_out(c, &value, vptr_ptr, vsize_ptr)?;
            if status != Status::Ok {
                return Ok(status);
            }
            tri!(write_u32(c, cas_ptr, cas));
            Ok(Status::Ok)
        }
    );

    proxy!(
        linker,
        "proxy_set_shared_data",
        |c, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| {
            let key = tri!(read(c, kptr, klen));
            let value = tri!(read(c, vptr, vlen));
            let state = c.data_mut();
            let current = state.shared_data.get(&key).map(|(_, cas)| *cas);
            if cas != 0 && current.is_some_and(|cur| cur != cas as u32) {
                return Ok(Status::CasMismatch);
            }
            let next = current.unwrap_or(0).wrapping_add(1).max(1);
            state.shared_data.insert(key, (value, next));
            Ok(Status::Ok)
        }
    );

    proxy!(linker, "proxy_continue_stream", |c, kind: i32| {
        Ok(continue_stream(c, kind))
    });
    proxy!(linker, "proxy_continue_request", |c| {
        Ok(continue_stream(c, 0))
    });
    proxy!(linker, "proxy_continue_response", |c| {
        Ok(continue_stream(c, 1))
    });

    proxy!(linker, "proxy_close_stream", |c, kind: i32| {
        match kind {
            0 | 1 => {
                if let Some(s) = c.data_mut().stream_mut() {
                    s.reset_requested = true;
                }
                Ok(Status::Ok)
            }
            2 | 3 => Ok(Status::Ok),
            _ => Ok(Status::BadArgument),
        }
    });

    proxy!(linker, "proxy_clear_route_cache", |c| {
        let _ = c;
        Ok(Status::Ok)
    });

    proxy!(
        linker,
        "proxy_send_local_response",
        |c,
         status: i32,
         dptr: i32,
         dlen: i32,
         bptr: i32,
         blen: i32,
         hptr: i32,
         hlen: i32,
         grpc: i32| {
            let details = tri!(read(c, dptr, dlen));
            let body = tri!(read(c, bptr, blen));
            let headers = tri!(read(c, hptr, hlen));
            // Envoy's PairsUtil::toPairs yields nothing for a malformed map.
            let headers: Headers = abi::deserialize_pairs(&headers)
                .unwrap_or_default()
                .into_iter()
                .collect();
            // Envoy replaces whitespace in the details with '_'.
            let details: String = String::from_utf8_lossy(&details)
                .chars()
                .map(|ch| if ch.is_whitespace() { '_' } else { ch })
                .collect();
            let state = c.data_mut();
            state.stop_iteration = true;
            if let Some(stream) = state.stream_mut() {
                // Envoy defers the reply until the callback returns; the first one wins.
                if stream.local_reply.is_none() {
                    stream.local_reply = Some(LocalReply {
                        status: status as u32,
                        details,
                        body,
                        headers,
                        grpc_status: grpc,
                    });
                    stream.local_reply_phase = Some(stream.phase);
                }
            }
            Ok(Status::Ok)
        }
    );

    proxy!(
        linker,
        "proxy_define_metric",
        |c, kind: i32, nptr: i32, nlen: i32, id_ptr: i32| {
            let Some(kind) = MetricType::from_raw(kind) else {
                return Ok(Status::BadArgument);
            };
            let name = tri!(read(c, nptr, nlen));
            let id = c
                .data_mut()
                .metrics
                .define(kind, &String::from_utf8_lossy(&name));
            tri!(write_u32(c, id_ptr, id));
            Ok(Status::Ok)
        }
    );

    proxy!(
        linker,
        "proxy_increment_metric",
        |c, id: i32, offset: i64| { Ok(c.data_mut().metrics.increment(id as u32, offset)) }
    );

    proxy!(linker, "proxy_record_metric", |c, id: i32, value: i64| {
        Ok(c.data_mut().metrics.record(id as u32, value as u64))
    });

    proxy!(linker, "proxy_get_metric", |c, id: i32, ptr: i32| {
        let value = tri!(c.data_mut().metrics.get(id as u32));
        tri!(write_u64(c, ptr, value));
        Ok(Status::Ok)
    });

    proxy!(linker, "proxy_set_effective_context", |c, id: i32| {
        let state = c.data_mut();
        let id = id as u32;
        if id == state.root_context || state.stream.as_ref().is_some_and(|s| s.id == id) {
            state.current_context = id;
            Ok(Status::Ok)
        } else {
            Ok(Status::BadArgument)
        }
    });

    proxy!(linker, "proxy_done", |c| {
        let _ = c;
        Ok(Status::NotFound)
    });

    proxy!(
        linker,
        "proxy_get_status",
        |c, code_ptr: i32, mptr_ptr: i32, msize_ptr: i32| {
            tri!(write_u32(c, code_ptr, 0));
            copy_out(c, b"", mptr_ptr, msize_ptr)
        }
    );

    proxy!(
        linker,
        "proxy_call_foreign_function",
        |c, nptr: i32, nlen: i32, aptr: i32, alen: i32, rptr_ptr: i32, rsize_ptr: i32| {
            let _ = (c, nptr, nlen, aptr, alen, rptr_ptr, rsize_ptr);
            Ok(Status::NotFound)
        }
    );

    Ok(())
}

fn continue_stream(c: &mut C<'_>, kind: i32) -> Status {
    match kind {
        0 | 1 => {
            if kind == 0
                && let Some(s) = c.data_mut().stream_mut()
            {
                s.continue_requested = true;
            }
            Status::Ok
        }
        _ => Status::BadArgument,
    }
}

fn define_wasi(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    wasi!(
        linker,
        "fd_write",
        |c, fd: i32, iovs: i32, iovs_len: i32, nwritten_ptr: i32| {
            let (level, origin) = match fd {
                1 => (LogLevel::Info, LogOrigin::Stdout),
                2 => (LogLevel::Error, LogOrigin::Stderr),
                _ => return Ok(EBADF),
            };
            let mut text = Vec::new();
            for i in 0..iovs_len {
                let Ok(iov) = read(c, iovs.wrapping_add(i.wrapping_mul(8)), 8) else {
                    return Ok(EFAULT);
                };
                let buf = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                match read(c, buf, len) {
                    Ok(bytes) => text.extend_from_slice(&bytes),
                    Err(_) => return Ok(EFAULT),
                }
            }
            let written = text.len() as u32;
            if text.last() == Some(&b'\n') {
                text.pop();
            }
            if written != 0 {
                c.data_mut()
                    .log(level, String::from_utf8_lossy(&text).into_owned(), origin);
            }
            if write_u32(c, nwritten_ptr, written).is_err() {
                return Ok(EFAULT);
            }
            Ok(ESUCCESS)
        }
    );

    wasi!(
        linker,
        "fd_read",
        |c, _fd: i32, _iovs: i32, _len: i32, _nread: i32| {
            let _ = c;
            Ok(ENOSYS)
        }
    );
    wasi!(
        linker,
        "fd_seek",
        |c, _fd: i32, _offset: i64, _whence: i32, _newoffset: i32| {
            let _ = c;
            Ok(ESUCCESS)
        }
    );
    wasi!(linker, "fd_close", |c, _fd: i32| {
        let _ = c;
        Ok(ESUCCESS)
    });
    wasi!(linker, "fd_fdstat_get", |c, fd: i32, out: i32| {
        if fd != 1 && fd != 2 {
            return Ok(EBADF);
        }
        let mut stat = [0u8; 24];
        stat[8..16].copy_from_slice(&64u64.to_le_bytes()); // rights: fd_write
        if write(c, out, &stat).is_err() {
            return Ok(EFAULT);
        }
        Ok(ESUCCESS)
    });
    wasi!(linker, "fd_fdstat_set_flags", |c, _fd: i32, _flags: i32| {
        let _ = c;
        Ok(ENOSYS)
    });
    wasi!(linker, "fd_filestat_get", |c, _fd: i32, _out: i32| {
        let _ = c;
        Ok(EBADF)
    });
    wasi!(linker, "fd_prestat_get", |c, _fd: i32, _out: i32| {
        let _ = c;
        Ok(EBADF)
    });
    wasi!(
        linker,
        "fd_prestat_dir_name",
        |c, _fd: i32, _path: i32, _len: i32| {
            let _ = c;
            Ok(ENOSYS)
        }
    );
    wasi!(
        linker,
        "path_open",
        |c,
         _fd: i32,
         _dirflags: i32,
         _path: i32,
         _path_len: i32,
         _oflags: i32,
         _base: i64,
         _inheriting: i64,
         _fdflags: i32,
         _out: i32| {
            let _ = c;
            Ok(ENOENT)
        }
    );
    wasi!(
        linker,
        "path_filestat_get",
        |c, _fd: i32, _flags: i32, _path: i32, _len: i32, _out: i32| {
            let _ = c;
            Ok(ENOTSUP)
        }
    );
    wasi!(
        linker,
        "environ_sizes_get",
        |c, count_ptr: i32, size_ptr: i32| {
            let env = c.data().env.clone();
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            if write_u32(c, count_ptr, env.len() as u32).is_err()
                || write_u32(c, size_ptr, size as u32).is_err()
            {
                return Ok(EFAULT);
            }
            Ok(ESUCCESS)
        }
    );
    wasi!(linker, "environ_get", |c, array_ptr: i32, buf_ptr: i32| {
        let env = c.data().env.clone();
        let (mut array, mut buf) = (array_ptr, buf_ptr);
        for (k, v) in env {
            let entry = format!("{k}={v}\0");
            if write_u32(c, array, buf as u32).is_err() || write(c, buf, entry.as_bytes()).is_err()
            {
                return Ok(EFAULT);
            }
            array = array.wrapping_add(4);
            buf = buf.wrapping_add(entry.len() as i32);
        }
        Ok(ESUCCESS)
    });
    wasi!(
        linker,
        "args_sizes_get",
        |c, argc_ptr: i32, size_ptr: i32| {
            if write_u32(c, argc_ptr, 0).is_err() || write_u32(c, size_ptr, 0).is_err() {
                return Ok(EFAULT);
            }
            Ok(ESUCCESS)
        }
    );
    wasi!(linker, "args_get", |c, _argv: i32, _buf: i32| {
        let _ = c;
        Ok(ESUCCESS)
    });
    wasi!(
        linker,
        "clock_time_get",
        |c, id: i32, _precision: i64, out: i32| {
            let now = match id {
                0 => c.data().now_ns,
                1 => c.data().monotonic_ns,
                _ => return Ok(ENOTSUP),
            };
            if write_u64(c, out, now).is_err() {
                return Ok(EFAULT);
            }
            Ok(ESUCCESS)
        }
    );
    wasi!(linker, "clock_res_get", |c, id: i32, out: i32| {
        if id != 0 && id != 1 {
            return Ok(ENOTSUP);
        }
        if write_u64(c, out, 1).is_err() {
            return Ok(EFAULT);
        }
        Ok(ESUCCESS)
    });
    wasi!(linker, "random_get", |c, buf: i32, len: i32| {
        if !(0..=RANDOM_GET_MAX).contains(&len) {
            return Ok(EINVAL);
        }
        let bytes = c.data_mut().random_bytes(len as usize);
        if write(c, buf, &bytes).is_err() {
            return Ok(EFAULT);
        }
        Ok(ESUCCESS)
    });
    wasi!(linker, "sched_yield", |c| {
        let _ = c;
        Ok(ESUCCESS)
    });
    wasi!(
        linker,
        "poll_oneoff",
        |c, _in: i32, _out: i32, _n: i32, nevents: i32| {
            if write_u32(c, nevents, 0).is_err() {
                return Ok(EFAULT);
            }
            Ok(ESUCCESS)
        }
    );
    for module in WASI_MODULES {
        linker.func_wrap(
            module,
            "proc_exit",
            |mut c: Caller<'_, State>, code: i32| -> wasmtime::Result<()> {
                c.data_mut().proc_exit = Some(code);
                c.data_mut().record_call("wasi:proc_exit", None);
                Err(Error::msg(format!("the module called proc_exit({code})")))
            },
        )?;
    }
    Ok(())
}
