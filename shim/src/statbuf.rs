//! `struct stat` / `struct statx` for rift entries: the entry's own mode,
//! size and mtime, nlink 1, its stable synthetic inode, and the project
//! root's device and owner.

use core::sync::atomic::Ordering;

use vrift_format::{Kind, RecordHeader};

use crate::state;

/// The fields a rift entry reports (also kept per fd in the fd table).
#[derive(Clone, Copy, Default)]
pub struct Meta {
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub atime_ns: i64,
    pub ino: u64,
    /// `OWNER_INHERIT`: the project root's.
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    /// The entry's metadata. A staged file's size and times are its staging
    /// file's (one stat, on that path only).
    pub fn of(h: &RecordHeader, target: &[u8]) -> Meta {
        let mut m = Meta {
            mode: h.mode,
            size: if h.kind == Kind::Symlink {
                target.len() as u64
            } else {
                h.size
            },
            mtime_ns: h.mtime_ns,
            atime_ns: if h.atime_ns == 0 {
                h.mtime_ns
            } else {
                h.atime_ns
            },
            ino: h.ino,
            uid: h.uid,
            gid: h.gid,
        };
        if h.is_staged() {
            m.absorb_staging(target);
        }
        m
    }

    /// Size and times from the staging file named `name`. Apart, and never
    /// inlined: its two path buffers would otherwise be in the frame of
    /// every rift stat, whose stack probes then touch (and, in a fresh
    /// process, fault in) three stack pages.
    #[cold]
    #[inline(never)]
    fn absorb_staging(&mut self, name: &[u8]) {
        let mut path = [0u8; crate::state::PATH_MAX + 1];
        if let Some(n) = crate::resolve::staging_path(name, &mut path) {
            if let Some(st) = crate::sys::stat_raw(&path[..n]) {
                self.absorb(&st);
            }
        }
    }

    /// Takes size and times from the real file behind a staged entry.
    pub fn absorb(&mut self, st: &libc::stat) {
        self.size = st.st_size as u64;
        self.mtime_ns = st.st_mtime * 1_000_000_000 + st.st_mtime_nsec;
        self.atime_ns = st.st_atime * 1_000_000_000 + st.st_atime_nsec;
    }

    fn owner(&self) -> (u32, u32) {
        let pick = |v: u32, default: &core::sync::atomic::AtomicU32| {
            if v == vrift_format::OWNER_INHERIT {
                default.load(Ordering::Relaxed)
            } else {
                v
            }
        };
        (pick(self.uid, state::UID), pick(self.gid, state::GID))
    }
}

fn split_ns(ns: i64) -> (i64, i64) {
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

pub fn fill_stat(st: &mut libc::stat, m: &Meta) {
    // SAFETY: all-zero is a valid `stat`.
    *st = unsafe { core::mem::zeroed() };
    st.st_dev = state::DEV.load(Ordering::Relaxed);
    st.st_ino = m.ino;
    st.st_mode = m.mode;
    st.st_nlink = 1;
    (st.st_uid, st.st_gid) = m.owner();
    st.st_size = m.size as i64;
    st.st_blksize = 4096;
    st.st_blocks = m.size.div_ceil(512) as i64;
    let (s, ns) = split_ns(m.mtime_ns);
    st.st_mtime = s;
    st.st_mtime_nsec = ns;
    st.st_ctime = s;
    st.st_ctime_nsec = ns;
    let (s, ns) = split_ns(m.atime_ns);
    st.st_atime = s;
    st.st_atime_nsec = ns;
}

pub fn fill_stat64(st: &mut libc::stat64, m: &Meta) {
    // On LP64 glibc, stat64 has the layout of stat.
    const _: () =
        assert!(core::mem::size_of::<libc::stat>() == core::mem::size_of::<libc::stat64>());
    // SAFETY: identical layout (asserted above).
    fill_stat(
        unsafe { &mut *(st as *mut libc::stat64 as *mut libc::stat) },
        m,
    );
}

pub fn fill_statx(stx: &mut libc::statx, m: &Meta) {
    // SAFETY: all-zero is a valid `statx`.
    *stx = unsafe { core::mem::zeroed() };
    stx.stx_mask = libc::STATX_BASIC_STATS;
    stx.stx_blksize = 4096;
    stx.stx_nlink = 1;
    (stx.stx_uid, stx.stx_gid) = m.owner();
    stx.stx_mode = m.mode as u16;
    stx.stx_ino = m.ino;
    stx.stx_size = m.size;
    stx.stx_blocks = m.size.div_ceil(512);
    // SAFETY: all-zero is a valid timestamp (padding included).
    let mut ts: libc::statx_timestamp = unsafe { core::mem::zeroed() };
    ts.tv_sec = m.mtime_ns.div_euclid(1_000_000_000);
    ts.tv_nsec = m.mtime_ns.rem_euclid(1_000_000_000) as u32;
    stx.stx_mtime = ts;
    stx.stx_ctime = ts;
    ts.tv_sec = m.atime_ns.div_euclid(1_000_000_000);
    ts.tv_nsec = m.atime_ns.rem_euclid(1_000_000_000) as u32;
    stx.stx_atime = ts;
    let dev = state::DEV.load(Ordering::Relaxed);
    stx.stx_dev_major = libc::major(dev);
    stx.stx_dev_minor = libc::minor(dev);
}
