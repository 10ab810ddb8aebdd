//! The view as the daemon reads it: what a path names, what a directory
//! lists, which paths are refused, and what a reader opens next.

use super::*;

impl Rift {
    /// Refuses a path the library never sends (issue 14: the wire format is
    /// public, and any process of the user can connect): one below
    /// `.vrift/`, the store or the runtime directory when they lie in the
    /// project (vrift's own state is never part of the view: EACCES), and
    /// one with a physical symlink on the way (clients resolve symlinks
    /// before they name a path, so such a path could only lead the daemon
    /// out of the project: ELOOP). The last component is never followed by
    /// the operations themselves (lstat, lchown, openat2 RESOLVE_BENEATH).
    /// Names and lengths were checked before (`is_valid_rift_path`,
    /// NAME_MAX, PATH_MAX).
    pub fn confined(&self, rel: &[u8]) -> std::result::Result<(), i32> {
        if rel.is_empty() {
            return Ok(());
        }
        let below = |dir: &[u8]| rel == dir || rel.starts_with(dir) && rel[dir.len()] == b'/';
        if below(crate::project::STATE_DIR.as_bytes()) {
            return Err(libc::EACCES);
        }
        let root = self.project.root();
        for own in [self.cas.root().to_path_buf(), crate::daemon::runtime_dir()] {
            if let Ok(inside) = own.strip_prefix(root) {
                let inside = inside.as_os_str().as_bytes();
                if inside.is_empty() || below(inside) {
                    return Err(libc::EACCES);
                }
            }
        }
        let t = self.table();
        for (i, _) in rel.iter().enumerate().filter(|(_, &c)| c == b'/') {
            match fs::symlink_metadata(self.disk(&rel[..i])) {
                // Unless the rift hides it (a whiteout, an entry over it, an
                // opaque directory above): then the view's rules answer.
                Ok(m) if m.file_type().is_symlink() => {
                    return match view::lookup(&t, &rel[..i]) {
                        Found::Disk => Err(libc::ELOOP),
                        _ => Ok(()),
                    };
                }
                Ok(_) => {}
                // Nothing physical below a missing directory.
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// What `rel` names in the view.
    pub fn node(&self, rel: &[u8]) -> Node {
        let t = self.table();
        match view::lookup(&t, rel) {
            Found::Error(libc::ENOTDIR) => Node::NotDir,
            Found::Error(_) => Node::Absent,
            // Clients resolve rift symlinks before they name a path: one
            // on the way here is not a directory to the daemon, which
            // never follows a link on a client's behalf.
            Found::Symlink { .. } => Node::NotDir,
            Found::Entry { header, target } => Node::Entry(header, target.to_vec()),
            Found::Disk => match beneath::lstat(self.root(), rel) {
                Ok(m) if m.is_dir() => Node::Dir,
                Ok(m) => Node::Phys(m),
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Node::NotDir,
                // A symlink on the way (swapped in since `confined`): the
                // daemon never follows one.
                Err(e) if beneath::refused(&e) => Node::NotDir,
                Err(_) if view::missing_errno(&t, rel) == libc::ENOTDIR => Node::NotDir,
                Err(_) => Node::Absent,
            },
        }
    }

    /// An fd of the content of `rel` for reading (`OpenRead`: a process
    /// whose credentials changed, checked by `permits`): a rift file's blob
    /// or staging file, or the disk's file.
    pub fn open_read(&self, rel: &[u8]) -> OpResult<OwnedFd> {
        let path = match self.node(rel) {
            Node::Entry(h, target) if h.kind == Kind::File => match h.is_staged() {
                true => self.staging_dir.join(std::ffi::OsStr::from_bytes(&target)),
                false => self.cas.blob_path(&h.hash),
            },
            // Symlinks are resolved by the client, special files opened by
            // it (their nodes are not in the private part of the store).
            Node::Entry(..) => return posix(libc::EINVAL),
            Node::Phys(_) => {
                return Ok(beneath::open(
                    self.root(),
                    rel,
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )?)
            }
            Node::Dir => return posix(libc::EISDIR),
            Node::NotDir => return posix(libc::ENOTDIR),
            Node::Absent => return posix(libc::ENOENT),
        };
        match File::open(&path) {
            Ok(f) => Ok(f.into()),
            // A blob not fetched yet: the client fetches it first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => posix(libc::ENOENT),
            Err(e) => Err(e.into()),
        }
    }

    /// An `O_PATH` fd of the staging file `name` of a file being written
    /// (`OpenRead` with `OPEN_READ_STAGING`): its metadata for a process
    /// that cannot reach the private store. Only a staging name this rift
    /// has: never another file.
    pub fn open_staging_path(&self, name: &[u8]) -> OpResult<OwnedFd> {
        if name.contains(&b'/') || !self.staged.contains_key(name) {
            return posix(libc::ENOENT);
        }
        let path = self.staging_dir.join(std::ffi::OsStr::from_bytes(name));
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(&path)?;
        Ok(f.into())
    }

    /// An fd of the current hot table file (`OpenRead` with
    /// `OPEN_READ_TABLE`): for a process that changed its credentials and
    /// may not open a newly published generation itself.
    pub fn open_table(&self) -> OpResult<OwnedFd> {
        Ok(File::open(crate::table::table_path(&self.project))?.into())
    }

    /// The parent of a path about to be created must be a directory.
    pub(super) fn check_parent(&self, rel: &[u8]) -> OpResult<()> {
        if rel.is_empty() {
            return posix(libc::EEXIST);
        }
        match self.node(parent_rel(rel)) {
            Node::Dir => Ok(()),
            Node::Absent => posix(libc::ENOENT),
            _ => posix(libc::ENOTDIR),
        }
    }

    /// The names a directory of the view lists (rift and disk merged).
    pub fn list(&self, rel: &[u8]) -> Vec<Vec<u8>> {
        let t = self.table();
        let mut names: Vec<Vec<u8>> = Vec::new();
        if let Some(d) = t.dir(rel) {
            for (name, rec) in d.children() {
                if matches!(rec, RecordRef::Entry { .. }) {
                    names.push(name.to_vec());
                }
            }
        }
        let hidden = view::hides_disk_names(&t, rel);
        if let Ok(rd) = beneath::read_dir(self.root(), rel) {
            for e in rd {
                let name = e.into_vec();
                if view::disk_name_shows(&t, &join_rel(rel, &name), hidden) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The blobs of the rift files a reader of `rel` is likely to open next,
    /// for the fetcher to prefetch (see `fetch.rs`), one of two rings
    /// ([`Ring`]). At most `max`, each at most `max_size` bytes; staged
    /// files (no blob yet) are left out. No blob is looked at here (the
    /// fetcher skips those in the store): a directory listing and table
    /// lookups.
    pub fn neighbours(&self, rel: &[u8], ring: Ring, max: usize, max_size: u64) -> Vec<Wanted> {
        let t = self.table();
        let mut out: Vec<Wanted> = Vec::new();
        let dir = parent_rel(rel);
        let name = rel.rsplit(|&c| c == b'/').next().unwrap_or_default();
        if ring == Ring::Siblings {
            let kind = crate::paths::extension(name);
            if let Some(d) = t.dir(dir) {
                out.extend(
                    d.children()
                        .filter(|(n, _)| crate::paths::extension(n) == kind)
                        .take(max)
                        .filter_map(|(n, rec)| wanted(join_rel(dir, n), rec, max_size)),
                );
            }
            out.truncate(max);
            return out;
        }
        let Some(i) = rel.iter().rposition(|&c| c == b'/') else {
            return out;
        };
        let grand = parent_rel(&rel[..i]);
        if let Ok(rd) = beneath::read_dir(self.root(), grand) {
            // Directories are physical: the disk lists the cousins' parents.
            for e in rd.into_iter().take(4 * max) {
                if out.len() >= max {
                    break;
                }
                let sub = join_rel(grand, e.as_bytes());
                if sub == rel[..i] {
                    continue;
                }
                let path = join_rel(&sub, name);
                if let Some(rec) = t.lookup(&path) {
                    out.extend(wanted(path, rec, max_size));
                }
            }
        }
        out.truncate(max);
        out
    }

    /// The rift files at `paths` (a read profile), in order, each at most
    /// `max_size` bytes; paths the rift has no sealed file at are skipped.
    pub fn files_at(&self, paths: Vec<Vec<u8>>, max_size: u64) -> Vec<Wanted> {
        let t = self.table();
        paths
            .into_iter()
            .filter_map(|p| {
                let rec = t.lookup(&p)?;
                wanted(p, rec, max_size)
            })
            .collect()
    }

    pub(super) fn is_empty_dir(&self, rel: &[u8]) -> bool {
        self.list(rel).is_empty()
    }
}

/// Which neighbours of a read file [`Rift::neighbours`] gives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ring {
    /// The files of the same name in the other directories of its parent's
    /// parent (`node_modules/*/package.json`, `src/*/mod.rs`: what
    /// resolvers walk).
    Cousins,
    /// The other files of its directory with its extension
    /// ([`crate::paths::extension`]: node following `.cjs` requires skips
    /// the `.d.ts` and `.map` beside them; fetching those too was slower
    /// than no prefetch at all).
    Siblings,
}

/// A file whose blob may be fetched ahead: its rift path, blob and size.
pub struct Wanted {
    pub path: Vec<u8>,
    pub hash: ContentHash,
    pub size: u64,
}

/// `rec` at `path` as a [`Wanted`] if it is a sealed file of at most
/// `max_size` bytes (a staged file has no blob to fetch).
fn wanted(path: Vec<u8>, rec: RecordRef<'_>, max_size: u64) -> Option<Wanted> {
    match rec {
        RecordRef::Entry { header, .. }
            if header.kind == Kind::File && !header.is_staged() && header.size <= max_size =>
        {
            Some(Wanted {
                path,
                hash: header.hash,
                size: header.size,
            })
        }
        _ => None,
    }
}
