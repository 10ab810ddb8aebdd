//! `syscall(2)` called directly (libuv, Go-free runtimes, some build tools):
//! the path-taking numbers the read side serves are routed through the same
//! code as their libc wrappers; every other number goes to the real
//! `syscall()` untouched.

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
        _ => {
            call_real!(SYSCALL(n, a1, a2, a3, a4, a5, a6) or crate::real::fail(libc::ENOSYS) as c_long)
        }
    }
}
