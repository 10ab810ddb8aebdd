//! `cargo xtask install` and `cargo xtask uninstall`: vrift for a user.
//!
//! Layout under PREFIX (default `~/.local`):
//!
//! | file | what |
//! |---|---|
//! | `bin/vrift` | the binary |
//! | `lib/vrift/libvrift_shim.so` | the LD_PRELOAD library, found by `vrift` relative to its own executable (`../lib/vrift/`) |
//! | `lib/vrift/installed-files` | what this install wrote, for `uninstall` |
//! | `share/bash-completion/completions/vrift`, `share/zsh/site-functions/_vrift`, `share/fish/vendor_completions.d/vrift.fish` | completions |
//! | `share/man/man1/vrift*.1` | man pages |
//!
//! Every file is written under a temporary name in its final directory and
//! renamed over the old one: a running inception has the old library (and
//! the old binary) mapped, and truncating a mapped file in place would crash
//! it. After the rename, running processes keep the old inode and new
//! processes load the new file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use clap::CommandFactory;

use crate::cargo;

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// Install under DIR: DIR/bin/vrift, DIR/lib/vrift/, DIR/share/ (default: ~/.local).
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// Install DIR/vrift and DIR/libvrift_shim.so as they are instead of
    /// building them (for packagers and for the tests, which install the
    /// binaries they already built).
    #[arg(long, value_name = "DIR")]
    from_target: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// The prefix given to `install` (default: ~/.local).
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
}

/// The name of the list of installed files, in `lib/vrift/`.
const RECORD: &str = "installed-files";

/// Completion scripts: shell name for `vrift completions`, path under PREFIX.
const COMPLETIONS: &[(&str, &str)] = &[
    ("bash", "share/bash-completion/completions/vrift"),
    ("zsh", "share/zsh/site-functions/_vrift"),
    ("fish", "share/fish/vendor_completions.d/vrift.fish"),
];

const MAN_DIR: &str = "share/man/man1";

pub fn install(args: InstallArgs) -> Result<()> {
    let prefix = resolve_prefix(args.prefix)?;
    let (vrift, shim) = match &args.from_target {
        Some(dir) => (dir.join("vrift"), dir.join("libvrift_shim.so")),
        None => (cargo::build_release_vrift()?, cargo::build_release_shim()?),
    };
    for f in [&vrift, &shim] {
        ensure!(f.is_file(), "{} does not exist", f.display());
    }

    let mut written: Vec<String> = Vec::new();
    let bin = prefix.join("bin/vrift");
    place(
        &fs::read(&vrift).with_context(|| format!("cannot read {}", vrift.display()))?,
        &bin,
        0o755,
    )?;
    written.push("bin/vrift".into());
    let lib = "lib/vrift/libvrift_shim.so";
    place(
        &fs::read(&shim).with_context(|| format!("cannot read {}", shim.display()))?,
        &prefix.join(lib),
        0o755,
    )?;
    written.push(lib.into());

    // From the installed binary: the completions match what it parses.
    for (shell, rel) in COMPLETIONS {
        let out = Command::new(&bin)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        ensure!(
            out.status.success(),
            "`{} completions {shell}` failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        place(&out.stdout, &prefix.join(rel), 0o644)?;
        written.push((*rel).into());
    }
    for (name, page) in man_pages()? {
        let rel = format!("{MAN_DIR}/{name}");
        place(&page, &prefix.join(&rel), 0o644)?;
        written.push(rel);
    }
    let mut record = written.join("\n");
    record.push('\n');
    place(
        record.as_bytes(),
        &prefix.join("lib/vrift").join(RECORD),
        0o644,
    )?;

    let version = check_pair(&bin)?;
    println!("installed vrift {version} under {}:", prefix.display());
    println!("  bin/vrift");
    println!("  {lib}");
    for (_, rel) in COMPLETIONS {
        println!("  {rel}");
    }
    let pages = written.iter().filter(|w| w.starts_with(MAN_DIR)).count();
    println!("  {MAN_DIR}/vrift*.1 ({pages} man pages)");
    print_next_steps(&prefix);
    Ok(())
}

pub fn uninstall(args: UninstallArgs) -> Result<()> {
    let prefix = resolve_prefix(args.prefix)?;
    let lib_dir = prefix.join("lib/vrift");
    let record = lib_dir.join(RECORD);
    let listed: Vec<String> = match fs::read_to_string(&record) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        // An install older than the record: the fixed names it wrote.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut v = vec!["bin/vrift".to_string(), "lib/vrift/libvrift_shim.so".into()];
            v.extend(COMPLETIONS.iter().map(|(_, rel)| rel.to_string()));
            v
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", record.display())),
    };
    let mut removed = 0;
    for rel in listed
        .iter()
        .map(String::as_str)
        .chain([&*format!("lib/vrift/{RECORD}")])
    {
        // The record is ours: never follow it out of the prefix.
        ensure!(
            !rel.starts_with('/') && !rel.split('/').any(|c| c == ".."),
            "{}: {rel:?} is not a path inside the prefix",
            record.display()
        );
        let path = prefix.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {
                println!("removed {}", path.display());
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    match fs::remove_dir(&lib_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("xtask: kept {}: {e}", lib_dir.display()),
    }
    if removed == 0 {
        println!("nothing of vrift's was installed in {}", prefix.display());
    }
    println!(
        "kept: the store and trusted projects (~/.local/share/vrift; `rm -r` it to delete every ingested file's only copy), \
         and the hook line in your shell's rc file (remove it by hand). \
         Shells still inside an inception lose the library for new processes: leave them with `eval \"$(vrift wake)\"` or restart them."
    );
    Ok(())
}

/// `--prefix` made absolute, else `$HOME/.local`.
fn resolve_prefix(prefix: Option<PathBuf>) -> Result<PathBuf> {
    let prefix = match prefix {
        Some(p) => p,
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .context("HOME is not set: give --prefix")?;
            PathBuf::from(home).join(".local")
        }
    };
    std::path::absolute(&prefix)
        .with_context(|| format!("cannot make {} absolute", prefix.display()))
}

/// Writes `bytes` to `dest` with `mode` by renaming a temporary file of the
/// same directory over it (see the module comment); an identical file is
/// left alone.
fn place(bytes: &[u8], dest: &Path, mode: u32) -> Result<()> {
    let dir = dest.parent().context("an install path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let (Ok(old), Ok(meta)) = (fs::read(dest), fs::metadata(dest)) {
        if old == bytes && meta.permissions().mode() & 0o7777 == mode {
            return Ok(());
        }
    }
    let name = dest.file_name().context("an install path has a name")?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.new.", name.to_string_lossy()))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", tmp.path().display()))?;
    tmp.persist(dest)
        .with_context(|| format!("cannot rename a new file over {}", dest.display()))?;
    Ok(())
}

