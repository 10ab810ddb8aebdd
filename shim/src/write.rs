//! The write side: every mutation of a path in the domain is a request to
//! the project's daemon, which decides on the view and answers with the
//! errno Linux would give (DESIGN.md §2). Paths outside the domain go to
//! libc untouched. Nothing here runs on the lookup hot path.

use core::ffi::CStr;
use core::sync::atomic::{AtomicU32, Ordering};

use libc::{c_char, c_int, c_uint, mode_t};
use vrift_format::proto::{Op, TIME_NOW, TIME_OMIT};
use vrift_shim_core::path::{ends_with_slash, last_dots};
use vrift_shim_core::PATH_MAX;

use crate::client::{self, Answer};
use crate::real::fail;
use crate::resolve::{resolve, PathBuf, View};
use crate::statbuf::Meta;
use crate::state;
use crate::{call_real, fdtable, sys};

/// The call is not the rift's to serve: the caller passes it to libc.
#[derive(Debug, PartialEq, Eq)]
pub struct PassToLibc;

/// The process umask, tracked so creation modes are applied as the kernel
/// would (the daemon creates with umask 0): as last set through [`umask`]
/// or read by [`current_umask`].
static UMASK: AtomicU32 = AtomicU32::new(UNKNOWN_UMASK);
const UNKNOWN_UMASK: u32 = u32::MAX;

#[no_mangle]
pub extern "C" fn umask(mask: mode_t) -> mode_t {
    // SAFETY: plain syscall.
    let old = unsafe { crate::raw_syscall!(libc::SYS_umask, mask & 0o777) } as mode_t;
    UMASK.store(mask & 0o777, Ordering::Relaxed);
    old
}

/// The process's umask, read on first need: from /proc (which changes
/// nothing), else by setting and restoring it, which another thread
/// creating a file at that instant could see.
fn current_umask() -> u32 {
    let known = UMASK.load(Ordering::Relaxed);
    if known != UNKNOWN_UMASK {
        return known;
    }
    let mask = umask_from_proc().unwrap_or_else(|| {
        // SAFETY: the umask syscall cannot fail; restored at once.
        let old = unsafe { crate::raw_syscall!(libc::SYS_umask, 0o022) } as u32;
        // SAFETY: restores the mask read just above.
        unsafe { crate::raw_syscall!(libc::SYS_umask, old) };
        old
    });
    // A concurrent umask() wins: it stored the newer value.
    let _ = UMASK.compare_exchange(UNKNOWN_UMASK, mask, Ordering::Relaxed, Ordering::Relaxed);
    UMASK.load(Ordering::Relaxed)
}

/// The `Umask:` line of /proc/self/status (Linux 4.7 and later).
fn umask_from_proc() -> Option<u32> {
    let fd = crate::sys::openat_raw(
        libc::AT_FDCWD,
        c"/proc/self/status".as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    );
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 512];
    // SAFETY: fd is open, buf is writable for its length.
    let n = unsafe { crate::raw_syscall!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
    crate::sys::close_raw(fd);
    let text = buf.get(..usize::try_from(n).ok()?)?;
    let at = text.windows(6).position(|w| w == b"Umask:")? + 6;
    let digits = text[at..]
        .iter()
        .skip_while(|c| c.is_ascii_whitespace())
        .take_while(|c| (b'0'..=b'7').contains(c));
    let mut mask = 0u32;
    let mut any = false;
    for d in digits {
        mask = mask * 8 + u32::from(d - b'0');
        any = true;
    }
    any.then_some(mask & 0o777)
}

pub(crate) fn masked(mode: u32) -> u64 {
    (mode & 0o7777 & !current_umask()) as u64
}

/// Where a path argument leads.
pub enum Route {
    /// Outside the domain: libc with the caller's arguments.
    Real,
    /// Outside the domain after a rift symlink: libc with the buffer's path.
    RealAt,
    /// In the domain: the daemon, with `buf.rel()`.
    Rift,
    Fail(c_int),
}

pub fn route(dirfd: c_int, path: *const c_char, follow: bool, buf: &mut PathBuf) -> Route {
    if crate::sys::unreadable(path) {
        return Route::Real;
    }
    // At most PATH_MAX bytes are read, as the kernel does: a path with no
    // NUL in them is its ENAMETOOLONG (reading on could reach a guard page).
    // SAFETY: a readable pointer (checked above); strnlen stops at the limit.
    let n = unsafe { libc::strnlen(path, PATH_MAX) };
    if n == 0 || n == PATH_MAX {
        return Route::Real; // ENOENT (or AT_EMPTY_PATH) / ENAMETOOLONG from libc
    }
    // SAFETY: `n` bytes before the NUL just found.
    let p = unsafe { core::slice::from_raw_parts(path as *const u8, n) };
    match resolve(dirfd, p, follow, buf) {
        // A blob of the store reached through an fd the shim did not open.
        _ if buf.in_store => Route::Fail(libc::EPERM),
        // `file/` (ENOTDIR), `missing/../x` (ENOENT): not a name the rift
        // may create or remove.
        _ if buf.walk_error != 0 => Route::Fail(buf.walk_error),
        (View::Pass, _) => leads_in(follow, buf)
            .or_else(|| up_through_link(dirfd, p, follow, buf))
            .unwrap_or(Route::Real),
        (View::Disk { rewritten: true }, None) => Route::RealAt,
        (View::Disk { .. }, None) => Route::Real,
        (View::Error(e), Some(_)) if e == libc::ENOENT || e == libc::ENOTDIR => {
            elsewhere(follow, buf).unwrap_or(Route::Rift)
        }
        (View::Error(e), _) => Route::Fail(e),
        (_, Some(_)) => elsewhere(follow, buf).unwrap_or(Route::Rift),
        (View::Entry { .. }, None) => Route::Real,
    }
}

/// A change in the domain whose parent is, canonically, somewhere else (a
/// physical symlink on the way): routed as its canonical path (see
/// `resolve::parent_elsewhere`).
#[cold]
#[inline(never)]
fn elsewhere(follow: bool, buf: &mut PathBuf) -> Option<Route> {
    let mut canon = PathBuf::new();
    if !crate::resolve::parent_elsewhere(buf, &mut canon) {
        return None;
    }
    Some(match route(libc::AT_FDCWD, canon.c_ptr(), follow, buf) {
        Route::Real => Route::RealAt,
        other => other,
    })
}

