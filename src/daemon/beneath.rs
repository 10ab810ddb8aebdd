//! The daemon's disk operations inside its project, each resolved beneath
//! the project root by the kernel (issue 14: "check-then-act").
//!
//! [`super::rift::Rift::confined`] refuses a request path with a physical
//! symlink on the way, but it looks before the operation acts: a process of
//! the user could swap a directory of the path for a symlink to outside in
//! between, and a path-based `chmod`, `mkdir`, `open` or `lstat` would
//! follow it. Every function here instead resolves `rel` with openat2(2)
//! from an `O_PATH` descriptor of the root with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`: a symlink anywhere on the way (the last component
//! included) fails with `ELOOP`, an escape with `EXDEV`, at the moment of
//! the operation, and the operation then acts on the descriptor it got (or
//! on a name in the parent directory's descriptor), never on a path again.
//!
//! `rel` is a rift path (relative, no `.`/`..`/`//`; empty for the root).

use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// `struct open_how` of openat2(2) (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let c = cstr(root.as_os_str().as_bytes())?;
    // SAFETY: a valid C string; the fd is owned right after.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat2(dir: &OwnedFd, rel: &[u8], flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    let c = cstr(if rel.is_empty() { b"." } else { rel })?;
    // openat2 refuses O_PATH with any flag but O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC.
    let noctty = if flags & libc::O_PATH != 0 {
        0
    } else {
        libc::O_NOCTTY
    };
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | noctty) as u64,
        mode: mode as u64,
        resolve,
    };
    // SAFETY: valid fd, path and open_how of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    } as i32;
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `rel` below `root` with `flags` (O_CLOEXEC added), no symlink
/// followed anywhere on the way, the last component included (`O_PATH |
/// O_NOFOLLOW` gives the symlink itself).
pub fn open(root: &Path, rel: &[u8], flags: i32) -> io::Result<OwnedFd> {
    openat2(
        &open_root(root)?,
        rel,
        flags | libc::O_NOFOLLOW,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
    )
}

/// Whether `rel` lies on a filesystem mounted below the project (the
/// walk to it, its last component included, crosses a mount point): not
/// the project's filesystem, so not the rift's either — the kernel acts
/// on it as it is (see requests.rs, "Mounts"). A path that does not
/// exist, or has a symlink on the way, crosses nothing the walk reached.
pub fn on_other_mount(root: &Path, rel: &[u8]) -> bool {
    if rel.is_empty() {
        return false;
    }
    let Ok(dir) = open_root(root) else {
        return false;
    };
    let walk = openat2(
        &dir,
        rel,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV,
    );
    matches!(walk, Err(e) if e.raw_os_error() == Some(libc::EXDEV))
}

/// The parent directory of `rel` (an `O_PATH` descriptor) and its last
/// component. The root itself has no parent here (EBUSY).
fn parent(root: &Path, rel: &[u8]) -> io::Result<(OwnedFd, CString)> {
    if rel.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    let (dir, name) = match rel.iter().rposition(|&c| c == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b""[..], rel),
    };
    let fd = open(root, dir, libc::O_PATH | libc::O_DIRECTORY)?;
    Ok((fd, cstr(name)?))
}

/// `lstat`: the metadata of `rel` itself (a final symlink is not followed).
pub fn lstat(root: &Path, rel: &[u8]) -> io::Result<fs::Metadata> {
    File::from(open(root, rel, libc::O_PATH)?).metadata()
}

/// `readlink` of the symlink `rel`.
pub fn read_link(root: &Path, rel: &[u8]) -> io::Result<PathBuf> {
    let fd = open(root, rel, libc::O_PATH)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: an fd we own (an O_PATH fd of the link: the empty path names
    // it), a buffer of the length given.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// The names in the directory `rel` (without `.` and `..`).
pub fn read_dir(root: &Path, rel: &[u8]) -> io::Result<Vec<OsString>> {
    let fd = open(root, rel, libc::O_RDONLY | libc::O_DIRECTORY)?;
    // SAFETY: fdopendir takes the fd over (closed by closedir).
    let dir = unsafe { libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    if dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut names = Vec::new();
    loop {
        // SAFETY: a valid DIR*; the entry is read before the next call.
        let e = unsafe { libc::readdir(dir) };
        if e.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    // SAFETY: the DIR* opened above, closed once.
    unsafe { libc::closedir(dir) };
    Ok(names)
}

/// `mkdir` of `rel` with `mode` (the caller's umask already applied).
pub fn mkdir(root: &Path, rel: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = parent(root, rel)?;
    // SAFETY: valid fd and C string.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `rmdir` of `rel`.
pub fn rmdir(root: &Path, rel: &[u8]) -> io::Result<()> {
    let (dir, name) = parent(root, rel)?;
    // SAFETY: valid fd and C string.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The `/proc/self/fd/N` name of an `O_PATH` descriptor: chmod and utimes
/// through it act on that very inode (the kernel's magic link), which is
/// how an `O_PATH` descriptor's file is changed.
fn fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL")
}

/// An O_PATH fd of `rel`, which must not be a symlink (ELOOP): what a
/// change through `/proc/self/fd/N` would otherwise follow.
fn open_not_symlink(root: &Path, rel: &[u8]) -> io::Result<OwnedFd> {
    let fd = open(root, rel, libc::O_PATH)?;
    if File::from(fd.try_clone()?)
        .metadata()?
        .file_type()
        .is_symlink()
    {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    Ok(fd)
}

/// `chmod` of `rel`, never of what a symlink there points at (ELOOP).
pub fn chmod(root: &Path, rel: &[u8], mode: u32) -> io::Result<()> {
    let fd = open_not_symlink(root, rel)?;
    // SAFETY: a valid C string.
    if unsafe { libc::chmod(fd_path(&fd).as_ptr(), (mode & 0o7777) as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `lchown` of `rel`.
pub fn lchown(root: &Path, rel: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let fd = open(root, rel, libc::O_PATH)?;
    // SAFETY: an fd we own; the empty path with AT_EMPTY_PATH names it.
    if unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `utimensat` of `rel` (a final symlink refused: ELOOP).
pub fn utimes(root: &Path, rel: &[u8], times: &[libc::timespec; 2]) -> io::Result<()> {
    let fd = open_not_symlink(root, rel)?;
    // SAFETY: a valid C string and two timespecs.
    if unsafe { libc::utimensat(libc::AT_FDCWD, fd_path(&fd).as_ptr(), times.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens the regular file `rel` for reading, in a way that can neither
/// block nor leave the project: O_NONBLOCK (a FIFO opens at once instead of
/// waiting for a writer), no symlink on the way or at the end, then an
/// fstat that must find a regular file. Anything else is EOPNOTSUPP: a
/// FIFO, socket or device has no content to copy, and reading one could
/// block or never end; a symlink on the way (swapped in since the request
/// was checked) is ELOOP.
pub fn open_regular(root: &Path, rel: &[u8]) -> io::Result<File> {
    let file = File::from(open(root, rel, libc::O_RDONLY | libc::O_NONBLOCK)?);
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(file)
}

/// Whether an error is the kernel refusing a symlink or an escape on the
/// way (the path changed under the request).
pub fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV))
}
