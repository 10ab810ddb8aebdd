//! Inception in an interactive shell: the code `vrift inception`, `vrift
//! wake` and the per-prompt hook print for `eval`.
//!
//! Entering records, in `VRIFT_SAVED`, the prior value (or absence) of every
//! variable it changes; waking restores exactly those. The prompt marker is
//! kept in shell variables (prompts are not exported).

pub mod env;
pub mod shell;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::env_vars;
use crate::project::{Project, STATE_DIR};
use shell::Shell;

/// The variables an inception sets, in the order its code sets them.
pub const MANAGED: [&str; 8] = [
    env_vars::VRIFT_PROJECT_ROOT,
    env_vars::VRIFT_INCEPTION,
    env_vars::VR_THE_SOURCE,
    env_vars::VRIFT_SHIM_PATH,
    env_vars::VRIFT_MANIFEST,
    env_vars::VRIFT_EXE,
    "LD_PRELOAD",
    "PATH",
];

/// Prior values: name → `Some(value)` or `None` (was unset).
pub type Saved = BTreeMap<String, Option<OsString>>;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `NAME=hex(value)` or `NAME=-` (unset), joined with `;`.
pub fn encode_saved(saved: &Saved) -> String {
    let mut out = String::new();
    for (name, value) in saved {
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(name);
        out.push('=');
        match value {
            None => out.push('-'),
            Some(v) => {
                for &b in v.as_encoded_bytes() {
                    out.push(HEX[(b >> 4) as usize] as char);
                    out.push(HEX[(b & 15) as usize] as char);
                }
            }
        }
    }
    out
}

/// Inverse of [`encode_saved`]; `None` when malformed.
pub fn decode_saved(text: &str) -> Option<Saved> {
    let mut saved = Saved::new();
    if text.is_empty() {
        return Some(saved);
    }
    for item in text.split(';') {
        let (name, value) = item.split_once('=')?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        let value = if value == "-" {
            None
        } else {
            let hex = value.as_bytes();
            if hex.len() % 2 != 0 {
                return None;
            }
            let mut bytes = Vec::with_capacity(hex.len() / 2);
            for pair in hex.chunks(2) {
                let s = std::str::from_utf8(pair).ok()?;
                bytes.push(u8::from_str_radix(s, 16).ok()?);
            }
            // On Unix any bytes make an OsString.
            Some(std::os::unix::ffi::OsStringExt::from_vec(bytes))
        };
        saved.insert(name.to_string(), value);
    }
    Some(saved)
}

/// The saved diff of the current inception, if a hook or `vrift inception`
/// entered one (`vrift run` does not record one).
pub fn current_saved() -> Option<Saved> {
    let text = std::env::var_os(env_vars::VRIFT_SAVED)?;
    decode_saved(text.to_str()?)
}

/// Code restoring every variable in `saved`, then the prompt.
pub fn wake_code(shell: Shell, saved: &Saved) -> Vec<u8> {
    let sx = shell.syntax();
    let mut out = Vec::new();
    for (name, value) in saved {
        match value {
            Some(v) => sx.set_env(&mut out, name, v),
            None => sx.unset_env(&mut out, name),
        }
    }
    sx.unset_env(&mut out, env_vars::VRIFT_SAVED);
    sx.prompt_off(&mut out);
    sx.view_off(&mut out);
    out
}

