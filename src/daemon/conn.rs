//! A client connection: its read buffer, its pending reply, and the loop
//! that answers every whole frame it sent (never waiting for a client: a
//! reply the socket cannot take waits in the connection).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vrift_format::proto::{decode_request, encode_reply, frame_len, FrameError, Op, Reply};

use super::fetch::{self, Fetcher, Start};
use super::requests::{answer_once, Answer};
use super::rift::{Caller, Rift};
use super::wire::send_some;
use super::STOP;

pub(super) struct Conn {
    pub(super) sock: UnixStream,
    /// Its credentials when it connected: the library connects once per
    /// request, so they are the requester's at the request.
    pub(super) caller: Caller,
    pub(super) buf: Vec<u8>,
    /// Told apart from a later connection on the same fd number.
    pub(super) id: u64,
    /// Waiting for a blob being fetched: not polled, not answered, until
    /// the fetch ends (its client is blocked on the answer anyway).
    pub(super) parked: bool,
    /// The part of a reply the client has not taken yet (its socket buffer
    /// is full), and the fd to send with its first byte. While it is there
    /// the connection is polled for writing only: nothing more is read or
    /// answered for it, so a client that floods requests and never reads
    /// its replies holds one reply and one read buffer of the daemon, and
    /// never the daemon itself (issue 14).
    pub(super) out: Vec<u8>,
    pub(super) out_fd: Option<OwnedFd>,
}

/// Before the daemon exits: the readers waiting for a blob get their answer
/// (the transfers end within the remotes' timeouts), rather than a closed
/// socket, which they would report as an unreachable daemon.
pub(super) fn finish_fetches(fetcher: &mut Fetcher, conns: &mut HashMap<RawFd, Conn>) {
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
                answer(conn, Op::FetchBlob, Answer::fail(errno, why));
            }
        }
    }
}

/// Answers every whole frame in the connection's buffer, up to one that
/// parks it (a fetch). False: drop it.
pub(super) fn handle_frames(
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
            match fetcher.request((fd, conn.id), req.path1, req.a, req.b) {
                Start::Wait => {
                    // path2: the view path the blob is read for, if the
                    // client says: logged for the next machine, and its
                    // neighbours are fetched ahead — after the files the
                    // restored snapshot's read profile names.
                    if req.b & vrift_format::proto::FETCH_VERIFY == 0 {
                        fetcher.record(req.path1, req.path2);
                    }
                    let profile = fetcher.take_profile();
                    if !profile.is_empty() {
                        fetcher.prefetch(rift.files_at(profile, fetch::PROFILE_MAX_SIZE));
                    }
                    if let Some(ring) = fetcher.ring_to_fetch(req.path2) {
                        fetcher.prefetch(rift.neighbours(
                            req.path2,
                            ring,
                            fetch::PREFETCH_MAX,
                            fetch::PREFETCH_MAX_SIZE,
                        ));
                    }
                    conn.parked = true;
                    return true;
                }
                Start::Answer(errno, why) => {
                    if !answer(conn, req.op, Answer::fail(errno, why)) {
                        return false;
                    }
                    continue;
                }
            }
        }
        conn.caller.asked_by(req.tid);
        let ans = answer_once(rift, &conn.caller, &req);
        let errno = ans.errno;
        if !answer(conn, req.op, ans) {
            return false;
        }
        if req.op == Op::Stop && errno == 0 {
            STOP.store(true, Ordering::Release);
            return false;
        }
    }
}

/// Sends the answer to a request of `op`, or keeps what the client's socket
/// cannot take now in `conn.out` (never waiting for a client). False: the
/// connection is lost.
pub(super) fn answer(conn: &mut Conn, op: Op, ans: Answer) -> bool {
    let Answer {
        errno,
        flags,
        a,
        b,
        data,
        fd,
    } = ans;
    // Sized to the reply: a whole-frame buffer would be zeroed per request.
    let mut out = vec![0u8; 64 + data.len()];
    let reply = Reply {
        op,
        errno,
        flags,
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
pub(super) fn flush(conn: &mut Conn) -> io::Result<bool> {
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
