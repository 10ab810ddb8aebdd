//! Raw system calls for the shim's own needs. They bypass libc (and so the
//! shim's own interposed functions) and never allocate.

use core::ffi::CStr;

use vrift_shim_core::PATH_MAX;

/// A NUL-terminated copy of `path` on the stack.
pub struct CPath {
    /// Only `path` and its NUL are written: zeroing 4 KiB would cost more
    /// than the syscall the path is for.
    buf: core::mem::MaybeUninit<[u8; PATH_MAX + 1]>,
}

impl CPath {
    pub fn new(path: &[u8]) -> Option<CPath> {
        if path.len() > PATH_MAX || path.contains(&0) {
            return None;
        }
        let mut buf = core::mem::MaybeUninit::<[u8; PATH_MAX + 1]>::uninit();
        let p = buf.as_mut_ptr() as *mut u8;
        // SAFETY: path.len() + 1 <= PATH_MAX + 1 bytes of the buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(path.as_ptr(), p, path.len());
            *p.add(path.len()) = 0;
        }
        Some(CPath { buf })
    }

    pub fn as_ptr(&self) -> *const libc::c_char {
        self.buf.as_ptr() as *const libc::c_char
    }
}

/// Whether a pointer a caller passed as a string cannot be read: null, in
/// the first 64 KiB (below `vm.mmap_min_addr`, never mapped), at or past
/// the top of the user half of the address space, or in a page that is
/// not mapped readable (LTP's `tst_get_bad_addr`: a `PROT_NONE` page), on
/// any page up to the string's NUL. Such a call goes to libc unread, and
/// the kernel answers it with EFAULT, as without the shim; reading it here
/// would crash the caller instead. Costs a cache probe and a `strnlen`
/// within the first page for a readable string (see [`page_readable`]).
#[inline(always)]
pub fn unreadable<T>(p: *const T) -> bool {
    let a = p as usize;
    !(0x1_0000..USER_TOP).contains(&a) || !string_readable(a)
}

/// Whether `gid` is the process's effective group or one of its
/// supplementary groups (the kernel's `in_group_p`).
pub fn in_group(gid: u32) -> bool {
    // SAFETY: getegid cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    let mut groups = [0 as libc::gid_t; 256];
    // SAFETY: `groups` holds 256 entries.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    n > 0 && groups[..n as usize].contains(&gid)
}

/// Capability numbers (linux/capability.h) the view's checks consult.
pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_FSETID: u32 = 4;

/// The calling thread's id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { crate::raw_syscall!(libc::SYS_gettid) as u32 }
}

/// Whether the calling thread has capability `cap` in its effective set
/// (`permitted`: in its permitted set, as `access()` for root reads it),
/// through capget (version 3: two 32-bit words). Asked only where the
/// mode bits refuse, as the kernel's `capable()`.
pub fn has_cap(cap: u32, permitted: bool) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget of this thread into our two-word buffer.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr()
        )
    };
    if r != 0 || cap >= 64 {
        return false;
    }
    let word = data[(cap / 32) as usize];
    let set = if permitted {
        word.permitted
    } else {
        word.effective
    };
    set & (1 << (cap % 32)) != 0
}

/// This process's limit of `resource` (prlimit64, no libc call: it may
/// run before libc's symbols are resolved).
pub fn rlimit(resource: libc::__rlimit_resource_t) -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 on this process, reading into our struct.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_prlimit64,
            0,
            resource,
            core::ptr::null::<libc::rlimit>(),
            &mut lim as *mut libc::rlimit
        )
    };
    (r == 0).then_some(lim)
}

/// Whether `n` bytes at `p` (a small struct: at most two pages) could be
/// read by the kernel: an unreadable one is EFAULT, never a crash.
pub fn bytes_readable<T>(p: *const T, n: usize) -> bool {
    let a = p as usize;
    n > 0
        && (0x1_0000..USER_TOP).contains(&a)
        && a.checked_add(n).is_some_and(|end| end <= USER_TOP)
        && page_readable(a / PAGE)
        && page_readable((a + n - 1) / PAGE)
}

