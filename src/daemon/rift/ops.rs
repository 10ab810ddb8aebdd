//! The operations on the view that are not opens or renames: unlink,
//! mkdir, rmdir, symlink, link and the metadata changes, with the errno a
//! normal Linux filesystem would give.

use super::staging::open_phys_regular;
use super::*;

impl Rift {
    /// A sealed record of the physical file at `rel` (copied into the CAS).
    pub(super) fn copy_up(&mut self, rel: &[u8], m: &fs::Metadata) -> OpResult<RecordHeader> {
        let (kind, hash, target) = if m.file_type().is_symlink() {
            let t = beneath::read_link(self.root(), rel)?;
            (
                Kind::Symlink,
                ContentHash::default(),
                t.as_os_str().as_bytes().to_vec(),
            )
        } else {
            // A FIFO, socket or device is metadata, never content: opening a
            // FIFO would block the daemon, and a device may never end.
            if !m.file_type().is_file() {
                return posix(libc::EOPNOTSUPP);
            }
            let mut f = open_phys_regular(self.project.root(), rel)?;
            let _gc = self.cas.gc_lock(LockMode::Shared)?;
            let (hash, _) = self.cas.put_reader(&mut f)?;
            (Kind::File, hash, Vec::new())
        };
        let h = RecordHeader {
            kind,
            flags: 0,
            mode: m.mode(),
            size: if kind == Kind::Symlink {
                target.len() as u64
            } else {
                m.len()
            },
            mtime_ns: mtime_ns(m),
            ino: self.alloc_ino()?,
            hash,
            uid: OWNER_INHERIT,
            gid: OWNER_INHERIT,
            atime_ns: atime_ns(m),
            ctime_ns: ctime_ns(m),
            links: 0,
        };
        let _ = target;
        Ok(h)
    }

    /// The record of a non-directory in the view, copied up from the disk
    /// if needed (with its symlink target).
    pub(super) fn entry_of(
        &mut self,
        rel: &[u8],
        node: &Node,
    ) -> OpResult<(RecordHeader, Vec<u8>)> {
        match node {
            Node::Entry(h, t) => Ok((*h, t.clone())),
            Node::Phys(m) => {
                let h = self.copy_up(rel, m)?;
                let target = if h.kind == Kind::Symlink {
                    beneath::read_link(self.root(), rel)?
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                } else {
                    Vec::new()
                };
                Ok((h, target))
            }
            Node::Dir => posix(libc::EISDIR),
            Node::NotDir => posix(libc::ENOTDIR),
            Node::Absent => posix(libc::ENOENT),
        }
    }

    pub fn unlink(&mut self, rel: &[u8]) -> OpResult<()> {
        match self.node(rel) {
            Node::Absent => posix(libc::ENOENT),
            Node::NotDir => posix(libc::ENOTDIR),
            Node::Dir => posix(libc::EISDIR),
            Node::Entry(h, t) => {
                self.delete(rel)?;
                // Its other names (hard links) stay, one name less.
                self.name_removed(rel, &h, &t)?;
                Ok(())
            }
            Node::Phys(_) => {
                self.delete(rel)?;
                Ok(())
            }
        }
    }

