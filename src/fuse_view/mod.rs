//! The FUSE view: how a program that cannot load the LD_PRELOAD library (a
//! Go or static binary, the dynamic loader run as a program) is kept in the
//! view — in a mount namespace of its own where the project's root is a
//! FUSE mount serving the view ([`fs::ViewFs`]), so that the kernel itself
//! resolves every path and the program's raw system calls reach the view.
//!
//! What `vrift __syscall-view PATH ARGV…` (which the library execs in place
//! of such a program) does first; the seccomp supervisor is the fallback
//! where the kernel refuses a mount namespace or /dev/fuse (and is chosen
//! with `VRIFT_UNVIEWED_BY=seccomp`).
//!
//! The steps, in the process the program's parent waits for:
//! 1. fork the server, which leaves the process group and is re-parented
//!    (double fork), and stays in this mount namespace, where the
//!    project's root is the disk;
//! 2. unshare the mount namespace (with a user namespace mapping only our
//!    ids, for a user other than root), make every mount private, open
//!    /dev/fuse and mount it over the root;
//! 3. send the server that fd (SCM_RIGHTS), enter the cwd again (through
//!    the mount), drop LD_PRELOAD (the kernel shows the view to every
//!    process below: the library would only pay for it twice), exec the
//!    program.
//!
//! The mount lives as long as the namespace: when the program and its
//! children have exited, the kernel unmounts it and the server's next
//! read ends (ENODEV).

mod fs;

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::env_vars;
use crate::project::STATE_DIR;

/// `VRIFT_UNVIEWED_BY`: `seccomp` serves such programs with the syscall
/// supervisor; `fuse` insists on the FUSE view (an error where it cannot
/// be set up); unset, the FUSE view where it can be set up.
pub const MECHANISM: &str = "VRIFT_UNVIEWED_BY";

/// Runs `path` with `argv` in the FUSE view; returns only when it could
/// not: None to fall back to the supervisor, Some(code) to exit with.
pub fn run(path: &CStr, argv: &[CString]) -> Option<u8> {
    let wanted = std::env::var(MECHANISM).unwrap_or_default();
    if wanted == "seccomp" {
        return None;
    }
    match enter(path, argv, wanted == "fuse") {
        Ok(never) => match never {},
        Err(e) if wanted == "fuse" => {
            eprintln!(
                "vrift: cannot run {} in the view: {e:#}",
                path.to_string_lossy()
            );
            Some(126)
        }
        Err(_) => None,
    }
}

/// Whether this user can have the FUSE view here: a mount namespace (with
/// a user namespace, for a user other than root) and /dev/fuse, tried in
/// a child process. Err: why not (`vrift doctor`).
pub fn availability() -> Result<(), String> {
    // SAFETY: the child only makes plain system calls and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: plain calls.
        let ids = unsafe { (libc::geteuid(), libc::getegid()) };
        let isolated = unshare_namespaces(ids).and_then(|()| set_up_namespaces(ids));
        let code = match isolated {
            Err(_) => 1,
            // SAFETY: a valid C string; the fd is closed by `_exit`.
            Ok(()) => match unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR) } {
                fd if fd < 0 => 2,
                _ => 0,
            },
        };
        // SAFETY: ending the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => Ok(()),
        Some(1) => Err("the kernel refuses this user a mount namespace".into()),
        Some(2) => Err("/dev/fuse cannot be opened (missing, or not mode 0666)".into()),
        _ => Err("the check did not finish".into()),
    }
}

/// The inception's project root.
fn project_root() -> anyhow::Result<PathBuf> {
    let root = std::env::var_os(env_vars::VRIFT_PROJECT_ROOT)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{} is not set", env_vars::VRIFT_PROJECT_ROOT))?;
    let root = std::fs::canonicalize(&root)
        .map_err(|e| anyhow::anyhow!("project root {}: {e}", Path::new(&root).display()))?;
    anyhow::ensure!(
        root.join(STATE_DIR).is_dir(),
        "{} is not a vrift project",
        root.display()
    );
    Ok(root)
}

enum Never {}

/// Threads answering the kernel (each with its own fd: FUSE_DEV_IOC_CLONE).
const SERVER_THREADS: usize = 2;

