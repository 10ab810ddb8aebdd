//! A project held exclusively: its daemon stopped (it commits and exits
//! first), the project lock taken, its journal replayed and an interrupted
//! ingest finished, so the manifest is consistent and no other writer
//! exists. Restoring a snapshot and discarding the rift are done here, for
//! the CLI (which only asks and prints) and any other caller.

use std::collections::HashSet;
use std::fs;

use anyhow::{Context, Result};
use rayon::prelude::*;
use vrift_format::{Kind, DIR_CREATED};

use crate::cas::Cas;
use crate::lock::FileLock;
use crate::manifest::{Layer, Manifest, SnapshotInfo, WriteTxn};
use crate::paths::parent_rel;
use crate::project::Project;

/// The manifest of a project with no daemon and the project lock held
/// (released when dropped).
pub struct Exclusive {
    project: Project,
    cas: Cas,
    manifest: Manifest,
    lock: FileLock,
}

/// What a restore did.
pub struct Restored {
    pub info: SnapshotInfo,
    /// Directories the restored rift needed that were made on disk.
    pub created_dirs: u64,
}

/// What a discard did.
pub struct Discarded {
    pub entries: u64,
    /// Empty directories the rift had made, removed from disk.
    pub removed_dirs: u64,
}

impl Project {
    /// Stops the project's daemon, locks the project and opens its
    /// manifest, finishing an interrupted ingest and replaying the
    /// daemon's journal first so that every command sees a consistent
    /// rift (the hot table is republished if either changed it).
    pub fn open_exclusive(&self) -> Result<Exclusive> {
        let cas = self.cas()?;
        // The daemon holds the manifest while it runs: it commits and exits first.
        crate::daemon::client::stop(self)?;
        let lock = self.lock()?;
        let manifest = self.manifest()?;
        let replayed =
            crate::daemon::journal::replay(&crate::daemon::rift::journal_path(self), &manifest)?;
        if crate::ingest::recover(self, &cas, &manifest)? || replayed > 0 {
            crate::table::publish(self, &cas, &manifest)?;
        }
        Ok(Exclusive {
            project: self.clone(),
            cas,
            manifest,
            lock,
        })
    }
}

