//! Path resolution: from the arguments of a libc call to what the view holds.
//!
//! The path is made absolute (against the cached cwd or the dirfd's path) and
//! normalized lexically, then tested against the project root. Inside the
//! domain, rift symlinks are followed and hiding records (whiteouts, files
//! over directories, opaque directories) are honoured before the disk is
//! consulted. A path outside the domain costs a normalization and a prefix
//! comparison: no syscall, no allocation, no lock.

use core::mem::MaybeUninit;

use vrift_format::pathnorm::domain_rel;
use vrift_format::table::Table;
use vrift_format::view::{self, is_state_path, Found};
use vrift_format::{Kind, RecordHeader};
use vrift_shim_core::path::{proc_link, ProcLink};
use vrift_shim_core::verified::{DirCache, Unverified};
use vrift_shim_core::PATH_MAX;

use crate::state;
use crate::{cwd, sys};

/// What a path names in the view.
pub enum View<'t> {
    /// Outside the domain (or the shim is inactive): call libc unchanged.
    Pass,
    /// On disk in the domain. `rewritten`: the path went through a rift
    /// symlink, so libc must be called with the absolute path in the buffer.
    Disk { rewritten: bool },
    /// A rift file or symlink.
    Entry {
        header: RecordHeader,
        target: &'t [u8],
    },
    /// Hidden or absent in the view: fail with this errno.
    Error(i32),
}

/// A resolution's scratch space (its bookkeeping, unit-tested, is
/// `vrift_shim_core::path`).
pub use vrift_shim_core::path::PathBuf;

const MAX_SYMLINKS: usize = 40;

/// Where rift programs run from: hard links to the store's executable
/// copies (`.vrift/exec/<view path>`).
const EXEC_MIRRORS: &[u8] = vrift_format::EXEC_MIRROR.as_bytes();

/// Makes `path` absolute (and normalized) into `out`; false if the base is
/// unknown or the result too long.
fn absolutize(dirfd: i32, path: &[u8], out: &mut PathBuf) -> bool {
    let base_len = if path.first() == Some(&b'/') {
        // `/proc/self/…` and `/dev/fd/…` are the kernel's magic links: the
        // domain test must see where they lead (one or two byte compares
        // for every other absolute path).
        if matches!(path.get(1), Some(b'p' | b'd'))
            && (path.starts_with(b"/proc/") || path.starts_with(b"/dev/fd/"))
        {
            if let Some(rest) = magic_link(path, out) {
                return out.append(&path[rest..]);
            }
        }
        out.set(b"/");
        1
    } else if dirfd == libc::AT_FDCWD {
        // SAFETY: the buffer holds PATH_MAX + 1 bytes.
        match unsafe { cwd::read_into(out.as_mut_ptr()) } {
            // SAFETY: as above.
            0 => match unsafe { sys::getcwd_into(out.as_mut_ptr(), PATH_MAX) } {
                Some(n) => n,
                None => return false,
            },
            n => n,
        }
    } else if let Some(n) =
        // SAFETY: the buffer holds PATH_MAX + 1 bytes.
        unsafe { crate::fdtable::dir_path_into(dirfd, out.as_mut_ptr(), PATH_MAX) }
    {
        // A directory fd the shim saw being opened: no syscall.
        n
    } else {
        // SAFETY: as above.
        match unsafe { sys::fd_path_into(dirfd, out.as_mut_ptr(), PATH_MAX) } {
            Some(n)
                if n > 0 && {
                    // SAFETY: fd_path_into wrote n <= PATH_MAX bytes.
                    unsafe { out.set_len(n) };
                    out.abs()[0] == b'/'
                } =>
            {
                n
            }
            _ => return false,
        }
    };
    // SAFETY: base_len <= PATH_MAX bytes were written above (a `/`, the
    // cwd, or the dirfd's path).
    unsafe { out.set_len(base_len) };
    out.append(path)
}

/// Whether the directory `dirfd` (or the cwd) lies in the project, found
/// by walking `..` up to the root's inode: its path cannot be read (it is
/// longer than PATH_MAX). Only on that failure path.
#[cold]
#[inline(never)]
fn base_in_domain(dirfd: i32) -> bool {
    let Some(root) = sys::stat_raw(state::ROOT.get()) else {
        return false;
    };
    let mut fd = sys::openat_raw(
        dirfd,
        c".".as_ptr(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    );
    // Each level is at least two bytes of path: PATH_MAX of them reach `/`.
    for _ in 0..PATH_MAX {
        if fd < 0 {
            return false;
        }
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid fd and an out-buffer for one stat.
        let r = unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, st.as_mut_ptr()) };
        if r != 0 {
            break;
        }
        // SAFETY: filled by the successful fstat.
        let st = unsafe { st.assume_init() };
        if st.st_dev == root.st_dev && st.st_ino == root.st_ino {
            sys::close_raw(fd);
            return true;
        }
        let up = sys::openat_raw(
            fd,
            c"..".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        );
        sys::close_raw(fd);
        fd = up;
        let mut parent = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: as above.
        if fd >= 0 && unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, parent.as_mut_ptr()) } == 0
        {
            // SAFETY: filled by the successful fstat.
            let p = unsafe { parent.assume_init() };
            if p.st_dev == st.st_dev && p.st_ino == st.st_ino {
                break; // `/`: its `..` is itself
            }
        }
    }
    if fd >= 0 {
        sys::close_raw(fd);
    }
    false
}

