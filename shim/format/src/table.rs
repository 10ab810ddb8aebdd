//! The hot table: an mmap'd index of the view that the shim reads without IPC.
//!
//! vrift writes it (`.vrift/view.table`) from the manifest; the shim maps it
//! read-only and answers "what does the rift hold at this path?" and "which
//! rift names does this directory list?" with no syscall, no allocation and
//! no lock.
//!
//! # Layout (little endian, offsets from the start of the file)
//!
//! ```text
//! header (HEADER_LEN bytes)
//!    0 magic "VRIFTHT1"          8 version u32      12 flags u32 (atomic)
//!   16 generation u64           24 entry_count u64
//!   32 slot_count u64 (2^k)     40 slots_off u64
//!   48 dir_slot_count u64 (2^k) 56 dir_slots_off u64
//!   64 arena_off u64            72 arena_len u64    80 file_len u64
//!   88 hiding u64: records that can hide a physical subtree (whiteouts,
//!      opaque directories, entries over physical directories); 0 lets the
//!      shim skip the ancestor walk
//!   96 root_off u64: the canonical project root (a string in the arena)
//!  104 cas_off u64: the CAS root (a string in the arena)
//!  112 symlinks u64: symlink records (0 lets the shim skip resolving
//!      rift symlinks in intermediate path components)
//!  120 bloom_off u64   128 bloom_words u64 (2^k): a Bloom filter over the
//!      paths a lookup must stop at on its way down (symlinks, whiteouts,
//!      hiding entries, opaque directories), two bits per path taken from
//!      its `path_hash`; lets the shim test every prefix of a path in the
//!      same pass that hashes it
//!  136 socket_off u64: the daemon's socket path (a string in the arena)
//!  144 exe_off u64: the vrift binary that starts the daemon (a string)
//! path slots: slot_count × { hash u64, key_off u64, rec_off u64 }
//! dir slots:  dir_slot_count × { hash u64, key_off u64, list_off u64, flags u64 }
//! arena:      strings  { len u32, bytes }    (keys, roots)
//!             records  { len u32, record }   (see `decode_record`)
//!             lists    chunks { count u32, pad u32, prev u64,
//!                               count × path-slot index u32 }
//!                      chained newest first through `prev` (0 ends);
//!                      a writer adds children by publishing a new chunk
//! ```
//!
//! # Invariants
//!
//! 1. Slots use open addressing with linear probing; a slot whose hash is 0
//!    is empty (hashes are forced non-zero). Keys are full rift paths and are
//!    always compared in full: a hash match alone never answers a lookup.
//! 2. The arena is append-only: bytes a reader has seen never change. A
//!    writer that updates a slot in place (the daemon) appends the new record
//!    or list first, then publishes it with one atomic 8-byte store of the
//!    offset (release); a new slot is published by storing its hash last.
//!    Readers load those fields atomically (acquire), so they see either the
//!    old or the new value, both complete. No seqlock is needed. A path
//!    slot whose record offset is 0 is a tombstone: the rift no longer
//!    holds anything there (the disk decides).
//! 3. When a table is full it is replaced, never grown in place: the writer
//!    publishes a new file by `rename` and then sets `FLAG_SUPERSEDED` in the
//!    old one. A reader that sees the flag maps the new file; until it does,
//!    the old mapping stays valid (it is never truncated).
//! 4. Every offset read from the file is bounds-checked against the mapping:
//!    a damaged table yields misses, never a crash.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::{decode_record, RecordRef};

pub const TABLE_MAGIC: [u8; 8] = *b"VRIFTHT1";
pub const TABLE_VERSION: u32 = 4;
pub const HEADER_LEN: usize = 192;
pub const PATH_SLOT_LEN: usize = 24;
pub const DIR_SLOT_LEN: usize = 32;

/// Header flag: a newer table has replaced this one.
pub const FLAG_SUPERSEDED: u32 = 1;
/// Header flag, set when the table is built: the project has `verify =
/// true` (README, "Security"), so the library has the daemon hash every
/// blob that lacks the verified-once mark before its first open.
pub const FLAG_VERIFY: u32 = 2;