impl Exclusive {
    pub fn cas(&self) -> &Cas {
        &self.cas
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The lock, the store and the manifest, for callers that keep them
    /// apart (the lock must outlive every use of the manifest).
    pub fn into_parts(self) -> (FileLock, Cas, Manifest) {
        (self.lock, self.cas, self.manifest)
    }

    /// Makes snapshot `name` the rift: its records and directory marks,
    /// the directories it needs on disk (made, and marked as the rift's),
    /// and the hot table.
    pub fn restore(&self, name: &str) -> Result<Restored> {
        let (project, cas, manifest) = (&self.project, &self.cas, &self.manifest);
        let txn = manifest.write()?;
        let info = txn.snapshot_restore(name)?;
        txn.commit()?;
        // The directories the restored rift needs are checked (and the
        // missing ones made) on one core while the table is built on
        // the other. Both are done before the command returns.
        let (created, published) = std::thread::scope(|s| {
            let dirs = s.spawn(|| -> Result<u64> {
                let txn = manifest.write()?;
                let created = ensure_physical_dirs(project, &txn)?;
                if created > 0 {
                    txn.commit()?;
                } else {
                    txn.abort()?;
                }
                Ok(created)
            });
            let published = crate::table::publish(project, cas, manifest);
            let created = dirs.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (created, published)
        });
        published?;
        let created = created?;
        if created > 0 {
            // The table must carry the new directories' marks too.
            crate::table::publish(project, cas, manifest)?;
        }
        crate::profile::restored(project, name)?;
        Ok(Restored {
            info,
            created_dirs: created,
        })
    }

    /// How many rift entries and directory marks the rift holds.
    pub fn rift_size(&self) -> Result<(u64, usize)> {
        let r = self.manifest.read()?;
        Ok((r.len(Layer::Rift)?, r.dirs()?.len()))
    }

    /// Empties the rift: every entry and mark goes, and the directories
    /// the rift made leave the disk when they are empty (and hold no
    /// phantom tree). The disk's own files and directories are untouched.
    pub fn discard(&self) -> Result<Discarded> {
        let (project, cas, manifest) = (&self.project, &self.cas, &self.manifest);
        let (entries, marks) = {
            let r = manifest.read()?;
            (r.len(Layer::Rift)?, r.dirs()?)
        };
        let txn = manifest.write()?;
        txn.clear(Layer::Rift)?;
        // Deepest first, so a created tree empties bottom-up.
        let mut created: Vec<Vec<u8>> = marks
            .into_iter()
            .filter(|(_, f)| f & DIR_CREATED != 0)
            .map(|(p, _)| p)
            .collect();
        created.sort_by_key(|p| std::cmp::Reverse(p.iter().filter(|&&c| c == b'/').count()));
        let mut removed_dirs = 0;
        for rel in &created {
            let mut phantom_below = false;
            txn.for_each(Layer::Phantom, rel, |_, _| {
                phantom_below = true;
                Ok(())
            })?;
            if !phantom_below && fs::remove_dir(project.disk_path(rel)).is_ok() {
                removed_dirs += 1;
            }
        }
        txn.clear_dir_marks()?;
        txn.commit()?;
        crate::table::publish(project, cas, manifest)?;
        Ok(Discarded {
            entries,
            removed_dirs,
        })
    }
}

/// Directories are physical (DESIGN.md §2): after a restore, every directory
/// the rift needs (parents of its entries, directories it created) must exist
/// on disk. Creates the missing ones and marks them as created by the rift.
///
/// Only the deepest needed directories are looked at (in parallel, relative
/// to the project root): a path that resolves proves every ancestor exists.
fn ensure_physical_dirs(project: &Project, txn: &WriteTxn<'_>) -> Result<u64> {
    let mut needed: HashSet<Vec<u8>> = HashSet::new();
    let add_with_ancestors = |needed: &mut HashSet<Vec<u8>>, mut p: &[u8]| {
        while !p.is_empty() && !needed.contains(p) {
            needed.insert(p.to_vec());
            p = parent_rel(p);
        }
    };
    // Records come in path order, so neighbours mostly share their parent.
    let mut last_parent: Option<Vec<u8>> = None;
    txn.for_each_raw(Layer::Rift, |k, v| {
        if v.first() == Some(&(Kind::Whiteout as u8)) {
            return;
        }
        let parent = parent_rel(k);
        if last_parent.as_deref() != Some(parent) {
            add_with_ancestors(&mut needed, parent);
            last_parent = Some(parent.to_vec());
        }
    })?;
    for (path, flags) in txn.dirs()? {
        if flags & DIR_CREATED != 0 {
            add_with_ancestors(&mut needed, &path);
        }
    }
    let inner: HashSet<&[u8]> = needed.iter().map(|d| parent_rel(d)).collect();
    let leaves: Vec<&[u8]> = needed
        .iter()
        .map(Vec::as_slice)
        .filter(|d| !inner.contains(d))
        .collect();
    let root = fs::File::open(project.root())
        .with_context(|| format!("cannot open {}", project.root().display()))?;
    let exists = |rel: &[u8]| lstat_at(&root, rel);
    let mut missing: Vec<&[u8]> = leaves.into_par_iter().filter(|d| !exists(d)).collect();
    missing.sort();
    let mut created = 0;
    let mut made: HashSet<Vec<u8>> = HashSet::new();
    for leaf in missing {
        // The missing part of the chain, deepest first.
        let mut chain = Vec::new();
        let mut p = leaf;
        while !p.is_empty() && !made.contains(p) && !exists(p) {
            chain.push(p);
            p = parent_rel(p);
        }
        for rel in chain.into_iter().rev() {
            let disk = project.disk_path(rel);
            fs::create_dir(&disk).with_context(|| format!("cannot create {}", disk.display()))?;
            txn.set_dir_mark(rel, txn.dir_mark(rel)? | DIR_CREATED)?;
            made.insert(rel.to_vec());
            created += 1;
        }
    }
    Ok(created)
}

/// Whether `rel` (relative to the directory `root`) names anything, without
/// following a final symlink.
fn lstat_at(root: &fs::File, rel: &[u8]) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(c) = std::ffi::CString::new(rel) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid NUL-terminated path and a buffer fstatat fills.
    unsafe {
        libc::fstatat(
            root.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
    }
}
