//! The view (DESIGN.md §2) computed by the CLI: rift over phantom over disk.
//!
//! This is the reference the shim's hot table must agree with; the CLI uses
//! it for `ls`, `cat`, `diff` and `materialize`.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};
use vrift_format::{Kind, DIR_OPAQUE};

use crate::manifest::{Entry, Layer, ReadTxn, Record};
use crate::paths::{display, join_rel, parent_rel};
use crate::project::{Project, STATE_DIR};

/// What the view shows at a path.
#[derive(Debug)]
pub enum Node {
    /// A file or symlink held by a manifest layer.
    Entry(Layer, Entry),
    /// Something on the disk, passed through.
    Disk(Metadata),
    /// A directory that exists only because rift entries lie below it.
    ImpliedDir,
    /// Nothing (absent, hidden by a whiteout or an opaque directory).
    Absent,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        match self {
            Node::Disk(m) => m.is_dir(),
            Node::ImpliedDir => true,
            _ => false,
        }
    }
}

/// Where a listed name comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Rift,
    Phantom,
    Disk,
    Implied,
}

/// One name in a directory listing of the view.
#[derive(Debug)]
pub struct Item {
    pub name: Vec<u8>,
    pub source: Source,
    pub node: Node,
}

/// Resolves `rel` (no symlink following) in the view.
pub fn lookup(txn: &ReadTxn<'_>, project: &Project, rel: &[u8]) -> Result<Node> {
    if rel.is_empty() {
        return Ok(Node::Disk(fs::metadata(project.root())?));
    }
    for layer in [Layer::Rift, Layer::Phantom] {
        match txn.get(layer, rel)? {
            Some(Record::Entry(e)) => return Ok(Node::Entry(layer, e)),
            Some(Record::Whiteout) => return Ok(Node::Absent),
            None => {}
        }
    }
    // An ancestor that is a whiteout or a file hides everything below it; an
    // opaque ancestor hides the disk below it.
    let mut disk_hidden = false;
    let mut anc = parent_rel(rel);
    while !anc.is_empty() {
        for layer in [Layer::Rift, Layer::Phantom] {
            if txn.get(layer, anc)?.is_some() {
                return Ok(Node::Absent);
            }
        }
        if txn.dir_mark(anc)? & DIR_OPAQUE != 0 {
            disk_hidden = true;
        }
        anc = parent_rel(anc);
    }
    if !disk_hidden {
        match fs::symlink_metadata(project.disk_path(rel)) {
            Ok(m) => return Ok(Node::Disk(m)),
            Err(e) if is_absent(&e) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot stat {}", project.disk_path(rel).display()))
            }
        }
    }
    // Entries below the path make it an (implied) directory.
    let mut below = false;
    for layer in [Layer::Rift, Layer::Phantom] {
        txn.for_each(layer, rel, |k, r| {
            if k.len() > rel.len() && matches!(r, Record::Entry(_)) {
                below = true;
            }
            Ok(())
        })?;
        if below {
            return Ok(Node::ImpliedDir);
        }
    }
    Ok(Node::Absent)
}

