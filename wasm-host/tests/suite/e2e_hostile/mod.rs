//! Hostile requests through a real Envoy 1.40 with the filter, sent as raw bytes over TCP
//! (a normal client refuses most of them). For each: the status the client gets, who gave it
//! (Envoy itself, before the filter runs, or the filter), the access-log line (one valid JSON
//! record when the filter ran, Envoy's `-` when it did not), what reached httpbin, and that
//! the token and its digest appear in no Envoy output, no httpbin log and no header httpbin
//! received.
//!
//! What Envoy does before the filter, with the defaults this harness (and Istio) keeps:
//! - a request head (request line to blank line) over 60 KiB (`max_request_headers_kb`
//!   60, i.e. 61,440 bytes) or with more than 100 headers (`max_headers_count`): 431 over
//!   HTTP/1.1, a stream reset over HTTP/2;
//! - NUL and other control characters (except tab) in a header value, a target that is not
//!   an origin path, a raw non-ASCII byte or a space in the path: 400;
//! - a fragment (`#...`) in the request target: 400;
//! - a bare CR inside a value is dropped, a bare LF ends the header line, an obs-fold
//!   continuation is joined with a space; bytes 0x80-0xFF are passed on as they are.
//! - no path normalisation: `normalize_path` and `merge_slashes` are off and escaped slashes
//!   are kept, so the filter sees the path as sent (Istio turns `normalize_path` on; see
//!   `paths::paths_normalised_by_envoy_first_still_need_a_token_outside_the_bypass_prefix`).
//!
//! The scenarios, by concern: the head's size and header count (`head_limits`), bytes in
//! header values (`header_values`), paths and the bypass rule (`paths`), the token's case
//! and whitespace (`token_form`), a slow client (`slow_client`); `support` sends raw
//! requests and checks each exchange.

mod head_limits;
mod header_values;
mod paths;
mod slow_client;
mod support;
mod token_form;