/// What a shell in the view says to its own shim, by naming a path below
/// `/proc/self/vrift/` (the kernel has none there: any call answers
/// ENOENT): `enter/<root>` puts the shell in the view of the project at
/// the canonical `<root>`, `leave` takes it out, `active` exists while it
/// is in. Only a process started with `VRIFT_SHELL_VIEW` listens. Returns
/// what `active` should read as: true when the path must resolve to `/`.
/// (Switching: see [`state::switch_root`].)
#[cold]
#[inline(never)]
fn shell_control(path: &[u8]) -> bool {
    let Some(cmd) = path.strip_prefix(b"/proc/self/vrift/") else {
        return false;
    };
    if cmd == b"active" {
        return state::ready();
    }
    if cmd == b"leave" {
        state::leave_view();
        return false;
    }
    let Some(root) = cmd.strip_prefix(b"enter") else {
        return false;
    };
    let root = vrift_shim_core::path::trim_trailing_slash(root);
    if root.first() != Some(&b'/') {
        return false;
    }
    if state::ready() && state::ROOT.get() == root {
        return false;
    }
    if state::switch_root(root) {
        cwd::forget();
        state::enter_view();
    }
    false
}

/// A shell's word to its shim ([`shell_control`]): `active` reads as
/// `/` while the shell is in the view; everything else as the kernel has it.
#[cold]
#[inline(never)]
fn shell_says<'t>(path: &[u8], out: &mut PathBuf) -> View<'t> {
    if shell_control(path) && out.set(b"/") {
        View::Disk { rewritten: true }
    } else {
        View::Pass
    }
}

/// `/proc/self/{cwd,root,fd/N}` (also `/proc/thread-self/…`,
/// `/proc/<our pid>/…`) and `/dev/fd/N` at the start of `path`: writes what
/// the link leads to into `out` and returns where the rest of `path`
/// starts; None leaves the path to be read as it is spelt (anything else
/// under /proc, a pipe or socket fd). An fd the shim opened on a rift file
/// leads to its view path; another fd to what the kernel says. An fd on a
/// blob of the store that the shim does not know (inherited across exec)
/// marks `out` as [`PathBuf::in_store`]: mutations through it are refused.
#[cold]
#[inline(never)]
fn magic_link(path: &[u8], out: &mut PathBuf) -> Option<usize> {
    if state::shell() && path.starts_with(b"/proc/self/vrift/") {
        // The shell leaving, or switching: answered as the kernel would
        // (`active` as `/`), nothing else to read.
        if shell_control(path) {
            out.set(b"/");
            out.magic_rewrite = true;
            return Some(path.len());
        }
        return None;
    }
    // SAFETY: getpid has no preconditions.
    let (link, end) = proc_link(path, unsafe { libc::getpid() } as u32)?;
    let fd = match link {
        ProcLink::Cwd => {
            // SAFETY: the buffer holds PATH_MAX + 1 bytes.
            let n = match unsafe { cwd::read_into(out.as_mut_ptr()) } {
                // SAFETY: as above.
                0 => unsafe { sys::getcwd_into(out.as_mut_ptr(), PATH_MAX) }?,
                n => n,
            };
            // SAFETY: the cwd's n <= PATH_MAX bytes were just written.
            unsafe { out.set_len(n) };
            return Some(end);
        }
        ProcLink::Root => {
            out.set(b"/");
            return Some(end);
        }
        ProcLink::Fd(fd) => fd,
    };
    let mut view = [0u8; PATH_MAX];
    let n = crate::fdtable::path(fd, &mut view);
    if n > 0 {
        return out.set(&view[..n]).then_some(end);
    }
    // SAFETY: the buffer holds PATH_MAX + 1 bytes.
    if let Some(n) = unsafe { crate::fdtable::dir_path_into(fd, out.as_mut_ptr(), PATH_MAX) } {
        // SAFETY: dir_path_into wrote n <= PATH_MAX bytes.
        unsafe { out.set_len(n) };
        return Some(end);
    }
    // SAFETY: as above.
    let n = unsafe { sys::fd_path_into(fd, out.as_mut_ptr(), PATH_MAX) }?;
    // SAFETY: fd_path_into wrote n <= PATH_MAX bytes.
    unsafe { out.set_len(n) };
    if out.abs().first() != Some(&b'/') {
        return None; // pipe:[…], socket:[…], anon_inode:…
    }
    out.in_store = in_store(out.abs());
    Some(end)
}

/// Whether `abs` (what the kernel says an fd is) lies in the store, but
/// not in its staging area (files being written, which their writers may
/// change): a blob, an executable copy, the store's own state.
pub fn in_store(abs: &[u8]) -> bool {
    state::table().is_some_and(|t| vrift_shim_core::path::in_store(t.cas_root(), abs))
}

/// Whether `abs` (what the kernel says an fd is) is a staging file of the
/// store: a rift file being written.
pub fn in_staging(abs: &[u8]) -> bool {
    state::table().is_some_and(|t| vrift_shim_core::path::in_staging(t.cas_root(), abs))
}

