//! Serving one notification: the task's call is made again in the
//! supervisor, through the shim's own functions (so the view's rules are
//! the very code every other process runs), with the task's path spellings,
//! dirfds and buffers made the supervisor's. What names nothing of the view
//! is handed back to the kernel (`CONTINUE`) to run in the task as it was.

use core::sync::atomic::{AtomicBool, Ordering};

use libc::{c_char, c_int, c_long, c_uint};
use vrift_shim_core::PATH_MAX;

use super::target::{kernel_result, Task};
use crate::resolve::{resolve, PathBuf, View};
use crate::{fdtable, sys};

/// What the supervisor answers.
pub enum Reply {
    /// Let the kernel run the call in the task, unchanged.
    Continue,
    /// The call's result (a value, or -errno).
    Value(c_long),
    /// An fd of the supervisor to install in the task as the call's result
    /// (closed by the supervisor afterwards); `entry`: on a rift entry (see
    /// [`handed`]).
    Fd {
        fd: c_int,
        cloexec: bool,
        entry: bool,
    },
}

/// A path argument made the supervisor's.
struct PathArg {
    dirfd: c_int,
    buf: [u8; PATH_MAX + 1],
    len: usize,
}

impl PathArg {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn ptr(&self) -> *const c_char {
        self.buf.as_ptr() as *const c_char
    }
}

/// How the view sees a path argument.
#[derive(PartialEq, Eq)]
enum Seen {
    /// Outside the domain (or vrift's own state): the kernel's business.
    Outside,
    /// In the domain, and the disk holds exactly what the view shows.
    DiskAsIs,
    /// The view differs (a rift entry, something hidden, a rift symlink on
    /// the way) or the path reaches the store.
    View,
}

fn read_path(task: &mut Task, dirfd: c_int, addr: u64) -> Result<PathArg, c_int> {
    let mut arg = PathArg {
        dirfd: libc::AT_FDCWD,
        buf: [0; PATH_MAX + 1],
        len: 0,
    };
    let n = task.read_str(addr, &mut arg.buf)?;
    arg.len = task.localize(&mut arg.buf, n)?;
    if arg.buf.first() == Some(&b'/') {
        return Ok(arg);
    }
    if dirfd == libc::AT_FDCWD && arg.len > 0 {
        // Relative to the task's cwd: made absolute with one readlink (a
        // directory is physical, so its path is its view path).
        let mut cwd = [0u8; PATH_MAX];
        if let Some(c) = task.cwd_path(&mut cwd) {
            if c + 1 + arg.len <= PATH_MAX {
                arg.buf.copy_within(0..arg.len, c + 1);
                arg.buf[..c].copy_from_slice(&cwd[..c]);
                arg.buf[c] = b'/';
                arg.len += c + 1;
                arg.buf[arg.len] = 0;
                return Ok(arg);
            }
        }
    }
    // Relative to a dirfd (or empty, for AT_EMPTY_PATH), or a cwd whose
    // path does not fit: a copy of the task's directory fd.
    arg.dirfd = task.dirfd(dirfd)?;
    Ok(arg)
}

fn seen(arg: &PathArg, follow: bool, view_path: &mut PathBuf) -> Seen {
    let (view, table) = if arg.len == 0 {
        // AT_EMPTY_PATH: the dirfd itself, by the path the kernel has for it.
        let mut fd_path = [0u8; PATH_MAX];
        let Some(n) = sys::fd_path(arg.dirfd, &mut fd_path) else {
            return Seen::Outside;
        };
        if crate::resolve::in_store(&fd_path[..n]) {
            return Seen::View;
        }
        resolve(libc::AT_FDCWD, &fd_path[..n], false, view_path)
    } else {
        resolve(arg.dirfd, arg.bytes(), follow, view_path)
    };
    if view_path.in_store {
        return if task_is_vrift() {
            Seen::Outside
        } else {
            Seen::View
        };
    }
    let seen = match view {
        View::Pass => Seen::Outside,
        View::Disk { rewritten: false } if table.is_none() => Seen::DiskAsIs,
        View::Disk { rewritten: false } => Seen::DiskAsIs,
        _ => Seen::View,
    };
    if seen != Seen::Outside && task_is_vrift() {
        return Seen::Outside;
    }
    seen
}

/// The task of the notification being served, and whether it is vrift
/// itself (0: not asked yet, 1: no, 2: yes). vrift's own processes never
/// act through the view (DESIGN.md §2) — a daemon started under the filter
/// would otherwise send its own mkdir to itself — so their calls all go
/// back to the kernel. Asked (one readlink) only when a call would be
/// served.
static TASK: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);
static TASK_IS_VRIFT: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

