//! The global content-addressed store (the CAS).
//!
//! Layout below the root (docs/design.md, "The store", is the long form):
//!
//! ```text
//! blobs/ab/abcd…      one file per content, named by its BLAKE3 hash, mode 0400
//! tmp/                blobs being written (same filesystem as blobs/)
//! staging/            files being written in a view (the daemon's; see below)
//! exec/<hash>         executable copies of blobs (0555, made by the library)
//! lib/                pinned copies of the view library, one per content
//! shared              present in a store shared between users (see below)
//! quarantine/         blobs `vrift fsck` found corrupt, moved aside
//! projects/<id>       the registry: one file per project, holding its root path
//! gc.lock             shared by writers of blobs, exclusive for `gc --delete`
//! ingest.lock         shared by running ingests; their trash waits for it
//! ```
//!
//! # Invariants
//!
//! 1. A file under `blobs/` is complete and has the blob mode when its name
//!    appears there: by `rename` from `tmp/` after its bytes were written
//!    ([`Cas::adopt_tmp`]), or by a hard link from `staging/`
//!    ([`Cas::adopt_tmp_linked`]) after the daemon hashed the whole file
//!    under a read lease (no writer could have it open) and set the blob
//!    mode. In the second case the staging name stays a second name of the
//!    blob for about a second (readers that resolved the staged record
//!    open it by that name), then the daemon removes it. Like every blob
//!    name it has mode 0400 from before the link.
//! 2. A blob's content is never modified in place and never executable.
//! 3. A blob may be deleted only by `gc --delete`, holding `gc.lock`
//!    exclusively, when no registered manifest or snapshot references it. Every
//!    writer that will reference a blob holds `gc.lock` shared from before it
//!    checks for the blob until after it has committed the reference.
//! 4. Fan-out directories are created on demand, never up front.
//! 5. The store is private to its owner: its directories are 0700 and its
//!    blobs 0400, since it holds every project's secrets (`.env`, keys).
//!    A store shared between users (a team cache) is an explicit choice:
//!    opened once with `VRIFT_STORE_SHARED=1`, it is marked by a `shared`
//!    file and keeps directories 0755 and blobs 0444 from then on, whoever
//!    opens it (removing the mark makes it private again).

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use vrift_format::{ContentHash, BLOBS_DIR, BLOB_REL_PATH_LEN};

use crate::env_vars;
use crate::lock::{FileLock, LockMode};

/// The lock file of [`Cas::ingest_busy_lock`], in the store's root.
pub const INGEST_BUSY_LOCK: &str = "ingest.lock";

/// Mode every blob of a private store carries (owner read only).
pub const BLOB_MODE: u32 = 0o400;
/// Mode of the blobs of a shared store (readable by everyone).
pub const SHARED_BLOB_MODE: u32 = 0o444;

/// The verified-once mark: the sticky bit (which Linux ignores on regular
/// files) on a blob whose bytes were hashed and found to be its name after
/// it was written: by `vrift fsck`, or by the first reader that verifies
/// (`vrift cat`, `vrift doctor`). A reader that finds it checks the size
/// only; the mark is in the mode, so a reader that fstats the blob anyway
/// (the library does, for the size) pays nothing to see it. It is never
/// set when a blob is written (a write cut short by a crash must still be
/// caught on first use) and says nothing of later changes in place: that
/// is `verify = true` (README, "Security").
pub const VERIFIED: u32 = 0o1000;
/// Mode of a private store's directories.
const DIR_MODE: u32 = 0o700;
/// Mode of a shared store's directories.
const SHARED_DIR_MODE: u32 = 0o755;
/// The mark of a shared store, in its root.
pub const SHARED_MARK: &str = "shared";
/// Environment variable: `1` makes the store being opened a shared one.
pub const STORE_SHARED_ENV: &str = crate::env_vars::VRIFT_STORE_SHARED;

/// A handle on the store's root directory.
#[derive(Clone, Debug)]
pub struct Cas {
    root: PathBuf,
    shared: bool,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Where the CAS lives when nothing says otherwise: the XDG data dir.
pub fn default_root() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "vrift")
        .context("cannot determine the XDG data directory (is $HOME set?)")?;
    Ok(dirs.data_dir().join("cas"))
}

