//! The exec family, posix_spawn, system/popen and dlopen.
//!
//! Two jobs:
//! 1. The inception survives: a child started with a scrubbed environment
//!    (`env -i`, an explicit envp) still gets `LD_PRELOAD` and the `VRIFT_*`
//!    variables, rebuilt on the stack (these run in vfork children: nothing
//!    here allocates or locks).
//! 2. Rift executables run: blobs are never executable, so a rift file is
//!    run from an executable copy keyed by its hash (`<cas>/exec/<hash>`,
//!    made once, atomically). A `#!` script is run by its interpreter with
//!    the view path as the script argument, so `$0` is what the user typed.

use core::ffi::CStr;
use core::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_char, c_int, c_void, pid_t};
use vrift_format::{ContentHash, Kind, HASH_HEX_LEN};
use vrift_shim_core::PATH_MAX;

use crate::real::fail;
use crate::resolve::{resolve, PathBuf, View};
use crate::state::{self, KEPT_VARS};
use crate::{call_real, sys};

/// The variables an inception must keep, as captured at start-up.
const KEEP: [&[u8]; KEPT_VARS] = [
    b"LD_PRELOAD",
    b"VRIFT_PROJECT_ROOT",
    b"VRIFT_INCEPTION",
    b"VR_THE_SOURCE",
    b"VRIFT_SHIM_PATH",
    b"VRIFT_MANIFEST",
    b"VRIFT_EXE",
];
/// Pointers to the `NAME=value` strings of KEEP in the initial environment
/// (in the constructor's page: `state::CAPTURED_ENV`).
static CAPTURED: &[AtomicUsize; KEPT_VARS] = state::CAPTURED_ENV;

/// Records where the inception's variables live (constructor).
pub fn capture_env() {
    for (i, name) in KEEP.iter().enumerate() {
        let mut cname = [0u8; 32];
        cname[..name.len()].copy_from_slice(name);
        // SAFETY: NUL-terminated name.
        let v = unsafe { libc::getenv(cname.as_ptr() as *const c_char) };
        if !v.is_null() {
            // The value follows "NAME=" in the same environment string.
            CAPTURED[i].store(v as usize - name.len() - 1, Ordering::Relaxed);
        }
    }
}

fn captured(i: usize) -> Option<&'static [u8]> {
    let p = CAPTURED[i].load(Ordering::Relaxed);
    if p == 0 {
        return None;
    }
    // SAFETY: a string of the initial environment; it lives for the process.
    Some(unsafe { CStr::from_ptr(p as *const c_char) }.to_bytes())
}

fn shim_path() -> Option<&'static [u8]> {
    captured(4).map(|s| &s[KEEP[4].len() + 1..])
}

fn var_name(entry: &[u8]) -> &[u8] {
    match entry.iter().position(|&c| c == b'=') {
        Some(i) => &entry[..i],
        None => entry,
    }
}

fn preload_has_shim(entry: &[u8], shim: &[u8]) -> bool {
    entry[KEEP[0].len() + 1..]
        .split(|&c| c == b':' || c == b' ')
        .any(|p| p == shim)
}

const MAX_ENV: usize = 4096;

/// What [`with_env`] found missing from an environment.
struct EnvScan<'a> {
    /// Entries before the terminating NULL.
    len: usize,
    /// Which KEEP variables are there (LD_PRELOAD: with this library).
    present: [bool; KEPT_VARS],
    /// The value of an LD_PRELOAD that lacks this library.
    preload_other: Option<&'a [u8]>,
}

/// Calls `f` with an environment that keeps the inception (either `envp`
/// itself, or a copy on the stack with the missing variables added).
///
/// The check keeps a small stack frame; the copy is built in a separate
/// frame. In a fork child every stack page written is a copy-on-write
/// fault, so the common case (nothing missing) must not reserve, and
/// stack-probe, 40 KiB it does not use.
pub fn with_env<R>(envp: *const *const c_char, f: impl FnOnce(*const *const c_char) -> R) -> R {
    let Some(shim) = shim_path() else {
        return f(envp);
    };
    if envp.is_null() {
        return f(envp);
    }
    let mut scan = EnvScan {
        len: 0,
        present: [false; KEPT_VARS],
        preload_other: None,
    };
    // SAFETY: envp is a NULL-terminated array of C strings (exec contract).
    unsafe {
        while !(*envp.add(scan.len)).is_null() {
            let e = CStr::from_ptr(*envp.add(scan.len)).to_bytes();
            let name = var_name(e);
            if let Some(i) = KEEP.iter().position(|k| *k == name) {
                if i == 0 && !preload_has_shim(e, shim) {
                    scan.preload_other = Some(&e[KEEP[0].len() + 1..]);
                } else {
                    scan.present[i] = true;
                }
            }
            scan.len += 1;
        }
    }
    if scan
        .present
        .iter()
        .enumerate()
        .all(|(i, p)| *p || captured(i).is_none())
        || scan.len + KEEP.len() + 1 > MAX_ENV
    {
        return f(envp);
    }
    with_env_rebuilt(envp, &scan, shim, f)
}

/// [`with_env`]'s copy of `envp` with what `scan` found missing added.
#[inline(never)]
fn with_env_rebuilt<R>(
    envp: *const *const c_char,
    scan: &EnvScan,
    shim: &[u8],
    f: impl FnOnce(*const *const c_char) -> R,
) -> R {
    let mut out: [*const c_char; MAX_ENV] = [core::ptr::null(); MAX_ENV];
    let mut m = 0;
    for i in 0..scan.len {
        // SAFETY: envp has scan.len entries (scanned by the caller).
        let p = unsafe { *envp.add(i) };
        // SAFETY: as above.
        let e = unsafe { CStr::from_ptr(p) }.to_bytes();
        if scan.preload_other.is_some() && var_name(e) == KEEP[0] {
            continue; // replaced below
        }
        out[m] = p;
        m += 1;
    }
    let mut preload_buf = [0u8; 8192];
    for (i, was_present) in scan.present.iter().enumerate() {
        if *was_present {
            continue;
        }
        let Some(cap) = captured(i) else { continue };
        if i == 0 {
            if let Some(other) = scan.preload_other {
                // LD_PRELOAD=<shim>:<theirs>
                let parts: [&[u8]; 4] = [b"LD_PRELOAD=", shim, b":", other];
                let total: usize = parts.iter().map(|p| p.len()).sum();
                if total < preload_buf.len() {
                    let mut k = 0;
                    for part in parts {
                        preload_buf[k..k + part.len()].copy_from_slice(part);
                        k += part.len();
                    }
                    preload_buf[k] = 0;
                    out[m] = preload_buf.as_ptr() as *const c_char;
                    m += 1;
                    continue;
                }
            }
        }
        out[m] = cap.as_ptr() as *const c_char;
        m += 1;
    }
    out[m] = core::ptr::null();
    f(out.as_ptr())
}

