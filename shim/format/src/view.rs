//! The view's rules (DESIGN.md §2), written once for every reader of it.
//!
//! Four programs answer "what does this path name in the view?": the shim
//! (from the hot table, in every process of a build), the daemon (from the
//! same table, before it changes the rift), the coreutil applets (the table
//! again) and the CLI's `ls`/`cat`/`diff`/`materialize` (from the manifest).
//! They all call [`lookup`] and [`disk_name_shows`] over a [`Layers`]
//! source, so they cannot disagree about whiteouts, opaque directories or a
//! file standing where a directory was.
//!
//! # The rules
//!
//! For a rift path `rel` (invariant 3 of the crate), walking its proper
//! prefixes from the top:
//!
//! 1. a whiteout at a prefix hides everything below it: `ENOENT`;
//! 2. a rift symlink at a prefix is followed: the caller substitutes its
//!    target and resolves again ([`Found::Symlink`]);
//! 3. a rift file at a prefix: `ENOTDIR`;
//! 4. an opaque mark at a prefix hides the disk below it, except the
//!    directories the rift created there (`DIR_CREATED`): every directory
//!    on the way below an opaque one must be such, or the path is `ENOENT`.
//!
//! Then at `rel` itself: a whiteout is `ENOENT`, an entry is that entry,
//! and otherwise the disk decides — unless an opaque prefix hides it.
//!
//! Listings are the union: the rift's entries (never its whiteouts) plus the
//! disk's names for which the rift holds no record, minus, in a directory
//! that is opaque or lies below an opaque one, every disk name that is not a
//! directory the rift created. `.vrift` at the root is never listed.
//!
//! Directories are physical: a path the rules hand to the disk is what the
//! disk says it is. The root is never opaque (it cannot be removed and
//! made again in the view).
//!
//! No allocation, no syscall: the shim runs [`lookup`] on every call that
//! names a path in the domain.

use crate::table::Scan;
use crate::{Kind, RecordHeader, DIR_CREATED, DIR_OPAQUE, OWNER_INHERIT};

/// A record of the rift, generic over where its trailing bytes (a symlink's
/// target, a staged file's staging name) live: borrowed from the mapped
/// table, or owned when read from the manifest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecordOf<T> {
    Entry {
        header: RecordHeader,
        /// Symlink target, staging name, or empty.
        target: T,
    },
    Whiteout,
}

/// What the rift knows, as the rules need it: the hot table (shim, daemon,
/// applets) and the manifest's read transaction (CLI) implement it.
pub trait Layers {
    /// How a record's trailing bytes are held.
    type Target: AsRef<[u8]>;

    /// The record the rift holds at `rel` (the upper layer over the
    /// phantom one), if any.
    fn record(&self, rel: &[u8]) -> Option<RecordOf<Self::Target>>;

    /// The `DIR_*` marks of the directory `rel` (0: none).
    fn dir_flags(&self, rel: &[u8]) -> u8;

    /// One pass over `rel` that says which of its proper prefixes may be
    /// stopping points (a whiteout, symlink, file or opaque mark), and
    /// whether any may. The default suspects every prefix.
    #[inline]
    fn scan(&self, rel: &[u8]) -> Scan {
        let _ = rel;
        Scan {
            hash: 0,
            prefix_suspect: true,
            suspects: u64::MAX,
        }
    }

    /// [`Layers::record`] for the path a [`Layers::scan`] went over (the
    /// table reuses the hash it computed).
    #[inline]
    fn record_scanned(&self, rel: &[u8], scan: &Scan) -> Option<RecordOf<Self::Target>> {
        let _ = scan;
        self.record(rel)
    }
}

/// What a rift path names, by the rules above.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Found<T> {
    /// The rift's own entry at the path (a final symlink is not followed:
    /// that is the caller's choice, `stat` against `lstat`).
    Entry { header: RecordHeader, target: T },
    /// A rift symlink stands at the proper prefix `rel[..end]`: the caller
    /// puts `target` in its place and resolves the result again.
    Symlink { end: usize, target: T },
    /// Absent or hidden in the view: fail with this errno (`ENOENT`,
    /// `ENOTDIR`).
    Error(i32),
    /// The rift says nothing: the disk decides.
    Disk,
}

const ENOENT: i32 = 2;
const ENOTDIR: i32 = 20;