/// Resolves `path` (relative to `dirfd`) in the view. `follow`: whether a
/// final symlink is followed (stat vs lstat).
#[inline]
pub fn resolve<'t>(
    dirfd: i32,
    path: &[u8],
    follow: bool,
    out: &mut PathBuf,
) -> (View<'t>, Option<Table<'t>>) {
    resolve_checked(dirfd, path, follow, out, DOTDOT_REWRITES)
}

/// How many `link/..` a path may go through before the rest of it is read
/// lexically (see [`dotdots`]): each costs a resolution of the path.
const DOTDOT_REWRITES: u8 = 8;

/// [`resolve`]; `dots`: whether the `name/..` on the way are walked as the
/// kernel walks them, and through how many symlinks (see [`dotdots`]).
fn resolve_checked<'t>(
    dirfd: i32,
    path: &[u8],
    follow: bool,
    out: &mut PathBuf,
    mut dots: u8,
) -> (View<'t>, Option<Table<'t>>) {
    if !state::ready() {
        if state::shell() && path.starts_with(b"/proc/self/vrift/") {
            return (shell_says(path, out), None);
        }
        return (View::Pass, None);
    }
    if !absolutize(dirfd, path, out) {
        // The base directory's path, or the whole path, is past PATH_MAX
        // (the kernel still walks it, relative to the cwd or a dirfd): if
        // that base lies in the project, the call would reach its disk
        // unseen, so it fails instead.
        if path.first() != Some(&b'/') && base_in_domain(dirfd) {
            return (View::Error(libc::ENAMETOOLONG), None);
        }
        return (View::Pass, None);
    }
    // `x/` and `x/.` name a directory: the last component is followed, and
    // a rift entry there (never a directory: those are physical) is ENOTDIR.
    let dir_only = vrift_shim_core::path::names_a_directory(path);
    out.walk_error = 0;
    let follow = follow || dir_only;
    let root = state::ROOT.get();
    let mut rewritten = out.magic_rewrite;
    // Taken once the path is in the domain: a process that only ever
    // names paths outside it (a fork child exec'ing /bin/true) never maps
    // the table.
    let mut table: Option<Table<'t>> = None;
    for _ in 0..MAX_SYMLINKS {
        // Outside the domain, or vrift's own state: not the view's business
        // (but the executable copies in `.vrift/exec/` are the store's, and
        // nothing may change them).
        let (rel_len, mirror) = match domain_rel(out.abs(), root) {
            Some(r) if is_state_path(r) => (None, r.starts_with(EXEC_MIRRORS)),
            Some(r) => (Some(r.len()), false),
            None => (None, false),
        };
        out.in_store |= mirror;
        let Some(rel_len) = rel_len else {
            let view = if rewritten {
                View::Disk { rewritten }
            } else {
                View::Pass
            };
            return (view, None);
        };
        let table = match table {
            Some(t) => t,
            None => match state::table() {
                Some(t) => *table.insert(t),
                None if state::table_denied() => return (refuse_unviewable(), None),
                None => return (View::Pass, None),
            },
        };
        if dots > 0 {
            // Once, for the path as the caller spelt it.
            let budget = core::mem::replace(&mut dots, 0);
            if let Some(end) = vrift_shim_core::path::next_inner_dotdot(path, 0) {
                match dotdots(dirfd, path, end, follow, out, budget) {
                    DotDots::Plain => {}
                    DotDots::Fail(e) => {
                        out.walk_error = e;
                        return (View::Error(e), Some(table));
                    }
                    DotDots::Resolved(v, t) => return (v, t),
                }
            }
        }
        let rel_empty = rel_len == 0;
        out.rel_start = out.len() - rel_len;
        if rel_empty {
            return (View::Disk { rewritten }, Some(table));
        }
        match walk(&table, out, follow) {
            Step::Done(v) => {
                let v = match v {
                    View::Disk { .. } => {
                        out.in_domain_miss = !rewritten;
                        View::Disk { rewritten }
                    }
                    // The kernel never looks at a rift entry: where the
                    // process's credentials changed (see `creds`), the
                    // search permission it would check on the way...
                    View::Entry { .. } | View::Error(_)
                        if state::creds_changed() && search_denied(out.abs(), out.real_ids) =>
                    {
                        View::Error(libc::EACCES)
                    }
                    // ... and for an entry (whose directories the view
                    // shows as the disk has them) once a directory of the
                    // project lost its owner's search bit.
                    View::Entry { .. }
                        if table.closed_dirs() && search_denied(out.abs(), out.real_ids) =>
                    {
                        View::Error(libc::EACCES)
                    }
                    View::Entry { .. } if dir_only => {
                        out.walk_error = libc::ENOTDIR;
                        View::Error(libc::ENOTDIR)
                    }
                    other => other,
                };
                return (v, Some(table));
            }
            Step::Restart => rewritten = true,
        }
    }
    (View::Error(libc::ELOOP), table)
}

