//! `vrift ingest`: move files from the disk into the CAS and record them in
//! the phantom layer, leaving directories on disk.
//!
//! Each batch of files goes through three steps:
//!
//! 1. **hash** (all cores): read each file in place; nothing changes on disk.
//! 2. **commit**: one manifest transaction records the batch's entries *and* a
//!    journal row per file (`pending_ingest`) with the identity (dev, ino,
//!    size, mtime) the file had when it was hashed.
//! 3. **move** (all cores): a file whose blob exists is unlinked; otherwise it
//!    is renamed into the store's `tmp/` as `ingest.<hash>.*`, set to 0444 and
//!    renamed to its blob name. Files that cannot be moved (another
//!    filesystem, hard-linked, owned by someone else) are copied, the store is
//!    flushed, then the originals are unlinked.
//!
//! The journal rows are dropped in the next commit. A crash (or `kill -9`)
//! anywhere leaves each journalled file on disk, in `tmp/`, or in the store;
//! [`recover`] finishes or undoes each one, and runs before every ingest.
//! A file that changed between hashing and moving is left on disk and its
//! entry dropped. Ctrl-C stops after the current batch.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Result};
use rayon::prelude::*;
use vrift_format::{ContentHash, Kind, FLAG_PHANTOM};

use crate::cas::{self, Cas};
use crate::manifest::{Entry, Layer, Manifest, PendingIngest, Record};
use crate::paths::display;
use crate::project::{Project, STATE_DIR};
use crate::ui;

const BATCH: usize = 4096;

/// Outcome of an ingest, for the summary line and the exit code.
#[derive(Debug, Default)]
pub struct Report {
    pub files: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub new_blobs: u64,
    pub new_bytes: u64,
    pub duplicates: u64,
    /// Special files and similar, skipped with a warning.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files that could not be ingested; they stay on disk.
    pub errors: Vec<(PathBuf, String)>,
    pub interrupted: bool,
}

/// A file or symlink found on disk (its metadata is read when hashing, so
/// the walk costs no stat per file).
struct Candidate {
    rel: Vec<u8>,
    abs: PathBuf,
    symlink: bool,
}

/// Where duplicates go instead of being unlinked one by one in the
/// foreground: on some filesystems (ext4 mounted with `discard`) an unlink of
/// a file with data costs hundreds of microseconds. A rename into this
/// directory (on the store's filesystem) is cheap; the directory is deleted
/// by a detached `vrift` after the run, or by `gc --delete` if that dies.
pub struct Trash {
    dir: PathBuf,
    seq: AtomicU64,
    used: std::sync::atomic::AtomicBool,
}

