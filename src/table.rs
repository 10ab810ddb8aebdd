//! The hot table writer: builds `.vrift/view.table` from the manifest (the
//! format and the reader are in `vrift_format::table`).
//!
//! The CLI republishes the whole table after every command that changes the
//! manifest; a new table replaces the old by `rename`, then the old one is
//! marked superseded so processes that mapped it switch over.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use vrift_format::table::{
    field, path_hash, Table, DIR_SLOT_LEN, FLAG_CLOSED_DIRS, FLAG_SUPERSEDED, FLAG_VERIFY,
    HEADER_LEN, PATH_SLOT_LEN, TABLE_FILE, TABLE_MAGIC, TABLE_VERSION,
};
use vrift_format::DIR_OPAQUE;

use crate::cas::Cas;
use crate::manifest::{Layer, Manifest};
use crate::paths::parent_rel;
use crate::project::Project;

/// Where a project's table lives.
pub fn table_path(project: &Project) -> PathBuf {
    project.state_dir().join(TABLE_FILE)
}

/// Records in path order: (path, encoded record) pairs, kept in one buffer.
/// A view holds 100k and more of them; an allocation per path and per
/// record was a good part of the time a restore or a publish took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    bytes: Vec<u8>,
    /// Per pair: where its path starts, the path's length, the record's
    /// length (the record follows the path).
    spans: Vec<(usize, u32, u32)>,
}

impl Records {
    pub fn with_capacity(pairs: usize, bytes: usize) -> Records {
        Records {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(pairs),
        }
    }