/// What the `name/..` of a path ask of its resolution.
enum DotDots<'t> {
    /// Each `name` is a directory, none a symlink: the lexical reading is
    /// the kernel's.
    Plain,
    /// The walk fails: a `name` is missing (ENOENT) or no directory
    /// (ENOTDIR).
    Fail(i32),
    /// A `name` is a symlink, so its `..` is the parent of where it leads:
    /// the path was resolved again with the link's target in its place.
    Resolved(View<'t>, Option<Table<'t>>),
}

/// [`up_from_links`] for a path in the domain, resolving the path again
/// (with `budget - 1` substitutions left) when a link was substituted.
#[cold]
#[inline(never)]
fn dotdots<'t>(
    dirfd: i32,
    path: &[u8],
    end: usize,
    follow: bool,
    out: &mut PathBuf,
    budget: u8,
) -> DotDots<'t> {
    let mut again = [0u8; PATH_MAX];
    match up_from_links(dirfd, path, end, &mut again) {
        UpFrom::Plain => DotDots::Plain,
        UpFrom::Fail(e) => DotDots::Fail(e),
        UpFrom::Link(n) if budget > 0 => {
            let (v, t) = resolve_checked(libc::AT_FDCWD, &again[..n], follow, out, budget - 1);
            DotDots::Resolved(v, t)
        }
        UpFrom::Link(_) => DotDots::Plain,
    }
}

/// What walking the `name/..` of a path found.
enum UpFrom {
    Plain,
    Fail(i32),
    /// The path with the first symlink a `..` goes up from replaced by
    /// its target (absolute), this long.
    Link(usize),
}

/// Walks the `name/..` of `path` (the first one's `name` ends at `end`)
/// as the kernel does, where the lexical normalization went straight to
/// `name`'s parent: a missing `name` is ENOENT (`dir/missing/../f`), a
/// file ENOTDIR (`file/../f`), and a symlink's `..` is the parent of its
/// target (`link/../f`): then the path with the link replaced by its
/// target is written into `again`. Each `name` is looked up in the view
/// (rift symlinks), else on disk. Only for paths that spell such a `..`.
fn up_from_links(dirfd: i32, path: &[u8], mut end: usize, again: &mut [u8; PATH_MAX]) -> UpFrom {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    loop {
        // A magic link (`/proc/self/fd/N/..`) leads to the kernel's object
        // itself, which may have no path any more (a deleted directory):
        // the kernel's walk goes on from it.
        let magic = proc_link(&path[..end], pid).is_some_and(|(_, rest)| rest >= end);
        if !magic {
            let mut prefix = PathBuf::new();
            let mut target = [0u8; PATH_MAX];
            let link_len = match resolve_checked(dirfd, &path[..end], false, &mut prefix, 0).0 {
                View::Error(e) => return UpFrom::Fail(e),
                View::Entry { header, target: t } if header.kind == Kind::Symlink => {
                    let n = t.len().min(PATH_MAX);
                    target[..n].copy_from_slice(&t[..n]);
                    Some(n)
                }
                View::Entry { .. } => return UpFrom::Fail(libc::ENOTDIR),
                View::Pass | View::Disk { .. } => match sys::lstat_raw(prefix.abs()) {
                    Err(e) => return UpFrom::Fail(e),
                    Ok(st) => match st.st_mode & libc::S_IFMT {
                        libc::S_IFDIR => None,
                        libc::S_IFLNK => match sys::readlink_raw(prefix.abs(), &mut target) {
                            Some(n) => Some(n),
                            None => return UpFrom::Fail(libc::ENOENT),
                        },
                        _ => return UpFrom::Fail(libc::ENOTDIR),
                    },
                },
            };
            if let Some(n) = link_len {
                return match with_link_replaced(prefix.abs(), &target[..n], &path[end..], again) {
                    Some(len) => UpFrom::Link(len),
                    None => UpFrom::Fail(libc::ENAMETOOLONG),
                };
            }
        }
        match vrift_shim_core::path::next_inner_dotdot(path, end) {
            Some(next) => end = next,
            None => return UpFrom::Plain,
        }
    }
}