/// Header flag: a directory of the project lost its owner's search bit
/// through the view (`chmod u-x`, `mkdir -m 600`): the library then asks
/// the kernel for search permission on the way to every rift entry, as the
/// kernel would for a file on disk (set at run time by the daemon, kept
/// by the tables after it: `.vrift/closed-dirs`).
pub const FLAG_CLOSED_DIRS: u32 = 4;

/// File name of the table inside `.vrift/`.
pub const TABLE_FILE: &str = "view.table";

/// Header field offsets.
pub mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const FLAGS: usize = 12;
    pub const GENERATION: usize = 16;
    pub const ENTRY_COUNT: usize = 24;
    pub const SLOT_COUNT: usize = 32;
    pub const SLOTS_OFF: usize = 40;
    pub const DIR_SLOT_COUNT: usize = 48;
    pub const DIR_SLOTS_OFF: usize = 56;
    pub const ARENA_OFF: usize = 64;
    pub const ARENA_LEN: usize = 72;
    pub const FILE_LEN: usize = 80;
    pub const HIDING: usize = 88;
    pub const ROOT_OFF: usize = 96;
    pub const CAS_OFF: usize = 104;
    pub const SYMLINKS: usize = 112;
    pub const BLOOM_OFF: usize = 120;
    pub const BLOOM_WORDS: usize = 128;
    pub const SOCKET_OFF: usize = 136;
    pub const EXE_OFF: usize = 144;
    /// The root's st_dev when the table was built (0: not recorded), and its
    /// owner (uid in the low 32 bits, gid in the high): what rift entries
    /// report, without a stat of the root in every process that looks.
    pub const ROOT_DEV: usize = 152;
    pub const ROOT_OWNER: usize = 160;
}

/// Length of a list chunk's header (count, pad, prev).
pub const LIST_CHUNK_HEADER: usize = 16;

const SEED: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xd6e8_feb8_6659_fd93;
const SLASHES: u64 = 0x2f2f_2f2f_2f2f_2f2f;

/// The 128-bit product of `a` and `b`, folded to 64 bits.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    p as u64 ^ (p >> 64) as u64
}

/// The hash of a path whose words before the last chunk left state `h`,
/// whose last chunk (1 to 8 bytes, zero-padded, little endian) is `last`
/// and whose length is `len`.
#[inline(always)]
fn finish(h: u64, last: u64, len: usize) -> u64 {
    nonzero(fold(fold(h ^ last, K1) ^ len as u64, K2))
}

