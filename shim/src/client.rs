//! The shim's client of the project daemon: one connection per request
//! (nothing shared between threads, nothing to repair after fork or vfork),
//! frames built on the stack, the answer's fd received with
//! `MSG_CMSG_CLOEXEC`. If no daemon answers, it is started with the vrift
//! binary the hot table names, and the request is retried.
//!
//! A daemon may die (`kill -9`, the OOM killer) or exit idle with a request
//! in flight: the connection ends without an answer. The request is then
//! sent again, to the next daemon (started if need be), with the same
//! request id: a daemon that finds the id in its predecessor's journal
//! answers "done" instead of acting twice (see the daemon's journal.rs,
//! "Request ids"). A daemon that cannot start fails the request at once:
//! the starter has said why on stderr.
//!
//! Only the write side calls this, and the error path of a read whose
//! blob is missing ([`fetch_blob`]): lookups never talk to the daemon.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use libc::{c_char, c_int};
use vrift_format::proto::{decode_reply, encode_request, frame_len, Op, Request, MAX_FRAME};
use vrift_shim_core::PATH_MAX;

use crate::state;
use crate::{call_real, sys};

/// The daemon's answer (data copied out of the frame).
pub struct Answer {
    pub errno: i32,
    /// The daemon did nothing: the caller makes the call through libc
    /// (`REPLY_PASS`).
    pub pass: bool,
    pub a: u64,
    pub b: u64,
    pub data: [u8; 512],
    pub data_len: usize,
    /// A received fd (close-on-exec), or -1.
    pub fd: c_int,
}

impl Answer {
    pub fn data(&self) -> &[u8] {
        &self.data[..self.data_len]
    }
}

/// Set once a start was attempted in this process (one message is enough).
static COMPLAINED: AtomicBool = AtomicBool::new(false);

fn errno() -> i32 {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() }
}

/// `RLIMIT_NOFILE` raised by one for the socket of a request (the hard
/// limit too when it is reached, which takes CAP_SYS_RESOURCE, as root
/// has): the old limits, to put back when the socket is closed (see
/// [`Fds`]).
fn raise_fd_limit() -> Option<libc::rlimit> {
    let old = sys::rlimit(libc::RLIMIT_NOFILE)?;
    let mut lim = old;
    lim.rlim_cur += 1;
    lim.rlim_max = lim.rlim_max.max(lim.rlim_cur);
    // SAFETY: setrlimit of our own process, from a local.
    (unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0).then_some(old)
}

fn restore_fd_limit(old: libc::rlimit) {
    // SAFETY: as above (limits below open fds are allowed: they stay open).
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
}

/// The request's socket must not cost the caller an fd it counts on: a
/// process that filled its fd table (LTP's dup06, open04, creat05) still
/// unlinks and opens through the daemon as it would on disk. When the
/// table is full, the socket goes one above the soft limit (raised for the
/// request, then put back). For an open (`wants_fd`), the caller's table
/// must keep a free slot for the answer's fd: none, and the open is EMFILE
/// before the daemon creates anything, as the kernel allocates the fd
/// first.
struct Fds {
    raised: Option<libc::rlimit>,
}

impl Fds {
    fn done(&mut self) {
        if let Some(old) = self.raised.take() {
            restore_fd_limit(old);
        }
    }
}

/// Makes room for `fd` (our socket) so that one slot below the caller's
/// limit stays free for the answer's fd. Err: EMFILE for the caller.
fn keep_slot_free(fd: c_int, fds: &mut Fds) -> Result<c_int, i32> {
    if fds.raised.is_some() {
        return Err(libc::EMFILE); // the socket itself did not fit
    }
    // SAFETY: plain fcntl/close on our own fds.
    unsafe {
        let probe = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
        if probe >= 0 {
            sys::close_raw(probe);
            return Ok(fd);
        }
        if errno() != libc::EMFILE {
            return Ok(fd);
        }
        // The socket took the last slot: move it above the limit.
        let Some(old) = raise_fd_limit() else {
            return Err(libc::EMFILE);
        };
        fds.raised = Some(old);
        let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, old.rlim_cur as c_int);
        if high < 0 {
            return Err(libc::EMFILE);
        }
        sys::close_raw(fd);
        Ok(high)
    }
}