/// `link` (absolute) replaced by `target` (relative to the link's
/// directory, or absolute), then `rest`, into `again`; its length.
fn with_link_replaced(link: &[u8], target: &[u8], rest: &[u8], again: &mut [u8]) -> Option<usize> {
    let dir = match link.iter().rposition(|&c| c == b'/') {
        _ if target.first() == Some(&b'/') => &link[..0],
        Some(i) => &link[..i],
        None => &link[..0],
    };
    let parts: [&[u8]; 4] = [dir, if dir.is_empty() { b"" } else { b"/" }, target, rest];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > again.len() {
        return None;
    }
    let mut at = 0;
    for part in parts {
        again[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Some(len)
}

/// A process in the project that may not read its table (it started as
/// another uid than the project's owner: `su`, `setpriv`, a program
/// exec'd after dropping root) cannot see the view: refused, with one
/// line, never shown the disk as if it were the view (issue 13).
#[cold]
#[inline(never)]
fn refuse_unviewable<'t>() -> View<'t> {
    static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, core::sync::atomic::Ordering::Relaxed) {
        sys::complain(&[
            b"vrift: this process runs as another user than the project's owner and cannot see its view; its files are refused (EACCES) in ",
            state::ROOT.get(),
        ]);
    }
    View::Error(libc::EACCES)
}

/// Whether the process may not search the directories on the way to
/// `abs` (directories are physical: one `faccessat2(X_OK)` of its parent's
/// `.` asks the kernel about every one of them; a parent that is no
/// directory on disk — a file the view hides — is ENOTDIR, not a refusal),
/// with its effective ids, or its real ones for `access` (`real_ids`).
#[cold]
#[inline(never)]
fn search_denied(abs: &[u8], real_ids: bool) -> bool {
    let Some(slash) = abs.iter().rposition(|&c| c == b'/') else {
        return false;
    };
    let mut parent = [0u8; vrift_shim_core::PATH_MAX + 3];
    let n = slash.max(1);
    if n + 2 >= parent.len() {
        return false;
    }
    parent[..n].copy_from_slice(&abs[..n]);
    parent[n..n + 2].copy_from_slice(b"/.");
    // SAFETY: errno is thread-local; kept for the caller's success path.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: a NUL-terminated path in our buffer.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_faccessat2,
            libc::AT_FDCWD,
            parent.as_ptr(),
            libc::X_OK,
            if real_ids { 0 } else { libc::AT_EACCESS }
        )
    };
    // SAFETY: as above.
    let e = unsafe { core::mem::replace(&mut *libc::__errno_location(), saved) };
    r < 0 && e == libc::EACCES
}

enum Step<'t> {
    Done(View<'t>),
    /// A symlink was substituted into `out`; resolve again.
    Restart,
}

/// One pass of the view's rules ([`vrift_format::view::lookup`], the Bloom
/// filter as its prefix scan) over the rift part of `out`.
#[inline(always)]
fn walk<'t>(table: &Table<'t>, out: &mut PathBuf, follow: bool) -> Step<'t> {
    let rel_start = out.rel_start;
    match view::lookup(table, &out.abs()[rel_start..]) {
        Found::Error(errno) => Step::Done(View::Error(errno)),
        Found::Symlink { end, target } => substitute(out, rel_start + end, target, rel_start + end),
        Found::Entry { header, target } => {
            if follow && header.kind == Kind::Symlink {
                let end = out.len();
                substitute(out, end, target, end)
            } else {
                Step::Done(View::Entry { header, target })
            }
        }
        Found::Disk => Step::Done(View::Disk { rewritten: false }),
    }
}

/// Replaces the symlink at `out[..link_end]` by its target, keeping the
/// rest of the path from `rest_start` on (`PathBuf::substitute_link`).
#[inline(never)]
fn substitute<'t>(
    out: &mut PathBuf,
    link_end: usize,
    target: &[u8],
    rest_start: usize,
) -> Step<'t> {
    if out.substitute_link(link_end, target, rest_start) {
        Step::Restart
    } else {
        Step::Done(View::Error(libc::ENAMETOOLONG))
    }
}

/// Writes where the content of a rift file lives into `out` (not
/// NUL-terminated: see [`PathBuf::c_ptr`]): its staging file while it is
/// being written, else its blob. No memset of a path-sized buffer: this runs
/// on every open of a rift file.
pub fn content_path(header: &RecordHeader, target: &[u8], out: &mut PathBuf) -> bool {
    let Some(table) = state::table() else {
        return false;
    };
    let cas = table.cas_root();
    // A staged file's staging file, a special file's node: named by the
    // record's trailing bytes in their directory of the store.
    let named_in = if header.is_staged() {
        Some(vrift_format::STAGING_DIR)
    } else if header.kind == vrift_format::Kind::Special {
        Some(vrift_format::NODES_DIR)
    } else {
        None
    };
    if let Some(dir) = named_in {
        named_path(cas, dir, target, out)
    } else {
        let mut rel = [0u8; vrift_format::BLOB_REL_PATH_LEN];
        let n = header.hash.write_blob_rel_path(&mut rel);
        out.set_parts(&[cas, b"/", &rel[..n]])
    }
}

/// `<cas>/<dir>/<name>` into `out` (false: not a plain name, or too long).
fn named_path(cas: &[u8], dir: &str, name: &[u8], out: &mut PathBuf) -> bool {
    !name.is_empty()
        && !name.contains(&b'/')
        && out.set_parts(&[cas, b"/", dir.as_bytes(), b"/", name])
}

/// The node of a special file named `name` (`<cas>/nodes/<name>`) into `out`.
pub fn node_path(name: &[u8], out: &mut PathBuf) -> bool {
    state::table().is_some_and(|t| named_path(t.cas_root(), vrift_format::NODES_DIR, name, out))
}

/// Builds the blob path of `hash` into `out`; returns its length.
pub fn blob_path(hash: &vrift_format::ContentHash, out: &mut [u8; PATH_MAX + 1]) -> Option<usize> {
    let table = state::table()?;
    let mut rel = [0u8; vrift_format::BLOB_REL_PATH_LEN];
    let n = hash.write_blob_rel_path(&mut rel);
    vrift_shim_core::path::join_into(&[table.cas_root(), b"/", &rel[..n]], out)
}

/// None if the directory `dir` is already verified ([`state::VERIFIED`]);
/// else the slot to record it in once it is.
#[inline]
fn unverified(dir: &[u8]) -> Option<Unverified> {
    state::VERIFIED.unverified(dir)
}

