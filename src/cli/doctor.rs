//! `vrift doctor`: checks the set-up end to end, one line per check.
//!
//! Each check answers one question a user would otherwise debug by hand:
//! does the shim load, can the store be written, is this project trusted, is
//! the hook in the shell's rc file, and can the commands builds run load the
//! shim at all. Exit status 1 when any check failed; advice (the hook not
//! in the rc file yet) is printed with `!` and does not fail.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Outcome;
use crate::inspect::{self, Blocker, Inspection};
use crate::project::Project;
use crate::{cas, env_vars, trust};

/// The commands builds call, checked whatever the project says.
use crate::inspect::BUILD_COMMANDS;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Fail,
    /// Nothing to check (not in a project, command not installed).
    Skip,
    /// Works, but something would make daily use easier (the hook not yet
    /// in the shell's rc file): advice, not a failure.
    Advice,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inspection: Option<Inspection>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            hint: None,
            inspection: None,
        }
    }

    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Ok, detail)
    }

    fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, detail)
    }

    fn advice(
        name: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        let mut c = Check::new(name, Status::Advice, detail);
        c.hint = Some(hint.into());
        c
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        let mut c = Check::new(name, Status::Fail, detail);
        c.hint = Some(hint.into());
        c
    }
}

pub fn doctor(json: bool) -> Result<Outcome> {
    let project = Project::current().ok();
    let mut checks = vec![check_shim(), check_store(project.as_ref())];
    checks.push(check_trust(project.as_ref()));
    checks.push(check_daemon(project.as_ref()));
    checks.push(check_hook());
    checks.push(check_unviewed());
    checks.extend(check_commands(project.as_ref()));

    let failed = checks.iter().any(|c| c.status == Status::Fail);
    let mut out = std::io::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Report<'a> {
            ok: bool,
            checks: &'a [Check],
        }
        let report = Report {
            ok: !failed,
            checks: &checks,
        };
        // Written as a string: a closed pipe must stay an io::Error.
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "✓",
                Status::Fail => "✗",
                Status::Skip => "-",
                Status::Advice => "!",
            };
            match &c.hint {
                Some(hint) => writeln!(out, "{mark} {}: {} — {hint}", c.name, c.detail)?,
                None => writeln!(out, "{mark} {}: {}", c.name, c.detail)?,
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}

/// The shim is found, the loader accepts it, and it is this vrift's version.
fn check_shim() -> Check {
    const NAME: &str = "shim";
    let shim = match crate::inception::env::shim_path() {
        Ok(p) => p,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("{e:#}"),
                "install vrift with `cargo xtask install` (it puts the library in PREFIX/lib/vrift/), or set VRIFT_SHIM_PATH",
            )
        }
    };
    let version = match shim_version(&shim) {
        Ok(v) => v,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("{}: {e:#}", shim.display()),
                "reinstall vrift (`cargo xtask install`)",
            )
        }
    };
    let ours = env!("CARGO_PKG_VERSION");
    if version != ours {
        return Check::fail(
            NAME,
            format!("{} is version {version}, vrift is {ours}", shim.display()),
            "reinstall both from one checkout (`cargo xtask install`)",
        );
    }
    match preload_probe(&shim) {
        Ok(()) => Check::ok(
            NAME,
            format!("{} loads (version {version})", shim.display()),
        ),
        Err(why) => Check::fail(
            NAME,
            format!("{} does not load: {why}", shim.display()),
            "rebuild it for this machine (`cargo build -p vrift-shim`)",
        ),
    }
}

