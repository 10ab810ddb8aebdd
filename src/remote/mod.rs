//! Remotes: snapshots shared through an existing object store.
//!
//! `push` uploads the blobs a snapshot references that the remote lacks,
//! then the snapshot itself (a bundle, stored as a blob), then the ref
//! `refs/<project>/<snapshot>` naming the bundle's hash. The ref is written
//! last, so an interrupted push leaves no ref to a partial snapshot, and a
//! rerun finds what is already there and uploads only the rest.
//!
//! `pull` reads the ref, fetches and verifies the bundle, and adds it to the
//! local manifest's snapshots; `--eager` first fetches every blob the local
//! store lacks (verified). Without it, the blobs stay on the remote until a
//! reader of the view needs one ([`ondemand`], the daemon's `FetchBlob`).

pub mod aws;
pub mod bundle;
pub mod config;
pub mod ondemand;
pub mod sign;
pub mod store;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use vrift_format::ContentHash;

use crate::lock::LockMode;
use crate::manifest::{Manifest, Record};
use crate::project::Project;
use crate::ui;
use bundle::Bundle;
use store::Remote;

/// What a push did.
#[derive(Debug, Default)]
pub struct PushReport {
    pub snapshots: Vec<(String, ContentHash)>,
    /// Snapshots the remote's refs already named (not checked again).
    pub up_to_date: Vec<(String, ContentHash)>,
    /// Objects uploaded (blobs and bundles) and their bytes.
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    /// Objects the remote had already.
    pub present: u64,
    /// The name of the key the refs were signed with, if any.
    pub signed_by: Option<String>,
    /// Read profiles uploaded (the project's lazy reads, one per snapshot).
    pub profiles: u64,
}

/// Reads snapshot `name` out of the manifest.
pub fn export(manifest: &Manifest, name: &str) -> Result<Bundle> {
    let txn = manifest.read()?;
    let info = txn
        .snapshots()?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| anyhow!("no snapshot named {name:?} (see `vrift snapshot list`)"))?;
    let mut records = Vec::new();
    txn.for_each_in_snapshot(name, |k, rec| {
        records.push((k.to_vec(), rec));
        Ok(())
    })?;
    let dirs = txn.snapshot_dirs(name)?;
    Ok(Bundle {
        info,
        records,
        dirs,
    })
}