/// Bytes `i..i + 8` of `p` as a little-endian word.
#[inline(always)]
fn word(p: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&p[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Bytes `i..` of `p` (at most 8 of them), zero-padded, little endian.
#[inline(always)]
fn last_chunk(p: &[u8], i: usize) -> u64 {
    let n = p.len();
    if n >= 8 {
        // The last 8 bytes, shifted so that byte `i` comes first.
        word(p, n - 8) >> (8 * (8 - (n - i)))
    } else {
        let mut w = 0u64;
        for (k, &b) in p[i..].iter().enumerate() {
            w |= (b as u64) << (8 * k);
        }
        w
    }
}

/// A lane mask with 0x80 in each byte of `x` that is zero (exact: no
/// false positives from borrows).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !((x & LO7).wrapping_add(LO7) | x | LO7)
}

/// The hash of a path, never 0 (0 marks an empty slot): a word at a time
/// (8 bytes per 64x64→128-bit multiply), so the hash of every prefix ending
/// at a `/` falls out of the same pass ([`Table::scan`]). (Byte-serial
/// FNV-1a, the format before version 4, cost a multiply per byte; a
/// component-wise word hash was tried too and cost more on the short
/// components of real paths.)
#[inline]
pub fn path_hash(path: &[u8]) -> u64 {
    let n = path.len();
    let mut h = SEED;
    let mut i = 0;
    while n - i > 8 {
        h = fold(h ^ word(path, i), K1);
        i += 8;
    }
    finish(h, last_chunk(path, i), n)
}

/// [`path_hash`] of `rel`, calling `hit` with the hash of each proper
/// prefix that ends at a `/` (finished from the running state, in the same
/// pass); returns the hash and which prefixes hit (see [`Scan::suspects`]).
#[inline(always)]
fn hash_with_prefixes(rel: &[u8], mut hit: impl FnMut(u64) -> bool) -> (u64, u64) {
    let n = rel.len();
    let (mut h, mut i) = (SEED, 0);
    // The state and word before the current one (a `/` that starts a word
    // ends a prefix whose last chunk is the previous word).
    let (mut h_prev, mut w_prev) = (SEED, 0u64);
    let (mut hits, mut k) = (0u64, 0usize);
    loop {
        let last = n - i <= 8;
        let w = if last {
            last_chunk(rel, i)
        } else {
            word(rel, i)
        };
        let mut slashes = zero_bytes(w ^ SLASHES);
        while slashes != 0 {
            let b = (slashes.trailing_zeros() / 8) as usize;
            let prefix = if b == 0 {
                finish(h_prev, w_prev, i)
            } else {
                finish(h, w & ((1u64 << (8 * b)) - 1), i + b)
            };
            if hit(prefix) {
                hits |= 1 << k.min(63);
            }
            k += 1;
            slashes &= slashes - 1;
        }
        if last {
            return (finish(h, w, n), hits);
        }
        (h_prev, w_prev) = (h, w);
        h = fold(h ^ w, K1);
        i += 8;
    }
}

#[inline]
fn nonzero(h: u64) -> u64 {
    if h == 0 {
        1
    } else {
        h
    }
}

/// The two Bloom bits of a path hash, for a filter of `words` u64 words.
#[inline]
pub fn bloom_bits(hash: u64, words: u64) -> (u64, u64) {
    let mask = words * 64 - 1;
    (hash & mask, (hash >> 32) & mask)
}

/// Why a table cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    TooShort,
    BadMagic,
    BadVersion(u32),
    BadLayout,
}

/// A mapped table. All accessors are bounds-checked and allocation-free.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    bytes: &'a [u8],
    slot_mask: u64,
    slots_off: usize,
    dir_slot_mask: u64,
    dir_slots_off: usize,
    bloom_off: usize,
    bloom_words: u64,
}

/// What one pass over a path learned: its hash, and whether any proper
/// prefix may be a symlink or hide what lies below (Bloom filter hit).
#[derive(Clone, Copy, Debug)]
pub struct Scan {
    pub hash: u64,
    pub prefix_suspect: bool,
    /// Which prefixes hit: bit k for the prefix ending at the k-th `/`
    /// (from 0); bit 63 also stands for every later one. Only those can be
    /// stopping points (a Bloom filter has no false negatives).
    pub suspects: u64,
}

impl Scan {
    /// Whether the prefix ending at the `k`-th `/` may be a stopping point.
    #[inline]
    pub fn suspect(&self, k: usize) -> bool {
        self.suspects >> k.min(63) & 1 != 0
    }
}

/// A directory the rift has something to say about.
#[derive(Clone, Copy)]
pub struct Dir<'a> {
    table: Table<'a>,
    /// Offset of the child list (0: none).
    list_off: usize,
    pub flags: u64,
    /// Index of the directory slot (the daemon updates it in place).
    pub slot: u32,
}

#[inline]
fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn read_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

