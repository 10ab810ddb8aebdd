//! The rift as the daemon keeps it: the live hot table (what every process
//! sees), the staged files being written, and the changes on their way to
//! the manifest (journal first, then group commits).
//!
//! Every operation decides on the *view* (rift over disk), with the errno a
//! normal Linux filesystem would give, and changes only the rift: the disk's
//! files and the CAS's blobs are never written. Directories are physical
//! (DESIGN.md §2): mkdir/rmdir act on the disk for directories the rift made.

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

/// A file being written: its view path, and the daemon's read-only probe
/// fd (held open so the "no writer left" test needs no further open).
struct Staged {
    rel: Vec<u8>,
    probe: File,
}

/// The caller of an operation (SO_PEERCRED).
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: u32,
}

pub struct Rift {
    pub project: Project,
    pub cas: Cas,
    manifest: Manifest,
    table: LiveTable,
    id: Identity,
    staging_dir: PathBuf,
    staged: HashMap<Vec<u8>, Staged>,
    /// Anonymous (O_TMPFILE) staging files not linked into the view yet.
    anon: HashMap<Vec<u8>, File>,
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

/// A seal under way: the hash so far. While one exists, the staged file's
/// probe holds a read lease, so no process has it open for writing and its
/// content is what was hashed.
struct Partial {
    hasher: blake3::Hasher,
    offset: u64,
}

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

/// Opens the physical regular file `rel` below `root` for reading, in a way
/// that can neither block nor leave the project: O_NONBLOCK (a FIFO opens
/// at once instead of waiting for a writer), O_NOFOLLOW on the last
/// component, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS on the others, then an
/// fstat that must find a regular file (the name may have been replaced
/// since it was looked at). Anything else is EOPNOTSUPP: a FIFO, socket or
/// device has no content to copy, and reading one could block or never end.
fn open_phys_regular(root: &Path, rel: &[u8]) -> OpResult<File> {
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

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn atime_ns(m: &fs::Metadata) -> i64 {
    m.atime() * 1_000_000_000 + m.atime_nsec()
}

fn encode(h: &RecordHeader, target: &[u8]) -> Vec<u8> {
    let mut v = h.encode().to_vec();
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
            anon: HashMap::new(),
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
                if header.is_staged() {
                    let probe =
                        File::open(rift.staging_dir.join(std::ffi::OsStr::from_bytes(target)));
                    match probe {
                        Ok(probe) => {
                            rift.staged.insert(
                                target.to_vec(),
                                Staged {
                                    rel: rel.to_vec(),
                                    probe,
                                },
                            );
                        }
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

    // ---- recording changes -------------------------------------------------

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
        let now = journal::now_secs();
        self.carried.retain(|_, d| d.young(now));
        let keep: Vec<Done> = self.carried.values().copied().collect();
        self.journal.clear_keeping(&keep)?;
        self.uncommitted.clear();
        Ok(())
    }

    // ---- requests ------------------------------------------------------------

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

    // ---- the domain ----------------------------------------------------------

    /// Refuses a path the library never sends (issue 14: the wire format is
    /// public, and any process of the user can connect): one below
    /// `.vrift/`, the store or the runtime directory when they lie in the
    /// project (vrift's own state is never part of the view: EACCES), and
    /// one with a physical symlink on the way (clients resolve symlinks
    /// before they name a path, so such a path could only lead the daemon
    /// out of the project: ELOOP). The last component is never followed by
    /// the operations themselves (lstat, lchown, openat2 RESOLVE_BENEATH).
    /// Names and lengths were checked before (`is_valid_rift_path`,
    /// NAME_MAX, PATH_MAX).
    pub fn confined(&self, rel: &[u8]) -> std::result::Result<(), i32> {
        if rel.is_empty() {
            return Ok(());
        }
        let below = |dir: &[u8]| rel == dir || rel.starts_with(dir) && rel[dir.len()] == b'/';
        if below(crate::project::STATE_DIR.as_bytes()) {
            return Err(libc::EACCES);
        }
        let root = self.project.root();
        for own in [self.cas.root().to_path_buf(), super::runtime_dir()] {
            if let Ok(inside) = own.strip_prefix(root) {
                let inside = inside.as_os_str().as_bytes();
                if inside.is_empty() || below(inside) {
                    return Err(libc::EACCES);
                }
            }
        }
        let t = self.table();
        for (i, _) in rel.iter().enumerate().filter(|(_, &c)| c == b'/') {
            match fs::symlink_metadata(self.disk(&rel[..i])) {
                // Unless the rift hides it (a whiteout, an entry over it, an
                // opaque directory above): then the view's rules answer.
                Ok(m) if m.file_type().is_symlink() => {
                    return match view::lookup(&t, &rel[..i]) {
                        Found::Disk => Err(libc::ELOOP),
                        _ => Ok(()),
                    };
                }
                Ok(_) => {}
                // Nothing physical below a missing directory.
                Err(_) => break,
            }
        }
        Ok(())
    }

    // ---- the view ------------------------------------------------------------

    /// What `rel` names in the view.
    pub fn node(&self, rel: &[u8]) -> Node {
        let t = self.table();
        match view::lookup(&t, rel) {
            Found::Error(libc::ENOTDIR) => Node::NotDir,
            Found::Error(_) => Node::Absent,
            // Clients resolve rift symlinks before they name a path: one
            // on the way here is not a directory to the daemon, which
            // never follows a link on a client's behalf.
            Found::Symlink { .. } => Node::NotDir,
            Found::Entry { header, target } => Node::Entry(header, target.to_vec()),
            Found::Disk => match beneath::lstat(self.root(), rel) {
                Ok(m) if m.is_dir() => Node::Dir,
                Ok(m) => Node::Phys(m),
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Node::NotDir,
                // A symlink on the way (swapped in since `confined`): the
                // daemon never follows one.
                Err(e) if beneath::refused(&e) => Node::NotDir,
                Err(_) if view::missing_errno(&t, rel) == libc::ENOTDIR => Node::NotDir,
                Err(_) => Node::Absent,
            },
        }
    }

    /// The parent of a path about to be created must be a directory.
    fn check_parent(&self, rel: &[u8]) -> OpResult<()> {
        if rel.is_empty() {
            return posix(libc::EEXIST);
        }
        match self.node(parent_rel(rel)) {
            Node::Dir => Ok(()),
            Node::Absent => posix(libc::ENOENT),
            _ => posix(libc::ENOTDIR),
        }
    }

    /// The names a directory of the view lists (rift and disk merged).
    pub fn list(&self, rel: &[u8]) -> Vec<Vec<u8>> {
        let t = self.table();
        let mut names: Vec<Vec<u8>> = Vec::new();
        if let Some(d) = t.dir(rel) {
            for (name, rec) in d.children() {
                if matches!(rec, RecordRef::Entry { .. }) {
                    names.push(name.to_vec());
                }
            }
        }
        let hidden = view::hides_disk_names(&t, rel);
        if let Ok(rd) = beneath::read_dir(self.root(), rel) {
            for e in rd {
                let name = e.into_vec();
                if view::disk_name_shows(&t, &join_rel(rel, &name), hidden) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The blobs of the rift files a reader of `rel` is likely to open next,
    /// for the fetcher to prefetch (see `fetch.rs`): the other files of its
    /// directory, then the files of the same name in the other directories
    /// of its parent (`node_modules/*/package.json`, `src/*/mod.rs`: what
    /// resolvers walk). At most `max`, each at most `max_size` bytes; staged
    /// files (no blob yet) are left out. No blob is looked at here (the
    /// fetcher skips those in the store): one listing of the parent
    /// directory and table lookups.
    pub fn neighbours(&self, rel: &[u8], max: usize, max_size: u64) -> Vec<(ContentHash, u64)> {
        let t = self.table();
        let blob = |rec: RecordRef<'_>| match rec {
            RecordRef::Entry { header, .. }
                if header.kind == Kind::File && !header.is_staged() && header.size <= max_size =>
            {
                Some((header.hash, header.size))
            }
            _ => None,
        };
        let mut out: Vec<(ContentHash, u64)> = Vec::new();
        if let Some(d) = t.dir(parent_rel(rel)) {
            out.extend(d.children().take(max).filter_map(|(_, rec)| blob(rec)));
        }
        let (Some(i), name) = (
            rel.iter().rposition(|&c| c == b'/'),
            rel.rsplit(|&c| c == b'/').next().unwrap_or_default(),
        ) else {
            out.truncate(max);
            return out;
        };
        let grand = parent_rel(&rel[..i]);
        if let Ok(rd) = beneath::read_dir(self.root(), grand) {
            // Directories are physical: the disk lists the cousins' parents.
            for e in rd.into_iter().take(4 * max) {
                if out.len() >= max {
                    break;
                }
                let sub = join_rel(grand, e.as_bytes());
                if sub == rel[..i] {
                    continue;
                }
                out.extend(t.lookup(&join_rel(&sub, name)).and_then(blob));
            }
        }
        out.truncate(max);
        out
    }

    fn is_empty_dir(&self, rel: &[u8]) -> bool {
        self.list(rel).is_empty()
    }

    // ---- staging -------------------------------------------------------------

    fn new_staging(&mut self) -> Result<(Vec<u8>, PathBuf, File)> {
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
    fn stage_copy(
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

    fn register_staged(&mut self, name: &[u8], rel: &[u8]) -> Result<()> {
        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(name));
        let probe = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        self.staged.insert(
            name.to_vec(),
            Staged {
                rel: rel.to_vec(),
                probe,
            },
        );
        Ok(())
    }

    /// The group a new entry at `rel` gets: a set-group-ID parent
    /// directory's (as the kernel's `inode_init_owner`), else the project
    /// root's owner's ([`OWNER_INHERIT`]).
    fn new_entry_gid(&self, rel: &[u8]) -> u32 {
        match beneath::lstat(self.root(), parent_rel(rel)) {
            Ok(m) if m.mode() & libc::S_ISGID != 0 => m.gid(),
            _ => OWNER_INHERIT,
        }
    }

    /// A staged record with the metadata of `like`, or new with `mode` and
    /// group `gid`.
    fn staged_record(
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
        };
        Ok(encode(&h, name))
    }

    /// Opens `rel` for writing (DESIGN.md §2: a staging file, visible at once).
    pub fn open_write(
        &mut self,
        caller: Caller,
        rel: &[u8],
        flags: i32,
        mode: u32,
    ) -> OpResult<Opened> {
        let creat = flags & libc::O_CREAT != 0;
        let excl = flags & libc::O_EXCL != 0;
        let trunc = flags & libc::O_TRUNC != 0;
        let access = flags & libc::O_ACCMODE;
        if flags & libc::O_TMPFILE == libc::O_TMPFILE {
            return self.open_tmpfile(rel, flags, mode);
        }
        let node = self.node(rel);
        let (name, header_mode, ino) = match &node {
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
                return posix(if creat && excl { libc::EEXIST } else { PASS });
            }
            Node::Entry(..) | Node::Phys(_) if creat && excl => return posix(libc::EEXIST),
            Node::Entry(h, _) if h.kind == Kind::Special => {
                // Clients open a special file's node themselves (the
                // library's `open_special`); nothing here to stage.
                return posix(libc::EOPNOTSUPP);
            }
            Node::Entry(h, target) => {
                if caller.uid != 0 && h.mode & 0o200 == 0 && access != libc::O_RDONLY {
                    return posix(libc::EACCES);
                }
                if h.is_staged() {
                    if trunc && access != libc::O_RDONLY {
                        self.abort_seal(target);
                        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(target));
                        OpenOptions::new().write(true).open(&path)?.set_len(0)?;
                    }
                    (target.clone(), h.mode, h.ino)
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
                    self.set(rel, rec)?;
                    (name, h.mode, h.ino)
                }
            }
            Node::Phys(m) => {
                if caller.uid != 0 && m.mode() & 0o200 == 0 && access != libc::O_RDONLY {
                    return posix(libc::EACCES);
                }
                let (name, _) = self.stage_copy(&node, rel, trunc)?;
                let mode = m.mode();
                let rec = self.staged_record(None, mode, OWNER_INHERIT, false, &name)?;
                self.register_staged(&name, rel)?;
                self.set(rel, rec)?;
                let ino = record_ino(&self.table(), rel);
                (name, mode, ino)
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
                (name, mode, ino)
            }
        };
        let fd = self.open_staging(&name, flags)?;
        Ok(Opened {
            fd,
            ino,
            mode: header_mode,
            name,
        })
    }

    fn open_staging(&mut self, name: &[u8], flags: i32) -> OpResult<OwnedFd> {
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

    fn open_tmpfile(&mut self, dir: &[u8], flags: i32, mode: u32) -> OpResult<Opened> {
        match self.node(dir) {
            Node::Dir => {}
            Node::Absent => return posix(libc::ENOENT),
            _ => return posix(libc::ENOTDIR),
        }
        let (name, path, file) = self.new_staging()?;
        drop(file);
        // A read-only probe: the lease test needs every writer to be the client's.
        let probe = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        self.anon.insert(name.clone(), probe);
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
        if !self.anon.contains_key(name) {
            return posix(libc::ENOENT);
        }
        if self.node(rel).exists() {
            return posix(libc::EEXIST);
        }
        self.check_parent(rel)?;
        let file = self.anon.remove(name).expect("checked above");
        drop(file);
        let gid = self.new_entry_gid(rel);
        let rec = self.staged_record(None, libc::S_IFREG | (mode & 0o7777), gid, false, name)?;
        self.register_staged(name, rel)?;
        self.set(rel, rec)?;
        Ok(())
    }

    // ---- sealing ---------------------------------------------------------------

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
    fn abort_seal(&mut self, name: &[u8]) {
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
    fn hash_some(&mut self, name: &[u8], budget: u64) -> Result<bool> {
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

    fn seal_leased(&mut self, name: &[u8], hash: ContentHash) -> Result<()> {
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

    /// Forgets a staged file whose entry left the view (the writers keep
    /// their fds, as with an unlinked file).
    fn drop_staged(&mut self, h: &RecordHeader, target: &[u8]) {
        if h.is_staged() {
            self.sealing.remove(target);
            self.staged.remove(target);
            let _ = fs::remove_file(self.staging_dir.join(std::ffi::OsStr::from_bytes(target)));
        }
    }

    /// A sealed record of the physical file at `rel` (copied into the CAS).
    fn copy_up(&mut self, rel: &[u8], m: &fs::Metadata) -> OpResult<RecordHeader> {
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
        };
        let _ = target;
        Ok(h)
    }

    /// The record of a non-directory in the view, copied up from the disk
    /// if needed (with its symlink target).
    fn entry_of(&mut self, rel: &[u8], node: &Node) -> OpResult<(RecordHeader, Vec<u8>)> {
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

    // ---- mutations -------------------------------------------------------------

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
                // The daemon's umask is 0: the client applied its own.
                if let Err(e) = beneath::mkdir(self.root(), rel, mode & 0o7777) {
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
    fn remove_dir_in_view(&mut self, rel: &[u8], own_request: bool) -> Result<()> {
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
    fn records_under(&self, rel: &[u8]) -> Vec<Vec<u8>> {
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
        let hides = beneath::lstat(self.root(), rel).is_ok_and(|m| m.is_dir());
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
            gid: self.new_entry_gid(rel),
            atime_ns: now,
        };
        self.set(rel, encode(&h, target))?;
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
        let hides = beneath::lstat(self.root(), rel).is_ok_and(|m| m.is_dir());
        let now = now_ns();
        let h = RecordHeader {
            kind: Kind::Special,
            flags: if hides { FLAG_HIDES_DIR } else { 0 },
            mode: (mode & libc::S_IFMT) | (mode & 0o7777),
            size: rdev,
            mtime_ns: now,
            ino: self.alloc_ino()?,
            hash: ContentHash::default(),
            uid: OWNER_INHERIT,
            gid: self.new_entry_gid(rel),
            atime_ns: now,
        };
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
                let h = *h;
                let mut rec = self.staged_record(Some(&h), 0, OWNER_INHERIT, false, &name)?;
                rec[24..32].copy_from_slice(&self.alloc_ino()?.to_le_bytes());
                self.register_staged(&name, new)?;
                self.set(new, rec)?;
                return Ok(());
            }
        }
        let node = self.node(old);
        let (mut h, target) = self.entry_of(old, &node)?;
        h.ino = self.alloc_ino()?;
        h.flags &= !(FLAG_PHANTOM | FLAG_HIDES_DIR);
        if beneath::lstat(self.root(), new).is_ok_and(|m| m.is_dir()) {
            h.flags |= FLAG_HIDES_DIR;
        }
        self.set(new, encode(&h, &target))?;
        Ok(())
    }

    pub fn rename(&mut self, old: &[u8], new: &[u8], flags: u32) -> OpResult<()> {
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if (noreplace && exchange) || flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0
        {
            return posix(libc::EINVAL);
        }
        if old.is_empty() || new.is_empty() {
            return posix(libc::EBUSY);
        }
        let src = self.node(old);
        match src {
            Node::Absent => return posix(libc::ENOENT),
            Node::NotDir => return posix(libc::ENOTDIR),
            _ => {}
        }
        if old == new {
            return Ok(());
        }
        if new.starts_with(old) && new.get(old.len()) == Some(&b'/') && src.is_dir() {
            return posix(libc::EINVAL);
        }
        let dst = self.node(new);
        if let Node::NotDir = dst {
            return posix(libc::ENOTDIR);
        }
        if !dst.exists() {
            if exchange {
                return posix(libc::ENOENT);
            }
            self.check_parent(new)?;
        } else if noreplace {
            return posix(libc::EEXIST);
        }
        if exchange {
            if src.is_dir() || dst.is_dir() {
                if old.starts_with(new) && old.get(new.len()) == Some(&b'/') {
                    return posix(libc::EINVAL);
                }
                return self.exchange_dirs(old, new, &src, &dst);
            }
            let (a, at) = self.entry_of(old, &src)?;
            let (b, bt) = self.entry_of(new, &dst)?;
            self.move_staged(&at, &a, new);
            self.move_staged(&bt, &b, old);
            let a = self.with_hides(new, a);
            let b = self.with_hides(old, b);
            self.record(vec![
                Change::Set(new.to_vec(), encode(&a, &at)),
                Change::Set(old.to_vec(), encode(&b, &bt)),
            ])?;
            return Ok(());
        }
        if src.is_dir() {
            match &dst {
                Node::Dir => {
                    if !self.is_empty_dir(new) {
                        return posix(libc::ENOTEMPTY);
                    }
                }
                Node::Absent => {}
                _ => return posix(libc::ENOTDIR),
            }
            return self.rename_dir(old, new, &dst);
        }
        if dst.is_dir() {
            return posix(libc::EISDIR);
        }
        let (h, target) = self.entry_of(old, &src)?;
        if let Node::Entry(dh, dt) = &dst {
            if !(dh.is_staged() && h.is_staged() && dt == &target) {
                self.drop_staged(dh, dt);
            }
        }
        self.move_staged(&target, &h, new);
        let h = self.with_hides(new, h);
        let mut changes = vec![Change::Set(new.to_vec(), encode(&h, &target))];
        let below = beneath::lstat(self.root(), old).is_ok() || self.phantom(old)?.is_some();
        changes.push(if below {
            Change::Set(old.to_vec(), WHITEOUT_RECORD.to_vec())
        } else {
            Change::Remove(old.to_vec())
        });
        self.record(changes)?;
        Ok(())
    }

    fn with_hides(&self, rel: &[u8], mut h: RecordHeader) -> RecordHeader {
        h.flags &= !(FLAG_PHANTOM | FLAG_HIDES_DIR);
        if beneath::lstat(self.root(), rel).is_ok_and(|m| m.is_dir()) {
            h.flags |= FLAG_HIDES_DIR;
        }
        h
    }

    fn move_staged(&mut self, target: &[u8], h: &RecordHeader, to: &[u8]) {
        if h.is_staged() {
            if let Some(st) = self.staged.get_mut(target) {
                st.rel = to.to_vec();
            }
        }
    }

    /// Renames a directory of the view. A directory the rift made, with
    /// nothing physical but directories below it, moves on disk with its
    /// records; any other is copied up into the rift at the new place and
    /// hidden at the old one.
    fn rename_dir(&mut self, old: &[u8], new: &[u8], dst: &Node) -> OpResult<()> {
        if let Node::Dir = dst {
            self.remove_dir_in_view(new, false)?;
        }
        // Build the new tree: directories on disk, entries in the rift.
        let mut changes = Vec::new();
        let mut dirs = vec![(old.to_vec(), new.to_vec())];
        let mut staged_moves = Vec::new();
        while let Some((from, to)) = dirs.pop() {
            let mode = beneath::lstat(self.root(), &from)
                .map(|m| m.mode())
                .unwrap_or(0o755);
            match beneath::lstat(self.root(), &to) {
                // A directory the disk had (hidden): it shows only what
                // moves in, with the moved directory's mode, and is never
                // marked as made by the rift.
                Ok(m) if m.is_dir() => {
                    beneath::chmod(self.root(), &to, mode)?;
                    changes.push(Change::Dir(
                        to.clone(),
                        DIR_OPAQUE | (self.dir_flags(&to) & DIR_CREATED),
                    ))
                }
                Ok(_) => return posix(libc::EEXIST),
                Err(_) => {
                    beneath::mkdir(self.root(), &to, 0o700)?;
                    beneath::chmod(self.root(), &to, mode)?;
                    changes.push(Change::Dir(to.clone(), DIR_CREATED));
                }
            }
            if matches!(self.table().lookup(&to), Some(RecordRef::Whiteout)) {
                changes.push(Change::Remove(to.clone()));
            }
            for name in self.list(&from) {
                let f = join_rel(&from, &name);
                let t = join_rel(&to, &name);
                let node = self.node(&f);
                if node.is_dir() {
                    dirs.push((f, t));
                    continue;
                }
                let (h, target) = self.entry_of(&f, &node)?;
                if h.is_staged() {
                    staged_moves.push((target.clone(), t.clone()));
                }
                let h = self.with_hides(&t, h);
                changes.push(Change::Set(t, encode(&h, &target)));
            }
        }
        for (name, to) in staged_moves {
            if let Some(st) = self.staged.get_mut(&name) {
                st.rel = to;
            }
        }
        self.record(changes)?;
        // The old tree leaves the view: empty rift-made directories leave
        // the disk, everything else is hidden.
        self.remove_tree_in_view(old)?;
        Ok(())
    }

    /// Removes a whole subtree from the view (after its content moved).
    fn remove_tree_in_view(&mut self, rel: &[u8]) -> Result<()> {
        let mut order = Vec::new();
        let mut stack = vec![rel.to_vec()];
        while let Some(d) = stack.pop() {
            for name in self.list(&d) {
                let c = join_rel(&d, &name);
                if self.node(&c).is_dir() {
                    stack.push(c.clone());
                } else {
                    // Entries were moved (staged ones keep their file).
                    let below =
                        beneath::lstat(self.root(), &c).is_ok() || self.phantom(&c)?.is_some();
                    self.record(vec![if below {
                        Change::Set(c.clone(), WHITEOUT_RECORD.to_vec())
                    } else {
                        Change::Remove(c.clone())
                    }])?;
                }
            }
            order.push(d);
        }
        for d in order.iter().rev() {
            self.remove_dir_in_view(d, false)?;
        }
        Ok(())
    }

    fn exchange_dirs(&mut self, a: &[u8], b: &[u8], na: &Node, nb: &Node) -> OpResult<()> {
        // Through a temporary name in a's parent: a → tmp, b → a, tmp → b.
        let mut tmp = parent_rel(a).to_vec();
        if !tmp.is_empty() {
            tmp.push(b'/');
        }
        tmp.extend_from_slice(format!(".vrift-exchange.{}", std::process::id()).as_bytes());
        let _ = (na, nb);
        self.rename(a, &tmp, 0)?;
        self.rename(b, a, 0)?;
        self.rename(&tmp, b, 0)?;
        Ok(())
    }

    /// Sets metadata of a view entry, copying a physical file up first.
    fn update_entry(&mut self, rel: &[u8], f: impl FnOnce(&mut RecordHeader)) -> OpResult<()> {
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
                beneath::chmod(self.root(), rel, mode)?;
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

    pub fn truncate(&mut self, caller: Caller, rel: &[u8], len: u64) -> OpResult<()> {
        if matches!(self.node(rel), Node::Entry(h, _) if h.kind == Kind::Special) {
            return posix(libc::EINVAL); // as the kernel, for anything not regular
        }
        let opened = self.open_write(caller, rel, libc::O_WRONLY, 0)?;
        let file = File::from(opened.fd);
        file.set_len(len)?;
        drop(file);
        // One slice now; a large file is sealed between later requests
        // (its close event schedules the rest).
        let _ = self.seal_step(&opened.name, SEAL_SLICE);
        Ok(())
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
        self.staged.contains_key(name) || self.anon.contains_key(name)
    }

    /// Drops anonymous staging files no process holds any more.
    pub fn reap_anon(&mut self) {
        let names: Vec<Vec<u8>> = self.anon.keys().cloned().collect();
        for name in names {
            let f = &self.anon[&name];
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

    pub fn staging_path(&self, name: &[u8]) -> PathBuf {
        self.staging_dir.join(std::ffi::OsStr::from_bytes(name))
    }

    pub fn root(&self) -> &Path {
        self.project.root()
    }
}

/// errno value telling the client to pass the call to libc unchanged
/// (a fifo, socket or device in the domain).
pub const PASS: i32 = -1;

fn record_ino(t: &Table<'_>, rel: &[u8]) -> u64 {
    match t.lookup(rel) {
        Some(RecordRef::Entry { header, .. }) => header.ino,
        _ => 0,
    }
}
