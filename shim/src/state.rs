//! Process-wide state: the project root (set in the constructor), and,
//! set up on first need, the mapped hot table (switched when a newer
//! generation supersedes it), the cached current directory and the
//! identity reported for rift entries.
//!
//! The constructor only copies the root: a process that never touches the
//! domain (`true`, `sed` on a pipe, a shell's `[`) pays no syscall and no
//! page fault for the table or the cwd. The first lookup maps the table
//! ([`table`]) and the first relative path reads the cwd (`cwd::read_into`).
//!
//! Readers never lock: every field is either written once before it is
//! published, or an atomic, or (the cwd) a seqlock-protected word array.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use vrift_format::table::{Table, TABLE_FILE};
use vrift_shim_core::path::trim_trailing_slash;
use vrift_shim_core::verified::DirCache;
use vrift_shim_core::PATH_MAX;

use crate::sys;

/// How many variables `exec::KEEP` names (the environment an inception
/// must keep, captured in the constructor's page: [`CAPTURED_ENV`]).
pub const KEPT_VARS: usize = 7;

/// Spins before a reader or writer stops waiting for another thread's
/// update (a safety net: updates take one getcwd, or one mapping). When the
/// writer is this very thread — interrupted by a signal whose handler
/// resolves a path or calls chdir, which is async-signal-safe — nobody
/// waits at all.
pub(crate) const PATIENCE: u32 = 1 << 12;

/// The cwd cache's counters (see `cwd`). They live in the constructor's
/// page ([`CWD`], before the root), which the constructor has already
/// written: the first relative path reads them without a page fault, where
/// a page of their own cost two (a read maps the zero page, the refresh's
/// write then copies it).
#[repr(C)]
pub(crate) struct CwdCounters {
    pub(crate) seq: AtomicU64,
    pub(crate) len: AtomicUsize,
    /// The thread id of the writer (0: none).
    pub(crate) writer: AtomicU32,
    /// A refresh could not take the writer's place (see `cwd::refresh`):
    /// the cached path may be stale, so readers ask the kernel.
    pub(crate) stale: AtomicBool,
}

impl CwdCounters {
    const fn new() -> CwdCounters {
        CwdCounters {
            seq: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            writer: AtomicU32::new(0),
            stale: AtomicBool::new(false),
        }
    }
}

/// The cached cwd, 8 bytes per word ([`CWD_WORDS`]).
pub(crate) type CwdWords = [AtomicU64; PATH_MAX / 8];

/// Directories found to lead nowhere else in the domain: no physical
/// symlink on the way, or one that leaves the domain (see
/// `resolve::physical_fallback`); the root and the cwd as getcwd returned
/// it are marked as they are learned. A directory later replaced by a
/// symlink into the domain is not noticed while its entry stays (the price
/// of not asking the kernel again on every miss).
pub static VERIFIED: DirCache = DirCache::new();

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

const TABLE_SUFFIX: &[u8] = concat!("/", vrift_format::state_dir!(), "/").as_bytes();

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
        // SAFETY: n + 1 <= PATH_MAX. Written by the constructor, or by a
        // shell switching projects between prompts (READY false meanwhile).
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

/// Everything the constructor writes, in one place and first: each page
/// written costs every exec a page fault, so the flags, the captured
/// environment and a root of up to ~4000 bytes share one page. The cwd
/// cache's counters are there too: the first relative path reads them
/// before anything writes them. What the first lookup writes (the first
/// table slot, the cwd path) follows.
#[repr(C, align(4096))]
struct Startup {
    ready: AtomicBool,
    remapping: AtomicBool,
    /// The table's first mapping: [`UNTRIED`], [`MAPPING`] or [`TRIED`].
    activation: AtomicU8,
    /// Index of the current mapping + 1 (0: none).
    current: AtomicUsize,
    dev: AtomicU64,
    uid: AtomicU32,
    gid: AtomicU32,
    captured_env: [AtomicUsize; KEPT_VARS],
    /// The value of `VRIFT_EXE` in the initial environment (0: none).
    exe: AtomicUsize,
    merged_streams: AtomicUsize,
    /// Mappings made so far (`CURRENT` is the one in use + 1; a shell that
    /// switches projects starts again from none without reusing a slot).
    mapped: AtomicUsize,
    /// Started by a shell hook (`VRIFT_SHELL_VIEW`): the shell switches the
    /// view on and off itself (see `resolve::shell_control`).
    shell: AtomicBool,
    /// The process called a set*id function in the view (`creds`): lookups
    /// of rift entries check the search permission the kernel would.
    creds_changed: AtomicBool,
    /// The table exists but this process may not read it (it runs as
    /// another uid than the project's owner).
    table_denied: AtomicBool,
    cwd: CwdCounters,
    root: RootBuf,
    first_table: TableSlot,
    cwd_words: CwdWords,
    more_tables: [TableSlot; MAX_MAPS - 1],
}