impl Trash {
    pub fn new_in(cas: &Cas) -> Trash {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Trash {
            dir: cas
                .tmp_dir()
                .join(format!("trash.{}.{nanos}", std::process::id())),
            seq: AtomicU64::new(0),
            used: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Removes `path` from the disk: renamed into the trash when it can be,
    /// unlinked otherwise.
    fn discard(&self, path: &Path) -> io::Result<()> {
        if !self.used.swap(true, Ordering::AcqRel) {
            let _ = fs::create_dir(&self.dir);
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        match fs::rename(path, self.dir.join(n.to_string())) {
            Ok(()) => Ok(()),
            Err(_) => fs::remove_file(path),
        }
    }

    /// The trash directory, if anything was put in it.
    pub fn dir(&self) -> Option<&Path> {
        (self.used.load(Ordering::Acquire) && self.dir.is_dir()).then_some(self.dir.as_path())
    }
}

/// Threads for the move step: renames and unlinks wait on the filesystem
/// journal more than on the CPU, so more of them overlap than there are cores.
const MOVE_THREADS: usize = 8;

/// A candidate after step 1.
struct Hashed {
    rel: Vec<u8>,
    abs: PathBuf,
    kind: Kind,
    pending: PendingIngest,
    mode: u32,
    nlink: u64,
    uid: u32,
    target: Vec<u8>,
}

enum Moved {
    Stored,
    Duplicate,
    /// Copied into the store; the original must be unlinked after a flush.
    Copied {
        new: bool,
    },
    Symlink,
    /// Left on disk (changed meanwhile, or failed); its entry must go.
    Left(String),
}

/// Ingests `targets` (rift paths; empty slice entries mean the root).
pub fn ingest(
    project: &Project,
    cas: &Cas,
    manifest: &Manifest,
    targets: &[Vec<u8>],
    interrupted: &AtomicBool,
    trash: &Trash,
) -> Result<Report> {
    recover(project, cas, manifest)?;
    let mut report = Report::default();
    let candidates = collect(project, cas, targets, &mut report)?;
    let bar = ui::progress(candidates.len() as u64, "ingest");
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let cas_dev = fs::metadata(cas.root())?.dev();
    let move_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(MOVE_THREADS)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the ingest threads: {e}"))?;

    // Entries to drop in the next commit (files that were left on disk).
    let mut left_behind: Vec<Vec<u8>> = Vec::new();
    let mut prev_batch: Vec<Vec<u8>> = Vec::new();
    let stop_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);

    for chunk in candidates.chunks(BATCH) {
        if interrupted.load(Ordering::Relaxed) {
            report.interrupted = true;
            break;
        }
        // Step 1: hash.
        let errors = Mutex::new(Vec::new());
        let hashed: Vec<Hashed> = chunk
            .par_iter()
            .filter_map(|c| match hash_candidate(c) {
                Ok(h) => {
                    bar.inc(1);
                    Some(h)
                }
                Err(e) => {
                    bar.inc(1);
                    errors.lock().unwrap().push((c.abs.clone(), e.to_string()));
                    None
                }
            })
            .collect();
        report.errors.extend(errors.into_inner().unwrap());
        if interrupted.load(Ordering::Relaxed) {
            report.interrupted = true;
            break;
        }

        // Step 2: commit entries and journal.
        {
            let txn = manifest.write()?;
            for rel in prev_batch.drain(..) {
                txn.remove_pending(&rel)?;
            }
            for rel in left_behind.drain(..) {
                txn.remove(Layer::Phantom, &rel)?;
            }
            let fresh = txn.alloc_inos(hashed.len() as u64)?;
            for (i, h) in hashed.iter().enumerate() {
                let ino = match txn.get(Layer::Phantom, &h.rel)? {
                    Some(Record::Entry(old)) => old.ino,
                    _ => fresh + i as u64,
                };
                let entry = Entry {
                    kind: h.kind,
                    flags: FLAG_PHANTOM,
                    mode: h.mode,
                    size: h.pending.size,
                    mtime_ns: h.pending.mtime_ns,
                    ino,
                    hash: h.pending.hash,
                    target: h.target.clone(),
                    uid: vrift_format::OWNER_INHERIT,
                    gid: vrift_format::OWNER_INHERIT,
                    atime_ns: 0,
                };
                txn.put(Layer::Phantom, &h.rel, &Record::Entry(entry))?;
                txn.put_pending(&h.rel, &h.pending)?;
                prev_batch.push(h.rel.clone());
            }
            txn.commit()?;
        }

        // Step 3: move into the store.
        let new_blobs = AtomicU64::new(0);
        let new_bytes = AtomicU64::new(0);
        let dups = AtomicU64::new(0);
        let outcomes: Vec<(usize, Moved)> = move_pool.install(|| {
            hashed
                .par_iter()
                .enumerate()
                .map(|(i, h)| {
                    let out = move_into_store(cas, h, cas_dev, euid, Some(trash));
                    match &out {
                        Ok(Moved::Stored) | Ok(Moved::Copied { new: true }) => {
                            new_blobs.fetch_add(1, Ordering::Relaxed);
                            new_bytes.fetch_add(h.pending.size, Ordering::Relaxed);
                        }
                        Ok(Moved::Duplicate) | Ok(Moved::Copied { new: false }) => {
                            dups.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                    match out {
                        Ok(m) => (i, m),
                        Err(e) => {
                            if is_out_of_space(&e) {
                                let mut slot = stop_error.lock().unwrap();
                                if slot.is_none() {
                                    *slot = Some(anyhow::anyhow!(
                                        "the store {} is out of space ({e}); nothing was lost: \
                                     files not yet moved are still on disk",
                                        cas.root().display()
                                    ));
                                }
                            }
                            (i, Moved::Left(e.to_string()))
                        }
                    }
                })
                .collect()
        });
        let mut copied = Vec::new();
        for (i, m) in outcomes {
            let h = &hashed[i];
            match m {
                Moved::Left(why) => {
                    report.errors.push((h.abs.clone(), why));
                    left_behind.push(h.rel.clone());
                }
                Moved::Copied { .. } => {
                    copied.push(i);
                    count(&mut report, h);
                }
                Moved::Stored | Moved::Duplicate | Moved::Symlink => count(&mut report, h),
            }
        }
        if !copied.is_empty() {
            cas.sync()?;
            for i in copied {
                let h = &hashed[i];
                if let Err(e) = fs::remove_file(&h.abs) {
                    if e.kind() != io::ErrorKind::NotFound {
                        report
                            .errors
                            .push((h.abs.clone(), format!("stored, but cannot remove it: {e}")));
                    }
                }
            }
        }
        report.new_blobs += new_blobs.into_inner();
        report.new_bytes += new_bytes.into_inner();
        report.duplicates += dups.into_inner();
        if stop_error.lock().unwrap().is_some() {
            break;
        }
    }
    bar.finish_and_clear();

    // Final commit: drop the journal and the entries of files left on disk.
    let txn = manifest.write()?;
    for rel in prev_batch.drain(..) {
        txn.remove_pending(&rel)?;
    }
    for rel in left_behind.drain(..) {
        txn.remove(Layer::Phantom, &rel)?;
    }
    txn.commit()?;
    if let Some(e) = stop_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(report)
}

fn count(report: &mut Report, h: &Hashed) {
    match h.kind {
        Kind::Symlink => report.symlinks += 1,
        _ => {
            report.files += 1;
            report.bytes += h.pending.size;
        }
    }
}

fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Walks the targets and returns every file and symlink below them.
fn collect(
    project: &Project,
    cas: &Cas,
    targets: &[Vec<u8>],
    report: &mut Report,
) -> Result<Vec<Candidate>> {
    let state_dir = project.state_dir();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for rel in targets {
        let top = project.disk_path(rel);
        let meta = match fs::symlink_metadata(&top) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!("{}: no such file or directory on disk", top.display())
            }
            Err(e) => bail!("cannot read {}: {e}", top.display()),
        };
        if !meta.is_dir() {
            let ft = meta.file_type();
            consider(
                project,
                top,
                ft,
                || Ok(meta.clone()),
                &mut out,
                &mut seen,
                report,
            );
            continue;
        }
        let walker = walkdir::WalkDir::new(&top)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.path() != state_dir && e.path() != cas.root());
        for item in walker {
            match item {
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => {
                    let ft = e.file_type();
                    let path = e.path().to_path_buf();
                    consider(
                        project,
                        path,
                        ft,
                        || e.metadata().map_err(io_error),
                        &mut out,
                        &mut seen,
                        report,
                    )
                }
                Err(err) => {
                    let path = err.path().map(Path::to_path_buf).unwrap_or_default();
                    report.errors.push((path, io_text(err)));
                }
            }
        }
    }
    Ok(out)
}

fn io_text(err: walkdir::Error) -> String {
    match err.io_error() {
        Some(e) => e.to_string(),
        None => err.to_string(),
    }
}

fn io_error(err: walkdir::Error) -> io::Error {
    io::Error::other(io_text(err))
}

fn consider(
    project: &Project,
    abs: PathBuf,
    ft: fs::FileType,
    meta: impl FnOnce() -> io::Result<fs::Metadata>,
    out: &mut Vec<Candidate>,
    seen: &mut HashSet<PathBuf>,
    report: &mut Report,
) {
    if !(ft.is_file() || ft.is_symlink()) {
        let what = meta()
            .map(|m| special_kind(&m))
            .unwrap_or("not a regular file");
        ui::warn(&format!("skipping {} ({what})", abs.display()));
        report.skipped.push((abs, what.to_string()));
        return;
    }
    let rel = match abs.strip_prefix(project.root()) {
        Ok(r) => r.as_os_str().as_bytes().to_vec(),
        Err(_) => return,
    };
    if rel.is_empty()
        || rel.starts_with(STATE_DIR.as_bytes()) && rel.get(STATE_DIR.len()) == Some(&b'/')
    {
        return;
    }
    if seen.insert(abs.clone()) {
        out.push(Candidate {
            rel,
            abs,
            symlink: ft.is_symlink(),
        });
    }
}

fn special_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    if ft.is_fifo() {
        "a fifo"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    }
}

