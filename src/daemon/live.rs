//! The daemon's side of the hot table: the published file mapped shared and
//! writable, updated in place following the format's invariant 2 (append to
//! the arena, then publish with one atomic store), and replaced by a larger
//! generation when it runs out of slots, arena or Bloom bits.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use vrift_format::table::{
    bloom_bits, field, path_hash, Table, DIR_SLOT_LEN, FLAG_SUPERSEDED, LIST_CHUNK_HEADER,
    PATH_SLOT_LEN,
};
use vrift_format::{Kind, DIR_OPAQUE};

use crate::paths::parent_rel;
use crate::project::Project;
use crate::table::{self, is_hiding, is_stop, Records, Room, TableMeta};

/// Where the table belongs (written into every generation).
pub struct Identity {
    pub root: Vec<u8>,
    pub cas_root: Vec<u8>,
    pub socket: Vec<u8>,
    pub exe: Vec<u8>,
    /// `verify = true` (carried into every table the daemon publishes).
    pub verify: bool,
}

/// The mapped table and the writer's bookkeeping.
pub struct LiveTable {
    ptr: *mut u8,
    len: usize,
    generation: u64,
    slot_count: usize,
    slots_off: usize,
    dir_slot_count: usize,
    dir_slots_off: usize,
    bloom_off: usize,
    bloom_words: u64,
    /// End of the used arena (absolute offset).
    arena_end: usize,
    used_slots: usize,
    used_dir_slots: usize,
    stops: usize,
    /// End of the arena as built: what lies past it was appended in place
    /// (new records, superseded ones left behind, one-entry list chunks).
    built_arena_end: usize,
}

/// Bytes appended in place before [`LiveTable::fragmented`] says yes.
const COMPACT_MIN_APPENDED: usize = 64 << 10;

/// The table cannot take the change in place: rebuild a larger one.
#[derive(Debug)]
pub struct Full;

impl Drop for LiveTable {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no reference into it outlives `self`
        // (readers in other processes have their own mappings).
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

fn u64_at(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap_or_default())
}

impl LiveTable {
    /// Builds a table with room to grow from `records`, publishes it and maps it.
    pub fn create(
        project: &Project,
        id: &Identity,
        records: &Records,
        dir_flags: &BTreeMap<Vec<u8>, u8>,
        hiding: u64,
    ) -> Result<LiveTable> {
        let meta = TableMeta {
            generation: table::next_generation(project),
            hiding,
            root: &id.root,
            cas_root: &id.cas_root,
            socket: &id.socket,
            exe: &id.exe,
            verify: id.verify,
            closed_dirs: table::closed_dirs(project),
        };
        let bytes = table::build(records, dir_flags, &meta, Room::Spare);
        table::replace(project, &bytes)?;
        let path = table::table_path(project);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let len = bytes.len();
        // SAFETY: mapping a file we just wrote, shared so readers see our stores.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!(
                "cannot map {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        let h = |f| u64_at(&bytes, f) as usize;
        let stops = records.iter().filter(|(_, r)| is_stop(r)).count()
            + dir_flags.values().filter(|f| *f & DIR_OPAQUE != 0).count();
        let mut live = LiveTable {
            ptr: ptr as *mut u8,
            len,
            generation: meta.generation,
            slot_count: h(field::SLOT_COUNT),
            slots_off: h(field::SLOTS_OFF),
            dir_slot_count: h(field::DIR_SLOT_COUNT),
            dir_slots_off: h(field::DIR_SLOTS_OFF),
            bloom_off: h(field::BLOOM_OFF),
            bloom_words: h(field::BLOOM_WORDS) as u64,
            arena_end: h(field::ARENA_OFF) + h(field::ARENA_LEN),
            used_slots: records.len(),
            used_dir_slots: 0,
            stops,
            built_arena_end: h(field::ARENA_OFF) + h(field::ARENA_LEN),
        };
        // (Mutated in place: a struct update would copy the fields and drop,
        // hence unmap, the original.)
        live.used_dir_slots = live.table().map(|t| count_dir_slots(&t)).unwrap_or(0);
        Ok(live)
    }

