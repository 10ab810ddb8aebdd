//! A snapshot as one object: what `push` uploads as a blob and `pull` reads.
//!
//! ```text
//! "vrift-snapshot 1\n"
//! u32 LE length, JSON SnapshotInfo
//! u64 LE count, then per record:  u32 LE path length, path, u32 LE record length, record
//! u64 LE count, then per dir mark: u32 LE path length, path, u8 flags
//! ```
//!
//! Records are the manifest's own encoding (`Record::encode`), in path order,
//! so the same snapshot always serializes to the same bytes and hash. The
//! bundle is named by its BLAKE3 hash like any blob, so its integrity is
//! checked by the transfer; `decode` still validates everything (paths,
//! records, counts), because a ref may point at anything.

use anyhow::{bail, ensure, Context, Result};
use vrift_format::{is_valid_rift_path, ContentHash, FLAG_STAGED};

use crate::manifest::{Record, SnapshotInfo};
use crate::project::STATE_DIR;

const MAGIC: &[u8] = b"vrift-snapshot 1\n";

/// A snapshot's records and directory marks, detached from any manifest.
#[derive(Debug)]
pub struct Bundle {
    pub info: SnapshotInfo,
    pub records: Vec<(Vec<u8>, Record)>,
    pub dirs: Vec<(Vec<u8>, u8)>,
}

impl Bundle {
    /// Every blob the snapshot references, each once.
    pub fn blobs(&self) -> Vec<(ContentHash, u64)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (_, rec) in &self.records {
            if let (Some(hash), Record::Entry(e)) = (rec.blob(), rec) {
                if seen.insert(hash) {
                    out.push((hash, e.size));
                }
            }
        }
        out
    }

    /// Refuses what cannot travel: a file still being written (its content is
    /// a staging file on this machine, not a blob).
    pub fn check_sealed(&self) -> Result<()> {
        for (path, rec) in &self.records {
            if let Record::Entry(e) = rec {
                if e.flags & FLAG_STAGED != 0 {
                    bail!(
                        "snapshot {:?}: {} is still being written (staged); \
                         close it, then save a new snapshot",
                        self.info.name,
                        String::from_utf8_lossy(path)
                    );
                }
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        let info = serde_json::to_vec(&self.info)?;
        out.extend_from_slice(&(info.len() as u32).to_le_bytes());
        out.extend_from_slice(&info);
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for (path, rec) in &self.records {
            let rec = rec.encode();
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path);
            out.extend_from_slice(&(rec.len() as u32).to_le_bytes());
            out.extend_from_slice(&rec);
        }
        out.extend_from_slice(&(self.dirs.len() as u64).to_le_bytes());
        for (path, flags) in &self.dirs {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path);
            out.push(*flags);
        }
        Ok(out)
    }

    /// Parses and validates a bundle; `what` names it in errors.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Bundle> {
        let mut r = Reader { bytes, pos: 0 };
        let mut inner = || -> Result<Bundle> {
            ensure!(r.take(MAGIC.len())? == MAGIC, "not a vrift snapshot");
            let n = r.u32()? as usize;
            let info: SnapshotInfo =
                serde_json::from_slice(r.take(n)?).context("bad snapshot header")?;
            let count = r.u64()?;
            // Each record takes at least 8 bytes: a count beyond that is a lie.
            ensure!(count <= bytes.len() as u64 / 8, "bad record count");
            let mut records = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let path = r.path()?;
                let n = r.u32()? as usize;
                let rec = Record::decode(r.take(n)?).map_err(|e| {
                    anyhow::anyhow!("bad record {}: {e}", String::from_utf8_lossy(&path))
                })?;
                records.push((path, rec));
            }
            let count = r.u64()?;
            ensure!(count <= bytes.len() as u64 / 5, "bad directory count");
            let mut dirs = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let path = r.path()?;
                let flags = r.take(1)?[0];
                dirs.push((path, flags));
            }
            ensure!(r.pos == bytes.len(), "trailing bytes");
            Ok(Bundle {
                info,
                records,
                dirs,
            })
        };
        inner().with_context(|| format!("{what} is not a valid snapshot"))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            bail!("truncated at byte {}", self.pos);
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    /// A rift path: well formed, and never inside vrift's own state (a
    /// pulled snapshot must not be able to reach `.vrift/`).
    fn path(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        let path = self.take(n)?;
        let first = path.split(|&c| c == b'/').next().unwrap_or_default();
        if !is_valid_rift_path(path) || first == STATE_DIR.as_bytes() {
            bail!("bad path {:?}", String::from_utf8_lossy(path));
        }
        Ok(path.to_vec())
    }
}