/// Makes sure the process's own environ keeps the inception (before
/// system/popen, which spawn with environ).
fn restore_environ() {
    for i in 0..KEEP.len() {
        let Some(cap) = captured(i) else { continue };
        let mut cname = [0u8; 32];
        cname[..KEEP[i].len()].copy_from_slice(KEEP[i]);
        // SAFETY: NUL-terminated name.
        let cur = unsafe { libc::getenv(cname.as_ptr() as *const c_char) };
        let ok = !cur.is_null() && {
            // SAFETY: getenv returns a C string.
            let v = unsafe { CStr::from_ptr(cur) }.to_bytes();
            i != 0
                || v.split(|&c| c == b':' || c == b' ')
                    .any(|p| Some(p) == shim_path())
        };
        if !ok {
            // SAFETY: the captured string lives for the process; putenv keeps the pointer.
            unsafe { libc::putenv(cap.as_ptr() as *mut c_char) };
        }
    }
}

/// Calls `f` with `env` plus this library in `LD_AUDIT` (after any audit
/// modules already named there), for a rift program: the loader then asks
/// `audit::la_objsearch` where each library it looks for really is.
fn with_audit<R>(env: *const *const c_char, f: impl FnOnce(*const *const c_char) -> R) -> R {
    with_audit_hook(env, true, f)
}

/// Calls `f` with `env` minus this library in `LD_AUDIT`: [`with_audit`]
/// put it there for a rift program, and a program from disk that one starts
/// needs no hook (nor its cost at every start). Other audit modules stay.
fn without_audit<R>(env: *const *const c_char, f: impl FnOnce(*const *const c_char) -> R) -> R {
    with_audit_hook(env, false, f)
}

/// `env` with this library in `LD_AUDIT` (`wanted`) or not, other modules
/// kept in their order; `env` itself when it already is so. Built on the
/// stack: this may run in a vfork child.
fn with_audit_hook<R>(
    env: *const *const c_char,
    wanted: bool,
    f: impl FnOnce(*const *const c_char) -> R,
) -> R {
    const PREFIX: &[u8] = b"LD_AUDIT=";
    let Some(shim) = shim_path() else {
        return f(env);
    };
    if env.is_null() {
        return f(env);
    }
    let mut n = 0usize;
    let mut current: Option<(usize, &[u8])> = None;
    // SAFETY: env is a NULL-terminated array of C strings (exec contract).
    unsafe {
        while !(*env.add(n)).is_null() {
            let e = CStr::from_ptr(*env.add(n)).to_bytes();
            if let Some(value) = e.strip_prefix(PREFIX) {
                current = Some((n, value));
            }
            n += 1;
        }
    }
    let value = current.map_or(&b""[..], |(_, v)| v);
    let has = value.split(|&c| c == b':').any(|p| p == shim);
    if has == wanted || n + 2 > MAX_ENV {
        return f(env);
    }
    with_audit_rebuilt(env, n, current, shim, wanted, f)
}

