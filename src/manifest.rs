//! The per-project manifest: `.vrift/manifest.redb`.
//!
//! Tables (keys are rift paths as raw bytes, see `vrift_format`):
//!
//! | table              | key → value                                   |
//! |--------------------|-----------------------------------------------|
//! | `meta`             | name → bytes (`schema`, `next_ino`)           |
//! | `rift`             | path → record: what the inception wrote      |
//! | `phantom`          | path → record: what `vrift ingest` moved off the disk |
//! | `dirs`             | path → `DIR_CREATED` / `DIR_OPAQUE` flags     |
//! | `snapshots`        | name → JSON `SnapshotInfo`                    |
//! | `snap.rift/NAME`   | a frozen copy of `rift` (immutable)           |
//! | `snap.dirs/NAME`   | a frozen copy of `dirs` (immutable)           |
//! | `pending_ingest`   | path → `PendingIngest`: ingest's journal      |
//!
//! The view resolves a path as `rift`, then `phantom`, then the disk. The
//! phantom layer is the disk relocated into the store: snapshots, `restore`
//! and `discard` act on the rift layer only, so they can never lose a file
//! whose only copy `ingest` moved into the store.
//!
//! # Invariants
//!
//! 1. Every `File` record's blob exists in the CAS once the transaction that
//!    wrote the record has committed, except for paths listed in
//!    `pending_ingest` (whose blobs are being moved in; see `ingest`).
//! 2. Inode numbers come from `next_ino` and are never reused in a manifest.
//! 3. Snapshot tables are written once, by `snapshot_save`, and only read or
//!    deleted after that.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageError, TableDefinition, TableHandle, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use vrift_format::{
    decode_record, ContentHash, Kind, RecordHeader, RecordRef, SCHEMA_VERSION, SYNTHETIC_INO_BASE,
    WHITEOUT_RECORD,
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const RIFT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rift");
const PHANTOM: TableDefinition<&[u8], &[u8]> = TableDefinition::new("phantom");
const DIRS: TableDefinition<&[u8], u8> = TableDefinition::new("dirs");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const PENDING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pending_ingest");

const SNAP_RIFT_PREFIX: &str = "snap.rift/";
const SNAP_DIRS_PREFIX: &str = "snap.dirs/";

/// Which layer of the manifest a record lives in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layer {
    /// Written inside the inception.
    Rift,
    /// Moved off the disk by `vrift ingest`.
    Phantom,
}

impl Layer {
    fn table(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        match self {
            Layer::Rift => RIFT,
            Layer::Phantom => PHANTOM,
        }
    }
}

/// A file or symlink in the rift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub flags: u8,
    /// Full `st_mode` (file-type bits included).
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    /// Content (files); zero for symlinks and staged files.
    pub hash: ContentHash,
    /// Link target (symlinks); staging file name (staged files); else empty.
    pub target: Vec<u8>,
    /// Owner; `OWNER_INHERIT` reports the project root's.
    pub uid: u32,
    pub gid: u32,
    pub atime_ns: i64,
}

/// What a layer holds at a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Entry(Entry),
    Whiteout,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Record::Whiteout => WHITEOUT_RECORD.to_vec(),
            Record::Entry(e) => {
                let header = RecordHeader {
                    kind: e.kind,
                    flags: e.flags,
                    mode: e.mode,
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                    ino: e.ino,
                    hash: e.hash,
                    uid: e.uid,
                    gid: e.gid,
                    atime_ns: e.atime_ns,
                };
                let mut v = header.encode().to_vec();
                v.extend_from_slice(&e.target);
                v
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> std::result::Result<Record, vrift_format::DecodeError> {
        Ok(match decode_record(bytes)? {
            RecordRef::Whiteout => Record::Whiteout,
            RecordRef::Entry { header, target } => Record::Entry(Entry {
                kind: header.kind,
                flags: header.flags,
                mode: header.mode,
                size: header.size,
                mtime_ns: header.mtime_ns,
                ino: header.ino,
                hash: header.hash,
                target: target.to_vec(),
                uid: header.uid,
                gid: header.gid,
                atime_ns: header.atime_ns,
            }),
        })
    }

    /// The blob this record references, if any.
    pub fn blob(&self) -> Option<ContentHash> {
        match self {
            Record::Entry(e)
                if e.kind == Kind::File && e.flags & vrift_format::FLAG_STAGED == 0 =>
            {
                Some(e.hash)
            }
            _ => None,
        }
    }
}

