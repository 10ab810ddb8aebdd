//! C types the shim's interposers take that libc does not declare.

use libc::c_int;

/// glibc's `struct FTW`, passed to an `nftw` callback.
#[repr(C)]
pub struct Ftw {
    pub base: c_int,
    pub level: c_int,
}
