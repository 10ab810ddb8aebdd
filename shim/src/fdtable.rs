//! What the shim knows about fds: for fds it opened on blobs, what `fstat`
//! must report and the view path `/proc/self/fd/N` must read back; for
//! directory fds, their absolute path, so `openat(dirfd, …)` resolves without
//! asking the kernel (`find` and fts walk with dirfds).
//!
//! A fixed array indexed by fd (untouched pages cost nothing). Each slot is
//! owned by whoever owns the fd; `kind` is published last (release). Every
//! way an fd can close (close, fclose, closedir, closefrom, close_range, dup2
//! over it) clears its slot, and every successful open overwrites it.

use core::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

use crate::statbuf::Meta;

pub const MAX_FDS: usize = 4096;
const PATH_CAP: usize = 224;
const PATH_WORDS: usize = PATH_CAP / 8;

const UNUSED: u8 = 0;
/// An fd on a blob, showing a rift entry.
const ENTRY: u8 = 1;
/// A directory fd whose absolute path is known.
const DIR: u8 = 2;
/// An fd on a staging file (a rift file being written): `fstat` takes size
/// and times from the fd itself, the rest from the entry.
const STAGED: u8 = 3;
/// An O_TMPFILE fd in the domain; its path slot holds the staging name.
const TMPFILE: u8 = 4;

struct Slot {
    kind: AtomicU8,
    mode: AtomicU32,
    size: AtomicU64,
    mtime_ns: AtomicI64,
    ino: AtomicU64,
    owner: AtomicU64,
    path_len: AtomicUsize,
    /// The path, 8 bytes per word (little endian): a word store per 8
    /// bytes, not a byte store per byte, on every open of a rift file.
    path: [AtomicU64; PATH_WORDS],
    /// Raw directory reads (`getdents`) of a merged directory: 0 while the
    /// kernel's entries are served, else 1 + the rift children served so
    /// far. Biased so that the whole table starts as zeros: it is `.bss`,
    /// not 1.2 MiB of initialised data in the library file.
    dents_served_1: AtomicI64,
    /// The kernel's offset at the end of its entries (to notice a rewind).
    dents_eof: AtomicI64,
}

static SLOTS: [Slot; MAX_FDS] = [const {
    Slot {
        kind: AtomicU8::new(UNUSED),
        mode: AtomicU32::new(0),
        size: AtomicU64::new(0),
        mtime_ns: AtomicI64::new(0),
        ino: AtomicU64::new(0),
        owner: AtomicU64::new(0),
        path_len: AtomicUsize::new(0),
        path: [const { AtomicU64::new(0) }; PATH_WORDS],
        dents_served_1: AtomicI64::new(0),
        dents_eof: AtomicI64::new(0),
    }
}; MAX_FDS];

fn slot(fd: i32) -> Option<&'static Slot> {
    SLOTS.get(usize::try_from(fd).ok()?)
}

/// Records that `fd` shows the rift entry `meta` at view path `path`.
pub fn set(fd: i32, meta: &Meta, path: &[u8]) {
    store(fd, ENTRY, meta, path);
}

/// Records that `fd` is a staging file showing the entry `meta` at `path`.
pub fn set_staged(fd: i32, meta: &Meta, path: &[u8]) {
    store(fd, STAGED, meta, path);
}

/// Records an O_TMPFILE fd and its staging file's name (for `linkat`).
pub fn set_tmpfile(fd: i32, meta: &Meta, name: &[u8]) {
    store(fd, TMPFILE, meta, name);
}

/// Whether `fd` is an O_TMPFILE file made in the domain.
pub fn is_tmpfile(fd: i32) -> bool {
    slot(fd).is_some_and(|s| s.kind.load(Ordering::Acquire) == TMPFILE)
}

/// The staging name of an O_TMPFILE fd into `out`; its length (0: none).
pub fn tmpfile_name(fd: i32, out: &mut [u8]) -> usize {
    copy_path(fd, TMPFILE, out.as_mut_ptr(), out.len())
}

/// Whether `fd` is a staging file of a rift entry.
pub fn is_staged(fd: i32) -> bool {
    slot(fd).is_some_and(|s| {
        let k = s.kind.load(Ordering::Acquire);
        k == STAGED || k == TMPFILE
    })
}

/// Updates the mode a tracked fd reports (after fchmod).
pub fn set_mode(fd: i32, mode: u32) {
    if let Some(s) = slot(fd) {
        let old = s.mode.load(Ordering::Relaxed);
        s.mode
            .store((old & libc::S_IFMT) | (mode & 0o7777), Ordering::Relaxed);
    }
}

