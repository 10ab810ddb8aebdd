//! `vrift gc`: mark every blob referenced by a registered project's rift,
//! phantom layer, snapshots or ingest journal; sweep the rest.
//!
//! Remotes: gc acts on the local store only. It never deletes from a remote
//! (nothing in vrift does), and a blob a manifest references but the store
//! lacks — a snapshot pulled without `--eager` — is counted, not an error:
//! its remote holds it and the first read fetches it. A blob that is both
//! referenced and on a remote is kept like any other referenced blob —
//! unless `--offload` is asked for and only snapshots reference it: then its
//! local copy goes when a remote of every project naming it holds it (the
//! store is shared, and a project fetches from its own remotes only).
//!
//! Safety: sweeping holds the store's gc lock exclusively, which every ingest
//! holds shared from before it looks for a blob until it has committed its
//! references (cas.rs, invariant 3). A registered project whose manifest
//! cannot be read stops the sweep: gc cannot know what it needs.

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use vrift_format::ContentHash;

use crate::cas::Cas;
use crate::lock::LockMode;
use crate::manifest::{Layer, ReadTxn, Record};
use crate::project::{self, Project};

/// Every record of a manifest that keeps something of the store alive:
/// its rift and phantom layers and its snapshots.
fn for_each_record(txn: &ReadTxn<'_>, mut f: impl FnMut(&Record)) -> Result<()> {
    for layer in [Layer::Rift, Layer::Phantom] {
        txn.for_each(layer, b"", |_, rec| {
            f(&rec);
            Ok(())
        })?;
    }
    for snap in txn.snapshots()? {
        txn.for_each_in_snapshot(&snap.name, |_, rec| {
            f(&rec);
            Ok(())
        })?;
    }
    Ok(())
}

/// The blobs a manifest references: those its view reads now (the rift
/// and phantom layers, pending ingests) into `current`, those only its
/// snapshots name into `snapshots_only`.
fn references(
    txn: &ReadTxn<'_>,
    current: &mut HashSet<ContentHash>,
    snapshots_only: &mut HashSet<ContentHash>,
) -> Result<()> {
    let mut mine = HashSet::new();
    for layer in [Layer::Rift, Layer::Phantom] {
        txn.for_each(layer, b"", |_, rec| {
            mine.extend(rec.blob());
            Ok(())
        })?;
    }
    for (_, p) in txn.pending()? {
        mine.insert(p.hash);
    }
    for snap in txn.snapshots()? {
        txn.for_each_in_snapshot(&snap.name, |_, rec| {
            if let Some(h) = rec.blob().filter(|h| !mine.contains(h)) {
                snapshots_only.insert(h);
            }
            Ok(())
        })?;
    }
    current.extend(mine);
    Ok(())
}

/// Every special file's node a manifest references.
fn node_references(txn: &ReadTxn<'_>, into: &mut HashSet<Vec<u8>>) -> Result<()> {
    for_each_record(txn, |rec| {
        if let Some(n) = rec.node() {
            into.insert(n.to_vec());
        }
    })
}

#[derive(Debug, Default)]
pub struct Report {
    pub projects: Vec<PathBuf>,
    /// Registry entries whose project no longer exists.
    pub stale_projects: Vec<PathBuf>,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub unreferenced: u64,
    pub unreferenced_bytes: u64,
    pub deleted: u64,
    /// Leftover temp files of killed writers.
    pub stale_tmp: u64,
    /// Executable copies (`exec/`, made by the shim) of unreferenced blobs.
    pub stale_exec: u64,
    /// Copies of the view library (`lib/`) that no running process maps
    /// and that are not the current one.
    pub stale_libs: u64,
    /// Nodes of special files (`nodes/`) no manifest or snapshot names.
    pub stale_nodes: u64,
    /// Referenced blobs that are not in the store: snapshots pulled without
    /// `--eager` reference blobs only their remote holds (fetched on first
    /// read). Not an error, and nothing gc deletes or fetches.
    pub absent: u64,
    /// With `--offload`: blobs only snapshots reference that a remote of
    /// every project referencing them holds (deleted with `--delete`).
    pub offloadable: u64,
    pub offloadable_bytes: u64,
    /// With `--offload`: blobs only snapshots reference that must stay (a
    /// project referencing them has no remote holding them).
    pub not_offloadable: u64,
    /// With `--offload`: projects whose remotes could not be asked, and why
    /// (their blobs stay).
    pub offload_unchecked: Vec<(PathBuf, String)>,
}

