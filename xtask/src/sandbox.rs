//! A throw-away directory with its own HOME and store, and running vrift in it.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tempfile::TempDir;

/// A temporary directory holding `home/` (HOME and XDG_DATA_HOME, hence the
/// trust store) and `store/` (VR_THE_SOURCE), plus whatever the task puts there.
pub struct Sandbox {
    dir: TempDir,
    home: PathBuf,
    store: PathBuf,
}

impl Sandbox {
    /// Creates `<parent>/<prefix>XXXX` (parent: `$TMPDIR` or /tmp by default).
    pub fn create(parent: Option<&Path>, prefix: &str) -> Result<Sandbox> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&parent)
            .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
        let home = dir.path().join("home");
        let store = dir.path().join("store");
        fs::create_dir_all(home.join(".local/share"))?;
        fs::create_dir(&store)?;
        Ok(Sandbox { dir, home, store })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> &Path {
        &self.store
    }

    /// A command with the sandbox's environment: vrift variables the caller
    /// may have (an inception, a store) removed, HOME and the store redirected.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.set_env(&mut cmd);
        cmd
    }

    /// Gives `cmd` the sandbox's environment, as [`Sandbox::command`] does.
    pub fn set_env(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("VRIFT_") || k == "VR_THE_SOURCE" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("HOME", &self.home)
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("VR_THE_SOURCE", &self.store);
    }

    /// Deletes the directory, or keeps it and says where it is.
    pub fn finish(self, keep: bool) -> Result<()> {
        if keep {
            let path = self.dir.keep();
            println!("kept {}", path.display());
            return Ok(());
        }
        let path = self.dir.path().to_path_buf();
        self.dir
            .close()
            .with_context(|| format!("cannot remove {}", path.display()))
    }
}

/// The vrift binary, run inside a sandbox.
pub struct Vrift<'s> {
    bin: PathBuf,
    sandbox: &'s Sandbox,
}

impl<'s> Vrift<'s> {
    pub fn new(bin: PathBuf, sandbox: &'s Sandbox) -> Vrift<'s> {
        Vrift { bin, sandbox }
    }

    /// `vrift ARGS` started in `cwd`.
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.command(&self.bin);
        cmd.args(args).current_dir(cwd);
        cmd
    }

    /// Runs `vrift ARGS` with its output captured; fails if it fails.
    pub fn output(&self, cwd: &Path, args: &[&str]) -> Result<Output> {
        Ok(self.timed(cwd, args)?.1)
    }

    /// Runs `vrift ARGS` with its output captured and returns its wall-clock
    /// time (process start to exit); fails if it fails.
    pub fn timed(&self, cwd: &Path, args: &[&str]) -> Result<(Duration, Output)> {
        let what = format!("vrift {}", args.join(" "));
        time_output(&mut self.command(cwd, args), &what)
    }
}

/// Runs `cmd` with its output captured and times it; fails (showing its
/// stderr) if it fails.
pub fn time_output(cmd: &mut Command, what: &str) -> Result<(Duration, Output)> {
    cmd.stdin(Stdio::null());
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((elapsed, out))
}

/// Prints a command's captured stdout and stderr, indented.
pub fn print_output(out: &Output) {
    for text in [&out.stdout, &out.stderr] {
        for line in String::from_utf8_lossy(text).lines() {
            println!("    {line}");
        }
    }
}

/// Flushes dirty pages so that writeback of earlier steps does not land in
/// the next timed one.
pub fn sync() -> Result<()> {
    let status = Command::new("sync").status().context("cannot run sync")?;
    if !status.success() {
        bail!("sync failed ({status})");
    }
    Ok(())
}

/// `cp -a`: the reference copy must keep modes, mtimes and links exactly.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("cannot run cp")?;
    ensure!(
        status.success(),
        "cp -a {} {} failed",
        from.display(),
        to.display()
    );
    Ok(())
}
