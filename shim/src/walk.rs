//! glibc's own walkers and name functions call libc internally (not through
//! the PLT), so they would see only the disk. They are rebuilt here on top of
//! the shim's interposed primitives:
//!
//! - `glob`/`glob64`: the real glob with `GLOB_ALTDIRFUNC` pointing at the
//!   shim's opendir/readdir/stat (unless the caller brought its own);
//! - `scandir`/`scandir64`/`scandirat`: opendir + readdir + qsort, as glibc;
//! - `realpath`/`canonicalize_file_name`/`__realpath_chk`: the component walk
//!   with the shim's lstat and readlink;
//! - `nftw`/`nftw64`/`ftw`/`ftw64`: a depth-first walk with the shim's
//!   opendir/readdir/lstat/stat.

use core::ffi::CStr;

use libc::{c_char, c_int, c_void, dirent, dirent64, size_t, DIR};
use vrift_shim_core::PATH_MAX;

use crate::call_real;
use crate::real::fail;

// ---------------------------------------------------------------- glob

/// glibc's `glob_t` (x86_64/aarch64 layout), with the ALTDIRFUNC hooks.
#[repr(C)]
pub struct GlobT {
    gl_pathc: size_t,
    gl_pathv: *mut *mut c_char,
    gl_offs: size_t,
    gl_flags: c_int,
    gl_closedir: Option<extern "C" fn(*mut c_void)>,
    gl_readdir: Option<extern "C" fn(*mut c_void) -> *mut c_void>,
    gl_opendir: Option<extern "C" fn(*const c_char) -> *mut c_void>,
    gl_lstat: Option<extern "C" fn(*const c_char, *mut c_void) -> c_int>,
    gl_stat: Option<extern "C" fn(*const c_char, *mut c_void) -> c_int>,
}

const GLOB_ALTDIRFUNC: c_int = 1 << 9;

extern "C" fn alt_closedir(d: *mut c_void) {
    crate::dir::closedir(d as *mut DIR);
}
extern "C" fn alt_readdir(d: *mut c_void) -> *mut c_void {
    crate::dir::readdir64(d as *mut DIR) as *mut c_void
}
extern "C" fn alt_opendir(p: *const c_char) -> *mut c_void {
    crate::dir::opendir(p) as *mut c_void
}
extern "C" fn alt_lstat(p: *const c_char, st: *mut c_void) -> c_int {
    crate::stat::lstat64(p, st as *mut libc::stat64)
}
extern "C" fn alt_stat(p: *const c_char, st: *mut c_void) -> c_int {
    crate::stat::stat64(p, st as *mut libc::stat64)
}

type ErrFunc = Option<extern "C" fn(*const c_char, c_int) -> c_int>;

fn glob_impl(
    pattern: *const c_char,
    flags: c_int,
    errfunc: ErrFunc,
    g: *mut GlobT,
    is64: bool,
) -> c_int {
    let raw = g as *mut c_void;
    let call = |flags: c_int| {
        if is64 {
            call_real!(GLOB64(pattern, flags, errfunc, raw) or libc::GLOB_NOSPACE)
        } else {
            call_real!(GLOB(pattern, flags, errfunc, raw) or libc::GLOB_NOSPACE)
        }
    };
    if flags & GLOB_ALTDIRFUNC != 0 || !crate::state::ready() || g.is_null() {
        return call(flags);
    }
    // SAFETY: the caller's glob_t; the hooks are read only with ALTDIRFUNC.
    let g = unsafe { &mut *g };
    g.gl_closedir = Some(alt_closedir);
    g.gl_readdir = Some(alt_readdir);
    g.gl_opendir = Some(alt_opendir);
    g.gl_lstat = Some(alt_lstat);
    g.gl_stat = Some(alt_stat);
    let rc = call(flags | GLOB_ALTDIRFUNC);
    // The caller did not ask for ALTDIRFUNC: do not report it back.
    g.gl_flags &= !GLOB_ALTDIRFUNC;
    rc
}

