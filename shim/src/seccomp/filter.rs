//! The seccomp filter a program that cannot load the shim runs under: every
//! system call that names a path (or acts on an fd whose view the kernel
//! does not know) is sent to the supervisor (`SECCOMP_RET_USER_NOTIF`);
//! everything else runs at full speed. The filter's verdict for a number
//! depends on the number alone (except `ioctl`), so the kernel caches
//! "allow" for the others and never runs the program for them.

use libc::{c_long, sock_filter};

/// x86_64's `AUDIT_ARCH_X86_64`.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xc000_003e;
/// aarch64's `AUDIT_ARCH_AARCH64`.
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xc000_00b7;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// The numbers the supervisor serves (see `serve::dispatch`).
#[cfg(target_arch = "x86_64")]
pub const SERVED: &[c_long] = &[
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getdents,
    libc::SYS_getdents64,
    libc::SYS_chdir,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmod,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_fchownat,
    libc::SYS_fchown,
    libc::SYS_truncate,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_futimesat,
    libc::SYS_utimensat,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
];

/// `fchmodat2` (Linux 6.6), not yet in every libc crate.
#[cfg(target_arch = "x86_64")]
pub const SYS_FCHMODAT2: c_long = 452;

/// The ioctls that change a file in place (flags, project attributes).
pub const SETTING_IOCTLS: &[u32] = &[
    0x4008_6602, // FS_IOC_SETFLAGS
    0x4004_6602, // FS_IOC32_SETFLAGS
    0x401c_5820, // FS_IOC_FSSETXATTR
];

/// Room for the whole program: a check per served number, the ioctl
/// arguments, the prologue and the verdicts.
pub const MAX_LEN: usize = 128;

const LD_W_ABS: u16 = 0x20;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG1_LOW: u32 = 16 + 8; // args[1], little-endian low word

/// Writes the program into `out`, returns its length.
pub fn build(out: &mut [sock_filter; MAX_LEN]) -> usize {
    let mut n = 0;
    let mut push = |f: sock_filter| {
        out[n] = f;
        n += 1;
    };
    // Another ABI (i386's int 0x80, x32) could name the same calls under
    // other numbers: refused rather than let through unserved.
    push(stmt(LD_W_ABS, ARCH));
    push(jump(JMP_JEQ_K, NATIVE_ARCH, 1, 0));
    push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    push(stmt(LD_W_ABS, NR));
    #[cfg(target_arch = "x86_64")]
    {
        push(jump(JMP_JGE_K, 0x4000_0000, 0, 1)); // __X32_SYSCALL_BIT
        push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    }
    // io_uring would do every file operation without a system call the
    // filter sees: programs fall back to plain calls on ENOSYS.
    push(jump(JMP_JEQ_K, libc::SYS_io_uring_setup as u32, 0, 1));
    push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    let served = SERVED.len() + 1;
    // Each check jumps to the shared USER_NOTIF verdict after the list.
    for (i, &nr) in SERVED.iter().chain(&[SYS_FCHMODAT2]).enumerate() {
        // Past the rest of the list, the ioctl test, ALLOW, the argument
        // load, the request tests and ALLOW.
        let to_notify = (served - 1 - i + 4 + SETTING_IOCTLS.len()) as u8;
        push(jump(JMP_JEQ_K, nr as u32, to_notify, 0));
    }
    // ioctl: only the setting requests.
    push(jump(JMP_JEQ_K, libc::SYS_ioctl as u32, 1, 0));
    push(stmt(RET_K, RET_ALLOW));
    push(stmt(LD_W_ABS, ARG1_LOW));
    for (i, &req) in SETTING_IOCTLS.iter().enumerate() {
        let to_notify = (SETTING_IOCTLS.len() - i - 1) as u8 + 1;
        push(jump(JMP_JEQ_K, req, to_notify, 0));
    }
    push(stmt(RET_K, RET_ALLOW));
    push(stmt(RET_K, RET_USER_NOTIF));
    n
}
