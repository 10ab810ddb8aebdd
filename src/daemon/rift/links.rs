//! Hard links: one inode, several names (issue 15).
//!
//! Every name of an inode has a record of its own, and all of them carry
//! the inode's number, metadata and count of other names (`links`, so
//! `st_nlink` is `links + 1`); a change made through one name is written
//! to every other ([`Rift::sync_names`]), a name made or removed changes
//! the count of the rest, and while the file is written all its names are
//! staged on the one staging file, so a write through one shows through
//! the others. Only the flags that belong to a name, not to the inode
//! (phantom, hides-a-directory), differ between them.
//!
//! The names of each inode that has more than one are indexed
//! (`Rift::inodes`, a set per inode): the index follows every change of the table
//! ([`Rift::reindex`], from `apply_to_table`), and is built from the table
//! when the daemon starts.

use super::*;

/// The flags of a record that belong to its name, not to its inode.
const NAME_FLAGS: u8 = FLAG_PHANTOM | FLAG_HIDES_DIR;

impl Rift {
    /// The inode `rel`'s record names, if it has other names.
    pub(super) fn linked_ino(&self, rel: &[u8]) -> Option<u64> {
        match self.table().lookup(rel) {
            Some(RecordRef::Entry { header, .. }) if header.links > 0 => Some(header.ino),
            _ => None,
        }
    }

    /// Moves `rel` in the index from inode `before` to inode `after`.
    pub(super) fn reindex(&mut self, rel: &[u8], before: Option<u64>, after: Option<u64>) {
        if let Some(ino) = before {
            if let Some(names) = self.inodes.get_mut(&ino) {
                names.remove(rel);
                if names.is_empty() {
                    self.inodes.remove(&ino);
                }
            }
        }
        if let Some(ino) = after {
            self.inodes.entry(ino).or_default().insert(rel.to_vec());
        }
    }

    /// The names of inode `ino` (empty unless it has several).
    pub(super) fn names_of(&self, ino: u64) -> Vec<Vec<u8>> {
        self.inodes
            .get(&ino)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Writes `h` (with `target`) as the record of every name of its inode
    /// but `except` (whose record the caller writes), each keeping its own
    /// name flags.
    pub(super) fn sync_names(
        &mut self,
        h: &RecordHeader,
        target: &[u8],
        except: &[u8],
    ) -> Result<()> {
        let mut changes = Vec::new();
        for name in self.names_of(h.ino) {
            if name == except {
                continue;
            }
            let own = match self.table().lookup(&name) {
                Some(RecordRef::Entry { header, .. }) if header.ino == h.ino => {
                    header.flags & NAME_FLAGS
                }
                _ => continue,
            };
            let mut o = *h;
            o.flags = (h.flags & !NAME_FLAGS) | own;
            changes.push(Change::Set(name, encode(&o, target)));
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.record(changes)
    }

    /// link(2): `new` becomes another name of the inode `old` names. A
    /// file of the disk is copied up first (its name then has a record of
    /// the same content); a file being written shares its staging file.
    pub fn link(&mut self, old: &[u8], new: &[u8]) -> OpResult<()> {
        let node = self.node(old);
        if node.is_dir() {
            return posix(libc::EPERM);
        }
        if self.node(new).exists() {
            return posix(libc::EEXIST);
        }
        self.check_parent(new)?;
        let (mut h, target) = self.entry_of(old, &node)?;
        if h.links + 1 >= vrift_format::MAX_LINKS {
            return posix(libc::EMLINK);
        }
        h.links += 1;
        // A link changes the inode: its ctime.
        h.ctime_ns = now_ns();
        self.set(old, encode(&h, &target))?;
        self.sync_names(&h, &target, old)?;
        let mut n = h;
        n.flags &= !NAME_FLAGS;
        if beneath::lstat(self.root(), new).is_ok_and(|m| m.is_dir()) {
            n.flags |= FLAG_HIDES_DIR;
        }
        self.set(new, encode(&n, &target))?;
        if h.is_staged() {
            self.add_staged_name(&target, new);
        }
        Ok(())
    }

    /// After `rel`, a name of the inode `h` describes, left the view: the
    /// other names count one name less (and their ctime moves); a staging
    /// file goes with its last name.
    pub(super) fn name_removed(
        &mut self,
        rel: &[u8],
        h: &RecordHeader,
        target: &[u8],
    ) -> Result<()> {
        let others: Vec<Vec<u8>> = match h.links {
            0 => Vec::new(),
            _ => self
                .names_of(h.ino)
                .into_iter()
                .filter(|n| n != rel)
                .collect(),
        };
        if others.is_empty() {
            self.drop_staged(h, target);
            return Ok(());
        }
        self.forget_staged_name(target, h, rel);
        let mut o = *h;
        o.links = (others.len() - 1) as u32;
        o.ctime_ns = now_ns();
        self.sync_names(&o, target, &[])
    }

    /// `name` (a staging file) is also the content of `rel`.
    pub(super) fn add_staged_name(&mut self, name: &[u8], rel: &[u8]) {
        let st = self
            .staged
            .entry(name.to_vec())
            .or_insert_with(|| Staged { rels: Vec::new() });
        if !st.rels.iter().any(|r| r == rel) {
            st.rels.push(rel.to_vec());
        }
    }

    /// `rel` no longer names the staging file `name` (others still do).
    pub(super) fn forget_staged_name(&mut self, name: &[u8], h: &RecordHeader, rel: &[u8]) {
        if h.is_staged() {
            if let Some(st) = self.staged.get_mut(name) {
                st.rels.retain(|r| r != rel);
            }
        }
    }
}
