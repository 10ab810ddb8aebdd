//! Which remotes exist: `[remotes.NAME]` tables in the project's
//! `.vrift/config.toml` and in the user's `$XDG_CONFIG_HOME/vrift/config.toml`
//! (else `~/.config/vrift/config.toml`), plus a `[remote]` table:
//!
//! ```toml
//! [remote]
//! default = "team"        # the remote used without --remote
//! project = "webapp"      # the name refs use: refs/<project>/<snapshot>
//!
//! [remotes.team]
//! url = "s3://bucket/prefix"
//! # Optional: pull refuses refs not signed by one of these (sign.rs).
//! trusted-keys = ["ci.example.com-1:BASE64…"]
//! ```
//!
//! A project's remote shadows a user remote of the same name. The files are
//! edited as text (appending or cutting one table), so the comments users
//! wrote stay.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::project::{write_atomic, Project};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct File {
    remote: Section,
    remotes: BTreeMap<String, Entry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Section {
    default: Option<String>,
    project: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    url: String,
    #[serde(default, rename = "trusted-keys")]
    trusted_keys: Vec<String>,
}

/// Where a remote is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Project,
    User,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Scope::Project => "project",
            Scope::User => "user",
        }
    }
}

/// A configured remote.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    pub name: String,
    pub url: String,
    pub scope: Scope,
    /// Public keys (`NAME:BASE64`) refs pulled from it must be signed by.
    pub trusted_keys: Vec<String>,
}

/// The user's config file.
pub fn user_config_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(v) if !v.is_empty() && Path::new(&v).is_absolute() => PathBuf::from(v),
        _ => PathBuf::from(
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    anyhow!("cannot find the user's config directory: $HOME is not set")
                })?,
        )
        .join(".config"),
    };
    Ok(base.join("vrift").join("config.toml"))
}

fn read(path: &Path) -> Result<(String, File)> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((String::new(), File::default()))
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let file =
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
    Ok((text, file))
}

/// The remotes visible from `project` (if any): project ones first.
pub struct Remotes {
    pub list: Vec<RemoteConfig>,
    default: Option<String>,
    project_name: Option<String>,
}

impl Remotes {
    pub fn load(project: Option<&Project>) -> Result<Remotes> {
        let mut list = Vec::new();
        let mut default = None;
        let mut project_name = None;
        if let Some(p) = project {
            let (_, f) = read(&p.config_path())?;
            default = f.remote.default;
            project_name = f.remote.project;
            for (name, e) in f.remotes {
                list.push(RemoteConfig {
                    name,
                    url: e.url,
                    scope: Scope::Project,
                    trusted_keys: e.trusted_keys,
                });
            }
        }
        let (_, f) = read(&user_config_path()?)?;
        default = default.or(f.remote.default);
        for (name, e) in f.remotes {
            if !list.iter().any(|r| r.name == name) {
                list.push(RemoteConfig {
                    name,
                    url: e.url,
                    scope: Scope::User,
                    trusted_keys: e.trusted_keys,
                });
            }
        }
        Ok(Remotes {
            list,
            default,
            project_name,
        })
    }

    pub fn is_default(&self, name: &str) -> bool {
        self.default.as_deref() == Some(name)
    }

