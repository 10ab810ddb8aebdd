//! `vrift snapshot …` and `vrift discard`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use vrift_format::DIR_CREATED;

use super::output::utc;
use super::{current_project, Outcome, SnapshotCommand};
use crate::manifest::{Layer, Record, WriteTxn};
use crate::paths::parent_rel;
use crate::project::Project;
use crate::ui;

pub fn snapshot(cmd: SnapshotCommand) -> Result<Outcome> {
    let project = current_project()?;
    let (_lock, cas, manifest) = super::open_manifest(&project)?;
    match cmd {
        SnapshotCommand::Save { name } => {
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
            let txn = manifest.write()?;
            let info = txn.snapshot_restore(&name)?;
            let created = ensure_physical_dirs(&project, &txn)?;
            txn.commit()?;
            crate::table::publish(&project, &cas, &manifest)?;
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
fn ensure_physical_dirs(project: &Project, txn: &WriteTxn<'_>) -> Result<u64> {
    let mut needed: BTreeSet<Vec<u8>> = BTreeSet::new();
    txn.for_each(Layer::Rift, b"", |k, rec| {
        if matches!(rec, Record::Entry(_)) {
            let mut p = parent_rel(k);
            while !p.is_empty() && needed.insert(p.to_vec()) {
                p = parent_rel(p);
            }
        }
        Ok(())
    })?;
    for (path, flags) in txn.dirs()? {
        if flags & DIR_CREATED != 0 {
            needed.insert(path);
        }
    }
    let mut created = 0;
    for rel in needed {
        let disk = project.disk_path(&rel);
        if fs::symlink_metadata(&disk).is_ok() {
            continue;
        }
        fs::create_dir(&disk).with_context(|| format!("cannot create {}", disk.display()))?;
        txn.set_dir_mark(&rel, txn.dir_mark(&rel)? | DIR_CREATED)?;
        created += 1;
    }
    Ok(created)
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
