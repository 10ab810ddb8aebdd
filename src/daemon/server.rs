//! The daemon's event loop: one thread, `poll` over the listening socket,
//! the client connections and an inotify watch of the staging directory.
//!
//! Requests are answered in arrival order by the one thread that owns the
//! rift, so every decision (O_EXCL, rename) is atomic across processes.
//! A large file is sealed a slice at a time between requests, so hashing
//! it never keeps other clients waiting for more than a slice.
//! Changes are journaled before the answer; the journal is committed to the
//! manifest in groups (every [`COMMIT_EVERY`] at most, and on exit).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vrift_format::proto::{
    decode_request, encode_reply, frame_len, FrameError, Op, Reply, Request,
};

use super::fetch::{self, Fetcher, Start};
use super::live::Identity;
use super::rift::{Caller, Errno, Rift, Seal, SEAL_SLICE};
use super::wire::{peer_cred, read_some, send_some};
use crate::lock::{FileLock, LockMode};
use crate::project::Project;

/// Longest a journaled change waits for its group commit.
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// The first retry of a seal that a close event did not get, and how many
/// retries (each twice as late) before leaving it to the next close event or
/// the sweep. The kernel reports IN_CLOSE_WRITE before the closing file
/// stops counting as a writer (`fsnotify_close` runs before
/// `put_file_access` in `__fput`), so a daemon that wakes fast enough finds
/// the write lease refused for a file whose writer is gone.
const RESEAL_FIRST: Duration = Duration::from_millis(1);
const RESEAL_TRIES: u32 = 7;

/// A seal to try: the staging name, retries so far, when.
struct Reseal {
    name: Vec<u8>,
    tries: u32,
    due: Instant,
}

/// How long no client may have asked anything before a scattered hot table
/// is rebuilt (a build's burst of writes is over).
const COMPACT_QUIET: Duration = Duration::from_millis(250);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::Release);
}

struct Conn {
    sock: UnixStream,
    uid: u32,
    buf: Vec<u8>,
    /// Told apart from a later connection on the same fd number.
    id: u64,
    /// Waiting for a blob being fetched: not polled, not answered, until
    /// the fetch ends (its client is blocked on the answer anyway).
    parked: bool,
    /// The part of a reply the client has not taken yet (its socket buffer
    /// is full), and the fd to send with its first byte. While it is there
    /// the connection is polled for writing only: nothing more is read or
    /// answered for it, so a client that floods requests and never reads
    /// its replies holds one reply and one read buffer of the daemon, and
    /// never the daemon itself (issue 14).
    out: Vec<u8>,
    out_fd: Option<OwnedFd>,
}

/// Closes every inherited fd above stderr: a daemon must not keep a build's
/// pipes (make's jobserver, a test harness's stdout) open after it.
fn close_inherited_fds() {
    // SAFETY: close_range on a range of fds this process does not use yet.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

fn lock_path(project: &Project) -> std::path::PathBuf {
    project.state_dir().join("lock")
}

/// Runs the daemon in the foreground.
pub fn run(project: Project) -> Result<()> {
    close_inherited_fds();
    // SAFETY: installing handlers / ignoring signals at start-up.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        // A lease break is signalled with SIGIO; we release leases at once.
        libc::signal(libc::SIGIO, libc::SIG_IGN);
        libc::umask(0);
    }
    raise_fd_limit();
    let socket = super::socket_path(&project);
    if super::client::ping_socket(&socket).is_ok() {
        return Ok(()); // another daemon serves this project
    }
    let _lock = FileLock::acquire(&lock_path(&project), LockMode::Exclusive, || {})
        .with_context(|| format!("cannot lock {}", lock_path(&project).display()))?;
    if super::client::ping_socket(&socket).is_ok() {
        return Ok(());
    }
    let dir = socket.parent().expect("socket paths have a parent");
    super::ensure_runtime_dir(dir)?;
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;

    let cas = project.cas()?;
    let manifest = project.manifest()?;
    crate::ingest::recover(&project, &cas, &manifest)?;
    let exe = std::env::current_exe().unwrap_or_default();
    let id = Identity {
        root: project.root().as_os_str().as_bytes().to_vec(),
        cas_root: cas.root().as_os_str().as_bytes().to_vec(),
        socket: socket.as_os_str().as_bytes().to_vec(),
        exe: exe.as_os_str().as_bytes().to_vec(),
    };
    let mut fetcher =
        Fetcher::new(project.clone(), cas.clone()).context("cannot set up blob fetching")?;
    let mut rift = Rift::open(project, cas, manifest, id)?;
    let inotify = watch_staging(&rift)?;
    let result = serve(&mut rift, &mut fetcher, &listener, &inotify);
    // Whatever happened, what was journaled goes into the manifest.
    let sealed = rift.seal_idle();
    let commit = rift.commit();
    rift.remove_retired(true);
    let _ = std::fs::remove_file(&socket);
    if sealed > 0 {
        eprintln!("vrift daemon: sealed {sealed} files on exit");
    }
    result.and(commit)
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn watch_staging(rift: &Rift) -> Result<OwnedFd> {
    // SAFETY: plain syscalls; the fd is owned right after.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("inotify_init1");
    }
    // SAFETY: a fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let dir = rift.staging_path(b"");
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: valid fd and path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_CLOSE_WRITE) } < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot watch {}", dir.display()));
    }
    Ok(fd)
}

