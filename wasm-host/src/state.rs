//! What the host keeps between calls: VM-wide state and the state of the
//! HTTP stream being processed, with Envoy's rules on what is visible when.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wasmtime::{Memory, TypedFunc};

use crate::abi::{LogLevel, MetricType, Status};
use crate::headers::Headers;

/// Where a captured log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOrigin {
    /// `proxy_log`.
    ProxyLog,
    /// WASI `fd_write` to stdout (Envoy logs it at info).
    Stdout,
    /// WASI `fd_write` to stderr (Envoy logs it at error).
    Stderr,
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    /// The context that was running (0 before any context exists).
    pub context_id: u32,
    pub origin: LogOrigin,
}

/// One call from the module into the host, with the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    pub name: String,
    pub context_id: u32,
    /// `None` for calls that return nothing or trapped.
    pub status: Option<i32>,
    /// The fuel the running callback had left when the module made the call (Proxy-Wasm
    /// calls only): differences between calls show where a callback spends its fuel.
    pub fuel_left: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct MetricSlot {
    pub name: String,
    pub kind: MetricType,
    pub value: u64,
    pub samples: Vec<u64>,
}

/// Metrics as Envoy keeps them: an id per definition (type in the low two
/// bits, ids stepping by 4), several ids may point at one named stat.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub stats: Vec<MetricSlot>,
    pub ids: HashMap<u32, usize>,
    pub next_counter: u32,
    pub next_gauge: u32,
    pub next_histogram: u32,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            next_counter: MetricType::Counter as u32,
            next_gauge: MetricType::Gauge as u32,
            next_histogram: MetricType::Histogram as u32,
            ..Metrics::default()
        }
    }

    pub fn define(&mut self, kind: MetricType, name: &str) -> u32 {
        let next = match kind {
            MetricType::Counter => &mut self.next_counter,
            MetricType::Gauge => &mut self.next_gauge,
            MetricType::Histogram => &mut self.next_histogram,
        };
        *next += 4;
        let id = *next;
        let slot = match self
            .stats
            .iter()
            .position(|s| s.name == name && s.kind == kind)
        {
            Some(i) => i,
            None => {
                self.stats.push(MetricSlot {
                    name: name.to_string(),
                    kind,
                    value: 0,
                    samples: Vec::new(),
                });
                self.stats.len() - 1
            }
        };
        self.ids.insert(id, slot);
        id
    }

    fn kind_of_id(id: u32) -> Option<MetricType> {
        MetricType::from_raw((id & 3) as i32)
    }

    fn slot(&mut self, id: u32) -> Option<&mut MetricSlot> {
        let i = *self.ids.get(&id)?;
        self.stats.get_mut(i)
    }

    /// Envoy's `incrementMetric`: counters only go up, gauges both ways,
    /// histograms refuse.
    pub fn increment(&mut self, id: u32, offset: i64) -> Status {
        match Metrics::kind_of_id(id) {
            Some(MetricType::Counter) => match self.slot(id) {
                Some(s) if offset > 0 => {
                    s.value = s.value.wrapping_add(offset as u64);
                    Status::Ok
                }
                Some(_) => Status::BadArgument,
                None => Status::NotFound,
            },
            Some(MetricType::Gauge) => match self.slot(id) {
                Some(s) => {
                    s.value = s.value.wrapping_add_signed(offset);
                    Status::Ok
                }
                None => Status::NotFound,
            },
            _ => Status::BadArgument,
        }
    }

    /// Envoy's `recordMetric`: adds to a counter, sets a gauge, records a sample.
    pub fn record(&mut self, id: u32, value: u64) -> Status {
        let kind = Metrics::kind_of_id(id);
        match (kind, self.slot(id)) {
            (Some(MetricType::Counter), Some(s)) => {
                s.value = s.value.wrapping_add(value);
                Status::Ok
            }
            (Some(MetricType::Gauge), Some(s)) => {
                s.value = value;
                Status::Ok
            }
            (Some(MetricType::Histogram), Some(s)) => {
                s.samples.push(value);
                Status::Ok
            }
            _ => Status::NotFound,
        }
    }

    /// Envoy's `getMetric`: counters and gauges only.
    pub fn get(&mut self, id: u32) -> Result<u64, Status> {
        match Metrics::kind_of_id(id) {
            Some(MetricType::Counter) | Some(MetricType::Gauge) => {
                self.slot(id).map(|s| s.value).ok_or(Status::NotFound)
            }
            _ => Err(Status::BadArgument),
        }
    }

    pub fn value_by_name(&self, name: &str) -> Option<u64> {
        self.stats
            .iter()
            .find(|s| s.name == name && s.kind != MetricType::Histogram)
            .map(|s| s.value)
    }
}

