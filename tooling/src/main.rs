//! `istio-demo`: the project's command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "istio-demo",
    version,
    about = "Run, validate, deploy and verify the istio-demo mesh and its token-gate filter"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Help text: `ValidateArgs` (commands/validate.rs).
    Validate(istio_demo::commands::validate::ValidateArgs),
    /// Run the filter in a local Envoy in front of httpbin and show each request's decision.
    Sandbox(istio_demo::commands::sandbox::SandboxArgs),
    // The cluster, token and wasm commands take their help from their Args structs.
    Token(istio_demo::commands::token::TokenArgs),
    Wasm(istio_demo::commands::wasm::WasmArgs),
    Manifests(istio_demo::commands::manifests::ManifestsArgs),
    Up(istio_demo::commands::up::UpArgs),
    Status(istio_demo::commands::status::StatusArgs),
    Verify(istio_demo::commands::verify::VerifyArgs),
    Down(istio_demo::commands::down::DownArgs),
}

use istio_demo::commands::report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => report("validate", istio_demo::commands::validate::run(&args)),
        Command::Sandbox(args) => report("sandbox", istio_demo::commands::sandbox::run(&args)),
        Command::Token(args) => report("token", istio_demo::commands::token::run(&args)),
        Command::Wasm(args) => report("wasm push", istio_demo::commands::wasm::run(&args)),
        Command::Manifests(args) => {
            report("manifests", istio_demo::commands::manifests::run(&args))
        }
        Command::Up(args) => report("up", istio_demo::commands::up::run(&args)),
        Command::Status(args) => report("status", istio_demo::commands::status::run(&args)),
        Command::Verify(args) => report("verify", istio_demo::commands::verify::run(&args)),
        Command::Down(args) => report("down", istio_demo::commands::down::run(&args)),
    }
}