/// After a successful `fchown` of `fd`'s entry: its new owner (`u32::MAX`
/// keeps one), and the set-user-ID bit (set-group-ID too when group
/// execute is set) cleared as the daemon clears it on a regular file.
pub fn set_owner(fd: i32, uid: u32, gid: u32) {
    if let Some(s) = slot(fd) {
        let old = s.owner.load(Ordering::Relaxed);
        let uid = if uid == u32::MAX {
            (old >> 32) as u32
        } else {
            uid
        };
        let gid = if gid == u32::MAX { old as u32 } else { gid };
        s.owner
            .store((u64::from(uid) << 32) | u64::from(gid), Ordering::Relaxed);
        let mode = s.mode.load(Ordering::Relaxed);
        if mode & libc::S_IFMT == libc::S_IFREG {
            s.mode
                .store(vrift_format::view::chown_mode(mode), Ordering::Relaxed);
        }
    }
}

/// Records that `fd` is the directory at absolute path `path` (if it fits).
pub fn set_dir(fd: i32, path: &[u8]) {
    if path.len() <= PATH_CAP {
        store(fd, DIR, &Meta::default(), path);
    } else {
        clear(fd);
    }
}

fn store(fd: i32, kind: u8, meta: &Meta, path: &[u8]) {
    let Some(s) = slot(fd) else { return };
    s.kind.store(UNUSED, Ordering::Release);
    s.mode.store(meta.mode, Ordering::Relaxed);
    // A special file shows size 0: its slot keeps its rdev instead.
    let special = vrift_format::is_special_type(meta.mode);
    s.size.store(
        if special { meta.rdev } else { meta.size },
        Ordering::Relaxed,
    );
    s.mtime_ns.store(meta.mtime_ns, Ordering::Relaxed);
    s.ino.store(meta.ino, Ordering::Relaxed);
    s.owner
        .store((meta.uid as u64) << 32 | meta.gid as u64, Ordering::Relaxed);
    let n = if path.len() <= PATH_CAP {
        path.len()
    } else {
        0
    };
    for (i, word) in s.path.iter().take(n.div_ceil(8)).enumerate() {
        let k = i * 8;
        let w = match path[k..n].first_chunk::<8>() {
            Some(c) => u64::from_le_bytes(*c),
            None => {
                let mut w = [0u8; 8];
                for (d, c) in w.iter_mut().zip(&path[k..n]) {
                    *d = *c;
                }
                u64::from_le_bytes(w)
            }
        };
        word.store(w, Ordering::Relaxed);
    }
    s.path_len.store(n, Ordering::Relaxed);
    s.dents_served_1.store(0, Ordering::Relaxed);
    s.kind.store(kind, Ordering::Release);
}

/// Whether `fd` is a directory fd whose path the shim knows (one load).
#[inline]
pub fn is_dir(fd: i32) -> bool {
    slot(fd).is_some_and(|s| s.kind.load(Ordering::Acquire) == DIR)
}

/// Where raw directory reads of `fd` stand: (rift children served or -1,
/// the kernel's end offset).
pub fn dents(fd: i32) -> (i64, i64) {
    slot(fd).map_or((-1, 0), |s| {
        (
            s.dents_served_1.load(Ordering::Relaxed) - 1,
            s.dents_eof.load(Ordering::Relaxed),
        )
    })
}

pub fn set_dents(fd: i32, served: i64, eof: i64) {
    if let Some(s) = slot(fd) {
        s.dents_eof.store(eof, Ordering::Relaxed);
        s.dents_served_1.store(served + 1, Ordering::Relaxed);
    }
}

/// What `fstat(fd)` must report, if `fd` shows a rift entry. For a staged
/// fd, size and times come from the fd (the caller's real fstat).
#[inline]
pub fn get(fd: i32) -> Option<Meta> {
    let s = slot(fd)?;
    let kind = s.kind.load(Ordering::Acquire);
    if kind != ENTRY && kind != STAGED && kind != TMPFILE {
        return None;
    }
    let owner = s.owner.load(Ordering::Relaxed);
    let mode = s.mode.load(Ordering::Relaxed);
    let size = s.size.load(Ordering::Relaxed);
    let special = vrift_format::is_special_type(mode);
    let mut m = Meta {
        mode,
        size: if special { 0 } else { size },
        rdev: if special { size } else { 0 },
        mtime_ns: s.mtime_ns.load(Ordering::Relaxed),
        atime_ns: s.mtime_ns.load(Ordering::Relaxed),
        ino: s.ino.load(Ordering::Relaxed),
        uid: (owner >> 32) as u32,
        gid: owner as u32,
    };
    if kind == STAGED || kind == TMPFILE {
        // SAFETY: all-zero is a valid stat; fstat on the caller's fd.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fstat of the caller's fd into a valid buffer.
        if unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } == 0 {
            crate::statbuf::absorb_stat(&mut m, &st);
        }
    }
    Some(m)
}