fn task_is_vrift() -> bool {
    match TASK_IS_VRIFT.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let mut path = [0u8; 40];
            let n = super::target::proc_path(&mut path, TASK.load(Ordering::Relaxed), b"/exe");
            let mut exe = [0u8; PATH_MAX];
            // The supervisor is vrift itself: a task running the same
            // binary is one of vrift's own (the table's `exe_path` is a
            // project's file, and is not trusted for this).
            let mut own = [0u8; PATH_MAX];
            let own = sys::readlink_raw(b"/proc/self/exe", &mut own).map(|len| &own[..len]);
            let yes = sys::readlink_raw(&path[..n], &mut exe).is_some_and(|len| {
                let exe = &exe[..len];
                let exe = exe.strip_suffix(b" (deleted)").unwrap_or(exe);
                own.is_some_and(|own| own.strip_suffix(b" (deleted)").unwrap_or(own) == exe)
            });
            TASK_IS_VRIFT.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// Whether a read of `arg` can be left to the kernel.
fn kernel_reads(arg: &PathArg, follow: bool) -> bool {
    let mut b = PathBuf::new();
    seen(arg, follow, &mut b) != Seen::View
}

/// Whether a change of `arg` can be left to the kernel.
fn kernel_writes(arg: &PathArg, follow: bool) -> bool {
    let mut b = PathBuf::new();
    seen(arg, follow, &mut b) == Seen::Outside
}

fn call(nr: c_long, a: [usize; 6]) -> c_long {
    let r = crate::syscall::vrift_syscall(
        nr,
        a[0] as c_long,
        a[1] as c_long,
        a[2] as c_long,
        a[3] as c_long,
        a[4] as c_long,
        a[5] as c_long,
    );
    kernel_result(r)
}

/// Serves call `nr` with `args` for `task`.
pub fn dispatch(task: &mut Task, nr: c_long, args: [u64; 6]) -> Reply {
    TASK.store(task.tid, Ordering::Relaxed);
    TASK_IS_VRIFT.store(0, Ordering::Relaxed);
    match handle(task, nr, args) {
        Ok(r) => r,
        Err(e) => Reply::Value(-(e as c_long)),
    }
}

const NOFOLLOW: c_int = libc::AT_SYMLINK_NOFOLLOW;

fn handle(task: &mut Task, nr: c_long, a: [u64; 6]) -> Result<Reply, c_int> {
    let int = |i: usize| a[i] as c_int;
    Ok(match nr {
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => open(task, libc::AT_FDCWD, a[0], int(1), a[2] as c_uint)?,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => open(
            task,
            libc::AT_FDCWD,
            a[0],
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
            a[1] as c_uint,
        )?,
        libc::SYS_openat => open(task, int(0), a[1], int(2), a[3] as c_uint)?,
        libc::SYS_openat2 => openat2(task, a)?,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_stat | libc::SYS_lstat => {
            let flags = if nr == libc::SYS_lstat { NOFOLLOW } else { 0 };
            stat(task, libc::AT_FDCWD, a[0], a[1], flags)?
        }
        libc::SYS_newfstatat => stat(task, int(0), a[1], a[2], int(3))?,
        libc::SYS_fstat => fstat(task, int(0), a[1])?,
        libc::SYS_statx => statx(task, a)?,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_access => access(task, libc::AT_FDCWD, a[0], int(1), 0)?,
        libc::SYS_faccessat => access(task, int(0), a[1], int(2), 0)?,
        libc::SYS_faccessat2 => access(task, int(0), a[1], int(2), int(3))?,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_readlink => readlink(task, libc::AT_FDCWD, a[0], a[1], a[2])?,
        libc::SYS_readlinkat => readlink(task, int(0), a[1], a[2], a[3])?,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_getdents => getdents(task, int(0), a[1], a[2], crate::dir::Dents::Old)?,
        libc::SYS_getdents64 => getdents(task, int(0), a[1], a[2], crate::dir::Dents::V64)?,
        libc::SYS_chdir => chdir(task, a[0])?,
        libc::SYS_execve => exec(task, libc::AT_FDCWD, a[0], 0)?,
        libc::SYS_execveat => exec(task, int(0), a[1], int(4))?,
        libc::SYS_ioctl => ioctl(task, int(0))?,
        libc::SYS_fchmod | libc::SYS_fchown | libc::SYS_fsetxattr | libc::SYS_fremovexattr
            if task_is_vrift() =>
        {
            Reply::Continue
        }
        libc::SYS_fchmod | libc::SYS_fchown => {
            let fd = task.fd(int(0))?;
            // An fd the supervisor handed out on a rift file changes the
            // entry, as the library does for an fd it tracks.
            let mut path = [0u8; PATH_MAX + 1];
            if entry_of(fd, int(0), &mut path) {
                let p = path.as_ptr() as usize;
                let at = libc::AT_FDCWD as usize;
                Reply::Value(if nr == libc::SYS_fchmod {
                    call(libc::SYS_fchmodat, [at, p, a[1] as usize, 0, 0, 0])
                } else {
                    call(
                        libc::SYS_fchownat,
                        [at, p, a[1] as usize, a[2] as usize, 0, 0],
                    )
                })
            } else {
                Reply::Value(call(
                    nr,
                    [fd as usize, a[1] as usize, a[2] as usize, 0, 0, 0],
                ))
            }
        }
        libc::SYS_fsetxattr | libc::SYS_fremovexattr => fd_xattr(task, nr, a)?,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_setxattr
        | libc::SYS_lsetxattr
        | libc::SYS_removexattr
        | libc::SYS_lremovexattr => path_xattr(task, nr, a)?,
        _ => changes(task, nr, a)?,
    })
}

// ---- open -------------------------------------------------------------------------

fn writes(flags: c_int) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY
        || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0
        || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

fn open(
    task: &mut Task,
    dirfd: c_int,
    addr: u64,
    flags: c_int,
    mode: c_uint,
) -> Result<Reply, c_int> {
    let arg = read_path(task, dirfd, addr)?;
    let follow = flags & libc::O_NOFOLLOW == 0;
    let mut view = PathBuf::new();
    let seen = seen(&arg, follow, &mut view);
    if seen == Seen::Outside || (seen == Seen::DiskAsIs && !writes(flags)) {
        return Ok(Reply::Continue);
    }
    // A FIFO of the view opens without waiting for its other end: the
    // supervisor serves every task from one thread and must not block in
    // an open (README, "Special files": a reader sees end-of-file until a
    // writer came, a writer with no reader gets ENXIO).
    let fifo = is_fifo_entry(&arg, follow);
    let open_flags = if fifo {
        flags | libc::O_NONBLOCK
    } else {
        flags
    };
    let fd = crate::open::vrift_openat(arg.dirfd, arg.ptr(), open_flags, mode, 2);
    if fd < 0 {
        return Err(super::target::errno());
    }
    if fifo && flags & libc::O_NONBLOCK == 0 {
        // SAFETY: fcntl on our own fd, no pointers.
        unsafe {
            let fl = crate::raw_syscall!(libc::SYS_fcntl, fd, libc::F_GETFL) as c_int;
            crate::raw_syscall!(libc::SYS_fcntl, fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
    let entry = fdtable::get(fd).is_some() && view.abs().len() <= PATH_MAX;
    if entry {
        let p = pending();
        p.len = view.abs().len();
        p.path[..p.len].copy_from_slice(view.abs());
    }
    Ok(Reply::Fd {
        fd,
        cloexec: flags & libc::O_CLOEXEC != 0,
        entry,
    })
}

/// Whether an open names a FIFO of the view.
fn is_fifo_entry(arg: &PathArg, follow: bool) -> bool {
    let mut buf = PathBuf::new();
    matches!(
        resolve(arg.dirfd, arg.bytes(), follow, &mut buf).0,
        View::Entry { header, .. }
            if header.kind == vrift_format::Kind::Special
                && header.mode & libc::S_IFMT == libc::S_IFIFO
    )
}

fn openat2(task: &mut Task, a: [u64; 6]) -> Result<Reply, c_int> {
    let mut how = [0u8; 24];
    if (a[3] as usize) < how.len() {
        return Ok(Reply::Continue); // the kernel gives EINVAL
    }
    task.read(a[2], &mut how)?;
    let word = |i: usize| u64::from_ne_bytes(how[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (flags, mode, res) = (word(0), word(1), word(2));
    // Only the RESOLVE_ flags that narrow the kernel's own walk (see
    // `syscall::openat2`) are served as openat.
    if res & !(0x01 | 0x02 | 0x20) != 0 || flags > u32::MAX as u64 || mode > 0o7777 {
        return Ok(Reply::Continue);
    }
    open(task, a[0] as c_int, a[1], flags as c_int, mode as c_uint)
}

// ---- fstat of fds the supervisor opened -----------------------------------------------

/// The view paths of rift entries handed to tasks, by the identity of the
/// file behind the fd (a blob, a staging file) and the fd's number in the
/// task: `fstat` on that fd then reports the view's metadata. (By number
/// too: the same blob reached through another fd — inherited, opened
/// through `/proc` — is the store's, not this entry.) A small ring: a miss
/// reports the file itself.
const ENTRIES: usize = 64;
struct Entry {
    dev: u64,
    ino: u64,
    fd: c_int,
    len: usize,
    path: [u8; PATH_MAX],
}

struct Ring {
    next: usize,
    slots: [Entry; ENTRIES],
}

/// Used by the supervisor's single thread only.
static mut RING: Ring = Ring {
    next: 0,
    slots: [const {
        Entry {
            dev: 0,
            ino: 0,
            fd: -1,
            len: 0,
            path: [0; PATH_MAX],
        }
    }; ENTRIES],
};

fn ring() -> &'static mut Ring {
    // SAFETY: only the supervisor's one thread serves notifications.
    unsafe { &mut *core::ptr::addr_of_mut!(RING) }
}

fn identity(fd: c_int) -> Option<(u64, u64)> {
    let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is a valid out-buffer.
    let r = unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, st.as_mut_ptr()) };
    // SAFETY: initialized on success.
    (r == 0)
        .then(|| unsafe { st.assume_init() })
        .map(|st| (st.st_dev, st.st_ino))
}

/// The view path of the entry an open is handing out (until [`handed`]).
struct Pending {
    len: usize,
    path: [u8; PATH_MAX],
}

static mut PENDING: Pending = Pending {
    len: 0,
    path: [0; PATH_MAX],
};

fn pending() -> &'static mut Pending {
    // SAFETY: only the supervisor's one serving thread touches it.
    unsafe { &mut *core::ptr::addr_of_mut!(PENDING) }
}

/// The supervisor's `local` fd on a rift entry is now the task's
/// `task_fd`: remembered for `fstat`.
pub fn handed(local: c_int, task_fd: c_int) {
    let Some((dev, ino)) = identity(local) else {
        return;
    };
    let p = pending();
    let r = ring();
    let slot = r
        .slots
        .iter()
        .position(|e| e.dev == dev && e.ino == ino && e.fd == task_fd)
        .unwrap_or(r.next);
    if slot == r.next {
        r.next = (r.next + 1) % ENTRIES;
    }
    let e = &mut r.slots[slot];
    e.dev = dev;
    e.ino = ino;
    e.fd = task_fd;
    e.len = p.len;
    e.path[..p.len].copy_from_slice(&p.path[..p.len]);
}

/// The view path remembered for the task's fd `task_fd` (whose copy in
/// the supervisor is `local`), NUL-terminated.
fn entry_of(local: c_int, task_fd: c_int, out: &mut [u8; PATH_MAX + 1]) -> bool {
    let Some((dev, ino)) = identity(local) else {
        return false;
    };
    let r = ring();
    let Some(e) = r
        .slots
        .iter()
        .find(|e| e.len > 0 && e.dev == dev && e.ino == ino && e.fd == task_fd)
    else {
        return false;
    };
    out[..e.len].copy_from_slice(&e.path[..e.len]);
    out[e.len] = 0;
    true
}

/// Whether any entry handed out is the task's fd number `fd`: if not,
/// `fstat` and its kin go back to the kernel without a look at the fd (Go
/// stats every file it opens).
fn maybe_entry(task_fd: c_int) -> bool {
    ring().slots.iter().any(|e| e.len > 0 && e.fd == task_fd)
}

fn fstat(task: &mut Task, fd: c_int, out: u64) -> Result<Reply, c_int> {
    if !maybe_entry(fd) {
        return Ok(Reply::Continue);
    }
    let local = task.fd(fd)?;
    let mut path = [0u8; PATH_MAX + 1];
    if !entry_of(local, fd, &mut path) || task_is_vrift() {
        return Ok(Reply::Continue);
    }
    let mut st = core::mem::MaybeUninit::<libc::stat>::zeroed();
    let r = crate::stat::fstatat(
        libc::AT_FDCWD,
        path.as_ptr() as *const c_char,
        st.as_mut_ptr(),
        0,
    );
    if r != 0 {
        return Ok(Reply::Continue);
    }
    // SAFETY: filled by a successful fstatat.
    write_struct(task, out, unsafe { st.assume_init_ref() })
}

fn write_struct<T>(task: &Task, addr: u64, v: &T) -> Result<Reply, c_int> {
    // SAFETY: T is a plain C struct, read as bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>())
    };
    task.write(addr, bytes)?;
    Ok(Reply::Value(0))
}

// ---- stat, access, readlink -------------------------------------------------------------

/// Whether the string at `addr` is empty (an `AT_EMPTY_PATH` call on an fd).
fn empty_at(task: &Task, addr: u64) -> bool {
    let mut first = [1u8; 1];
    task.read(addr, &mut first).is_ok() && first[0] == 0
}

fn stat(task: &mut Task, dirfd: c_int, addr: u64, out: u64, flags: c_int) -> Result<Reply, c_int> {
    if flags & libc::AT_EMPTY_PATH != 0 && empty_at(task, addr) {
        return fstat(task, dirfd, out);
    }
    let arg = read_path(task, dirfd, addr)?;
    if kernel_reads(&arg, flags & NOFOLLOW == 0) {
        return Ok(Reply::Continue);
    }
    let mut st = core::mem::MaybeUninit::<libc::stat>::zeroed();
    if crate::stat::fstatat(arg.dirfd, arg.ptr(), st.as_mut_ptr(), flags) != 0 {
        return Err(super::target::errno());
    }
    // SAFETY: filled by a successful fstatat.
    write_struct(task, out, unsafe { st.assume_init_ref() })
}

fn statx(task: &mut Task, a: [u64; 6]) -> Result<Reply, c_int> {
    let (dirfd, flags, mask, out) = (a[0] as c_int, a[2] as c_int, a[3] as c_uint, a[4]);
    let empty = flags & libc::AT_EMPTY_PATH != 0 && empty_at(task, a[1]);
    if empty && !maybe_entry(dirfd) {
        return Ok(Reply::Continue);
    }
    let arg = read_path(task, dirfd, a[1])?;
    let mut stx = core::mem::MaybeUninit::<libc::statx>::zeroed();
    let r = if empty {
        let local = task.fd(dirfd)?;
        let mut path = [0u8; PATH_MAX + 1];
        if !entry_of(local, dirfd, &mut path) {
            return Ok(Reply::Continue);
        }
        let flags = flags & !libc::AT_EMPTY_PATH;
        crate::stat::statx(
            libc::AT_FDCWD,
            path.as_ptr() as *const c_char,
            flags,
            mask,
            stx.as_mut_ptr(),
        )
    } else {
        if kernel_reads(&arg, flags & NOFOLLOW == 0) {
            return Ok(Reply::Continue);
        }
        crate::stat::statx(arg.dirfd, arg.ptr(), flags, mask, stx.as_mut_ptr())
    };
    if r != 0 {
        return Err(super::target::errno());
    }
    // SAFETY: filled by a successful statx.
    write_struct(task, out, unsafe { stx.assume_init_ref() })
}

fn access(
    task: &mut Task,
    dirfd: c_int,
    addr: u64,
    mode: c_int,
    flags: c_int,
) -> Result<Reply, c_int> {
    let arg = read_path(task, dirfd, addr)?;
    if kernel_reads(&arg, flags & NOFOLLOW == 0) {
        return Ok(Reply::Continue);
    }
    let r = crate::stat::faccessat(arg.dirfd, arg.ptr(), mode, flags);
    Ok(Reply::Value(kernel_result(r as c_long)))
}

fn readlink(task: &mut Task, dirfd: c_int, addr: u64, out: u64, size: u64) -> Result<Reply, c_int> {
    let arg = read_path(task, dirfd, addr)?;
    if kernel_reads(&arg, false) {
        return Ok(Reply::Continue);
    }
    let mut buf = [0u8; PATH_MAX];
    let cap = (size as usize).min(buf.len());
    let n = crate::fds::readlinkat(arg.dirfd, arg.ptr(), buf.as_mut_ptr() as *mut c_char, cap);
    if n < 0 {
        return Err(super::target::errno());
    }
    task.write(out, &buf[..n as usize])?;
    Ok(Reply::Value(n as c_long))
}

// ---- directory listings -----------------------------------------------------------------

/// Where a task's raw listing of a merged directory stands, by (fd, file):
/// the shim keeps it in its fd table, per fd of the supervisor, which a
/// copy made per call does not keep.
struct Listing {
    fd: c_int,
    dev: u64,
    ino: u64,
    served: i64,
    eof: i64,
}

const LISTINGS: usize = 32;
static mut LISTING: [Listing; LISTINGS] = [const {
    Listing {
        fd: -1,
        dev: 0,
        ino: 0,
        served: -1,
        eof: 0,
    }
}; LISTINGS];
static mut LISTING_NEXT: usize = 0;

fn getdents(
    task: &mut Task,
    fd: c_int,
    out: u64,
    count: u64,
    fmt: crate::dir::Dents,
) -> Result<Reply, c_int> {
    let local = task.fd(fd)?;
    let mut path = [0u8; PATH_MAX];
    let Some(n) = sys::fd_path(local, &mut path) else {
        return Ok(Reply::Continue);
    };
    let in_view = crate::state::table().is_some_and(|t| {
        vrift_format::pathnorm::domain_rel(&path[..n], crate::state::ROOT.get())
            .is_some_and(|rel| t.dir(rel).is_some())
    });
    if !in_view || task_is_vrift() {
        return Ok(Reply::Continue);
    }
    let Some((dev, ino)) = identity(local) else {
        return Ok(Reply::Continue);
    };
    fdtable::set_dir(local, &path[..n]);
    // SAFETY: only the supervisor's one thread serves notifications.
    let listings = unsafe { &mut *core::ptr::addr_of_mut!(LISTING) };
    let known = listings
        .iter()
        .position(|l| l.fd == fd && l.dev == dev && l.ino == ino);
    if let Some(i) = known {
        fdtable::set_dents(local, listings[i].served, listings[i].eof);
    }
    let mut buf = [0u8; 32 * 1024];
    let cap = (count as usize).min(buf.len());
    let got = crate::dir::getdents(local, buf.as_mut_ptr(), cap, fmt);
    if got < 0 {
        return Err(super::target::errno());
    }
    let (served, eof) = fdtable::dents(local);
    let i = known.unwrap_or_else(|| {
        // SAFETY: as above.
        let next = unsafe { &mut *core::ptr::addr_of_mut!(LISTING_NEXT) };
        let i = *next;
        *next = (i + 1) % LISTINGS;
        i
    });
    listings[i] = Listing {
        fd,
        dev,
        ino,
        served,
        eof,
    };
    task.write(out, &buf[..got as usize])?;
    Ok(Reply::Value(got as c_long))
}

// ---- the current directory, exec ----------------------------------------------------

fn chdir(task: &mut Task, addr: u64) -> Result<Reply, c_int> {
    let arg = read_path(task, libc::AT_FDCWD, addr)?;
    let mut b = PathBuf::new();
    let (view, _) = resolve(arg.dirfd, arg.bytes(), true, &mut b);
    Ok(match view {
        View::Pass | View::Disk { rewritten: false } => Reply::Continue,
        View::Error(e) => Reply::Value(-(e as c_long)),
        View::Entry { .. } => Reply::Value(-(libc::ENOTDIR as c_long)),
        View::Disk { rewritten: true } => {
            // The kernel would walk the disk, where the rift symlink on the
            // way is absent; no call can move another process's cwd.
            unreachable_view(b"change directory through the rift symlink", b.abs());
            Reply::Value(-(libc::ENOENT as c_long))
        }
    })
}

fn exec(task: &mut Task, dirfd: c_int, addr: u64, flags: c_int) -> Result<Reply, c_int> {
    let arg = read_path(task, dirfd, addr)?;
    let mut b = PathBuf::new();
    if arg.len == 0 {
        return Ok(Reply::Continue); // fexecve: the fd is what it is
    }
    let (view, _) = resolve(arg.dirfd, arg.bytes(), flags & NOFOLLOW == 0, &mut b);
    Ok(match view {
        View::Pass | View::Disk { rewritten: false } => Reply::Continue,
        View::Error(e) => Reply::Value(-(e as c_long)),
        View::Entry { .. } | View::Disk { rewritten: true } => {
            // The program would run what the disk holds under that name (or
            // nothing): its path argument cannot be changed from here.
            unreachable_view(b"run", b.abs());
            Reply::Value(-(libc::EACCES as c_long))
        }
    })
}

/// Says once that a program that cannot load the view library asked for
/// something the supervisor cannot do in its place.
fn unreachable_view(what: &[u8], path: &[u8]) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        sys::complain(&[
            b"vrift: a program that cannot load the view library tried to ",
            what,
            b" ",
            path,
            b", which only the view holds: start it from a shell or a dynamically linked program instead",
        ]);
    }
}

