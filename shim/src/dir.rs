//! Directory listings of the view: the physical entries not shadowed by the
//! rift, then the rift's own entries (whiteouts omitted); each name once,
//! with the right `d_type`.
//!
//! A `DIR*` of a directory the rift has something to say about is registered
//! in a fixed table (open addressing on the pointer); every other `DIR*`
//! costs one probe and goes straight to libc. `telldir`/`seekdir` positions
//! cover both phases of a merged stream (see `RIFT_POS0`); `dirfd` needs no
//! help (the stream's fd is the physical directory, known to the fd table).
//!
//! Raw reads (`getdents64`, and `syscall(SYS_getdents64/SYS_getdents)`)
//! of a directory fd the shim knows give the same merged listing; their
//! position lives in the fd table (see [`getdents`]).

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_char, c_int, c_long, dirent, dirent64, DIR};
use vrift_format::table::{Children, Dir, Table};
use vrift_format::view;
use vrift_format::{Kind, RecordRef, DIR_OPAQUE};
use vrift_shim_core::PATH_MAX;

use crate::real::fail;
use crate::resolve::{resolve, PathBuf, View};
use crate::state;
use crate::{call_real, sys};

const SLOTS: usize = 1024;
/// Any directory path the kernel accepts (paths up to PATH_MAX work in
/// every call, the directory's rift path included).
const REL_CAP: usize = PATH_MAX;
/// The rift path, a `/`, and a name (at most 255 bytes on Linux).
const KEY_CAP: usize = REL_CAP + 1 + 256;

/// Per-stream merge state, owned by the thread using the stream (POSIX:
/// one stream is not used by two threads at once).
#[repr(C)]
struct Merge {
    rel_len: usize,
    prefix: usize,
    /// Phase 1 (disk) done; phase 2 walks the rift children (the table it
    /// started on stays mapped even if a newer one supersedes it).
    disk_done: bool,
    opaque: bool,
    children: Option<Children<'static>>,
    served: i64,
    ent: dirent64,
    /// Rift path of the directory (`rel[..rel_len]`), then its `/` (for all
    /// but the root) up to `prefix`: each physical name is looked up by
    /// writing it after that, with no copy of the directory's path per
    /// entry. Last, so that a short path touches only the slot's first page.
    rel: [u8; KEY_CAP],
}

/// A stream's merge state (see [`KEYS`] for whose it is). Page-aligned,
/// its small fields first: a stream on a short path writes one page (the
/// key buffer's tail is touched only by long paths). 1024 slots are 8 MiB
/// of address space, none of it backed until used.
#[repr(align(4096))]
struct Slot {
    merge: UnsafeCell<Merge>,
}

// SAFETY: a slot's `merge` is touched only by the owner of its DIR*.
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        merge: UnsafeCell::new(Merge {
            rel: [0; KEY_CAP],
            rel_len: 0,
            prefix: 0,
            disk_done: false,
            opaque: false,
            children: None,
            served: 0,
            // SAFETY: dirent64 is plain old data; zero is valid.
            ent: unsafe { core::mem::zeroed() },
        }),
    }
}; SLOTS];

/// Whose each [`TABLE`] slot is: [`NEVER`] (ends a probe), [`FREE`] (a
/// tombstone: probing goes on past it), [`CLAIMED`] (being filled), or the
/// `DIR*`. Apart from the merge states and page-aligned: a lookup (every
/// readdir and closedir) touches these 8 KiB only, where keys inside the
/// 1.3 KiB states put each stream's probe on a page of its own (two page
/// faults per directory a short process lists).
#[repr(C, align(4096))]
struct Keys([AtomicUsize; SLOTS]);

static KEYS: Keys = Keys([const { AtomicUsize::new(NEVER) }; SLOTS]);
const NEVER: usize = 0;
const FREE: usize = 1;
const CLAIMED: usize = 2;

/// Slots claimed now (counted in the constructor's page): while none is, a
/// lookup touches no key at all (most processes never list a directory the
/// rift has a say in).
static CLAIMED_SLOTS: &AtomicUsize = state::MERGED_STREAMS;

fn home(dirp: usize) -> usize {
    (dirp >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) % SLOTS
}

