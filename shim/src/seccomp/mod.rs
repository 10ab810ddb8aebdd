//! The view for programs that cannot load this library: Go programs,
//! statically linked binaries, the dynamic loader run as a program (and so
//! `ldd` and valgrind's tools). They make their system calls themselves, so
//! interposing libc cannot reach them; a seccomp filter can.
//!
//! When a process of an inception execs such a program, the shim execs
//! `vrift __syscall-view PROGRAM ARGV…` instead (`vrift` re-enters this
//! library through [`vrift_syscall_view`]). That process — the pid its
//! parent waits for — forks the program under a filter that sends every
//! path-taking call to it (`SECCOMP_RET_USER_NOTIF`), and serves each one
//! by making the same call through this library's own functions: the view
//! is decided by the very code every other process runs. An fd the view
//! opens (a blob, a staging file) is installed in the program with
//! `SECCOMP_IOCTL_NOTIF_ADDFD`; a call that names nothing of the view goes
//! back to the kernel unchanged (`CONTINUE`). The program's children stay
//! under the filter; the supervisor forwards signals sent to it, mirrors the
//! program's exit status, and serves any descendant still running after
//! the program itself ended until the last one is gone.
//!
//! Not a security boundary: a program that rewrites its own path argument
//! between the check and the kernel's use of it (another thread, racing)
//! can reach the disk. The view's promise is to builds, not to hostile code.

pub mod filter;
pub mod launch;
mod serve;
mod target;

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use libc::{c_char, c_int, pid_t};

use crate::sys;
use launch::Mapping;

/// Signals sent to the supervisor (by `kill`, not by the terminal, which
/// signals the program too) that it passes on to the program.
const FORWARDED: [c_int; 8] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
];

