//! Special files in the view: `mknod`/`mkfifo` in the domain make FIFOs and
//! device nodes as rift entries ([`vrift_format::Kind::Special`]: the
//! daemon makes the kernel node in `<cas>/nodes/`), and a Unix socket bound
//! at a path of the view is bound at a node the daemon names, so `connect`
//! to that path reaches it. Nothing is made on the project's disk. Opening
//! such an entry opens its node (`open::open_special`).
//!
//! Not served: `sendto`/`sendmsg` to a datagram socket by its view path,
//! and `getsockname`/`getpeername`/`accept` report the node's path, not the
//! view's (README, "Special files").

use libc::{c_char, c_int, dev_t, mode_t, sockaddr, socklen_t};
use vrift_format::proto::Op;
use vrift_format::Kind;

use crate::client;
use crate::real::fail;
use crate::resolve::{resolve, PathBuf, View};
use crate::write::{route, Route};
use crate::{call_real, sys};

#[no_mangle]
pub extern "C" fn mknod(path: *const c_char, mode: mode_t, dev: dev_t) -> c_int {
    mknodat(libc::AT_FDCWD, path, mode, dev)
}

#[no_mangle]
pub extern "C" fn mkfifo(path: *const c_char, mode: mode_t) -> c_int {
    mknodat(libc::AT_FDCWD, path, mode | libc::S_IFIFO, 0)
}

#[no_mangle]
pub extern "C" fn mkfifoat(dirfd: c_int, path: *const c_char, mode: mode_t) -> c_int {
    mknodat(dirfd, path, mode | libc::S_IFIFO, 0)
}

/// glibc before 2.33 compiled `mknod` into calls of `__xmknod`.
#[no_mangle]
pub extern "C" fn __xmknod(
    _ver: c_int,
    path: *const c_char,
    mode: mode_t,
    dev: *const dev_t,
) -> c_int {
    __xmknodat(_ver, libc::AT_FDCWD, path, mode, dev)
}

#[no_mangle]
pub extern "C" fn __xmknodat(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    mode: mode_t,
    dev: *const dev_t,
) -> c_int {
    if dev.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: a dev_t the caller passed by pointer (checked non-null).
    mknodat(dirfd, path, mode, unsafe { *dev })
}

#[no_mangle]
pub extern "C" fn mknodat(dirfd: c_int, path: *const c_char, mode: mode_t, dev: dev_t) -> c_int {
    let real = || {
        call_real!(MKNODAT(dirfd, path, mode, dev)
            or raw4(libc::SYS_mknodat, dirfd as usize, path as usize, mode as usize, dev as usize))
    };
    let ty = mode & libc::S_IFMT;
    let makes = matches!(
        ty,
        0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK
    );
    if makes && names_with_slash(path) {
        return slash_named(dirfd, path, real);
    }
    match ty {
        // A regular file: what open(O_CREAT|O_EXCL) makes, in the view too.
        0 | libc::S_IFREG => {
            let fd = crate::open::vrift_openat(
                dirfd,
                path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                mode & 0o7777,
                crate::open::W_OPENAT,
            );
            if fd < 0 {
                return -1;
            }
            let _ = crate::fds::close(fd);
            0
        }
        libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => {
            let mut buf = PathBuf::new();
            match route(dirfd, path, false, &mut buf) {
                Route::Real => real(),
                Route::RealAt => {
                    let abs = buf.c_ptr();
                    call_real!(MKNODAT(libc::AT_FDCWD, abs, mode, dev)
                        or raw4(libc::SYS_mknodat, libc::AT_FDCWD as usize, abs as usize, mode as usize, dev as usize))
                }
                Route::Fail(e) => fail(e),
                Route::Rift => {
                    let type_and_mode = (mode & libc::S_IFMT) | crate::write::masked(mode) as u32;
                    let ans = client::call(Op::Mknod, type_and_mode as u64, dev, buf.rel(), b"");
                    close_received(&ans);
                    if ans.pass {
                        // On a filesystem mounted below the project.
                        return real();
                    }
                    match ans.errno {
                        0 => 0,
                        e => fail(e),
                    }
                }
            }
        }
        // Anything else (a directory, no type at all): the kernel's EINVAL
        // or EPERM, decided before it looks at the path.
        _ => real(),
    }
}

