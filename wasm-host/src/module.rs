//! Compiling modules once per process, and finding the filter's `.wasm`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wasmtime::{Config, Engine};

use crate::HostError;

/// Fuel given to every single call into the module. A call that uses it all
/// (an endless loop) traps and fails the VM instead of hanging the test.
pub const FUEL_PER_CALL: u64 = 2_000_000_000;

/// The one engine of the process: Cranelift, fuel metering on.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        Engine::new(&config).unwrap_or_else(|e| panic!("cannot create the wasmtime engine: {e}"))
    })
}

/// A compiled Proxy-Wasm module, ready to be instantiated by [`crate::Host::load`].
pub struct Module {
    pub(crate) inner: wasmtime::Module,
    source: String,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("source", &self.source)
            .finish()
    }
}

impl Module {
    /// Compiles a module from its binary (or, for tests, already-assembled WAT) bytes.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Module, HostError> {
        let inner = wasmtime::Module::new(engine(), bytes).map_err(|e| HostError::Compile {
            source: source.to_string(),
            message: format!("{e:#}"),
        })?;
        Ok(Module {
            inner,
            source: source.to_string(),
        })
    }

    pub fn from_file(path: &Path) -> Result<Module, HostError> {
        let bytes = std::fs::read(path).map_err(|e| HostError::Missing {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Module::from_bytes(&bytes, &path.display().to_string())
    }

    /// The names the module exports, in its order.
    pub fn export_names(&self) -> Vec<String> {
        self.inner.exports().map(|e| e.name().to_owned()).collect()
    }

    /// Where the module came from (a path or a test name).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `(module, name)` of every import the module declares.
    pub fn imports(&self) -> Vec<(String, String)> {
        self.inner
            .imports()
            .map(|i| (i.module().to_string(), i.name().to_string()))
            .collect()
    }

    /// Names of every export.
    pub fn exports(&self) -> Vec<String> {
        self.inner.exports().map(|e| e.name().to_string()).collect()
    }
}

fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// Resolves a module path from `var`, else `target/<default_file>` of this workspace.
pub fn module_path(var: &str, default_file: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_target().join(default_file),
    }
}

/// The newest modification time under `dir` (files only, recursively).
fn newest_under(dir: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest_under(&path)
        } else {
            entry.metadata().ok()?.modified().ok().map(|t| (t, path))
        };
        if let Some(c) = candidate
            && newest.as_ref().is_none_or(|n| c.0 > n.0)
        {
            newest = Some(c);
        }
    }
    newest
}

/// Refuses a module older than the filter's sources: the tests must run the
/// code that is checked out, never a stale build.
fn check_fresh(module: &Path, make: &str) -> Result<(), String> {
    let filter = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("filter");
    let Ok(built) = std::fs::metadata(module).and_then(|m| m.modified()) else {
        return Ok(());
    };
    let sources = [filter.join("src"), filter.join("Cargo.toml")];
    for source in sources {
        let newest = if source.is_dir() {
            newest_under(&source)
        } else {
            std::fs::metadata(&source)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, source.clone()))
        };
        if let Some((time, path)) = newest
            && time > built
        {
            return Err(format!(
                "the filter module {} is older than {}: run `{make}` (or `make test`) to rebuild it",
                module.display(),
                path.display()
            ));
        }
    }
    Ok(())
}

fn cached(
    cell: &'static OnceLock<Result<Module, String>>,
    var: &str,
    default_file: &str,
    make: &str,
) -> &'static Module {
    let compiled = cell.get_or_init(|| {
        let path = module_path(var, default_file);
        if !path.is_file() {
            return Err(format!(
                "the filter module {} does not exist (from ${var} or its default): run `{make}` first \
                 (or `make test`, which builds it)",
                path.display()
            ));
        }
        check_fresh(&path, make)?;
        Module::from_file(&path).map_err(|e| e.to_string())
    });
    match compiled {
        Ok(m) => m,
        Err(message) => panic!("{message}"),
    }
}

/// The shipped filter (`$RFMA_WASM`, built by `make wasm`), compiled once per process.
/// Panics with a message saying to run `make wasm` when it is missing.
pub fn filter_module() -> &'static Module {
    static CELL: OnceLock<Result<Module, String>> = OnceLock::new();
    cached(&CELL, "RFMA_WASM", "rfma_filter.wasm", "make wasm")
}

/// The test-only build that traps on `x-rfma-test-trap` (`$RFMA_TRAP_WASM`, `make wasm-trap`).
pub fn trap_module() -> &'static Module {
    static CELL: OnceLock<Result<Module, String>> = OnceLock::new();
    cached(
        &CELL,
        "RFMA_TRAP_WASM",
        "rfma_filter_trap.wasm",
        "make wasm-trap",
    )
}
