//! What the shim knows about fds: for fds it opened on blobs, what `fstat`
//! must report and the view path `/proc/self/fd/N` must read back; for
//! directory fds, their absolute path, so `openat(dirfd, …)` resolves without
//! asking the kernel (`find` and fts walk with dirfds).
//!
//! A fixed array indexed by fd (untouched pages cost nothing). Each slot is
//! owned by whoever owns the fd; `kind` is published last (release). Every
//! way an fd can close (close, fclose, closedir, closefrom, close_range, dup2
//! over it) clears its slot, and every successful open overwrites it.

use core::sync::atomic::{AtomicI32, Ordering};

pub use vrift_shim_core::fdtable::MAX_FDS;
use vrift_shim_core::fdtable::{FdTable, DIR, ENTRY, PATH_CAP, STAGED, TMPFILE};

use crate::statbuf::Meta;

/// The table itself (its bookkeeping, unit-tested, is
/// `vrift_shim_core::fdtable`): all zeros, so `.bss`.
static TABLE: FdTable = FdTable::new();

/// Records that `fd` shows the rift entry `meta` at view path `path`.
pub fn set(fd: i32, meta: &Meta, path: &[u8]) {
    TABLE.store(fd, ENTRY, meta, path);
}

/// Records that `fd` is a staging file showing the entry `meta` at `path`.
pub fn set_staged(fd: i32, meta: &Meta, path: &[u8]) {
    TABLE.store(fd, STAGED, meta, path);
}

/// Records an O_TMPFILE fd and its staging file's name (for `linkat`).
pub fn set_tmpfile(fd: i32, meta: &Meta, name: &[u8]) {
    TABLE.store(fd, TMPFILE, meta, name);
}

/// Whether `fd` is an O_TMPFILE file made in the domain.
pub fn is_tmpfile(fd: i32) -> bool {
    TABLE.kind(fd) == TMPFILE
}

/// The staging name of an O_TMPFILE fd into `out`; its length (0: none).
pub fn tmpfile_name(fd: i32, out: &mut [u8]) -> usize {
    TABLE.path_into(fd, TMPFILE, out)
}

/// Whether `fd` is a staging file of a rift entry.
pub fn is_staged(fd: i32) -> bool {
    let k = TABLE.kind(fd);
    k == STAGED || k == TMPFILE
}

/// After `fchmod`, `fchown` or `futimens` of a tracked fd's entry: the
/// times the daemon gave the entry (its record, published before the
/// daemon answered), if the name still holds the fd's inode.
#[cold]
pub fn refresh_times(fd: i32) {
    let mut p = [0u8; PATH_CAP];
    let n = path(fd, &mut p);
    let rel = vrift_format::pathnorm::domain_rel(&p[..n], crate::state::ROOT.get());
    let found = rel.and_then(|rel| crate::state::table()?.lookup(rel));
    if let Some(vrift_format::RecordRef::Entry { header, target }) = found {
        TABLE.set_times(fd, header.ino, &Meta::of(&header, target));
    }
}

/// Updates the mode a tracked fd reports (after fchmod).
pub fn set_mode(fd: i32, mode: u32) {
    if TABLE.set_mode(fd, mode) {
        refresh_times(fd);
    }
}

/// After a successful `fchown` of `fd`'s entry: its new owner (`u32::MAX`
/// keeps one), and the set-user-ID bit (set-group-ID too when group
/// execute is set) cleared as the daemon clears it on a regular file.
pub fn set_owner(fd: i32, uid: u32, gid: u32) {
    if TABLE.set_owner(fd, uid, gid) {
        refresh_times(fd);
    }
}

/// Records that `fd` is the directory at absolute path `path` (if it fits).
pub fn set_dir(fd: i32, path: &[u8]) {
    if path.len() <= PATH_CAP {
        TABLE.store(fd, DIR, &Meta::default(), path);
    } else {
        clear(fd);
    }
}

/// Whether `fd` is a directory fd whose path the shim knows (one load).
#[inline]
pub fn is_dir(fd: i32) -> bool {
    TABLE.kind(fd) == DIR
}

/// Where raw directory reads of `fd` stand: (rift children served or -1,
/// the kernel's end offset).
pub fn dents(fd: i32) -> (i64, i64) {
    TABLE.dents(fd)
}

pub fn set_dents(fd: i32, served: i64, eof: i64) {
    TABLE.set_dents(fd, served, eof);
}

/// What `fstat(fd)` must report, if `fd` shows a rift entry. For a staged
/// fd, size and times come from the fd (the caller's real fstat).
#[inline]
pub fn get(fd: i32) -> Option<Meta> {
    let (mut m, staged) = TABLE.meta(fd)?;
    if staged {
        // SAFETY: all-zero is a valid stat; fstat on the caller's fd.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fstat of the caller's fd into a valid buffer.
        if unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } == 0 {
            crate::statbuf::absorb_stat(&mut m, &st);
        }
        // A file being written may have gained or lost names since it was
        // opened (hard links): its record says. (A sealed file's fd
        // reports the count it had when opened: that fstat stays free.)
        if let Some(links) = current_links(fd) {
            m.links = links;
        }
    }
    Some(m)
}

/// The link count of `fd`'s entry as its record has it now.
#[cold]
#[inline(never)]
fn current_links(fd: i32) -> Option<u32> {
    let mut p = [0u8; PATH_CAP];
    let n = path(fd, &mut p);
    let rel = vrift_format::pathnorm::domain_rel(&p[..n], crate::state::ROOT.get())?;
    match crate::state::table()?.lookup(rel)? {
        vrift_format::RecordRef::Entry { header, .. } => Some(header.links),
        _ => None,
    }
}

/// The view path of a rift-entry fd (staged or not) into `out`; its length
/// (0: unknown).
pub fn path(fd: i32, out: &mut [u8]) -> usize {
    let n = TABLE.path_into(fd, ENTRY, out);
    if n > 0 {
        return n;
    }
    TABLE.path_into(fd, STAGED, out)
}

/// The absolute path of a directory fd into raw memory of `cap` bytes;
/// `None` if the shim does not know it.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes.
#[inline]
pub unsafe fn dir_path_into(fd: i32, out: *mut u8, cap: usize) -> Option<usize> {
    // SAFETY: the caller's contract.
    match unsafe { TABLE.copy_path(fd, DIR, out, cap) } {
        0 => None,
        n => Some(n),
    }
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
    TABLE.clear(fd);
}

/// Clears fds `lo..=hi` (closefrom, close_range).
pub fn clear_range(lo: u32, hi: u32) {
    forget_own(lo, hi);
    TABLE.clear_range(lo, hi);
}

/// `new` now refers to what `old` refers to (dup family).
pub fn copy(old: i32, new: i32) {
    if new >= 0 {
        forget_own(new as u32, new as u32);
    }
    TABLE.copy(old, new);
}
