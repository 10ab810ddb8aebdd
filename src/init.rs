//! `vrift init`: create or repair a project's `.vrift/`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cas::Cas;
use crate::manifest::Manifest;
use crate::project::{write_atomic, Project, STATE_DIR};
use crate::trust;

const CONFIG_TEMPLATE: &str = include_str!("../templates/config.toml");
const GITIGNORE_TEMPLATE: &str = include_str!("../templates/gitignore");

/// Directory names that hold heavy dependency trees, as (name, sibling that
/// must exist beside it for the guess to be safe).
const HEAVY_TREES: &[(&str, Option<&str>)] = &[
    ("node_modules", None),
    ("bower_components", None),
    (".venv", None),
    ("venv", Some("pyvenv.cfg")),
    (".tox", None),
    ("vendor/bundle", None),
    ("target", Some("Cargo.toml")),
    (".gradle", None),
    ("Pods", Some("Podfile")),
];

/// How deep below the root heavy trees are looked for (monorepos nest them).
const DETECT_DEPTH: usize = 3;

/// What `init` did, for its message.
#[derive(Debug, Default)]
pub struct Outcome {
    pub created: bool,
    pub config_written: bool,
    pub detected: Vec<String>,
}

pub fn init(dir: &Path, cas: &Cas) -> Result<(Project, Outcome)> {
    let project = Project::at(dir)?;
    let state = project.state_dir();
    let mut outcome = Outcome {
        created: !state.is_dir(),
        ..Default::default()
    };
    fs::create_dir_all(&state).with_context(|| format!("cannot create {}", state.display()))?;
    let _lock = project.lock()?;

    outcome.detected = detect_heavy_trees(project.root());
    let config = project.config_path();
    if !config.exists() {
        let list = outcome
            .detected
            .iter()
            .map(|p| toml_string(p))
            .collect::<Vec<_>>()
            .join(", ");
        write_atomic(
            &config,
            CONFIG_TEMPLATE
                .replace("{{phantom_paths}}", &list)
                .as_bytes(),
        )?;
        outcome.config_written = true;
    } else {
        // A config the user wrote stays as it is, but it must parse.
        project.config()?;
    }
    let ignore = state.join(".gitignore");
    if fs::read_to_string(&ignore).ok().as_deref() != Some(GITIGNORE_TEMPLATE) {
        write_atomic(&ignore, GITIGNORE_TEMPLATE.as_bytes())?;
    }
    let manifest = Manifest::open(&project.manifest_path(), true)?;
    crate::table::publish(&project, cas, &manifest)?;
    project.record_store(cas)?;
    project.register(cas)?;
    trust::allow(project.root(), &config)?;
    crate::wrappers::detect_unpreloadable(&project)?;
    crate::wrappers::ensure(&project)?;
    Ok((project, outcome))
}

/// Relative paths of heavy dependency trees below `root`.
pub fn detect_heavy_trees(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .max_depth(DETECT_DEPTH)
        .sort_by_file_name()
        // A filesystem mounted in the project is the kernel's, not the
        // view's (see the daemon's `on_other_mount`): never ingested.
        .same_file_system(true)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() == 0 || (e.file_type().is_dir() && name != ".git" && name != STATE_DIR)
        });
    let mut skip_below: Vec<std::path::PathBuf> = Vec::new();
    for entry in walker.flatten() {
        let path = entry.path();
        if skip_below.iter().any(|s| path.starts_with(s)) {
            continue;
        }
        for (name, sibling) in HEAVY_TREES {
            if !path.ends_with(name) {
                continue;
            }
            let parent_dir = path.parent().and_then(|p| {
                // "vendor/bundle" has a two-component name.
                if name.contains('/') {
                    p.parent()
                } else {
                    Some(p)
                }
            });
            let sibling_ok = match (sibling, parent_dir) {
                (None, _) => true,
                (Some(s), Some(p)) => p.join(s).exists() || path.join(s).exists(),
                (Some(_), None) => false,
            };
            if sibling_ok {
                if let Ok(rel) = path.strip_prefix(root) {
                    if let Some(s) = rel.to_str() {
                        found.push(s.to_string());
                        skip_below.push(path.to_path_buf());
                    }
                }
            }
        }
    }
    found
}

fn toml_string(s: &str) -> String {
    // A TOML basic string: escape backslashes and quotes.
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