/// What one readlink says of a directory whose parent is verified.
enum ByParent {
    /// Not a symlink: parent + name is its canonical path.
    Canonical,
    /// Nothing there.
    Missing,
    /// A symlink, or the parent is not verified: ask the kernel for the
    /// canonical path.
    Unknown,
}

/// Checks `dir` against its verified parent with one `readlink` (no fd,
/// no /proc readlink, which costs ~4 µs here against ~0.5 µs). `scratch`
/// holds the NUL-terminated path meanwhile.
fn by_parent(dir: &[u8], scratch: &mut PathBuf) -> ByParent {
    let Some(cut) = dir.iter().rposition(|&c| c == b'/') else {
        return ByParent::Unknown;
    };
    if cut == 0 || unverified(&dir[..cut]).is_some() || !scratch.set(dir) {
        return ByParent::Unknown;
    }
    match readlink_byte(scratch) {
        Err(libc::EINVAL) => ByParent::Canonical,
        Err(libc::ENOENT) => ByParent::Missing,
        _ => ByParent::Unknown,
    }
}

/// One readlink of a byte of the path in `scratch`: Ok if it is a symlink
/// (only that matters, so a truncated target is fine), else the errno. The
/// caller's errno is kept.
fn readlink_byte(scratch: &mut PathBuf) -> Result<(), i32> {
    let mut one = [0u8; 1];
    // SAFETY: errno is thread-local; a NUL-terminated path and a 1-byte buffer.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        let n = crate::raw_syscall!(
            libc::SYS_readlinkat,
            libc::AT_FDCWD,
            scratch.c_ptr(),
            one.as_mut_ptr(),
            1usize
        );
        let answer = if n > 0 { Ok(()) } else { Err(*errno) };
        *errno = saved;
        answer
    }
}

/// Parent directories a change was made in that are their own canonical
/// path (no physical symlink on the way): direct-mapped by path hash, as
/// [`VERIFIED`] (which also holds directories that lead out).
static CANONICAL: DirCache = DirCache::new();

/// For a change of the in-domain path `buf` (which the daemon is about to
/// make in the rift): if a *physical* symlink on the way leads elsewhere —
/// out of the project (`physout -> /elsewhere`: the change is the outside
/// file's, as on disk) or to another place in it — writes the canonical
/// path into `canon` and returns true. One O_PATH open and a /proc
/// readlink the first time a parent directory is changed in, none after.
#[cold]
#[inline(never)]
pub fn parent_elsewhere(buf: &PathBuf, canon: &mut PathBuf) -> bool {
    match canonical_parent(buf.abs(), |p| CANONICAL.unverified(p), canon) {
        Some(name) => canon.append(name),
        None => false,
    }
}

/// When the parent directory of `abs` is not its own canonical path (a
/// physical symlink on the way), writes that canonical path into `canon`
/// and returns the name to append; a parent that is its own canonical path
/// is remembered in the cache `unverified` hands out, and None returned
/// (as for a parent that cannot be opened: the daemon answers for it).
fn canonical_parent<'a>(
    abs: &'a [u8],
    unverified: impl FnOnce(&[u8]) -> Option<Unverified>,
    canon: &mut PathBuf,
) -> Option<&'a [u8]> {
    let cut = abs.iter().rposition(|&c| c == b'/')?;
    let (parent, name) = (&abs[..cut.max(1)], &abs[cut + 1..]);
    let slot = unverified(parent)?;
    let c = sys::CPath::new(parent)?;
    let fd = sys::openat_raw(
        libc::AT_FDCWD,
        c.as_ptr(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    );
    if fd < 0 {
        return None;
    }
    // SAFETY: the buffer holds PATH_MAX + 1 bytes.
    let n = unsafe { sys::fd_path_into(fd, canon.as_mut_ptr(), PATH_MAX) };
    sys::close_raw(fd);
    // SAFETY: fd_path_into wrote n <= PATH_MAX bytes.
    unsafe { canon.set_len(n?) };
    if canon.abs() == parent {
        slot.verify();
        return None;
    }
    Some(name)
}

/// For a path outside the domain that is about to be *changed* (a write,
/// an unlink, a rename…): if its parent directory is, canonically, inside
/// the project (`/tmp/link -> project`, then `rm /tmp/link/src/a.c`),
/// writes the canonical path into `canon` and returns true — the change
/// belongs to the view. Asks the kernel once per parent directory (an
/// O_PATH open and a /proc readlink; a parent that is its own canonical
/// path is remembered in [`VERIFIED`]); reads are not checked (see
/// [`physical_fallback`] on why).
#[cold]
#[inline(never)]
pub fn outside_leads_in(lexical: &PathBuf, canon: &mut PathBuf) -> bool {
    let abs = lexical.abs();
    if abs.is_empty() || domain_rel(abs, state::ROOT.get()).is_some() {
        return false;
    }
    let Some(name) = canonical_parent(abs, unverified, canon) else {
        return false;
    };
    let Some(rel) = domain_rel(canon.abs(), state::ROOT.get()) else {
        return false;
    };
    if is_state_path(rel) {
        return false;
    }
    canon.append(name)
}

