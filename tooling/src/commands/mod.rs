//! One module per subcommand.
pub mod validate;
pub mod token;
pub mod wasm;
