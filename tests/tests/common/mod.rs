//! Helpers shared by the test files (each file uses a part of them).
#![allow(dead_code)]

use rfma_tests::{Response, Status};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of a token, as the plugin configuration wants it.
pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Statuses returned to the module by every call of `name`, in order.
pub fn statuses(r: &Response, name: &str) -> Vec<i32> {
    r.calls()
        .iter()
        .filter(|c| c.name == name)
        .filter_map(|c| c.status)
        .collect()
}

pub const OK: i32 = Status::Ok as i32;
pub const NOT_FOUND: i32 = Status::NotFound as i32;
pub const BAD_ARGUMENT: i32 = Status::BadArgument as i32;

/// Lays out data segments for hand-written WAT modules and hands back
/// `(i32.const ptr) (i32.const len)` operands for each.
pub struct Data {
    next: u32,
    segments: String,
}

impl Data {
    pub fn new(start: u32) -> Data {
        Data {
            next: start,
            segments: String::new(),
        }
    }

    pub fn add(&mut self, bytes: &[u8]) -> String {
        let at = self.next;
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        self.segments
            .push_str(&format!("(data (i32.const {at}) \"{escaped}\")\n"));
        self.next += (bytes.len() as u32 + 8) & !7;
        format!("(i32.const {at}) (i32.const {})", bytes.len())
    }

    pub fn segments(&self) -> &str {
        &self.segments
    }
}
