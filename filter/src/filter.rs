//! Wires the pure modules into the SDK's root and HTTP contexts.
//!
//! Per request: read the header map once, decide, strip the token, reply or continue; in
//! `on_log` (when the final status is known) build the record and hand it to its sink.

use crate::config::{self, Policy};
use crate::gate::{self, Decision, Reason, Request};
use crate::headers::{HeaderSpans, RequestHeaders};
use crate::host::{self, HeaderMap, LogLevel};
use crate::record::AccessRecord;
use crate::response::{self, COUNTERS};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The plain-text warning is logged once per VM, not once per configuration push.
static PLAIN_TEXT_WARNED: AtomicBool = AtomicBool::new(false);

type Counters = [u32; COUNTERS.len()];

pub fn register() {
    proxy_wasm::set_root_context(|_| Box::new(GateRoot::default()));
}

#[derive(Default)]
struct GateRoot {
    policy: Option<Rc<Policy>>,
    counters: Option<Rc<Counters>>,
}

impl Context for GateRoot {}

impl RootContext for GateRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match host::plugin_configuration(plugin_configuration_size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(e) => {
                let _ = host::log(
                    LogLevel::Error,
                    format!("rfma: cannot read the plugin config (host status {})", e.0).as_bytes(),
                );
                return false;
            }
        };
        let policy = match config::parse(&bytes) {
            Ok(policy) => policy,
            Err(e) => {
                let _ = host::log(
                    LogLevel::Error,
                    format!("rfma: invalid plugin config: {e}").as_bytes(),
                );
                return false;
            }
        };
        if self.counters.is_none() {
            match define_counters() {
                Ok(ids) => self.counters = Some(Rc::new(ids)),
                Err(e) => {
                    let _ = host::log(
                        LogLevel::Error,
                        format!("rfma: cannot define counters (host status {})", e.0).as_bytes(),
                    );
                    return false;
                }
            }
        }
        if policy.plain_text_tokens > 0 && !PLAIN_TEXT_WARNED.swap(true, Ordering::Relaxed) {
            let _ = host::log(
                LogLevel::Warn,
                format!(
                    "rfma: {} token(s) configured as plain-text \"value\"; plain text is discouraged, configure \"sha256\" digests instead",
                    policy.plain_text_tokens
                )
                .as_bytes(),
            );
        }
        self.policy = Some(Rc::new(policy));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GateStream {
            policy: self.policy.clone(),
            counters: self.counters.clone(),
            seen: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn define_counters() -> Result<Counters, host::HostError> {
    let mut ids = [0u32; COUNTERS.len()];
    for (id, name) in ids.iter_mut().zip(COUNTERS) {
        *id = host::define_counter(name)?;
    }
    Ok(ids)
}

struct GateStream {
    policy: Option<Rc<Policy>>,
    counters: Option<Rc<Counters>>,
    seen: Option<Seen>,
}

/// What `on_log` needs from the request phase.
struct Seen {
    started_ns: Option<u64>,
    decision: Decision,
    /// Whether this request gets a record (its class is logged and the sink is not `none`).
    recorded: bool,
    /// Kept only when the request gets a record; empty if the proxy could not supply them.
    headers: HeaderMap,
    /// Where the record's fields are in `headers`.
    spans: HeaderSpans,
    /// The peer's URI SAN, when the gate already had to read it.
    principal: Option<Option<Vec<u8>>>,
    /// The status of the deny reply the proxy accepted: the record needs no property for it.
    replied: Option<u32>,
}

impl Context for GateStream {}

impl HttpContext for GateStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Every host call costs a trip across the Wasm boundary: the clock is read only for
        // the record. No valid configuration: fail closed, before anything is read.
        let Some(policy) = self.policy.clone() else {
            return self.settle(None, Decision::Deny(Reason::InternalError), None, None);
        };
        let started_ns = if policy.records_any() {
            host::now_ns().ok()
        } else {
            None
        };
        let Ok(headers) = HeaderMap::request() else {
            return self.settle(
                started_ns,
                Decision::Deny(Reason::InternalError),
                None,
                Some(&policy),
            );
        };
        #[cfg(feature = "test-trap")]
        if headers.get(b"x-rfma-test-trap").is_some() {
            core::arch::wasm32::unreachable();
        }

        let mut pairs = headers.iter();
        let view = RequestHeaders::read(pairs.by_ref(), policy.header.as_bytes());
        if !pairs.complete() {
            // A damaged map may hide a token header: decide nothing from it.
            return self.settle(
                started_ns,
                Decision::Deny(Reason::InternalError),
                None,
                Some(&policy),
            );
        }
        let request = Request {
            method: view.method,
            path: view.path,
        };
        let mut principal: Option<Option<Vec<u8>>> = None;
        let mut decision = gate::decide(&policy, request, view.token_values(), || {
            let peer = host::property(host::PEER_URI_SAN)?;
            let text = peer
                .as_deref()
                .and_then(|p| std::str::from_utf8(p).ok())
                .map(str::to_owned);
            principal = Some(peer);
            Ok::<_, host::HostError>(text)
        });
        if decision.is_allowed()
            && policy.strip_header
            && view.has_token()
            && host::remove_request_header(&policy.header).is_err()
        {
            // Forwarding a token we were told to strip would leak it upstream.
            decision = Decision::Deny(Reason::InternalError);
        }
        let action = self.settle(started_ns, decision, view.request_id, Some(&policy));
        if let Some(seen) = self.seen.as_mut().filter(|seen| seen.recorded) {
            seen.spans = view.spans(headers.bytes());
            seen.headers = headers;
            seen.principal = principal;
        }
        action
    }

    fn on_log(&mut self) {
        let (Some(seen), Some(policy)) = (self.seen.take(), self.policy.as_ref()) else {
            return;
        };
        if !seen.recorded {
            return;
        }
        let view = seen.spans.view(seen.headers.bytes());
        let (path, query) = gate::split_path(view.path);
        let now = host::now_ns().ok();
        // Each property read costs a trip into the proxy and back into the module (to
        // allocate the value), about as much as the rest of the record: skip what is known.
        let status = match seen.replied {
            Some(status) => Some(u64::from(status)),
            None => host::property_u64(host::RESPONSE_CODE).ok().flatten(),
        };
        let protocol = host::property(host::REQUEST_PROTOCOL).ok().flatten();
        let source = host::property(host::SOURCE_ADDRESS).ok().flatten();
        let principal = match seen.principal {
            Some(known) => known,
            None => host::property(host::PEER_URI_SAN).ok().flatten(),
        };
        let token_name = match seen.decision {
            Decision::Allow { token } => policy.tokens.get(token).map(|t| t.name.as_str()),
            _ => None,
        };
        let record = AccessRecord {
            timestamp_ns: seen.started_ns.or(now).unwrap_or_default(),
            decision: seen.decision,
            token_name,
            method: view.method,
            path,
            query,
            status,
            duration_ns: seen
                .started_ns
                .zip(now)
                .and_then(|(start, end)| end.checked_sub(start)),
            request_id: view.request_id,
            protocol: protocol.as_deref(),
            authority: view.authority,
            source_address: source.as_deref(),
            user_agent: view.user_agent,
            traceparent: view.traceparent,
            b3_trace_id: view.b3_trace_id,
            principal: principal.as_deref().filter(|p| !p.is_empty()),
        };
        let mut line = Vec::new();
        record.write(&mut line);
        if policy.log.sink.filter_state() {
            let _ = host::set_property(host::ACCESS_RECORD, &line);
        }
        if policy.log.sink.proxy_log() {
            let _ = host::log(LogLevel::Info, &line);
        }
    }
}

