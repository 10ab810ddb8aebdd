//! The requests a client sends, one handler per kind: checked (names,
//! lengths, confinement), answered once (a retry of a request a killed
//! daemon journaled is answered as done), journaled before the answer.

use std::os::fd::OwnedFd;

use vrift_format::proto::{Op, Request, REPLY_PASS};

use super::rift::{Caller, Errno, Rift};

/// A reply before it is encoded (see `vrift_format::proto`): errno (0:
/// done), flags (`REPLY_*`), `a`, `b`, data, and the fd sent with it.
pub(super) struct Answer {
    pub(super) errno: i32,
    pub(super) flags: u32,
    pub(super) a: u64,
    pub(super) b: u64,
    pub(super) data: Vec<u8>,
    pub(super) fd: Option<OwnedFd>,
}

impl Answer {
    pub(super) fn new(errno: i32, a: u64, b: u64, data: Vec<u8>, fd: Option<OwnedFd>) -> Answer {
        Answer {
            errno,
            flags: 0,
            a,
            b,
            data,
            fd,
        }
    }

    /// The request failed with `errno` (its message, if any, in data).
    pub(super) fn fail(errno: i32, data: Vec<u8>) -> Answer {
        Answer::new(errno, 0, 0, data, None)
    }
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
            Op::Ping | Op::Status | Op::Stop | Op::Seal | Op::FetchBlob | Op::OpenRead
        )
}

