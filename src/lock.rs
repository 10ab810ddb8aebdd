//! Advisory file locks (`flock`) that wait with a message instead of failing.
//!
//! Lock order, to stay deadlock-free: the CAS's gc lock before any project lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held `flock`; released when dropped (the fd closes).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

/// Shared or exclusive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockMode {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Takes the lock on `path` (created if missing), waiting for other holders.
    ///
    /// After a short grace period `on_wait` is called once, so the user learns
    /// why the command is not progressing.
    pub fn acquire(path: &Path, mode: LockMode, on_wait: impl FnOnce()) -> io::Result<FileLock> {
        let start = Instant::now();
        let mut on_wait = Some(on_wait);
        loop {
            if let Some(lock) = FileLock::try_acquire(path, mode)? {
                return Ok(lock);
            }
            if start.elapsed() > Duration::from_millis(300) {
                if let Some(f) = on_wait.take() {
                    f();
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Takes the lock if no other holder conflicts; None if one does.
    pub fn try_acquire(path: &Path, mode: LockMode) -> io::Result<Option<FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        };
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
                return Ok(Some(FileLock {
                    _file: file,
                    path: path.to_path_buf(),
                }));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => return Ok(None),
                Some(libc::EINTR) => continue,
                _ => return Err(err),
            }
        }
    }

    /// The open, locked file.
    pub fn file(&self) -> &File {
        &self._file
    }

    /// The locked file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
