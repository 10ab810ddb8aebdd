//! `vrift gc`: mark every blob referenced by a registered project's rift,
//! phantom layer, snapshots or ingest journal; sweep the rest.
//!
//! Remotes: gc acts on the local store only. It never deletes from a remote
//! (nothing in vrift does), and a blob a manifest references but the store
//! lacks — a snapshot pulled without `--eager` — is counted, not an error:
//! its remote holds it and the first read fetches it. A blob that is both
//! referenced and on a remote is kept like any other referenced blob.
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
use crate::manifest::{Layer, ReadTxn};
use crate::project::{self, Project};

/// Every blob a manifest references.
pub fn references(txn: &ReadTxn<'_>, into: &mut HashSet<ContentHash>) -> Result<()> {
    for layer in [Layer::Rift, Layer::Phantom] {
        txn.for_each(layer, b"", |_, rec| {
            if let Some(h) = rec.blob() {
                into.insert(h);
            }
            Ok(())
        })?;
    }
    for snap in txn.snapshots()? {
        txn.for_each_in_snapshot(&snap.name, |_, rec| {
            if let Some(h) = rec.blob() {
                into.insert(h);
            }
            Ok(())
        })?;
    }
    for (_, p) in txn.pending()? {
        into.insert(p.hash);
    }
    Ok(())
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
    /// Referenced blobs that are not in the store: snapshots pulled without
    /// `--eager` reference blobs only their remote holds (fetched on first
    /// read). Not an error, and nothing gc deletes or fetches.
    pub absent: u64,
}

/// Temp files younger than this may belong to a writer that is still running.
const TMP_GRACE: Duration = Duration::from_secs(3600);

pub fn gc(cas: &Cas, delete: bool) -> Result<Report> {
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
        references(&manifest.read()?, &mut live)?;
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
        report.projects.push(root);
    }
    let blobs = cas.list_blobs()?;
    let present: HashSet<ContentHash> = blobs.iter().map(|(h, _)| *h).collect();
    report.absent = live.iter().filter(|h| !present.contains(h)).count() as u64;
    let bar = crate::ui::progress_of(blobs.len() as u64, "gc", "blobs");
    for (hash, path) in blobs {
        bar.inc(1);
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        report.blobs += 1;
        report.blob_bytes += size;
        if live.contains(&hash) {
            continue;
        }
        report.unreferenced += 1;
        report.unreferenced_bytes += size;
        if delete {
            match fs::remove_file(&path) {
                Ok(()) => report.deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot delete {}", path.display()))
                }
            }
        }
    }
    bar.finish_and_clear();
    // Executable copies the shim made of rift executables: derived data,
    // kept while their blob is live.
    if let Ok(entries) = fs::read_dir(cas.exec_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let live_copy =
                ContentHash::from_hex(name.as_bytes()).is_some_and(|h| live.contains(&h));
            if !live_copy {
                report.stale_exec += 1;
                if delete {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    stale_libraries(cas, delete, &mut report);
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