fn is_absent(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Lists the directory `rel` of the view: each name once, sorted by bytes.
pub fn list_dir(txn: &ReadTxn<'_>, project: &Project, rel: &[u8]) -> Result<Vec<Item>> {
    let node = lookup(txn, project, rel)?;
    if !node.is_dir() {
        match node {
            Node::Absent => bail!("{}: no such file or directory in the view", shown(rel)),
            _ => bail!("{}: not a directory", shown(rel)),
        }
    }
    let mut items: BTreeMap<Vec<u8>, Item> = BTreeMap::new();
    let mut opaque = false;
    let mut anc = rel;
    loop {
        if !anc.is_empty() && txn.dir_mark(anc)? & DIR_OPAQUE != 0 {
            opaque = true;
        }
        if anc.is_empty() {
            break;
        }
        anc = parent_rel(anc);
    }
    if !opaque && matches!(node, Node::Disk(_)) {
        let dir = project.disk_path(rel);
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().as_bytes().to_vec();
            if rel.is_empty() && name == STATE_DIR.as_bytes() {
                continue;
            }
            let meta = entry.metadata()?;
            items.insert(
                name.clone(),
                Item {
                    name,
                    source: Source::Disk,
                    node: Node::Disk(meta),
                },
            );
        }
    }
    // Phantom first, then the rift over it.
    for (layer, source) in [
        (Layer::Phantom, Source::Phantom),
        (Layer::Rift, Source::Rift),
    ] {
        txn.for_each(layer, rel, |k, rec| {
            if k.len() <= rel.len() {
                return Ok(());
            }
            let tail = if rel.is_empty() {
                k
            } else {
                &k[rel.len() + 1..]
            };
            match tail.iter().position(|&c| c == b'/') {
                None => {
                    let name = tail.to_vec();
                    match rec {
                        Record::Whiteout => {
                            items.remove(&name);
                        }
                        Record::Entry(e) => {
                            items.insert(
                                name.clone(),
                                Item {
                                    name,
                                    source,
                                    node: Node::Entry(layer, e),
                                },
                            );
                        }
                    }
                }
                Some(i) => {
                    if matches!(rec, Record::Entry(_)) {
                        let name = tail[..i].to_vec();
                        items.entry(name.clone()).or_insert(Item {
                            name,
                            source: Source::Implied,
                            node: Node::ImpliedDir,
                        });
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(items.into_values().collect())
}

/// Reads a file of the view, following symlinks inside the view.
pub fn read_file(
    txn: &ReadTxn<'_>,
    project: &Project,
    cas: &crate::cas::Cas,
    rel: &[u8],
) -> Result<Box<dyn std::io::Read>> {
    let mut rel = rel.to_vec();
    for _ in 0..40 {
        match lookup(txn, project, &rel)? {
            Node::Entry(_, e) if e.kind == Kind::File => {
                return Ok(Box::new(cas.open_blob(&e.hash)?))
            }
            Node::Entry(_, e) => {
                // A symlink: resolve its target against the link's directory.
                let base = project.disk_path(parent_rel(&rel));
                let target = base.join(std::ffi::OsStr::from_bytes(&e.target));
                match project.rift_path(&target) {
                    Ok(Some(r)) => rel = r,
                    _ => {
                        return Ok(Box::new(
                            fs::File::open(&target)
                                .with_context(|| format!("cannot open {}", target.display()))?,
                        ))
                    }
                }
            }
            Node::Disk(m) if m.is_dir() => bail!("{}: is a directory", shown(&rel)),
            Node::Disk(m) if m.file_type().is_symlink() => {
                let path = project.disk_path(&rel);
                let target = fs::read_link(&path)?;
                let abs = path.parent().unwrap().join(target);
                match project.rift_path(&abs) {
                    Ok(Some(r)) => rel = r,
                    _ => {
                        return Ok(Box::new(
                            fs::File::open(&abs)
                                .with_context(|| format!("cannot open {}", abs.display()))?,
                        ))
                    }
                }
            }
            Node::Disk(_) => {
                let path = project.disk_path(&rel);
                return Ok(Box::new(
                    fs::File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?,
                ));
            }
            Node::ImpliedDir => bail!("{}: is a directory", shown(&rel)),
            Node::Absent => bail!("{}: no such file in the view", shown(&rel)),
        }
    }
    bail!("{}: too many levels of symbolic links", shown(&rel))
}

fn shown(rel: &[u8]) -> String {
    if rel.is_empty() {
        ".".to_string()
    } else {
        display(rel)
    }
}

/// Mode, size and mtime of a node, for listings.
pub fn node_stat(node: &Node) -> Option<(u32, u64, i64)> {
    match node {
        Node::Entry(_, e) => Some((e.mode, e.size, e.mtime_ns)),
        Node::Disk(m) => Some((
            m.mode(),
            m.size(),
            m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        )),
        Node::ImpliedDir => Some((libc::S_IFDIR | 0o755, 0, 0)),
        Node::Absent => None,
    }
}

/// Joins a listed item's name onto its directory.
pub fn child(rel: &[u8], name: &[u8]) -> Vec<u8> {
    join_rel(rel, name)
}
