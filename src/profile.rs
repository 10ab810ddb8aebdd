//! Read profiles: the view paths a project's lazy reads fetched, in the
//! order they were first read — recorded on one machine, a hint for the
//! next one (eStargz's prioritized files, Nydus's prefetch list, learned
//! instead of declared).
//!
//! A lazy pull leaves a snapshot's blobs on the remote; every read of one
//! is a round trip, and what a build reads next cannot all be guessed from
//! where it reads now (`Rift::neighbours` finds siblings, not the file a
//! `package.json` names as `main`). The machine that paid those round
//! trips knows the answer: its daemon logs each file it fetched, for a
//! reader or ahead of one ([`Log`], `.vrift/fetched`), and every blob it
//! fetches starts with an atime that says "unread" ([`mark_unread`]; the
//! kernel's relatime rule then moves it to the time of the first read).
//! `push` turns the log into the profile ([`for_push`]: the files that were
//! read, in the order of their first read) and uploads it beside the
//! snapshot (`profiles/<project>/<snapshot>` on the remote), `pull` brings
//! it back ([`saved_path`]), `snapshot restore` makes it the daemon's to-do
//! ([`pending_path`]), and the daemon's first fetch queues every blob it
//! names for prefetch, in order. On a filesystem mounted `noatime` the
//! profile holds the files read before being fetched ahead only.
//!
//! A profile is only ever a hint: its paths are checked like any path from
//! outside (valid rift paths, at most [`MAX_PATHS`]), a path the snapshot
//! lacks is skipped, and what it makes the daemon fetch is verified like
//! every blob. A wrong or hostile profile costs bandwidth, never content.
//!
//! Format of a profile: the paths, each followed by one NUL byte (paths
//! may hold any byte but NUL). Of the log: records of a kind byte
//! ([`ASKED`], [`AHEAD`]), the blob's 64 hex digits and the path, each
//! followed by one NUL byte.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cas::Cas;
use crate::project::Project;

/// A log record's kind: a reader waited for this file's blob.
pub const ASKED: u8 = b'r';
/// A log record's kind: the daemon fetched this file's blob ahead.
pub const AHEAD: u8 = b'a';
/// The atime a fetched blob starts with: 1 ns after the epoch, "unread"
/// (relatime replaces an atime not after the mtime at the first read).
const UNREAD_NS: i64 = 1;

/// Gives a blob just fetched (`file`, written, not yet read) the atime that
/// says "unread". A failure costs the profile a hint, nothing else.
pub fn mark_unread(file: &fs::File) {
    let unread = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(UNREAD_NS as u64);
    let _ = file.set_times(fs::FileTimes::new().set_accessed(unread));
}

/// Most paths a profile holds (the rest of a longer log is not recorded).
pub const MAX_PATHS: usize = 1 << 16;
/// Largest profile read (from the remote or the disk).
pub const MAX_BYTES: usize = 16 << 20;

/// The daemon's log of the files whose blobs it fetched (for a reader or
/// ahead of one) since the last restore.
pub fn log_path(project: &Project) -> PathBuf {
    project.state_dir().join("fetched")
}

/// The profile pulled with snapshot `name`.
pub fn saved_path(project: &Project, name: &str) -> PathBuf {
    project.state_dir().join("profiles").join(name)
}

/// The profile the daemon queues at its next fetch (the restored snapshot's).
pub fn pending_path(project: &Project) -> PathBuf {
    project.state_dir().join("prefetch")
}

