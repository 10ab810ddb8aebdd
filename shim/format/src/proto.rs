//! The daemon's wire protocol, shared by the shim (client) and `vrift
//! daemon` (server). Encoding and decoding work on caller-supplied buffers:
//! the shim encodes a request on its stack, never on the heap.
//!
//! # Frames (little endian)
//!
//! ```text
//! request:  len u32 | version u8 | op u8 | reserved u16
//!           | tid u32 | a u64 | b u64 | c u64 | path1 (u32 len, bytes) | path2 (u32 len, bytes)
//! reply:    len u32 | version u8 | op u8 | reserved u16
//!           | errno i32 | flags u32 | a u64 | b u64 | data (u32 len, bytes)
//! ```
//!
//! `len` counts the bytes after itself and is at most [`MAX_FRAME`]; a
//! frame whose version is not [`PROTO_VERSION`] is refused. Paths are rift
//! paths (relative to the project root), already resolved by the client.
//! An `OpenWrite` reply carries the opened file descriptor (SCM_RIGHTS).
//!
//! `tid` is the thread that asks (0: the process's main thread). The
//! daemon knows the asking process from the socket (`SO_PEERCRED`, which
//! also gives the asking thread's uid, gid and groups), not the thread;
//! the thread's capabilities are its own (a thread may drop them alone),
//! and the daemon reads them from `/proc/<pid>/task/<tid>`, a thread of
//! the asking process or none.
//!
//! `c` of a request that changes the rift is its request id: random, never
//! 0 (0: none), the same when a client asks again after its daemon died
//! without answering. A daemon that finds the id journaled by the one
//! before answers it as done instead of acting twice (the daemon's
//! journal.rs, "Request ids").
//!
//! | op | a | b | c | path1 | path2 | reply a / b / data |
//! |---|---|---|---|---|---|---|
//! | OpenWrite | open flags | mode (umask applied) | | path | | ino / mode / staging name |
//! | Unlink | | | | path | | |
//! | Rmdir | | | | path | | |
//! | Mkdir | mode (umask applied) | | | path | | |
//! | Rename | RENAME_* flags | | | old | new | |
//! | Symlink | | | | link path | target | |
//! | Link | | | | existing | new | |
//! | Chmod | mode | | | path | | |
//! | Chown | uid (u32::MAX: keep) | gid | | path | | |
//! | Utimes | atime ns | mtime ns | | path | | (see [`TIME_NOW`], [`TIME_OMIT`]) |
//! | Truncate | length | | | path | | |
//! | Seal | | | | path | | hash in data |
//! | LinkTmp | | | | new path | staging name | |
//! | Ping / Stop / Status | | | | | | text in data |
//! | Mknod | mode (type bits, umask applied) | rdev | | path | | node name in data |
//! | OpenRead | | 0, [`OPEN_READ_STAGING`] or [`OPEN_READ_TABLE`] | | path (a staging name; none) | | an fd of the content (O_RDONLY; O_PATH; the table) |
//! | FetchBlob | expected size ([`SIZE_UNKNOWN`]: unknown) | [`FETCH_DAMAGED`], [`FETCH_VERIFY`] or 0 | | hash (64 hex digits) | view path read (optional) | why, in data, on failure |
//!
//! `OpenRead` is asked by a process of the view whose credentials changed
//! (it cannot enter the private store any more): the daemon checks that
//! the caller may read the entry, as the kernel would, and sends an fd of
//! its content.
//!
//! `Mknod` makes a special file ([`crate::Kind::Special`]): for a FIFO or a
//! device the daemon makes the node itself; for a socket it only names one,
//! and the client's `bind` creates it at `<cas>/nodes/<name>` (a failed
//! bind unlinks the entry again).
//!
//! A reply's flags: [`REPLY_PASS`] (errno 0, nothing done) says the path
//! names a FIFO, socket or device of the disk, which the daemon does not
//! act on: the client makes the call through libc unchanged (`OpenWrite`).
//!
//! `FetchBlob` is sent only after a blob the view needs was not found in
//! the store (a snapshot pulled without `--eager`): the daemon fetches it
//! from the project's remotes, verified, and answers once it is in the
//! store (0) or with EIO and one line saying why. Never on the hot path.
//! Its path2, when not empty, is the view path the blob is read for: a
//! hint (the daemon prefetches the blobs of its neighbours), never trusted
//! for anything else. With [`FETCH_DAMAGED`] in b, the blob is in the
//! store but its size is not the expected one (a fetched blob that a power
//! loss cut short: on-demand fetches are not flushed one by one): the
//! daemon checks that itself, moves the blob to the store's quarantine and
//! fetches it again, when the project has a remote (else EIO and why).

pub const PROTO_VERSION: u8 = 2;

/// Largest frame accepted (bytes after the length word).
pub const MAX_FRAME: usize = 3 * 4096 + 64;

/// Request header: len, version, op, reserved.
pub const HEADER: usize = 8;

/// `Utimes` values meaning "now" and "leave unchanged" (UTIME_NOW/UTIME_OMIT).
pub const TIME_NOW: u64 = u64::MAX - 1;
pub const TIME_OMIT: u64 = u64::MAX;

