//! Building a request scenario and reading back what happened to it.

use std::collections::{BTreeMap, BTreeSet};

use crate::abi::{Action, LogLevel};
use crate::headers::Headers;
use crate::host::{Host, VmFailure};
use crate::state::{HostCall, LocalReply, LogLine};

/// Envoy keeps a property a module sets as filter state under `wasm.<name>`: the values the
/// filter hands to the access log are `wasm.rfma_decision`, `wasm.rfma_token`,
/// `wasm.rfma_reason` and `wasm.rfma_domain` (written out here, not taken from the filter, so a
/// renamed key fails the tests).
pub const HANDOVER_PREFIX: &str = "wasm.rfma_";

#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub scheme: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub generate_request_id: bool,
    pub source: String,
    pub destination: String,
    pub peer_uri_san: Option<String>,
    pub protocol: String,
    pub end_of_stream: bool,
    pub upstream_status: u32,
    pub upstream_headers: Vec<(String, String)>,
    pub upstream_body: Vec<u8>,
    pub latency_ns: u64,
    pub at_ns: Option<u64>,
    pub client_resets: bool,
    pub properties: BTreeMap<String, Vec<u8>>,
    pub removed_properties: BTreeSet<String>,
}

impl Default for RequestSpec {
    fn default() -> Self {
        RequestSpec {
            method: "GET".to_string(),
            path: "/".to_string(),
            authority: "httpbin.demo.svc:8000".to_string(),
            scheme: "http".to_string(),
            headers: Vec::new(),
            generate_request_id: true,
            source: "10.0.0.1:5555".to_string(),
            destination: "10.0.0.2:8000".to_string(),
            peer_uri_san: None,
            protocol: "HTTP/1.1".to_string(),
            end_of_stream: true,
            upstream_status: 200,
            upstream_headers: vec![("content-type".to_string(), "application/json".to_string())],
            upstream_body: b"{}".to_vec(),
            latency_ns: 2_500_000,
            at_ns: None,
            client_resets: false,
            properties: BTreeMap::new(),
            removed_properties: BTreeSet::new(),
        }
    }
}

/// A request scenario: set what the client sends and what the upstream
/// answers, then [`RequestBuilder::send`].
pub struct RequestBuilder<'h> {
    host: &'h mut Host,
    spec: RequestSpec,
}

impl std::fmt::Debug for RequestBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("spec", &self.spec)
            .finish()
    }
}

impl<'h> RequestBuilder<'h> {
    pub(crate) fn new(host: &'h mut Host, spec: RequestSpec) -> Self {
        RequestBuilder { host, spec }
    }

    pub fn method(mut self, method: &str) -> Self {
        self.spec.method = method.to_string();
        self
    }

    /// The `:path`, query included.
    pub fn path(mut self, path: &str) -> Self {
        self.spec.path = path.to_string();
        self
    }

    /// The `:authority` (HTTP/1.1 `Host`).
    pub fn authority(mut self, authority: &str) -> Self {
        self.spec.authority = authority.to_string();
        self
    }

    pub fn scheme(mut self, scheme: &str) -> Self {
        self.spec.scheme = scheme.to_string();
        self
    }

    /// Adds a header (the name is lower-cased as Envoy's codecs do; repeats are kept).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header whose value is arbitrary bytes (e.g. not UTF-8).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.spec
            .headers
            .push((name.as_bytes().to_vec(), value.to_vec()));
        self
    }

    /// Sets `x-request-id` (Envoy otherwise generates one).
    pub fn request_id(self, id: &str) -> Self {
        self.header("x-request-id", id)
    }

    /// Sends no `x-request-id` (Envoy with `generate_request_id: false`).
    pub fn no_request_id(mut self) -> Self {
        self.spec.generate_request_id = false;
        self
    }

    /// The downstream peer, `ip:port` (`source.address` / `source.port`).
    pub fn source(mut self, address: &str) -> Self {
        self.spec.source = address.to_string();
        self
    }

    /// The local address the request came in on (`destination.*`).
    pub fn destination(mut self, address: &str) -> Self {
        self.spec.destination = address.to_string();
        self
    }

    /// An mTLS peer with this certificate URI SAN (`connection.uri_san_peer_certificate`).
    pub fn peer(mut self, uri_san: &str) -> Self {
        self.spec.peer_uri_san = Some(uri_san.to_string());
        self
    }

    /// `request.protocol`: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2` or `HTTP/3`.
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.spec.protocol = protocol.to_string();
        self
    }

    /// The request has a body still to come (`end_of_stream` false on headers).
    pub fn with_body_following(mut self) -> Self {
        self.spec.end_of_stream = false;
        self
    }

    /// The status the upstream answers with when the request is forwarded.
    pub fn upstream_status(mut self, status: u32) -> Self {
        self.spec.upstream_status = status;
        self
    }

    pub fn upstream_header(mut self, name: &str, value: &str) -> Self {
        self.spec
            .upstream_headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Time from request headers to the end of the stream.
    pub fn latency_ns(mut self, ns: u64) -> Self {
        self.spec.latency_ns = ns;
        self
    }

    /// When the request headers arrive (Unix nanoseconds); default: the host clock.
    pub fn at_ns(mut self, ns: u64) -> Self {
        self.spec.at_ns = Some(ns);
        self
    }

    /// The client goes away before any upstream response reaches it.
    pub fn client_resets(mut self) -> Self {
        self.spec.client_resets = true;
        self
    }

    /// Overrides (or adds) a property, by dotted path, with raw bytes.
    pub fn property(mut self, path: &str, value: &[u8]) -> Self {
        self.spec
            .properties
            .insert(path.to_string(), value.to_vec());
        self
    }

    /// Makes a property read as `NotFound`.
    pub fn without_property(mut self, path: &str) -> Self {
        self.spec.removed_properties.insert(path.to_string());
        self
    }

    /// Runs the stream and reports what happened.
    pub fn send(self) -> Response {
        self.host.send(self.spec)
    }
}

