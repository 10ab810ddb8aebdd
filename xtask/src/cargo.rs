//! Building the binaries the tasks run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// Runs `cargo build --release -p vrift` and returns the path of the `vrift`
/// executable.
///
/// The path is the one cargo reports for the artifact, so it follows
/// `CARGO_TARGET_DIR`, `build.target-dir` and the default `<workspace>/target`
/// exactly as the build did, instead of guessing.
pub fn build_release_vrift() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: cargo build --release -p vrift");
    let mut child = Command::new(cargo)
        .args(["build", "--release", "-p", "vrift", "--bin", "vrift"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut executable = None;
    for line in BufReader::new(stdout).lines() {
        if let Some(path) = vrift_executable(&line?) {
            executable = Some(path);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build --release -p vrift failed ({status})");
    }
    executable.context("cargo built vrift but reported no executable for it")
}

/// The executable of a `compiler-artifact` message for the `vrift` binary.
fn vrift_executable(line: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" || msg["target"]["name"] != "vrift" {
        return None;
    }
    msg["executable"].as_str().map(PathBuf::from)
}
