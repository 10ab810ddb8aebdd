//! The environment of an inception, shared by `vrift run` and the shell
//! hooks: where the shim is, the hot table published, the variables set.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::project::Project;
use crate::{env_vars, table};

/// Where the shim library is: `$VRIFT_SHIM_PATH`, else beside the binary.
pub fn shim_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_vars::VRIFT_SHIM_PATH).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "{} is set to {}, which does not exist",
            env_vars::VRIFT_SHIM_PATH,
            p.display()
        );
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    for cand in [
        dir.join("libvrift_shim.so"),
        dir.join("../lib/vrift/libvrift_shim.so"),
    ] {
        if cand.is_file() {
            return Ok(std::fs::canonicalize(cand)?);
        }
    }
    bail!(
        "cannot find libvrift_shim.so beside {} (build it with `cargo build -p vrift-shim --profile shim` and copy target/shim/libvrift_shim.so there, or set {})",
        exe.display(),
        env_vars::VRIFT_SHIM_PATH
    )
}

/// The library an inception preloads: a copy of [`shim_path`]'s named by
/// its content in the user's store (`$VR_THE_SOURCE` or the XDG default,
/// whatever a project's own store), so that the shell hook and every
/// inception name the same file, and no upgrade or rebuild of the
/// installed library takes it from processes still starting.
pub fn pinned_shim_path() -> Result<PathBuf> {
    let cas = crate::cas::Cas::open(&crate::cas::resolve_root(None)?)?;
    cas.pin_library(&shim_path()?)
}

/// What an inception of one project needs, resolved once.
#[derive(Clone, Debug)]
pub struct InceptionEnv {
    root: PathBuf,
    shim: PathBuf,
    store: PathBuf,
    manifest: PathBuf,
    /// This vrift binary: the library starts the daemon and the syscall
    /// supervisor with it (`VRIFT_EXE`), never with what a project's table
    /// names.
    exe: PathBuf,
}

/// Finds the shim, finishes an interrupted ingest and makes sure the hot
/// table the shim reads is published for `project`.
pub fn prepare(project: &Project) -> Result<InceptionEnv> {
    let shim = pinned_shim_path()?;
    let cas = project.cas()?;
    // Every command that changes the view republishes the table; only a
    // missing or foreign one needs the manifest (its lock, its fsyncs) here.
    let path = table::table_path(project);
    let published = table::published_root(&path);
    if published.as_deref() != Some(project.root().as_os_str().as_encoded_bytes()) {
        let _lock = project.lock()?;
        let manifest = project.manifest()?;
        crate::ingest::recover(project, &cas, &manifest)?;
        table::publish(project, &cas, &manifest)?;
    } else if table::published_verify(&path) != Some(table::verify_reads(project)) {
        // `verify` changed in the config since the table was published: the
        // library reads it from the table. The running daemon publishes
        // tables too (with the setting it started with): it goes first.
        let exclusive = project.open_exclusive()?;
        table::publish(project, exclusive.cas(), exclusive.manifest())?;
    }
    crate::wrappers::refresh(project);
    Ok(InceptionEnv {
        root: project.root().to_path_buf(),
        shim,
        store: cas.root().to_path_buf(),
        manifest: project.manifest_path(),
        exe: std::env::current_exe()?,
    })
}

/// `LD_PRELOAD` with the shim first; an existing value is kept after it
/// (or kept as is when it already lists the shim).
pub fn ld_preload(shim: &Path, existing: Option<&OsStr>) -> OsString {
    let mut preload = shim.as_os_str().to_os_string();
    if let Some(existing) = existing.filter(|v| !v.is_empty()) {
        let already = std::env::split_paths(existing).any(|p| p == shim);
        if already {
            preload = existing.to_os_string();
        } else {
            preload.push(":");
            preload.push(existing);
        }
    }
    preload
}

impl InceptionEnv {
    /// The project's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pinned library an inception preloads.
    pub fn shim(&self) -> &Path {
        &self.shim
    }

    /// The project's store.
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// The project's manifest.
    pub fn manifest(&self) -> &Path {
        &self.manifest
    }

    /// This vrift binary (`VRIFT_EXE`).
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The variables a process in the inception gets, given the `LD_PRELOAD`
    /// it would otherwise have.
    pub fn vars(&self, existing_preload: Option<&OsStr>) -> Vec<(&'static str, OsString)> {
        vec![
            ("LD_PRELOAD", ld_preload(&self.shim, existing_preload)),
            (env_vars::VRIFT_PROJECT_ROOT, self.root.clone().into()),
            (env_vars::VRIFT_INCEPTION, "1".into()),
            (env_vars::VR_THE_SOURCE, self.store.clone().into()),
            (env_vars::VRIFT_SHIM_PATH, self.shim.clone().into()),
            (env_vars::VRIFT_MANIFEST, self.manifest.clone().into()),
            (env_vars::VRIFT_EXE, self.exe.clone().into()),
        ]
    }

    /// The project's wrapper directory, first on `PATH` in a shell inception.
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join(crate::project::STATE_DIR).join("bin")
    }
}