/// A change outside the domain whose parent is, canonically, in the
/// project: routed as its canonical path (see `resolve::outside_leads_in`).
#[cold]
#[inline(never)]
fn leads_in(follow: bool, buf: &mut PathBuf) -> Option<Route> {
    let mut canon = PathBuf::new();
    if !crate::resolve::outside_leads_in(buf, &mut canon) {
        return None;
    }
    let route = route(libc::AT_FDCWD, canon.c_ptr(), follow, buf);
    // The kernel must be given the canonical path too.
    Some(match route {
        Route::Real => Route::RealAt,
        other => other,
    })
}

/// A change outside the domain whose path goes up through a symlink into
/// the project (`/tmp/l/../x`): routed as its canonical path (see
/// `resolve::outside_up_through_link`).
#[cold]
#[inline(never)]
fn up_through_link(dirfd: c_int, p: &[u8], follow: bool, buf: &mut PathBuf) -> Option<Route> {
    let mut there = PathBuf::new();
    if !crate::resolve::outside_up_through_link(dirfd, p, &mut there) {
        return None;
    }
    Some(match route(libc::AT_FDCWD, there.c_ptr(), follow, buf) {
        Route::Real => Route::RealAt,
        other => other,
    })
}

/// The daemon's answer as a libc return value. `Err(PassToLibc)`: call libc.
fn answer(ans: Answer) -> Result<c_int, PassToLibc> {
    if ans.fd >= 0 {
        sys::close_raw(ans.fd);
    }
    match ans.errno {
        _ if ans.pass => Err(PassToLibc),
        0 => Ok(0),
        e => Ok(fail(e)),
    }
}

fn rift(op: Op, a: u64, b: u64, p1: &[u8], p2: &[u8]) -> Result<c_int, PassToLibc> {
    answer(client::call(op, a, b, p1, p2))
}

/// One-path mutations: `$real` is the libc call with the caller's
/// arguments, `$at` the same call on the absolute path (AT_FDCWD).
macro_rules! one_path {
    ($dirfd:expr, $path:expr, $follow:expr, |$rel:ident| $rift:expr, $real:expr, |$abs:ident| $at:expr) => {{
        let mut buf = PathBuf::new();
        match route($dirfd, $path, $follow, &mut buf) {
            Route::Real => $real,
            Route::RealAt => {
                let $abs = buf.c_ptr();
                $at
            }
            Route::Fail(e) => fail(e),
            Route::Rift => {
                let $rel = buf.rel();
                match $rift {
                    Ok(r) => r,
                    Err(PassToLibc) => $real,
                }
            }
        }
    }};
}

fn raw(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize, e: usize) -> c_int {
    // SAFETY: arguments passed through to the kernel unchanged.
    unsafe { crate::raw_syscall!(nr, a, b, c, d, e) as c_int }
}

const FD: usize = libc::AT_FDCWD as usize;

// ---- open for writing ---------------------------------------------------------

/// Opens the entry at `buf` for writing through the daemon. `Err(PassToLibc)`: the
/// path is a special file libc must open itself.
pub fn open_write(buf: &PathBuf, flags: c_int, mode: c_uint) -> Result<c_int, PassToLibc> {
    let mut mode = masked(mode);
    let sgid = (libc::S_ISGID | libc::S_IXGRP) as u64;
    if flags & libc::O_CREAT != 0 && mode & sgid == sgid {
        mode = strip_sgid(buf.abs(), mode);
    }
    let ans = client::call(Op::OpenWrite, flags as u32 as u64, mode, buf.rel(), b"");
    if ans.pass {
        return Err(PassToLibc);
    }
    if ans.errno != 0 {
        if ans.fd >= 0 {
            sys::close_raw(ans.fd);
        }
        return Ok(fail(ans.errno));
    }
    let fd = ans.fd;
    if fd < 0 {
        return Ok(fail(libc::EIO));
    }
    if flags & libc::O_CLOEXEC == 0 {
        // SAFETY: our fresh fd.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    let (uid, gid, links) = match state::table().and_then(|t| t.lookup(buf.rel())) {
        Some(vrift_format::RecordRef::Entry { header, .. }) => {
            (header.uid, header.gid, header.links)
        }
        _ => (vrift_format::OWNER_INHERIT, vrift_format::OWNER_INHERIT, 0),
    };
    let meta = Meta {
        mode: ans.b as u32,
        ino: ans.a,
        uid,
        gid,
        links,
        ..Meta::default()
    };
    if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        fdtable::set_tmpfile(fd, &meta, ans.data());
    } else {
        fdtable::set_staged(fd, &meta, buf.abs());
    }
    Ok(fd)
}

/// The kernel's `mode_strip_sgid`: a file created with set-group-ID and
/// group execute in a set-group-ID directory by a process outside that
/// directory's group (and without CAP_FSETID) loses its
/// set-group-ID bit. (Creates asking for both bits only.)
#[cold]
#[inline(never)]
fn strip_sgid(abs: &[u8], mode: u64) -> u64 {
    let dir = match abs.iter().rposition(|&c| c == b'/') {
        Some(0) => &abs[..1],
        Some(i) => &abs[..i],
        None => return mode,
    };
    let Some(st) = sys::stat_raw(dir) else {
        return mode;
    };
    let member = sys::in_group(st.st_gid) || sys::has_cap(sys::CAP_FSETID, false);
    if st.st_mode & libc::S_ISGID == 0 || member {
        mode
    } else {
        mode & !(libc::S_ISGID as u64)
    }
}

// ---- unlink, rmdir, mkdir -------------------------------------------------------

#[no_mangle]
pub extern "C" fn unlink(path: *const c_char) -> c_int {
    one_path!(
        libc::AT_FDCWD,
        path,
        false,
        |rel| rift(Op::Unlink, 0, 0, rel, b""),
        call_real!(UNLINK(path) or raw(libc::SYS_unlinkat, FD, path as usize, 0, 0, 0)),
        |abs| call_real!(UNLINK(abs) or raw(libc::SYS_unlinkat, FD, abs as usize, 0, 0, 0))
    )
}

#[no_mangle]
pub extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    if flags & !libc::AT_REMOVEDIR != 0 {
        return fail(libc::EINVAL);
    }
    let op = if flags & libc::AT_REMOVEDIR != 0 {
        Op::Rmdir
    } else {
        Op::Unlink
    };
    one_path!(
        dirfd,
        path,
        false,
        |rel| match op {
            Op::Rmdir => rmdir_rift(path, rel),
            _ => rift(op, 0, 0, rel, b""),
        },
        call_real!(UNLINKAT(dirfd, path, flags) or raw(libc::SYS_unlinkat, dirfd as usize, path as usize, flags as usize, 0, 0)),
        |abs| call_real!(UNLINKAT(libc::AT_FDCWD, abs, flags) or raw(libc::SYS_unlinkat, FD, abs as usize, flags as usize, 0, 0))
    )
}