#[no_mangle]
pub extern "C" fn glob(
    pattern: *const c_char,
    flags: c_int,
    errfunc: ErrFunc,
    g: *mut GlobT,
) -> c_int {
    glob_impl(pattern, flags, errfunc, g, false)
}

#[no_mangle]
pub extern "C" fn glob64(
    pattern: *const c_char,
    flags: c_int,
    errfunc: ErrFunc,
    g: *mut GlobT,
) -> c_int {
    glob_impl(pattern, flags, errfunc, g, true)
}

// ---------------------------------------------------------------- scandir

type Filter = Option<extern "C" fn(*const dirent) -> c_int>;
type Compar = Option<extern "C" fn(*const *const dirent, *const *const dirent) -> c_int>;

fn scandir_dirp(
    dirp: *mut DIR,
    out: *mut *mut *mut dirent,
    filter: Filter,
    compar: Compar,
) -> c_int {
    if dirp.is_null() {
        return -1;
    }
    let mut list: *mut *mut dirent = core::ptr::null_mut();
    let (mut n, mut cap) = (0usize, 0usize);
    loop {
        let e = crate::dir::readdir(dirp);
        if e.is_null() {
            break;
        }
        if let Some(f) = filter {
            if f(e) == 0 {
                continue;
            }
        }
        if n == cap {
            cap = if cap == 0 { 16 } else { cap * 2 };
            // SAFETY: growing our own malloc'd array (the caller frees it, as glibc's).
            let grown = unsafe {
                libc::realloc(
                    list as *mut c_void,
                    cap * core::mem::size_of::<*mut dirent>(),
                )
            };
            if grown.is_null() {
                free_list(list, n);
                crate::dir::closedir(dirp);
                return fail(libc::ENOMEM);
            }
            list = grown as *mut *mut dirent;
        }
        // SAFETY: e points at a dirent with a valid d_reclen.
        let size = unsafe { (*e).d_reclen } as usize;
        // SAFETY: allocating a copy the caller frees.
        let copy = unsafe { libc::malloc(size) } as *mut dirent;
        if copy.is_null() {
            free_list(list, n);
            crate::dir::closedir(dirp);
            return fail(libc::ENOMEM);
        }
        // SAFETY: copying d_reclen bytes of the entry.
        unsafe {
            core::ptr::copy_nonoverlapping(e as *const u8, copy as *mut u8, size);
            *list.add(n) = copy;
        }
        n += 1;
    }
    crate::dir::closedir(dirp);
    if let Some(c) = compar {
        // SAFETY: sorting our array with the caller's comparator (qsort's ABI).
        unsafe {
            libc::qsort(
                list as *mut c_void,
                n,
                core::mem::size_of::<*mut dirent>(),
                Some(core::mem::transmute::<
                    extern "C" fn(*const *const dirent, *const *const dirent) -> c_int,
                    unsafe extern "C" fn(*const c_void, *const c_void) -> c_int,
                >(c)),
            )
        };
    }
    // SAFETY: the caller's out-pointer.
    unsafe { *out = list };
    n as c_int
}

fn free_list(list: *mut *mut dirent, n: usize) {
    for i in 0..n {
        // SAFETY: entries we malloc'd.
        unsafe { libc::free(*list.add(i) as *mut c_void) };
    }
    // SAFETY: the array we realloc'd.
    unsafe { libc::free(list as *mut c_void) };
}

#[no_mangle]
pub extern "C" fn scandir(
    dir: *const c_char,
    out: *mut *mut *mut dirent,
    filter: Filter,
    compar: Compar,
) -> c_int {
    scandir_dirp(crate::dir::opendir(dir), out, filter, compar)
}

#[no_mangle]
pub extern "C" fn scandir64(
    dir: *const c_char,
    out: *mut *mut *mut dirent64,
    filter: Filter,
    compar: Compar,
) -> c_int {
    scandir(dir, out as *mut *mut *mut dirent, filter, compar)
}