fn shim_version(shim: &Path) -> Result<String> {
    let data = std::fs::read(shim).with_context(|| format!("cannot read {}", shim.display()))?;
    let bytes = inspect::elf::symbol_bytes(&data, "VRIFT_SHIM_VERSION")?
        .context("no VRIFT_SHIM_VERSION symbol: not a vrift shim")?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// Runs `sh` with only the shim preloaded: it must exit 0, print nothing
/// (ld.so reports a library it cannot preload on stderr and goes on), and
/// have the shim mapped.
#[cfg(target_os = "linux")]
fn preload_probe(shim: &Path) -> std::result::Result<(), String> {
    // /proc/PID/maps names the file by its canonical path.
    let shim = std::fs::canonicalize(shim).map_err(|e| format!("cannot resolve it: {e}"))?;
    let out = Command::new("/bin/sh")
        .args(["-c", "grep -qF -- \"$1\" /proc/$$/maps", "vrift-doctor"])
        .arg(&shim)
        .env("LD_PRELOAD", &shim)
        .env_remove(env_vars::VRIFT_DEBUG)
        .output()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(line) = stderr.lines().find(|l| !l.trim().is_empty()) {
        return Err(line.trim().to_string());
    }
    if !out.status.success() {
        return Err(format!("/bin/sh did not map it ({})", out.status));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn preload_probe(_shim: &Path) -> std::result::Result<(), String> {
    Err("loading is checked on Linux only".into())
}

/// The store can be written: a temp file is created and removed in it.
fn check_store(project: Option<&Project>) -> Check {
    const NAME: &str = "store";
    let root = cas::resolve_root(project.and_then(|p| p.recorded_store()).as_deref())
        .and_then(|root| cas::Cas::open(&root));
    let store = match root {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("{e:#}"),
                format!(
                    "make it writable, or point {} at a writable directory",
                    env_vars::VR_THE_SOURCE
                ),
            )
        }
    };
    let probe = tempfile::Builder::new()
        .prefix("doctor.")
        .tempfile_in(store.tmp_dir())
        .and_then(|f| f.close());
    match probe {
        Ok(()) => Check::ok(NAME, format!("{} is writable", store.root().display())),
        Err(e) => Check::fail(
            NAME,
            format!("cannot write in {}: {e}", store.tmp_dir().display()),
            format!(
                "fix its permissions, or point {} at a writable directory",
                env_vars::VR_THE_SOURCE
            ),
        ),
    }
}

/// The project containing the current directory is trusted.
fn check_trust(project: Option<&Project>) -> Check {
    const NAME: &str = "project";
    let Some(project) = project else {
        return Check::skip(NAME, "not inside a vrift project");
    };
    let root = project.root().display();
    if let Err(e) = project.config() {
        return Check::fail(NAME, format!("{e:#}"), "fix .vrift/config.toml");
    }
    match trust::check(project.root(), &project.config_path()) {
        Ok(trust::Trust::Trusted) => Check::ok(NAME, format!("{root} is trusted")),
        Ok(trust::Trust::ConfigChanged) => Check::fail(
            NAME,
            format!("{root}: .vrift/config.toml changed since it was trusted"),
            "review it, then run `vrift allow`",
        ),
        Ok(trust::Trust::Unknown) => Check::fail(
            NAME,
            format!("{root} is not trusted"),
            "run `vrift allow` in it",
        ),
        Err(e) => Check::fail(NAME, format!("{e:#}"), "check your home directory"),
    }
}

/// The project's daemon starts (if it was not running) and answers.
fn check_daemon(project: Option<&Project>) -> Check {
    const NAME: &str = "daemon";
    let Some(project) = project else {
        return Check::skip(NAME, "not inside a vrift project");
    };
    let socket = crate::daemon::socket_path(project);
    let log = project.state_dir().join("daemon.log");
    match crate::daemon::start(project).and_then(|()| crate::daemon::client::ping_socket(&socket)) {
        Ok(()) => Check::ok(NAME, format!("answers on {}", socket.display())),
        Err(e) => Check::fail(
            NAME,
            format!("{e:#}"),
            format!(
                "see {}; `vrift daemon run` shows errors in the foreground",
                log.display()
            ),
        ),
    }
}

/// The hook line is in the rc file of the user's shell (`$SHELL`). Only
/// advice when it is not: `vrift run` and `vrift inception` work without it,
/// and a fresh install has not had the chance to add it yet.
/// How programs that cannot load the library are kept in the view.
fn check_unviewed() -> Check {
    const NAME: &str = "static and Go programs";
    match crate::fuse_view::availability() {
        Ok(()) => Check::ok(NAME, "run in the FUSE view"),
        Err(why) => Check::advice(
            NAME,
            format!("run under the syscall supervisor (slower): {why}"),
            "allow unprivileged user namespaces, or make /dev/fuse 0666 (Debian's fuse3 package does)",
        ),
    }
}

fn check_hook() -> Check {
    const NAME: &str = "hook";
    let shell = std::env::var_os("SHELL").unwrap_or_default();
    let base = Path::new(&shell)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or("");
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Check::fail(NAME, "HOME is not set", "set HOME");
    };
    let (rc, line) = match base {
        "bash" => (home.join(".bashrc"), "eval \"$(vrift hook bash)\""),
        "zsh" => {
            let dir = std::env::var_os("ZDOTDIR").map_or(home, PathBuf::from);
            (dir.join(".zshrc"), "eval \"$(vrift hook zsh)\"")
        }
        "fish" => {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .map_or_else(|| home.join(".config"), PathBuf::from);
            (config.join("fish/config.fish"), "vrift hook fish | source")
        }
        _ => {
            return Check::advice(
                NAME,
                format!(
                    "SHELL is {:?}; the hook exists for bash, zsh and fish",
                    shell.to_string_lossy()
                ),
                "enter projects with `eval \"$(vrift inception)\"` or `vrift run`",
            )
        }
    };
    let installed = std::fs::read_to_string(&rc).is_ok_and(|text| {
        text.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("vrift hook"))
    });
    if installed {
        Check::ok(NAME, format!("installed in {}", rc.display()))
    } else {
        Check::advice(
            NAME,
            format!("not installed in {}", rc.display()),
            format!("add `{line}` to it to enter trusted projects on `cd`"),
        )
    }
}