    pub fn mkdir(&mut self, rel: &[u8], mode: u32) -> OpResult<()> {
        match self.node(rel) {
            Node::NotDir => return posix(libc::ENOTDIR),
            Node::Absent => {}
            _ => return posix(libc::EEXIST),
        }
        self.check_parent(rel)?;
        let physical = beneath::lstat(self.root(), rel).ok();
        let flags = self.dir_flags(rel);
        match physical {
            Some(m) if m.is_dir() => {
                // Hidden by a whiteout (or an opaque parent): it comes back
                // empty, its old content stays hidden. It is not marked as
                // created: the disk had it before the rift, so no discard
                // or rmdir may ever remove it (only a directory the rift
                // made keeps `DIR_CREATED` from before).
                if matches!(self.table().lookup(rel), Some(RecordRef::Whiteout)) {
                    self.record(vec![Change::Remove(rel.to_vec())])?;
                }
                self.set_dir(rel, flags | DIR_OPAQUE)?;
                beneath::chmod(self.root(), rel, mode)?;
                self.dir_mode_set(mode)?;
            }
            Some(_) => {
                // A hidden physical file stands there: the directory cannot
                // be made on disk.
                return posix(libc::EEXIST);
            }
            None => {
                // Journaled before the directory is made (see
                // `journal_request_now`), undone if it cannot be.
                let whiteout = matches!(self.table().lookup(rel), Some(RecordRef::Whiteout));
                if whiteout {
                    self.record(vec![Change::Remove(rel.to_vec())])?;
                }
                self.set_dir(rel, flags | DIR_CREATED)?;
                self.journal_request_now()?;
                crate::failpoint::hit("mkdir.journaled");
                // The daemon's umask is 0: the client applied its own.
                if let Err(e) = beneath::mkdir(self.root(), rel, mode & 0o7777) {
                    let mut undo = vec![Change::Dir(rel.to_vec(), flags)];
                    if whiteout {
                        undo.push(Change::Set(rel.to_vec(), WHITEOUT_RECORD.to_vec()));
                    }
                    self.record(undo)?;
                    return Err(e.into());
                }
                self.dir_mode_set(mode)?;
            }
        }
        Ok(())
    }

    /// A directory got `mode`: one without its owner's search bit makes
    /// every process check search permission on the way to rift entries
    /// from now on (the kernel would, for its files; the library reads
    /// rift entries from the table, without a walk to check it).
    fn dir_mode_set(&mut self, mode: u32) -> Result<()> {
        if mode & 0o100 == 0 && !self.table().closed_dirs() {
            crate::table::mark_closed_dirs(&self.project)?;
            self.table.set_closed_dirs();
        }
        Ok(())
    }

    pub fn rmdir(&mut self, rel: &[u8]) -> OpResult<()> {
        if rel.is_empty() {
            return posix(libc::EBUSY);
        }
        match self.node(rel) {
            Node::Dir => {}
            Node::Absent => return posix(libc::ENOENT),
            _ => return posix(libc::ENOTDIR),
        }
        if !self.is_empty_dir(rel) {
            return posix(libc::ENOTEMPTY);
        }
        self.remove_dir_in_view(rel, true)?;
        Ok(())
    }

    /// Removes an empty-in-view directory: from the disk if the rift made it
    /// and nothing physical is left in it, else by a whiteout.
    /// `own_request`: the removal is the request itself (rmdir), whose id is
    /// journaled before the directory goes (not a rename over it, whose
    /// retry finds the directory gone and simply moves).
    pub(super) fn remove_dir_in_view(&mut self, rel: &[u8], own_request: bool) -> Result<()> {
        // The records below (whiteouts of what was deleted) go with it.
        let below: Vec<Vec<u8>> = self.records_under(rel);
        let mut changes: Vec<Change> = below.into_iter().map(Change::Remove).collect();
        let flags = self.dir_flags(rel);
        let path = self.disk(rel);
        let physically_empty = beneath::read_dir(self.root(), rel)
            .map(|d| d.is_empty())
            .unwrap_or(false);
        if flags & DIR_CREATED != 0 && physically_empty && self.phantom(rel)?.is_none() {
            // The id first (see `journal_request_now`): a daemon killed
            // after the removal and before the changes below leaves a mark
            // and whiteouts for a directory that is gone, which the view
            // does not show (directories are physical).
            if own_request {
                self.journal_request_now()?;
                crate::failpoint::hit("rmdir.journaled");
            }
            beneath::rmdir(self.root(), rel)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            changes.push(Change::Dir(rel.to_vec(), 0));
            self.record(changes)?;
            if matches!(self.table().lookup(rel), Some(RecordRef::Whiteout)) {
                self.record(vec![Change::Remove(rel.to_vec())])?;
            }
        } else {
            // Hidden, no longer opaque. A directory the rift made keeps
            // its mark (a discard may still remove it); one the disk had
            // never gets it, so vrift never removes it.
            if flags & !DIR_CREATED != 0 {
                changes.push(Change::Dir(rel.to_vec(), flags & DIR_CREATED));
            }
            changes.push(Change::Set(rel.to_vec(), WHITEOUT_RECORD.to_vec()));
            self.record(changes)?;
        }
        Ok(())
    }