/// Pushes the snapshots `names` (every snapshot when empty) of `project`.
///
/// A snapshot whose ref on the remote already names the same bundle is
/// skipped unless `recheck`: refs are written last, so that push completed
/// (vrift never deletes from a remote; `recheck` is for remotes something
/// else prunes).
pub fn push(
    project: &Project,
    remote: &Remote,
    names: &[String],
    recheck: bool,
) -> Result<PushReport> {
    let cas = project.cas()?;
    // Lock order: the store's gc lock before the project's lock. Held shared
    // until the push ends, so `gc --delete` cannot remove a blob mid-read.
    let _gc = cas.gc_lock(LockMode::Shared)?;
    let project_name = config::project_name(project)?;
    let bundles: Vec<Bundle> = {
        // Read the snapshots under the project lock, then let it go: the
        // transfer may take long and needs no lock (snapshots are immutable).
        let (_lock, _cas, manifest) = project.open_exclusive()?.into_parts();
        let names: Vec<String> = if names.is_empty() {
            manifest
                .read()?
                .snapshots()?
                .into_iter()
                .map(|s| s.name)
                .collect()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            bail!("no snapshots to push (save one with `vrift snapshot save NAME`)");
        }
        names
            .iter()
            .map(|n| export(&manifest, n))
            .collect::<Result<_>>()?
    };
    // A key that cannot be read fails the push before anything moves.
    let key = sign::load_secret()?;
    // Before any blob is read for the upload (a read moves its atime).
    let profile = crate::profile::for_push(project, &cas)?;
    let mut blobs: Vec<(ContentHash, u64)> = Vec::new();
    let mut seen = HashSet::new();
    let mut encoded = Vec::new();
    let mut report = PushReport {
        signed_by: key.as_ref().map(|k| k.name.clone()),
        ..PushReport::default()
    };
    for b in &bundles {
        b.check_sealed()?;
        let bytes = b.encode()?;
        let hash = ContentHash(*blake3::hash(&bytes).as_bytes());
        // Up to date: the ref names this bundle (and, with a key, is
        // signed by it; otherwise only the ref is written again).
        let msg = sign::message(&project_name, &b.info.name, &hash);
        let current = remote.read_ref(&project_name, &b.info.name)?;
        let named = current.as_ref().is_some_and(|r| r.bundle == hash);
        let signed = match (&key, &current) {
            (Some(k), Some(r)) => sign::verify(&[k.public()], &msg, &r.sigs).is_ok(),
            (None, _) => true,
            (Some(_), None) => false,
        };
        if !recheck && named && signed {
            report.up_to_date.push((b.info.name.clone(), hash));
            continue;
        }
        for (h, size) in b.blobs() {
            if seen.insert(h) {
                blobs.push((h, size));
            }
        }
        encoded.push((b.info.name.clone(), hash, bytes));
    }
    let hashes: Vec<ContentHash> = blobs.iter().map(|(h, _)| *h).collect();
    let missing = remote.missing(&hashes)?;
    let todo: Vec<(ContentHash, u64)> = blobs
        .iter()
        .zip(&missing)
        .filter(|(_, m)| **m)
        .map(|(b, _)| *b)
        .collect();
    for (h, _) in &todo {
        if !cas.has_blob(h) {
            bail!(
                "blob {h} is neither in the local store ({}) nor on the remote {}: \
                 pull the snapshot with --eager first",
                cas.blob_path(h).display(),
                remote.url
            );
        }
    }
    report.present = (blobs.len() - todo.len()) as u64;
    let total: u64 = todo.iter().map(|(_, s)| s).sum();
    let done = transfer_progress(todo.len() as u64, total, "push");
    let todo_hashes: Vec<ContentHash> = todo.iter().map(|(h, _)| *h).collect();
    remote.upload(&cas, &todo_hashes, &|n| done.step(n))?;
    done.finish();
    report.uploaded = todo.len() as u64;
    report.uploaded_bytes = total;
    for (name, hash, bytes) in encoded {
        if let Some(profile) = &profile {
            remote.put_object(&remote.profile_key(&project_name, &name), profile.clone())?;
            report.profiles += 1;
        }
        if remote.missing(&[hash])?[0] {
            report.uploaded += 1;
            report.uploaded_bytes += bytes.len() as u64;
            remote.put_object(&remote.blob_key(&hash), bytes)?;
        } else {
            report.present += 1;
        }
        // Last: the ref names a snapshot whose every object is on the remote.
        let sig = key
            .as_ref()
            .map(|k| k.sign(&sign::message(&project_name, &name, &hash)));
        remote.write_ref(&project_name, &name, &hash, sig.as_deref())?;
        report.snapshots.push((name, hash));
    }
    Ok(report)
}

/// What a pull did.
#[derive(Debug)]
pub struct PullReport {
    pub bundle: ContentHash,
    pub entries: u64,
    pub fetched: u64,
    pub fetched_bytes: u64,
    /// Blobs the snapshot references that are still only on the remote.
    pub remote_only: u64,
    /// The snapshot was there already (same content).
    pub existed: bool,
    /// Paths in the read profile pulled with it (0: none).
    pub profile_paths: usize,
}

