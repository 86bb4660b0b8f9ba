//! The only code that touches the Proxy-Wasm ABI.
//!
//! The SDK's `hostcalls` helpers panic on a host status they do not expect (and a panic is
//! an abort, i.e. a dead VM, in this build), so the filter calls the ABI through these thin
//! wrappers, which turn every status into a `Result`. Callers decide what an error means:
//! a deny in the gate, a missing field in the access record.

use std::ptr::{null, null_mut};

/// A host status other than `Ok` (`proxy_wasm::types::Status` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

// Numbering from the Proxy-Wasm ABI 0.2.1 spec.
const MAP_HTTP_REQUEST_HEADERS: u32 = 0;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const METRIC_COUNTER: u32 = 0;

#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

#[cfg(target_arch = "wasm32")]
mod abi {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        pub fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
        pub fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_buffer_data: *mut *mut u8,
            return_buffer_size: *mut usize,
        ) -> u32;
        pub fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
        pub fn proxy_remove_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
        ) -> u32;
        pub fn proxy_get_property(
            path_data: *const u8,
            path_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        pub fn proxy_set_property(
            path_data: *const u8,
            path_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        #[allow(clippy::too_many_arguments)]
        pub fn proxy_send_local_response(
            status_code: u32,
            status_code_details_data: *const u8,
            status_code_details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        pub fn proxy_define_metric(
            metric_type: u32,
            name_data: *const u8,
            name_size: usize,
            return_id: *mut u32,
        ) -> u32;
        pub fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    }
}

/// Native builds (unit tests, the CLI's use of `config`) have no proxy: every call fails.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc, clippy::too_many_arguments)]
mod abi {
    const UNIMPLEMENTED: u32 = 12;
    pub unsafe fn proxy_log(_: u32, _: *const u8, _: usize) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_get_current_time_nanoseconds(_: *mut u64) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_get_buffer_bytes(
        _: u32,
        _: usize,
        _: usize,
        _: *mut *mut u8,
        _: *mut usize,
    ) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_get_header_map_pairs(_: u32, _: *mut *mut u8, _: *mut usize) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_remove_header_map_value(_: u32, _: *const u8, _: usize) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_get_property(
        _: *const u8,
        _: usize,
        _: *mut *mut u8,
        _: *mut usize,
    ) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_set_property(_: *const u8, _: usize, _: *const u8, _: usize) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_send_local_response(
        _: u32,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: i32,
    ) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_define_metric(_: u32, _: *const u8, _: usize, _: *mut u32) -> u32 {
        UNIMPLEMENTED
    }
    pub unsafe fn proxy_increment_metric(_: u32, _: i64) -> u32 {
        UNIMPLEMENTED
    }
}

fn status(code: u32) -> Result<(), HostError> {
    if code == OK {
        Ok(())
    } else {
        Err(HostError(code))
    }
}

/// Takes ownership of a buffer the host allocated through `proxy_on_memory_allocate`
/// (the SDK's allocator hands out exactly `size` bytes, so capacity == length).
///
/// # Safety
/// `data` must be null or come from `proxy_on_memory_allocate(size)` and not be used again.
unsafe fn owned_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: per the contract above, the allocation is ours and exactly `size` bytes.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// Logs `message` (UTF-8 text).
pub fn log(level: LogLevel, message: &[u8]) -> Result<(), HostError> {
    // SAFETY: the pointer and length describe a live buffer for the duration of the call.
    status(unsafe { abi::proxy_log(level as u32, message.as_ptr(), message.len()) })
}

/// Sends the `log` crate's records to the proxy's log through [`log`], so a line the proxy
/// refuses is dropped, never fatal. (The SDK's own logger, `proxy_wasm::set_log_level`, does
/// the same routing but unwraps the host's status, and in this build a panic is an abort: a
/// dead VM.)
#[derive(Debug)]
struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl ::log::Log for HostLogger {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= ::log::max_level()
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            ::log::Level::Error => LogLevel::Error,
            ::log::Level::Warn => LogLevel::Warn,
            // Debug and trace are below the maximum `install_logger` sets; never reached.
            ::log::Level::Info | ::log::Level::Debug | ::log::Level::Trace => LogLevel::Info,
        };
        // Nobody can be told of a line the proxy refused: the log is where it would go.
        let _ = log(level, record.args().to_string().as_bytes());
    }

    fn flush(&self) {}
}

/// Routes `log::error!` and friends, `Info` and above, to the proxy's log. Once per VM; a
/// second call finds the logger set and changes nothing.
pub fn install_logger() {
    if ::log::set_logger(&LOGGER).is_ok() {
        ::log::set_max_level(::log::LevelFilter::Info);
    }
}

