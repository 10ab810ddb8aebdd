//! A real project in a temporary directory with its rift open in-process,
//! for the errno matrices of the operations (`ops.rs`, `rename.rs`).

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use vrift_format::Kind;

use super::{Errno, Node, OpResult, Rift};
use crate::cas::Cas;
use crate::daemon::live::Identity;
use crate::project::Project;

/// What a path names, as a test compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kinds {
    /// Nothing there: no record and no disk name.
    Absent,
    /// A regular file of the disk the rift has not touched.
    DiskFile,
    /// A sealed rift file over nothing.
    RiftFile,
    /// A rift file still staged (opened for writing, not sealed).
    StagedFile,
    /// A physical directory, empty.
    Dir,
    /// A rift symlink.
    RiftSymlink,
    /// A disk file hidden by a whiteout.
    Whiteout,
}

pub const ALL: [Kinds; 7] = [
    Kinds::Absent,
    Kinds::DiskFile,
    Kinds::RiftFile,
    Kinds::StagedFile,
    Kinds::Dir,
    Kinds::RiftSymlink,
    Kinds::Whiteout,
];

pub struct Fixture {
    pub rift: Rift,
    pub root: PathBuf,
    _tmp: tempfile::TempDir,
}

/// The errno an operation answered (0: done).
pub fn errno(r: OpResult<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(Errno::Posix(e)) => e,
        Err(Errno::Pass) => panic!("passed to libc"),
        Err(Errno::Internal(e)) => panic!("an internal error: {e:#}"),
    }
}

impl Fixture {
    /// An empty project (its `.vrift/` and a store beside it), rift open.
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let root = tmp.path().join("project");
        fs::create_dir_all(root.join(crate::project::STATE_DIR)).unwrap();
        let project = Project::at(&root).unwrap();
        let root = project.root().to_path_buf();
        let cas = Cas::open(&tmp.path().join("store")).unwrap();
        let manifest = crate::manifest::Manifest::open(&project.manifest_path(), true).unwrap();
        let id = Identity {
            root: root.as_os_str().as_bytes().to_vec(),
            cas_root: cas.root().as_os_str().as_bytes().to_vec(),
            socket: Vec::new(),
            exe: Vec::new(),
            verify: false,
        };
        let rift = Rift::open(project, cas, manifest, id).unwrap();
        Fixture {
            rift,
            root,
            _tmp: tmp,
        }
    }

    /// Makes `rel` name a `kind` holding `content` (files and symlinks).
    pub fn make(&mut self, rel: &str, kind: Kinds, content: &str) {
        let disk = self.root.join(rel);
        match kind {
            Kinds::Absent => {}
            Kinds::DiskFile => fs::write(&disk, content).unwrap(),
            Kinds::Dir => fs::create_dir(&disk).unwrap(),
            Kinds::RiftFile | Kinds::StagedFile => {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
                let opened = self.rift.open_write(rel.as_bytes(), flags, 0o644).unwrap();
                fs::File::from(opened.fd)
                    .write_all(content.as_bytes())
                    .unwrap();
                if kind == Kinds::RiftFile {
                    assert!(self.rift.try_seal(&opened.name).unwrap(), "sealed");
                }
            }
            Kinds::RiftSymlink => self
                .rift
                .symlink(rel.as_bytes(), content.as_bytes())
                .unwrap(),
            Kinds::Whiteout => {
                fs::write(&disk, content).unwrap();
                self.rift.unlink(rel.as_bytes()).unwrap();
            }
        }
        assert_eq!(self.seen(rel).0, kind.seen(), "{rel} made as {kind:?}");
    }

    /// What `rel` shows in the view: its kind ("absent", "file", "dir",
    /// "symlink", "notdir") and its content (a file's bytes, a symlink's
    /// target).
    pub fn seen(&self, rel: &str) -> (&'static str, String) {
        match self.rift.node(rel.as_bytes()) {
            Node::Absent => ("absent", String::new()),
            Node::NotDir => ("notdir", String::new()),
            Node::Dir => ("dir", String::new()),
            Node::Phys(m) if m.file_type().is_symlink() => (
                "symlink",
                fs::read_link(self.root.join(rel))
                    .unwrap()
                    .display()
                    .to_string(),
            ),
            Node::Phys(_) => ("file", fs::read_to_string(self.root.join(rel)).unwrap()),
            Node::Entry(h, target) if h.kind == Kind::Symlink => {
                ("symlink", String::from_utf8(target).unwrap())
            }
            Node::Entry(h, target) => {
                let path = if h.is_staged() {
                    self.rift.staging_path(&target)
                } else {
                    self.rift.cas.blob_path(&h.hash)
                };
                ("file", fs::read_to_string(path).unwrap())
            }
        }
    }

    /// The bytes of the disk's file at `rel`, if there is one.
    pub fn disk(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.root.join(rel)).ok()
    }
}

impl Kinds {
    /// The kind [`Fixture::seen`] reports for it.
    pub fn seen(self) -> &'static str {
        match self {
            Kinds::Absent | Kinds::Whiteout => "absent",
            Kinds::DiskFile | Kinds::RiftFile | Kinds::StagedFile => "file",
            Kinds::Dir => "dir",
            Kinds::RiftSymlink => "symlink",
        }
    }

    pub fn exists(self) -> bool {
        !matches!(self, Kinds::Absent | Kinds::Whiteout)
    }

    pub fn is_dir(self) -> bool {
        self == Kinds::Dir
    }

    /// Whether the disk holds a file at its name (that the view must never
    /// change).
    pub fn on_disk(self) -> bool {
        matches!(self, Kinds::DiskFile | Kinds::Whiteout)
    }
}
