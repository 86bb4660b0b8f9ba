//! The host: loads a module, plays Envoy's lifecycle (VM start, plugin
//! configure, then per stream create → request headers → response headers →
//! log → done → delete), and reports what a client and upstream would see.
//!
//! This file holds the VM itself (`Host`: options, calls into the module with
//! fuel, configuration, what it observed) and the configured `Plugin`; loading
//! a module is in `load.rs`, one HTTP stream in `stream.rs`, the error types in
//! `error.rs`.

use std::fmt;

use wasmtime::{Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::LogLevel;
use crate::module::FUEL_PER_CALL;
use crate::request::{RequestBuilder, RequestSpec};
use crate::state::{HostCall, LogLine, State};

mod error;
mod load;
mod stream;

pub use error::{ConfigureError, HostError, VmFailure};

/// 2026-01-02T03:04:05.678901234Z: the host's clock starts here, so every run
/// sees the same times (and spends the same fuel formatting them).
pub const DEFAULT_START_TIME_NS: u64 = 1_767_323_045_678_901_234;

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

fn failure_of(during: &str, err: &wasmtime::Error) -> VmFailure {
    VmFailure {
        during: during.to_string(),
        message: format!("{err:#}"),
        trap: err.downcast_ref::<wasmtime::Trap>().map(|t| t.to_string()),
    }
}

impl Host {
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
