//! The pure logic of `libvrift_shim.so`: what the library decides without a
//! system call, a lock or an allocation — path pieces, the fd table's
//! bookkeeping, the cache of verified directories, the ELF note that marks
//! vrift itself — apart, so that it is unit-tested in an ordinary test
//! harness.
//!
//! The shim is a cdylib only: a test binary linking its `#[no_mangle]`
//! `open`/`stat` would interpose libc inside the harness itself. This crate
//! exports nothing `#[no_mangle]` and makes no syscall; it is the bottom
//! layer of the shim (see the module graph in `shim/src/lib.rs`).

#![no_std]

#[cfg(test)]
extern crate std;

pub mod abi;
pub mod elfnote;
pub mod fdtable;
pub mod path;
pub mod verified;

/// The longest path the shim handles (Linux's `PATH_MAX`, NUL included in
/// the kernel's count; the shim's buffers hold `PATH_MAX + 1`).
pub const PATH_MAX: usize = 4096;
