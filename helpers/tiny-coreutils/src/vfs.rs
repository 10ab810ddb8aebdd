//! The view as a filesystem for the applets: paths resolved the way the
//! kernel resolves them, but through the view (DESIGN.md §2) — rift
//! entries over the disk, whiteouts and opaque directories honoured, rift
//! symlinks followed — and changes sent to the project's daemon.
//!
//! A path is resolved component by component from `/` (or the cwd, which
//! is physical: directories are), following symlinks of the view and of the
//! disk alike, so `/tmp/x` and `/private/tmp/x`, `..` after a symlink and a
//! physical symlink leading into the project all land where the kernel
//! would put them. The result is a [`Loc`]: where the path is (a rift path
//! in the domain, or a canonical disk path outside it and in `.vrift/`),
//! and what is there. The shim does the same lexically on its hot path;
//! the applets are not on a hot path and can afford the `lstat`s.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use vrift_format::proto::{Op, Request, TIME_NOW, TIME_OMIT};
use vrift_format::view::{self, Found};
use vrift_format::{Kind, RecordHeader, RecordRef};

use crate::table::MappedTable;
use crate::{Connector, Daemon};

/// vrift's own state below the root: never part of the view.
const STATE_DIR: &[u8] = vrift_format::view::STATE_DIR;
/// Symlinks followed in one resolution before ELOOP (Linux's limit).
const MAX_SYMLINKS: usize = 40;

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// Where a path is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Where {
    /// On the disk, outside the domain (or in `.vrift/`): a canonical path.
    Outside(PathBuf),
    /// In the domain: a rift path (empty for the root).
    Inside(Vec<u8>),
}

/// What the view holds at a path.
#[derive(Clone, Debug)]
pub enum Node {
    /// A rift (or phantom) file or symlink, with its symlink target or
    /// staging name.
    Entry(RecordHeader, Vec<u8>),
    /// Something on the disk.
    Disk(fs::Metadata),
    Absent,
}

/// A resolved path.
#[derive(Clone, Debug)]
pub struct Loc {
    pub at: Where,
    pub node: Node,
}

impl Loc {
    pub fn exists(&self) -> bool {
        !matches!(self.node, Node::Absent)
    }

    pub fn is_dir(&self) -> bool {
        matches!(&self.node, Node::Disk(m) if m.is_dir())
    }

    pub fn is_symlink(&self) -> bool {
        match &self.node {
            Node::Entry(h, _) => h.kind == Kind::Symlink,
            Node::Disk(m) => m.file_type().is_symlink(),
            Node::Absent => false,
        }
    }

    /// Whether `self` is `other` or lies below it (both canonical).
    pub fn is_within(&self, other: &Loc) -> bool {
        match (&self.at, &other.at) {
            (Where::Inside(a), Where::Inside(b)) => {
                b.is_empty() || a == b || (a.starts_with(b) && a.get(b.len()) == Some(&b'/'))
            }
            (Where::Outside(a), Where::Outside(b)) => a.starts_with(b),
            _ => false,
        }
    }
}

/// What `stat` reports for a path of the view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub atime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub ctime_ns: i64,
    /// A device's number (0 otherwise).
    pub rdev: u64,
}