/// Pulls snapshot `name` of `project` from `remote`.
pub fn pull(project: &Project, remote: &Remote, name: &str, eager: bool) -> Result<PullReport> {
    crate::manifest::check_snapshot_name(name)?;
    let project_name = config::project_name(project)?;
    let ref_at = remote.describe(&remote.ref_key(&project_name, name));
    let found = remote.read_ref(&project_name, name)?.ok_or_else(|| {
        anyhow!(
            "the remote {} has no snapshot {name:?} for project {project_name:?} ({ref_at} does not exist)",
            remote.url,
        )
    })?;
    let msg = sign::message(&project_name, name, &found.bundle);
    if let Err(why) = sign::verify(&remote.trusted, &msg, &found.sigs) {
        bail!(
            "refused {ref_at}: {why}, and this remote trusts only refs signed by {} (trusted-keys)",
            remote
                .trusted
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let bundle_hash = found.bundle;
    let profile_key = remote.profile_key(&project_name, name);
    let profile = remote.get_object(&profile_key)?;
    let bytes = remote.get_blob(&bundle_hash)?;
    let mut bundle = Bundle::decode(&bytes, &remote.describe(&remote.blob_key(&bundle_hash)))?;
    bundle.info.name = name.to_string();
    let cas = project.cas()?;
    let _gc = cas.gc_lock(LockMode::Shared)?;
    let blobs = bundle.blobs();
    let missing: Vec<(ContentHash, u64)> = blobs
        .iter()
        .filter(|(h, _)| !cas.has_blob(h))
        .copied()
        .collect();
    let (mut fetched, mut fetched_bytes) = (0, 0);
    if eager && !missing.is_empty() {
        let total: u64 = missing.iter().map(|(_, s)| s).sum();
        let done = transfer_progress(missing.len() as u64, total, "pull");
        let hashes: Vec<ContentHash> = missing.iter().map(|(h, _)| *h).collect();
        remote
            .download(&cas, &hashes, &|n| done.step(n))
            .with_context(|| {
                format!("pulling snapshot {name:?} failed; nothing was added to the manifest")
            })?;
        done.finish();
        // Sealed blobs must be durable before a manifest references them.
        cas.sync()?;
        fetched = missing.len() as u64;
        fetched_bytes = done.bytes.load(Ordering::Relaxed);
    }
    let remote_only = if eager { 0 } else { missing.len() as u64 };
    let (_lock, _cas, manifest) = project.open_exclusive()?.into_parts();
    let existing = manifest
        .read()?
        .snapshots()?
        .into_iter()
        .any(|s| s.name == name);
    if existing {
        let local = export(&manifest, name)?;
        if !same_content(&local, &bundle) {
            bail!(
                "a different snapshot {name:?} exists locally; drop it (`vrift snapshot drop {name}`) or pull under another name"
            );
        }
    } else {
        bundle.info.entries = bundle.records.len() as u64;
        bundle.info.bytes = bundle
            .records
            .iter()
            .map(|(_, r)| match r {
                Record::Entry(e) => e.size,
                Record::Whiteout => 0,
            })
            .sum();
        let txn = manifest.write()?;
        txn.snapshot_import(&bundle.info, &bundle.records, &bundle.dirs)?;
        txn.commit()?;
    }
    // A hint only: one that is not a profile is said and left out.
    let profile_paths = match profile {
        Some(bytes) => {
            let what = remote.describe(&profile_key);
            match crate::profile::save(project, name, &bytes, &what) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("vrift: {e:#}; ignored");
                    0
                }
            }
        }
        None => 0,
    };
    Ok(PullReport {
        bundle: bundle_hash,
        entries: bundle.records.len() as u64,
        fetched,
        fetched_bytes,
        remote_only,
        existed: existing,
        profile_paths,
    })
}

/// Whether two bundles hold the same records and marks (inode numbers are
/// per manifest and do not count).
fn same_content(a: &Bundle, b: &Bundle) -> bool {
    let strip = |recs: &[(Vec<u8>, Record)]| -> Vec<(Vec<u8>, Record)> {
        recs.iter()
            .map(|(p, r)| {
                let r = match r {
                    Record::Entry(e) => Record::Entry(crate::manifest::Entry {
                        ino: 0,
                        ..e.clone()
                    }),
                    Record::Whiteout => Record::Whiteout,
                };
                (p.clone(), r)
            })
            .collect()
    };
    a.dirs == b.dirs && strip(&a.records) == strip(&b.records)
}

/// A progress bar in bytes that also counts files; drawn only on a terminal.
struct TransferProgress {
    bar: indicatif::ProgressBar,
    files: AtomicU64,
    total_files: u64,
    bytes: AtomicU64,
}

fn transfer_progress(files: u64, bytes: u64, what: &str) -> TransferProgress {
    TransferProgress {
        bar: ui::transfer_progress(bytes, what),
        files: AtomicU64::new(0),
        total_files: files,
        bytes: AtomicU64::new(0),
    }
}

impl TransferProgress {
    fn step(&self, n: u64) {
        let f = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.bar.inc(n);
        self.bar
            .set_message(format!("{f}/{} files", self.total_files));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