/// Reply flag: the daemon did nothing; the client passes the call to libc
/// unchanged (the path is a FIFO, socket or device of the disk).
pub const REPLY_PASS: u32 = 1;

/// `FetchBlob`'s size when the client does not know it.
pub const SIZE_UNKNOWN: u64 = u64::MAX;

/// `FetchBlob`'s b: the store's copy of the blob has another size than
/// expected; replace it.
pub const FETCH_DAMAGED: u64 = 1;
/// `FetchBlob`'s b: the store's copy has the entry's size but not the
/// verified-once mark, and the project has `verify = true`: the daemon
/// hashes it and marks it if it is its name; otherwise the answer is EIO
/// and why (`vrift fsck` quarantines it; a remote then gives it again).
pub const FETCH_VERIFY: u64 = 2;

/// `OpenRead`'s b: path1 is the name of a staging file of the rift (a
/// file being written), and the answer an `O_PATH` fd of it, for `fstat`:
/// its size, times and set-ID bits, to a process that cannot reach the
/// private store (see the library's `creds`).
pub const OPEN_READ_STAGING: u64 = 1;
/// `OpenRead`'s b: no path; the answer is an fd of the project's current
/// hot table, for a process whose credentials changed (a table of a new
/// generation is a file it may not open).
pub const OPEN_READ_TABLE: u64 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Op {
    OpenWrite = 1,
    Unlink = 2,
    Rmdir = 3,
    Mkdir = 4,
    Rename = 5,
    Symlink = 6,
    Link = 7,
    Chmod = 8,
    Chown = 9,
    Utimes = 10,
    Truncate = 11,
    Seal = 12,
    LinkTmp = 13,
    Ping = 14,
    Stop = 15,
    Status = 16,
    FetchBlob = 17,
    Mknod = 18,
    OpenRead = 19,
}

impl Op {
    pub fn from_u8(v: u8) -> Option<Op> {
        use Op::*;
        Some(match v {
            1 => OpenWrite,
            2 => Unlink,
            3 => Rmdir,
            4 => Mkdir,
            5 => Rename,
            6 => Symlink,
            7 => Link,
            8 => Chmod,
            9 => Chown,
            10 => Utimes,
            11 => Truncate,
            12 => Seal,
            13 => LinkTmp,
            14 => Ping,
            15 => Stop,
            16 => Status,
            17 => FetchBlob,
            18 => Mknod,
            19 => OpenRead,
            _ => return None,
        })
    }
}

/// A decoded request, borrowing its paths from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub op: Op,
    /// The asking thread (0: the main thread; see the module doc).
    pub tid: u32,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub path1: &'a [u8],
    pub path2: &'a [u8],
}

impl Request<'static> {
    /// A request of `op` with no arguments and no paths, from the main
    /// thread (`Ping`, `Stop`, `Flush`…).
    pub const fn bare(op: Op) -> Request<'static> {
        Request {
            op,
            tid: 0,
            a: 0,
            b: 0,
            c: 0,
            path1: b"",
            path2: b"",
        }
    }
}

/// A decoded reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub op: Op,
    /// 0 on success, else the errno the call fails with.
    pub errno: i32,
    /// `REPLY_*` bits.
    pub flags: u32,
    pub a: u64,
    pub b: u64,
    pub data: &'a [u8],
}

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes are needed (only from [`frame_len`]).
    Incomplete,
    TooLong,
    BadVersion(u8),
    BadOp(u8),
    Malformed,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::Incomplete => f.write_str("incomplete frame"),
            FrameError::TooLong => write!(f, "frame longer than {MAX_FRAME} bytes"),
            FrameError::BadVersion(v) => {
                write!(
                    f,
                    "protocol version {v} (this daemon speaks {PROTO_VERSION})"
                )
            }
            FrameError::BadOp(o) => write!(f, "unknown operation {o}"),
            FrameError::Malformed => f.write_str("malformed frame"),
        }
    }
}

/// The total length (length word included) of the frame at the start of
/// `buf`, once its length word has arrived.
pub fn frame_len(buf: &[u8]) -> Result<usize, FrameError> {
    let Some(w) = buf.get(..4) else {
        return Err(FrameError::Incomplete);
    };
    let len = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong);
    }
    if len < HEADER - 4 {
        return Err(FrameError::Malformed);
    }
    Ok(len + 4)
}

struct Writer<'b> {
    buf: &'b mut [u8],
    n: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.n.checked_add(bytes.len())?;
        self.buf.get_mut(self.n..end)?.copy_from_slice(bytes);
        self.n = end;
        Some(())
    }

    fn bytes(&mut self, bytes: &[u8]) -> Option<()> {
        self.put(&(u32::try_from(bytes.len()).ok()?).to_le_bytes())?;
        self.put(bytes)
    }

    fn finish(self, op: Op) -> Option<usize> {
        let len = self.n - 4;
        if len > MAX_FRAME {
            return None;
        }
        self.buf[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[4] = PROTO_VERSION;
        self.buf[5] = op as u8;
        self.buf[6] = 0;
        self.buf[7] = 0;
        Some(self.n)
    }
}

