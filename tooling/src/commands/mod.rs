//! One module per subcommand.

pub mod down;
pub mod manifests;
pub mod sandbox;
pub mod status;
pub mod token;
pub mod up;
pub mod validate;
pub mod verify;
pub mod wasm;
