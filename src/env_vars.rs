//! Every environment variable vrift reads or sets, named once.
//!
//! The shim, the hooks, the wrappers and the daemon all agree on these names.

/// Canonical root of the project whose inception this process is in.
pub const VRIFT_PROJECT_ROOT: &str = "VRIFT_PROJECT_ROOT";
/// Set to `1` inside an inception.
pub const VRIFT_INCEPTION: &str = "VRIFT_INCEPTION";
/// Location of the content-addressed store; overrides the XDG data dir.
pub const VR_THE_SOURCE: &str = "VR_THE_SOURCE";
/// Path prefix under which the view is exposed: named by the design
/// (DESIGN.md §3), read by nothing yet.
pub const VRIFT_VFS_PREFIX: &str = "VRIFT_VFS_PREFIX";
/// Absolute path of `libvrift_shim.so`.
pub const VRIFT_SHIM_PATH: &str = "VRIFT_SHIM_PATH";
/// Absolute path of the vrift binary that set up the inception: the only
/// program the library runs on its own (the daemon starter, the syscall
/// supervisor). Never taken from a project's files (`.vrift/view.table`
/// names a binary too, but a project can forge it).
pub const VRIFT_EXE: &str = "VRIFT_EXE";
/// Diagnostic output on stderr: named by the design, read by nothing yet
/// (`vrift doctor` removes it from the programs it probes).
pub const VRIFT_DEBUG: &str = "VRIFT_DEBUG";
/// Path of the project's manifest.
pub const VRIFT_MANIFEST: &str = "VRIFT_MANIFEST";
/// Silences the informational lines vrift prints on stderr.
pub const VRIFT_QUIET: &str = "VRIFT_QUIET";
/// Set by `vrift inception` and the shell hooks: the prior value of every
/// variable the inception changed, for `vrift wake` (`NAME=hex;NAME=-…`,
/// `-` meaning unset).
pub const VRIFT_SAVED: &str = "VRIFT_SAVED";
/// Set by the shell hooks to the root of the untrusted project the shell is
/// in, so that its "not trusted" line is printed once per visit, not at
/// every prompt.
pub const VRIFT_BLOCKED: &str = "VRIFT_BLOCKED";

/// Set by the `.vrift/bin` wrappers: how many wrappers are running above
/// this process (a loop of wrappers stops at 32; see wrappers/wrapper.sh).
pub const VRIFT_WRAPPER_DEPTH: &str = "VRIFT_WRAPPER_DEPTH";

/// Seconds a daemon stays up with no client (default 30).
pub const VRIFT_DAEMON_IDLE: &str = "VRIFT_DAEMON_IDLE";
/// Seconds between the daemon's sweeps for files left staged (default 2).
pub const VRIFT_DAEMON_SEAL_SWEEP: &str = "VRIFT_DAEMON_SEAL_SWEEP";
/// `1`: the store is shared between users (see README, "Security"); kept as
/// a `shared` mark in the store once given.
pub const VRIFT_STORE_SHARED: &str = "VRIFT_STORE_SHARED";
/// Set by a shell hook for the shell it restarts with the library preloaded
/// (the library then listens for the shell's enter/leave words), and
/// removed by the hook at once so that children do not inherit it.
pub const VRIFT_SHELL_VIEW: &str = "VRIFT_SHELL_VIEW";
/// The `LD_PRELOAD` a shell had before the hook restarted it, given back to
/// its children (removed at once, like [`VRIFT_SHELL_VIEW`]).
pub const VRIFT_SHELL_PRELOAD: &str = "VRIFT_SHELL_PRELOAD";
/// Any value: the hook leaves the shell as it is (not in the view itself).
pub const VRIFT_NO_SHELL_VIEW: &str = "VRIFT_NO_SHELL_VIEW";
/// `run`: inside an inception, a program that cannot load the library
/// (static, Go, the loader run as a program) runs against the disk instead
/// of under vrift's syscall supervisor.
pub const VRIFT_UNVIEWED: &str = "VRIFT_UNVIEWED";
/// `1`, set by the syscall supervisor in the environment of the program it
/// serves: the library in its dynamically linked descendants execs static
/// and Go programs directly (the supervisor's filter already covers them).
/// `fuse`, set by the FUSE view (`fuse_view`): the kernel shows the view
/// there, and vrift's applets act through it.
pub const VRIFT_SYSCALL_VIEW: &str = "VRIFT_SYSCALL_VIEW";
/// `vrift push`: from how many blobs on it lists the remote's fan-out
/// directories (S3, directories) instead of asking for each blob (default
/// 1024; HTTP remotes are always asked blob by blob).
pub const VRIFT_REMOTE_LIST_MIN: &str = "VRIFT_REMOTE_LIST_MIN";
/// `vrift push` to S3 (and directories): blobs of at least this many bytes
/// are uploaded in parts (multipart upload; default 64 MiB, parts of at
/// most 16 MiB, never under S3's 5 MiB).
pub const VRIFT_REMOTE_MULTIPART_MIN: &str = "VRIFT_REMOTE_MULTIPART_MIN";
/// The daemon: `0` turns off fetching ahead, i.e. prefetching the blobs of
/// the neighbours of a file whose blob is fetched on demand (default on).
pub const VRIFT_FETCH_AHEAD: &str = "VRIFT_FETCH_AHEAD";
/// `vrift push`: the secret key file refs are signed with (default:
/// `signing-key` beside the user's config file; see `vrift remote key`).
pub const VRIFT_SIGNING_KEY: &str = "VRIFT_SIGNING_KEY";

/// Tests: the step at which a vrift process kills itself (see `failpoint`).
pub const VRIFT_FAILPOINT: &str = "VRIFT_FAILPOINT";
/// A file: the crash point fires only in the process that creates it.
pub const VRIFT_FAILPOINT_ONCE: &str = "VRIFT_FAILPOINT_ONCE";
