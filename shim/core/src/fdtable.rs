//! The fd table's bookkeeping: per fd, what `fstat` must report and the
//! path `/proc/self/fd/N` must read back (fds on rift entries), or the
//! absolute path (directory fds). The shim keeps one [`FdTable`] in a
//! static and adds what needs the kernel or the view (`shim/src/fdtable.rs`).
//!
//! A fixed array indexed by fd (untouched pages cost nothing). Each slot is
//! owned by whoever owns the fd; `kind` is published last (release).

use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use vrift_format::view::Meta;

pub const MAX_FDS: usize = 4096;
/// The longest path a slot keeps.
pub const PATH_CAP: usize = 224;
const PATH_WORDS: usize = PATH_CAP / 8;

/// What a slot holds.
pub type Kind = u8;
pub const UNUSED: Kind = 0;
/// An fd on a blob, showing a rift entry.
pub const ENTRY: Kind = 1;
/// A directory fd whose absolute path is known.
pub const DIR: Kind = 2;
/// An fd on a staging file (a rift file being written): `fstat` takes size
/// and times from the fd itself, the rest from the entry.
pub const STAGED: Kind = 3;
/// An O_TMPFILE fd in the domain; its path slot holds the staging name.
pub const TMPFILE: Kind = 4;

struct Slot {
    kind: AtomicU8,
    /// Hard links: the entry's other names (`st_nlink` - 1).
    links: AtomicU32,
    mode: AtomicU32,
    size: AtomicU64,
    mtime_ns: AtomicI64,
    atime_ns: AtomicI64,
    ctime_ns: AtomicI64,
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

/// One slot per fd below [`MAX_FDS`]; fds outside are never tracked.
pub struct FdTable {
    slots: [Slot; MAX_FDS],
}

impl Default for FdTable {
    fn default() -> FdTable {
        FdTable::new()
    }
}

impl FdTable {
    pub const fn new() -> FdTable {
        FdTable {
            slots: [const {
                Slot {
                    kind: AtomicU8::new(UNUSED),
                    links: AtomicU32::new(0),
                    mode: AtomicU32::new(0),
                    size: AtomicU64::new(0),
                    mtime_ns: AtomicI64::new(0),
                    atime_ns: AtomicI64::new(0),
                    ctime_ns: AtomicI64::new(0),
                    ino: AtomicU64::new(0),
                    owner: AtomicU64::new(0),
                    path_len: AtomicUsize::new(0),
                    path: [const { AtomicU64::new(0) }; PATH_WORDS],
                    dents_served_1: AtomicI64::new(0),
                    dents_eof: AtomicI64::new(0),
                }
            }; MAX_FDS],
        }
    }

    #[inline]
    fn slot(&self, fd: i32) -> Option<&Slot> {
        self.slots.get(usize::try_from(fd).ok()?)
    }

    /// What `fd`'s slot holds ([`UNUSED`] for an fd out of range).
    #[inline]
    pub fn kind(&self, fd: i32) -> Kind {
        self.slot(fd)
            .map_or(UNUSED, |s| s.kind.load(Ordering::Acquire))
    }

