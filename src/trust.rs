//! Which projects this user allows to change their shell.
//!
//! A project is trusted when `vrift init` or `vrift allow` ran in it on this
//! machine and its config has not changed since. Records live in the user's
//! data dir (like direnv's allow list): one file per project, named by the
//! BLAKE3 hash of the canonical root, holding the config's hash and the root.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What the trust store says about a project.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Trust {
    Trusted,
    /// Allowed once, but its config changed since.
    ConfigChanged,
    Unknown,
}

fn trust_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "vrift")
        .context("cannot determine the XDG data directory (is $HOME set?)")?;
    Ok(dirs.data_dir().join("trust"))
}

fn record_path(root: &Path) -> Result<PathBuf> {
    let key = blake3::hash(root.as_os_str().as_bytes());
    Ok(trust_dir()?.join(&key.to_hex()[..32]))
}

/// Hash of a project's config file (missing file: hash of nothing).
pub fn config_hash(config: &Path) -> Result<String> {
    let bytes = match fs::read(config) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", config.display())),
    };
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

pub fn allow(root: &Path, config: &Path) -> Result<()> {
    let path = record_path(root)?;
    let dir = path.parent().unwrap();
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut content = config_hash(config)?.into_bytes();
    content.push(b'\n');
    content.extend_from_slice(root.as_os_str().as_bytes());
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    fs::write(tmp.path(), &content)?;
    tmp.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn deny(root: &Path) -> Result<bool> {
    let path = record_path(root)?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

pub fn check(root: &Path, config: &Path) -> Result<Trust> {
    let path = record_path(root)?;
    let content = match fs::read(&path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Trust::Unknown),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let Some(nl) = content.iter().position(|&c| c == b'\n') else {
        return Ok(Trust::Unknown);
    };
    if &content[nl + 1..] != root.as_os_str().as_bytes() {
        return Ok(Trust::Unknown);
    }
    if content[..nl] == *config_hash(config)?.as_bytes() {
        Ok(Trust::Trusted)
    } else {
        Ok(Trust::ConfigChanged)
    }
}