/// For a change at `p` (relative to `dirfd`) whose lexical path is outside
/// the domain but which goes up through a symlink (`/tmp/l/../x`, `/tmp/l
/// -> project/sub`): the kernel's `..` is the parent of the link's target,
/// so the change may be the view's. The links its `..` go up from are
/// replaced by their targets (at most [`DOTDOT_REWRITES`]); if the path
/// then lies in the domain, it is written into `there` and true returned.
/// Only for paths that spell a `name/..`; reads are not checked (see
/// [`physical_fallback`] on why).
#[cold]
#[inline(never)]
pub fn outside_up_through_link(dirfd: i32, p: &[u8], there: &mut PathBuf) -> bool {
    let Some(mut end) = vrift_shim_core::path::next_inner_dotdot(p, 0) else {
        return false;
    };
    let mut cur = [0u8; PATH_MAX];
    let mut again = [0u8; PATH_MAX];
    if p.len() > PATH_MAX {
        return false;
    }
    cur[..p.len()].copy_from_slice(p);
    let (mut len, mut base) = (p.len(), dirfd);
    let mut through = false;
    for _ in 0..DOTDOT_REWRITES {
        match up_from_links(base, &cur[..len], end, &mut again) {
            UpFrom::Plain => break,
            UpFrom::Fail(_) => return false,
            UpFrom::Link(n) => {
                cur[..n].copy_from_slice(&again[..n]);
                (len, base, through) = (n, libc::AT_FDCWD, true);
                match vrift_shim_core::path::next_inner_dotdot(&cur[..len], 0) {
                    Some(next) => end = next,
                    None => break,
                }
            }
        }
    }
    through
        && absolutize(base, &cur[..len], there)
        && domain_rel(there.abs(), state::ROOT.get()).is_some_and(|rel| !is_state_path(rel))
}

/// For a directory the shim opened at the in-domain path `lexical` (a miss
/// in the table) on `fd`: if a physical symlink on the way leads to another
/// place in the domain, writes that canonical path into `canon` (its
/// rift-relative part marked) and returns true. One readlink of
/// `/proc/self/fd/N` the first time a directory is seen, none after.
pub fn canonical_dir(fd: i32, lexical: &PathBuf, canon: &mut PathBuf) -> bool {
    if !lexical.in_domain_miss || fd < 0 {
        return false;
    }
    let Some(slot) = unverified(lexical.abs()) else {
        return false;
    };
    if let ByParent::Canonical = by_parent(lexical.abs(), canon) {
        slot.verify();
        return false;
    }
    // SAFETY: the buffer holds PATH_MAX + 1 bytes.
    let Some(n) = (unsafe { sys::fd_path_into(fd, canon.as_mut_ptr(), PATH_MAX) }) else {
        return false;
    };
    // SAFETY: fd_path_into wrote n <= PATH_MAX bytes.
    unsafe { canon.set_len(n) };
    let root = state::ROOT.get();
    let rel_len = match domain_rel(canon.abs(), root) {
        Some(rel) if canon.abs() != lexical.abs() && !is_state_path(rel) => rel.len(),
        _ => {
            slot.verify();
            return false;
        }
    };
    canon.rel_start = canon.len() - rel_len;
    true
}

/// After libc answered ENOENT for an in-domain path the table knew nothing
/// of: the domain test is lexical, so a *physical* symlink on the way may
/// lead to a rift entry. Asks the kernel for the parent's canonical path (an
/// O_PATH open and a /proc readlink), follows a final physical symlink when
/// `follow`, and resolves again. Returns the rift entry found (its view path
/// in `view`), or None with errno left at ENOENT.
///
/// Cost, on that error path only: three syscalls the first time a parent
/// directory is seen (one if it does not exist), none after (the parent is
/// verified: [`VERIFIED`], a 256-entry direct-mapped cache per process);
/// with `follow`, one readlink per missing name not seen before (the name
/// may be a physical symlink to a rift file).
///
/// Not done outside the domain (`/tmp/x -> proj/sub`, then `/tmp/x/f`):
/// there the same check would run on every process's first miss in every
/// directory, and misses outside the project are everywhere — each PATH
/// search by execvp or a shell misses in every PATH directory before the
/// hit. Measured with it: `python3 -c "import json, email, http.client"`
/// and `cc -fsyntax-only` (a pyenv shim: many short processes) made 14,503
/// syscalls instead of 13,208 (+10%, nearly all O_PATH opens, /proc
/// readlinks and closes on PATH directories). For the same reason an
/// outside symlink to a directory of the domain lists only its physical
/// entries (opendir would need a readlink on every opendir outside).
pub fn physical_fallback<'t>(
    miss: &PathBuf,
    follow: bool,
    view: &mut PathBuf,
) -> Option<(RecordHeader, &'t [u8])> {
    // SAFETY: errno is thread-local.
    if !miss.in_domain_miss || unsafe { *libc::__errno_location() } != libc::ENOENT {
        return None;
    }
    // A rift file at a prefix the disk lacks: the view says ENOTDIR.
    if let Some(table) = state::table() {
        if view::missing_errno(&table, miss.rel()) == libc::ENOTDIR {
            crate::real::fail(libc::ENOTDIR);
            return None;
        }
    }
    let abs = miss.abs();
    let cut = abs.iter().rposition(|&c| c == b'/')?;
    let (parent, name) = (&abs[..cut.max(1)], &abs[cut + 1..]);
    if name.is_empty() {
        return None;
    }
    let check_name = follow;
    // With a name to check, the whole path is the cache key; else the parent.
    let name_slot = if check_name {
        Some(unverified(abs)?)
    } else {
        None
    };
    let parent_slot = unverified(parent);
    if parent_slot.is_none() && !check_name {
        return None;
    }
    if parent_slot.is_none() {
        // The common first miss of a name: its parent is its own canonical
        // path, so only the name itself could be a symlink. One readlink of
        // a byte answers; the full walk below (and its buffers) is for a
        // symlink or an unverified parent.
        if !view.set(abs) {
            return None;
        }
        if readlink_byte(view).is_err() {
            if let Some(slot) = &name_slot {
                slot.verify();
            }
            crate::real::fail(libc::ENOENT);
            return None;
        }
    }
    physical_walk(miss, follow, view, name_slot, parent_slot)
}

