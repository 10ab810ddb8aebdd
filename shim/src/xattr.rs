//! Extended attributes of rift entries: they have none (ls, cp -a and tar
//! ask for ACLs and security labels on every file). Setting or removing
//! one on anything in the domain is `ENOTSUP`, as on a filesystem without
//! them (cp -a, rsync -X and tar carry on): the rift keeps none, and the
//! disk's files and the store's blobs are never changed.

use core::ffi::CStr;

use libc::{c_char, c_int, c_void, size_t, ssize_t};

use crate::real::fail;
use crate::resolve::{physical_fallback, resolve, PathBuf, View};
use crate::{call_real, fdtable};

/// After libc failed with `r` on an in-domain miss: whether a physical
/// symlink on the way leads to a rift entry (which has no attributes).
fn behind_link(r: ssize_t, buf: &PathBuf, follow: bool) -> bool {
    let mut view = PathBuf::new();
    r < 0 && buf.in_domain_miss && physical_fallback(buf, follow, &mut view).is_some()
}

/// Ok(rewritten): let libc answer (with the rewritten path if true);
/// Err(0): a rift entry; Err(r): fail with `r`.
fn entry_check(path: *const c_char, follow: bool, buf: &mut PathBuf) -> Result<bool, ssize_t> {
    if crate::sys::unreadable(path) {
        return Ok(false);
    }
    // SAFETY: libc contract: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    match resolve(libc::AT_FDCWD, p, follow, buf).0 {
        View::Pass | View::Disk { rewritten: false } => Ok(false),
        View::Disk { rewritten: true } => Ok(true),
        View::Entry { .. } => Err(0),
        View::Error(e) => Err(fail(e) as ssize_t),
    }
}

macro_rules! get_export {
    ($name:ident, $real:ident, $follow:expr) => {
        #[no_mangle]
        pub extern "C" fn $name(path: *const c_char, name: *const c_char, value: *mut c_void, size: size_t) -> ssize_t {
            let mut buf = PathBuf::new();
            match entry_check(path, $follow, &mut buf) {
                Ok(false) => {
                    let r = call_real!($real(path, name, value, size) or fail(libc::ENOSYS) as ssize_t);
                    if behind_link(r, &buf, $follow) {
                        return fail(libc::ENODATA) as ssize_t;
                    }
                    r
                }
                Ok(true) => {
                    let p = buf.c_ptr();
                    call_real!($real(p, name, value, size) or fail(libc::ENOSYS) as ssize_t)
                }
                Err(0) => fail(libc::ENODATA) as ssize_t,
                Err(r) => r,
            }
        }
    };
}

macro_rules! list_export {
    ($name:ident, $real:ident, $follow:expr) => {
        #[no_mangle]
        pub extern "C" fn $name(path: *const c_char, list: *mut c_char, size: size_t) -> ssize_t {
            let mut buf = PathBuf::new();
            match entry_check(path, $follow, &mut buf) {
                Ok(false) => {
                    let r = call_real!($real(path, list, size) or fail(libc::ENOSYS) as ssize_t);
                    if behind_link(r, &buf, $follow) {
                        return 0;
                    }
                    r
                }
                Ok(true) => {
                    let p = buf.c_ptr();
                    call_real!($real(p, list, size) or fail(libc::ENOSYS) as ssize_t)
                }
                Err(0) => 0,
                Err(r) => r,
            }
        }
    };
}

get_export!(getxattr, GETXATTR, true);
get_export!(lgetxattr, LGETXATTR, false);
list_export!(listxattr, LISTXATTR, true);
list_export!(llistxattr, LLISTXATTR, false);

#[no_mangle]
pub extern "C" fn fgetxattr(
    fd: c_int,
    name: *const c_char,
    value: *mut c_void,
    size: size_t,
) -> ssize_t {
    if fdtable::get(fd).is_some() {
        if crate::sys::is_path_fd(fd) {
            return fail(libc::EBADF) as ssize_t;
        }
        return fail(libc::ENODATA) as ssize_t;
    }
    call_real!(FGETXATTR(fd, name, value, size) or fail(libc::ENOSYS) as ssize_t)
}

#[no_mangle]
pub extern "C" fn flistxattr(fd: c_int, list: *mut c_char, size: size_t) -> ssize_t {
    if fdtable::get(fd).is_some() {
        if crate::sys::is_path_fd(fd) {
            return fail(libc::EBADF) as ssize_t;
        }
        return 0;
    }
    call_real!(FLISTXATTR(fd, list, size) or fail(libc::ENOSYS) as ssize_t)
}

