//! The multicall dispatch point: `vrift` invoked as `chmod`, `rm`, `cp`, …
//!
//! The applets that act on the view directly arrive with inception mode
//! (helpers/tiny-coreutils). Until then an applet name runs the real tool
//! found on PATH past vrift itself, so a `.vrift/bin` symlink to vrift is
//! already safe to have.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// The names vrift answers to as a coreutil.
pub const APPLETS: &[&str] = &[
    "chmod", "chown", "rm", "cp", "mv", "touch", "mkdir", "rmdir", "cat", "ln",
];

/// The applet named by `argv0`, if it is one.
pub fn applet_for(argv0: &Path) -> Option<&'static str> {
    let name = argv0.file_name()?.to_str()?;
    APPLETS.iter().copied().find(|a| *a == name)
}

/// Runs `applet` with `args`; returns only on failure.
pub fn run(applet: &str, args: Vec<OsString>) -> i32 {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    match find_real(applet, me.as_deref()) {
        Some(real) => {
            let err = std::process::Command::new(&real)
                .arg0(applet)
                .args(args)
                .exec();
            eprintln!("{applet}: cannot run {}: {err}", real.display());
            126
        }
        None => {
            eprintln!(
                "{applet}: command not found on PATH (vrift's own {applet} is not built yet)"
            );
            127
        }
    }
}

/// The first `name` on PATH that is not vrift itself (compared canonically).
pub fn find_real(name: &str, me: Option<&Path>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .filter(|cand| is_executable(cand))
        .find(|cand| std::fs::canonicalize(cand).ok().as_deref() != me)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