fn identity(meta: &fs::Metadata) -> (u64, u64, u64, i64) {
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
    )
}

/// Step 1 for one candidate.
fn hash_candidate(c: &Candidate) -> io::Result<Hashed> {
    if c.symlink {
        let meta = fs::symlink_metadata(&c.abs)?;
        if !meta.file_type().is_symlink() {
            return Err(io::Error::other(
                "changed type during ingest; run ingest again",
            ));
        }
        let (dev, ino, _, mtime_ns) = identity(&meta);
        let target = fs::read_link(&c.abs)?.into_os_string().into_vec();
        return Ok(Hashed {
            rel: c.rel.clone(),
            abs: c.abs.clone(),
            kind: Kind::Symlink,
            pending: PendingIngest {
                hash: ContentHash::default(),
                dev,
                ino,
                size: target.len() as u64,
                mtime_ns,
            },
            mode: meta.mode(),
            nlink: meta.nlink(),
            uid: meta.uid(),
            target,
        });
    }
    // O_NOFOLLOW | O_NONBLOCK: never follow a swapped-in symlink, never block
    // on a fifo that replaced the file since the walk.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&c.abs)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(
            "changed into a non-regular file during ingest",
        ));
    }
    let before = identity(&meta);
    // Exactly the size fstat reported: a file written meanwhile has a new
    // mtime or size, which the move step's identity check catches (so no
    // second fstat, and no read just to see EOF).
    let (hash, got) = cas::hash_prefix(&mut file, before.2)?;
    if got != before.2 {
        return Err(io::Error::other(
            "changed while being read; run ingest again",
        ));
    }
    Ok(Hashed {
        rel: c.rel.clone(),
        abs: c.abs.clone(),
        kind: Kind::File,
        pending: PendingIngest {
            hash,
            dev: before.0,
            ino: before.1,
            size: before.2,
            mtime_ns: before.3,
        },
        mode: meta.mode(),
        nlink: meta.nlink(),
        uid: meta.uid(),
        target: Vec::new(),
    })
}