/// The view path of a rift-entry fd (staged or not) into `out`; its length
/// (0: unknown).
pub fn path(fd: i32, out: &mut [u8]) -> usize {
    let n = copy_path(fd, ENTRY, out.as_mut_ptr(), out.len());
    if n > 0 {
        return n;
    }
    copy_path(fd, STAGED, out.as_mut_ptr(), out.len())
}

/// The absolute path of a directory fd into raw memory of `cap` bytes;
/// `None` if the shim does not know it.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes.
pub unsafe fn dir_path_into(fd: i32, out: *mut u8, cap: usize) -> Option<usize> {
    match copy_path(fd, DIR, out, cap) {
        0 => None,
        n => Some(n),
    }
}

fn copy_path(fd: i32, kind: u8, out: *mut u8, cap: usize) -> usize {
    let Some(s) = slot(fd) else { return 0 };
    if s.kind.load(Ordering::Acquire) != kind {
        return 0;
    }
    let n = s.path_len.load(Ordering::Relaxed);
    if n > cap {
        return 0;
    }
    for (i, word) in s.path.iter().take(n.div_ceil(8)).enumerate() {
        let w = word.load(Ordering::Relaxed).to_le_bytes();
        let k = n - i * 8;
        if k >= 8 {
            // SAFETY: i * 8 + 8 <= n <= cap.
            unsafe { (out.add(i * 8) as *mut [u8; 8]).write_unaligned(w) };
            continue;
        }
        for (j, &b) in w[..k].iter().enumerate() {
            // SAFETY: i * 8 + j < n <= cap.
            unsafe { *out.add(i * 8 + j) = b };
        }
    }
    n
}

/// The shim's one fd of its own: the CAS's `blobs/` directory (O_PATH,
/// close-on-exec, a high number), opened on the first rift open of a
/// process (see `open::blobs_dir`). -1: not open; -2: unavailable. Every
/// way the program closes or replaces that number (close, dup2/dup3 onto it,
/// closefrom, close_range, and the rest that end in [`clear`]) forgets it,
/// so the number is never used once the program may have reused it.
pub static OWN_BLOBS_FD: AtomicI32 = AtomicI32::new(-1);

/// Forgets the shim's own fd if it lies in `lo..=hi`.
#[inline]
fn forget_own(lo: u32, hi: u32) {
    let own = OWN_BLOBS_FD.load(Ordering::Relaxed);
    if own >= 0 && (lo..=hi).contains(&(own as u32)) {
        let _ = OWN_BLOBS_FD.compare_exchange(own, -1, Ordering::AcqRel, Ordering::Relaxed);
    }
}

#[inline]
pub fn clear(fd: i32) {
    if fd >= 0 {
        forget_own(fd as u32, fd as u32);
    }
    if let Some(s) = slot(fd) {
        if s.kind.load(Ordering::Relaxed) != UNUSED {
            s.kind.store(UNUSED, Ordering::Release);
        }
    }
}

/// Clears fds `lo..=hi` (closefrom, close_range).
pub fn clear_range(lo: u32, hi: u32) {
    forget_own(lo, hi);
    let hi = (hi as usize).min(MAX_FDS - 1);
    for fd in lo as usize..=hi {
        clear(fd as i32);
    }
}

/// `new` now refers to what `old` refers to (dup family).
pub fn copy(old: i32, new: i32) {
    clear(new);
    let (Some(from), Some(_)) = (slot(old), slot(new)) else {
        return;
    };
    let kind = from.kind.load(Ordering::Acquire);
    if kind == UNUSED {
        return;
    }
    let to = &SLOTS[new as usize];
    to.mode
        .store(from.mode.load(Ordering::Relaxed), Ordering::Relaxed);
    to.size
        .store(from.size.load(Ordering::Relaxed), Ordering::Relaxed);
    to.mtime_ns
        .store(from.mtime_ns.load(Ordering::Relaxed), Ordering::Relaxed);
    to.ino
        .store(from.ino.load(Ordering::Relaxed), Ordering::Relaxed);
    to.owner
        .store(from.owner.load(Ordering::Relaxed), Ordering::Relaxed);
    let n = from.path_len.load(Ordering::Relaxed).min(PATH_CAP);
    // Word by word: `find` dups every directory fd it opens several times.
    for (w_to, w_from) in to.path.iter().zip(&from.path).take(n.div_ceil(8)) {
        w_to.store(w_from.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    to.path_len.store(n, Ordering::Relaxed);
    to.dents_served_1.store(0, Ordering::Relaxed);
    // The old fd may have changed under us (another thread closed and
    // reused it): publish only if it still holds what was copied.
    if from.kind.load(Ordering::Acquire) == kind {
        to.kind.store(kind, Ordering::Release);
    }
}
