//! `syscall(2)` called directly (libuv, Go-free runtimes, some build tools):
//! every path-taking number the shim serves (reads, the write side's
//! mutations, raw directory reads, the fd calls whose bookkeeping the view
//! needs, the x86_64 numbers older than their `*at` forms, and openat2) is
//! routed through the same code as its libc wrapper; every other number
//! goes to the real `syscall()` untouched.

use libc::{c_char, c_int, c_long, c_uint};

use crate::call_real;

#[no_mangle]
pub extern "C" fn vrift_syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    match n {
        libc::SYS_statx => crate::stat::statx(
            a1 as c_int,
            a2 as *const c_char,
            a3 as c_int,
            a4 as c_uint,
            a5 as *mut libc::statx,
        ) as c_long,
        libc::SYS_newfstatat => crate::stat::fstatat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as *mut libc::stat,
            a4 as c_int,
        ) as c_long,
        libc::SYS_openat => crate::open::vrift_openat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as c_int,
            a4 as c_uint,
            2,
        ) as c_long,
        libc::SYS_readlinkat => crate::fds::readlinkat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as *mut c_char,
            a4 as libc::size_t,
        ) as c_long,
        libc::SYS_faccessat => {
            crate::stat::faccessat(a1 as c_int, a2 as *const c_char, a3 as c_int, 0) as c_long
        }
        libc::SYS_close => crate::fds::close(a1 as c_int) as c_long,
        libc::SYS_getdents64 => crate::dir::getdents(
            a1 as c_int,
            a2 as *mut u8,
            a3 as c_uint as usize,
            crate::dir::Dents::V64,
        ) as c_long,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_getdents => crate::dir::getdents(
            a1 as c_int,
            a2 as *mut u8,
            a3 as c_uint as usize,
            crate::dir::Dents::Old,
        ) as c_long,
        libc::SYS_unlinkat => {
            crate::write::unlinkat(a1 as c_int, a2 as *const c_char, a3 as c_int) as c_long
        }
        libc::SYS_unlink => crate::write::unlink(a1 as *const c_char) as c_long,
        libc::SYS_rmdir => crate::write::rmdir(a1 as *const c_char) as c_long,
        libc::SYS_mkdirat => {
            crate::write::mkdirat(a1 as c_int, a2 as *const c_char, a3 as libc::mode_t) as c_long
        }
        libc::SYS_mkdir => crate::write::mkdir(a1 as *const c_char, a2 as libc::mode_t) as c_long,
        libc::SYS_mknodat => crate::special::mknodat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as libc::mode_t,
            a4 as libc::dev_t,
        ) as c_long,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mknod => {
            crate::special::mknod(a1 as *const c_char, a2 as libc::mode_t, a3 as libc::dev_t)
                as c_long
        }
        libc::SYS_renameat2 => crate::write::renameat2(
            a1 as c_int,
            a2 as *const c_char,
            a3 as c_int,
            a4 as *const c_char,
            a5 as c_uint,
        ) as c_long,
        libc::SYS_renameat => crate::write::renameat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as c_int,
            a4 as *const c_char,
        ) as c_long,
        libc::SYS_rename => {
            crate::write::rename(a1 as *const c_char, a2 as *const c_char) as c_long
        }
        libc::SYS_symlinkat => {
            crate::write::symlinkat(a1 as *const c_char, a2 as c_int, a3 as *const c_char) as c_long
        }
        libc::SYS_linkat => crate::write::linkat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as c_int,
            a4 as *const c_char,
            a5 as c_int,
        ) as c_long,
        libc::SYS_fchmodat => {
            crate::write::fchmodat(a1 as c_int, a2 as *const c_char, a3 as libc::mode_t, 0)
                as c_long
        }
        libc::SYS_fchownat => crate::write::fchownat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as libc::uid_t,
            a4 as libc::gid_t,
            a5 as c_int,
        ) as c_long,
        libc::SYS_utimensat => crate::write::utimensat(
            a1 as c_int,
            a2 as *const c_char,
            a3 as *const libc::timespec,
            a4 as c_int,
        ) as c_long,
        libc::SYS_truncate => {
            crate::write::truncate(a1 as *const c_char, a2 as libc::off_t) as c_long
        }
        libc::SYS_fchmodat2 => crate::write::fchmodat2(
            a1 as c_int,
            a2 as *const c_char,
            a3 as libc::mode_t,
            a4 as c_int,
        ) as c_long,
        libc::SYS_faccessat2 => {
            crate::stat::faccessat(a1 as c_int, a2 as *const c_char, a3 as c_int, a4 as c_int)
                as c_long
        }
        libc::SYS_fchmod => crate::write::fchmod(a1 as c_int, a2 as libc::mode_t) as c_long,
        libc::SYS_fchown => {
            crate::write::fchown(a1 as c_int, a2 as libc::uid_t, a3 as libc::gid_t) as c_long
        }
        libc::SYS_chdir => crate::fds::chdir(a1 as *const c_char) as c_long,
        libc::SYS_fchdir => crate::fds::fchdir(a1 as c_int) as c_long,
        libc::SYS_dup => crate::fds::dup(a1 as c_int) as c_long,
        libc::SYS_dup3 => crate::fds::dup3(a1 as c_int, a2 as c_int, a3 as c_int) as c_long,
        libc::SYS_fstat => {
            let empty = c"".as_ptr();
            crate::stat::fstatat(
                a1 as c_int,
                empty,
                a2 as *mut libc::stat,
                libc::AT_EMPTY_PATH,
            ) as c_long
        }
        libc::SYS_openat2 => openat2(a1 as c_int, a2 as *const c_char, a3 as *const OpenHow, a4),
        #[cfg(target_arch = "x86_64")]
        n if legacy(n) => legacy_call(n, a1, a2, a3),
        _ => real(n, a1, a2, a3, a4, a5, a6),
    }
}

