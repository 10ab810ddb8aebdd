//! `vrift snapshot …` and `vrift discard`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};

use super::output::utc;
use super::{current_project, Outcome, SnapshotCommand};
use crate::ui;

pub fn snapshot(cmd: SnapshotCommand) -> Result<Outcome> {
    let project = current_project()?;
    let held = project.open_exclusive()?;
    let manifest = held.manifest();
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
                drop(held);
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
            let crate::exclusive::Restored {
                info,
                created_dirs: created,
            } = held.restore(&name)?;
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
            crate::profile::dropped(&project, &name)?;
            println!(
                "dropped snapshot {:?} ({} entries)",
                info.name, info.entries
            );
        }
    }
    Ok(Outcome::Ok)
}

pub fn discard(yes: bool) -> Result<Outcome> {
    let project = current_project()?;
    let held = project.open_exclusive()?;
    let (entries, marks) = held.rift_size()?;
    if entries == 0 && marks == 0 {
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
    let crate::exclusive::Discarded {
        entries,
        removed_dirs,
    } = held.discard()?;
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