impl GateStream {
    /// Counts the decision, sends the deny reply if there is one, and notes what `on_log`
    /// needs (the caller adds the headers when the request gets a record).
    fn settle(
        &mut self,
        started_ns: Option<u64>,
        decision: Decision,
        request_id: Option<&[u8]>,
        policy: Option<&Policy>,
    ) -> Action {
        if let Some(id) = self
            .counters
            .as_deref()
            .and_then(|ids| ids.get(response::counter_index(decision)))
        {
            let _ = host::increment_counter(*id);
        }
        let recorded = policy.is_some_and(|p| p.records(decision.is_allowed()));
        self.seen = Some(Seen {
            started_ns,
            decision,
            recorded,
            headers: HeaderMap::default(),
            spans: HeaderSpans::default(),
            principal: None,
            replied: None,
        });
        let Decision::Deny(reason) = decision else {
            return Action::Continue;
        };
        let body = response::deny_body(reason, request_id);
        let content_type = [("content-type", "application/json")];
        match host::send_local_response(reason.status(), reason.details(), &content_type, &body) {
            Ok(()) => {
                if let Some(seen) = self.seen.as_mut() {
                    seen.replied = Some(reason.status());
                }
            }
            Err(_) => {
                let _ = host::log(LogLevel::Error, b"rfma: the proxy refused the deny reply");
            }
        }
        Action::Pause
    }
}
