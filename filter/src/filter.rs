//! Wires the pure modules into the SDK's root and HTTP contexts.
//!
//! Per request: read the header map once, decide, strip the token, hand the decision to the
//! access log (filter state, see [`crate::handover`]), reply or continue. Nothing runs after
//! the request headers: the record is Envoy's, so the module exports no `proxy_on_log`.

use crate::config::{self, Policy};
use crate::gate::{self, Decision, Reason, Request};
use crate::handover;
use crate::headers::RequestHeaders;
use crate::host::{self, HeaderMap};
use crate::response::{self, COUNTERS};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The plain-text warning is logged once per VM, not once per configuration push.
static PLAIN_TEXT_WARNED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Every counter this VM defined, sorted by name. A configuration push gets a new root
    /// context but the same VM: names it keeps keep their ids, and only new names are defined.
    /// (A sorted `Vec` rather than a map: 3 KB less module.)
    static COUNTER_IDS: RefCell<Vec<(String, u32)>> = const { RefCell::new(Vec::new()) };
}

/// The ids of one configuration's counters.
#[derive(Debug)]
struct Counters {
    /// By [`response::counter_index`].
    decisions: [u32; COUNTERS.len()],
    /// `tokens[i]` counts the requests `Policy::tokens[i]` allowed.
    tokens: Vec<u32>,
}

pub fn register() {
    host::install_logger();
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
                log::error!("rfma: cannot read the plugin config (host status {})", e.0);
                return false;
            }
        };
        let policy = match config::parse(&bytes) {
            Ok(policy) => policy,
            Err(e) => {
                log::error!("rfma: invalid plugin config: {e}");
                return false;
            }
        };
        match define_counters(&policy) {
            Ok(ids) => self.counters = Some(Rc::new(ids)),
            Err(e) => {
                log::error!("rfma: cannot define counters (host status {})", e.0);
                return false;
            }
        }
        if policy.plain_text_tokens > 0 && !PLAIN_TEXT_WARNED.swap(true, Ordering::Relaxed) {
            log::warn!(
                "rfma: {} token(s) configured as plain-text \"value\"; plain text is discouraged, configure \"sha256\" digests instead",
                policy.plain_text_tokens
            );
        }
        self.policy = Some(Rc::new(policy));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GateStream {
            policy: self.policy.clone(),
            counters: self.counters.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The decision counters and one counter per configured token, all defined before the
/// configuration serves.
fn define_counters(policy: &Policy) -> Result<Counters, host::HostError> {
    let mut decisions = [0u32; COUNTERS.len()];
    for (id, name) in decisions.iter_mut().zip(COUNTERS) {
        *id = counter_id(name)?;
    }
    let tokens = policy
        .tokens
        .iter()
        .map(|token| counter_id(&response::token_counter_name(&token.name)))
        .collect::<Result<_, _>>()?;
    Ok(Counters { decisions, tokens })
}

/// The id of the counter `name`, defined on first use in this VM.
fn counter_id(name: &str) -> Result<u32, host::HostError> {
    let search = |ids: &[(String, u32)]| ids.binary_search_by(|(n, _)| n.as_str().cmp(name));
    // Not re-entered (nothing below calls back), so the borrow is always free; if it were not,
    // defining the counter again would still be correct, only not deduplicated.
    let known = COUNTER_IDS
        .try_with(|ids| {
            let ids = ids.try_borrow().ok()?;
            let at = search(&ids).ok()?;
            ids.get(at).map(|(_, id)| *id)
        })
        .ok()
        .flatten();
    if let Some(id) = known {
        return Ok(id);
    }
    let id = host::define_counter(name)?;
    let _ = COUNTER_IDS.try_with(|ids| {
        if let Ok(mut ids) = ids.try_borrow_mut()
            && let Err(at) = search(&ids)
        {
            ids.insert(at, (name.to_owned(), id));
        }
    });
    Ok(id)
}

struct GateStream {
    policy: Option<Rc<Policy>>,
    counters: Option<Rc<Counters>>,
}

impl Context for GateStream {}

impl HttpContext for GateStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // No valid configuration: fail closed, before anything is read.
        let Some(policy) = self.policy.clone() else {
            return self.settle(
                Decision::Deny(Reason::InternalError),
                None,
                None,
                None,
                None,
            );
        };
        let Ok(headers) = HeaderMap::request() else {
            return self.settle(
                Decision::Deny(Reason::InternalError),
                None,
                None,
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
                Decision::Deny(Reason::InternalError),
                None,
                None,
                None,
                Some(&policy),
            );
        }
        let request = Request {
            method: view.method,
            path: view.path,
        };
        let verdict = gate::decide(
            &policy,
            request,
            view.token_values(),
            || {
                let peer = host::property(host::PEER_URI_SAN)?;
                Ok::<_, host::HostError>(
                    peer.as_deref()
                        .and_then(|p| std::str::from_utf8(p).ok())
                        .map(str::to_owned),
                )
            },
            host::now_ns,
        );
        let mut decision = verdict.decision;
        if decision.is_allowed()
            && policy.strip_header
            && view.has_token()
            && host::remove_request_header(&policy.header).is_err()
        {
            // Forwarding a token we were told to strip would leak it upstream.
            decision = Decision::Deny(Reason::InternalError);
        }
        self.settle(
            decision,
            verdict.token,
            view.request_id,
            view.authority,
            Some(&policy),
        )
    }
}

