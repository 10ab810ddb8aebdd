//! `vrift run -- CMD…`: run a command in the project's inception (the
//! non-interactive form scripts and CI use).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use anyhow::Result;

use super::{current_project, Outcome};

pub fn run(cmd: Vec<OsString>) -> Result<Outcome> {
    let project = current_project()?;
    let inception = crate::inception::env::prepare(&project)?;

    let (program, args) = cmd.split_first().expect("clap requires a command");
    let vars = inception.vars(std::env::var_os("LD_PRELOAD").as_deref());
    // vrift itself never loads the shim, so a program that exists only in the
    // view (a rift executable) is started through a shimmed `sh`. A program
    // on disk is looked up on PATH once, here, as execvp would (wrappers
    // included), and run by its path: std's own search would try an execve
    // per PATH entry.
    let on_disk = if program.as_encoded_bytes().contains(&b'/') {
        std::path::Path::new(program)
            .exists()
            .then(|| std::path::PathBuf::from(program))
    } else {
        which::which(program).ok()
    };
    let mut command = if let Some(path) = on_disk {
        let mut c = std::process::Command::new(path);
        c.arg0(program).args(args);
        c
    } else {
        let mut c = std::process::Command::new("/bin/sh");
        c.args(["-c", "exec \"$@\"", "vrift-run"])
            .arg(program)
            .args(args);
        c
    };
    let err = command.envs(vars).exec();
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
