//! Shared libraries in the rift.
//!
//! The dynamic loader opens a program's libraries with its own internal
//! calls, which no LD_PRELOAD library sees, so a library that exists only in
//! the rift would not be found. A rift program is therefore started with
//! this library also named in `LD_AUDIT` (exec.rs): the loader loads a second
//! copy of it, in its own namespace, and asks `la_objsearch` about every
//! path it is about to try — from DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH
//! (with `$ORIGIN` expanded), the default directories, or a dlopen. The
//! answer, per DESIGN.md §2:
//! - a rift file: its mirror `ROOT/.vrift/exec/REL` (exec.rs), a physical
//!   file the loader can open, whose `$ORIGIN` is again in the mirror tree;
//! - a path in the mirror tree: the same question about the view path it
//!   stands for (a stale or deleted entry is never served from the mirror);
//! - whited out or absent in the view: NULL, so the loader tries the next
//!   candidate;
//! - anything else: the path unchanged.
//!
//! Processes that run no rift program never load this hook.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_char, c_uint};
use vrift_format::Kind;
use vrift_shim_core::PATH_MAX;

use crate::exec::{exec_mirror, MIRROR_DIR};
use crate::resolve::{resolve, PathBuf, View};
use crate::state;

/// One answer's storage. The loader uses a returned name before it asks
/// again (it searches under its load lock); a ring of four keeps even an
/// earlier answer of a nested search intact.
struct Buf(UnsafeCell<[u8; PATH_MAX + 1]>);
// SAFETY: slots are handed out round-robin; see above.
unsafe impl Sync for Buf {}

static ANSWERS: [Buf; 4] = [const { Buf(UnsafeCell::new([0; PATH_MAX + 1])) }; 4];
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The rtld-audit interface version: whatever the loader speaks (only
/// `la_objsearch` is used, which every version has).
#[no_mangle]
pub extern "C" fn la_version(version: c_uint) -> c_uint {
    version
}

/// Where the library the loader is looking for really is (see the module
/// documentation).
#[no_mangle]
pub extern "C" fn la_objsearch(
    name: *const c_char,
    _cookie: *mut usize,
    _flag: c_uint,
) -> *mut c_char {
    let unchanged = name as *mut c_char;
    if name.is_null() || !state::ready() {
        return unchanged;
    }
    // SAFETY: the loader passes a NUL-terminated name.
    let p = unsafe { CStr::from_ptr(name) }.to_bytes();
    if !p.contains(&b'/') {
        return unchanged; // a bare soname: the loader expands it into paths
    }
    // A path in the mirror tree stands for the view path below the root.
    let root = state::ROOT.get();
    let mut view_path = [0u8; PATH_MAX + 1];
    let mut query = p;
    if let Some(rest) = p
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix(MIRROR_DIR))
    {
        let n = root.len() + 1 + rest.len();
        if n > PATH_MAX {
            return unchanged;
        }
        view_path[..root.len()].copy_from_slice(root);
        view_path[root.len()] = b'/';
        view_path[root.len() + 1..n].copy_from_slice(rest);
        query = &view_path[..n];
        mirror_directory(p, query);
    }
    let mut buf = PathBuf::new();
    let mut view = resolve(libc::AT_FDCWD, query, true, &mut buf).0;
    if let View::Entry { header, .. } = &view {
        // Just written (a linker's output): sealed first.
        if header.is_staged() && crate::write::seal_for_exec(buf.rel()) == 0 {
            view = resolve(libc::AT_FDCWD, query, true, &mut buf).0;
        }
    }
    match view {
        View::Pass | View::Disk { rewritten: false } if query.len() == p.len() && query == p => {
            unchanged
        }
        View::Pass | View::Disk { rewritten: false } => answer(query),
        View::Disk { rewritten: true } => answer(buf.abs()),
        View::Entry { header, .. } if header.kind == Kind::File && !header.is_staged() => {
            let slot = take_slot();
            match exec_mirror(buf.rel(), &header.hash, header.size, slot) {
                Some(_) => slot.as_mut_ptr() as *mut c_char,
                None => {
                    crate::sys::complain(&[b"vrift: cannot prepare the rift library ", buf.abs()]);
                    core::ptr::null_mut()
                }
            }
        }
        View::Entry { .. } | View::Error(_) => core::ptr::null_mut(),
    }
}

/// The loader gives up on a search directory that does not exist (and
/// remembers that), before or without asking again: so the mirror of a
/// directory the view has, such as the `$ORIGIN/../lib` of a program just
/// run from the mirror, is made as soon as a path in it is asked about.
fn mirror_directory(mirror: &[u8], view: &[u8]) {
    let parent = |p: &[u8]| p.iter().rposition(|&c| c == b'/').map(|i| i.max(1));
    if let (Some(mi), Some(vi)) = (parent(mirror), parent(view)) {
        crate::exec::mirror_dir_if_in_view(&view[..vi], &mirror[..mi]);
    }
}

fn take_slot() -> &'static mut [u8; PATH_MAX + 1] {
    let i = NEXT.fetch_add(1, Ordering::Relaxed) % ANSWERS.len();
    // SAFETY: see `Buf`: the loader is done with an answer four answers later.
    unsafe { &mut *ANSWERS[i].0.get() }
}

/// `path` as a NUL-terminated answer.
fn answer(path: &[u8]) -> *mut c_char {
    if path.len() > PATH_MAX {
        return core::ptr::null_mut();
    }
    let slot = take_slot();
    slot[..path.len()].copy_from_slice(path);
    slot[path.len()] = 0;
    slot.as_mut_ptr() as *mut c_char
}