/// rmdir in the rift, but of `d/.` (EINVAL) or `d/..` (ENOTEMPTY) the
/// kernel's refusal: the normalized name would remove `d` or its parent.
fn rmdir_rift(path: *const c_char, rel: &[u8]) -> Result<c_int, PassToLibc> {
    // SAFETY: route read the path (readable, NUL-terminated) to get here.
    match last_dots(unsafe { CStr::from_ptr(path) }.to_bytes()) {
        1 => Ok(fail(libc::EINVAL)),
        2 => Ok(fail(libc::ENOTEMPTY)),
        _ => rift(Op::Rmdir, 0, 0, rel, b""),
    }
}

#[no_mangle]
pub extern "C" fn rmdir(path: *const c_char) -> c_int {
    one_path!(
        libc::AT_FDCWD,
        path,
        false,
        |rel| rmdir_rift(path, rel),
        call_real!(RMDIR(path) or raw(libc::SYS_unlinkat, FD, path as usize, libc::AT_REMOVEDIR as usize, 0, 0)),
        |abs| call_real!(RMDIR(abs) or raw(libc::SYS_unlinkat, FD, abs as usize, libc::AT_REMOVEDIR as usize, 0, 0))
    )
}

#[no_mangle]
pub extern "C" fn remove(path: *const c_char) -> c_int {
    one_path!(
        libc::AT_FDCWD,
        path,
        false,
        |rel| {
            let r = rift(Op::Unlink, 0, 0, rel, b"");
            // SAFETY: errno is thread-local.
            if r == Ok(-1) && unsafe { *libc::__errno_location() } == libc::EISDIR {
                rift(Op::Rmdir, 0, 0, rel, b"")
            } else {
                r
            }
        },
        call_real!(REMOVE(path) or fail(libc::ENOSYS)),
        |abs| call_real!(REMOVE(abs) or fail(libc::ENOSYS))
    )
}

#[no_mangle]
pub extern "C" fn mkdir(path: *const c_char, mode: mode_t) -> c_int {
    one_path!(
        libc::AT_FDCWD,
        path,
        false,
        |rel| rift(Op::Mkdir, masked(mode), 0, rel, b""),
        call_real!(MKDIR(path, mode) or raw(libc::SYS_mkdirat, FD, path as usize, mode as usize, 0, 0)),
        |abs| call_real!(MKDIR(abs, mode) or raw(libc::SYS_mkdirat, FD, abs as usize, mode as usize, 0, 0))
    )
}

#[no_mangle]
pub extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: mode_t) -> c_int {
    one_path!(
        dirfd,
        path,
        false,
        |rel| rift(Op::Mkdir, masked(mode), 0, rel, b""),
        call_real!(MKDIRAT(dirfd, path, mode) or raw(libc::SYS_mkdirat, dirfd as usize, path as usize, mode as usize, 0, 0)),
        |abs| call_real!(MKDIRAT(libc::AT_FDCWD, abs, mode) or raw(libc::SYS_mkdirat, FD, abs as usize, mode as usize, 0, 0))
    )
}

// ---- two-path operations ----------------------------------------------------------

/// A rename or link with one path in the view and one outside: EXDEV, as
/// between two filesystems, once the kernel's earlier answers are given:
/// the old name must exist (ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, EACCES
/// on the way), and the new name's directory too (link04, linkat01,
/// linkat02, rename10). Both are looked up in the view.
#[cold]
#[inline(never)]
fn across(od: c_int, old: *const c_char, follow_old: bool, nd: c_int, new: *const c_char) -> c_int {
    // SAFETY: all-zero is a valid stat; both paths readable (checked).
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    let nofollow = if follow_old {
        0
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    if crate::stat::fstatat(od, old, &mut st, nofollow) != 0 {
        return -1;
    }
    // SAFETY: readable, NUL-terminated within PATH_MAX or not (strnlen).
    let n = unsafe { libc::strnlen(new, PATH_MAX) };
    if n == PATH_MAX {
        return fail(libc::ENAMETOOLONG);
    }
    // SAFETY: `n` bytes before the NUL.
    let name = unsafe { core::slice::from_raw_parts(new as *const u8, n) };
    let mut parent = [0u8; PATH_MAX + 1];
    let dir: &[u8] = match name.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/",
        Some(i) => &name[..i],
        None => b".",
    };
    parent[..dir.len()].copy_from_slice(dir);
    if crate::stat::fstatat(nd, parent.as_ptr() as *const c_char, &mut st, 0) != 0 {
        return -1;
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return fail(libc::ENOTDIR);
    }
    fail(libc::EXDEV)
}

/// Routes both paths of a rename or link: both in the domain → the daemon
/// (which may pass them back, both on a filesystem mounted below the
/// project); both outside → libc; one of each → EXDEV (POSIX allows it
/// across filesystems, and tools then copy).
fn two_paths(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    follow_old: bool,
    rift_call: impl FnOnce(&[u8], &[u8]) -> Result<c_int, PassToLibc>,
    real: impl Fn(c_int, *const c_char, c_int, *const c_char) -> c_int,
) -> c_int {
    // A path the kernel cannot read is its EFAULT, before anything else.
    if crate::sys::unreadable(old) || crate::sys::unreadable(new) {
        return real(od, old, nd, new);
    }
    // An empty path is the kernel's ENOENT (AT_EMPTY_PATH is decided by
    // the callers), not a path outside the domain.
    // SAFETY: both readable (checked above).
    if unsafe { *old == 0 || *new == 0 } {
        return real(od, old, nd, new);
    }
    let mut ob = PathBuf::new();
    let mut nb = PathBuf::new();
    let ro = route(od, old, follow_old, &mut ob);
    let rn = route(nd, new, false, &mut nb);
    match (ro, rn) {
        (Route::Fail(e), _) | (_, Route::Fail(e)) => fail(e),
        // Passed back: both names on a filesystem mounted below the
        // project, the kernel's to act on (or to refuse with EXDEV).
        (Route::Rift, Route::Rift) => match rift_call(ob.rel(), nb.rel()) {
            Ok(r) => r,
            Err(PassToLibc) => real(od, old, nd, new),
        },
        (Route::Rift, _) | (_, Route::Rift) => across(od, old, follow_old, nd, new),
        (ro, rn) => {
            let (od, old) = match ro {
                Route::RealAt => (libc::AT_FDCWD, ob.c_ptr()),
                _ => (od, old),
            };
            let (nd, new) = match rn {
                Route::RealAt => (libc::AT_FDCWD, nb.c_ptr()),
                _ => (nd, new),
            };
            real(od, old, nd, new)
        }
    }
}

