//! fd bookkeeping (close, dup family, fcntl F_DUPFD*), links (readlink), and
//! the current directory (chdir, fchdir).

use core::ffi::CStr;

use libc::{c_char, c_int, c_long, size_t, ssize_t};
use vrift_format::Kind;

use crate::real::fail;
use crate::resolve::{resolve, PathBuf, View};
use crate::{call_real, cwd, fdtable};

#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    fdtable::clear(fd);
    // SAFETY: passthrough to the kernel.
    call_real!(CLOSE(fd) or unsafe { crate::raw_syscall!(libc::SYS_close, fd) as c_int })
}

#[no_mangle]
pub extern "C" fn dup(fd: c_int) -> c_int {
    let new = call_real!(DUP(fd) or fail(libc::ENOSYS));
    if new >= 0 {
        fdtable::copy(fd, new);
    }
    new
}

#[no_mangle]
pub extern "C" fn dup2(fd: c_int, new: c_int) -> c_int {
    let r = call_real!(DUP2(fd, new) or fail(libc::ENOSYS));
    if r >= 0 && fd != new {
        fdtable::copy(fd, r);
    }
    r
}

#[no_mangle]
pub extern "C" fn dup3(fd: c_int, new: c_int, flags: c_int) -> c_int {
    let r = call_real!(DUP3(fd, new, flags) or fail(libc::ENOSYS));
    if r >= 0 {
        fdtable::copy(fd, r);
    }
    r
}

#[no_mangle]
pub extern "C" fn vrift_fcntl(fd: c_int, cmd: c_int, arg: c_long, is64: c_int) -> c_int {
    let r = if is64 != 0 {
        call_real!(FCNTL64(fd, cmd, arg) or fail(libc::ENOSYS))
    } else {
        call_real!(FCNTL(fd, cmd, arg) or fail(libc::ENOSYS))
    };
    if r >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
        fdtable::copy(fd, r);
    }
    r
}

/// `/proc/self/fd/N` (or `/proc/<pid>/fd/N` of this process) of a tracked fd.
fn proc_fd(path: &[u8]) -> Option<c_int> {
    let rest = path
        .strip_prefix(b"/proc/self/fd/")
        .or_else(|| path.strip_prefix(b"/dev/fd/"))?;
    let mut v: c_int = 0;
    if rest.is_empty() || rest.len() > 9 {
        return None;
    }
    for &c in rest {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as c_int;
    }
    Some(v)
}

fn copy_out(src: &[u8], buf: *mut c_char, size: size_t) -> ssize_t {
    let n = src.len().min(size);
    if !crate::sys::writable(buf as *mut u8, n) {
        return fail(libc::EFAULT) as ssize_t;
    }
    // SAFETY: libc contract: `buf` holds `size` bytes.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), buf as *mut u8, n) };
    n as ssize_t
}

fn readlink_impl(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: size_t,
) -> Option<ssize_t> {
    if crate::sys::unreadable(path) {
        return None;
    }
    if size == 0 {
        // The kernel's answer before any lookup (readlinkat02).
        return Some(fail(libc::EINVAL) as ssize_t);
    }
    // SAFETY: libc contract: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    if let Some(fd) = proc_fd(p) {
        let mut view = [0u8; 256];
        let n = fdtable::path(fd, &mut view);
        return (n > 0).then(|| copy_out(&view[..n], buf, size));
    }
    if p == b"/proc/self/exe" {
        return exe_path(buf, size);
    }
    let mut pb = PathBuf::new();
    match resolve(dirfd, p, false, &mut pb).0 {
        View::Pass => None,
        View::Disk { rewritten: false } => {
            let r = call_real!(READLINKAT(dirfd, path, buf, size) or fail(libc::ENOSYS) as ssize_t);
            if r >= 0 {
                return Some(r);
            }
            // A rift symlink behind a physical directory symlink.
            let mut view = PathBuf::new();
            Some(
                match crate::resolve::physical_fallback(&pb, false, &mut view) {
                    Some((h, target)) if h.kind == Kind::Symlink => copy_out(target, buf, size),
                    Some(_) => fail(libc::EINVAL) as ssize_t,
                    None => r,
                },
            )
        }
        View::Disk { rewritten: true } => {
            let c = pb.c_ptr();
            Some(
                call_real!(READLINKAT(libc::AT_FDCWD, c, buf, size) or fail(libc::ENOSYS) as ssize_t),
            )
        }
        View::Entry { header, target } => Some(if header.kind == Kind::Symlink {
            copy_out(target, buf, size)
        } else {
            fail(libc::EINVAL) as ssize_t
        }),
        View::Error(e) => Some(fail(e) as ssize_t),
    }
}

