//! The stat and access families: rift entries report their own metadata;
//! everything else goes to libc (with the rewritten path when a rift symlink
//! was followed).

use libc::{c_char, c_int, c_uint};

use crate::real::fail;
use crate::resolve::{resolve, PathBuf, View};
use crate::statbuf::{fill_stat, fill_stat64, fill_statx, Meta};
use crate::{call_real, fdtable, sys};

/// What a stat-like call should do.
pub enum Lk {
    /// Call libc with the original arguments.
    Real,
    /// Call libc with `AT_FDCWD` and the absolute path in the buffer.
    RealAt,
    Meta(Meta),
    Err(c_int),
}

#[inline(always)]
pub fn lookup_meta(dirfd: c_int, path: *const c_char, follow: bool, buf: &mut PathBuf) -> Lk {
    // Unreadable: the kernel's EFAULT.
    let Some(p) = crate::sys::readable_c_str(path) else {
        return Lk::Real;
    };
    if p.is_empty() {
        return Lk::Real;
    }
    match resolve(dirfd, p, follow, buf).0 {
        View::Entry { header, target } => match crate::statbuf::entry_meta_now(&header, target) {
            Some(m) => Lk::Meta(m),
            // Sealed between the lookup and the stat of its staging file:
            // looked up again.
            None => match resolve(dirfd, p, follow, buf).0 {
                View::Entry { header, target } => {
                    Lk::Meta(crate::statbuf::entry_meta(&header, target))
                }
                other => lk_of(other),
            },
        },
        other => lk_of(other),
    }
}

/// What a resolution that found no entry means for a stat.
fn lk_of(view: View<'_>) -> Lk {
    match view {
        View::Pass | View::Disk { rewritten: false } => Lk::Real,
        View::Disk { rewritten: true } => Lk::RealAt,
        View::Entry { header, target } => Lk::Meta(crate::statbuf::entry_meta(&header, target)),
        View::Error(e) => Lk::Err(e),
    }
}

/// libc's answer `r`, unless it failed where a physical symlink leads to a
/// rift entry: then the entry's metadata goes to `fill` and the call succeeds.
#[inline(always)]
fn with_fallback(r: c_int, miss: &PathBuf, follow: bool, fill: impl FnOnce(&Meta)) -> c_int {
    if r == 0 || !miss.in_domain_miss {
        return r;
    }
    match fallback_meta(miss, follow) {
        Some(m) => {
            fill(&m);
            0
        }
        None => r,
    }
}

/// The rift entry a physical symlink leads to, after libc's ENOENT. Never
/// inlined: its path buffer would otherwise double the frame (and the stack
/// pages probed) of every stat.
#[cold]
#[inline(never)]
fn fallback_meta(miss: &PathBuf, follow: bool) -> Option<Meta> {
    let mut view = PathBuf::new();
    let (h, t) = crate::resolve::physical_fallback(miss, follow, &mut view)?;
    Some(crate::statbuf::entry_meta(&h, t))
}

fn raw_fstatat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int {
    // SAFETY: arguments passed through to the kernel.
    unsafe { crate::raw_syscall!(libc::SYS_newfstatat, dirfd, path, buf, flags) as c_int }
}

/// Generates a path-based stat export. `$fill` fills the caller's buffer.
macro_rules! stat_export {
    ($name:ident, $real:ident, $buf:ty, $follow:expr, $fill:ident) => {
        #[no_mangle]
        pub extern "C" fn $name(path: *const c_char, st: *mut $buf) -> c_int {
            let mut buf = PathBuf::new();
            let flags = if $follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            match lookup_meta(libc::AT_FDCWD, path, $follow, &mut buf) {
                Lk::Real => {
                    let r = call_real!($real(path, st) or raw_fstatat(libc::AT_FDCWD, path, st as *mut libc::stat, flags));
                    // SAFETY: libc contract: a valid out-buffer.
                    with_fallback(r, &buf, $follow, |m| $fill(unsafe { &mut *st }, m))
                }
                Lk::RealAt => {
                    let p = buf.c_ptr();
                    call_real!($real(p, st) or raw_fstatat(libc::AT_FDCWD, p, st as *mut libc::stat, flags))
                }
                Lk::Meta(m) => {
                    // SAFETY: libc contract: a valid out-buffer.
                    $fill(unsafe { &mut *st }, &m);
                    0
                }
                Lk::Err(e) => fail(e),
            }
        }
    };
}

stat_export!(stat, STAT, libc::stat, true, fill_stat);
stat_export!(stat64, STAT64, libc::stat64, true, fill_stat64);
stat_export!(lstat, LSTAT, libc::stat, false, fill_stat);
stat_export!(lstat64, LSTAT64, libc::stat64, false, fill_stat64);

