//! The open family (read side): a rift file opens its blob read-only and the
//! fd is tracked so `fstat` reports the view. Writes inside the domain are
//! refused with EROFS and one line on stderr until the write side exists:
//! never silently written to a blob or to the disk.

use core::ffi::CStr;

use libc::{c_char, c_int, c_uint, FILE};
use vrift_format::Kind;

use crate::real::fail;
use crate::resolve::{blob_path, resolve, PathBuf, View};
use crate::statbuf::Meta;
use crate::state::PATH_MAX;
use crate::{call_real, fdtable, sys};

const W_OPEN: c_int = 0;
const W_OPEN64: c_int = 1;
const W_OPENAT: c_int = 2;

/// Whether open flags ask to write or create (O_TMPFILE includes
/// O_DIRECTORY's bit, so it is tested as a whole).
fn writes(flags: c_int) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY
        || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0
        || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

fn refuse_write(path: &[u8]) -> c_int {
    sys::complain(&[
        b"vrift: writing inside the rift is not supported yet (read-only view): ",
        path,
    ]);
    fail(libc::EROFS)
}

fn real_open(which: c_int, dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    match which {
        W_OPEN => {
            call_real!(OPEN(path, flags, mode) or sys::openat_raw(libc::AT_FDCWD, path, flags, mode))
        }
        W_OPEN64 => {
            call_real!(OPEN64(path, flags, mode) or sys::openat_raw(libc::AT_FDCWD, path, flags, mode))
        }
        W_OPENAT => {
            call_real!(OPENAT(dirfd, path, flags, mode) or sys::openat_raw(dirfd, path, flags, mode))
        }
        _ => {
            call_real!(OPENAT64(dirfd, path, flags, mode) or sys::openat_raw(dirfd, path, flags, mode))
        }
    }
}

/// Opens the blob behind a rift file with the caller's non-access flags.
fn open_entry(
    meta: &Meta,
    hash: &vrift_format::ContentHash,
    flags: c_int,
    view_path: &[u8],
) -> c_int {
    let mut blob = [0u8; PATH_MAX + 1];
    if blob_path(hash, &mut blob).is_none() {
        return fail(libc::ENAMETOOLONG);
    }
    let keep = flags
        & (libc::O_CLOEXEC
            | libc::O_NONBLOCK
            | libc::O_NOCTTY
            | libc::O_NOATIME
            | libc::O_LARGEFILE);
    let fd = call_real!(OPENAT(libc::AT_FDCWD, blob.as_ptr() as *const c_char, libc::O_RDONLY | keep, 0)
        or sys::openat_raw(libc::AT_FDCWD, blob.as_ptr() as *const c_char, libc::O_RDONLY | keep, 0));
    if fd < 0 {
        // SAFETY: errno is thread-local.
        let e = unsafe { *libc::__errno_location() };
        if e == libc::ENOENT {
            sys::complain(&[
                b"vrift: a blob is missing from the store (run `vrift fsck`) for ",
                view_path,
            ]);
            return fail(libc::EIO);
        }
        return -1;
    }
    fdtable::set(fd, meta, view_path);
    fd
}

/// A new fd from libc overwrites whatever the table held for that number;
/// a directory fd remembers its path (for later `openat(dirfd, …)`).
fn remember(fd: c_int, flags: c_int, buf: &PathBuf) {
    if fd < 0 {
        return;
    }
    if flags & libc::O_DIRECTORY != 0 && buf.len > 0 {
        fdtable::set_dir(fd, buf.abs());
    } else {
        fdtable::clear(fd);
    }
}

#[no_mangle]
pub extern "C" fn vrift_openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
    which: c_int,
) -> c_int {
    if path.is_null() {
        return real_open(which, dirfd, path, flags, mode);
    }
    // SAFETY: libc contract: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    let mut buf = PathBuf::new();
    let follow = flags & libc::O_NOFOLLOW == 0;
    let (view, _) = resolve(dirfd, p, follow, &mut buf);
    match view {
        View::Pass => {
            let fd = real_open(which, dirfd, path, flags, mode);
            remember(fd, flags, &buf);
            fd
        }
        View::Disk { rewritten } => {
            if writes(flags) {
                return refuse_write(buf.abs());
            }
            let fd = if rewritten {
                let c = buf.c_ptr();
                real_open(W_OPENAT, libc::AT_FDCWD, c, flags, mode)
            } else {
                real_open(which, dirfd, path, flags, mode)
            };
            if fd < 0 {
                let mut view = PathBuf::new();
                if let Some((header, target)) =
                    crate::resolve::physical_fallback(&buf, follow, &mut view)
                {
                    if header.kind == Kind::File && flags & libc::O_DIRECTORY == 0 {
                        return open_entry(
                            &Meta::of(&header, target),
                            &header.hash,
                            flags,
                            view.abs(),
                        );
                    }
                }
            }
            remember(fd, flags, &buf);
            fd
        }
        View::Error(e) => {
            if e == libc::ENOENT && flags & libc::O_CREAT != 0 {
                return refuse_write(buf.abs());
            }
            fail(e)
        }
        View::Entry { header, target } => {
            if flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 {
                return fail(libc::EEXIST);
            }
            if writes(flags) {
                return refuse_write(buf.abs());
            }
            match header.kind {
                Kind::Symlink => fail(libc::ELOOP), // only reached with O_NOFOLLOW
                _ if flags & libc::O_DIRECTORY != 0 => fail(libc::ENOTDIR),
                _ => open_entry(&Meta::of(&header, target), &header.hash, flags, buf.abs()),
            }
        }
    }
}

