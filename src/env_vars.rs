//! Every environment variable vrift reads or sets, named once.
//!
//! The shim, the hooks, the wrappers and the daemon all agree on these names.

/// Canonical root of the project whose inception this process is in.
pub const VRIFT_PROJECT_ROOT: &str = "VRIFT_PROJECT_ROOT";
/// Set to `1` inside an inception.
pub const VRIFT_INCEPTION: &str = "VRIFT_INCEPTION";
/// Location of the content-addressed store; overrides the XDG data dir.
pub const VR_THE_SOURCE: &str = "VR_THE_SOURCE";
/// Path prefix under which the view is exposed (reserved for the shim).
pub const VRIFT_VFS_PREFIX: &str = "VRIFT_VFS_PREFIX";
/// Absolute path of `libvrift_shim.so`.
pub const VRIFT_SHIM_PATH: &str = "VRIFT_SHIM_PATH";
/// Enables diagnostic output on stderr.
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

/// `vrift push`: from how many blobs on it lists the remote's fan-out
/// directories (S3, directories) instead of asking for each blob (default
/// 1024; HTTP remotes are always asked blob by blob).
pub const VRIFT_REMOTE_LIST_MIN: &str = "VRIFT_REMOTE_LIST_MIN";