/// The pre-2.33 names: `__xstat(ver, path, buf)`.
macro_rules! xstat_export {
    ($name:ident, $real:ident, $buf:ty, $follow:expr, $fill:ident) => {
        #[no_mangle]
        pub extern "C" fn $name(ver: c_int, path: *const c_char, st: *mut $buf) -> c_int {
            let mut buf = PathBuf::new();
            let flags = if $follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            match lookup_meta(libc::AT_FDCWD, path, $follow, &mut buf) {
                Lk::Real => {
                    let r = call_real!($real(ver, path, st) or raw_fstatat(libc::AT_FDCWD, path, st as *mut libc::stat, flags));
                    // SAFETY: libc contract: a valid out-buffer.
                    with_fallback(r, &buf, $follow, |m| $fill(unsafe { &mut *st }, m))
                }
                Lk::RealAt => {
                    let p = buf.c_ptr();
                    call_real!($real(ver, p, st) or raw_fstatat(libc::AT_FDCWD, p, st as *mut libc::stat, flags))
                }
                Lk::Meta(m) => {
                    // SAFETY: libc contract: a valid out-buffer.
                    $fill(unsafe { &mut *st }, &m);
                    0
                }
                Lk::Err(e) => fail(e),
            }
        }
    };
}

xstat_export!(__xstat, XSTAT, libc::stat, true, fill_stat);
xstat_export!(__xstat64, XSTAT64, libc::stat64, true, fill_stat64);
xstat_export!(__lxstat, LXSTAT, libc::stat, false, fill_stat);
xstat_export!(__lxstat64, LXSTAT64, libc::stat64, false, fill_stat64);

/// `fstat` family: a tracked fd reports the view.
macro_rules! fstat_export {
    ($name:ident, $real:ident, $buf:ty, $fill:ident) => {
        #[no_mangle]
        pub extern "C" fn $name(fd: c_int, st: *mut $buf) -> c_int {
            if let Some(m) = fdtable::get(fd) {
                // SAFETY: libc contract: a valid out-buffer.
                $fill(unsafe { &mut *st }, &m);
                return 0;
            }
            // SAFETY: passthrough of the caller's arguments to the kernel.
            call_real!($real(fd, st) or unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, st) as c_int })
        }
    };
}

fstat_export!(fstat, FSTAT, libc::stat, fill_stat);
fstat_export!(fstat64, FSTAT64, libc::stat64, fill_stat64);

#[no_mangle]
pub extern "C" fn __fxstat(ver: c_int, fd: c_int, st: *mut libc::stat) -> c_int {
    if let Some(m) = fdtable::get(fd) {
        // SAFETY: libc contract: a valid out-buffer.
        fill_stat(unsafe { &mut *st }, &m);
        return 0;
    }
    // SAFETY: passthrough to the kernel.
    call_real!(FXSTAT(ver, fd, st) or unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, st) as c_int })
}

#[no_mangle]
pub extern "C" fn __fxstat64(ver: c_int, fd: c_int, st: *mut libc::stat64) -> c_int {
    if let Some(m) = fdtable::get(fd) {
        // SAFETY: libc contract: a valid out-buffer.
        fill_stat64(unsafe { &mut *st }, &m);
        return 0;
    }
    // SAFETY: passthrough to the kernel.
    call_real!(FXSTAT64(ver, fd, st) or unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, st) as c_int })
}

fn is_empty_path(path: *const c_char) -> bool {
    // SAFETY: checked readable first; libc contract otherwise.
    !crate::sys::unreadable(path) && unsafe { *path } == 0
}

/// The flags `fstatat` and `statx` accept (the kernel's `vfs_statx`);
/// any other bit is EINVAL, for a rift entry as on disk.
const STAT_FLAGS: c_int = libc::AT_SYMLINK_NOFOLLOW
    | libc::AT_NO_AUTOMOUNT
    | libc::AT_EMPTY_PATH
    | libc::AT_STATX_SYNC_TYPE;

/// `fstatat` family (with `AT_EMPTY_PATH` on tracked fds).
macro_rules! fstatat_export {
    ($name:ident, $real:ident, $buf:ty, $fill:ident) => {
        #[no_mangle]
        pub extern "C" fn $name(dirfd: c_int, path: *const c_char, st: *mut $buf, flags: c_int) -> c_int {
            if flags & !STAT_FLAGS != 0 {
                return fail(libc::EINVAL);
            }
            if flags & libc::AT_EMPTY_PATH != 0 && is_empty_path(path) {
                if let Some(m) = fdtable::get(dirfd) {
                    // SAFETY: libc contract: a valid out-buffer.
                    $fill(unsafe { &mut *st }, &m);
                    return 0;
                }
            }
            let mut buf = PathBuf::new();
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            match lookup_meta(dirfd, path, follow, &mut buf) {
                Lk::Real => {
                    let r = call_real!($real(dirfd, path, st, flags) or raw_fstatat(dirfd, path, st as *mut libc::stat, flags));
                    // SAFETY: libc contract: a valid out-buffer.
                    with_fallback(r, &buf, follow, |m| $fill(unsafe { &mut *st }, m))
                }
                Lk::RealAt => {
                    let p = buf.c_ptr();
                    call_real!($real(libc::AT_FDCWD, p, st, flags) or raw_fstatat(libc::AT_FDCWD, p, st as *mut libc::stat, flags))
                }
                Lk::Meta(m) => {
                    // SAFETY: libc contract: a valid out-buffer.
                    $fill(unsafe { &mut *st }, &m);
                    0
                }
                Lk::Err(e) => fail(e),
            }
        }
    };
}

