//! `vrift ingest` and `vrift materialize`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{bail, Result};

use super::{current_project, Outcome};
use crate::lock::LockMode;
use crate::project::Project;
use crate::{ingest as ingest_op, materialize as materialize_op, ui};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// First Ctrl-C: finish the current batch and stop cleanly. Second: exit now
/// (the ingest journal makes that safe too).
fn interrupt_flag() -> &'static AtomicBool {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\nvrift: interrupted; finishing the current batch (Ctrl-C again to stop at once)"
            );
        });
    });
    &INTERRUPTED
}

fn rift_paths(project: &Project, paths: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    paths
        .iter()
        .map(|p| Ok(project.rift_path(p)?.unwrap_or_default()))
        .collect()
}

pub fn ingest(paths: Vec<PathBuf>) -> Result<Outcome> {
    let project = current_project()?;
    let paths = if paths.is_empty() {
        let config = project.config()?;
        if config.phantom.paths.is_empty() {
            bail!(
                "nothing to ingest: give paths, or list them under [phantom] paths in {}",
                project.config_path().display()
            );
        }
        config
            .phantom
            .paths
            .iter()
            .map(|p| project.root().join(p))
            .collect()
    } else {
        paths
    };
    let targets = rift_paths(&project, &paths)?;
    let cas = project.cas()?;
    // Lock order: the store's gc lock, then the project.
    let _gc = cas.gc_lock(LockMode::Shared)?;
    let _busy = cas.ingest_busy_lock()?;
    let _lock = project.lock()?;
    let manifest = project.manifest()?;
    project.register(&cas)?;
    let start = Instant::now();
    let trash = ingest_op::Trash::new_in(&cas);
    let report = ingest_op::ingest(
        &project,
        &cas,
        &manifest,
        &targets,
        interrupt_flag(),
        &trash,
    );
    // Whatever was committed (even by a failed run) becomes visible.
    crate::table::publish(&project, &cas, &manifest)?;
    let report = report?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(dir) = trash.dir() {
        reap_in_background(dir);
    }
    println!(
        "ingested {} files ({}) and {} symlinks from {} in {secs:.2}s: {} new blobs ({}), {} duplicates",
        report.files,
        ui::bytes(report.bytes),
        report.symlinks,
        shown_targets(&paths),
        report.new_blobs,
        ui::bytes(report.new_bytes),
        report.duplicates,
    );
    for (path, why) in &report.errors {
        eprintln!("vrift: {}: {why}", path.display());
    }
    if !report.skipped.is_empty() {
        eprintln!(
            "vrift: skipped {} special files (left on disk)",
            report.skipped.len()
        );
    }
    if report.interrupted {
        eprintln!("vrift: interrupted: the rift is consistent; run `vrift ingest` again to finish");
        return Ok(Outcome::Interrupted);
    }
    if !report.errors.is_empty() {
        eprintln!(
            "vrift: {} files could not be ingested and stay on disk",
            report.errors.len()
        );
        return Ok(Outcome::Partial);
    }
    Ok(Outcome::Ok)
}

fn shown_targets(paths: &[PathBuf]) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.strip_prefix(&cwd).unwrap_or(p))
        .map(|p: &Path| {
            let s = p.display().to_string();
            if s.is_empty() {
                ".".into()
            } else {
                s
            }
        })
        .collect();
    names.join(", ")
}

pub fn materialize(paths: Vec<PathBuf>) -> Result<Outcome> {
    let project = current_project()?;
    let targets = rift_paths(&project, &paths)?;
    let (_lock, cas, manifest) = project.open_exclusive()?.into_parts();
    let report = materialize_op::materialize(&project, &cas, &manifest, &targets);
    crate::table::publish(&project, &cas, &manifest)?;
    let report = report?;
    println!(
        "materialized {} files ({}) and {} symlinks; removed {} hidden paths from disk",
        report.files,
        ui::bytes(report.bytes),
        report.symlinks,
        report.removed
    );
    for (path, why) in &report.errors {
        eprintln!("vrift: {}: {why}", path.display());
    }
    if report.errors.is_empty() {
        Ok(Outcome::Ok)
    } else {
        eprintln!(
            "vrift: {} paths could not be materialized and stay in the rift",
            report.errors.len()
        );
        Ok(Outcome::Partial)
    }
}

/// Deletes the duplicates ingest set aside, in a detached process so the
/// command returns as soon as the rift is consistent.
fn reap_in_background(dir: &Path) {
    use std::os::unix::process::CommandExt;
    let spawned = std::env::current_exe().and_then(|exe| {
        let mut c = std::process::Command::new(exe);
        c.arg("__reap")
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: setsid in the child before exec; detaches from the terminal
        // so a Ctrl-C meant for the shell does not stop the cleanup.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        c.spawn()
    });
    if spawned.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `vrift __reap DIR`: the detached cleanup above. Only ever deletes a
/// `tmp/trash.*` directory of a store.
pub fn reap(dir: PathBuf) -> Result<Outcome> {
    let is_trash = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("trash."))
        && dir
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == "tmp");
    if !is_trash {
        bail!("{} is not a vrift trash directory", dir.display());
    }
    // Background work: the lowest CPU and I/O priority, so the deletes yield
    // to whatever the user runs next.
    // SAFETY: adjusting this process's own priorities.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            IOPRIO_CLASS_IDLE << 13,
        );
    }
    // A sub-directory at a time, and only while no ingest runs: the next
    // ingest (often right after this one) gets the disk and the CPU.
    let busy = dir
        .parent()
        .and_then(Path::parent)
        .map(|store| store.join(crate::cas::INGEST_BUSY_LOCK));
    let wait_for_quiet = || {
        let Some(busy) = &busy else { return };
        loop {
            match crate::lock::FileLock::try_acquire(busy, LockMode::Exclusive) {
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(200)),
                // Free (the probe is dropped at once), or no lock to honour.
                Ok(Some(_)) | Err(_) => return,
            }
        }
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            wait_for_quiet();
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(Outcome::Ok)
}