/// The connection and stream facts Envoy exposes as properties, settable per request.
#[derive(Debug, Clone)]
pub(crate) struct StreamInfo {
    pub source_address: String,
    pub destination_address: String,
    pub peer_uri_san: Option<String>,
    pub protocol: String,
    pub request_time_ns: i64,
    pub duration_ns: i64,
    /// Test-supplied values by dotted path, e.g. `upstream.address`.
    pub extra: BTreeMap<String, Vec<u8>>,
    /// Paths a test removed (they read as `NotFound`).
    pub removed: BTreeSet<String>,
}

/// Which callback of the stream is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Create,
    RequestHeaders,
    ResponseHeaders,
    Log,
    Done,
}

/// A local reply the module asked for with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub details: String,
    pub body: Vec<u8>,
    /// The additional headers, names lower-cased as Envoy stores them.
    pub headers: Headers,
    pub grpc_status: i32,
}

impl LocalReply {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("local reply body is not JSON ({e}): {:?}", self.body_str()))
    }
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub id: u32,
    pub phase: Phase,
    pub request_headers: Headers,
    /// Envoy keeps `request_headers_` only while the request is stopped in
    /// this filter; after `Continue` the map is gone for the module.
    pub request_live: bool,
    pub response_headers: Option<Headers>,
    pub response_live: bool,
    pub info: StreamInfo,
    pub response_code: Option<i64>,
    pub response_code_details: Option<String>,
    /// Envoy filter state, keyed by the full key (`wasm.<path>`).
    pub filter_state: BTreeMap<Vec<u8>, Vec<u8>>,
    pub local_reply: Option<LocalReply>,
    pub local_reply_phase: Option<Phase>,
    pub continue_requested: bool,
    pub reset_requested: bool,
}

impl Stream {
    /// The map the module may read (`getConstMap`).
    pub fn const_map(&self, map: i32) -> Option<&Headers> {
        use crate::abi::map_type::*;
        let log = self.phase == Phase::Log;
        match map {
            REQUEST_HEADERS if self.request_live || log => Some(&self.request_headers),
            RESPONSE_HEADERS if self.response_live || log => self.response_headers.as_ref(),
            _ => None,
        }
    }

    /// The map the module may change (`getMap`).
    pub fn mut_map(&mut self, map: i32) -> Option<&mut Headers> {
        use crate::abi::map_type::*;
        match map {
            REQUEST_HEADERS if self.request_live => Some(&mut self.request_headers),
            RESPONSE_HEADERS if self.response_live => self.response_headers.as_mut(),
            _ => None,
        }
    }

    fn request_headers_visible(&self) -> bool {
        self.request_live || self.phase == Phase::Log
    }
}

/// Everything the host functions can reach (the wasmtime store's data).
pub(crate) struct State {
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<i32, i32>>,
    /// True while `_initialize` runs: only WASI calls are allowed then.
    pub restricted: bool,
    pub vm_configuration: Vec<u8>,
    /// Set only while `proxy_on_configure` runs, as Envoy's `temp_plugin_`.
    pub plugin_configuration: Option<Vec<u8>>,
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    pub env: Vec<(String, String)>,
    pub log_level: LogLevel,
    pub logs: Vec<LogLine>,
    pub calls: Vec<HostCall>,
    pub unsupported: Vec<String>,
    pub metrics: Metrics,
    pub shared_data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    pub tick_period_ms: u32,
    pub now_ns: u64,
    pub monotonic_ns: u64,
    pub rng: u64,
    pub current_context: u32,
    pub root_context: u32,
    pub stream: Option<Stream>,
    pub proc_exit: Option<i32>,
    /// Injected faults: a `proxy_*` call named here returns this status instead of running.
    pub faults: HashMap<String, Status>,
    /// Whether `proxy_send_local_response` asked to stop the current iteration.
    pub stop_iteration: bool,
}

impl State {
    pub fn log(&mut self, level: LogLevel, message: String, origin: LogOrigin) {
        self.logs.push(LogLine {
            level,
            message,
            context_id: self.current_context,
            origin,
        });
    }

    pub fn record_call(&mut self, name: &str, status: Option<i32>) {
        self.record_call_with_fuel(name, status, None);
    }

    pub fn record_call_with_fuel(
        &mut self,
        name: &str,
        status: Option<i32>,
        fuel_left: Option<u64>,
    ) {
        self.calls.push(HostCall {
            name: name.to_string(),
            context_id: self.current_context,
            status,
            fuel_left,
        });
    }

    /// A stream context is running (not the root context).
    pub fn stream(&self) -> Option<&Stream> {
        self.stream
            .as_ref()
            .filter(|s| s.id == self.current_context)
    }