/// The string at `p` if the kernel could read it (see [`unreadable`]),
/// scanned once: for the hot paths that read it right after the check.
#[inline(always)]
pub fn readable_c_str<'a>(p: *const libc::c_char) -> Option<&'a [u8]> {
    let a = p as usize;
    if !(0x1_0000..USER_TOP).contains(&a) || !page_readable(a / PAGE) {
        return None;
    }
    let rem = PAGE - a % PAGE;
    // SAFETY: as in string_readable: [a, a + rem) is one readable page.
    let n = unsafe { libc::strnlen(p, rem) };
    if n < rem {
        // SAFETY: n bytes before the NUL, in the readable page; the
        // caller's string lives for the call.
        return Some(unsafe { core::slice::from_raw_parts(p as *const u8, n) });
    }
    if !rest_readable(a + rem) {
        return None;
    }
    // SAFETY: readable up to its NUL (checked above).
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Granule of the readable-page cache (a divisor of every page size).
pub const PAGE: usize = 4096;
/// Slots of the readable-page cache (direct-mapped by page number).
const SLOTS: usize = 64;
/// Pages known readable: page numbers, 0 for an empty slot. Filled by
/// [`probe_page`]; emptied when the program unmaps or protects memory
/// through libc ([`forget_readable_pages`], from `munmap` and `mprotect`;
/// not from glibc's own internal calls, nor `mremap`: a program that
/// passes a pointer into memory it freed may still crash). Lock-free: a
/// slot is one word.
static READABLE: [core::sync::atomic::AtomicUsize; SLOTS] =
    [const { core::sync::atomic::AtomicUsize::new(0) }; SLOTS];

#[inline(always)]
fn string_readable(a: usize) -> bool {
    if !page_readable(a / PAGE) {
        return false;
    }
    let rem = PAGE - a % PAGE;
    // SAFETY: [a, a + rem) lies in one readable page; glibc's strnlen reads
    // aligned words that never cross past the page of its last byte.
    let n = unsafe { libc::strnlen(a as *const libc::c_char, rem) };
    n < rem || rest_readable(a + rem)
}

/// A string that goes on past its first page: every page up to its NUL
/// must be readable too. Longer than PATH_MAX: left to the kernel as well
/// (ENAMETOOLONG), the shim never reads it.
#[cold]
#[inline(never)]
fn rest_readable(mut a: usize) -> bool {
    for _ in 0..=PATH_MAX / PAGE {
        if a >= USER_TOP || !page_readable(a / PAGE) {
            return false;
        }
        // SAFETY: as in string_readable: one readable page.
        if unsafe { libc::strnlen(a as *const libc::c_char, PAGE) } < PAGE {
            return true;
        }
        a += PAGE;
    }
    false
}

#[inline(always)]
fn page_readable(page: usize) -> bool {
    let slot = &READABLE[(page ^ (page >> 6)) % SLOTS];
    slot.load(core::sync::atomic::Ordering::Relaxed) == page || probe_page(page, slot)
}

/// Asks the kernel whether `page` is readable: `rt_sigprocmask` copies
/// the new mask from user memory before it looks at `how`, so with an
/// invalid `how` it changes nothing and answers EFAULT for an unreadable
/// page, EINVAL for a readable one. errno is kept.
#[cold]
#[inline(never)]
fn probe_page(page: usize, slot: &core::sync::atomic::AtomicUsize) -> bool {
    // SAFETY: errno is thread-local.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel reads 8 bytes at the page's start, fault-safely.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_rt_sigprocmask,
            -1i32 as isize,
            page * PAGE,
            0usize,
            8usize
        )
    };
    // SAFETY: errno is thread-local.
    let readable = r < 0 && unsafe { *libc::__errno_location() } == libc::EINVAL;
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
    if readable {
        slot.store(page, core::sync::atomic::Ordering::Relaxed);
    }
    readable
}

/// `getrandom`'s flag (Linux 5.6) that never blocks.
const GRND_INSECURE: u32 = 4;

/// Whether `n` bytes at `ptr` can be written: one byte of each page they
/// touch is written by the kernel (`getrandom`), which answers EFAULT
/// rather than fault; the caller then overwrites them. For an out-buffer a
/// bad pointer must give EFAULT, never a crash (readlink03).
pub fn writable(ptr: *mut u8, n: usize) -> bool {
    if n == 0 {
        return true;
    }
    let (start, end) = (ptr as usize, (ptr as usize).saturating_add(n - 1));
    let mut at = start;
    loop {
        // SAFETY: the kernel checks the address; it writes at most 1 byte
        // (GRND_INSECURE: never blocks, even before the pool is ready).
        let r = unsafe { crate::raw_syscall!(libc::SYS_getrandom, at, 1, GRND_INSECURE) };
        if r != 1 {
            // Only EFAULT says "not writable" (an old kernel without
            // GRND_INSECURE says EINVAL: the copy then decides).
            // SAFETY: errno is thread-local.
            return unsafe { *libc::__errno_location() } != libc::EFAULT;
        }
        let next = (at | (PAGE - 1)).saturating_add(1);
        if next > end || next <= at {
            return true;
        }
        at = next;
    }
}

/// Empties the readable-page cache: memory may have been unmapped or made
/// unreadable.
pub fn forget_readable_pages() {
    for slot in &READABLE {
        slot.store(0, core::sync::atomic::Ordering::Relaxed);
    }
}