/// The error of renaming `old` (relative to `od`) to or from a `name/`:
/// what its lstat says, or ENOTDIR if it is no directory; None for a
/// directory.
#[cold]
#[inline(never)]
fn not_a_directory(od: c_int, old: *const c_char) -> Option<c_int> {
    // SAFETY: all-zero is a valid stat.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    if crate::stat::fstatat(od, old, &mut st, libc::AT_SYMLINK_NOFOLLOW) != 0 {
        // SAFETY: errno is thread-local.
        return Some(unsafe { *libc::__errno_location() });
    }
    (st.st_mode & libc::S_IFMT != libc::S_IFDIR).then_some(libc::ENOTDIR)
}

#[no_mangle]
pub extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    renameat2(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0)
}

#[no_mangle]
pub extern "C" fn renameat(od: c_int, old: *const c_char, nd: c_int, new: *const c_char) -> c_int {
    renameat2(od, old, nd, new, 0)
}

#[no_mangle]
pub extern "C" fn renameat2(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    flags: c_uint,
) -> c_int {
    two_paths(
        od,
        old,
        nd,
        new,
        false,
        |o, n| {
            // `d/.` or `d/..` on either side: the kernel's EBUSY (EEXIST
            // for a target with RENAME_NOREPLACE; the normalized names
            // would rename the directory itself).
            // SAFETY: both readable (two_paths checked them first).
            let (po, pn) = unsafe { (CStr::from_ptr(old), CStr::from_ptr(new)) };
            let new_dots = last_dots(pn.to_bytes()) > 0;
            if new_dots && flags & libc::RENAME_NOREPLACE != 0 {
                return Ok(fail(libc::EEXIST));
            }
            if new_dots || last_dots(po.to_bytes()) > 0 {
                return Ok(fail(libc::EBUSY));
            }
            // `name/` on either side names a directory: only a directory
            // is renamed so (the normalized names lost the slash).
            if ends_with_slash(po.to_bytes()) || ends_with_slash(pn.to_bytes()) {
                if let Some(e) = not_a_directory(od, old) {
                    return Ok(fail(e));
                }
            }
            rift(Op::Rename, flags as u64, 0, o, n)
        },
        |od, old, nd, new| {
            raw(
                libc::SYS_renameat2,
                od as usize,
                old as usize,
                nd as usize,
                new as usize,
                flags as usize,
            )
        },
    )
}

#[no_mangle]
pub extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    linkat(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0)
}

#[no_mangle]
pub extern "C" fn linkat(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    flags: c_int,
) -> c_int {
    // The kernel's flag check comes first (linkat01).
    if flags & !(libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return fail(libc::EINVAL);
    }
    let real = |od: c_int, old: *const c_char, nd: c_int, new: *const c_char| {
        raw(
            libc::SYS_linkat,
            od as usize,
            old as usize,
            nd as usize,
            new as usize,
            flags as usize,
        )
    };
    // An O_TMPFILE file given a name: by its fd, or by /proc/self/fd/N.
    if let Some(fd) = tmpfile_source(od, old, flags) {
        let mut name = [0u8; 256];
        let n = fdtable::tmpfile_name(fd, &mut name);
        let mut nb = PathBuf::new();
        return match route(nd, new, false, &mut nb) {
            Route::Rift if n > 0 => {
                let mode = fdtable::get(fd).map(|m| m.mode).unwrap_or(0o600);
                match rift(Op::LinkTmp, mode as u64, 0, nb.rel(), &name[..n]) {
                    Ok(r) => r,
                    Err(PassToLibc) => fail(libc::EXDEV),
                }
            }
            Route::Fail(e) => fail(e),
            _ => fail(libc::EXDEV),
        };
    }
    // A name for an fd itself (AT_EMPTY_PATH): a rift file's fd is on its
    // blob, which must never get a second name; another fd is what the
    // kernel says it is.
    if flags & libc::AT_EMPTY_PATH != 0
        && !crate::sys::unreadable(old)
        // SAFETY: a readable pointer to a NUL-terminated path.
        && unsafe { *old } == 0
    {
        let mut ob = PathBuf::new();
        if fd_entry_path(od, true, &mut ob) {
            // The entry has a view path: link it by that, like any name.
            let (mut rb, mut nb) = (PathBuf::new(), PathBuf::new());
            let ro = route(libc::AT_FDCWD, ob.c_ptr(), false, &mut rb);
            return match (ro, route(nd, new, false, &mut nb)) {
                (Route::Rift, Route::Rift) => match rift(Op::Link, 0, 0, rb.rel(), nb.rel()) {
                    Ok(r) => r,
                    Err(PassToLibc) => fail(libc::EXDEV),
                },
                (Route::Fail(e), _) | (_, Route::Fail(e)) => fail(e),
                _ => fail(libc::EXDEV),
            };
        }
        if untracked_fd_path(od, &mut ob) && ob.in_store {
            return fail(libc::EXDEV);
        }
    }
    // The kernel finds the old name before it reads the new one: a bad new
    // name is EFAULT once the old one exists, in the view too (link04).
    if crate::sys::unreadable(new) && !crate::sys::unreadable(old) {
        let mut ob = PathBuf::new();
        let follow = flags & libc::AT_SYMLINK_FOLLOW != 0;
        if let crate::stat::Lk::Meta(_) = crate::stat::lookup_meta(od, old, follow, &mut ob) {
            return fail(libc::EFAULT);
        }
    }
    two_paths(
        od,
        old,
        nd,
        new,
        flags & libc::AT_SYMLINK_FOLLOW != 0,
        |o, n| match made_with_slash(new, n) {
            Some(r) => Ok(r),
            None => rift(Op::Link, 0, 0, o, n),
        },
        real,
    )
}

/// A name being made by link or symlink that ends with a slash (`b/`):
/// the kernel makes nothing there — EEXIST for a name the view has, else
/// ENOENT (gVisor's CannotLinkWithSlash). None: no slash, go on.
fn made_with_slash(path: *const c_char, rel: &[u8]) -> Option<c_int> {
    // SAFETY: routed to the rift, so readable and NUL-terminated.
    if !vrift_shim_core::path::ends_with_slash(unsafe { CStr::from_ptr(path) }.to_bytes()) {
        return None;
    }
    let mut abs = PathBuf::new();
    let mut scratch = PathBuf::new();
    let there = abs.set_parts(&[state::ROOT.get(), b"/", rel])
        && match crate::stat::lookup_meta(libc::AT_FDCWD, abs.c_ptr(), false, &mut scratch) {
            crate::stat::Lk::Meta(_) => true,
            crate::stat::Lk::Err(_) => false,
            // On disk (a directory, or a file the rift leaves alone).
            crate::stat::Lk::Real | crate::stat::Lk::RealAt => sys::lstat_raw(abs.abs()).is_ok(),
        };
    Some(fail(if there { libc::EEXIST } else { libc::ENOENT }))
}

