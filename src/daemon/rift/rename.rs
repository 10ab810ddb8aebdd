//! rename(2) in the view: files and symlinks move as records, directories
//! as trees (physical ones the rift made move on disk), RENAME_NOREPLACE
//! and RENAME_EXCHANGE honoured.

use super::*;

impl Rift {
    pub fn rename(&mut self, old: &[u8], new: &[u8], flags: u32) -> OpResult<()> {
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if (noreplace && exchange) || flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0
        {
            return posix(libc::EINVAL);
        }
        if old.is_empty() || new.is_empty() {
            return posix(libc::EBUSY);
        }
        let src = self.node(old);
        match src {
            Node::Absent => return posix(libc::ENOENT),
            Node::NotDir => return posix(libc::ENOTDIR),
            _ => {}
        }
        if old == new {
            return Ok(());
        }
        if new.starts_with(old) && new.get(old.len()) == Some(&b'/') && src.is_dir() {
            return posix(libc::EINVAL);
        }
        let dst = self.node(new);
        if let Node::NotDir = dst {
            return posix(libc::ENOTDIR);
        }
        // Two names of one inode (hard links): nothing to do, both stay.
        if let (Node::Entry(a, _), Node::Entry(b, _)) = (&src, &dst) {
            if a.links > 0 && a.ino == b.ino {
                return Ok(());
            }
        }
        if !dst.exists() {
            if exchange {
                return posix(libc::ENOENT);
            }
            self.check_parent(new)?;
        } else if noreplace {
            return posix(libc::EEXIST);
        }
        if exchange {
            if src.is_dir() || dst.is_dir() {
                if old.starts_with(new) && old.get(new.len()) == Some(&b'/') {
                    return posix(libc::EINVAL);
                }
                return self.exchange_dirs(old, new, &src, &dst);
            }
            let (mut a, at) = self.entry_of(old, &src)?;
            let (mut b, bt) = self.entry_of(new, &dst)?;
            // A rename changes each moved inode's ctime.
            a.ctime_ns = now_ns();
            b.ctime_ns = a.ctime_ns;
            self.move_staged(&at, &a, old, new);
            self.move_staged(&bt, &b, new, old);
            let a = self.with_hides(new, a);
            let b = self.with_hides(old, b);
            self.record(vec![
                Change::Set(new.to_vec(), encode(&a, &at)),
                Change::Set(old.to_vec(), encode(&b, &bt)),
            ])?;
            // Their other names see the new ctimes.
            self.sync_names(&a, &at, new)?;
            self.sync_names(&b, &bt, old)?;
            return Ok(());
        }
        if src.is_dir() {
            match &dst {
                Node::Dir => {
                    if !self.is_empty_dir(new) {
                        return posix(libc::ENOTEMPTY);
                    }
                }
                Node::Absent => {}
                _ => return posix(libc::ENOTDIR),
            }
            return self.rename_dir(old, new, &dst);
        }
        if dst.is_dir() {
            return posix(libc::EISDIR);
        }
        let (mut h, target) = self.entry_of(old, &src)?;
        h.ctime_ns = now_ns();
        self.move_staged(&target, &h, old, new);
        let h = self.with_hides(new, h);
        let mut changes = vec![Change::Set(new.to_vec(), encode(&h, &target))];
        let below = beneath::lstat(self.root(), old).is_ok() || self.phantom(old)?.is_some();
        changes.push(if below {
            Change::Set(old.to_vec(), WHITEOUT_RECORD.to_vec())
        } else {
            Change::Remove(old.to_vec())
        });
        self.record(changes)?;
        // The replaced entry: one name less for its inode (its staging
        // file goes with its last name); the moved one's other names see
        // its new ctime.
        if let Node::Entry(dh, dt) = &dst {
            self.name_removed(new, dh, dt)?;
        }
        self.sync_names(&h, &target, new)?;
        Ok(())
    }

    pub(super) fn with_hides(&self, rel: &[u8], mut h: RecordHeader) -> RecordHeader {
        h.flags &= !(FLAG_PHANTOM | FLAG_HIDES_DIR);
        if beneath::lstat(self.root(), rel).is_ok_and(|m| m.is_dir()) {
            h.flags |= FLAG_HIDES_DIR;
        }
        h
    }