    /// Paths of the records (and marked directories) strictly below `rel`.
    pub(super) fn records_under(&self, rel: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut stack = vec![rel.to_vec()];
        let t = self.table();
        while let Some(d) = stack.pop() {
            if let Some(dir) = t.dir(&d) {
                for (name, _) in dir.children() {
                    let child = join_rel(&d, name);
                    stack.push(child.clone());
                    out.push(child);
                }
            }
        }
        out
    }

    /// The header of a new symlink or special file at `rel`, made now: a
    /// fresh inode, the group a new entry gets there, and the hides-a-
    /// directory flag when the disk has a directory at `rel`.
    fn new_header(&mut self, rel: &[u8], kind: Kind, mode: u32, size: u64) -> Result<RecordHeader> {
        let hides = beneath::lstat(self.root(), rel).is_ok_and(|m| m.is_dir());
        let now = now_ns();
        Ok(RecordHeader {
            kind,
            flags: if hides { FLAG_HIDES_DIR } else { 0 },
            mode,
            size,
            mtime_ns: now,
            ino: self.alloc_ino()?,
            hash: ContentHash::default(),
            uid: OWNER_INHERIT,
            gid: self.new_entry_gid(rel),
            atime_ns: now,
            ctime_ns: now,
            links: 0,
        })
    }

    pub fn symlink(&mut self, rel: &[u8], target: &[u8]) -> OpResult<()> {
        if self.node(rel).exists() {
            return posix(libc::EEXIST);
        }
        self.check_parent(rel)?;
        let h = self.new_header(
            rel,
            Kind::Symlink,
            libc::S_IFLNK | 0o777,
            target.len() as u64,
        )?;
        self.set(rel, encode(&h, target))?;
        Ok(())
    }

    /// Sets metadata of a view entry, copying a physical file up first.
    pub(super) fn update_entry(
        &mut self,
        rel: &[u8],
        f: impl FnOnce(&mut RecordHeader),
    ) -> OpResult<()> {
        let node = self.node(rel);
        let (mut h, target) = self.entry_of(rel, &node)?;
        f(&mut h);
        // Every change of an entry's metadata is a change of its inode
        // (seen through each of its names: links.rs).
        h.ctime_ns = now_ns();
        self.set(rel, encode(&h, &target))?;
        self.sync_names(&h, &target, rel)?;
        if h.is_staged() {
            // Its staging file mirrors its set-ID bits (staging.rs).
            self.mirror_set_id(&target, h.mode)?;
        }
        Ok(())
    }

    pub fn chmod(&mut self, rel: &[u8], mode: u32) -> OpResult<()> {
        match self.node(rel) {
            Node::Dir => {
                // Directories are physical.
                beneath::chmod(self.root(), rel, mode)?;
                self.dir_mode_set(mode)?;
                Ok(())
            }
            Node::Entry(h, _) if h.kind == Kind::Symlink => posix(libc::EOPNOTSUPP),
            Node::Phys(m) if m.file_type().is_symlink() => posix(libc::EOPNOTSUPP),
            _ => self.update_entry(rel, |h| h.mode = (h.mode & libc::S_IFMT) | (mode & 0o7777)),
        }
    }

    pub fn chown(&mut self, caller: &Caller, rel: &[u8], uid: u32, gid: u32) -> OpResult<()> {
        if uid != u32::MAX && uid != caller.uid && !caller.capable(perm::CAP_CHOWN) {
            return posix(libc::EPERM);
        }
        match self.node(rel) {
            Node::Dir => {
                beneath::lchown(self.root(), rel, uid, gid)?;
                Ok(())
            }
            _ => self.update_entry(rel, |h| {
                if uid != u32::MAX {
                    h.uid = uid;
                }
                if gid != u32::MAX {
                    h.gid = gid;
                }
                // chown clears set-user-ID (and an executable
                // set-group-ID) on regular files.
                if h.kind == Kind::File {
                    h.mode = vrift_format::view::chown_mode(h.mode);
                }
            }),
        }
    }

