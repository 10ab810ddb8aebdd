//! Directory listings of the view: the physical entries not shadowed by the
//! rift, then the rift's own entries (whiteouts omitted); each name once,
//! with the right `d_type`.
//!
//! A `DIR*` of a directory the rift has something to say about is registered
//! in a fixed table (open addressing on the pointer); every other `DIR*`
//! costs one probe and goes straight to libc.

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::cell::UnsafeCell;

use libc::{c_char, c_int, dirent, dirent64, DIR};
use vrift_format::table::Children;
use vrift_format::{Kind, RecordRef, DIR_CREATED, DIR_OPAQUE};

use crate::real::fail;
use crate::resolve::{resolve, PathBuf, View};
use crate::state::{self, PATH_MAX};
use crate::{call_real, sys};

const SLOTS: usize = 1024;
const REL_CAP: usize = 1024;

/// Per-stream merge state, owned by the thread using the stream (POSIX:
/// one stream is not used by two threads at once).
struct Merge {
    /// Rift path of the directory.
    rel: [u8; REL_CAP],
    rel_len: usize,
    /// Phase 1 (disk) done; phase 2 walks the rift children (the table it
    /// started on stays mapped even if a newer one supersedes it).
    disk_done: bool,
    opaque: bool,
    children: Option<Children<'static>>,
    served: i64,
    ent: dirent64,
}

struct Slot {
    dirp: AtomicUsize,
    /// Claimed by an open stream.
    busy: AtomicBool,
    /// Ever claimed: probing continues past it (a tombstone when free).
    ever: AtomicBool,
    merge: UnsafeCell<Merge>,
}

// SAFETY: a slot's `merge` is touched only by the owner of its DIR*.
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        dirp: AtomicUsize::new(0),
        busy: AtomicBool::new(false),
        ever: AtomicBool::new(false),
        merge: UnsafeCell::new(Merge {
            rel: [0; REL_CAP],
            rel_len: 0,
            disk_done: false,
            opaque: false,
            children: None,
            served: 0,
            // SAFETY: dirent64 is plain old data; zero is valid.
            ent: unsafe { core::mem::zeroed() },
        }),
    }
}; SLOTS];

fn home(dirp: usize) -> usize {
    (dirp >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) % SLOTS
}

fn find(dirp: *mut DIR) -> Option<&'static Slot> {
    let key = dirp as usize;
    let mut i = home(key);
    for _ in 0..SLOTS {
        let s = &TABLE[i];
        let v = s.dirp.load(Ordering::Acquire);
        if v == key {
            return Some(s);
        }
        if v == 0 && !s.ever.load(Ordering::Acquire) {
            return None;
        }
        i = (i + 1) % SLOTS;
    }
    None
}

fn register(dirp: *mut DIR, rel: &[u8], opaque: bool) {
    if rel.len() > REL_CAP {
        sys::complain(&[b"vrift: directory path too long to merge the view: ", rel]);
        return;
    }
    let key = dirp as usize;
    let mut i = home(key);
    for _ in 0..SLOTS {
        let s = &TABLE[i];
        if !s.busy.swap(true, Ordering::AcqRel) {
            s.ever.store(true, Ordering::Release);
            // SAFETY: we own the slot (busy) and nobody finds it until dirp is set.
            let m = unsafe { &mut *s.merge.get() };
            m.rel[..rel.len()].copy_from_slice(rel);
            m.rel_len = rel.len();
            m.disk_done = false;
            m.opaque = opaque;
            m.children = None;
            m.served = 0;
            s.dirp.store(key, Ordering::Release);
            return;
        }
        i = (i + 1) % SLOTS;
    }
    sys::complain(&[b"vrift: too many open directories to merge the view: ", rel]);
}

fn unregister(dirp: *mut DIR) {
    if let Some(s) = find(dirp) {
        s.dirp.store(0, Ordering::Release);
        // `ever` stays set, so probe chains through this slot stay intact.
        s.busy.store(false, Ordering::Release);
    }
}

fn d_type(kind: Kind, mode: u32) -> u8 {
    match kind {
        Kind::Symlink => libc::DT_LNK,
        _ if mode & libc::S_IFMT == libc::S_IFDIR => libc::DT_DIR,
        _ => libc::DT_REG,
    }
}

