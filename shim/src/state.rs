//! Process-wide state, set up once in the constructor: the project root, the
//! mapped hot table (switched when a newer generation supersedes it), the
//! cached current directory and the identity reported for rift entries.
//!
//! Readers never lock: every field is either written once before `READY` is
//! published, or an atomic, or (the cwd) a seqlock-protected word array.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::cell::UnsafeCell;

use vrift_format::table::{Table, TABLE_FILE};

use crate::sys;

pub const PATH_MAX: usize = 4096;

/// Fixed-capacity byte buffer written once during init.
pub struct InitBuf {
    bytes: UnsafeCell<[u8; PATH_MAX]>,
    len: AtomicUsize,
}

// SAFETY: written only in the constructor before READY is set; read after.
unsafe impl Sync for InitBuf {}

impl InitBuf {
    const fn new() -> InitBuf {
        InitBuf {
            bytes: UnsafeCell::new([0; PATH_MAX]),
            len: AtomicUsize::new(0),
        }
    }

    fn set(&self, v: &[u8]) -> bool {
        if v.len() >= PATH_MAX {
            return false;
        }
        // SAFETY: single-threaded constructor.
        unsafe { (&mut *self.bytes.get())[..v.len()].copy_from_slice(v) };
        self.len.store(v.len(), Ordering::Release);
        true
    }

    pub fn get(&self) -> &[u8] {
        let n = self.len.load(Ordering::Acquire);
        // SAFETY: bytes[..n] were written before len was published.
        unsafe { &(&*self.bytes.get())[..n] }
    }
}

static READY: AtomicBool = AtomicBool::new(false);
pub static ROOT: InitBuf = InitBuf::new();
static TABLE_PATH: InitBuf = InitBuf::new();
pub static DEV: AtomicU64 = AtomicU64::new(0);
pub static UID: AtomicU32 = AtomicU32::new(0);
pub static GID: AtomicU32 = AtomicU32::new(0);

/// Mappings of the table, newest last. Old ones are never unmapped: another
/// thread may still be reading one (hot table invariant 3).
const MAX_MAPS: usize = 256;
/// The validated table of each mapping, written once before `CURRENT`
/// publishes it (so a lookup does not re-validate the header).
struct TableSlot(UnsafeCell<core::mem::MaybeUninit<Table<'static>>>);
// SAFETY: each slot is written once, before being published with Release.
unsafe impl Sync for TableSlot {}
static TABLES: [TableSlot; MAX_MAPS] =
    [const { TableSlot(UnsafeCell::new(core::mem::MaybeUninit::uninit())) }; MAX_MAPS];
/// Index of the current mapping + 1 (0: none).
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static REMAPPING: AtomicBool = AtomicBool::new(false);

/// Reads the environment and maps the table. Runs in the constructor.
pub fn init(exe_is_vrift: bool) {
    if exe_is_vrift {
        // vrift's own processes never act through the shim (DESIGN.md §2).
        return;
    }
    let Some(root) = sys::getenv(b"VRIFT_PROJECT_ROOT\0") else {
        return;
    };
    let root = trim_trailing_slash(root);
    if root.first() != Some(&b'/') || !ROOT.set(root) {
        return;
    }
    let mut tp = [0u8; PATH_MAX];
    let suffix = b"/.vrift/";
    let n = root.len() + suffix.len() + TABLE_FILE.len();
    if n >= PATH_MAX {
        return;
    }
    tp[..root.len()].copy_from_slice(root);
    tp[root.len()..root.len() + suffix.len()].copy_from_slice(suffix);
    tp[root.len() + suffix.len()..n].copy_from_slice(TABLE_FILE.as_bytes());
    TABLE_PATH.set(&tp[..n]);
    if let Some(st) = sys::stat_raw(root) {
        DEV.store(st.st_dev, Ordering::Relaxed);
        UID.store(st.st_uid, Ordering::Relaxed);
        GID.store(st.st_gid, Ordering::Relaxed);
    }
    map_table();
    crate::cwd::refresh();
    READY.store(true, Ordering::Release);
}

fn trim_trailing_slash(p: &[u8]) -> &[u8] {
    let mut p = p;
    while p.len() > 1 && p.last() == Some(&b'/') {
        p = &p[..p.len() - 1];
    }
    p
}

/// Maps the current table file as the newest mapping.
fn map_table() {
    let cur = CURRENT.load(Ordering::Acquire);
    if cur >= MAX_MAPS {
        return;
    }
    let Some((ptr, len)) = sys::map_file(TABLE_PATH.get()) else {
        return;
    };
    // SAFETY: the mapping is live, page-aligned, and never unmapped once published.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
    let Ok(table) = Table::new(bytes) else {
        sys::unmap(ptr, len);
        return;
    };
    // SAFETY: slot `cur` is not yet visible to readers (CURRENT <= cur).
    unsafe { (*TABLES[cur].0.get()).write(table) };
    CURRENT.store(cur + 1, Ordering::Release);
}

/// Whether the shim is active in this process.
#[inline]
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// The current table, following a newer generation if one was published.
#[inline]
pub fn table() -> Option<Table<'static>> {
    let t = current_table()?;
    if !t.superseded() {
        return Some(t);
    }
    remap_cold();
    current_table()
}

#[inline]
fn current_table() -> Option<Table<'static>> {
    let cur = CURRENT.load(Ordering::Acquire);
    if cur == 0 {
        return None;
    }
    // SAFETY: slots below CURRENT were written before it was published.
    Some(unsafe { (*TABLES[cur - 1].0.get()).assume_init() })
}

#[cold]
fn remap_cold() {
    if REMAPPING.swap(true, Ordering::Acquire) {
        return; // another thread is switching; keep using the old table meanwhile
    }
    map_table();
    REMAPPING.store(false, Ordering::Release);
}