#[no_mangle]
pub extern "C" fn scandirat(
    dirfd: c_int,
    dir: *const c_char,
    out: *mut *mut *mut dirent,
    filter: Filter,
    compar: Compar,
) -> c_int {
    let fd = crate::open::vrift_openat(
        dirfd,
        dir,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
        2,
    );
    if fd < 0 {
        return -1;
    }
    let dirp = crate::dir::fdopendir(fd);
    if dirp.is_null() {
        crate::fds::close(fd);
        return -1;
    }
    scandir_dirp(dirp, out, filter, compar)
}

#[no_mangle]
pub extern "C" fn scandirat64(
    dirfd: c_int,
    dir: *const c_char,
    out: *mut *mut *mut dirent64,
    filter: Filter,
    compar: Compar,
) -> c_int {
    scandirat(dirfd, dir, out as *mut *mut *mut dirent, filter, compar)
}

// ---------------------------------------------------------------- realpath

const MAX_LINKS: usize = 40;

/// The canonical absolute path of `path` in the view, into `out`.
fn canonicalize(path: &[u8], out: &mut [u8; PATH_MAX]) -> Result<usize, c_int> {
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    // `rest`: what remains to resolve; `out[..len]`: resolved so far.
    let mut rest = [0u8; PATH_MAX];
    let mut rest_len;
    let mut len;
    if path[0] == b'/' {
        out[0] = b'/';
        len = 1;
    } else {
        let mut cwd = [0u8; PATH_MAX];
        let n = crate::sys::getcwd_raw(&mut cwd).ok_or(libc::ENOENT)?;
        out[..n].copy_from_slice(&cwd[..n]);
        len = n;
    }
    if path.len() > PATH_MAX {
        return Err(libc::ENAMETOOLONG);
    }
    rest[..path.len()].copy_from_slice(path);
    rest_len = path.len();
    let mut pos = 0;
    let mut links = 0;
    while pos < rest_len {
        while pos < rest_len && rest[pos] == b'/' {
            pos += 1;
        }
        let start = pos;
        while pos < rest_len && rest[pos] != b'/' {
            pos += 1;
        }
        let comp = &rest[start..pos];
        match comp {
            b"" | b"." => continue,
            b".." => {
                while len > 1 && out[len - 1] != b'/' {
                    len -= 1;
                }
                if len > 1 {
                    len -= 1;
                }
                continue;
            }
            _ => {}
        }
        let save = len;
        if len > 1 {
            if len + 1 > PATH_MAX {
                return Err(libc::ENAMETOOLONG);
            }
            out[len] = b'/';
            len += 1;
        }
        if len + comp.len() >= PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        out[len..len + comp.len()].copy_from_slice(comp);
        len += comp.len();
        out[len] = 0;
        // SAFETY: zeroed stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        if crate::stat::lstat(out.as_ptr() as *const c_char, &mut st) != 0 {
            // SAFETY: errno is thread-local.
            return Err(unsafe { *libc::__errno_location() });
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                return Err(libc::ELOOP);
            }
            let mut target = [0u8; PATH_MAX];
            let n = crate::fds::readlink(
                out.as_ptr() as *const c_char,
                target.as_mut_ptr() as *mut c_char,
                PATH_MAX,
            );
            if n < 0 {
                // SAFETY: errno is thread-local.
                return Err(unsafe { *libc::__errno_location() });
            }
            let n = n as usize;
            // New rest = target + remaining rest.
            let remaining = rest_len - pos;
            if n + remaining > PATH_MAX {
                return Err(libc::ENAMETOOLONG);
            }
            let mut next = [0u8; PATH_MAX];
            next[..n].copy_from_slice(&target[..n]);
            next[n..n + remaining].copy_from_slice(&rest[pos..rest_len]);
            rest[..n + remaining].copy_from_slice(&next[..n + remaining]);
            rest_len = n + remaining;
            pos = 0;
            if target[0] == b'/' {
                len = 1;
                out[0] = b'/';
            } else {
                len = save;
            }
        } else if pos < rest_len && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(libc::ENOTDIR);
        }
    }
    Ok(len)
}

