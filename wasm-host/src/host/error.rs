//! Why a module could not be loaded, why a configuration was not accepted,
//! and what a failed VM looked like.

use std::fmt;

use crate::state::LogLine;

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