/// Names of staging files closed by their last writer since the last call.
fn closed_names(inotify: &OwnedFd) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe {
            libc::read(
                inotify.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 16 <= n as usize {
            let len =
                u32::from_ne_bytes(buf[off + 12..off + 16].try_into().unwrap_or_default()) as usize;
            let name = &buf[off + 16..(off + 16 + len).min(n as usize)];
            let name = match name.iter().position(|&c| c == 0) {
                Some(p) => &name[..p],
                None => name,
            };
            if !name.is_empty() {
                out.push(name.to_vec());
            }
            off += 16 + len;
        }
    }
    out
}

fn serve(
    rift: &mut Rift,
    fetcher: &mut Fetcher,
    listener: &UnixListener,
    inotify: &OwnedFd,
) -> Result<()> {
    // SAFETY: getuid cannot fail.
    let my_uid = unsafe { libc::getuid() };
    let idle = super::idle_timeout();
    let seal_sweep = super::seal_sweep();
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut last_activity = Instant::now();
    let mut last_commit = Instant::now();
    let mut last_sweep = Instant::now();
    let mut reseal: Vec<Reseal> = Vec::new();
    let mut next_id = 0u64;
    // Idle and on the way out: no new client is let in, those already in
    // the listen queue are still answered (see below).
    let mut draining = false;
    loop {
        if STOP.load(Ordering::Acquire) {
            finish_fetches(fetcher, &mut conns);
            return Ok(());
        }
        let mut fds = vec![
            libc::pollfd {
                // A shut-down listener polls readable for ever: accepted
                // from below without asking poll.
                fd: if draining { -1 } else { listener.as_raw_fd() },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: inotify.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fetcher.wake_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        fds.extend(
            conns
                .iter()
                .filter(|(_, c)| !c.parked)
                .map(|(&fd, c)| libc::pollfd {
                    fd,
                    events: if c.out.is_empty() {
                        libc::POLLIN
                    } else {
                        libc::POLLOUT
                    },
                    revents: 0,
                }),
        );
        // Quiet: nothing staged or uncommitted. A scattered table then waits
        // COMPACT_QUIET after the last request (never a busy poll: the
        // rebuild below runs as soon as the wait is over).
        let quiet = rift.uncommitted() == 0 && rift.staged_count() == 0;
        let timeout = if rift.uncommitted() > 0 {
            COMMIT_EVERY.saturating_sub(last_commit.elapsed())
        } else if quiet && rift.table_fragmented() {
            COMPACT_QUIET.saturating_sub(last_activity.elapsed())
        } else {
            seal_sweep
        };
        let timeout = match reseal.iter().map(|r| r.due).min() {
            Some(due) => timeout.min(due.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        // Draining with no client: accept the queued ones (below) at once.
        // Else wake when the idle time is up, not at the next sweep.
        let timeout = if draining && conns.is_empty() {
            Duration::ZERO
        } else if conns.is_empty() && rift.staged_count() == 0 {
            timeout.min(idle.saturating_sub(last_activity.elapsed()))
        } else {
            timeout
        };
        // SAFETY: fds is a live array of pollfd.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis().min(10_000) as i32,
            )
        };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            bail!("poll: {}", io::Error::last_os_error());
        }
        if draining || fds[0].revents & libc::POLLIN != 0 {
            loop {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let Ok(cred) = peer_cred(&sock) else { continue };
                        if cred.uid != my_uid && cred.uid != 0 {
                            eprintln!(
                                "vrift daemon: refused a connection from uid {} (pid {})",
                                cred.uid, cred.pid
                            );
                            continue;
                        }
                        let _ = sock.set_nonblocking(true);
                        next_id += 1;
                        conns.insert(
                            sock.as_raw_fd(),
                            Conn {
                                sock,
                                uid: cred.uid,
                                buf: Vec::new(),
                                id: next_id,
                                parked: false,
                                out: Vec::new(),
                                out_fd: None,
                            },
                        );
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        eprintln!("vrift daemon: accept: {e}");
                        break;
                    }
                }
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            // A closed file is sealed at once (below), and retried if refused.
            let now = Instant::now();
            reseal.extend(
                closed_names(inotify)
                    .into_iter()
                    .filter(|name| rift.owns_staging_name(name))
                    .map(|name| Reseal {
                        name,
                        tries: 0,
                        due: now,
                    }),
            );
        }
        if fds[2].revents & libc::POLLIN != 0 {
            for ((fd, id), errno, why) in fetcher.finished() {
                let Some(conn) = conns.get_mut(&fd).filter(|c| c.id == id) else {
                    continue;
                };
                conn.parked = false;
                let keep = answer(conn, Op::FetchBlob, (errno, 0, 0, why, None))
                    && handle_frames(rift, fetcher, fd, conn, &mut last_activity);
                if !keep {
                    conns.remove(&fd);
                }
            }
        }
        rift.remove_retired(false);
        let now = Instant::now();
        reseal.retain_mut(|r| {
            if r.due > now {
                return true;
            }
            // One slice of a large file per turn: the clients' requests are
            // answered between slices.
            match rift.seal_step(&r.name, SEAL_SLICE) {
                Ok(Seal::More) => {
                    r.due = now;
                    true
                }
                Ok(Seal::NotNow) if rift.is_staged(&r.name) && r.tries < RESEAL_TRIES => {
                    r.due = now + RESEAL_FIRST * (1 << r.tries);
                    r.tries += 1;
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    eprintln!("vrift daemon: cannot seal a staged file: {e:#}");
                    false
                }
            }
        });
        for p in &fds[3..] {
            if p.revents == 0 {
                continue;
            }
            let Some(conn) = conns.get_mut(&p.fd) else {
                continue;
            };
            let keep = if !conn.out.is_empty() {
                // The client takes its reply at last: then the requests it
                // sent meanwhile are answered.
                match flush(conn) {
                    Ok(true) => handle_frames(rift, fetcher, p.fd, conn, &mut last_activity),
                    Ok(false) => true,
                    Err(_) => false,
                }
            } else {
                match read_some(&conn.sock, &mut conn.buf) {
                    Ok(0) => false,
                    Ok(_) => handle_frames(rift, fetcher, p.fd, conn, &mut last_activity),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                    Err(_) => false,
                }
            };
            if !keep {
                conns.remove(&p.fd);
            }
            if STOP.load(Ordering::Acquire) {
                break;
            }
        }
        if rift.uncommitted() > 0 && last_commit.elapsed() >= COMMIT_EVERY {
            if let Err(e) = rift.commit() {
                eprintln!("vrift daemon: group commit failed (kept in the journal): {e:#}");
            }
            last_commit = Instant::now();
        }
        if last_sweep.elapsed() >= seal_sweep {
            let now = Instant::now();
            for name in rift.seal_idle_step() {
                if !reseal.iter().any(|r| r.name == name) {
                    reseal.push(Reseal {
                        name,
                        tries: 0,
                        due: now,
                    });
                }
            }
            rift.reap_anon();
            last_sweep = Instant::now();
        }
        let quiet = rift.uncommitted() == 0 && rift.staged_count() == 0;
        if quiet && last_activity.elapsed() >= COMPACT_QUIET {
            if let Err(e) = rift.compact_table() {
                eprintln!("vrift daemon: cannot rebuild the hot table: {e:#}");
            }
        }
        if draining && conns.is_empty() {
            // The accept loop above found the listen queue empty, and
            // nothing joins it once shut down. Files still staged are
            // picked up by the next daemon.
            return Ok(());
        }
        if !draining
            && conns.is_empty()
            && rift.staged_count() == 0
            && last_activity.elapsed() >= idle
        {
            // A client may be connecting right now. Closing the listener
            // would reset those already queued (their requests sent, never
            // read: EIO in a build). Shut it down instead: from here a
            // connect is refused (its client starts the next daemon, which
            // waits for our lock), while the queued ones are still
            // accepted and answered before we exit.
            // SAFETY: shutdown of our own listening socket.
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD) };
            draining = true;
        }
    }
}

