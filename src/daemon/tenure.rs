//! Whether the daemon still serves the project it was started for.
//!
//! Daemons are found by the project's path (`socket_path`). A project
//! removed and initialised again at the same path (`rm -rf p; mkdir p;
//! vrift init`), or moved away, leaves its daemon listening with the old
//! manifest open: the new project's writes would go into a deleted
//! manifest and be lost without a word. The daemon therefore notes the
//! identity (device, inode) of its project's lock file and of its socket
//! when it starts; once the lock file at the project's path is another
//! (or gone), it lets go of the socket path and exits, so the next client
//! starts a daemon for the project that is there now.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file's identity.
fn id_of(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// The files a daemon started with, by identity.
#[derive(Debug)]
pub struct Tenure {
    lock_path: PathBuf,
    lock: (u64, u64),
    socket_path: PathBuf,
    socket: (u64, u64),
}

impl Tenure {
    /// Notes the project's lock file (`lock`: the one this daemon holds
    /// open and locked) and the socket it has just bound.
    pub fn take(lock_path: &Path, lock: &fs::File, socket_path: &Path) -> io::Result<Tenure> {
        Ok(Tenure {
            lock_path: lock_path.to_path_buf(),
            lock: id_of(&lock.metadata()?),
            socket_path: socket_path.to_path_buf(),
            socket: id_of(&fs::symlink_metadata(socket_path)?),
        })
    }

    /// Whether the project's lock file is still the one we hold (a stat).
    pub fn project_is_ours(&self) -> bool {
        fs::metadata(&self.lock_path).is_ok_and(|m| id_of(&m) == self.lock)
    }

    /// The lock file's path (for the message when it is not ours).
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// Removes the socket path if it still names our socket (a daemon
    /// started since for the same path has bound its own there).
    pub fn release_socket(&self) {
        if fs::symlink_metadata(&self.socket_path).is_ok_and(|m| id_of(&m) == self.socket) {
            let _ = fs::remove_file(&self.socket_path);
        }
    }
}