/// Code entering the inception `inc`. When `saved` (the current inception's
/// diff) is given, it is woken from first and the new inception is built on
/// the environment it restores.
pub fn enter_code(shell: Shell, inc: &env::InceptionEnv, saved: Option<&Saved>) -> Vec<u8> {
    let base = |name: &str| -> Option<OsString> {
        match saved.and_then(|s| s.get(name)) {
            Some(prior) => prior.clone(),
            None => std::env::var_os(name),
        }
    };
    let mut out = match saved {
        Some(s) => wake_code(shell, s),
        None => Vec::new(),
    };
    let mut prior = Saved::new();
    for name in MANAGED {
        prior.insert(name.to_string(), base(name));
    }
    let mut vars: Vec<(&str, OsString)> = inc.vars(base("LD_PRELOAD").as_deref());
    let mut path = inc.bin_dir().into_os_string();
    if let Some(old) = base("PATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    vars.push(("PATH", path));
    let sx = shell.syntax();
    sx.set_env(
        &mut out,
        env_vars::VRIFT_SAVED,
        OsStr::new(&encode_saved(&prior)),
    );
    for (name, value) in &vars {
        sx.set_env(&mut out, name, value);
    }
    sx.prompt_on(&mut out);
    sx.view_on(&mut out, inc.root().as_os_str());
    out
}

/// Whether the inception of `project` may be entered; otherwise the reason.
pub fn trusted(project: &Project) -> Result<std::result::Result<(), String>> {
    Ok(
        match crate::trust::check(project.root(), &project.config_path())? {
            crate::trust::Trust::Trusted => Ok(()),
            crate::trust::Trust::ConfigChanged => Err(format!(
                "{} is not trusted: its .vrift/config.toml changed since it was allowed; review it, then run `vrift allow` to enter its rift",
                project.root().display()
            )),
            crate::trust::Trust::Unknown => Err(format!(
                "{} is not trusted; run `vrift allow` in it to enter its rift",
                project.root().display()
            )),
        },
    )
}

/// Starts the project's daemon in the background (without waiting for it),
/// so the first write in the inception does not pay for its start.
pub fn wake_daemon(project: &Project) {
    if crate::daemon::client::connect(&crate::daemon::socket_path(project)).is_ok() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // `daemon start` waits until the daemon answers; nobody waits for it.
    let _ = std::process::Command::new(exe)
        .arg("-C")
        .arg(project.root())
        .args(["daemon", "start"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// The "entering" line, unless silenced by `VRIFT_QUIET` or the config.
pub fn announce(project: &Project) {
    if crate::ui::quiet() {
        return;
    }
    if project.config().map(|c| c.inception.quiet).unwrap_or(false) {
        return;
    }
    eprintln!("🌀 entering the rift of {}", project.root().display());
}

/// The nearest ancestor of `dir` (canonical) holding `.vrift/`.
fn find_root(dir: &Path) -> Option<PathBuf> {
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.join(STATE_DIR).is_dir() {
            return Some(p.to_path_buf());
        }
        d = p.parent();
    }
    None
}

/// What the per-prompt hook prints: nothing when nothing changed, wake code
/// on leaving, inception code on entering a trusted project. Entering an
/// untrusted one prints why on stderr, once per visit (remembered in
/// `VRIFT_BLOCKED`; its trust is still checked at each prompt there, so
/// `vrift allow` takes effect at the next one).
pub fn hook_env(shell: Shell) -> Result<Vec<u8>> {
    // Fast path: still inside the current inception's root.
    let root = std::env::var_os(env_vars::VRIFT_PROJECT_ROOT).filter(|r| !r.is_empty());
    let cwd = std::env::current_dir()?;
    if let Some(root) = &root {
        if cwd.starts_with(Path::new(root)) {
            return Ok(Vec::new());
        }
    }
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let target = find_root(&cwd);
    if target.is_some() && target.as_deref().map(Path::as_os_str) == root.as_deref() {
        return Ok(Vec::new());
    }
    let saved = current_saved();
    let blocked = std::env::var_os(env_vars::VRIFT_BLOCKED).filter(|b| !b.is_empty());
    let sx = shell.syntax();
    if let Some(target) = target {
        let project = Project::at(&target)?;
        match trusted(&project)? {
            Ok(()) => {
                let inc = env::prepare(&project)?;
                wake_daemon(&project);
                announce(&project);
                let mut code = enter_code(shell, &inc, saved.as_ref());
                if blocked.is_some() {
                    sx.unset_env(&mut code, env_vars::VRIFT_BLOCKED);
                }
                return Ok(code);
            }
            Err(why) => {
                let mut code = wake_if_in(shell, saved.as_ref());
                if blocked.as_deref() != Some(target.as_os_str()) {
                    if !crate::ui::quiet() {
                        eprintln!("vrift: {why}");
                    }
                    sx.set_env(&mut code, env_vars::VRIFT_BLOCKED, target.as_os_str());
                }
                return Ok(code);
            }
        }
    }
    let mut code = wake_if_in(shell, saved.as_ref());
    if blocked.is_some() {
        sx.unset_env(&mut code, env_vars::VRIFT_BLOCKED);
    }
    Ok(code)
}

/// Wake code for the inception `saved` describes, if the shell is in one.
fn wake_if_in(shell: Shell, saved: Option<&Saved>) -> Vec<u8> {
    saved.map_or_else(Vec::new, |s| wake_code(shell, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn saved_round_trips_any_bytes() {
        let mut saved = Saved::new();
        saved.insert("A".into(), None);
        saved.insert("B".into(), Some(OsString::new()));
        saved.insert(
            "C_1".into(),
            Some(OsString::from_vec(b"x;y=z\n'\"\xff\x01-".to_vec())),
        );
        let text = encode_saved(&saved);
        assert_eq!(decode_saved(&text), Some(saved));
        assert_eq!(decode_saved("A=zz"), None);
        assert_eq!(decode_saved("=-"), None);
    }
}
