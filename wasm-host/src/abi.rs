//! Numbers and byte layouts of the Proxy-Wasm ABI 0.2.1, as the host speaks them.

/// `WasmResult` values returned by every `proxy_*` host call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Log levels of `proxy_log` (spdlog's numbering, as Envoy uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_raw(level: i32) -> Option<LogLevel> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// `proxy_get_header_map_*` map types.
pub mod map_type {
    pub const REQUEST_HEADERS: i32 = 0;
    pub const REQUEST_TRAILERS: i32 = 1;
    pub const RESPONSE_HEADERS: i32 = 2;
    pub const RESPONSE_TRAILERS: i32 = 3;
    /// The highest map type Envoy knows (`HttpCallResponseTrailers`).
    pub const MAX: i32 = 7;
}

/// `proxy_get_buffer_bytes` buffer types.
pub mod buffer_type {
    pub const HTTP_REQUEST_BODY: i32 = 0;
    pub const HTTP_RESPONSE_BODY: i32 = 1;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    /// The highest buffer type Envoy knows (`CallData`).
    pub const MAX: i32 = 8;
}

/// `proxy_define_metric` metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

impl MetricType {
    pub fn from_raw(raw: i32) -> Option<MetricType> {
        Some(match raw {
            0 => MetricType::Counter,
            1 => MetricType::Gauge,
            2 => MetricType::Histogram,
            _ => return None,
        })
    }
}

/// Values `proxy_on_request_headers` / `proxy_on_response_headers` return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Any non-zero value: `StopIteration` and friends.
    Pause(i32),
}

impl Action {
    pub fn from_raw(raw: i32) -> Action {
        if raw == 0 {
            Action::Continue
        } else {
            Action::Pause(raw)
        }
    }
}

/// Serialises header pairs the way Envoy hands them to the module:
/// `u32 count`, then `count` times `(u32 key_len, u32 value_len)`, then each
/// key and value followed by a NUL byte. All integers little-endian.
pub fn serialize_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.as_ref().len() + 1 + v.as_ref().len() + 1;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Parses the pair serialisation above (what the module sends in
/// `proxy_send_local_response` and `proxy_set_header_map_pairs`).
/// Like Envoy, a buffer shorter than its count yields no pairs; a truncated
/// buffer is an error here so a bad encoding in the module is caught.
/// Header pairs as raw bytes.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

pub fn deserialize_pairs(data: &[u8]) -> Result<Pairs, String> {
    if data.len() < 4 {
        return Ok(Vec::new());
    }
    let read_u32 = |at: usize| -> Result<usize, String> {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| format!("serialized map truncated at byte {at}"))
    };
    let count = read_u32(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    let mut at = 4;
    for _ in 0..count {
        sizes.push((read_u32(at)?, read_u32(at + 4)?));
        at += 8;
    }
    let mut pairs = Vec::with_capacity(sizes.len());
    for (klen, vlen) in sizes {
        let key = data
            .get(at..at + klen)
            .ok_or_else(|| format!("serialized map key truncated at byte {at}"))?
            .to_vec();
        at += klen + 1;
        let value = data
            .get(at..at + vlen)
            .ok_or_else(|| format!("serialized map value truncated at byte {at}"))?
            .to_vec();
        at += vlen + 1;
        pairs.push((key, value));
    }
    if at > data.len() {
        return Err("serialized map misses its final NUL".to_string());
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_with_duplicates_and_empty_values() {
        let pairs = vec![("a", "1"), ("a", ""), ("content-type", "application/json")];
        let bytes = serialize_pairs(&pairs);
        let back = deserialize_pairs(&bytes).unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(back, expected);
        // count + 3 size pairs + bytes with NULs
        assert_eq!(
            bytes.len(),
            4 + 3 * 8 + (1 + 1 + 1 + 1) + (1 + 1 + 1) + (12 + 1 + 16 + 1)
        );
    }

    #[test]
    fn truncated_map_is_an_error() {
        let mut bytes = serialize_pairs(&[("key", "value")]);
        bytes.truncate(bytes.len() - 3);
        assert!(deserialize_pairs(&bytes).is_err());
    }
}