impl<'a> Table<'a> {
    /// Validates the header of a mapped table.
    pub fn new(bytes: &'a [u8]) -> Result<Table<'a>, TableError> {
        if bytes.len() < HEADER_LEN || !(bytes.as_ptr() as usize).is_multiple_of(8) {
            return Err(TableError::TooShort);
        }
        if bytes[..8] != TABLE_MAGIC {
            return Err(TableError::BadMagic);
        }
        let version = read_u32(bytes, field::VERSION).unwrap_or(0);
        if version != TABLE_VERSION {
            return Err(TableError::BadVersion(version));
        }
        let h = |f| read_u64(bytes, f).unwrap_or(u64::MAX);
        let slot_count = h(field::SLOT_COUNT);
        let dir_slot_count = h(field::DIR_SLOT_COUNT);
        let slots_off = h(field::SLOTS_OFF);
        let dir_slots_off = h(field::DIR_SLOTS_OFF);
        let bloom_off = h(field::BLOOM_OFF);
        let bloom_words = h(field::BLOOM_WORDS);
        let len = bytes.len() as u64;
        let fits = |off: u64, count: u64, size: u64| {
            count
                .checked_mul(size)
                .and_then(|n| n.checked_add(off))
                .is_some_and(|end| end <= len)
        };
        if !slot_count.is_power_of_two()
            || !dir_slot_count.is_power_of_two()
            || slots_off % 8 != 0
            || dir_slots_off % 8 != 0
            || !fits(slots_off, slot_count, PATH_SLOT_LEN as u64)
            || !fits(dir_slots_off, dir_slot_count, DIR_SLOT_LEN as u64)
            || !bloom_words.is_power_of_two()
            // Read with 8-byte atomic loads: misaligned is undefined
            // behaviour (found by `fuzz/` target `table`).
            || bloom_off % 8 != 0
            || !fits(bloom_off, bloom_words, 8)
            || h(field::FILE_LEN) > len
        {
            return Err(TableError::BadLayout);
        }
        Ok(Table {
            bytes,
            slot_mask: slot_count - 1,
            slots_off: slots_off as usize,
            dir_slot_mask: dir_slot_count - 1,
            dir_slots_off: dir_slots_off as usize,
            bloom_off: bloom_off as usize,
            bloom_words,
        })
    }

    #[inline(always)]
    fn bloom_has(&self, hash: u64) -> bool {
        let (a, b) = bloom_bits(hash, self.bloom_words);
        let word = |bit: u64| {
            let off = self.bloom_off + (bit / 64) as usize * 8;
            // The daemon sets bits in place: load atomically (bounds checked in `new`).
            self.atomic_u64(off) >> (bit % 64) & 1 == 1
        };
        word(a) && word(b)
    }

    /// Hashes `rel` in one pass, testing every proper prefix (at `/`
    /// boundaries) against the Bloom filter of stopping points.
    #[inline]
    pub fn scan(&self, rel: &[u8]) -> Scan {
        let (hash, suspects) = hash_with_prefixes(rel, |h| self.bloom_has(h));
        Scan {
            hash,
            prefix_suspect: suspects != 0,
            suspects,
        }
    }

    #[inline(always)]
    fn atomic_u64(&self, off: usize) -> u64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.bytes.len());
        // SAFETY: `off` is 8-aligned (slot arrays are 8-aligned, checked in
        // `new`) and within the mapping; the mapping outlives `self`.
        unsafe {
            AtomicU64::from_ptr(self.bytes.as_ptr().add(off) as *mut u64).load(Ordering::Acquire)
        }
    }

    #[inline]
    fn flags(&self) -> u32 {
        // SAFETY: the flags field is 4-aligned and inside the header.
        unsafe {
            AtomicU32::from_ptr(self.bytes.as_ptr().add(field::FLAGS) as *mut u32)
                .load(Ordering::Acquire)
        }
    }

    /// Whether a newer table has replaced this one (invariant 3).
    #[inline]
    pub fn superseded(&self) -> bool {
        self.flags() & FLAG_SUPERSEDED != 0
    }

    /// Whether the project asks for every unmarked blob to be verified
    /// before its first open ([`FLAG_VERIFY`]).
    #[inline]
    pub fn verify(&self) -> bool {
        self.flags() & FLAG_VERIFY != 0
    }

    /// Whether a directory of the project may be unsearchable for its
    /// owner ([`FLAG_CLOSED_DIRS`]).
    #[inline]
    pub fn closed_dirs(&self) -> bool {
        self.flags() & FLAG_CLOSED_DIRS != 0
    }

    pub fn generation(&self) -> u64 {
        read_u64(self.bytes, field::GENERATION).unwrap_or(0)
    }

    pub fn entry_count(&self) -> u64 {
        read_u64(self.bytes, field::ENTRY_COUNT).unwrap_or(0)
    }

    /// Whether any record may hide a physical subtree.
    #[inline]
    pub fn may_hide(&self) -> bool {
        self.atomic_u64(field::HIDING) != 0
    }

    /// Whether any record is a symlink (intermediate components need resolving).
    #[inline]
    pub fn has_symlinks(&self) -> bool {
        self.atomic_u64(field::SYMLINKS) != 0
    }

    /// The daemon's socket path (empty if the writer recorded none).
    pub fn socket_path(&self) -> &'a [u8] {
        self.header_string(field::SOCKET_OFF)
    }

    /// The vrift binary that starts the daemon.
    pub fn exe_path(&self) -> &'a [u8] {
        self.header_string(field::EXE_OFF)
    }

    /// The root's device, uid and gid as the writer found them (None if it
    /// recorded none).
    pub fn root_ids(&self) -> Option<(u64, u32, u32)> {
        let dev = read_u64(self.bytes, field::ROOT_DEV)?;
        let owner = read_u64(self.bytes, field::ROOT_OWNER)?;
        (dev != 0).then_some((dev, owner as u32, (owner >> 32) as u32))
    }

    /// The raw bytes (the daemon's writer reads its own mapping through this).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of path slots.
    pub fn slot_count(&self) -> u32 {
        (self.slot_mask + 1) as u32
    }

    /// The canonical project root this table describes.
    pub fn root(&self) -> &'a [u8] {
        self.header_string(field::ROOT_OFF)
    }

    /// The CAS root holding the blobs.
    pub fn cas_root(&self) -> &'a [u8] {
        self.header_string(field::CAS_OFF)
    }

    /// The string whose offset the header holds at `field` (empty if none).
    fn header_string(&self, field: usize) -> &'a [u8] {
        self.string_at(read_u64(self.bytes, field).unwrap_or(0) as usize)
            .unwrap_or(&[])
    }

    #[inline]
    pub fn string_at(&self, off: usize) -> Option<&'a [u8]> {
        if off == 0 {
            return None;
        }
        let len = read_u32(self.bytes, off)? as usize;
        self.bytes.get(off + 4..(off + 4).checked_add(len)?)
    }

    /// Finds the path slot holding `rel`; returns its index.
    pub fn find_slot(&self, rel: &[u8]) -> Option<u32> {
        self.find_slot_hashed(rel, path_hash(rel))
    }

    /// [`Table::find_slot`] with the path's hash already computed.
    pub fn find_slot_hashed(&self, rel: &[u8], hash: u64) -> Option<u32> {
        self.probe(self.slots_off, PATH_SLOT_LEN, self.slot_mask, rel, hash)
            .map(|(i, _)| i)
    }

    /// The open-addressing probe shared by the path and directory slots:
    /// from `hash`'s home slot, linearly, until the slot whose hash and key
    /// match `rel` (its index and byte offset) or an empty slot (None).
    #[inline(always)]
    fn probe(
        &self,
        slots_off: usize,
        slot_len: usize,
        mask: u64,
        rel: &[u8],
        hash: u64,
    ) -> Option<(u32, usize)> {
        let mut i = hash & mask;
        for _ in 0..=mask {
            let base = slots_off + i as usize * slot_len;
            let h = self.atomic_u64(base);
            if h == 0 {
                return None;
            }
            if h == hash && self.string_at(self.atomic_u64(base + 8) as usize) == Some(rel) {
                return Some((i as u32, base));
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The key and record of a path slot.
    pub fn slot(&self, index: u32) -> Option<(&'a [u8], RecordRef<'a>)> {
        if index as u64 > self.slot_mask {
            return None;
        }
        let base = self.slots_off + index as usize * PATH_SLOT_LEN;
        if self.atomic_u64(base) == 0 {
            return None;
        }
        let key = self.string_at(self.atomic_u64(base + 8) as usize)?;
        let rec = self.string_at(self.atomic_u64(base + 16) as usize)?;
        Some((key, decode_record(rec).ok()?))
    }

    /// The record the rift holds at `rel`, if any.
    #[inline]
    pub fn lookup(&self, rel: &[u8]) -> Option<RecordRef<'a>> {
        self.slot(self.find_slot(rel)?).map(|(_, r)| r)
    }

    /// [`Table::lookup`] with the path's hash already computed (one probe
    /// sequence; the record is read from the slot that matched).
    #[inline]
    pub fn lookup_hashed(&self, rel: &[u8], hash: u64) -> Option<RecordRef<'a>> {
        let (_, base) = self.probe(self.slots_off, PATH_SLOT_LEN, self.slot_mask, rel, hash)?;
        // A tombstone (record offset 0) reads as nothing.
        let rec = self.string_at(self.atomic_u64(base + 16) as usize)?;
        decode_record(rec).ok()
    }

    /// The directory entry for `rel` (children and flags), if any.
    pub fn dir(&self, rel: &[u8]) -> Option<Dir<'a>> {
        let hash = path_hash(rel);
        let (slot, base) = self.probe(
            self.dir_slots_off,
            DIR_SLOT_LEN,
            self.dir_slot_mask,
            rel,
            hash,
        )?;
        Some(Dir {
            table: *self,
            list_off: self.atomic_u64(base + 16) as usize,
            flags: self.atomic_u64(base + 24),
            slot,
        })
    }
}

