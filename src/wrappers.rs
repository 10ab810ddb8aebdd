//! `.vrift/bin`: the wrappers (DESIGN.md §3) for the coreutils vrift has an
//! applet for and for the commands listed under `[wrappers]` in
//! `.vrift/config.toml`, rendered from `wrappers/wrapper.sh`.
//!
//! A wrapper bakes in the project root, its own directory and the vrift
//! binary that wrote it, so it is regenerated whenever that changes: `vrift
//! init`, `vrift run` and entering the inception compare each wrapper with
//! what this vrift would write, and rewrite the ones that differ (atomic
//! renames: a build running a wrapper meanwhile runs the old or the new
//! file, never half of one). Files in `.vrift/bin` that carry the wrapper
//! mark but are no longer wanted are removed; other files are left alone.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::project::{write_atomic, Project};
use crate::ui;

/// The template (POSIX sh). Placeholders: `{{name}}`, `{{path}}`, `{{root}}`, `{{bin}}`,
/// `{{vrift}}`, `{{os}}` (inside single quotes in the template, so that it
/// passes shellcheck as it is) and `{{stamp}}` (in a comment).
pub const TEMPLATE: &str = include_str!("../wrappers/wrapper.sh");

/// The line that marks a file as a vrift wrapper.
const MARK: &str = "# vrift-wrapper: ";

/// The project's wrapper directory.
pub fn bin_dir(project: &Project) -> PathBuf {
    project.state_dir().join("bin")
}

/// `s` for the inside of a single-quoted shell word (`'` as `'\''`).
pub fn sh_single_quoted(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if c == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(c);
        }
    }
    out
}

/// `template` with each `{{key}}` of `values` replaced (one pass; `{{`
/// not followed by a key is kept). Runs for every wrapper at every
/// `vrift run`, so it must not scan byte by byte.
fn fill(template: &[u8], values: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(i) = rest.windows(2).position(|w| w == b"{{") {
        out.extend_from_slice(&rest[..i]);
        rest = &rest[i..];
        match values
            .iter()
            .find(|(key, _)| rest.starts_with(key.as_bytes()))
        {
            Some((key, value)) => {
                out.extend_from_slice(value);
                rest = &rest[key.len()..];
            }
            None => {
                out.extend_from_slice(b"{{");
                rest = &rest[2..];
            }
        }
    }
    out.extend_from_slice(rest);
    out
}

/// The `uname -s` of this system, which the wrapper tests for Darwin.
fn os_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "Darwin"
    } else if cfg!(target_os = "linux") {
        "Linux"
    } else {
        std::env::consts::OS
    }
}

/// The stamp: vrift's version and the template's hash.
pub fn stamp() -> &'static str {
    static STAMP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STAMP.get_or_init(|| {
        let hash = blake3::hash(TEMPLATE.as_bytes()).to_hex();
        format!("{} template {}", env!("CARGO_PKG_VERSION"), &hash[..16])
    })
}

/// The wrapper for `w` in the project rooted at `root`, calling `vrift`
/// (paths as bytes: a project's path need not be UTF-8).
pub fn render(w: &Wanted, root: &Path, bin: &Path, vrift: &Path) -> Vec<u8> {
    let q = |p: &Path| sh_single_quoted(p.as_os_str().as_bytes());
    fill(
        TEMPLATE.as_bytes(),
        &[
            ("{{stamp}}", stamp().as_bytes().to_vec()),
            ("{{name}}", sh_single_quoted(w.name.as_bytes())),
            (
                "{{path}}",
                sh_single_quoted(w.path.as_deref().unwrap_or("").as_bytes()),
            ),
            ("{{root}}", q(root)),
            ("{{bin}}", q(bin)),
            ("{{vrift}}", q(vrift)),
            ("{{os}}", sh_single_quoted(os_name().as_bytes())),
        ],
    )
}

/// Whether `name` can be a wrapper: a plain command name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(&c))
}

/// A wrapper `.vrift/bin` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Its file name in `.vrift/bin`: the command name builds call.
    pub name: String,
    /// For a `[wrappers] commands` entry written as a path relative to the
    /// project root (`node_modules/.bin/tsc`): that path, which the wrapper
    /// runs instead of looking the name up on PATH.
    pub path: Option<String>,
}

/// What a `[wrappers] commands` entry names: a bare command name, or a path
/// relative to the project root (`./` allowed, no `..`, not absolute),
/// whose last component names the wrapper. None when it is neither.
pub fn parse_command(entry: &str) -> Option<Wanted> {
    if !entry.contains('/') {
        return valid_name(entry).then(|| Wanted {
            name: entry.to_string(),
            path: None,
        });
    }
    let rel = entry.trim_start_matches("./");
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    // A trailing slash names a directory, never a command.
    if entry.starts_with('/') || entry.ends_with('/') || parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    let name = parts.last()?.to_string();
    valid_name(&name).then(|| Wanted {
        name,
        path: Some(parts.join("/")),
    })
}