/// A socket fd never 0–2 (a process that closed its stdio must not have our
/// socket land there) and close-on-exec.
fn connect(path: &[u8], fds: &mut Fds) -> Result<c_int, i32> {
    // SAFETY: plain syscalls on our own fd.
    unsafe {
        let mut fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 && errno() == libc::EMFILE && fds.raised.is_none() {
            fds.raised = raise_fd_limit();
            if fds.raised.is_some() {
                fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            }
        }
        if fd < 0 {
            return Err(errno());
        }
        let fd = if fd < 3 {
            let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
            sys::close_raw(fd);
            if high < 0 {
                return Err(errno());
            }
            high
        } else {
            fd
        };
        let mut addr: libc::sockaddr_un = core::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        if path.len() >= addr.sun_path.len() {
            sys::close_raw(fd);
            return Err(libc::ENAMETOOLONG);
        }
        for (d, s) in addr.sun_path.iter_mut().zip(path) {
            *d = *s as c_char;
        }
        let len = core::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
        loop {
            let r = libc::connect(
                fd,
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                len as libc::socklen_t,
            );
            if r == 0 {
                return Ok(fd);
            }
            let e = errno();
            if e != libc::EINTR {
                sys::close_raw(fd);
                return Err(e);
            }
        }
    }
}

fn write_all(fd: c_int, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writing our own buffer to our socket.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Reads one reply frame into `buf`; returns its length and any fd.
fn read_reply(fd: c_int, buf: &mut [u8]) -> Option<(usize, c_int)> {
    let mut have = 0usize;
    let mut got_fd: c_int = -1;
    loop {
        let want = match frame_len(&buf[..have]) {
            Ok(n) => n,
            Err(vrift_format::proto::FrameError::Incomplete) => 4,
            Err(_) => return None,
        };
        if have >= 4 && have >= want {
            return Some((want, got_fd));
        }
        if want > buf.len() {
            return None;
        }
        let mut iov = libc::iovec {
            iov_base: buf[have..].as_mut_ptr() as *mut libc::c_void,
            iov_len: want - have,
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: all-zero is a valid msghdr; the pointers are set below.
        let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = core::mem::size_of_val(&cbuf);
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return None;
        }
        if n == 0 {
            return None;
        }
        // SAFETY: walking control messages the kernel wrote into cbuf.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    got_fd = core::ptr::read_unaligned(libc::CMSG_DATA(c) as *const c_int);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        have += n as usize;
    }
}

/// What starting the daemon gave.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The starter saw the daemon answer.
    Answering,
    /// The starter failed (and said why on stderr).
    Failed,
    /// The starter ended, its status unknown (SIGCHLD is ignored in this
    /// process: the kernel reaped it): one connect tells.
    Unknown,
}

/// Starts the daemon (`$VRIFT_EXE -C <root> daemon start`) and waits for it.
fn start_daemon() -> Start {
    // vrift as the inception's environment names it, never the table's
    // `exe_path` (a project's file: see `state::vrift_exe`).
    let Some(exe) = state::vrift_exe() else {
        sys::complain(&[
            b"vrift: cannot start the daemon: VRIFT_EXE is not set (start the inception with vrift)",
        ]);
        return Start::Failed;
    };
    let root = state::ROOT.get();
    let (Some(exe_c), Some(root_c)) = (sys::CPath::new(exe), sys::CPath::new(root)) else {
        return Start::Failed;
    };
    let argv: [*const c_char; 6] = [
        exe_c.as_ptr(),
        c"-C".as_ptr(),
        root_c.as_ptr(),
        c"daemon".as_ptr(),
        c"start".as_ptr(),
        core::ptr::null(),
    ];
    extern "C" {
        static environ: *const *const c_char;
    }
    let mut pid: libc::pid_t = 0;
    // SAFETY: valid argv/envp; the real posix_spawn (vrift itself never
    // runs through the shim).
    let env = unsafe { environ };
    let r = {
        call_real!(POSIX_SPAWN(
            &mut pid,
            exe_c.as_ptr(),
            core::ptr::null(),
            core::ptr::null(),
            argv.as_ptr(),
            env
        ) or libc::ENOSYS)
    };
    if r != 0 {
        return Start::Failed;
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let w = unsafe { libc::waitpid(pid, &mut status, 0) };
        if w >= 0 {
            break;
        }
        if errno() != libc::EINTR {
            // SIGCHLD ignored: waitpid returned (ECHILD) once the starter
            // ended, but its status went with it.
            return Start::Unknown;
        }
    }
    // The starter returns only once the daemon answers, or has said on
    // stderr why it cannot start: retrying the connect then only waits.
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Start::Answering
    } else {
        Start::Failed
    }
}

