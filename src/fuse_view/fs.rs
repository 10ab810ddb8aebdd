//! The view as a FUSE filesystem: each request answered through
//! [`Vfs`], the model of the view vrift's coreutils use (rift entries over
//! the disk, changes sent to the project's daemon). The kernel walks the
//! paths — symlinks, `..`, `/proc/self/...` spellings, permissions
//! (`default_permissions`) — and asks this for one name in one directory
//! at a time.
//!
//! Node ids are this mount's own (the root is 1), handed out the first
//! time a path is seen and kept for the mount's life (it lives as long as
//! one program and its children): a path moved by `rename` keeps its id,
//! as the kernel's dentry does.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};
use vrift_coreutils::vfs::{Loc, Node, Stat, Time, Vfs, Where};

/// How long the kernel may keep a name's node and attributes (and a name's
/// absence) without asking again. Changes made through this mount update
/// the kernel's caches at once; a change made outside it (a process of the
/// inception that loads the library, an editor outside) is seen within
/// this (see the README's limits). 0.2 s measured the same as 1 s
/// (libfuse's default) on `go build` and an esbuild bundle: most of a
/// program's lookups of a name come close together.
const TTL: Duration = Duration::from_millis(200);

fn err(e: io::Error) -> Errno {
    Errno::from(e)
}

/// The paths behind node ids.
#[derive(Default)]
struct Nodes {
    by_id: HashMap<u64, Where>,
    by_where: HashMap<Where, u64>,
    next: u64,
}

impl Nodes {
    fn new() -> Nodes {
        let mut n = Nodes {
            next: 2,
            ..Nodes::default()
        };
        n.by_id.insert(1, Where::Inside(Vec::new()));
        n.by_where.insert(Where::Inside(Vec::new()), 1);
        n
    }

    fn id(&mut self, at: &Where) -> u64 {
        if let Some(&id) = self.by_where.get(at) {
            return id;
        }
        let id = self.next;
        self.next += 1;
        self.by_id.insert(id, at.clone());
        self.by_where.insert(at.clone(), id);
        id
    }

    fn at(&self, id: u64) -> Option<Where> {
        self.by_id.get(&id).cloned()
    }

    /// `at` names nothing now (removed, or replaced): its node id is
    /// retired — an fd still open on it answers from the file — and the
    /// next object made there gets a new one.
    fn gone(&mut self, at: &Where) {
        if let Some(id) = self.by_where.remove(at) {
            self.by_id.remove(&id);
        }
    }

    /// `from` (and everything below it) is now at `to`; with `exchange`,
    /// `to`'s are at `from`.
    fn moved(&mut self, from: &Where, to: &Where, exchange: bool) {
        let below = |w: &Where, base: &Where| -> Option<Vec<u8>> {
            match (w, base) {
                (Where::Inside(p), Where::Inside(b)) if p == b => Some(Vec::new()),
                (Where::Inside(p), Where::Inside(b))
                    if p.starts_with(b) && (b.is_empty() || p.get(b.len()) == Some(&b'/')) =>
                {
                    Some(p[b.len()..].to_vec())
                }
                _ => None,
            }
        };
        let rebase = |base: &Where, tail: Vec<u8>| -> Where {
            match base {
                Where::Inside(b) => {
                    let mut v = b.clone();
                    v.extend_from_slice(&tail);
                    Where::Inside(v)
                }
                other => other.clone(),
            }
        };
        let mut changes = Vec::new();
        let mut retired = Vec::new();
        for (id, w) in &self.by_id {
            if let Some(tail) = below(w, from) {
                changes.push((*id, rebase(to, tail)));
            } else if let Some(tail) = below(w, to) {
                if exchange {
                    changes.push((*id, rebase(from, tail)));
                } else {
                    // Replaced: its old node names nothing now.
                    retired.push(*id);
                }
            }
        }
        for id in retired {
            if let Some(w) = self.by_id.remove(&id) {
                self.by_where.remove(&w);
            }
        }
        for (id, w) in changes {
            if let Some(old) = self.by_id.insert(id, w.clone()) {
                if self.by_where.get(&old) == Some(&id) {
                    self.by_where.remove(&old);
                }
            }
            self.by_where.insert(w, id);
        }
    }
}

/// An open file or directory.
enum Handle {
    /// Shared, so that reading or writing it holds no lock.
    File(std::sync::Arc<File>),
    /// A directory's listing as it was at opendir.
    Dir(Vec<Listed>),
}

