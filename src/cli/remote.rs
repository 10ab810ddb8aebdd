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

    use super::super::{KeyCommand, Outcome, RemoteCommand};
    use crate::project::Project;
    use crate::remote::config::{self, Remotes};
    use crate::remote::sign;
    use crate::remote::store::Remote;
    use crate::trust;
    use crate::ui;

    pub fn remote(cmd: RemoteCommand) -> Result<Outcome> {
        match cmd {
            RemoteCommand::Add {
                name,
                url,
                user,
                trusted_keys,
            } => {
                if user {
                    let path = config::user_config_path()?;
                    config::add(&path, &name, &url, &trusted_keys)?;
                    println!("added remote {name:?} → {url} (in {})", path.display());
                } else {
                    let project = super::super::current_project()?;
                    edit_project_config(&project, |path| {
                        config::add(path, &name, &url, &trusted_keys)
                    })?;
                    println!("added remote {name:?} → {url}");
                }
                if !trusted_keys.is_empty() {
                    println!(
                        "pulls from {name:?} accept only refs signed by one of its trusted keys"
                    );
                }
            }
            RemoteCommand::Trust { name, keys, user } => {
                let (keys, n) = edit_keys(&name, user, config::KeyEdit::Add(&keys))?;
                println!(
                    "remote {name:?} trusts {} ({n} added): pulls accept only refs signed by one of them",
                    ui::count(keys.len() as u64, "key", "keys")
                );
            }
            RemoteCommand::Untrust {
                name,
                keys: gone,
                user,
            } => {
                let (keys, n) = edit_keys(&name, user, config::KeyEdit::Remove(&gone))?;
                if n == 0 {
                    anyhow::bail!(
                        "remote {name:?} trusts no key {} (see `trusted-keys` in its config)",
                        gone.join(", ")
                    );
                }
                if keys.is_empty() {
                    println!(
                        "remote {name:?} trusts no key now ({n} removed): its refs are not checked"
                    );
                } else {
                    println!(
                        "remote {name:?} trusts {} ({n} removed)",
                        ui::count(keys.len() as u64, "key", "keys")
                    );
                }
            }
            RemoteCommand::Key(KeyCommand::Generate { name, force }) => {
                let path = sign::secret_key_path()?;
                let name = match name {
                    Some(n) => n,
                    None => format!("{}-1", host_name()),
                };
                let key = sign::generate(&path, &name, force)?;
                println!("wrote the secret key {} (keep it private)", path.display());
                println!("public key (for a remote's trusted-keys):");
                println!("{}", key.public());
            }
            RemoteCommand::Key(KeyCommand::Public) => match sign::load_secret()? {
                Some(key) => println!("{}", key.public()),
                None => anyhow::bail!(
                    "no signing key at {} (make one with `vrift remote key generate`)",
                    sign::secret_key_path()?.display()
                ),
            },
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

    /// Changes the trusted keys of remote `name` (project config, or the
    /// user's with `user`): its keys afterwards, and how many changed.
    fn edit_keys(
        name: &str,
        user: bool,
        edit: config::KeyEdit<'_>,
    ) -> Result<(Vec<String>, usize)> {
        let found = if user {
            config::edit_trusted_keys(&config::user_config_path()?, name, edit)?
        } else {
            let project = super::super::current_project()?;
            edit_project_config(&project, |path| config::edit_trusted_keys(path, name, edit))?
        };
        found.ok_or_else(|| {
            anyhow::anyhow!(
                "no remote named {name:?} in the {} config{}",
                if user { "user" } else { "project" },
                if user { "" } else { " (--user: the user's)" }
            )
        })
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
        let mut remote = Remote::open(&r.url)?;
        remote.trusted = r
            .trusted_keys
            .iter()
            .map(|k| {
                sign::PublicKey::parse(k)
                    .map_err(|e| anyhow::anyhow!("remote {:?}, trusted-keys: {e:#}", r.name))
            })
            .collect::<Result<_>>()?;
        Ok(remote)
    }

    /// This host's name, for a key's default name.
    fn host_name() -> String {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
        let ok =
            unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) } == 0;
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        let name: String = String::from_utf8_lossy(&buf[..end])
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .collect();
        if ok && !name.is_empty() {
            name
        } else {
            "vrift".to_string()
        }
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
        let signed = match &report.signed_by {
            Some(k) => format!(" (signed by {k})"),
            None => String::new(),
        };
        for (name, hash) in &report.snapshots {
            println!("pushed snapshot {name:?}: refs/{project_name}/{name} → {hash}{signed}");
        }
        if report.profiles > 0 {
            println!(
                "with the read profile of this project's lazy reads (profiles/{project_name}/…): \
                 a machine that pulls it fetches those files ahead"
            );
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
        if r.profile_paths > 0 && r.remote_only > 0 {
            println!(
                "read profile: {} the pushing machine read lazily, fetched ahead at the first read after `vrift snapshot restore {snapshot}`",
                ui::count(r.profile_paths as u64, "file", "files")
            );
        }
        Ok(Outcome::Ok)
    }
}