impl<'a> Dir<'a> {
    /// Offset of the newest list chunk (0: no children).
    pub fn list_off(&self) -> usize {
        self.list_off
    }

    /// Whether the rift lists nothing here.
    pub fn is_empty(&self) -> bool {
        self.children().next().is_none()
    }

    /// The rift children, newest chunk first: (name, record) per path slot
    /// that holds a record (tombstones are skipped). Whiteouts are included.
    pub fn children(&self) -> Children<'a> {
        Children {
            table: self.table,
            chunk: self.list_off,
            i: 0,
            count: 0,
            hops: 0,
        }
    }

    /// The path-slot index of every child (tombstones included), for writers.
    pub fn child_slots(&self) -> ChildSlots<'a> {
        ChildSlots {
            table: self.table,
            chunk: self.list_off,
            i: 0,
            count: 0,
            hops: 0,
        }
    }
}

/// Walks the chunks of a child list, bounds-checked: a damaged or cyclic
/// chain ends the walk instead of looping past the mapping.
pub struct ChildSlots<'a> {
    table: Table<'a>,
    chunk: usize,
    i: usize,
    count: usize,
    hops: usize,
}

impl Iterator for ChildSlots<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        loop {
            if self.chunk == 0 {
                return None;
            }
            let bytes = self.table.bytes;
            if self.i == 0 && self.count == 0 {
                let count = read_u32(bytes, self.chunk)? as usize;
                let room = bytes.len().saturating_sub(self.chunk + LIST_CHUNK_HEADER) / 4;
                self.count = count.min(room);
                for ahead in 0..self.count.min(PREFETCH_AHEAD) {
                    self.prefetch(ahead);
                }
            }
            if self.i < self.count {
                let idx = read_u32(bytes, self.chunk + LIST_CHUNK_HEADER + 4 * self.i)?;
                if self.i + PREFETCH_AHEAD < self.count {
                    self.prefetch(self.i + PREFETCH_AHEAD);
                }
                self.i += 1;
                return Some(idx);
            }
            let prev = read_u64(bytes, self.chunk + 8)? as usize;
            self.hops += 1;
            // Chunks are appended, so a valid chain only goes backwards.
            if prev >= self.chunk || self.hops > 1 << 24 {
                self.chunk = 0;
                return None;
            }
            self.chunk = prev;
            self.i = 0;
            self.count = 0;
        }
    }
}