/// Metadata of a named snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// A journal row of an ingest in flight: the disk file at the key's path was
/// hashed to `hash` while it had this identity; it is being moved into the CAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingIngest {
    pub hash: ContentHash,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl PendingIngest {
    fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&self.hash.0);
        b[32..40].copy_from_slice(&self.dev.to_le_bytes());
        b[40..48].copy_from_slice(&self.ino.to_le_bytes());
        b[48..56].copy_from_slice(&self.size.to_le_bytes());
        b[56..64].copy_from_slice(&self.mtime_ns.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<PendingIngest> {
        if b.len() != 64 {
            return None;
        }
        let u = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        Some(PendingIngest {
            hash: ContentHash(b[..32].try_into().unwrap()),
            dev: u(32),
            ino: u(40),
            size: u(48),
            mtime_ns: u(56) as i64,
        })
    }
}

/// An open manifest. Hold the project lock while one is open.
pub struct Manifest {
    db: Database,
    path: PathBuf,
}

/// Turns a redb error into one that names the file and says what to do.
fn open_error(path: &Path, err: DatabaseError) -> anyhow::Error {
    let p = path.display();
    match err {
        DatabaseError::DatabaseAlreadyOpen => anyhow!(
            "the manifest {p} is in use by another process (a vrift daemon or command); \
             wait for it to finish, or stop it with `vrift daemon stop`"
        ),
        DatabaseError::UpgradeRequired(v) => anyhow!(
            "the manifest {p} uses an old redb file format (v{v}); \
             move it aside and run `vrift init` to create a new one"
        ),
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            anyhow!("cannot open the manifest {p}: {e}")
        }
        other => anyhow!(
            "the manifest {p} is corrupt or unreadable ({other}); move it aside and run \
             `vrift init` to start an empty rift (blobs stay in the store), or restore it from a backup"
        ),
    }
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "the manifest {} is corrupt ({what}); move it aside and run `vrift init`",
        path.display()
    )
}

impl Manifest {
    /// Opens the manifest at `path`, creating it if `create` and it is missing.
    pub fn open(path: &Path, create: bool) -> Result<Manifest> {
        if !create && !path.exists() {
            bail!("no manifest at {}; run `vrift init`", path.display());
        }
        // redb may panic on some malformed files; a panic must become an
        // error, printed once and without a backtrace.
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = std::panic::catch_unwind(|| {
            let mut builder = Database::builder();
            builder.set_cache_size(64 * 1024 * 1024);
            if create {
                builder.create(path)
            } else {
                builder.open(path)
            }
        });
        std::panic::set_hook(previous_hook);
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(open_error(path, e)),
            Err(_) => return Err(corrupt(path, "the storage engine failed to read it")),
        };
        let m = Manifest {
            db,
            path: path.to_path_buf(),
        };
        m.check_schema()?;
        Ok(m)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_schema(&self) -> Result<()> {
        let txn = self.write()?;
        let found = {
            let meta = txn
                .txn
                .open_table(META)
                .map_err(|e| corrupt(&self.path, e))?;
            let v = meta
                .get("schema")
                .map_err(|e| corrupt(&self.path, e))?
                .map(|v| v.value().to_vec());
            v
        };
        match found {
            None => {
                // A new manifest: create every table so readers never miss one.
                {
                    let mut meta = txn.txn.open_table(META)?;
                    meta.insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                    meta.insert("next_ino", SYNTHETIC_INO_BASE.to_le_bytes().as_slice())?;
                    txn.txn.open_table(RIFT)?;
                    txn.txn.open_table(PHANTOM)?;
                    txn.txn.open_table(DIRS)?;
                    txn.txn.open_table(SNAPSHOTS)?;
                    txn.txn.open_table(PENDING)?;
                }
                txn.commit()
            }
            Some(bytes) => {
                let v = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_le_bytes)
                    .map_err(|_| corrupt(&self.path, "bad schema record"))?;
                if v != SCHEMA_VERSION {
                    let advice = if v > SCHEMA_VERSION {
                        "it was written by a newer vrift; upgrade vrift to use it"
                    } else {
                        "it was written by an older vrift; move it aside and run `vrift init`"
                    };
                    bail!(
                        "the manifest {} has schema version {v}, this vrift reads version {SCHEMA_VERSION}: {advice}",
                        self.path.display()
                    );
                }
                txn.abort()
            }
        }
    }

    pub fn write(&self) -> Result<WriteTxn<'_>> {
        let txn = self
            .db
            .begin_write()
            .with_context(|| format!("cannot write the manifest {}", self.path.display()))?;
        Ok(WriteTxn {
            txn,
            path: &self.path,
        })
    }

    pub fn read(&self) -> Result<ReadTxn<'_>> {
        let txn = self
            .db
            .begin_read()
            .with_context(|| format!("cannot read the manifest {}", self.path.display()))?;
        Ok(ReadTxn {
            txn,
            path: &self.path,
        })
    }
}