const UNTRIED: u8 = 0;
const MAPPING: u8 = 1;
const TRIED: u8 = 2;

static STARTUP: Startup = Startup {
    ready: AtomicBool::new(false),
    remapping: AtomicBool::new(false),
    activation: AtomicU8::new(UNTRIED),
    current: AtomicUsize::new(0),
    dev: AtomicU64::new(0),
    uid: AtomicU32::new(0),
    gid: AtomicU32::new(0),
    captured_env: [const { AtomicUsize::new(0) }; KEPT_VARS],
    exe: AtomicUsize::new(0),
    merged_streams: AtomicUsize::new(0),
    mapped: AtomicUsize::new(0),
    shell: AtomicBool::new(false),
    creds_changed: AtomicBool::new(false),
    table_denied: AtomicBool::new(false),
    cwd: CwdCounters::new(),
    root: RootBuf::new(),
    first_table: TableSlot::empty(),
    cwd_words: [const { AtomicU64::new(0) }; PATH_MAX / 8],
    more_tables: [const { TableSlot::empty() }; MAX_MAPS - 1],
};

static READY: &AtomicBool = &STARTUP.ready;
static REMAPPING: &AtomicBool = &STARTUP.remapping;
static CURRENT: &AtomicUsize = &STARTUP.current;
static ACTIVATION: &AtomicU8 = &STARTUP.activation;
static MAPPED: &AtomicUsize = &STARTUP.mapped;
static SHELL: &AtomicBool = &STARTUP.shell;
static CREDS_CHANGED: &AtomicBool = &STARTUP.creds_changed;
static TABLE_DENIED: &AtomicBool = &STARTUP.table_denied;
pub(crate) static CAPTURED_ENV: &[AtomicUsize; KEPT_VARS] = &STARTUP.captured_env;
pub static ROOT: &RootBuf = &STARTUP.root;
pub static DEV: &AtomicU64 = &STARTUP.dev;
pub static UID: &AtomicU32 = &STARTUP.uid;
pub static GID: &AtomicU32 = &STARTUP.gid;
/// Directory streams whose listing is merged (see `dir`), counted in the
/// constructor's page: the first registration writes no page of its own.
pub(crate) static MERGED_STREAMS: &AtomicUsize = &STARTUP.merged_streams;
pub(crate) static CWD: &CwdCounters = &STARTUP.cwd;
pub(crate) static CWD_WORDS: &CwdWords = &STARTUP.cwd_words;

fn table_slot(i: usize) -> &'static TableSlot {
    match i {
        0 => &STARTUP.first_table,
        _ => &STARTUP.more_tables[i - 1],
    }
}

/// Reads the environment (the constructor); the rest waits for [`table`].
pub fn init(exe_is_vrift: bool) {
    if exe_is_vrift {
        // vrift's own processes never act through the shim (DESIGN.md §2).
        return;
    }
    // Before the root: a hook's shell enters its projects later.
    if let Some(exe) = sys::getenv(b"VRIFT_EXE\0").filter(|e| e.first() == Some(&b'/')) {
        STARTUP.exe.store(exe.as_ptr() as usize, Ordering::Relaxed);
    }
    if sys::getenv(b"VRIFT_SHELL_VIEW\0").is_some() {
        SHELL.store(true, Ordering::Relaxed);
    }
    let Some(root) = sys::getenv(b"VRIFT_PROJECT_ROOT\0") else {
        return;
    };
    let root = trim_trailing_slash(root);
    if root.first() != Some(&b'/') || !ROOT.set(root) {
        return;
    }
    READY.store(true, Ordering::Release);
}