    /// The table as readers see it.
    pub fn table(&self) -> Result<Table<'_>> {
        // SAFETY: the mapping lives as long as `self`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        Table::new(bytes).map_err(|e| anyhow::anyhow!("the live table is invalid: {e:?}"))
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn atomic(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: 8-aligned offset inside our mapping (slot arrays, header and
        // Bloom filter are 8-aligned by construction).
        unsafe { AtomicU64::from_ptr(self.ptr.add(off) as *mut u64) }
    }

    fn append(&mut self, parts: &[&[u8]]) -> Result<usize, Full> {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if self.arena_end + n > self.len {
            return Err(Full);
        }
        let off = self.arena_end;
        let mut at = off;
        for p in parts {
            // SAFETY: within the mapping (checked above); readers never look
            // past what an atomic store has published.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), self.ptr.add(at), p.len()) };
            at += p.len();
        }
        self.arena_end = at;
        self.atomic(field::ARENA_LEN).store(
            (at - u64_at(self.bytes(), field::ARENA_OFF) as usize) as u64,
            Ordering::Relaxed,
        );
        Ok(off)
    }

    fn append_str(&mut self, s: &[u8]) -> Result<usize, Full> {
        self.append(&[&(s.len() as u32).to_le_bytes(), s])
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Probes an open-addressing array (path or directory slots: hash first,
    /// key offset second) for `rel`: its index, and whether it is there (else
    /// the index is the free slot where it belongs).
    fn probe(&self, off: usize, slot_len: usize, count: usize, rel: &[u8]) -> (usize, bool) {
        let hash = path_hash(rel);
        let mask = count - 1;
        let mut i = hash as usize & mask;
        loop {
            let base = off + i * slot_len;
            let h = self.atomic(base).load(Ordering::Acquire);
            if h == 0 {
                return (i, false);
            }
            if h == hash {
                let key_off = self.atomic(base + 8).load(Ordering::Acquire) as usize;
                if self.table().ok().and_then(|t| t.string_at(key_off)) == Some(rel) {
                    return (i, true);
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn find_slot(&self, rel: &[u8]) -> (usize, bool) {
        self.probe(self.slots_off, PATH_SLOT_LEN, self.slot_count, rel)
    }

    fn find_dir_slot(&self, rel: &[u8]) -> (usize, bool) {
        self.probe(self.dir_slots_off, DIR_SLOT_LEN, self.dir_slot_count, rel)
    }

    /// The directory slot for `rel`, created if missing.
    fn dir_slot(&mut self, rel: &[u8]) -> Result<usize, Full> {
        let (i, found) = self.find_dir_slot(rel);
        let base = self.dir_slots_off + i * DIR_SLOT_LEN;
        if found {
            return Ok(base);
        }
        if (self.used_dir_slots + 1) * 2 > self.dir_slot_count {
            return Err(Full);
        }
        let key_off = self.append_str(rel)?;
        self.atomic(base + 8)
            .store(key_off as u64, Ordering::Relaxed);
        self.atomic(base + 16).store(0, Ordering::Relaxed);
        self.atomic(base + 24).store(0, Ordering::Relaxed);
        self.atomic(base).store(path_hash(rel), Ordering::Release);
        self.used_dir_slots += 1;
        Ok(base)
    }

    fn mark_stop(&mut self, rel: &[u8]) -> Result<(), Full> {
        // Past 32 bits a stop, chance hits cost lookups (see table::layout).
        if (self.stops + 1) * 32 > self.bloom_words as usize * 64 {
            return Err(Full);
        }
        let (a, b) = bloom_bits(path_hash(rel), self.bloom_words);
        for bit in [a, b] {
            let off = self.bloom_off + (bit / 64) as usize * 8;
            self.atomic(off)
                .fetch_or(1 << (bit % 64), Ordering::Release);
        }
        self.stops += 1;
        Ok(())
    }

    fn bump(&self, f: usize) {
        self.atomic(f).fetch_add(1, Ordering::Release);
    }

    /// Makes the view show `rec` (an encoded record) at `rel`.
    pub fn set(&mut self, rel: &[u8], rec: &[u8]) -> Result<(), Full> {
        let (i, found) = self.find_slot(rel);
        if !found && (self.used_slots + 1) * 2 > self.slot_count {
            return Err(Full);
        }
        // Gates first, so a reader that sees the record also sees them.
        if is_stop(rec) {
            self.mark_stop(rel)?;
        }
        if is_hiding(rec) {
            self.bump(field::HIDING);
        }
        if rec.first() == Some(&(Kind::Symlink as u8)) {
            self.bump(field::SYMLINKS);
        }
        let base = self.slots_off + i * PATH_SLOT_LEN;
        if found {
            let rec_off = self.append_str(rec)?;
            self.atomic(base + 16)
                .store(rec_off as u64, Ordering::Release);
            return Ok(());
        }
        let dir_base = self.dir_slot(parent_rel(rel))?;
        let key_off = self.append_str(rel)?;
        let rec_off = self.append_str(rec)?;
        let prev = self.atomic(dir_base + 16).load(Ordering::Acquire);
        let chunk = self.append(&[
            &1u32.to_le_bytes(),
            &[0u8; 4],
            &prev.to_le_bytes(),
            &(i as u32).to_le_bytes(),
        ])?;
        debug_assert_eq!(LIST_CHUNK_HEADER, 16);
        self.atomic(base + 8)
            .store(key_off as u64, Ordering::Relaxed);
        self.atomic(base + 16)
            .store(rec_off as u64, Ordering::Relaxed);
        self.atomic(base).store(path_hash(rel), Ordering::Release);
        self.atomic(dir_base + 16)
            .store(chunk as u64, Ordering::Release);
        self.used_slots += 1;
        self.atomic(field::ENTRY_COUNT)
            .store(self.used_slots as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Makes the rift hold nothing at `rel` (the disk decides again).
    pub fn tombstone(&mut self, rel: &[u8]) {
        let (i, found) = self.find_slot(rel);
        if found {
            let base = self.slots_off + i * PATH_SLOT_LEN;
            self.atomic(base + 16).store(0, Ordering::Release);
        }
    }

    /// Sets the DIR_* flags of the directory `rel`.
    pub fn set_dir_flags(&mut self, rel: &[u8], flags: u8) -> Result<(), Full> {
        let base = self.dir_slot(rel)?;
        let old = self.atomic(base + 24).load(Ordering::Acquire) as u8;
        if flags & DIR_OPAQUE != 0 && old & DIR_OPAQUE == 0 {
            self.mark_stop(rel)?;
            self.bump(field::HIDING);
        }
        self.atomic(base + 24)
            .store(flags as u64, Ordering::Release);
        Ok(())
    }

    /// Every live record and directory mark, for a rebuild.
    pub fn contents(&self) -> Result<(Records, BTreeMap<Vec<u8>, u8>)> {
        let t = self.table()?;
        let mut records = Records::with_capacity(self.used_slots, 0);
        for i in 0..self.slot_count {
            let base = self.slots_off + i * PATH_SLOT_LEN;
            if self.atomic(base).load(Ordering::Acquire) == 0 {
                continue;
            }
            let key = t.string_at(self.atomic(base + 8).load(Ordering::Acquire) as usize);
            let rec = t.string_at(self.atomic(base + 16).load(Ordering::Acquire) as usize);
            if let (Some(k), Some(r)) = (key, rec) {
                records.push(k, r);
            }
        }
        records.sort();
        let mut dirs = BTreeMap::new();
        for i in 0..self.dir_slot_count {
            let base = self.dir_slots_off + i * DIR_SLOT_LEN;
            if self.atomic(base).load(Ordering::Acquire) == 0 {
                continue;
            }
            let flags = self.atomic(base + 24).load(Ordering::Acquire) as u8;
            if flags == 0 {
                continue;
            }
            if let Some(k) = t.string_at(self.atomic(base + 8).load(Ordering::Acquire) as usize) {
                dirs.insert(k.to_vec(), flags);
            }
        }
        Ok((records, dirs))
    }

    /// Whether in-place updates have spread the records enough that a
    /// rebuild pays: past 64 KiB appended (one fault-around window of a
    /// reader's mapping) and a quarter of the arena as built. A rebuilt
    /// table keeps each directory's records and listing together, so a
    /// short process (a no-op `make`) faults in a few windows instead of
    /// one per record it looks at.
    pub fn fragmented(&self) -> bool {
        let appended = self.arena_end - self.built_arena_end;
        let built = self.built_arena_end - self.slots_off;
        appended > COMPACT_MIN_APPENDED.max(built / 4)
    }

    /// Counts what was appended so far as built: after a failed rebuild,
    /// so that a quiet daemon does not retry it in a loop.
    pub fn accept_fragments(&mut self) {
        self.built_arena_end = self.arena_end;
    }

    /// Sets [`vrift_format::table::FLAG_CLOSED_DIRS`] in the published
    /// table: from now on, every process's lookups of rift entries ask for
    /// search permission (its mark keeps it in the tables after this one).
    pub fn set_closed_dirs(&self) {
        // SAFETY: the flags field is 4-aligned inside our mapping.
        unsafe { AtomicU32::from_ptr(self.ptr.add(field::FLAGS) as *mut u32) }
            .fetch_or(vrift_format::table::FLAG_CLOSED_DIRS, Ordering::Release);
    }

    /// Replaces this table by a new generation with the same contents and
    /// room to grow; processes that mapped this one switch over.
    pub fn rebuild(&mut self, project: &Project, id: &Identity) -> Result<()> {
        let (records, dirs) = self.contents()?;
        let hiding = records.iter().filter(|(_, r)| is_hiding(r)).count() as u64
            + dirs.values().filter(|f| *f & DIR_OPAQUE != 0).count() as u64;
        let new = LiveTable::create(project, id, &records, &dirs, hiding)?;
        // `create` marked the file it replaced; mark our mapping too, in case
        // it was not that file (an outside publish raced us).
        // SAFETY: the flags field is 4-aligned inside our mapping.
        unsafe { AtomicU32::from_ptr(self.ptr.add(field::FLAGS) as *mut u32) }
            .fetch_or(FLAG_SUPERSEDED, Ordering::Release);
        *self = new;
        Ok(())
    }
}

fn count_dir_slots(t: &Table<'_>) -> usize {
    let bytes = t.bytes();
    let count = u64_at(bytes, field::DIR_SLOT_COUNT) as usize;
    let off = u64_at(bytes, field::DIR_SLOTS_OFF) as usize;
    (0..count)
        .filter(|i| u64_at(bytes, off + i * DIR_SLOT_LEN) != 0)
        .count()
}