/// `munmap` and `mprotect` forget the pages known readable (see
/// [`unreadable`]) before the kernel changes the mapping.
#[no_mangle]
pub extern "C" fn munmap(addr: *mut libc::c_void, len: libc::size_t) -> libc::c_int {
    forget_readable_pages();
    // SAFETY: the caller's arguments, passed through.
    unsafe { crate::raw_syscall!(libc::SYS_munmap, addr, len) as libc::c_int }
}

#[no_mangle]
pub extern "C" fn mprotect(
    addr: *mut libc::c_void,
    len: libc::size_t,
    prot: libc::c_int,
) -> libc::c_int {
    if prot & libc::PROT_READ == 0 {
        forget_readable_pages();
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { crate::raw_syscall!(libc::SYS_mprotect, addr, len, prot) as libc::c_int }
}

/// Whether `fd` was opened with O_PATH (one `fcntl`; asked only of fds
/// the shim knows to be rift files).
pub fn is_path_fd(fd: i32) -> bool {
    // SAFETY: F_GETFL takes no pointer.
    let fl = unsafe { crate::raw_syscall!(libc::SYS_fcntl, fd, libc::F_GETFL) };
    fl >= 0 && (fl as i32) & libc::O_PATH != 0
}

/// The end of the user half of the address space (47-bit on x86_64 with
/// 4-level paging; 48-bit on aarch64 with 48-bit VA).
#[cfg(target_arch = "x86_64")]
const USER_TOP: usize = 1 << 47;
#[cfg(not(target_arch = "x86_64"))]
const USER_TOP: usize = 1 << 48;

/// `getenv` (from the constructor on, environ is set up).
pub fn getenv(name: &'static [u8]) -> Option<&'static [u8]> {
    // SAFETY: NUL-terminated name; the returned string lives in environ.
    let p = unsafe { libc::getenv(name.as_ptr() as *const libc::c_char) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

pub fn stat_raw(path: &[u8]) -> Option<libc::stat> {
    stat_or_errno(path).ok()
}

/// `stat` without libc; the errno on failure.
pub fn stat_or_errno(path: &[u8]) -> Result<libc::stat, i32> {
    fstatat_raw(path, 0)
}

/// `lstat` without libc: the last component is not followed.
pub fn lstat_raw(path: &[u8]) -> Result<libc::stat, i32> {
    fstatat_raw(path, libc::AT_SYMLINK_NOFOLLOW)
}

/// `fstatat(AT_FDCWD, path, flags)` by a raw syscall; the errno on failure.
fn fstatat_raw(path: &[u8], flags: libc::c_int) -> Result<libc::stat, i32> {
    let c = CPath::new(path).ok_or(libc::ENAMETOOLONG)?;
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: valid path and buffer.
    let rc = unsafe {
        crate::raw_syscall!(
            libc::SYS_newfstatat,
            libc::AT_FDCWD,
            c.as_ptr(),
            &mut st as *mut libc::stat,
            flags
        )
    };
    if rc == 0 {
        Ok(st)
    } else {
        // SAFETY: errno is thread-local and always valid.
        Err(unsafe { *libc::__errno_location() })
    }
}

/// An opened blob's size, and whether it carries the verified-once mark
/// (the sticky bit: see `vrift::cas::VERIFIED`): one fstat.
pub fn fd_blob_state(fd: i32) -> Option<(u64, bool)> {
    fstat_raw(fd).map(|st| (st.st_size as u64, st.st_mode & libc::S_ISVTX != 0))
}

/// `fstat` of `fd` by the raw system call.
pub fn fstat_raw(fd: i32) -> Option<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: our fd and buffer.
    let rc = unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) };
    (rc == 0).then_some(st)
}

pub fn openat_raw(dirfd: i32, path: *const libc::c_char, flags: i32, mode: u32) -> i32 {
    // SAFETY: arguments are passed through to the kernel, which validates them.
    unsafe { crate::raw_syscall!(libc::SYS_openat, dirfd, path, flags, mode) as i32 }
}

/// Whether `path` exists for the kernel (faccessat F_OK; errno set if not).
pub fn exists_raw(path: *const libc::c_char) -> bool {
    // SAFETY: a NUL-terminated path from the caller.
    unsafe { crate::raw_syscall!(libc::SYS_faccessat, libc::AT_FDCWD, path, libc::F_OK) == 0 }
}

pub fn close_raw(fd: i32) {
    // SAFETY: closing an fd we opened.
    unsafe { crate::raw_syscall!(libc::SYS_close, fd) };
}

/// Maps a whole file read-only; returns (address, length).
pub fn map_file(path: &CStr) -> Option<(usize, usize)> {
    let fd = openat_raw(
        libc::AT_FDCWD,
        path.as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    );
    if fd < 0 {
        return None;
    }
    map_fd(fd)
}

/// Maps the whole file open on `fd` read-only, and closes `fd`; returns
/// (address, length).
pub fn map_fd(fd: i32) -> Option<(usize, usize)> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fd is open.
    let ok = unsafe { crate::raw_syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } == 0
        && st.st_size > 0;
    let len = st.st_size as usize;
    let mut addr = libc::MAP_FAILED;
    if ok {
        // SAFETY: mapping an open file read-only and shared.
        addr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
    }
    close_raw(fd);
    if addr == libc::MAP_FAILED {
        return None;
    }
    Some((addr as usize, len))
}