struct Reader<'b> {
    buf: &'b [u8],
    n: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, k: usize) -> Result<&'b [u8], FrameError> {
        let end = self.n.checked_add(k).ok_or(FrameError::Malformed)?;
        let s = self.buf.get(self.n..end).ok_or(FrameError::Malformed)?;
        self.n = end;
        Ok(s)
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn bytes(&mut self) -> Result<&'b [u8], FrameError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Checks the header of a whole frame and returns its op and body.
fn open_frame(frame: &[u8]) -> Result<(Op, Reader<'_>), FrameError> {
    let total = frame_len(frame)?;
    if frame.len() != total {
        return Err(FrameError::Malformed);
    }
    if frame[4] != PROTO_VERSION {
        return Err(FrameError::BadVersion(frame[4]));
    }
    let op = Op::from_u8(frame[5]).ok_or(FrameError::BadOp(frame[5]))?;
    Ok((
        op,
        Reader {
            buf: frame,
            n: HEADER,
        },
    ))
}

/// Encodes a request into `buf`; returns the frame length, or None if it
/// does not fit (paths longer than the protocol allows).
pub fn encode_request(buf: &mut [u8], req: &Request<'_>) -> Option<usize> {
    let mut w = Writer { buf, n: HEADER };
    w.put(&req.tid.to_le_bytes())?;
    w.put(&req.a.to_le_bytes())?;
    w.put(&req.b.to_le_bytes())?;
    w.put(&req.c.to_le_bytes())?;
    w.bytes(req.path1)?;
    w.bytes(req.path2)?;
    w.finish(req.op)
}

/// Decodes one whole request frame.
pub fn decode_request(frame: &[u8]) -> Result<Request<'_>, FrameError> {
    let (op, mut r) = open_frame(frame)?;
    let req = Request {
        op,
        tid: r.u32()?,
        a: r.u64()?,
        b: r.u64()?,
        c: r.u64()?,
        path1: r.bytes()?,
        path2: r.bytes()?,
    };
    if r.n != frame.len() {
        return Err(FrameError::Malformed);
    }
    Ok(req)
}

/// Encodes a reply into `buf`.
pub fn encode_reply(buf: &mut [u8], reply: &Reply<'_>) -> Option<usize> {
    let mut w = Writer { buf, n: HEADER };
    w.put(&reply.errno.to_le_bytes())?;
    w.put(&reply.flags.to_le_bytes())?;
    w.put(&reply.a.to_le_bytes())?;
    w.put(&reply.b.to_le_bytes())?;
    w.bytes(reply.data)?;
    w.finish(reply.op)
}

/// Decodes one whole reply frame.
pub fn decode_reply(frame: &[u8]) -> Result<Reply<'_>, FrameError> {
    let (op, mut r) = open_frame(frame)?;
    let errno = r.u32()? as i32;
    let flags = r.u32()?;
    let reply = Reply {
        op,
        errno,
        flags,
        a: r.u64()?,
        b: r.u64()?,
        data: r.bytes()?,
    };
    if r.n != frame.len() {
        return Err(FrameError::Malformed);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let mut buf = [0u8; 256];
        let req = Request {
            op: Op::Rename,
            tid: 7,
            a: 1,
            b: 2,
            c: 3,
            path1: b"a/b",
            path2: b"c\xff",
        };
        let n = encode_request(&mut buf, &req).unwrap();
        assert_eq!(frame_len(&buf[..n]), Ok(n));
        assert_eq!(decode_request(&buf[..n]), Ok(req));
        let reply = Reply {
            op: Op::OpenWrite,
            errno: 17,
            flags: REPLY_PASS,
            a: 9,
            b: 0o100644,
            data: b"stage.1",
        };
        let n = encode_reply(&mut buf, &reply).unwrap();
        assert_eq!(decode_reply(&buf[..n]), Ok(reply));
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut buf = [0u8; 256];
        let req = Request::bare(Op::Ping);
        let n = encode_request(&mut buf, &req).unwrap();
        let mut v = buf;
        v[4] = 9;
        assert_eq!(decode_request(&v[..n]), Err(FrameError::BadVersion(9)));
        let mut v = buf;
        v[5] = 200;
        assert_eq!(decode_request(&v[..n]), Err(FrameError::BadOp(200)));
        assert_eq!(decode_request(&buf[..n - 1]), Err(FrameError::Malformed));
        let huge = (MAX_FRAME as u32 + 1).to_le_bytes();
        assert_eq!(frame_len(&huge), Err(FrameError::TooLong));
        // A path length that points past the frame.
        let mut v = buf;
        v[HEADER + 4 + 24] = 200; // past tid, a, b, c: path1's length
        assert_eq!(decode_request(&v[..n]), Err(FrameError::Malformed));
        let long = [b'x'; MAX_FRAME];
        let big = Request {
            path1: &long,
            ..req
        };
        let mut large = [0u8; MAX_FRAME + 256];
        assert_eq!(encode_request(&mut large, &big), None);
    }
}