/// Looks `rel` (a rift path; empty for the root) up by the view's rules.
#[inline(always)]
pub fn lookup<L: Layers + ?Sized>(layers: &L, rel: &[u8]) -> Found<L::Target> {
    if rel.is_empty() {
        return Found::Disk;
    }
    let scan = layers.scan(rel);
    let mut opaque_above = false;
    if scan.prefix_suspect {
        // Only the prefixes the scan suspects can be stopping points; below
        // an opaque one, every directory on the way must be the rift's own.
        let mut k = 0;
        for (i, &c) in rel.iter().enumerate() {
            if c != b'/' {
                continue;
            }
            k += 1;
            let suspect = scan.suspect(k - 1);
            if !suspect && !opaque_above {
                continue;
            }
            let prefix = &rel[..i];
            {
                // (Below an opaque directory, plain files count too.)
                match layers.record(prefix) {
                    Some(RecordOf::Whiteout) => return Found::Error(ENOENT),
                    Some(RecordOf::Entry { header, target }) => {
                        return if header.kind == Kind::Symlink {
                            Found::Symlink { end: i, target }
                        } else {
                            Found::Error(ENOTDIR)
                        };
                    }
                    None => {}
                }
            }
            let flags = layers.dir_flags(prefix);
            if opaque_above && flags & DIR_CREATED == 0 {
                return Found::Error(ENOENT);
            }
            if flags & DIR_OPAQUE != 0 {
                opaque_above = true;
            }
        }
    }
    match layers.record_scanned(rel, &scan) {
        Some(RecordOf::Whiteout) => Found::Error(ENOENT),
        Some(RecordOf::Entry { header, target }) => Found::Entry { header, target },
        None if opaque_above && layers.dir_flags(rel) & DIR_CREATED == 0 => Found::Error(ENOENT),
        None => Found::Disk,
    }
}

/// The errno for a path of the view at which the disk found nothing:
/// `ENOTDIR` where a rift file stands at a proper prefix (the disk cannot
/// know it, and [`lookup`] only stops at the prefixes the scan suspects,
/// which plain files are not), else `ENOENT`. For the error path only.
pub fn missing_errno<L: Layers + ?Sized>(layers: &L, rel: &[u8]) -> i32 {
    for (i, &c) in rel.iter().enumerate() {
        if c != b'/' {
            continue;
        }
        if let Some(RecordOf::Entry { header, .. }) = layers.record(&rel[..i]) {
            if header.kind != Kind::Symlink {
                return ENOTDIR;
            }
        }
    }
    ENOENT
}

/// Whether the directory `rel` lists only what the rift made in it: it is
/// opaque, or lies below an opaque directory. `rel` must be a directory of
/// the view (its prefixes hold no whiteout or file).
pub fn hides_disk_names<L: Layers + ?Sized>(layers: &L, rel: &[u8]) -> bool {
    !rel.is_empty() && (layers.dir_flags(rel) & DIR_OPAQUE != 0 || opaque_above(layers, rel))
}

/// Whether a proper prefix of `rel` is an opaque directory.
pub fn opaque_above<L: Layers + ?Sized>(layers: &L, rel: &[u8]) -> bool {
    let scan = layers.scan(rel);
    if !scan.prefix_suspect {
        return false;
    }
    let mut k = 0;
    for (i, &c) in rel.iter().enumerate() {
        if c != b'/' {
            continue;
        }
        k += 1;
        if scan.suspect(k - 1) && layers.dir_flags(&rel[..i]) & DIR_OPAQUE != 0 {
            return true;
        }
    }
    false
}

/// Whether a name the disk lists in a directory of the view shows in the
/// view's listing. `child` is the name's rift path; `hidden` is
/// [`hides_disk_names`] of the directory.
#[inline]
pub fn disk_name_shows<L: Layers + ?Sized>(layers: &L, child: &[u8], hidden: bool) -> bool {
    if is_state_dir(child) {
        return false;
    }
    // A record there is listed by the rift (an entry) or hides the name.
    if layers.record(child).is_some() {
        return false;
    }
    !hidden || layers.dir_flags(child) & DIR_CREATED != 0
}

/// Name of vrift's state directory below the project root.
pub const STATE_DIR: &[u8] = crate::STATE_DIR_NAME.as_bytes();

/// Whether `rel` is vrift's own state (`.vrift` or below): never part of
/// the view, passed through untouched.
#[inline]
pub fn is_state_path(rel: &[u8]) -> bool {
    rel.starts_with(STATE_DIR) && matches!(rel.get(STATE_DIR.len()), None | Some(b'/'))
}

fn is_state_dir(rel: &[u8]) -> bool {
    rel == STATE_DIR
}

/// A regular file's mode after `chown` (as the kernel's `chown_common`):
/// set-user-ID is cleared, even by root; set-group-ID only with group
/// execute (without it, the bit marks mandatory locking, not a set-ID
/// program, and stays).
#[inline]
pub fn chown_mode(mode: u32) -> u32 {
    const S_ISUID: u32 = 0o4000;
    const S_ISGID: u32 = 0o2000;
    const S_IXGRP: u32 = 0o0010;
    let mode = mode & !S_ISUID;
    if mode & S_IXGRP != 0 {
        mode & !S_ISGID
    } else {
        mode
    }
}

