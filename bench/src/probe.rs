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
}

/// Size of the value [`Probe::SetProperty`] writes: about one access record.
pub const RECORD_BYTES: usize = 400;

impl Probe {
    pub fn label(self) -> &'static str {
        match self {
            Probe::Empty => "empty Wasm filter",
            Probe::Headers => "empty + read header map",
            Probe::Properties => "empty + 3 get_property in on_log",
            Probe::SetProperty => "empty + set_property (400 B) in on_log",
            Probe::AbsentProperty => "empty + 1 absent get_property in on_log",
        }
    }

    /// The module's text.
    pub fn wat(self) -> String {
        let (on_headers, on_log) = match self {
            Probe::Empty => ("", ""),
            Probe::Headers => ("(drop (call $get_map (i32.const 0) (i32.const 512) (i32.const 516)))", ""),
            Probe::Properties => (
                "",
                "(drop (call $get_prop (i32.const 1100) (i32.const 13) (i32.const 512) (i32.const 516)))
                 (drop (call $get_prop (i32.const 1200) (i32.const 16) (i32.const 512) (i32.const 516)))
                 (drop (call $get_prop (i32.const 1300) (i32.const 14) (i32.const 512) (i32.const 516)))",
            ),
            Probe::SetProperty => (
                "",
                "(drop (call $set_prop (i32.const 1024) (i32.const 15) (i32.const 2048) (i32.const 400)))",
            ),
            Probe::AbsentProperty => (
                "",
                "(drop (call $get_prop (i32.const 1400) (i32.const 35) (i32.const 512) (i32.const 516)))",
            ),
        };
        let record = format!("{{\"x\":\"{}\"}}", "r".repeat(RECORD_BYTES - 8));
        debug_assert_eq!(record.len(), RECORD_BYTES);
        format!(
            r#"(module
  (import "env" "proxy_get_header_map_pairs" (func $get_map (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set_prop (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 1024) "rfma_access_log")
  (data (i32.const 1100) "response\00code")
  (data (i32.const 1200) "request\00protocol")
  (data (i32.const 1300) "source\00address")
  (data (i32.const 1400) "connection\00uri_san_peer_certificate")
  (data (i32.const 2048) "{record}")
  (func (export "proxy_abi_version_0_2_1"))
  ;; One scratch area for whatever the host hands over: each buffer is dropped unread
  ;; before the next call.
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {on_headers}
    (i32.const 0))
  (func (export "proxy_on_log") (param i32)
    {on_log})
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32))
)"#,
            record = record.replace('"', "\\22"),
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

    #[test]
    fn every_probe_compiles() {
        for p in [
            Probe::Empty,
            Probe::Headers,
            Probe::Properties,
            Probe::SetProperty,
            Probe::AbsentProperty,
        ] {
            let bytes = p.wasm().unwrap();
            assert_eq!(&bytes[..4], b"\0asm", "{p:?}");
        }
    }

    #[test]
    fn property_paths_have_the_lengths_the_calls_pass() {
        assert_eq!("response\0code".len(), 13);
        assert_eq!("request\0protocol".len(), 16);
        assert_eq!("source\0address".len(), 14);
        assert_eq!("rfma_access_log".len(), 15);
        assert_eq!("connection\0uri_san_peer_certificate".len(), 35);
    }
}