pub fn now_ns() -> Result<u64, HostError> {
    let mut time = 0u64;
    // SAFETY: `time` is a valid place for the host to write a u64.
    status(unsafe { abi::proxy_get_current_time_nanoseconds(&mut time) })?;
    Ok(time)
}

/// The plugin configuration (`size` bytes, as `on_configure` announced), or `None` when
/// the proxy delivered none.
pub fn plugin_configuration(size: usize) -> Result<Option<Vec<u8>>, HostError> {
    if size == 0 {
        return Ok(None);
    }
    let mut data = null_mut();
    let mut len = 0usize;
    // SAFETY: out-pointers are valid; the host allocates the returned buffer for us.
    let code = unsafe {
        abi::proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, size, &mut data, &mut len)
    };
    match code {
        // SAFETY: the buffer came from the host through our allocator and is used only here.
        OK => Ok(Some(unsafe { owned_buffer(data, len) })),
        NOT_FOUND => Ok(None),
        other => Err(HostError(other)),
    }
}

/// The request headers as one buffer in the ABI's serialized map format, read in a single
/// host call: the gate must see every value of the token header, not just the first.
#[derive(Debug, Default)]
pub struct HeaderMap {
    buf: Vec<u8>,
}

impl HeaderMap {
    pub fn request() -> Result<Self, HostError> {
        let mut data = null_mut();
        let mut size = 0usize;
        // SAFETY: out-pointers are valid; the host allocates the returned buffer for us.
        status(unsafe {
            abi::proxy_get_header_map_pairs(MAP_HTTP_REQUEST_HEADERS, &mut data, &mut size)
        })?;
        // SAFETY: the buffer came from the host through our allocator and is used only here.
        Ok(HeaderMap {
            buf: unsafe { owned_buffer(data, size) },
        })
    }

    /// A map over an already serialized buffer (for tests and fuzzing).
    pub fn from_serialized(buf: Vec<u8>) -> Self {
        HeaderMap { buf }
    }

    /// Every (name, value) pair in order, duplicates included. A malformed buffer yields
    /// the pairs before the damage; `complete()` says whether the whole buffer was read.
    pub fn iter(&self) -> Pairs<'_> {
        Pairs::new(&self.buf)
    }

    /// Whether the buffer is well formed (so `iter` saw every header).
    pub fn complete(&self) -> bool {
        let mut pairs = self.iter();
        for _ in pairs.by_ref() {}
        pairs.complete()
    }

    /// The serialized buffer, which the slices `iter` yields point into.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The first value of `name` (already lower-case, as Envoy stores names).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// Iterator over a serialized header map: `u32 count`, then `count` pairs of
/// `u32 name_len, u32 value_len`, then each name and value followed by a NUL.
#[derive(Debug)]
pub struct Pairs<'a> {
    sizes: &'a [u8],
    data: &'a [u8],
    remaining: usize,
    ok: bool,
}

