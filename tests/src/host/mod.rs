//! The host: loads a module, plays Envoy's lifecycle (VM start, plugin
//! configure, then per stream create → request headers → response headers →
//! log → done → delete), and reports what a client and upstream would see.

use std::collections::BTreeMap;
use std::fmt;

use wasmtime::{Instance, Linker, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::{Action, LogLevel};
use crate::headers::Headers;
use crate::imports;
use crate::module::{FUEL_PER_CALL, Module, engine};
use crate::request::{ClientResponse, RequestBuilder, RequestSpec, Response};
use crate::state::{HostCall, LocalReply, LogLine, Metrics, Phase, State, Stream, StreamInfo};

/// 2026-01-02T03:04:05.678901234Z: the host's clock starts here, so every run
/// sees the same times (and spends the same fuel formatting them).
pub const DEFAULT_START_TIME_NS: u64 = 1_767_323_045_678_901_234;

/// What a failed VM looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFailure {
    /// The callback (or host step) that failed, e.g. `proxy_on_request_headers`.
    pub during: String,
    /// The trap or error message.
    pub message: String,
    /// The wasm trap code when the failure was a trap (e.g. `wasm trap: wasm `unreachable` instruction executed`).
    pub trap: Option<String>,
}

impl fmt::Display for VmFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wasm VM failed in {}: {}", self.during, self.message)?;
        if let Some(trap) = &self.trap {
            write!(f, " ({trap})")?;
        }
        Ok(())
    }
}

/// Why a module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    Missing {
        path: std::path::PathBuf,
        message: String,
    },
    Compile {
        source: String,
        message: String,
    },
    Link {
        message: String,
    },
    Abi {
        message: String,
    },
    Export {
        name: String,
        message: String,
    },
    Start(VmFailure),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Missing { path, message } => {
                write!(f, "cannot read module {}: {message}", path.display())
            }
            HostError::Compile { source, message } => {
                write!(f, "cannot compile module {source}: {message}")
            }
            HostError::Link { message } => write!(f, "cannot link module: {message}"),
            HostError::Abi { message } => write!(f, "not a Proxy-Wasm module: {message}"),
            HostError::Export { name, message } => write!(f, "export {name}: {message}"),
            HostError::Start(failure) => write!(f, "module start failed: {failure}"),
        }
    }
}

impl std::error::Error for HostError {}

/// Why a plugin configuration was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigureError {
    /// `proxy_on_configure` returned false: Envoy refuses the plugin.
    Rejected { logs: Vec<LogLine> },
    /// `proxy_on_vm_start` returned false.
    VmStartFailed { logs: Vec<LogLine> },
    /// The VM trapped (or had already failed).
    VmFailed(VmFailure),
}

impl ConfigureError {
    /// Log lines the module wrote while it was being configured.
    pub fn logs(&self) -> &[LogLine] {
        match self {
            ConfigureError::Rejected { logs } | ConfigureError::VmStartFailed { logs } => logs,
            _ => &[],
        }
    }
}

impl fmt::Display for ConfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = |logs: &[LogLine]| {
            logs.iter()
                .map(|l| format!("[{:?}] {}", l.level, l.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        match self {
            ConfigureError::Rejected { logs } => {
                write!(
                    f,
                    "plugin rejected: proxy_on_configure returned false; logs: {}",
                    lines(logs)
                )
            }
            ConfigureError::VmStartFailed { logs } => {
                write!(f, "proxy_on_vm_start returned false; logs: {}", lines(logs))
            }
            ConfigureError::VmFailed(failure) => write!(f, "{failure}"),
        }
    }
}

impl std::error::Error for ConfigureError {}

/// How the host is set up, like the `WasmPlugin`/Envoy `wasm` filter config.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// `vm_config.configuration` (buffer type 6).
    pub vm_configuration: Vec<u8>,
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    /// `vm_config.environment_variables` (WASI `environ_*`).
    pub env: Vec<(String, String)>,
    /// Envoy's log level, returned by `proxy_get_log_level`.
    pub log_level: LogLevel,
    /// Envoy's `fail_open` (Istio `failStrategy: FAIL_OPEN`); false = fail closed.
    pub fail_open: bool,
    pub start_time_ns: u64,
    /// Fuel each call into the module gets; running out traps and fails the VM.
    pub fuel_per_call: u64,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            vm_configuration: Vec::new(),
            plugin_name: "rfma-token-gate".to_string(),
            root_id: String::new(),
            vm_id: String::new(),
            env: Vec::new(),
            log_level: LogLevel::Info,
            fail_open: false,
            start_time_ns: DEFAULT_START_TIME_NS,
            fuel_per_call: FUEL_PER_CALL,
        }
    }
}

