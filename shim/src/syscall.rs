//! `syscall(2)` called directly (libuv, Go-free runtimes, some build tools):
//! the path-taking numbers the shim serves (reads and the write side's
//! mutations, and raw directory reads: getdents64/getdents) are routed
//! through the same code as their libc wrappers;
//! every other number goes to the real `syscall()` untouched.

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
        _ => {
            call_real!(SYSCALL(n, a1, a2, a3, a4, a5, a6) or crate::real::fail(libc::ENOSYS) as c_long)
        }
    }
}
