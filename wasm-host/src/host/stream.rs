//! One HTTP stream through the plugin, Envoy's way: create, request headers,
//! the upstream's (or a local) response through the response headers, log,
//! done, delete; and what the client and the upstream saw.

use std::collections::BTreeMap;

use super::Host;
use crate::abi::Action;
use crate::headers::Headers;
use crate::request::{ClientResponse, RequestSpec, Response};
use crate::state::{LocalReply, Phase, Stream, StreamInfo};

impl Host {
    /// Runs one HTTP stream through the plugin, Envoy's way.
    pub(crate) fn send(&mut self, spec: RequestSpec) -> Response {
        self.requests += 1;
        let id = self.alloc_context_id();
        let root = self.store.data().root_context;
        let fuel_before = self.fuel_used;
        let fuel_log_before = self.fuel_log.len();
        let logs_before = self.store.data().logs.len();
        let calls_before = self.store.data().calls.len();
        let failed_before = self.failed.is_some();
        let start = spec.at_ns.unwrap_or(self.clock_ns);
        let latency = spec.latency_ns;

        let mut headers = Headers::new();
        headers.add(":authority", &spec.authority);
        headers.add(":path", &spec.path);
        headers.add(":method", &spec.method);
        headers.add(":scheme", &spec.scheme);
        for (k, v) in &spec.headers {
            headers.add(k, v);
        }
        // What Envoy's connection manager adds before any filter runs.
        if !headers.contains("x-forwarded-proto") {
            headers.add("x-forwarded-proto", &spec.scheme);
        }
        if spec.generate_request_id && !headers.contains("x-request-id") {
            headers.add(
                "x-request-id",
                format!("00000000-0000-4000-8000-{:012x}", self.requests),
            );
        }
        let request_headers_count = headers.len() as i32;

        {
            let s = self.store.data_mut();
            s.now_ns = start;
            s.current_context = id;
            s.stream = Some(Stream {
                id,
                phase: Phase::Create,
                request_headers: headers.clone(),
                request_live: false,
                response_headers: None,
                response_live: false,
                info: StreamInfo {
                    source_address: spec.source.clone(),
                    destination_address: spec.destination.clone(),
                    peer_uri_san: spec.peer_uri_san.clone(),
                    protocol: spec.protocol.clone(),
                    request_time_ns: start as i64,
                    duration_ns: latency as i64,
                    extra: spec.properties.clone(),
                    removed: spec.removed_properties.clone(),
                },
                response_code: None,
                response_code_details: None,
                filter_state: BTreeMap::new(),
                local_reply: None,
                local_reply_phase: None,
                continue_requested: false,
                reset_requested: false,
            });
        }

        let ex = self.exports.clone();
        let mut callbacks: Vec<&'static str> = Vec::new();
        let mut request_action = None;
        let mut response_action = None;
        let mut forwarded = None;
        let mut client: Option<ClientResponse> = None;
        // Set when the VM is (or becomes) failed while this stream runs.
        let mut stream_failed = false;

        if self.failed.is_none() {
            // onCreate
            if let Some(f) = ex.on_context_create {
                callbacks.push("proxy_on_context_create");
                let _ = self.call("proxy_on_context_create", &f, (id as i32, root as i32));
            }
        }
        if self.failed.is_none() {
            self.with_stream(|s| {
                s.phase = Phase::RequestHeaders;
                s.request_live = true;
            });
            if let Some(f) = ex.on_request_headers {
                callbacks.push("proxy_on_request_headers");
                let eos = i32::from(spec.end_of_stream);
                if let Ok(raw) = self.call(
                    "proxy_on_request_headers",
                    &f,
                    (id as i32, request_headers_count, eos),
                ) {
                    let mut action = Action::from_raw(raw);
                    // send_local_response → stopNextIteration(true).
                    if self.store.data().stop_iteration {
                        action = Action::Pause(1);
                    }
                    request_action = Some(action);
                }
            } else {
                request_action = Some(Action::Continue);
            }
        }

        let stream = self.stream_ref();
        let local_reply = stream.local_reply.clone();
        if self.failed.is_some() {
            stream_failed = true;
            if self.options.fail_open {
                forwarded = Some(stream.request_headers.clone());
            } else {
                client = Some(fail_stream_reply());
            }
        } else if let Some(reply) = &local_reply {
            client = Some(local_reply_response(reply));
        } else if stream.reset_requested {
            // close_stream: reset, nothing is sent anywhere.
        } else if request_action == Some(Action::Continue) || stream.continue_requested {
            forwarded = Some(stream.request_headers.clone());
        }
        if request_action == Some(Action::Continue) {
            self.with_stream(|s| s.request_live = false);
        }
        if forwarded.is_some() && client.is_none() && !spec.client_resets {
            let mut h = Headers::new();
            h.add(":status", spec.upstream_status.to_string());
            for (k, v) in &spec.upstream_headers {
                h.add(k, v);
            }
            client = Some(ClientResponse {
                status: spec.upstream_status,
                headers: h,
                body: spec.upstream_body.clone(),
                from_local_reply: false,
                details: "via_upstream".to_string(),
            });
        }
        if spec.client_resets && client.as_ref().is_some_and(|c| !c.from_local_reply) {
            client = None;
        }

        // The response path: local replies pass through the encoder filters
        // too, except the reply Envoy sends for a failed VM.
        self.store.data_mut().now_ns = start + latency;
        if let Some(resp) = client.clone() {
            self.with_stream(|s| {
                s.response_code = Some(i64::from(resp.status));
                s.response_code_details = Some(resp.details.clone());
                s.response_headers = Some(resp.headers.clone());
                s.response_live = true;
                s.phase = Phase::ResponseHeaders;
            });
            if !stream_failed && let Some(f) = ex.on_response_headers {
                callbacks.push("proxy_on_response_headers");
                let count = resp.headers.len() as i32;
                let eos = i32::from(resp.body.is_empty());
                match self.call("proxy_on_response_headers", &f, (id as i32, count, eos)) {
                    Ok(raw) => {
                        let action = if self.store.data().stop_iteration {
                            Action::Pause(1)
                        } else {
                            Action::from_raw(raw)
                        };
                        response_action = Some(action);
                        if action == Action::Continue {
                            self.with_stream(|s| s.response_live = false);
                        }
                    }
                    Err(_) => stream_failed = true,
                }
            }
            let stream = self.stream_ref();
            let new_reply = stream
                .local_reply
                .as_ref()
                .filter(|_| stream.local_reply_phase == Some(Phase::ResponseHeaders))
                .cloned();
            let final_headers = stream.response_headers.clone().unwrap_or_default();
            if stream_failed && !self.options.fail_open {
                client = Some(fail_stream_reply());
            } else if let Some(reply) = new_reply {
                client = Some(local_reply_response(&reply));
            } else if let Some(c) = client.as_mut() {
                c.headers = final_headers;
            }
            let final_status = client.as_ref().map(|c| c.status);
            self.with_stream(|s| {
                if let Some(status) = final_status {
                    s.response_code = Some(i64::from(status));
                }
                s.response_live = false;
            });
            if let Some(c) = &client {
                let h = c.headers.clone();
                self.with_stream(|s| s.response_headers = Some(h));
            }
        }

        // End of stream: access log, then the filter is destroyed.
        self.with_stream(|s| s.phase = Phase::Log);
        if self.failed.is_none()
            && let Some(f) = ex.on_log
        {
            callbacks.push("proxy_on_log");
            let _ = self.call("proxy_on_log", &f, id as i32);
        }
        self.with_stream(|s| s.phase = Phase::Done);
        if self.failed.is_none()
            && let Some(f) = ex.on_done
        {
            callbacks.push("proxy_on_done");
            let _ = self.call("proxy_on_done", &f, id as i32);
        }
        if self.failed.is_none()
            && let Some(f) = ex.on_delete
        {
            callbacks.push("proxy_on_delete");
            let _ = self.call("proxy_on_delete", &f, id as i32);
        }

        let state = self.store.data_mut();
        let stream = state.stream.take();
        state.current_context = root;
        self.clock_ns = start + latency + 1_000_000;
        let state = self.store.data();
        let stream = stream.unwrap_or_else(|| panic!("stream {id} vanished"));
        Response {
            context_id: id,
            request_action,
            response_action,
            local_reply: local_reply.or(stream.local_reply.clone()),
            forwarded,
            client,
            filter_state: stream
                .filter_state
                .iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.clone()))
                .collect(),
            logs: state.logs[logs_before..].to_vec(),
            calls: state.calls[calls_before..].to_vec(),
            fuel: self.fuel_used - fuel_before,
            fuel_by_callback: self.fuel_log.split_off(fuel_log_before),
            vm_failure: if failed_before {
                None
            } else {
                self.failed.clone()
            },
            vm_failed: self.failed.is_some(),
            callbacks,
        }
    }

    fn with_stream(&mut self, f: impl FnOnce(&mut Stream)) {
        if let Some(s) = self.store.data_mut().stream.as_mut() {
            f(s);
        }
    }

    fn stream_ref(&self) -> &Stream {
        self.store
            .data()
            .stream
            .as_ref()
            .unwrap_or_else(|| panic!("no stream is running"))
    }
}

/// Envoy's reply when a fail-closed plugin's VM has failed (`failStream`).
fn fail_stream_reply() -> ClientResponse {
    let mut h = Headers::new();
    h.add(":status", "503");
    ClientResponse {
        status: 503,
        headers: h,
        body: Vec::new(),
        from_local_reply: true,
        details: "wasm_fail_stream".to_string(),
    }
}

/// The response headers Envoy builds for `sendLocalReply`: the status, the
/// module's additional headers, then content-length and, when the module set
/// none, `content-type: text/plain` for a non-empty body.
fn local_reply_response(reply: &LocalReply) -> ClientResponse {
    let mut h = Headers::new();
    h.add(":status", reply.status.to_string());
    for (k, v) in reply.headers.entries() {
        h.add(k, v);
    }
    if !reply.body.is_empty() {
        h.add("content-length", reply.body.len().to_string());
        if !h.contains("content-type") {
            h.add("content-type", "text/plain");
        }
    }
    ClientResponse {
        status: reply.status,
        headers: h,
        body: reply.body.clone(),
        from_local_reply: true,
        details: reply.details.clone(),
    }
}