type F1<P, R> = Option<TypedFunc<P, R>>;

#[derive(Clone)]
struct Exports {
    on_context_create: F1<(i32, i32), ()>,
    on_vm_start: F1<(i32, i32), i32>,
    on_configure: F1<(i32, i32), i32>,
    on_request_headers: F1<(i32, i32, i32), i32>,
    on_response_headers: F1<(i32, i32, i32), i32>,
    on_log: F1<i32, ()>,
    on_done: F1<i32, i32>,
    on_delete: F1<i32, ()>,
    on_tick: F1<i32, ()>,
}

/// One Envoy Wasm VM running one module.
pub struct Host {
    store: Store<State>,
    exports: Exports,
    options: HostOptions,
    unknown_imports: Vec<String>,
    failed: Option<VmFailure>,
    configured: bool,
    next_context_id: u32,
    requests: u64,
    clock_ns: u64,
    fuel_used: u64,
    /// Fuel of each call into the module, in order (name of the export, fuel).
    fuel_log: Vec<(&'static str, u64)>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("failed", &self.failed)
            .field("configured", &self.configured)
            .field("requests", &self.requests)
            .finish()
    }
}

fn typed<P: WasmParams, R: WasmResults>(
    store: &mut Store<State>,
    instance: &Instance,
    name: &str,
) -> Result<F1<P, R>, HostError> {
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(f) => f
            .typed::<P, R>(&*store)
            .map(Some)
            .map_err(|e| HostError::Export {
                name: name.to_string(),
                message: format!("{e:#}"),
            }),
    }
}

fn failure_of(during: &str, err: &wasmtime::Error) -> VmFailure {
    VmFailure {
        during: during.to_string(),
        message: format!("{err:#}"),
        trap: err.downcast_ref::<wasmtime::Trap>().map(|t| t.to_string()),
    }
}

impl Host {
    /// Loads a module with default options: links every import, starts it
    /// (`_initialize`, then `main` if exported, else `_start`).
    pub fn load(module: &Module) -> Result<Host, HostError> {
        Host::load_with(module, HostOptions::default())
    }