/// What `vrift gc` does besides counting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delete what it found (otherwise it only reports).
    pub delete: bool,
    /// Also count (and with `delete`, delete) the local copies of blobs that
    /// only snapshots reference and that the projects' remotes hold: a
    /// restored snapshot fetches them again on first read (`vrift pull
    /// --eager` fetches all). What a CI machine that pushes its snapshots
    /// does to keep its disk.
    pub offload: bool,
}

/// Temp files younger than this may belong to a writer that is still running.
const TMP_GRACE: Duration = Duration::from_secs(3600);

pub fn gc(cas: &Cas, opts: Options) -> Result<Report> {
    let delete = opts.delete;
    // Running daemons commit what they journaled and exit, sealing their
    // staged files while they still can (they never wait for the gc lock).
    for (_, root) in project::registered(cas)? {
        if let Ok(p) = Project::at(&root) {
            crate::daemon::client::stop(&p)
                .with_context(|| format!("gc needs {}'s daemon stopped", root.display()))?;
        }
    }
    let _gc_lock = cas.gc_lock(if delete {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    })?;
    let mut report = Report::default();
    let mut live = HashSet::new();
    let mut live_nodes = HashSet::new();
    // Per project, the blobs only its snapshots reference (for --offload).
    let mut snapshot_refs: Vec<(Project, HashSet<ContentHash>)> = Vec::new();
    for (entry, root) in project::registered(cas)? {
        let manifest_path = root.join(project::STATE_DIR).join("manifest.redb");
        if !manifest_path.exists() {
            report.stale_projects.push(root.clone());
            if delete {
                fs::remove_file(&entry)
                    .with_context(|| format!("cannot remove {}", entry.display()))?;
            }
            continue;
        }
        let p = Project::at(&root)?;
        // A daemon started again meanwhile (a build is writing) commits and
        // exits too; one that cannot seal while gc holds the lock says so.
        crate::daemon::client::stop(&p).with_context(|| {
            format!(
                "a build is writing in {}; run gc again when it has finished",
                root.display()
            )
        })?;
        let _lock = p.lock()?;
        let manifest = p.manifest().with_context(|| {
            format!(
                "gc needs every registered project's manifest; {} cannot be read \
                 (fix it, or delete its registry entry {} if the project is gone)",
                root.display(),
                entry.display()
            )
        })?;
        let txn = manifest.read()?;
        let mut snapshots_only = HashSet::new();
        references(&txn, &mut live, &mut snapshots_only)?;
        node_references(&txn, &mut live_nodes)?;
        // The project's mirror of rift programs and libraries for the loader
        // (hard links to executable copies; remade on the next run): with
        // --delete it goes, so the copies' space is really freed.
        if delete {
            let mirror = root.join(vrift_format::EXEC_MIRROR);
            match fs::remove_dir_all(&mirror) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot delete {}", mirror.display()))
                }
            }
        }
        drop(txn);
        drop(manifest);
        report.projects.push(root);
        snapshot_refs.push((p, snapshots_only));
    }
    // A blob one project's rift reads and another's snapshot names is live.
    for (_, only) in &mut snapshot_refs {
        only.retain(|h| !live.contains(h));
    }
    for (_, only) in &snapshot_refs {
        live.extend(only.iter().copied());
    }
    let blobs = cas.list_blobs()?;
    let present: HashSet<ContentHash> = blobs.iter().map(|(h, _)| *h).collect();
    report.absent = live.iter().filter(|h| !present.contains(h)).count() as u64;
    let offloaded = if opts.offload {
        offloadable(cas, &present, &snapshot_refs, &mut report)?
    } else {
        HashSet::new()
    };
    let bar = crate::ui::progress_of(blobs.len() as u64, "gc", "blobs");
    for (hash, path) in blobs {
        bar.inc(1);
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        report.blobs += 1;
        report.blob_bytes += size;
        if offloaded.contains(&hash) {
            report.offloadable += 1;
            report.offloadable_bytes += size;
            if delete {
                remove_blob(&path)?;
            }
            continue;
        }
        if live.contains(&hash) {
            continue;
        }
        report.unreferenced += 1;
        report.unreferenced_bytes += size;
        if delete && remove_blob(&path)? {
            report.deleted += 1;
        }
    }
    bar.finish_and_clear();
    // Executable copies the shim made of rift executables: derived data,
    // kept while their blob is live.
    if let Ok(entries) = fs::read_dir(cas.exec_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let live_copy = ContentHash::from_hex(name.as_bytes())
                .is_some_and(|h| live.contains(&h) && !offloaded.contains(&h));
            if !live_copy {
                report.stale_exec += 1;
                if delete {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    stale_libraries(cas, delete, &mut report);
    // Nodes of special files: kept while a record names them (a FIFO
    // removed in the view may come back with a snapshot).
    if let Ok(entries) = fs::read_dir(cas.root().join(vrift_format::NODES_DIR)) {
        for entry in entries.flatten() {
            if !live_nodes.contains(entry.file_name().as_bytes()) {
                report.stale_nodes += 1;
                if delete {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    let now = SystemTime::now();
    for entry in fs::read_dir(cas.tmp_dir())? {
        let entry = entry?;
        let name = entry.file_name();
        // Duplicates an ingest set aside: gone once their reaper is gone.
        if let Some(rest) = name.as_bytes().strip_prefix(b"trash.") {
            let pid = std::str::from_utf8(rest)
                .ok()
                .and_then(|r| r.split('.').next())
                .and_then(|p| p.parse::<i32>().ok());
            // SAFETY: kill with signal 0 only checks that the process exists.
            let alive = pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0);
            if !alive {
                report.stale_tmp += 1;
                if delete {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
            continue;
        }
        // An ingest's moved file is user data until recovery adopts it.
        if let Some(hex) = name.as_bytes().strip_prefix(b"ingest.") {
            let hash = hex.get(..64).and_then(ContentHash::from_hex);
            if hash.is_some_and(|h| live.contains(&h)) {
                continue;
            }
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| now.duration_since(t).unwrap_or_default() > TMP_GRACE)
            .unwrap_or(false);
        if old {
            report.stale_tmp += 1;
            if delete {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(report)
}

/// Deletes a blob; false if it was already gone.
fn remove_blob(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
}

/// The local blobs only snapshots reference that may go: for every project
/// whose snapshots name one, one of that project's remotes holds it (by
/// name and size). The store is shared, and a project fetches only from its
/// own remotes, so one project without such a remote keeps the blob.
#[cfg(feature = "remote")]
fn offloadable(
    cas: &Cas,
    present: &HashSet<ContentHash>,
    snapshot_refs: &[(Project, HashSet<ContentHash>)],
    report: &mut Report,
) -> Result<HashSet<ContentHash>> {
    let mut candidates: HashSet<ContentHash> = snapshot_refs
        .iter()
        .flat_map(|(_, only)| only.iter().copied())
        .filter(|h| present.contains(h))
        .collect();
    let all = candidates.len() as u64;
    for (project, only) in snapshot_refs {
        let mine: Vec<(ContentHash, u64)> = only
            .iter()
            .filter(|h| candidates.contains(h))
            .map(|h| {
                let size = fs::symlink_metadata(cas.blob_path(h)).map_or(0, |m| m.len());
                (*h, size)
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let held = match crate::remote::ondemand::held_by_remotes(project, &mine) {
            Ok(held) => held,
            Err(e) => {
                report
                    .offload_unchecked
                    .push((project.root().to_path_buf(), format!("{e:#}")));
                HashSet::new()
            }
        };
        for (h, _) in &mine {
            if !held.contains(h) {
                candidates.remove(h);
            }
        }
    }
    report.not_offloadable = all - candidates.len() as u64;
    Ok(candidates)
}

#[cfg(not(feature = "remote"))]
fn offloadable(
    _: &Cas,
    _: &HashSet<ContentHash>,
    _: &[(Project, HashSet<ContentHash>)],
    _: &mut Report,
) -> Result<HashSet<ContentHash>> {
    anyhow::bail!("this vrift was built without remotes (cargo feature `remote`): there is nothing to offload to")
}

/// The library copies inceptions preload (`Cas::pin_library`): one per
/// library build. Those mapped by a running process (any `/proc/*/maps`
/// naming them) and the one the installed library pins to stay.
fn stale_libraries(cas: &Cas, delete: bool, report: &mut Report) {
    let Ok(entries) = fs::read_dir(cas.lib_dir()) else {
        return;
    };
    let current = crate::inception::env::shim_path()
        .ok()
        .and_then(|lib| cas.pin_library(&lib).ok());
    let mapped = mapped_paths(&cas.lib_dir());
    for entry in entries.flatten() {
        let path = entry.path();
        if Some(&path) == current.as_ref() || mapped.contains(&path) {
            continue;
        }
        report.stale_libs += 1;
        if delete {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Files under `dir` that some process of ours has mapped.
fn mapped_paths(dir: &Path) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Ok(maps) = fs::read(p.path().join("maps")) else {
            continue;
        };
        for line in maps.split(|&c| c == b'\n') {
            if let Some(at) = line.iter().position(|&c| c == b'/') {
                let path = Path::new(std::ffi::OsStr::from_bytes(&line[at..]));
                if path.starts_with(dir) {
                    out.insert(path.to_path_buf());
                }
            }
        }
    }
    out
}