/// `/proc/self/exe`: a rift program runs from its mirror
/// (`ROOT/.vrift/exec/REL`, exec.rs), but is `ROOT/REL` in the view.
fn exe_path(buf: *mut c_char, size: size_t) -> Option<ssize_t> {
    let mut exe = [0u8; vrift_shim_core::PATH_MAX];
    let n = crate::sys::readlink_raw(b"/proc/self/exe", &mut exe)?;
    let root = crate::state::ROOT.get();
    let exe = &exe[..n];
    let Some(rest) = exe
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix(crate::exec::MIRROR_DIR))
        .filter(|_| !root.is_empty())
    else {
        return Some(copy_out(exe, buf, size));
    };
    let mut view = [0u8; vrift_shim_core::PATH_MAX + 1];
    let total = root.len() + 1 + rest.len();
    view[..root.len()].copy_from_slice(root);
    view[root.len()] = b'/';
    view[root.len() + 1..total].copy_from_slice(rest);
    Some(copy_out(&view[..total], buf, size))
}

#[no_mangle]
pub extern "C" fn readlink(path: *const c_char, buf: *mut c_char, size: size_t) -> ssize_t {
    match readlink_impl(libc::AT_FDCWD, path, buf, size) {
        Some(r) => r,
        None => call_real!(READLINK(path, buf, size) or fail(libc::ENOSYS) as ssize_t),
    }
}

#[no_mangle]
pub extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: size_t,
) -> ssize_t {
    match readlink_impl(dirfd, path, buf, size) {
        Some(r) => r,
        None => call_real!(READLINKAT(dirfd, path, buf, size) or fail(libc::ENOSYS) as ssize_t),
    }
}

#[no_mangle]
pub extern "C" fn __readlink_chk(
    path: *const c_char,
    buf: *mut c_char,
    size: size_t,
    buflen: size_t,
) -> ssize_t {
    if size > buflen {
        // glibc's fortify check: a buffer overflow is a bug in the caller.
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }
    readlink(path, buf, size)
}

/// readlinkat with glibc's fortify check (`_FORTIFY_SOURCE`: Debian builds
/// most programs with it; LTP's readlinkat02 went to the kernel without).
#[no_mangle]
pub extern "C" fn __readlinkat_chk(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: size_t,
    buflen: size_t,
) -> ssize_t {
    if size > buflen {
        // glibc's fortify check: a buffer overflow is a bug in the caller.
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }
    readlinkat(dirfd, path, buf, size)
}

#[no_mangle]
pub extern "C" fn chdir(path: *const c_char) -> c_int {
    let mut pb = PathBuf::new();
    let r = if crate::sys::unreadable(path) {
        call_real!(CHDIR(path) or fail(libc::ENOSYS))
    } else {
        // SAFETY: libc contract: a NUL-terminated path.
        let p = unsafe { CStr::from_ptr(path) }.to_bytes();
        match resolve(libc::AT_FDCWD, p, true, &mut pb).0 {
            View::Pass | View::Disk { rewritten: false } => {
                call_real!(CHDIR(path) or fail(libc::ENOSYS))
            }
            View::Disk { rewritten: true } => {
                let c = pb.c_ptr();
                call_real!(CHDIR(c) or fail(libc::ENOSYS))
            }
            View::Entry { .. } => fail(libc::ENOTDIR),
            View::Error(e) => fail(e),
        }
    };
    if r == 0 {
        cwd::forget();
    }
    r
}

#[no_mangle]
pub extern "C" fn fchdir(fd: c_int) -> c_int {
    let r = call_real!(FCHDIR(fd) or fail(libc::ENOSYS));
    if r == 0 {
        cwd::forget();
    }
    r
}

#[no_mangle]
pub extern "C" fn closefrom(lowfd: c_int) {
    if lowfd >= 0 {
        fdtable::clear_range(lowfd as u32, u32::MAX);
    }
    call_real!(CLOSEFROM(lowfd) or ())
}

#[no_mangle]
pub extern "C" fn close_range(first: libc::c_uint, last: libc::c_uint, flags: c_int) -> c_int {
    let r = call_real!(CLOSE_RANGE(first, last, flags) or fail(libc::ENOSYS));
    if r == 0 && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
        fdtable::clear_range(first, last);
    }
    r
}
