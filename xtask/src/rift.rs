//! Filling a project's rift layer through the library.
//!
//! Inside an inception the LD_PRELOAD shim writes the rift; it is not built
//! yet, so the tasks write what it would through `vrift::manifest`, holding
//! the same locks as any vrift command (the store's gc lock shared, then the
//! project lock).

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use vrift::cas::Cas;
use vrift::lock::LockMode;
use vrift::manifest::{Entry, Layer, Manifest, Record};
use vrift::project::Project;
use vrift_format::{Kind, DIR_CREATED, FLAG_PHANTOM};

/// What a build inside the inception did to one path.
pub enum Change<'a> {
    /// Wrote a regular file (mode 0644).
    Write(&'a str, &'a [u8]),
    /// Deleted a path.
    Delete(&'a str),
}

/// Applies `changes` to the rift of the project at `root`, as the shim would:
/// file contents go into the store, directories a new file needs are created
/// on disk and marked as created by the rift.
pub fn apply(root: &Path, store: &Path, changes: &[Change<'_>]) -> Result<()> {
    let project = Project::find(root)?;
    let cas = Cas::open(store)?;
    let _gc = cas.gc_lock(LockMode::Shared)?;
    let _lock = project.lock()?;
    let manifest = Manifest::open(&project.manifest_path(), false)?;
    let txn = manifest.write()?;
    let first_ino = txn.alloc_inos(changes.len() as u64)?;
    for (i, change) in changes.iter().enumerate() {
        match *change {
            Change::Write(path, content) => {
                for dir in missing_parents(&project, path) {
                    let disk = project.disk_path(dir.as_bytes());
                    fs::create_dir(&disk)
                        .with_context(|| format!("cannot create {}", disk.display()))?;
                    txn.set_dir_mark(dir.as_bytes(), DIR_CREATED)?;
                }
                let entry = Entry {
                    kind: Kind::File,
                    flags: 0,
                    mode: 0o100644,
                    size: content.len() as u64,
                    mtime_ns: now_ns(),
                    ino: first_ino + i as u64,
                    hash: cas.put_bytes(content)?,
                    target: Vec::new(),
                    uid: vrift_format::OWNER_INHERIT,
                    gid: vrift_format::OWNER_INHERIT,
                    atime_ns: 0,
                };
                txn.put(Layer::Rift, path.as_bytes(), &Record::Entry(entry))?;
            }
            Change::Delete(path) => txn.put(Layer::Rift, path.as_bytes(), &Record::Whiteout)?,
        }
    }
    txn.commit()
}

/// Writes one rift entry per phantom entry, at the same path with the same
/// content, mode and inode: what the rift holds after a build inside the
/// inception rewrote every ingested file identically. Returns the count.
pub fn mirror_phantom(root: &Path, store: &Path) -> Result<u64> {
    let project = Project::find(root)?;
    let cas = Cas::open(store)?;
    let _gc = cas.gc_lock(LockMode::Shared)?;
    let _lock = project.lock()?;
    let manifest = Manifest::open(&project.manifest_path(), false)?;
    let txn = manifest.write()?;
    let mut count = 0;
    txn.for_each(Layer::Phantom, b"", |path, rec| {
        let rec = match rec {
            // The rift's own entries were not moved from the disk.
            Record::Entry(e) => Record::Entry(Entry {
                flags: e.flags & !FLAG_PHANTOM,
                ..e
            }),
            Record::Whiteout => Record::Whiteout,
        };
        count += 1;
        txn.put(Layer::Rift, path, &rec)
    })?;
    txn.commit()?;
    Ok(count)
}

/// Ancestors of the rift path `path` missing on disk, outermost first.
fn missing_parents<'p>(project: &Project, path: &'p str) -> Vec<&'p str> {
    path.match_indices('/')
        .map(|(i, _)| &path[..i])
        .filter(|dir| fs::symlink_metadata(project.disk_path(dir.as_bytes())).is_err())
        .collect()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