/// Validates a snapshot name: it becomes part of a table name and a CLI word.
pub fn check_snapshot_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '='));
    if !ok {
        bail!(
            "invalid snapshot name {name:?}: use 1-128 letters, digits, and - _ . @ + = (not starting with -)"
        );
    }
    Ok(())
}

/// Reading operations shared by read and write transactions.
macro_rules! read_ops {
    () => {
        /// The record a layer holds at `path`.
        pub fn get(&self, layer: Layer, path: &[u8]) -> Result<Option<Record>> {
            let table = self.txn.open_table(layer.table())?;
            let found = table.get(path)?;
            let result = match found {
                None => Ok(None),
                Some(v) => Record::decode(v.value()).map(Some).map_err(|e| {
                    corrupt(
                        self.path,
                        format!("record {}: {e}", String::from_utf8_lossy(path)),
                    )
                }),
            };
            result
        }

        /// Calls `f` for every record of `layer` whose path is `prefix` or
        /// below it (`prefix` empty: every record), in byte order.
        pub fn for_each(
            &self,
            layer: Layer,
            prefix: &[u8],
            mut f: impl FnMut(&[u8], Record) -> Result<()>,
        ) -> Result<()> {
            let table = self.txn.open_table(layer.table())?;
            scan_prefix(&table, prefix, |k, v| {
                let rec = Record::decode(v).map_err(|e| {
                    corrupt(
                        self.path,
                        format!("record {}: {e}", String::from_utf8_lossy(k)),
                    )
                })?;
                f(k, rec)
            })
        }

        /// Calls `f` with the encoded bytes of every record of `layer`, in
        /// byte order of the path (no decoding: the hot table copies them).
        pub fn for_each_raw(&self, layer: Layer, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
            let table = self.txn.open_table(layer.table())?;
            for item in table.iter()? {
                let (k, v) = item?;
                f(k.value(), v.value());
            }
            Ok(())
        }

        /// Number of records in a layer.
        pub fn len(&self, layer: Layer) -> Result<u64> {
            Ok(self.txn.open_table(layer.table())?.len()?)
        }

        /// Directory marks (`DIR_CREATED`, `DIR_OPAQUE`).
        pub fn dirs(&self) -> Result<Vec<(Vec<u8>, u8)>> {
            let table = self.txn.open_table(DIRS)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                out.push((k.value().to_vec(), v.value()));
            }
            Ok(out)
        }

        pub fn dir_mark(&self, path: &[u8]) -> Result<u8> {
            let table = self.txn.open_table(DIRS)?;
            let mark = table.get(path)?.map(|v| v.value()).unwrap_or(0);
            Ok(mark)
        }

        /// Every snapshot, by name.
        pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
            let table = self.txn.open_table(SNAPSHOTS)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let info: SnapshotInfo = serde_json::from_slice(v.value())
                    .map_err(|e| corrupt(self.path, format!("snapshot {}: {e}", k.value())))?;
                out.push(info);
            }
            Ok(out)
        }

        /// Calls `f` for every record of snapshot `name`.
        pub fn for_each_in_snapshot(
            &self,
            name: &str,
            mut f: impl FnMut(&[u8], Record) -> Result<()>,
        ) -> Result<()> {
            let table_name = format!("{SNAP_RIFT_PREFIX}{name}");
            let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&table_name);
            let table = self
                .txn
                .open_table(def)
                .map_err(|e| corrupt(self.path, format!("snapshot {name}: {e}")))?;
            scan_prefix(&table, b"", |k, v| {
                let rec = Record::decode(v).map_err(|e| corrupt(self.path, e))?;
                f(k, rec)
            })
        }

        /// The ingest journal.
        pub fn pending(&self) -> Result<Vec<(Vec<u8>, PendingIngest)>> {
            let table = self.txn.open_table(PENDING)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let p = PendingIngest::decode(v.value())
                    .ok_or_else(|| corrupt(self.path, "bad ingest journal row"))?;
                out.push((k.value().to_vec(), p));
            }
            Ok(out)
        }
    };
}

