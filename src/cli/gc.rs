//! `vrift gc` and `vrift fsck`.

use anyhow::Result;

use super::Outcome;
use crate::cas::{self, Cas};
use crate::project::Project;
use crate::{fsck as fsck_op, gc as gc_op, ui};

/// The store: the current project's if inside one, else the environment's.
fn store() -> Result<(Option<Project>, Cas)> {
    match Project::current() {
        Ok(p) => {
            let cas = p.cas()?;
            Ok((Some(p), cas))
        }
        Err(_) => Ok((None, Cas::open(&cas::resolve_root(None)?)?)),
    }
}

pub fn gc(opts: gc_op::Options) -> Result<Outcome> {
    let delete = opts.delete;
    let (_, cas) = store()?;
    let r = gc_op::gc(&cas, opts)?;
    // Say how many of the blobs are in use and by how many projects: "N
    // blobs referenced by 1 project" beside "M unreferenced" read as a
    // contradiction.
    println!(
        "store {}: {} blobs ({}); {} in use by {} and their snapshots",
        cas.root().display(),
        r.blobs,
        ui::bytes(r.blob_bytes),
        r.blobs - r.unreferenced,
        ui::count(r.projects.len() as u64, "project", "projects")
    );
    if r.absent > 0 {
        // Not an error: a snapshot pulled without --eager references blobs
        // its remote holds; the first read fetches them.
        println!(
            "{} not in the store (snapshots pulled without --eager; \
             fetched from the remote on first read, or all at once by `vrift pull SNAPSHOT --eager`)",
            ui::count(r.absent, "referenced blob is", "referenced blobs are")
        );
    }
    if opts.offload {
        for (root, why) in &r.offload_unchecked {
            eprintln!(
                "vrift: cannot ask the remotes of {} which blobs they hold (its blobs stay): {why}",
                root.display()
            );
        }
        let n = ui::count(r.offloadable, "blob", "blobs");
        let bytes = ui::bytes(r.offloadable_bytes);
        if delete {
            println!(
                "offloaded {n} ({bytes}) that only snapshots reference and their remotes hold; \
                 a restored snapshot fetches them again on first read"
            );
        } else {
            println!(
                "can offload {n} ({bytes}) that only snapshots reference and their remotes hold: \
                 `vrift gc --offload --delete` deletes the local copies"
            );
        }
        if r.not_offloadable > 0 {
            println!(
                "kept {} that only snapshots reference and no remote of theirs holds \
                 (push those snapshots to offload them)",
                ui::count(r.not_offloadable, "blob", "blobs")
            );
        }
    }
    for p in &r.stale_projects {
        println!(
            "project {} is gone{}",
            p.display(),
            if delete { "; unregistered" } else { "" }
        );
    }
    if delete {
        println!(
            "deleted {} unreferenced blobs ({}){}",
            r.deleted,
            ui::bytes(r.unreferenced_bytes),
            if r.stale_tmp > 0 {
                format!(" and {} stale temp files", r.stale_tmp)
            } else {
                String::new()
            }
        );
        if r.stale_nodes > 0 {
            println!(
                "deleted {} no record names",
                ui::count(r.stale_nodes, "special-file node", "special-file nodes")
            );
        }
        if r.stale_libs > 0 {
            println!(
                "deleted {} of the view library no process uses",
                ui::count(r.stale_libs, "old copy", "old copies")
            );
        }
    } else {
        println!(
            "{} unreferenced blobs ({}) would be deleted; run `vrift gc --delete` to delete them",
            r.unreferenced,
            ui::bytes(r.unreferenced_bytes)
        );
    }
    Ok(Outcome::Ok)
}

pub fn fsck() -> Result<Outcome> {
    let (project, cas) = store()?;
    let mut report = fsck_op::Report::default();
    fsck_op::check_store(&cas, &mut report)?;
    fsck_op::check_exec_copies(&cas, &mut report)?;
    if let Some(project) = &project {
        let (_lock, _, manifest) = project.open_exclusive()?.into_parts();
        fsck_op::check_manifest(&manifest.read()?, &cas, &mut report)?;
        #[cfg(feature = "remote")]
        fsck_op::check_remote(project, &mut report)?;
    }
    println!(
        "checked {} blobs ({}) in {}",
        report.blobs,
        ui::bytes(report.bytes),
        cas.root().display()
    );
    for (hash, dest) in &report.corrupt {
        println!(
            "corrupt blob {hash}: content does not match its name; quarantined to {}",
            dest.display()
        );
    }
    for (path, why) in &report.unreadable {
        println!("unreadable blob {}: {why}", path.display());
    }
    for path in &report.exec_tampered {
        println!(
            "tampered executable copy {}: its content is not its blob's; removed (the next run copies the blob again)",
            path.display()
        );
    }
    if report.mode_fixed > 0 {
        println!(
            "repaired the mode of {} blobs (now {:04o})",
            report.mode_fixed,
            cas.blob_mode()
        );
    }
    for line in fsck_op::describe_missing(&report) {
        println!("{line}");
    }
    if !report.remote_only.is_empty() {
        let mut urls: Vec<&str> = report.remote_only.iter().map(|r| r.1.as_str()).collect();
        urls.sort();
        urls.dedup();
        println!(
            "{} only on the remote ({}): pulled without --eager, fetched on first read",
            ui::count(
                report.remote_only.len() as u64,
                "referenced blob is",
                "referenced blobs are"
            ),
            urls.join(", ")
        );
    }
    if let (Some(why), false) = (&report.remote_unchecked, report.missing.is_empty()) {
        println!("the missing blobs could not be looked for on the remote: {why}");
    }
    if report.ok() {
        println!("no problems found");
        Ok(Outcome::Ok)
    } else {
        eprintln!(
            "vrift: fsck found {} corrupt, {} unreadable blobs, {} references to missing blobs and {} tampered executable copies",
            report.corrupt.len(),
            report.unreadable.len(),
            report.missing.len(),
            report.exec_tampered.len()
        );
        Ok(Outcome::Partial)
    }
}