// ---- calls on fds ---------------------------------------------------------------------

/// `ioctl` with a request that changes a file in place: refused on a file
/// of the store (as the library does), the kernel's otherwise.
fn ioctl(task: &mut Task, fd: c_int) -> Result<Reply, c_int> {
    let local = task.fd(fd)?;
    let mut path = [0u8; PATH_MAX];
    let Some(n) = sys::fd_path(local, &mut path) else {
        return Ok(Reply::Continue);
    };
    let p = &path[..n];
    Ok(if task_is_vrift() {
        Reply::Continue
    } else if crate::resolve::in_store(p) {
        Reply::Value(-(libc::EPERM as c_long))
    } else if crate::resolve::in_staging(p) {
        // A rift file being written: the rift keeps no flags (and an
        // immutable staging file could never be sealed).
        Reply::Value(-(libc::EOPNOTSUPP as c_long))
    } else {
        Reply::Continue
    })
}

/// A short C string argument (an xattr name).
fn read_name(task: &Task, addr: u64, out: &mut [u8; PATH_MAX + 1]) -> Result<(), c_int> {
    task.read_str(addr, out).map(|_| ())
}

const XATTR_SIZE_MAX: usize = 65536;

fn fd_xattr(task: &mut Task, nr: c_long, a: [u64; 6]) -> Result<Reply, c_int> {
    let local = task.fd(a[0] as c_int)?;
    let mut path = [0u8; PATH_MAX + 1];
    if entry_of(local, a[0] as c_int, &mut path) {
        // A rift file: the rift keeps no attributes (as the library says
        // for an fd it tracks).
        return Ok(Reply::Value(-(libc::EOPNOTSUPP as c_long)));
    }
    let mut name = [0u8; PATH_MAX + 1];
    read_name(task, a[1], &mut name)?;
    let name_ptr = name.as_ptr() as *const c_char;
    let r = if nr == libc::SYS_fsetxattr {
        let size = (a[3] as usize).min(XATTR_SIZE_MAX);
        let mut value = [0u8; XATTR_SIZE_MAX];
        task.read(a[2], &mut value[..size])?;
        crate::xattr::fsetxattr(
            local,
            name_ptr,
            value.as_ptr() as *const libc::c_void,
            size,
            a[4] as c_int,
        )
    } else {
        crate::xattr::fremovexattr(local, name_ptr)
    };
    Ok(Reply::Value(kernel_result(r as c_long)))
}