/// The fd of an O_TMPFILE file that a linkat call names, if any.
fn tmpfile_source(od: c_int, old: *const c_char, flags: c_int) -> Option<c_int> {
    if crate::sys::unreadable(old) {
        return None;
    }
    // SAFETY: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(old) }.to_bytes();
    let fd = if p.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        od
    } else if let Some(n) = p.strip_prefix(b"/proc/self/fd/") {
        let mut v: c_int = 0;
        for &c in n {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v.checked_mul(10)?.checked_add((c - b'0') as c_int)?;
        }
        v
    } else {
        return None;
    };
    fdtable::is_tmpfile(fd).then_some(fd)
}

#[no_mangle]
pub extern "C" fn symlink(target: *const c_char, path: *const c_char) -> c_int {
    symlinkat(target, libc::AT_FDCWD, path)
}

#[no_mangle]
pub extern "C" fn symlinkat(target: *const c_char, dirfd: c_int, path: *const c_char) -> c_int {
    if crate::sys::unreadable(target) {
        return fail(libc::EFAULT);
    }
    // SAFETY: a NUL-terminated target.
    let t = unsafe { CStr::from_ptr(target) }.to_bytes();
    if t.is_empty() {
        return fail(libc::ENOENT);
    }
    one_path!(
        dirfd,
        path,
        false,
        |rel| match made_with_slash(path, rel) {
            Some(r) => Ok(r),
            None => rift(Op::Symlink, 0, 0, rel, t),
        },
        call_real!(SYMLINKAT(target, dirfd, path) or raw(libc::SYS_symlinkat, target as usize, dirfd as usize, path as usize, 0, 0)),
        |abs| call_real!(SYMLINKAT(target, libc::AT_FDCWD, abs) or raw(libc::SYS_symlinkat, target as usize, FD, abs as usize, 0, 0))
    )
}

// ---- metadata ---------------------------------------------------------------------

/// The view path of an fd the shim opened on a rift entry, as an absolute
/// path in `buf`. A staged fd counts only with `staged_too`: its own file
/// carries its times, but its mode and owner are the entry's.
fn fd_entry_path(fd: c_int, staged_too: bool, buf: &mut PathBuf) -> bool {
    if !staged_too && fdtable::is_staged(fd) {
        return false;
    }
    let mut p = [0u8; PATH_MAX];
    let n = fdtable::path(fd, &mut p);
    n > 0 && buf.set(&p[..n])
}

/// Routes an fd-based metadata call: a rift entry's fd (a staged one too
/// with `staged_too`) goes to the daemon by its view path; anything else to
/// libc.
/// For an fd the shim knows nothing of (inherited across exec, opened by a
/// raw syscall, past the fd table): what the kernel says it is, in `buf`
/// (`buf.in_store` set for a blob). False when there is nothing to ask.
#[cold]
#[inline(never)]
pub(crate) fn untracked_fd_path(fd: c_int, buf: &mut PathBuf) -> bool {
    if !crate::state::ready()
        || fdtable::get(fd).is_some()
        || fdtable::is_dir(fd)
        || fdtable::is_tmpfile(fd)
    {
        return false;
    }
    let mut p = [0u8; PATH_MAX];
    // SAFETY: `p` holds PATH_MAX bytes.
    let Some(n) = (unsafe { sys::fd_path_into(fd, p.as_mut_ptr(), PATH_MAX) }) else {
        return false;
    };
    if p.first() != Some(&b'/') || !buf.set(&p[..n]) {
        return false;
    }
    buf.in_store = crate::resolve::in_store(buf.abs());
    true
}

macro_rules! by_fd {
    ($fd:expr, $staged_too:expr, |$rel:ident| $rift:expr, $real:expr) => {{
        let mut path = PathBuf::new();
        let known = fd_entry_path($fd, $staged_too, &mut path)
            || (!fdtable::is_staged($fd) && untracked_fd_path($fd, &mut path));
        if (known || path.in_store) && sys::is_path_fd($fd) {
            // An O_PATH fd changes nothing, as in the kernel.
            fail(libc::EBADF)
        } else if path.in_store {
            // A blob of the store: no entry to change, and the blob never.
            fail(libc::EPERM)
        } else if known {
            let mut buf = PathBuf::new();
            let c = path.c_ptr();
            match route(libc::AT_FDCWD, c, false, &mut buf) {
                Route::Rift => {
                    let $rel = buf.rel();
                    match $rift {
                        Ok(r) => r,
                        Err(PassToLibc) => $real,
                    }
                }
                _ => $real,
            }
        } else {
            $real
        }
    }};
}

#[no_mangle]
pub extern "C" fn chmod(path: *const c_char, mode: mode_t) -> c_int {
    fchmodat(libc::AT_FDCWD, path, mode, 0)
}

/// glibc's lchmod calls its own fchmodat (not through the PLT), so it is
/// served here, as fchmodat with AT_SYMLINK_NOFOLLOW (coreutils' `mkfifo
/// -m`, `mknod -m` and `install` use it).
#[no_mangle]
pub extern "C" fn lchmod(path: *const c_char, mode: mode_t) -> c_int {
    fchmodat(libc::AT_FDCWD, path, mode, libc::AT_SYMLINK_NOFOLLOW)
}

#[no_mangle]
pub extern "C" fn fchmodat(dirfd: c_int, path: *const c_char, mode: mode_t, flags: c_int) -> c_int {
    // glibc's own check (fchmodat02).
    if flags & !libc::AT_SYMLINK_NOFOLLOW != 0 {
        return fail(libc::EINVAL);
    }
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    one_path!(
        dirfd,
        path,
        follow,
        |rel| rift(Op::Chmod, mode as u64, 0, rel, b""),
        call_real!(FCHMODAT(dirfd, path, mode, flags) or raw(libc::SYS_fchmodat, dirfd as usize, path as usize, mode as usize, 0, 0)),
        |abs| call_real!(FCHMODAT(libc::AT_FDCWD, abs, mode, flags) or raw(libc::SYS_fchmodat, FD, abs as usize, mode as usize, 0, 0))
    )
}

