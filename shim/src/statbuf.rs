//! `struct stat` / `struct statx` for rift entries: the entry's own mode,
//! size and mtime, its link count, its stable synthetic inode, and the project
//! root's device and owner.

use core::sync::atomic::Ordering;

use vrift_format::RecordHeader;

use crate::state;

/// The fields a rift entry reports (also kept per fd in the fd table):
/// the view's one mapping from a record to `stat` ([`vrift_format::view::Meta`]).
pub use vrift_format::view::Meta;

/// The entry's metadata. A staged file's size and times are its staging
/// file's (one stat, on that path only).
#[inline(always)]
pub fn entry_meta(h: &RecordHeader, target: &[u8]) -> Meta {
    let mut m = Meta::of(h, target);
    if h.is_staged() {
        absorb_staging(&mut m, target);
    }
    m
}

/// [`entry_meta`], or None if the entry is staged and its staging file is
/// gone (sealed since the record was read): the caller looks again.
#[inline(always)]
pub fn entry_meta_now(h: &RecordHeader, target: &[u8]) -> Option<Meta> {
    let mut m = Meta::of(h, target);
    if h.is_staged() && !absorb_staging(&mut m, target) {
        return None;
    }
    Some(m)
}

/// Size and times from the staging file named `name`. Apart, and never
/// inlined: its two path buffers would otherwise be in the frame of every
/// rift stat, whose stack probes then touch (and, in a fresh process, fault
/// in) three stack pages.
#[cold]
#[inline(never)]
fn absorb_staging(m: &mut Meta, name: &[u8]) -> bool {
    let mut path = [0u8; vrift_shim_core::PATH_MAX + 1];
    // The staging file: `<cas>/staging/<name>`.
    let cas = state::table().map(|t| t.cas_root());
    let staged = cas.and_then(|cas| {
        vrift_shim_core::path::named_in_store(cas, vrift_format::STAGING_DIR, name, &mut path)
    });
    let Some(n) = staged else {
        return true;
    };
    let st = crate::sys::stat_raw(&path[..n]).or_else(|| {
        // New credentials cannot reach the private store: the daemon lends
        // an O_PATH fd of the staging file.
        state::creds_changed()
            .then(|| crate::client::stat_staging(name))
            .flatten()
    });
    match st {
        Some(st) => {
            absorb_stat(m, &st);
            true
        }
        None => false,
    }
}

/// Takes size and times from the real file behind a staged entry, and the
/// set-ID bits the kernel cleared on it.
pub fn absorb_stat(m: &mut Meta, st: &libc::stat) {
    m.mode = vrift_format::view::mirrored_set_id(m.mode, st.st_mode);
    m.absorb(
        st.st_size as u64,
        st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        st.st_atime * 1_000_000_000 + st.st_atime_nsec,
        st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
    );
}

pub(crate) fn owner(m: &Meta) -> (u32, u32) {
    m.owner(
        state::UID.load(Ordering::Relaxed),
        state::GID.load(Ordering::Relaxed),
    )
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
    st.st_nlink = 1 + m.links as libc::nlink_t;
    (st.st_uid, st.st_gid) = owner(m);
    st.st_size = m.size as i64;
    st.st_rdev = m.rdev;
    st.st_blksize = 4096;
    st.st_blocks = m.size.div_ceil(512) as i64;
    let (s, ns) = split_ns(m.mtime_ns);
    st.st_mtime = s;
    st.st_mtime_nsec = ns;
    let (s, ns) = split_ns(m.ctime_ns);
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
    stx.stx_nlink = 1 + m.links;
    (stx.stx_uid, stx.stx_gid) = owner(m);
    stx.stx_mode = m.mode as u16;
    stx.stx_ino = m.ino;
    stx.stx_size = m.size;
    stx.stx_rdev_major = libc::major(m.rdev);
    stx.stx_rdev_minor = libc::minor(m.rdev);
    stx.stx_blocks = m.size.div_ceil(512);
    // SAFETY: all-zero is a valid timestamp (padding included).
    let mut ts: libc::statx_timestamp = unsafe { core::mem::zeroed() };
    ts.tv_sec = m.mtime_ns.div_euclid(1_000_000_000);
    ts.tv_nsec = m.mtime_ns.rem_euclid(1_000_000_000) as u32;
    stx.stx_mtime = ts;
    ts.tv_sec = m.ctime_ns.div_euclid(1_000_000_000);
    ts.tv_nsec = m.ctime_ns.rem_euclid(1_000_000_000) as u32;
    stx.stx_ctime = ts;
    ts.tv_sec = m.atime_ns.div_euclid(1_000_000_000);
    ts.tv_nsec = m.atime_ns.rem_euclid(1_000_000_000) as u32;
    stx.stx_atime = ts;
    let dev = state::DEV.load(Ordering::Relaxed);
    stx.stx_dev_major = libc::major(dev);
    stx.stx_dev_minor = libc::minor(dev);
    // The mount a rift entry is on is the project root's (statx01).
    let mnt = root_mount_id();
    if mnt != 0 {
        stx.stx_mnt_id = mnt;
        stx.stx_mask |= libc::STATX_MNT_ID;
    }
}

/// The project root's mount id (`STATX_MNT_ID`), asked of the kernel once
/// per process; 0 if it cannot say.
fn root_mount_id() -> u64 {
    static MNT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    match MNT.load(Ordering::Relaxed) {
        0 => {
            let id = root_mount_id_cold();
            MNT.store(id, Ordering::Relaxed);
            id
        }
        id => id,
    }
}

#[cold]
#[inline(never)]
fn root_mount_id_cold() -> u64 {
    let mut path = [0u8; vrift_shim_core::PATH_MAX + 1];
    let root = state::ROOT.get();
    if root.len() >= path.len() {
        return 0;
    }
    path[..root.len()].copy_from_slice(root);
    // SAFETY: all-zero is a valid `statx`.
    let mut stx: libc::statx = unsafe { core::mem::zeroed() };
    // SAFETY: errno is thread-local; kept for the caller.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: a NUL-terminated path and a valid out-buffer.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_statx,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_STATX_DONT_SYNC,
            libc::STATX_MNT_ID,
            &mut stx as *mut libc::statx
        )
    };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
    if r == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0 {
        stx.stx_mnt_id
    } else {
        0
    }
}