    /// Renames a directory of the view. A directory the rift made, with
    /// nothing physical but directories below it, moves on disk with its
    /// records; any other is copied up into the rift at the new place and
    /// hidden at the old one.
    pub(super) fn rename_dir(&mut self, old: &[u8], new: &[u8], dst: &Node) -> OpResult<()> {
        if let Node::Dir = dst {
            self.remove_dir_in_view(new, false)?;
        }
        // Build the new tree: directories on disk, entries in the rift.
        let mut changes = Vec::new();
        let mut dirs = vec![(old.to_vec(), new.to_vec())];
        let mut staged_moves = Vec::new();
        while let Some((from, to)) = dirs.pop() {
            let mode = beneath::lstat(self.root(), &from)
                .map(|m| m.mode())
                .unwrap_or(0o755);
            match beneath::lstat(self.root(), &to) {
                // A directory the disk had (hidden): it shows only what
                // moves in, with the moved directory's mode, and is never
                // marked as made by the rift.
                Ok(m) if m.is_dir() => {
                    beneath::chmod(self.root(), &to, mode)?;
                    changes.push(Change::Dir(
                        to.clone(),
                        DIR_OPAQUE | (self.dir_flags(&to) & DIR_CREATED),
                    ))
                }
                Ok(_) => return posix(libc::EEXIST),
                Err(_) => {
                    beneath::mkdir(self.root(), &to, 0o700)?;
                    beneath::chmod(self.root(), &to, mode)?;
                    changes.push(Change::Dir(to.clone(), DIR_CREATED));
                }
            }
            if matches!(self.table().lookup(&to), Some(RecordRef::Whiteout)) {
                changes.push(Change::Remove(to.clone()));
            }
            for name in self.list(&from) {
                let f = join_rel(&from, &name);
                let t = join_rel(&to, &name);
                let node = self.node(&f);
                if node.is_dir() {
                    dirs.push((f, t));
                    continue;
                }
                let (h, target) = self.entry_of(&f, &node)?;
                if h.is_staged() {
                    staged_moves.push((target.clone(), f.clone(), t.clone()));
                }
                let h = self.with_hides(&t, h);
                changes.push(Change::Set(t, encode(&h, &target)));
            }
        }
        for (name, from, to) in staged_moves {
            if let Some(st) = self.staged.get_mut(&name) {
                for r in st.rels.iter_mut().filter(|r| **r == from) {
                    *r = to.clone();
                }
            }
        }
        self.record(changes)?;
        // The old tree leaves the view: empty rift-made directories leave
        // the disk, everything else is hidden.
        self.remove_tree_in_view(old)?;
        Ok(())
    }

    /// Removes a whole subtree from the view (after its content moved).
    pub(super) fn remove_tree_in_view(&mut self, rel: &[u8]) -> Result<()> {
        let mut order = Vec::new();
        let mut stack = vec![rel.to_vec()];
        while let Some(d) = stack.pop() {
            for name in self.list(&d) {
                let c = join_rel(&d, &name);
                if self.node(&c).is_dir() {
                    stack.push(c.clone());
                } else {
                    // Entries were moved (staged ones keep their file).
                    let below =
                        beneath::lstat(self.root(), &c).is_ok() || self.phantom(&c)?.is_some();
                    self.record(vec![if below {
                        Change::Set(c.clone(), WHITEOUT_RECORD.to_vec())
                    } else {
                        Change::Remove(c.clone())
                    }])?;
                }
            }
            order.push(d);
        }
        for d in order.iter().rev() {
            self.remove_dir_in_view(d, false)?;
        }
        Ok(())
    }