fn read_u32(bytes: &[u8]) -> Option<usize> {
    let word: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

impl<'a> Pairs<'a> {
    fn new(buf: &'a [u8]) -> Self {
        let empty = Pairs {
            sizes: &[],
            data: &[],
            remaining: 0,
            ok: buf.is_empty(),
        };
        let Some(count) = read_u32(buf) else {
            return empty;
        };
        let Some(table_end) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else {
            return empty;
        };
        match (buf.get(4..table_end), buf.get(table_end..)) {
            (Some(sizes), Some(data)) => Pairs {
                sizes,
                data,
                remaining: count,
                ok: true,
            },
            _ => empty,
        }
    }
}

impl<'a> Pairs<'a> {
    /// Whether every pair was read and the buffer held no damage (`true` until then).
    pub fn complete(&self) -> bool {
        self.ok && self.remaining == 0
    }

    fn take(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let (&[n0, n1, n2, n3, v0, v1, v2, v3], sizes) = self.sizes.split_first_chunk::<8>()?;
        let name_len = usize::try_from(u32::from_le_bytes([n0, n1, n2, n3])).ok()?;
        let value_len = usize::try_from(u32::from_le_bytes([v0, v1, v2, v3])).ok()?;
        let (name, rest) = self.data.split_at_checked(name_len)?;
        let (value, rest) = rest.get(1..)?.split_at_checked(value_len)?;
        self.data = rest.get(1..)?;
        self.sizes = sizes;
        Some((name, value))
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.take() {
            Some(pair) => {
                self.remaining = self.remaining.saturating_sub(1);
                Some(pair)
            }
            None => {
                self.ok = false;
                self.remaining = 0;
                None
            }
        }
    }
}

pub fn remove_request_header(name: &str) -> Result<(), HostError> {
    // SAFETY: the pointer and length describe a live string for the duration of the call.
    status(unsafe {
        abi::proxy_remove_header_map_value(MAP_HTTP_REQUEST_HEADERS, name.as_ptr(), name.len())
    })
}

/// A property path in the ABI's form: segments separated by NUL, e.g. `b"source\0address"`.
pub type PropertyPath = &'static [u8];

pub const PEER_URI_SAN: PropertyPath = b"connection\0uri_san_peer_certificate";

/// A property's raw bytes, or `None` when the proxy does not have it.
pub fn property(path: PropertyPath) -> Result<Option<Vec<u8>>, HostError> {
    let mut data = null_mut();
    let mut size = 0usize;
    // SAFETY: path is a live slice; out-pointers are valid; the host allocates the result.
    let code = unsafe { abi::proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    match code {
        // SAFETY: the buffer came from the host through our allocator and is used only here.
        OK if !data.is_null() => Ok(Some(unsafe { owned_buffer(data, size) })),
        OK | NOT_FOUND => Ok(None),
        other => Err(HostError(other)),
    }
}

/// Sets a property; Envoy stores it as filter state under `wasm.<path>`, where an access-log
/// format can print it.
pub fn set_property(path: &[u8], value: &[u8]) -> Result<(), HostError> {
    // SAFETY: both slices are live for the duration of the call.
    status(unsafe {
        abi::proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len())
    })
}

/// Replies to the client without contacting the upstream.
pub fn send_local_response(
    status_code: u32,
    details: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), HostError> {
    let serialized = serialize_map(headers);
    // SAFETY: every pointer/length pair describes a live buffer for the duration of the call.
    status(unsafe {
        abi::proxy_send_local_response(
            status_code,
            details.as_ptr(),
            details.len(),
            if body.is_empty() {
                null()
            } else {
                body.as_ptr()
            },
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    })
}

/// Serializes pairs in the ABI's map format (see [`Pairs`]).
pub fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    // Sized up front: growing it (a reallocation and a copy) would cost every deny reply.
    let bytes = pairs.iter().fold(4usize, |n, (name, value)| {
        n.saturating_add(10)
            .saturating_add(name.len())
            .saturating_add(value.len())
    });
    let mut out = Vec::with_capacity(bytes);
    out.extend_from_slice(&len(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len(name.len()));
        out.extend_from_slice(&len(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

pub fn define_counter(name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: the name is live for the call and `id` is a valid place for a u32.
    status(unsafe {
        abi::proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id)
    })?;
    Ok(id)
}

pub fn increment_counter(id: u32) -> Result<(), HostError> {
    // SAFETY: plain values only.
    status(unsafe { abi::proxy_increment_metric(id, 1) })
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn serialized_maps_round_trip_with_duplicates_in_order() {
        let pairs = [
            ("x-rfma-token", "a"),
            (":path", "/"),
            ("x-rfma-token", ""),
            ("k", "v\0w"),
        ];
        let serialized = serialize_map(&pairs);
        // Sized exactly up front: no reallocation on the deny path.
        assert_eq!(serialized.capacity(), serialized.len());
        let map = HeaderMap::from_serialized(serialized);
        let read: Vec<(&[u8], &[u8])> = map.iter().collect();
        let want: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        assert_eq!(read, want);
        assert!(map.complete());
        assert_eq!(map.get(b"x-rfma-token"), Some(b"a".as_slice()));
        assert_eq!(map.get(b"missing"), None);
    }

    #[test]
    fn a_damaged_map_is_reported_incomplete_without_panicking() {
        let good = serialize_map(&[("a", "1"), ("b", "2")]);
        for cut in 0..good.len() {
            let map = HeaderMap::from_serialized(good[..cut].to_vec());
            let seen = map.iter().count();
            assert!(seen <= 2);
            assert_eq!(map.complete(), cut == 0, "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!HeaderMap::from_serialized(huge).complete());
        assert!(HeaderMap::from_serialized(Vec::new()).complete());
    }

    // Native only, like the next test: in Node.js the imports exist (wasm-host/node/env.js)
    // and throw when called.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_log_line_the_proxy_refuses_is_dropped_not_fatal() {
        // Natively every host call fails, as a refusing proxy's would.
        assert_eq!(log(LogLevel::Error, b"x"), Err(HostError(12)));
        install_logger();
        install_logger();
        assert_eq!(::log::max_level(), ::log::LevelFilter::Info);
        ::log::error!("rfma: refused, and the filter goes on");
        ::log::debug!("below the maximum");
    }

    // Native only: in Node.js the imports exist (wasm-host/node/env.js) and throw when called.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn native_builds_have_no_host() {
        assert_eq!(now_ns(), Err(HostError(12)));
        assert_eq!(property(PEER_URI_SAN), Err(HostError(12)));
    }
}
