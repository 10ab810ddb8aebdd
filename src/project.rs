//! A vrift project: a directory with a `.vrift/` in it.
//!
//! ```text
//! .vrift/config.toml     the user's settings (from templates/config.toml)
//! .vrift/.gitignore      keeps .vrift/ out of version control
//! .vrift/manifest.redb   the rift (see manifest)
//! .vrift/store           the CAS root this project's blobs live in
//! .vrift/lock            held by any vrift command using the manifest
//! ```

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cas::{self, Cas};
use crate::lock::{FileLock, LockMode};
use crate::manifest::Manifest;
use crate::ui;

/// Name of the per-project state directory.
pub const STATE_DIR: &str = vrift_format::STATE_DIR_NAME;

/// A located project; `root` is canonical.
#[derive(Clone, Debug)]
pub struct Project {
    root: PathBuf,
}

/// `.vrift/config.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `verify = true`: readers that verify blobs (`vrift cat`, `vrift
    /// doctor`) hash every blob they read, even one with the
    /// verified-once mark (README, "Security").
    pub verify: bool,
    pub phantom: PhantomConfig,
    pub inception: InceptionConfig,
    pub wrappers: WrappersConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PhantomConfig {
    pub paths: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InceptionConfig {
    pub quiet: bool,
}

/// `[wrappers]`: commands the project's builds run besides make, cc, gcc,
/// cargo and sh. Each gets a `.vrift/bin` wrapper (besides the coreutils
/// vrift has applets for; see `wrappers`), and `vrift doctor` checks that
/// each can load the shim.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WrappersConfig {
    pub commands: Vec<String>,
}

impl Project {
    /// The project containing `start` (the nearest ancestor with `.vrift/`).
    pub fn find(start: &Path) -> Result<Project> {
        let start = fs::canonicalize(start)
            .with_context(|| format!("cannot resolve {}", start.display()))?;
        Project::find_from_canonical(&start)
    }

    /// [`Project::find`] from a path already canonical.
    fn find_from_canonical(start: &Path) -> Result<Project> {
        let mut dir = start;
        loop {
            if dir.join(STATE_DIR).is_dir() {
                return Ok(Project {
                    root: dir.to_path_buf(),
                });
            }
            match dir.parent() {
                Some(p) => dir = p,
                None => bail!(
                    "not inside a vrift project: no {STATE_DIR}/ in {} or any parent; run `vrift init` first",
                    start.display()
                ),
            }
        }
    }

    /// The project containing the current directory.
    pub fn current() -> Result<Project> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        // getcwd's answer is canonical already: no readlink per component.
        Project::find_from_canonical(&cwd)
    }

    /// A project rooted at `root` (which must exist), whether or not initialised.
    pub fn at(root: &Path) -> Result<Project> {
        let root =
            fs::canonicalize(root).with_context(|| format!("cannot resolve {}", root.display()))?;
        if !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        Ok(Project { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.state_dir().join("manifest.redb")
    }

    pub fn config_path(&self) -> PathBuf {
        self.state_dir().join("config.toml")
    }

    fn store_record_path(&self) -> PathBuf {
        self.state_dir().join("store")
    }

    pub fn config(&self) -> Result<Config> {
        let path = self.config_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// The CAS root recorded at `init`, if any.
    pub fn recorded_store(&self) -> Option<PathBuf> {
        let bytes = fs::read(self.store_record_path()).ok()?;
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        (!trimmed.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(trimmed)))
    }

    pub fn record_store(&self, cas: &Cas) -> Result<()> {
        let mut bytes = cas.root().as_os_str().as_bytes().to_vec();
        bytes.push(b'\n');
        write_atomic(&self.store_record_path(), &bytes)
    }

    /// The store this project uses: `$VR_THE_SOURCE`, else the one recorded
    /// at `init`, else the XDG default.
    pub fn cas(&self) -> Result<Cas> {
        let recorded = self.recorded_store();
        let root = cas::resolve_root(recorded.as_deref())?;
        if let Some(recorded) = recorded.filter(|r| *r != root) {
            if fs::canonicalize(&root).ok() != fs::canonicalize(&recorded).ok() {
                ui::warn(&format!(
                    "this project was initialised with the store {}, but {} is in use now",
                    recorded.display(),
                    root.display()
                ));
            }
        }
        Cas::open(&root)
    }

    /// Takes the project lock, waiting (with a message) for another vrift command.
    pub fn lock(&self) -> Result<FileLock> {
        let path = self.state_dir().join("lock");
        FileLock::acquire(&path, LockMode::Exclusive, || {
            ui::note(&format!(
                "waiting for another vrift command using this project (lock {})",
                path.display()
            ))
        })
        .with_context(|| format!("cannot lock {}", path.display()))
    }

    /// Opens the manifest (lock first).
    pub fn manifest(&self) -> Result<Manifest> {
        Manifest::open(&self.manifest_path(), false)
    }

    /// The rift path (relative, `/`-separated bytes) for `path`, which may be
    /// relative to the current directory and need not exist. `None` for the
    /// root itself. Errors if the path is outside the project or inside `.vrift/`.
    pub fn rift_path(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let abs = crate::paths::resolve_lexically_from_existing(path)?;
        let rel = match abs.strip_prefix(&self.root) {
            Ok(r) => r,
            Err(_) => bail!(
                "{} is outside the project {}",
                path.display(),
                self.root.display()
            ),
        };
        if rel.as_os_str().is_empty() {
            return Ok(None);
        }
        if rel.starts_with(STATE_DIR) {
            bail!(
                "{} is vrift's own state, not part of the view",
                path.display()
            );
        }
        Ok(Some(rel.as_os_str().as_bytes().to_vec()))
    }

    /// Absolute disk path of a rift path.
    pub fn disk_path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(std::ffi::OsStr::from_bytes(rel))
        }
    }

    /// Registers the project in its store's registry (for `gc`).
    pub fn register(&self, cas: &Cas) -> Result<()> {
        let path = registry_entry(cas, &self.root);
        write_atomic(&path, self.root.as_os_str().as_bytes())
    }
}

fn registry_entry(cas: &Cas, root: &Path) -> PathBuf {
    let key = blake3::hash(root.as_os_str().as_bytes());
    cas.registry_dir().join(&key.to_hex()[..32])
}

/// Every project registered in `cas`: (registry file, project root).
pub fn registered(cas: &Cas) -> Result<Vec<(PathBuf, PathBuf)>> {
    let dir = cas.registry_dir();
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        // Entries are 32 hex digits; others are another process's
        // registration in the making (`write_atomic`'s temporary file).
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.len() != 32 || !name.iter().all(u8::is_ascii_hexdigit) {
            continue;
        }
        let bytes = match fs::read(entry.path()) {
            Ok(b) => b,
            // Unregistered meanwhile (a gc beside this one).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", entry.path().display()))
            }
        };
        out.push((
            entry.path(),
            PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)),
        ));
    }
    out.sort();
    Ok(out)
}

/// Writes a small file atomically (temp file beside it, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent")?;
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    fs::write(tmp.path(), bytes)
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