#[cfg(target_arch = "x86_64")]
fn path_xattr(task: &mut Task, nr: c_long, a: [u64; 6]) -> Result<Reply, c_int> {
    let arg = read_path(task, libc::AT_FDCWD, a[0])?;
    let follow = nr == libc::SYS_setxattr || nr == libc::SYS_removexattr;
    if kernel_writes(&arg, follow) {
        return Ok(Reply::Continue);
    }
    let mut name = [0u8; PATH_MAX + 1];
    read_name(task, a[1], &mut name)?;
    let name_ptr = name.as_ptr() as *const c_char;
    let r = match nr {
        libc::SYS_setxattr | libc::SYS_lsetxattr => {
            let size = (a[3] as usize).min(XATTR_SIZE_MAX);
            let mut value = [0u8; XATTR_SIZE_MAX];
            task.read(a[2], &mut value[..size])?;
            let v = value.as_ptr() as *const libc::c_void;
            if follow {
                crate::xattr::setxattr(arg.ptr(), name_ptr, v, size, a[4] as c_int)
            } else {
                crate::xattr::lsetxattr(arg.ptr(), name_ptr, v, size, a[4] as c_int)
            }
        }
        _ if follow => crate::xattr::removexattr(arg.ptr(), name_ptr),
        _ => crate::xattr::lremovexattr(arg.ptr(), name_ptr),
    };
    Ok(Reply::Value(kernel_result(r as c_long)))
}