/// `vrift __syscall-view PROGRAM ARGV…`, called by vrift's `main` with
/// `argv` = [PROGRAM, ARGV…]: runs PROGRAM in the view and exits with its
/// status. Returns only when it cannot start it (an exit code).
#[no_mangle]
pub extern "C" fn vrift_syscall_view(
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    if sys::unreadable(argv) || unsafe_is_null(argv) {
        return 127;
    }
    // vrift's own processes leave the shim dormant; this one is the view's.
    crate::state::init(false);
    // SAFETY: a NULL-terminated array whose first entry is set (checked):
    // the program, then its argv.
    let (path, prog_argv) = unsafe { (*argv, argv.add(1)) };
    let name = || {
        // SAFETY: a C string from vrift's argv.
        unsafe { CStr::from_ptr(path) }.to_bytes()
    };
    let mut pair = [-1; 2];
    // SAFETY: pair is a valid out-array of two fds.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } != 0
    {
        sys::complain(&[
            b"vrift: cannot start ",
            name(),
            b" in the view: socketpair failed",
        ]);
        return 126;
    }
    let mut forwarded: libc::sigset_t = unsafe_zeroed();
    let mut old: libc::sigset_t = unsafe_zeroed();
    // SAFETY: valid sigset pointers.
    unsafe {
        libc::sigemptyset(&mut forwarded);
        libc::sigaddset(&mut forwarded, libc::SIGCHLD);
        for s in FORWARDED {
            libc::sigaddset(&mut forwarded, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &forwarded, &mut old);
    }
    // SAFETY: this process is single-threaded (vrift's main, nothing started).
    let child = unsafe { libc::fork() };
    if child < 0 {
        sys::complain(&[
            b"vrift: cannot start ",
            name(),
            b" in the view: fork failed",
        ]);
        return 126;
    }
    if child == 0 {
        sys::close_raw(pair[0]);
        // SAFETY: restoring the mask saved above.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
        start_program(pair[1], path, prog_argv, envp);
    }
    sys::close_raw(pair[1]);
    let listener = receive_fd(pair[0]);
    sys::close_raw(pair[0]);
    // SAFETY: a valid sigset; a new signalfd.
    let sigfd = unsafe { libc::signalfd(-1, &forwarded, libc::SFD_CLOEXEC) };
    match listener {
        Some(listener) if sigfd >= 0 => supervise(listener, sigfd, child),
        _ => {
            // The program could not be put under the filter (it said why):
            // its exit status is ours.
            let st = wait_for(child);
            finish(st)
        }
    }
}

fn unsafe_is_null(argv: *const *const c_char) -> bool {
    // SAFETY: readable (checked by the caller).
    unsafe { (*argv).is_null() }
}

fn unsafe_zeroed<T>() -> T {
    // SAFETY: only used for plain C structs (sigset_t) all-zero valid.
    unsafe { core::mem::zeroed() }
}

/// In the forked child: the filter, its listener to the supervisor, exec.
fn start_program(
    sock: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> ! {
    // SAFETY: plain prctl calls.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    // SAFETY: a C string (vrift's argv).
    let name = unsafe { CStr::from_ptr(path) }.to_bytes();
    let mut prog = [libc::sock_filter {
        code: 0,
        jt: 0,
        jf: 0,
        k: 0,
    }; filter::MAX_LEN];
    let len = filter::build(&mut prog);
    let fprog = libc::sock_fprog {
        len: len as u16,
        filter: prog.as_mut_ptr(),
    };
    let flags = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as usize;
    // WAIT_KILLABLE_RECV (Linux 5.19): once the supervisor has a call, a
    // signal (Go preempts its threads with SIGURG) does not abort and
    // restart it.
    let mut listener = unsafe_seccomp(
        flags | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as usize,
        &fprog,
    );
    if listener < 0 {
        listener = unsafe_seccomp(flags, &fprog);
    }
    if listener < 0 {
        let e = target::errno();
        sys::complain(&[
            b"vrift: cannot run ",
            name,
            b" in the view: this kernel has no seccomp user notification (",
            errno_name(e),
            b"); VRIFT_UNVIEWED=run runs it on the disk",
        ]);
        // SAFETY: exit without running the parent's atexit handlers.
        unsafe { libc::_exit(126) };
    }
    send_fd(sock, listener as c_int);
    sys::close_raw(listener as c_int);
    sys::close_raw(sock);
    let env = with_marker(envp);
    // SAFETY: valid path, argv and env; a raw execve (the shim's own would
    // resolve the path again, for nothing).
    unsafe { crate::raw_syscall!(libc::SYS_execve, path, argv, env.as_ptr()) };
    let e = target::errno();
    sys::complain(&[b"vrift: cannot run ", name, b": ", errno_name(e)]);
    // SAFETY: as above.
    unsafe { libc::_exit(if e == libc::ENOENT { 127 } else { 126 }) }
}

fn unsafe_seccomp(flags: usize, prog: &libc::sock_fprog) -> i64 {
    // SAFETY: a valid filter program.
    unsafe {
        crate::raw_syscall!(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            prog as *const libc::sock_fprog
        )
    }
}

/// `envp` with [`launch::MARKER`] added, in memory that lives until exec.
struct Env {
    mem: Option<Mapping>,
    fallback: *const *const c_char,
}

impl Env {
    fn as_ptr(&self) -> *const *const c_char {
        self.mem
            .as_ref()
            .map_or(self.fallback, |m| m.addr as *const *const c_char)
    }
}

fn with_marker(envp: *const *const c_char) -> Env {
    let mut n = 0;
    if !envp.is_null() {
        // SAFETY: a NULL-terminated array (vrift's environ).
        while unsafe { !(*envp.add(n)).is_null() } {
            n += 1;
        }
    }
    static MARK: &CStr = c"VRIFT_SYSCALL_VIEW=1";
    let mem = Mapping::new((n + 2) * core::mem::size_of::<*const c_char>());
    if let Some(m) = &mem {
        let out = m.addr as *mut *const c_char;
        // SAFETY: room for n + 2 pointers.
        unsafe {
            for i in 0..n {
                *out.add(i) = *envp.add(i);
            }
            *out.add(n) = MARK.as_ptr();
            *out.add(n + 1) = core::ptr::null();
        }
    }
    Env {
        mem,
        fallback: envp,
    }
}

fn errno_name(e: c_int) -> &'static [u8] {
    match e {
        libc::ENOENT => b"no such file or directory",
        libc::EACCES => b"permission denied",
        libc::ENOEXEC => b"exec format error",
        libc::EINVAL => b"invalid argument",
        libc::ENOSYS => b"function not implemented",
        libc::EPERM => b"operation not permitted",
        libc::ENOMEM => b"out of memory",
        _ => b"error",
    }
}

/// A one-byte message with room for one fd's control data (what
/// [`send_fd`] and [`receive_fd`] pass), its buffers in this frame;
/// `controllen` bytes of the control buffer are offered.
fn with_fd_message<R>(controllen: usize, f: impl FnOnce(&mut libc::msghdr) -> R) -> R {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: an all-zero msghdr is a valid value; its pointers are set
    // below to buffers that outlive `f`.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = controllen.min(core::mem::size_of_val(&cbuf));
    f(&mut msg)
}

fn send_fd(sock: c_int, fd: c_int) {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(core::mem::size_of::<c_int>() as u32) } as usize;
    with_fd_message(space, |msg| {
        // SAFETY: the message offers CMSG_SPACE(one int) of its control
        // buffer, which the CMSG macros stay inside.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(core::mem::size_of::<c_int>() as u32) as usize;
            core::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut c_int, fd);
            libc::sendmsg(sock, msg, libc::MSG_NOSIGNAL);
        }
    })
}