fn last_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", io::Error::last_os_error())
}

/// Steps 1–3 above; returns only on failure (before the exec, or the
/// exec's own).
fn enter(path: &CStr, argv: &[CString], insisted: bool) -> anyhow::Result<Never> {
    let root = project_root()?;
    // Files of the store inherited from the parent (a rift file its shell
    // opened for it: `prog < file`, `exec 3<file`) are the store's own
    // inodes — a shared blob — which the program could change through the
    // fd (`fchmod`, reopening `/proc/self/fd/N` for writing as root) with
    // nothing between. The supervisor serves calls on such fds (refusing
    // what would change the blob): it runs such a program, unless the FUSE
    // view is insisted on, which gives it private copies instead.
    let store_fds = inherited_store_files(&root);
    if !store_fds.is_empty() {
        anyhow::ensure!(insisted, "it inherits files of the store");
        for fd in store_fds {
            copy_into_memfd(fd)
                .map_err(|e| anyhow::anyhow!("fd {fd}, a file of the store: {e}"))?;
        }
    }
    drop(open_fuse()?);
    let (ours, servers) = socket_pair()?;
    spawn_server(&root, servers, &ours)?;
    // A failure returns with `ours` dropped: the server reads end-of-file
    // and exits.
    // SAFETY: plain calls.
    let ids = unsafe { (libc::geteuid(), libc::getegid()) };
    unshare_namespaces(ids)?;
    // This process is in new namespaces now: there is no going back to
    // the supervisor from here, a failure ends it.
    let mounted = (|| -> anyhow::Result<()> {
        set_up_namespaces(ids)?;
        // Opened in the namespace that mounts it: the kernel takes a FUSE
        // mount in a user namespace only from a /dev/fuse fd opened there.
        let fuse = open_fuse()?;
        mount_view(&root, &fuse)?;
        send_fd(&ours, &fuse).map_err(|e| anyhow::anyhow!("starting the view's server: {e}"))
    })();
    if let Err(e) = mounted {
        eprintln!(
            "vrift: cannot run {} in the view: {e:#}",
            path.to_string_lossy()
        );
        std::process::exit(126);
    }
    drop(ours);
    if let Ok(cwd) = std::env::current_dir() {
        // The cwd, if in the project, is the disk's directory until it is
        // entered again by its name (through the mount now).
        let _ = std::env::set_current_dir(&cwd);
    }
    std::env::remove_var("LD_PRELOAD");
    std::env::set_var(env_vars::VRIFT_SYSCALL_VIEW, "fuse");
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: a NUL-terminated path, a NULL-terminated argv of live C
    // strings, the process's environment.
    unsafe { libc::execve(path.as_ptr(), ptrs.as_ptr(), environ) };
    let e = io::Error::last_os_error();
    eprintln!("vrift: cannot run {}: {e}", path.to_string_lossy());
    std::process::exit(if e.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    });
}

/// The fds of this process that are regular files of the project's store
/// (blobs, executable copies).
fn inherited_store_files(root: &Path) -> Vec<i32> {
    let table = root
        .join(vrift_format::STATE_DIR_NAME)
        .join(vrift_format::table::TABLE_FILE);
    let mut mapped = vrift_coreutils::table::MappedTable::new(&table);
    let Some(store) = mapped
        .get()
        .map(|t| PathBuf::from(OsStr::from_bytes(t.cas_root())))
    else {
        return Vec::new();
    };
    let store = std::fs::canonicalize(&store).unwrap_or(store);
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let fds: Vec<i32> = fds
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.into_iter()
        .filter(|fd| {
            let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
                return false;
            };
            let mut st = unsafe_zeroed_stat();
            // SAFETY: an fd number and a struct to fill.
            let regular = unsafe { libc::fstat(*fd, &mut st) } == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFREG;
            regular && target.starts_with(&store)
        })
        .collect()
}

fn unsafe_zeroed_stat() -> libc::stat {
    // SAFETY: all-zero is a valid `stat`.
    unsafe { std::mem::zeroed() }
}

