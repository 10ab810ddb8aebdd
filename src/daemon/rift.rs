//! The rift as the daemon keeps it: the live hot table (what every process
//! sees), the staged files being written, and the changes on their way to
//! the manifest (journal first, then group commits).
//!
//! Every operation decides on the *view* (rift over disk), with the errno a
//! normal Linux filesystem would give, and changes only the rift: the disk's
//! files and the CAS's blobs are never written. Directories are physical
//! (DESIGN.md §2): mkdir/rmdir act on the disk for directories the rift made.

mod links;
mod lookup;
pub use lookup::{Ring, Wanted};
mod ops;
mod perm;
mod rename;
mod seal;
mod staging;
#[cfg(test)]
mod testkit;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::beneath;
use vrift_format::table::Table;
use vrift_format::view::{self, Found};
use vrift_format::{
    ContentHash, Kind, RecordHeader, RecordRef, DIR_CREATED, DIR_OPAQUE, FLAG_HIDES_DIR,
    FLAG_PHANTOM, FLAG_STAGED, OWNER_INHERIT, STAGING_DIR, WHITEOUT_RECORD,
};

use super::journal::{self, Change, Done, Journal};
use super::live::{Identity, LiveTable};
use crate::cas::Cas;
use crate::lock::LockMode;
use crate::manifest::{Layer, Manifest};
use crate::paths::{join_rel, parent_rel};
use crate::project::Project;

/// An errno for the client, or an internal failure (reported as EIO).
pub type OpResult<T> = std::result::Result<T, Errno>;

#[derive(Debug)]
pub enum Errno {
    Posix(i32),
    /// Nothing done: the path is a FIFO, socket or device of the disk, and
    /// the client passes the call to libc unchanged (`REPLY_PASS`).
    Pass,
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Errno {
    fn from(e: anyhow::Error) -> Errno {
        Errno::Internal(e)
    }
}

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Errno {
        match e.raw_os_error() {
            Some(code) if code == libc::ENOSPC || code == libc::EDQUOT => Errno::Posix(code),
            _ => Errno::Internal(e.into()),
        }
    }
}

fn posix<T>(code: i32) -> OpResult<T> {
    Err(Errno::Posix(code))
}

/// What a path names in the view.
#[derive(Debug)]
pub enum Node {
    /// A rift file or symlink (its record and symlink target / staging name).
    Entry(RecordHeader, Vec<u8>),
    /// A physical directory (not hidden).
    Dir,
    /// A physical non-directory (not hidden).
    Phys(fs::Metadata),
    Absent,
    /// A component on the way is not a directory.
    NotDir,
}

impl Node {
    fn exists(&self) -> bool {
        !matches!(self, Node::Absent | Node::NotDir)
    }
    fn is_dir(&self) -> bool {
        matches!(self, Node::Dir)
    }
}

/// A file being written: its view path. The daemon holds no fd for it (a
/// build may keep more files open for writing than the daemon may hold
/// fds): the read-only probe that takes the seal's lease is opened when a
/// seal starts (see [`Partial`]).
struct Staged {
    /// Every name of the file (more than one: hard links, see links.rs).
    rels: Vec<Vec<u8>>,
}

pub use perm::Caller;

pub struct Rift {
    pub project: Project,
    pub cas: Cas,
    manifest: Manifest,
    table: LiveTable,
    id: Identity,
    staging_dir: PathBuf,
    staged: HashMap<Vec<u8>, Staged>,
    /// The names of every inode that has more than one (see links.rs).
    inodes: HashMap<u64, std::collections::BTreeSet<Vec<u8>>>,
    /// Anonymous (O_TMPFILE) staging files not linked into the view yet.
    anon: std::collections::HashSet<Vec<u8>>,
    /// Changes journaled and not yet committed to the manifest.
    uncommitted: Vec<Change>,
    journal: Journal,
    /// The request being answered, its changes so far (journaled as one
    /// entry when it ends, see [`Rift::begin_request`]), and whether its id
    /// was journaled already (see [`Rift::journal_request_now`]).
    request: Option<(Done, Vec<Change>, bool)>,
    /// Requests a daemon before this one journaled: a client whose answer
    /// was lost asks again with the same id (see journal.rs, "Request ids").
    carried: HashMap<u64, Done>,
    next_ino: u64,
    ino_end: u64,
    name_prefix: String,
    name_seq: u64,
    /// Staging names of sealed files, kept (hard links to their blobs) for
    /// [`RETIRED_GRACE`] after the sealed record was published: a process
    /// that resolved the entry just before still opens or stats the file
    /// by that name.
    retired: Vec<(PathBuf, Instant)>,
    /// Seals under way, by staging name: a large file is hashed a slice
    /// at a time between requests (see [`Rift::seal_step`]).
    sealing: HashMap<Vec<u8>, Partial>,
}

