//! `vrift daemon`: one per project, the only writer of its manifest and hot
//! table. Started on demand (by the shim or the CLI), serves the write side
//! over a Unix socket, seals staged files into the CAS, group-commits the
//! journal, and exits when idle.
//!
//! Start-up is race-free: every daemon takes the project lock before it
//! binds the socket, so of many processes starting one at once, one serves
//! and the others find it answering.

mod beneath;
pub mod client;
mod conn;
mod fetch;
pub mod journal;
pub mod live;
mod requests;
pub mod rift;
mod server;
mod start;
mod tenure;
mod wire;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::project::Project;

/// Set by SIGTERM/SIGINT and by a `Stop` request: the server's loop ends.
static STOP: AtomicBool = AtomicBool::new(false);

/// Environment variable: seconds of idleness before the daemon exits.
pub const IDLE_ENV: &str = crate::env_vars::VRIFT_DAEMON_IDLE;
const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// A short stable key for a project (its canonical root).
pub fn project_key(project: &Project) -> String {
    let h = blake3::hash(project.root().as_os_str().as_bytes());
    h.to_hex()[..16].to_string()
}

/// The per-user runtime directory (not created): `$XDG_RUNTIME_DIR/vrift`,
/// else `/tmp/vrift-<uid>`.
pub fn runtime_dir() -> PathBuf {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir).join("vrift"),
        _ => PathBuf::from(format!("/tmp/vrift-{uid}")),
    }
}

/// Where the daemon of `project` listens.
pub fn socket_path(project: &Project) -> PathBuf {
    let p = runtime_dir().join(format!("{}.sock", project_key(project)));
    // sun_path holds 108 bytes.
    if p.as_os_str().len() < 100 {
        return p;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/vrift-{uid}/{}.sock", project_key(project)))
}

/// Checks the runtime directory: a real directory (not a symlink) owned by
/// our euid, with no group or other permission bits. Anyone who can create
/// a name in it can listen in the daemon's place and receive every write,
/// so a directory that fails is refused, never repaired. `Ok(false)`: it
/// does not exist (yet).
pub fn check_runtime_dir(dir: &Path) -> Result<bool> {
    let m = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", dir.display())),
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !m.file_type().is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        let what = if m.file_type().is_symlink() {
            "a symlink".to_string()
        } else if !m.is_dir() {
            "not a directory".to_string()
        } else if m.uid() != uid {
            format!("owned by uid {}, not by you (uid {uid})", m.uid())
        } else {
            format!("mode {:04o}, open to others", m.mode() & 0o7777)
        };
        bail!(
            "refusing the runtime directory {}: {what} (it must be a directory of yours with mode 0700; another user may have created it); remove it or set XDG_RUNTIME_DIR",
            dir.display()
        );
    }
    Ok(true)
}

/// Creates the runtime directory 0700, refusing one that another user owns
/// or that others can enter (the socket's first line of defence).
pub fn ensure_runtime_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    if !check_runtime_dir(dir)? {
        bail!("{} vanished as it was created", dir.display());
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// Environment variable: seconds between the daemon's sweeps of staged
/// files that no close event sealed (a safety net; tests lengthen it to
/// prove that close events alone seal every file).
pub const SEAL_SWEEP_ENV: &str = crate::env_vars::VRIFT_DAEMON_SEAL_SWEEP;
const DEFAULT_SEAL_SWEEP: Duration = Duration::from_secs(2);

/// How long the daemon waits idle before exiting.
pub fn idle_timeout() -> Duration {
    seconds_from_env(IDLE_ENV).unwrap_or(DEFAULT_IDLE)
}

/// How often staged files are re-checked without a close event.
pub fn seal_sweep() -> Duration {
    seconds_from_env(SEAL_SWEEP_ENV).unwrap_or(DEFAULT_SEAL_SWEEP)
}

fn seconds_from_env(var: &str) -> Option<Duration> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
}

/// Runs the daemon in the foreground until it is idle or stopped.
pub fn run(project: Project) -> Result<()> {
    server::run(project)
}

/// Starts the daemon in the background unless one answers; returns once it does.
pub fn start(project: &Project) -> Result<()> {
    start::start(project)
}
