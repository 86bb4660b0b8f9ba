//! Probe modules: the smallest Proxy-Wasm filters that do one thing each, written in WAT and
//! compiled at start. Measured next to the real filter they split its per-request cost into
//! the Wasm boundary itself (a stream context and its callbacks) and the host calls the filter
//! makes.
//!
//! Every probe exports exactly the callbacks the shipped module exports
//! (`filter/exports.json`): of the per-request ones only `proxy_on_context_create`,
//! `proxy_on_request_headers` and `proxy_on_delete`, so Envoy calls a probe exactly as often
//! as it calls the filter. A probe's one host call sits in `on_request_headers`, where the
//! filter makes it.

/// What a probe does on each request, besides answering the callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Nothing: `on_request_headers` continues.
    Empty,
    /// Reads the whole request header map (`proxy_get_header_map_pairs`), as the filter does.
    Headers,
    /// Sets one short property (`proxy_set_property` of `rfma_decision` = `allow`), of the
    /// kind the filter writes for the access log (Envoy keeps it as `wasm.rfma_decision`, which
    /// the shipped format prints as `rfma.decision`).
    SetProperty,
    /// Increments a counter defined in `on_configure` (`proxy_increment_metric`), as the
    /// filter counts every decision.
    Counter,
    /// Removes the token request header (`proxy_remove_header_map_value`), the filter's
    /// `strip_header`.
    RemoveHeader,
}

/// Every probe, in the order of the benchmark's variants.
pub const ALL: [Probe; 5] = [
    Probe::Empty,
    Probe::Headers,
    Probe::SetProperty,
    Probe::Counter,
    Probe::RemoveHeader,
];

/// The property [`Probe::SetProperty`] sets and its value: the filter's decision key and the
/// decision of an allowed request.
pub const PROPERTY: &str = "rfma_decision";
pub const PROPERTY_VALUE: &str = "allow";

/// The counter [`Probe::Counter`] defines and increments. The `rfma_` prefix puts it in the
/// rig's counter snapshot (`wasmcustom.rfma_*`), so every run checks that it rose by one per
/// request, i.e. that the host call really happened.
pub const COUNTER: &str = "rfma_probe_total";

/// The token header [`Probe::RemoveHeader`] removes.
const TOKEN_HEADER: &str = crate::rig::HEADER;

/// Where each string lives in the probe's memory.
const AT_PROPERTY: u32 = 1024;
const AT_PROPERTY_VALUE: u32 = 1100;
const AT_TOKEN_HEADER: u32 = 1500;
const AT_COUNTER: u32 = 1700;

impl Probe {
    /// The body of `proxy_on_configure` (before it returns true) and of
    /// `proxy_on_request_headers` (before it returns `Continue`).
    fn body(self) -> (String, String) {
        let none = String::new();
        match self {
            Probe::Empty => (none.clone(), none),
            // Header map type 0: the request headers.
            Probe::Headers => (
                none,
                "(drop (call $get_map (i32.const 0) (i32.const 512) (i32.const 516)))".to_owned(),
            ),
            Probe::SetProperty => (
                none,
                format!(
                    "(drop (call $set_prop (i32.const {AT_PROPERTY}) (i32.const {}) (i32.const {AT_PROPERTY_VALUE}) (i32.const {})))",
                    PROPERTY.len(),
                    PROPERTY_VALUE.len()
                ),
            ),
            // The metric's id goes to 600 and from there into a global; a failed definition
            // leaves 0, which Envoy rejects, and the run's counter check fails.
            Probe::Counter => (
                format!(
                    "(drop (call $define_metric (i32.const 0) (i32.const {AT_COUNTER}) (i32.const {}) (i32.const 600)))
    (global.set $counter (i32.load (i32.const 600)))",
                    COUNTER.len()
                ),
                "(drop (call $increment (global.get $counter) (i64.const 1)))".to_owned(),
            ),
            Probe::RemoveHeader => (
                none,
                format!(
                    "(drop (call $remove (i32.const 0) (i32.const {AT_TOKEN_HEADER}) (i32.const {})))",
                    TOKEN_HEADER.len()
                ),
            ),
        }
    }