/// Answers a request, once: a retry of one that a killed daemon journaled
/// (its answer lost) is answered as done instead of being done again.
pub(super) fn answer_once(rift: &mut Rift, caller: &Caller, req: &Request<'_>) -> Answer {
    if !tracked(req) {
        return dispatch(rift, caller, req);
    }
    // mkdir/rmdir journal their id before they act on the disk (see
    // `Rift::journal_request_now`): a daemon killed in between left the
    // act undone, and the retry does it now.
    let undone = |rift: &Rift| match req.op {
        Op::Mkdir => !matches!(rift.node(req.path1), super::rift::Node::Dir),
        Op::Rmdir => matches!(rift.node(req.path1), super::rift::Node::Dir),
        _ => false,
    };
    if rift.done_before(req.c, req.op as u8) && !undone(rift) {
        // Rare (a daemon died with this request unanswered): worth a line.
        eprintln!(
            "vrift daemon: {:?} {} was done by the daemon before (its answer was lost): answered as done",
            req.op,
            crate::paths::display(req.path1)
        );
        if req.op == Op::Mknod {
            // The client binds a socket at the node it was given.
            return ok(rift.node_name(req.path1).unwrap_or_default());
        }
        if req.op != Op::OpenWrite {
            return Answer::new(0, 0, 0, Vec::new(), None);
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
    match rift.end_request(ans.errno == 0 && ans.flags == 0) {
        Ok(()) => ans,
        Err(e) => {
            eprintln!(
                "vrift daemon: {:?} {}: {e:#}",
                req.op,
                crate::paths::display(req.path1)
            );
            Answer::fail(libc::EIO, format!("{e:#}").into_bytes())
        }
    }
}

/// Checks a request (names, lengths, confinement), then runs its handler.
fn dispatch(rift: &mut Rift, caller: &Caller, req: &Request<'_>) -> Answer {
    let p1 = req.path1;
    let valid = |p: &[u8]| p.is_empty() || vrift_format::is_valid_rift_path(p);
    if !valid(p1) || (req.op != Op::Symlink && !valid(req.path2)) {
        return Answer::fail(libc::EINVAL, Vec::new());
    }
    // As the kernel: a name past NAME_MAX, a symlink target of PATH_MAX.
    let too_long = vrift_format::has_long_name(p1)
        || if req.op == Op::Symlink {
            req.path2.len() >= vrift_format::MAX_SYMLINK_TARGET
        } else {
            vrift_format::has_long_name(req.path2)
        };
    if too_long {
        return Answer::fail(libc::ENAMETOOLONG, Vec::new());
    }
    // Only inside the project, never through a symlink out of it.
    let second_is_path = matches!(req.op, Op::Rename | Op::Link);
    let confined = rift.confined(p1).and_then(|()| match second_is_path {
        true => rift.confined(req.path2),
        false => Ok(()),
    });
    if let Err(e) = confined {
        return Answer::fail(e, Vec::new());
    }
    if let Some(ans) = on_other_mount(rift, req) {
        return ans;
    }
    // A name made in a directory changes its times (see below).
    let creates = req.op == Op::OpenWrite
        && (req.a as i32) & libc::O_CREAT != 0
        && (req.a as i32) & libc::O_TMPFILE != libc::O_TMPFILE
        && matches!(rift.node(p1), super::rift::Node::Absent);
    // A caller of another uid: the kernel's checks, on the view (perm.rs).
    if let Err(e) = rift.permits(caller, req) {
        return match e {
            Errno::Posix(e) => Answer::fail(e, Vec::new()),
            _ => Answer::fail(libc::EIO, Vec::new()),
        };
    }
    let fresh = rift.creates(caller, req);
    let res = handler(req.op)(rift, caller, req);
    if matches!(&res, Ok(a) if a.errno == 0) {
        if let Some(rel) = &fresh {
            if let Err(e) = rift.own_created(caller, rel) {
                eprintln!(
                    "vrift daemon: cannot give {} to uid {}: {e:?}",
                    crate::paths::display(rel),
                    caller.uid
                );
            }
        }
        // The parent directories' mtime and ctime, as the kernel changes
        // them when a name is made or removed.
        match req.op {
            Op::Unlink | Op::Rmdir | Op::Mkdir | Op::Symlink | Op::Mknod | Op::LinkTmp => {
                rift.touch_parent(p1)
            }
            Op::Link => rift.touch_parent(req.path2),
            Op::Rename if p1 != req.path2 => {
                rift.touch_parent(p1);
                rift.touch_parent(req.path2);
            }
            Op::OpenWrite if creates => rift.touch_parent(p1),
            _ => {}
        }
    }
    match res {
        Ok(a) => a,
        Err(Errno::Posix(e)) => Answer::fail(e, Vec::new()),
        // A FIFO, socket or device: the client's libc acts on it.
        Err(Errno::Pass) => Answer {
            flags: REPLY_PASS,
            ..Answer::fail(0, Vec::new())
        },
        Err(Errno::Internal(e)) => {
            eprintln!(
                "vrift daemon: {:?} {}: {e:#}",
                req.op,
                crate::paths::display(p1)
            );
            Answer::fail(libc::EIO, format!("{e:#}").into_bytes())
        }
    }
}

/// Mounts: a filesystem mounted below the project (a tmpfs on `build/`, a
/// test's loop device) is not the project's, and the rift keeps none of
/// its files, as `find -xdev` or `rsync -x` would not cross into it. A
/// change there is passed back to the client's libc (the kernel's EROFS,
/// its own `st_dev`, its set-group-ID directories); a rename or link
/// between it and the project is the kernel's EXDEV. None: the request
/// is the rift's.
fn on_other_mount(rift: &Rift, req: &Request<'_>) -> Option<Answer> {
    let pass = || Answer {
        flags: REPLY_PASS,
        ..Answer::fail(0, Vec::new())
    };
    let other = |p: &[u8]| super::beneath::on_other_mount(rift.root(), p);
    match req.op {
        // Where the names are made decides (their directories), as in the
        // kernel: one on each side is EXDEV.
        Op::Rename | Op::Link => {
            let dir = |p: &[u8]| other(crate::paths::parent_rel(p));
            match (dir(req.path1), dir(req.path2)) {
                // Two mounts, or the same one: the kernel says which.
                (true, true) => Some(pass()),
                (false, false) => {
                    // A mount point itself (the kernel's EBUSY or EEXIST).
                    (other(req.path1) || other(req.path2)).then(pass)
                }
                _ => Some(Answer::fail(libc::EXDEV, Vec::new())),
            }
        }
        Op::OpenWrite
        | Op::Unlink
        | Op::Rmdir
        | Op::Mkdir
        | Op::Symlink
        | Op::Mknod
        | Op::Chmod
        | Op::Chown
        | Op::Utimes
        | Op::Truncate => other(req.path1).then(pass),
        // The file being named is the rift's.
        Op::LinkTmp => other(req.path1).then(|| Answer::fail(libc::EXDEV, Vec::new())),
        Op::Seal | Op::Ping | Op::Stop | Op::Status | Op::FetchBlob | Op::OpenRead => None,
    }
}

/// What a handler answers: the reply's errno, `a`, `b`, data and fd, or an
/// errno / internal failure that [`dispatch`] turns into one.
type Handled = Result<Answer, Errno>;

/// Answers a request of one kind (its paths checked by [`dispatch`]).
type Handler = fn(&mut Rift, &Caller, &Request<'_>) -> Handled;

/// The handler of each kind of request.
fn handler(op: Op) -> Handler {
    match op {
        Op::Ping => ping,
        Op::Status => status,
        Op::Stop => stop,
        Op::OpenWrite => open_write,
        Op::Unlink => unlink,
        Op::Rmdir => rmdir,
        Op::Mkdir => mkdir,
        Op::Rename => rename,
        Op::Symlink => symlink,
        Op::Mknod => mknod,
        Op::OpenRead => open_read,
        Op::Link => link,
        Op::Chmod => chmod,
        Op::Chown => chown,
        Op::Utimes => utimes,
        Op::Truncate => truncate,
        Op::Seal => seal,
        Op::LinkTmp => link_tmp,
        // Answered by the fetcher before dispatch.
        Op::FetchBlob => |_, _, _| Err(Errno::Posix(libc::EINVAL)),
    }
}

fn ok(data: Vec<u8>) -> Answer {
    Answer::new(0, 0, 0, data, None)
}

/// An answer that says only "done".
fn done(r: Result<(), Errno>) -> Handled {
    r.map(|()| ok(Vec::new()))
}

fn ping(_: &mut Rift, _: &Caller, _: &Request<'_>) -> Handled {
    Ok(ok(b"pong".to_vec()))
}

fn status(rift: &mut Rift, _: &Caller, _: &Request<'_>) -> Handled {
    Ok(ok(rift.status().into_bytes()))
}

fn stop(rift: &mut Rift, _: &Caller, _: &Request<'_>) -> Handled {
    rift.seal_idle();
    if rift.staged_count() > 0 {
        Ok(Answer::new(
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

fn open_write(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    rift.open_write(req.path1, req.a as i32, req.b as u32)
        .map(|o| Answer::new(0, o.ino, o.mode as u64, o.name, Some(o.fd)))
}

fn open_read(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    let fd = match req.b {
        vrift_format::proto::OPEN_READ_STAGING => rift.open_staging_path(req.path1),
        vrift_format::proto::OPEN_READ_TABLE => rift.open_table(),
        _ => rift.open_read(req.path1),
    };
    fd.map(|fd| Answer::new(0, 0, 0, Vec::new(), Some(fd)))
}

fn unlink(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.unlink(req.path1))
}

fn rmdir(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.rmdir(req.path1))
}

fn mkdir(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.mkdir(req.path1, req.a as u32))
}

fn rename(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.rename(req.path1, req.path2, req.a as u32))
}

fn symlink(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.symlink(req.path1, req.path2))
}

fn mknod(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    rift.mknod(req.path1, req.a as u32, req.b).map(ok)
}

fn link(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.link(req.path1, req.path2))
}

fn chmod(rift: &mut Rift, caller: &Caller, req: &Request<'_>) -> Handled {
    let mode = rift.chmod_mode(caller, req.path1, req.a as u32);
    done(rift.chmod(req.path1, mode))
}

fn chown(rift: &mut Rift, caller: &Caller, req: &Request<'_>) -> Handled {
    done(rift.chown(caller, req.path1, req.a as u32, req.b as u32))
}

fn utimes(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.utimes(req.path1, req.a, req.b))
}

fn truncate(rift: &mut Rift, caller: &Caller, req: &Request<'_>) -> Handled {
    done(rift.truncate(caller, req.path1, req.a))
}

fn seal(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    rift.seal_path(req.path1).map(ok)
}

fn link_tmp(rift: &mut Rift, _: &Caller, req: &Request<'_>) -> Handled {
    done(rift.link_tmp(req.path1, req.path2, req.a as u32))
}
