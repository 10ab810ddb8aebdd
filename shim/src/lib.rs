//! `libvrift_shim.so`: loaded with LD_PRELOAD into every process of an
//! inception, it makes libc's path and fd functions see the view of
//! DESIGN.md §2 — rift entries over the physical tree — using the hot table
//! that vrift publishes in `.vrift/view.table`.
//!
//! Rules for everything in this crate:
//! - the miss path (a path outside the domain, or inside it with no rift
//!   record) allocates nothing, takes no lock and makes no syscall;
//! - real functions are resolved with `dlsym(RTLD_NEXT)` without recursion
//!   (see `real`), with raw syscalls as the fallback while resolving;
//! - errno is set only on the paths that fail; the shim logs only on errors
//!   a user must see (a refused write, a missing blob).

// The exported functions are C entry points: their pointer arguments are
// governed by libc's contract with the caller, not by Rust's `unsafe`.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// `call_real!` forwards those same arguments to the real function.
#![allow(clippy::macro_metavars_in_unsafe)]

pub mod client;
pub mod cwd;
pub mod dir;
pub mod exec;
pub mod fds;
pub mod fdtable;
pub mod fns;
pub mod open;
pub mod real;
pub mod resolve;
pub mod stat;
pub mod statbuf;
pub mod state;
pub mod sys;
pub mod syscall;
pub mod walk;
pub mod write;
pub mod xattr;

/// The shim's version, for `vrift doctor` and the daemon to check which
/// library is really loaded.
#[no_mangle]
pub static VRIFT_SHIM_VERSION: [u8; 8] = *b"0.1.0\0\0\0";

/// Whether this process is vrift itself (which never acts through the shim).
fn exe_is_vrift() -> bool {
    let mut buf = [0u8; state::PATH_MAX];
    match sys::readlink_raw(b"/proc/self/exe", &mut buf) {
        Some(n) => {
            let exe = &buf[..n];
            let name = exe.rsplit(|&c| c == b'/').next().unwrap_or(exe);
            name == b"vrift"
        }
        None => false,
    }
}

extern "C" fn init() {
    let is_vrift = exe_is_vrift();
    state::init(is_vrift);
    if !is_vrift {
        exec::capture_env();
        write::init_umask();
    }
    // SAFETY: registering a plain function; no allocation on this path.
    unsafe { libc::pthread_atfork(None, None, Some(cwd::after_fork_in_child)) };
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;