/// [`with_audit_hook`]'s copy of `env` (`n` entries, `LD_AUDIT` at
/// `current`) with the hook added or removed; a separate frame, as in
/// [`with_env_rebuilt`].
#[inline(never)]
fn with_audit_rebuilt<R>(
    env: *const *const c_char,
    n: usize,
    current: Option<(usize, &[u8])>,
    shim: &[u8],
    wanted: bool,
    f: impl FnOnce(*const *const c_char) -> R,
) -> R {
    const PREFIX: &[u8] = b"LD_AUDIT=";
    let value = current.map_or(&b""[..], |(_, v)| v);
    // LD_AUDIT=<the other modules>[:<this library>]
    let mut entry = [0u8; PATH_MAX + 64];
    entry[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut k = PREFIX.len();
    let others = value
        .split(|&c| c == b':')
        .filter(|p| *p != shim && !p.is_empty());
    for part in others.chain(wanted.then_some(shim)) {
        if k + part.len() + 2 > entry.len() {
            return f(env);
        }
        if k > PREFIX.len() {
            entry[k] = b':';
            k += 1;
        }
        entry[k..k + part.len()].copy_from_slice(part);
        k += part.len();
    }
    entry[k] = 0;
    let mut out: [*const c_char; MAX_ENV] = [core::ptr::null(); MAX_ENV];
    let mut m = 0;
    for i in 0..n {
        if current.is_some_and(|(at, _)| at == i) {
            continue;
        }
        // SAFETY: env has n entries (scanned by the caller).
        out[m] = unsafe { *env.add(i) };
        m += 1;
    }
    if k > PREFIX.len() {
        out[m] = entry.as_ptr() as *const c_char;
        m += 1;
    }
    out[m] = core::ptr::null();
    f(out.as_ptr())
}

/// `<cas>/exec/<hex>`: an executable copy of a blob, made on first use.
fn exec_copy(hash: &ContentHash, size: u64, out: &mut [u8; PATH_MAX + 1]) -> Option<usize> {
    let table = state::table()?;
    let cas = table.cas_root();
    let mut hex = [0u8; HASH_HEX_LEN];
    hash.write_hex(&mut hex);
    const EXEC: &[u8] = concat!("/", vrift_format::exec_dir!()).as_bytes();
    let dir_len = cas.len() + EXEC.len();
    let total = dir_len + 1 + HASH_HEX_LEN;
    if total + 32 > PATH_MAX {
        return None;
    }
    out[..cas.len()].copy_from_slice(cas);
    out[cas.len()..dir_len].copy_from_slice(EXEC);
    out[dir_len] = b'/';
    out[dir_len + 1..total].copy_from_slice(&hex);
    out[total] = 0;
    // A copy of another size is damage (copies are not flushed, as fetched
    // blobs are not: a power loss can leave one cut short): made again.
    if let Some(st) = sys::stat_raw(&out[..total]) {
        if st.st_mode & 0o111 != 0 && st.st_size as u64 == size {
            return Some(total);
        }
    }
    // Build it: blob → temp file beside it → 0555 → rename.
    let mut dir = [0u8; PATH_MAX + 1];
    dir[..dir_len].copy_from_slice(&out[..dir_len]);
    // SAFETY: NUL-terminated path.
    unsafe { crate::raw_syscall!(libc::SYS_mkdirat, libc::AT_FDCWD, dir.as_ptr(), 0o755) };
    let src = open_blob(hash, size)?;
    let mut tmp = [0u8; PATH_MAX + 1];
    temp_name(&out[..total], &mut tmp);
    let ok = copy_to_executable(src, &tmp, None);
    sys::close_raw(src);
    (ok && rename_into_place(&tmp, out)).then_some(total)
}

/// `PATH.tmp.<pid>` (NUL-terminated) into `tmp`; `path` is at most
/// PATH_MAX - 32 bytes.
fn temp_name(path: &[u8], tmp: &mut [u8; PATH_MAX + 1]) {
    let total = path.len();
    tmp[..total].copy_from_slice(path);
    let suffix = b".tmp.";
    tmp[total..total + suffix.len()].copy_from_slice(suffix);
    let mut k = total + suffix.len();
    // SAFETY: getpid has no preconditions.
    let mut pid = unsafe { libc::getpid() } as u32;
    loop {
        tmp[k] = b'0' + (pid % 10) as u8;
        k += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    tmp[k] = 0;
}

/// Writes the contents of `src` into a new file `tmp` (NUL-terminated),
/// mode 0555, with `mtime` if given. False (and no file) on failure.
fn copy_to_executable(src: c_int, tmp: &[u8; PATH_MAX + 1], mtime: Option<libc::timespec>) -> bool {
    let dst = sys::openat_raw(
        libc::AT_FDCWD,
        tmp.as_ptr() as *const c_char,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
        0o700,
    );
    if dst < 0 {
        return false;
    }
    let mut ok = true;
    loop {
        // SAFETY: copying between two fds we opened.
        let n = unsafe {
            crate::raw_syscall!(
                libc::SYS_copy_file_range,
                src,
                core::ptr::null_mut::<i64>(),
                dst,
                core::ptr::null_mut::<i64>(),
                1usize << 30,
                0,
            )
        };
        if n == 0 {
            break;
        }
        if n < 0 {
            ok = copy_by_read(src, dst);
            break;
        }
    }
    // SAFETY: fds we own.
    unsafe { crate::raw_syscall!(libc::SYS_fchmod, dst, 0o555) };
    if let Some(t) = mtime {
        let times = [t, t];
        // SAFETY: an fd we own and two valid timespecs.
        unsafe {
            crate::raw_syscall!(
                libc::SYS_utimensat,
                dst,
                core::ptr::null::<c_char>(),
                times.as_ptr(),
                0
            )
        };
    }
    sys::close_raw(dst);
    if !ok {
        // SAFETY: NUL-terminated path.
        unsafe { crate::raw_syscall!(libc::SYS_unlinkat, libc::AT_FDCWD, tmp.as_ptr(), 0) };
    }
    ok
}

/// Renames `tmp` over `dst` (both NUL-terminated); removes `tmp` on failure.
fn rename_into_place(tmp: &[u8; PATH_MAX + 1], dst: &[u8; PATH_MAX + 1]) -> bool {
    // SAFETY: NUL-terminated paths.
    let renamed = unsafe {
        crate::raw_syscall!(
            libc::SYS_renameat,
            libc::AT_FDCWD,
            tmp.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr()
        )
    } == 0;
    if !renamed {
        // SAFETY: NUL-terminated path.
        unsafe { crate::raw_syscall!(libc::SYS_unlinkat, libc::AT_FDCWD, tmp.as_ptr(), 0) };
    }
    renamed
}

/// Where rift files are mirrored for the loader, below the project root.
pub const MIRROR_DIR: &[u8] = concat!(
    "/",
    vrift_format::state_dir!(),
    "/",
    vrift_format::exec_dir!(),
    "/"
)
.as_bytes();

/// `ROOT/.vrift/exec/REL`: the rift file REL as a physical file that the
/// kernel can exec and the dynamic loader can open — a hard link to its
/// executable copy (a copy, if the store is on another filesystem).
///
/// Running a program from here rather than from `<cas>/exec/<hash>` keeps
/// `$ORIGIN` in a tree shaped like the project, so `RUNPATH=$ORIGIN/../lib`
/// leads the loader (through `audit::la_objsearch`) to the rift libraries
/// beside it; `/proc/self/exe` maps back to the view path (fds.rs).
/// Refreshed when the rift entry changes; concurrent refreshes are atomic
/// renames of identical content.
pub fn exec_mirror(
    rel: &[u8],
    hash: &ContentHash,
    size: u64,
    out: &mut [u8; PATH_MAX + 1],
) -> Option<usize> {
    let mut copy = [0u8; PATH_MAX + 1];
    let copy_len = exec_copy(hash, size, &mut copy)?;
    let root = state::ROOT.get();
    let base = root.len() + MIRROR_DIR.len();
    let total = base + rel.len();
    if rel.is_empty() || total + 32 > PATH_MAX {
        return None;
    }
    out[..root.len()].copy_from_slice(root);
    out[root.len()..base].copy_from_slice(MIRROR_DIR);
    out[base..total].copy_from_slice(rel);
    out[total] = 0;
    let want = sys::stat_raw(&copy[..copy_len])?;
    let stamp = hash_stamp(hash);
    let fresh = |st: &libc::stat| {
        (st.st_dev == want.st_dev && st.st_ino == want.st_ino)
            || (st.st_size == want.st_size
                && st.st_mtime == stamp.tv_sec
                && st.st_mtime_nsec == stamp.tv_nsec)
    };
    if sys::stat_raw(&out[..total]).is_some_and(|st| fresh(&st)) {
        return Some(total);
    }
    let mut tmp = [0u8; PATH_MAX + 1];
    temp_name(&out[..total], &mut tmp);
    let link = |tmp: &[u8; PATH_MAX + 1]| {
        // SAFETY: NUL-terminated paths.
        let r = unsafe {
            crate::raw_syscall!(
                libc::SYS_linkat,
                libc::AT_FDCWD,
                copy.as_ptr(),
                libc::AT_FDCWD,
                tmp.as_ptr(),
                0
            )
        };
        if r < 0 {
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() }
        } else {
            0
        }
    };
    let mut err = link(&tmp);
    if err == libc::ENOENT {
        make_parents(&mut tmp, root.len() + 1);
        err = link(&tmp);
    }
    if err == libc::EEXIST {
        // A leftover of a killed process with our pid: replace it.
        // SAFETY: NUL-terminated path.
        unsafe { crate::raw_syscall!(libc::SYS_unlinkat, libc::AT_FDCWD, tmp.as_ptr(), 0) };
        err = link(&tmp);
    }
    if err != 0 {
        // Another filesystem (EXDEV) or no hard links here: a copy, whose
        // time stamp says which content it holds.
        let src = sys::openat_raw(
            libc::AT_FDCWD,
            copy.as_ptr() as *const c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        );
        if src < 0 {
            return None;
        }
        let ok = copy_to_executable(src, &tmp, Some(stamp));
        sys::close_raw(src);
        if !ok {
            return None;
        }
    }
    rename_into_place(&tmp, out).then_some(total)
}

/// Makes the mirrors of the directories a program's run path names through
/// `$ORIGIN` (those the view has): the loader checks that each search
/// directory exists — the first time while loading the audit hook itself,
/// before the hook can answer — and never looks in one again.
/// `mirror`: the program's mirror (NUL-terminated); `view`: its view path.
fn prepare_origin_dirs(mirror: &[u8; PATH_MAX + 1], view: &[u8]) {
    let mlen = mirror.iter().position(|&c| c == 0).unwrap_or(0);
    let (Some(md), Some(vd)) = (
        mirror[..mlen].iter().rposition(|&c| c == b'/'),
        view.iter().rposition(|&c| c == b'/'),
    ) else {
        return;
    };
    let fd = sys::openat_raw(
        libc::AT_FDCWD,
        mirror.as_ptr() as *const c_char,
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    );
    if fd < 0 {
        return;
    }
    crate::elfdyn::for_each_run_path_entry(fd, |entry| {
        let rest = entry
            .strip_prefix(b"$ORIGIN")
            .or_else(|| entry.strip_prefix(b"${ORIGIN}"));
        let Some(rest) = rest else { return };
        let mut view_dir = [0u8; PATH_MAX + 1];
        let mut mirror_dir = [0u8; PATH_MAX + 1];
        let (vn, mn) = (vd + rest.len(), md + rest.len());
        if vn > PATH_MAX || mn > PATH_MAX {
            return;
        }
        view_dir[..vd].copy_from_slice(&view[..vd]);
        view_dir[vd..vn].copy_from_slice(rest);
        mirror_dir[..md].copy_from_slice(&mirror[..md]);
        mirror_dir[md..mn].copy_from_slice(rest);
        mirror_dir_if_in_view(&view_dir[..vn], &mirror_dir[..mn]);
    });
    sys::close_raw(fd);
}

/// Makes `mirror_dir` (and its parents below the root) if the view has a
/// directory at `view_dir`: the mirror holds only what the view has.
pub(crate) fn mirror_dir_if_in_view(view_dir: &[u8], mirror_dir: &[u8]) {
    let mut c = [0u8; PATH_MAX + 1];
    if view_dir.len() > PATH_MAX || mirror_dir.len() + 2 > PATH_MAX {
        return;
    }
    c[..view_dir.len()].copy_from_slice(view_dir);
    c[view_dir.len()] = 0;
    // SAFETY: all-zero is a valid stat buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    if crate::stat::stat(c.as_ptr() as *const c_char, &mut st) != 0
        || st.st_mode & libc::S_IFMT != libc::S_IFDIR
    {
        return;
    }
    c[..mirror_dir.len()].copy_from_slice(mirror_dir);
    c[mirror_dir.len()] = b'/';
    c[mirror_dir.len() + 1] = 0;
    make_parents(&mut c, state::ROOT.get().len() + 1);
}

/// A modification time derived from the content hash: how a mirror that
/// had to be copied (not linked) is known to be current.
fn hash_stamp(hash: &ContentHash) -> libc::timespec {
    let b = &hash.0;
    libc::timespec {
        tv_sec: u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as libc::time_t,
        tv_nsec: (u32::from_le_bytes([b[4], b[5], b[6], b[7]]) % 1_000_000_000) as libc::c_long,
    }
}

/// `mkdir -p` of the directories of `path` (NUL-terminated) below `from`.
fn make_parents(path: &mut [u8; PATH_MAX + 1], from: usize) {
    let end = path.iter().position(|&c| c == 0).unwrap_or(PATH_MAX);
    for i in from..end {
        if path[i] == b'/' {
            path[i] = 0;
            // SAFETY: NUL-terminated path.
            unsafe { crate::raw_syscall!(libc::SYS_mkdirat, libc::AT_FDCWD, path.as_ptr(), 0o755) };
            path[i] = b'/';
        }
    }
}

fn copy_by_read(src: c_int, dst: c_int) -> bool {
    // SAFETY: rewinding fds we own.
    unsafe {
        crate::raw_syscall!(libc::SYS_lseek, src, 0, libc::SEEK_SET);
        crate::raw_syscall!(libc::SYS_ftruncate, dst, 0);
        crate::raw_syscall!(libc::SYS_lseek, dst, 0, libc::SEEK_SET);
    }
    let mut buf = [0u8; 16384];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { crate::raw_syscall!(libc::SYS_read, src, buf.as_mut_ptr(), buf.len()) };
        if n == 0 {
            return true;
        }
        if n < 0 {
            return false;
        }
        // SAFETY: writing what we read.
        if unsafe { crate::raw_syscall!(libc::SYS_write, dst, buf.as_ptr(), n as usize) } != n {
            return false;
        }
    }
}