fn receive_fd(sock: c_int) -> Option<c_int> {
    with_fd_message(usize::MAX, |msg| {
        // SAFETY: recvmsg fills the message's live buffers; the CMSG macros
        // stay inside its control buffer.
        unsafe {
            loop {
                let n = libc::recvmsg(sock, msg, libc::MSG_CMSG_CLOEXEC);
                if n > 0 {
                    break;
                }
                if n < 0 && target::errno() == libc::EINTR {
                    continue;
                }
                return None;
            }
            let c = libc::CMSG_FIRSTHDR(msg);
            if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
                return None;
            }
            Some(core::ptr::read_unaligned(libc::CMSG_DATA(c) as *const c_int))
        }
    })
}

fn wait_for(child: pid_t) -> c_int {
    let mut st = 0;
    loop {
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(child, &mut st, 0) };
        if r == child {
            return st;
        }
        if r < 0 && target::errno() != libc::EINTR {
            return 127 << 8;
        }
    }
}

/// Ends the supervisor as the program ended: its exit code, or its signal.
fn finish(st: c_int) -> ! {
    if libc::WIFSIGNALED(st) {
        let sig = libc::WTERMSIG(st);
        // SAFETY: restoring the default action and raising the same signal;
        // no core file of our own (the program wrote its own).
        unsafe {
            let nocore = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &nocore);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
            libc::raise(sig);
            libc::_exit(128 + sig)
        }
    }
    // SAFETY: exiting.
    unsafe { libc::_exit(libc::WEXITSTATUS(st)) }
}

/// The program's wait status, once it has ended (`ENDED`).
static STATUS: AtomicI32 = AtomicI32::new(0);
static ENDED: AtomicBool = AtomicBool::new(false);
/// What the signal thread needs.
static SIGFD: AtomicI32 = AtomicI32::new(-1);
static CHILD: AtomicI32 = AtomicI32::new(0);
static MAIN: AtomicU64 = AtomicU64::new(0);

/// The supervisor: this thread serves calls, blocked in the listener's
/// RECV (with `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` the program's thread
/// hands the CPU straight to it and back: a served call costs a few
/// microseconds, not two trips through the scheduler); a second thread
/// reads signals, passes them on and learns of the program's end.
fn supervise(listener: c_int, sigfd: c_int, child: pid_t) -> ! {
    const SYNC_WAKE_UP: u64 = 1; // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6)
                                 // SAFETY: a flag word for our own listener (EINVAL before 6.6: fine).
    unsafe {
        libc::ioctl(
            listener,
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            SYNC_WAKE_UP,
        )
    };
    SIGFD.store(sigfd, Ordering::Relaxed);
    CHILD.store(child, Ordering::Relaxed);
    // SAFETY: pthread_self has no preconditions.
    MAIN.store(unsafe { libc::pthread_self() } as u64, Ordering::Relaxed);
    // The kick that takes this thread out of RECV when the program ended.
    // SAFETY: installing a handler that does nothing, without SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = kicked as extern "C" fn(c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(KICK, &sa, core::ptr::null_mut());
    }
    let mut thread: libc::pthread_t = 0;
    // SAFETY: a detached thread running `watch`, which takes no argument.
    let started = unsafe {
        libc::pthread_create(&mut thread, core::ptr::null(), watch, core::ptr::null_mut())
    } == 0;
    if !started {
        sys::complain(&[b"vrift: the syscall supervisor cannot start its signal thread"]);
        // SAFETY: killing our own child, then exiting.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::_exit(126)
        }
    }
    loop {
        if ENDED.load(Ordering::Acquire) {
            let st = STATUS.load(Ordering::Relaxed);
            if listener_done(listener) {
                finish(st);
            }
            // Descendants of the program still run under the filter: the
            // parent reports the program's status now, a forked supervisor
            // (this thread only) serves the rest until the last is gone.
            // SAFETY: the child continues with this one thread.
            if unsafe { libc::fork() } != 0 {
                finish(st);
            }
            serve_until_done(listener);
        }
        serve_one(listener);
    }
}

/// The signal that takes the serving thread out of its RECV.
const KICK: c_int = libc::SIGURG;

extern "C" fn kicked(_: c_int) {}