/// Before the daemon exits: the readers waiting for a blob get their answer
/// (the transfers end within the remotes' timeouts), rather than a closed
/// socket, which they would report as an unreachable daemon.
fn finish_fetches(fetcher: &mut Fetcher, conns: &mut HashMap<RawFd, Conn>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while fetcher.pending() && Instant::now() < deadline {
        let mut p = libc::pollfd {
            fd: fetcher.wake_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, 1000) };
        for ((fd, id), errno, why) in fetcher.finished() {
            if let Some(conn) = conns.get_mut(&fd).filter(|c| c.id == id) {
                answer(conn, Op::FetchBlob, (errno, 0, 0, why, None));
            }
        }
    }
}

/// Answers every whole frame in the connection's buffer, up to one that
/// parks it (a fetch). False: drop it.
fn handle_frames(
    rift: &mut Rift,
    fetcher: &mut Fetcher,
    fd: RawFd,
    conn: &mut Conn,
    last_activity: &mut Instant,
) -> bool {
    loop {
        // One reply waiting for the client to read it: the rest waits too.
        if !conn.out.is_empty() {
            return true;
        }
        let total = match frame_len(&conn.buf) {
            Ok(n) => n,
            Err(FrameError::Incomplete) => return true,
            Err(e) => {
                eprintln!("vrift daemon: refused a frame: {e}");
                return false;
            }
        };
        if conn.buf.len() < total {
            return true;
        }
        let frame: Vec<u8> = conn.buf.drain(..total).collect();
        let req = match decode_request(&frame) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("vrift daemon: refused a frame: {e}");
                return false;
            }
        };
        if !matches!(req.op, Op::Ping | Op::Status) {
            // Asking whether the daemon is up does not keep it up.
            *last_activity = Instant::now();
        }
        if req.op == Op::FetchBlob {
            match fetcher.request((fd, conn.id), req.path1, req.a) {
                Start::Wait => {
                    // path2: the view path the blob is read for, if the
                    // client says; its neighbours are fetched ahead.
                    if fetcher.wants_neighbours(req.path2) {
                        fetcher.prefetch(rift.neighbours(
                            req.path2,
                            fetch::PREFETCH_MAX,
                            fetch::PREFETCH_MAX_SIZE,
                        ));
                    }
                    conn.parked = true;
                    return true;
                }
                Start::Answer(errno, why) => {
                    if !answer(conn, req.op, (errno, 0, 0, why, None)) {
                        return false;
                    }
                    continue;
                }
            }
        }
        let caller = Caller { uid: conn.uid };
        let ans = answer_once(rift, caller, &req);
        let errno = ans.0;
        if !answer(conn, req.op, ans) {
            return false;
        }
        if req.op == Op::Stop && errno == 0 {
            STOP.store(true, Ordering::Release);
            return false;
        }
    }
}