/// `fchmodat2` (Linux 6.6; reached as a raw syscall): `fchmodat` with the
/// kernel's flag check and `AT_EMPTY_PATH`, which acts on the fd (an
/// O_PATH one too, as in the kernel); what is not the rift's goes to the
/// kernel's own `fchmodat2`.
pub fn fchmodat2(dirfd: c_int, path: *const c_char, mode: mode_t, flags: c_int) -> c_int {
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return fail(libc::EINVAL);
    }
    let nr = libc::SYS_fchmodat2;
    let (m, f) = (mode as usize, flags as usize);
    // SAFETY: checked readable first.
    if flags & libc::AT_EMPTY_PATH != 0 && !sys::unreadable(path) && unsafe { *path } == 0 {
        let mut view = PathBuf::new();
        if fd_entry_path(dirfd, true, &mut view) {
            let r = fchmodat(libc::AT_FDCWD, view.c_ptr(), mode, 0);
            if r == 0 {
                fdtable::set_mode(dirfd, mode);
            }
            return r;
        }
        return raw(nr, dirfd as usize, path as usize, m, f, 0);
    }
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    one_path!(
        dirfd,
        path,
        follow,
        |rel| rift(Op::Chmod, mode as u64, 0, rel, b""),
        raw(nr, dirfd as usize, path as usize, m, f, 0),
        |abs| raw(nr, FD, abs as usize, m, f, 0)
    )
}

/// ioctl (through the C layer: it is variadic). The requests that change
/// an inode in place — its flags (`chattr`), its project attributes — are
/// refused on the files behind the view (see [`flags_refused`]); every
/// other request goes to libc untouched (one comparison: terminals call
/// ioctl all the time).
#[no_mangle]
pub extern "C" fn vrift_ioctl(fd: c_int, request: libc::c_ulong, arg: *mut libc::c_void) -> c_int {
    if crate::seccomp::filter::SETTING_IOCTLS.contains(&(request as u32)) {
        if let Some(e) = flags_refused(fd) {
            return fail(e);
        }
    }
    call_real!(IOCTL(fd, request, arg) or raw(libc::SYS_ioctl, fd as usize, request as usize, arg as usize, 0, 0))
}

/// Why inode flags may not be changed through `fd`: EPERM on a blob of the
/// store (every project holding that content shares it); EOPNOTSUPP on a
/// rift file being written (its staging file: the rift keeps no flags, and
/// an immutable staging file could never be sealed or removed). None for
/// anything else.
#[cold]
#[inline(never)]
fn flags_refused(fd: c_int) -> Option<c_int> {
    if fdtable::get(fd).is_some() {
        return Some(if fdtable::is_staged(fd) {
            libc::EOPNOTSUPP
        } else {
            libc::EPERM
        });
    }
    let mut path = PathBuf::new();
    if !untracked_fd_path(fd, &mut path) {
        return None;
    }
    if path.in_store {
        Some(libc::EPERM)
    } else if crate::resolve::in_staging(path.abs()) {
        Some(libc::EOPNOTSUPP)
    } else {
        None
    }
}

#[no_mangle]
pub extern "C" fn fchmod(fd: c_int, mode: mode_t) -> c_int {
    let r = by_fd!(
        fd,
        true,
        |rel| rift(Op::Chmod, mode as u64, 0, rel, b""),
        call_real!(FCHMOD(fd, mode) or raw(libc::SYS_fchmod, fd as usize, mode as usize, 0, 0, 0))
    );
    if r == 0 {
        // What fstat on this fd reports follows.
        fdtable::set_mode(fd, mode);
    }
    r
}

#[no_mangle]
pub extern "C" fn chown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    fchownat(libc::AT_FDCWD, path, uid, gid, 0)
}

#[no_mangle]
pub extern "C" fn lchown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    fchownat(libc::AT_FDCWD, path, uid, gid, libc::AT_SYMLINK_NOFOLLOW)
}

#[no_mangle]
pub extern "C" fn fchownat(
    dirfd: c_int,
    path: *const c_char,
    uid: libc::uid_t,
    gid: libc::gid_t,
    flags: c_int,
) -> c_int {
    // The kernel's flag check comes first (fchownat03).
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return fail(libc::EINVAL);
    }
    // SAFETY: checked readable first.
    if !crate::sys::unreadable(path) && unsafe { *path } == 0 && flags & libc::AT_EMPTY_PATH != 0 {
        if sys::is_path_fd(dirfd) {
            return chown_path_fd(dirfd, uid, gid, flags);
        }
        return fchown(dirfd, uid, gid);
    }
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    one_path!(
        dirfd,
        path,
        follow,
        |rel| rift(Op::Chown, uid as u64, gid as u64, rel, b""),
        call_real!(FCHOWNAT(dirfd, path, uid, gid, flags) or raw(libc::SYS_fchownat, dirfd as usize, path as usize, uid as usize, gid as usize, flags as usize)),
        |abs| call_real!(FCHOWNAT(libc::AT_FDCWD, abs, uid, gid, flags) or raw(libc::SYS_fchownat, FD, abs as usize, uid as usize, gid as usize, flags as usize))
    )
}