/// The CAS root chosen by the environment: `$VR_THE_SOURCE`, else `fallback`,
/// else the XDG default.
pub fn resolve_root(fallback: Option<&Path>) -> Result<PathBuf> {
    match std::env::var_os(env_vars::VR_THE_SOURCE) {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => match fallback {
            Some(p) => Ok(p.to_path_buf()),
            None => default_root(),
        },
    }
}

impl Cas {
    /// Opens (creating if needed) the store at `root`. Its top-level
    /// directories are made private (0700) if they are not, unless the store
    /// is shared: a store written by an older vrift (0755) is tightened at
    /// once, without walking its blobs (`vrift fsck` fixes their modes;
    /// behind a 0700 root nobody else reaches them anyway).
    pub fn open(root: &Path) -> Result<Cas> {
        let want_shared = std::env::var_os(STORE_SHARED_ENV).is_some_and(|v| v == "1");
        let mark = root.join(SHARED_MARK);
        let shared = want_shared || mark.exists();
        let mode = if shared { SHARED_DIR_MODE } else { DIR_MODE };
        // The daemon runs with umask 0: every mode is given explicitly.
        create_dirs(root, mode)?;
        if want_shared && !mark.exists() {
            fs::write(
                &mark,
                "this store is shared between users (VRIFT_STORE_SHARED=1)\n",
            )
            .with_context(|| format!("cannot mark {} as shared", root.display()))?;
            fs::set_permissions(&mark, fs::Permissions::from_mode(0o644))?;
        }
        for sub in [
            BLOBS_DIR,
            "tmp",
            "quarantine",
            "projects",
            vrift_format::EXEC_DIR,
            vrift_format::STAGING_DIR,
        ] {
            create_dirs(&root.join(sub), mode)?;
        }
        let root = fs::canonicalize(root)
            .with_context(|| format!("cannot resolve the store path {}", root.display()))?;
        Ok(Cas { root, shared })
    }

    /// Whether the store is shared between users (see the module's notes).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The mode a blob of this store carries.
    pub fn blob_mode(&self) -> u32 {
        if self.shared {
            SHARED_BLOB_MODE
        } else {
            BLOB_MODE
        }
    }

    fn dir_mode(&self) -> u32 {
        if self.shared {
            SHARED_DIR_MODE
        } else {
            DIR_MODE
        }
    }

