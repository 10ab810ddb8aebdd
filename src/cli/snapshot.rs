//! `vrift snapshot …` and `vrift discard`.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use vrift_format::{Kind, DIR_CREATED};

use super::output::utc;
use super::{current_project, Outcome, SnapshotCommand};
use crate::manifest::{Layer, WriteTxn};
use crate::paths::parent_rel;
use crate::project::Project;
use crate::ui;

pub fn snapshot(cmd: SnapshotCommand) -> Result<Outcome> {
    let project = current_project()?;
    let (_lock, cas, manifest) = super::open_manifest(&project)?;
    match cmd {
        SnapshotCommand::Save { name, push, remote } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let txn = manifest.write()?;
            let info = txn.snapshot_save(&name, now)?;
            txn.commit()?;
            println!(
                "saved snapshot {:?}: {} entries ({})",
                info.name,
                info.entries,
                ui::bytes(info.bytes)
            );
            if push {
                // The push reads the snapshot under its own locks.
                drop((_lock, manifest));
                return super::remote::push(vec![name], remote, false);
            }
        }
        SnapshotCommand::List => {
            let snaps = manifest.read()?.snapshots()?;
            if snaps.is_empty() {
                println!("no snapshots (save one with `vrift snapshot save NAME`)");
            }
            for s in snaps {
                println!(
                    "{:<24} {:>8} entries {:>10}  {}",
                    s.name,
                    s.entries,
                    ui::bytes(s.bytes),
                    utc(s.created as i64)
                );
            }
        }
        SnapshotCommand::Restore { name } => {
            // A large rift takes seconds to rebuild the table for.
            let spinner = ui::spinner("restore");
            let txn = manifest.write()?;
            let info = txn.snapshot_restore(&name)?;
            txn.commit()?;
            // The directories the restored rift needs are checked (and the
            // missing ones made) on one core while the table is built on
            // the other. Both are done before the command returns.
            let (created, published) = std::thread::scope(|s| {
                let dirs = s.spawn(|| -> Result<u64> {
                    let txn = manifest.write()?;
                    let created = ensure_physical_dirs(&project, &txn)?;
                    if created > 0 {
                        txn.commit()?;
                    } else {
                        txn.abort()?;
                    }
                    Ok(created)
                });
                let published = crate::table::publish(&project, &cas, &manifest);
                let created = dirs.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                (created, published)
            });
            published?;
            let created = created?;
            if created > 0 {
                // The table must carry the new directories' marks too.
                crate::table::publish(&project, &cas, &manifest)?;
            }
            spinner.finish_and_clear();
            println!(
                "restored snapshot {:?}: {} entries ({}){}",
                info.name,
                info.entries,
                ui::bytes(info.bytes),
                if created > 0 {
                    format!("; recreated {created} directories")
                } else {
                    String::new()
                }
            );
        }
        SnapshotCommand::Drop { name } => {
            let txn = manifest.write()?;
            let info = txn.snapshot_drop(&name)?;
            txn.commit()?;
            println!(
                "dropped snapshot {:?} ({} entries)",
                info.name, info.entries
            );
        }
    }
    Ok(Outcome::Ok)
}

