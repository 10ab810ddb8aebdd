//! `vrift init`, `vrift allow`, `vrift deny`.

use std::path::PathBuf;

use anyhow::Result;

use super::Outcome;
use crate::cas::{self, Cas};
use crate::project::Project;
use crate::{init as init_op, trust, ui};

pub fn init(dir: Option<PathBuf>) -> Result<Outcome> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    // The store: $VR_THE_SOURCE, else the one a previous init recorded, else XDG.
    let recorded = Project::at(&dir).ok().and_then(|p| p.recorded_store());
    let cas = Cas::open(&cas::resolve_root(recorded.as_deref())?)?;
    let (project, outcome) = init_op::init(&dir, &cas)?;
    let verb = if outcome.created {
        "initialised"
    } else {
        "repaired"
    };
    println!("{verb} vrift project {}", project.root().display());
    println!("store: {}", cas.root().display());
    if outcome.config_written {
        if outcome.detected.is_empty() {
            println!(
                "no heavy dependency trees detected (add paths to [phantom] in .vrift/config.toml)"
            );
        } else {
            println!(
                "phantom candidates written to .vrift/config.toml: {}",
                outcome.detected.join(", ")
            );
            println!("run `vrift ingest` to move them into the store");
        }
    } else if !outcome.detected.is_empty() {
        let config = project.config()?;
        let missing: Vec<_> = outcome
            .detected
            .iter()
            .filter(|d| !config.phantom.paths.contains(d))
            .cloned()
            .collect();
        if !missing.is_empty() {
            ui::note(&format!(
                "also detected (not in your config): {}",
                missing.join(", ")
            ));
        }
    }
    Ok(Outcome::Ok)
}

fn project_for(dir: Option<PathBuf>) -> Result<Project> {
    match dir {
        Some(d) => Project::find(&d),
        None => Project::current(),
    }
}

pub fn allow(dir: Option<PathBuf>) -> Result<Outcome> {
    let project = project_for(dir)?;
    project.config()?;
    trust::allow(project.root(), &project.config_path())?;
    println!("trusted {}", project.root().display());
    Ok(Outcome::Ok)
}

pub fn deny(dir: Option<PathBuf>) -> Result<Outcome> {
    let project = project_for(dir)?;
    if trust::deny(project.root())? {
        println!("no longer trusted: {}", project.root().display());
    } else {
        println!("was not trusted: {}", project.root().display());
    }
    Ok(Outcome::Ok)
}
