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
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vrift_format::proto::Op;

use super::conn::{answer, finish_fetches, flush, handle_frames, Conn};
use super::fetch::Fetcher;
use super::live::Identity;
use super::requests::Answer;
use super::rift::{Caller, Rift, Seal, SEAL_SLICE};
use super::tenure::Tenure;
use super::wire::{peer_cred, peer_groups, read_some};
use super::STOP;
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

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::Release);
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
    // The private directory keeps others out; the socket itself is open
    // to a process of the view holding a handle on it after it changed its
    // credentials (the library's `creds`; served only by a root daemon).
    let mode = if my_uid_is_root() { 0o666 } else { 0o600 };
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode))?;
    listener.set_nonblocking(true)?;
    let tenure = Tenure::take(_lock.path(), _lock.file(), &socket)
        .with_context(|| format!("cannot stat {}", socket.display()))?;

    let cas = project.cas()?;
    let manifest = project.manifest()?;
    crate::ingest::recover(&project, &cas, &manifest)?;
    let exe = std::env::current_exe().unwrap_or_default();
    let id = Identity {
        root: project.root().as_os_str().as_bytes().to_vec(),
        cas_root: cas.root().as_os_str().as_bytes().to_vec(),
        socket: socket.as_os_str().as_bytes().to_vec(),
        exe: exe.as_os_str().as_bytes().to_vec(),
        verify: crate::table::verify_reads(&project),
    };
    let mut fetcher =
        Fetcher::new(project.clone(), cas.clone()).context("cannot set up blob fetching")?;
    let mut rift = Rift::open(project, cas, manifest, id)?;
    let inotify = watch_staging(&rift)?;
    let result = serve(&mut rift, &mut fetcher, &listener, &inotify, &tenure);
    // Whatever happened, what was journaled goes into the manifest.
    let sealed = rift.seal_idle();
    let commit = rift.commit();
    rift.remove_retired(true);
    tenure.release_socket();
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
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        // Root may raise the hard limit too (a client that started us
        // with a low one, say a test of EMFILE, must not limit the daemon).
        let high = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: lim.rlim_max.max(1 << 20),
        };
        if lim.rlim_max < high.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &high) == 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
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

/// The daemon's state between events: the rift, the fetcher, the clients,
/// and the clocks of the timed work (group commit, sweep, compaction,
/// idle exit).
struct Server<'a> {
    rift: &'a mut Rift,
    fetcher: &'a mut Fetcher,
    listener: &'a UnixListener,
    inotify: &'a OwnedFd,
    my_uid: u32,
    idle: Duration,
    seal_sweep: Duration,
    conns: HashMap<RawFd, Conn>,
    last_activity: Instant,
    last_commit: Instant,
    last_sweep: Instant,
    reseal: Vec<Reseal>,
    next_id: u64,
    /// Idle and on the way out: no new client is let in, those already in
    /// the listen queue are still answered (see [`Server::on_idle`]).
    draining: bool,
    /// One fd kept in reserve for accepting (and closing) a client when the
    /// daemon has no other left (see [`Server::on_accept`]).
    spare: Option<std::fs::File>,
    out_of_fds: bool,
    tenure: &'a Tenure,
    /// The project at our path is not the one we serve (see [`Tenure`]).
    orphaned: bool,
}

/// The fixed entries of the poll set, before the connections.
const POLL_LISTENER: usize = 0;
const POLL_INOTIFY: usize = 1;
const POLL_FETCHER: usize = 2;
const POLL_CONNS: usize = 3;

fn serve(
    rift: &mut Rift,
    fetcher: &mut Fetcher,
    listener: &UnixListener,
    inotify: &OwnedFd,
    tenure: &Tenure,
) -> Result<()> {
    let now = Instant::now();
    let mut server = Server {
        rift,
        fetcher,
        listener,
        inotify,
        // SAFETY: getuid cannot fail.
        my_uid: unsafe { libc::getuid() },
        idle: super::idle_timeout(),
        spare: std::fs::File::open("/dev/null").ok(),
        out_of_fds: false,
        seal_sweep: super::seal_sweep(),
        conns: HashMap::new(),
        last_activity: now,
        last_commit: now,
        last_sweep: now,
        reseal: Vec::new(),
        next_id: 0,
        draining: false,
        tenure,
        orphaned: false,
    };
    server.run()
}

