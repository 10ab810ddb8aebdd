//! The operations on the view that are not opens or renames: unlink,
//! mkdir, rmdir, symlink, link and the metadata changes, with the errno a
//! normal Linux filesystem would give.

use super::staging::open_phys_regular;
use super::*;

impl Rift {
    /// A sealed record of the physical file at `rel` (copied into the CAS).
    pub(super) fn copy_up(&mut self, rel: &[u8], m: &fs::Metadata) -> OpResult<RecordHeader> {
        let path = self.disk(rel);
        let (kind, hash, target) = if m.file_type().is_symlink() {
            let t = fs::read_link(&path)?;
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
                    fs::read_link(self.disk(rel))?
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
                self.drop_staged(&h, &t);
                self.delete(rel)?;
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
        let path = self.disk(rel);
        let physical = fs::symlink_metadata(&path).ok();
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
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))?;
            }
            Some(_) => {
                // A hidden physical file stands there: the directory cannot
                // be made on disk.
                return posix(libc::EEXIST);
            }
            None => {
                let c = std::ffi::CString::new(path.as_os_str().as_bytes())
                    .map_err(|e| anyhow::anyhow!(e))?;
                // Journaled before the directory is made (see
                // `journal_request_now`), undone if it cannot be.
                let whiteout = matches!(self.table().lookup(rel), Some(RecordRef::Whiteout));
                if whiteout {
                    self.record(vec![Change::Remove(rel.to_vec())])?;
                }
                self.set_dir(rel, flags | DIR_CREATED)?;
                self.journal_request_now()?;
                // SAFETY: a valid C string. The daemon's umask is 0: the
                // client applied its own.
                if unsafe { libc::mkdir(c.as_ptr(), mode & 0o7777) } != 0 {
                    let e = io::Error::last_os_error();
                    let mut undo = vec![Change::Dir(rel.to_vec(), flags)];
                    if whiteout {
                        undo.push(Change::Set(rel.to_vec(), WHITEOUT_RECORD.to_vec()));
                    }
                    self.record(undo)?;
                    return Err(e.into());
                }
            }
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
        let physically_empty = fs::read_dir(&path)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if flags & DIR_CREATED != 0 && physically_empty && self.phantom(rel)?.is_none() {
            // The id first (see `journal_request_now`): a daemon killed
            // after the removal and before the changes below leaves a mark
            // and whiteouts for a directory that is gone, which the view
            // does not show (directories are physical).
            if own_request {
                self.journal_request_now()?;
            }
            fs::remove_dir(&path).with_context(|| format!("cannot remove {}", path.display()))?;
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

    pub fn symlink(&mut self, rel: &[u8], target: &[u8]) -> OpResult<()> {
        if self.node(rel).exists() {
            return posix(libc::EEXIST);
        }
        self.check_parent(rel)?;
        let hides = fs::symlink_metadata(self.disk(rel)).is_ok_and(|m| m.is_dir());
        let now = now_ns();
        let h = RecordHeader {
            kind: Kind::Symlink,
            flags: if hides { FLAG_HIDES_DIR } else { 0 },
            mode: libc::S_IFLNK | 0o777,
            size: target.len() as u64,
            mtime_ns: now,
            ino: self.alloc_ino()?,
            hash: ContentHash::default(),
            uid: OWNER_INHERIT,
            gid: OWNER_INHERIT,
            atime_ns: now,
        };
        self.set(rel, encode(&h, target))?;
        Ok(())
    }

    pub fn link(&mut self, old: &[u8], new: &[u8]) -> OpResult<()> {
        let node = self.node(old);
        if node.is_dir() {
            return posix(libc::EPERM);
        }
        if self.node(new).exists() {
            return posix(libc::EEXIST);
        }
        self.check_parent(new)?;
        if let Node::Entry(h, t) = &node {
            if h.is_staged() && !self.try_seal(t)? {
                // Still being written: the link gets its content so far.
                let (name, _) = self.stage_copy(&node, old, false)?;
                // Its own inode: a link is a second entry (DESIGN.md §2).
                let like = RecordHeader {
                    ino: self.alloc_ino()?,
                    ..*h
                };
                let rec = self.staged_record(Some(&like), 0, false, &name)?;
                self.register_staged(&name, new)?;
                self.set(new, rec)?;
                return Ok(());
            }
        }
        let node = self.node(old);
        let (mut h, target) = self.entry_of(old, &node)?;
        h.ino = self.alloc_ino()?;
        h.flags &= !(FLAG_PHANTOM | FLAG_HIDES_DIR);
        if fs::symlink_metadata(self.disk(new)).is_ok_and(|m| m.is_dir()) {
            h.flags |= FLAG_HIDES_DIR;
        }
        self.set(new, encode(&h, &target))?;
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
        self.set(rel, encode(&h, &target))?;
        Ok(())
    }

    pub fn chmod(&mut self, rel: &[u8], mode: u32) -> OpResult<()> {
        match self.node(rel) {
            Node::Dir => {
                // Directories are physical.
                fs::set_permissions(self.disk(rel), fs::Permissions::from_mode(mode & 0o7777))?;
                Ok(())
            }
            Node::Entry(h, _) if h.kind == Kind::Symlink => posix(libc::EOPNOTSUPP),
            Node::Phys(m) if m.file_type().is_symlink() => posix(libc::EOPNOTSUPP),
            _ => self.update_entry(rel, |h| h.mode = (h.mode & libc::S_IFMT) | (mode & 0o7777)),
        }
    }

    pub fn chown(&mut self, caller: Caller, rel: &[u8], uid: u32, gid: u32) -> OpResult<()> {
        if caller.uid != 0 && (uid != u32::MAX && uid != caller.uid) {
            return posix(libc::EPERM);
        }
        match self.node(rel) {
            Node::Dir => {
                let c = std::ffi::CString::new(self.disk(rel).as_os_str().as_bytes())
                    .map_err(|e| anyhow::anyhow!(e))?;
                // SAFETY: a valid C string.
                if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
                    return Err(io::Error::last_os_error().into());
                }
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
        let real_file = match self.node(rel) {
            Node::Dir => Some(self.disk(rel)),
            Node::Entry(h, target) if h.is_staged() => {
                Some(self.staging_dir.join(std::ffi::OsStr::from_bytes(&target)))
            }
            _ => None,
        };
        if let Some(path) = real_file {
            let m = fs::metadata(&path)?;
            let ts = |ns: i64| libc::timespec {
                tv_sec: ns.div_euclid(1_000_000_000),
                tv_nsec: ns.rem_euclid(1_000_000_000),
            };
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

    pub fn truncate(&mut self, caller: Caller, rel: &[u8], len: u64) -> OpResult<()> {
        let opened = self.open_write(caller, rel, libc::O_WRONLY, 0)?;
        let file = File::from(opened.fd);
        file.set_len(len)?;
        drop(file);
        // One slice now; a large file is sealed between later requests
        // (its close event schedules the rest).
        let _ = self.seal_step(&opened.name, SEAL_SLICE);
        Ok(())
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
