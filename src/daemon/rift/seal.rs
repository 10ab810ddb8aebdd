//! Sealing: a staged file no process writes any more is hashed (a slice
//! at a time, under a read lease), linked into the store, and its record
//! sealed.

use super::*;

impl Rift {
    /// Seals every staged file no process has open for writing any more.
    /// Returns how many were sealed.
    pub fn seal_idle(&mut self) -> usize {
        let names: Vec<Vec<u8>> = self.staged.keys().cloned().collect();
        let mut n = 0;
        for name in names {
            match self.try_seal(&name) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => eprintln!("vrift daemon: cannot seal a staged file: {e:#}"),
            }
        }
        n
    }

    /// One step of sealing every staged file: the names whose seal is
    /// under way (the caller continues them between requests).
    pub fn seal_idle_step(&mut self) -> Vec<Vec<u8>> {
        let names: Vec<Vec<u8>> = self.staged.keys().cloned().collect();
        let mut more = Vec::new();
        for name in names {
            match self.seal_step(&name, SEAL_SLICE) {
                Ok(Seal::More) => more.push(name),
                Ok(_) => {}
                Err(e) => eprintln!("vrift daemon: cannot seal a staged file: {e:#}"),
            }
        }
        more
    }

    /// Seals the staged file `name` now, however large, if no process has
    /// it open for writing.
    pub fn try_seal(&mut self, name: &[u8]) -> Result<bool> {
        if !self.staged.contains_key(name) {
            return Ok(false);
        }
        Ok(self.seal_step(name, u64::MAX)? == Seal::Done)
    }

    /// Gives up a seal under way (before the daemon itself opens the file
    /// for writing, or when a writer is waiting): its lease is released.
    pub(super) fn abort_seal(&mut self, name: &[u8]) {
        // Closing the probe releases its lease.
        self.sealing.remove(name);
    }

    /// Hashes up to `budget` more bytes of the staged file `name` and, once
    /// all are hashed, seals it. A read lease (granted only while no process
    /// has the file open for writing) is taken at the first step and held
    /// to the last, so the content cannot change in between; a process that
    /// opens it for writing meanwhile breaks the lease and the seal starts
    /// over after that writer closes.
    pub fn seal_step(&mut self, name: &[u8], budget: u64) -> Result<Seal> {
        if !self.staged.contains_key(name) {
            self.sealing.remove(name);
            return Ok(Seal::Done);
        }
        if let Some(p) = self.sealing.get(name) {
            // A writer waiting on our lease is let through at once.
            // SAFETY: fcntl on our own fd.
            if unsafe { libc::fcntl(p.probe.as_raw_fd(), libc::F_GETLEASE) } != libc::F_RDLCK {
                self.abort_seal(name);
                return Ok(Seal::NotNow);
            }
        } else {
            if self.sealing.len() >= MAX_SEALING {
                return Ok(Seal::NotNow);
            }
            let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(name));
            let probe = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOATIME)
                .open(&path)
                .or_else(|_| File::open(&path))
            {
                Ok(f) => f,
                // Out of fds: the next sweep tries again.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    return Ok(Seal::NotNow)
                }
                Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
            };
            // SAFETY: fcntl on our own fd.
            if unsafe { libc::fcntl(probe.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EAGAIN) {
                    return Ok(Seal::NotNow);
                }
                return Err(e).context("cannot take a lease on a staging file");
            }
            self.sealing.insert(
                name.to_vec(),
                Partial {
                    hasher: blake3::Hasher::new(),
                    offset: 0,
                    probe,
                },
            );
        }
        let res = self.hash_some(name, budget);
        let all = match res {
            Ok(all) => all,
            Err(e) => {
                self.abort_seal(name);
                return Err(e);
            }
        };
        if !all {
            return Ok(Seal::More);
        }
        crate::failpoint::hit("seal.hashed");
        // A `gc --delete` in progress: seal after it (it may be stopping
        // this daemon, and must not wait for a seal waiting for it).
        let Some(gc) = self.cas.try_gc_lock_shared()? else {
            self.abort_seal(name);
            return Ok(Seal::NotNow);
        };
        let partial = self.sealing.remove(name).expect("inserted above");
        let hash = ContentHash(*partial.hasher.finalize().as_bytes());
        let res = self.seal_leased(name, hash, &partial.probe);
        drop(gc);
        // Closing the probe releases the lease.
        drop(partial);
        res.map(|()| Seal::Done)
    }

    /// Feeds up to `budget` more bytes of `name` to its hash; whether the
    /// whole file is hashed.
    pub(super) fn hash_some(&mut self, name: &[u8], budget: u64) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        let p = self.sealing.get_mut(name).expect("caller checked");
        let size = p.probe.metadata()?.len();
        let end = size.min(p.offset.saturating_add(budget));
        let mut buf = vec![0u8; (256 * 1024).min((end - p.offset.min(end)) as usize).max(1)];
        while p.offset < end {
            let want = ((end - p.offset) as usize).min(buf.len());
            let n = match p.probe.read_at(&mut buf[..want], p.offset) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read a staging file"),
            };
            p.hasher.update(&buf[..n]);
            p.offset += n as u64;
        }
        Ok(p.offset >= size)
    }

    pub(super) fn seal_leased(
        &mut self,
        name: &[u8],
        hash: ContentHash,
        probe: &File,
    ) -> Result<()> {
        let st = self.staged.get(name).expect("caller checked");
        let rels = st.rels.clone();
        let meta = probe.metadata()?;
        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(name));
        // (The caller holds the gc lock shared.) The blob is linked, the
        // sealed record published, and only then does the staging name go
        // (after a grace): a reader that found the staged record opens
        // the same file by either name.
        let (_, tmp_left) = self
            .cas
            .adopt_tmp_linked(&path, &hash)
            .with_context(|| format!("cannot move {} into the store", path.display()))?;
        if tmp_left {
            self.retired.push((path, Instant::now()));
        }
        crate::failpoint::hit("seal.linked");
        self.staged.remove(name);
        // Each name of the file (several: hard links) whose record still
        // names this staging file; one that moved on (unlinked or
        // replaced meanwhile) is left alone.
        let mut changes = Vec::new();
        for rel in rels {
            let Some(RecordRef::Entry { header, target }) = self.table().lookup(&rel) else {
                continue;
            };
            if !header.is_staged() || target != name {
                continue;
            }
            let mut h = header;
            // What the kernel cleared when a process without CAP_FSETID
            // wrote the file, the entry loses too.
            h.mode = vrift_format::view::mirrored_set_id(h.mode, meta.mode());
            h.flags &= !FLAG_STAGED;
            h.hash = hash;
            h.size = meta.len();
            h.mtime_ns = mtime_ns(&meta);
            h.atime_ns = atime_ns(&meta);
            h.ctime_ns = h.ctime_ns.max(ctime_ns(&meta));
            changes.push(Change::Set(rel, encode(&h, &[])));
        }
        if !changes.is_empty() {
            self.record(changes)?;
        }
        crate::failpoint::hit("seal.recorded");
        Ok(())
    }

    /// Seals `rel` now if it is staged (before it is executed).
    pub fn seal_path(&mut self, rel: &[u8]) -> OpResult<Vec<u8>> {
        match self.node(rel) {
            Node::Entry(h, target) if h.is_staged() => {
                if self.try_seal(&target)? {
                    Ok(Vec::new())
                } else {
                    posix(libc::ETXTBSY)
                }
            }
            Node::Entry(..) | Node::Phys(_) => Ok(Vec::new()),
            Node::Dir => posix(libc::EISDIR),
            _ => posix(libc::ENOENT),
        }
    }
}