/// [`physical_fallback`] past its quick answer: finds the canonical parent
/// (and the name's symlink target) and resolves what they lead to. Never
/// inlined: its two buffers would otherwise be stack pages every first miss
/// of a name faults in.
#[inline(never)]
fn physical_walk<'t>(
    miss: &PathBuf,
    follow: bool,
    view: &mut PathBuf,
    name_slot: Option<Unverified>,
    parent_slot: Option<Unverified>,
) -> Option<(RecordHeader, &'t [u8])> {
    let abs = miss.abs();
    let cut = abs.iter().rposition(|&c| c == b'/')?;
    let (parent, name) = (&abs[..cut.max(1)], &abs[cut + 1..]);
    let check_name = follow;
    // `view` is scratch space (NUL-terminated paths) until the last resolve:
    // every 4 KiB buffer in this frame is a stack page the first miss faults in.
    let mut canon = PathBuf::new();
    let mut target = [0u8; PATH_MAX];
    let mut target_len = None;
    let readlink = |dirfd: i32, p: *const libc::c_char, target: &mut [u8; PATH_MAX]| {
        // SAFETY: valid fd (or AT_FDCWD), name and buffer.
        let n = unsafe {
            crate::raw_syscall!(
                libc::SYS_readlinkat,
                dirfd,
                p,
                target.as_mut_ptr(),
                PATH_MAX
            )
        };
        (n > 0 && (n as usize) < PATH_MAX).then_some(n as usize)
    };
    let parent_is = match parent_slot {
        None => ByParent::Canonical,
        Some(_) => by_parent(parent, view),
    };
    if let ByParent::Canonical = parent_is {
        // Verified (or just found to be): the parent is its own canonical path.
        canon.set(parent);
        if check_name {
            if !view.set(abs) {
                return None;
            }
            target_len = readlink(libc::AT_FDCWD, view.c_ptr(), &mut target);
        }
    } else {
        if !view.set(parent) {
            return None;
        }
        let fd = match parent_is {
            ByParent::Missing => -1,
            _ => sys::openat_raw(
                libc::AT_FDCWD,
                view.c_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            ),
        };
        if fd < 0 {
            // No such directory: nothing can be behind it either (not asked
            // again while the entry stays).
            if let Some(slot) = &parent_slot {
                slot.verify();
            }
            crate::real::fail(libc::ENOENT);
            return None;
        }
        // SAFETY: the buffer holds PATH_MAX + 1 bytes.
        let canon_len = unsafe { sys::fd_path_into(fd, canon.as_mut_ptr(), PATH_MAX) };
        if check_name && view.set(name) {
            target_len = readlink(fd, view.c_ptr(), &mut target);
        }
        sys::close_raw(fd);
        let Some(canon_len) = canon_len else {
            crate::real::fail(libc::ENOENT);
            return None;
        };
        // SAFETY: fd_path_into wrote canon_len <= PATH_MAX bytes.
        unsafe { canon.set_len(canon_len) };
    }
    // The parent leads nowhere else in the domain: remember it.
    let root = state::ROOT.get();
    let parent_stays = canon.abs() == parent || domain_rel(canon.abs(), root).is_none();
    if parent_stays {
        if let Some(slot) = &parent_slot {
            slot.verify();
        }
    }
    if canon.abs() == parent && target_len.is_none() {
        if let Some(slot) = &name_slot {
            slot.verify();
        }
        crate::real::fail(libc::ENOENT);
        return None;
    }
    // The real location: canonical parent + (symlink target or name).
    let tail: &[u8] = match target_len {
        Some(n) => &target[..n],
        None => name,
    };
    if tail.first() == Some(&b'/') {
        canon.truncate(1);
    }
    if !canon.append(tail) {
        crate::real::fail(libc::ENOENT);
        return None;
    }
    let found = match resolve(libc::AT_FDCWD, canon.abs(), follow, view).0 {
        View::Entry { header, target } => Some((header, target)),
        _ => None,
    };
    if found.is_none() {
        crate::real::fail(libc::ENOENT);
    }
    found
}
