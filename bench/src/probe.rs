//! Probe modules: the smallest Proxy-Wasm filters that do one thing each, written in WAT and
//! compiled at start. Measured next to the real filter they split its per-request cost into
//! the Wasm boundary itself (a stream context, the callbacks) and individual host calls.

/// What a probe does on each request, besides answering the callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Nothing: `on_request_headers` continues, `on_log` returns.
    Empty,
    /// Reads the whole request header map (`proxy_get_header_map_pairs`), as the filter does.
    Headers,
    /// In `on_log`, reads three properties (`response.code`, `request.protocol`,
    /// `source.address`), as the filter's record does.
    Properties,
    /// In `on_log`, sets a 400-byte filter state (`proxy_set_property`), as the filter's
    /// `filter_state` sink does.
    SetProperty,
    /// In `on_log`, reads `connection.uri_san_peer_certificate`, which a plain-text
    /// connection does not have, as the filter's record does for every request.
    AbsentProperty,
    /// Nothing, but shaped like a module built with the Rust SDK (proxy-wasm 0.2), which
    /// exports every HTTP callback: Envoy then also calls `on_request_body`/`_trailers` and
    /// `on_response_headers`/`_body`/`_trailers` (those a request has). The base of the
    /// `Sdk*` probes below, each of which adds one host call to it.
    Sdk,
    /// SDK-shaped + `proxy_get_current_time_nanoseconds` in `on_request_headers` (the
    /// filter reads the clock for the record's timestamp).
    SdkClock,
    /// SDK-shaped + `proxy_increment_metric` of a counter defined in `on_configure`, in
    /// `on_request_headers` (the filter counts every decision).
    SdkCounter,
    /// SDK-shaped + `proxy_remove_header_map_value` of the token header in
    /// `on_request_headers` (the filter's `strip_header`).
    SdkRemoveHeader,
    /// SDK-shaped + `proxy_get_header_map_value` of the response's `:status` in
    /// `on_response_headers`.
    SdkResponseStatus,
    /// SDK-shaped + one present `proxy_get_property` (`response.code`) in `on_log`.
    SdkProperty,
}

/// Every probe, in the order of the benchmark's variants.
pub const ALL: [Probe; 11] = [
    Probe::Empty,
    Probe::Headers,
    Probe::Properties,
    Probe::SetProperty,
    Probe::AbsentProperty,
    Probe::Sdk,
    Probe::SdkClock,
    Probe::SdkCounter,
    Probe::SdkRemoveHeader,
    Probe::SdkResponseStatus,
    Probe::SdkProperty,
];

/// Size of the value [`Probe::SetProperty`] writes: about one access record.
pub const RECORD_BYTES: usize = 400;

/// The counter [`Probe::SdkCounter`] defines and increments. The `rfma_` prefix puts it in
/// the rig's counter snapshot (`wasmcustom.rfma_*`), so every run checks that it rose by one
/// per request, i.e. that the host call really happened.
pub const COUNTER: &str = "rfma_probe_total";

/// The token header [`Probe::SdkRemoveHeader`] removes.
const TOKEN_HEADER: &str = crate::rig::HEADER;

/// The code one probe adds to each callback (empty: the callback only returns).
#[derive(Debug, Default)]
struct Body {
    on_configure: &'static str,
    on_request_headers: &'static str,
    on_response_headers: &'static str,
    on_log: &'static str,
}