/// Where a `#!` line's parts start in the buffer it was read into (each is
/// NUL-terminated in place).
struct Shebang {
    interp: usize,
    arg: Option<usize>,
}

/// Fills `args` with `interpreter [arg] VIEW-PATH argv[1..] NULL`: how the
/// kernel runs a script, but with the view path as the script argument.
/// E2BIG if it does not fit.
fn script_argv(
    line: &[u8; 256],
    sb: &Shebang,
    view: *const c_char,
    argv: *const *const c_char,
    args: &mut [*const c_char; MAX_ARGS],
) -> Result<(), c_int> {
    let mut k = 0;
    args[k] = line[sb.interp..].as_ptr() as *const c_char;
    k += 1;
    if let Some(a) = sb.arg {
        args[k] = line[a..].as_ptr() as *const c_char;
        k += 1;
    }
    args[k] = view;
    k += 1;
    if !argv.is_null() {
        // SAFETY: argv is NULL-terminated (exec contract).
        unsafe {
            if !(*argv).is_null() {
                let mut i = 1;
                while !(*argv.add(i)).is_null() {
                    if k >= MAX_ARGS - 1 {
                        return Err(libc::E2BIG);
                    }
                    args[k] = *argv.add(i);
                    k += 1;
                    i += 1;
                }
            }
        }
    }
    args[k] = core::ptr::null();
    Ok(())
}

