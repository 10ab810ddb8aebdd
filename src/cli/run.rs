//! `vrift run -- CMD…`: run a command in the project's inception (the
//! non-interactive form scripts and CI use).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use anyhow::Result;

use super::{current_project, Outcome};

/// The command of `vrift run [--] CMD…`, taken by hand before clap (whose
/// full command tree costs every start ~0.2 ms, and builds run `vrift run`
/// once per command). `None` for any other shape, which clap then parses:
/// options before `run`, `--help`, a command starting with `-`, nothing.
/// Same result as clap's `trailing_var_arg`: all after the first value is
/// the command's, `--` included.
pub fn fast_args(args: &[OsString]) -> Option<Vec<OsString>> {
    if args.get(1)? != "run" {
        return None;
    }
    let cmd = match args.get(2)? {
        dashes if dashes == "--" => &args[3..],
        first if !first.as_encoded_bytes().starts_with(b"-") => &args[2..],
        _ => return None,
    };
    (!cmd.is_empty()).then(|| cmd.to_vec())
}

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
    // A program that cannot load the library (static, Go) is started
    // through the shimmed `sh` too: the library's exec runs it in the
    // FUSE view or under the supervisor, or refuses it, as for any exec in
    // the inception (vrift's own exec would run it against the disk).
    let on_disk = on_disk.filter(|p| loads_library(p));
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

/// Whether the program at `path` loads the library when exec'd: a
/// dynamically linked program that is not a Go one (the Go linker's
/// build-id note, owner "Go" and type 4, in the first page, as the
/// library's `elfdyn` finds it). A file that cannot be read says no: the
/// shell's exec decides.
fn loads_library(path: &std::path::Path) -> bool {
    if !crate::inspect::inspect(path).is_ok_and(|found| found.can_preload()) {
        return false;
    }
    let mut head = [0u8; 4096];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    // namesz 4, any descsz, type 4, "Go\0\0".
    !head[..n]
        .windows(16)
        .any(|w| w[0..4] == [4, 0, 0, 0] && w[8..12] == [4, 0, 0, 0] && &w[12..16] == b"Go\0\0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// What clap makes of the same arguments, for the shapes the fast path takes.
    fn clap_cmd(args: &[OsString]) -> Option<Vec<OsString>> {
        match Cli::try_parse_from(args).ok()?.command {
            Command::Run { cmd } => Some(cmd),
            _ => None,
        }
    }

    #[test]
    fn the_fast_path_reads_run_exactly_as_clap_does() {
        for shape in [
            &["vrift", "run", "--", "make", "-j2"][..],
            &["vrift", "run", "make", "-j2", "--", "x"],
            &["vrift", "run", "--", "--weird", "-x"],
            &["vrift", "run", "--", "sh", "-c", "echo -- $1", "--"],
            &["vrift", "run", "env"],
        ] {
            let args = os(shape);
            let fast = fast_args(&args);
            assert!(fast.is_some(), "{shape:?} should take the fast path");
            assert_eq!(fast, clap_cmd(&args), "{shape:?}");
        }
        // Everything else is clap's: help, options, global flags, nothing.
        for shape in [
            &["vrift", "run"][..],
            &["vrift", "run", "--"],
            &["vrift", "run", "--help"],
            &["vrift", "run", "-x"],
            &["vrift", "-C", "dir", "run", "make"],
            &["vrift", "status"],
        ] {
            assert_eq!(fast_args(&os(shape)), None, "{shape:?}");
        }
    }
}
