//! `vrift run -- CMD…`: run a command in the project's inception (the
//! non-interactive form scripts and CI use).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::{current_project, Outcome};
use crate::{env_vars, table};

/// Where the shim library is: `$VRIFT_SHIM_PATH`, else beside the binary.
pub fn shim_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_vars::VRIFT_SHIM_PATH).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "{} is set to {}, which does not exist",
            env_vars::VRIFT_SHIM_PATH,
            p.display()
        );
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    for cand in [
        dir.join("libvrift_shim.so"),
        dir.join("../lib/vrift/libvrift_shim.so"),
    ] {
        if cand.is_file() {
            return Ok(std::fs::canonicalize(cand)?);
        }
    }
    bail!(
        "cannot find libvrift_shim.so beside {} (build it with `cargo build -p vrift-shim`, or set {})",
        exe.display(),
        env_vars::VRIFT_SHIM_PATH
    )
}

pub fn run(cmd: Vec<OsString>) -> Result<Outcome> {
    let project = current_project()?;
    let shim = shim_path()?;
    let (lock, cas, manifest) = super::open_manifest(&project)?;
    let path = table::table_path(&project);
    let current = table::read_table(&path, |t| {
        t.root() == project.root().as_os_str().as_encoded_bytes()
    });
    if current != Some(true) {
        table::publish(&project, &cas, &manifest)?;
    }
    drop(manifest);
    drop(lock);

    let (program, args) = cmd.split_first().expect("clap requires a command");
    let mut preload = shim.as_os_str().to_os_string();
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        let already = std::env::split_paths(&existing).any(|p| p == shim);
        if already {
            preload = existing;
        } else {
            preload.push(":");
            preload.push(existing);
        }
    }
    // vrift itself never loads the shim, so a program that exists only in the
    // view (a rift executable) is started through a shimmed `sh`.
    let physically_there = if program.as_encoded_bytes().contains(&b'/') {
        std::path::Path::new(program).exists()
    } else {
        crate::applets::find_real(&program.to_string_lossy(), None).is_some()
    };
    let mut command = if physically_there {
        let mut c = std::process::Command::new(program);
        c.args(args);
        c
    } else {
        let mut c = std::process::Command::new("/bin/sh");
        c.args(["-c", "exec \"$@\"", "vrift-run"])
            .arg(program)
            .args(args);
        c
    };
    let err = command
        .env("LD_PRELOAD", preload)
        .env(env_vars::VRIFT_PROJECT_ROOT, project.root())
        .env(env_vars::VRIFT_INCEPTION, "1")
        .env(env_vars::VR_THE_SOURCE, cas.root())
        .env(env_vars::VRIFT_SHIM_PATH, &shim)
        .env(env_vars::VRIFT_MANIFEST, project.manifest_path())
        .exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    eprintln!(
        "vrift: run: cannot run {}: {err}",
        program.to_string_lossy()
    );
    std::process::exit(code);
}