/// How often one request may lose its answer (its daemon died) before it
/// fails; each time it is asked again of the next daemon.
const MAX_LOST: u32 = 32;
/// How many daemons one request may start: each start that the starter
/// saw answer and that then refused us was killed in between.
const MAX_STARTS: u32 = 32;
/// Connects refused with EAGAIN (the daemon's listen queue is full: it is
/// alive and busy) before the request fails, 2 ms apart.
const MAX_BUSY: u32 = 5000;

/// A fresh request id: 64 random bits (no allocation, no lock), else the
/// clock mixed with the pid, the thread and a counter; never 0 (0: none).
fn request_id() -> u64 {
    static SEQ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let mut v: u64 = 0;
    // SAFETY: getrandom into our 8-byte local.
    let got = unsafe {
        crate::raw_syscall!(
            libc::SYS_getrandom,
            &mut v as *mut u64,
            8usize,
            libc::GRND_NONBLOCK
        )
    };
    if got != 8 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime into our local.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        // SAFETY: plain syscalls without arguments.
        let (pid, tid) = unsafe {
            (
                crate::raw_syscall!(libc::SYS_getpid) as u64,
                sys::gettid() as u64,
            )
        };
        v = (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_007)
            .wrapping_add(ts.tv_nsec as u64)
            ^ (pid << 40)
            ^ (tid << 20)
            ^ SEQ.fetch_add(1, Ordering::Relaxed);
        // splitmix64's finaliser spreads the bits.
        v = (v ^ (v >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        v = (v ^ (v >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        v ^= v >> 31;
    }
    v.max(1)
}

fn nap_2ms() {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 2_000_000,
    };
    // SAFETY: nanosleep of a valid timespec.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// Why a daemon socket is refused.
#[derive(Clone, Copy)]
enum Refusal {
    /// The runtime directory is not a private directory of ours.
    Dir,
    /// The process listening on the socket is not running as us.
    Peer,
}

/// Checks the directory holding the daemon's socket: a real directory (not
/// a symlink) owned by our euid with no group or other bits. Anyone who can
/// create a name there can listen in the daemon's place and receive our
/// writes. `Ok(false)`: it does not exist yet (the daemon creates it).
fn runtime_dir_ok(dir: &[u8]) -> Result<bool, Refusal> {
    match sys::lstat_raw(dir) {
        Ok(st) => {
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            let private = st.st_mode & libc::S_IFMT == libc::S_IFDIR
                && st.st_uid == me
                && st.st_mode & 0o077 == 0;
            if private {
                Ok(true)
            } else {
                Err(Refusal::Dir)
            }
        }
        // Missing (or not creatable): the starter creates it or says why.
        Err(e) if e == libc::ENOENT || e == libc::ENOTDIR => Ok(false),
        Err(_) => Err(Refusal::Dir),
    }
}

/// Whether the process that listens on `fd`'s peer runs as `uid`
/// (`SO_PEERCRED`: the credentials it had when it called `listen`).
fn peer_is(fd: c_int, uid: u32) -> bool {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = core::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are live out-buffers of the right size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    r == 0 && cred.uid == uid
}

/// A way to the daemon's socket kept across a change of credentials (see
/// [`keep_way_to_daemon`]): an `O_PATH` fd on the socket (close-on-exec;
/// a fork keeps it), -1 if none, and the uid that owned the socket when
/// it was taken.
static HANDLE_FD: AtomicI32 = AtomicI32::new(-1);
static HANDLE_UID: AtomicU32 = AtomicU32::new(0);
/// The process whose fd table holds the handle: a vfork child shares our
/// memory but not our fds, so a handle it took is not ours (a fork child
/// inherits the fd: [`after_fork_in_child`] makes it its own).
static HANDLE_PID: AtomicI32 = AtomicI32::new(0);

fn getpid() -> i32 {
    // SAFETY: getpid cannot fail.
    unsafe { crate::raw_syscall!(libc::SYS_getpid) as i32 }
}

/// Whether the handle in [`HANDLE_FD`] (if any) is in this process's fds.
fn handle_is_ours() -> bool {
    HANDLE_FD.load(Ordering::Acquire) >= 0 && HANDLE_PID.load(Ordering::Relaxed) == getpid()
}

/// After fork, in the child: the inherited handle is the child's too.
pub fn after_fork_in_child() {
    if HANDLE_FD.load(Ordering::Acquire) >= 0 {
        HANDLE_PID.store(getpid(), Ordering::Relaxed);
    }
}

/// Called before this process changes its credentials (`creds`): takes a
/// handle on the daemon's socket while the process may still enter the
/// socket's private directory, starting the daemon if none runs. After the
/// change, requests connect through `/proc/self/fd/N`, which needs only
/// write permission on the socket itself (0666 in a 0700 directory): the
/// daemon, if it runs as root, serves the new credentials as the kernel
/// would (rift/perm.rs). Once per process.
#[cold]
pub fn keep_way_to_daemon() {
    if handle_is_ours() {
        return;
    }
    let Some(table) = state::table() else {
        return;
    };
    let mut socket = [0u8; PATH_MAX];
    let sp = table.socket_path();
    if sp.is_empty() || sp.len() >= socket.len() {
        return;
    }
    socket[..sp.len()].copy_from_slice(sp);
    let dir = match sp.iter().rposition(|&c| c == b'/') {
        Some(i) if i > 0 => &sp[..i],
        _ => return,
    };
    // Only a socket in a directory of ours, as every connect checks.
    if !matches!(runtime_dir_ok(dir), Ok(true)) || sys::lstat_raw(sp).is_err() {
        // No daemon yet: asking one anything starts it.
        call(Op::Ping, 0, 0, b"", b"");
    }
    if !matches!(runtime_dir_ok(dir), Ok(true)) {
        return;
    }
    // SAFETY: a NUL-terminated path (the buffer is zeroed past it).
    let fd = unsafe {
        crate::raw_syscall!(
            libc::SYS_openat,
            libc::AT_FDCWD,
            socket.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW
        )
    } as c_int;
    if fd < 0 {
        return;
    }
    let Some(st) = sys::fstat_raw(fd) else {
        sys::close_raw(fd);
        return;
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        sys::close_raw(fd);
        return;
    }
    // Out of the way of the low numbers programs count on.
    // SAFETY: plain fcntl on our own fd.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HANDLE_MIN_FD) };
    let fd = if high >= 0 {
        sys::close_raw(fd);
        high
    } else {
        fd
    };
    HANDLE_UID.store(st.st_uid, Ordering::Relaxed);
    HANDLE_PID.store(getpid(), Ordering::Relaxed);
    // Two threads changing credentials at once: one handle is kept.
    let was = HANDLE_FD.load(Ordering::Acquire);
    if HANDLE_FD
        .compare_exchange(was, fd, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        sys::close_raw(fd);
    }
}

/// Where the socket handle goes (the lowest free number from here).
const HANDLE_MIN_FD: c_int = 256;

/// The path that reaches the daemon through the handle, if this process
/// has one and no longer runs as the socket's owner (None: connect by the
/// socket's own path). Written into `buf`.
fn handle_path(buf: &mut [u8; 32]) -> Option<(usize, u32)> {
    let fd = HANDLE_FD.load(Ordering::Acquire);
    if fd < 0 || !handle_is_ours() {
        return None;
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    // Still the socket's owner (root that only dropped a capability):
    // no syscall.
    if me == HANDLE_UID.load(Ordering::Relaxed) {
        return None;
    }
    // The socket's owner as this process sees it now: in a user namespace
    // it entered since (`unshare(CLONE_NEWUSER)`), ids it does not map
    // read as the overflow uid, in the fstat as in the daemon's
    // SO_PEERCRED.
    let owner = sys::fstat_raw(fd)?.st_uid;
    if me == owner {
        return None;
    }
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let n = vrift_shim_core::path::write_decimal(&mut buf[PREFIX.len()..], fd as u64);
    Some((PREFIX.len() + n, owner))
}

/// One line naming what was refused; the request fails with EIO.
fn refused(mut ans: Answer, why: Refusal, dir: &[u8], socket: &[u8]) -> Answer {
    if !COMPLAINED.swap(true, Ordering::Relaxed) {
        match why {
            Refusal::Dir => sys::complain(&[
                b"vrift: refusing the runtime directory ",
                dir,
                b": not a directory owned by you with mode 0700 (another user may have created it); remove it or set XDG_RUNTIME_DIR. Writes fail with EIO",
            ]),
            Refusal::Peer => sys::complain(&[
                b"vrift: refusing the daemon socket ",
                socket,
                b": it is served by another user, not by a daemon of yours; writes fail with EIO",
            ]),
        }
    }
    ans.errno = libc::EIO;
    ans
}

/// Sends one request and returns the answer; EIO (with one line on
/// stderr) if the daemon cannot be reached.
pub fn call(op: Op, a: u64, b: u64, path1: &[u8], path2: &[u8]) -> Answer {
    let mut ans = Answer {
        errno: libc::EIO,
        pass: false,
        a: 0,
        b: 0,
        data: [0; 512],
        data_len: 0,
        fd: -1,
    };
    let mut frame = [0u8; MAX_FRAME + 4];
    let req = Request {
        op,
        tid: sys::gettid(),
        a,
        b,
        c: request_id(),
        path1,
        path2,
    };
    let Some(n) = encode_request(&mut frame, &req) else {
        ans.errno = libc::ENAMETOOLONG;
        return ans;
    };
    let frame = &frame[..n];
    let mut reply = [0u8; MAX_FRAME + 4];
    let (mut lost, mut starts, mut busy) = (0u32, 0u32, 0u32);
    let mut unknown_start = false;
    loop {
        // The socket is read from the table at every round: a daemon we
        // started may listen elsewhere than the one that published the
        // table (the runtime directory follows the starter's
        // XDG_RUNTIME_DIR), and its new table names its own socket.
        let Some(table) = state::table() else {
            return ans;
        };
        let mut socket = [0u8; PATH_MAX];
        let sp = table.socket_path();
        if sp.is_empty() || sp.len() >= socket.len() {
            return unreachable(ans);
        }
        socket[..sp.len()].copy_from_slice(sp);
        let socket = &socket[..sp.len()];
        let dir = match socket.iter().rposition(|&c| c == b'/') {
            Some(0) => &socket[..1],
            Some(i) => &socket[..i],
            None => return unreachable(ans),
        };
        let mut fds = Fds { raised: None };
        let mut handle = [0u8; 32];
        let via_handle = handle_path(&mut handle);
        let (conn, peer) = if let Some((len, owner)) = via_handle {
            // This process changed its credentials: the handle it kept.
            (connect(&handle[..len], &mut fds), owner)
        } else {
            // Checked before every connect: the directory may appear
            // (created by the starter) between two attempts.
            let dir_exists = match runtime_dir_ok(dir) {
                Ok(e) => e,
                Err(why) => return refused(ans, why, dir, socket),
            };
            let conn = if dir_exists {
                connect(socket, &mut fds)
            } else {
                Err(libc::ENOENT)
            };
            // SAFETY: geteuid cannot fail.
            (conn, unsafe { libc::geteuid() })
        };
        let conn = match conn {
            Ok(fd) if op == Op::OpenWrite => keep_slot_free(fd, &mut fds).inspect_err(|_| {
                sys::close_raw(fd);
            }),
            other => other,
        };
        if conn.is_err() {
            fds.done();
        }
        if let Err(libc::EMFILE) = conn {
            ans.errno = libc::EMFILE;
            return ans;
        }
        match conn {
            Ok(fd) => {
                if !peer_is(fd, peer) {
                    sys::close_raw(fd);
                    fds.done();
                    return refused(ans, Refusal::Peer, dir, socket);
                }
                let got = if write_all(fd, frame) {
                    read_reply(fd, &mut reply)
                } else {
                    None
                };
                sys::close_raw(fd);
                fds.done();
                match got {
                    Some((len, rfd)) => return decoded(ans, &reply[..len], rfd, fd),
                    // The daemon ended with our request: ask the next one.
                    None if lost < MAX_LOST => lost += 1,
                    None => return unreachable(ans),
                }
            }
            Err(libc::EAGAIN) if busy < MAX_BUSY => {
                busy += 1;
                nap_2ms();
            }
            Err(_) if via_handle.is_some() => return gone_after_change(ans),
            Err(e) if e == libc::ENOENT || e == libc::ECONNREFUSED => {
                // No daemon listens (none yet, one killed, one exiting
                // idle that refuses new clients): start one.
                if unknown_start || starts >= MAX_STARTS {
                    return unreachable(ans);
                }
                starts += 1;
                match start_daemon() {
                    Start::Answering => {}
                    Start::Unknown => unknown_start = true,
                    Start::Failed => return unreachable(ans),
                }
            }
            Err(_) => return unreachable(ans),
        }
    }
}

/// The answer in `reply`, with the fd that came with it (`sock`: the
/// number the socket had, now closed).
fn decoded(mut ans: Answer, reply: &[u8], mut rfd: c_int, sock: c_int) -> Answer {
    if rfd > sock {
        // The caller gets the lowest free fd, as open(2) would give (the
        // socket held it while the answer came in).
        // SAFETY: duplicating our fresh fd; the old one is closed after.
        let low = unsafe { libc::fcntl(rfd, libc::F_DUPFD_CLOEXEC, 0) };
        if low >= 0 && low < rfd {
            sys::close_raw(rfd);
            rfd = low;
        } else if low >= 0 {
            sys::close_raw(low);
        }
    }
    match decode_reply(reply) {
        Ok(r) => {
            ans.errno = r.errno;
            ans.pass = r.flags & vrift_format::proto::REPLY_PASS != 0;
            ans.a = r.a;
            ans.b = r.b;
            let k = r.data.len().min(ans.data.len());
            ans.data[..k].copy_from_slice(&r.data[..k]);
            ans.data_len = k;
            ans.fd = rfd;
            ans
        }
        Err(_) => {
            if rfd >= 0 {
                sys::close_raw(rfd);
            }
            unreachable(ans)
        }
    }
}

/// The daemon this process kept a way to (before it changed its
/// credentials) has exited, and a process of other credentials cannot
/// start the next one.
fn gone_after_change(ans: Answer) -> Answer {
    eio_saying(
        ans,
        b"vrift: this process changed its credentials and the rift's daemon it could reach has exited; writes fail with EIO in ",
    )
}

fn unreachable(ans: Answer) -> Answer {
    eio_saying(
        ans,
        b"vrift: the rift's daemon cannot be reached (see .vrift/daemon.log); writes fail with EIO in ",
    )
}

/// EIO, and `why` (followed by the project root) on stderr once per process.
fn eio_saying(mut ans: Answer, why: &[u8]) -> Answer {
    if !COMPLAINED.swap(true, Ordering::Relaxed) {
        sys::complain(&[why, state::ROOT.get()]);
    }
    ans.errno = libc::EIO;
    ans
}

/// Opens the content of the rift entry at `view_path` (absolute) through
/// the daemon, for a process whose credentials changed and that cannot
/// enter the private store any more (see `creds`): the daemon checks the
/// read permission as the kernel would and sends an `O_RDONLY` fd
/// (close-on-exec). -1 with errno set otherwise.
#[cold]
pub fn open_read(view_path: &[u8]) -> c_int {
    let root = state::ROOT.get();
    let rel = match view_path.strip_prefix(root) {
        Some(r) if r.first() == Some(&b'/') => &r[1..],
        _ => return crate::real::fail(libc::EACCES),
    };
    let ans = call(Op::OpenRead, 0, 0, rel, b"");
    if ans.errno != 0 || ans.fd < 0 {
        if ans.fd >= 0 {
            sys::close_raw(ans.fd);
        }
        return crate::real::fail(if ans.errno != 0 { ans.errno } else { libc::EIO });
    }
    ans.fd
}

/// An fd of the project's current table from the daemon (`OpenRead` with
/// `OPEN_READ_TABLE`), for a process whose credentials changed: a table
/// of a new generation is a file its new credentials may not open. -1 if
/// the daemon cannot lend one.
pub fn table_fd() -> c_int {
    let ans = call(
        Op::OpenRead,
        0,
        vrift_format::proto::OPEN_READ_TABLE,
        b"",
        b"",
    );
    if ans.errno != 0 && ans.fd >= 0 {
        sys::close_raw(ans.fd);
        return -1;
    }
    ans.fd
}

/// `fstat` of the staging file `name` (a rift file being written) through
/// the daemon, for a process whose credentials changed and that cannot
/// reach the private store: the daemon sends an `O_PATH` fd of it.
#[cold]
pub fn stat_staging(name: &[u8]) -> Option<libc::stat> {
    let ans = call(
        Op::OpenRead,
        0,
        vrift_format::proto::OPEN_READ_STAGING,
        name,
        b"",
    );
    if ans.fd < 0 {
        return None;
    }
    let st = sys::fstat_raw(ans.fd);
    sys::close_raw(ans.fd);
    if ans.errno != 0 {
        return None;
    }
    st
}

/// A blob the view needs is not in the store (a snapshot pulled without
/// `--eager`): asks the daemon to fetch it from the project's remotes.
/// True: it is in the store now. False: one line on stderr says why (for
/// `view_path`, if not empty) and errno is EIO. Only ever called after an open failed.
pub fn fetch_blob(hash: &vrift_format::ContentHash, size: u64, view_path: &[u8]) -> bool {
    fetch(hash, size, 0, view_path) == Fetched::Yes
}

/// A blob in the store whose size is not its entry's `size` (a blob fetched
/// on demand and cut short by a power loss: such fetches are not flushed
/// one by one): asks the daemon to set it aside and fetch it again. True:
/// the store holds it again. False: one line said why (without a remote:
/// the blob is damaged, run `vrift fsck`) and errno is EIO. Never on the
/// hot path.
pub fn refetch_damaged(hash: &vrift_format::ContentHash, size: u64, view_path: &[u8]) -> bool {
    match fetch(hash, size, vrift_format::proto::FETCH_DAMAGED, view_path) {
        Fetched::Yes => true,
        Fetched::No => false,
        Fetched::Unsaid => {
            // The daemon gave no reason (unreachable: said once already).
            sys::complain(&[
                b"vrift: a blob in the store is damaged (its size is not the file's; run `vrift fsck`); EIO for ",
                view_path,
            ]);
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = libc::EIO };
            false
        }
    }
}

/// Under `verify = true` (the table's flag), a blob opened without the
/// verified-once mark: the daemon hashes it and marks it. True: it is its
/// name (or verify is off, or the blob is marked). False: one line said
/// why and errno is EIO. Costs a round trip the first time each blob of
/// the store is opened, and nothing once it is marked.
pub fn verified(
    hash: &vrift_format::ContentHash,
    size: u64,
    marked: bool,
    view_path: &[u8],
) -> bool {
    if marked || !state::table().is_some_and(|t| t.verify()) {
        return true;
    }
    verify_cold(hash, size, view_path)
}

#[cold]
#[inline(never)]
fn verify_cold(hash: &vrift_format::ContentHash, size: u64, view_path: &[u8]) -> bool {
    match fetch(hash, size, vrift_format::proto::FETCH_VERIFY, view_path) {
        Fetched::Yes => true,
        Fetched::No => false,
        Fetched::Unsaid => {
            sys::complain(&[
                b"vrift: a blob cannot be verified (`verify = true`; the daemon cannot be reached); EIO for ",
                view_path,
            ]);
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = libc::EIO };
            false
        }
    }
}

#[derive(PartialEq, Eq)]
enum Fetched {
    Yes,
    /// Failed, and one line said why.
    No,
    /// Failed without a reason from the daemon.
    Unsaid,
}

fn fetch(hash: &vrift_format::ContentHash, size: u64, flags: u64, view_path: &[u8]) -> Fetched {
    let mut hex = [0u8; vrift_format::HASH_HEX_LEN];
    hash.write_hex(&mut hex);
    // The view path as a rift path: the daemon fetches its neighbours ahead.
    let rel = vrift_format::pathnorm::domain_rel(view_path, state::ROOT.get()).unwrap_or(b"");
    let ans = call(Op::FetchBlob, size, flags, &hex, rel);
    if ans.errno == 0 {
        return Fetched::Yes;
    }
    let said = if ans.data_len == 0 {
        Fetched::Unsaid
    } else if view_path.is_empty() {
        sys::complain(&[b"vrift: ", ans.data()]);
        Fetched::No
    } else {
        sys::complain(&[b"vrift: cannot read ", view_path, b": ", ans.data()]);
        Fetched::No
    };
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = libc::EIO };
    said
}
