//! The real libc functions behind the interposed ones.
//!
//! Each is resolved once with `dlsym(RTLD_NEXT, name)` and cached in an
//! atomic. Resolution can re-enter the shim (dlsym may allocate, a malloc
//! such as jemalloc may open files): a thread-local guard makes such nested
//! calls see "unresolved", and the callers then use raw syscalls or fail
//! softly with ENOSYS instead of recursing or deadlocking.

use core::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    /// Sets this thread's guard; returns whether it was already set (C layer:
    /// an initial-exec `__thread`, since the shipped library has no std).
    fn vrift_resolving_enter() -> libc::c_int;
    fn vrift_resolving_leave();
}

/// A lazily resolved real function.
pub struct RealFn {
    /// NUL-terminated symbol name.
    name: &'static [u8],
    addr: AtomicUsize,
}

impl RealFn {
    pub const fn new(name: &'static [u8]) -> RealFn {
        RealFn {
            name,
            addr: AtomicUsize::new(0),
        }
    }

    /// The function's address, or 0 if it cannot be resolved (now).
    #[inline]
    pub fn get(&self) -> usize {
        let a = self.addr.load(Ordering::Acquire);
        if a != 0 {
            return a;
        }
        self.resolve()
    }

    #[cold]
    fn resolve(&self) -> usize {
        // SAFETY: plain thread-local flag accessors.
        if unsafe { vrift_resolving_enter() } != 0 {
            return 0;
        }
        // SAFETY: `name` is NUL-terminated; RTLD_NEXT is valid in a shared object.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr() as *const libc::c_char) }
            as usize;
        // SAFETY: as above.
        unsafe { vrift_resolving_leave() };
        self.addr.store(a, Ordering::Release);
        a
    }
}

/// Declares a real function: `real!(STAT, "stat", fn(*const c_char, *mut stat) -> c_int);`
/// defines `STAT: RealFn` and `STAT_T` as its type.
#[macro_export]
macro_rules! real {
    ($($id:ident = $name:literal : fn($($arg:ty),*) -> $ret:ty;)*) => {
        $(
            #[allow(non_upper_case_globals)]
            pub static $id: $crate::real::RealFn = $crate::real::RealFn::new(concat!($name, "\0").as_bytes());
        )*
        pub mod types {
            #[allow(unused_imports)]
            use libc::*;
            $(
                #[allow(non_camel_case_types)]
                pub type $id = unsafe extern "C" fn($($arg),*) -> $ret;
            )*
        }
    };
}

/// Calls a real function, or evaluates `$fallback` if it cannot be resolved.
/// The arguments are the caller's own, passed through unchanged.
#[macro_export]
macro_rules! call_real {
    ($id:ident ($($arg:expr),*) or $fallback:expr) => {{
        let addr = $crate::fns::$id.get();
        if addr == 0 {
            $fallback
        } else {
            // SAFETY: the address came from dlsym for this exact symbol.
            let f: $crate::fns::types::$id = unsafe { core::mem::transmute(addr) };
            // SAFETY: the caller's own arguments, passed through unchanged
            // to the function they were meant for.
            unsafe { f($($arg),*) }
        }
    }};
}

/// Sets errno and returns -1 (the libc convention).
#[inline]
pub fn fail(errno: i32) -> i32 {
    // SAFETY: errno location is thread-local and always valid.
    unsafe { *libc::__errno_location() = errno };
    -1
}
