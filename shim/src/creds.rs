//! Credential changes: `setuid` and its family (and `capset`) keep the
//! process's way to the rift's daemon.
//!
//! The daemon's socket lies in a directory only the daemon's user may
//! enter. A process of the view that drops its privileges (a test harness,
//! a build leaving root, `setpriv` inside a script) could reach it no more,
//! and every write would fail with EIO. Before each change of credentials
//! the library takes a handle on the socket while it still may
//! ([`client::keep_way_to_daemon`], once per process); the daemon then
//! checks every request of the new credentials as the kernel would. The
//! change itself is the real function's, unchanged (glibc applies it to
//! every thread).
//!
//! `syscall(SYS_setuid, …)` and its family (one thread's credentials) take
//! the handle too (`syscall.rs`); a change made by a raw instruction, which
//! no preloaded library sees, is not: that process's writes then fail with
//! EIO and one line.

use libc::{c_int, c_void, gid_t, size_t, uid_t};

use crate::{call_real, client, state};

/// Takes the handle if the process is in the view, and marks it: its
/// lookups of rift entries check search permission from now on (the
/// directories are physical: one `faccessat2` of the parent, see
/// `resolve`), and an open of a blob its new credentials cannot reach in
/// the private store asks the daemon (`client::open_read`).
pub fn before_change() {
    if state::ready() {
        state::note_creds_change();
        state::set_table_fd_source(client::table_fd);
        client::keep_way_to_daemon();
    }
}

macro_rules! credential_change {
    ($( $name:ident / $real:ident ( $($arg:ident : $ty:ty),* ) or $fallback:expr; )*) => {$(
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> c_int {
            before_change();
            call_real!($real($($arg),*) or {
                // dlsym failed: the system call (this thread only).
                // SAFETY: the caller's arguments, passed through.
                unsafe { $fallback as c_int }
            })
        }
    )*};
}

const KEEP: u64 = u32::MAX as u64;

credential_change! {
    setuid / SETUID(uid: uid_t) or crate::raw_syscall!(libc::SYS_setuid, uid);
    seteuid / SETEUID(uid: uid_t) or crate::raw_syscall!(libc::SYS_setresuid, KEEP, uid, KEEP);
    setreuid / SETREUID(ruid: uid_t, euid: uid_t) or crate::raw_syscall!(libc::SYS_setreuid, ruid, euid);
    setresuid / SETRESUID(ruid: uid_t, euid: uid_t, suid: uid_t)
        or crate::raw_syscall!(libc::SYS_setresuid, ruid, euid, suid);
    setfsuid / SETFSUID(uid: uid_t) or crate::raw_syscall!(libc::SYS_setfsuid, uid);
    setgid / SETGID(gid: gid_t) or crate::raw_syscall!(libc::SYS_setgid, gid);
    setegid / SETEGID(gid: gid_t) or crate::raw_syscall!(libc::SYS_setresgid, KEEP, gid, KEEP);
    setregid / SETREGID(rgid: gid_t, egid: gid_t) or crate::raw_syscall!(libc::SYS_setregid, rgid, egid);
    setresgid / SETRESGID(rgid: gid_t, egid: gid_t, sgid: gid_t)
        or crate::raw_syscall!(libc::SYS_setresgid, rgid, egid, sgid);
    setfsgid / SETFSGID(gid: gid_t) or crate::raw_syscall!(libc::SYS_setfsgid, gid);
    setgroups / SETGROUPS(size: size_t, list: *const gid_t)
        or crate::raw_syscall!(libc::SYS_setgroups, size, list);
    // Dropping a capability (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) is
    // a change of what the kernel lets the process reach.
    capset / CAPSET(hdr: *mut c_void, data: *const c_void)
        or crate::raw_syscall!(libc::SYS_capset, hdr, data);
}