    pub fn stream_mut(&mut self) -> Option<&mut Stream> {
        let current = self.current_context;
        self.stream.as_mut().filter(|s| s.id == current)
    }

    /// Deterministic bytes for `random_get` (xorshift64*), so runs repeat exactly.
    pub fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let mut x = self.rng;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.rng = x;
            out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Envoy's `getProperty`: the path's parts are NUL-separated.
    pub fn property(&self, path: &[u8]) -> Result<Vec<u8>, Status> {
        let mut parts: Vec<&[u8]> = path.split(|b| *b == 0).collect();
        if parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        let Some(top) = parts.first() else {
            return Err(Status::NotFound);
        };
        let dotted = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>()
            .join(".");
        let string = |s: &str| Ok(s.as_bytes().to_vec());
        // Properties of the plugin exist in every context.
        match (*top, parts.len()) {
            (b"plugin_name", 1) => return string(&self.plugin_name),
            (b"plugin_root_id", 1) => return string(&self.root_id),
            (b"plugin_vm_id", 1) => return string(&self.vm_id),
            _ => {}
        }
        // Everything else needs a stream (Envoy: no StreamInfo in the root context).
        let Some(stream) = self.stream() else {
            return Err(Status::NotFound);
        };
        let info = &stream.info;
        if info.removed.contains(&dotted) {
            return Err(Status::NotFound);
        }
        if let Some(v) = info.extra.get(&dotted) {
            return Ok(v.clone());
        }
        let int = |v: i64| Ok(v.to_le_bytes().to_vec());
        let header = |name: &str| -> Result<Vec<u8>, Status> {
            if !stream.request_headers_visible() {
                return Err(Status::NotFound);
            }
            stream
                .request_headers
                .get_bytes(name)
                .map(|v| v.to_vec())
                .ok_or(Status::NotFound)
        };
        let port_of = |addr: &str| -> Result<Vec<u8>, Status> {
            addr.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<i64>().ok())
                .map(|p| p.to_le_bytes().to_vec())
                .ok_or(Status::NotFound)
        };
        match dotted.as_str() {
            "source.address" => string(&info.source_address),
            "source.port" => port_of(&info.source_address),
            "destination.address" => string(&info.destination_address),
            "destination.port" => port_of(&info.destination_address),
            "connection.mtls" => Ok(vec![u8::from(info.peer_uri_san.is_some())]),
            "connection.uri_san_peer_certificate" => info
                .peer_uri_san
                .as_deref()
                .map_or(Err(Status::NotFound), string),
            "request.protocol" => string(&info.protocol),
            "request.time" => int(info.request_time_ns),
            "request.duration" if stream.phase == Phase::Log => int(info.duration_ns),
            "request.path" => header(":path"),
            "request.url_path" => header(":path").map(|p| {
                let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
                p[..end].to_vec()
            }),
            "request.query" => header(":path").map(|p| match p.iter().position(|b| *b == b'?') {
                Some(i) => p[i + 1..].to_vec(),
                None => Vec::new(),
            }),
            "request.host" => header(":authority"),
            "request.scheme" => header(":scheme"),
            "request.method" => header(":method"),
            "request.id" => header("x-request-id"),
            "request.referer" => header("referer"),
            "request.useragent" => header("user-agent"),
            "response.code" => stream.response_code.map_or(Err(Status::NotFound), int),
            "response.code_details" => stream
                .response_code_details
                .as_deref()
                .map_or(Err(Status::NotFound), string),
            _ => {
                // Not one of Envoy's own top-level names: a filter-state
                // object the module (or another filter) set as `wasm.<name>`.
                if parts.len() == 1 && !ENVOY_PROPERTY_ROOTS.contains(top) {
                    let mut key = b"wasm.".to_vec();
                    key.extend_from_slice(top);
                    stream
                        .filter_state
                        .get(&key)
                        .cloned()
                        .ok_or(Status::NotFound)
                } else {
                    Err(Status::NotFound)
                }
            }
        }
    }
}

/// Envoy's reserved top-level property names (`PROPERTY_TOKENS` in context.cc).
const ENVOY_PROPERTY_ROOTS: &[&[u8]] = &[
    b"metadata",
    b"request",
    b"response",
    b"connection",
    b"upstream",
    b"node",
    b"source",
    b"destination",
    b"listener_direction",
    b"listener_metadata",
    b"cluster_name",
    b"cluster_metadata",
    b"route_name",
    b"route_metadata",
    b"plugin_name",
    b"upstream_host_metadata",
    b"plugin_root_id",
    b"plugin_vm_id",
    b"connection_id",
    b"filter_state",
];
