//! `vrift remote add|remove|list`, `vrift push`, `vrift pull`.

#[cfg(feature = "remote")]
pub use imp::{pull, push, remote};
#[cfg(not(feature = "remote"))]
pub use off::{pull, push, remote};

/// Built without the `remote` feature: the commands exist and say so.
#[cfg(not(feature = "remote"))]
mod off {
    use anyhow::Result;

    use super::super::{Outcome, RemoteCommand};

    fn unsupported() -> Result<Outcome> {
        eprintln!("vrift: this vrift was built without remotes (cargo feature `remote`)");
        std::process::exit(2);
    }

    pub fn remote(_: RemoteCommand) -> Result<Outcome> {
        unsupported()
    }

    pub fn push(_: Vec<String>, _: Option<String>, _: bool) -> Result<Outcome> {
        unsupported()
    }

    pub fn pull(_: String, _: Option<String>, _: bool) -> Result<Outcome> {
        unsupported()
    }
}

#[cfg(feature = "remote")]
mod imp {
    use anyhow::Result;

    use super::super::{Outcome, RemoteCommand};
    use crate::project::Project;
    use crate::remote::config::{self, Remotes};
    use crate::remote::store::Remote;
    use crate::trust;
    use crate::ui;

    pub fn remote(cmd: RemoteCommand) -> Result<Outcome> {
        match cmd {
            RemoteCommand::Add { name, url, user } => {
                if user {
                    let path = config::user_config_path()?;
                    config::add(&path, &name, &url)?;
                    println!("added remote {name:?} → {url} (in {})", path.display());
                } else {
                    let project = super::super::current_project()?;
                    edit_project_config(&project, |path| config::add(path, &name, &url))?;
                    println!("added remote {name:?} → {url}");
                }
            }
            RemoteCommand::Remove { name, user } => {
                let removed = if user {
                    config::remove(&config::user_config_path()?, &name)?
                } else {
                    let project = super::super::current_project()?;
                    edit_project_config(&project, |path| config::remove(path, &name))?
                };
                if !removed {
                    anyhow::bail!(
                        "no remote named {name:?} in the {} config",
                        if user { "user" } else { "project" }
                    );
                }
                println!("removed remote {name:?}");
            }
            RemoteCommand::List => {
                let project = Project::current().ok();
                let remotes = Remotes::load(project.as_ref())?;
                if remotes.list.is_empty() {
                    println!("no remotes (add one with `vrift remote add NAME URL`)");
                }
                for r in &remotes.list {
                    println!(
                        "{:<16} {:<8} {}{}",
                        r.name,
                        r.scope.label(),
                        r.url,
                        if remotes.is_default(&r.name) {
                            "  (default)"
                        } else {
                            ""
                        }
                    );
                }
            }
            RemoteCommand::Snapshots { name } => {
                let project = super::super::current_project()?;
                let remote = open(&project, name.as_deref())?;
                let project_name = config::project_name(&project)?;
                let names = remote.list_refs(&project_name)?;
                if names.is_empty() {
                    println!(
                        "{} has no snapshots of project {project_name:?}",
                        remote.url
                    );
                }
                for n in names {
                    println!("{n}");
                }
            }
        }
        Ok(Outcome::Ok)
    }

    /// Edits `.vrift/config.toml`. The config's hash is what trust covers:
    /// a project trusted before this edit (made by its user, through vrift)
    /// stays trusted after it; an untrusted one stays untrusted.
    fn edit_project_config<T>(
        project: &Project,
        edit: impl FnOnce(&std::path::Path) -> Result<T>,
    ) -> Result<T> {
        let path = project.config_path();
        let trusted = trust::check(project.root(), &path)? == trust::Trust::Trusted;
        let out = edit(&path)?;
        if trusted {
            trust::allow(project.root(), &path)?;
        }
        Ok(out)
    }

    fn open(project: &Project, name: Option<&str>) -> Result<Remote> {
        let remotes = Remotes::load(Some(project))?;
        let r = remotes.pick(name)?;
        Remote::open(&r.url)
    }

    pub fn push(snapshots: Vec<String>, remote: Option<String>, recheck: bool) -> Result<Outcome> {
        let project = super::super::current_project()?;
        let remote = open(&project, remote.as_deref())?;
        let report = crate::remote::push(&project, &remote, &snapshots, recheck)?;
        let project_name = config::project_name(&project)?;
        println!(
            "uploaded {} ({}); {} already on {}",
            ui::count(report.uploaded, "object", "objects"),
            ui::bytes(report.uploaded_bytes),
            report.present,
            remote.url
        );
        for (name, hash) in &report.snapshots {
            println!("pushed snapshot {name:?}: refs/{project_name}/{name} → {hash}");
        }
        for (name, hash) in &report.up_to_date {
            println!("snapshot {name:?} is up to date: refs/{project_name}/{name} → {hash}");
        }
        Ok(Outcome::Ok)
    }

    pub fn pull(snapshot: String, remote: Option<String>, eager: bool) -> Result<Outcome> {
        let project = super::super::current_project()?;
        let remote = open(&project, remote.as_deref())?;
        let r = crate::remote::pull(&project, &remote, &snapshot, eager)?;
        println!(
            "pulled snapshot {snapshot:?} ({} entries){}: fetched {} ({}){}",
            r.entries,
            if r.existed { ", already here" } else { "" },
            ui::count(r.fetched, "blob", "blobs"),
            ui::bytes(r.fetched_bytes),
            if r.remote_only > 0 {
                format!(
                    "; {} only on the remote (fetched on first read; --eager fetches them all now)",
                    ui::count(r.remote_only, "blob is", "blobs are")
                )
            } else {
                String::new()
            }
        );
        Ok(Outcome::Ok)
    }
}