/// The signal thread: passes signals on, mirrors stops, and when the
/// program has ended, kicks the serving thread until it acts on it.
extern "C" fn watch(_: *mut libc::c_void) -> *mut libc::c_void {
    let sigfd = SIGFD.load(Ordering::Relaxed);
    let child = CHILD.load(Ordering::Relaxed);
    loop {
        if let Some(st) = on_signal(sigfd, child) {
            STATUS.store(st, Ordering::Relaxed);
            ENDED.store(true, Ordering::Release);
            loop {
                // SAFETY: signalling our own main thread; a short sleep.
                unsafe {
                    libc::pthread_kill(MAIN.load(Ordering::Relaxed) as libc::pthread_t, KICK);
                    libc::usleep(10_000);
                }
            }
        }
    }
}

/// After the program ended: serves its remaining descendants, then exits.
/// Holds nothing of its parent's open: a pipe the caller reads to its end
/// must not wait for them.
fn serve_until_done(listener: c_int) -> ! {
    let null = sys::openat_raw(libc::AT_FDCWD, c"/dev/null".as_ptr(), libc::O_RDWR, 0);
    // SAFETY: plain fd calls on our own fds.
    unsafe {
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if listener > 3 {
            libc::close_range(3, listener as libc::c_uint - 1, 0);
        }
        libc::close_range(listener as libc::c_uint + 1, libc::c_uint::MAX, 0);
    }
    loop {
        let mut fd = libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut fd, 1, -1) } < 0 {
            continue;
        }
        if fd.revents & libc::POLLIN != 0 {
            serve_one(listener);
        } else if fd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: exiting: nobody is left to serve.
            unsafe { libc::_exit(0) };
        }
    }
}

/// Whether no task uses the filter any more.
fn listener_done(listener: c_int) -> bool {
    let mut fd = libc::pollfd {
        fd: listener,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut fd, 1, 0) };
    fd.revents & libc::POLLHUP != 0 && fd.revents & libc::POLLIN == 0
}

/// A signal for the supervisor (blocking read of the signalfd): the
/// program's end (its status), a stop to mirror, or a signal to pass on.
fn on_signal(sigfd: c_int, child: pid_t) -> Option<c_int> {
    let mut info: libc::signalfd_siginfo = unsafe_zeroed();
    let size = core::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reading one siginfo into a buffer of its size.
    let n = unsafe { libc::read(sigfd, &mut info as *mut _ as *mut libc::c_void, size) };
    if n as usize != size {
        return None;
    }
    let sig = info.ssi_signo as c_int;
    if sig != libc::SIGCHLD {
        // From the terminal (SI_KERNEL), the program had it too.
        if info.ssi_code <= 0 {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child, sig) };
        }
        return None;
    }
    loop {
        let mut st = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(child, &mut st, libc::WNOHANG | libc::WUNTRACED) };
        if r != child {
            return None;
        }
        if libc::WIFSTOPPED(st) {
            // Job control sees the supervisor: stop with the program, and
            // let it go on when we are continued.
            // SAFETY: stopping ourselves, then continuing the child.
            unsafe {
                libc::raise(libc::SIGSTOP);
                libc::kill(child, libc::SIGCONT);
            }
            continue;
        }
        return Some(st);
    }
}

fn serve_one(listener: c_int) {
    let mut req: libc::seccomp_notif = unsafe_zeroed();
    // SAFETY: a zeroed notification buffer of the kernel's size.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) } != 0 {
        return; // the task died meanwhile (ENOENT), or EINTR
    }
    let mut task = target::Task::new(req.pid as pid_t);
    let reply = serve::dispatch(&mut task, req.data.nr as libc::c_long, req.data.args);
    drop(task);
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error: 0,
        flags: 0,
    };
    match reply {
        serve::Reply::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        serve::Reply::Value(v) if v < 0 => resp.error = v as i32,
        serve::Reply::Value(v) => resp.val = v,
        serve::Reply::Fd { fd, cloexec, entry } => {
            let add = libc::seccomp_notif_addfd {
                id: req.id,
                flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
                srcfd: fd as u32,
                newfd: 0,
                newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
            };
            // SAFETY: a valid addfd request; SEND completes the call.
            let r = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD as _, &add) };
            let e = target::errno();
            if r >= 0 && entry {
                serve::handed(fd, r);
            }
            crate::fds::close(fd);
            if r >= 0 || e == libc::ENOENT {
                return;
            }
            resp.error = -e;
        }
    }
    // SAFETY: a valid response for the call just received.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &resp) };
}