/// The man pages: `vrift.1` and one per visible subcommand (`vrift-init.1`…).
fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let mut page = Vec::new();
        man.render(&mut page)?;
        out.push((man.get_filename(), page));
        Ok(())
    }
    // As clap_mangen::generate_to does, minus its in-place writes.
    let mut cmd = vrift::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    walk(cmd, &mut pages)?;
    Ok(pages)
}

/// Asks the installed `vrift doctor` whether it finds the installed library
/// and whether both are the same version; returns that version.
fn check_pair(bin: &Path) -> Result<String> {
    // From / : no project, so doctor starts no daemon.
    let out = Command::new(bin)
        .args(["doctor", "--json"])
        .current_dir("/")
        .env_remove("VRIFT_SHIM_PATH")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "`{} doctor --json` printed no report: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let shim = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "shim"))
        .context("`vrift doctor --json` has no shim check")?;
    if shim["status"] != "ok" {
        bail!(
            "the installed pair does not work: {} — {}",
            shim["detail"].as_str().unwrap_or(""),
            shim["hint"].as_str().unwrap_or("")
        );
    }
    let version = Command::new(bin).arg("--version").output()?;
    Ok(String::from_utf8_lossy(&version.stdout)
        .trim()
        .trim_start_matches("vrift ")
        .to_string())
}

/// PATH, the hook, completions: what the user still has to do.
fn print_next_steps(prefix: &Path) {
    let bin = prefix.join("bin");
    let on_path =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == bin));
    println!("\nnext:");
    if !on_path {
        println!(
            "  {} is not on PATH; add this line to ~/.bashrc (or ~/.zshrc) and open a new shell:\n    export PATH=\"{}:$PATH\"",
            bin.display(),
            bin.display()
        );
    }
    println!("  enter trusted projects on `cd`: add this line to ~/.bashrc (after the PATH line):\n    eval \"$(vrift hook bash)\"");
    println!("  (zsh: eval \"$(vrift hook zsh)\" in ~/.zshrc; fish: vrift hook fish | source in config.fish)");
    println!(
        "  zsh completions: fpath+=({}) before compinit; man pages: man vrift (MANPATH may need {})",
        prefix.join("share/zsh/site-functions").display(),
        prefix.join("share/man").display()
    );
    println!("  check the set-up: vrift doctor");
}