/// What the client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u32,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// True when Envoy generated it (a local reply), false when it came from upstream.
    pub from_local_reply: bool,
    /// Envoy's response code details (`via_upstream` or the local reply's details).
    pub details: String,
}

/// Everything observable about one stream.
#[derive(Clone)]
pub struct Response {
    pub(crate) context_id: u32,
    pub(crate) request_action: Option<Action>,
    pub(crate) response_action: Option<Action>,
    pub(crate) local_reply: Option<LocalReply>,
    pub(crate) forwarded: Option<Headers>,
    pub(crate) client: Option<ClientResponse>,
    pub(crate) filter_state: BTreeMap<String, Vec<u8>>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) calls: Vec<HostCall>,
    pub(crate) fuel: u64,
    pub(crate) fuel_by_callback: Vec<(&'static str, u64)>,
    pub(crate) vm_failure: Option<VmFailure>,
    pub(crate) vm_failed: bool,
    pub(crate) callbacks: Vec<&'static str>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        f.debug_struct("Response")
            .field("context_id", &self.context_id)
            .field("callbacks", &self.callbacks)
            .field("request_action", &self.request_action)
            .field("response_action", &self.response_action)
            .field(
                "local_reply",
                &self
                    .local_reply
                    .as_ref()
                    .map(|r| (r.status, &r.details, &r.headers, text(&r.body))),
            )
            .field("forwarded", &self.forwarded)
            .field(
                "client",
                &self
                    .client
                    .as_ref()
                    .map(|c| (c.status, &c.headers, text(&c.body))),
            )
            .field(
                "filter_state",
                &self
                    .filter_state
                    .iter()
                    .map(|(k, v)| (k, text(v)))
                    .collect::<Vec<_>>(),
            )
            .field("logs", &self.logs)
            .field("calls", &self.calls)
            .field("fuel", &self.fuel)
            .field("vm_failure", &self.vm_failure)
            .finish()
    }
}

impl Response {
    pub fn context_id(&self) -> u32 {
        self.context_id
    }

    /// What `proxy_on_request_headers` returned (`Pause` after a local reply).
    pub fn request_action(&self) -> Option<Action> {
        self.request_action
    }

    pub fn response_action(&self) -> Option<Action> {
        self.response_action
    }

    /// The local reply the module sent, if any.
    pub fn local_reply(&self) -> Option<&LocalReply> {
        self.local_reply.as_ref()
    }

    /// The request headers as they went upstream, `None` when not forwarded.
    pub fn forwarded_headers(&self) -> Option<&Headers> {
        self.forwarded.as_ref()
    }

    pub fn is_forwarded(&self) -> bool {
        self.forwarded.is_some()
    }

    /// What the client received, `None` when nothing was sent (reset, stalled).
    pub fn client(&self) -> Option<&ClientResponse> {
        self.client.as_ref()
    }

    /// The status the client received.
    pub fn status(&self) -> Option<u32> {
        self.client.as_ref().map(|c| c.status)
    }

    /// A filter-state value by its full key (`wasm.<name>` for `set_property`).
    pub fn filter_state(&self, key: &str) -> Option<&[u8]> {
        self.filter_state.get(key).map(|v| v.as_slice())
    }

    pub fn filter_state_keys(&self) -> Vec<String> {
        self.filter_state.keys().cloned().collect()
    }

    /// The values the filter handed to the access log: filter state under `wasm.rfma_*`, by
    /// the rest of the key (`decision`, `token`, `reason`, `domain`), as text.
    pub fn handover(&self) -> std::collections::BTreeMap<String, String> {
        self.filter_state
            .iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(HANDOVER_PREFIX)?;
                Some((name.to_owned(), String::from_utf8_lossy(value).into_owned()))
            })
            .collect()
    }

    /// The decision handed to the access log (`wasm.rfma_decision`), if any.
    pub fn decision(&self) -> Option<String> {
        self.handover().remove("decision")
    }

    /// Log lines written while this stream ran.
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    /// Messages of the log lines at `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect()
    }

    /// Host calls made while this stream ran.
    pub fn calls(&self) -> &[HostCall] {
        &self.calls
    }

    /// Fuel used by every callback of this stream.
    pub fn fuel(&self) -> u64 {
        self.fuel
    }

    /// Fuel used by each callback of this stream, in the order the host made them.
    pub fn fuel_by_callback(&self) -> &[(&'static str, u64)] {
        &self.fuel_by_callback
    }

    /// The VM failure this stream caused (not one from an earlier stream).
    pub fn vm_failure(&self) -> Option<&VmFailure> {
        self.vm_failure.as_ref()
    }

    /// Whether the VM was failed when the stream ended.
    pub fn vm_failed(&self) -> bool {
        self.vm_failed
    }

    /// The module callbacks the host invoked, in order.
    pub fn callbacks(&self) -> &[&'static str] {
        &self.callbacks
    }
}
