//! Who may do what: the kernel's permission rules applied to the view.
//!
//! The daemon acts with its own credentials, so the disk's checks never
//! see the caller's. Every caller — the daemon's own user, root, and a
//! process of the view that changed its credentials (`setuid`, `seteuid`,
//! `setgroups`: a test harness, a build dropping root) and still holds the
//! way to the daemon's socket (the library keeps it across the change) —
//! has every operation it asks checked here first, on the view's metadata
//! (rift records and physical directories alike), as `inode_permission`,
//! `may_create`, `may_delete` (with the sticky bit), `chown_ok`,
//! `chgrp_ok` and `setattr_prepare` would: a file made read-only is
//! read-only in the view too. Where the mode bits or the ownership refuse,
//! the caller's capabilities decide as the kernel's `capable()` would
//! (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_CHOWN,
//! CAP_FSETID, CAP_MKNOD): a root process that dropped one (a test suite
//! checking its refusals, a hardened service) is refused as on disk. The
//! capabilities are the asking thread's (a thread may change its own
//! credentials alone: `syscall(SYS_setuid, …)`, `capset`), read only then
//! (`/proc/PID/task/TID/status`), so a caller the bits allow pays nothing
//! for them. For another user than the daemon's
//! and root, the directories on the way are checked for search as well,
//! and what it creates is its own.

use std::cell::OnceCell;

use vrift_format::proto::{Op, Request, TIME_NOW, TIME_OMIT};

use super::*;

/// The caller of an operation: its pid, effective ids and supplementary
/// groups when it connected (`SO_PEERCRED`, `SO_PEERGROUPS`; the library
/// connects once per request, so these are its credentials at the
/// request), and its effective capabilities once a check needs them.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Neither root nor the daemon's own user: what it creates is its
    /// own, and the directories on the way are checked for search.
    pub foreign: bool,
    /// The thread that asks, as the request says (0: the main thread). A
    /// client naming another thread of its own process gains nothing: its
    /// threads share one address space and can make each other ask.
    tid: u32,
    /// `CapEff` of the asking thread, read the first time a check would
    /// refuse.
    caps: OnceCell<u64>,
}

/// Capability numbers (linux/capability.h).
pub const CAP_CHOWN: u32 = 0;
pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_FSETID: u32 = 4;
pub const CAP_MKNOD: u32 = 27;

/// The effective capabilities of thread `tid` of process `pid` (0: its
/// main thread), from `/proc`; none if `tid` is not a thread of `pid`.
/// A thread in another user namespace than the daemon's (`unshare
/// CLONE_NEWUSER`: all capabilities, in that namespace) holds none here:
/// the kernel grants them only over inodes whose owner the namespace maps,
/// which a fresh namespace does not (a rootless container's root over its
/// user's files is refused too; README, "Conformance").
fn effective_caps(pid: i32, tid: u32) -> Option<u64> {
    let task = match tid {
        0 => format!("/proc/{pid}"),
        _ => format!("/proc/{pid}/task/{tid}"),
    };
    let status = fs::read_to_string(format!("{task}/status")).ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let caps = u64::from_str_radix(hex.trim(), 16).ok()?;
    let ns = |p: &str| fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    match ns(&format!("{task}/ns/user")) == ns("/proc/self/ns/user") {
        true => Some(caps),
        false => Some(0),
    }
}

const MAY_EXEC: u32 = 1;
const MAY_WRITE: u32 = 2;
const MAY_READ: u32 = 4;

/// An inode's owner and mode, as permission checks read them.
#[derive(Clone, Copy, Debug)]
struct Owned {
    mode: u32,
    uid: u32,
    gid: u32,
    dir: bool,
}

impl Caller {
    /// A caller of these ids (its groups and capabilities read from the
    /// socket and `/proc` by the server).
    pub fn new(pid: i32, uid: u32, gid: u32, groups: Vec<u32>, foreign: bool) -> Caller {
        Caller {
            pid,
            uid,
            gid,
            groups,
            foreign,
            tid: 0,
            caps: OnceCell::new(),
        }
    }