/// Registers `dirp` if the directory at `rel` has rift children or marks;
/// returns whether it did.
fn maybe_register(dirp: *mut DIR, rel: &[u8]) -> bool {
    let Some(table) = state::table() else {
        return false;
    };
    let Some(d) = table.dir(rel) else {
        return false;
    };
    register(dirp, rel, d.flags & DIR_OPAQUE as u64 != 0);
    true
}

#[no_mangle]
pub extern "C" fn opendir(path: *const c_char) -> *mut DIR {
    if path.is_null() {
        return call_real!(OPENDIR(path) or core::ptr::null_mut());
    }
    // SAFETY: libc contract: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    let mut buf = PathBuf::new();
    let (view, _) = resolve(libc::AT_FDCWD, p, true, &mut buf);
    match view {
        View::Pass => call_real!(OPENDIR(path) or core::ptr::null_mut()),
        View::Error(e) => {
            fail(e);
            core::ptr::null_mut()
        }
        View::Entry { .. } => {
            fail(libc::ENOTDIR);
            core::ptr::null_mut()
        }
        View::Disk { rewritten } => {
            let dirp = if rewritten {
                let c = buf.c_ptr();
                call_real!(OPENDIR(c) or core::ptr::null_mut())
            } else {
                call_real!(OPENDIR(path) or core::ptr::null_mut())
            };
            if !dirp.is_null() {
                // SAFETY: a stream libc just opened.
                let fd = unsafe { libc::dirfd(dirp) };
                // Unknown to the table: a physical symlink on the way may
                // lead to a directory the rift fills (see `canonical_dir`).
                let mut canon = PathBuf::new();
                let at = if !maybe_register(dirp, buf.rel())
                    && crate::resolve::canonical_dir(fd, &buf, &mut canon)
                {
                    maybe_register(dirp, canon.rel());
                    &canon
                } else {
                    &buf
                };
                crate::fdtable::set_dir(fd, at.abs());
            }
            dirp
        }
    }
}

#[no_mangle]
pub extern "C" fn fdopendir(fd: c_int) -> *mut DIR {
    let dirp = call_real!(FDOPENDIR(fd) or core::ptr::null_mut());
    if dirp.is_null() || !state::ready() {
        return dirp;
    }
    let mut path = [0u8; PATH_MAX];
    if let Some(n) = sys::fd_path(fd, &mut path) {
        if let Some(rel) = vrift_format::pathnorm::domain_rel(&path[..n], state::ROOT.get()) {
            maybe_register(dirp, rel);
        }
    }
    dirp
}

/// The next merged entry, or None at the end. `real_next` reads one
/// physical entry (readdir or readdir64), returning its name and type.
fn next_merged(
    slot: &Slot,
    mut real_next: impl FnMut() -> Option<(*const u8, u8, u64, i64)>,
) -> Option<*mut dirent64> {
    // SAFETY: the slot belongs to this stream (see `Merge`).
    let m = unsafe { &mut *slot.merge.get() };
    let table = state::table()?;
    let mut key = [0u8; PATH_MAX];
    let rel_len = m.rel_len;
    key[..rel_len].copy_from_slice(&m.rel[..rel_len]);
    let prefix = if rel_len == 0 {
        0
    } else {
        key[rel_len] = b'/';
        rel_len + 1
    };
    while !m.disk_done {
        let Some((name_ptr, dtype, ino, off)) = real_next() else {
            m.disk_done = true;
            break;
        };
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(name_ptr as *const c_char) }.to_bytes();
        if name != b"." && name != b".." && prefix + name.len() <= PATH_MAX {
            key[prefix..prefix + name.len()].copy_from_slice(name);
            let child = &key[..prefix + name.len()];
            if rel_len == 0 && name == b".vrift" {
                // vrift's state is passed through as is.
            } else if table.lookup(child).is_some() {
                continue; // shadowed or hidden: the rift's view comes in phase 2
            } else if m.opaque
                && table
                    .dir(child)
                    .is_none_or(|d| d.flags & DIR_CREATED as u64 == 0)
            {
                // An opaque directory shows only what the rift made in it
                // (its files in phase 2, the directories it created here).
                continue;
            }
        } else if m.opaque && name != b"." && name != b".." {
            continue;
        }
        return Some(fill(&mut m.ent, name, dtype, ino, off));
    }
    if m.children.is_none() {
        m.children = Some(table.dir(&m.rel[..rel_len])?.children());
    }
    let children = m.children.as_mut()?;
    for (name, rec) in children {
        m.served += 1;
        if let RecordRef::Entry { header, .. } = rec {
            let off = (1i64 << 62) + m.served;
            return Some(fill(
                &mut m.ent,
                name,
                d_type(header.kind, header.mode),
                header.ino,
                off,
            ));
        }
    }
    None
}

