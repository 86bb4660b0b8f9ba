//! Helpers shared by the test modules (each module uses a part of them).
#![allow(dead_code)]

use rfma_wasm_host::{Response, Status};

/// Lower-case hex SHA-256 of a token, as the plugin configuration wants it.
pub fn sha256_hex(token: &str) -> String {
    rfma_wasm_host::fuel::hex_sha256(token)
}

/// Statuses returned to the module by every call of `name`, in order.
pub fn statuses(r: &Response, name: &str) -> Vec<i32> {
    r.calls()
        .iter()
        .filter(|c| c.name == name)
        .filter_map(|c| c.status)
        .collect()
}

pub const OK: i32 = Status::Ok as i32;
pub const NOT_FOUND: i32 = Status::NotFound as i32;
pub const BAD_ARGUMENT: i32 = Status::BadArgument as i32;

/// Lays out data segments for hand-written WAT modules and hands back
/// `(i32.const ptr) (i32.const len)` operands for each.
pub struct Data {
    next: u32,
    segments: String,
}

impl Data {
    pub fn new(start: u32) -> Data {
        Data {
            next: start,
            segments: String::new(),
        }
    }

    pub fn add(&mut self, bytes: &[u8]) -> String {
        let at = self.next;
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        self.segments
            .push_str(&format!("(data (i32.const {at}) \"{escaped}\")\n"));
        self.next += (bytes.len() as u32 + 8) & !7;
        format!("(i32.const {at}) (i32.const {})", bytes.len())
    }

    pub fn segments(&self) -> &str {
        &self.segments
    }
}

use rfma_wasm_host::{ConfigureError, Host, LogLevel, LogLine, filter_module};
use serde_json::{Value, json};

/// The contract's counter names, written out here rather than taken from the filter, so a
/// renamed counter fails the tests.
pub const COUNTERS: [&str; 9] = [
    "rfma_allowed_total",
    "rfma_bypassed_total",
    "rfma_denied_missing_token_total",
    "rfma_denied_invalid_token_total",
    "rfma_denied_duplicate_token_total",
    "rfma_denied_principal_mismatch_total",
    "rfma_denied_internal_error_total",
    "rfma_denied_expired_token_total",
    "rfma_denied_token_not_yet_valid_total",
];

/// The per-token counter of `name` as the module defines it: the tag in Istio's encoding
/// (`token=.=<name>;.;`), then the metric (written out here, not taken from the filter).
pub fn token_counter(name: &str) -> String {
    format!("token=.={name};.;rfma_token_allowed_total")
}

/// The demo tokens of the test configuration (obviously not secrets).
pub const SLEEP_TOKEN: &str = "sleep-demo-token-0001";
pub const LEGACY_TOKEN: &str = "test1";
pub const SLEEP_SPIFFE: &str = "spiffe://cluster.local/ns/demo/sa/sleep";
pub const OTHER_SPIFFE: &str = "spiffe://cluster.local/ns/demo/sa/other";

/// The contract's example configuration: a digest bound to a principal, a
/// plain-text demo token, a bypass rule, stripping on, records to filter state.
pub fn config() -> Value {
    json!({
        "header": "x-rfma-token",
        "tokens": [
            {"name": "sleep", "sha256": sha256_hex(SLEEP_TOKEN), "principals": [SLEEP_SPIFFE]},
            {"name": "legacy", "value": LEGACY_TOKEN}
        ],
        "bypass": [{"path_prefix": "/status/", "methods": ["GET", "HEAD"]}],
        "strip_header": true,
        "log": {"sink": "filter_state", "allowed": true, "denied": true}
    })
}

/// A host running the shipped module, configured with `config`.
pub fn host_with(config: &Value) -> Host {
    let mut host = Host::load(filter_module()).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = host.configure(config.to_string()) {
        panic!("configuration {config} was refused: {e}");
    }
    host
}

pub fn host() -> Host {
    host_with(&config())
}

/// Configures the shipped module with `text`, expects a rejection, and returns
/// the error lines it logged.
pub fn rejected(text: &str) -> Vec<LogLine> {
    let mut host = Host::load(filter_module()).unwrap_or_else(|e| panic!("{e}"));
    let err = match host.configure(text) {
        Ok(_) => panic!("configuration {text} was accepted"),
        Err(e) => e,
    };
    assert!(
        host.plugin().is_none(),
        "a refused plugin must serve nothing"
    );
    match err {
        ConfigureError::Rejected { logs } => logs
            .into_iter()
            .filter(|l| l.level >= LogLevel::Error)
            .collect(),
        other => panic!("expected on_configure to return false, got {other}"),
    }
}

/// Reads a dotted path (`http.response.status_code`) out of a JSON value.
pub fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}