    /// Records `fd` as `kind`, showing `meta`, with `path` (kept empty if
    /// longer than [`PATH_CAP`]).
    pub fn store(&self, fd: i32, kind: Kind, meta: &Meta, path: &[u8]) {
        let Some(s) = self.slot(fd) else { return };
        s.kind.store(UNUSED, Ordering::Release);
        s.mode.store(meta.mode, Ordering::Relaxed);
        s.links.store(meta.links, Ordering::Relaxed);
        // A special file shows size 0: its slot keeps its rdev instead.
        let special = vrift_format::is_special_type(meta.mode);
        s.size.store(
            if special { meta.rdev } else { meta.size },
            Ordering::Relaxed,
        );
        s.mtime_ns.store(meta.mtime_ns, Ordering::Relaxed);
        s.atime_ns.store(meta.atime_ns, Ordering::Relaxed);
        s.ctime_ns.store(meta.ctime_ns, Ordering::Relaxed);
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

    /// What `fstat(fd)` must report if `fd` shows a rift entry, and
    /// whether it is a staging file (whose size and times the caller takes
    /// from the fd itself).
    #[inline]
    pub fn meta(&self, fd: i32) -> Option<(Meta, bool)> {
        let s = self.slot(fd)?;
        let kind = s.kind.load(Ordering::Acquire);
        if kind != ENTRY && kind != STAGED && kind != TMPFILE {
            return None;
        }
        let owner = s.owner.load(Ordering::Relaxed);
        let mode = s.mode.load(Ordering::Relaxed);
        let size = s.size.load(Ordering::Relaxed);
        let special = vrift_format::is_special_type(mode);
        let m = Meta {
            mode,
            size: if special { 0 } else { size },
            rdev: if special { size } else { 0 },
            mtime_ns: s.mtime_ns.load(Ordering::Relaxed),
            atime_ns: s.atime_ns.load(Ordering::Relaxed),
            ctime_ns: s.ctime_ns.load(Ordering::Relaxed),
            ino: s.ino.load(Ordering::Relaxed),
            uid: (owner >> 32) as u32,
            gid: owner as u32,
            links: s.links.load(Ordering::Relaxed),
        };
        Some((m, kind == STAGED || kind == TMPFILE))
    }

    /// Sets the permission bits `fd` reports (after fchmod; the file type
    /// stays). False if `fd` is out of range.
    pub fn set_mode(&self, fd: i32, mode: u32) -> bool {
        let Some(s) = self.slot(fd) else { return false };
        let old = s.mode.load(Ordering::Relaxed);
        s.mode
            .store((old & libc::S_IFMT) | (mode & 0o7777), Ordering::Relaxed);
        true
    }

    /// After a successful `fchown` of `fd`'s entry: its new owner
    /// (`u32::MAX` keeps one), and the set-user-ID bit (set-group-ID too
    /// when group execute is set) cleared as the daemon clears it on a
    /// regular file. False if `fd` is out of range.
    pub fn set_owner(&self, fd: i32, uid: u32, gid: u32) -> bool {
        let Some(s) = self.slot(fd) else { return false };
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
        true
    }

    /// Sets the times `fd` reports (after a change its entry's record
    /// holds: fchmod, fchown, futimens), if it still shows inode `ino`.
    pub fn set_times(&self, fd: i32, ino: u64, meta: &Meta) {
        if let Some(s) = self.slot(fd) {
            if s.ino.load(Ordering::Relaxed) != ino {
                return;
            }
            s.mtime_ns.store(meta.mtime_ns, Ordering::Relaxed);
            s.atime_ns.store(meta.atime_ns, Ordering::Relaxed);
            s.ctime_ns.store(meta.ctime_ns, Ordering::Relaxed);
        }
    }

    /// Where raw directory reads of `fd` stand: (rift children served or
    /// -1, the kernel's end offset).
    pub fn dents(&self, fd: i32) -> (i64, i64) {
        self.slot(fd).map_or((-1, 0), |s| {
            (
                s.dents_served_1.load(Ordering::Relaxed) - 1,
                s.dents_eof.load(Ordering::Relaxed),
            )
        })
    }

    pub fn set_dents(&self, fd: i32, served: i64, eof: i64) {
        if let Some(s) = self.slot(fd) {
            s.dents_eof.store(eof, Ordering::Relaxed);
            s.dents_served_1.store(served + 1, Ordering::Relaxed);
        }
    }

    /// Copies the path of `fd`, if its slot holds `kind`, into raw memory
    /// of `cap` bytes; its length (0: none, or longer than `cap`).
    ///
    /// # Safety
    /// `out` must be valid for writes of `cap` bytes.
    #[inline]
    pub unsafe fn copy_path(&self, fd: i32, kind: Kind, out: *mut u8, cap: usize) -> usize {
        let Some(s) = self.slot(fd) else { return 0 };
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

    /// [`copy_path`](Self::copy_path) into a slice.
    #[inline]
    pub fn path_into(&self, fd: i32, kind: Kind, out: &mut [u8]) -> usize {
        // SAFETY: `out` is valid for its length.
        unsafe { self.copy_path(fd, kind, out.as_mut_ptr(), out.len()) }
    }

    /// Forgets `fd`.
    #[inline]
    pub fn clear(&self, fd: i32) {
        if let Some(s) = self.slot(fd) {
            if s.kind.load(Ordering::Relaxed) != UNUSED {
                s.kind.store(UNUSED, Ordering::Release);
            }
        }
    }

    /// Forgets fds `lo..=hi`.
    pub fn clear_range(&self, lo: u32, hi: u32) {
        let hi = (hi as usize).min(MAX_FDS - 1);
        for fd in lo as usize..=hi {
            self.clear(fd as i32);
        }
    }

    /// `new` now refers to what `old` refers to (dup family).
    pub fn copy(&self, old: i32, new: i32) {
        self.clear(new);
        let (Some(from), Some(to)) = (self.slot(old), self.slot(new)) else {
            return;
        };
        let kind = from.kind.load(Ordering::Acquire);
        if kind == UNUSED {
            return;
        }
        to.mode
            .store(from.mode.load(Ordering::Relaxed), Ordering::Relaxed);
        to.size
            .store(from.size.load(Ordering::Relaxed), Ordering::Relaxed);
        to.mtime_ns
            .store(from.mtime_ns.load(Ordering::Relaxed), Ordering::Relaxed);
        to.ctime_ns
            .store(from.ctime_ns.load(Ordering::Relaxed), Ordering::Relaxed);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    static T: FdTable = FdTable::new();

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            size: 1234,
            rdev: 0x0801,
            mtime_ns: 5_000_000_007,
            atime_ns: 1,
            ctime_ns: 6_000_000_009,
            ino: 77,
            uid: 1000,
            gid: 100,
            links: 2,
        }
    }

    fn path_of(fd: i32, kind: Kind) -> Vec<u8> {
        let mut out = [0u8; PATH_CAP];
        let n = T.path_into(fd, kind, &mut out);
        out[..n].to_vec()
    }

    #[test]
    fn an_entry_reads_back_what_was_stored() {
        let m = meta(libc::S_IFREG | 0o644);
        T.store(3, ENTRY, &m, b"/p/src/a.c");
        let (got, staged) = T.meta(3).unwrap();
        assert!(!staged);
        assert_eq!(
            (got.mode, got.size, got.rdev, got.mtime_ns, got.ctime_ns),
            (m.mode, 1234, 0, m.mtime_ns, m.ctime_ns)
        );
        assert_eq!(
            (got.atime_ns, got.ino, got.uid, got.gid),
            (1, 77, 1000, 100)
        );
        assert_eq!(path_of(3, ENTRY), b"/p/src/a.c");
        assert_eq!(path_of(3, DIR), b"");
        T.store(3, STAGED, &m, b"/p/src/a.c");
        assert!(T.meta(3).unwrap().1);
    }

    #[test]
    fn a_special_file_keeps_its_rdev_and_shows_size_zero() {
        T.store(4, ENTRY, &meta(libc::S_IFCHR | 0o600), b"/p/dev/null");
        let (got, _) = T.meta(4).unwrap();
        assert_eq!((got.size, got.rdev), (0, 0x0801));
    }

    #[test]
    fn paths_of_every_length_up_to_the_cap_round_trip() {
        let long: Vec<u8> = (0..=PATH_CAP + 1).map(|i| b'a' + (i % 26) as u8).collect();
        for n in 0..=PATH_CAP {
            T.store(5, DIR, &Meta::default(), &long[..n]);
            assert_eq!(path_of(5, DIR), &long[..n], "length {n}");
        }
        // Longer than the cap: kept without a path.
        T.store(5, DIR, &Meta::default(), &long[..PATH_CAP + 1]);
        assert_eq!(T.kind(5), DIR);
        assert_eq!(path_of(5, DIR), b"");
        // A buffer too small for the path gets nothing, not a prefix.
        T.store(5, DIR, &Meta::default(), b"/abcdefghij");
        let mut small = [0u8; 4];
        assert_eq!(T.path_into(5, DIR, &mut small), 0);
    }

    #[test]
    fn fds_out_of_range_are_never_tracked() {
        for fd in [-1, MAX_FDS as i32, i32::MAX] {
            T.store(fd, ENTRY, &meta(libc::S_IFREG), b"/x");
            assert_eq!(T.kind(fd), UNUSED);
            assert!(T.meta(fd).is_none());
            assert!(!T.set_mode(fd, 0o600));
            assert_eq!(T.dents(fd), (-1, 0));
            T.clear(fd);
            T.copy(fd, 6);
        }
        assert_eq!(T.kind(6), UNUSED);
    }

    #[test]
    fn clear_and_clear_range_forget() {
        for fd in 10..20 {
            T.store(fd, DIR, &Meta::default(), b"/d");
        }
        T.clear(10);
        assert_eq!(T.kind(10), UNUSED);
        T.clear_range(12, 15);
        let kinds: Vec<Kind> = (10..20).map(|fd| T.kind(fd)).collect();
        assert_eq!(kinds, [0, 2, 0, 0, 0, 0, 2, 2, 2, 2]);
        // A range past the table stops at its end.
        T.store(MAX_FDS as i32 - 1, DIR, &Meta::default(), b"/d");
        T.clear_range(MAX_FDS as u32 - 1, u32::MAX);
        assert_eq!(T.kind(MAX_FDS as i32 - 1), UNUSED);
    }

    #[test]
    fn a_dup_copies_everything_but_the_directory_reads() {
        let m = meta(libc::S_IFREG | 0o755);
        T.store(30, ENTRY, &m, b"/p/bin/tool");
        T.set_dents(30, 3, 99);
        T.store(31, DIR, &Meta::default(), b"/elsewhere");
        T.copy(30, 31);
        assert_eq!(T.kind(31), ENTRY);
        assert_eq!(path_of(31, ENTRY), b"/p/bin/tool");
        let (a, b) = (T.meta(30).unwrap().0, T.meta(31).unwrap().0);
        assert_eq!(
            (a.mode, a.size, a.ino, a.uid),
            (b.mode, b.size, b.ino, b.uid)
        );
        assert_eq!(T.dents(31).0, -1);
        // Dup of an untracked fd untracks the target.
        T.copy(32, 31);
        assert_eq!(T.kind(31), UNUSED);
    }

    #[test]
    fn directory_reads_start_unserved() {
        T.store(40, DIR, &Meta::default(), b"/p");
        assert_eq!(T.dents(40), (-1, 0));
        T.set_dents(40, 0, 512);
        assert_eq!(T.dents(40), (0, 512));
        T.store(40, DIR, &Meta::default(), b"/p");
        assert_eq!(T.dents(40).0, -1);
    }

    #[test]
    fn fchmod_and_fchown_change_what_fstat_reports() {
        T.store(50, ENTRY, &meta(libc::S_IFREG | 0o6755), b"/p/x");
        assert!(T.set_mode(50, 0o100_640));
        assert_eq!(T.meta(50).unwrap().0.mode, libc::S_IFREG | 0o640);
        T.set_mode(50, 0o4755);
        assert!(T.set_owner(50, u32::MAX, 7));
        let got = T.meta(50).unwrap().0;
        assert_eq!((got.uid, got.gid), (1000, 7));
        assert_eq!(
            got.mode,
            vrift_format::view::chown_mode(libc::S_IFREG | 0o4755)
        );
        assert_eq!(got.mode & libc::S_ISUID, 0);
        let mut later = meta(0);
        (later.atime_ns, later.mtime_ns, later.ctime_ns) = (40, 41, 42);
        T.set_times(50, 77, &later);
        let got = T.meta(50).unwrap().0;
        assert_eq!((got.atime_ns, got.mtime_ns, got.ctime_ns), (40, 41, 42));
        // Another inode's record (the name was renamed over): not taken.
        later.ctime_ns = 43;
        T.set_times(50, 78, &later);
        assert_eq!(T.meta(50).unwrap().0.ctime_ns, 42);
    }
}