fn realpath_impl(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    if path.is_null() {
        fail(libc::EINVAL);
        return core::ptr::null_mut();
    }
    if crate::sys::unreadable(path) {
        fail(libc::EFAULT);
        return core::ptr::null_mut();
    }
    // SAFETY: libc contract: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    let mut out = [0u8; PATH_MAX];
    match canonicalize(p, &mut out) {
        Err(e) => {
            fail(e);
            core::ptr::null_mut()
        }
        Ok(n) => {
            let dst = if resolved.is_null() {
                // SAFETY: the caller frees it (realpath's contract).
                let m = unsafe { libc::malloc(n + 1) } as *mut c_char;
                if m.is_null() {
                    fail(libc::ENOMEM);
                    return m;
                }
                m
            } else {
                resolved
            };
            // SAFETY: dst holds at least PATH_MAX (caller) or n + 1 (ours) bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(out.as_ptr(), dst as *mut u8, n);
                *dst.add(n) = 0;
            }
            dst
        }
    }
}

#[no_mangle]
pub extern "C" fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    if !crate::state::ready() {
        return call_real!(REALPATH(path, resolved) or core::ptr::null_mut());
    }
    realpath_impl(path, resolved)
}

#[no_mangle]
pub extern "C" fn canonicalize_file_name(path: *const c_char) -> *mut c_char {
    realpath(path, core::ptr::null_mut())
}

#[no_mangle]
pub extern "C" fn __realpath_chk(
    path: *const c_char,
    resolved: *mut c_char,
    resolved_len: size_t,
) -> *mut c_char {
    if resolved_len < PATH_MAX {
        // glibc's fortify check: a buffer overflow is a bug in the caller.
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }
    realpath(path, resolved)
}

// ---------------------------------------------------------------- nftw / ftw

type NftwFn = extern "C" fn(*const c_char, *const libc::stat, c_int, *mut Ftw) -> c_int;
type FtwFn = extern "C" fn(*const c_char, *const libc::stat, c_int) -> c_int;

/// glibc's `struct FTW` (declared below the layers that use it: the table
/// of real functions names it too).
pub use vrift_shim_core::abi::Ftw;

const FTW_F: c_int = 0;
const FTW_D: c_int = 1;
const FTW_DNR: c_int = 2;
const FTW_NS: c_int = 3;
const FTW_SL: c_int = 4;
const FTW_DP: c_int = 5;
const FTW_SLN: c_int = 6;

const FTW_PHYS: c_int = 1;
const FTW_MOUNT: c_int = 2;
const FTW_CHDIR: c_int = 4;
const FTW_DEPTH: c_int = 8;
const FTW_ACTIONRETVAL: c_int = 16;
const FTW_SKIP_SUBTREE: c_int = 2;
const FTW_SKIP_SIBLINGS: c_int = 3;

enum Cb {
    Nftw(NftwFn),
    Ftw(FtwFn),
}

struct Walk {
    cb: Cb,
    flags: c_int,
    dev: u64,
    path: [u8; PATH_MAX + 1],
}

impl Walk {
    fn call(
        &mut self,
        len: usize,
        base: usize,
        st: &libc::stat,
        kind: c_int,
        level: c_int,
    ) -> c_int {
        self.path[len] = 0;
        let p = self.path.as_ptr() as *const c_char;
        match self.cb {
            Cb::Nftw(f) => {
                let mut ftw = Ftw {
                    base: base as c_int,
                    level,
                };
                f(p, st, kind, &mut ftw)
            }
            Cb::Ftw(f) => f(p, st, kind),
        }
    }

