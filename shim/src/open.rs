//! The open family: a rift file opens its blob (or, while it is being
//! written, its staging file) read-only and the fd is tracked so `fstat`
//! reports the view. Opening for writing inside the domain goes to the
//! daemon (`write::open_write`), which hands back an fd on a staging file:
//! never a blob or a disk file.

use core::ffi::CStr;
use core::sync::atomic::Ordering;

use libc::{c_char, c_int, c_uint, FILE};
use vrift_format::{Kind, RecordHeader};

use crate::real::fail;
use crate::resolve::{content_path, resolve, PathBuf, View};
use crate::write::PassToLibc;
use crate::{call_real, fdtable, sys};

const W_OPEN: c_int = 0;
const W_OPEN64: c_int = 1;
pub(crate) const W_OPENAT: c_int = 2;

/// Whether open flags ask to write or create (O_TMPFILE includes
/// O_DIRECTORY's bit, so it is tested as a whole).
fn writes(flags: c_int) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY
        || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0
        || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

/// Opens `buf` for writing through the daemon; a special file (fifo,
/// device) is opened by libc.
fn write_open(
    buf: &mut PathBuf,
    which: c_int,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    if let Some(fd) = open_elsewhere(buf, flags, mode) {
        return fd;
    }
    match crate::write::open_write(buf, flags, mode) {
        Ok(fd) => fd,
        Err(PassToLibc) => real_open(which, dirfd, path, flags, mode),
    }
}

/// A write-open in the domain whose parent is, canonically, elsewhere (a
/// physical symlink on the way): opened as its canonical path.
#[cold]
#[inline(never)]
fn open_elsewhere(buf: &PathBuf, flags: c_int, mode: c_uint) -> Option<c_int> {
    let mut canon = PathBuf::new();
    crate::resolve::parent_elsewhere(buf, &mut canon)
        .then(|| vrift_openat(libc::AT_FDCWD, canon.c_ptr(), flags, mode, W_OPENAT))
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

fn errno() -> i32 {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() }
}