/// Whether an fopen mode string writes.
fn mode_writes(mode: &[u8]) -> bool {
    mode.iter().any(|c| matches!(c, b'w' | b'a' | b'+'))
}

/// fopen/freopen on the view: `real` opens a path with the caller's mode
/// (and stream, for freopen). A rift file opens its blob, and the new fd
/// reports the view.
fn stream_open(
    path: *const c_char,
    mode: *const c_char,
    real: impl Fn(*const c_char) -> *mut FILE,
) -> *mut FILE {
    if path.is_null() || mode.is_null() {
        return real(path);
    }
    // SAFETY: libc contract: NUL-terminated strings.
    let (p, m) = unsafe {
        (
            CStr::from_ptr(path).to_bytes(),
            CStr::from_ptr(mode).to_bytes(),
        )
    };
    let mut buf = PathBuf::new();
    let (view, _) = resolve(libc::AT_FDCWD, p, true, &mut buf);
    let writes = mode_writes(m);
    match view {
        View::Pass => real(path),
        View::Disk { .. } | View::Entry { .. } if writes => {
            refuse_write(buf.abs());
            core::ptr::null_mut()
        }
        View::Error(libc::ENOENT) if writes => {
            refuse_write(buf.abs());
            core::ptr::null_mut()
        }
        View::Error(e) => {
            fail(e);
            core::ptr::null_mut()
        }
        View::Disk { rewritten: false } => real(path),
        View::Disk { rewritten: true } => real(buf.c_ptr()),
        View::Entry { header, target } => {
            if header.kind != Kind::File {
                fail(libc::ELOOP);
                return core::ptr::null_mut();
            }
            let mut blob = [0u8; PATH_MAX + 1];
            if blob_path(&header.hash, &mut blob).is_none() {
                fail(libc::ENAMETOOLONG);
                return core::ptr::null_mut();
            }
            let f = real(blob.as_ptr() as *const c_char);
            if f.is_null() {
                // SAFETY: errno is thread-local.
                if unsafe { *libc::__errno_location() } == libc::ENOENT {
                    sys::complain(&[
                        b"vrift: a blob is missing from the store (run `vrift fsck`) for ",
                        buf.abs(),
                    ]);
                    fail(libc::EIO);
                }
                return f;
            }
            // SAFETY: a stream libc just opened.
            let fd = unsafe { libc::fileno(f) };
            fdtable::set(fd, &Meta::of(&header, target), buf.abs());
            f
        }
    }
}

#[no_mangle]
pub extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE {
    stream_open(
        path,
        mode,
        |p| call_real!(FOPEN(p, mode) or core::ptr::null_mut()),
    )
}

#[no_mangle]
pub extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE {
    stream_open(
        path,
        mode,
        |p| call_real!(FOPEN64(p, mode) or core::ptr::null_mut()),
    )
}

#[no_mangle]
pub extern "C" fn creat(path: *const c_char, mode: libc::mode_t) -> c_int {
    vrift_openat(
        libc::AT_FDCWD,
        path,
        libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
        mode,
        W_OPEN,
    )
}

#[no_mangle]
pub extern "C" fn creat64(path: *const c_char, mode: libc::mode_t) -> c_int {
    vrift_openat(
        libc::AT_FDCWD,
        path,
        libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
        mode,
        W_OPEN64,
    )
}

#[no_mangle]
pub extern "C" fn freopen(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut FILE,
) -> *mut FILE {
    stream_open(
        path,
        mode,
        |p| call_real!(FREOPEN(p, mode, stream) or core::ptr::null_mut()),
    )
}

#[no_mangle]
pub extern "C" fn freopen64(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut FILE,
) -> *mut FILE {
    stream_open(
        path,
        mode,
        |p| call_real!(FREOPEN64(p, mode, stream) or core::ptr::null_mut()),
    )
}

#[no_mangle]
pub extern "C" fn fclose(f: *mut FILE) -> c_int {
    if !f.is_null() {
        // SAFETY: a stream the caller owns; fileno does not close it.
        let fd = unsafe { libc::fileno(f) };
        fdtable::clear(fd);
    }
    call_real!(FCLOSE(f) or fail(libc::ENOSYS))
}