impl GateStream {
    /// Counts the decision, hands it to the access log, and sends the deny reply if there is
    /// one. The values go into filter state before the reply, so the record of a local reply
    /// (which Envoy writes when the reply is sent) carries them too.
    /// `matched` is the configured token the request's token matched, if any; the hand-over
    /// decides whether the record names it.
    fn settle(
        &mut self,
        decision: Decision,
        matched: Option<usize>,
        request_id: Option<&[u8]>,
        authority: Option<&[u8]>,
        policy: Option<&Policy>,
    ) -> Action {
        if let Some(counters) = self.counters.as_deref() {
            if let Some(id) = counters.decisions.get(response::counter_index(decision)) {
                let _ = host::increment_counter(*id);
            }
            if let Decision::Allow { token } = decision
                && let Some(id) = counters.tokens.get(token)
            {
                let _ = host::increment_counter(*id);
            }
        }
        if let Some(policy) = policy.filter(|p| p.records(decision.is_allowed())) {
            let token_name = matched
                .and_then(|token| policy.tokens.get(token))
                .map(|t| t.name.as_str());
            for (key, value) in handover::values(decision, token_name, authority)
                .into_iter()
                .flatten()
            {
                // A value the proxy refuses costs the record a field, never the request.
                let _ = host::set_property(key, value);
            }
        }
        let Decision::Deny(reason) = decision else {
            return Action::Continue;
        };
        let body = response::deny_body(reason, request_id);
        let challenge = policy.and_then(|p| response::challenge(&p.realm, &p.header, reason));
        const CONTENT_TYPE: (&str, &str) = ("content-type", "application/json");
        let with_challenge;
        let headers: &[(&str, &str)] = match challenge.as_deref() {
            Some(challenge) => {
                with_challenge = [CONTENT_TYPE, ("www-authenticate", challenge)];
                &with_challenge
            }
            None => &[CONTENT_TYPE],
        };
        if host::send_local_response(reason.status(), reason.details(), headers, &body).is_err() {
            refused_reply();
        }
        Action::Pause
    }
}

/// Out of line and cold: the log macro's formatting, inlined into `settle`, cost every request
/// 6 fuel (the fuel table) for a line that is almost never written.
#[cold]
#[inline(never)]
fn refused_reply() {
    log::error!("rfma: the proxy refused the deny reply");
}
