//! The daemon's write-ahead journal: every change to the rift is appended
//! here (one `write`, no fsync) before the client is answered, so a change
//! whose call returned survives `kill -9` of the daemon (the page cache
//! keeps it). Group commits move the journal into the manifest and empty it;
//! a daemon (or CLI command) that finds it non-empty replays it first.
//!
//! Entry: `len u32 | kind u8 | path (u32 len, bytes) | value (u32 len, bytes)`.
//! kind 1: rift record set (value: encoded record); 2: rift record removed;
//! 3: directory marks set (value: one byte, 0 removes the marks);
//! 4: one client request, all or nothing (path: request id u64, op u8,
//! unix seconds u64; value: its changes, entries of kinds 1–3). A torn tail
//! (a full disk, or `kill -9` inside a `write` that crosses a page) ends
//! the replay: a request's changes are one entry, so a tear drops them all.
//!
//! # Request ids
//!
//! A client whose daemon died before answering sends the same request
//! again, with the same id, to the next daemon. A request is journaled
//! before it is answered, and the journal is emptied only by a group commit,
//! which runs between requests: so a request whose answer was lost is in
//! the journal the next daemon finds. That daemon answers the retry with
//! the outcome the first one had (see [`Done`]) instead of acting twice
//! (a second `mkdir` would say EEXIST, a second `unlink` ENOENT). The ids
//! survive the replay, CLI replays and later group commits for
//! [`CARRY_SECS`]: a journal is replaced by one holding only them (written
//! aside and renamed over, so a crash keeps one or the other).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::manifest::{Layer, Manifest, Record};

/// One change to the rift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Set(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Dir(Vec<u8>, u8),
}

/// A request that succeeded and was journaled: its id (chosen by the
/// client, never 0), its op, and when (unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub id: u64,
    pub op: u8,
    pub at: u64,
}

/// The op of a request journaled early and then failed: its retry is not
/// answered as done (a later entry with an id replaces an earlier one).
pub const CANCELLED: u8 = 0;

/// How long the id of a request stays known after a daemon died: far
/// longer than a client takes to start the next daemon and ask again.
pub const CARRY_SECS: u64 = 300;

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Done {
    /// Still worth remembering at `now`.
    pub fn young(&self, now: u64) -> bool {
        now.saturating_sub(self.at) < CARRY_SECS
    }

    fn key(&self) -> [u8; 17] {
        let mut k = [0u8; 17];
        k[..8].copy_from_slice(&self.id.to_le_bytes());
        k[8] = self.op;
        k[9..].copy_from_slice(&self.at.to_le_bytes());
        k
    }

    fn from_key(k: &[u8]) -> Option<Done> {
        let k: &[u8; 17] = k.try_into().ok()?;
        Some(Done {
            id: u64::from_le_bytes(k[..8].try_into().ok()?),
            op: k[8],
            at: u64::from_le_bytes(k[9..].try_into().ok()?),
        })
    }
}

/// What a journal holds: its changes in order, and the requests done.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub changes: Vec<Change>,
    pub done: Vec<Done>,
}

pub struct Journal {
    file: File,
    path: PathBuf,
    len: u64,
}

fn encode(change: &Change, out: &mut Vec<u8>) {
    let (kind, path, value): (u8, &[u8], &[u8]) = match change {
        Change::Set(p, r) => (1, p, r),
        Change::Remove(p) => (2, p, &[]),
        Change::Dir(p, f) => (3, p, std::slice::from_ref(f)),
    };
    encode_entry(kind, path, value, out);
}

fn encode_request(done: &Done, changes: &[Change], out: &mut Vec<u8>) {
    let mut inner = Vec::new();
    for c in changes {
        encode(c, &mut inner);
    }
    encode_entry(4, &done.key(), &inner, out);
}

fn encode_entry(kind: u8, path: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let len = 1 + 4 + path.len() + 4 + value.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn decode(mut buf: &[u8]) -> Contents {
    let mut out = Contents::default();
    let take = |b: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let s = b.get(..n)?.to_vec();
        *b = &b[n..];
        Some(s)
    };
    let word = |b: &mut &[u8]| -> Option<usize> {
        let s = b.get(..4)?;
        let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
        *b = &b[4..];
        Some(v)
    };
    while let Some(len) = word(&mut buf) {
        let Some(mut entry) = take(&mut buf, len) else {
            break;
        };
        let mut e: &[u8] = &mut entry;
        let parsed = (|| {
            let kind = *e.first()?;
            e = &e[1..];
            let n = word(&mut e)?;
            let path = take(&mut e, n)?;
            let n = word(&mut e)?;
            let value = take(&mut e, n)?;
            Some(match kind {
                1 => vec![Change::Set(path, value)],
                2 => vec![Change::Remove(path)],
                3 => vec![Change::Dir(path, *value.first()?)],
                4 => {
                    let done = Done::from_key(&path)?;
                    let inner = decode(&value);
                    // Requests do not nest; a malformed inner list is a
                    // damaged journal.
                    if !inner.done.is_empty() {
                        return None;
                    }
                    out.done.push(done);
                    inner.changes
                }
                _ => return None,
            })
        })();
        match parsed {
            Some(c) => out.changes.extend(c),
            None => break,
        }
    }
    out
}