/// A staging file's mode bit (group read) saying that its set-ID bits
/// mirror its entry's: the daemon sets them so that the kernel's own
/// clearing of them, when a process without CAP_FSETID writes or truncates
/// the file (`file_remove_privs`), reaches the entry. The staging
/// directory is private: the bit grants nothing.
pub const STAGING_SET_ID_MIRROR: u32 = 0o040;

/// An entry's `mode` after what the kernel cleared on its staging file,
/// whose mode is `staging` (unchanged unless the file mirrors the entry's
/// set-ID bits: [`STAGING_SET_ID_MIRROR`]).
#[inline]
pub fn mirrored_set_id(mode: u32, staging: u32) -> u32 {
    const S_ISUID: u32 = 0o4000;
    const S_ISGID: u32 = 0o2000;
    const S_IXGRP: u32 = 0o0010;
    if staging & STAGING_SET_ID_MIRROR == 0 {
        return mode;
    }
    let mut mode = mode;
    if staging & S_ISUID == 0 {
        mode &= !S_ISUID;
    }
    if staging & S_ISGID == 0 && mode & S_IXGRP != 0 {
        mode &= !S_ISGID;
    }
    mode
}

/// The metadata a rift entry shows through `stat` (without the device and
/// with the owner still possibly [`OWNER_INHERIT`]: see [`Meta::owner`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Meta {
    pub mode: u32,
    pub size: u64,
    /// `st_rdev` (a special file's device number; 0 otherwise).
    pub rdev: u64,
    pub mtime_ns: i64,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    /// Hard links: other names of the inode (`st_nlink` - 1).
    pub links: u32,
}

impl Meta {
    /// The entry's metadata: a symlink's size is its target's length; an
    /// atime never set reads as the mtime. (A staged file's size and times
    /// are its staging file's: the caller stats that and calls
    /// [`Meta::absorb`].)
    #[inline(always)]
    pub fn of(h: &RecordHeader, target: &[u8]) -> Meta {
        Meta {
            mode: h.mode,
            size: match h.kind {
                Kind::Symlink => target.len() as u64,
                Kind::Special => 0,
                _ => h.size,
            },
            rdev: h.rdev(),
            mtime_ns: h.mtime_ns,
            atime_ns: if h.atime_ns == 0 {
                h.mtime_ns
            } else {
                h.atime_ns
            },
            ctime_ns: if h.ctime_ns == 0 {
                h.mtime_ns
            } else {
                h.ctime_ns
            },
            ino: h.ino,
            uid: h.uid,
            gid: h.gid,
            links: h.links,
        }
    }

    /// Takes size and times from the real file behind a staged entry (its
    /// ctime when later than the entry's: a write changes the file, a
    /// chmod only the entry).
    pub fn absorb(&mut self, size: u64, mtime_ns: i64, atime_ns: i64, ctime_ns: i64) {
        self.size = size;
        self.mtime_ns = mtime_ns;
        self.atime_ns = atime_ns;
        self.ctime_ns = self.ctime_ns.max(ctime_ns);
    }

