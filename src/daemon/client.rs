//! The daemon's Rust client (the CLI, the coreutil applets, tests). The
//! shim has its own allocation-free client over the same protocol.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vrift_format::proto::{decode_reply, encode_request, Op, Request, MAX_FRAME};

use super::wire::{peer_cred, recv_frame, send_frame};
use crate::project::Project;

/// A reply, owned: the applets' type (vrift links them), so that an
/// applet's call through [`Session`] gets the answer as it came.
pub use vrift_coreutils::Answer;

/// Sends one request over `sock` and reads the answer.
pub fn call(sock: &UnixStream, req: &Request<'_>) -> Result<Answer> {
    let mut buf = vec![0u8; MAX_FRAME + 4];
    let n = encode_request(&mut buf, req).context("request too large for the protocol")?;
    send_frame(sock, &buf[..n], None).context("cannot write to the daemon")?;
    let (frame, fd) = recv_frame(sock).context("no answer from the daemon")?;
    decoded(&frame, fd)
}

fn decoded(frame: &[u8], fd: Option<OwnedFd>) -> Result<Answer> {
    let r = decode_reply(frame).map_err(|e| anyhow::anyhow!("bad answer from the daemon: {e}"))?;
    Ok(Answer {
        errno: r.errno,
        flags: r.flags,
        a: r.a,
        b: r.b,
        data: r.data.to_vec(),
        fd,
    })
}

/// How often one request may lose its answer (its daemon died) before it
/// fails; each time the next daemon is started and asked again.
const MAX_LOST: u32 = 32;

/// A fresh request id (never 0, which means none).
fn request_id() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into our buffer.
    let got = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 8, 0) };
    let v = if got == 8 {
        u64::from_ne_bytes(b)
    } else {
        // Unique enough: the pid, the time and a counter through a hash.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let h = blake3::hash(format!("{}.{t}.{seq}", std::process::id()).as_bytes());
        u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default())
    };
    v.max(1)
}

/// Whether an error of the exchange means the daemon went away with the
/// request (asked again of the next one), not that it answered badly or
/// is alive but slow (a timeout is never retried: the daemon may still
/// act on the request, and only a dead daemon's journal is consulted).
fn lost(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted | NotConnected
    )
}

/// A connection to a project's daemon that survives the daemon: a request
/// whose answer is lost (the daemon was killed, or exited idle) is sent
/// again, with the same request id, to the next daemon, started if need be
/// (see journal.rs, "Request ids", for why that is safe).
pub struct Session {
    project: Project,
    sock: Option<UnixStream>,
}

impl Session {
    /// Connects, starting the daemon if none runs.
    pub fn open(project: Project) -> Result<Session> {
        let sock = connect_or_start(&project)?;
        Ok(Session {
            project,
            sock: Some(sock),
        })
    }

    /// Sends `req` (given a request id if it has none) and returns the answer.
    pub fn call(&mut self, req: &Request<'_>) -> Result<Answer> {
        let mut req = *req;
        if req.c == 0 && !matches!(req.op, Op::Ping | Op::Status | Op::Stop) {
            req.c = request_id();
        }
        let mut buf = vec![0u8; MAX_FRAME + 4];
        let n = encode_request(&mut buf, &req).context("request too large for the protocol")?;
        let mut tries = 0;
        loop {
            let sock = match self.sock.take() {
                Some(s) => s,
                None => connect_or_start(&self.project)?,
            };
            let got = send_frame(&sock, &buf[..n], None).and_then(|()| recv_frame(&sock));
            match got {
                Ok((frame, fd)) => {
                    self.sock = Some(sock);
                    return decoded(&frame, fd);
                }
                Err(e) if lost(&e) && tries < MAX_LOST => tries += 1,
                Err(e) => return Err(e).context("no answer from the daemon"),
            }
        }
    }
}

/// Connects to a daemon socket, having checked that its directory is ours
/// and private and that the process listening runs as us (`SO_PEERCRED`):
/// otherwise another user could receive our requests. A refusal is an
/// error of kind `PermissionDenied` whose text names the directory or
/// socket; callers must report it, not take it for "no daemon".
pub fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    match super::check_runtime_dir(dir) {
        Ok(true) => {}
        Ok(false) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", dir.display()),
            ))
        }
        Err(e) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{e:#}"),
            ))
        }
    }
    let s = UnixStream::connect(socket)?;
    let cred = peer_cred(&s)?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if cred.uid != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "refusing the daemon socket {}: it is served by uid {} (pid {}), not by you (uid {me})",
                socket.display(),
                cred.uid,
                cred.pid
            ),
        ));
    }
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(s)
}

/// A connection refused for safety (see [`connect`]) is an error; a
/// daemon that is simply not running is `None`.
fn connect_if_running(socket: &Path) -> Result<Option<UnixStream>> {
    match connect(socket) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(anyhow::anyhow!(e)),
        Err(_) => Ok(None),
    }
}

/// Asks whichever daemon runs on `socket` (None: none runs). A request
/// whose answer is lost (the daemon was killed or exited idle meanwhile)
/// is asked again of the daemon running then, as [`Session::call`] does
/// for changes: Ping, Status and Stop change nothing a second asking
/// could repeat, so no request id is needed.
fn ask_running(socket: &Path, req: &Request<'_>) -> Result<Option<Answer>> {
    let mut tries = 0;
    loop {
        let Some(s) = connect_if_running(socket)? else {
            return Ok(None);
        };
        match call(&s, req) {
            Ok(a) => return Ok(Some(a)),
            Err(e)
                if tries < MAX_LOST
                    && e.chain()
                        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(lost)) =>
            {
                tries += 1
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a daemon answers on `socket`.
pub fn ping_socket(socket: &Path) -> Result<()> {
    let Some(a) = ask_running(socket, &Request::bare(Op::Ping))? else {
        bail!("no daemon listens on {}", socket.display());
    };
    if a.errno != 0 || a.data != b"pong" {
        bail!("unexpected answer to ping");
    }
    Ok(())
}

/// The daemon's status text, or None if none runs.
pub fn status(project: &Project) -> Result<Option<String>> {
    Ok(
        ask_running(&super::socket_path(project), &Request::bare(Op::Status))?
            .map(|a| String::from_utf8_lossy(&a.data).into_owned()),
    )
}

/// Connects to the project's daemon, starting it if needed.
pub fn connect_or_start(project: &Project) -> Result<UnixStream> {
    let socket = super::socket_path(project);
    if let Some(s) = connect_if_running(&socket)? {
        return Ok(s);
    }
    super::start(project)?;
    connect(&socket).with_context(|| format!("cannot connect to {}", socket.display()))
}

/// Stops the project's daemon (its changes committed) and waits until it
/// has let go of the project. Returns whether one was running.
pub fn stop(project: &Project) -> Result<bool> {
    let socket = super::socket_path(project);
    // A daemon that died with the answer is stopped too (`ask_running`).
    let Some(a) = ask_running(&socket, &Request::bare(Op::Stop))? else {
        return Ok(false);
    };
    if a.errno == libc::EBUSY {
        bail!(
            "{} file(s) of {} are still open for writing by running processes; let them finish first",
            a.a,
            project.root().display()
        );
    }
    if a.errno != 0 {
        bail!(
            "the daemon could not stop: {}",
            String::from_utf8_lossy(&a.data)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while connect(&socket).is_ok() {
        if Instant::now() > deadline {
            bail!("the daemon of {} did not exit", project.root().display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(true)
}