/// Applies changes to the manifest's rift layer in one transaction.
pub fn apply(manifest: &Manifest, changes: &[Change]) -> Result<()> {
    let txn = manifest.write()?;
    for c in changes {
        match c {
            Change::Set(p, r) => {
                let rec = Record::decode(r)
                    .map_err(|e| anyhow::anyhow!("journal record for {:?}: {e}", p))?;
                txn.put(Layer::Rift, p, &rec)?;
            }
            Change::Remove(p) => {
                txn.remove(Layer::Rift, p)?;
            }
            Change::Dir(p, f) => txn.set_dir_mark(p, *f)?,
        }
    }
    txn.commit()
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        let len = file.metadata()?.len();
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// The changes recorded and not yet in the manifest, and the requests.
    pub fn read_all(&mut self) -> Result<Contents> {
        let mut buf = Vec::new();
        File::open(&self.path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .with_context(|| format!("cannot read the journal {}", self.path.display()))?;
        Ok(decode(&buf))
    }

    /// Appends changes with one `write`.
    pub fn append(&mut self, changes: &[Change]) -> Result<()> {
        let mut buf = Vec::new();
        for c in changes {
            encode(c, &mut buf);
        }
        self.file
            .write_all(&buf)
            .with_context(|| format!("cannot write the journal {}", self.path.display()))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Appends one request and its changes as a single entry (one `write`).
    pub fn append_request(&mut self, done: &Done, changes: &[Change]) -> Result<()> {
        let mut buf = Vec::new();
        encode_request(done, changes, &mut buf);
        self.file
            .write_all(&buf)
            .with_context(|| format!("cannot write the journal {}", self.path.display()))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the journal once its changes are committed to the manifest,
    /// keeping the ids of `keep` (see "Request ids" above).
    pub fn clear_keeping(&mut self, keep: &[Done]) -> Result<()> {
        if keep.is_empty() {
            self.file
                .set_len(0)
                .with_context(|| format!("cannot truncate the journal {}", self.path.display()))?;
            self.len = 0;
            return Ok(());
        }
        rewrite(&self.path, keep)?;
        *self = Journal::open(&self.path)?;
        Ok(())
    }
}

/// Replaces the journal at `path` by one holding only the ids of `keep`:
/// written aside, then renamed over it, so that a crash leaves either the
/// old journal (replayed again: its changes are absolute, applying them
/// twice is applying them once) or the new one.
fn rewrite(path: &Path, keep: &[Done]) -> Result<()> {
    let mut buf = Vec::new();
    for d in keep {
        encode_request(d, &[], &mut buf);
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(".new");
    let aside = PathBuf::from(aside);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("cannot write {}", aside.display()))?;
    f.write_all(&buf)
        .with_context(|| format!("cannot write {}", aside.display()))?;
    std::fs::rename(&aside, path)
        .with_context(|| format!("cannot replace the journal {}", path.display()))
}

/// Moves a leftover journal (from a daemon that was killed) into the
/// manifest, keeping the ids of the requests done in the last
/// [`CARRY_SECS`] (a client may still be asking again). Returns the number
/// of changes replayed.
pub fn replay(path: &Path, manifest: &Manifest) -> Result<usize> {
    if !path.exists() {
        return Ok(0);
    }
    let mut j = Journal::open(path)?;
    if j.is_empty() {
        return Ok(0);
    }
    let contents = j.read_all()?;
    if !contents.changes.is_empty() {
        apply(manifest, &contents.changes)?;
    }
    let now = now_secs();
    let found = contents.done.len();
    let keep: Vec<Done> = contents.done.into_iter().filter(|d| d.young(now)).collect();
    if contents.changes.is_empty() && keep.len() == found {
        return Ok(0); // only ids, all still kept: nothing to rewrite
    }
    j.clear_keeping(&keep)?;
    Ok(contents.changes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_torn_tail_is_dropped() {
        let changes = vec![
            Change::Set(b"a/b".to_vec(), vec![1, 2, 3]),
            Change::Remove(b"c\xff".to_vec()),
            Change::Dir(b"d".to_vec(), 2),
        ];
        let mut buf = Vec::new();
        for c in &changes {
            encode(c, &mut buf);
        }
        assert_eq!(decode(&buf).changes, changes);
        assert_eq!(decode(&buf[..buf.len() - 1]).changes, changes[..2].to_vec());
        assert_eq!(decode(&[]), Contents::default());
    }

    #[test]
    fn a_request_is_all_or_nothing_and_keeps_its_id() {
        let before = Change::Remove(b"x".to_vec());
        let changes = vec![
            Change::Set(b"new".to_vec(), vec![7; 40]),
            Change::Remove(b"old".to_vec()),
        ];
        let done = Done {
            id: 0x1234_5678_9abc_def0,
            op: 5,
            at: 1_700_000_000,
        };
        let mut buf = Vec::new();
        encode(&before, &mut buf);
        encode_request(&done, &changes, &mut buf);
        let whole = decode(&buf);
        assert_eq!(whole.changes.len(), 3);
        assert_eq!(whole.done, vec![done]);
        // Torn anywhere inside the request: none of its changes, no id.
        for cut in 1..buf.len() - 13 {
            let torn = decode(&buf[..buf.len() - cut]);
            assert_eq!(torn.changes, vec![before.clone()], "cut {cut}");
            assert!(torn.done.is_empty());
        }
    }

    #[test]
    fn clearing_keeps_the_ids_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::open(&path).unwrap();
        let done = Done {
            id: 9,
            op: 4,
            at: now_secs(),
        };
        j.append_request(&done, &[Change::Dir(b"d".to_vec(), 2)])
            .unwrap();
        j.clear_keeping(&[done]).unwrap();
        let left = j.read_all().unwrap();
        assert!(left.changes.is_empty());
        assert_eq!(left.done, vec![done]);
        j.append(&[Change::Remove(b"r".to_vec())]).unwrap();
        assert_eq!(j.read_all().unwrap().changes.len(), 1);
        j.clear_keeping(&[]).unwrap();
        assert_eq!(j.read_all().unwrap(), Contents::default());
    }
}