impl Server<'_> {
    /// Polls and handles events until stopped, or idle and drained.
    fn run(&mut self) -> Result<()> {
        loop {
            if STOP.load(Ordering::Acquire) {
                finish_fetches(self.fetcher, &mut self.conns);
                return Ok(());
            }
            let mut fds = self.poll_set();
            let timeout = self.timeout();
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
            if self.draining || fds[POLL_LISTENER].revents & libc::POLLIN != 0 {
                // A client of the project now at our path is never let in
                // if that project is not ours.
                if self.is_orphaned() {
                    return Ok(());
                }
                self.on_accept();
            }
            if fds[POLL_INOTIFY].revents & libc::POLLIN != 0 {
                self.on_closed();
            }
            if fds[POLL_FETCHER].revents & libc::POLLIN != 0 {
                self.on_fetched();
            }
            self.rift.remove_retired(false);
            self.on_reseal_due();
            for p in &fds[POLL_CONNS..] {
                if p.revents != 0 {
                    self.on_conn(p.fd);
                }
                if STOP.load(Ordering::Acquire) {
                    break;
                }
            }
            self.on_commit_due();
            self.on_sweep_due();
            if self.orphaned {
                return Ok(());
            }
            self.on_quiet();
            if self.draining && self.conns.is_empty() {
                // The accept loop found the listen queue empty, and
                // nothing joins it once shut down. Files still staged are
                // picked up by the next daemon.
                return Ok(());
            }
            self.on_idle();
        }
    }

    /// The listener (unless draining), the inotify watch, the fetcher's
    /// wake-up fd, then every connection not parked: for reading, or for
    /// writing while a reply waits.
    fn poll_set(&self) -> Vec<libc::pollfd> {
        let mut fds = vec![
            libc::pollfd {
                // A shut-down listener polls readable for ever: accepted
                // from below without asking poll.
                fd: if self.draining {
                    -1
                } else {
                    self.listener.as_raw_fd()
                },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.inotify.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.fetcher.wake_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        fds.extend(
            self.conns
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
        fds
    }

    /// How long the next poll may wait: until the group commit, the
    /// compaction, the sweep, the next reseal or the idle exit is due.
    fn timeout(&self) -> Duration {
        let rift = &self.rift;
        // Quiet: nothing staged or uncommitted. A scattered table then waits
        // COMPACT_QUIET after the last request (never a busy poll: the
        // rebuild runs as soon as the wait is over).
        let quiet = rift.uncommitted() == 0 && rift.staged_count() == 0;
        let timeout = if rift.uncommitted() > 0 {
            COMMIT_EVERY.saturating_sub(self.last_commit.elapsed())
        } else if quiet && rift.table_fragmented() {
            COMPACT_QUIET.saturating_sub(self.last_activity.elapsed())
        } else {
            self.seal_sweep
        };
        let timeout = match self.reseal.iter().map(|r| r.due).min() {
            Some(due) => timeout.min(due.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        // Draining with no client: accept the queued ones at once.
        // Else wake when the idle time is up, not at the next sweep.
        if self.draining && self.conns.is_empty() {
            Duration::ZERO
        } else if self.conns.is_empty() && rift.staged_count() == 0 {
            timeout.min(self.idle.saturating_sub(self.last_activity.elapsed()))
        } else {
            timeout
        }
    }

    /// Clients connecting: every queued one of our uid (or root) is let
    /// in; another uid only by a daemon running as root, which can give it
    /// what it creates and checks each of its requests as the kernel would
    /// (rift/perm.rs): a process of the view that changed its credentials
    /// keeps the way to this socket (the library's set*id wrappers).
    fn on_accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    let Ok(cred) = peer_cred(&sock) else { continue };
                    if cred.uid != self.my_uid && cred.uid != 0 && self.my_uid != 0 {
                        eprintln!(
                            "vrift daemon: refused a connection from uid {} (pid {})",
                            cred.uid, cred.pid
                        );
                        continue;
                    }
                    let foreign = cred.uid != self.my_uid && cred.uid != 0;
                    let groups = peer_groups(&sock);
                    self.out_of_fds = false;
                    let _ = sock.set_nonblocking(true);
                    self.next_id += 1;
                    self.conns.insert(
                        sock.as_raw_fd(),
                        Conn {
                            sock,
                            caller: Caller::new(cred.pid, cred.uid, cred.gid, groups, foreign),
                            buf: Vec::new(),
                            id: self.next_id,
                            parked: false,
                            out: Vec::new(),
                            out_fd: None,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of fds: a queued client would wait for ever (and
                    // poll would wake us for it at once, again and again).
                    // Take it with the spare fd and close it: its request
                    // is sent again, and fails with EIO after a few tries
                    // if nothing frees up.
                    if !self.out_of_fds {
                        eprintln!(
                            "vrift daemon: accept: {e} (clients are turned away until fds free up)"
                        );
                        self.out_of_fds = true;
                    }
                    drop(self.spare.take());
                    drop(self.listener.accept());
                    self.spare = std::fs::File::open("/dev/null").ok();
                    break;
                }
                Err(e) => {
                    eprintln!("vrift daemon: accept: {e}");
                    break;
                }
            }
        }
    }

    /// Staging files closed by a writer: sealed at once (by
    /// [`Server::on_reseal_due`]), and retried if refused.
    fn on_closed(&mut self) {
        let now = Instant::now();
        let rift = &self.rift;
        self.reseal.extend(
            closed_names(self.inotify)
                .into_iter()
                .filter(|name| rift.owns_staging_name(name))
                .map(|name| Reseal {
                    name,
                    tries: 0,
                    due: now,
                }),
        );
    }

    /// Blob fetches that ended: their clients are answered, and go on.
    fn on_fetched(&mut self) {
        for ((fd, id), errno, why) in self.fetcher.finished() {
            let Some(conn) = self.conns.get_mut(&fd).filter(|c| c.id == id) else {
                continue;
            };
            conn.parked = false;
            let keep = answer(conn, Op::FetchBlob, Answer::fail(errno, why))
                && handle_frames(self.rift, self.fetcher, fd, conn, &mut self.last_activity);
            if !keep {
                self.conns.remove(&fd);
            }
        }
    }

    /// One step of each seal that is due.
    fn on_reseal_due(&mut self) {
        let now = Instant::now();
        let rift = &mut *self.rift;
        self.reseal.retain_mut(|r| {
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
    }

    /// A connection is readable (requests) or writable (its pending reply).
    fn on_conn(&mut self, fd: RawFd) {
        let Some(conn) = self.conns.get_mut(&fd) else {
            return;
        };
        let (rift, fetcher, last_activity) =
            (&mut *self.rift, &mut *self.fetcher, &mut self.last_activity);
        let keep = if !conn.out.is_empty() {
            // The client takes its reply at last: then the requests it
            // sent meanwhile are answered.
            match flush(conn) {
                Ok(true) => handle_frames(rift, fetcher, fd, conn, last_activity),
                Ok(false) => true,
                Err(_) => false,
            }
        } else {
            match read_some(&conn.sock, &mut conn.buf) {
                Ok(0) => false,
                Ok(_) => handle_frames(rift, fetcher, fd, conn, last_activity),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                Err(_) => false,
            }
        };
        if !keep {
            self.conns.remove(&fd);
        }
    }

    /// The group commit, at most [`COMMIT_EVERY`] after the last.
    fn on_commit_due(&mut self) {
        if self.rift.uncommitted() > 0 && self.last_commit.elapsed() >= COMMIT_EVERY {
            if let Err(e) = self.rift.commit() {
                eprintln!("vrift daemon: group commit failed (kept in the journal): {e:#}");
            }
            self.last_commit = Instant::now();
        }
    }

    /// Whether the project at our path is another than ours (removed and
    /// initialised again, or moved away: see [`Tenure`]); said once.
    fn is_orphaned(&mut self) -> bool {
        if !self.orphaned && !self.tenure.project_is_ours() {
            eprintln!(
                "vrift daemon: {} is not the project's lock this daemon holds (the project was removed, re-initialised or moved); exiting",
                self.tenure.lock_path().display()
            );
            self.orphaned = true;
        }
        self.orphaned
    }

    /// The sweep: staged files no close event sealed, anonymous files no
    /// process holds; and whether we still serve the project at our path.
    fn on_sweep_due(&mut self) {
        if self.last_sweep.elapsed() >= self.seal_sweep {
            if self.is_orphaned() {
                return;
            }
            let now = Instant::now();
            for name in self.rift.seal_idle_step() {
                if !self.reseal.iter().any(|r| r.name == name) {
                    self.reseal.push(Reseal {
                        name,
                        tries: 0,
                        due: now,
                    });
                }
            }
            self.rift.reap_anon();
            self.last_sweep = Instant::now();
        }
    }

    /// Quiet for [`COMPACT_QUIET`]: a scattered hot table is rebuilt.
    fn on_quiet(&mut self) {
        let quiet = self.rift.uncommitted() == 0 && self.rift.staged_count() == 0;
        if quiet && self.last_activity.elapsed() >= COMPACT_QUIET {
            if let Err(e) = self.rift.compact_table() {
                eprintln!("vrift daemon: cannot rebuild the hot table: {e:#}");
            }
        }
    }

    /// Idle for the idle time with nothing staged: start draining.
    fn on_idle(&mut self) {
        if !self.draining
            && self.conns.is_empty()
            && self.rift.staged_count() == 0
            && self.last_activity.elapsed() >= self.idle
        {
            // A client may be connecting right now. Closing the listener
            // would reset those already queued (their requests sent, never
            // read: EIO in a build). Shut it down instead: from here a
            // connect is refused (its client starts the next daemon, which
            // waits for our lock), while the queued ones are still
            // accepted and answered before we exit.
            // SAFETY: shutdown of our own listening socket.
            unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RD) };
            self.draining = true;
        }
    }
}

/// Whether the daemon runs as root (and so may serve other uids).
fn my_uid_is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