/// Paths from `bytes`; an error names `what` when they are not a profile.
pub fn decode(bytes: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
    if bytes.len() > MAX_BYTES {
        bail!("{what} is not a read profile: {} bytes", bytes.len());
    }
    let Some(body) = bytes.strip_suffix(b"\0") else {
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        bail!("{what} is not a read profile: it does not end in a NUL byte");
    };
    let paths: Vec<Vec<u8>> = body.split(|&c| c == 0).map(<[u8]>::to_vec).collect();
    if let Some(bad) = paths.iter().find(|p| !vrift_format::is_valid_rift_path(p)) {
        bail!(
            "{what} is not a read profile: {:?} is not a path in a project",
            String::from_utf8_lossy(bad)
        );
    }
    if paths.len() > MAX_PATHS {
        bail!("{what} is not a read profile: {} paths", paths.len());
    }
    Ok(paths)
}

/// The profile to upload with a push: of the files the daemon's log
/// names, those read since they were fetched (their blob's atime is no
/// longer [`UNREAD_NS`]), in the order of their first read; a file a
/// reader waited for counts as read even where atimes do not move
/// (`noatime`). None when there is none. Computed before the push reads
/// any blob (reading one would make it look read).
pub fn for_push(project: &Project, cas: &Cas) -> Result<Option<Vec<u8>>> {
    use std::os::unix::fs::MetadataExt;
    let path = log_path(project);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut seen = HashSet::new();
    let mut read: Vec<(i64, usize, &[u8])> = Vec::new();
    let mut asked: Vec<&[u8]> = Vec::new();
    // A record cut short (a daemon killed mid-write) ends without a NUL
    // and is left out by the split's last piece being skipped.
    let whole = bytes.len() - bytes.iter().rev().take_while(|&&c| c != 0).count();
    for (i, rec) in bytes[..whole].split(|&c| c == 0).enumerate() {
        let Some((kind, hash, rel)) = parse_record(rec) else {
            continue; // the log is vrift's own; a bad record is only a lost hint
        };
        if !seen.insert(rel) {
            continue;
        }
        let Ok(meta) = fs::metadata(cas.blob_path(&hash)) else {
            continue;
        };
        let atime = meta.atime() * 1_000_000_000 + meta.atime_nsec();
        if atime != UNREAD_NS {
            read.push((atime, i, rel));
        } else if kind == ASKED {
            asked.push(rel);
        }
    }
    read.sort_unstable();
    let mut out = Vec::new();
    for rel in read.iter().map(|r| r.2).chain(asked).take(MAX_PATHS) {
        out.extend_from_slice(rel);
        out.push(0);
    }
    Ok((!out.is_empty()).then_some(out))
}

/// A log record: its kind, blob and path (None: not one).
fn parse_record(rec: &[u8]) -> Option<(u8, vrift_format::ContentHash, &[u8])> {
    let (&kind, rest) = rec.split_first()?;
    if (kind != ASKED && kind != AHEAD) || rest.len() <= 64 {
        return None;
    }
    let (hex, rel) = rest.split_at(64);
    let hash = vrift_format::ContentHash::from_hex(hex)?;
    vrift_format::is_valid_rift_path(rel).then_some((kind, hash, rel))
}

