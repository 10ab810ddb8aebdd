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
//!
//! Adding an interposer:
//! 1. a row in `shim/exports.txt` (its header documents the columns):
//!    the symbol, its module, the test that calls it, the system call
//!    numbers whose raw arguments are exactly its own, and its C type if it
//!    forwards to the real one. build.rs generates from the row the export
//!    (version script), the `real!` row (`fns.rs`, for `call_real!`), the
//!    `syscall()` dispatch arm and the seccomp filter's served number;
//! 2. the function, `#[no_mangle] pub extern "C"`, in that module (C in
//!    `c/variadic.c` only when it is variadic);
//! 3. a number whose arguments are not the function's (a fixed flag, a
//!    legacy spelling) gets a `SYSCALL` row and its handler in `syscall.rs`;
//!    the supervisor's own handling of the number is in `seccomp/serve.rs`;
//! 4. the test the row names calls the symbol (or a call in
//!    `tests/c/exports_calls.c`, whose test checks with `LD_DEBUG=bindings`
//!    that the call reached the shim); `every_export_is_a_table_row_with_a_test`
//!    checks all of it.
//!
//! # Layers
//!
//! The modules read bottom-up: raw system calls and the real libc
//! functions, then the process's state, the daemon's client, then
//! resolution (what a path names, what an fd shows; a process whose
//! credentials changed asks the daemon for what it cannot reach), the
//! credential wrappers, the families of interposers, and
//! on top the dispatchers that call back into them. Listed bottom first, each
//! with the modules it names: only modules listed before it
//! (`shim/tests/layers.rs` fails otherwise, and when this list is not the
//! graph). Below them all is the crate `vrift-shim-core` (`shim/core`): the
//! pure logic, unit-tested.
//!
//! ```text
//! sys             → —
//! elfdyn          → sys
//! seccomp::filter → —
//! real            → —
//! fns             → —
//! state           → sys
//! cwd             → state sys
//! client          → fns real state sys
//! statbuf         → client state sys
//! fdtable         → statbuf state sys
//! resolve         → cwd fdtable real state sys
//! creds           → client fns real state sys
//! stat            → fdtable fns real resolve statbuf state sys
//! write           → client fdtable fns real resolve seccomp::filter stat statbuf state sys
//! open            → client fdtable fns real resolve statbuf state sys write
//! xattr           → fdtable fns real resolve state sys write
//! seccomp::launch → real sys
//! exec            → client elfdyn fns open real resolve seccomp::launch stat statbuf state sys write
//! fds             → cwd exec fdtable fns real resolve state sys
//! dir             → fdtable fns real resolve state sys
//! special         → client fds fns open real resolve stat state sys write
//! audit           → exec resolve state sys write
//! syscall         → creds dir fns open real stat sys write
//! walk            → dir fds fns open real stat state sys
//! seccomp::target → fds sys
//! seccomp::serve  → dir fds fdtable open resolve seccomp::filter seccomp::target stat state sys syscall xattr
//! seccomp         → fds seccomp::filter seccomp::launch seccomp::serve seccomp::target state sys
//! ```
//!
//! (`fns`'s rows and the `syscall()` dispatch arms are generated into
//! OUT_DIR from `exports.txt`; they name `real!` and each row's module.)

// The exported functions are C entry points: their pointer arguments are
// governed by libc's contract with the caller, not by Rust's `unsafe`.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// `call_real!` forwards those same arguments to the real function.
#![allow(clippy::macro_metavars_in_unsafe)]
// Built with panic=abort (the `shim` profiles), the library links no std and
// so no libgcc_s: every process of an inception loads it, and each library
// more costs an open, its mappings and its relocations at every exec.
#![cfg_attr(panic = "abort", no_std)]

/// A panic in the shim cannot unwind into the C caller: end the process as
/// an `extern "C"` function panicking under std would.
#[cfg(panic = "abort")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

pub mod audit;
pub mod client;
pub mod creds;
pub mod cwd;
pub mod dir;
pub mod elfdyn;
pub mod exec;
pub mod fds;
pub mod fdtable;
pub mod fns;
pub mod open;
pub mod real;
pub mod resolve;
pub mod seccomp;
pub mod special;
pub mod stat;
pub mod statbuf;
pub mod state;
pub mod sys;
pub mod syscall;
pub mod walk;
pub mod write;
pub mod xattr;

/// The shim's version, for `vrift doctor` and the daemon to check which
/// library is really loaded: the crate's version, NUL-padded.
#[no_mangle]
pub static VRIFT_SHIM_VERSION: [u8; 16] = version_bytes(env!("CARGO_PKG_VERSION"));

const fn version_bytes(v: &str) -> [u8; 16] {
    let b = v.as_bytes();
    assert!(b.len() < 16, "the version must fit the exported symbol");
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Whether this process is vrift itself (which never acts through the shim).
///
/// The vrift binary carries an ELF note (owner "vrift", type 1; see
/// `src/main.rs`), found through the program headers the kernel passed in
/// the auxiliary vector: no syscall, no allocation, whatever name or path
/// vrift was started under.
fn exe_is_vrift() -> bool {
    // SAFETY: getauxval only reads the saved auxiliary vector.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
        )
    };
    if phdr == 0 {
        return false;
    }
    // SAFETY: the kernel maps the program headers for the process's lifetime.
    let phdrs =
        unsafe { core::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum as usize) };
    // The load bias: where PT_PHDR says the headers are vs where they are.
    let Some(bias) = phdrs
        .iter()
        .find(|p| p.p_type == libc::PT_PHDR)
        .map(|p| phdr.wrapping_sub(p.p_vaddr))
    else {
        return false;
    };
    phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_NOTE)
        // SAFETY: PT_NOTE segments lie inside loaded, readable segments.
        .any(|p| unsafe { notes_have_vrift(bias.wrapping_add(p.p_vaddr), p.p_memsz as usize) })
}

/// Whether the notes at `addr..addr+len` include owner "vrift", type 1.
///
/// # Safety
/// The range must be readable.
unsafe fn notes_have_vrift(addr: u64, len: usize) -> bool {
    // SAFETY: the range is readable (the caller's contract).
    let bytes = unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len) };
    vrift_shim_core::elfnote::has_vrift_note(bytes)
}

extern "C" fn init() {
    let is_vrift = exe_is_vrift();
    state::init(is_vrift);
    // A shell in the view (see `state::shell`) passes its children exactly
    // the environment its hook manages: nothing is put back.
    if !is_vrift && !state::shell() {
        exec::capture_env();
    }
}

/// fork, with what the shim's state needs on each side. Interposed rather
/// than registered with pthread_atfork: registering writes libc pages that
/// every process start would fault in, for the few processes that fork.
/// (glibc's own forks, in `daemon` and `forkpty`, skip this: their children
/// then find the cwd cache or the first mapping possibly mid-update and
/// fall back to asking the kernel, slower but right.)
#[no_mangle]
pub extern "C" fn fork() -> libc::pid_t {
    exec::before_fork();
    let pid = call_real!(FORK() or real::fail(libc::ENOSYS));
    if pid == 0 {
        cwd::after_fork_in_child();
        state::after_fork_in_child();
        client::after_fork_in_child();
    }
    pid
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;