use std::os::unix::ffi::OsStringExt;

/// Whether the disk path still holds what was hashed.
fn unchanged(abs: &Path, p: &PendingIngest) -> io::Result<bool> {
    let meta = fs::symlink_metadata(abs)?;
    Ok(identity(&meta) == (p.dev, p.ino, p.size, p.mtime_ns)
        || (meta.file_type().is_symlink() && (meta.dev(), meta.ino()) == (p.dev, p.ino)))
}

/// Step 3 for one file.
fn move_into_store(
    cas: &Cas,
    h: &Hashed,
    cas_dev: u64,
    euid: u32,
    trash: Option<&Trash>,
) -> io::Result<Moved> {
    if !unchanged(&h.abs, &h.pending)? {
        return Ok(Moved::Left(
            "changed during ingest; run ingest again".into(),
        ));
    }
    if h.kind == Kind::Symlink {
        fs::remove_file(&h.abs)?;
        return Ok(Moved::Symlink);
    }
    let hash = &h.pending.hash;
    let discard = |p: &Path| match trash {
        Some(t) => t.discard(p),
        None => fs::remove_file(p),
    };
    // A duplicate of a blob the store has: set aside at once (no chmod, no
    // failed rename).
    if cas.has_blob(hash) {
        discard(&h.abs)?;
        return Ok(Moved::Duplicate);
    }
    let movable = h.pending.dev == cas_dev && h.nlink == 1 && h.uid == euid;
    if movable {
        // The file itself becomes the blob: 0444 first (a blob is never seen
        // writable), then a rename that never replaces an existing blob.
        let dest = cas.blob_path(hash);
        fs::set_permissions(&h.abs, fs::Permissions::from_mode(cas::BLOB_MODE))?;
        let mut res = cas::rename_noreplace(&h.abs, &dest);
        if matches!(&res, Err(e) if e.raw_os_error() == Some(libc::ENOENT)) && h.abs.exists() {
            fs::create_dir_all(dest.parent().expect("blob paths have a parent"))?;
            res = cas::rename_noreplace(&h.abs, &dest);
        }
        match res {
            Ok(()) => return Ok(Moved::Stored),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                discard(&h.abs)?;
                return Ok(Moved::Duplicate);
            }
            Err(e) => {
                // Give the user's file its mode back; fall back to a copy
                // across filesystems.
                fs::set_permissions(&h.abs, fs::Permissions::from_mode(h.mode & 0o7777))?;
                if e.raw_os_error() != Some(libc::EXDEV) {
                    return Err(e);
                }
            }
        }
    }
    // Copy: the original stays until the store is flushed.
    let mut src = File::open(&h.abs)?;
    let (got, new) = cas.put_reader(&mut src).map_err(|e| {
        e.downcast::<io::Error>()
            .unwrap_or_else(|e| io::Error::other(e.to_string()))
    })?;
    if got != *hash {
        return Ok(Moved::Left(
            "changed during ingest; run ingest again".into(),
        ));
    }
    Ok(Moved::Copied { new })
}