fn scan_prefix(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    if prefix.is_empty() {
        for item in table.iter()? {
            let (k, v) = item?;
            f(k.value(), v.value())?;
        }
        return Ok(());
    }
    if let Some(v) = table.get(prefix)? {
        f(prefix, v.value())?;
    }
    // Everything below `prefix/` sorts in [prefix + "/", prefix + "0").
    let mut lo = prefix.to_vec();
    lo.push(b'/');
    let mut hi = prefix.to_vec();
    hi.push(b'/' + 1);
    for item in table.range(lo.as_slice()..hi.as_slice())? {
        let (k, v) = item?;
        f(k.value(), v.value())?;
    }
    Ok(())
}

/// A read-only view of the manifest at one point in time.
pub struct ReadTxn<'m> {
    txn: ReadTransaction,
    path: &'m Path,
}

impl ReadTxn<'_> {
    read_ops!();
}

/// A write transaction; nothing is visible until `commit`.
pub struct WriteTxn<'m> {
    txn: WriteTransaction,
    path: &'m Path,
}

impl WriteTxn<'_> {
    read_ops!();

    pub fn commit(self) -> Result<()> {
        self.txn
            .commit()
            .with_context(|| format!("cannot commit to the manifest {}", self.path.display()))
    }

    pub fn abort(self) -> Result<()> {
        self.txn.abort()?;
        Ok(())
    }

    /// Reserves `n` fresh synthetic inode numbers; returns the first.
    pub fn alloc_inos(&self, n: u64) -> Result<u64> {
        let mut meta = self.txn.open_table(META)?;
        let cur = meta
            .get("next_ino")?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(SYNTHETIC_INO_BASE);
        meta.insert("next_ino", (cur + n).to_le_bytes().as_slice())?;
        Ok(cur)
    }

    /// Removes the journal rows of `paths`.
    pub fn remove_pending(&self, path: &[u8]) -> Result<()> {
        self.txn.open_table(PENDING)?.remove(path)?;
        Ok(())
    }

    pub fn put(&self, layer: Layer, path: &[u8], rec: &Record) -> Result<()> {
        debug_assert!(vrift_format::is_valid_rift_path(path));
        let mut table = self.txn.open_table(layer.table())?;
        table.insert(path, rec.encode().as_slice())?;
        Ok(())
    }

    pub fn remove(&self, layer: Layer, path: &[u8]) -> Result<bool> {
        let mut table = self.txn.open_table(layer.table())?;
        let removed = table.remove(path)?.is_some();
        Ok(removed)
    }

    /// Removes every record of `layer`; returns how many there were.
    pub fn clear(&self, layer: Layer) -> Result<u64> {
        let n = self.len(layer)?;
        self.txn.delete_table(layer.table())?;
        self.txn.open_table(layer.table())?;
        Ok(n)
    }

    pub fn set_dir_mark(&self, path: &[u8], flags: u8) -> Result<()> {
        let mut table = self.txn.open_table(DIRS)?;
        if flags == 0 {
            table.remove(path)?;
        } else {
            table.insert(path, flags)?;
        }
        Ok(())
    }

    pub fn clear_dir_marks(&self) -> Result<()> {
        self.txn.delete_table(DIRS)?;
        self.txn.open_table(DIRS)?;
        Ok(())
    }

    pub fn put_pending(&self, path: &[u8], p: &PendingIngest) -> Result<()> {
        let mut table = self.txn.open_table(PENDING)?;
        table.insert(path, p.encode().as_slice())?;
        Ok(())
    }

    pub fn clear_pending(&self) -> Result<()> {
        self.txn.delete_table(PENDING)?;
        self.txn.open_table(PENDING)?;
        Ok(())
    }

    /// Freezes the rift layer and the directory marks under `name`.
    pub fn snapshot_save(&self, name: &str, created: u64) -> Result<SnapshotInfo> {
        check_snapshot_name(name)?;
        let mut snaps = self.txn.open_table(SNAPSHOTS)?;
        if snaps.get(name)?.is_some() {
            bail!("snapshot {name:?} already exists; snapshots are immutable (drop it first)");
        }
        let rift_name = format!("{SNAP_RIFT_PREFIX}{name}");
        let dirs_name = format!("{SNAP_DIRS_PREFIX}{name}");
        let (entries, bytes) = copy_records(&self.txn, RIFT, TableDefinition::new(&rift_name))?;
        copy_dirs(&self.txn, DIRS, TableDefinition::new(&dirs_name))?;
        let info = SnapshotInfo {
            name: name.to_string(),
            created,
            entries,
            bytes,
        };
        snaps.insert(name, serde_json::to_vec(&info)?.as_slice())?;
        Ok(info)
    }

    /// Replaces the rift layer and the directory marks with snapshot `name`.
    pub fn snapshot_restore(&self, name: &str) -> Result<SnapshotInfo> {
        let info = self.snapshot_info(name)?;
        let rift_name = format!("{SNAP_RIFT_PREFIX}{name}");
        let dirs_name = format!("{SNAP_DIRS_PREFIX}{name}");
        self.txn.delete_table(RIFT)?;
        self.txn.delete_table(DIRS)?;
        copy_records(&self.txn, TableDefinition::new(&rift_name), RIFT)?;
        copy_dirs(&self.txn, TableDefinition::new(&dirs_name), DIRS)?;
        Ok(info)
    }

    pub fn snapshot_drop(&self, name: &str) -> Result<SnapshotInfo> {
        let info = self.snapshot_info(name)?;
        let rift_name = format!("{SNAP_RIFT_PREFIX}{name}");
        let dirs_name = format!("{SNAP_DIRS_PREFIX}{name}");
        let rift_def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&rift_name);
        let dirs_def: TableDefinition<&[u8], u8> = TableDefinition::new(&dirs_name);
        self.txn.delete_table(rift_def)?;
        self.txn.delete_table(dirs_def)?;
        self.txn.open_table(SNAPSHOTS)?.remove(name)?;
        Ok(info)
    }

    fn snapshot_info(&self, name: &str) -> Result<SnapshotInfo> {
        self.snapshots()?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow!("no snapshot named {name:?} (see `vrift snapshot list`)"))
    }
}

