//! Reading and writing the module's linear memory, and handing it a value
//! in memory it allocates (`copyToPointerSize`).

use wasmtime::Error;

use super::{C, HostResult};
use crate::abi::Status;

pub(super) fn read(c: &mut C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data(&*c)
        .get(start..end)
        .map(|s| s.to_vec())
        .ok_or(Status::InvalidMemoryAccess)
}

pub(super) fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data_mut(&mut *c)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

pub(super) fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

pub(super) fn write_u64(c: &mut C<'_>, ptr: i32, v: u64) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

/// proxy-wasm-cpp-host's `copyToPointerSize`: bytes go to memory the module
/// allocates; an empty value is a null pointer with size 0 (no allocation).
pub(super) fn copy_out(c: &mut C<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let mut pointer = 0i32;
    if !bytes.is_empty() {
        let malloc = c
            .data()
            .malloc
            .clone()
            .ok_or_else(|| Error::msg("the module exports no allocator"))?;
        let len =
            i32::try_from(bytes.len()).map_err(|_| Error::msg("value too large for wasm32"))?;
        pointer = malloc.call(&mut *c, len)?;
        if pointer == 0 {
            return Ok(Status::InvalidMemoryAccess);
        }
        tri!(write(c, pointer, bytes));
    }
    tri!(write_u32(c, ptr_ptr, pointer as u32));
    tri!(write_u32(c, size_ptr, bytes.len() as u32));
    Ok(Status::Ok)
}
