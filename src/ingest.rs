//! `vrift ingest`: move files from the disk into the CAS and record them in
//! the phantom layer, leaving directories on disk.
//!
//! Each batch of files goes through three steps:
//!
//! 1. **hash** (all cores, and more threads than cores for the disk's
//!    queue): read each file in place; nothing changes on disk.
//! 2. **commit**: one manifest transaction records the batch's entries *and*
//!    one journal row for the batch (`ingest_journal`) with the identity
//!    (dev, ino, size, mtime) each file had when it was hashed.
//! 3. **move**: a file whose blob the store has is renamed into the trash
//!    (see [`Trash`]; the identity is checked on the file as moved, and a
//!    changed file is put back); otherwise it gets the blob mode and is renamed to
//!    its blob name. Files that cannot be moved (another filesystem,
//!    hard-linked, owned by someone else) are copied, the store is flushed,
//!    then the originals are unlinked.
//!
//! Batches are pipelined: while one batch is moved, the next is committed,
//! the one after is hashed and the walk finds more. A batch's journal row
//! is dropped by the first commit after its moves are done. A crash (or
//! `kill -9`) anywhere leaves each journalled file on disk, in the trash
//! (whose blob exists), or in the store; [`recover`] finishes or undoes each
//! one, and runs before every ingest. A file that changed between hashing
//! and moving is left on disk and its entry dropped. Ctrl-C stops after the
//! batch being moved (a batch committed but not moved yet is dropped from
//! the manifest again; its files stay on disk).

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use vrift_format::{ContentHash, Kind, FLAG_PHANTOM};

use crate::cas::{self, BlobIndex, Cas};
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
///
/// The trash is split into bins, one per mover thread, each a series of
/// small sub-directories: one big directory would serialize every rename on
/// its lock, and each insert into it scans ever longer ext4 leaf blocks
/// (measured: 45% of an identical-copy ingest's time went there).
pub struct Trash {
    dir: PathBuf,
    used: AtomicBool,
    bins: Vec<Mutex<Bin>>,
}

/// One thread's share of the trash: the sub-directory it fills now.
#[derive(Default)]
struct Bin {
    /// The current sub-directory (an `O_PATH` fd) and how many names it has.
    current: Option<(OwnedFd, u32)>,
    /// Sub-directories this bin has made so far.
    made: u32,
}

