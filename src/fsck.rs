//! `vrift fsck`: re-hash every blob, quarantine the corrupt ones, repair
//! modes, and check that a project's manifest references only blobs that exist.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rayon::prelude::*;
use vrift_format::ContentHash;

use crate::cas::{self, Cas};
use crate::manifest::{Layer, ReadTxn};
use crate::paths::display;
use crate::ui;

#[derive(Debug, Default)]
pub struct Report {
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs whose content does not match their name, moved to quarantine/.
    pub corrupt: Vec<(ContentHash, PathBuf)>,
    /// Blobs whose mode was not the store's blob mode (repaired).
    pub mode_fixed: u64,
    /// Blobs that could not be read.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Manifest records whose blob is missing: (where, path, hash).
    pub missing: Vec<(String, Vec<u8>, ContentHash)>,
    /// Blobs referenced but not in the store that a remote holds (pulled
    /// without `--eager`: fetched on first read), and the remote's URL.
    pub remote_only: Vec<(ContentHash, String)>,
    /// Why the remotes could not be asked about the missing blobs.
    pub remote_unchecked: Option<String>,
    /// Executable copies (`<store>/exec/<hash>`) whose content was not their
    /// blob's: removed (the next run makes them again from the blob).
    pub exec_tampered: Vec<PathBuf>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty()
            && self.unreadable.is_empty()
            && self.missing.is_empty()
            && self.exec_tampered.is_empty()
    }
}

pub fn check_store(cas: &Cas, report: &mut Report) -> Result<()> {
    let blobs = cas.list_blobs()?;
    let bar = ui::progress_of(blobs.len() as u64, "fsck", "blobs");
    let results: Vec<_> = blobs
        .par_iter()
        .map(|(hash, path)| {
            let r = (|| -> std::io::Result<(ContentHash, u64, u32)> {
                let meta = fs::symlink_metadata(path)?;
                let mut f = cas::open_to_check(path)?;
                Ok((
                    cas::hash_reader(&mut f)?,
                    meta.len(),
                    meta.permissions().mode() & 0o7777,
                ))
            })();
            bar.inc(1);
            (hash, path, r)
        })
        .collect();
    bar.finish_and_clear();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for (hash, path, r) in results {
        match r {
            Err(e) => report.unreadable.push((path.clone(), e.to_string())),
            Ok((actual, size, mode)) => {
                report.blobs += 1;
                report.bytes += size;
                if actual != *hash {
                    let dest = cas.quarantine_dir().join(format!("{hash}.{stamp}"));
                    fs::rename(path, &dest)
                        .with_context(|| format!("cannot quarantine {}", path.display()))?;
                    report.corrupt.push((*hash, dest));
                } else if mode & !cas::VERIFIED != cas.blob_mode() {
                    cas.mark_verified(path)
                        .with_context(|| format!("cannot fix the mode of {}", path.display()))?;
                    report.mode_fixed += 1;
                } else if mode & cas::VERIFIED == 0 {
                    // Hashed and found good: later readers need not hash it.
                    cas.mark_verified(path)
                        .with_context(|| format!("cannot mark {}", path.display()))?;
                }
            }
        }
    }
    Ok(())
}

/// Re-hashes the executable copies the library runs rift programs from
/// (`<store>/exec/<hash>`, hard-linked into projects' `.vrift/exec/`): one
/// whose content is not its name was changed after it was made, and is
/// removed, so that the next run copies the blob again.
pub fn check_exec_copies(cas: &Cas, report: &mut Report) -> Result<()> {
    let dir = cas.exec_dir();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(want) =
            ContentHash::from_hex(std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()))
        else {
            continue; // a copy being made, under a temporary name
        };
        let path = entry.path();
        let actual = cas::open_to_check(&path).and_then(|mut f| cas::hash_reader(&mut f));
        match actual {
            Ok(h) if h == want => {}
            Ok(_) => {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                report.exec_tampered.push(path);
            }
            Err(e) => report.unreadable.push((path, e.to_string())),
        }
    }
    Ok(())
}

/// Records every reference of the manifest whose blob is not in the store.
pub fn check_manifest(txn: &ReadTxn<'_>, cas: &Cas, report: &mut Report) -> Result<()> {
    let mut present: HashSet<ContentHash> = HashSet::new();
    let mut check = |place: &str, k: &[u8], h: ContentHash| {
        if present.contains(&h) {
            return;
        }
        if cas.has_blob(&h) {
            present.insert(h);
        } else {
            report.missing.push((place.to_string(), k.to_vec(), h));
        }
    };
    for (layer, place) in [(Layer::Rift, "rift"), (Layer::Phantom, "phantom")] {
        txn.for_each(layer, b"", |k, rec| {
            if let Some(h) = rec.blob() {
                check(place, k, h);
            }
            Ok(())
        })?;
    }
    for snap in txn.snapshots()? {
        let place = format!("snapshot {}", snap.name);
        txn.for_each_in_snapshot(&snap.name, |k, rec| {
            if let Some(h) = rec.blob() {
                check(&place, k, h);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Moves the missing blobs that one of the project's remotes holds from
/// `missing` to `remote_only`: a snapshot pulled without `--eager` is
/// complete there, and its blobs are fetched on first read. Only existence
/// is asked; the content is verified when it is fetched.
#[cfg(feature = "remote")]
pub fn check_remote(project: &crate::project::Project, report: &mut Report) -> Result<()> {
    if report.missing.is_empty() {
        return Ok(());
    }
    let urls = crate::remote::ondemand::candidate_urls(project)?;
    for url in urls {
        let mut hashes: Vec<ContentHash> = report.missing.iter().map(|m| m.2).collect();
        hashes.sort();
        hashes.dedup();
        let lacks = crate::remote::store::Remote::open(&url).and_then(|r| r.missing(&hashes));
        let lacks = match lacks {
            Ok(l) => l,
            Err(e) => {
                report.remote_unchecked = Some(format!("{e:#}"));
                continue;
            }
        };
        let there: HashSet<ContentHash> = hashes
            .iter()
            .zip(&lacks)
            .filter(|(_, lacks)| !**lacks)
            .map(|(h, _)| *h)
            .collect();
        report.missing.retain(|m| !there.contains(&m.2));
        report
            .remote_only
            .extend(there.into_iter().map(|h| (h, url.clone())));
        if report.missing.is_empty() {
            break;
        }
    }
    Ok(())
}

/// One line per missing reference, for the CLI.
pub fn describe_missing(report: &Report) -> Vec<String> {
    report
        .missing
        .iter()
        .map(|(place, k, h)| format!("{place}: {} references missing blob {h}", display(k)))
        .collect()
}
