//! A cache of the current directory, so relative paths are resolved without
//! a syscall. Read from the kernel at the first relative path, and again at
//! the first one after a successful chdir/fchdir (which only mark it
//! unknown: a process that changes directory and then names absolute paths,
//! or exits, pays no getcwd); read under a seqlock (word-sized atomics, so
//! readers never see a torn path).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use vrift_shim_core::PATH_MAX;

use crate::state::{self, PATIENCE};
use crate::sys;

static SEQ: &AtomicU64 = &state::CWD.seq;
static LEN: &AtomicUsize = &state::CWD.len;
static WORD: &state::CwdWords = state::CWD_WORDS;
static WRITER: &AtomicU32 = &state::CWD.writer;
static STALE: &AtomicBool = &state::CWD.stale;

/// `LEN` of a cache a chdir made unknown (the sequence counter only grows:
/// a reader that copied words before a change never sees its old count).
const UNKNOWN: usize = usize::MAX;

/// Takes the writer's place; false (and the cache marked stale, so readers
/// ask the kernel until a later refresh) if another writer keeps it.
fn take_writer() -> bool {
    let me = crate::sys::gettid();
    let mut patience = PATIENCE;
    while let Err(holder) = WRITER.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        patience -= 1;
        if holder == me || patience == 0 {
            STALE.store(true, Ordering::Release);
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// After a successful chdir/fchdir: the next relative path reads the cwd.
pub fn forget() {
    if SEQ.load(Ordering::Acquire) == 0 {
        return; // never read: already unknown
    }
    if !take_writer() {
        return;
    }
    SEQ.fetch_add(1, Ordering::AcqRel);
    LEN.store(UNKNOWN, Ordering::Relaxed);
    SEQ.fetch_add(1, Ordering::AcqRel);
    WRITER.store(0, Ordering::Release);
}

/// Re-reads the kernel's cwd into the cache.
// Never inlined: its buffer would otherwise add a stack page to the frame of
// every path resolution (which reads the cache), for a refresh that runs
// about once per process.
#[cold]
#[inline(never)]
pub fn refresh() {
    if !take_writer() {
        return;
    }
    STALE.store(false, Ordering::Release);
    // Read under the writer's place, so refreshes store in the order they
    // read (0: unknown, on failure).
    let mut buf = [0u8; PATH_MAX];
    let n = sys::getcwd_raw(&mut buf).unwrap_or(0);
    SEQ.fetch_add(1, Ordering::AcqRel);
    for (i, chunk) in buf[..n.div_ceil(8) * 8].chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        WORD[i].store(u64::from_le_bytes(w), Ordering::Relaxed);
    }
    LEN.store(n, Ordering::Relaxed);
    SEQ.fetch_add(1, Ordering::AcqRel);
    WRITER.store(0, Ordering::Release);
    if n > 0 {
        // What getcwd returns is canonical: misses and listings below it
        // need no /proc readlink to know where they are.
        state::VERIFIED.mark(&buf[..n]);
    }
}

/// Copies the cached cwd into `out` (raw memory of at least PATH_MAX bytes);
/// returns its length (0: unknown).
///
/// # Safety
/// `out` must be valid for writes of PATH_MAX bytes.
pub unsafe fn read_into(out: *mut u8) -> usize {
    if STALE.load(Ordering::Acquire) {
        return 0;
    }
    if SEQ.load(Ordering::Acquire) == 0 || LEN.load(Ordering::Acquire) == UNKNOWN {
        // Never read, or changed since: the first relative path reads it
        // (not the constructor, which most processes would pay for nothing).
        refresh();
    }
    // A writer that does not finish may be this very thread (see PATIENCE):
    // then the caller asks the kernel (0: unknown).
    let mut patience = PATIENCE;
    loop {
        let s1 = SEQ.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            patience -= 1;
            if patience == 0 || WRITER.load(Ordering::Relaxed) == crate::sys::gettid() {
                return 0;
            }
            core::hint::spin_loop();
            continue;
        }
        let n = LEN.load(Ordering::Relaxed);
        if n == UNKNOWN {
            // Another thread changed directory since the check above: ask
            // the kernel this time.
            return 0;
        }
        let n = n.min(PATH_MAX);
        for (i, word) in WORD.iter().take(n.div_ceil(8)).enumerate() {
            let w = word.load(Ordering::Relaxed).to_le_bytes();
            // SAFETY: `out` holds PATH_MAX + 1 bytes (the caller's
            // contract) and i * 8 + 8 <= PATH_MAX rounded up to a word.
            unsafe { core::ptr::copy_nonoverlapping(w.as_ptr(), out.add(i * 8), 8) };
        }
        core::sync::atomic::fence(Ordering::Acquire);
        if SEQ.load(Ordering::Relaxed) == s1 {
            return n;
        }
    }
}

/// After fork, in the child: a writer that was mid-update in another thread
/// no longer exists. Forget the cache rather than wait for it.
///
/// Stores only what must change: every page a fork child writes is a
/// copy-on-write fault, and most children write nothing before exec.
pub fn after_fork_in_child() {
    if WRITER.load(Ordering::Relaxed) != 0 {
        WRITER.store(0, Ordering::Relaxed);
    }
    if SEQ.load(Ordering::Relaxed) & 1 == 1 {
        // Never finished: read again at the next relative path.
        LEN.store(0, Ordering::Relaxed);
        SEQ.store(0, Ordering::Relaxed);
    }
}