/// Puts a read-only memfd holding the content of `fd` in its place, at its
/// offset, keeping its close-on-exec flag: what the program reads is the
/// same, and nothing it does to the fd reaches the store (a change through
/// it reaches the copy only).
fn copy_into_memfd(fd: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: plain calls on fds of this process; each result is checked.
    unsafe {
        let offset = libc::lseek(fd, 0, libc::SEEK_CUR);
        let fd_flags = check(libc::fcntl(fd, libc::F_GETFD))?;
        let mem = check(libc::memfd_create(
            c"vrift-store-copy".as_ptr(),
            libc::MFD_CLOEXEC,
        ))?;
        let mem = OwnedFd::from_raw_fd(mem);
        let mut source = std::fs::File::open(format!("/proc/self/fd/{fd}"))?;
        let mut copy = std::fs::File::from(mem.try_clone()?);
        io::copy(&mut source, &mut copy)?;
        let readonly = check(libc::open(
            format!("/proc/self/fd/{}\0", mem.as_raw_fd()).as_ptr() as *const libc::c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        ))?;
        let readonly = OwnedFd::from_raw_fd(readonly);
        if offset > 0 {
            libc::lseek(readonly.as_raw_fd(), offset, libc::SEEK_SET);
        }
        let flags = if fd_flags & libc::FD_CLOEXEC != 0 {
            libc::O_CLOEXEC
        } else {
            0
        };
        check(libc::dup3(readonly.as_raw_fd(), fd, flags))?;
    }
    Ok(())
}

/// A connected pair of Unix sockets (close-on-exec), on which the
/// server gets the mount's /dev/fuse fd.
fn socket_pair() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: an array of two fds to fill.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(last_error("socketpair"));
    }
    // SAFETY: fresh fds of ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The control message buffer of one fd (SCM_RIGHTS), aligned for cmsghdr.
#[repr(C, align(8))]
struct FdMessage([u8; 64]);

/// One byte of data and room for one fd: what [`send_fd`] sends and
/// [`receive_fd`] receives. The msghdr it makes points into it: it must
/// stay where it is while the message is in use.
struct OneFd {
    byte: [u8; 1],
    iov: libc::iovec,
    control: FdMessage,
}

impl OneFd {
    fn new() -> OneFd {
        OneFd {
            byte: [b'g'],
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 1,
            },
            control: FdMessage([0; 64]),
        }
    }

    /// The message over `self`, with `control_len` bytes of control room.
    fn msghdr(&mut self, control_len: usize) -> libc::msghdr {
        self.iov.iov_base = self.byte.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: an all-zero msghdr is valid; its pointers are set below,
        // into `self`.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut self.iov;
        msg.msg_iovlen = 1;
        msg.msg_control = self.control.0.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = control_len;
        msg
    }
}

/// Sends `fd` over `sock` (one byte of data with it).
fn send_fd(sock: &OwnedFd, fd: &OwnedFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut one = OneFd::new();
    let int = std::mem::size_of::<libc::c_int>() as u32;
    // SAFETY: CMSG_SPACE is arithmetic.
    let msg = one.msghdr(unsafe { libc::CMSG_SPACE(int) } as usize);
    // SAFETY: the message's control room holds one header and one int
    // (CMSG_SPACE above); `one` outlives the call.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(int) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::c_int, fd.as_raw_fd());
        if libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives the fd [`send_fd`] sent; None at end-of-file (the sender gave up).
fn receive_fd(sock: &OwnedFd) -> Option<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut one = OneFd::new();
    let mut msg = one.msghdr(64);
    // SAFETY: a message over `one`, which outlives the call; the fd
    // received is owned at once.
    unsafe {
        if libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
            return None;
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return None;
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
        Some(OwnedFd::from_raw_fd(fd))
    }
}

/// Forks the server (step 1): a grandchild, so that it is no child of the
/// program; returns once the intermediate child has exited.
fn spawn_server(root: &Path, servers: OwnedFd, ours: &OwnedFd) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: this process is single-threaded (vrift's main, before any
    // thread): the child may do anything.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_error("fork"));
    }
    if pid == 0 {
        // SAFETY: as above.
        if unsafe { libc::fork() } == 0 {
            // Only the program's side may hold its end: if that side dies
            // before the mount, the server reads end-of-file and exits.
            // SAFETY: closing our copy of an fd we do not use.
            unsafe { libc::close(ours.as_raw_fd()) };
            serve(root, servers);
        }
        // SAFETY: leaving the intermediate child without running
        // destructors or atexit handlers of the parent's.
        unsafe { libc::_exit(0) };
    }
    drop(servers);
    let mut status = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(())
}