/// Where a path given to an attribute setter leads: `Ok(None)` outside the
/// domain (libc with the caller's path), `Ok(Some(()))` outside after a
/// rift symlink (libc with `buf`), `Err(r)`: answer `r`.
fn set_check(path: *const c_char, follow: bool, buf: &mut PathBuf) -> Result<bool, c_int> {
    if crate::sys::unreadable(path) {
        return Ok(false);
    }
    // SAFETY: libc contract: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    match resolve(libc::AT_FDCWD, p, follow, buf) {
        _ if buf.in_store => Err(fail(libc::EPERM)),
        (View::Pass, _) => Ok(false),
        (View::Disk { rewritten: true }, None) => Ok(true),
        (View::Disk { .. }, None) | (View::Entry { .. }, None) => Ok(false),
        (View::Error(e), _) => Err(fail(e)),
        (_, Some(_)) => Err(fail(libc::ENOTSUP)),
    }
}

macro_rules! set_export {
    ($name:ident, $real:ident, $follow:expr) => {
        #[no_mangle]
        pub extern "C" fn $name(path: *const c_char, name: *const c_char, value: *const c_void, size: size_t, flags: c_int) -> c_int {
            let mut buf = PathBuf::new();
            match set_check(path, $follow, &mut buf) {
                Ok(false) => call_real!($real(path, name, value, size, flags) or fail(libc::ENOSYS)),
                Ok(true) => {
                    let p = buf.c_ptr();
                    call_real!($real(p, name, value, size, flags) or fail(libc::ENOSYS))
                }
                Err(r) => r,
            }
        }
    };
}

macro_rules! remove_export {
    ($name:ident, $real:ident, $follow:expr) => {
        #[no_mangle]
        pub extern "C" fn $name(path: *const c_char, name: *const c_char) -> c_int {
            let mut buf = PathBuf::new();
            match set_check(path, $follow, &mut buf) {
                Ok(false) => call_real!($real(path, name) or fail(libc::ENOSYS)),
                Ok(true) => {
                    let p = buf.c_ptr();
                    call_real!($real(p, name) or fail(libc::ENOSYS))
                }
                Err(r) => r,
            }
        }
    };
}

set_export!(setxattr, SETXATTR, true);
set_export!(lsetxattr, LSETXATTR, false);
remove_export!(removexattr, REMOVEXATTR, true);
remove_export!(lremovexattr, LREMOVEXATTR, false);

/// An fd given to an attribute setter: `None` lets libc act on it; else
/// the answer (a rift entry's fd, or a file or directory of the domain,
/// has no attributes to set; a blob of the store is never changed).
fn fd_set_check(fd: c_int) -> Option<c_int> {
    if !crate::state::ready() {
        return None;
    }
    if fdtable::get(fd).is_some() {
        return Some(fail(libc::ENOTSUP));
    }
    let mut buf = PathBuf::new();
    let mut dir = [0u8; vrift_shim_core::PATH_MAX];
    // SAFETY: `dir` holds PATH_MAX bytes.
    let known = match unsafe { fdtable::dir_path_into(fd, dir.as_mut_ptr(), dir.len()) } {
        Some(n) => buf.set(&dir[..n]),
        None => crate::write::untracked_fd_path(fd, &mut buf),
    };
    if !known {
        return None;
    }
    if buf.in_store {
        return Some(fail(libc::EPERM));
    }
    let in_domain = vrift_format::pathnorm::domain_rel(buf.abs(), crate::state::ROOT.get())
        .is_some_and(|rel| !vrift_format::view::is_state_path(rel));
    in_domain.then(|| fail(libc::ENOTSUP))
}

#[no_mangle]
pub extern "C" fn fsetxattr(
    fd: c_int,
    name: *const c_char,
    value: *const c_void,
    size: size_t,
    flags: c_int,
) -> c_int {
    match fd_set_check(fd) {
        Some(r) => r,
        None => call_real!(FSETXATTR(fd, name, value, size, flags) or fail(libc::ENOSYS)),
    }
}

#[no_mangle]
pub extern "C" fn fremovexattr(fd: c_int, name: *const c_char) -> c_int {
    match fd_set_check(fd) {
        Some(r) => r,
        None => call_real!(FREMOVEXATTR(fd, name) or fail(libc::ENOSYS)),
    }
}