    /// The module's text. Every probe imports the same host functions (an import costs
    /// nothing per request), lays out the same data and exports the same callbacks; only
    /// the bodies differ.
    pub fn wat(self) -> String {
        let (on_configure, on_request_headers) = self.body();
        format!(
            r#"(module
  (import "env" "proxy_get_header_map_pairs" (func $get_map (param i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (memory (export "memory") 4)
  (global $counter (mut i32) (i32.const 0))
  (data (i32.const {AT_PROPERTY}) "{PROPERTY}")
  (data (i32.const {AT_PROPERTY_VALUE}) "{PROPERTY_VALUE}")
  (data (i32.const {AT_TOKEN_HEADER}) "{TOKEN_HEADER}")
  (data (i32.const {AT_COUNTER}) "{COUNTER}")
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
    (i32.const 0))
  (func (export "proxy_on_delete") (param i32))
)"#
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

    /// What the shipped module exports, from the one list `wasm-post` keeps
    /// (`filter/exports.json`).
    fn filter_exports() -> Vec<String> {
        let list: serde_json::Value =
            serde_json::from_str(include_str!("../../filter/exports.json")).unwrap();
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["export"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// A probe is called exactly like the filter: the same callbacks, no more, no fewer. The
    /// one export it lacks is `_initialize`, the start function of the Rust build (WASI
    /// reactor), which Envoy calls once per VM, never per request.
    #[test]
    fn every_probe_exports_what_the_filter_exports() {
        let mut want: Vec<String> = filter_exports()
            .into_iter()
            .filter(|n| n != "_initialize")
            .collect();
        want.sort();
        assert!(want.iter().any(|n| n == "proxy_on_request_headers"));
        for p in ALL {
            let mut names = exports(&p.wasm().unwrap());
            names.sort();
            assert_eq!(names, want, "{p:?}");
        }
    }

    /// Each probe is the empty one plus the calls it is named for, in `on_request_headers`
    /// (and, for the counter, its definition in `on_configure`).
    #[test]
    fn each_probe_adds_exactly_its_host_call() {
        let calls = |p: Probe| -> Vec<String> {
            p.wat()
                .lines()
                .filter(|l| l.contains("(call $"))
                .map(|l| l.trim().to_owned())
                .collect()
        };
        assert!(calls(Probe::Empty).is_empty());
        let expect = [
            (Probe::Headers, vec!["$get_map"]),
            (Probe::SetProperty, vec!["$set_prop"]),
            (Probe::Counter, vec!["$define_metric", "$increment"]),
            (Probe::RemoveHeader, vec!["$remove"]),
        ];
        for (p, functions) in expect {
            let c = calls(p);
            assert_eq!(c.len(), functions.len(), "{p:?}: {c:?}");
            for (line, f) in c.iter().zip(functions) {
                assert!(line.contains(&format!("(call {f} ")), "{p:?}: {line}");
            }
            // The per-request call is in on_request_headers.
            let wat = p.wat();
            let last = c.last().unwrap();
            let at = wat.find(last.as_str()).unwrap();
            assert_eq!(
                wat[..at].rfind("(func (export"),
                wat.find("(func (export \"proxy_on_request_headers\""),
                "{p:?}"
            );
        }
    }

    #[test]
    fn calls_pass_the_lengths_of_their_data() {
        assert!(
            Probe::SetProperty
                .wat()
                .contains("(i32.const 1024) (i32.const 13) (i32.const 1100) (i32.const 5)")
        );
        assert!(
            Probe::RemoveHeader
                .wat()
                .contains("(i32.const 1500) (i32.const 12)")
        );
        assert!(
            Probe::Counter
                .wat()
                .contains("(i32.const 1700) (i32.const 16)")
        );
        // The data do not overlap.
        assert!(AT_PROPERTY as usize + PROPERTY.len() <= AT_PROPERTY_VALUE as usize);
        assert!(AT_PROPERTY_VALUE as usize + PROPERTY_VALUE.len() <= AT_TOKEN_HEADER as usize);
        assert!(AT_TOKEN_HEADER as usize + TOKEN_HEADER.len() <= AT_COUNTER as usize);
    }
}