    /// Creates the fan-out directory of a blob path.
    pub fn create_fanout(&self, blob: &Path) -> io::Result<()> {
        let dir = blob.parent().expect("blob paths have a parent");
        match fs::DirBuilder::new().mode(self.dir_mode()).create(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join(BLOBS_DIR)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Executable copies of blobs (`exec/<hash>`, 0555), made by the
    /// library on a rift program's first run.
    pub fn exec_dir(&self) -> PathBuf {
        self.root.join(vrift_format::EXEC_DIR)
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("projects")
    }

    /// Where inceptions load the view library from: a copy per content
    /// (see [`Cas::pin_library`]).
    pub fn lib_dir(&self) -> PathBuf {
        self.root.join("lib")
    }

    /// A copy of the library at `lib`, named by its content, that no
    /// upgrade or rebuild of the installed one removes or changes while
    /// processes of an inception still start (the dynamic loader would
    /// skip a missing LD_PRELOAD with a warning, and the process would run
    /// against the disk). Made once per content (write aside, rename).
    pub fn pin_library(&self, lib: &Path) -> Result<PathBuf> {
        let bytes = fs::read(lib).with_context(|| format!("cannot read {}", lib.display()))?;
        let hash = blake3::hash(&bytes).to_hex();
        let dir = self.lib_dir();
        let pinned = dir.join(format!("libvrift_shim-{}.so", &hash[..32]));
        if pinned.is_file() {
            return Ok(pinned);
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = self.tmp_path("lib");
        if let Some(parent) = tmp.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o555))?;
        fs::rename(&tmp, &pinned)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), pinned.display()))?;
        Ok(pinned)
    }

    /// The path a blob has (or would have).
    pub fn blob_path(&self, hash: &ContentHash) -> PathBuf {
        let mut rel = [0u8; BLOB_REL_PATH_LEN];
        let n = hash.write_blob_rel_path(&mut rel);
        self.root.join(std::ffi::OsStr::from_bytes(&rel[..n]))
    }

    pub fn has_blob(&self, hash: &ContentHash) -> bool {
        fs::symlink_metadata(self.blob_path(hash)).is_ok_and(|m| m.is_file())
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, hash: &ContentHash) -> Result<File> {
        let path = self.blob_path(hash);
        File::open(&path).with_context(|| {
            format!(
                "blob {hash} is missing from the store ({}); run `vrift fsck` \
                 (after a `vrift pull` without --eager: `vrift pull SNAPSHOT --eager`)",
                path.display()
            )
        })
    }

    /// Opens a blob for reading after checking it is the content it is
    /// named for: its size is `size` and its bytes hash to `hash` (the file
    /// is read twice). For readers that hand every byte on and cannot take
    /// one back (`vrift cat`): a damaged blob is an error naming it, never
    /// wrong bytes. The library checks only the size (see the README,
    /// "Security").
    /// A blob with the verified-once mark ([`VERIFIED`]) is only
    /// size-checked, unless `strict` (`verify = true`); one found good is
    /// marked.
    pub fn open_blob_verified(&self, hash: &ContentHash, size: u64, strict: bool) -> Result<File> {
        use std::io::{Seek, SeekFrom};
        let mut f = self.open_blob(hash)?;
        let path = self.blob_path(hash);
        let meta = f.metadata()?;
        let len = meta.len();
        let marked = meta.permissions().mode() & VERIFIED != 0;
        if len != size {
            bail!(
                "blob {hash} in the store is damaged: {len} bytes, its record says {size} ({}); run `vrift fsck`",
                path.display()
            );
        }
        if marked && !strict {
            return Ok(f);
        }
        let got = hash_reader(&mut f).with_context(|| format!("cannot read {}", path.display()))?;
        if got != *hash {
            bail!(
                "blob {hash} in the store is damaged: its content hashes to {got} ({}); run `vrift fsck`",
                path.display()
            );
        }
        if !marked {
            // Best effort: a shared store's blob may be another user's.
            let _ = self.mark_verified(&path);
        }
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }

    /// Sets the verified-once mark ([`VERIFIED`]) on the blob at `path`.
    pub fn mark_verified(&self, path: &Path) -> io::Result<()> {
        fs::set_permissions(
            path,
            fs::Permissions::from_mode(self.blob_mode() | VERIFIED),
        )
    }

    /// Takes the gc lock: shared for anything about to reference blobs,
    /// exclusive for deleting them.
    pub fn gc_lock(&self, mode: LockMode) -> Result<FileLock> {
        let path = self.root.join("gc.lock");
        FileLock::acquire(&path, mode, || {
            let what = match mode {
                LockMode::Shared => "a running `vrift gc --delete`",
                LockMode::Exclusive => "running ingests",
            };
            crate::ui::note(&format!("waiting for {what} (lock {})", path.display()));
        })
        .with_context(|| format!("cannot lock {}", path.display()))
    }

    /// The gc lock shared, if no `gc --delete` holds it now (the daemon never
    /// waits for gc: gc waits for the daemons it stops).
    pub fn try_gc_lock_shared(&self) -> Result<Option<FileLock>> {
        let path = self.root.join("gc.lock");
        FileLock::try_acquire(&path, LockMode::Shared)
            .with_context(|| format!("cannot lock {}", path.display()))
    }

    /// Held shared by every running ingest: the detached cleanup of an
    /// ingest's trash deletes only while no ingest holds it, so unlinks
    /// (costly on some filesystems) never slow down the next ingest.
    pub fn ingest_busy_lock(&self) -> Result<FileLock> {
        let path = self.root.join(INGEST_BUSY_LOCK);
        FileLock::acquire(&path, LockMode::Shared, || {})
            .with_context(|| format!("cannot lock {}", path.display()))
    }

    /// A fresh, unique path in `tmp/` (nothing is created).
    pub fn tmp_path(&self, tag: &str) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.tmp_dir()
            .join(format!("{tag}.{}.{n}", std::process::id()))
    }

    /// Stores `bytes` as a blob and returns its hash.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ContentHash> {
        let hash = ContentHash(*blake3::hash(bytes).as_bytes());
        if self.has_blob(&hash) {
            return Ok(hash);
        }
        let tmp = self.tmp_path("put");
        let result = (|| -> io::Result<()> {
            let mut f = create_tmp(&tmp)?;
            f.write_all(bytes)?;
            f.sync_data()?;
            Ok(())
        })();
        self.finish_tmp(&tmp, &hash, result)?;
        Ok(hash)
    }

    /// Copies an open file into the store, hashing while copying; returns
    /// the hash and whether the blob is new.
    pub fn put_reader(&self, src: &mut impl Read) -> Result<(ContentHash, bool)> {
        let tmp = self.tmp_path("copy");
        let mut hasher = blake3::Hasher::new();
        let result = (|| -> io::Result<()> {
            let mut f = create_tmp(&tmp)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n])?;
            }
            Ok(())
        })();
        let hash = ContentHash(*hasher.finalize().as_bytes());
        let new = self.finish_tmp(&tmp, &hash, result)?;
        Ok((hash, new))
    }

    /// Makes `tmp` (already written, or failed with `written`) the blob `hash`.
    fn finish_tmp(&self, tmp: &Path, hash: &ContentHash, written: io::Result<()>) -> Result<bool> {
        if let Err(e) = written {
            let _ = fs::remove_file(tmp);
            return Err(e)
                .with_context(|| format!("cannot write a blob into {}", self.tmp_dir().display()));
        }
        self.adopt_tmp(tmp, hash)
    }

    /// Moves a complete file from `tmp/` to its blob name (see
    /// [`Cas::adopt_tmp_keep`]); on failure the temp file is removed.
    pub fn adopt_tmp(&self, tmp: &Path, hash: &ContentHash) -> Result<bool> {
        self.adopt_tmp_keep(tmp, hash).map_err(|e| {
            let _ = fs::remove_file(tmp);
            anyhow::Error::new(e).context(format!(
                "cannot store blob {hash} at {}",
                self.blob_path(hash).display()
            ))
        })
    }

    /// Makes a complete file on the store's filesystem the blob `hash`:
    /// the blob mode, then an atomic rename that never replaces an existing blob.
    /// If the blob exists already (same content by construction) the file is
    /// removed. On any other failure the file is left where it was.
    /// Returns whether the blob is new.
    pub fn adopt_tmp_keep(&self, tmp: &Path, hash: &ContentHash) -> io::Result<bool> {
        let dest = self.blob_path(hash);
        fs::set_permissions(tmp, fs::Permissions::from_mode(self.blob_mode()))?;
        let res = match rename_noreplace(tmp, &dest) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && tmp.exists() => {
                self.create_fanout(&dest)?;
                rename_noreplace(tmp, &dest)
            }
            other => other,
        };
        match res {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                fs::remove_file(tmp).map(|()| false)
            }
            Err(e) => Err(e),
        }
    }

    /// Like [`Cas::adopt_tmp_keep`], but the blob is a hard link to `tmp`,
    /// which stays where it is: whoever still names `tmp` finds the same
    /// file (the daemon seals a staging file that readers may be opening by
    /// its staging name). Returns (a new blob, `tmp` still exists). A
    /// filesystem without hard links gets the rename.
    pub fn adopt_tmp_linked(&self, tmp: &Path, hash: &ContentHash) -> io::Result<(bool, bool)> {
        let dest = self.blob_path(hash);
        fs::set_permissions(tmp, fs::Permissions::from_mode(self.blob_mode()))?;
        let res = match fs::hard_link(tmp, &dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tmp.exists() => {
                self.create_fanout(&dest)?;
                fs::hard_link(tmp, &dest)
            }
            other => other,
        };
        match res {
            Ok(()) => Ok((true, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((false, true)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EOPNOTSUPP | libc::EMLINK)
                ) =>
            {
                self.adopt_tmp_keep(tmp, hash).map(|new| (new, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Flushes everything written to the store's filesystem (one `syncfs`),
    /// so that references committed afterwards never point at lost data.
    pub fn sync(&self) -> Result<()> {
        let dir = File::open(&self.root)
            .with_context(|| format!("cannot open {}", self.root.display()))?;
        // SAFETY: syncfs on an fd we own.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("cannot flush the store at {}", self.root.display()));
        }
        Ok(())
    }

    /// Lists every blob (hash and path), skipping foreign files.
    pub fn list_blobs(&self) -> Result<Vec<(ContentHash, PathBuf)>> {
        let mut out = Vec::new();
        let blobs = self.blobs_dir();
        for fan in
            fs::read_dir(&blobs).with_context(|| format!("cannot list {}", blobs.display()))?
        {
            let fan = fan?;
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(fan.path())? {
                let entry = entry?;
                if let Some(hash) = ContentHash::from_hex(entry.file_name().as_bytes()) {
                    out.push((hash, entry.path()));
                }
            }
        }
        Ok(out)
    }
}

/// Which blobs the store holds, read one fan-out directory at a time (one
/// `getdents` pass instead of a `stat` per file) and cached for the run.
///
/// A listing may miss a blob added after it was read: callers treat "absent"
/// as "try to add it", which a no-replace rename resolves. It never claims a
/// blob that is absent, as long as the caller holds the gc lock shared (only
/// `gc --delete` removes blobs, invariant 3).
pub struct BlobIndex {
    blobs: PathBuf,
    fans: Vec<std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<ContentHash>>>>,
}

impl BlobIndex {
    pub fn new(cas: &Cas) -> BlobIndex {
        BlobIndex {
            blobs: cas.blobs_dir(),
            fans: (0..256).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    fn fan(&self, hash: &ContentHash) -> &std::sync::Mutex<std::collections::HashSet<ContentHash>> {
        let byte = hash.0[0];
        self.fans[byte as usize].get_or_init(|| {
            let mut set = std::collections::HashSet::new();
            let dir = self.blobs.join(format!("{byte:02x}"));
            // A missing or unreadable fan-out directory lists nothing:
            // every blob in it counts as absent, which is always safe.
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    if !entry.file_type().is_ok_and(|t| t.is_file()) {
                        continue;
                    }
                    if let Some(h) = ContentHash::from_hex(entry.file_name().as_bytes()) {
                        set.insert(h);
                    }
                }
            }
            std::sync::Mutex::new(set)
        })
    }

    /// Lists every fan-out directory now (for a thread to do while the
    /// first batch is being read), instead of each on its first lookup.
    pub fn preload(&self) {
        for byte in 0..=255u8 {
            let mut hash = ContentHash::default();
            hash.0[0] = byte;
            self.fan(&hash);
        }
    }

    /// Whether the store held the blob when its fan-out was listed, or it
    /// was added through [`BlobIndex::insert`] since.
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.fan(hash)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(hash)
    }

    /// Records a blob this run put into the store.
    pub fn insert(&self, hash: ContentHash) {
        self.fan(&hash)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash);
    }
}

/// Opens a blob (or a copy) to check it without moving its atime
/// (`O_NOATIME`, which only a file's owner may ask for: others open it
/// plainly): a blob's atime tells whether a reader of the view read it
/// since it was fetched (`crate::profile`).
pub fn open_to_check(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        other => other,
    }
}

/// Hashes everything readable from `r`.
pub fn hash_reader(r: &mut impl Read) -> io::Result<ContentHash> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ContentHash(*hasher.finalize().as_bytes()))
}