/// One name of a directory listing, with its node id and attributes
/// (READDIRPLUS hands both to the kernel, which then need not look each
/// name up).
struct Listed {
    name: Vec<u8>,
    attr: FileAttr,
}

/// The FUSE filesystem of one program's view.
pub struct ViewFs {
    nodes: Mutex<Nodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_handle: std::sync::atomic::AtomicU64,
    root: std::path::PathBuf,
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn attr_of(id: u64, st: &Stat) -> FileAttr {
    let mtime = time_of(st.mtime_ns);
    FileAttr {
        ino: INodeNo(id),
        size: st.size,
        blocks: st.size.div_ceil(512),
        atime: time_of(st.atime_ns),
        mtime,
        ctime: time_of(st.ctime_ns),
        crtime: mtime,
        kind: kind_of(st.mode),
        perm: (st.mode & 0o7777) as u16,
        nlink: st.nlink.min(u32::MAX as u64) as u32,
        uid: st.uid,
        gid: st.gid,
        rdev: st.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn attr_of_meta(id: u64, m: &std::fs::Metadata) -> FileAttr {
    attr_of(id, &Stat::of_meta(m))
}

fn time_arg(t: Option<TimeOrNow>) -> Time {
    match t {
        None => Time::Omit,
        Some(TimeOrNow::Now) => Time::Now,
        Some(TimeOrNow::SpecificTime(t)) => Time::At(match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i64,
            Err(e) => -(e.duration().as_nanos() as i64),
        }),
    }
}

impl ViewFs {
    pub fn new(root: &Path) -> ViewFs {
        ViewFs {
            nodes: Mutex::new(Nodes::new()),
            handles: Mutex::new(HashMap::new()),
            next_handle: std::sync::atomic::AtomicU64::new(1),
            root: root.to_path_buf(),
        }
    }

    /// This thread's model of the view: each server thread has its own
    /// (its own mapping of the table, its own daemon connection), made the
    /// first time the thread needs it and kept for the server's life.
    fn vfs(&self) -> &'static Vfs<'static> {
        static DAEMONS: crate::applets::Daemons = crate::applets::Daemons;
        thread_local! {
            static VFS: std::cell::Cell<Option<&'static Vfs<'static>>> =
                const { std::cell::Cell::new(None) };
        }
        VFS.with(|cell| {
            *cell.get().get_or_insert_with(|| {
                let vfs: &'static Vfs<'static> =
                    Box::leak(Box::new(Vfs::new(Some(&self.root), &DAEMONS)));
                cell.set(Some(vfs));
                vfs
            })
        })
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn where_of(&self, id: INodeNo) -> Result<Where, Errno> {
        self.nodes().at(id.0).ok_or(Errno::ESTALE)
    }

    /// The location of node `id` as the view holds it now.
    fn loc(&self, id: INodeNo) -> Result<Loc, Errno> {
        let at = self.where_of(id)?;
        let node = self.vfs().node(&at).map_err(err)?;
        Ok(Loc { at, node })
    }

    /// The location of `name` in the directory node `parent`.
    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<Loc, Errno> {
        let at = self.where_of(parent)?;
        let dir = Loc {
            at,
            node: Node::Absent,
        };
        self.vfs().child(&dir, name).map_err(err)
    }

    /// The node id and attributes of an existing location.
    fn entry(&self, loc: &Loc) -> Result<FileAttr, Errno> {
        if !loc.exists() {
            return Err(Errno::ENOENT);
        }
        let st = self.vfs().stat_loc(loc).map_err(err)?;
        let id = self.nodes().id(&loc.at);
        Ok(attr_of(id, &st))
    }

    /// `entry` of `name` in `parent`, looked up again (after a change).
    fn fresh_entry(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let loc = self.child(parent, name)?;
        self.entry(&loc)
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self
            .next_handle
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handles().insert(fh, h);
        fh
    }

    fn with_file<T>(
        &self,
        fh: FileHandle,
        f: impl FnOnce(&File) -> io::Result<T>,
    ) -> Result<T, Errno> {
        let file = match self.handles().get(&fh.0) {
            Some(Handle::File(file)) => file.clone(),
            _ => return Err(Errno::EBADF),
        };
        f(&file).map_err(err)
    }

    /// The listing of a directory of the view, each name with its node id
    /// and attributes (`.` and `..` with the directory's).
    fn listing(&self, id: INodeNo) -> Result<Vec<Listed>, Errno> {
        let dir = self.loc(id)?;
        let here = self.entry(&dir)?;
        let vfs = self.vfs();
        let names = vfs.read_dir(&dir).map_err(err)?;
        let mut out = Vec::with_capacity(names.len() + 2);
        for dot in [&b"."[..], &b".."[..]] {
            out.push(Listed {
                name: dot.to_vec(),
                attr: here,
            });
        }
        for name in names {
            // A name gone since the listing was read is left out.
            let Ok(loc) = vfs.child(&dir, &name) else {
                continue;
            };
            let Ok(attr) = self.entry(&loc) else {
                continue;
            };
            out.push(Listed {
                name: name.as_bytes().to_vec(),
                attr,
            });
        }
        Ok(out)
    }
}

fn reply_entry(reply: ReplyEntry, entry: Result<FileAttr, Errno>) {
    match entry {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, done: Result<(), Errno>) {
    match done {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl ViewFs {
    /// Makes `name` in `parent` with `how`; its entry.
    fn make(
        &self,
        parent: INodeNo,
        name: &OsStr,
        how: impl FnOnce(&Vfs<'static>, &Loc) -> io::Result<()>,
    ) -> Result<FileAttr, Errno> {
        let loc = self.child(parent, name)?;
        how(self.vfs(), &loc).map_err(err)?;
        self.fresh_entry(parent, name)
    }

    /// unlink (`dir`: rmdir) of `name` in `parent`; its node id retired.
    fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let loc = self.child(parent, name)?;
        let vfs = self.vfs();
        let removed = if dir {
            vfs.rmdir(&loc)
        } else {
            vfs.unlink(&loc)
        };
        removed.map_err(err)?;
        self.nodes().gone(&loc.at);
        Ok(())
    }

    /// Hands `add` the names of the listing `fh` from `offset` on, each
    /// with the offset after it, until `add` says the reply is full.
    fn each_listed(
        &self,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(u64, &Listed) -> bool,
    ) -> Result<(), Errno> {
        let handles = self.handles();
        let Some(Handle::Dir(list)) = handles.get(&fh.0) else {
            return Err(Errno::EBADF);
        };
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            if add(i as u64 + 1, e) {
                break;
            }
        }
        Ok(())
    }
}

impl Filesystem for ViewFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // READDIRPLUS: a listing brings each name's attributes (one
        // LOOKUP less per name a program lists, then stats or opens).
        // AUTO_INVAL_DATA: cached pages of a file whose size or mtime is
        // seen to change are dropped (see `open`'s KEEP_CACHE).
        for wanted in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_AUTO_INVAL_DATA,
        ] {
            // What the kernel lacks is simply not used.
            let _ = config.add_capabilities(wanted);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|loc| self.entry(&loc)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            // A name that is not there, kept by the kernel as such for the
            // TTL too (node id 0): module resolvers probe many.
            Err(e) if e.code() == libc::ENOENT => {
                let mut none = attr_of(0, &Stat::default());
                none.ino = INodeNo(0);
                reply.entry(&TTL, &none, Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let by_path = self.loc(ino).and_then(|loc| self.entry(&loc));
        let attr = match (by_path, fh) {
            // Removed while open: the open file's.
            (Err(e), Some(fh)) if matches!(e.code(), libc::ENOENT | libc::ESTALE) => self
                .with_file(fh, |f| f.metadata())
                .map(|m| attr_of_meta(ino.0, &m)),
            (other, _) => other,
        };
        match attr {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let run = || -> Result<FileAttr, Errno> {
            let loc = self.loc(ino)?;
            if let Some(len) = size {
                match fh {
                    // ftruncate: the open file (its staging copy).
                    Some(fh) if self.with_file(fh, |f| f.set_len(len)).is_ok() => {}
                    _ => self.vfs().truncate(&loc, len).map_err(err)?,
                }
            }
            if let Some(mode) = mode {
                self.vfs().chmod(&loc, mode & 0o7777).map_err(err)?;
            }
            if uid.is_some() || gid.is_some() {
                let vfs = self.vfs();
                vfs.chown(&loc, uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))
                    .map_err(err)?;
            }
            if atime.is_some() || mtime.is_some() {
                self.vfs()
                    .utimes(&loc, time_arg(atime), time_arg(mtime))
                    .map_err(err)?;
            }
            self.entry(&self.loc(ino)?)
        };
        match run() {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .loc(ino)
            .and_then(|loc| self.vfs().read_link(&loc).map_err(err))
        {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let made = self.make(parent, name, |vfs, loc| {
            vfs.mkdir(loc, mode & !umask & 0o7777)
        });
        reply_entry(reply, made);
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let mode = (mode & libc::S_IFMT) | (mode & !umask & 0o7777);
        let made = self.make(parent, name, |vfs, loc| {
            vfs.mknod(loc, mode, u64::from(rdev))
        });
        reply_entry(reply, made);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, true));
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let made = self.make(parent, link_name, |vfs, loc| {
            vfs.symlink(target.as_os_str(), loc)
        });
        reply_entry(reply, made);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let run = || -> Result<(), Errno> {
            let old = self.child(parent, name)?;
            let new = self.child(newparent, newname)?;
            self.vfs().rename(&old, &new, flags.bits()).map_err(err)?;
            let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
            self.nodes().moved(&old.at, &new.at, exchange);
            Ok(())
        };
        reply_empty(reply, run());
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let run = || -> Result<FileAttr, Errno> {
            let old = self.loc(ino)?;
            let new = self.child(newparent, newname)?;
            self.vfs().link(&old, &new).map_err(err)?;
            self.fresh_entry(newparent, newname)
        };
        reply_entry(reply, run());
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let run = || -> Result<(u64, FopenFlags), Errno> {
            let loc = self.loc(ino)?;
            let flags = flags.0;
            let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
            let file = if writes {
                let keep = libc::O_ACCMODE | libc::O_TRUNC | libc::O_APPEND;
                self.vfs().open_write(&loc, flags & keep, 0).map_err(err)?
            } else {
                self.vfs().open_read(&loc).map_err(err)?
            };
            // A file only read has nothing to flush at close: the kernel
            // need not ask (one round trip less per open); and its cached
            // pages stay valid across opens (a change through this mount
            // updates them; one outside is seen by its new size or mtime,
            // AUTO_INVAL_DATA, within the TTL).
            let how = if writes {
                FopenFlags::empty()
            } else {
                FopenFlags::FOPEN_NOFLUSH | FopenFlags::FOPEN_KEEP_CACHE
            };
            Ok((
                self.add_handle(Handle::File(std::sync::Arc::new(file))),
                how,
            ))
        };
        match run() {
            Ok((fh, how)) => reply.opened(FileHandle(fh), how),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let run = || -> Result<(FileAttr, u64), Errno> {
            let loc = self.child(parent, name)?;
            let keep = libc::O_ACCMODE | libc::O_TRUNC | libc::O_APPEND | libc::O_EXCL;
            let file = self
                .vfs()
                .open_write(&loc, (flags & keep) | libc::O_CREAT, mode & !umask & 0o7777)
                .map_err(err)?;
            let attr = self.fresh_entry(parent, name)?;
            Ok((
                attr,
                self.add_handle(Handle::File(std::sync::Arc::new(file))),
            ))
        };
        match run() {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let got = self.with_file(fh, |f| {
            let mut buf = vec![0u8; size as usize];
            let mut n = 0;
            while n < buf.len() {
                match f.read_at(&mut buf[n..], offset + n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(n);
            Ok(buf)
        });
        match got {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with_file(fh, |f| f.write_all_at(data, offset)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let synced = self.with_file(fh, |f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
        });
        match synced {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// On the open file (a staging copy when open for writing): a full
    /// disk says so here, not as a SIGBUS in a mapping later (the Go
    /// linker allocates its output before mapping it).
    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let done = self.with_file(fh, |f| {
            use std::os::fd::AsRawFd;
            // SAFETY: an fd the handle keeps open; plain integers.
            let r = unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
        reply_empty(reply, done);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.listing(ino) {
            Ok(list) => reply.opened(
                FileHandle(self.add_handle(Handle::Dir(list))),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.each_listed(fh, offset, |next, e| {
            reply.add(e.attr.ino, next, e.attr.kind, OsStr::from_bytes(&e.name))
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listed = self.each_listed(fh, offset, |next, e| {
            let name = OsStr::from_bytes(&e.name);
            reply.add(e.attr.ino, next, name, &TTL, &e.attr, Generation(0))
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let Ok(c) = std::ffi::CString::new(self.root.as_os_str().as_bytes()) else {
            reply.error(Errno::EINVAL);
            return;
        };
        // SAFETY: all-zero is a valid statvfs, filled by the call.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid C string and a struct to fill.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            reply.error(err(io::Error::last_os_error()));
            return;
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        );
    }
}