// ---- changes by path --------------------------------------------------------------

/// Where a call's path arguments are: (index of the dirfd or None for the
/// cwd, index of the path, whether a final symlink is followed).
type Slot = (Option<usize>, usize, bool);

/// A changing call's path arguments, and an input buffer it reads
/// (argument index, size).
type Shape = ([Option<Slot>; 2], Option<(usize, usize)>);

/// The path arguments of the changing calls (served through
/// `syscall::vrift_syscall`, whose argument order they keep).
fn paths_of(nr: c_long, a: &[u64; 6]) -> Option<Shape> {
    let flag_follow = |i: usize| a[i] as c_int & NOFOLLOW == 0;
    // (paths, an input buffer: (argument index, size))
    Some(match nr {
        libc::SYS_mkdirat | libc::SYS_unlinkat | libc::SYS_mknodat => {
            ([Some((Some(0), 1, false)), None], None)
        }
        libc::SYS_renameat | libc::SYS_renameat2 => {
            ([Some((Some(0), 1, false)), Some((Some(2), 3, false))], None)
        }
        libc::SYS_linkat => (
            [
                Some((Some(0), 1, a[4] as c_int & libc::AT_SYMLINK_FOLLOW != 0)),
                Some((Some(2), 3, false)),
            ],
            None,
        ),
        libc::SYS_symlinkat => ([Some((Some(1), 2, false)), None], None),
        libc::SYS_fchmodat => ([Some((Some(0), 1, true)), None], None),
        libc::SYS_fchownat => ([Some((Some(0), 1, flag_follow(4))), None], None),
        libc::SYS_utimensat => (
            [Some((Some(0), 1, flag_follow(3))), None],
            Some((2, 2 * core::mem::size_of::<libc::timespec>())),
        ),
        libc::SYS_truncate => ([Some((None, 0, true)), None], None),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mkdir | libc::SYS_rmdir | libc::SYS_unlink | libc::SYS_mknod => {
            ([Some((None, 0, false)), None], None)
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_rename | libc::SYS_link => {
            ([Some((None, 0, false)), Some((None, 1, false))], None)
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_symlink => ([Some((None, 1, false)), None], None),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chmod => ([Some((None, 0, true)), None], None),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chown => ([Some((None, 0, true)), None], None),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_lchown => ([Some((None, 0, false)), None], None),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_utimes => (
            [Some((None, 0, true)), None],
            Some((1, 2 * core::mem::size_of::<libc::timeval>())),
        ),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_futimesat => (
            [Some((Some(0), 1, true)), None],
            Some((2, 2 * core::mem::size_of::<libc::timeval>())),
        ),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_utime => (
            [Some((None, 0, true)), None],
            Some((1, core::mem::size_of::<libc::utimbuf>())),
        ),
        _ => return None,
    })
}

fn changes(task: &mut Task, nr: c_long, a: [u64; 6]) -> Result<Reply, c_int> {
    // fchmodat2 (Linux 6.6) carries flags: served as fchmodat when it has none.
    let (nr, a) = match nr {
        #[cfg(target_arch = "x86_64")]
        super::filter::SYS_FCHMODAT2 if a[3] == 0 => (libc::SYS_fchmodat, a),
        #[cfg(target_arch = "x86_64")]
        super::filter::SYS_FCHMODAT2 => return Ok(Reply::Continue),
        _ => (nr, a),
    };
    let Some((slots, input)) = paths_of(nr, &a) else {
        return Ok(Reply::Continue);
    };
    let mut local = [
        a[0] as usize,
        a[1] as usize,
        a[2] as usize,
        a[3] as usize,
        a[4] as usize,
        a[5] as usize,
    ];
    let mut args: [Option<PathArg>; 2] = [None, None];
    let mut all_outside = true;
    for (k, slot) in slots.iter().enumerate() {
        let Some((dirfd_at, path_at, follow)) = *slot else {
            continue;
        };
        let dirfd = dirfd_at.map_or(libc::AT_FDCWD, |i| a[i] as c_int);
        let arg = read_path(task, dirfd, a[path_at])?;
        all_outside &= kernel_writes(&arg, follow);
        args[k] = Some(arg);
    }
    if all_outside {
        return Ok(Reply::Continue);
    }
    // The changing call takes absolute paths and dirfds of ours: a relative
    // path keeps its (copied) dirfd; the legacy calls had none, so theirs
    // are made absolute through /proc/self/fd.
    for (k, slot) in slots.iter().enumerate() {
        let (Some((dirfd_at, path_at, _)), Some(arg)) = (*slot, args[k].as_mut()) else {
            continue;
        };
        if arg.dirfd != libc::AT_FDCWD && dirfd_at.is_none() {
            let mut head = [0u8; 40];
            let mut n = b"/proc/self/fd/".len();
            head[..n].copy_from_slice(b"/proc/self/fd/");
            n += vrift_shim_core::path::write_decimal(&mut head[n..], arg.dirfd as u64);
            head[n] = b'/';
            n += 1;
            if n + arg.len > PATH_MAX {
                return Err(libc::ENAMETOOLONG);
            }
            arg.buf.copy_within(0..arg.len, n);
            arg.buf[..n].copy_from_slice(&head[..n]);
            arg.len += n;
            arg.buf[arg.len] = 0;
            arg.dirfd = libc::AT_FDCWD;
        }
        if let Some(i) = dirfd_at {
            local[i] = arg.dirfd as usize;
        }
        local[path_at] = arg.ptr() as usize;
    }
    // symlink's target is a string, not a path of the view.
    let mut target = [0u8; PATH_MAX + 1];
    if matches!(nr, libc::SYS_symlinkat) || is_legacy_symlink(nr) {
        task.read_str(a[0], &mut target)?;
        local[0] = target.as_ptr() as usize;
    }
    let mut buf = [0u8; 64];
    if let Some((i, size)) = input {
        if a[i] != 0 {
            task.read(a[i], &mut buf[..size])?;
            local[i] = buf.as_ptr() as usize;
        }
    }
    Ok(Reply::Value(call(nr, local)))
}

#[cfg(target_arch = "x86_64")]
fn is_legacy_symlink(nr: c_long) -> bool {
    nr == libc::SYS_symlink
}

#[cfg(not(target_arch = "x86_64"))]
fn is_legacy_symlink(_: c_long) -> bool {
    false
}