/// The index of `dirp`'s slot, if it is registered.
fn find_index(dirp: *mut DIR) -> Option<usize> {
    if CLAIMED_SLOTS.load(Ordering::Acquire) == 0 {
        return None;
    }
    let key = dirp as usize;
    let mut i = home(key);
    for _ in 0..SLOTS {
        match KEYS.0[i].load(Ordering::Acquire) {
            v if v == key => return Some(i),
            NEVER => return None,
            _ => i = (i + 1) % SLOTS,
        }
    }
    None
}

fn find(dirp: *mut DIR) -> Option<&'static Slot> {
    find_index(dirp).map(|i| &TABLE[i])
}

fn register(dirp: *mut DIR, rel: &[u8], dir: &Dir<'static>) {
    if rel.len() > REL_CAP {
        sys::complain(&[b"vrift: directory path too long to merge the view: ", rel]);
        return;
    }
    let key = dirp as usize;
    let mut i = home(key);
    for _ in 0..SLOTS {
        let k = &KEYS.0[i];
        // Claimed by a compare-exchange first, not a load: in a fresh
        // process the page is untouched, and a read before the write would
        // cost it two faults.
        let claimed = match k.compare_exchange(NEVER, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(FREE) => k
                .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            Err(_) => false,
        };
        if claimed {
            CLAIMED_SLOTS.fetch_add(1, Ordering::AcqRel);
            // SAFETY: we own the slot (claimed) and nobody finds it until
            // its key is the stream.
            let m = unsafe { &mut *TABLE[i].merge.get() };
            m.rel[..rel.len()].copy_from_slice(rel);
            m.rel_len = rel.len();
            m.prefix = if rel.is_empty() {
                0
            } else {
                m.rel[rel.len()] = b'/';
                rel.len() + 1
            };
            m.disk_done = false;
            m.opaque = dir.flags & DIR_OPAQUE as u64 != 0
                || state::table().is_some_and(|t| view::opaque_above(&t, rel));
            // The rift phase lists what the table held at opendir (the
            // listing of a directory changed meanwhile may show either,
            // as POSIX allows), with no second lookup of the directory.
            m.children = Some(dir.children());
            m.served = 0;
            k.store(key, Ordering::Release);
            return;
        }
        i = (i + 1) % SLOTS;
    }
    sys::complain(&[b"vrift: too many open directories to merge the view: ", rel]);
}

fn unregister(dirp: *mut DIR) {
    if let Some(i) = find_index(dirp) {
        // A tombstone, so probe chains through this slot stay intact.
        KEYS.0[i].store(FREE, Ordering::Release);
        CLAIMED_SLOTS.fetch_sub(1, Ordering::AcqRel);
    }
}

fn d_type(kind: Kind, mode: u32) -> u8 {
    match kind {
        Kind::Symlink => libc::DT_LNK,
        _ => match mode & libc::S_IFMT {
            libc::S_IFDIR => libc::DT_DIR,
            libc::S_IFIFO => libc::DT_FIFO,
            libc::S_IFSOCK => libc::DT_SOCK,
            libc::S_IFCHR => libc::DT_CHR,
            libc::S_IFBLK => libc::DT_BLK,
            _ => libc::DT_REG,
        },
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
    register(dirp, rel, &d);
    true
}

#[no_mangle]
pub extern "C" fn opendir(path: *const c_char) -> *mut DIR {
    if sys::unreadable(path) {
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
                if maybe_register(dirp, buf.rel()) {
                    crate::fdtable::set_dir(fd, buf.abs());
                } else {
                    register_canonical(dirp, fd, &buf);
                }
            }
            dirp
        }
    }
}

/// A stream on a directory unknown to the table at `lexical`: a physical
/// symlink on the way may lead to a directory the rift fills (see
/// `canonical_dir`). Apart, and never inlined: its buffer would otherwise
/// add a stack page to every opendir's frame.
#[inline(never)]
fn register_canonical(dirp: *mut DIR, fd: c_int, lexical: &PathBuf) {
    let mut canon = PathBuf::new();
    let at = if crate::resolve::canonical_dir(fd, lexical, &mut canon) {
        maybe_register(dirp, canon.rel());
        &canon
    } else {
        lexical
    };
    crate::fdtable::set_dir(fd, at.abs());
}

