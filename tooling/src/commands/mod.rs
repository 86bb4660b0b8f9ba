//! One module per subcommand.

pub mod validate;
pub mod sandbox;
pub mod token;
pub mod wasm;
pub mod up;
pub mod down;
pub mod status;
pub mod verify;