type Answer = (i32, u64, u64, Vec<u8>, Option<OwnedFd>);

/// Sends the answer to a request of `op`, or keeps what the client's socket
/// cannot take now in `conn.out` (never waiting for a client). False: the
/// connection is lost.
fn answer(conn: &mut Conn, op: Op, (errno, a, b, data, fd): Answer) -> bool {
    // Sized to the reply: a whole-frame buffer would be zeroed per request.
    let mut out = vec![0u8; 64 + data.len()];
    let reply = Reply {
        op,
        errno,
        a,
        b,
        data: &data,
    };
    let Some(n) = encode_reply(&mut out, &reply) else {
        return false;
    };
    if !conn.out.is_empty() {
        // Not reached: a connection with a reply pending is not answered.
        return false;
    }
    out.truncate(n);
    conn.out = out;
    conn.out_fd = fd;
    flush(conn).is_ok()
}

/// Sends what it can of `conn.out` without blocking. Ok(true): all of it.
fn flush(conn: &mut Conn) -> io::Result<bool> {
    while !conn.out.is_empty() {
        let fd = conn.out_fd.as_ref().map(|f| f.as_raw_fd());
        match send_some(&conn.sock, &conn.out, fd) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(sent) => {
                // The fd went with the first byte.
                conn.out_fd = None;
                conn.out.drain(..sent);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    conn.out = Vec::new();
    Ok(true)
}

/// Whether a request carries an id its retry is recognised by: a change to
/// the rift whose second run could answer differently from its first (see
/// journal.rs, "Request ids"). Not `Seal` (asking again seals nothing new
/// and must return the hash) nor an `O_TMPFILE` open (nothing to find again:
/// its retry makes another anonymous file).
fn tracked(req: &Request<'_>) -> bool {
    let tmpfile = req.op == Op::OpenWrite && (req.a as i32) & libc::O_TMPFILE == libc::O_TMPFILE;
    req.c != 0
        && !tmpfile
        && !matches!(
            req.op,
            Op::Ping | Op::Status | Op::Stop | Op::Seal | Op::FetchBlob
        )
}

/// Answers a request, once: a retry of one that a killed daemon journaled
/// (its answer lost) is answered as done instead of being done again.
fn answer_once(rift: &mut Rift, caller: Caller, req: &Request<'_>) -> Answer {
    if !tracked(req) {
        return dispatch(rift, caller, req);
    }
    if rift.done_before(req.c, req.op as u8) {
        // Rare (a daemon died with this request unanswered): worth a line.
        eprintln!(
            "vrift daemon: {:?} {} was done by the daemon before (its answer was lost): answered as done",
            req.op,
            crate::paths::display(req.path1)
        );
        if req.op != Op::OpenWrite {
            return (0, 0, 0, Vec::new(), None);
        }
        // The file was created (O_EXCL honoured then); the client still
        // needs an fd on it. Opening it again without O_EXCL gives that fd
        // and the entry's own inode and mode.
        let again = Request {
            a: (req.a as i32 & !libc::O_EXCL) as u32 as u64,
            ..*req
        };
        rift.begin_request(req.c, req.op as u8);
        let ans = dispatch(rift, caller, &again);
        return end(rift, req, ans);
    }
    rift.begin_request(req.c, req.op as u8);
    let ans = dispatch(rift, caller, req);
    end(rift, req, ans)
}

/// Journals the request (before its answer leaves): a journal that cannot
/// be written fails the request.
fn end(rift: &mut Rift, req: &Request<'_>, ans: Answer) -> Answer {
    match rift.end_request(ans.0 == 0) {
        Ok(()) => ans,
        Err(e) => {
            eprintln!(
                "vrift daemon: {:?} {}: {e:#}",
                req.op,
                crate::paths::display(req.path1)
            );
            (libc::EIO, 0, 0, format!("{e:#}").into_bytes(), None)
        }
    }
}

fn dispatch(rift: &mut Rift, caller: Caller, req: &Request<'_>) -> Answer {
    let ok = |data: Vec<u8>| (0, 0, 0, data, None);
    let p1 = req.path1;
    let valid = |p: &[u8]| p.is_empty() || vrift_format::is_valid_rift_path(p);
    if !valid(p1) || (req.op != Op::Symlink && !valid(req.path2)) {
        return (libc::EINVAL, 0, 0, Vec::new(), None);
    }
    // As the kernel: a name past NAME_MAX, a symlink target of PATH_MAX.
    let too_long = vrift_format::has_long_name(p1)
        || if req.op == Op::Symlink {
            req.path2.len() >= vrift_format::MAX_SYMLINK_TARGET
        } else {
            vrift_format::has_long_name(req.path2)
        };
    if too_long {
        return (libc::ENAMETOOLONG, 0, 0, Vec::new(), None);
    }
    // Only inside the project, never through a symlink out of it.
    let second_is_path = matches!(req.op, Op::Rename | Op::Link);
    let confined = rift.confined(p1).and_then(|()| match second_is_path {
        true => rift.confined(req.path2),
        false => Ok(()),
    });
    if let Err(e) = confined {
        return (e, 0, 0, Vec::new(), None);
    }
    let res: Result<Answer, Errno> = match req.op {
        Op::Ping => Ok(ok(b"pong".to_vec())),
        Op::Status => Ok(ok(rift.status().into_bytes())),
        Op::Stop => {
            rift.seal_idle();
            if rift.staged_count() > 0 {
                Ok((
                    libc::EBUSY,
                    rift.staged_count() as u64,
                    0,
                    b"files of this project are still open for writing".to_vec(),
                    None,
                ))
            } else {
                rift.commit().map(|()| ok(Vec::new())).map_err(Errno::from)
            }
        }
        Op::OpenWrite => rift
            .open_write(caller, p1, req.a as i32, req.b as u32)
            .map(|o| (0, o.ino, o.mode as u64, o.name, Some(o.fd))),
        Op::Unlink => rift.unlink(p1).map(|()| ok(Vec::new())),
        Op::Rmdir => rift.rmdir(p1).map(|()| ok(Vec::new())),
        Op::Mkdir => rift.mkdir(p1, req.a as u32).map(|()| ok(Vec::new())),
        Op::Rename => rift
            .rename(p1, req.path2, req.a as u32)
            .map(|()| ok(Vec::new())),
        Op::Symlink => rift.symlink(p1, req.path2).map(|()| ok(Vec::new())),
        Op::Link => rift.link(p1, req.path2).map(|()| ok(Vec::new())),
        Op::Chmod => rift.chmod(p1, req.a as u32).map(|()| ok(Vec::new())),
        Op::Chown => rift
            .chown(caller, p1, req.a as u32, req.b as u32)
            .map(|()| ok(Vec::new())),
        Op::Utimes => rift.utimes(p1, req.a, req.b).map(|()| ok(Vec::new())),
        Op::Truncate => rift.truncate(caller, p1, req.a).map(|()| ok(Vec::new())),
        Op::Seal => rift.seal_path(p1).map(ok),
        Op::LinkTmp => rift
            .link_tmp(p1, req.path2, req.a as u32)
            .map(|()| ok(Vec::new())),
        // Answered by the fetcher before dispatch.
        Op::FetchBlob => Err(Errno::Posix(libc::EINVAL)),
    };
    match res {
        Ok(a) => a,
        Err(Errno::Posix(e)) => (e, 0, 0, Vec::new(), None),
        Err(Errno::Internal(e)) => {
            eprintln!(
                "vrift daemon: {:?} {}: {e:#}",
                req.op,
                crate::paths::display(p1)
            );
            (libc::EIO, 0, 0, format!("{e:#}").into_bytes(), None)
        }
    }
}

#[allow(dead_code)]
fn flush_stderr() {
    let _ = io::stderr().flush();
}
