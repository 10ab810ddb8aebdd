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
    let artifacts = build_release(&["-p", "vrift", "--bin", "vrift"])?;
    artifacts
        .iter()
        .find_map(vrift_executable)
        .context("cargo built vrift but reported no executable for it")
}

/// The release `vrift` binary and the release shim (`libvrift_shim.so`).
pub struct Release {
    pub vrift: PathBuf,
    pub shim: PathBuf,
}

/// Builds the shim as it ships (profile `shim`: panic=abort, no std, no
/// libgcc_s) and returns the path of `libvrift_shim.so` cargo reports.
pub fn build_release_shim() -> Result<PathBuf> {
    build_with(&["--profile", "shim", "-p", "vrift-shim", "--lib"])?
        .iter()
        .find_map(shim_library)
        .context("cargo built vrift-shim but reported no libvrift_shim.so")
}

/// Builds the release `vrift` and the shim as it ships, and puts the shim
/// beside `vrift`, where `vrift` looks for it. The paths are the ones cargo
/// reports, as in [`build_release_vrift`].
pub fn build_release_vrift_and_shim() -> Result<Release> {
    let vrift = build_release_vrift()?;
    let built = build_release_shim()?;
    let shim = vrift
        .parent()
        .context("the vrift executable has no parent directory")?
        .join("libvrift_shim.so");
    // Copy, then rename: running processes may have the old library mapped.
    let tmp = shim.with_extension("so.tmp");
    std::fs::copy(&built, &tmp)
        .with_context(|| format!("cannot copy {} to {}", built.display(), tmp.display()))?;
    std::fs::rename(&tmp, &shim)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), shim.display()))?;
    Ok(Release { vrift, shim })
}

/// Runs `cargo build --release ARGS` and returns its `compiler-artifact`
/// messages.
fn build_release(args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let mut all = vec!["--release"];
    all.extend_from_slice(args);
    build_with(&all)
}

/// Runs `cargo build ARGS` and returns its `compiler-artifact` messages.
fn build_with(args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let shown = format!("cargo build {}", args.join(" "));
    eprintln!("xtask: {shown}");
    let mut cmd = Command::new(cargo);
    // What `cargo xtask` (a `cargo run`) set for xtask itself is not the
    // build's: ring's build script tracks CARGO_MANIFEST_DIR, so a build
    // that inherits it rebuilt ring, rustls and object_store, and the next
    // plain `cargo build` rebuilt them back (~2 minutes each time).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let run_set = key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_BIN_NAME"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            );
        if run_set {
            cmd.env_remove(&*key);
        }
    }
    let mut child = cmd
        .arg("build")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut artifacts = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line?) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" {
            artifacts.push(msg);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(artifacts)
}

/// The executable of the artifact message for the `vrift` binary.
fn vrift_executable(msg: &serde_json::Value) -> Option<PathBuf> {
    if msg["target"]["name"] != "vrift" {
        return None;
    }
    msg["executable"].as_str().map(PathBuf::from)
}

/// The shared library of the artifact message for the shim's cdylib.
fn shim_library(msg: &serde_json::Value) -> Option<PathBuf> {
    if msg["target"]["name"] != "vrift_shim" {
        return None;
    }
    msg["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".so"))
        .map(PathBuf::from)
}

/// An empty shared library in `dir`, built as `cc -shared` builds any: the
/// reference for what preloading a library costs by itself.
pub fn compile_empty_library(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("empty_preload.c");
    std::fs::write(&src, "void vrift_bench_empty(void) {}\n")?;
    let out = dir.join("empty_preload.so");
    cc(&["-O2", "-shared", "-fPIC"], &src, &out)?;
    Ok(out)
}

/// Compiles the benchmark driver `xtask/c/NAME.c` with `cc -O2` into `dir`.
pub fn compile_c_driver(name: &str, dir: &Path) -> Result<PathBuf> {
    let src = workspace_root().join(format!("xtask/c/{name}.c"));
    let out = dir.join(name);
    println!("$ cc -O2 -o {} {}", out.display(), src.display());
    cc(&["-O2"], &src, &out)?;
    Ok(out)
}

/// `cc FLAGS -o OUT SRC`, failing with the flags and source named.
fn cc(flags: &[&str], src: &Path, out: &Path) -> Result<()> {
    let status = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(src)
        .status()
        .context("cannot run cc")?;
    if !status.success() {
        bail!("cc {} {} failed ({status})", flags.join(" "), src.display());
    }
    Ok(())
}
