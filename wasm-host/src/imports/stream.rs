//! The Proxy-Wasm functions on the HTTP stream: buffers, header maps,
//! continuing or closing the stream, and local replies.

use wasmtime::{Caller, Linker};

use super::memory::{copy_out, read, write_u32};
use super::{C, HostResult, check_allowed};
use crate::abi::{self, Status, buffer_type, map_type};
use crate::headers::Headers;
use crate::state::{LocalReply, State};

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

pub(super) fn define_stream(linker: &mut Linker<State>) -> wasmtime::Result<()> {
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