impl Probe {
    pub fn label(self) -> &'static str {
        match self {
            Probe::Empty => "empty Wasm filter",
            Probe::Headers => "empty + read header map",
            Probe::Properties => "empty + 3 get_property in on_log",
            Probe::SetProperty => "empty + set_property (400 B) in on_log",
            Probe::AbsentProperty => "empty + 1 absent get_property in on_log",
            Probe::Sdk => "SDK-shaped empty filter (every HTTP callback exported)",
            Probe::SdkClock => "SDK-shaped + get_current_time_nanoseconds",
            Probe::SdkCounter => "SDK-shaped + increment_metric",
            Probe::SdkRemoveHeader => "SDK-shaped + remove the token request header",
            Probe::SdkResponseStatus => "SDK-shaped + get_header_map_value(response :status)",
            Probe::SdkProperty => "SDK-shaped + 1 get_property (response.code) in on_log",
        }
    }

    /// Whether the module exports every HTTP callback, as the Rust SDK's do.
    pub fn sdk_shaped(self) -> bool {
        !matches!(
            self,
            Probe::Empty
                | Probe::Headers
                | Probe::Properties
                | Probe::SetProperty
                | Probe::AbsentProperty
        )
    }

    fn body(self) -> Body {
        match self {
            Probe::Empty | Probe::Sdk => Body::default(),
            Probe::Headers => Body {
                on_request_headers: "(drop (call $get_map (i32.const 0) (i32.const 512) (i32.const 516)))",
                ..Body::default()
            },
            Probe::Properties => Body {
                on_log: "(drop (call $get_prop (i32.const 1100) (i32.const 13) (i32.const 512) (i32.const 516)))
    (drop (call $get_prop (i32.const 1200) (i32.const 16) (i32.const 512) (i32.const 516)))
    (drop (call $get_prop (i32.const 1300) (i32.const 14) (i32.const 512) (i32.const 516)))",
                ..Body::default()
            },
            Probe::SetProperty => Body {
                on_log: "(drop (call $set_prop (i32.const 1024) (i32.const 15) (i32.const 2048) (i32.const 400)))",
                ..Body::default()
            },
            Probe::AbsentProperty => Body {
                on_log: "(drop (call $get_prop (i32.const 1400) (i32.const 35) (i32.const 512) (i32.const 516)))",
                ..Body::default()
            },
            Probe::SdkClock => Body {
                on_request_headers: "(drop (call $now (i32.const 520)))",
                ..Body::default()
            },
            Probe::SdkCounter => Body {
                // The metric's id goes to 600 and from there into a global; a failed
                // definition leaves 0, which Envoy rejects, and the run's counter check fails.
                on_configure: "(drop (call $define_metric (i32.const 0) (i32.const 1700) (i32.const 16) (i32.const 600)))
    (global.set $counter (i32.load (i32.const 600)))",
                on_request_headers: "(drop (call $increment (global.get $counter) (i64.const 1)))",
                ..Body::default()
            },
            // Header map type 0: the request headers; 2: the response headers.
            Probe::SdkRemoveHeader => Body {
                on_request_headers: "(drop (call $remove (i32.const 0) (i32.const 1500) (i32.const 12)))",
                ..Body::default()
            },
            Probe::SdkResponseStatus => Body {
                on_response_headers: "(drop (call $get_value (i32.const 2) (i32.const 1600) (i32.const 7) (i32.const 512) (i32.const 516)))",
                ..Body::default()
            },
            Probe::SdkProperty => Body {
                on_log: "(drop (call $get_prop (i32.const 1100) (i32.const 13) (i32.const 512) (i32.const 516)))",
                ..Body::default()
            },
        }
    }

    /// The module's text. Every probe imports the same host functions (an import costs
    /// nothing per request) and lays out the same data; only the callbacks' bodies and, for
    /// the SDK-shaped ones, the further exported callbacks differ.
    pub fn wat(self) -> String {
        let b = self.body();
        let record = format!("{{\"x\":\"{}\"}}", "r".repeat(RECORD_BYTES - 8));
        debug_assert_eq!(record.len(), RECORD_BYTES);
        // What the Rust SDK exports besides the callbacks every probe has; each returns
        // `Continue` (0). Envoy calls only those a module exports.
        let sdk = if self.sdk_shaped() {
            format!(
                r#"
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    {}
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) (i32.const 0))"#,
                b.on_response_headers
            )
        } else {
            String::new()
        };
        format!(
            r#"(module
  (import "env" "proxy_get_header_map_pairs" (func $get_map (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (memory (export "memory") 4)
  (global $counter (mut i32) (i32.const 0))
  (data (i32.const 1024) "rfma_access_log")
  (data (i32.const 1100) "response\00code")
  (data (i32.const 1200) "request\00protocol")
  (data (i32.const 1300) "source\00address")
  (data (i32.const 1400) "connection\00uri_san_peer_certificate")
  (data (i32.const 1500) "{TOKEN_HEADER}")
  (data (i32.const 1600) ":status")
  (data (i32.const 1700) "{COUNTER}")
  (data (i32.const 2048) "{record}")
  (func (export "proxy_abi_version_0_2_1"))
  ;; One scratch area for whatever the host hands over: each buffer is dropped unread
  ;; before the next call.
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    {on_configure}
    (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {on_request_headers}
    (i32.const 0)){sdk}
  (func (export "proxy_on_log") (param i32)
    {on_log})
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32))
)"#,
            record = record.replace('"', "\\22"),
            on_configure = b.on_configure,
            on_request_headers = b.on_request_headers,
            on_log = b.on_log,
        )
    }

    /// The compiled module.
    pub fn wasm(self) -> Result<Vec<u8>, String> {
        wat::parse_str(self.wat()).map_err(|e| format!("probe {self:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a compiled module exports (its export section, read by hand: the `wat`
    /// crate only writes modules).
    fn exports(wasm: &[u8]) -> Vec<String> {
        fn leb(b: &[u8], i: &mut usize) -> u32 {
            let (mut v, mut shift) = (0u32, 0);
            loop {
                let byte = b[*i];
                *i += 1;
                v |= u32::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return v;
                }
                shift += 7;
            }
        }
        assert_eq!(&wasm[..8], b"\0asm\x01\0\0\0");
        let mut i = 8;
        while i < wasm.len() {
            let id = wasm[i];
            i += 1;
            let size = leb(wasm, &mut i) as usize;
            let end = i + size;
            if id == 7 {
                let mut names = Vec::new();
                for _ in 0..leb(wasm, &mut i) {
                    let len = leb(wasm, &mut i) as usize;
                    names.push(String::from_utf8(wasm[i..i + len].to_vec()).unwrap());
                    i += len + 1; // the name, then the kind byte
                    leb(wasm, &mut i); // the index
                }
                return names;
            }
            i = end;
        }
        Vec::new()
    }

    const BASE: [&str; 10] = [
        "memory",
        "proxy_abi_version_0_2_1",
        "proxy_on_memory_allocate",
        "proxy_on_vm_start",
        "proxy_on_configure",
        "proxy_on_context_create",
        "proxy_on_request_headers",
        "proxy_on_log",
        "proxy_on_done",
        "proxy_on_delete",
    ];
    const SDK_EXTRA: [&str; 5] = [
        "proxy_on_request_body",
        "proxy_on_request_trailers",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_response_trailers",
    ];

    #[test]
    fn every_probe_compiles_and_exports_its_callbacks() {
        for p in ALL {
            let names = exports(&p.wasm().unwrap());
            for name in BASE {
                assert!(
                    names.iter().any(|n| n == name),
                    "{p:?} does not export {name}"
                );
            }
            for name in SDK_EXTRA {
                assert_eq!(
                    names.iter().any(|n| n == name),
                    p.sdk_shaped(),
                    "{p:?} and {name}"
                );
            }
            assert_eq!(
                names.len(),
                BASE.len() + if p.sdk_shaped() { SDK_EXTRA.len() } else { 0 },
                "{p:?}: {names:?}"
            );
        }
    }

    /// Each SDK-shaped probe is the SDK-shaped empty one plus the calls it is named for, in
    /// the callback where the filter makes them.
    #[test]
    fn sdk_probes_add_exactly_their_host_call() {
        let calls = |p: Probe| -> Vec<String> {
            p.wat()
                .lines()
                .filter(|l| l.contains("(call $"))
                .map(|l| l.trim().to_owned())
                .collect()
        };
        assert!(calls(Probe::Sdk).is_empty() && calls(Probe::Empty).is_empty());
        let expect = [
            (Probe::SdkClock, vec!["$now"]),
            (Probe::SdkCounter, vec!["$define_metric", "$increment"]),
            (Probe::SdkRemoveHeader, vec!["$remove"]),
            (Probe::SdkResponseStatus, vec!["$get_value"]),
            (Probe::SdkProperty, vec!["$get_prop"]),
        ];
        for (p, functions) in expect {
            let c = calls(p);
            assert_eq!(c.len(), functions.len(), "{p:?}: {c:?}");
            for (line, f) in c.iter().zip(functions) {
                assert!(line.contains(&format!("(call {f} ")), "{p:?}: {line}");
            }
        }
        // Where the calls are: the status in on_response_headers, the property in on_log.
        let wat = Probe::SdkResponseStatus.wat();
        let at = wat.find("(call $get_value").unwrap();
        assert!(
            wat[..at].rfind("(func (export").unwrap()
                == wat
                    .find("(func (export \"proxy_on_response_headers\"")
                    .unwrap()
        );
        let wat = Probe::SdkProperty.wat();
        let at = wat.find("(call $get_prop").unwrap();
        assert!(
            wat[..at].rfind("(func (export").unwrap()
                == wat.find("(func (export \"proxy_on_log\"").unwrap()
        );
    }

    #[test]
    fn data_have_the_lengths_the_calls_pass() {
        assert_eq!("response\0code".len(), 13);
        assert_eq!("request\0protocol".len(), 16);
        assert_eq!("source\0address".len(), 14);
        assert_eq!("rfma_access_log".len(), 15);
        assert_eq!("connection\0uri_san_peer_certificate".len(), 35);
        assert_eq!(TOKEN_HEADER.len(), 12);
        assert_eq!(":status".len(), 7);
        assert_eq!(COUNTER.len(), 16);
        assert!(
            Probe::SdkRemoveHeader
                .wat()
                .contains("(i32.const 1500) (i32.const 12)")
        );
        assert!(
            Probe::SdkCounter
                .wat()
                .contains("(i32.const 1700) (i32.const 16)")
        );
    }
}