pub fn unmap(addr: usize, len: usize) {
    // SAFETY: unmapping a mapping we made and never published.
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
}

/// `readlink` into `out`; returns the length.
pub fn readlink_raw(path: &[u8], out: &mut [u8]) -> Option<usize> {
    // SAFETY: `out` is valid for its length.
    unsafe { readlink_into(path, out.as_mut_ptr(), out.len()) }
}

/// `readlink` into raw memory (which need not be initialized).
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes.
pub unsafe fn readlink_into(path: &[u8], out: *mut u8, cap: usize) -> Option<usize> {
    let c = CPath::new(path)?;
    // SAFETY: a NUL-terminated path; `out` holds `cap` bytes (the caller's
    // contract).
    let n =
        unsafe { crate::raw_syscall!(libc::SYS_readlinkat, libc::AT_FDCWD, c.as_ptr(), out, cap) };
    (n >= 0 && (n as usize) < cap).then_some(n as usize)
}

/// The path the kernel has for an fd (`/proc/self/fd/N`).
pub fn fd_path(fd: i32, out: &mut [u8]) -> Option<usize> {
    // SAFETY: `out` is valid for its length.
    unsafe { fd_path_into(fd, out.as_mut_ptr(), out.len()) }
}

/// [`fd_path`] into raw memory.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes.
pub unsafe fn fd_path_into(fd: i32, out: *mut u8, cap: usize) -> Option<usize> {
    let mut p = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut n = 14;
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut v = fd as u32;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        p[n] = digits[d];
        n += 1;
    }
    // SAFETY: `out` is valid for `cap` bytes (the caller's contract).
    unsafe { readlink_into(&p[..n], out, cap) }
}

/// The kernel's current directory.
pub fn getcwd_raw(out: &mut [u8]) -> Option<usize> {
    // SAFETY: `out` is valid for its length.
    unsafe { getcwd_into(out.as_mut_ptr(), out.len()) }
}

/// [`getcwd_raw`] into raw memory.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes.
pub unsafe fn getcwd_into(out: *mut u8, cap: usize) -> Option<usize> {
    // The syscall returns the length including the NUL.
    // SAFETY: `out` holds `cap` bytes (the caller's contract).
    let n = unsafe { crate::raw_syscall!(libc::SYS_getcwd, out, cap) };
    (n > 1).then_some(n as usize - 1)
}

/// One line on stderr (error paths only).
pub fn complain(parts: &[&[u8]]) {
    let mut buf = [0u8; 1024];
    let mut n = 0;
    for p in parts {
        let take = p.len().min(buf.len() - 1 - n);
        buf[n..n + take].copy_from_slice(&p[..take]);
        n += take;
    }
    buf[n] = b'\n';
    // SAFETY: writing our own buffer to fd 2.
    unsafe { crate::raw_syscall!(libc::SYS_write, 2, buf.as_ptr(), n + 1) };
}

/// A system call made directly, never through the `syscall` symbol: that
/// symbol is the shim's own export (interposed for the program), so calling
/// it from inside the shim would route the call back into the shim. libc's
/// convention: -1 and errno on failure.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[inline]
pub unsafe fn syscall6(n: libc::c_long, a: [usize; 6]) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: the arguments are valid for system call `n` (the caller's
    // contract); the asm clobbers only what the kernel's ABI says.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
        "syscall",
        inlateout("rax") n => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
        in("r10") a[3], in("r8") a[4], in("r9") a[5],
        lateout("rcx") _, lateout("r11") _,
        options(nostack)
        );
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!(
        "svc 0",
        in("x8") n,
        inlateout("x0") a[0] => ret,
        in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
        options(nostack)
        );
    }
    if (-4095..0).contains(&ret) {
        // SAFETY: errno is thread-local and always valid.
        unsafe { *libc::__errno_location() = -ret as i32 };
        -1
    } else {
        ret
    }
}

/// `crate::raw_syscall!(n, args…)` without going through the `syscall` symbol
/// (see [`syscall6`]). Up to six arguments, each cast to a machine word.
#[macro_export]
macro_rules! raw_syscall {
    ($n:expr $(, $a:expr)* $(,)?) => {{
        let mut args = [0usize; 6];
        let given: &[usize] = &[$(($a) as usize),*];
        args[..given.len()].copy_from_slice(given);
        $crate::sys::syscall6(($n) as libc::c_long, args)
    }};
}
