//! Process-wide state, set up once in the constructor: the project root, the
//! mapped hot table (switched when a newer generation supersedes it), the
//! cached current directory and the identity reported for rift entries.
//!
//! Readers never lock: every field is either written once before `READY` is
//! published, or an atomic, or (the cwd) a seqlock-protected word array.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use vrift_format::table::{Table, TABLE_FILE};

use crate::sys;

pub const PATH_MAX: usize = 4096;

/// The project root, followed in the same buffer by the rest of the table's
/// path and a NUL (`ROOT/.vrift/view.table`). Written once in the
/// constructor; the length comes first so that setting it touches the same
/// page as the bytes (every exec pays a page fault per page written).
#[repr(C)]
pub struct RootBuf {
    len: AtomicUsize,
    bytes: UnsafeCell<[u8; PATH_MAX]>,
}

// SAFETY: written only in the constructor before READY is set; read after.
unsafe impl Sync for RootBuf {}

const TABLE_SUFFIX: &[u8] = b"/.vrift/";

impl RootBuf {
    const fn new() -> RootBuf {
        RootBuf {
            len: AtomicUsize::new(0),
            bytes: UnsafeCell::new([0; PATH_MAX]),
        }
    }

    /// Stores `root` and the table path after it; false if too long.
    fn set(&self, root: &[u8]) -> bool {
        let n = root.len() + TABLE_SUFFIX.len() + TABLE_FILE.len();
        if n >= PATH_MAX {
            return false;
        }
        // SAFETY: single-threaded constructor; n + 1 <= PATH_MAX.
        let b = unsafe { &mut *self.bytes.get() };
        b[..root.len()].copy_from_slice(root);
        b[root.len()..root.len() + TABLE_SUFFIX.len()].copy_from_slice(TABLE_SUFFIX);
        b[root.len() + TABLE_SUFFIX.len()..n].copy_from_slice(TABLE_FILE.as_bytes());
        b[n] = 0;
        self.len.store(root.len(), Ordering::Release);
        true
    }

    pub fn get(&self) -> &[u8] {
        let n = self.len.load(Ordering::Acquire);
        // SAFETY: bytes[..n] were written before len was published.
        unsafe { &(&*self.bytes.get())[..n] }
    }

    /// `ROOT/.vrift/view.table` (only meaningful once the root is set).
    fn table_path(&self) -> &CStr {
        // SAFETY: set() wrote a NUL after the table path; an unset buffer
        // is all zeros, i.e. the empty string.
        unsafe { CStr::from_ptr(self.bytes.get() as *const libc::c_char) }
    }
}

/// Mappings of the table, newest last. Old ones are never unmapped: another
/// thread may still be reading one (hot table invariant 3).
const MAX_MAPS: usize = 256;
/// The validated table of each mapping, written once before `CURRENT`
/// publishes it (so a lookup does not re-validate the header).
struct TableSlot(UnsafeCell<core::mem::MaybeUninit<Table<'static>>>);
// SAFETY: each slot is written once, before being published with Release.
unsafe impl Sync for TableSlot {}
impl TableSlot {
    const fn empty() -> TableSlot {
        TableSlot(UnsafeCell::new(core::mem::MaybeUninit::uninit()))
    }
}

/// Everything the constructor writes, in one place: each page written costs
/// every exec a page fault, so the flags, the first table slot, the cwd
/// cache and the root share two pages instead of spreading over five.
#[repr(C, align(4096))]
struct Startup {
    ready: AtomicBool,
    remapping: AtomicBool,
    /// Index of the current mapping + 1 (0: none).
    current: AtomicUsize,
    dev: AtomicU64,
    uid: AtomicU32,
    gid: AtomicU32,
    first_table: TableSlot,
    cwd: crate::cwd::Cache,
    root: RootBuf,
    more_tables: [TableSlot; MAX_MAPS - 1],
}

static STARTUP: Startup = Startup {
    ready: AtomicBool::new(false),
    remapping: AtomicBool::new(false),
    current: AtomicUsize::new(0),
    dev: AtomicU64::new(0),
    uid: AtomicU32::new(0),
    gid: AtomicU32::new(0),
    first_table: TableSlot::empty(),
    cwd: crate::cwd::Cache::new(),
    root: RootBuf::new(),
    more_tables: [const { TableSlot::empty() }; MAX_MAPS - 1],
};

static READY: &AtomicBool = &STARTUP.ready;
static REMAPPING: &AtomicBool = &STARTUP.remapping;
static CURRENT: &AtomicUsize = &STARTUP.current;
pub static ROOT: &RootBuf = &STARTUP.root;
pub static DEV: &AtomicU64 = &STARTUP.dev;
pub static UID: &AtomicU32 = &STARTUP.uid;
pub static GID: &AtomicU32 = &STARTUP.gid;
pub(crate) static CWD: &crate::cwd::Cache = &STARTUP.cwd;

fn table_slot(i: usize) -> &'static TableSlot {
    match i {
        0 => &STARTUP.first_table,
        _ => &STARTUP.more_tables[i - 1],
    }
}

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
    let Some((ptr, len)) = sys::map_file(ROOT.table_path()) else {
        return;
    };
    // SAFETY: the mapping is live, page-aligned, and never unmapped once published.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
    let Ok(table) = Table::new(bytes) else {
        sys::unmap(ptr, len);
        return;
    };
    // SAFETY: slot `cur` is not yet visible to readers (CURRENT <= cur).
    unsafe { (*table_slot(cur).0.get()).write(table) };
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
    Some(unsafe { (*table_slot(cur - 1).0.get()).assume_init() })
}

#[cold]
fn remap_cold() {
    if REMAPPING.swap(true, Ordering::Acquire) {
        return; // another thread is switching; keep using the old table meanwhile
    }
    map_table();
    REMAPPING.store(false, Ordering::Release);
}