fn fill(ent: &mut dirent64, name: &[u8], dtype: u8, ino: u64, off: i64) -> *mut dirent64 {
    let n = name.len().min(ent.d_name.len() - 1);
    for (d, s) in ent.d_name.iter_mut().zip(&name[..n]) {
        *d = *s as c_char;
    }
    ent.d_name[n] = 0;
    ent.d_ino = ino;
    ent.d_off = off;
    ent.d_type = dtype;
    ent.d_reclen = core::mem::size_of::<dirent64>() as u16;
    ent
}

#[no_mangle]
pub extern "C" fn readdir64(dirp: *mut DIR) -> *mut dirent64 {
    let Some(slot) = find(dirp) else {
        return call_real!(READDIR64(dirp) or core::ptr::null_mut());
    };
    let next = || {
        let e = call_real!(READDIR64(dirp) or core::ptr::null_mut());
        if e.is_null() {
            return None;
        }
        // SAFETY: libc returned a valid entry.
        let e = unsafe { &*e };
        Some((e.d_name.as_ptr() as *const u8, e.d_type, e.d_ino, e.d_off))
    };
    next_merged(slot, next).unwrap_or(core::ptr::null_mut())
}

#[no_mangle]
pub extern "C" fn readdir(dirp: *mut DIR) -> *mut dirent {
    // On LP64 glibc, dirent and dirent64 share one layout.
    const _: () = assert!(core::mem::size_of::<dirent>() == core::mem::size_of::<dirent64>());
    if find(dirp).is_none() {
        return call_real!(READDIR(dirp) or core::ptr::null_mut());
    }
    readdir64(dirp) as *mut dirent
}

#[no_mangle]
pub extern "C" fn rewinddir(dirp: *mut DIR) {
    if let Some(slot) = find(dirp) {
        // SAFETY: the slot belongs to this stream.
        let m = unsafe { &mut *slot.merge.get() };
        m.disk_done = false;
        m.children = None;
        m.served = 0;
    }
    call_real!(REWINDDIR(dirp) or ())
}

#[no_mangle]
pub extern "C" fn closedir(dirp: *mut DIR) -> c_int {
    unregister(dirp);
    if !dirp.is_null() {
        // libc closes the fd internally, out of the shim's sight.
        // SAFETY: the caller's open stream.
        crate::fdtable::clear(unsafe { libc::dirfd(dirp) });
    }
    call_real!(CLOSEDIR(dirp) or fail(libc::ENOSYS))
}

/// `readdir_r`: the deprecated reentrant form, on the merged stream.
#[no_mangle]
pub extern "C" fn readdir64_r(
    dirp: *mut DIR,
    entry: *mut dirent64,
    result: *mut *mut dirent64,
) -> c_int {
    if find(dirp).is_none() {
        return call_real!(READDIR64_R(dirp, entry, result) or libc::ENOSYS);
    }
    let e = readdir64(dirp);
    // SAFETY: caller-provided buffers (readdir_r contract).
    unsafe {
        if e.is_null() {
            *result = core::ptr::null_mut();
        } else {
            core::ptr::copy_nonoverlapping(e, entry, 1);
            *result = entry;
        }
    }
    0
}

#[no_mangle]
pub extern "C" fn readdir_r(dirp: *mut DIR, entry: *mut dirent, result: *mut *mut dirent) -> c_int {
    readdir64_r(dirp, entry as *mut dirent64, result as *mut *mut dirent64)
}