/// Keeps profile `bytes` (checked) pulled with snapshot `name`; returns
/// how many paths it holds.
pub fn save(project: &Project, name: &str, bytes: &[u8], what: &str) -> Result<usize> {
    let n = decode(bytes, what)?.len();
    let path = saved_path(project, name);
    let dir = path.parent().context("a profile path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::project::write_atomic(&path, bytes)?;
    Ok(n)
}

/// After snapshot `name` became the rift: the log starts again (the reads
/// it holds were of another view), and the profile pulled with `name`, if
/// any, becomes the daemon's to-do.
pub fn restored(project: &Project, name: &str) -> Result<()> {
    remove_if_there(&log_path(project))?;
    let pending = pending_path(project);
    match fs::read(saved_path(project, name)) {
        Ok(bytes) => crate::project::write_atomic(&pending, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => remove_if_there(&pending),
        Err(e) => {
            Err(e).with_context(|| format!("cannot read {}", saved_path(project, name).display()))
        }
    }
}

/// Snapshot `name` was dropped: so is the profile pulled with it.
pub fn dropped(project: &Project, name: &str) -> Result<()> {
    remove_if_there(&saved_path(project, name))
}

/// The daemon's to-do, taken (removed) once; nothing when there is none or
/// it is not a profile.
pub fn take_pending(project: &Project) -> Vec<Vec<u8>> {
    // Taken by a rename: a restore writing the next to-do meanwhile
    // leaves it whole for the next fetch.
    let path = pending_path(project);
    let taken = path.with_extension("taken");
    if fs::rename(&path, &taken).is_err() {
        return Vec::new();
    }
    let bytes = fs::read(&taken).unwrap_or_default();
    let _ = fs::remove_file(&taken);
    decode(&bytes, &path.display().to_string()).unwrap_or_else(|e| {
        eprintln!("vrift daemon: {e:#}; not fetched ahead");
        Vec::new()
    })
}

fn remove_if_there(path: &std::path::Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// The daemon's side: appends a record per file whose blob it fetched
/// (each path once, up to [`MAX_PATHS`]). The file is opened per record (a
/// fetch is a round trip anyway): a restore removes it, and the next
/// record starts a new log (and a new count). Failing to log costs the
/// next machine a hint, never a read: errors are not reported.
pub struct Log {
    path: PathBuf,
    seen: HashSet<Vec<u8>>,
}

impl Log {
    pub fn new(project: &Project) -> Log {
        Log {
            path: log_path(project),
            seen: HashSet::new(),
        }
    }

    /// Logs that the files `fetched` (blob, rift path) were fetched:
    /// `kind` is [`ASKED`] or [`AHEAD`]. One open and one write for all.
    pub fn record<'a>(
        &mut self,
        kind: u8,
        fetched: impl IntoIterator<Item = (&'a vrift_format::ContentHash, &'a [u8])>,
    ) {
        let opened = fs::OpenOptions::new().append(true).open(&self.path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.seen.clear();
                match fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.path)
                {
                    Ok(f) => f,
                    Err(_) => return,
                }
            }
            Err(_) => return,
        };
        let mut lines = Vec::new();
        for (hash, rel) in fetched {
            if self.seen.len() >= MAX_PATHS
                || !vrift_format::is_valid_rift_path(rel)
                || !self.seen.insert(rel.to_vec())
            {
                continue;
            }
            lines.push(kind);
            lines.extend_from_slice(hash.to_string().as_bytes());
            lines.extend_from_slice(rel);
            lines.push(0);
        }
        // One write of whole records: O_APPEND keeps them in one piece.
        if !lines.is_empty() {
            let _ = file.write_all(&lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_takes_paths_and_refuses_the_rest() {
        assert_eq!(decode(b"", "p").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            decode(b"a/b\0c\xff\0", "p").unwrap(),
            vec![b"a/b".to_vec(), b"c\xff".to_vec()]
        );
        for bad in [&b"a/b"[..], b"../x\0", b"/etc/passwd\0", b"a//b\0", b"\0"] {
            let err = decode(bad, "the profile").unwrap_err().to_string();
            assert!(err.contains("the profile is not a read profile"), "{err}");
        }
    }

    #[test]
    fn log_records_parse_back() {
        let hash = vrift_format::ContentHash(*blake3::hash(b"x").as_bytes());
        let mut rec = vec![AHEAD];
        rec.extend_from_slice(hash.to_string().as_bytes());
        rec.extend_from_slice(b"a/b.js");
        assert_eq!(parse_record(&rec), Some((AHEAD, hash, &b"a/b.js"[..])));
        rec[0] = b'x';
        assert_eq!(parse_record(&rec), None, "another kind");
        assert_eq!(parse_record(&rec[..65]), None, "no path");
        let mut up = vec![ASKED];
        up.extend_from_slice(hash.to_string().as_bytes());
        up.extend_from_slice(b"../etc");
        assert_eq!(parse_record(&up), None, "a path out of the project");
    }
}