    pub(super) fn exchange_dirs(
        &mut self,
        a: &[u8],
        b: &[u8],
        na: &Node,
        nb: &Node,
    ) -> OpResult<()> {
        // Through a temporary name in a's parent: a → tmp, b → a, tmp → b.
        let mut tmp = parent_rel(a).to_vec();
        if !tmp.is_empty() {
            tmp.push(b'/');
        }
        tmp.extend_from_slice(format!(".vrift-exchange.{}", std::process::id()).as_bytes());
        // Directories are physical: one cannot take a name where the disk
        // holds a file (hidden or not). Refused before anything moves, as
        // the three renames below would stop half-way.
        let disk_file =
            |rel: &[u8]| fs::symlink_metadata(self.disk(rel)).is_ok_and(|m| !m.is_dir());
        if (na.is_dir() && disk_file(b)) || (nb.is_dir() && disk_file(a)) {
            return posix(libc::EEXIST);
        }
        self.rename(a, &tmp, 0)?;
        self.rename(b, a, 0)?;
        self.rename(&tmp, b, 0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{errno, Fixture, Kinds, ALL};

    const FLAGS: [u32; 5] = [
        0,
        libc::RENAME_NOREPLACE,
        libc::RENAME_EXCHANGE,
        libc::RENAME_WHITEOUT,
        libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE,
    ];

    /// What rename(2) answers on a Linux filesystem without whiteout
    /// support (man 2 rename), for two different names in one directory.
    fn expected(src: Kinds, dst: Kinds, flags: u32) -> i32 {
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & libc::RENAME_WHITEOUT != 0 || (noreplace && exchange) {
            return libc::EINVAL;
        }
        if !src.exists() {
            return libc::ENOENT;
        }
        // Directories are physical (DESIGN.md §2): a directory cannot
        // take a name where the disk holds a file, hidden or not. (Linux
        // would rename: a known difference of the view.)
        let dir_onto_disk_file = (src.is_dir() && dst.on_disk() && (exchange || !dst.exists()))
            || (exchange && dst.is_dir() && src.on_disk() && src.exists());
        if !dst.exists() {
            return match (exchange, dir_onto_disk_file) {
                (true, _) => libc::ENOENT,
                (false, true) => libc::EEXIST,
                (false, false) => 0,
            };
        }
        if noreplace {
            return libc::EEXIST;
        }
        if dir_onto_disk_file {
            return libc::EEXIST;
        }
        if exchange {
            return 0;
        }
        match (src.is_dir(), dst.is_dir()) {
            (true, false) => libc::ENOTDIR,
            (false, true) => libc::EISDIR,
            _ => 0,
        }
    }

    /// Every flag × every kind of source × every kind of target: the
    /// errno, what each name shows after, and the disk's files unchanged.
    #[test]
    fn rename_flags_by_node_kinds() {
        let mut checked = 0;
        for src in ALL {
            for dst in ALL {
                for flags in FLAGS {
                    let mut f = Fixture::new();
                    f.make("s", src, "a");
                    f.make("d", dst, "b");
                    let (before_s, before_d) = (f.seen("s"), f.seen("d"));
                    let case = format!("rename({src:?} → {dst:?}, flags {flags:#x})");
                    let got = errno(f.rift.rename(b"s", b"d", flags));
                    assert_eq!(got, expected(src, dst, flags), "{case}");
                    let (after_s, after_d) = (f.seen("s"), f.seen("d"));
                    if got != 0 {
                        assert_eq!((&after_s, &after_d), (&before_s, &before_d), "{case}");
                    } else if flags & libc::RENAME_EXCHANGE != 0 {
                        assert_eq!((&after_s, &after_d), (&before_d, &before_s), "{case}");
                    } else {
                        assert_eq!(after_d, before_s, "{case}");
                        assert_eq!(after_s.0, "absent", "{case}");
                    }
                    // Writes never touch the disk's files.
                    for (name, kind, content) in [("s", src, "a"), ("d", dst, "b")] {
                        if kind.on_disk() {
                            assert_eq!(f.disk(name).as_deref(), Some(content), "{case}");
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 7 * 7 * 5);
    }

    #[test]
    fn a_directory_renamed_over_a_non_empty_one_is_enotempty() {
        let mut f = Fixture::new();
        f.make("s", Kinds::Dir, "");
        f.make("d", Kinds::Dir, "");
        f.make("d/x", Kinds::RiftFile, "x");
        assert_eq!(errno(f.rift.rename(b"s", b"d", 0)), libc::ENOTEMPTY);
        // Exchanging two directories needs neither to be empty.
        assert_eq!(errno(f.rift.rename(b"s", b"d", libc::RENAME_EXCHANGE)), 0);
        assert_eq!(f.seen("s/x"), ("file", "x".to_string()));
        assert_eq!(f.seen("d/x").0, "absent");
    }

    #[test]
    fn a_path_through_a_file_is_enotdir_and_a_directory_into_itself_einval() {
        let mut f = Fixture::new();
        f.make("file", Kinds::RiftFile, "x");
        f.make("dir", Kinds::Dir, "");
        assert_eq!(errno(f.rift.rename(b"file/a", b"b", 0)), libc::ENOTDIR);
        assert_eq!(errno(f.rift.rename(b"dir", b"file/a", 0)), libc::ENOTDIR);
        assert_eq!(errno(f.rift.rename(b"dir", b"dir/sub", 0)), libc::EINVAL);
        assert_eq!(errno(f.rift.rename(b"", b"x", 0)), libc::EBUSY);
        assert_eq!(errno(f.rift.rename(b"file", b"file", 0)), 0);
        assert_eq!(f.seen("file"), ("file", "x".to_string()));
    }
}
