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
//! | `ingest_journal`   | batch → its rows (path, `PendingIngest`): ingest's journal |
//! | `pending_ingest`   | path → `PendingIngest`: the journal as older versions wrote it (read, cleared) |
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
//!    deleted after that; or, when dropped while the rift shares it, renamed
//!    to `rift`.
//! 4. The rift layer is the table `rift`, or the table `meta.rift_table`
//!    names: a snapshot's table, after `snapshot restore` and until the rift
//!    changes. Every change to the rift goes through `WriteTxn::own_rift`,
//!    so a snapshot's records never change.

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
const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("ingest_journal");

/// The previous schema, upgraded in place when opened.
const SCHEMA_V2: u32 = 2;

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

/// A layer's table definition, by the table's name.
fn layer_def(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// The `meta` key naming the table that holds the rift layer when it is not
/// `rift`: after `snapshot restore`, the rift *is* the snapshot's table,
/// shared read-only until the rift next changes (see [`WriteTxn::own_rift`]).
const RIFT_TABLE_KEY: &str = "rift_table";

/// The name of the table holding the rift layer, as `meta` says.
fn rift_table_name(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<String> {
    Ok(match meta.get(RIFT_TABLE_KEY)? {
        Some(v) => String::from_utf8_lossy(v.value()).into_owned(),
        None => RIFT.name().to_string(),
    })
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
    /// 0: the mtime.
    pub ctime_ns: i64,
    /// Other names of the same inode (hard links).
    pub links: u32,
}

impl Entry {
    /// The entry of a decoded record header and its trailing bytes.
    pub fn from_parts(h: &RecordHeader, target: Vec<u8>) -> Entry {
        Entry {
            kind: h.kind,
            flags: h.flags,
            mode: h.mode,
            size: h.size,
            mtime_ns: h.mtime_ns,
            ino: h.ino,
            hash: h.hash,
            target,
            uid: h.uid,
            gid: h.gid,
            atime_ns: h.atime_ns,
            ctime_ns: h.ctime_ns,
            links: h.links,
        }
    }

    /// The fixed part of the entry's record.
    pub fn header(&self) -> RecordHeader {
        RecordHeader {
            kind: self.kind,
            flags: self.flags,
            mode: self.mode,
            size: self.size,
            mtime_ns: self.mtime_ns,
            ino: self.ino,
            hash: self.hash,
            uid: self.uid,
            gid: self.gid,
            atime_ns: self.atime_ns,
            ctime_ns: self.ctime_ns,
            links: self.links,
        }
    }
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
                let mut v = e.header().encode().as_bytes().to_vec();
                v.extend_from_slice(&e.target);
                v
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> std::result::Result<Record, vrift_format::DecodeError> {
        Ok(match decode_record(bytes)? {
            RecordRef::Whiteout => Record::Whiteout,
            RecordRef::Entry { header, target } => {
                Record::Entry(Entry::from_parts(&header, target.to_vec()))
            }
        })
    }

    /// The node (`<cas>/nodes/<name>`) of a special file, if this is one.
    pub fn node(&self) -> Option<&[u8]> {
        match self {
            Record::Entry(e) if e.kind == Kind::Special => Some(&e.target),
            _ => None,
        }
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
                    txn.txn.open_table(JOURNAL)?;
                }
                txn.commit()
            }
            Some(bytes) => {
                let v = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_le_bytes)
                    .map_err(|_| corrupt(&self.path, "bad schema record"))?;
                if v == SCHEMA_V2 {
                    // Version 3 only adds the batch journal and the rift's
                    // table pointer; a version 2 manifest is a valid one.
                    txn.txn.open_table(JOURNAL)?;
                    txn.txn
                        .open_table(META)?
                        .insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                    return txn.commit();
                }
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
        let rift = rift_table_name(&txn.open_table(META)?)?;
        Ok(WriteTxn {
            txn,
            path: &self.path,
            rift: std::cell::RefCell::new(rift),
        })
    }

    pub fn read(&self) -> Result<ReadTxn<'_>> {
        let txn = self
            .db
            .begin_read()
            .with_context(|| format!("cannot read the manifest {}", self.path.display()))?;
        let rift = rift_table_name(&txn.open_table(META)?)?;
        Ok(ReadTxn {
            txn,
            path: &self.path,
            rift,
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
            let table = self.txn.open_table(layer_def(&self.table_name(layer)))?;
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
            let table = self.txn.open_table(layer_def(&self.table_name(layer)))?;
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
            let table = self.txn.open_table(layer_def(&self.table_name(layer)))?;
            for item in table.iter()? {
                let (k, v) = item?;
                f(k.value(), v.value());
            }
            Ok(())
        }

        /// Number of records in a layer.
        pub fn len(&self, layer: Layer) -> Result<u64> {
            Ok(self
                .txn
                .open_table(layer_def(&self.table_name(layer)))?
                .len()?)
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

        /// The directory marks frozen with snapshot `name`.
        pub fn snapshot_dirs(&self, name: &str) -> Result<Vec<(Vec<u8>, u8)>> {
            let table_name = format!("{SNAP_DIRS_PREFIX}{name}");
            let def: TableDefinition<&[u8], u8> = TableDefinition::new(&table_name);
            let table = self
                .txn
                .open_table(def)
                .map_err(|e| corrupt(self.path, format!("snapshot {name}: {e}")))?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                out.push((k.value().to_vec(), v.value()));
            }
            Ok(out)
        }

        /// The ingest journal: every file an ingest is moving, with the
        /// identity it had when hashed.
        pub fn pending(&self) -> Result<Vec<(Vec<u8>, PendingIngest)>> {
            let bad = || corrupt(self.path, "bad ingest journal row");
            let mut out = Vec::new();
            for item in self.txn.open_table(PENDING)?.iter()? {
                let (k, v) = item?;
                let p = PendingIngest::decode(v.value()).ok_or_else(bad)?;
                out.push((k.value().to_vec(), p));
            }
            // Manifests made before the batch journal lack its table.
            match self.txn.open_table(JOURNAL) {
                Ok(table) => {
                    for item in table.iter()? {
                        let (_, v) = item?;
                        decode_journal(v.value(), &mut out).ok_or_else(bad)?;
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(out)
        }
    };
}

/// Appends the rows of one journal batch (`u32` path length, path, the
/// 64-byte `PendingIngest`, repeated); None if the bytes are malformed.
fn decode_journal(mut bytes: &[u8], out: &mut Vec<(Vec<u8>, PendingIngest)>) -> Option<()> {
    while !bytes.is_empty() {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let path = bytes.get(4..4 + len)?;
        let p = PendingIngest::decode(bytes.get(4 + len..4 + len + 64)?)?;
        out.push((path.to_vec(), p));
        bytes = &bytes[4 + len + 64..];
    }
    Some(())
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
    /// The table holding the rift layer.
    rift: String,
}

impl ReadTxn<'_> {
    read_ops!();

    fn table_name(&self, layer: Layer) -> String {
        match layer {
            Layer::Rift => self.rift.clone(),
            Layer::Phantom => PHANTOM.name().to_string(),
        }
    }
}

/// A write transaction; nothing is visible until `commit`.
pub struct WriteTxn<'m> {
    txn: WriteTransaction,
    path: &'m Path,
    /// The table holding the rift layer (changes within the transaction).
    rift: std::cell::RefCell<String>,
}

impl WriteTxn<'_> {
    read_ops!();

    fn table_name(&self, layer: Layer) -> String {
        match layer {
            Layer::Rift => self.rift.borrow().clone(),
            Layer::Phantom => PHANTOM.name().to_string(),
        }
    }

    /// Makes the table holding the rift layer `name` (`rift`, or a
    /// snapshot's table after a restore).
    fn set_rift_table(&self, name: &str) -> Result<()> {
        let mut meta = self.txn.open_table(META)?;
        if name == RIFT.name() {
            meta.remove(RIFT_TABLE_KEY)?;
        } else {
            meta.insert(RIFT_TABLE_KEY, name.as_bytes())?;
        }
        *self.rift.borrow_mut() = name.to_string();
        Ok(())
    }

    /// Before the rift layer changes: if it is a snapshot's table (shared
    /// since a restore, read-only), copies it into `rift` first. This is the
    /// copy a restore used to make, made only when the rift does change.
    fn own_rift(&self) -> Result<()> {
        let current = self.rift.borrow().clone();
        if current == RIFT.name() {
            return Ok(());
        }
        self.txn.delete_table(RIFT)?;
        copy_records(&self.txn, layer_def(&current), RIFT)?;
        self.set_rift_table(RIFT.name())
    }

    /// Whether the rift layer is (still) the table of snapshot `name`.
    pub fn rift_shares_snapshot(&self, name: &str) -> bool {
        *self.rift.borrow() == format!("{SNAP_RIFT_PREFIX}{name}")
    }

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

    pub fn put(&self, layer: Layer, path: &[u8], rec: &Record) -> Result<()> {
        debug_assert!(vrift_format::is_valid_rift_path(path));
        if layer == Layer::Rift {
            self.own_rift()?;
        }
        let mut table = self.txn.open_table(layer_def(&self.table_name(layer)))?;
        table.insert(path, rec.encode().as_slice())?;
        Ok(())
    }

    pub fn remove(&self, layer: Layer, path: &[u8]) -> Result<bool> {
        if layer == Layer::Rift {
            self.own_rift()?;
        }
        let mut table = self.txn.open_table(layer_def(&self.table_name(layer)))?;
        let removed = table.remove(path)?.is_some();
        Ok(removed)
    }

    /// Removes every record of `layer`; returns how many there were.
    pub fn clear(&self, layer: Layer) -> Result<u64> {
        let n = self.len(layer)?;
        match layer {
            // A shared snapshot table is left alone: the rift becomes a new,
            // empty `rift`.
            Layer::Rift => {
                self.txn.delete_table(RIFT)?;
                self.txn.open_table(RIFT)?;
                self.set_rift_table(RIFT.name())?;
            }
            Layer::Phantom => {
                self.txn.delete_table(PHANTOM)?;
                self.txn.open_table(PHANTOM)?;
            }
        }
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

    pub fn clear_pending(&self) -> Result<()> {
        self.txn.delete_table(PENDING)?;
        self.txn.open_table(PENDING)?;
        self.txn.delete_table(JOURNAL)?;
        self.txn.open_table(JOURNAL)?;
        Ok(())
    }

    /// Drops the journal rows of ingest batches whose moves are done.
    pub fn remove_journal(&self, batches: &[u64]) -> Result<()> {
        let mut journal = self.txn.open_table(JOURNAL)?;
        for b in batches {
            journal.remove(b)?;
        }
        Ok(())
    }

    /// Records ingest batch `batch` in a single pass over the tables: each
    /// entry in the phantom layer (keeping the inode number of a path the
    /// layer already holds, else a fresh one), and the batch's journal as one
    /// row (one insert and one delete per batch instead of one per file).
    pub fn put_ingest_batch(
        &self,
        batch: u64,
        rows: &mut [(Vec<u8>, Entry, PendingIngest)],
    ) -> Result<()> {
        let fresh = self.alloc_inos(rows.len() as u64)?;
        let mut phantom = self.txn.open_table(PHANTOM)?;
        let mut journal = Vec::with_capacity(rows.iter().map(|r| r.0.len() + 68).sum());
        for (i, (path, entry, p)) in rows.iter_mut().enumerate() {
            debug_assert!(vrift_format::is_valid_rift_path(path));
            let old_ino = match phantom.get(path.as_slice())? {
                Some(v) => match decode_record(v.value()) {
                    Ok(RecordRef::Entry { header, .. }) => Some(header.ino),
                    _ => None,
                },
                None => None,
            };
            entry.ino = old_ino.unwrap_or(fresh + i as u64);
            phantom.insert(
                path.as_slice(),
                Record::Entry(entry.clone()).encode().as_slice(),
            )?;
            journal.extend_from_slice(&(path.len() as u32).to_le_bytes());
            journal.extend_from_slice(path);
            journal.extend_from_slice(&p.encode());
        }
        self.txn
            .open_table(JOURNAL)?
            .insert(batch, journal.as_slice())?;
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
        let current = self.table_name(Layer::Rift);
        let (entries, bytes) = copy_records(
            &self.txn,
            layer_def(&current),
            TableDefinition::new(&rift_name),
        )?;
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

    /// Creates snapshot `info.name` from records made elsewhere (a pull).
    ///
    /// Inode numbers are per manifest (invariant 2), so every record gets a
    /// fresh one here; records that shared an inode (hard links) still share
    /// their new one.
    pub fn snapshot_import(
        &self,
        info: &SnapshotInfo,
        records: &[(Vec<u8>, Record)],
        dirs: &[(Vec<u8>, u8)],
    ) -> Result<()> {
        check_snapshot_name(&info.name)?;
        let name = &info.name;
        let mut snaps = self.txn.open_table(SNAPSHOTS)?;
        if snaps.get(name.as_str())?.is_some() {
            bail!("snapshot {name:?} already exists; snapshots are immutable (drop it first)");
        }
        let rift_name = format!("{SNAP_RIFT_PREFIX}{name}");
        let dirs_name = format!("{SNAP_DIRS_PREFIX}{name}");
        let first = self.alloc_inos(records.len() as u64)?;
        let mut inos: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
        {
            let mut table = self.txn.open_table(layer_def(&rift_name))?;
            for (path, rec) in records {
                let rec = match rec {
                    Record::Entry(e) => {
                        let next = first + inos.len() as u64;
                        let ino = *inos.entry(e.ino).or_insert(next);
                        Record::Entry(Entry { ino, ..e.clone() })
                    }
                    Record::Whiteout => Record::Whiteout,
                };
                table.insert(path.as_slice(), rec.encode().as_slice())?;
            }
            let dirs_def: TableDefinition<&[u8], u8> = TableDefinition::new(&dirs_name);
            let mut dtable = self.txn.open_table(dirs_def)?;
            for (path, flags) in dirs {
                dtable.insert(path.as_slice(), *flags)?;
            }
        }
        snaps.insert(name.as_str(), serde_json::to_vec(info)?.as_slice())?;
        Ok(())
    }

    /// Replaces the rift layer and the directory marks with snapshot `name`.
    ///
    /// No record is copied: the rift layer becomes the snapshot's own table,
    /// read-only, until the rift next changes ([`WriteTxn::own_rift`]) or
    /// the snapshot is dropped (its table is then renamed to `rift`).
    pub fn snapshot_restore(&self, name: &str) -> Result<SnapshotInfo> {
        let info = self.snapshot_info(name)?;
        let rift_name = format!("{SNAP_RIFT_PREFIX}{name}");
        let dirs_name = format!("{SNAP_DIRS_PREFIX}{name}");
        // The replaced rift, if it was its own table.
        self.txn.delete_table(RIFT)?;
        self.set_rift_table(&rift_name)?;
        self.txn.delete_table(DIRS)?;
        copy_dirs(&self.txn, TableDefinition::new(&dirs_name), DIRS)?;
        Ok(info)
    }

    pub fn snapshot_drop(&self, name: &str) -> Result<SnapshotInfo> {
        let info = self.snapshot_info(name)?;
        let rift_name = format!("{SNAP_RIFT_PREFIX}{name}");
        let dirs_name = format!("{SNAP_DIRS_PREFIX}{name}");
        let rift_def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&rift_name);
        let dirs_def: TableDefinition<&[u8], u8> = TableDefinition::new(&dirs_name);
        if self.rift_shares_snapshot(name) {
            // The rift lives on in the snapshot's table, under its own name.
            self.txn.delete_table(RIFT)?;
            self.txn.rename_table(rift_def, RIFT)?;
            self.set_rift_table(RIFT.name())?;
        } else {
            self.txn.delete_table(rift_def)?;
        }
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