fstatat_export!(fstatat, FSTATAT, libc::stat, fill_stat);
fstatat_export!(fstatat64, FSTATAT64, libc::stat64, fill_stat64);

#[no_mangle]
pub extern "C" fn __fxstatat(
    ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    st: *mut libc::stat,
    flags: c_int,
) -> c_int {
    let _ = ver;
    fstatat(dirfd, path, st, flags)
}

#[no_mangle]
pub extern "C" fn __fxstatat64(
    ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    st: *mut libc::stat64,
    flags: c_int,
) -> c_int {
    let _ = ver;
    fstatat64(dirfd, path, st, flags)
}

#[no_mangle]
pub extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    stx: *mut libc::statx,
) -> c_int {
    let raw = |d: c_int, p: *const c_char| {
        // SAFETY: passthrough to the kernel.
        unsafe { crate::raw_syscall!(libc::SYS_statx, d, p, flags, mask, stx) as c_int }
    };
    if flags & !STAT_FLAGS != 0
        || flags & libc::AT_STATX_SYNC_TYPE == libc::AT_STATX_SYNC_TYPE
        || mask & libc::STATX__RESERVED as c_uint != 0
    {
        return fail(libc::EINVAL);
    }
    if flags & libc::AT_EMPTY_PATH != 0 && is_empty_path(path) {
        if let Some(m) = fdtable::get(dirfd) {
            // SAFETY: libc contract: a valid out-buffer.
            fill_statx(unsafe { &mut *stx }, &m);
            return 0;
        }
    }
    let mut buf = PathBuf::new();
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    match lookup_meta(dirfd, path, follow, &mut buf) {
        Lk::Real => {
            let r = call_real!(STATX(dirfd, path, flags, mask, stx) or raw(dirfd, path));
            // SAFETY: libc contract: a valid out-buffer.
            with_fallback(r, &buf, follow, |m| fill_statx(unsafe { &mut *stx }, m))
        }
        Lk::RealAt => {
            let p = buf.c_ptr();
            call_real!(STATX(libc::AT_FDCWD, p, flags, mask, stx) or raw(libc::AT_FDCWD, p))
        }
        Lk::Meta(m) => {
            // SAFETY: libc contract: a valid out-buffer.
            fill_statx(unsafe { &mut *stx }, &m);
            0
        }
        Lk::Err(e) => fail(e),
    }
}

/// Access check of a rift entry as the kernel makes it: EINVAL for a mode
/// past R|W|X; then, for anyone but root, search permission on the
/// directories on the way (physical: the kernel checks them, asked for
/// `X_OK` on the entry's parent) and the entry's owner, group or other
/// bits for the real ids (the effective ones with `effective`: `eaccess`,
/// `AT_EACCESS`); root may read and write anything, and execute what has
/// an execute bit.
fn access_meta(m: &Meta, amode: c_int, effective: bool, abs: &[u8]) -> c_int {
    if amode & !(libc::R_OK | libc::W_OK | libc::X_OK) != 0 {
        return fail(libc::EINVAL);
    }
    // SAFETY: the id getters have no preconditions.
    let (uid, gid) = unsafe {
        if effective {
            (libc::geteuid(), libc::getegid())
        } else {
            (libc::getuid(), libc::getgid())
        }
    };
    let want = (amode & 7) as u32;
    // Root's capabilities: the effective set for `eaccess`, the permitted
    // set for `access` (the kernel's `access_override_creds`).
    if uid == 0 && sys::has_cap(sys::CAP_DAC_OVERRIDE, !effective) {
        return if want & 1 == 0 || m.mode & 0o111 != 0 {
            0
        } else {
            fail(libc::EACCES)
        };
    }
    if !parent_searchable(abs, effective) {
        return fail(libc::EACCES);
    }
    if amode == libc::F_OK {
        return 0;
    }
    let (owner, group) = crate::statbuf::owner(m);
    let shift = if owner == uid {
        6
    } else if group == gid || sys::in_group(group) {
        3
    } else {
        0
    };
    if (m.mode >> shift) & want == want {
        0
    } else {
        fail(libc::EACCES)
    }
}