/// A blob opened read-only (raw syscall: no interposed open); one missing
/// from the store (pulled without --eager) is fetched by the daemon first,
/// one whose size is not `size` (damaged, see `open::damaged`) fetched
/// again, or refused: never its bytes.
fn open_blob(hash: &ContentHash, size: u64) -> Option<c_int> {
    let mut blob = [0u8; PATH_MAX + 1];
    crate::resolve::blob_path(hash, &mut blob)?;
    let open = || {
        sys::openat_raw(
            libc::AT_FDCWD,
            blob.as_ptr() as *const c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
    };
    let mut fd = open();
    // SAFETY: errno is thread-local.
    let missing = fd < 0 && unsafe { *libc::__errno_location() } == libc::ENOENT;
    if missing && crate::client::fetch_blob(hash, size, b"") {
        fd = open();
    }
    let mut blob = if fd >= 0 {
        sys::fd_blob_state(fd)
    } else {
        None
    };
    if fd >= 0 && blob.map(|b| b.0) != Some(size) {
        sys::close_raw(fd);
        fd = -1;
        if crate::client::refetch_damaged(hash, size, b"") {
            fd = open();
            blob = if fd >= 0 {
                sys::fd_blob_state(fd)
            } else {
                None
            };
            if fd >= 0 && blob.map(|b| b.0) != Some(size) {
                sys::close_raw(fd);
                fd = -1;
            }
        }
    }
    if fd >= 0 && !crate::client::verified(hash, size, blob.is_some_and(|b| b.1), b"") {
        sys::close_raw(fd);
        fd = -1;
    }
    (fd >= 0).then_some(fd)
}

/// The `#!` line of a blob, read into `line`.
fn shebang(hash: &ContentHash, size: u64, line: &mut [u8; 256]) -> Option<Shebang> {
    let fd = open_blob(hash, size)?;
    // SAFETY: reading into our buffer.
    let n = unsafe { crate::raw_syscall!(libc::SYS_read, fd, line.as_mut_ptr(), line.len() - 1) };
    sys::close_raw(fd);
    if n < 3 || line[0] != b'#' || line[1] != b'!' {
        return None;
    }
    let n = n as usize;
    let end = line[..n].iter().position(|&c| c == b'\n').unwrap_or(n);
    let is_space = |c: u8| c == b' ' || c == b'\t' || c == b'\r';
    let mut i = 2;
    while i < end && is_space(line[i]) {
        i += 1;
    }
    let interp_start = i;
    while i < end && !is_space(line[i]) {
        i += 1;
    }
    let interp_end = i;
    if interp_end == interp_start {
        return None;
    }
    while i < end && is_space(line[i]) {
        i += 1;
    }
    let mut arg_end = end;
    while arg_end > i && is_space(line[arg_end - 1]) {
        arg_end -= 1;
    }
    line[interp_end] = 0;
    let arg = (arg_end > i).then(|| {
        line[arg_end] = 0;
        i
    });
    Some(Shebang {
        interp: interp_start,
        arg,
    })
}

/// Longest argv a rewritten script invocation may have (stack-bound: these
/// run in vfork children).
const MAX_ARGS: usize = 1024;

/// Runs `path` (resolved in the view) with `argv` and an already fixed `env`.
///
/// Only the resolution's buffer lives in this frame: the rarer branches
/// have their own (see [`with_env`] on why the stack depth of an exec
/// matters).
fn exec_resolved(
    path: *const c_char,
    argv: *const *const c_char,
    env: *const *const c_char,
) -> c_int {
    let real = |p: *const c_char| {
        without_audit(
            env,
            |env| call_real!(EXECVE(p, argv, env) or fail(libc::ENOSYS)),
        )
    };
    if crate::sys::unreadable(path) {
        return real(path);
    }
    if cannot_load_library() {
        return fail(refuse_unloadable(path));
    }
    // SAFETY: exec contract: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    let mut buf = PathBuf::new();
    match resolve(libc::AT_FDCWD, p, true, &mut buf).0 {
        View::Pass if crate::state::ready() => match unviewable(path, env) {
            Some(why) => run_unviewable(why, path, argv, env),
            None => real(path),
        },
        View::Pass => real(path),
        View::Disk { rewritten } => {
            let disk = if rewritten { buf.c_ptr() } else { path };
            if let Some(why) = unviewable(disk, env) {
                return run_unviewable(why, disk, argv, env);
            }
            let r = real(disk);
            // Still here: failed.
            match rewritten {
                false => exec_behind_physical_symlink(&buf, argv, env).unwrap_or(r),
                true => r,
            }
        }
        View::Error(e) => fail(e),
        View::Entry { header, .. } if header.is_staged() => {
            // Just written (a linker's output): sealed first, then run.
            if crate::write::seal_for_exec(buf.rel()) != 0 {
                return -1;
            }
            exec_resolved(path, argv, env)
        }
        View::Entry { header, .. } => exec_rift_program(&mut buf, &header, argv, env),
    }
}

/// A rift program behind a physical directory symlink runs by its view
/// path; None when `buf` is not such a path.
#[inline(never)]
fn exec_behind_physical_symlink(
    buf: &PathBuf,
    argv: *const *const c_char,
    env: *const *const c_char,
) -> Option<c_int> {
    let mut view = PathBuf::new();
    crate::resolve::physical_fallback(buf, true, &mut view)?;
    Some(exec_resolved(view.c_ptr(), argv, env))
}

/// Runs the rift file `buf` (sealed, described by `header`): a `#!` script
/// by its interpreter, a binary from its mirror with the audit hook.
#[inline(never)]
fn exec_rift_program(
    buf: &mut PathBuf,
    header: &vrift_format::RecordHeader,
    argv: *const *const c_char,
    env: *const *const c_char,
) -> c_int {
    if header.kind == Kind::Symlink {
        return fail(libc::ELOOP);
    }
    if header.kind != Kind::File || !crate::open::may_exec(&crate::statbuf::Meta::of(header, b"")) {
        return fail(libc::EACCES);
    }
    let mut line = [0u8; 256];
    if let Some(sb) = shebang(&header.hash, header.size, &mut line) {
        let mut args: [*const c_char; MAX_ARGS] = [core::ptr::null(); MAX_ARGS];
        let view = buf.c_ptr();
        if let Err(e) = script_argv(&line, &sb, view, argv, &mut args) {
            return fail(e);
        }
        // The interpreter may itself live in the rift.
        return exec_resolved(args[0], args.as_ptr(), env);
    }
    let mut mirror = [0u8; PATH_MAX + 1];
    if exec_mirror(buf.rel(), &header.hash, header.size, &mut mirror).is_none() {
        sys::complain(&[b"vrift: cannot prepare the rift executable ", buf.abs()]);
        return fail(libc::EIO);
    }
    prepare_origin_dirs(&mirror, buf.abs());
    let mirror = mirror.as_ptr() as *const c_char;
    if let Some(why) = unviewable(mirror, env) {
        return run_unviewable(why, mirror, argv, env);
    }
    with_audit(
        env,
        |env| call_real!(EXECVE(mirror, argv, env) or fail(libc::ENOSYS)),
    )
}

/// Why a program would run outside the view (see [`unviewable`]).
#[derive(Clone, Copy)]
enum Unviewable {
    /// It makes its own system calls (statically linked, a Go program, the
    /// dynamic loader run as a program): the supervisor serves them.
    RawCalls,
    /// It gains privileges (set-user-ID, set-group-ID, file capabilities):
    /// the kernel runs it in secure-execution mode, where the dynamic
    /// loader ignores `LD_PRELOAD` paths, and the supervisor's
    /// `no_new_privs` would take away the privilege it is run for.
    GainsPrivileges,
}

/// Inside an inception, a program that cannot load the shim would read
/// and write the project's disk with its own system calls (see
/// [`Unviewable`]): one that makes its own calls runs under the syscall
/// supervisor instead (see `seccomp`), which serves them from the view; one
/// that gains privileges is refused. `VRIFT_UNVIEWED=run` runs either on
/// the disk; a program already under the supervisor's filter is served by
/// it as it is (`no_new_privs` keeps its privileges from it). Costs an
/// open, a 4 KiB pread, an fstat and a close per exec in an inception
/// (and an fgetxattr for a caller other than root); nothing outside one.
#[inline(never)]
fn unviewable(path: *const c_char, env: *const *const c_char) -> Option<Unviewable> {
    // SAFETY: a NUL-terminated path (the exec contract, checked readable).
    let fd = unsafe {
        crate::raw_syscall!(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path,
            libc::O_RDONLY | libc::O_CLOEXEC,
            0
        )
    } as c_int;
    if fd < 0 {
        return None; // execve itself gives the error
    }
    let privileged = gains_privileges(fd);
    let kind = crate::elfdyn::loader_of(fd);
    sys::close_raw(fd);
    let why = match kind {
        _ if privileged => Unviewable::GainsPrivileges,
        crate::elfdyn::Loader::Static | crate::elfdyn::Loader::Go => Unviewable::RawCalls,
        crate::elfdyn::Loader::Dynamic | crate::elfdyn::Loader::Other => return None,
    };
    let allowed =
        env_has(env, b"VRIFT_UNVIEWED=run") || env_has(env, crate::seccomp::launch::MARKER);
    (!allowed).then_some(why)
}

/// Whether exec'ing the open file `fd` would give this process privileges
/// it lacks, which makes the kernel set `AT_SECURE` (the kernel's
/// `cap_bprm_creds_from_file`): set-user-ID to another owner than the
/// real uid, set-group-ID (with group execute) to another group than the
/// real gid, or file capabilities for a real uid other than root. The
/// bits count for nothing under `no_new_privs` or on a `nosuid` mount.
#[inline(never)]
fn gains_privileges(fd: c_int) -> bool {
    let Some(st) = sys::fstat_raw(fd) else {
        return false;
    };
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let sgid = libc::S_ISGID | libc::S_IXGRP;
    let set_id = (st.st_mode & libc::S_ISUID != 0 && st.st_uid != uid)
        || (st.st_mode & sgid == sgid && st.st_gid != gid);
    if !set_id && (uid == 0 || !has_file_capabilities(fd)) {
        return false;
    }
    // SAFETY: prctl with an option that only reads a flag.
    let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1;
    // The raw call (the kernel's struct is statfs64's layout): glibc's
    // fstatvfs may read /proc/mounts, which allocates — not in an exec
    // that may run in a vfork child.
    // SAFETY: all-zero is a valid statfs64, filled by the kernel.
    let mut fs: libc::statfs64 = unsafe { core::mem::zeroed() };
    // SAFETY: our fd and a struct of the kernel's size to fill.
    let got = unsafe { crate::raw_syscall!(libc::SYS_fstatfs, fd, &mut fs as *mut libc::statfs64) };
    let nosuid = got == 0 && fs.f_flags & libc::ST_NOSUID as libc::__fsword_t != 0;
    !nnp && !nosuid
}

/// Whether the file `fd` carries file capabilities (`security.capability`,
/// as `setcap` writes: Debian's `ping`). The raw call: the library's own
/// `fgetxattr` answers for the view.
fn has_file_capabilities(fd: c_int) -> bool {
    // SAFETY: our fd, a NUL-terminated name, no buffer (size asked).
    let n = unsafe {
        crate::raw_syscall!(
            libc::SYS_fgetxattr,
            fd,
            c"security.capability".as_ptr(),
            core::ptr::null_mut::<u8>(),
            0
        )
    };
    n > 0
}

/// Runs the program [`unviewable`] found under the syscall supervisor
/// (`vrift __syscall-view`), or refuses it (one line, EACCES); returns
/// only on failure.
#[inline(never)]
fn run_unviewable(
    why: Unviewable,
    path: *const c_char,
    argv: *const *const c_char,
    env: *const *const c_char,
) -> c_int {
    // Once per process: a PATH search tries the same program under each
    // directory that has it (/usr/bin/go, /bin/go).
    static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if let Unviewable::GainsPrivileges = why {
        say_refused_once(
            &SAID,
            path,
            b": it gains privileges (set-user-ID, set-group-ID or file capabilities), so it cannot load the view library and would read and write the project's disk (VRIFT_UNVIEWED=run runs it anyway, or run it outside the project)",
        );
        return fail(libc::EACCES);
    }
    // vrift as the inception's environment names it, never as the table
    // does: a project can forge its table (see `state::vrift_exe`).
    if let Some(exe) = state::vrift_exe() {
        crate::seccomp::launch::exec_supervisor(exe, path, argv, env, |p, a, e| {
            without_audit(e, |e| call_real!(EXECVE(p, a, e) or fail(libc::ENOSYS)))
        });
    }
    say_refused_once(
        &SAID,
        path,
        b": it cannot load the view library and vrift's supervisor could not be started, so it would read and write the project's disk (VRIFT_UNVIEWED=run runs it anyway)",
    );
    fail(libc::EACCES)
}

/// "vrift: refusing to run PATH" and `why`, the first time `said` is
/// asked (`path`: readable, NUL-terminated).
fn say_refused_once(said: &core::sync::atomic::AtomicBool, path: *const c_char, why: &[u8]) {
    if !said.swap(true, core::sync::atomic::Ordering::Relaxed) {
        // SAFETY: readable and NUL-terminated (the callers' contract).
        let name = unsafe { CStr::from_ptr(path) }.to_bytes();
        sys::complain(&[b"vrift: refusing to run ", name, why]);
    }
}

/// Whether a program this process starts could not load the view library:
/// the process changed its credentials (`setuid` to another user, as
/// `setpriv --reuid` and test harnesses do) and its new ids may not read
/// the library (a private store: 0700). The dynamic loader would skip the
/// preload with a warning and the program would read and write the
/// project's disk. One `faccessat2` per exec, only after such a change.
#[inline]
fn cannot_load_library() -> bool {
    state::creds_changed() && state::ready() && library_unreadable()
}

/// Whether the dynamic loader of a program this process execs could not
/// open the library: the mode bits of each directory on its way (search)
/// and of the file (read), for the effective uid and groups. Not
/// `faccessat`: it would count capabilities this process still holds
/// (`setpriv` keeps them across its `setresuid`) and that an exec as a
/// user other than root drops. Root regains them at exec.
#[cold]
#[inline(never)]
fn library_unreadable() -> bool {
    let Some(shim) = shim_path() else {
        return false;
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 || shim.first() != Some(&b'/') {
        return false;
    }
    let permits = |st: &libc::stat, other_bit: u32| {
        let shift = if st.st_uid == uid {
            6
        } else if sys::in_group(st.st_gid) {
            3
        } else {
            0
        };
        st.st_mode & (other_bit << shift) != 0
    };
    // Each directory after the root, then the file.
    let mut from = 1;
    loop {
        let next = shim[from..]
            .iter()
            .position(|&c| c == b'/')
            .map(|i| from + i);
        let (upto, bit) = match next {
            Some(i) => (i, libc::S_IXOTH),
            None => (shim.len(), libc::S_IROTH),
        };
        let Some(st) = sys::stat_raw(&shim[..upto]) else {
            return false; // the loader's own error, not ours to guess
        };
        if !permits(&st, bit) {
            return true;
        }
        match next {
            Some(i) => from = i + 1,
            None => return false,
        }
    }
}

/// Refuses to start `path` (see [`cannot_load_library`]) with one line:
/// EACCES, or the error of a program that is not there (the candidates of
/// a PATH search that are missing stay ENOENT, and are not named).
#[cold]
#[inline(never)]
fn refuse_unloadable(path: *const c_char) -> c_int {
    // SAFETY: all-zero is a valid stat.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    if crate::stat::fstatat(libc::AT_FDCWD, path, &mut st, 0) != 0 {
        // SAFETY: errno is thread-local.
        return unsafe { *libc::__errno_location() };
    }
    static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    say_refused_once(
        &SAID,
        path,
        b": this process changed its user, which may not read the view library (a private store), so the program would read and write the project's disk; use a shared store (VRIFT_STORE_SHARED=1) or run it outside the project",
    );
    libc::EACCES
}

/// Whether the environment `env` (an exec's: NULL-terminated) holds the
/// entry `entry` exactly.
fn env_has(env: *const *const c_char, entry: &[u8]) -> bool {
    if crate::sys::unreadable(env) {
        return false;
    }
    let mut i = 0;
    // SAFETY: a NULL-terminated array of C strings (the exec contract).
    unsafe {
        while !(*env.add(i)).is_null() {
            if CStr::from_ptr(*env.add(i)).to_bytes() == entry {
                return true;
            }
            i += 1;
        }
    }
    false
}

/// In the parent, before fork: resolves the real `execve` now, so that
/// children (which mostly exec straight away) inherit the address instead
/// of each running dlsym, whose pages are copy-on-write faults in a child.
pub fn before_fork() {
    crate::fns::EXECVE.get();
}

#[no_mangle]
pub extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    with_env(envp, |env| exec_resolved(path, argv, env))
}