/// Finishes or undoes the journalled moves of an interrupted ingest;
/// returns whether there was anything to do.
pub fn recover(project: &Project, cas: &Cas, manifest: &Manifest) -> Result<bool> {
    let pending = manifest.read()?.pending()?;
    if pending.is_empty() {
        return Ok(false);
    }
    ui::note(&format!(
        "finishing an interrupted ingest ({} files)",
        pending.len()
    ));
    let euid = unsafe { libc::geteuid() };
    let cas_dev = fs::metadata(cas.root())?.dev();
    let tmp_names: Vec<PathBuf> = fs::read_dir(cas.tmp_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let txn = manifest.write()?;
    for (rel, p) in &pending {
        let abs = project.disk_path(rel);
        let record = txn.get(Layer::Phantom, rel)?;
        let kind = match &record {
            Some(Record::Entry(e)) => e.kind,
            _ => Kind::File,
        };
        match fs::symlink_metadata(&abs) {
            Ok(meta) => {
                if unchanged(&abs, p)? {
                    let h = Hashed {
                        rel: rel.clone(),
                        abs: abs.clone(),
                        kind,
                        pending: *p,
                        mode: meta.mode(),
                        nlink: meta.nlink(),
                        uid: meta.uid(),
                        target: Vec::new(),
                    };
                    match move_into_store(cas, &h, cas_dev, euid, None) {
                        Ok(Moved::Copied { .. }) => {
                            cas.sync()?;
                            fs::remove_file(&abs)?;
                        }
                        Ok(Moved::Left(_)) | Err(_) => {
                            txn.remove(Layer::Phantom, rel)?;
                        }
                        Ok(_) => {}
                    }
                } else {
                    // Changed on disk since: the disk is the truth.
                    txn.remove(Layer::Phantom, rel)?;
                }
            }
            Err(_) if kind == Kind::Symlink || cas.has_blob(&p.hash) => {}
            Err(_) => {
                let prefix = format!("ingest.{}.", p.hash);
                let found = tmp_names.iter().find(|t| {
                    t.file_name()
                        .is_some_and(|n| n.as_bytes().starts_with(prefix.as_bytes()))
                });
                match found.map(|t| cas.adopt_tmp_keep(t, &p.hash)) {
                    Some(Ok(_)) => {}
                    _ => {
                        ui::warn(&format!(
                            "{}: gone from the disk and not in the store; dropping its entry",
                            display(rel)
                        ));
                        txn.remove(Layer::Phantom, rel)?;
                    }
                }
            }
        }
    }
    txn.clear_pending()?;
    txn.commit()?;
    Ok(true)
}