    /// The thread a request comes from (its capabilities are its own).
    pub fn asked_by(&mut self, tid: u32) {
        if tid != self.tid {
            self.tid = tid;
            self.caps = OnceCell::new();
        }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// `capable(cap)`. A process whose status cannot be read (gone, or
    /// `/proc` hidden) is taken to have root's usual capabilities if its
    /// uid is 0 and none otherwise.
    pub fn capable(&self, cap: u32) -> bool {
        let caps = *self.caps.get_or_init(|| {
            effective_caps(self.pid, self.tid).unwrap_or(match self.uid {
                0 => u64::MAX,
                _ => 0,
            })
        });
        caps & (1 << cap) != 0
    }

    /// `generic_permission`: the owner's, group's or others' bits, then
    /// CAP_DAC_OVERRIDE (for execute only where some execute bit is set,
    /// or on a directory) and CAP_DAC_READ_SEARCH (reading, and searching
    /// a directory).
    fn may(&self, o: &Owned, want: u32) -> bool {
        let bits = if self.uid == o.uid {
            o.mode >> 6
        } else if self.in_group(o.gid) {
            o.mode >> 3
        } else {
            o.mode
        } & 7;
        if bits & want == want {
            return true;
        }
        let exec_ok = want & MAY_EXEC == 0 || o.dir || o.mode & 0o111 != 0;
        if exec_ok && self.capable(CAP_DAC_OVERRIDE) {
            return true;
        }
        let read_search = match o.dir {
            true => MAY_READ | MAY_EXEC,
            false => MAY_READ,
        };
        want & !read_search == 0 && self.capable(CAP_DAC_READ_SEARCH)
    }

    /// `inode_owner_or_capable`.
    fn owns_or_fowner(&self, o: &Owned) -> bool {
        self.uid == o.uid || self.capable(CAP_FOWNER)
    }

    /// Neither root nor the daemon's own user.
    pub fn is_foreign(&self) -> bool {
        self.foreign
    }
}

impl Rift {
    /// The owner and mode of what `rel` names in the view (None: nothing,
    /// or not something a permission check reads: the op answers).
    fn owned(&self, rel: &[u8]) -> Option<Owned> {
        let of_meta = |m: &fs::Metadata| Owned {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            dir: m.is_dir(),
        };
        match self.node(rel) {
            Node::Dir => beneath::lstat(self.root(), rel).ok().map(|m| of_meta(&m)),
            Node::Phys(m) => Some(of_meta(&m)),
            Node::Entry(h, _) => {
                let root = || fs::metadata(self.root()).ok();
                let uid = match h.uid {
                    OWNER_INHERIT => root()?.uid(),
                    u => u,
                };
                let gid = match h.gid {
                    OWNER_INHERIT => root()?.gid(),
                    g => g,
                };
                Some(Owned {
                    mode: h.mode & 0o7777,
                    uid,
                    gid,
                    dir: false,
                })
            }
            _ => None,
        }
    }