    /// Owner and group, [`OWNER_INHERIT`] replaced by the project root's.
    #[inline]
    pub fn owner(&self, root_uid: u32, root_gid: u32) -> (u32, u32) {
        let pick = |v: u32, root: u32| if v == OWNER_INHERIT { root } else { v };
        (pick(self.uid, root_uid), pick(self.gid, root_gid))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// The rift as plain maps (what the manifest holds).
    #[derive(Default)]
    struct Maps {
        records: BTreeMap<Vec<u8>, RecordOf<Vec<u8>>>,
        dirs: BTreeMap<Vec<u8>, u8>,
    }

    impl Layers for Maps {
        type Target = Vec<u8>;
        fn record(&self, rel: &[u8]) -> Option<RecordOf<Vec<u8>>> {
            self.records.get(rel).cloned()
        }
        fn dir_flags(&self, rel: &[u8]) -> u8 {
            self.dirs.get(rel).copied().unwrap_or(0)
        }
    }

    fn header(kind: Kind) -> RecordHeader {
        RecordHeader {
            kind,
            flags: 0,
            mode: if kind == Kind::Symlink {
                0o120777
            } else {
                0o100644
            },
            size: 3,
            mtime_ns: 5,
            ino: 9,
            hash: crate::ContentHash::default(),
            uid: OWNER_INHERIT,
            gid: 7,
            atime_ns: 0,
            ctime_ns: 0,
            links: 0,
        }
    }

    /// The rules read component by component, the way the kernel walks a
    /// path: the reference the shared function is checked against.
    fn model(m: &Maps, rel: &[u8]) -> Found<Vec<u8>> {
        if rel.is_empty() {
            return Found::Disk;
        }
        let comps: Vec<&[u8]> = rel.split(|&c| c == b'/').collect();
        let mut opaque = false;
        let mut end = 0;
        for (i, comp) in comps.iter().enumerate() {
            end += comp.len() + usize::from(i > 0);
            let p = &rel[..end];
            let last = i + 1 == comps.len();
            match m.records.get(p) {
                Some(RecordOf::Whiteout) => return Found::Error(ENOENT),
                Some(RecordOf::Entry { header, target }) if last => {
                    return Found::Entry {
                        header: *header,
                        target: target.clone(),
                    }
                }
                Some(RecordOf::Entry { header, target }) if header.kind == Kind::Symlink => {
                    return Found::Symlink {
                        end,
                        target: target.clone(),
                    }
                }
                Some(RecordOf::Entry { .. }) => return Found::Error(ENOTDIR),
                None => {}
            }
            let flags = m.dirs.get(p).copied().unwrap_or(0);
            if opaque && flags & DIR_CREATED == 0 {
                return Found::Error(ENOENT);
            }
            if last {
                return Found::Disk;
            }
            opaque |= flags & DIR_OPAQUE != 0;
        }
        unreachable!()
    }

    /// A small deterministic generator (no dependency): xorshift.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_path(r: &mut Rng) -> Vec<u8> {
        let names: [&[u8]; 4] = [b"a", b"b", b"cc", b".vrift"];
        let depth = 1 + r.below(4);
        let mut p = Vec::new();
        for i in 0..depth {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(names[r.below(names.len() as u64) as usize]);
        }
        p
    }

    fn random_maps(r: &mut Rng) -> Maps {
        let mut m = Maps::default();
        for _ in 0..r.below(12) {
            let rec = match r.below(3) {
                0 => RecordOf::Whiteout,
                1 => RecordOf::Entry {
                    header: header(Kind::File),
                    target: Vec::new(),
                },
                _ => RecordOf::Entry {
                    header: header(Kind::Symlink),
                    target: random_path(r),
                },
            };
            m.records.insert(random_path(r), rec);
        }
        for _ in 0..r.below(6) {
            m.dirs.insert(random_path(r), 1 + r.below(3) as u8);
        }
        m
    }

    #[test]
    fn lookup_agrees_with_the_component_walk() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..4000 {
            let m = random_maps(&mut r);
            for _ in 0..16 {
                let p = random_path(&mut r);
                assert_eq!(
                    lookup(&m, &p),
                    model(&m, &p),
                    "{:?}",
                    std::string::String::from_utf8_lossy(&p)
                );
            }
        }
    }

    #[test]
    fn opaque_directories_hide_the_disk_below_but_not_what_the_rift_made() {
        let mut m = Maps::default();
        m.dirs.insert(b"d".to_vec(), DIR_OPAQUE);
        m.dirs.insert(b"d/made".to_vec(), DIR_CREATED);
        assert_eq!(lookup(&m, b"d"), Found::Disk);
        assert_eq!(lookup(&m, b"d/old"), Found::Error(ENOENT));
        assert_eq!(lookup(&m, b"d/made"), Found::Disk);
        assert_eq!(lookup(&m, b"d/made/old"), Found::Error(ENOENT));
        assert!(hides_disk_names(&m, b"d"));
        assert!(hides_disk_names(&m, b"d/made"));
        assert!(!hides_disk_names(&m, b""));
        assert!(disk_name_shows(&m, b"d/made", true));
        assert!(!disk_name_shows(&m, b"d/old", true));
        assert!(!disk_name_shows(&m, b".vrift", false));
    }

    #[test]
    fn a_file_at_a_prefix_is_enotdir_even_past_the_scan() {
        let mut m = Maps::default();
        m.records.insert(
            b"f".to_vec(),
            RecordOf::Entry {
                header: header(Kind::File),
                target: Vec::new(),
            },
        );
        assert_eq!(missing_errno(&m, b"f/x"), ENOTDIR);
        assert_eq!(missing_errno(&m, b"g/x"), ENOENT);
    }

    #[test]
    fn meta_of_a_symlink_counts_its_target_and_atime_falls_back() {
        let h = header(Kind::Symlink);
        let m = Meta::of(&h, b"abcd");
        assert_eq!((m.size, m.atime_ns), (4, 5));
        assert_eq!(m.owner(1, 2), (1, 7));
    }
}