/// A seal under way: the hash so far, and the read-only probe holding a
/// read lease on the staged file (so no process has it open for writing
/// and its content is what was hashed; closing the probe ends the lease).
struct Partial {
    hasher: blake3::Hasher,
    offset: u64,
    probe: File,
}

/// Most seals under way at once, each holding its probe's fd: past this,
/// a seal waits for the next sweep (the daemon's fds stay bounded however
/// many files a build keeps open).
const MAX_SEALING: usize = 64;

/// How much of a staged file one step of a seal hashes: small enough that
/// other clients wait at most a few tens of milliseconds behind a seal.
pub const SEAL_SLICE: u64 = 16 << 20;

/// What one step of a seal did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seal {
    /// Sealed into the store (or the file was gone).
    Done,
    /// Not now: a writer has it open, or a `gc --delete` runs.
    NotNow,
    /// Part of it hashed: call again.
    More,
}

/// How long a sealed file's staging name outlives its sealed record.
const RETIRED_GRACE: Duration = Duration::from_secs(1);

/// How a file opened for writing comes back to the client.
pub struct Opened {
    pub fd: OwnedFd,
    pub ino: u64,
    pub mode: u32,
    pub name: Vec<u8>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn ctime_ns(m: &fs::Metadata) -> i64 {
    m.ctime() * 1_000_000_000 + m.ctime_nsec()
}

fn atime_ns(m: &fs::Metadata) -> i64 {
    m.atime() * 1_000_000_000 + m.atime_nsec()
}

fn encode(h: &RecordHeader, target: &[u8]) -> Vec<u8> {
    let mut v = h.encode().as_bytes().to_vec();
    v.extend_from_slice(target);
    v
}

/// The journal file of a project.
pub fn journal_path(project: &Project) -> PathBuf {
    project.state_dir().join("daemon.journal")
}

/// The staging directory of a store.
pub fn staging_dir(cas: &Cas) -> PathBuf {
    cas.root().join(STAGING_DIR)
}

impl Rift {
    /// Loads the project: replays a leftover journal, builds the live
    /// table, and picks up files that were staged when a daemon died.
    pub fn open(project: Project, cas: Cas, manifest: Manifest, id: Identity) -> Result<Rift> {
        let jpath = journal_path(&project);
        journal::replay(&jpath, &manifest)?;
        // After the replay the journal holds only request ids.
        let mut journal = Journal::open(&jpath)?;
        let now = journal::now_secs();
        let carried = journal
            .read_all()?
            .done
            .into_iter()
            .filter(|d| d.young(now))
            .map(|d| (d.id, d))
            .collect();
        let view = crate::table::collect(&manifest)?;
        let table = LiveTable::create(&project, &id, &view.records, &view.dir_flags, view.hiding)?;
        let staging_dir = staging_dir(&cas);
        fs::create_dir_all(&staging_dir)
            .with_context(|| format!("cannot create {}", staging_dir.display()))?;
        let txn = manifest.write()?;
        let next_ino = txn.alloc_inos(1 << 16)?;
        txn.commit()?;
        let pid = std::process::id();
        let mut rift = Rift {
            name_prefix: format!("{}.{}.{}", super::project_key(&project), pid, now_ns()),
            project,
            cas,
            manifest,
            table,
            id,
            staging_dir,
            staged: HashMap::new(),
            inodes: HashMap::new(),
            anon: Default::default(),
            uncommitted: Vec::new(),
            journal,
            request: None,
            carried,
            next_ino,
            ino_end: next_ino + (1 << 16),
            name_seq: 0,
            retired: Vec::new(),
            sealing: HashMap::new(),
        };
        for (rel, rec) in &view.records {
            if let Ok(RecordRef::Entry { header, target }) = vrift_format::decode_record(rec) {
                if header.links > 0 {
                    rift.inodes
                        .entry(header.ino)
                        .or_default()
                        .insert(rel.to_vec());
                }
                if header.is_staged() {
                    let probe = fs::symlink_metadata(
                        rift.staging_dir.join(std::ffi::OsStr::from_bytes(target)),
                    );
                    match probe {
                        Ok(_) => rift.add_staged_name(target, rel),
                        Err(e) => eprintln!(
                            "vrift daemon: the staging file of {} is gone ({e}); the entry is dropped",
                            crate::paths::display(rel)
                        ),
                    }
                }
            }
        }
        rift.remove_stale_staging();
        Ok(rift)
    }

