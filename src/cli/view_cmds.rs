//! `vrift ls`, `vrift cat`, `vrift diff`: the view, read through vrift itself.

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use vrift_format::Kind;

use super::output::{mode_string, raw, utc};
use super::{current_project, Outcome};
use crate::manifest::{Entry, Layer, Record};
use crate::paths::{display, name_rel};
use crate::project::Project;
use crate::view::{self, Item, Node, Source};
use crate::{cas, ui};

pub fn ls(path: Option<PathBuf>) -> Result<Outcome> {
    let project = current_project()?;
    let path = path.unwrap_or_else(|| PathBuf::from("."));
    let rel = project.rift_path(&path)?.unwrap_or_default();
    let (_lock, _cas, manifest) = project.open_exclusive()?.into_parts();
    let txn = manifest.read()?;
    let node = view::lookup(&txn, &project, &rel)?;
    let items = if node.is_dir() {
        view::list_dir(&txn, &project, &rel)?
    } else if matches!(node, Node::Absent) {
        anyhow::bail!("{}: no such file or directory in the view", path.display());
    } else {
        let source = match &node {
            Node::Entry(Layer::Rift, _) => Source::Rift,
            Node::Entry(Layer::Phantom, _) => Source::Phantom,
            _ => Source::Disk,
        };
        vec![Item {
            name: name_rel(&rel).to_vec(),
            source,
            node,
        }]
    };
    let mut out = io::stdout().lock();
    for item in &items {
        print_item(&mut out, &project, &rel, item)?;
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

fn print_item(out: &mut impl Write, project: &Project, dir: &[u8], item: &Item) -> Result<()> {
    let Some((mode, size, mtime_ns)) = view::node_stat(&item.node) else {
        return Ok(());
    };
    let source = match item.source {
        Source::Rift => "rift",
        Source::Phantom => "phantom",
        Source::Disk => "disk",
    };
    let is_dir = item.node.is_dir();
    let size = if is_dir {
        "-".to_string()
    } else {
        size.to_string()
    };
    write!(
        out,
        "{} {:>10}  {}  {:<7}  ",
        mode_string(mode),
        size,
        utc(mtime_ns.div_euclid(1_000_000_000)),
        source
    )?;
    raw(out, &item.name)?;
    if is_dir {
        out.write_all(b"/")?;
    }
    let target = match &item.node {
        Node::Entry(_, e) if e.kind == Kind::Symlink => Some(e.target.clone()),
        Node::Disk(m) if m.file_type().is_symlink() => {
            let p = project.disk_path(&view::child(dir, &item.name));
            fs::read_link(p)
                .ok()
                .map(|t| t.as_os_str().as_bytes().to_vec())
        }
        _ => None,
    };
    if let Some(t) = target {
        out.write_all(b" -> ")?;
        raw(out, &t)?;
    }
    out.write_all(b"\n")?;
    Ok(())
}

pub fn cat(paths: Vec<PathBuf>) -> Result<Outcome> {
    let project = current_project()?;
    let (_lock, cas, manifest) = project.open_exclusive()?.into_parts();
    let txn = manifest.read()?;
    let mut out = io::stdout().lock();
    let mut failed = false;
    for path in &paths {
        let result = (|| -> Result<()> {
            let rel = project.rift_path(path)?.unwrap_or_default();
            let mut reader = view::read_file(&txn, &project, &cas, &rel)?;
            io::copy(&mut reader, &mut out)
                .with_context(|| format!("cannot copy {}", path.display()))?;
            Ok(())
        })();
        if let Err(e) = result {
            if super::output::is_broken_pipe(&e) {
                return Err(e);
            }
            eprintln!("vrift: cat: {}: {e:#}", path.display());
            failed = true;
        }
    }
    out.flush()?;
    Ok(if failed {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}

/// How a rift entry compares with what lies below it.
fn differs(project: &Project, lower: &Node, e: &Entry, rel: &[u8]) -> Result<bool> {
    Ok(match lower {
        Node::Entry(_, below) => {
            below.kind != e.kind
                || below.hash != e.hash
                || below.target != e.target
                || below.mode != e.mode
        }
        Node::Disk(m) => match e.kind {
            Kind::Symlink => {
                !m.file_type().is_symlink()
                    || fs::read_link(project.disk_path(rel))?
                        .as_os_str()
                        .as_bytes()
                        != e.target.as_slice()
            }
            _ => {
                if !m.is_file() || m.len() != e.size || m.mode() != e.mode {
                    true
                } else {
                    let path = project.disk_path(rel);
                    let mut f = fs::File::open(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    cas::hash_reader(&mut f)? != e.hash
                }
            }
        },
        Node::Absent => unreachable!("handled by the caller"),
    })
}

pub fn diff(phantom: bool, json: bool) -> Result<Outcome> {
    let project = current_project()?;
    let (_lock, _cas, manifest) = project.open_exclusive()?.into_parts();
    let txn = manifest.read()?;
    let mut lines: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut phantom_count = 0u64;
    txn.for_each(Layer::Rift, b"", |k, rec| {
        // What the view would show without the rift: phantom, then disk.
        let lower = match txn.get(Layer::Phantom, k)? {
            Some(Record::Entry(e)) => Node::Entry(Layer::Phantom, e),
            _ => match fs::symlink_metadata(project.disk_path(k)) {
                Ok(m) => Node::Disk(m),
                Err(_) => Node::Absent,
            },
        };
        match (rec, &lower) {
            (Record::Whiteout, Node::Absent) => {}
            (Record::Whiteout, _) => lines.push((b'D', k.to_vec())),
            (Record::Entry(_), Node::Absent) => lines.push((b'A', k.to_vec())),
            (Record::Entry(e), lower) => {
                if differs(&project, lower, &e, k)? {
                    lines.push((b'M', k.to_vec()));
                }
            }
        }
        Ok(())
    })?;
    // What an opaque directory hides from the disk is deleted in the view:
    // each hidden file, named (as for `rm -rf d && mkdir d`).
    for (dir, flags) in txn.dirs()? {
        if flags & vrift_format::DIR_OPAQUE == 0 {
            continue;
        }
        for (path, is_dir) in view::hidden_by_opaque(&txn, &project, &dir)? {
            if !is_dir {
                lines.push((b'D', path));
                continue;
            }
            for entry in walkdir::WalkDir::new(project.disk_path(&path)).min_depth(1) {
                let entry = entry.with_context(|| format!("cannot list {}", display(&path)))?;
                if !entry.file_type().is_dir() {
                    let rel = entry
                        .path()
                        .strip_prefix(project.root())
                        .map(|p| p.as_os_str().as_bytes().to_vec())
                        .unwrap_or_default();
                    lines.push((b'D', rel));
                }
            }
        }
    }
    txn.for_each(Layer::Phantom, b"", |k, _| {
        phantom_count += 1;
        if phantom && txn.get(Layer::Rift, k)?.is_none() {
            lines.push((b'P', k.to_vec()));
        }
        Ok(())
    })?;
    lines.sort_by(|a, b| a.1.cmp(&b.1));
    lines.dedup_by(|a, b| a.1 == b.1);
    let mut out = io::stdout().lock();
    if json {
        let changes: Vec<serde_json::Value> = lines
            .iter()
            .map(|(tag, path)| {
                let change = match tag {
                    b'A' => "added",
                    b'M' => "modified",
                    b'D' => "deleted",
                    _ => "phantom",
                };
                // JSON strings are Unicode: a non-UTF-8 name is shown lossily.
                serde_json::json!({ "change": change, "path": String::from_utf8_lossy(path) })
            })
            .collect();
        let v = serde_json::json!({ "changes": changes, "phantom_files": phantom_count });
        // Written as a string: a closed pipe must stay an io::Error.
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        out.flush()?;
        return Ok(Outcome::Ok);
    }
    for (tag, path) in &lines {
        out.write_all(&[*tag, b' '])?;
        raw(&mut out, path)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if !phantom && phantom_count > 0 {
        ui::note(&format!(
            "{phantom_count} files ingested from disk are in the phantom layer (`vrift diff --phantom` lists them)"
        ));
    }
    let _ = display;
    Ok(Outcome::Ok)
}
