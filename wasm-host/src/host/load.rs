//! Loading a module: a fresh `State`, every import linked, the ABI version
//! and the allocator checked, the exports looked up, then the module started
//! as Envoy starts it (`_initialize`, then `main`, else `_start`).

use wasmtime::{Instance, Linker, Store, WasmParams, WasmResults};

use super::{Exports, F1, Host, HostError, HostOptions};
use crate::imports;
use crate::module::{FUEL_PER_CALL, Module, engine};
use crate::state::{Metrics, State};

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
}
