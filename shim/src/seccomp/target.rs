//! The supervised task as the supervisor reaches it: its memory (path
//! arguments in, results out), its fds (copied with `pidfd_getfd`), its
//! current directory, and its `/proc/self` spellings made ours.

use libc::{c_int, c_long, pid_t};
use vrift_shim_core::PATH_MAX;

use crate::sys;

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for a thread that is not its
/// process's leader.
const PIDFD_THREAD: c_int = libc::O_EXCL;

/// One notification's view of the task: fds copied into the supervisor are
/// closed when it is dropped.
pub struct Task {
    pub tid: pid_t,
    pidfd: c_int,
    local: [c_int; 4],
    locals: usize,
}

impl Task {
    pub fn new(tid: pid_t) -> Task {
        Task {
            tid,
            pidfd: -1,
            local: [-1; 4],
            locals: 0,
        }
    }

    fn pidfd(&mut self) -> Result<c_int, c_int> {
        if self.pidfd < 0 {
            // SAFETY: plain syscall.
            let mut fd =
                unsafe { crate::raw_syscall!(libc::SYS_pidfd_open, self.tid, PIDFD_THREAD) };
            if fd < 0 {
                // Older kernels: a pidfd only for a process's leader (which
                // shares the fd table with its threads).
                let tgid = self.tgid().ok_or(libc::ESRCH)?;
                // SAFETY: plain syscall.
                fd = unsafe { crate::raw_syscall!(libc::SYS_pidfd_open, tgid, 0) };
            }
            if fd < 0 {
                return Err(errno());
            }
            self.pidfd = fd as c_int;
        }
        Ok(self.pidfd)
    }

    /// The thread group (process) of the task, from /proc.
    pub fn tgid(&self) -> Option<pid_t> {
        let mut path = [0u8; 40];
        let n = proc_path(&mut path, self.tid, b"/status");
        let fd = sys::openat_raw(
            libc::AT_FDCWD,
            path[..=n].as_ptr() as *const libc::c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        );
        if fd < 0 {
            return None;
        }
        let mut buf = [0u8; 1024];
        // SAFETY: fd is open, buf is writable for its length.
        let got = unsafe { crate::raw_syscall!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
        sys::close_raw(fd);
        let text = buf.get(..usize::try_from(got).ok()?)?;
        let at = text.windows(5).position(|w| w == b"Tgid:")? + 5;
        let mut v: pid_t = 0;
        let mut seen = false;
        for &c in text[at..].iter().skip_while(|c| c.is_ascii_whitespace()) {
            if !c.is_ascii_digit() {
                break;
            }
            seen = true;
            v = v.checked_mul(10)?.checked_add((c - b'0') as pid_t)?;
        }
        seen.then_some(v)
    }

    /// A copy of the task's fd `fd` in the supervisor (closed with the task).
    pub fn fd(&mut self, fd: c_int) -> Result<c_int, c_int> {
        let pidfd = self.pidfd()?;
        // SAFETY: plain syscall.
        let local = unsafe { crate::raw_syscall!(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
        if local < 0 {
            return Err(errno());
        }
        Ok(self.keep(local as c_int))
    }

    /// The task's current directory as a directory fd of ours.
    pub fn cwd(&mut self) -> Result<c_int, c_int> {
        let mut path = [0u8; 40];
        let n = proc_path(&mut path, self.tid, b"/cwd");
        let fd = sys::openat_raw(
            libc::AT_FDCWD,
            path[..=n].as_ptr() as *const libc::c_char,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(errno());
        }
        Ok(self.keep(fd))
    }

    /// The task's current directory as a path (None: gone, or too long).
    pub fn cwd_path(&self, out: &mut [u8; PATH_MAX]) -> Option<usize> {
        let mut path = [0u8; 40];
        let n = proc_path(&mut path, self.tid, b"/cwd");
        let got = sys::readlink_raw(&path[..n], out)?;
        (out.first() == Some(&b'/') && !out[..got].ends_with(b" (deleted)")).then_some(got)
    }

    /// A dirfd argument made ours: AT_FDCWD is the task's cwd.
    pub fn dirfd(&mut self, fd: c_int) -> Result<c_int, c_int> {
        if fd == libc::AT_FDCWD {
            self.cwd()
        } else {
            self.fd(fd)
        }
    }

    fn keep(&mut self, fd: c_int) -> c_int {
        if self.locals < self.local.len() {
            self.local[self.locals] = fd;
            self.locals += 1;
        }
        fd
    }

    /// Reads `out.len()` bytes at `addr`.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), c_int> {
        if out.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(libc::EFAULT);
        }
        let local = libc::iovec {
            iov_base: out.as_mut_ptr() as *mut libc::c_void,
            iov_len: out.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: out.len(),
        };
        // SAFETY: one live local iovec; the remote one is checked by the kernel.
        let n = unsafe {
            crate::raw_syscall!(
                libc::SYS_process_vm_readv,
                self.tid,
                &raw const local,
                1,
                &raw const remote,
                1,
                0
            )
        };
        if n as usize == out.len() {
            Ok(())
        } else {
            Err(libc::EFAULT)
        }
    }

    /// Writes `data` at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), c_int> {
        if data.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(libc::EFAULT);
        }
        let local = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: one live local iovec; the remote one is checked by the kernel.
        let n = unsafe {
            crate::raw_syscall!(
                libc::SYS_process_vm_writev,
                self.tid,
                &raw const local,
                1,
                &raw const remote,
                1,
                0
            )
        };
        if n as usize == data.len() {
            Ok(())
        } else {
            Err(libc::EFAULT)
        }
    }

    /// Reads the NUL-terminated string at `addr` into `out` (NUL included),
    /// page by page so a string ending just before unmapped memory reads.
    /// Returns its length.
    pub fn read_str(&self, addr: u64, out: &mut [u8; PATH_MAX + 1]) -> Result<usize, c_int> {
        if addr == 0 {
            return Err(libc::EFAULT);
        }
        let mut have = 0;
        let mut at = addr;
        while have < out.len() {
            let page_left = 4096 - (at % 4096) as usize;
            let take = page_left.min(out.len() - have);
            self.read(at, &mut out[have..have + take])?;
            if let Some(z) = out[have..have + take].iter().position(|&c| c == 0) {
                return Ok(have + z);
            }
            have += take;
            at += take as u64;
        }
        Err(libc::ENAMETOOLONG)
    }

    /// `path` (the task's spelling) as the supervisor must name it: the
    /// task's `/proc/self`, `/proc/thread-self`, `/proc/<its pid>` and
    /// `/dev/fd` are the supervisor's `/proc/self/fd/<copy>` (an fd) or
    /// `/proc/<tid>` (anything else). Returns the new length.
    pub fn localize(&mut self, path: &mut [u8; PATH_MAX + 1], len: usize) -> Result<usize, c_int> {
        let p = &path[..len];
        let (fd_part, rest_at) = if let Some(r) = p.strip_prefix(b"/dev/fd/") {
            (Some(r), len - r.len())
        } else if let Some(r) = p.strip_prefix(b"/proc/") {
            let who_len = r.iter().position(|&c| c == b'/').unwrap_or(r.len());
            let who = &r[..who_len];
            let mine = who == b"self"
                || who == b"thread-self"
                || parse(who) == Some(self.tid as u64)
                || (who.iter().all(u8::is_ascii_digit)
                    && parse(who).map(|v| v as pid_t) == self.tgid());
            if !mine {
                return Ok(len);
            }
            let after = &r[who_len..];
            let what = after.strip_prefix(b"/").unwrap_or(after);
            if let Some(r) = what.strip_prefix(b"fd/") {
                (Some(r), len - r.len())
            } else if what == b"cwd" || what.starts_with(b"cwd/") {
                let fd = self.cwd()?;
                return replace(path, len, 6 + who_len + 1 + 3, fd);
            } else {
                // Anything else of the task's /proc directory (maps, exe,
                // root, status): the same file under its thread id.
                let mut head = [0u8; 40];
                let n = proc_path(&mut head, self.tid, b"");
                let tail_at = 6 + who_len;
                return splice(path, len, tail_at, &head[..n]);
            }
        } else {
            return Ok(len);
        };
        let r = fd_part.unwrap_or_default();
        let digits = r.iter().position(|&c| c == b'/').unwrap_or(r.len());
        let Some(fd) = parse(&r[..digits]).and_then(|v| c_int::try_from(v).ok()) else {
            return Ok(len);
        };
        let local = self.fd(fd)?;
        replace(path, len, rest_at + digits, local)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        for &fd in &self.local[..self.locals] {
            // Through the shim: it forgets what it knew of the number.
            crate::fds::close(fd);
        }
        if self.pidfd >= 0 {
            sys::close_raw(self.pidfd);
        }
    }
}

