//! Files opened for writing: staging files (copied up from the disk or a
//! blob, or anonymous O_TMPFILE ones), their staged records, and reading
//! a client-named physical file without blocking or leaving the project.

use super::*;

/// Opens the physical regular file `rel` below `root` for reading, in a way
/// that can neither block nor leave the project: O_NONBLOCK (a FIFO opens
/// at once instead of waiting for a writer), O_NOFOLLOW on the last
/// component, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS on the others, then an
/// fstat that must find a regular file (the name may have been replaced
/// since it was looked at). Anything else is EOPNOTSUPP: a FIFO, socket or
/// device has no content to copy, and reading one could block or never end.
pub(super) fn open_phys_regular(root: &Path, rel: &[u8]) -> OpResult<File> {
    match beneath::open_regular(root, rel) {
        Ok(f) => Ok(f),
        // The last component is a symlink, the path leaves the project, or
        // a special file: nothing to copy.
        Err(e) if beneath::refused(&e) || e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            posix(libc::EOPNOTSUPP)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => posix(libc::ENOENT),
        Err(e) => Err(anyhow::Error::from(e)
            .context(format!(
                "cannot read {}",
                root.join(crate::paths::os(rel)).display()
            ))
            .into()),
    }
}

fn record_ino(t: &Table<'_>, rel: &[u8]) -> u64 {
    match t.lookup(rel) {
        Some(RecordRef::Entry { header, .. }) => header.ino,
        _ => 0,
    }
}

use vrift_format::view::STAGING_SET_ID_MIRROR as SET_ID_MIRROR;