    pub fn push(&mut self, path: &[u8], rec: &[u8]) {
        self.spans
            .push((self.bytes.len(), path.len() as u32, rec.len() as u32));
        self.bytes.extend_from_slice(path);
        self.bytes.extend_from_slice(rec);
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The pair at `i`: (path, record).
    pub fn get(&self, i: usize) -> (&[u8], &[u8]) {
        let (at, k, r) = self.spans[i];
        let (k, r) = (k as usize, r as usize);
        (&self.bytes[at..at + k], &self.bytes[at + k..at + k + r])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Puts the pairs in path order (the bytes stay where they are).
    pub fn sort(&mut self) {
        let bytes = &self.bytes;
        self.spans
            .sort_by(|a, b| bytes[a.0..a.0 + a.1 as usize].cmp(&bytes[b.0..b.0 + b.1 as usize]));
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for Records {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Records {
        let mut out = Records::default();
        for (k, v) in iter {
            out.push(k.as_ref(), v.as_ref());
        }
        out
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Box<dyn Iterator<Item = (&'a [u8], &'a [u8])> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// What a table says about where it belongs, beside its records.
#[derive(Clone, Copy, Debug)]
pub struct TableMeta<'a> {
    pub generation: u64,
    /// Records that can hide a physical subtree (see the format's header).
    pub hiding: u64,
    pub root: &'a [u8],
    pub cas_root: &'a [u8],
    /// The daemon's socket and the binary that starts it.
    pub socket: &'a [u8],
    pub exe: &'a [u8],
    /// `verify = true` in the project's config ([`FLAG_VERIFY`]).
    pub verify: bool,
    /// A directory lost its owner's search bit ([`FLAG_CLOSED_DIRS`]).
    pub closed_dirs: bool,
}

/// Whether a table is built exactly to size (the CLI's, replaced whole) or
/// with room for the daemon to add records in place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Room {
    Exact,
    Spare,
}

/// Whether an encoded record is a stopping point of a lookup (symlink,
/// whiteout, entry over a physical directory).
pub fn is_stop(rec: &[u8]) -> bool {
    let kind = rec.first().copied().unwrap_or(0);
    kind == vrift_format::Kind::Symlink as u8
        || kind == vrift_format::Kind::Whiteout as u8
        || rec
            .get(1)
            .is_some_and(|f| f & vrift_format::FLAG_HIDES_DIR != 0)
}

/// Slot counts and sizes of a table holding `records` paths in `dirs`
/// directories with `stops` stopping points.
pub fn layout(records: usize, dirs: usize, stops: usize, arena: usize, room: Room) -> Layout {
    // Spare room starts small: a lookup touches a random slot, so a sparse
    // 96 KiB slot array costs a short process one page fault (~5 µs here,
    // mapping a 64 KiB window) per window it lands in, and a small project's
    // whole index should fit in one. The daemon rebuilds, 4× larger, when
    // half the slots are used.
    let (grow, min_slots, min_words, spare_arena) = match room {
        Room::Exact => (2, 16, 8, 0),
        Room::Spare => (4, 256, 64, arena.max(4 << 20)),
    };
    Layout {
        slot_count: (records * grow).max(min_slots).next_power_of_two(),
        dir_slot_count: (dirs * grow).max(min_slots).next_power_of_two(),
        // 32 bits per stopping point (64 with room to grow): with two bits
        // per path, a prefix hits by chance ~0.4% of the time (~0.1%). At 8
        // bits a stop, 4% of prefixes hit, and each hit costs the shim a
        // lookup walk (measured: a bench path took 2,160 instructions
        // instead of 1,210).
        bloom_words: (stops * grow * 16 / 64).max(min_words).next_power_of_two(),
        arena_cap: arena + spare_arena,
    }
}

/// The sizes of a table's parts.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub slot_count: usize,
    pub dir_slot_count: usize,
    pub bloom_words: usize,
    pub arena_cap: usize,
}

impl Layout {
    pub fn slots_off(&self) -> usize {
        HEADER_LEN
    }
    pub fn dir_slots_off(&self) -> usize {
        self.slots_off() + self.slot_count * PATH_SLOT_LEN
    }
    pub fn bloom_off(&self) -> usize {
        self.dir_slots_off() + self.dir_slot_count * DIR_SLOT_LEN
    }
    pub fn arena_off(&self) -> usize {
        self.bloom_off() + self.bloom_words * 8
    }
    pub fn file_len(&self) -> usize {
        self.arena_off() + self.arena_cap
    }
}

/// Builds the table bytes: `records` (sorted by path, each path once) and
/// `dir_flags` (path → DIR_* flags).
pub fn build(
    records: &Records,
    dir_flags: &BTreeMap<Vec<u8>, u8>,
    meta: &TableMeta<'_>,
    room: Room,
) -> Vec<u8> {
    // Children per directory, as indices into `records`.
    let mut dirs: HashMap<&[u8], Vec<u32>, BuildFnv> =
        HashMap::with_capacity_and_hasher(records.len() / 4 + dir_flags.len(), BuildFnv);
    for (i, (path, _)) in records.iter().enumerate() {
        dirs.entry(parent_rel(path)).or_default().push(i as u32);
    }
    for path in dir_flags.keys() {
        dirs.entry(path.as_slice()).or_default();
    }
    let stops: Vec<&[u8]> = records
        .iter()
        .filter(|(_, r)| is_stop(r))
        .map(|(k, _)| k)
        .chain(
            dir_flags
                .iter()
                .filter(|(_, f)| *f & DIR_OPAQUE != 0)
                .map(|(k, _)| k.as_slice()),
        )
        .collect();
    let strings = |b: &[u8]| 4 + b.len();
    let arena_need = records
        .iter()
        .map(|(k, r)| strings(k) + strings(r))
        .sum::<usize>()
        + dirs
            .iter()
            .map(|(k, c)| strings(k) + vrift_format::table::LIST_CHUNK_HEADER + 4 * c.len())
            .sum::<usize>()
        + [meta.root, meta.cas_root, meta.socket, meta.exe]
            .iter()
            .map(|b| strings(b))
            .sum::<usize>();
    let lay = layout(records.len(), dirs.len(), stops.len(), arena_need, room);
    let (slot_count, dir_slot_count, bloom_words) =
        (lay.slot_count, lay.dir_slot_count, lay.bloom_words);
    let arena_off = lay.arena_off();
    let (slots_off, dir_slots_off, bloom_off) =
        (lay.slots_off(), lay.dir_slots_off(), lay.bloom_off());

    // One buffer, written in place: header, slots, Bloom filter, then the
    // arena appended (no part is built apart and copied in).
    let mut out = vec![0u8; arena_off];
    out.reserve(lay.arena_cap);
    for stop in &stops {
        let (a, b) = vrift_format::table::bloom_bits(path_hash(stop), bloom_words as u64);
        for bit in [a, b] {
            out[bloom_off + (bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
    let push_str = |out: &mut Vec<u8>, bytes: &[u8]| -> u64 {
        let off = out.len() as u64;
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
        off
    };
    let root_off = push_str(&mut out, meta.root);
    let cas_off = push_str(&mut out, meta.cas_root);
    let socket_off = push_str(&mut out, meta.socket);
    let exe_off = push_str(&mut out, meta.exe);

    let mut slot_of: Vec<u32> = Vec::with_capacity(records.len());
    for (path, rec) in records.iter() {
        let key_off = push_str(&mut out, path);
        let rec_off = push_str(&mut out, rec);
        let hash = path_hash(path);
        let mut i = (hash as usize) & (slot_count - 1);
        let at = |i: usize| slots_off + i * PATH_SLOT_LEN;
        while out[at(i)..at(i) + 8] != [0u8; 8] {
            i = (i + 1) & (slot_count - 1);
        }
        let s = &mut out[at(i)..at(i) + PATH_SLOT_LEN];
        s[0..8].copy_from_slice(&hash.to_le_bytes());
        s[8..16].copy_from_slice(&key_off.to_le_bytes());
        s[16..24].copy_from_slice(&rec_off.to_le_bytes());
        slot_of.push(i as u32);
    }
    for (dir, children) in &dirs {
        let key_off = push_str(&mut out, dir);
        let list_off = if children.is_empty() {
            0
        } else {
            let off = out.len() as u64;
            out.extend_from_slice(&(children.len() as u32).to_le_bytes());
            out.extend_from_slice(&[0u8; 12]); // pad, prev = 0: the only chunk
            for &child in children {
                out.extend_from_slice(&slot_of[child as usize].to_le_bytes());
            }
            off
        };
        let flags = dir_flags.get(*dir).copied().unwrap_or(0) as u64;
        let hash = path_hash(dir);
        let mut i = (hash as usize) & (dir_slot_count - 1);
        let at = |i: usize| dir_slots_off + i * DIR_SLOT_LEN;
        while out[at(i)..at(i) + 8] != [0u8; 8] {
            i = (i + 1) & (dir_slot_count - 1);
        }
        let s = &mut out[at(i)..at(i) + DIR_SLOT_LEN];
        s[0..8].copy_from_slice(&hash.to_le_bytes());
        s[8..16].copy_from_slice(&key_off.to_le_bytes());
        s[16..24].copy_from_slice(&list_off.to_le_bytes());
        s[24..32].copy_from_slice(&flags.to_le_bytes());
    }

    let arena_len = out.len() - arena_off;
    let file_len = arena_off + arena_len.max(lay.arena_cap);
    let symlinks = records
        .iter()
        .filter(|(_, r)| r.first() == Some(&(vrift_format::Kind::Symlink as u8)))
        .count();
    let header = &mut out[..HEADER_LEN];
    let mut put = |off: usize, v: u64| header[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(field::GENERATION, meta.generation);
    put(field::ENTRY_COUNT, records.len() as u64);
    put(field::SLOT_COUNT, slot_count as u64);
    put(field::SLOTS_OFF, slots_off as u64);
    put(field::DIR_SLOT_COUNT, dir_slot_count as u64);
    put(field::DIR_SLOTS_OFF, dir_slots_off as u64);
    put(field::ARENA_OFF, arena_off as u64);
    put(field::ARENA_LEN, arena_len as u64);
    put(field::FILE_LEN, file_len as u64);
    put(field::HIDING, meta.hiding);
    put(field::ROOT_OFF, root_off);
    put(field::CAS_OFF, cas_off);
    put(field::SOCKET_OFF, socket_off);
    put(field::EXE_OFF, exe_off);
    // The root's identity, for every process that reports rift entries.
    if let Ok(m) = fs::metadata(std::ffi::OsStr::from_bytes(meta.root)) {
        put(field::ROOT_DEV, m.dev());
        put(
            field::ROOT_OWNER,
            u64::from(m.uid()) | u64::from(m.gid()) << 32,
        );
    }
    put(field::SYMLINKS, symlinks as u64);
    put(field::BLOOM_OFF, bloom_off as u64);
    put(field::BLOOM_WORDS, bloom_words as u64);
    header[field::MAGIC..field::MAGIC + 8].copy_from_slice(&TABLE_MAGIC);
    header[field::VERSION..field::VERSION + 4].copy_from_slice(&TABLE_VERSION.to_le_bytes());
    let flags = if meta.verify { FLAG_VERIFY } else { 0 }
        | if meta.closed_dirs {
            FLAG_CLOSED_DIRS
        } else {
            0
        };
    header[field::FLAGS..field::FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
    // The spare arena the daemon appends to.
    out.resize(file_len, 0);
    out
}

/// FNV-1a for the directory map: its keys are short paths, and SipHash
/// showed up in profiles of a 70k-record publish.
#[derive(Clone, Copy, Default)]
struct BuildFnv;

struct Fnv(u64);

impl std::hash::BuildHasher for BuildFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Merges the path-sorted rift layer with the phantom layer, which
/// `for_each_phantom` streams in path order; where both hold a path, the
/// rift wins. Phantom records the rift overrides are never copied.
fn merge_layers(
    rift: Records,
    for_each_phantom: impl FnOnce(&mut dyn FnMut(&[u8], &[u8])) -> Result<()>,
) -> Result<Records> {
    let mut out = Records::with_capacity(rift.len() * 2, rift.bytes.len() * 2);
    let mut r = rift.iter().peekable();
    for_each_phantom(&mut |k, v| {
        while let Some((rk, rv)) = r.next_if(|(rk, _)| *rk < k) {
            out.push(rk, rv);
        }
        match r.next_if(|(rk, _)| *rk == k) {
            Some((rk, rv)) => out.push(rk, rv),
            None => out.push(k, v),
        }
    })?;
    for (rk, rv) in r {
        out.push(rk, rv);
    }
    Ok(out)
}

/// The view's records as the manifest holds them: both layers merged (the
/// rift wins), the directory marks, and the count of hiding records.
pub struct ViewRecords {
    pub records: Records,
    pub dir_flags: BTreeMap<Vec<u8>, u8>,
    pub hiding: u64,
}

/// Reads the view's records from the manifest.
pub fn collect(manifest: &Manifest) -> Result<ViewRecords> {
    let txn = manifest.read()?;
    let mut rift = Records::default();
    let mut hiding = 0u64;
    txn.for_each_raw(Layer::Rift, |k, v| {
        // A whiteout, or an entry written over a physical directory, hides a
        // subtree; the writer of such an entry flags it (no stat here).
        if is_hiding(v) {
            hiding += 1;
        }
        rift.push(k, v);
    })?;
    let records = merge_layers(rift, |f| txn.for_each_raw(Layer::Phantom, f))?;
    let dir_flags: BTreeMap<Vec<u8>, u8> = txn.dirs()?.into_iter().collect();
    hiding += dir_flags.values().filter(|f| *f & DIR_OPAQUE != 0).count() as u64;
    Ok(ViewRecords {
        records,
        dir_flags,
        hiding,
    })
}

/// Whether an encoded record hides a physical subtree (whiteout, or an
/// entry over a physical directory).
pub fn is_hiding(rec: &[u8]) -> bool {
    rec.first() == Some(&(vrift_format::Kind::Whiteout as u8))
        || rec
            .get(1)
            .is_some_and(|f| f & vrift_format::FLAG_HIDES_DIR != 0)
}

/// The generation the next table of `project` gets.
pub fn next_generation(project: &Project) -> u64 {
    published_header(&table_path(project))
        .map(|h| {
            u64::from_le_bytes(
                h[field::GENERATION..field::GENERATION + 8]
                    .try_into()
                    .unwrap_or_default(),
            )
        })
        .unwrap_or(0)
        + 1
}

/// `verify = true` in the project's config; an unreadable config counts as
/// true, as for `vrift cat` (the strict reading).
pub fn verify_reads(project: &Project) -> bool {
    project.config().map(|c| c.verify).unwrap_or(true)
}

/// The mark that a directory of the project lost its owner's search bit
/// through the view ([`FLAG_CLOSED_DIRS`]): every table after it keeps
/// the flag (a directory's mode is the disk's, not the manifest's).
fn closed_dirs_mark(project: &Project) -> std::path::PathBuf {
    project.state_dir().join("closed-dirs")
}

/// Whether the project's tables carry [`FLAG_CLOSED_DIRS`].
pub fn closed_dirs(project: &Project) -> bool {
    closed_dirs_mark(project).exists()
}

/// Records that a directory of the project lost its owner's search bit
/// (the daemon's chmod or mkdir): later tables carry the flag.
pub fn mark_closed_dirs(project: &Project) -> Result<()> {
    let mark = closed_dirs_mark(project);
    std::fs::write(&mark, b"").with_context(|| format!("cannot write {}", mark.display()))
}

/// Rebuilds the project's table from its manifest and publishes it.
pub fn publish(project: &Project, cas: &Cas, manifest: &Manifest) -> Result<()> {
    let view = collect(manifest)?;
    let socket = crate::daemon::socket_path(project);
    let exe = std::env::current_exe().unwrap_or_default();
    let meta = TableMeta {
        generation: next_generation(project),
        hiding: view.hiding,
        root: project.root().as_os_str().as_bytes(),
        cas_root: cas.root().as_os_str().as_bytes(),
        socket: socket.as_os_str().as_bytes(),
        exe: exe.as_os_str().as_bytes(),
        verify: verify_reads(project),
        closed_dirs: closed_dirs(project),
    };
    let bytes = build(&view.records, &view.dir_flags, &meta, Room::Exact);
    replace(project, &bytes)
}

/// Publishes `bytes` as the project's table: a new file renamed over the
/// old, which is then marked superseded so processes that mapped it switch.
pub fn replace(project: &Project, bytes: &[u8]) -> Result<()> {
    let path = table_path(project);
    // Open the old table before replacing it: this fd keeps naming its inode.
    let old = OpenOptions::new().write(true).open(&path).ok();
    let tmp = tempfile::NamedTempFile::new_in(project.state_dir())
        .with_context(|| format!("cannot create a file in {}", project.state_dir().display()))?;
    // The spare arena is zeros: leave it a hole rather than write megabytes.
    let used = used_len(bytes);
    tmp.as_file()
        .write_all(&bytes[..used])
        .and_then(|()| tmp.as_file().set_len(bytes.len() as u64))
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(&path)
        .with_context(|| format!("cannot publish {}", path.display()))?;
    if let Some(old) = old {
        // Invariant 3: processes that mapped the old table switch over.
        old.write_at(&FLAG_SUPERSEDED.to_le_bytes(), field::FLAGS as u64)
            .with_context(|| format!("cannot retire the previous {}", path.display()))?;
    }
    Ok(())
}

/// How much of built table `bytes` is not the spare arena's zeros.
fn used_len(bytes: &[u8]) -> usize {
    let at = |f: usize| {
        bytes
            .get(f..f + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    match (at(field::ARENA_OFF), at(field::ARENA_LEN)) {
        (Some(off), Some(len)) => off.saturating_add(len).min(bytes.len()),
        _ => bytes.len(),
    }
}

/// The header of a published table of this version (not the megabytes after it).
fn published_header(path: &std::path::Path) -> Option<[u8; HEADER_LEN]> {
    let file = fs::File::open(path).ok()?;
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, 0).ok()?;
    let ok = header[field::MAGIC..field::MAGIC + 8] == TABLE_MAGIC
        && header[field::VERSION..field::VERSION + 4] == TABLE_VERSION.to_le_bytes();
    ok.then_some(header)
}

/// The project root a published table describes, read from its header
/// alone (a table is megabytes; `vrift run` only needs to know it is there).
pub fn published_root(path: &std::path::Path) -> Option<Vec<u8>> {
    let header = published_header(path)?;
    let file = fs::File::open(path).ok()?;
    let root_off = u64::from_le_bytes(
        header[field::ROOT_OFF..field::ROOT_OFF + 8]
            .try_into()
            .ok()?,
    );
    let mut len = [0u8; 4];
    file.read_exact_at(&mut len, root_off).ok()?;
    let mut root = vec![0u8; u32::from_le_bytes(len) as usize];
    file.read_exact_at(&mut root, root_off + 4).ok()?;
    Some(root)
}

/// Whether the published table at `path` carries [`FLAG_VERIFY`] (None:
/// no valid table there).
pub fn published_verify(path: &std::path::Path) -> Option<bool> {
    let header = published_header(path)?;
    let flags = u32::from_le_bytes(header[field::FLAGS..field::FLAGS + 4].try_into().ok()?);
    Some(flags & FLAG_VERIFY != 0)
}

/// Reads the table at `path` and applies `f` to it (None if absent or invalid).
pub fn read_table<R>(path: &std::path::Path, f: impl FnOnce(&Table<'_>) -> R) -> Option<R> {
    let bytes = fs::read(path).ok()?;
    // The reader needs an 8-aligned buffer, as a mapping is.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: `words` owns at least `bytes.len()` bytes; u8 has no alignment needs.
    let buf = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, bytes.len()) };
    buf.copy_from_slice(&bytes);
    Table::new(buf).ok().map(|t| f(&t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Record};
    use vrift_format::{ContentHash, Kind, RecordRef};

    fn entry(n: u64) -> Vec<u8> {
        Record::Entry(Entry {
            kind: Kind::File,
            flags: 0,
            mode: 0o100644,
            size: n,
            mtime_ns: 7,
            ino: 100 + n,
            hash: ContentHash([n as u8; 32]),
            target: Vec::new(),
            uid: vrift_format::OWNER_INHERIT,
            gid: vrift_format::OWNER_INHERIT,
            atime_ns: 0,
            ctime_ns: 0,
            links: 0,
        })
        .encode()
    }

    fn meta(generation: u64, hiding: u64) -> TableMeta<'static> {
        TableMeta {
            generation,
            hiding,
            root: b"/p",
            cas_root: b"/cas",
            socket: b"/run/s",
            exe: b"/bin/vrift",
            verify: false,
            closed_dirs: false,
        }
    }

    fn with_table<R>(bytes: &[u8], f: impl FnOnce(&Table<'_>) -> R) -> R {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        fs::write(&p, bytes).unwrap();
        read_table(&p, f).expect("valid table")
    }

    #[test]
    fn lookups_compare_full_paths_and_list_children() {
        let mut records = BTreeMap::new();
        for i in 0..5000u64 {
            records.insert(format!("dir{}/file{i}", i % 50).into_bytes(), entry(i));
        }
        records.insert(b"top".to_vec(), Record::Whiteout.encode());
        let mut dirs = BTreeMap::new();
        dirs.insert(b"opaque".to_vec(), DIR_OPAQUE);
        let records: Records = records.into_iter().collect();
        let bytes = build(&records, &dirs, &meta(9, 2), Room::Exact);
        with_table(&bytes, |t| {
            assert_eq!(t.generation(), 9);
            assert_eq!(t.entry_count(), 5001);
            assert_eq!(t.root(), b"/p");
            assert_eq!(t.cas_root(), b"/cas");
            assert!(t.may_hide());
            assert!(!t.superseded());
            for i in (0..5000u64).step_by(7) {
                let key = format!("dir{}/file{i}", i % 50);
                match t.lookup(key.as_bytes()) {
                    Some(RecordRef::Entry { header, .. }) => assert_eq!(header.size, i),
                    other => panic!("{key}: {other:?}"),
                }
            }
            assert_eq!(t.lookup(b"top"), Some(RecordRef::Whiteout));
            assert_eq!(t.lookup(b"dir1/file0"), None, "file0 lives in dir0");
            assert_eq!(t.lookup(b""), None);
            assert_eq!(t.socket_path(), b"/run/s");
            assert_eq!(t.exe_path(), b"/bin/vrift");
            let d = t.dir(b"dir3").unwrap();
            assert_eq!(d.children().count(), 100);
            let mut names: Vec<Vec<u8>> = d.children().map(|(n, _)| n.to_vec()).collect();
            names.sort();
            assert!(names.contains(&b"file3".to_vec()) && names.contains(&b"file4953".to_vec()));
            let root = t.dir(b"").unwrap();
            assert_eq!(root.children().count(), 1, "only `top` sits at the root");
            assert_eq!(t.dir(b"opaque").unwrap().flags, DIR_OPAQUE as u64);
            assert!(t.dir(b"dir3/file3").is_none());
            // The one-pass scan flags paths below a stopping point (the
            // whiteout `top`, the opaque dir), never misses one, and its hash
            // is the path's.
            assert!(t.scan(b"top/x").prefix_suspect);
            assert!(t.scan(b"opaque/a/b").prefix_suspect);
            assert!(!t.scan(b"top").prefix_suspect, "only proper prefixes count");
            assert_eq!(t.scan(b"dir3/file3").hash, path_hash(b"dir3/file3"));
            let false_hits = (0..5000)
                .filter(|i| {
                    t.scan(format!("dir{}/file{i}", i % 50).as_bytes())
                        .prefix_suspect
                })
                .count();
            assert!(false_hits < 250, "{false_hits} false Bloom hits");
        });
    }

    #[test]
    fn merging_layers_keeps_order_and_lets_the_rift_win() {
        let v = |k: &str, r: &str| (k.as_bytes().to_vec(), r.as_bytes().to_vec());
        let phantom = [v("a", "p"), v("b", "p"), v("d", "p")];
        let rift: Records = [v("b", "r"), v("c", "r"), v("e", "r")]
            .into_iter()
            .collect();
        let merged = merge_layers(rift, |f| {
            for (k, r) in &phantom {
                f(k, r);
            }
            Ok(())
        })
        .unwrap();
        let expected: Records = [
            v("a", "p"),
            v("b", "r"),
            v("c", "r"),
            v("d", "p"),
            v("e", "r"),
        ]
        .into_iter()
        .collect();
        assert_eq!(merged, expected);
    }

    #[test]
    fn a_damaged_table_is_rejected_or_misses_but_never_crashes() {
        let mut records = BTreeMap::new();
        for i in 0..64u64 {
            records.insert(format!("f{i}").into_bytes(), entry(i));
        }
        let records: Records = records.into_iter().collect();
        let good = build(&records, &BTreeMap::new(), &meta(1, 0), Room::Exact);
        // Truncations and bit flips anywhere: every lookup must return.
        for cut in [
            0,
            7,
            HEADER_LEN - 1,
            HEADER_LEN + 5,
            good.len() / 2,
            good.len() - 3,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t");
            fs::write(&p, &good[..cut]).unwrap();
            let _ = read_table(&p, |t| {
                for i in 0..64 {
                    let _ = t.lookup(format!("f{i}").as_bytes());
                }
            });
        }
        for pos in (0..good.len()).step_by(13) {
            let mut bad = good.clone();
            bad[pos] ^= 0x5a;
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t");
            fs::write(&p, &bad).unwrap();
            let _ = read_table(&p, |t| {
                for i in 0..64 {
                    let _ = t.lookup(format!("f{i}").as_bytes());
                    let _ = t.dir(b"").map(|d| d.children().count());
                }
            });
        }
    }
}