/// Directories are physical (DESIGN.md §2): after a restore, every directory
/// the rift needs (parents of its entries, directories it created) must exist
/// on disk. Creates the missing ones and marks them as created by the rift.
///
/// Only the deepest needed directories are looked at (in parallel, relative
/// to the project root): a path that resolves proves every ancestor exists.
fn ensure_physical_dirs(project: &Project, txn: &WriteTxn<'_>) -> Result<u64> {
    let mut needed: HashSet<Vec<u8>> = HashSet::new();
    let add_with_ancestors = |needed: &mut HashSet<Vec<u8>>, mut p: &[u8]| {
        while !p.is_empty() && !needed.contains(p) {
            needed.insert(p.to_vec());
            p = parent_rel(p);
        }
    };
    // Records come in path order, so neighbours mostly share their parent.
    let mut last_parent: Option<Vec<u8>> = None;
    txn.for_each_raw(Layer::Rift, |k, v| {
        if v.first() == Some(&(Kind::Whiteout as u8)) {
            return;
        }
        let parent = parent_rel(k);
        if last_parent.as_deref() != Some(parent) {
            add_with_ancestors(&mut needed, parent);
            last_parent = Some(parent.to_vec());
        }
    })?;
    for (path, flags) in txn.dirs()? {
        if flags & DIR_CREATED != 0 {
            add_with_ancestors(&mut needed, &path);
        }
    }
    let inner: HashSet<&[u8]> = needed.iter().map(|d| parent_rel(d)).collect();
    let leaves: Vec<&[u8]> = needed
        .iter()
        .map(Vec::as_slice)
        .filter(|d| !inner.contains(d))
        .collect();
    let root = fs::File::open(project.root())
        .with_context(|| format!("cannot open {}", project.root().display()))?;
    let exists = |rel: &[u8]| lstat_at(&root, rel);
    let mut missing: Vec<&[u8]> = leaves.into_par_iter().filter(|d| !exists(d)).collect();
    missing.sort();
    let mut created = 0;
    let mut made: HashSet<Vec<u8>> = HashSet::new();
    for leaf in missing {
        // The missing part of the chain, deepest first.
        let mut chain = Vec::new();
        let mut p = leaf;
        while !p.is_empty() && !made.contains(p) && !exists(p) {
            chain.push(p);
            p = parent_rel(p);
        }
        for rel in chain.into_iter().rev() {
            let disk = project.disk_path(rel);
            fs::create_dir(&disk).with_context(|| format!("cannot create {}", disk.display()))?;
            txn.set_dir_mark(rel, txn.dir_mark(rel)? | DIR_CREATED)?;
            made.insert(rel.to_vec());
            created += 1;
        }
    }
    Ok(created)
}

/// Whether `rel` (relative to the directory `root`) names anything, without
/// following a final symlink.
fn lstat_at(root: &fs::File, rel: &[u8]) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(c) = std::ffi::CString::new(rel) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid NUL-terminated path and a buffer fstatat fills.
    unsafe {
        libc::fstatat(
            root.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
    }
}

pub fn discard(yes: bool) -> Result<Outcome> {
    let project = current_project()?;
    let (_lock, cas, manifest) = super::open_manifest(&project)?;
    let (entries, marks) = {
        let r = manifest.read()?;
        (r.len(Layer::Rift)?, r.dirs()?)
    };
    if entries == 0 && marks.is_empty() {
        println!("the rift is already empty");
        return Ok(Outcome::Ok);
    }
    if !yes
        && !confirm(&format!(
            "discard {entries} rift entries of {}?",
            project.root().display()
        ))?
    {
        println!("nothing discarded");
        return Ok(Outcome::Ok);
    }
    let txn = manifest.write()?;
    txn.clear(Layer::Rift)?;
    // Deepest first, so a created tree empties bottom-up.
    let mut created: Vec<Vec<u8>> = marks
        .into_iter()
        .filter(|(_, f)| f & DIR_CREATED != 0)
        .map(|(p, _)| p)
        .collect();
    created.sort_by_key(|p| std::cmp::Reverse(p.iter().filter(|&&c| c == b'/').count()));
    let mut removed_dirs = 0;
    for rel in &created {
        let mut phantom_below = false;
        txn.for_each(Layer::Phantom, rel, |_, _| {
            phantom_below = true;
            Ok(())
        })?;
        if !phantom_below && fs::remove_dir(project.disk_path(rel)).is_ok() {
            removed_dirs += 1;
        }
    }
    txn.clear_dir_marks()?;
    txn.commit()?;
    crate::table::publish(&project, &cas, &manifest)?;
    println!(
        "discarded {}; removed {} the rift had created",
        ui::count(entries, "rift entry", "rift entries"),
        ui::count(removed_dirs, "empty directory", "empty directories")
    );
    Ok(Outcome::Ok)
}

/// Asks a yes/no question on the terminal; refuses without one.
fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{question} refusing without confirmation: pass --yes");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
