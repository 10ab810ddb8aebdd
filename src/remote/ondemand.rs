//! Blobs on demand: a snapshot pulled without `--eager` references blobs
//! that only its remote holds; the first reader of such a file (the shim's
//! `open`, `exec`, the applets through the daemon; `vrift cat` and
//! `materialize` directly) fetches the blob into the store.
//!
//! Where from: the project's remotes (its own, then the user's), the
//! default one first; a remote that lacks the blob is passed over, the
//! next one is asked. What comes back is verified by its hash (and bounded
//! by the size the entry records) before it becomes a blob: a remote that
//! is gone or sends other bytes gives an error, never wrong content.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use vrift_format::ContentHash;

use super::config::Remotes;
use super::store::Remote;
use crate::cas::Cas;
use crate::project::Project;

/// The URLs a missing blob is looked for at, in order: the remote a command
/// would use without `--remote` (when there is one), then every other one.
pub fn candidate_urls(project: &Project) -> Result<Vec<String>> {
    let remotes = Remotes::load(Some(project))?;
    let mut urls = Vec::new();
    if let Ok(first) = remotes.pick(None) {
        urls.push(first.url.clone());
    }
    for r in &remotes.list {
        if !urls.contains(&r.url) {
            urls.push(r.url.clone());
        }
    }
    Ok(urls)
}

/// [`candidate_urls`] for a long-lived process (the daemon asks at every
/// fetch): the config files are read again only when one of them changed
/// (another inode, size, mtime or ctime), so a remote added while the
/// daemon runs counts without a read and parse per fetch.
#[derive(Default)]
pub struct CandidateUrls {
    /// The two config files' stamps when last read, and what they gave.
    seen: Option<([Stamp; 2], Arc<[String]>)>,
}

/// What tells a file's versions apart: inode, size, mtime, ctime, device
/// (None: absent).
type Stamp = Option<[i64; 5]>;

impl CandidateUrls {
    pub fn get(&mut self, project: &Project) -> Result<Arc<[String]>> {
        let stamps = [
            stamp(&project.config_path()),
            stamp(&super::config::user_config_path()?),
        ];
        if let Some((seen, urls)) = &self.seen {
            if *seen == stamps {
                return Ok(urls.clone());
            }
        }
        let urls: Arc<[String]> = candidate_urls(project)?.into();
        self.seen = Some((stamps, urls.clone()));
        Ok(urls)
    }
}

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some([
        m.ino() as i64,
        m.size() as i64,
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        m.dev() as i64,
    ])
}

/// The remotes a process has opened, by URL, kept between fetches (their
/// connections are reused).
#[derive(Default)]
pub struct RemoteCache {
    open: Mutex<HashMap<String, Arc<Remote>>>,
}

impl RemoteCache {
    fn get(&self, url: &str) -> Result<Arc<Remote>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = open.get(url) {
            return Ok(r.clone());
        }
        let r = Arc::new(Remote::open(url)?);
        open.insert(url.to_string(), r.clone());
        Ok(r)
    }

    /// Fetches blob `hash` (of `size` bytes, if known) from the first of
    /// `urls` that has it. The error is one line: the last remote's failure,
    /// or that none has the blob.
    pub fn fetch(
        &self,
        urls: &[String],
        cas: &Cas,
        hash: &ContentHash,
        size: Option<u64>,
    ) -> Result<u64> {
        if urls.is_empty() {
            return Err(anyhow!(
                "blob {hash} is missing from the store and no remote is configured (run `vrift fsck`)"
            ));
        }
        let mut failure = None;
        for url in urls {
            let got = self
                .get(url)
                .and_then(|remote| remote.fetch(cas, hash, size));
            match got {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| {
            anyhow!(
                "blob {hash} is missing from the store and from {} (run `vrift fsck`)",
                urls.join(", ")
            )
        }))
    }
}

/// Opens blob `hash` of `project`'s store, fetching it first if it is
/// missing, or damaged (see [`quarantine_damaged`]), and a remote has it
/// (for the CLI, which holds the project lock and so cannot ask the daemon).
/// Without a remote a damaged blob is returned as it is: the callers that
/// hand its bytes on check it ([`Cas::open_blob_verified`]).
pub fn open_blob(project: &Project, cas: &Cas, hash: &ContentHash, size: u64) -> Result<File> {
    if let Ok(f) = File::open(cas.blob_path(hash)) {
        if f.metadata().is_ok_and(|m| m.len() == size) {
            return Ok(f);
        }
        let urls = candidate_urls(project)?;
        if urls.is_empty() {
            return Ok(f);
        }
        drop(f);
        quarantine_damaged(cas, hash, size)?;
        RemoteCache::default().fetch(&urls, cas, hash, Some(size))?;
        return cas.open_blob(hash);
    }
    if cas.has_blob(hash) {
        return cas.open_blob(hash); // present but unreadable: say why
    }
    let urls = candidate_urls(project)?;
    RemoteCache::default().fetch(&urls, cas, hash, Some(size))?;
    cas.open_blob(hash)
}

/// Moves blob `hash` to the store's quarantine if its size is not `size`,
/// so that it can be fetched again; true if it did. Blobs fetched on
/// demand are not flushed one by one (a flush per blob was most of a lazy
/// read's time), so a power loss can leave one empty or cut short; every
/// reader compares an opened blob's size with its entry's, and the damage
/// costs a refetch, never wrong bytes.
pub fn quarantine_damaged(cas: &Cas, hash: &ContentHash, size: u64) -> Result<bool> {
    let path = cas.blob_path(hash);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(false);
    };
    if meta.len() == size {
        return Ok(false);
    }
    let dir = cas.quarantine_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dest = dir.join(format!("{hash}.{stamp}"));
    match std::fs::rename(&path, &dest) {
        Ok(()) => Ok(true),
        // Moved (or replaced) by another reader meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot quarantine {}", path.display())),
    }
}

/// The blobs of `blobs` (hash, size) that one of the project's remotes
/// holds under that name and size — what `vrift gc --offload` may delete
/// locally, since the first read fetches them again. An error if no
/// remote could be asked (one that answers is enough).
pub fn held_by_remotes(
    project: &Project,
    blobs: &[(ContentHash, u64)],
) -> Result<HashSet<ContentHash>> {
    let mut held = HashSet::new();
    let mut failures = Vec::new();
    let mut asked = 0;
    for url in candidate_urls(project)? {
        let rest: Vec<(ContentHash, u64)> = blobs
            .iter()
            .filter(|b| !held.contains(&b.0))
            .copied()
            .collect();
        if rest.is_empty() {
            break;
        }
        match Remote::open(&url).and_then(|r| r.holds(&rest)) {
            Ok(has) => {
                asked += 1;
                held.extend(rest.iter().zip(has).filter(|(_, h)| *h).map(|(b, _)| b.0));
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if asked == 0 && !failures.is_empty() {
        anyhow::bail!("{}", failures.join("; "));
    }
    Ok(held)
}