/// Opens the content behind a rift file (its blob, or its staging file
/// while it is being written) with the caller's non-access flags.
fn open_entry(header: &RecordHeader, target: &[u8], flags: c_int, view_path: &[u8]) -> c_int {
    let meta = crate::statbuf::entry_meta(header, target);
    if flags & libc::O_NOATIME != 0 && !owns(&meta) {
        // Only the owner (or CAP_FOWNER) may open without atime (open02).
        return fail(libc::EPERM);
    }
    if flags & libc::O_PATH == 0 && !may_read(&meta) {
        return fail(libc::EACCES);
    }
    let staged = header.is_staged();
    let keep = flags
        & (libc::O_CLOEXEC
            | libc::O_NONBLOCK
            | libc::O_NOCTTY
            | libc::O_NOATIME
            | libc::O_LARGEFILE
            // An O_PATH fd neither reads nor changes anything (see `by_fd!`).
            | libc::O_PATH);
    let open_at = |dirfd: c_int, path: *const c_char| {
        call_real!(OPENAT(dirfd, path, libc::O_RDONLY | keep, 0)
            or sys::openat_raw(dirfd, path, libc::O_RDONLY | keep, 0))
    };
    // The content by its full path (a staging file, a blob the fast way
    // missed, one the daemon just fetched); -1 with errno set.
    let open_by_path = || {
        let mut content = PathBuf::new();
        if content_path(header, target, &mut content) {
            open_at(libc::AT_FDCWD, content.c_ptr())
        } else {
            fail(libc::ENAMETOOLONG)
        }
    };
    // A blob opens relative to the blobs directory: the kernel walks two
    // components (`ab/<hash>`) instead of the whole CAS path.
    let mut fd = -1;
    if !staged {
        if let Some(dirfd) = blobs_dir() {
            let mut rel = [0u8; vrift_format::BLOB_REL_PATH_LEN + 1];
            let n = header.hash.write_blob_rel_path(
                (&mut rel[..vrift_format::BLOB_REL_PATH_LEN])
                    .try_into()
                    .expect("sized"),
            );
            rel[n] = 0;
            let skip = vrift_format::BLOBS_DIR.len() + 1;
            fd = open_at(dirfd, rel[skip..].as_ptr() as *const c_char);
            if fd < 0 {
                // Maybe no longer ours (or the store moved): forget it; the
                // full path below decides.
                let _ = fdtable::OWN_BLOBS_FD.compare_exchange(
                    dirfd,
                    -1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
    }
    if fd < 0 {
        fd = open_by_path();
    }
    if fd < 0 && crate::state::creds_changed() && errno() == libc::EACCES {
        // New credentials cannot enter the private store: the daemon
        // opens the content if they may read the entry.
        fd = crate::client::open_read(view_path);
        if fd >= 0 && keep & libc::O_CLOEXEC == 0 {
            // SAFETY: our fresh fd; the caller did not ask for close-on-exec.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
    }
    if fd < 0 {
        let e = errno();
        if e == libc::ENOENT && staged {
            // Sealed meanwhile: the table now names its blob.
            let mut buf = PathBuf::new();
            if let (View::Entry { header, target }, _) =
                resolve(libc::AT_FDCWD, view_path, false, &mut buf)
            {
                if !header.is_staged() {
                    return open_entry(&header, target, flags, view_path);
                }
            }
        }
        if e == libc::ENOENT && !staged {
            // Not in the store (pulled without --eager): the daemon fetches
            // it from a remote, verified, or says why not.
            if !crate::client::fetch_blob(&header.hash, header.size, view_path) {
                return fail(libc::EIO);
            }
            fd = open_by_path();
            if fd < 0 {
                return -1;
            }
        } else {
            return -1;
        }
    }
    if staged {
        fdtable::set_staged(fd, &meta, view_path);
    } else {
        let mut blob = sys::fd_blob_state(fd);
        if blob.map(|b| b.0) != Some(header.size) {
            sys::close_raw(fd);
            // Damaged: fetched again when a remote has it (see `damaged`).
            if !crate::client::refetch_damaged(&header.hash, header.size, view_path) {
                return -1;
            }
            fd = open_by_path();
            if fd < 0 {
                return -1;
            }
            blob = sys::fd_blob_state(fd);
            if blob.map(|b| b.0) != Some(header.size) {
                sys::close_raw(fd);
                return damaged(view_path);
            }
        }
        let marked = blob.is_some_and(|b| b.1);
        if !crate::client::verified(&header.hash, header.size, marked, view_path) {
            sys::close_raw(fd);
            return -1;
        }
        fdtable::set(fd, &meta, view_path);
    }
    fd
}

/// Whether this process may read the entry, by its mode bits as the
/// kernel's `generic_permission` reads them (the blob itself is readable
/// by all: the check is the entry's), then CAP_DAC_OVERRIDE or
/// CAP_DAC_READ_SEARCH (root's, unless it dropped them). A mode every
/// class may read (0644, 0755) asks for no id.
fn may_read(m: &crate::statbuf::Meta) -> bool {
    if m.mode & 0o444 == 0o444 {
        return true;
    }
    class_bits(m) & 4 != 0
        || sys::has_cap(sys::CAP_DAC_OVERRIDE, false)
        || sys::has_cap(sys::CAP_DAC_READ_SEARCH, false)
}

/// Whether this process may execute the entry: the execute bit of its
/// class, or CAP_DAC_OVERRIDE where any class may execute it (the
/// kernel's rule: root cannot run a file no one may).
pub(crate) fn may_exec(m: &crate::statbuf::Meta) -> bool {
    match m.mode & 0o111 {
        0 => false,
        0o111 => true,
        _ => class_bits(m) & 1 != 0 || sys::has_cap(sys::CAP_DAC_OVERRIDE, false),
    }
}

/// The permission bits of `m` that apply to this process (owner's,
/// group's or others'), in the low three bits.
fn class_bits(m: &crate::statbuf::Meta) -> u32 {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let (uid, gid) = crate::statbuf::owner(m);
    if uid == me {
        m.mode >> 6
    } else if sys::in_group(gid) {
        m.mode >> 3
    } else {
        m.mode
    }
}

/// Whether this process owns the entry `m` or holds CAP_FOWNER:
/// `O_NOATIME`.
#[cold]
#[inline(never)]
fn owns(m: &crate::statbuf::Meta) -> bool {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    crate::statbuf::owner(m).0 == me || sys::has_cap(sys::CAP_FOWNER, false)
}

/// A special file of the view: its node in the store, opened with the
/// caller's flags (a FIFO's reader waits for a writer, as on disk), and an
/// fd that reports the entry.
#[cold]
#[inline(never)]
fn open_special(header: &RecordHeader, target: &[u8], flags: c_int, view_path: &[u8]) -> c_int {
    let mut node = PathBuf::new();
    if !content_path(header, target, &mut node) {
        return fail(libc::ENAMETOOLONG);
    }
    let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
    let fd = call_real!(OPENAT(libc::AT_FDCWD, node.c_ptr(), flags, 0)
        or sys::openat_raw(libc::AT_FDCWD, node.c_ptr(), flags, 0));
    if fd < 0 {
        // SAFETY: errno is thread-local.
        let e = unsafe { *libc::__errno_location() };
        // A socket whose server never bound it (or a node gc took): the
        // kernel's answer for a socket path is ENXIO either way.
        return fail(if e == libc::ENOENT { libc::ENXIO } else { e });
    }
    fdtable::set(fd, &crate::statbuf::entry_meta(header, target), view_path);
    fd
}

/// A blob whose size is not its record's: never its bytes. Blobs are never
/// written once sealed, so another size is damage (truncated, appended to,
/// a copy cut short by a full disk, a blob fetched on demand that a power
/// loss cut short: those are not flushed one by one), and reading it would
/// give wrong bytes without an error. The daemon is asked to set it aside
/// and fetch it again from a remote ([`crate::client::refetch_damaged`]);
/// without one (or if the new copy is damaged too): EIO and one line. One
/// `fstat` per open is the whole cost on the way that finds the blob whole;
/// content changed in place at the same size is not seen here (that takes
/// hashing the whole file: `vrift cat` and `vrift fsck` do). See the
/// README, "Security".
fn damaged(view_path: &[u8]) -> c_int {
    sys::complain(&[
        b"vrift: a blob in the store is damaged (its size is not the file's; run `vrift fsck`); EIO for ",
        view_path,
    ]);
    fail(libc::EIO)
}

/// The shim's fd on `<cas>/blobs` (see [`fdtable::OWN_BLOBS_FD`]), opened
/// on first use: O_PATH, close-on-exec, and moved to a high number (three
/// quarters of the fd limit, at most 4000) so that it neither takes the low
/// numbers a program expects from open() nor lands on 0–2.
fn blobs_dir() -> Option<c_int> {
    let fd = fdtable::OWN_BLOBS_FD.load(Ordering::Acquire);
    if fd >= 0 {
        return Some(fd);
    }
    if fd == -2 {
        return None;
    }
    let table = crate::state::table()?;
    let mut dir = PathBuf::new();
    if !dir.set_parts(&[table.cas_root(), b"/", vrift_format::BLOBS_DIR.as_bytes()]) {
        return None;
    }
    let low = sys::openat_raw(
        libc::AT_FDCWD,
        dir.c_ptr(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    );
    if low < 0 {
        return None;
    }
    // No limit to read: 0, no high slot.
    let min =
        sys::rlimit(libc::RLIMIT_NOFILE).map_or(0, |l| (l.rlim_cur / 4 * 3).min(4000)) as c_int;
    let high = if min >= 64 {
        // SAFETY: duplicating our own fd (F_DUPFD_CLOEXEC, no pointer).
        unsafe { crate::raw_syscall!(libc::SYS_fcntl, low, libc::F_DUPFD_CLOEXEC, min) as c_int }
    } else {
        -1
    };
    sys::close_raw(low);
    if high < 0 {
        fdtable::OWN_BLOBS_FD.store(-2, Ordering::Release);
        return None;
    }
    match fdtable::OWN_BLOBS_FD.compare_exchange(-1, high, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(high),
        Err(other) => {
            // Another thread was first.
            sys::close_raw(high);
            (other >= 0).then_some(other)
        }
    }
}

/// After libc failed to open `buf`: a rift file behind a physical symlink
/// (see `physical_fallback`) opens by its view path.
fn open_behind_link(buf: &PathBuf, follow: bool, flags: c_int) -> Option<c_int> {
    let mut view = PathBuf::new();
    let (header, target) = crate::resolve::physical_fallback(buf, follow, &mut view)?;
    (header.kind == Kind::File && flags & libc::O_DIRECTORY == 0)
        .then(|| open_entry(&header, target, flags, view.abs()))
}

/// A new fd from libc overwrites whatever the table held for that number;
/// a directory fd remembers its path (for later `openat(dirfd, …)`).
fn remember(fd: c_int, flags: c_int, buf: &PathBuf) {
    if fd < 0 {
        return;
    }
    if flags & libc::O_DIRECTORY != 0 && !buf.is_empty() {
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
    // Unreadable: the kernel's EFAULT.
    let Some(p) = crate::sys::readable_c_str(path) else {
        return real_open(which, dirfd, path, flags, mode);
    };
    let mut buf = PathBuf::new();
    // O_CREAT|O_EXCL never follows a final symlink: a dangling one is
    // EEXIST, not a file created where it points (as the kernel does).
    let excl = flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL;
    let follow = flags & libc::O_NOFOLLOW == 0 && !excl;
    let (view, table) = resolve(dirfd, p, follow, &mut buf);
    match view {
        // A blob of the store reached through an fd the shim did not open
        // (`/proc/self/fd/N`): read, never written.
        View::Pass if buf.in_store && writes(flags) => fail(libc::EACCES),
        View::Pass if writes(flags) && state_ready() => match write_through_link(&buf, flags, mode)
            .or_else(|| write_up_through_link(dirfd, p, flags, mode))
        {
            Some(fd) => fd,
            None => {
                let fd = real_open(which, dirfd, path, flags, mode);
                remember(fd, flags, &buf);
                fd
            }
        },
        View::Pass => {
            let fd = real_open(which, dirfd, path, flags, mode);
            remember(fd, flags, &buf);
            fd
        }
        // A rift symlink led out of the project: the kernel opens where it
        // leads.
        View::Disk { rewritten: true } if table.is_none() => {
            let fd = real_open(W_OPENAT, libc::AT_FDCWD, buf.c_ptr(), flags, mode);
            remember(fd, flags, &buf);
            fd
        }
        // `x/` is never created as a file: the kernel answers (EISDIR, or
        // what the walk to it finds) and makes nothing.
        View::Disk { rewritten: false }
            if flags & libc::O_CREAT != 0 && vrift_shim_core::path::ends_with_slash(p) =>
        {
            let fd = real_open(which, dirfd, path, flags, mode);
            remember(fd, flags, &buf);
            fd
        }
        View::Disk { rewritten } => {
            if writes(flags) {
                return write_open(&mut buf, which, dirfd, path, flags, mode);
            }
            let fd = if rewritten {
                let c = buf.c_ptr();
                real_open(W_OPENAT, libc::AT_FDCWD, c, flags, mode)
            } else {
                real_open(which, dirfd, path, flags, mode)
            };
            if fd < 0 {
                if let Some(fd) = open_behind_link(&buf, follow, flags) {
                    return fd;
                }
            }
            remember(fd, flags, &buf);
            fd
        }
        View::Error(e) if buf.walk_error != 0 => fail(e),
        View::Error(e) => {
            if (e == libc::ENOENT && flags & libc::O_CREAT != 0)
                || (e == libc::ENOENT
                    && writes(flags)
                    && flags & libc::O_TMPFILE == libc::O_TMPFILE)
            {
                return write_open(&mut buf, which, dirfd, path, flags, mode);
            }
            fail(e)
        }
        View::Entry { header, target } => {
            if flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 {
                return fail(libc::EEXIST);
            }
            if writes(flags) && header.kind == Kind::File {
                return write_open(&mut buf, which, dirfd, path, flags, mode);
            }
            match header.kind {
                Kind::Symlink => fail(libc::ELOOP), // only reached with O_NOFOLLOW
                _ if flags & libc::O_DIRECTORY != 0 => fail(libc::ENOTDIR),
                Kind::Special => open_special(&header, target, flags, buf.abs()),
                _ => open_entry(&header, target, flags, buf.abs()),
            }
        }
    }
}

fn state_ready() -> bool {
    crate::state::ready()
}

/// An open for writing outside the domain whose parent is, canonically,
/// in the project (`/tmp/link -> project`): opened as its canonical path.
#[cold]
#[inline(never)]
fn write_through_link(buf: &PathBuf, flags: c_int, mode: c_uint) -> Option<c_int> {
    let mut canon = PathBuf::new();
    crate::resolve::outside_leads_in(buf, &mut canon)
        .then(|| vrift_openat(libc::AT_FDCWD, canon.c_ptr(), flags, mode, W_OPENAT))
}

/// An open for writing outside the domain that goes up through a symlink
/// into the project (`/tmp/l/../x`): opened as its canonical path.
#[cold]
#[inline(never)]
fn write_up_through_link(dirfd: c_int, p: &[u8], flags: c_int, mode: c_uint) -> Option<c_int> {
    let mut there = PathBuf::new();
    crate::resolve::outside_up_through_link(dirfd, p, &mut there)
        .then(|| vrift_openat(libc::AT_FDCWD, there.c_ptr(), flags, mode, W_OPENAT))
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
    real_mode: &dyn Fn(*const c_char, *const c_char) -> *mut FILE,
    retry: bool,
) -> *mut FILE {
    let real = |p: *const c_char| real_mode(p, mode);
    if crate::sys::unreadable(path) || crate::sys::unreadable(mode) {
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
    let (view, table) = resolve(libc::AT_FDCWD, p, true, &mut buf);
    let writes = mode_writes(m);
    let in_domain = table.is_some();
    match view {
        // (Not for freopen: its stream is closed once libc failed.)
        View::Disk { rewritten: false } if !writes && retry => {
            let f = real(path);
            if !f.is_null() {
                return f;
            }
            // A rift file behind a physical symlink: opened by its view path.
            let mut view = PathBuf::new();
            match crate::resolve::physical_fallback(&buf, true, &mut view) {
                Some((h, _)) if h.kind == Kind::File => {
                    stream_open(view.c_ptr(), mode, real_mode, false)
                }
                _ => f,
            }
        }
        View::Pass if buf.in_store && writes => {
            fail(libc::EACCES);
            core::ptr::null_mut()
        }
        View::Pass => real(path),
        View::Disk { .. }
        | View::Entry { .. }
        | View::Error(libc::ENOENT)
        | View::Error(libc::ENOTDIR)
            if writes && in_domain && buf.walk_error == 0 =>
        {
            let fd = match crate::write::open_write(&buf, fopen_flags(m), 0o666) {
                Ok(fd) => fd,
                Err(PassToLibc) => return real(path), // a fifo or device
            };
            if fd < 0 {
                return core::ptr::null_mut();
            }
            // The stream is opened on the fd the daemon handed over, by its
            // /proc name, with the caller's mode (truncation already done).
            let mut proc_path = [0u8; 32];
            let n = proc_fd_path(fd, &mut proc_path);
            // The name exists now: "x" would fail on it.
            let mut m2 = [0u8; 16];
            for (k, &c) in m.iter().filter(|&&c| c != b'x').take(15).enumerate() {
                m2[k] = c;
            }
            let f = real_mode(
                proc_path[..=n].as_ptr() as *const c_char,
                m2.as_ptr() as *const c_char,
            );
            if f.is_null() {
                fdtable::clear(fd);
                sys::close_raw(fd);
                return f;
            }
            // SAFETY: a stream libc just opened.
            let new_fd = unsafe { libc::fileno(f) };
            fdtable::copy(fd, new_fd);
            fdtable::clear(fd);
            sys::close_raw(fd);
            f
        }
        View::Error(e) => {
            fail(e);
            core::ptr::null_mut()
        }
        View::Disk { rewritten: false } => real(path),
        View::Disk { rewritten: true } => real(buf.c_ptr()),
        View::Entry { header, target } => {
            if header.kind == Kind::Special {
                // Through its node, by fd (see `open_special`).
                let fd = open_special(&header, target, fopen_flags(m), buf.abs());
                if fd < 0 {
                    return core::ptr::null_mut();
                }
                // SAFETY: an fd we own and a NUL-terminated mode.
                let f = unsafe { libc::fdopen(fd, mode) };
                if f.is_null() {
                    fdtable::clear(fd);
                    sys::close_raw(fd);
                }
                return f;
            }
            if header.kind != Kind::File {
                fail(libc::ELOOP);
                return core::ptr::null_mut();
            }
            let mut blob = PathBuf::new();
            if !content_path(&header, target, &mut blob) {
                fail(libc::ENAMETOOLONG);
                return core::ptr::null_mut();
            }
            // Checked before the stream exists (closing one here would go
            // through our own fclose); see `damaged`.
            if !header.is_staged() {
                if let Some(st) = sys::stat_raw(blob.abs()) {
                    let ok = if st.st_size as u64 != header.size {
                        crate::client::refetch_damaged(&header.hash, header.size, buf.abs())
                    } else {
                        let marked = st.st_mode & libc::S_ISVTX != 0;
                        crate::client::verified(&header.hash, header.size, marked, buf.abs())
                    };
                    if !ok {
                        return core::ptr::null_mut();
                    }
                }
            }
            let mut f = real(blob.c_ptr());
            // SAFETY: errno is thread-local.
            let missing = f.is_null() && unsafe { *libc::__errno_location() } == libc::ENOENT;
            if missing && !header.is_staged() {
                // Not in the store: fetched from a remote, or EIO and why.
                if !crate::client::fetch_blob(&header.hash, header.size, buf.abs()) {
                    return core::ptr::null_mut();
                }
                f = real(blob.c_ptr());
            }
            if f.is_null() {
                return f;
            }
            // SAFETY: a stream libc just opened.
            let fd = unsafe { libc::fileno(f) };
            if header.is_staged() {
                fdtable::set_staged(fd, &crate::statbuf::entry_meta(&header, target), buf.abs());
            } else {
                fdtable::set(fd, &crate::statbuf::entry_meta(&header, target), buf.abs());
            }
            f
        }
    }
}

/// open(2) flags of an fopen mode string.
fn fopen_flags(mode: &[u8]) -> c_int {
    let plus = mode.contains(&b'+');
    let mut flags = match mode.first() {
        Some(b'w') => {
            libc::O_CREAT | libc::O_TRUNC | if plus { libc::O_RDWR } else { libc::O_WRONLY }
        }
        Some(b'a') => {
            libc::O_CREAT | libc::O_APPEND | if plus { libc::O_RDWR } else { libc::O_WRONLY }
        }
        _ => {
            if plus {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            }
        }
    };
    if mode.contains(&b'x') {
        flags |= libc::O_EXCL;
    }
    if mode.contains(&b'e') {
        flags |= libc::O_CLOEXEC;
    }
    flags
}

/// `/proc/self/fd/N` (NUL-terminated) into `out`; returns its length.
fn proc_fd_path(fd: c_int, out: &mut [u8; 32]) -> usize {
    let prefix = b"/proc/self/fd/";
    out[..prefix.len()].copy_from_slice(prefix);
    let len = prefix.len()
        + vrift_shim_core::path::write_decimal(&mut out[prefix.len()..], fd.max(0) as u64);
    out[len] = 0;
    len
}

#[no_mangle]
pub extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE {
    stream_open(
        path,
        mode,
        &|p, m| call_real!(FOPEN(p, m) or core::ptr::null_mut()),
        true,
    )
}

#[no_mangle]
pub extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE {
    stream_open(
        path,
        mode,
        &|p, m| call_real!(FOPEN64(p, m) or core::ptr::null_mut()),
        true,
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
        &|p, m| call_real!(FREOPEN(p, m, stream) or core::ptr::null_mut()),
        false,
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
        &|p, m| call_real!(FREOPEN64(p, m, stream) or core::ptr::null_mut()),
        false,
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