/// How many children ahead of the one being read [`ChildSlots`] asks the
/// CPU to fetch the path slot of. The slots of one directory's children lie
/// at random places in the slot array (hash order), so a listing walked
/// cold (`find`, `ls -R`: each directory once) waited on one cache and TLB
/// miss per child; fetched ahead, those misses overlap.
const PREFETCH_AHEAD: usize = 8;

impl ChildSlots<'_> {
    /// Hints the path slot of the current chunk's `nth` child into cache.
    #[inline(always)]
    fn prefetch(&self, nth: usize) {
        let Some(idx) = read_u32(self.table.bytes, self.chunk + LIST_CHUNK_HEADER + 4 * nth) else {
            return;
        };
        if idx as u64 > self.table.slot_mask {
            return;
        }
        let at = self.table.slots_off + idx as usize * PATH_SLOT_LEN;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `at` lies inside the mapping (idx <= slot_mask, and `new`
        // checked the slot array fits); a prefetch never faults anyway.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.table.bytes.as_ptr().add(at) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }
}

/// Children with their names and records (see [`Dir::children`]).
pub struct Children<'a> {
    table: Table<'a>,
    chunk: usize,
    i: usize,
    count: usize,
    hops: usize,
}

impl<'a> Iterator for Children<'a> {
    type Item = (&'a [u8], RecordRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let mut slots = ChildSlots {
            table: self.table,
            chunk: self.chunk,
            i: self.i,
            count: self.count,
            hops: self.hops,
        };
        let out = loop {
            let Some(index) = slots.next() else {
                break None;
            };
            if let Some((key, rec)) = self.table.slot(index) {
                let name = match key.iter().rposition(|&c| c == b'/') {
                    Some(p) => &key[p + 1..],
                    None => key,
                };
                break Some((name, rec));
            }
        };
        self.chunk = slots.chunk;
        self.i = slots.i;
        self.count = slots.count;
        self.hops = slots.hops;
        out
    }
}