/// The server (never returns): waits for the mounted /dev/fuse fd, then
/// answers the kernel until the namespace holding the mount is gone.
fn serve(root: &Path, sock: OwnedFd) -> ! {
    // SAFETY: plain calls on our own process.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
    let Some(fd) = receive_fd(&sock) else {
        // SAFETY: ending this process.
        unsafe { libc::_exit(0) };
    };
    drop(sock);
    // A connection to the project's daemon for the server's life: a daemon
    // with a client does not idle out, so the processes of the namespace
    // never start one in there (it would reach the project through this
    // mount, which waits for it), and this starts it if none runs.
    let _daemon = crate::project::Project::at(root)
        .ok()
        .and_then(|p| crate::daemon::client::Session::open(p).ok());
    let view = fs::ViewFs::new(root);
    let mut config = fuser::Config::default();
    config.acl = fuser::SessionACL::All;
    // Two threads, so that one slow answer (a daemon round trip) does not
    // hold up the rest. (1, 2 and 4 threads measured the same on esbuild.)
    config.n_threads = Some(SERVER_THREADS);
    config.clone_fd = true;
    let code = match fuser::Session::from_fd(view, fd, fuser::SessionACL::All, config)
        .and_then(|s| s.run())
    {
        Ok(()) => 0,
        // The mount is gone (its namespace ended): the normal end.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ECONNABORTED)) => 0,
        Err(e) => {
            eprintln!("vrift: the view's FUSE server of {}: {e}", root.display());
            1
        }
    };
    // SAFETY: ending this process.
    unsafe { libc::_exit(code) }
}

/// /dev/fuse, opened for reading and writing (close-on-exec).
fn open_fuse() -> anyhow::Result<OwnedFd> {
    // SAFETY: a valid C string; the fd is owned at once.
    let fd = unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_error("/dev/fuse"));
    }
    // SAFETY: a fresh fd of ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Step 2's namespaces: a mount namespace of our own (and, for a user
/// other than root, the user namespace that lets it be made). All or
/// nothing: on failure this process is as it was. `ids`: the effective
/// uid and gid.
fn unshare_namespaces(ids: (u32, u32)) -> anyhow::Result<()> {
    let flags = if ids.0 == 0 {
        libc::CLONE_NEWNS
    } else {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    };
    // SAFETY: a single-threaded process (unshare of a user namespace needs it).
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(last_error("a mount namespace"));
    }
    Ok(())
}

/// After [`unshare_namespaces`]: the user namespace (if one was made)
/// maps only our ids, `ids` (the effective uid and gid from before), and
/// no mount made in the mount namespace propagates back.
fn set_up_namespaces(ids: (u32, u32)) -> anyhow::Result<()> {
    if ids.0 != 0 {
        let write = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| anyhow::anyhow!("{file}: {e}"))
        };
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("{0} {0} 1", ids.0))?;
        write("/proc/self/gid_map", format!("{0} {0} 1", ids.1))?;
    }
    // SAFETY: valid C strings or nulls, as mount(2) takes them.
    let private = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if private != 0 {
        return Err(last_error("making mounts private"));
    }
    Ok(())
}

/// Step 2's mount: the FUSE filesystem of `fuse` over `root`.
fn mount_view(root: &Path, fuse: &OwnedFd) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain calls.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let data = CString::new(format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions,allow_other",
        fuse.as_raw_fd()
    ))?;
    let target = CString::new(root.as_os_str().as_bytes())?;
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::mount(
            c"vrift".as_ptr(),
            target.as_ptr(),
            c"fuse.vrift".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr() as *const libc::c_void,
        )
    };
    if r != 0 {
        return Err(last_error(&format!(
            "mounting the view on {}",
            Path::new(OsStr::from_bytes(target.as_bytes())).display()
        )));
    }
    Ok(())
}