/// The vrift binary this library may run (the daemon starter, the syscall
/// supervisor): `VRIFT_EXE` as the process started, set by the vrift that
/// set up the inception. The table names a binary too, but the table is a
/// project's file: a project that could choose what the library executes
/// would run its own program in every process that writes (issue 14).
pub fn vrift_exe() -> Option<&'static [u8]> {
    let p = STARTUP.exe.load(Ordering::Relaxed);
    if p == 0 {
        return None;
    }
    // SAFETY: a NUL-terminated string of the initial environment, which
    // lives for the process.
    Some(unsafe { core::ffi::CStr::from_ptr(p as *const libc::c_char) }.to_bytes())
}

/// The first need of the table: the root's identity, then the mapping.
/// One thread does it; another that finds it under way waits a little
/// and then maps a private copy rather than block (it may be a signal
/// handler that interrupted the very thread doing it).
#[cold]
fn activate() -> Option<Table<'static>> {
    let mut patience = PATIENCE;
    loop {
        match ACTIVATION.compare_exchange(UNTRIED, MAPPING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(TRIED) => return current_table(),
            Err(_) if patience == 0 => {
                let table = mapped_table();
                store_root_identity(table.as_ref());
                return table;
            }
            Err(_) => {
                patience -= 1;
                core::hint::spin_loop();
            }
        }
    }
    map_table();
    store_root_identity(current_table().as_ref());
    // The root is canonical (DESIGN.md §2: vrift resolves it before export).
    VERIFIED.mark(ROOT.get());
    ACTIVATION.store(TRIED, Ordering::Release);
    current_table()
}

/// Device and owner reported for rift entries: the project root's, as the
/// table recorded them when it was built (a stat of the root, ~6 µs in a
/// fresh process, when it did not). Idempotent (the same values from any
/// thread).
fn store_root_identity(table: Option<&Table<'static>>) {
    let Some((dev, uid, gid)) = table.and_then(|t| t.root_ids()).or_else(stat_root) else {
        return;
    };
    DEV.store(dev, Ordering::Relaxed);
    UID.store(uid, Ordering::Relaxed);
    GID.store(gid, Ordering::Relaxed);
}

/// The root's device and owner from a stat (a table without them). Apart,
/// and never inlined: its path buffer would put two stack pages more in the
/// frame of every activation.
#[cold]
#[inline(never)]
fn stat_root() -> Option<(u64, u32, u32)> {
    sys::stat_raw(ROOT.get()).map(|st| (st.st_dev, st.st_uid, st.st_gid))
}

/// After fork, in the child: a first mapping under way in another thread
/// will never finish there; the next lookup starts it again.
pub fn after_fork_in_child() {
    if ACTIVATION.load(Ordering::Relaxed) == MAPPING {
        ACTIVATION.store(UNTRIED, Ordering::Relaxed);
    }
}

/// Maps the current table file as the newest mapping.
fn map_table() {
    let next = MAPPED.load(Ordering::Acquire);
    if next >= MAX_MAPS {
        return;
    }
    let Some(table) = mapped_table() else {
        return;
    };
    // SAFETY: slot `next` has never been published (only MAPPED grows).
    unsafe { (*table_slot(next).0.get()).write(table) };
    MAPPED.store(next + 1, Ordering::Release);
    CURRENT.store(next + 1, Ordering::Release);
}

/// Whether this process changed its credentials in the view (a fork child
/// of one too): see `creds`.
#[inline]
pub fn creds_changed() -> bool {
    CREDS_CHANGED.load(Ordering::Relaxed)
}

/// Whether the project's table exists but this process may not read it:
/// it cannot see the view, and is refused in the project rather than
/// shown the disk (see `resolve`).
#[cold]
pub fn table_denied() -> bool {
    TABLE_DENIED.load(Ordering::Relaxed)
}

