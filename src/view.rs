//! The view (DESIGN.md §2) computed by the CLI: rift over phantom over disk.
//!
//! This is the reference the shim's hot table must agree with; the CLI uses
//! it for `ls`, `cat`, `diff` and `materialize`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};
use vrift_format::view::{self, Found, Layers, RecordOf};
use vrift_format::Kind;

use crate::manifest::{Entry, Layer, ReadTxn, Record};
use crate::paths::{display, join_rel, parent_rel};
use crate::project::Project;

/// What the view shows at a path.
#[derive(Debug)]
pub enum Node {
    /// A file or symlink held by a manifest layer.
    Entry(Layer, Entry),
    /// Something on the disk, passed through.
    Disk(Metadata),
    /// Nothing (absent, hidden by a whiteout or an opaque directory).
    Absent,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Disk(m) if m.is_dir())
    }
}

/// Where a listed name comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Rift,
    Phantom,
    Disk,
}

/// One name in a directory listing of the view.
#[derive(Debug)]
pub struct Item {
    pub name: Vec<u8>,
    pub source: Source,
    pub node: Node,
}

/// The manifest's two layers as the view's rules read them (rift over
/// phantom). The rules cannot fail; a read error is kept and returned by
/// [`ManifestLayers::finish`].
pub struct ManifestLayers<'a, 't> {
    txn: &'a ReadTxn<'t>,
    error: RefCell<Option<anyhow::Error>>,
}

/// A manifest record's trailing bytes, with the layer that held it.
pub struct Held {
    pub layer: Layer,
    pub target: Vec<u8>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.target
    }
}

impl<'a, 't> ManifestLayers<'a, 't> {
    pub fn new(txn: &'a ReadTxn<'t>) -> Self {
        ManifestLayers {
            txn,
            error: RefCell::new(None),
        }
    }

    fn keep<T: Default>(&self, r: Result<T>) -> T {
        r.unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            T::default()
        })
    }

    /// The first read error met, if any.
    pub fn finish(&self) -> Result<()> {
        match self.error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Layers for ManifestLayers<'_, '_> {
    type Target = Held;

    fn record(&self, rel: &[u8]) -> Option<RecordOf<Held>> {
        for layer in [Layer::Rift, Layer::Phantom] {
            match self.keep(self.txn.get(layer, rel)) {
                Some(Record::Whiteout) => return Some(RecordOf::Whiteout),
                Some(Record::Entry(e)) => {
                    return Some(RecordOf::Entry {
                        header: e.header(),
                        target: Held {
                            layer,
                            target: e.target,
                        },
                    })
                }
                None => {}
            }
        }
        None
    }

    fn dir_flags(&self, rel: &[u8]) -> u8 {
        self.keep(self.txn.dir_mark(rel))
    }
}

/// Rift symlinks followed on the way down before giving up (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// Resolves `rel` in the view by the shared rules
/// ([`vrift_format::view::lookup`]); a final symlink is not followed, rift
/// symlinks on the way are while they lead inside the project (a path
/// through one that leaves it is `Absent` here: the CLI shows the project).
pub fn lookup(txn: &ReadTxn<'_>, project: &Project, rel: &[u8]) -> Result<Node> {
    Ok(resolve(txn, project, rel)?.1)
}

/// [`lookup`], with the rift path it ended at (past the symlinks followed).
pub fn resolve(txn: &ReadTxn<'_>, project: &Project, rel: &[u8]) -> Result<(Vec<u8>, Node)> {
    let layers = ManifestLayers::new(txn);
    let mut rel = rel.to_vec();
    for _ in 0..MAX_SYMLINKS {
        let found = view::lookup(&layers, &rel);
        layers.finish()?;
        match found {
            Found::Entry { header, target } => {
                let node = Node::Entry(target.layer, Entry::from_parts(&header, target.target));
                return Ok((rel, node));
            }
            Found::Error(_) => return Ok((rel, Node::Absent)),
            Found::Symlink { end, target } => {
                let base = project.disk_path(parent_rel(&rel[..end]));
                let mut abs = base.join(std::ffi::OsStr::from_bytes(&target.target));
                abs.push(std::ffi::OsStr::from_bytes(&rel[end + 1..]));
                match project.rift_path(&abs) {
                    Ok(Some(r)) => rel = r,
                    _ => return Ok((rel, Node::Absent)),
                }
            }
            Found::Disk => {
                let path = project.disk_path(&rel);
                return match fs::symlink_metadata(&path) {
                    Ok(m) => Ok((rel, Node::Disk(m))),
                    Err(e) if is_absent(&e) => Ok((rel, Node::Absent)),
                    Err(e) => Err(e).with_context(|| format!("cannot stat {}", path.display())),
                };
            }
        }
    }
    Ok((rel, Node::Absent))
}

fn is_absent(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Lists the directory `rel` of the view: each name once, sorted by bytes.
pub fn list_dir(txn: &ReadTxn<'_>, project: &Project, rel: &[u8]) -> Result<Vec<Item>> {
    let (rel, node) = resolve(txn, project, rel)?;
    let rel = rel.as_slice();
    if !node.is_dir() {
        match node {
            Node::Absent => bail!("{}: no such file or directory in the view", shown(rel)),
            _ => bail!("{}: not a directory", shown(rel)),
        }
    }
    let layers = ManifestLayers::new(txn);
    let mut items: BTreeMap<Vec<u8>, Item> = BTreeMap::new();
    let hidden = view::hides_disk_names(&layers, rel);
    let dir = project.disk_path(rel);
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().as_bytes().to_vec();
        if !view::disk_name_shows(&layers, &join_rel(rel, &name), hidden) {
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
    layers.finish()?;
    // The rift's own children: phantom first, then the rift over it.
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
            if tail.contains(&b'/') {
                return Ok(());
            }
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
            Ok(())
        })?;
    }
    Ok(items.into_values().collect())
}