    /// Visits `path[..len]`; returns the callback's stop value (0: go on).
    fn visit(&mut self, len: usize, base: usize, level: c_int) -> c_int {
        self.path[len] = 0;
        let p = self.path.as_ptr() as *const c_char;
        // SAFETY: zeroed stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        let phys = self.flags & FTW_PHYS != 0;
        let ok = if phys {
            crate::stat::lstat(p, &mut st) == 0
        } else {
            crate::stat::stat(p, &mut st) == 0 || {
                let r = crate::stat::lstat(p, &mut st) == 0;
                if r {
                    return self.call(len, base, &st, FTW_SLN, level);
                }
                false
            }
        };
        if !ok {
            return self.call(len, base, &st, FTW_NS, level);
        }
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFLNK {
            return self.call(len, base, &st, FTW_SL, level);
        }
        if fmt != libc::S_IFDIR {
            return self.call(len, base, &st, FTW_F, level);
        }
        if self.flags & FTW_MOUNT != 0 && level > 0 && st.st_dev != self.dev {
            return 0;
        }
        let depth_first = self.flags & FTW_DEPTH != 0;
        if !depth_first {
            let r = self.call(len, base, &st, FTW_D, level);
            if self.flags & FTW_ACTIONRETVAL != 0 {
                if r == FTW_SKIP_SUBTREE {
                    return 0;
                }
                if r != 0 {
                    return r;
                }
            } else if r != 0 {
                return r;
            }
        }
        let dirp = crate::dir::opendir(p);
        if dirp.is_null() {
            return self.call(len, base, &st, FTW_DNR, level);
        }
        let mut result = 0;
        loop {
            let e = crate::dir::readdir64(dirp);
            if e.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*e).d_name.as_ptr()) }.to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let child_base = len + 1;
            if child_base + name.len() > PATH_MAX {
                continue;
            }
            let mut name_copy = [0u8; 256];
            name_copy[..name.len()].copy_from_slice(name);
            self.path[len] = b'/';
            self.path[child_base..child_base + name.len()]
                .copy_from_slice(&name_copy[..name.len()]);
            let r = self.visit(child_base + name.len(), child_base, level + 1);
            if r != 0 {
                if self.flags & FTW_ACTIONRETVAL != 0 && r == FTW_SKIP_SIBLINGS {
                    break;
                }
                result = r;
                break;
            }
        }
        crate::dir::closedir(dirp);
        if result != 0 {
            return result;
        }
        if depth_first {
            return self.call(len, base, &st, FTW_DP, level);
        }
        0
    }
}

fn walk(dir: *const c_char, cb: Cb, flags: c_int) -> c_int {
    if dir.is_null() {
        return fail(libc::ENOENT);
    }
    if crate::sys::unreadable(dir) {
        return fail(libc::EFAULT);
    }
    if flags & FTW_CHDIR != 0 {
        // Not rebuilt: the real walker (which sees only the disk) handles it.
        return -2;
    }
    // SAFETY: libc contract: a NUL-terminated path.
    let d = unsafe { CStr::from_ptr(dir) }.to_bytes();
    if d.len() > PATH_MAX {
        return fail(libc::ENAMETOOLONG);
    }
    let mut w = Walk {
        cb,
        flags,
        dev: 0,
        path: [0; PATH_MAX + 1],
    };
    w.path[..d.len()].copy_from_slice(d);
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    if crate::stat::stat(dir, &mut st) != 0 && crate::stat::lstat(dir, &mut st) != 0 {
        return -1;
    }
    w.dev = st.st_dev;
    let base = d
        .iter()
        .rposition(|&c| c == b'/')
        .map(|i| i + 1)
        .unwrap_or(0);
    w.visit(d.len(), base, 0)
}

#[no_mangle]
pub extern "C" fn nftw(dir: *const c_char, f: NftwFn, fds: c_int, flags: c_int) -> c_int {
    match walk(dir, Cb::Nftw(f), flags) {
        -2 => call_real!(NFTW(dir, f, fds, flags) or fail(libc::ENOSYS)),
        r => r,
    }
}

#[no_mangle]
pub extern "C" fn nftw64(dir: *const c_char, f: NftwFn, fds: c_int, flags: c_int) -> c_int {
    nftw(dir, f, fds, flags)
}

#[no_mangle]
pub extern "C" fn ftw(dir: *const c_char, f: FtwFn, fds: c_int) -> c_int {
    let _ = fds;
    walk(dir, Cb::Ftw(f), 0)
}

#[no_mangle]
pub extern "C" fn ftw64(dir: *const c_char, f: FtwFn, fds: c_int) -> c_int {
    ftw(dir, f, fds)
}
