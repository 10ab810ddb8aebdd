//! The exec side of the syscall view: what a process of an inception does
//! to run a program under the supervisor (see the module above). Apart
//! from the supervisor, which serves calls through the interposers: `exec`
//! uses this, and the supervisor sits above every interposer.

use core::ffi::CStr;

use libc::{c_char, c_int};

use crate::sys;

/// Put in the environment of a program started under the filter: its
/// children are already served, and exec what they exec directly.
pub const MARKER: &[u8] = b"VRIFT_SYSCALL_VIEW=1";

/// The `vrift` subcommand that re-enters [`vrift_syscall_view`].
pub const SUBCOMMAND: &CStr = c"__syscall-view";

/// Execs `vrift __syscall-view path argv…` (only returns on failure: -1
/// and errno). `exe`: the vrift binary (from the table).
pub fn exec_supervisor(
    exe: &[u8],
    path: *const c_char,
    argv: *const *const c_char,
    env: *const *const c_char,
    execve: impl FnOnce(*const c_char, *const *const c_char, *const *const c_char) -> c_int,
) -> c_int {
    let Some(exe_c) = sys::CPath::new(exe) else {
        return crate::real::fail(libc::ENAMETOOLONG);
    };
    let mut argc = 0;
    if !sys::unreadable(argv) {
        // SAFETY: a NULL-terminated array (the exec contract).
        while unsafe { !(*argv.add(argc)).is_null() } {
            argc += 1;
        }
    }
    let words = argc + 4;
    let Some(mem) = Mapping::new(words * core::mem::size_of::<*const c_char>()) else {
        return crate::real::fail(libc::ENOMEM);
    };
    let new = mem.addr as *mut *const c_char;
    // SAFETY: `new` has room for `words` pointers; argv has `argc`.
    unsafe {
        *new = exe_c.as_ptr();
        *new.add(1) = SUBCOMMAND.as_ptr();
        *new.add(2) = path;
        for i in 0..argc {
            *new.add(3 + i) = *argv.add(i);
        }
        *new.add(3 + argc) = core::ptr::null();
    }
    execve(exe_c.as_ptr(), new, env)
}

/// Anonymous memory, unmapped on drop (nothing here may use the heap: this
/// may run in a vfork child).
pub(super) struct Mapping {
    pub(super) addr: usize,
    pub(super) len: usize,
}

impl Mapping {
    pub(super) fn new(len: usize) -> Option<Mapping> {
        // SAFETY: a fresh private anonymous mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(Mapping {
            addr: p as usize,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        sys::unmap(self.addr, self.len);
    }
}