/// Whether `path` (readable, else false: the kernel's EFAULT comes from
/// the call) ends with a slash after a name.
fn names_with_slash(path: *const c_char) -> bool {
    // SAFETY: readable (checked first), NUL-terminated by the libc contract.
    !sys::unreadable(path)
        && vrift_shim_core::path::ends_with_slash(
            unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes(),
        )
}

/// `mknod("name/")`: the kernel makes nothing, and says EEXIST if
/// something is there, else ENOENT. In the domain the normalized path has
/// lost the slash, so the view answers; elsewhere the kernel does.
#[cold]
#[inline(never)]
fn slash_named(dirfd: c_int, path: *const c_char, real: impl Fn() -> c_int) -> c_int {
    let mut buf = PathBuf::new();
    match route(dirfd, path, false, &mut buf) {
        Route::Real => real(),
        // A rift file named `file/`: there (the walk's ENOTDIR is the
        // kernel's answer only where the slash is not the last one).
        Route::Fail(e) if e != libc::ENOTDIR || buf.walk_error != libc::ENOTDIR => fail(e),
        Route::Fail(_) | Route::RealAt | Route::Rift => {
            // SAFETY: all-zero is a valid stat.
            let mut st: libc::stat = unsafe { core::mem::zeroed() };
            let there = crate::stat::fstatat(
                libc::AT_FDCWD,
                buf.c_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0;
            fail(if there { libc::EEXIST } else { libc::ENOENT })
        }
    }
}

fn close_received(ans: &client::Answer) {
    if ans.fd >= 0 {
        sys::close_raw(ans.fd);
    }
}

fn raw4(nr: libc::c_long, a: usize, b: usize, c: usize, d: usize) -> c_int {
    // SAFETY: the caller's arguments, passed through to the kernel unchanged.
    unsafe { crate::raw_syscall!(nr, a, b, c, d) as c_int }
}

// ---- Unix sockets by path ---------------------------------------------------------

/// Offset of `sun_path` in `sockaddr_un`.
const SUN_PATH_AT: usize = 2;
/// Size of `sun_path`.
const SUN_PATH_MAX: usize = 108;

/// The path of a `sockaddr_un` naming a file (not abstract, not unnamed),
/// NUL-terminated in `out`; None for anything else.
fn unix_path(
    addr: *const sockaddr,
    len: socklen_t,
    out: &mut [u8; SUN_PATH_MAX + 1],
) -> Option<usize> {
    let len = len as usize;
    if addr.is_null() || len <= SUN_PATH_AT || len > core::mem::size_of::<libc::sockaddr_un>() {
        return None;
    }
    // SAFETY: `len` bytes at `addr` are the caller's address (the kernel
    // reads as many); at least the family is there.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    if u16::from_ne_bytes([bytes[0], bytes[1]]) != libc::AF_UNIX as u16 || bytes[SUN_PATH_AT] == 0 {
        return None;
    }
    let path = &bytes[SUN_PATH_AT..];
    let n = path.iter().position(|&c| c == 0).unwrap_or(path.len());
    out[..n].copy_from_slice(&path[..n]);
    out[n] = 0;
    Some(n)
}

/// A `sockaddr_un` naming `path` (the node of a socket in the view).
fn node_addr(path: &[u8], addr: &mut libc::sockaddr_un) -> Option<socklen_t> {
    if path.len() >= SUN_PATH_MAX {
        return None;
    }
    // SAFETY: all-zero is a valid sockaddr_un.
    *addr = unsafe { core::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &s) in addr.sun_path.iter_mut().zip(path) {
        *d = s as c_char;
    }
    Some((SUN_PATH_AT + path.len() + 1) as socklen_t)
}