extern "C" {
    static environ: *const *const c_char;
}

fn current_environ() -> *const *const c_char {
    // SAFETY: reading the libc global.
    unsafe { environ }
}

#[no_mangle]
pub extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    execve(path, argv, current_environ())
}

/// Calls `f` with `dir/file` for each directory of `$PATH` (glibc's default
/// when unset; an empty entry is `.`) until `f` returns true.
fn for_each_on_path(file: &[u8], mut f: impl FnMut(*const c_char) -> bool) {
    // SAFETY: NUL-terminated name.
    let path_var = unsafe { libc::getenv(c"PATH".as_ptr()) };
    let path_list: &[u8] = if path_var.is_null() {
        b"/bin:/usr/bin"
    } else {
        // SAFETY: getenv returns a C string.
        unsafe { CStr::from_ptr(path_var) }.to_bytes()
    };
    for dir in path_list.split(|&c| c == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        if dir.len() + 1 + file.len() > PATH_MAX {
            continue;
        }
        let mut cand = [0u8; PATH_MAX + 1];
        cand[..dir.len()].copy_from_slice(dir);
        cand[dir.len()] = b'/';
        cand[dir.len() + 1..dir.len() + 1 + file.len()].copy_from_slice(file);
        if f(cand.as_ptr() as *const c_char) {
            return;
        }
    }
}

