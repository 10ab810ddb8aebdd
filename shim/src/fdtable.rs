//! Fds the shim opened on blobs: what `fstat` must report for them, and the
//! view path `/proc/self/fd/N` must read back.
//!
//! A fixed array indexed by fd (untouched pages cost nothing). Each slot is
//! owned by whoever owns the fd; `used` is published last (release).

use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

use crate::statbuf::Meta;

pub const MAX_FDS: usize = 4096;
const PATH_CAP: usize = 224;

struct Slot {
    used: AtomicBool,
    mode: AtomicU32,
    size: AtomicU64,
    mtime_ns: AtomicI64,
    ino: AtomicU64,
    path_len: AtomicUsize,
    path: [AtomicU8; PATH_CAP],
}

static SLOTS: [Slot; MAX_FDS] = [const {
    Slot {
        used: AtomicBool::new(false),
        mode: AtomicU32::new(0),
        size: AtomicU64::new(0),
        mtime_ns: AtomicI64::new(0),
        ino: AtomicU64::new(0),
        path_len: AtomicUsize::new(0),
        path: [const { AtomicU8::new(0) }; PATH_CAP],
    }
}; MAX_FDS];

fn slot(fd: i32) -> Option<&'static Slot> {
    SLOTS.get(usize::try_from(fd).ok()?)
}

/// Records that `fd` shows the rift entry `meta` at view path `path`.
pub fn set(fd: i32, meta: &Meta, path: &[u8]) {
    let Some(s) = slot(fd) else { return };
    s.mode.store(meta.mode, Ordering::Relaxed);
    s.size.store(meta.size, Ordering::Relaxed);
    s.mtime_ns.store(meta.mtime_ns, Ordering::Relaxed);
    s.ino.store(meta.ino, Ordering::Relaxed);
    let n = if path.len() <= PATH_CAP {
        path.len()
    } else {
        0
    };
    for (i, b) in path[..n].iter().enumerate() {
        s.path[i].store(*b, Ordering::Relaxed);
    }
    s.path_len.store(n, Ordering::Relaxed);
    s.used.store(true, Ordering::Release);
}

#[inline]
pub fn get(fd: i32) -> Option<Meta> {
    let s = slot(fd)?;
    if !s.used.load(Ordering::Acquire) {
        return None;
    }
    Some(Meta {
        mode: s.mode.load(Ordering::Relaxed),
        size: s.size.load(Ordering::Relaxed),
        mtime_ns: s.mtime_ns.load(Ordering::Relaxed),
        ino: s.ino.load(Ordering::Relaxed),
    })
}

/// The view path of a tracked fd into `out`; its length (0: unknown).
pub fn path(fd: i32, out: &mut [u8]) -> usize {
    let Some(s) = slot(fd) else { return 0 };
    if !s.used.load(Ordering::Acquire) {
        return 0;
    }
    let n = s.path_len.load(Ordering::Relaxed).min(out.len());
    for (i, o) in out[..n].iter_mut().enumerate() {
        *o = s.path[i].load(Ordering::Relaxed);
    }
    n
}

#[inline]
pub fn clear(fd: i32) {
    if let Some(s) = slot(fd) {
        if s.used.load(Ordering::Relaxed) {
            s.used.store(false, Ordering::Release);
        }
    }
}

/// `new` now refers to what `old` refers to (dup family).
pub fn copy(old: i32, new: i32) {
    clear(new);
    if let (Some(meta), Some(_)) = (get(old), slot(new)) {
        let mut p = [0u8; PATH_CAP];
        let n = path(old, &mut p);
        set(new, &meta, &p[..n]);
    }
}