/// The hot table as the view's rules read it: one record per path (the
/// writer already put the rift over the phantom layer), the Bloom filter
/// as the prefix scan.
impl<'a> crate::view::Layers for Table<'a> {
    type Target = &'a [u8];

    #[inline(always)]
    fn record(&self, rel: &[u8]) -> Option<RecordRef<'a>> {
        self.lookup(rel)
    }

    #[inline(always)]
    fn dir_flags(&self, rel: &[u8]) -> u8 {
        self.dir(rel).map_or(0, |d| d.flags as u8)
    }

    #[inline(always)]
    fn scan(&self, rel: &[u8]) -> Scan {
        Table::scan(self, rel)
    }

    #[inline(always)]
    fn record_scanned(&self, rel: &[u8], scan: &Scan) -> Option<RecordRef<'a>> {
        self.lookup_hashed(rel, scan.hash)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    #[test]
    fn one_pass_gives_the_hash_of_the_path_and_of_every_prefix() {
        let names = [
            "a",
            "bc",
            "node_modules",
            "@scope",
            "x.js",
            "1234567",
            "12345678",
            "",
        ];
        let mut k = 0u32;
        for len in 0..48 {
            for _ in 0..20 {
                let mut p = Vec::new();
                while p.len() < len {
                    k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(names[(k >> 16) as usize % names.len()].as_bytes());
                }
                p.truncate(len);
                let mut seen = Vec::new();
                let (h, hits) = hash_with_prefixes(&p, |h| {
                    seen.push(h);
                    seen.len() % 3 == 1
                });
                let want_hits = (0..seen.len())
                    .filter(|i| i % 3 == 0)
                    .fold(0u64, |m, i| m | 1 << i.min(63));
                assert_eq!(hits, want_hits);
                assert_eq!(h, path_hash(&p), "{:?}", String::from_utf8_lossy(&p));
                let want: Vec<u64> = (0..p.len())
                    .filter(|&j| p[j] == b'/')
                    .map(|j| path_hash(&p[..j]))
                    .collect();
                assert_eq!(seen, want, "{:?}", String::from_utf8_lossy(&p));
            }
        }
    }

    #[test]
    fn hashes_differ_and_are_never_zero() {
        let mut all = std::collections::HashSet::new();
        for i in 0..20_000u32 {
            let p = std::format!("node_modules/pkg-{}/lib/m{}.js", i / 7, i % 7);
            let h = path_hash(p.as_bytes());
            assert_ne!(h, 0);
            all.insert(h);
        }
        assert_eq!(all.len(), 20_000);
        assert_ne!(path_hash(b"a"), path_hash(b"a/"));
        assert_ne!(path_hash(b""), path_hash(b"/"));
    }
}