/// The commands the project wraps: vrift's applets, the build commands on
/// PATH that cannot load the library (static, setuid, capabilities: see
/// `inspect`), then `[wrappers] commands` (invalid entries are reported and
/// skipped; of two entries with one name, the first wins).
pub fn wanted(project: &Project) -> Result<Vec<Wanted>> {
    let bare = |name: &str| Wanted {
        name: name.to_string(),
        path: None,
    };
    let mut wanted: Vec<Wanted> = vrift_coreutils::APPLETS.iter().map(|s| bare(s)).collect();
    for name in auto_wrapped(project) {
        if valid_name(&name) && !wanted.iter().any(|w| w.name == name) {
            wanted.push(bare(&name));
        }
    }
    for entry in project.config()?.wrappers.commands {
        match parse_command(&entry) {
            None => ui::warn(&format!(
                "[wrappers] commands: {entry:?} is neither a command name nor a path relative to the project root; no wrapper for it"
            )),
            Some(w) if wanted.iter().any(|o| o.name == w.name) => {
                if w.path.is_some() {
                    ui::warn(&format!(
                        "[wrappers] commands: {entry:?}: .vrift/bin/{} already wraps another command; no wrapper for it",
                        w.name
                    ));
                }
            }
            Some(w) => wanted.push(w),
        }
    }
    Ok(wanted)
}

/// The file listing the build commands `vrift init` found unable to load
/// the library (inspecting binaries reads them whole: done once, not on
/// every `vrift run`).
fn auto_list(project: &Project) -> PathBuf {
    project.state_dir().join("auto-wrapped")
}

fn auto_wrapped(project: &Project) -> Vec<String> {
    fs::read_to_string(auto_list(project))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Finds the build commands on PATH that cannot load the library, reports
/// them, and records them so they get a wrapper (run by `vrift init`).
pub fn detect_unpreloadable(project: &Project) -> Result<()> {
    let found = crate::inspect::unpreloadable_build_commands();
    let mut text = String::new();
    for (name, inspection) in &found {
        ui::warn(&format!(
            "{name} ({}) cannot load vrift's library ({}); it gets a wrapper in .vrift/bin",
            inspection.path().display(),
            inspection.why()
        ));
        text.push_str(name);
        text.push('\n');
    }
    write_atomic(&auto_list(project), text.as_bytes())
}

/// What [`ensure`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

/// Brings `.vrift/bin` up to date for the running vrift binary.
pub fn ensure(project: &Project) -> Result<Changes> {
    let exe = std::env::current_exe().context("cannot find the vrift binary")?;
    // (/proc/self/exe names the binary by its canonical path already.)
    ensure_with(project, &exe)
}

/// Where [`ensure_with`] records what it last left in `.vrift/bin`: in the
/// user's data directory, not in the project (a file the project could
/// write would let it keep a planted program past the check). None without
/// a home: every call then checks each wrapper in full.
fn record_path(project: &Project) -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "vrift")?;
    let key = blake3::hash(project.root().as_os_str().as_bytes());
    Some(dirs.data_dir().join("wrappers").join(&key.to_hex()[..32]))
}

/// What `.vrift/bin` holds when it is up to date for `vrift` and `names`:
/// the inputs of every wrapper, then the identity of the directory and of
/// each wrapper as the kernel reports it (inode, size, change time — the
/// ctime moves on any write, and no tool can set it back). None when one
/// is missing.
fn bin_record(project: &Project, bin: &Path, vrift: &Path, wanted: &[Wanted]) -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let mut record = Vec::new();
    for part in [
        stamp().as_bytes(),
        project.root().as_os_str().as_bytes(),
        vrift.as_os_str().as_bytes(),
    ] {
        record.extend_from_slice(part);
        record.push(b'\n');
    }
    let identity = |m: &fs::Metadata| {
        format!(
            "{} {} {} {}.{} {:o}\n",
            m.dev(),
            m.ino(),
            m.size(),
            m.ctime(),
            m.ctime_nsec(),
            m.mode()
        )
    };
    record.extend_from_slice(identity(&fs::symlink_metadata(bin).ok()?).as_bytes());
    for w in wanted {
        let meta = fs::symlink_metadata(bin.join(&w.name)).ok()?;
        record.extend_from_slice(w.name.as_bytes());
        record.push(b' ');
        // The path is an input of the wrapper too: a changed path rewrites it.
        record.extend_from_slice(w.path.as_deref().unwrap_or("").as_bytes());
        record.push(b' ');
        record.extend_from_slice(identity(&meta).as_bytes());
    }
    Some(record)
}

