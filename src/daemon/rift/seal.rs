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
        if self.sealing.remove(name).is_some() {
            if let Some(st) = self.staged.get(name) {
                // SAFETY: fcntl on our own fd.
                unsafe { libc::fcntl(st.probe.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
            }
        }
    }

    /// Hashes up to `budget` more bytes of the staged file `name` and, once
    /// all are hashed, seals it. A read lease (granted only while no process
    /// has the file open for writing) is taken at the first step and held
    /// to the last, so the content cannot change in between; a process that
    /// opens it for writing meanwhile breaks the lease and the seal starts
    /// over after that writer closes.
    pub fn seal_step(&mut self, name: &[u8], budget: u64) -> Result<Seal> {
        let Some(st) = self.staged.get(name) else {
            self.sealing.remove(name);
            return Ok(Seal::Done);
        };
        let fd = st.probe.as_raw_fd();
        if self.sealing.contains_key(name) {
            // A writer waiting on our lease is let through at once.
            // SAFETY: fcntl on our own fd.
            if unsafe { libc::fcntl(fd, libc::F_GETLEASE) } != libc::F_RDLCK {
                self.abort_seal(name);
                return Ok(Seal::NotNow);
            }
        } else {
            // SAFETY: fcntl on our own fd.
            if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } != 0 {
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
        let res = self.seal_leased(name, hash);
        drop(gc);
        if let Some(st) = self.staged.get(name) {
            // SAFETY: as above.
            unsafe { libc::fcntl(st.probe.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        }
        res.map(|()| Seal::Done)
    }

    /// Feeds up to `budget` more bytes of `name` to its hash; whether the
    /// whole file is hashed.
    pub(super) fn hash_some(&mut self, name: &[u8], budget: u64) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        let st = self.staged.get(name).expect("caller checked");
        let p = self.sealing.get_mut(name).expect("caller checked");
        let size = st.probe.metadata()?.len();
        let end = size.min(p.offset.saturating_add(budget));
        let mut buf = vec![0u8; (256 * 1024).min((end - p.offset.min(end)) as usize).max(1)];
        while p.offset < end {
            let want = ((end - p.offset) as usize).min(buf.len());
            let n = match st.probe.read_at(&mut buf[..want], p.offset) {
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

    pub(super) fn seal_leased(&mut self, name: &[u8], hash: ContentHash) -> Result<()> {
        let st = self.staged.get(name).expect("caller checked");
        let rel = st.rel.clone();
        let meta = st.probe.metadata()?;
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
        let header = match self.table().lookup(&rel) {
            Some(RecordRef::Entry { header, target }) if header.is_staged() && target == name => {
                Some(header)
            }
            _ => None,
        };
        self.staged.remove(name);
        let Some(mut h) = header else {
            return Ok(()); // the entry moved on (unlinked or replaced) meanwhile
        };
        h.flags &= !FLAG_STAGED;
        h.hash = hash;
        h.size = meta.len();
        h.mtime_ns = mtime_ns(&meta);
        h.atime_ns = atime_ns(&meta);
        self.set(&rel, encode(&h, &[]))?;
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
