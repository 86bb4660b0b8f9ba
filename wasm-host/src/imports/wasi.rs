//! The part of WASI preview 1 a Rust `wasm32-wasip1` module uses, as Envoy
//! provides it (stdout/stderr to the log, environment, clocks, random).

use wasmtime::{Caller, Error, Linker};

use super::WASI_MODULES;
use super::memory::{read, write, write_u32, write_u64};
use crate::abi::LogLevel;
use crate::state::{LogOrigin, State};

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

pub(super) fn define_wasi(linker: &mut Linker<State>) -> wasmtime::Result<()> {
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