#[no_mangle]
pub extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let real = |a: *const sockaddr, l: socklen_t| call_real!(BIND(fd, a, l) or raw4(libc::SYS_bind, fd as usize, a as usize, l as usize, 0));
    let mut path = [0u8; SUN_PATH_MAX + 1];
    if !crate::state::ready() || unix_path(addr, len, &mut path).is_none() {
        return real(addr, len);
    }
    let mut buf = PathBuf::new();
    match route(
        libc::AT_FDCWD,
        path.as_ptr() as *const c_char,
        false,
        &mut buf,
    ) {
        Route::Real => real(addr, len),
        Route::RealAt => {
            let mut sun = zeroed_un();
            match node_addr(buf.abs(), &mut sun) {
                Some(l) => real(&sun as *const _ as *const sockaddr, l),
                None => fail(libc::ENAMETOOLONG),
            }
        }
        Route::Fail(e) => fail(e),
        Route::Rift => bind_in_view(&mut buf, addr, len, real),
    }
}

fn zeroed_un() -> libc::sockaddr_un {
    // SAFETY: all-zero is a valid sockaddr_un.
    unsafe { core::mem::zeroed() }
}

/// Binds `fd` at a node the daemon names for the view path in `buf`; the
/// entry goes again if the bind fails.
#[cold]
#[inline(never)]
fn bind_in_view(
    buf: &mut PathBuf,
    addr: *const sockaddr,
    len: socklen_t,
    real: impl Fn(*const sockaddr, socklen_t) -> c_int,
) -> c_int {
    // The kernel makes a socket's inode 0777 less the umask.
    let mode = libc::S_IFSOCK | crate::write::masked(0o777) as u32;
    let ans = client::call(Op::Mknod, mode as u64, 0, buf.rel(), b"");
    close_received(&ans);
    if ans.pass {
        // On a filesystem mounted below the project: the kernel binds there.
        return real(addr, len);
    }
    match ans.errno {
        0 => {}
        libc::EEXIST => return fail(libc::EADDRINUSE),
        e => return fail(e),
    }
    let mut node = PathBuf::new();
    let mut sun = zeroed_un();
    let bound = match crate::resolve::node_path(ans.data(), &mut node)
        .then(|| node_addr(node.abs(), &mut sun))
        .flatten()
    {
        Some(l) => real(&sun as *const _ as *const sockaddr, l),
        None => fail(libc::ENAMETOOLONG),
    };
    if bound != 0 {
        // SAFETY: errno is thread-local.
        let e = unsafe { *libc::__errno_location() };
        let undo = client::call(Op::Unlink, 0, 0, buf.rel(), b"");
        close_received(&undo);
        return fail(e);
    }
    0
}

#[no_mangle]
pub extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let real = |a: *const sockaddr, l: socklen_t| call_real!(CONNECT(fd, a, l) or raw4(libc::SYS_connect, fd as usize, a as usize, l as usize, 0));
    let mut path = [0u8; SUN_PATH_MAX + 1];
    let Some(n) = (if crate::state::ready() {
        unix_path(addr, len, &mut path)
    } else {
        None
    }) else {
        return real(addr, len);
    };
    let mut buf = PathBuf::new();
    let mut sun = zeroed_un();
    match resolve(libc::AT_FDCWD, &path[..n], true, &mut buf) {
        (View::Entry { header, target }, _) if header.kind == Kind::Special => {
            if header.mode & libc::S_IFMT != libc::S_IFSOCK {
                return fail(libc::ECONNREFUSED); // as the kernel, for a FIFO
            }
            let mut node = PathBuf::new();
            match crate::resolve::node_path(target, &mut node)
                .then(|| node_addr(node.abs(), &mut sun))
                .flatten()
            {
                Some(l) => real(&sun as *const _ as *const sockaddr, l),
                None => fail(libc::ENAMETOOLONG),
            }
        }
        (View::Entry { .. }, _) => fail(libc::ECONNREFUSED),
        (View::Error(e), Some(_)) => fail(e),
        (View::Disk { rewritten: true }, _) => match node_addr(buf.abs(), &mut sun) {
            Some(l) => real(&sun as *const _ as *const sockaddr, l),
            None => fail(libc::ENAMETOOLONG),
        },
        _ => real(addr, len),
    }
}