/// Names per trash sub-directory: a few ext4 blocks, so lookups stay short.
const TRASH_DIR_NAMES: u32 = 64;

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
            used: AtomicBool::new(false),
            bins: (0..MOVE_THREADS + 1)
                .map(|_| Mutex::new(Bin::default()))
                .collect(),
        }
    }

    /// Moves the file at `path` into the trash if it still is the file
    /// `expect` describes. The check is made on the file as moved (an
    /// `fstatat` in the trash), so a file swapped in at `path` meanwhile can
    /// never slip through; a changed file is put back. Returns whether the
    /// file was removed from `path`.
    fn discard_if(&self, path: &Path, expect: &PendingIngest) -> io::Result<bool> {
        let slot = rayon::current_thread_index().map_or(0, |i| i + 1) % self.bins.len();
        let mut bin = self.bins[slot].lock().unwrap_or_else(|e| e.into_inner());
        let (dirfd, name) = match self.next_name(&mut bin, slot) {
            Ok(x) => x,
            Err(_) => return unlink_if_unchanged(path, expect),
        };
        let from = cstring(path)?;
        // SAFETY: valid NUL-terminated paths, a directory fd we own.
        let rc = unsafe { libc::renameat(libc::AT_FDCWD, from.as_ptr(), dirfd, name.as_ptr()) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                // The file is on another filesystem than the store.
                Some(libc::EXDEV) => unlink_if_unchanged(path, expect),
                _ => Err(err),
            };
        }
        let moved = fstatat_nofollow(dirfd, &name)?;
        let now = (
            moved.st_dev,
            moved.st_ino,
            moved.st_size as u64,
            moved.st_mtime * 1_000_000_000 + moved.st_mtime_nsec,
        );
        if now == (expect.dev, expect.ino, expect.size, expect.mtime_ns) {
            return Ok(true);
        }
        // Not what was hashed: the disk keeps it.
        let back = |to: &std::ffi::CStr| {
            // SAFETY: as above.
            let rc = unsafe {
                libc::renameat2(
                    dirfd,
                    name.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::RENAME_NOREPLACE,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        if back(&from).is_err() {
            // The name was taken again meanwhile: keep the changed file
            // beside it rather than in the trash.
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".vrift-changed.{}", std::process::id()));
            back(&cstring(Path::new(&aside))?).map_err(|e| {
                io::Error::other(format!(
                    "changed during ingest and cannot be put back ({e}); it is in {}",
                    self.dir.display()
                ))
            })?;
            return Err(io::Error::other(format!(
                "changed during ingest, and the name was taken again; the changed file is now {}",
                Path::new(&aside).display()
            )));
        }
        Ok(false)
    }

    /// The directory fd and the name the next file in `bin` goes to.
    fn next_name(&self, bin: &mut Bin, slot: usize) -> io::Result<(RawFd, CString)> {
        let full = bin
            .current
            .as_ref()
            .is_none_or(|(_, n)| *n >= TRASH_DIR_NAMES);
        if full {
            if !self.used.swap(true, Ordering::AcqRel) {
                match fs::create_dir(&self.dir) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            let sub = self.dir.join(format!("{slot}.{}", bin.made));
            fs::create_dir(&sub)?;
            bin.made += 1;
            let fd = File::options()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(&sub)?;
            bin.current = Some((OwnedFd::from(fd), 0));
        }
        let (fd, n) = bin.current.as_mut().expect("set above");
        let name = CString::new(n.to_string()).expect("digits have no NUL");
        *n += 1;
        Ok((fd.as_raw_fd(), name))
    }

    /// The trash directory, if anything was put in it.
    pub fn dir(&self) -> Option<&Path> {
        (self.used.load(Ordering::Acquire) && self.dir.is_dir()).then_some(self.dir.as_path())
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn fstatat_nofollow(dirfd: RawFd, name: &std::ffi::CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by a successful fstatat.
    let rc = unsafe {
        libc::fstatat(
            dirfd,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialized by fstatat.
    Ok(unsafe { st.assume_init() })
}

/// Unlinks `path` if it still is the file `expect` describes (for files the
/// trash cannot take); returns whether it did.
fn unlink_if_unchanged(path: &Path, expect: &PendingIngest) -> io::Result<bool> {
    if !unchanged(path, expect)? {
        return Ok(false);
    }
    fs::remove_file(path)?;
    Ok(true)
}

/// Threads for the hash step, more than cores: when the files are not in
/// the page cache, each blocked read is one more request in the disk's
/// queue. Measured on 70k cold files (2 cores, virtio disk): 2 threads
/// 6.1 s, 8 threads 3.8 s, 16 threads 3.2 s; with a warm cache 16 threads
/// cost about 5% more than 2.
const HASH_THREADS: usize = 16;

/// Threads for the move step. Renames across directories are serialized by
/// the kernel (one lock per filesystem), and with many threads the waiters
/// spin on it and take CPU from the hashing of the next batch (8 threads:
/// 13% of an identical-copy ingest's CPU spent spinning; 4 threads: 7%;
/// 2 threads: 4-5%); a second one still overlaps the chmods, lookups, mkdirs
/// and disk waits around the renames.
const MOVE_THREADS: usize = 2;

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

/// What the move step of one batch did, merged into the report by the
/// main thread.
#[derive(Default)]
struct Moves {
    report: Report,
    /// Entries to drop in the next commit (files that were left on disk).
    left_behind: Vec<Vec<u8>>,
}

/// Everything the move step needs besides the batch.
struct Mover<'a> {
    cas: &'a Cas,
    blobs: &'a BlobIndex,
    cas_dev: u64,
    euid: u32,
    trash: &'a Trash,
    pool: &'a rayon::ThreadPool,
    /// Set when the store is out of space: the run stops after the batch.
    stop_error: &'a Mutex<Option<anyhow::Error>>,
}

impl Mover<'_> {
    /// Step 3 for a committed batch.
    fn run(&self, hashed: &[Hashed]) -> Result<Moves> {
        let cas = self.cas;
        let outcomes: Vec<(usize, Moved)> = self.pool.install(|| {
            hashed
                .par_iter()
                .enumerate()
                .map(|(i, h)| {
                    match move_into_store(
                        cas,
                        self.blobs,
                        h,
                        self.cas_dev,
                        self.euid,
                        Some(self.trash),
                    ) {
                        Ok(m) => {
                            crate::failpoint::hit("ingest.moved-one");
                            (i, m)
                        }
                        Err(e) => {
                            if is_out_of_space(&e) {
                                let mut slot = self.stop_error.lock().unwrap();
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
        let mut out = Moves::default();
        let mut copied = Vec::new();
        for (i, m) in outcomes {
            let h = &hashed[i];
            match m {
                Moved::Left(why) => {
                    out.report.errors.push((h.abs.clone(), why));
                    out.left_behind.push(h.rel.clone());
                    continue;
                }
                Moved::Stored => {
                    out.report.new_blobs += 1;
                    out.report.new_bytes += h.pending.size;
                }
                Moved::Copied { new } => {
                    copied.push(i);
                    if new {
                        out.report.new_blobs += 1;
                        out.report.new_bytes += h.pending.size;
                    } else {
                        out.report.duplicates += 1;
                    }
                }
                Moved::Duplicate => out.report.duplicates += 1,
                Moved::Symlink => {}
            }
            count(&mut out.report, h);
        }
        if !copied.is_empty() {
            cas.sync()?;
            for i in copied {
                let h = &hashed[i];
                if let Err(e) = fs::remove_file(&h.abs) {
                    if e.kind() != io::ErrorKind::NotFound {
                        out.report
                            .errors
                            .push((h.abs.clone(), format!("stored, but cannot remove it: {e}")));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Ingests `targets` (rift paths; empty slice entries mean the root).
///
/// Four stages run at once, each on its own batch: the walk finds batch
/// N+3, the hash step reads batch N+2, batch N+1 is committed and batch N
/// is moved. A batch is moved only after its commit; its journal row is
/// dropped by a later commit, once its moves are done.
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
    let roots = roots(project, targets)?;
    let bar = ui::progress(0, "ingest");
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let cas_dev = fs::metadata(cas.root())?.dev();
    let blobs = BlobIndex::new(cas);
    let move_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(MOVE_THREADS)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the ingest threads: {e}"))?;
    let hash_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(HASH_THREADS)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the ingest threads: {e}"))?;
    let stop_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let mover = Mover {
        cas,
        blobs: &blobs,
        cas_dev,
        euid,
        trash,
        pool: &move_pool,
        stop_error: &stop_error,
    };
    // Set when a stage failed: no further batch is committed or moved.
    let failed = AtomicBool::new(false);
    let halted = || {
        failed.load(Ordering::Relaxed)
            || interrupted.load(Ordering::Relaxed)
            || stop_error.lock().unwrap().is_some()
    };
    // Batches whose moves are done (their journal rows go in the next
    // commit) and the entries of files left on disk, taken together.
    let done: Mutex<Done> = Mutex::new(Done::default());

    // The directories the walk met, with their times before the moves.
    let mut dir_times: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    let result: Result<()> = std::thread::scope(|scope| {
        let (walk_tx, walk_rx) = mpsc::sync_channel::<Vec<Candidate>>(WALK_AHEAD);
        let roots = &roots;
        let walker = scope.spawn(move || {
            let mut found = Report::default();
            let mut dirs = Vec::new();
            walk(project, cas, roots, &mut found, &mut dirs, |chunk| {
                walk_tx.send(chunk).is_ok()
            });
            (found, dirs)
        });
        // The store's blob names, listed while the first batches are found
        // and hashed rather than when the first one is moved.
        let blobs = &blobs;
        scope.spawn(move || blobs.preload());
        let (commit_tx, commit_rx) = mpsc::sync_channel::<(u64, Vec<Hashed>)>(0);
        let (move_tx, move_rx) = mpsc::sync_channel::<(u64, Vec<Hashed>)>(0);
        let (done, failed, halted) = (&done, &failed, &halted);
        let committer = scope.spawn(move || -> Result<()> {
            for (batch, hashed) in commit_rx {
                if halted() {
                    break;
                }
                let (batches, dropped) = {
                    let mut d = done.lock().unwrap();
                    (
                        std::mem::take(&mut d.batches),
                        std::mem::take(&mut d.left_behind),
                    )
                };
                if let Err(e) = commit_batch(manifest, batch, &batches, &dropped, &hashed) {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                if move_tx.send((batch, hashed)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mover = &mover;
        let moving = scope.spawn(move || -> Result<(Report, bool)> {
            let mut moved = Report::default();
            let mut undone = false;
            for (batch, hashed) in move_rx {
                if halted() {
                    // Committed but not moved: the final commit drops its
                    // entries (its files stay on disk) with its journal row.
                    let mut d = done.lock().unwrap();
                    d.left_behind.extend(hashed.into_iter().map(|h| h.rel));
                    d.batches.push(batch);
                    undone = true;
                    continue;
                }
                match mover.run(&hashed) {
                    Ok(moves) => {
                        crate::failpoint::hit("ingest.moved");
                        merge(&mut moved, moves.report);
                        let mut d = done.lock().unwrap();
                        d.left_behind.extend(moves.left_behind);
                        d.batches.push(batch);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok((moved, undone))
        });

        // Step 1 on this thread: hash each batch the walk finds.
        let mut stopped_early = false;
        for (batch, chunk) in walk_rx.into_iter().enumerate() {
            if halted() {
                stopped_early = true;
                break;
            }
            bar.inc_length(chunk.len() as u64);
            let errors = Mutex::new(Vec::new());
            let hashed: Vec<Hashed> = hash_pool.install(|| {
                chunk
                    .into_par_iter()
                    .filter_map(|c| {
                        bar.inc(1);
                        hash_candidate(&c)
                            .map_err(|e| errors.lock().unwrap().push((c.abs, e.to_string())))
                            .ok()
                    })
                    .collect()
            });
            report.errors.extend(errors.into_inner().unwrap());
            crate::failpoint::hit("ingest.hashed");
            if halted() || commit_tx.send((batch as u64, hashed)).is_err() {
                stopped_early = true;
                break;
            }
        }
        drop(commit_tx);
        let (found, dirs) = walker
            .join()
            .map_err(|_| anyhow::anyhow!("an ingest thread panicked"))?;
        dir_times = dirs;
        report.skipped.extend(found.skipped);
        report.errors.extend(found.errors);
        let committed = committer
            .join()
            .map_err(|_| anyhow::anyhow!("an ingest thread panicked"))?;
        let (moved, undone) = moving
            .join()
            .map_err(|_| anyhow::anyhow!("an ingest thread panicked"))??;
        merge(&mut report, moved);
        if (stopped_early || undone) && interrupted.load(Ordering::Relaxed) {
            report.interrupted = true;
        }
        committed
    });
    bar.finish_and_clear();
    restore_dir_times(&dir_times);

    // Final commit: drop the journal rows of batches whose moves are done
    // and the entries of files left on disk. After an error above, the rows
    // of a batch not known to be done stay in the journal, for `recover`.
    let done = done.into_inner().unwrap();
    let txn = manifest.write()?;
    txn.remove_journal(&done.batches)?;
    for rel in &done.left_behind {
        txn.remove(Layer::Phantom, rel)?;
    }
    crate::failpoint::hit("ingest.final");
    txn.commit()?;
    result?;
    if let Some(e) = stop_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(report)
}

/// Chunks the walk may find ahead of the hash step.
const WALK_AHEAD: usize = 2;

/// What the move step has finished, for the next commit.
#[derive(Default)]
struct Done {
    /// Batches whose moves are done: their journal rows can go.
    batches: Vec<u64>,
    /// Entries of files left on disk, to drop.
    left_behind: Vec<Vec<u8>>,
}

/// Step 2: one transaction records a batch's entries and journal rows, and
/// drops the journal rows of batches whose moves are `done` and the entries
/// of files left on disk (`dropped`). Nothing is moved before it commits.
fn commit_batch(
    manifest: &Manifest,
    batch: u64,
    done: &[u64],
    dropped: &[Vec<u8>],
    hashed: &[Hashed],
) -> Result<()> {
    let txn = manifest.write()?;
    txn.remove_journal(done)?;
    for rel in dropped {
        txn.remove(Layer::Phantom, rel)?;
    }
    let mut rows: Vec<(Vec<u8>, Entry, PendingIngest)> = hashed
        .iter()
        .map(|h| {
            let entry = Entry {
                kind: h.kind,
                flags: FLAG_PHANTOM,
                mode: h.mode,
                size: h.pending.size,
                mtime_ns: h.pending.mtime_ns,
                ino: 0,
                hash: h.pending.hash,
                target: h.target.clone(),
                uid: vrift_format::OWNER_INHERIT,
                gid: vrift_format::OWNER_INHERIT,
                atime_ns: 0,
                ctime_ns: 0,
                links: 0,
            };
            (h.rel.clone(), entry, h.pending)
        })
        .collect();
    txn.put_ingest_batch(batch, &mut rows)?;
    txn.commit()?;
    crate::failpoint::hit("ingest.committed");
    Ok(())
}

fn merge(into: &mut Report, from: Report) {
    into.files += from.files;
    into.symlinks += from.symlinks;
    into.bytes += from.bytes;
    into.new_blobs += from.new_blobs;
    into.new_bytes += from.new_bytes;
    into.duplicates += from.duplicates;
    into.errors.extend(from.errors);
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

/// The device of the project's root: a filesystem mounted below it is not
/// the project's (the view leaves it to the kernel: the daemon's
/// `on_other_mount`), and ingest neither walks nor moves it.
fn project_dev(project: &Project) -> Result<u64> {
    let m = fs::metadata(project.root())
        .with_context(|| format!("cannot read {}", project.root().display()))?;
    Ok(m.dev())
}

/// Whether the walk's entry `e` is a directory on another device than
/// `dev` (a filesystem mounted there): skipped, with one line.
fn other_filesystem(e: &walkdir::DirEntry, dev: u64) -> bool {
    if e.depth() == 0 || !e.file_type().is_dir() {
        return false;
    }
    let other = e.metadata().is_ok_and(|m| m.dev() != dev);
    if other {
        ui::warn(&format!(
            "skipping {} (another filesystem mounted in the project: the view leaves it to the kernel)",
            e.path().display()
        ));
    }
    other
}

/// A target to walk, checked before anything starts.
struct Root {
    abs: PathBuf,
    meta: fs::Metadata,
}

/// The targets' disk paths and metadata; fails if one is missing. A target
/// inside another is dropped: the walk of the outer one finds its files.
fn roots(project: &Project, targets: &[Vec<u8>]) -> Result<Vec<Root>> {
    let mut rels: Vec<&[u8]> = targets.iter().map(Vec::as_slice).collect();
    rels.sort();
    rels.dedup();
    let inside = |rel: &[u8], outer: &[u8]| {
        outer.is_empty()
            || rel.starts_with(outer) && (rel.len() == outer.len() || rel[outer.len()] == b'/')
    };
    let mut out = Vec::new();
    let mut kept: Vec<&[u8]> = Vec::new();
    let dev = project_dev(project)?;
    for rel in rels {
        let abs = project.disk_path(rel);
        let meta = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!("{}: no such file or directory on disk", abs.display())
            }
            Err(e) => bail!("cannot read {}: {e}", abs.display()),
        };
        if meta.dev() != dev {
            bail!(
                "{}: on another filesystem mounted in the project, which the view leaves to the kernel: not ingested",
                abs.display()
            );
        }
        // Sorted, so an outer target comes before what it holds.
        if kept.iter().any(|outer| inside(rel, outer)) {
            continue;
        }
        kept.push(rel);
        out.push(Root { abs, meta });
    }
    Ok(out)
}

/// Walks the roots and hands every file and symlink below them to `emit`,
/// in chunks of [`BATCH`]; stops early when `emit` returns false.
/// Directories stay on disk, but moving their files out changed their
/// modification times: put back the times they had when the walk met them,
/// so that tools comparing directory times (make, rsync, backups) see the
/// tree as it was. A directory that cannot be set is only warned about: the
/// files are safe either way.
fn restore_dir_times(dirs: &[(PathBuf, fs::Metadata)]) {
    for (dir, before) in dirs {
        let (Ok(accessed), Ok(modified)) = (before.accessed(), before.modified()) else {
            continue;
        };
        let times = fs::FileTimes::new()
            .set_accessed(accessed)
            .set_modified(modified);
        if let Err(e) = fs::File::open(dir).and_then(|f| f.set_times(times)) {
            if e.kind() != io::ErrorKind::NotFound {
                ui::warn(&format!(
                    "cannot restore the modification time of {}: {e}",
                    dir.display()
                ));
            }
        }
    }
}

fn walk(
    project: &Project,
    cas: &Cas,
    roots: &[Root],
    report: &mut Report,
    dirs: &mut Vec<(PathBuf, fs::Metadata)>,
    mut emit: impl FnMut(Vec<Candidate>) -> bool,
) {
    let state_dir = project.state_dir();
    let mut out = Vec::with_capacity(BATCH);
    // Roots do not overlap (see `roots`), and the walk follows no link, so
    // no path comes twice; the set is a safety net for several roots only.
    let mut seen = (roots.len() > 1).then(HashSet::new);
    let mut take = |c: Option<Candidate>, out: &mut Vec<Candidate>| -> bool {
        let Some(c) = c else { return true };
        if let Some(seen) = &mut seen {
            if !seen.insert(c.abs.clone()) {
                return true;
            }
        }
        out.push(c);
        if out.len() < BATCH {
            return true;
        }
        emit(std::mem::replace(out, Vec::with_capacity(BATCH)))
    };
    for root in roots {
        if !root.meta.is_dir() {
            // Moving a single file changes its directory's times.
            if let Some(parent) = root.abs.parent() {
                if let Ok(m) = fs::metadata(parent) {
                    dirs.push((parent.to_path_buf(), m));
                }
            }
            let ft = root.meta.file_type();
            let c = consider(
                project,
                root.abs.clone(),
                ft,
                || Ok(root.meta.clone()),
                report,
            );
            if !take(c, &mut out) {
                return;
            }
            continue;
        }
        let walker = walkdir::WalkDir::new(&root.abs)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                e.path() != state_dir
                    && e.path() != cas.root()
                    && !other_filesystem(e, root.meta.dev())
            });
        for item in walker {
            match item {
                Ok(e) if e.file_type().is_dir() => {
                    if let Ok(m) = e.metadata() {
                        dirs.push((e.path().to_path_buf(), m));
                    }
                }
                Ok(e) => {
                    let ft = e.file_type();
                    let path = e.path().to_path_buf();
                    let c = consider(project, path, ft, || e.metadata().map_err(io_error), report);
                    if !take(c, &mut out) {
                        return;
                    }
                }
                Err(err) => {
                    let path = err.path().map(Path::to_path_buf).unwrap_or_default();
                    report.errors.push((path, io_text(err)));
                }
            }
        }
    }
    if !out.is_empty() {
        emit(out);
    }
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
    report: &mut Report,
) -> Option<Candidate> {
    if !(ft.is_file() || ft.is_symlink()) {
        let what = meta()
            .map(|m| special_kind(&m))
            .unwrap_or("not a regular file");
        ui::warn(&format!("skipping {} ({what})", abs.display()));
        report.skipped.push((abs, what.to_string()));
        return None;
    }
    let rel = abs
        .strip_prefix(project.root())
        .ok()?
        .as_os_str()
        .as_bytes();
    if rel.is_empty()
        || rel.starts_with(STATE_DIR.as_bytes()) && rel.get(STATE_DIR.len()) == Some(&b'/')
    {
        return None;
    }
    Some(Candidate {
        rel: rel.to_vec(),
        abs,
        symlink: ft.is_symlink(),
    })
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
    // on a fifo that replaced the file since the walk. O_NOATIME: reading to
    // hash is no access by the user, and an atime update dirties the inode
    // (it needs the file's owner or CAP_FOWNER, hence the retry without).
    let open = |extra: i32| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | extra)
            .open(&c.abs)
    };
    let mut file = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        other => other?,
    };
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
    blobs: &BlobIndex,
    h: &Hashed,
    cas_dev: u64,
    euid: u32,
    trash: Option<&Trash>,
) -> io::Result<Moved> {
    let changed = || Moved::Left("changed during ingest; run ingest again".into());
    let hash = &h.pending.hash;
    // Removes a file whose content the store has, if it still is the file
    // that was hashed.
    let discard = || -> io::Result<Moved> {
        let gone = match trash {
            Some(t) => t.discard_if(&h.abs, &h.pending)?,
            None => unlink_if_unchanged(&h.abs, &h.pending)?,
        };
        Ok(if gone { Moved::Duplicate } else { changed() })
    };
    // A duplicate of a blob the store has: set aside at once (no stat, no
    // chmod, no failed rename); the trash checks the file as moved.
    if h.kind == Kind::File && blobs.contains(hash) {
        return discard();
    }
    if !unchanged(&h.abs, &h.pending)? {
        return Ok(changed());
    }
    if h.kind == Kind::Symlink {
        fs::remove_file(&h.abs)?;
        return Ok(Moved::Symlink);
    }
    let movable = h.pending.dev == cas_dev && h.nlink == 1 && h.uid == euid;
    if movable {
        // The file itself becomes the blob: the blob mode first (a blob is
        // never seen writable), then a rename that never replaces a blob.
        let dest = cas.blob_path(hash);
        let user_mode = fs::Permissions::from_mode(h.mode & 0o7777);
        fs::set_permissions(&h.abs, fs::Permissions::from_mode(cas.blob_mode()))?;
        let mut res = cas::rename_noreplace(&h.abs, &dest);
        if matches!(&res, Err(e) if e.raw_os_error() == Some(libc::ENOENT)) && h.abs.exists() {
            cas.create_fanout(&dest)?;
            res = cas::rename_noreplace(&h.abs, &dest);
        }
        match res {
            Ok(()) => {
                blobs.insert(*hash);
                return Ok(Moved::Stored);
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let out = discard()?;
                if matches!(out, Moved::Left(_)) {
                    fs::set_permissions(&h.abs, user_mode)?;
                }
                return Ok(out);
            }
            Err(e) => {
                // Give the user's file its mode back; fall back to a copy
                // across filesystems.
                fs::set_permissions(&h.abs, user_mode)?;
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
        return Ok(changed());
    }
    blobs.insert(got);
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
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let cas_dev = fs::metadata(cas.root())?.dev();
    let blobs = BlobIndex::new(cas);
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
                    match move_into_store(cas, &blobs, &h, cas_dev, euid, None) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed_identity(path: &Path) -> PendingIngest {
        let (dev, ino, size, mtime_ns) = identity(&fs::symlink_metadata(path).unwrap());
        PendingIngest {
            hash: ContentHash::default(),
            dev,
            ino,
            size,
            mtime_ns,
        }
    }

    #[test]
    fn the_trash_takes_only_the_file_that_was_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let trash = Trash::new_in(&cas);
        let work = dir.path().join("work");
        fs::create_dir(&work).unwrap();

        let same = work.join("same");
        fs::write(&same, "content").unwrap();
        let id = hashed_identity(&same);
        assert!(trash.discard_if(&same, &id).unwrap());
        assert!(!same.exists());

        // Written since it was hashed: put back, as it is now.
        let grown = work.join("grown");
        fs::write(&grown, "v1").unwrap();
        let id = hashed_identity(&grown);
        fs::write(&grown, "version 2").unwrap();
        assert!(!trash.discard_if(&grown, &id).unwrap());
        assert_eq!(fs::read_to_string(&grown).unwrap(), "version 2");

        // Replaced by another file (same size) since it was hashed.
        let swapped = work.join("swapped");
        fs::write(&swapped, "v1").unwrap();
        let id = hashed_identity(&swapped);
        let other = work.join("other");
        fs::write(&other, "v2").unwrap();
        fs::rename(&other, &swapped).unwrap();
        assert!(!trash.discard_if(&swapped, &id).unwrap());
        assert_eq!(fs::read_to_string(&swapped).unwrap(), "v2");

        // Many files fill small sub-directories, never one big one.
        for i in 0..3 * TRASH_DIR_NAMES {
            let f = work.join(format!("f{i}"));
            fs::write(&f, "x").unwrap();
            assert!(trash.discard_if(&f, &hashed_identity(&f)).unwrap());
        }
        let subdirs: Vec<_> = fs::read_dir(trash.dir().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(subdirs.len() >= 3, "{subdirs:?}");
        for sub in subdirs {
            assert!(fs::read_dir(&sub).unwrap().count() <= TRASH_DIR_NAMES as usize);
        }
        assert_eq!(
            fs::read_dir(&work).unwrap().count(),
            2,
            "only the changed files are left"
        );
    }
}