fn real(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    call_real!(SYSCALL(n, a1, a2, a3, a4, a5, a6) or crate::real::fail(libc::ENOSYS) as c_long)
}

/// `struct open_how` of openat2(2).
#[repr(C)]
pub struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `RESOLVE_*` flags that only narrow how the kernel may walk a path (a
/// walk the view does itself, inside the project): served as openat.
/// `RESOLVE_BENEATH`, `RESOLVE_IN_ROOT` and `RESOLVE_NO_SYMLINKS` change
/// what a path names, so those calls go to the kernel as they are.
const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_CACHED: u64 = 0x20;

/// openat2 as openat, where its `open_how` allows.
fn openat2(dirfd: c_int, path: *const c_char, how: *const OpenHow, size: c_long) -> c_long {
    let raw = || {
        real(
            libc::SYS_openat2,
            dirfd as c_long,
            path as c_long,
            how as c_long,
            size,
            0,
            0,
        )
    };
    if crate::sys::unreadable(how) || (size as usize) < core::mem::size_of::<OpenHow>() {
        return raw();
    }
    // SAFETY: a readable open_how (the caller's contract, checked above).
    let how = unsafe { &*how };
    if how.resolve & !(RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED) != 0
        || how.flags > u32::MAX as u64
        || how.mode > 0o7777
    {
        return raw();
    }
    crate::open::vrift_openat(dirfd, path, how.flags as c_int, how.mode as c_uint, 2) as c_long
}

/// The x86_64 numbers older than their `*at` forms.
#[cfg(target_arch = "x86_64")]
fn legacy(n: c_long) -> bool {
    matches!(
        n,
        libc::SYS_open
            | libc::SYS_creat
            | libc::SYS_stat
            | libc::SYS_lstat
            | libc::SYS_access
            | libc::SYS_readlink
            | libc::SYS_symlink
            | libc::SYS_link
            | libc::SYS_chmod
            | libc::SYS_chown
            | libc::SYS_lchown
            | libc::SYS_utimes
            | libc::SYS_utime
            | libc::SYS_futimesat
            | libc::SYS_dup2
    )
}

#[cfg(target_arch = "x86_64")]
fn legacy_call(n: c_long, a1: c_long, a2: c_long, a3: c_long) -> c_long {
    let p1 = a1 as *const c_char;
    match n {
        libc::SYS_open => {
            crate::open::vrift_openat(libc::AT_FDCWD, p1, a2 as c_int, a3 as c_uint, 0) as c_long
        }
        libc::SYS_creat => crate::open::vrift_openat(
            libc::AT_FDCWD,
            p1,
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
            a2 as c_uint,
            0,
        ) as c_long,
        libc::SYS_stat => {
            crate::stat::fstatat(libc::AT_FDCWD, p1, a2 as *mut libc::stat, 0) as c_long
        }
        libc::SYS_lstat => crate::stat::fstatat(
            libc::AT_FDCWD,
            p1,
            a2 as *mut libc::stat,
            libc::AT_SYMLINK_NOFOLLOW,
        ) as c_long,
        libc::SYS_access => crate::stat::faccessat(libc::AT_FDCWD, p1, a2 as c_int, 0) as c_long,
        libc::SYS_readlink => {
            crate::fds::readlink(p1, a2 as *mut c_char, a3 as libc::size_t) as c_long
        }
        libc::SYS_symlink => crate::write::symlink(p1, a2 as *const c_char) as c_long,
        libc::SYS_link => crate::write::link(p1, a2 as *const c_char) as c_long,
        libc::SYS_chmod => crate::write::chmod(p1, a2 as libc::mode_t) as c_long,
        libc::SYS_chown => crate::write::chown(p1, a2 as libc::uid_t, a3 as libc::gid_t) as c_long,
        libc::SYS_lchown => {
            crate::write::lchown(p1, a2 as libc::uid_t, a3 as libc::gid_t) as c_long
        }
        libc::SYS_utimes => crate::write::utimes(p1, a2 as *const libc::timeval) as c_long,
        libc::SYS_utime => crate::write::utime(p1, a2 as *const libc::utimbuf) as c_long,
        libc::SYS_futimesat => {
            crate::write::futimesat(a1 as c_int, a2 as *const c_char, a3 as *const libc::timeval)
                as c_long
        }
        libc::SYS_dup2 => crate::fds::dup2(a1 as c_int, a2 as c_int) as c_long,
        _ => unreachable!("legacy() lists the numbers served here"),
    }
}