/// `path[..len]` with its first `head` bytes replaced by
/// `/proc/self/fd/<fd>`.
fn replace(
    path: &mut [u8; PATH_MAX + 1],
    len: usize,
    head: usize,
    fd: c_int,
) -> Result<usize, c_int> {
    let mut prefix = [0u8; 40];
    let mut n = b"/proc/self/fd/".len();
    prefix[..n].copy_from_slice(b"/proc/self/fd/");
    n += vrift_shim_core::path::write_decimal(&mut prefix[n..], fd as u64);
    splice(path, len, head, &prefix[..n])
}

/// `path[..len]` with `path[..head]` replaced by `prefix`.
fn splice(
    path: &mut [u8; PATH_MAX + 1],
    len: usize,
    head: usize,
    prefix: &[u8],
) -> Result<usize, c_int> {
    let head = head.min(len);
    let tail = len - head;
    let new_len = prefix.len() + tail;
    if new_len > PATH_MAX {
        return Err(libc::ENAMETOOLONG);
    }
    path.copy_within(head..len, prefix.len());
    path[..prefix.len()].copy_from_slice(prefix);
    path[new_len] = 0;
    Ok(new_len)
}

/// `/proc/<tid><what>` into `out`, NUL-terminated; returns its length.
pub fn proc_path(out: &mut [u8; 40], tid: pid_t, what: &[u8]) -> usize {
    let mut n = 6;
    out[..n].copy_from_slice(b"/proc/");
    n += vrift_shim_core::path::write_decimal(&mut out[n..], tid as u64);
    let take = what.len().min(out.len() - 1 - n);
    out[n..n + take].copy_from_slice(&what[..take]);
    n += take;
    out[n] = 0;
    n
}

fn parse(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + (c - b'0') as u64)
    })
}

pub fn errno() -> c_int {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() }
}

/// A libc-convention result (-1 and errno) as the kernel's (-errno).
pub fn kernel_result(r: c_long) -> c_long {
    if r == -1 {
        -(errno() as c_long)
    } else {
        r
    }
}
