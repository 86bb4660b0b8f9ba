//! The Proxy-Wasm functions that are not about the HTTP stream's data:
//! logging, the clock and tick, properties, shared data, metrics, the
//! effective context and foreign functions.

use wasmtime::{Caller, Linker};

use super::memory::{copy_out, read, write_u32, write_u64};
use super::{HostResult, check_allowed};
use crate::abi::{LogLevel, MetricType, Status};
use crate::state::{LogOrigin, State};

pub(super) fn define_proxy(linker: &mut Linker<State>) -> wasmtime::Result<()> {
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