    pub fn utimes(&mut self, rel: &[u8], atime: u64, mtime: u64) -> OpResult<()> {
        use vrift_format::proto::{TIME_NOW, TIME_OMIT};
        let now = now_ns();
        let pick = |v: u64, old: i64| match v {
            TIME_OMIT => old,
            TIME_NOW => now,
            v => v as i64,
        };
        // Directories are physical, and a staged file's times are its
        // staging file's: both are set on the real file.
        let ts = |ns: i64| libc::timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000),
        };
        let real_file = match self.node(rel) {
            Node::Dir => {
                let m = beneath::lstat(self.root(), rel)?;
                let times = [ts(pick(atime, atime_ns(&m))), ts(pick(mtime, mtime_ns(&m)))];
                beneath::utimes(self.root(), rel, &times)?;
                return Ok(());
            }
            Node::Entry(h, target) if h.is_staged() => {
                Some(self.staging_dir.join(std::ffi::OsStr::from_bytes(&target)))
            }
            _ => None,
        };
        if let Some(path) = real_file {
            let m = fs::metadata(&path)?;
            let times = [ts(pick(atime, atime_ns(&m))), ts(pick(mtime, mtime_ns(&m)))];
            let c = std::ffi::CString::new(path.as_os_str().as_bytes())
                .map_err(|e| anyhow::anyhow!(e))?;
            // SAFETY: valid path and times.
            if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) } != 0 {
                return Err(io::Error::last_os_error().into());
            }
            return Ok(());
        }
        self.update_entry(rel, |h| {
            let old_a = if h.atime_ns == 0 {
                h.mtime_ns
            } else {
                h.atime_ns
            };
            h.atime_ns = pick(atime, old_a);
            h.mtime_ns = pick(mtime, h.mtime_ns);
        })
    }

    pub fn truncate(&mut self, caller: &Caller, rel: &[u8], len: u64) -> OpResult<()> {
        if matches!(self.node(rel), Node::Entry(h, _) if h.kind == Kind::Special) {
            return posix(libc::EINVAL); // as the kernel, for anything not regular
        }
        let opened = self.open_write(rel, libc::O_WRONLY, 0)?;
        let file = File::from(opened.fd);
        file.set_len(len)?;
        drop(file);
        if !caller.capable(perm::CAP_FSETID) {
            // The kernel clears set-ID bits on a truncate by a process
            // without CAP_FSETID; the daemon truncated it on its behalf.
            self.update_entry(rel, |h| h.mode = vrift_format::view::chown_mode(h.mode))?;
        }
        // One slice now; a large file is sealed between later requests
        // (its close event schedules the rest).
        let _ = self.seal_step(&opened.name, SEAL_SLICE);
        Ok(())
    }

    /// Makes a special file (FIFO, socket, device node) in the rift. For a
    /// FIFO or a device the node is made now in `<cas>/nodes/` (the kernel's
    /// answer, EPERM for a device without CAP_MKNOD, is the caller's: the
    /// daemon runs as the same user); for a socket only its name is chosen:
    /// the client's `bind` makes it. Returns the node's name.
    pub fn mknod(&mut self, rel: &[u8], mode: u32, rdev: u64) -> OpResult<Vec<u8>> {
        if !vrift_format::is_special_type(mode) {
            return posix(libc::EINVAL);
        }
        if self.node(rel).exists() {
            return posix(libc::EEXIST);
        }
        self.check_parent(rel)?;
        let dir = self.cas.root().join(vrift_format::NODES_DIR);
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&dir) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot create {}", dir.display()))
                    .into());
            }
        }
        self.name_seq += 1;
        let name = format!("n.{}.{}", self.name_prefix, self.name_seq).into_bytes();
        if mode & libc::S_IFMT != libc::S_IFSOCK {
            let c = std::ffi::CString::new(
                dir.join(std::ffi::OsStr::from_bytes(&name))
                    .into_os_string()
                    .into_vec(),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            // The node is private to the store's owner; the view shows the
            // record's mode.
            // SAFETY: a valid C string.
            if unsafe { libc::mknod(c.as_ptr(), (mode & libc::S_IFMT) | 0o600, rdev) } != 0 {
                return Err(io::Error::last_os_error().into());
            }
        }
        let mode = (mode & libc::S_IFMT) | (mode & 0o7777);
        let h = self.new_header(rel, Kind::Special, mode, rdev)?;
        self.set(rel, encode(&h, &name))?;
        Ok(name)
    }

    /// The node name of the special file at `rel` (a retried `Mknod`).
    pub fn node_name(&self, rel: &[u8]) -> Option<Vec<u8>> {
        match self.node(rel) {
            Node::Entry(h, t) if h.kind == Kind::Special => Some(t),
            _ => None,
        }
    }

    /// A name made or removed in a directory changes the directory's mtime
    /// and ctime, as on disk. Directories are physical (the rift keeps no
    /// times for them), so it is the physical directory's.
    pub fn touch_parent(&self, rel: &[u8]) {
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
        ];
        // Beneath the root, as every disk operation for a client (beneath.rs).
        let _ = beneath::utimes(self.root(), parent_rel(rel), &times);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{errno, Fixture, Kinds, ALL};

    #[test]
    fn unlink_by_node_kind() {
        for kind in ALL {
            let mut f = Fixture::new();
            f.make("n", kind, "a");
            // Below a non-directory: ENOTDIR (ENOENT below nothing).
            let below = match kind {
                Kinds::Absent | Kinds::Whiteout | Kinds::Dir => libc::ENOENT,
                _ => libc::ENOTDIR,
            };
            assert_eq!(errno(f.rift.unlink(b"n/x")), below, "unlink {kind:?}/x");
            let want = match kind {
                Kinds::Absent | Kinds::Whiteout => libc::ENOENT,
                Kinds::Dir => libc::EISDIR,
                _ => 0,
            };
            assert_eq!(errno(f.rift.unlink(b"n")), want, "unlink {kind:?}");
            let after = if want == 0 { "absent" } else { kind.seen() };
            assert_eq!(f.seen("n").0, after, "unlink {kind:?}");
            if kind.on_disk() {
                assert_eq!(f.disk("n").as_deref(), Some("a"), "unlink {kind:?}");
            }
        }
    }

    #[test]
    fn rmdir_by_node_kind() {
        for kind in ALL {
            let mut f = Fixture::new();
            f.make("n", kind, "a");
            let want = match kind {
                Kinds::Absent | Kinds::Whiteout => libc::ENOENT,
                Kinds::Dir => 0,
                _ => libc::ENOTDIR,
            };
            assert_eq!(errno(f.rift.rmdir(b"n")), want, "rmdir {kind:?}");
            let after = if want == 0 { "absent" } else { kind.seen() };
            assert_eq!(f.seen("n").0, after, "rmdir {kind:?}");
            if kind.on_disk() {
                assert_eq!(f.disk("n").as_deref(), Some("a"), "rmdir {kind:?}");
            }
        }
        let mut f = Fixture::new();
        assert_eq!(errno(f.rift.rmdir(b"")), libc::EBUSY);
        f.make("d", Kinds::Dir, "");
        f.make("d/x", Kinds::DiskFile, "x");
        assert_eq!(errno(f.rift.rmdir(b"d")), libc::ENOTEMPTY);
        // Empty in the view once its only file is unlinked: hidden, while
        // the disk keeps the directory and the file.
        assert_eq!(errno(f.rift.unlink(b"d/x")), 0);
        assert_eq!(errno(f.rift.rmdir(b"d")), 0);
        assert_eq!(f.seen("d").0, "absent");
        assert_eq!(f.disk("d/x").as_deref(), Some("x"));
    }

    #[test]
    fn mkdir_by_node_kind() {
        for kind in ALL {
            let mut f = Fixture::new();
            f.make("n", kind, "a");
            let want = if kind.exists() { libc::EEXIST } else { 0 };
            let got = errno(f.rift.mkdir(b"n", 0o755));
            // A whiteout over a disk file: the directory cannot be made
            // on disk (directories are physical).
            let want = if kind == Kinds::Whiteout {
                libc::EEXIST
            } else {
                want
            };
            assert_eq!(got, want, "mkdir {kind:?}");
            if want == 0 {
                assert_eq!(f.seen("n").0, "dir", "mkdir {kind:?}");
            }
        }
    }
}