/// Opens the content of file entry `e`: its blob, fetched first from the
/// project's remotes when it is missing from the store (a snapshot pulled
/// without `--eager`), verified by its hash.
pub fn open_content(project: &Project, cas: &crate::cas::Cas, e: &Entry) -> Result<fs::File> {
    if let Some(staged) = open_staged(cas, e)? {
        return Ok(staged);
    }
    #[cfg(feature = "remote")]
    return crate::remote::ondemand::open_blob(project, cas, &e.hash, e.size);
    #[cfg(not(feature = "remote"))]
    {
        let _ = project;
        cas.open_blob(&e.hash)
    }
}

/// A file still staged (its daemon died before sealing it; the next one
/// seals it): its content is its staging file's, as the library reads it.
fn open_staged(cas: &crate::cas::Cas, e: &Entry) -> Result<Option<fs::File>> {
    if e.flags & vrift_format::FLAG_STAGED == 0 {
        return Ok(None);
    }
    let path = cas
        .root()
        .join(vrift_format::STAGING_DIR)
        .join(crate::paths::os(&e.target));
    fs::File::open(&path)
        .map(Some)
        .with_context(|| format!("cannot open the staged file {}", path.display()))
}

/// [`open_content`], checked before a byte is read: the blob's size and
/// BLAKE3 hash against the entry (`vrift cat`, `vrift doctor`).
pub fn open_content_verified(
    project: &Project,
    cas: &crate::cas::Cas,
    e: &Entry,
) -> Result<fs::File> {
    if let Some(staged) = open_staged(cas, e)? {
        return Ok(staged);
    }
    if !cas.has_blob(&e.hash) {
        open_content(project, cas, e)?; // fetched from a remote, verified
    }
    cas.open_blob_verified(&e.hash, e.size)
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
                return Ok(Box::new(open_content_verified(project, cas, &e)?))
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
        Node::Absent => None,
    }
}

/// Joins a listed item's name onto its directory.
pub fn child(rel: &[u8], name: &[u8]) -> Vec<u8> {
    join_rel(rel, name)
}

/// The physical paths an opaque directory `dir` hides (the topmost of each
/// hidden subtree, with whether it is a directory): what `diff` reports as
/// deleted and `materialize` removes. Directories the rift created below it
/// are walked, not hidden; names the rift holds a record for are the rift's
/// business, not listed here.
pub fn hidden_by_opaque(
    txn: &ReadTxn<'_>,
    project: &Project,
    dir: &[u8],
) -> Result<Vec<(Vec<u8>, bool)>> {
    let layers = ManifestLayers::new(txn);
    let mut hidden = Vec::new();
    let mut stack = vec![dir.to_vec()];
    while let Some(d) = stack.pop() {
        let path = project.disk_path(&d);
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", path.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            let child = join_rel(&d, entry.file_name().as_bytes());
            if view::is_state_path(&child) || layers.record(&child).is_some() {
                continue;
            }
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && layers.dir_flags(&child) & vrift_format::DIR_CREATED != 0 {
                stack.push(child);
            } else {
                hidden.push((child, is_dir));
            }
        }
    }
    layers.finish()?;
    hidden.sort();
    Ok(hidden)
}