impl Rift {
    pub(super) fn new_staging(&mut self) -> Result<(Vec<u8>, PathBuf, File)> {
        self.name_seq += 1;
        let name = format!("{}.{}", self.name_prefix, self.name_seq).into_bytes();
        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(&name));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create the staging file {}", path.display()))?;
        Ok((name, path, file))
    }

    /// Copies the current content of `node` into a new staging file.
    pub(super) fn stage_copy(
        &mut self,
        node: &Node,
        rel: &[u8],
        truncate: bool,
    ) -> OpResult<(Vec<u8>, PathBuf)> {
        // The source is opened first: a refused one leaves no staging file.
        let source = if truncate {
            None
        } else {
            match node {
                Node::Entry(h, target) if h.is_staged() => {
                    Some(self.staging_dir.join(std::ffi::OsStr::from_bytes(target)))
                }
                Node::Entry(h, _) => Some(self.cas.blob_path(&h.hash)),
                Node::Phys(_) => Some(self.disk(rel)),
                _ => None,
            }
        };
        let source = match source {
            None => None,
            // A client names this path: never block on it, never copy a
            // special file, never follow a symlink out of the project.
            Some(src) if matches!(node, Node::Phys(_)) => {
                Some((open_phys_regular(self.project.root(), rel)?, src))
            }
            Some(src) => Some((
                File::open(&src).with_context(|| format!("cannot read {}", src.display()))?,
                src,
            )),
        };
        let (name, path, mut file) = self.new_staging()?;
        if let Some((mut from, src)) = source {
            // A reflink where the filesystem shares extents (btrfs, xfs);
            // else std's copy, which uses copy_file_range.
            // SAFETY: FICLONE between two fds we own.
            let cloned =
                unsafe { libc::ioctl(file.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) } == 0;
            if !cloned {
                io::copy(&mut from, &mut file).with_context(|| {
                    format!("cannot copy {} to {}", src.display(), path.display())
                })?;
            }
        }
        Ok((name, path))
    }

    pub(super) fn register_staged(&mut self, name: &[u8], rel: &[u8]) -> Result<()> {
        self.staged.insert(
            name.to_vec(),
            Staged {
                rels: vec![rel.to_vec()],
            },
        );
        Ok(())
    }

    /// A staged record with the metadata of `like`, or new with `mode` and
    /// group `gid`.
    pub(super) fn staged_record(
        &mut self,
        like: Option<&RecordHeader>,
        mode: u32,
        gid: u32,
        hides: bool,
        name: &[u8],
    ) -> Result<Vec<u8>> {
        let h = RecordHeader {
            kind: Kind::File,
            flags: FLAG_STAGED | if hides { FLAG_HIDES_DIR } else { 0 },
            mode: like.map(|h| h.mode).unwrap_or(mode),
            size: 0,
            mtime_ns: 0,
            ino: match like {
                Some(h) => h.ino,
                None => self.alloc_ino()?,
            },
            hash: ContentHash::default(),
            uid: like.map(|h| h.uid).unwrap_or(OWNER_INHERIT),
            gid: like.map(|h| h.gid).unwrap_or(gid),
            atime_ns: 0,
            // The staging file's (see `Meta::absorb`), or a later change's.
            ctime_ns: 0,
            links: like.map(|h| h.links).unwrap_or(0),
        };
        Ok(encode(&h, name))
    }

    /// Opens `rel` for writing (DESIGN.md §2: a staging file, visible at once).
    pub fn open_write(&mut self, rel: &[u8], flags: i32, mode: u32) -> OpResult<Opened> {
        let creat = flags & libc::O_CREAT != 0;
        let excl = flags & libc::O_EXCL != 0;
        let trunc = flags & libc::O_TRUNC != 0;
        if flags & libc::O_TMPFILE == libc::O_TMPFILE {
            return self.open_tmpfile(rel, flags, mode);
        }
        let node = self.node(rel);
        let (name, header_mode, ino, fresh) = match &node {
            Node::NotDir => return posix(libc::ENOTDIR),
            Node::Dir => {
                return posix(if creat && excl {
                    libc::EEXIST
                } else {
                    libc::EISDIR
                })
            }
            Node::Entry(h, _) if h.kind == Kind::Symlink => {
                return posix(if creat && excl {
                    libc::EEXIST
                } else {
                    libc::ELOOP
                })
            }
            Node::Phys(m) if !m.file_type().is_file() => {
                // A fifo, socket or device: writing it changes no file.
                return match creat && excl {
                    true => posix(libc::EEXIST),
                    false => Err(Errno::Pass),
                };
            }
            Node::Entry(..) | Node::Phys(_) if creat && excl => return posix(libc::EEXIST),
            Node::Entry(h, _) if h.kind == Kind::Special => {
                // Clients open a special file's node themselves (the
                // library's `open_special`); nothing here to stage.
                return posix(libc::EOPNOTSUPP);
            }
            Node::Entry(h, target) => {
                if h.is_staged() {
                    // O_TRUNC truncates whatever the access mode (Linux:
                    // O_RDONLY | O_TRUNC too; the write permission it
                    // needs was checked).
                    if trunc {
                        self.abort_seal(target);
                        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(target));
                        OpenOptions::new().write(true).open(&path)?.set_len(0)?;
                    }
                    (target.clone(), h.mode, h.ino, false)
                } else {
                    let (name, _) = self.stage_copy(&node, rel, trunc)?;
                    let h = *h;
                    let rec = self.staged_record(
                        Some(&h),
                        0,
                        OWNER_INHERIT,
                        h.flags & FLAG_HIDES_DIR != 0,
                        &name,
                    )?;
                    self.register_staged(&name, rel)?;
                    self.set(rel, rec.clone())?;
                    if h.links > 0 {
                        // Every name of the inode is written through this
                        // one staging file (links.rs).
                        if let Ok(RecordRef::Entry { header, .. }) =
                            vrift_format::decode_record(&rec)
                        {
                            let staged = header;
                            self.sync_names(&staged, &name, rel)?;
                            for other in self.names_of(h.ino) {
                                self.add_staged_name(&name, &other);
                            }
                        }
                    }
                    (name, h.mode, h.ino, true)
                }
            }
            Node::Phys(m) => {
                let (name, _) = self.stage_copy(&node, rel, trunc)?;
                let mode = m.mode();
                let rec = self.staged_record(None, mode, OWNER_INHERIT, false, &name)?;
                self.register_staged(&name, rel)?;
                self.set(rel, rec)?;
                let ino = record_ino(&self.table(), rel);
                (name, mode, ino, true)
            }
            Node::Absent => {
                if !creat {
                    return posix(libc::ENOENT);
                }
                self.check_parent(rel)?;
                let hides = beneath::lstat(self.root(), rel).is_ok_and(|m| m.is_dir());
                let (name, _) = self.stage_copy(&Node::Absent, rel, true)?;
                let mode = libc::S_IFREG | (mode & 0o7777);
                let gid = self.new_entry_gid(rel);
                let rec = self.staged_record(None, mode, gid, hides, &name)?;
                self.register_staged(&name, rel)?;
                self.set(rel, rec)?;
                let ino = record_ino(&self.table(), rel);
                (name, mode, ino, true)
            }
        };
        if fresh {
            self.mirror_set_id(&name, header_mode)?;
        }
        let fd = self.open_staging(&name, flags)?;
        Ok(Opened {
            fd,
            ino,
            mode: header_mode,
            name,
        })
    }

    /// Gives the staging file `name` the set-ID bits of its entry's `mode`
    /// (with group execute, and [`SET_ID_MIRROR`] as the mark that they
    /// mirror the entry's), so that the kernel's own clearing of them when
    /// a process without CAP_FSETID writes or truncates it
    /// (`file_remove_privs`) reaches the entry when it is sealed. A mode
    /// without such bits leaves the file 0600.
    pub(super) fn mirror_set_id(&self, name: &[u8], mode: u32) -> Result<()> {
        let set_id = mode & (libc::S_ISUID | libc::S_ISGID | 0o010);
        let want = match vrift_format::view::chown_mode(mode) == mode {
            true => 0o600,
            false => 0o600 | SET_ID_MIRROR | set_id,
        };
        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(name));
        match fs::symlink_metadata(&path) {
            Ok(m) if m.mode() & 0o7777 == want => Ok(()),
            Ok(_) => fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(want))
                .with_context(|| format!("cannot set the mode of {}", path.display())),
            Err(_) => Ok(()),
        }
    }

    pub(super) fn open_staging(&mut self, name: &[u8], flags: i32) -> OpResult<OwnedFd> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            // Our own write open would wait for our own lease to be released.
            self.abort_seal(name);
        }
        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(name));
        let keep = flags
            & (libc::O_ACCMODE
                | libc::O_APPEND
                | libc::O_NONBLOCK
                | libc::O_SYNC
                | libc::O_DSYNC
                | libc::O_DIRECT
                | libc::O_NOATIME);
        let c =
            std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
        // SAFETY: a valid C string; the fd is owned right after.
        let fd = unsafe { libc::open(c.as_ptr(), keep | libc::O_CLOEXEC | libc::O_LARGEFILE) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: a fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub(super) fn open_tmpfile(&mut self, dir: &[u8], flags: i32, mode: u32) -> OpResult<Opened> {
        match self.node(dir) {
            Node::Dir => {}
            Node::Absent => return posix(libc::ENOENT),
            _ => return posix(libc::ENOTDIR),
        }
        let (name, _, file) = self.new_staging()?;
        drop(file);
        self.anon.insert(name.clone());
        let fd = self.open_staging(&name, flags)?;
        Ok(Opened {
            fd,
            ino: self.alloc_ino()?,
            mode: libc::S_IFREG | (mode & 0o7777),
            name,
        })
    }

    /// `linkat` of an O_TMPFILE file into the view.
    pub fn link_tmp(&mut self, rel: &[u8], name: &[u8], mode: u32) -> OpResult<()> {
        if !self.anon.contains(name) {
            return posix(libc::ENOENT);
        }
        if self.node(rel).exists() {
            return posix(libc::EEXIST);
        }
        self.check_parent(rel)?;
        self.anon.remove(name);
        let gid = self.new_entry_gid(rel);
        let rec = self.staged_record(None, libc::S_IFREG | (mode & 0o7777), gid, false, name)?;
        self.register_staged(name, rel)?;
        self.set(rel, rec)?;
        Ok(())
    }

    /// Forgets a staged file whose entry left the view (the writers keep
    /// their fds, as with an unlinked file).
    pub(super) fn drop_staged(&mut self, h: &RecordHeader, target: &[u8]) {
        if h.is_staged() {
            self.sealing.remove(target);
            self.staged.remove(target);
            let _ = fs::remove_file(self.staging_dir.join(std::ffi::OsStr::from_bytes(target)));
        }
    }

    /// The staged file `target` is named `to` now instead of `from`.
    pub(super) fn move_staged(&mut self, target: &[u8], h: &RecordHeader, from: &[u8], to: &[u8]) {
        if h.is_staged() {
            if let Some(st) = self.staged.get_mut(target) {
                for r in st.rels.iter_mut().filter(|r| r.as_slice() == from) {
                    *r = to.to_vec();
                }
            }
        }
    }

    /// Drops anonymous staging files no process holds any more.
    pub fn reap_anon(&mut self) {
        let names: Vec<Vec<u8>> = self.anon.iter().cloned().collect();
        for name in names {
            // A read-only probe for the lease test, opened for the test only.
            let Ok(f) = File::open(self.staging_dir.join(std::ffi::OsStr::from_bytes(&name)))
            else {
                continue;
            };
            // SAFETY: fcntl on our own fd.
            if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
                // SAFETY: as above.
                unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
                // No writer left and never linked: it is gone.
                let _ = fs::remove_file(self.staging_dir.join(std::ffi::OsStr::from_bytes(&name)));
                self.anon.remove(&name);
            }
        }
    }

    /// The group a new entry at `rel` gets: a set-group-ID parent
    /// directory's (as the kernel's `inode_init_owner`), else the project
    /// root's owner's ([`OWNER_INHERIT`]).
    pub(super) fn new_entry_gid(&self, rel: &[u8]) -> u32 {
        match beneath::lstat(self.root(), parent_rel(rel)) {
            Ok(m) if m.mode() & libc::S_ISGID != 0 => m.gid(),
            _ => OWNER_INHERIT,
        }
    }
}