    /// Search permission on every directory on the way to `rel` (the
    /// project root's own ancestors included), in order; a missing or
    /// non-directory component ends the walk (the operation answers
    /// ENOENT or ENOTDIR, as the kernel's lookup would before any check
    /// further on).
    fn may_reach(&self, caller: &Caller, rel: &[u8]) -> OpResult<()> {
        // The daemon's own user and root reached the project's
        // directories through the kernel's lookups (the library's), and the
        // walk costs a stat per component: only for another user. The
        // last directory is still checked (one stat): the library finds
        // the name in its table, not through that directory, and a name
        // in a directory the caller may not search is EACCES before it is
        // EEXIST or anything else (gVisor's DirAlreadyExists).
        if !caller.is_foreign() {
            let parent = parent_rel(rel);
            if parent.is_empty() || parent.len() == rel.len() {
                return Ok(());
            }
            return match self.owned(parent) {
                Some(o) if o.dir && !caller.may(&o, MAY_EXEC) => posix(libc::EACCES),
                _ => Ok(()),
            };
        }
        for anc in self
            .root()
            .ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let Ok(m) = fs::metadata(anc) else { break };
            let o = Owned {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                dir: true,
            };
            if !caller.may(&o, MAY_EXEC) {
                return posix(libc::EACCES);
            }
        }
        for (i, _) in rel.iter().enumerate().filter(|(_, &c)| c == b'/') {
            match self.owned(&rel[..i]) {
                Some(o) if o.dir => {
                    if !caller.may(&o, MAY_EXEC) {
                        return posix(libc::EACCES);
                    }
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// `may_create`: write and search on the parent, once the name is free
    /// (a name that exists is the operation's EEXIST, checked first by the
    /// kernel's lookup).
    fn may_create(&self, caller: &Caller, rel: &[u8]) -> OpResult<()> {
        self.may_reach(caller, rel)?;
        if self.node(rel).exists() {
            return Ok(());
        }
        match self.owned(parent_rel(rel)) {
            Some(p) if p.dir && !caller.may(&p, MAY_WRITE | MAY_EXEC) => posix(libc::EACCES),
            _ => Ok(()),
        }
    }

    /// `may_delete`: write and search on the parent, and in a sticky
    /// directory only the owner of the entry or of the directory.
    fn may_delete(&self, caller: &Caller, rel: &[u8]) -> OpResult<()> {
        self.may_reach(caller, rel)?;
        let (Some(p), Some(victim)) = (self.owned(parent_rel(rel)), self.owned(rel)) else {
            return Ok(());
        };
        if !p.dir {
            return Ok(());
        }
        if !caller.may(&p, MAY_WRITE | MAY_EXEC) {
            return posix(libc::EACCES);
        }
        if p.mode & libc::S_ISVTX != 0
            && caller.uid != victim.uid
            && caller.uid != p.uid
            && !caller.capable(CAP_FOWNER)
        {
            return posix(libc::EPERM);
        }
        Ok(())
    }

    /// Whether `caller` may ask `req` of the view: Ok, or the errno the
    /// kernel would give it.
    pub fn permits(&self, caller: &Caller, req: &Request<'_>) -> OpResult<()> {
        let owner_only = |rel: &[u8]| -> OpResult<Option<Owned>> {
            self.may_reach(caller, rel)?;
            match self.owned(rel) {
                Some(o) if !caller.owns_or_fowner(&o) => posix(libc::EPERM),
                o => Ok(o),
            }
        };
        match req.op {
            Op::OpenWrite => {
                let flags = req.a as i32;
                if flags & libc::O_TMPFILE == libc::O_TMPFILE {
                    // The directory gets an unnamed file: write and search.
                    self.may_reach(caller, req.path1)?;
                    return match self.owned(req.path1) {
                        Some(d) if d.dir && !caller.may(&d, MAY_WRITE | MAY_EXEC) => {
                            posix(libc::EACCES)
                        }
                        _ => Ok(()),
                    };
                }
                self.may_reach(caller, req.path1)?;
                match self.owned(req.path1) {
                    Some(o) if !o.dir => {
                        let mut want = match flags & libc::O_ACCMODE {
                            libc::O_RDONLY => MAY_READ,
                            libc::O_WRONLY => MAY_WRITE,
                            _ => MAY_READ | MAY_WRITE,
                        };
                        // O_TRUNC writes, whatever the access mode says.
                        if flags & libc::O_TRUNC != 0 {
                            want |= MAY_WRITE;
                        }
                        let excl =
                            flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL;
                        if !excl && !caller.may(&o, want) {
                            return posix(libc::EACCES);
                        }
                        Ok(())
                    }
                    Some(_) => Ok(()),
                    None if flags & libc::O_CREAT != 0 => self.may_create(caller, req.path1),
                    None => Ok(()),
                }
            }
            // A staging file's metadata (its name is no path: see
            // `open_staging_path`), the table the caller mapped before.
            Op::OpenRead
                if req.b == vrift_format::proto::OPEN_READ_STAGING
                    || req.b == vrift_format::proto::OPEN_READ_TABLE =>
            {
                Ok(())
            }
            Op::OpenRead => {
                self.may_reach(caller, req.path1)?;
                match self.owned(req.path1) {
                    Some(o) if !caller.may(&o, MAY_READ) => posix(libc::EACCES),
                    _ => Ok(()),
                }
            }
            Op::Truncate => {
                self.may_reach(caller, req.path1)?;
                match self.owned(req.path1) {
                    Some(o) if !o.dir && !caller.may(&o, MAY_WRITE) => posix(libc::EACCES),
                    _ => Ok(()),
                }
            }
            Op::Mknod => {
                self.may_create(caller, req.path1)?;
                // A device node needs CAP_MKNOD (mknod07).
                let kind = req.a as u32 & libc::S_IFMT;
                let device = kind == libc::S_IFCHR || kind == libc::S_IFBLK;
                match device && !self.node(req.path1).exists() && !caller.capable(CAP_MKNOD) {
                    true => posix(libc::EPERM),
                    false => Ok(()),
                }
            }
            Op::Mkdir | Op::Symlink => self.may_create(caller, req.path1),
            Op::LinkTmp => self.may_create(caller, req.path1),
            Op::Unlink | Op::Rmdir => self.may_delete(caller, req.path1),
            Op::Link => {
                self.may_reach(caller, req.path1)?;
                self.may_create(caller, req.path2)?;
                // fs.protected_hardlinks: linking another's file needs a
                // regular, non-set-ID file the caller may read and write.
                match self.owned(req.path1) {
                    Some(o) if !o.dir && !caller.owns_or_fowner(&o) => {
                        let set_id = o.mode & libc::S_ISUID != 0
                            || o.mode & (libc::S_ISGID | 0o010) == libc::S_ISGID | 0o010;
                        let regular = matches!(self.node(req.path1),
                            Node::Entry(h, _) if h.kind == Kind::File)
                            || matches!(self.node(req.path1),
                            Node::Phys(m) if m.file_type().is_file());
                        if set_id || !regular || !caller.may(&o, MAY_READ | MAY_WRITE) {
                            return posix(libc::EPERM);
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            Op::Rename => {
                let (old, new) = (req.path1, req.path2);
                self.may_delete(caller, old)?;
                let exchange = req.a as u32 & libc::RENAME_EXCHANGE != 0;
                if self.node(new).exists() {
                    self.may_delete(caller, new)?;
                } else if !exchange {
                    self.may_create(caller, new)?;
                }
                // A directory moved to another parent has its `..`
                // rewritten: write permission on it.
                if parent_rel(old) != parent_rel(new) {
                    for moved in [Some(old), exchange.then_some(new)].into_iter().flatten() {
                        match self.owned(moved) {
                            Some(o) if o.dir && !caller.may(&o, MAY_WRITE) => {
                                return posix(libc::EACCES)
                            }
                            _ => {}
                        }
                    }
                }
                Ok(())
            }
            Op::Chmod => owner_only(req.path1).map(drop),
            Op::Chown => {
                self.may_reach(caller, req.path1)?;
                let Some(o) = self.owned(req.path1) else {
                    return Ok(());
                };
                let (uid, gid) = (req.a as u32, req.b as u32);
                // chown_ok: only "no change" of the owner; chgrp_ok: the
                // owner, to a group of theirs.
                let uid_ok = uid == u32::MAX || (uid == o.uid && caller.uid == o.uid);
                let gid_ok = gid == u32::MAX
                    || (caller.uid == o.uid && (gid == o.gid || caller.in_group(gid)));
                match (uid_ok && gid_ok) || caller.capable(CAP_CHOWN) {
                    true => Ok(()),
                    false => posix(libc::EPERM),
                }
            }
            Op::Utimes => {
                self.may_reach(caller, req.path1)?;
                let Some(o) = self.owned(req.path1) else {
                    return Ok(());
                };
                if caller.owns_or_fowner(&o) {
                    return Ok(());
                }
                // Explicit times: the owner only. "Now" (both, or one
                // and the other omitted): the owner or a writer.
                let now_only = [req.a, req.b]
                    .iter()
                    .all(|&t| t == TIME_NOW || t == TIME_OMIT);
                match now_only {
                    true if caller.may(&o, MAY_WRITE) => Ok(()),
                    true => posix(libc::EACCES),
                    false => posix(libc::EPERM),
                }
            }
            // Stopping the daemon is its owner's (and root's).
            Op::Stop if caller.is_foreign() => posix(libc::EPERM),
            _ => Ok(()),
        }
    }

    /// The mode a chmod of `rel` to `mode` sets: set-group-ID dropped
    /// when the caller is neither in the file's group nor holds
    /// CAP_FSETID (`setattr_prepare`).
    pub fn chmod_mode(&self, caller: &Caller, rel: &[u8], mode: u32) -> u32 {
        match self.owned(rel) {
            Some(o) if !caller.in_group(o.gid) && !caller.capable(CAP_FSETID) => {
                mode & !libc::S_ISGID
            }
            _ => mode,
        }
    }

    /// The name `req` would create, if it is free now and its creator is
    /// not who a new entry's owner defaults to (the project root's owner:
    /// `OWNER_INHERIT`): a foreign caller, root in another user's project,
    /// a process whose group changed (`setgid`). After the request,
    /// [`Rift::own_created`] gives it to its creator.
    pub fn creates(&self, caller: &Caller, req: &Request<'_>) -> Option<Vec<u8>> {
        let rel = match req.op {
            Op::OpenWrite
                if req.a as i32 & libc::O_CREAT != 0
                    && req.a as i32 & libc::O_TMPFILE != libc::O_TMPFILE =>
            {
                req.path1
            }
            Op::Mkdir | Op::Symlink | Op::Mknod | Op::LinkTmp => req.path1,
            _ => return None,
        };
        let root = fs::metadata(self.root()).ok()?;
        let defaults = caller.uid == root.uid() && caller.gid == root.gid();
        (caller.is_foreign() || !defaults)
            .then_some(())
            .filter(|()| !self.node(rel).exists())
            .map(|()| rel.to_vec())
    }

    /// Makes `rel`, which the request of `caller` just created, its
    /// creator's (`inode_init_owner`): its uid, and its gid unless the
    /// parent directory is set-group-ID (ids equal to the project root's
    /// owner's stay `OWNER_INHERIT`).
    pub fn own_created(&mut self, caller: &Caller, rel: &[u8]) -> OpResult<()> {
        let root = fs::metadata(self.root())?;
        let uid = match caller.uid == root.uid() {
            true => OWNER_INHERIT,
            false => caller.uid,
        };
        let gid = match self.new_entry_gid(rel) {
            OWNER_INHERIT if caller.gid == root.gid() => OWNER_INHERIT,
            OWNER_INHERIT => caller.gid,
            g => g,
        };
        match self.node(rel) {
            // Directories are physical: chowned as the kernel would have
            // made them, where the daemon may (it must, to serve a
            // foreign caller: it runs as root then).
            Node::Dir => {
                let res = beneath::lchown(self.root(), rel, caller.uid, gid_or(gid, &root));
                if caller.is_foreign() {
                    res?;
                }
            }
            Node::Entry(mut h, target) if (h.uid, h.gid) != (uid, gid) => {
                h.uid = uid;
                h.gid = gid;
                self.set(rel, encode(&h, &target))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A record's group as an id (`OWNER_INHERIT`: the project root's).
fn gid_or(gid: u32, root: &fs::Metadata) -> u32 {
    match gid {
        OWNER_INHERIT => root.gid(),
        g => g,
    }
}
