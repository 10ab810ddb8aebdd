//! A cache of directories known by their path hash: direct-mapped, one
//! word per slot, lock-free (racy updates only lose an entry). The shim
//! keeps directories found to lead nowhere else in the domain (no physical
//! symlink on the way, or one that leaves the domain) and parents found
//! canonical.

use core::sync::atomic::{AtomicU64, Ordering};

const SLOTS: usize = 256;

/// Directories by path hash (all zeros when empty, so it lives in `.bss`).
pub struct DirCache {
    slots: [AtomicU64; SLOTS],
}

/// A slot of a [`DirCache`] and the key to store in it: what a lookup that
/// missed hands back, to record the directory once it is verified.
pub struct Unverified {
    slot: &'static AtomicU64,
    key: u64,
}

impl Unverified {
    /// Records the directory looked up.
    #[inline]
    pub fn verify(&self) {
        self.slot.store(self.key, Ordering::Relaxed);
    }
}

impl Default for DirCache {
    fn default() -> DirCache {
        DirCache::new()
    }
}

impl DirCache {
    pub const fn new() -> DirCache {
        DirCache {
            slots: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    fn slot(&'static self, key: u64) -> &'static AtomicU64 {
        &self.slots[(key & (SLOTS as u64 - 1)) as usize]
    }

    /// None if `dir` is already in the cache; else its slot, to fill.
    #[inline]
    pub fn unverified(&'static self, dir: &[u8]) -> Option<Unverified> {
        let key = vrift_format::table::path_hash(dir);
        let slot = self.slot(key);
        (slot.load(Ordering::Relaxed) != key).then_some(Unverified { slot, key })
    }

    /// Puts `dir` in the cache. Stored without looking first: in a fresh
    /// process the slot's page is untouched, and a read before the write
    /// would cost it two faults.
    #[inline]
    pub fn mark(&'static self, dir: &[u8]) {
        let key = vrift_format::table::path_hash(dir);
        Unverified {
            slot: self.slot(key),
            key,
        }
        .verify();
    }

    /// Empties the cache (the domain changed).
    pub fn forget(&self) {
        for slot in &self.slots {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DirCache;

    #[test]
    fn a_marked_directory_is_verified_until_forgotten() {
        static C: DirCache = DirCache::new();
        assert!(C.unverified(b"/p/a").is_some());
        C.mark(b"/p/a");
        assert!(C.unverified(b"/p/a").is_none());
        assert!(C.unverified(b"/p/b").is_some());
        C.forget();
        assert!(C.unverified(b"/p/a").is_some());
    }

    #[test]
    fn a_lookup_that_missed_records_through_its_slot() {
        static C: DirCache = DirCache::new();
        let miss = C.unverified(b"/p/x").unwrap();
        assert!(C.unverified(b"/p/x").is_some());
        miss.verify();
        assert!(C.unverified(b"/p/x").is_none());
    }

    #[test]
    fn a_colliding_directory_evicts_the_other() {
        static C: DirCache = DirCache::new();
        let h = |p: &[u8]| vrift_format::table::path_hash(p) & 255;
        let first = b"/p/0".to_vec();
        let other = (1..100_000)
            .map(|i| std::format!("/p/{i}").into_bytes())
            .find(|p| h(p) == h(&first))
            .unwrap();
        C.mark(&first);
        C.mark(&other);
        assert!(C.unverified(&other).is_none());
        assert!(C.unverified(&first).is_some());
    }
}