    /// Removes this project's staging names that no staged entry refers to:
    /// retired names (sealed files) and unlinked anonymous files that a
    /// daemon which died left behind. (One daemon per project: nothing else
    /// creates these names meanwhile.)
    fn remove_stale_staging(&self) {
        let prefix = format!("{}.", super::project_key(&self.project));
        let Ok(entries) = fs::read_dir(&self.staging_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.starts_with(prefix.as_bytes()) && !self.staged.contains_key(name) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Removes the retired staging names older than [`RETIRED_GRACE`]
    /// (all of them with `all`, when the daemon exits).
    pub fn remove_retired(&mut self, all: bool) {
        let now = Instant::now();
        self.retired.retain(|(path, since)| {
            if all || now.duration_since(*since) >= RETIRED_GRACE {
                let _ = fs::remove_file(path);
                false
            } else {
                true
            }
        });
    }

    pub fn table(&self) -> Table<'_> {
        self.table
            .table()
            .expect("the live table validated at creation")
    }

    pub fn staged_count(&self) -> usize {
        self.staged.len() + self.anon.len()
    }

    pub fn uncommitted(&self) -> usize {
        self.uncommitted.len()
    }

    fn alloc_ino(&mut self) -> Result<u64> {
        if self.next_ino >= self.ino_end {
            let txn = self.manifest.write()?;
            self.next_ino = txn.alloc_inos(1 << 16)?;
            txn.commit()?;
            self.ino_end = self.next_ino + (1 << 16);
        }
        self.next_ino += 1;
        Ok(self.next_ino - 1)
    }

    fn disk(&self, rel: &[u8]) -> PathBuf {
        self.project.disk_path(rel)
    }

    fn phantom(&self, rel: &[u8]) -> Result<Option<Vec<u8>>> {
        let txn = self.manifest.read()?;
        Ok(txn.get(Layer::Phantom, rel)?.map(|r| r.encode()))
    }

    fn record(&mut self, changes: Vec<Change>) -> Result<()> {
        match &mut self.request {
            // Journaled when the request ends, all together.
            Some((_, pending, _)) => pending.extend(changes.iter().cloned()),
            None => self.journal.append(&changes)?,
        }
        for c in &changes {
            self.apply_to_table(c)?;
        }
        self.uncommitted.extend(changes);
        Ok(())
    }

    fn apply_to_table(&mut self, c: &Change) -> Result<()> {
        let at = match c {
            Change::Set(p, _) | Change::Remove(p) => Some(p.as_slice()),
            Change::Dir(..) => None,
        };
        let before = at.and_then(|p| self.linked_ino(p));
        self.apply_to_table_only(c)?;
        if let Some(p) = at {
            let after = self.linked_ino(p);
            if before != after {
                self.reindex(p, before, after);
            }
        }
        Ok(())
    }

    fn apply_to_table_only(&mut self, c: &Change) -> Result<()> {
        loop {
            let res = match c {
                Change::Set(p, r) => self.table.set(p, r),
                Change::Remove(p) => match self.phantom(p)? {
                    Some(r) => self.table.set(p, &r),
                    None => {
                        self.table.tombstone(p);
                        Ok(())
                    }
                },
                Change::Dir(p, f) => self.table.set_dir_flags(p, *f),
            };
            match res {
                Ok(()) => return Ok(()),
                Err(super::live::Full) => self.table.rebuild(&self.project, &self.id)?,
            }
        }
    }

    /// Rebuilds the hot table if in-place updates have scattered it (see
    /// [`LiveTable::fragmented`]); for quiet moments, since every process
    /// that mapped it maps the new generation at its next lookup.
    pub fn compact_table(&mut self) -> Result<()> {
        if !self.table.fragmented() {
            return Ok(());
        }
        self.table
            .rebuild(&self.project, &self.id)
            .inspect_err(|_| self.table.accept_fragments())
    }

    /// Whether [`Rift::compact_table`] has something to do.
    pub fn table_fragmented(&self) -> bool {
        self.table.fragmented()
    }

    /// Sets the rift record at `rel`.
    fn set(&mut self, rel: &[u8], rec: Vec<u8>) -> Result<()> {
        self.record(vec![Change::Set(rel.to_vec(), rec)])
    }

    /// Removes `rel` from the view: a whiteout where something lies below
    /// (the disk or the phantom layer), else no record at all.
    fn delete(&mut self, rel: &[u8]) -> Result<()> {
        let below = beneath::lstat(self.root(), rel).is_ok() || self.phantom(rel)?.is_some();
        if below {
            self.set(rel, WHITEOUT_RECORD.to_vec())
        } else {
            self.record(vec![Change::Remove(rel.to_vec())])
        }
    }

    fn dir_flags(&self, rel: &[u8]) -> u8 {
        self.table().dir(rel).map(|d| d.flags as u8).unwrap_or(0)
    }

    fn set_dir(&mut self, rel: &[u8], flags: u8) -> Result<()> {
        self.record(vec![Change::Dir(rel.to_vec(), flags)])
    }

    /// Commits the journaled changes to the manifest (one transaction).
    /// Never between a request and its answer (the server commits between
    /// requests): the journal must hold every request whose answer a
    /// killed daemon did not send.
    pub fn commit(&mut self) -> Result<()> {
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        journal::apply(&self.manifest, &self.uncommitted)?;
        crate::failpoint::hit("commit.applied");
        let now = journal::now_secs();
        self.carried.retain(|_, d| d.young(now));
        let keep: Vec<Done> = self.carried.values().copied().collect();
        self.journal.clear_keeping(&keep)?;
        self.uncommitted.clear();
        Ok(())
    }

    /// Starts answering request `id` (the client's, never 0): its changes
    /// are held until [`Rift::end_request`] journals them as one entry with
    /// the id, so that a daemon killed in between loses all of them or
    /// none, and the next daemon knows whether it was done.
    pub fn begin_request(&mut self, id: u64, op: u8) {
        let done = Done {
            id,
            op,
            at: journal::now_secs(),
        };
        self.request = Some((done, Vec::new(), false));
    }

    /// Journals the request's id (and its changes so far) now, before the
    /// request acts on the disk (makes or removes a directory): a daemon
    /// killed right after that act leaves a journal saying the request was
    /// done, so its retry is answered "done" instead of finding its own
    /// directory (EEXIST) or its absence (ENOENT). If the act then fails,
    /// [`Rift::end_request`] journals the id as cancelled.
    fn journal_request_now(&mut self) -> Result<()> {
        if let Some((done, pending, early)) = &mut self.request {
            self.journal.append_request(done, pending)?;
            pending.clear();
            *early = true;
        }
        Ok(())
    }

    /// Journals the request begun last. A request that failed is journaled
    /// without its id (a retry then acts again and answers as it finds the
    /// rift), or, if its id was journaled early, as cancelled; one that
    /// succeeded is journaled even without changes (its retry must still be
    /// answered as done).
    pub fn end_request(&mut self, ok: bool) -> Result<()> {
        let Some((done, changes, early)) = self.request.take() else {
            return Ok(());
        };
        if early && !ok {
            let cancelled = Done {
                op: journal::CANCELLED,
                ..done
            };
            self.journal.append_request(&cancelled, &changes)
        } else if ok && (!early || !changes.is_empty()) {
            self.journal.append_request(&done, &changes)
        } else if !changes.is_empty() {
            self.journal.append(&changes)
        } else {
            Ok(())
        }
    }

    /// Whether request `id` with `op` was done by a daemon before this one.
    pub fn done_before(&self, id: u64, op: u8) -> bool {
        self.carried.get(&id).is_some_and(|d| d.op == op)
    }

    /// A short human-readable state summary.
    pub fn status(&self) -> String {
        format!(
            "pid {}\nproject {}\nstaged files: {}\nuncommitted changes: {}\ntable generation: {}\n",
            std::process::id(),
            self.project.root().display(),
            self.staged_count(),
            self.uncommitted.len(),
            self.table.generation()
        )
    }

    /// Whether `name` is a staged file still waiting for its seal.
    pub fn is_staged(&self, name: &[u8]) -> bool {
        self.staged.contains_key(name)
    }

    /// Whether `name` (a staging file name) belongs to this daemon's project.
    pub fn owns_staging_name(&self, name: &[u8]) -> bool {
        self.staged.contains_key(name) || self.anon.contains(name)
    }

    pub fn staging_path(&self, name: &[u8]) -> PathBuf {
        self.staging_dir.join(std::ffi::OsStr::from_bytes(name))
    }

    pub fn root(&self) -> &Path {
        self.project.root()
    }
}