/// [`ensure`] with the vrift binary given.
///
/// Every `vrift run` and every entry into the inception calls this, so the
/// common case (nothing changed) is a stat per wrapper against the record
/// the last full pass left, not a render, read and compare of each.
pub fn ensure_with(project: &Project, vrift: &Path) -> Result<Changes> {
    let bin = bin_dir(project);
    let wanted = wanted(project)?;
    let record = record_path(project);
    if let (Some(now), Some(then)) = (
        bin_record(project, &bin, vrift, &wanted),
        record.as_ref().and_then(|r| fs::read(r).ok()),
    ) {
        if now == then {
            return Ok(Changes::default());
        }
    }
    // `.vrift/bin` is vrift's: a symlink or a file in its place (a project
    // may ship one) is removed, never followed.
    if fs::symlink_metadata(&bin).is_ok_and(|m| !m.is_dir()) {
        fs::remove_file(&bin).with_context(|| format!("cannot remove {}", bin.display()))?;
    }
    fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let mut changes = Changes::default();
    for w in &wanted {
        let name = &w.name;
        let path = bin.join(name);
        let text = render(w, project.root(), &bin, vrift);
        // Only a regular file is read back (a symlink could change under it).
        let meta = fs::symlink_metadata(&path).ok().filter(|m| m.is_file());
        let current = meta.as_ref().and_then(|_| fs::read(&path).ok());
        let executable = meta.is_some_and(|m| m.permissions().mode() & 0o111 != 0);
        if current.as_deref() == Some(&text[..]) && executable {
            continue;
        }
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        write_atomic(&path, &text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
        changes.written.push(name.clone());
    }
    for entry in fs::read_dir(&bin).with_context(|| format!("cannot list {}", bin.display()))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Dot files are other vrifts' temporary files, about to be renamed
        // into place: no wrapper name starts with a dot, and PATH lookups
        // of build commands never find one.
        if wanted.iter().any(|w| w.name == name) || name.starts_with('.') {
            continue;
        }
        // Anything else would run, first on PATH, as whatever command it
        // is named after: only what vrift derived from the trusted config
        // may be there (issue 14). A file vrift did not write is reported.
        if !is_wrapper(&entry.path()) {
            ui::warn(&format!(
                "removed {}: .vrift/bin holds only the wrappers vrift writes (list a command under [wrappers] in .vrift/config.toml instead)",
                entry.path().display()
            ));
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
        changes.removed.push(name);
    }
    if let (Some(now), Some(record)) = (bin_record(project, &bin, vrift, &wanted), record) {
        if let Some(dir) = record.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write_atomic(&record, &now)?;
    }
    Ok(changes)
}

/// Whether the file at `path` is a wrapper vrift wrote.
fn is_wrapper(path: &Path) -> bool {
    let Ok(text) = fs::read(path) else {
        return false;
    };
    text.len() < 64 * 1024
        && String::from_utf8_lossy(&text)
            .lines()
            .take(8)
            .any(|l| l.starts_with(MARK))
}

/// [`ensure`] where a failure must not stop the command (entering the
/// inception): a warning instead.
pub fn refresh(project: &Project) {
    if let Err(e) = ensure(project) {
        ui::warn(&format!(
            "cannot update the wrappers in {}: {e:#}",
            bin_dir(project).display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_every_placeholder_filled() {
        assert_eq!(sh_single_quoted(b"a'b c"), b"a'\\''b c");
        let text = render(
            &Wanted {
                name: "rm".into(),
                path: None,
            },
            Path::new("/p/it's"),
            Path::new("/p/it's/.vrift/bin"),
            Path::new("/usr/bin/vrift"),
        );
        let text = String::from_utf8(text).unwrap();
        assert!(!text.contains("{{"), "{text}");
        assert!(text.contains("vrift_root='/p/it'\\''s'"), "{text}");
        assert!(text.lines().nth(3).unwrap().starts_with(MARK));
        for name in ["make", "g++", "x.y", "c-c"] {
            assert!(valid_name(name), "{name}");
        }
        for name in ["", ".", "..", "-x", "a/b", "a b", "$(x)"] {
            assert!(!valid_name(name), "{name}");
        }
    }

    #[test]
    fn commands_are_names_or_paths_in_the_project() {
        let parsed = |e: &str| parse_command(e).map(|w| (w.name, w.path));
        assert_eq!(parsed("tsc"), Some(("tsc".into(), None)));
        for e in ["node_modules/.bin/tsc", "./node_modules//.bin/./tsc"] {
            assert_eq!(
                parsed(e),
                Some(("tsc".into(), Some("node_modules/.bin/tsc".into()))),
                "{e}"
            );
        }
        for e in [
            "/usr/bin/tsc",
            "../x/tsc",
            "a/../tsc",
            "a/",
            "./",
            "bin/-x",
            "bin/a b",
        ] {
            assert_eq!(parsed(e), None, "{e}");
        }
    }
}
