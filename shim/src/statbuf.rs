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
    pub ino: u64,
}

impl Meta {
    pub fn of(h: &RecordHeader, target: &[u8]) -> Meta {
        Meta {
            mode: h.mode,
            size: if h.kind == Kind::Symlink {
                target.len() as u64
            } else {
                h.size
            },
            mtime_ns: h.mtime_ns,
            ino: h.ino,
        }
    }
}

pub fn fill_stat(st: &mut libc::stat, m: &Meta) {
    // SAFETY: all-zero is a valid `stat`.
    *st = unsafe { core::mem::zeroed() };
    st.st_dev = state::DEV.load(Ordering::Relaxed);
    st.st_ino = m.ino;
    st.st_mode = m.mode;
    st.st_nlink = 1;
    st.st_uid = state::UID.load(Ordering::Relaxed);
    st.st_gid = state::GID.load(Ordering::Relaxed);
    st.st_size = m.size as i64;
    st.st_blksize = 4096;
    st.st_blocks = m.size.div_ceil(512) as i64;
    let (s, ns) = (
        m.mtime_ns.div_euclid(1_000_000_000),
        m.mtime_ns.rem_euclid(1_000_000_000),
    );
    st.st_mtime = s;
    st.st_mtime_nsec = ns;
    st.st_atime = s;
    st.st_atime_nsec = ns;
    st.st_ctime = s;
    st.st_ctime_nsec = ns;
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
    stx.stx_uid = state::UID.load(Ordering::Relaxed);
    stx.stx_gid = state::GID.load(Ordering::Relaxed);
    stx.stx_mode = m.mode as u16;
    stx.stx_ino = m.ino;
    stx.stx_size = m.size;
    stx.stx_blocks = m.size.div_ceil(512);
    // SAFETY: all-zero is a valid timestamp (padding included).
    let mut ts: libc::statx_timestamp = unsafe { core::mem::zeroed() };
    ts.tv_sec = m.mtime_ns.div_euclid(1_000_000_000);
    ts.tv_nsec = m.mtime_ns.rem_euclid(1_000_000_000) as u32;
    stx.stx_atime = ts;
    stx.stx_mtime = ts;
    stx.stx_ctime = ts;
    let dev = state::DEV.load(Ordering::Relaxed);
    stx.stx_dev_major = libc::major(dev);
    stx.stx_dev_minor = libc::minor(dev);
}