/// Every command builds call: the usual ones, `$SHELL`, and the project's
/// `[wrappers] commands`, resolved on PATH and inspected.
fn check_commands(project: Option<&Project>) -> Vec<Check> {
    let mut names: Vec<OsString> = BUILD_COMMANDS.iter().map(OsString::from).collect();
    if let Some(shell) = std::env::var_os("SHELL").filter(|s| !s.is_empty()) {
        names.push(shell);
    }
    if let Some(config) = project.and_then(|p| p.config().ok()) {
        names.extend(config.wrappers.commands.iter().map(OsString::from));
    }
    let cwd = match project {
        Some(p) => p.root().to_path_buf(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut checks = Vec::new();
    for name in names {
        let label = name.to_string_lossy().into_owned();
        if !seen.insert(label.clone()) {
            continue;
        }
        // which_in resolves an entry with a slash against the project root.
        match which::which_in(&name, std::env::var_os("PATH"), &cwd) {
            Ok(path) => checks.push(check_command(label, &path)),
            Err(_) if label.contains('/') => checks.push(match project {
                Some(p) => check_view_command(p, label),
                None => Check::skip(label, "not in the project"),
            }),
            Err(_) => checks.push(Check::skip(label, "not on PATH")),
        }
    }
    checks
}

/// A `[wrappers]` path that is not on disk, such as a tool a build put in
/// the rift: inspected from a copy of its content in the view.
fn check_view_command(project: &Project, label: String) -> Check {
    let copy = (|| -> Result<Option<tempfile::NamedTempFile>> {
        let Some(rel) = crate::wrappers::parse_command(&label).and_then(|w| w.path) else {
            return Ok(None);
        };
        let (_lock, cas, manifest) = project.open_exclusive()?.into_parts();
        let txn = manifest.read()?;
        if matches!(
            crate::view::lookup(&txn, project, rel.as_bytes())?,
            crate::view::Node::Absent
        ) {
            return Ok(None);
        }
        let mut content = crate::view::read_file(&txn, project, &cas, rel.as_bytes())?;
        let mut tmp = tempfile::NamedTempFile::new()?;
        std::io::copy(&mut content, &mut tmp)?;
        Ok(Some(tmp))
    })();
    match copy {
        Ok(Some(tmp)) => {
            let mut check = check_command(label, tmp.path());
            check.detail = check
                .detail
                .replace(&tmp.path().display().to_string(), "its file in the view");
            check
        }
        Ok(None) => Check::skip(label, "not in the project"),
        Err(e) => Check::fail(
            label,
            format!("cannot read it from the view: {e:#}"),
            "check the path under [wrappers] in .vrift/config.toml",
        ),
    }
}

fn check_command(label: String, path: &Path) -> Check {
    let inspection = match inspect::inspect(path) {
        Ok(i) => i,
        Err(e) => {
            return Check::fail(
                label,
                format!("{e:#}"),
                "check that it is a readable program",
            )
        }
    };
    let mut check = if inspection.can_preload() {
        Check::ok(label, format!("{} can load the shim", path.display()))
    } else {
        let hint = hint_for(&label, &inspection.blockers);
        Check::fail(
            label,
            format!(
                "{} cannot load the shim: {}",
                path.display(),
                inspection.why()
            ),
            hint,
        )
    };
    check.inspection = Some(inspection);
    check
}

/// What to do about a program that cannot load the shim.
fn hint_for(name: &str, blockers: &[Blocker]) -> String {
    let signing = blockers.iter().any(|b| {
        matches!(
            b,
            Blocker::HardenedRuntime { .. } | Blocker::LibraryValidation { .. }
        )
    });
    if signing {
        format!("make a loadable copy with `vrift shadow {name}`")
    } else {
        "its own file accesses bypass the view (children it starts still load the shim); \
         use a dynamically linked build of it, or keep it out of builds in this project"
            .to_string()
    }
}