#[no_mangle]
pub extern "C" fn fdopendir(fd: c_int) -> *mut DIR {
    let dirp = call_real!(FDOPENDIR(fd) or core::ptr::null_mut());
    if dirp.is_null() || !state::ready() {
        return dirp;
    }
    let mut path = [0u8; PATH_MAX];
    // A directory fd the shim saw opened has its path in the fd table (find
    // and fts open every directory so): no /proc readlink.
    // SAFETY: `path` holds PATH_MAX bytes.
    let known = unsafe { crate::fdtable::dir_path_into(fd, path.as_mut_ptr(), PATH_MAX) };
    if let Some(n) = known.or_else(|| sys::fd_path(fd, &mut path)) {
        if let Some(rel) = vrift_format::pathnorm::domain_rel(&path[..n], state::ROOT.get()) {
            maybe_register(dirp, rel);
        }
    }
    dirp
}

/// Whether the physical entry `name` of a directory is left out of the
/// merged listing: shadowed or hidden by the rift (its view comes from the
/// rift phase), or outside what an opaque directory shows. `key[..prefix]`
/// holds the directory's rift path and its `/` (nothing for the root);
/// the rest of `key` is scratch.
fn hidden_on_disk(
    table: &Table<'_>,
    key: &mut [u8],
    prefix: usize,
    name: &[u8],
    opaque: bool,
) -> bool {
    if name == b"." || name == b".." {
        return false;
    }
    if prefix + name.len() > key.len() {
        return opaque;
    }
    key[prefix..prefix + name.len()].copy_from_slice(name);
    !view::disk_name_shows(table, &key[..prefix + name.len()], opaque)
}