/// Hashes the first `len` bytes readable from `r`; returns the hash and how
/// many bytes there were (fewer than `len` if `r` ended early).
pub fn hash_prefix(r: &mut impl Read, len: u64) -> io::Result<(ContentHash, u64)> {
    // One buffer per thread: zeroing 64 KiB for each of 70k small files
    // cost 2% of an ingest.
    thread_local! {
        static BUF: std::cell::RefCell<Box<[u8]>> =
            std::cell::RefCell::new(vec![0u8; 64 * 1024].into_boxed_slice());
    }
    BUF.with(|buf| hash_prefix_with(r, len, &mut buf.borrow_mut()))
}

fn hash_prefix_with(r: &mut impl Read, len: u64, buf: &mut [u8]) -> io::Result<(ContentHash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                done += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((ContentHash(*hasher.finalize().as_bytes()), done))
}

/// Creates `dir` (and missing parents) with `mode`, and gives an existing
/// one `mode` if it has other bits: a store must not stay readable by
/// others because an older vrift or a permissive umask made it so.
fn create_dirs(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("cannot create the store directory {}", dir.display()))?;
    let m = fs::metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    if m.mode() & 0o777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).with_context(|| {
            format!(
                "cannot set the mode of the store directory {} to {mode:04o}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

fn create_tmp(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// `renameat2(RENAME_NOREPLACE)`: EEXIST if `to` exists.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let from_c = CString::new(from.as_os_str().as_bytes())?;
    let to_c = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: valid NUL-terminated paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINVAL) {
        return Err(err);
    }
    // The filesystem lacks RENAME_NOREPLACE: link() refuses to replace as well.
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}
