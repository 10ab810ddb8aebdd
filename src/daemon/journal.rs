//! The daemon's write-ahead journal: every change to the rift is appended
//! here (one `write`, no fsync) before the client is answered, so a change
//! whose call returned survives `kill -9` of the daemon (the page cache
//! keeps it). Group commits move the journal into the manifest and empty it;
//! a daemon (or CLI command) that finds it non-empty replays it first.
//!
//! Entry: `len u32 | kind u8 | path (u32 len, bytes) | value (u32 len, bytes)`.
//! kind 1: rift record set (value: encoded record); 2: rift record removed;
//! 3: directory marks set (value: one byte, 0 removes the marks). A torn
//! tail (a crash inside `write` cannot tear it, but a full disk can) ends
//! the replay.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::manifest::{Layer, Manifest, Record};

/// One change to the rift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Set(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Dir(Vec<u8>, u8),
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
    let len = 1 + 4 + path.len() + 4 + value.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn decode(mut buf: &[u8]) -> Vec<Change> {
    let mut out = Vec::new();
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
                1 => Change::Set(path, value),
                2 => Change::Remove(path),
                3 => Change::Dir(path, *value.first()?),
                _ => return None,
            })
        })();
        match parsed {
            Some(c) => out.push(c),
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

    /// The changes recorded and not yet in the manifest.
    pub fn read_all(&mut self) -> Result<Vec<Change>> {
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

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the journal once its changes are committed to the manifest.
    pub fn clear(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .with_context(|| format!("cannot truncate the journal {}", self.path.display()))?;
        self.len = 0;
        Ok(())
    }
}

/// Moves a leftover journal (from a daemon that was killed) into the
/// manifest. Returns the number of changes replayed.
pub fn replay(path: &Path, manifest: &Manifest) -> Result<usize> {
    if !path.exists() {
        return Ok(0);
    }
    let mut j = Journal::open(path)?;
    let changes = j.read_all()?;
    if !changes.is_empty() {
        apply(manifest, &changes)?;
    }
    j.clear()?;
    Ok(changes.len())
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
        assert_eq!(decode(&buf), changes);
        assert_eq!(decode(&buf[..buf.len() - 1]), changes[..2].to_vec());
        assert_eq!(decode(&[]), vec![]);
    }
}
