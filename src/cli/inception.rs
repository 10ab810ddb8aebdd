//! `vrift inception`, `vrift wake`, `vrift hook` and the per-prompt
//! `vrift __hook-env`: shell code for `eval`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::Outcome;
use crate::inception::{self, shell::Shell};
use crate::project::Project;

fn emit(code: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(code)?;
    out.flush()?;
    Ok(())
}

pub fn inception(dir: Option<PathBuf>, shell: Option<Shell>) -> Result<Outcome> {
    let shell = shell.unwrap_or_else(Shell::detect);
    let project = match dir {
        Some(d) => Project::find(&d)?,
        None => Project::current()?,
    };
    if let Err(why) = inception::trusted(&project)? {
        bail!("{why}");
    }
    let inc = inception::env::prepare(&project)?;
    inception::wake_daemon(&project);
    let code = inception::enter_code(shell, &inc, inception::current_saved().as_ref());
    emit(&code)?;
    inception::announce(&project);
    Ok(Outcome::Ok)
}

pub fn wake(shell: Option<Shell>) -> Result<Outcome> {
    let shell = shell.unwrap_or_else(Shell::detect);
    match inception::current_saved() {
        Some(saved) => emit(&inception::wake_code(shell, &saved))?,
        None => crate::ui::note("not in an inception entered by `vrift inception` or a hook"),
    }
    Ok(Outcome::Ok)
}

pub fn hook(shell: Shell) -> Result<Outcome> {
    let exe = std::env::current_exe().context("cannot locate the vrift binary")?;
    let shim = crate::inception::env::pinned_shim_path().ok();
    emit(&shell.syntax().hook(&exe, shim.as_deref()))?;
    Ok(Outcome::Ok)
}

/// `vrift __hook-env --shell SHELL`, parsed by hand before clap so that the
/// per-prompt call stays cheap. `None` when the arguments are not that.
pub fn hook_env_fast(args: &[std::ffi::OsString]) -> Option<ExitCode> {
    if args.get(1).map(|a| a.as_os_str()) != Some("__hook-env".as_ref()) {
        return None;
    }
    let shell = match args.get(2..).unwrap_or_default() {
        [flag, name] if flag == "--shell" => name.to_str()?,
        [one] => one.to_str()?.strip_prefix("--shell=")?,
        _ => return None,
    };
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        _ => return None,
    };
    match inception::hook_env(shell).and_then(|code| emit(&code)) {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("vrift: hook: {e:#}");
            Some(ExitCode::from(1))
        }
    }
}

/// The clap form of `__hook-env` (same behaviour, slower start).
pub fn hook_env(shell: Shell) -> Result<Outcome> {
    emit(&inception::hook_env(shell)?)?;
    Ok(Outcome::Ok)
}