/// Copies every record of `from` into `to` (created if missing); returns the
/// number of entries and their logical size.
fn copy_records(
    txn: &WriteTransaction,
    from: TableDefinition<&[u8], &[u8]>,
    to: TableDefinition<&[u8], &[u8]>,
) -> Result<(u64, u64)> {
    let src = txn.open_table(from)?;
    let mut dst = txn.open_table(to)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    for item in src.iter()? {
        let (k, v) = item?;
        let v = v.value();
        if let Ok(RecordRef::Entry { header, .. }) = decode_record(v) {
            bytes += header.size;
        }
        dst.insert(k.value(), v)?;
        n += 1;
    }
    Ok((n, bytes))
}

fn copy_dirs(
    txn: &WriteTransaction,
    from: TableDefinition<&[u8], u8>,
    to: TableDefinition<&[u8], u8>,
) -> Result<()> {
    let src = txn.open_table(from)?;
    let mut dst = txn.open_table(to)?;
    for item in src.iter()? {
        let (k, v) = item?;
        dst.insert(k.value(), v.value())?;
    }
    Ok(())
}

/// Lists the names of every table (used by `gc` to sanity-check snapshots).
pub fn table_names(txn: &ReadTxn<'_>) -> Result<Vec<String>> {
    Ok(txn
        .txn
        .list_tables()?
        .map(|t| t.name().to_string())
        .collect())
}