/// Whether the directories leading to the absolute path `abs` may be
/// searched: the kernel's answer to `X_OK` on its parent (a missing or
/// unreadable parent is left to the entry's own answer).
fn parent_searchable(abs: &[u8], effective: bool) -> bool {
    let Some(cut) = abs.iter().rposition(|&b| b == b'/') else {
        return true;
    };
    let mut parent = PathBuf::new();
    if !parent.set(if cut == 0 { b"/" } else { &abs[..cut] }) {
        return true;
    }
    let flags = if effective { libc::AT_EACCESS } else { 0 };
    // SAFETY: a NUL-terminated path; no other pointer.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_faccessat2,
            libc::AT_FDCWD,
            parent.c_ptr(),
            libc::X_OK,
            flags
        )
    };
    // SAFETY: errno is thread-local.
    r == 0 || unsafe { *libc::__errno_location() } != libc::EACCES
}

/// libc's access answer `r`, unless it failed where a physical symlink
/// leads to a rift entry: then the entry's mode decides.
fn access_fallback(r: c_int, miss: &PathBuf, follow: bool, amode: c_int) -> c_int {
    if r == 0 || !miss.in_domain_miss {
        return r;
    }
    let mut view = PathBuf::new();
    match crate::resolve::physical_fallback(miss, follow, &mut view) {
        Some((h, t)) => access_meta(&crate::statbuf::entry_meta(&h, t), amode, false, view.abs()),
        None => r,
    }
}

macro_rules! access_export {
    ($name:ident, $real:ident, $effective:expr) => {
        #[no_mangle]
        pub extern "C" fn $name(path: *const c_char, amode: c_int) -> c_int {
            let mut buf = PathBuf::new();
            buf.real_ids = !$effective;
            match lookup_meta(libc::AT_FDCWD, path, true, &mut buf) {
                Lk::Real => {
                    let r = call_real!($real(path, amode) or fail(libc::ENOSYS));
                    access_fallback(r, &buf, true, amode)
                }
                Lk::RealAt => {
                    let p = buf.c_ptr();
                    call_real!($real(p, amode) or fail(libc::ENOSYS))
                }
                Lk::Meta(m) => access_meta(&m, amode, $effective, buf.abs()),
                Lk::Err(e) => fail(e),
            }
        }
    };
}

access_export!(access, ACCESS, false);
access_export!(eaccess, EACCESS, true);
access_export!(euidaccess, EUIDACCESS, true);

#[no_mangle]
pub extern "C" fn faccessat(
    dirfd: c_int,
    path: *const c_char,
    amode: c_int,
    flags: c_int,
) -> c_int {
    // The kernel's flag check (faccessat2 as a raw syscall: faccessat202).
    if flags & !(libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return fail(libc::EINVAL);
    }
    let mut buf = PathBuf::new();
    buf.real_ids = flags & libc::AT_EACCESS == 0;
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    match lookup_meta(dirfd, path, follow, &mut buf) {
        Lk::Real => {
            let r = call_real!(FACCESSAT(dirfd, path, amode, flags) or fail(libc::ENOSYS));
            access_fallback(r, &buf, follow, amode)
        }
        Lk::RealAt => {
            let p = buf.c_ptr();
            call_real!(FACCESSAT(libc::AT_FDCWD, p, amode, flags) or fail(libc::ENOSYS))
        }
        Lk::Meta(m) => access_meta(&m, amode, flags & libc::AT_EACCESS != 0, buf.abs()),
        Lk::Err(e) => fail(e),
    }
}

/// statfs/statvfs of a rift entry describe the filesystem of the project
/// root (where the view lives); anything else goes to libc.
macro_rules! fs_export {
    ($name:ident, $real:ident, $buf:ty) => {
        #[no_mangle]
        pub extern "C" fn $name(path: *const c_char, out: *mut $buf) -> c_int {
            let mut buf = PathBuf::new();
            match lookup_meta(libc::AT_FDCWD, path, true, &mut buf) {
                Lk::Real => call_real!($real(path, out) or fail(libc::ENOSYS)),
                Lk::RealAt => {
                    let p = buf.c_ptr();
                    call_real!($real(p, out) or fail(libc::ENOSYS))
                }
                Lk::Meta(_) => {
                    let mut root = crate::resolve::PathBuf::new();
                    root.set(crate::state::ROOT.get());
                    let p = root.c_ptr();
                    call_real!($real(p, out) or fail(libc::ENOSYS))
                }
                Lk::Err(e) => fail(e),
            }
        }
    };
}

fs_export!(statfs, STATFS, libc::statfs);
fs_export!(statfs64, STATFS64, libc::statfs64);
fs_export!(statvfs, STATVFS, libc::statvfs);
fs_export!(statvfs64, STATVFS64, libc::statvfs64);