    /// The remote a command uses: `--remote NAME`, else the configured
    /// default, else the only one.
    pub fn pick(&self, name: Option<&str>) -> Result<&RemoteConfig> {
        let find = |n: &str| {
            self.list.iter().find(|r| r.name == n).ok_or_else(|| {
                anyhow!("no remote named {n:?} (see `vrift remote list`; add one with `vrift remote add NAME URL`)")
            })
        };
        if let Some(n) = name {
            return find(n);
        }
        if let Some(n) = &self.default {
            return find(n);
        }
        match self.list.as_slice() {
            [only] => Ok(only),
            [] => bail!("no remote configured: add one with `vrift remote add NAME URL`"),
            many => bail!(
                "{} remotes are configured ({}): choose one with --remote NAME, or set `default` under [remote] in .vrift/config.toml",
                many.len(),
                many.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The project's name in refs: `[remote] project`, else the name of its
/// root directory; characters outside `A-Za-z0-9._-` become `_`.
pub fn project_name(project: &Project) -> Result<String> {
    let configured = Remotes::load(Some(project))?.project_name;
    let raw = match configured {
        Some(n) => n,
        None => project
            .root()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".to_string()),
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        bail!("project name {raw:?} cannot name refs: set `project` under [remote] in .vrift/config.toml");
    }
    Ok(clean)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!("invalid remote name {name:?}: use 1-64 letters, digits, - and _");
    }
    Ok(())
}

fn header(name: &str) -> String {
    format!("[remotes.{name}]")
}

/// Adds `[remotes.NAME] url = URL` (and `trusted-keys`, if any) to the
/// config file at `path`.
pub fn add(path: &Path, name: &str, url: &str, trusted_keys: &[String]) -> Result<()> {
    check_name(name)?;
    // Refuse what cannot work before writing it down.
    crate::remote::store::check_url(url)?;
    for k in trusted_keys {
        super::sign::PublicKey::parse(k)?;
    }
    let (mut text, f) = read(path)?;
    if f.remotes.contains_key(name) {
        bail!(
            "remote {name:?} already exists in {}; remove it first",
            path.display()
        );
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    // JSON string escapes are valid TOML basic-string escapes.
    text.push_str(&format!(
        "\n{}\nurl = {}\n",
        header(name),
        serde_json::to_string(url)?
    ));
    if !trusted_keys.is_empty() {
        text.push_str(&format!(
            "trusted-keys = {}\n",
            serde_json::to_string(trusted_keys)?
        ));
    }
    write_checked(path, &text)
}

/// Removes `[remotes.NAME]` (the table's lines, up to the next table).
pub fn remove(path: &Path, name: &str) -> Result<bool> {
    let (text, f) = read(path)?;
    if !f.remotes.contains_key(name) {
        return Ok(false);
    }
    let want = header(name);
    let mut out: Vec<&str> = Vec::new();
    let mut skipping = false;
    let mut found = false;
    for line in text.lines() {
        let t = line.trim();
        if t == want {
            skipping = true;
            found = true;
            while out.last().is_some_and(|l| l.trim().is_empty()) {
                out.pop();
            }
            continue;
        }
        if skipping && t.starts_with('[') {
            skipping = false;
            out.push("");
        }
        if !skipping {
            out.push(line);
        }
    }
    if !found {
        bail!(
            "remote {name:?} in {} is not written as a `{want}` table; edit the file to remove it",
            path.display()
        );
    }
    let mut new = out.join("\n");
    new.push('\n');
    write_checked(path, &new)?;
    Ok(true)
}

fn write_checked(path: &Path, text: &str) -> Result<()> {
    toml::from_str::<File>(text).with_context(|| {
        format!(
            "editing {} would make it invalid; edit it by hand",
            path.display()
        )
    })?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomic(path, text.as_bytes())
}

/// How `trust`/`untrust` change a remote's keys.
pub enum KeyEdit<'a> {
    /// Add these keys (`NAME:BASE64`; those already there are kept once).
    Add(&'a [String]),
    /// Remove the keys that are one of these, or whose name (before `:`) is.
    Remove(&'a [String]),
}

/// Changes the `trusted-keys` of `[remotes.NAME]` in the config file at
/// `path`; returns the remote's keys afterwards and how many were added or
/// removed. `None`: the file has no such remote. The table's other lines
/// (and the file's comments) stay; the `trusted-keys` line is rewritten
/// right after the header.
pub fn edit_trusted_keys(
    path: &Path,
    name: &str,
    edit: KeyEdit<'_>,
) -> Result<Option<(Vec<String>, usize)>> {
    let (text, f) = read(path)?;
    let Some(entry) = f.remotes.get(name) else {
        return Ok(None);
    };
    let mut keys = entry.trusted_keys.clone();
    let changed = match edit {
        KeyEdit::Add(add) => {
            let mut n = 0;
            for k in add {
                let key = super::sign::PublicKey::parse(k)?;
                if let Some(same) = keys
                    .iter()
                    .find(|old| old.split(':').next() == Some(key.name.as_str()) && *old != k)
                {
                    bail!("remote {name:?} trusts another key named {:?} already ({same}); untrust it first", key.name);
                }
                if !keys.contains(k) {
                    keys.push(k.clone());
                    n += 1;
                }
            }
            n
        }
        KeyEdit::Remove(gone) => {
            let before = keys.len();
            keys.retain(|k| {
                !gone
                    .iter()
                    .any(|g| k == g || k.split(':').next() == Some(g.as_str()))
            });
            before - keys.len()
        }
    };
    if changed == 0 {
        return Ok(Some((keys, 0)));
    }
    let want = header(name);
    let mut out: Vec<String> = Vec::new();
    let (mut inside, mut found, mut in_array) = (false, false, false);
    for line in text.lines() {
        let t = line.trim();
        if in_array {
            // The rest of a multi-line `trusted-keys = [ … ]`.
            in_array = !t.contains(']');
            continue;
        }
        if t.starts_with('[') {
            inside = t == want;
            if inside {
                found = true;
                out.push(line.to_string());
                if !keys.is_empty() {
                    out.push(format!("trusted-keys = {}", serde_json::to_string(&keys)?));
                }
                continue;
            }
        }
        if inside && t.starts_with("trusted-keys") {
            in_array = t.contains('[') && !t.contains(']');
            continue;
        }
        out.push(line.to_string());
    }
    if !found {
        bail!(
            "remote {name:?} in {} is not written as a `{want}` table; edit the file by hand",
            path.display()
        );
    }
    let mut new = out.join("\n");
    new.push('\n');
    // What the file would say is what counts (a hand-written layout this
    // line editing does not understand is left alone).
    let parsed: Option<File> = toml::from_str(&new).ok();
    if parsed.and_then(|f| f.remotes.get(name).map(|e| e.trusted_keys.clone()))
        != Some(keys.clone())
    {
        bail!(
            "cannot change the trusted-keys of remote {name:?} in {}; edit it by hand",
            path.display()
        );
    }
    write_checked(path, &new)?;
    Ok(Some((keys, changed)))
}
