//! One module per subcommand. Each `run` returns `anyhow::Result<ExitCode>`: `Ok` carries the
//! exit status of a command that did its job (1 for `validate` findings or `status` objects not
//! ready), `Err` is one error line with its causes, exit status 1, or 2 when it is a
//! [`CannotRun`] (the command could not start: a bad configuration, a missing tool or folder).

pub mod down;
pub mod manifests;
pub mod sandbox;
pub mod status;
pub mod token;
pub mod up;
pub mod validate;
pub mod verify;
pub mod wasm;

/// The command could not start at all (exit status 2, as for a usage error): its input or its
/// environment is wrong, and nothing was done.
#[derive(Debug)]
pub struct CannotRun(pub anyhow::Error);

impl std::fmt::Display for CannotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for CannotRun {}

/// `Err(CannotRun(...))` from anything that converts into an `anyhow::Error`.
pub fn cannot_run<T>(e: impl Into<anyhow::Error>) -> anyhow::Result<T> {
    Err(CannotRun(e.into()).into())
}

/// The exit status and message for a command's result: `istio-demo NAME: error: ...` on stderr.
pub fn report(
    name: &str,
    result: anyhow::Result<std::process::ExitCode>,
) -> std::process::ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("istio-demo {name}: error: {e:#}");
        if e.downcast_ref::<CannotRun>().is_some() {
            std::process::ExitCode::from(2)
        } else {
            std::process::ExitCode::FAILURE
        }
    })
}