/// PATH search as glibc's execvpe does, running each candidate in the view.
fn execvpe_impl(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    if file.is_null() {
        return fail(libc::ENOENT);
    }
    // SAFETY: exec contract: a NUL-terminated name.
    let f = unsafe { CStr::from_ptr(file) }.to_bytes();
    if f.is_empty() {
        return fail(libc::ENOENT);
    }
    if f.contains(&b'/') {
        return execve(file, argv, envp);
    }
    let mut saw_eacces = false;
    let mut stop = false;
    for_each_on_path(f, |cand| {
        execve(cand, argv, envp);
        // SAFETY: errno is thread-local.
        match unsafe { *libc::__errno_location() } {
            libc::EACCES => saw_eacces = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => stop = true,
        }
        stop
    });
    if stop {
        return -1;
    }
    fail(if saw_eacces {
        libc::EACCES
    } else {
        libc::ENOENT
    })
}

#[no_mangle]
pub extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    execvpe_impl(file, argv, current_environ())
}

#[no_mangle]
pub extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    execvpe_impl(file, argv, envp)
}

#[no_mangle]
pub extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    with_env(
        envp,
        |env| call_real!(FEXECVE(fd, argv, env) or fail(libc::ENOSYS)),
    )
}

/// The program posix_spawn should really start: a rift executable's copy
/// (scripts: the interpreter, with argv rewritten into `args`).
fn spawn_target(
    path: *const c_char,
    argv: *const *const c_char,
    buf: &mut PathBuf,
    copy: &mut [u8; PATH_MAX + 1],
    line: &mut [u8; 256],
    args: &mut [*const c_char; MAX_ARGS],
) -> Result<SpawnTarget, c_int> {
    let plain = |path, argv| SpawnTarget {
        path,
        argv,
        rift_program: false,
    };
    if crate::sys::unreadable(path) {
        return Ok(plain(path, argv));
    }
    if cannot_load_library() {
        return Err(refuse_unloadable(path));
    }
    // SAFETY: a NUL-terminated path (spawn contract).
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    match resolve(libc::AT_FDCWD, p, true, buf).0 {
        View::Pass => Ok(plain(path, argv)),
        View::Disk { rewritten: false } => {
            // A rift program behind a physical directory symlink: the
            // kernel would not find it (one access(2) tells).
            if !buf.in_domain_miss || sys::exists_raw(path) {
                return Ok(plain(path, argv));
            }
            let mut view = PathBuf::new();
            if crate::resolve::physical_fallback(buf, true, &mut view).is_none() {
                return Ok(plain(path, argv));
            }
            let Some(c) = sys::CPath::new(view.abs()) else {
                return Ok(plain(path, argv));
            };
            match spawn_target(c.as_ptr(), argv, buf, copy, line, args)? {
                t if t.path == c.as_ptr() => Err(libc::ENOENT), // changed meanwhile
                t => Ok(t),
            }
        }
        View::Disk { rewritten: true } => Ok(plain(buf.c_ptr(), argv)),
        View::Error(e) => Err(e),
        View::Entry { header, .. } if header.is_staged() => {
            if crate::write::seal_for_exec(buf.rel()) != 0 {
                // SAFETY: errno is thread-local.
                return Err(unsafe { *libc::__errno_location() });
            }
            spawn_target(path, argv, buf, copy, line, args)
        }
        View::Entry { header, .. } => {
            if header.kind != Kind::File
                || !crate::open::may_exec(&crate::statbuf::Meta::of(&header, b""))
            {
                return Err(libc::EACCES);
            }
            if let Some(sb) = shebang(&header.hash, header.size, line) {
                script_argv(line, &sb, buf.c_ptr(), argv, args)?;
                return Ok(plain(args[0], args.as_ptr()));
            }
            exec_mirror(buf.rel(), &header.hash, header.size, copy).ok_or(libc::EIO)?;
            prepare_origin_dirs(copy, buf.abs());
            Ok(SpawnTarget {
                path: copy.as_ptr() as *const c_char,
                argv,
                rift_program: true,
            })
        }
    }
}