    pub fn load_with(module: &Module, options: HostOptions) -> Result<Host, HostError> {
        let state = State {
            memory: None,
            malloc: None,
            restricted: false,
            vm_configuration: options.vm_configuration.clone(),
            plugin_configuration: None,
            plugin_name: options.plugin_name.clone(),
            root_id: options.root_id.clone(),
            vm_id: options.vm_id.clone(),
            env: options.env.clone(),
            log_level: options.log_level,
            logs: Vec::new(),
            calls: Vec::new(),
            unsupported: Vec::new(),
            metrics: Metrics::new(),
            shared_data: Default::default(),
            tick_period_ms: 0,
            now_ns: options.start_time_ns,
            monotonic_ns: 1_000_000_000,
            rng: 0x9E37_79B9_7F4A_7C15,
            current_context: 0,
            root_context: 0,
            stream: None,
            proc_exit: None,
            faults: Default::default(),
            stop_iteration: false,
        };
        let mut store = Store::new(engine(), state);
        let mut linker: Linker<State> = Linker::new(engine());
        let unknown_imports =
            imports::define(&mut linker, &mut store, module).map_err(|e| HostError::Link {
                message: format!("{e:#}"),
            })?;
        let exported = module.exports();
        if !exported
            .iter()
            .any(|e| e == "proxy_abi_version_0_2_1" || e == "proxy_abi_version_0_2_0")
        {
            return Err(HostError::Abi {
                message:
                    "missing or unknown Proxy-Wasm ABI version (no proxy_abi_version_0_2_1 export)"
                        .to_string(),
            });
        }
        store.set_fuel(FUEL_PER_CALL).map_err(|e| HostError::Link {
            message: format!("{e:#}"),
        })?;
        let instance =
            linker
                .instantiate(&mut store, &module.inner)
                .map_err(|e| HostError::Link {
                    message: format!("{e:#}"),
                })?;
        let memory =
            instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| HostError::Export {
                    name: "memory".to_string(),
                    message: "the module exports no memory".to_string(),
                })?;
        let malloc = match typed::<i32, i32>(&mut store, &instance, "malloc")? {
            Some(m) => Some(m),
            None => typed::<i32, i32>(&mut store, &instance, "proxy_on_memory_allocate")?,
        };
        if malloc.is_none() {
            return Err(HostError::Export {
                name: "proxy_on_memory_allocate".to_string(),
                message: "Wasm module is missing malloc function".to_string(),
            });
        }
        store.data_mut().memory = Some(memory);
        store.data_mut().malloc = malloc;
        let exports = Exports {
            on_context_create: typed(&mut store, &instance, "proxy_on_context_create")?,
            on_vm_start: typed(&mut store, &instance, "proxy_on_vm_start")?,
            on_configure: typed(&mut store, &instance, "proxy_on_configure")?,
            on_request_headers: typed(&mut store, &instance, "proxy_on_request_headers")?,
            on_response_headers: typed(&mut store, &instance, "proxy_on_response_headers")?,
            on_log: typed(&mut store, &instance, "proxy_on_log")?,
            on_done: typed(&mut store, &instance, "proxy_on_done")?,
            on_delete: typed(&mut store, &instance, "proxy_on_delete")?,
            on_tick: typed(&mut store, &instance, "proxy_on_tick")?,
        };
        let initialize: F1<(), ()> = typed(&mut store, &instance, "_initialize")?;
        let main: F1<(i32, i32), i32> = typed(&mut store, &instance, "main")?;
        let main_void: F1<(), ()> = typed(&mut store, &instance, "__main_void")?;
        let start: F1<(), ()> = typed(&mut store, &instance, "_start")?;
        let clock_ns = options.start_time_ns;
        let mut host = Host {
            store,
            exports,
            options,
            unknown_imports,
            failed: None,
            configured: false,
            next_context_id: 1,
            requests: 0,
            clock_ns,
            fuel_used: 0,
            fuel_log: Vec::new(),
        };
        host.store.data_mut().restricted = true;
        let started = if let Some(init) = initialize {
            host.call("_initialize", &init, ()).and_then(|()| {
                if let Some(main) = main {
                    host.call("main", &main, (0, 0)).map(|_| ())
                } else if let Some(mv) = main_void {
                    host.call("__main_void", &mv, ())
                } else {
                    Ok(())
                }
            })
        } else if let Some(start) = start {
            host.call("_start", &start, ())
        } else {
            Ok(())
        };
        host.store.data_mut().restricted = false;
        started.map_err(HostError::Start)?;
        Ok(host)
    }

    /// Calls into the module with fresh fuel; a trap fails the VM for good.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
        func: &TypedFunc<P, R>,
        params: P,
    ) -> Result<R, VmFailure> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        let budget = self.options.fuel_per_call;
        let _ = self.store.set_fuel(budget);
        self.store.data_mut().stop_iteration = false;
        let result = func.call(&mut self.store, params);
        let left = self.store.get_fuel().unwrap_or(0);
        let used = budget.saturating_sub(left);
        self.fuel_used += used;
        self.fuel_log.push((name, used));
        result.map_err(|e| {
            let failure = failure_of(name, &e);
            self.failed = Some(failure.clone());
            failure
        })
    }

    /// Sets up the plugin as Envoy does: root context created, `proxy_on_vm_start`
    /// with the VM configuration, then `proxy_on_configure` with `configuration`.
    /// Calling it again is a configuration push to the same VM: a new root
    /// context is configured and later streams belong to it; a rejected push
    /// leaves the previous plugin serving.
    pub fn configure(
        &mut self,
        configuration: impl AsRef<[u8]>,
    ) -> Result<Plugin<'_>, ConfigureError> {
        if let Some(f) = &self.failed {
            return Err(ConfigureError::VmFailed(f.clone()));
        }
        let previous_root = self.store.data().root_context;
        let root = self.alloc_context_id();
        let logs_before = self.store.data().logs.len();
        {
            let s = self.store.data_mut();
            s.root_context = root;
            s.current_context = root;
        }
        let ex = self.exports.clone();
        if let Some(f) = ex.on_context_create {
            self.call("proxy_on_context_create", &f, (root as i32, 0))
                .map_err(ConfigureError::VmFailed)?;
        }
        if let Some(f) = ex.on_vm_start {
            let size = self.options.vm_configuration.len() as i32;
            let ok = self
                .call("proxy_on_vm_start", &f, (root as i32, size))
                .map_err(ConfigureError::VmFailed)?;
            if ok == 0 {
                return Err(ConfigureError::VmStartFailed {
                    logs: self.store.data().logs[logs_before..].to_vec(),
                });
            }
        }
        let configuration = configuration.as_ref().to_vec();
        let size = configuration.len() as i32;
        self.store.data_mut().plugin_configuration = Some(configuration);
        let result = match ex.on_configure {
            Some(f) => self.call("proxy_on_configure", &f, (root as i32, size)),
            None => Ok(1),
        };
        self.store.data_mut().plugin_configuration = None;
        let ok = result.map_err(ConfigureError::VmFailed)?;
        if ok == 0 {
            if self.configured {
                self.store.data_mut().root_context = previous_root;
            }
            return Err(ConfigureError::Rejected {
                logs: self.store.data().logs[logs_before..].to_vec(),
            });
        }
        self.configured = true;
        Ok(Plugin { host: self })
    }

    /// The configured plugin, after a successful [`Host::configure`].
    pub fn plugin(&mut self) -> Option<Plugin<'_>> {
        if self.configured {
            Some(Plugin { host: self })
        } else {
            None
        }
    }

    fn alloc_context_id(&mut self) -> u32 {
        let id = self.next_context_id;
        self.next_context_id += 1;
        id
    }

    /// Every log line the module wrote so far.
    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    /// Every host call the module made so far, with its status.
    pub fn calls(&self) -> &[HostCall] {
        &self.store.data().calls
    }

    /// The VM failure, if the VM has failed (it then stays failed).
    pub fn failure(&self) -> Option<&VmFailure> {
        self.failed.as_ref()
    }

    /// Imports the module declares that this host does not provide (they trap when called).
    pub fn unknown_imports(&self) -> &[String] {
        &self.unknown_imports
    }

    /// Unsupported `proxy_*` calls the module made (they returned `Unimplemented`).
    pub fn unsupported_calls(&self) -> &[String] {
        &self.store.data().unsupported
    }

    /// The value of a counter or gauge, by the name the module defined.
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.store.data().metrics.value_by_name(name)
    }

    /// Every metric the module defined, in definition order.
    pub fn metric_names(&self) -> Vec<String> {
        self.store
            .data()
            .metrics
            .stats
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Samples recorded into a histogram.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.store
            .data()
            .metrics
            .stats
            .iter()
            .find(|s| s.name == name && s.kind == crate::abi::MetricType::Histogram)
            .map(|s| s.samples.clone())
    }

    /// The module's linear memory, in bytes: it grows when the module's allocator needs
    /// more and never shrinks, so a leak per request shows up here.
    pub fn linear_memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |memory| memory.data_size(&self.store))
    }

    /// Fuel (wasm instructions, as wasmtime counts them) used by every call so far.
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used
    }

    /// Makes every later call of the `proxy_*` function `name` return `status`
    /// without running, as a proxy in trouble could (e.g. `InternalFailure`).
    pub fn inject_fault(&mut self, name: &str, status: crate::abi::Status) {
        self.store
            .data_mut()
            .faults
            .insert(name.to_string(), status);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&mut self) {
        self.store.data_mut().faults.clear();
    }

    /// The period the module set with `proxy_set_tick_period_milliseconds`.
    pub fn tick_period_ms(&self) -> u32 {
        self.store.data().tick_period_ms
    }

    /// Fires the root context's timer once (`proxy_on_tick`).
    pub fn tick(&mut self) -> Result<(), VmFailure> {
        let root = self.store.data().root_context;
        if let Some(f) = self.exports.on_tick.clone() {
            self.store.data_mut().current_context = root;
            self.call("proxy_on_tick", &f, root as i32)?;
        }
        Ok(())
    }

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

/// A configured plugin: send requests, read counters.
pub struct Plugin<'h> {
    host: &'h mut Host,
}

impl fmt::Debug for Plugin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("host", &self.host).finish()
    }
}

impl Plugin<'_> {
    /// Starts a request (default: `GET /` on HTTP/1.1 from 10.0.0.1:5555).
    pub fn request(&mut self) -> RequestBuilder<'_> {
        RequestBuilder::new(self.host, RequestSpec::default())
    }

    /// A counter's value; panics naming the defined metrics when it is unknown.
    pub fn counter(&self, name: &str) -> u64 {
        self.host.metric(name).unwrap_or_else(|| {
            panic!(
                "the module defined no metric {name:?}; it defined {:?}",
                self.host.metric_names()
            )
        })
    }

    pub fn metric(&self, name: &str) -> Option<u64> {
        self.host.metric(name)
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.host.metric_names()
    }

    pub fn logs(&self) -> &[LogLine] {
        self.host.logs()
    }

    pub fn host(&mut self) -> &mut Host {
        self.host
    }

    pub fn host_ref(&self) -> &Host {
        self.host
    }
}