/// The key buffer of a directory's children: `rel` and a `/` (nothing for
/// the root); returns the prefix length.
fn child_key(key: &mut [u8; PATH_MAX], rel: &[u8]) -> usize {
    key[..rel.len()].copy_from_slice(rel);
    if rel.is_empty() {
        0
    } else {
        key[rel.len()] = b'/';
        rel.len() + 1
    }
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
    let (rel_len, prefix) = (m.rel_len, m.prefix);
    while !m.disk_done {
        let Some((name_ptr, dtype, ino, off)) = real_next() else {
            m.disk_done = true;
            break;
        };
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(name_ptr as *const c_char) }.to_bytes();
        if hidden_on_disk(&table, &mut m.rel, prefix, name, m.opaque) {
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
            let off = rift_pos(m.served);
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

/// Positions of a merged stream. In the disk phase a position is libc's own
/// (`telldir` of the physical stream: the kernel's directory offset, never
/// negative on Linux file systems). In the rift phase it is `RIFT_POS0 -
/// served` (≤ -2: never a kernel offset, never telldir's -1 error), where
/// `served` counts the rift children consumed so far. The rift entries'
/// `d_off` use the same encoding, so either can be passed to `seekdir`.
const RIFT_POS0: i64 = -2;

fn rift_pos(served: i64) -> i64 {
    RIFT_POS0 - served
}

/// Restarts the rift phase of `m` after `served` children (`seekdir`).
fn seek_rift(m: &mut Merge, served: i64) {
    m.disk_done = true;
    m.served = 0;
    m.children = state::table()
        .and_then(|t| t.dir(&m.rel[..m.rel_len]))
        .map(|d| d.children());
    if let Some(children) = m.children.as_mut() {
        while m.served < served && children.next().is_some() {
            m.served += 1;
        }
    }
}

#[no_mangle]
pub extern "C" fn telldir(dirp: *mut DIR) -> c_long {
    if let Some(slot) = find(dirp) {
        // SAFETY: the slot belongs to this stream.
        let m = unsafe { &*slot.merge.get() };
        if m.disk_done {
            return rift_pos(m.served);
        }
    }
    call_real!(TELLDIR(dirp) or fail(libc::ENOSYS) as c_long)
}

#[no_mangle]
pub extern "C" fn seekdir(dirp: *mut DIR, pos: c_long) {
    if let Some(slot) = find(dirp) {
        // SAFETY: the slot belongs to this stream.
        let m = unsafe { &mut *slot.merge.get() };
        if pos <= RIFT_POS0 {
            seek_rift(m, RIFT_POS0 - pos);
            return;
        }
        m.disk_done = false;
        m.children = None;
        m.served = 0;
    }
    call_real!(SEEKDIR(dirp, pos) or ())
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

// ---------------------------------------------------------------- getdents

/// The record layouts of getdents(2): `linux_dirent64`, and the older
/// `linux_dirent` (x86_64 only) whose type byte ends the record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dents {
    V64,
    Old,
}

impl Dents {
    fn sysno(self) -> libc::c_long {
        match self {
            Dents::V64 => libc::SYS_getdents64,
            #[cfg(target_arch = "x86_64")]
            Dents::Old => libc::SYS_getdents,
            #[cfg(not(target_arch = "x86_64"))]
            Dents::Old => -1,
        }
    }

    fn name_off(self) -> usize {
        match self {
            Dents::V64 => 19,
            Dents::Old => 18,
        }
    }

    fn reclen(self, name_len: usize) -> usize {
        // V64: NUL after the name; Old: NUL and the type byte.
        let extra = if self == Dents::V64 { 1 } else { 2 };
        (self.name_off() + name_len + extra + 7) & !7
    }
}

/// The caller's buffer of raw records.
struct DentBuf {
    fmt: Dents,
    buf: *mut u8,
    cap: usize,
}

impl DentBuf {
    /// One record at `at` if it fits; its length.
    ///
    /// # Safety
    /// `buf` must be valid for writes of `cap` bytes.
    unsafe fn put(&self, at: usize, name: &[u8], ino: u64, off: i64, dtype: u8) -> Option<usize> {
        let fmt = self.fmt;
        let len = fmt.reclen(name.len());
        if at + len > self.cap || len > u16::MAX as usize {
            return None;
        }
        // SAFETY: `buf[..cap]` is writable (the caller's contract) and the
        // record, `len` bytes at `at`, fits (checked above); every write
        // below lies in it.
        unsafe {
            let rec = self.buf.add(at);
            core::ptr::write_bytes(rec, 0, len);
            (rec as *mut u64).write_unaligned(ino);
            (rec.add(8) as *mut i64).write_unaligned(off);
            (rec.add(16) as *mut u16).write_unaligned(len as u16);
            if fmt == Dents::V64 {
                *rec.add(18) = dtype;
            } else {
                *rec.add(len - 1) = dtype;
            }
            core::ptr::copy_nonoverlapping(name.as_ptr(), rec.add(fmt.name_off()), name.len());
        }
        Some(len)
    }
}

/// getdents(2)/getdents64(2) of `fd`. For a directory fd the shim knows
/// (opened through it with O_DIRECTORY, or by opendir) whose directory the
/// rift has something to say about, the records are the merged listing,
/// in the same order as readdir: the kernel's entries, filtered in place,
/// then the rift's. Every other fd costs one load and goes to the kernel.
///
/// Positions: in the rift phase the fd's kernel offset stays at the end of
/// the directory and the shim counts the rift children served (in the fd
/// table). `lseek(fd, 0, SEEK_SET)` (a rewind) is noticed because the
/// kernel's offset then differs from that end; seeking to a rift record's
/// `d_off` with lseek is not supported (it is honoured by seekdir).
pub fn getdents(fd: c_int, buf: *mut u8, count: usize, fmt: Dents) -> isize {
    // SAFETY: the caller's buffer goes to the kernel, which checks it.
    let raw = || unsafe { crate::raw_syscall!(fmt.sysno(), fd, buf, count) as isize };
    if !crate::fdtable::is_dir(fd) || !state::ready() || fmt.sysno() < 0 {
        return raw();
    }
    let Some(table) = state::table() else {
        return raw();
    };
    let mut path = [0u8; PATH_MAX];
    // SAFETY: `path` holds PATH_MAX bytes.
    let Some(n) = (unsafe { crate::fdtable::dir_path_into(fd, path.as_mut_ptr(), PATH_MAX) })
    else {
        return raw();
    };
    let Some(rel) = vrift_format::pathnorm::domain_rel(&path[..n], state::ROOT.get()) else {
        return raw();
    };
    let Some(dir) = table.dir(rel) else {
        return raw();
    };
    let opaque = dir.flags & DIR_OPAQUE as u64 != 0 || view::opaque_above(&table, rel);
    let mut key = [0u8; PATH_MAX];
    let prefix = child_key(&mut key, rel);
    // SAFETY: lseek on the caller's fd, position unchanged.
    let here = || unsafe { crate::raw_syscall!(libc::SYS_lseek, fd, 0, libc::SEEK_CUR) } as i64;
    let (mut served, eof) = crate::fdtable::dents(fd);
    // A rewind (or any seek) since the rift phase began restarts the disk phase.
    if served >= 0 && here() != eof {
        served = -1;
        crate::fdtable::set_dents(fd, -1, 0);
    }
    // Bytes of the caller's buffer filled so far: the kernel's entries
    // (filtered) and, once the kernel has no more, the rift's, in one call
    // as far as they fit (getdents01 reads a directory with one call).
    let mut w = 0usize;
    if served < 0 {
        loop {
            // SAFETY: the rest of the caller's buffer goes to the kernel.
            let got =
                unsafe { crate::raw_syscall!(fmt.sysno(), fd, buf.add(w), count - w) as isize };
            if got < 0 {
                // A rest too small for the kernel's next record (EINVAL):
                // what is there goes now, the kernel's offset unmoved.
                return if w > 0 { w as isize } else { got };
            }
            if got == 0 {
                break;
            }
            let (mut r, end) = (w, w + got as usize);
            while r < end {
                // SAFETY: the kernel wrote `got` bytes of whole records.
                unsafe {
                    let rec = buf.add(r);
                    let len = (rec.add(16) as *const u16).read_unaligned() as usize;
                    let name = CStr::from_ptr(rec.add(fmt.name_off()) as *const c_char).to_bytes();
                    if !hidden_on_disk(&table, &mut key, prefix, name, opaque) {
                        if w != r {
                            core::ptr::copy(rec, buf.add(w), len);
                        }
                        w += len;
                    }
                    r += len.max(1);
                }
            }
        }
        served = 0;
        crate::fdtable::set_dents(fd, 0, here());
    }
    let mut children = dir.children();
    let mut i = 0;
    while i < served && children.next().is_some() {
        i += 1;
    }
    let out = DentBuf {
        fmt,
        buf,
        cap: count,
    };
    // The caller's buffer up to here is known writable (the kernel wrote
    // it, or a page probed before): a buffer shorter than the caller says
    // (gVisor's PartialBuffer: a guard page after 256 bytes) gets the
    // records that fit, or EFAULT, as from the kernel, never a SIGSEGV.
    let mut writable_to = buf as usize + w;
    for (name, rec) in children {
        if let RecordRef::Entry { header, .. } = rec {
            let dtype = d_type(header.kind, header.mode);
            let (at, end) = (
                buf as usize + w,
                buf as usize + w + out.fmt.reclen(name.len()),
            );
            if end <= buf as usize + count && end > writable_to {
                let from = at.max(writable_to);
                if !sys::writable(from as *mut u8, end - from) {
                    if w == 0 {
                        return fail(libc::EFAULT) as isize;
                    }
                    break;
                }
                writable_to = ((end - 1) | (sys::PAGE - 1)) + 1;
            }
            // SAFETY: the caller's buffer of `count` bytes, the record's
            // bytes checked writable just above.
            match unsafe { out.put(w, name, header.ino, rift_pos(i + 1), dtype) } {
                Some(len) => w += len,
                None if w == 0 => return fail(libc::EINVAL) as isize,
                None => break,
            }
        }
        i += 1;
    }
    let (_, eof) = crate::fdtable::dents(fd);
    crate::fdtable::set_dents(fd, i, eof);
    w as isize
}

/// glibc's `getdents64` wrapper (2.30+), for tools that read directories
/// without readdir.
#[no_mangle]
pub extern "C" fn getdents64(fd: c_int, buf: *mut libc::c_void, count: libc::size_t) -> isize {
    getdents(fd, buf as *mut u8, count.min(i32::MAX as usize), Dents::V64)
}