/// `fchownat(fd, "", …, AT_EMPTY_PATH)` on an O_PATH fd: the kernel allows
/// it (where `fchown` gives EBADF). A rift entry's fd changes the entry, a
/// blob's nothing (EPERM), anything else is the kernel's.
#[cold]
#[inline(never)]
fn chown_path_fd(fd: c_int, uid: libc::uid_t, gid: libc::gid_t, flags: c_int) -> c_int {
    let mut path = PathBuf::new();
    if fd_entry_path(fd, true, &mut path) {
        return fchownat(
            libc::AT_FDCWD,
            path.c_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
    if untracked_fd_path(fd, &mut path) && path.in_store {
        return fail(libc::EPERM);
    }
    call_real!(FCHOWNAT(fd, c"".as_ptr(), uid, gid, flags)
        or raw(libc::SYS_fchownat, fd as usize, c"".as_ptr() as usize, uid as usize, gid as usize, flags as usize))
}

#[no_mangle]
pub extern "C" fn fchown(fd: c_int, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    let r = by_fd!(
        fd,
        true,
        |rel| rift(Op::Chown, uid as u64, gid as u64, rel, b""),
        call_real!(FCHOWN(fd, uid, gid) or raw(libc::SYS_fchown, fd as usize, uid as usize, gid as usize, 0, 0))
    );
    if r == 0 {
        // What fstat on this fd reports follows.
        fdtable::set_owner(fd, uid, gid);
    }
    r
}

/// A timespec's nanoseconds as the kernel accepts them (`nsec_valid`).
fn ts_ns(t: &libc::timespec) -> Result<u64, c_int> {
    match t.tv_nsec {
        libc::UTIME_NOW => Ok(TIME_NOW),
        libc::UTIME_OMIT => Ok(TIME_OMIT),
        n if (0..1_000_000_000).contains(&n) => Ok((t.tv_sec * 1_000_000_000 + n) as u64),
        _ => Err(libc::EINVAL),
    }
}

fn tv_ns(t: &libc::timeval) -> Result<u64, c_int> {
    if !(0..1_000_000).contains(&t.tv_usec) {
        return Err(libc::EINVAL);
    }
    Ok((t.tv_sec * 1_000_000_000 + t.tv_usec * 1000) as u64)
}

/// (atime, mtime) in the protocol's encoding, read as the kernel reads
/// them: EFAULT for a pair it cannot read, EINVAL for a field out of range.
fn times_ts(ts: *const libc::timespec) -> Result<(u64, u64), c_int> {
    if ts.is_null() {
        return Ok((TIME_NOW, TIME_NOW));
    }
    if !sys::bytes_readable(ts, 2 * core::mem::size_of::<libc::timespec>()) {
        return Err(libc::EFAULT);
    }
    // SAFETY: two readable timespecs (checked above).
    let t = unsafe { core::slice::from_raw_parts(ts, 2) };
    Ok((ts_ns(&t[0])?, ts_ns(&t[1])?))
}

/// Both times UTIME_OMIT: utimensat does nothing, not even look at the
/// path (a missing file succeeds).
fn omits_both(times: Result<(u64, u64), c_int>) -> bool {
    times == Ok((TIME_OMIT, TIME_OMIT))
}

fn times_tv(tv: *const libc::timeval) -> Result<(u64, u64), c_int> {
    if tv.is_null() {
        return Ok((TIME_NOW, TIME_NOW));
    }
    if !sys::bytes_readable(tv, 2 * core::mem::size_of::<libc::timeval>()) {
        return Err(libc::EFAULT);
    }
    // SAFETY: two readable timevals (checked above).
    let t = unsafe { core::slice::from_raw_parts(tv, 2) };
    Ok((tv_ns(&t[0])?, tv_ns(&t[1])?))
}

#[no_mangle]
pub extern "C" fn utimensat(
    dirfd: c_int,
    path: *const c_char,
    ts: *const libc::timespec,
    flags: c_int,
) -> c_int {
    if path.is_null() {
        return futimens(dirfd, ts);
    }
    let times = times_ts(ts);
    if omits_both(times) {
        return 0;
    }
    if crate::sys::unreadable(path) {
        return fail(libc::EFAULT);
    }
    let (a, m) = match times {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    one_path!(
        dirfd,
        path,
        follow,
        |rel| rift(Op::Utimes, a, m, rel, b""),
        call_real!(UTIMENSAT(dirfd, path, ts, flags) or raw(libc::SYS_utimensat, dirfd as usize, path as usize, ts as usize, flags as usize, 0)),
        |abs| call_real!(UTIMENSAT(libc::AT_FDCWD, abs, ts, flags) or raw(libc::SYS_utimensat, FD, abs as usize, ts as usize, flags as usize, 0))
    )
}

#[no_mangle]
pub extern "C" fn futimens(fd: c_int, ts: *const libc::timespec) -> c_int {
    let times = times_ts(ts);
    if omits_both(times) {
        return 0;
    }
    let (a, m) = match times {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let r = by_fd!(
        fd,
        false,
        |rel| rift(Op::Utimes, a, m, rel, b""),
        call_real!(FUTIMENS(fd, ts) or raw(libc::SYS_utimensat, fd as usize, 0, ts as usize, 0, 0))
    );
    if r == 0 {
        // What fstat on this fd reports follows (FutimesatTest.OnNullPath).
        fdtable::refresh_times(fd);
    }
    r
}

#[no_mangle]
pub extern "C" fn utimes(path: *const c_char, tv: *const libc::timeval) -> c_int {
    let (a, m) = match times_tv(tv) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    one_path!(
        libc::AT_FDCWD,
        path,
        true,
        |rel| rift(Op::Utimes, a, m, rel, b""),
        call_real!(UTIMES(path, tv) or fail(libc::ENOSYS)),
        |abs| call_real!(UTIMES(abs, tv) or fail(libc::ENOSYS))
    )
}

#[no_mangle]
pub extern "C" fn lutimes(path: *const c_char, tv: *const libc::timeval) -> c_int {
    let (a, m) = match times_tv(tv) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    one_path!(
        libc::AT_FDCWD,
        path,
        false,
        |rel| rift(Op::Utimes, a, m, rel, b""),
        call_real!(LUTIMES(path, tv) or fail(libc::ENOSYS)),
        |abs| call_real!(LUTIMES(abs, tv) or fail(libc::ENOSYS))
    )
}

#[no_mangle]
pub extern "C" fn futimesat(dirfd: c_int, path: *const c_char, tv: *const libc::timeval) -> c_int {
    if path.is_null() {
        return futimes(dirfd, tv);
    }
    if crate::sys::unreadable(path) {
        return fail(libc::EFAULT);
    }
    let (a, m) = match times_tv(tv) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    one_path!(
        dirfd,
        path,
        true,
        |rel| rift(Op::Utimes, a, m, rel, b""),
        call_real!(FUTIMESAT(dirfd, path, tv) or fail(libc::ENOSYS)),
        |abs| call_real!(FUTIMESAT(libc::AT_FDCWD, abs, tv) or fail(libc::ENOSYS))
    )
}

#[no_mangle]
pub extern "C" fn futimes(fd: c_int, tv: *const libc::timeval) -> c_int {
    let (a, m) = match times_tv(tv) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let r = by_fd!(
        fd,
        false,
        |rel| rift(Op::Utimes, a, m, rel, b""),
        call_real!(FUTIMES(fd, tv) or fail(libc::ENOSYS))
    );
    if r == 0 {
        fdtable::refresh_times(fd);
    }
    r
}

#[no_mangle]
pub extern "C" fn utime(path: *const c_char, times: *const libc::utimbuf) -> c_int {
    let (a, m) = if times.is_null() {
        (TIME_NOW, TIME_NOW)
    } else if !sys::bytes_readable(times, core::mem::size_of::<libc::utimbuf>()) {
        return fail(libc::EFAULT);
    } else {
        // SAFETY: libc contract: a valid utimbuf.
        let t = unsafe { &*times };
        (
            (t.actime * 1_000_000_000) as u64,
            (t.modtime * 1_000_000_000) as u64,
        )
    };
    one_path!(
        libc::AT_FDCWD,
        path,
        true,
        |rel| rift(Op::Utimes, a, m, rel, b""),
        call_real!(UTIME(path, times) or fail(libc::ENOSYS)),
        |abs| call_real!(UTIME(abs, times) or fail(libc::ENOSYS))
    )
}

#[no_mangle]
pub extern "C" fn truncate(path: *const c_char, len: libc::off_t) -> c_int {
    if len < 0 {
        return fail(libc::EINVAL);
    }
    one_path!(
        libc::AT_FDCWD,
        path,
        true,
        |rel| match past_file_size_limit(len as u64) {
            true => Ok(fail(libc::EFBIG)),
            false => rift(Op::Truncate, len as u64, 0, rel, b""),
        },
        call_real!(TRUNCATE(path, len) or raw(libc::SYS_truncate, path as usize, len as usize, 0, 0, 0)),
        |abs| call_real!(TRUNCATE(abs, len) or raw(libc::SYS_truncate, abs as usize, len as usize, 0, 0, 0))
    )
}

/// A length past the process's RLIMIT_FSIZE: the kernel's SIGXFSZ to the
/// caller and EFBIG (truncate03; the daemon, which truncates the rift's
/// file, has its own limit).
fn past_file_size_limit(len: u64) -> bool {
    let Some(limit) = sys::rlimit(libc::RLIMIT_FSIZE) else {
        return false;
    };
    if limit.rlim_cur == libc::RLIM_INFINITY || len <= limit.rlim_cur {
        return false;
    }
    // SAFETY: signals this thread, as the kernel does.
    unsafe {
        let pid = crate::raw_syscall!(libc::SYS_getpid);
        let tid = crate::sys::gettid();
        crate::raw_syscall!(libc::SYS_tgkill, pid, tid, libc::SIGXFSZ);
    }
    true
}

#[no_mangle]
pub extern "C" fn truncate64(path: *const c_char, len: libc::off64_t) -> c_int {
    truncate(path, len)
}

// ---- temporary files ------------------------------------------------------------------

const LETTERS: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Fills the six `X`s before `suffix` bytes with random letters; false if
/// the template is malformed.
fn fill_template(t: &mut [u8], suffix: usize, seed: &mut u64) -> bool {
    if t.len() < 6 + suffix {
        return false;
    }
    let end = t.len() - suffix;
    if t[end - 6..end].iter().any(|&c| c != b'X') {
        return false;
    }
    for c in &mut t[end - 6..end] {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *c = LETTERS[(*seed % 62) as usize];
    }
    true
}

fn seed() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscalls.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    (ts.tv_nsec as u64) ^ ((ts.tv_sec as u64) << 20) ^ (pid << 40) | 1
}

/// mkstemp and friends for a template in the domain: O_CREAT|O_EXCL
/// through the daemon until a name is free. None: not in the domain.
fn mktemp_rift(template: *mut c_char, suffix: c_int, flags: c_int) -> Option<c_int> {
    if template.is_null() || suffix < 0 {
        return None;
    }
    // SAFETY: a NUL-terminated, writable template (libc contract).
    let len = unsafe { libc::strlen(template) };
    // SAFETY: `len` bytes of the caller's template, writable (libc contract).
    let t = unsafe { core::slice::from_raw_parts_mut(template as *mut u8, len) };
    let mut buf = PathBuf::new();
    if !matches!(
        route(libc::AT_FDCWD, template, false, &mut buf),
        Route::Rift
    ) {
        return None;
    }
    let mut s = seed();
    for _ in 0..1000 {
        if !fill_template(t, suffix as usize, &mut s) {
            return Some(fail(libc::EINVAL));
        }
        let mut b = PathBuf::new();
        if !matches!(route(libc::AT_FDCWD, template, false, &mut b), Route::Rift) {
            return Some(fail(libc::EINVAL));
        }
        let keep = flags & (libc::O_APPEND | libc::O_CLOEXEC | libc::O_SYNC | libc::O_DSYNC);
        match open_write(
            &b,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | keep,
            0o600,
        ) {
            Ok(fd) if fd >= 0 => return Some(fd),
            // SAFETY: errno is thread-local.
            Ok(_) if unsafe { *libc::__errno_location() } == libc::EEXIST => continue,
            Ok(r) => return Some(r),
            Err(PassToLibc) => return Some(fail(libc::EEXIST)),
        }
    }
    Some(fail(libc::EEXIST))
}

macro_rules! mkstemp_export {
    ($name:ident, $real:ident, ($($arg:ident : $ty:ty),*), $suffix:expr, $flags:expr) => {
        #[no_mangle]
        pub extern "C" fn $name(template: *mut c_char $(, $arg: $ty)*) -> c_int {
            if let Some(r) = mktemp_rift(template, $suffix, $flags) {
                return r;
            }
            call_real!($real(template $(, $arg)*) or fail(libc::ENOSYS))
        }
    };
}

mkstemp_export!(mkstemp, MKSTEMP, (), 0, 0);
mkstemp_export!(mkstemp64, MKSTEMP64, (), 0, 0);
mkstemp_export!(mkostemp, MKOSTEMP, (flags: c_int), 0, flags);
mkstemp_export!(mkostemp64, MKOSTEMP64, (flags: c_int), 0, flags);
mkstemp_export!(mkstemps, MKSTEMPS, (suffix: c_int), suffix, 0);
mkstemp_export!(mkstemps64, MKSTEMPS64, (suffix: c_int), suffix, 0);
mkstemp_export!(mkostemps, MKOSTEMPS, (suffix: c_int, flags: c_int), suffix, flags);
mkstemp_export!(mkostemps64, MKOSTEMPS64, (suffix: c_int, flags: c_int), suffix, flags);

#[no_mangle]
pub extern "C" fn mkdtemp(template: *mut c_char) -> *mut c_char {
    let mut buf = PathBuf::new();
    if template.is_null()
        || !matches!(
            route(libc::AT_FDCWD, template, false, &mut buf),
            Route::Rift
        )
    {
        return call_real!(MKDTEMP(template) or core::ptr::null_mut());
    }
    // SAFETY: a NUL-terminated, writable template.
    let len = unsafe { libc::strlen(template) };
    // SAFETY: `len` bytes of the caller's template, writable (libc contract).
    let t = unsafe { core::slice::from_raw_parts_mut(template as *mut u8, len) };
    let mut s = seed();
    for _ in 0..1000 {
        if !fill_template(t, 0, &mut s) {
            fail(libc::EINVAL);
            return core::ptr::null_mut();
        }
        match mkdir(template, 0o700) {
            0 => return template,
            // SAFETY: errno is thread-local.
            _ if unsafe { *libc::__errno_location() } == libc::EEXIST => continue,
            _ => return core::ptr::null_mut(),
        }
    }
    fail(libc::EEXIST);
    core::ptr::null_mut()
}

/// Seals a staged entry before it is executed or loaded (ETXTBSY while a
/// process still writes it, as Linux answers).
pub fn seal_for_exec(rel: &[u8]) -> c_int {
    rift(Op::Seal, 0, 0, rel, b"").unwrap_or_default()
}