/// How a process whose credentials changed gets an fd of a table file it
/// may not open itself: a `fn() -> i32` set by `creds` (the daemon lends
/// it through `client`, a layer above this one), 0 if none.
static TABLE_FD_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// A table fd is being asked of the daemon (see `mapped_table`).
static LENDING: AtomicBool = AtomicBool::new(false);

/// Sets [`TABLE_FD_SOURCE`].
#[cold]
pub(crate) fn set_table_fd_source(f: fn() -> i32) {
    TABLE_FD_SOURCE.store(f as usize, Ordering::Release);
}

/// Marks the process as one whose credentials change (`creds`).
#[cold]
pub(crate) fn note_creds_change() {
    CREDS_CHANGED.store(true, Ordering::Relaxed);
}

/// Whether this process is a shell started by a hook to be in the view.
#[inline]
pub fn shell() -> bool {
    SHELL.load(Ordering::Relaxed)
}

/// Takes a shell out of the view (its `leave`: see
/// `resolve::shell_control`).
#[cold]
pub(crate) fn leave_view() {
    READY.store(false, Ordering::Release);
}

/// Points the process at the project at `root` (canonical, no trailing
/// slash) for a shell switching projects between prompts, when it runs
/// nothing else: the root is rewritten in place and the previous table
/// stays mapped (a thread still reading it keeps a valid mapping). Leaves
/// the process out of the view: the caller forgets what else it learned of
/// the old project and then calls [`enter_view`]. False if it cannot.
#[cold]
pub(crate) fn switch_root(root: &[u8]) -> bool {
    READY.store(false, Ordering::Release);
    if MAPPED.load(Ordering::Acquire) >= MAX_MAPS || !ROOT.set(root) {
        sys::complain(&[
            b"vrift: this shell cannot enter the view of ",
            root,
            b" (start a new shell)",
        ]);
        return false;
    }
    // The new project's table is mapped on first need; what was learned
    // of the old one's paths no longer holds.
    CURRENT.store(0, Ordering::Release);
    ACTIVATION.store(UNTRIED, Ordering::Release);
    VERIFIED.forget();
    true
}

/// Puts the process (back) in the view, after [`switch_root`].
#[cold]
pub(crate) fn enter_view() {
    READY.store(true, Ordering::Release);
}

/// A new mapping of the table file, validated; never unmapped once
/// returned (readers may hold it).
fn mapped_table() -> Option<Table<'static>> {
    let mapped = sys::map_file(ROOT.table_path()).or_else(|| {
        // SAFETY: errno is thread-local.
        if unsafe { *libc::__errno_location() } != libc::EACCES {
            return None;
        }
        // A process whose credentials changed: the daemon lends an fd of
        // the table (a new generation is a new file it may not open).
        // (Asking the daemon needs the table's socket path: a table being
        // mapped for that request is not asked for again.)
        let lent = match TABLE_FD_SOURCE.load(Ordering::Acquire) {
            0 => None,
            _ if LENDING.swap(true, Ordering::Acquire) => None,
            f => {
                // SAFETY: only ever a `fn() -> i32` (set_table_fd_source).
                let fd = unsafe { core::mem::transmute::<usize, fn() -> i32>(f) }();
                LENDING.store(false, Ordering::Release);
                if fd >= 0 {
                    sys::map_fd(fd)
                } else {
                    None
                }
            }
        };
        if lent.is_none() {
            TABLE_DENIED.store(true, Ordering::Relaxed);
        }
        lent
    });
    let (ptr, len) = mapped?;
    // SAFETY: the mapping is live, page-aligned, and never unmapped once returned.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
    match Table::new(bytes) {
        Ok(table) => Some(table),
        Err(_) => {
            sys::unmap(ptr, len);
            None
        }
    }
}

/// Whether the shim is active in this process.
#[inline]
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// The current table, following a newer generation if one was published
/// (mapped on first need; None: the project has no table).
#[inline]
pub fn table() -> Option<Table<'static>> {
    let Some(t) = current_table() else {
        if !ready() || ACTIVATION.load(Ordering::Acquire) == TRIED {
            return None;
        }
        return activate();
    };
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