/// What posix_spawn really starts.
struct SpawnTarget {
    path: *const c_char,
    argv: *const *const c_char,
    /// A rift executable (run from its mirror, with the audit hook).
    rift_program: bool,
}

#[no_mangle]
pub extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let mut buf = PathBuf::new();
    let mut copy = [0u8; PATH_MAX + 1];
    let mut line = [0u8; 256];
    let mut args: [*const c_char; MAX_ARGS] = [core::ptr::null(); MAX_ARGS];
    let t = match spawn_target(path, argv, &mut buf, &mut copy, &mut line, &mut args) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let spawn =
        |env| call_real!(POSIX_SPAWN(pid, t.path, actions, attr, t.argv, env) or libc::ENOSYS);
    with_env(envp, |env| {
        if t.rift_program {
            with_audit(env, spawn)
        } else {
            without_audit(env, spawn)
        }
    })
}

#[no_mangle]
pub extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    if file.is_null() {
        return libc::ENOENT;
    }
    // SAFETY: a NUL-terminated name.
    let f = unsafe { CStr::from_ptr(file) }.to_bytes();
    if f.contains(&b'/') {
        return posix_spawn(pid, file, actions, attr, argv, envp);
    }
    // PATH search in the view: the first candidate that exists and is executable.
    let mut spawned = None;
    for_each_on_path(f, |c| {
        if crate::stat::access(c, libc::X_OK) != 0 {
            return false;
        }
        // SAFETY: all-zero is a valid stat buffer.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        if crate::stat::stat(c, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG {
            spawned = Some(posix_spawn(pid, c, actions, attr, argv, envp));
            return true;
        }
        false
    });
    if let Some(r) = spawned {
        return r;
    }
    libc::ENOENT
}

#[no_mangle]
pub extern "C" fn system(cmd: *const c_char) -> c_int {
    restore_environ();
    call_real!(SYSTEM(cmd) or -1)
}

#[no_mangle]
pub extern "C" fn popen(cmd: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    restore_environ();
    call_real!(POPEN(cmd, mode) or core::ptr::null_mut())
}

/// dlopen of a rift library loads its executable copy (the loader opens
/// files with its own internal calls, which the shim cannot see).
fn dl_target(
    path: *const c_char,
    copy: &mut [u8; PATH_MAX + 1],
    buf: &mut PathBuf,
) -> *const c_char {
    if crate::sys::unreadable(path) {
        return path;
    }
    // SAFETY: a NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    if !p.contains(&b'/') {
        return path; // a soname: searched by the loader
    }
    let mut view = resolve(libc::AT_FDCWD, p, true, buf).0;
    if let View::Entry { header, .. } = &view {
        if header.is_staged() && crate::write::seal_for_exec(buf.rel()) == 0 {
            view = resolve(libc::AT_FDCWD, p, true, buf).0;
        }
    }
    match view {
        View::Entry { header, .. } if header.kind == Kind::File && !header.is_staged() => {
            if exec_mirror(buf.rel(), &header.hash, header.size, copy).is_some() {
                copy.as_ptr() as *const c_char
            } else {
                path
            }
        }
        View::Disk { rewritten: true } => buf.c_ptr(),
        _ => path,
    }
}

#[no_mangle]
pub extern "C" fn dlopen(path: *const c_char, flags: c_int) -> *mut c_void {
    let mut copy = [0u8; PATH_MAX + 1];
    let mut buf = PathBuf::new();
    let target = dl_target(path, &mut copy, &mut buf);
    call_real!(DLOPEN(target, flags) or core::ptr::null_mut())
}

#[no_mangle]
pub extern "C" fn dlmopen(lmid: libc::Lmid_t, path: *const c_char, flags: c_int) -> *mut c_void {
    let mut copy = [0u8; PATH_MAX + 1];
    let mut buf = PathBuf::new();
    let target = dl_target(path, &mut copy, &mut buf);
    call_real!(DLMOPEN(lmid, target, flags) or core::ptr::null_mut())
}