impl Stat {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    pub fn same_file(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    pub fn of_meta(m: &fs::Metadata) -> Stat {
        Stat {
            mode: m.mode(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            atime_ns: m.atime() * 1_000_000_000 + m.atime_nsec(),
            uid: m.uid(),
            gid: m.gid(),
            ino: m.ino(),
            dev: m.dev(),
            nlink: m.nlink(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            rdev: m.rdev(),
        }
    }
}

/// A time for [`Vfs::utimes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    Now,
    Omit,
    At(i64),
}

impl Time {
    fn wire(self) -> u64 {
        match self {
            Time::Now => TIME_NOW,
            Time::Omit => TIME_OMIT,
            Time::At(ns) => ns as u64,
        }
    }

    fn timespec(self) -> libc::timespec {
        match self {
            Time::Now => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            Time::Omit => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            Time::At(ns) => libc::timespec {
                tv_sec: ns.div_euclid(1_000_000_000),
                tv_nsec: ns.rem_euclid(1_000_000_000),
            },
        }
    }
}

struct Domain {
    root: PathBuf,
    table: RefCell<MappedTable>,
    /// The root's device and owner: what rift entries report (as the shim).
    dev: u64,
    owner: (u32, u32),
}

/// The view, for one applet run.
pub struct Vfs<'a> {
    dom: Option<Domain>,
    connector: &'a dyn Connector,
    daemon: RefCell<Option<Box<dyn Daemon>>>,
    /// Set once the daemon could not be reached (said once, then EIO).
    unreachable: Cell<bool>,
    pub umask: u32,
    pub euid: u32,
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| errno(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut v = parent.to_vec();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&c| c == b'/').filter(|c| !c.is_empty())
}

impl<'a> Vfs<'a> {
    /// The view of the project rooted at `root` (canonical), or the plain
    /// disk when there is no project.
    pub fn new(root: Option<&Path>, connector: &'a dyn Connector) -> Vfs<'a> {
        let dom = root.and_then(|root| {
            let m = fs::metadata(root).ok()?;
            let table = root
                .join(vrift_format::STATE_DIR_NAME)
                .join(vrift_format::table::TABLE_FILE);
            Some(Domain {
                root: root.to_path_buf(),
                table: RefCell::new(MappedTable::new(&table)),
                dev: m.dev(),
                owner: (m.uid(), m.gid()),
            })
        });
        // SAFETY: umask has no failure mode; set back at once.
        let umask = unsafe {
            let u = libc::umask(0);
            libc::umask(u);
            u as u32
        };
        Vfs {
            dom,
            connector,
            daemon: RefCell::new(None),
            unreachable: Cell::new(false),
            umask,
            // SAFETY: geteuid cannot fail.
            euid: unsafe { libc::geteuid() },
        }
    }

    /// Where a canonical absolute path is.
    pub fn where_of(&self, abs: &Path) -> Where {
        if let Some(d) = &self.dom {
            if let Ok(rel) = abs.strip_prefix(&d.root) {
                let rel = rel.as_os_str().as_bytes();
                let state = rel.starts_with(STATE_DIR)
                    && matches!(rel.get(STATE_DIR.len()), None | Some(b'/'));
                if !state {
                    return Where::Inside(rel.to_vec());
                }
            }
        }
        Where::Outside(abs.to_path_buf())
    }

    /// The disk path of a location.
    pub fn disk_path(&self, at: &Where) -> PathBuf {
        match at {
            Where::Outside(p) => p.clone(),
            Where::Inside(rel) => {
                let root = &self.dom.as_ref().expect("inside implies a domain").root;
                if rel.is_empty() {
                    root.clone()
                } else {
                    root.join(OsStr::from_bytes(rel))
                }
            }
        }
    }

    // ---- lookups ---------------------------------------------------------

    /// What the view holds at `at` (no symlink followed). The caller knows
    /// every ancestor to be a visible directory.
    pub fn node(&self, at: &Where) -> io::Result<Node> {
        let rel = match at {
            Where::Outside(p) => return disk_node(p),
            Where::Inside(rel) => rel,
        };
        let dom = self.dom.as_ref().expect("inside implies a domain");
        if rel.is_empty() {
            return disk_node(&dom.root);
        }
        {
            let mut mt = dom.table.borrow_mut();
            if let Some(t) = mt.get() {
                match view::lookup(&t, rel) {
                    // A directory of the project lost its owner's search
                    // bit: the kernel's search permission on the way, as
                    // the library asks it (`FLAG_CLOSED_DIRS`).
                    Found::Entry { .. } if t.closed_dirs() && !searchable(&dom.root, rel) => {
                        return Err(errno(libc::EACCES))
                    }
                    Found::Entry { header, target } => {
                        return Ok(Node::Entry(header, target.to_vec()))
                    }
                    Found::Error(libc::ENOTDIR) => return Err(errno(libc::ENOTDIR)),
                    // Hidden; or a rift symlink on the way, which a caller
                    // that walked every ancestor as a directory never meets.
                    Found::Error(_) | Found::Symlink { .. } => return Ok(Node::Absent),
                    Found::Disk => {}
                }
            }
        }
        disk_node(&dom.root.join(OsStr::from_bytes(rel)))
    }

    /// Resolves `path` (relative to the cwd) in the view. `follow`: whether
    /// a final symlink is followed. A trailing `/` follows and requires a
    /// directory. A missing last component is `Node::Absent`; a missing or
    /// non-directory component before it is an error, as in the kernel.
    pub fn locate(&self, path: &Path, follow: bool) -> io::Result<Loc> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(errno(libc::ENOENT));
        }
        let must_dir = bytes.len() > 1 && bytes.ends_with(b"/");
        let follow = follow || must_dir;
        let mut cur = if bytes[0] == b'/' {
            PathBuf::from("/")
        } else {
            std::env::current_dir()?
        };
        let mut pending: VecDeque<Vec<u8>> = components(bytes).map(<[u8]>::to_vec).collect();
        let mut hops = 0;
        loop {
            let Some(name) = pending.pop_front() else {
                let at = self.where_of(&cur);
                let node = self.node(&at)?;
                return Ok(Loc { at, node });
            };
            if name == b"." {
                continue;
            }
            if name == b".." {
                cur.pop();
                continue;
            }
            let cand = cur.join(OsStr::from_bytes(&name));
            let at = self.where_of(&cand);
            let node = self.node(&at)?;
            let last = pending.is_empty();
            let loc = Loc { at, node };
            if loc.is_symlink() && (!last || follow) {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(errno(libc::ELOOP));
                }
                let target = self.read_link(&loc)?;
                let target = target.as_os_str().as_bytes();
                if target.first() == Some(&b'/') {
                    cur = PathBuf::from("/");
                }
                for c in components(target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(c.to_vec());
                }
                continue;
            }
            if last {
                if must_dir && loc.exists() && !loc.is_dir() {
                    return Err(errno(libc::ENOTDIR));
                }
                return Ok(loc);
            }
            match loc.node {
                Node::Absent => return Err(errno(libc::ENOENT)),
                _ if loc.is_dir() => cur = cand,
                _ => return Err(errno(libc::ENOTDIR)),
            }
        }
    }

    /// Whether `path` ends in `/` after a symlink (`link/`): the kernel
    /// follows it for lookups but refuses to remove or rename through it.
    pub fn slash_after_symlink(&self, path: &Path) -> bool {
        let b = path.as_os_str().as_bytes();
        let mut end = b.len();
        while end > 1 && b[end - 1] == b'/' {
            end -= 1;
        }
        end < b.len()
            && self
                .locate(Path::new(OsStr::from_bytes(&b[..end])), false)
                .is_ok_and(|l| l.is_symlink())
    }

    /// Where `path` lies, even when it or its parents do not exist yet (the
    /// missing part is taken lexically): for the wrappers' domain test.
    pub fn whereabouts(&self, path: &Path) -> Where {
        let mut prefix = path.to_path_buf();
        let mut rest: Vec<OsString> = Vec::new();
        loop {
            if let Ok(loc) = self.locate(&prefix, false) {
                let mut abs = self.disk_path(&loc.at);
                for part in rest.iter().rev() {
                    match part.as_bytes() {
                        b"." => {}
                        b".." => {
                            abs.pop();
                        }
                        _ => abs.push(part),
                    }
                }
                return self.where_of(&abs);
            }
            match (prefix.parent(), prefix.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    prefix = if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_path_buf()
                    };
                }
                _ => return Where::Outside(path.to_path_buf()),
            }
        }
    }

    /// Whether `path`, or what it leads to when it is a symlink, lies in
    /// the domain.
    pub fn lies_inside(&self, path: &Path) -> bool {
        matches!(self.whereabouts(path), Where::Inside(_))
            || self
                .locate(path, true)
                .is_ok_and(|l| matches!(l.at, Where::Inside(_)))
    }

    pub fn stat_loc(&self, loc: &Loc) -> io::Result<Stat> {
        match &loc.node {
            Node::Disk(m) => Ok(Stat::of_meta(m)),
            Node::Absent => Err(errno(libc::ENOENT)),
            Node::Entry(h, target) => {
                let dom = self.dom.as_ref().expect("entries are inside");
                let m = view::Meta::of(h, target);
                let (uid, gid) = m.owner(dom.owner.0, dom.owner.1);
                let mut st = Stat {
                    mode: m.mode,
                    size: m.size,
                    mtime_ns: m.mtime_ns,
                    atime_ns: m.atime_ns,
                    uid,
                    gid,
                    ino: m.ino,
                    dev: dom.dev,
                    nlink: 1 + u64::from(m.links),
                    ctime_ns: m.ctime_ns,
                    rdev: m.rdev,
                };
                if h.is_staged() {
                    // A file being written: its size and times are its staging file's.
                    if let Some(m) = self.staging_path(target).and_then(|p| fs::metadata(p).ok()) {
                        st.size = m.size();
                        st.mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
                        st.atime_ns = m.atime() * 1_000_000_000 + m.atime_nsec();
                    }
                }
                Ok(st)
            }
        }
    }

    pub fn lstat(&self, path: &Path) -> io::Result<Stat> {
        self.stat_loc(&self.locate(path, false)?)
    }

    pub fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.stat_loc(&self.locate(path, true)?)
    }

    /// `verify = true` in the project (the table's flag): a blob without
    /// the verified-once mark is verified by the daemon before it is read.
    fn verify_reads(&self) -> bool {
        self.dom
            .as_ref()
            .is_some_and(|dom| dom.table.borrow_mut().get().is_some_and(|t| t.verify()))
    }

    fn cas_root(&self) -> Option<PathBuf> {
        let dom = self.dom.as_ref()?;
        let mut mt = dom.table.borrow_mut();
        let t = mt.get()?;
        Some(PathBuf::from(OsStr::from_bytes(t.cas_root())))
    }

    fn staging_path(&self, name: &[u8]) -> Option<PathBuf> {
        Some(
            self.cas_root()?
                .join(vrift_format::STAGING_DIR)
                .join(OsStr::from_bytes(name)),
        )
    }

    pub fn read_link(&self, loc: &Loc) -> io::Result<PathBuf> {
        match &loc.node {
            Node::Entry(h, target) if h.kind == Kind::Symlink => {
                Ok(PathBuf::from(OsString::from_vec(target.clone())))
            }
            Node::Disk(m) if m.file_type().is_symlink() => fs::read_link(self.disk_path(&loc.at)),
            Node::Absent => Err(errno(libc::ENOENT)),
            _ => Err(errno(libc::EINVAL)),
        }
    }

    /// Opens a file of the view for reading (`loc` resolved with follow).
    pub fn open_read(&self, loc: &Loc) -> io::Result<File> {
        match &loc.node {
            Node::Absent => Err(errno(libc::ENOENT)),
            Node::Entry(h, _) if h.kind == Kind::Symlink => Err(errno(libc::ELOOP)),
            Node::Entry(h, target) => {
                let cas = self.cas_root().ok_or_else(|| errno(libc::EIO))?;
                let path = if h.is_staged() {
                    cas.join(vrift_format::STAGING_DIR)
                        .join(OsStr::from_bytes(target))
                } else if h.kind == Kind::Special {
                    // A FIFO or device of the view: its node.
                    return File::open(
                        cas.join(vrift_format::NODES_DIR)
                            .join(OsStr::from_bytes(target)),
                    );
                } else {
                    let mut rel = [0u8; vrift_format::BLOB_REL_PATH_LEN];
                    let n = h.hash.write_blob_rel_path(&mut rel);
                    cas.join(OsStr::from_bytes(&rel[..n]))
                };
                let rel = self.rel(loc).unwrap_or_default();
                let whole = |f: File| -> io::Result<File> {
                    if h.is_staged() {
                        return Ok(f);
                    }
                    let meta = f.metadata()?;
                    if meta.len() == h.size {
                        if meta.mode() & libc::S_ISVTX == 0 && self.verify_reads() {
                            self.fetch_blob(h, rel, vrift_format::proto::FETCH_VERIFY)?;
                        }
                        return Ok(f);
                    }
                    Err(io::Error::other(format!(
                        "its content {} in the store is damaged (its size is not the file's; run `vrift fsck`)",
                        h.hash
                    )))
                };
                match File::open(&path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !h.is_staged() => {
                        // Not in the store (pulled without --eager): the
                        // daemon fetches it from a remote, verified.
                        self.fetch_blob(h, rel, 0)?;
                        whole(File::open(&path)?)
                    }
                    // Another size than its entry's: damaged (a fetched blob
                    // a power loss cut short); fetched again if a remote has it.
                    Ok(f) if !h.is_staged() && f.metadata()?.len() != h.size => {
                        drop(f);
                        self.fetch_blob(h, rel, vrift_format::proto::FETCH_DAMAGED)?;
                        whole(File::open(&path)?)
                    }
                    other => other.and_then(whole),
                }
            }
            Node::Disk(_) => File::open(self.disk_path(&loc.at)),
        }
    }

    /// The names a directory of the view lists, sorted (rift and disk merged).
    pub fn read_dir(&self, loc: &Loc) -> io::Result<Vec<OsString>> {
        if !loc.is_dir() {
            return Err(errno(if loc.exists() {
                libc::ENOTDIR
            } else {
                libc::ENOENT
            }));
        }
        let disk = self.disk_path(&loc.at);
        let mut disk_names = Vec::new();
        for e in fs::read_dir(&disk)? {
            disk_names.push(e?.file_name().into_vec());
        }
        let rel = match &loc.at {
            Where::Outside(_) => {
                let mut v: Vec<OsString> = disk_names.into_iter().map(OsString::from_vec).collect();
                v.sort();
                return Ok(v);
            }
            Where::Inside(rel) => rel,
        };
        let dom = self.dom.as_ref().expect("inside implies a domain");
        let mut names = BTreeSet::new();
        let mut mt = dom.table.borrow_mut();
        let t = mt.get();
        if let Some(d) = t.as_ref().and_then(|t| t.dir(rel)) {
            for (name, rec) in d.children() {
                if matches!(rec, RecordRef::Entry { .. }) {
                    names.insert(name.to_vec());
                }
            }
        }
        let hidden = t.as_ref().is_some_and(|t| view::hides_disk_names(t, rel));
        for name in disk_names {
            let shows = match &t {
                Some(t) => view::disk_name_shows(t, &join_rel(rel, &name), hidden),
                None => !(rel.is_empty() && name == STATE_DIR),
            };
            if shows {
                names.insert(name);
            }
        }
        Ok(names.into_iter().map(OsString::from_vec).collect())
    }

    /// The location of `name` in the directory `dir` (for walking trees).
    pub fn child(&self, dir: &Loc, name: &OsStr) -> io::Result<Loc> {
        let at = match &dir.at {
            Where::Outside(p) => self.where_of(&p.join(name)),
            Where::Inside(rel) => Where::Inside(join_rel(rel, name.as_bytes())),
        };
        let node = self.node(&at)?;
        Ok(Loc { at, node })
    }

    /// Whether the caller may write `loc` (rm's "write-protected" test).
    pub fn writable(&self, loc: &Loc, st: &Stat) -> bool {
        match &loc.node {
            Node::Entry(..) => {
                if self.euid == 0 {
                    return true;
                }
                let bits = if st.uid == self.euid {
                    0o200
                } else {
                    // SAFETY: getegid cannot fail.
                    let egid = unsafe { libc::getegid() };
                    if st.gid == egid {
                        0o020
                    } else {
                        0o002
                    }
                };
                st.mode & bits != 0
            }
            _ => match cstr(&self.disk_path(&loc.at)) {
                // SAFETY: a valid C string.
                Ok(c) => unsafe {
                    libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) == 0
                },
                Err(_) => false,
            },
        }
    }

    // ---- changes ---------------------------------------------------------

    /// Sends a change to the daemon; an errno answer becomes an error.
    fn call(&self, op: Op, a: u64, b: u64, p1: &[u8], p2: &[u8]) -> io::Result<crate::Answer> {
        let answer = self.call_raw(op, a, b, p1, p2)?;
        if answer.errno > 0 {
            return Err(errno(answer.errno));
        }
        Ok(answer)
    }

    /// Sends a change of the view to the daemon: Ok(true) when the rift
    /// made it, Ok(false) when the daemon passed it back (the path is on
    /// a filesystem mounted in the project, the kernel's: the caller makes
    /// it on the disk); an errno answer becomes an error.
    fn in_rift(&self, op: Op, a: u64, b: u64, p1: &[u8], p2: &[u8]) -> io::Result<bool> {
        let answer = self.call(op, a, b, p1, p2)?;
        Ok(answer.flags & vrift_format::proto::REPLY_PASS == 0)
    }

    /// Sends a request to the daemon; its answer, errno included.
    fn call_raw(&self, op: Op, a: u64, b: u64, p1: &[u8], p2: &[u8]) -> io::Result<crate::Answer> {
        let dom = self.dom.as_ref().expect("inside implies a domain");
        if self.unreachable.get() {
            return Err(errno(libc::EIO));
        }
        let mut slot = self.daemon.borrow_mut();
        if slot.is_none() {
            match self.connector.connect(&dom.root) {
                Ok(d) => {
                    *slot = Some(d);
                    // A daemon that just started may have published the table.
                    dom.table.borrow_mut().refresh();
                }
                Err(e) => {
                    eprintln!(
                        "vrift: cannot reach the daemon of {}: {e}",
                        dom.root.display()
                    );
                    self.unreachable.set(true);
                    return Err(errno(libc::EIO));
                }
            }
        }
        let req = Request {
            op,
            tid: 0,
            a,
            b,
            c: 0,
            path1: p1,
            path2: p2,
        };
        let answer = match slot.as_mut().expect("connected above").call(&req) {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "vrift: the daemon of {} did not answer: {e}",
                    dom.root.display()
                );
                self.unreachable.set(true);
                return Err(errno(libc::EIO));
            }
        };
        Ok(answer)
    }

    /// Asks the daemon to fetch the missing (`flags` 0) or damaged
    /// ([`vrift_format::proto::FETCH_DAMAGED`]) blob of `h`; its reason, if
    /// it cannot, becomes the error (EIO).
    /// `rel`: the view path read (the daemon fetches its neighbours ahead).
    fn fetch_blob(&self, h: &RecordHeader, rel: &[u8], flags: u64) -> io::Result<()> {
        let mut hex = [0u8; vrift_format::HASH_HEX_LEN];
        h.hash.write_hex(&mut hex);
        let answer = self.call_raw(Op::FetchBlob, h.size, flags, &hex, rel)?;
        if answer.errno == 0 {
            return Ok(());
        }
        let why = String::from_utf8_lossy(&answer.data);
        Err(io::Error::other(if why.is_empty() {
            format!("its content {} is missing from the store", h.hash)
        } else {
            why.into_owned()
        }))
    }

    fn rel<'l>(&self, loc: &'l Loc) -> Option<&'l [u8]> {
        match &loc.at {
            Where::Inside(rel) => Some(rel),
            Where::Outside(_) => None,
        }
    }

    /// Opens `loc` for writing with open(2) `flags` (O_WRONLY implied) and
    /// `mode` for a new file (the caller applied the umask).
    /// `O_RDWR` is kept (the FUSE view opens files for both).
    pub fn open_write(&self, loc: &Loc, flags: i32, mode: u32) -> io::Result<File> {
        let flags = if flags & libc::O_ACCMODE == libc::O_RDWR {
            flags
        } else {
            flags | libc::O_WRONLY
        };
        if let Some(rel) = self.rel(loc) {
            let answer = self.call(Op::OpenWrite, flags as u64, mode as u64, rel, b"")?;
            if answer.flags & vrift_format::proto::REPLY_PASS != 0 {
                // A fifo, socket or device: writing it changes no file.
                return raw_open(&self.disk_path(&loc.at), flags, mode);
            }
            return answer
                .fd
                .map(File::from)
                .ok_or_else(|| io::Error::other("the daemon sent no file descriptor"));
        }
        raw_open(&self.disk_path(&loc.at), flags, mode)
    }

    pub fn unlink(&self, loc: &Loc) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Unlink, 0, 0, rel, b"")? => Ok(()),
            _ => fs::remove_file(self.disk_path(&loc.at)),
        }
    }

    pub fn rmdir(&self, loc: &Loc) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Rmdir, 0, 0, rel, b"")? => Ok(()),
            _ => fs::remove_dir(self.disk_path(&loc.at)),
        }
    }

    /// mkdir with `mode` (the caller applied the umask).
    pub fn mkdir(&self, loc: &Loc, mode: u32) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Mkdir, mode as u64, 0, rel, b"")? => Ok(()),
            _ => {
                let c = cstr(&self.disk_path(&loc.at))?;
                // SAFETY: a valid C string.
                check(unsafe { libc::mkdir(c.as_ptr(), mode) })
            }
        }
    }

    pub fn symlink(&self, target: &OsStr, loc: &Loc) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Symlink, 0, 0, rel, target.as_bytes())? => Ok(()),
            _ => std::os::unix::fs::symlink(target, self.disk_path(&loc.at)),
        }
    }

    /// A hard link `new` to `old` (EXDEV across the domain's edge). As
    /// every change below: one the daemon passes back (on a filesystem
    /// mounted in the project) is made on the disk.
    pub fn link(&self, old: &Loc, new: &Loc) -> io::Result<()> {
        match (self.rel(old), self.rel(new)) {
            (Some(a), Some(b)) if self.in_rift(Op::Link, 0, 0, a, b)? => Ok(()),
            (Some(_), Some(_)) | (None, None) => {
                let (a, b) = (
                    cstr(&self.disk_path(&old.at))?,
                    cstr(&self.disk_path(&new.at))?,
                );
                // SAFETY: valid C strings; no symlink following (as link(2) on Linux).
                check(unsafe {
                    libc::linkat(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), 0)
                })
            }
            _ => Err(errno(libc::EXDEV)),
        }
    }

    /// rename(2) with RENAME_* `flags` (EXDEV across the domain's edge).
    pub fn rename(&self, old: &Loc, new: &Loc, flags: u32) -> io::Result<()> {
        match (self.rel(old), self.rel(new)) {
            (Some(a), Some(b)) if self.in_rift(Op::Rename, flags as u64, 0, a, b)? => Ok(()),
            (Some(_), Some(_)) | (None, None) => {
                let (a, b) = (
                    cstr(&self.disk_path(&old.at))?,
                    cstr(&self.disk_path(&new.at))?,
                );
                if flags == 0 {
                    // SAFETY: valid C strings.
                    return check(unsafe { libc::rename(a.as_ptr(), b.as_ptr()) });
                }
                // SAFETY: valid C strings.
                check(unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        flags,
                    )
                })
            }
            _ => Err(errno(libc::EXDEV)),
        }
    }

    /// Sets the permission bits of `loc` (resolved with follow).
    pub fn chmod(&self, loc: &Loc, mode: u32) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Chmod, mode as u64, 0, rel, b"")? => Ok(()),
            _ => {
                let c = cstr(&self.disk_path(&loc.at))?;
                // SAFETY: a valid C string.
                check(unsafe { libc::chmod(c.as_ptr(), mode) })
            }
        }
    }

    /// Changes the owner of `loc` itself (`u32::MAX`: unchanged).
    pub fn chown(&self, loc: &Loc, uid: u32, gid: u32) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Chown, uid as u64, gid as u64, rel, b"")? => Ok(()),
            _ => {
                let c = cstr(&self.disk_path(&loc.at))?;
                // SAFETY: a valid C string.
                check(unsafe { libc::lchown(c.as_ptr(), uid, gid) })
            }
        }
    }

    /// Sets the times of `loc` itself.
    pub fn utimes(&self, loc: &Loc, atime: Time, mtime: Time) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Utimes, atime.wire(), mtime.wire(), rel, b"")? => Ok(()),
            _ => {
                let c = cstr(&self.disk_path(&loc.at))?;
                let times = [atime.timespec(), mtime.timespec()];
                // SAFETY: a valid C string and two timespecs.
                check(unsafe {
                    libc::utimensat(
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        times.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
            }
        }
    }

    /// Sets the size of the file `loc` (resolved with follow).
    pub fn truncate(&self, loc: &Loc, len: u64) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Truncate, len, 0, rel, b"")? => Ok(()),
            _ => {
                let c = cstr(&self.disk_path(&loc.at))?;
                // SAFETY: a valid C string.
                check(unsafe { libc::truncate(c.as_ptr(), len as libc::off_t) })
            }
        }
    }

    /// Creates a special file (fifo, socket, device): in the domain a rift
    /// entry (its node made by the daemon in the store), as the library's
    /// `mknod`; `mode` holds the type bits.
    pub fn mknod(&self, loc: &Loc, mode: u32, dev: u64) -> io::Result<()> {
        match self.rel(loc) {
            Some(rel) if self.in_rift(Op::Mknod, mode as u64, dev, rel, b"")? => Ok(()),
            _ => {
                let c = cstr(&self.disk_path(&loc.at))?;
                // SAFETY: a valid C string.
                check(unsafe { libc::mknod(c.as_ptr(), mode, dev) })
            }
        }
    }
}

/// Whether this process may search every directory on the way to the
/// rift path `rel` below `root` (one `faccessat` of its parent, with the
/// effective ids, as the kernel's walk checks).
fn searchable(root: &Path, rel: &[u8]) -> bool {
    // Its `.`: a parent that is no directory on disk is not a refusal.
    let parent = match rel.iter().rposition(|&c| c == b'/') {
        Some(i) => root.join(OsStr::from_bytes(&rel[..i])).join("."),
        None => root.join("."),
    };
    let Ok(c) = cstr(&parent) else {
        return true;
    };
    // SAFETY: a valid C string.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) == 0 }
}

fn disk_node(p: &Path) -> io::Result<Node> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Node::Disk(m)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Node::Absent),
        Err(e) => Err(e),
    }
}

fn raw_open(p: &Path, flags: i32, mode: u32) -> io::Result<File> {
    let c = cstr(p)?;
    // SAFETY: a valid C string; the fd is owned right after.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}
