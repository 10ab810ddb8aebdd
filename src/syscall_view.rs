//! `vrift __syscall-view PROGRAM ARGV…`: what the LD_PRELOAD library execs
//! in place of a program that cannot load it (a Go or static binary, the
//! dynamic loader run as a program). The work is the library's (its
//! `vrift_syscall_view`: a seccomp supervisor serving the program's calls
//! from the view); this process only hands it the arguments, so that it
//! runs in the pid the program's parent waits for. Before it, the FUSE
//! view (`fuse_view`) is tried.

use std::ffi::{c_char, c_int, CString};
use std::os::unix::ffi::OsStringExt;

type Entry = unsafe extern "C" fn(*const *const c_char, *const *const c_char) -> c_int;

extern "C" {
    static environ: *const *const c_char;
}

/// Runs the program in the view; returns an exit code only when it could
/// not be started.
pub fn run() -> u8 {
    let args: Vec<CString> = std::env::args_os()
        .skip(2)
        .filter_map(|a| CString::new(a.into_vec()).ok())
        .collect();
    if args.is_empty() {
        eprintln!("vrift __syscall-view: PROGRAM [ARGV…] expected");
        return 2;
    }
    // The FUSE view first (see `fuse_view`); the supervisor where it
    // cannot be set up.
    if let Some(code) = crate::fuse_view::run(&args[0], &args[1..]) {
        return code;
    }
    // SAFETY: looking up a symbol of the already loaded library.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"vrift_syscall_view".as_ptr()) };
    if sym.is_null() {
        eprintln!(
            "vrift: cannot run {} in the view: the view library is not loaded in this process (LD_PRELOAD)",
            args[0].to_string_lossy()
        );
        return 126;
    }
    // SAFETY: the library exports it with this signature.
    let entry: Entry = unsafe { std::mem::transmute::<*mut libc::c_void, Entry>(sym) };
    let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: a NULL-terminated argv of live C strings; the process's environ.
    let code = unsafe { entry(argv.as_ptr(), environ) };
    code.clamp(0, 255) as u8
}
