//! Path resolution: from the arguments of a libc call to what the view holds.
//!
//! The path is made absolute (against the cached cwd or the dirfd's path) and
//! normalized lexically, then tested against the project root. Inside the
//! domain, rift symlinks are followed and hiding records (whiteouts, files
//! over directories, opaque directories) are honoured before the disk is
//! consulted. A path outside the domain costs a normalization and a prefix
//! comparison: no syscall, no allocation, no lock.

use vrift_format::pathnorm::{domain_rel, normalize_into};
use vrift_format::table::Table;
use vrift_format::{Kind, RecordHeader, RecordRef, DIR_CREATED, DIR_OPAQUE};

use crate::state::{self, PATH_MAX};
use crate::{cwd, sys};

/// What a path names in the view.
pub enum View<'t> {
    /// Outside the domain (or the shim is inactive): call libc unchanged.
    Pass,
    /// On disk in the domain. `rewritten`: the path went through a rift
    /// symlink, so libc must be called with the absolute path in the buffer.
    Disk { rewritten: bool },
    /// A rift file or symlink.
    Entry {
        header: RecordHeader,
        target: &'t [u8],
    },
    /// Hidden or absent in the view: fail with this errno.
    Error(i32),
}

/// A resolution's scratch space: the absolute path, NUL-terminated.
pub struct PathBuf {
    pub buf: [u8; PATH_MAX + 1],
    pub len: usize,
    /// Offset of the rift-relative part in `buf` (valid for Disk/Entry).
    pub rel_start: usize,
}

impl Default for PathBuf {
    fn default() -> PathBuf {
        PathBuf::new()
    }
}

impl PathBuf {
    pub fn new() -> PathBuf {
        PathBuf {
            buf: [0; PATH_MAX + 1],
            len: 0,
            rel_start: 0,
        }
    }

    pub fn abs(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn rel(&self) -> &[u8] {
        &self.buf[self.rel_start.min(self.len)..self.len]
    }

    pub fn c_ptr(&mut self) -> *const libc::c_char {
        self.buf[self.len] = 0;
        self.buf.as_ptr() as *const libc::c_char
    }
}

const STATE_DIR: &[u8] = b".vrift";
const MAX_SYMLINKS: usize = 40;

fn is_state_path(rel: &[u8]) -> bool {
    rel.starts_with(STATE_DIR) && matches!(rel.get(STATE_DIR.len()), None | Some(b'/'))
}

/// Makes `path` absolute into `out.buf`; false if the base is unknown.
fn absolutize(dirfd: i32, path: &[u8], out: &mut PathBuf) -> bool {
    let mut base = [0u8; PATH_MAX];
    let base_len = if path.first() == Some(&b'/') {
        base[0] = b'/';
        1
    } else if dirfd == libc::AT_FDCWD {
        match cwd::read(&mut base) {
            0 => match sys::getcwd_raw(&mut base) {
                Some(n) => n,
                None => return false,
            },
            n => n,
        }
    } else {
        match sys::fd_path(dirfd, &mut base) {
            Some(n) if base[0] == b'/' => n,
            _ => return false,
        }
    };
    match normalize_into(&base[..base_len], path, &mut out.buf[..PATH_MAX]) {
        Some(n) => {
            out.len = n;
            true
        }
        None => false,
    }
}

/// Resolves `path` (relative to `dirfd`) in the view. `follow`: whether a
/// final symlink is followed (stat vs lstat).
pub fn resolve<'t>(
    dirfd: i32,
    path: &[u8],
    follow: bool,
    out: &mut PathBuf,
) -> (View<'t>, Option<Table<'t>>) {
    if !state::ready() {
        return (View::Pass, None);
    }
    let Some(table) = state::table() else {
        return (View::Pass, None);
    };
    if !absolutize(dirfd, path, out) {
        return (View::Pass, None);
    }
    let root = state::ROOT.get();
    let mut rewritten = false;
    for _ in 0..MAX_SYMLINKS {
        let Some(rel) = domain_rel(out.abs(), root) else {
            return (
                if rewritten {
                    View::Disk { rewritten }
                } else {
                    View::Pass
                },
                None,
            );
        };
        if is_state_path(rel) {
            return (
                if rewritten {
                    View::Disk { rewritten }
                } else {
                    View::Pass
                },
                None,
            );
        }
        let (rel_len, rel_empty) = (rel.len(), rel.is_empty());
        out.rel_start = out.len - rel_len;
        if rel_empty {
            return (View::Disk { rewritten }, Some(table));
        }
        match walk(&table, out, follow) {
            Step::Done(v) => {
                let v = match v {
                    View::Disk { .. } => View::Disk { rewritten },
                    other => other,
                };
                return (v, Some(table));
            }
            Step::Restart => rewritten = true,
        }
    }
    (View::Error(libc::ELOOP), Some(table))
}

enum Step<'t> {
    Done(View<'t>),
    /// A symlink was substituted into `out`; resolve again.
    Restart,
}

fn walk<'t>(table: &Table<'t>, out: &mut PathBuf, follow: bool) -> Step<'t> {
    let rel_start = out.rel_start;
    let rel_len = out.len - rel_start;
    let mut opaque_below = false;
    if table.has_symlinks() || table.may_hide() {
        // Every proper prefix, at component boundaries.
        let mut i = 0;
        while i < rel_len {
            if out.buf[rel_start + i] != b'/' {
                i += 1;
                continue;
            }
            let prefix = &out.buf[rel_start..rel_start + i];
            match table.lookup(prefix) {
                Some(RecordRef::Whiteout) => return Step::Done(View::Error(libc::ENOENT)),
                Some(RecordRef::Entry { header, target }) => {
                    if header.kind == Kind::Symlink {
                        return substitute(out, rel_start + i, target, rel_start + i);
                    }
                    return Step::Done(View::Error(libc::ENOTDIR));
                }
                None => {}
            }
            if let Some(d) = table.dir(prefix) {
                if d.flags & DIR_OPAQUE as u64 != 0 {
                    opaque_below = true;
                } else if d.flags & DIR_CREATED as u64 != 0 {
                    // A directory created in the rift under an opaque one is visible.
                }
            }
            i += 1;
        }
    }
    let rel = &out.buf[rel_start..out.len];
    match table.lookup(rel) {
        Some(RecordRef::Whiteout) => Step::Done(View::Error(libc::ENOENT)),
        Some(RecordRef::Entry { header, target }) => {
            if follow && header.kind == Kind::Symlink {
                let end = out.len;
                substitute(out, end, target, end)
            } else {
                Step::Done(View::Entry { header, target })
            }
        }
        None => {
            if opaque_below
                && table
                    .dir(rel)
                    .is_none_or(|d| d.flags & DIR_CREATED as u64 == 0)
            {
                Step::Done(View::Error(libc::ENOENT))
            } else {
                Step::Done(View::Disk { rewritten: false })
            }
        }
    }
}

/// Replaces `out.buf[..link_end]` (a symlink at that path) by its target,
/// keeping the rest of the path after `rest_start`.
fn substitute<'t>(
    out: &mut PathBuf,
    link_end: usize,
    target: &[u8],
    rest_start: usize,
) -> Step<'t> {
    let mut rest = [0u8; PATH_MAX];
    let rest_len = out.len - rest_start;
    rest[..rest_len].copy_from_slice(&out.buf[rest_start..out.len]);
    // The link's directory.
    let mut dir_end = link_end;
    while dir_end > 0 && out.buf[dir_end - 1] != b'/' {
        dir_end -= 1;
    }
    let mut base = [0u8; PATH_MAX];
    let base_len = dir_end.max(1);
    base[..base_len].copy_from_slice(&out.buf[..base_len]);
    let mut joined = [0u8; PATH_MAX];
    let Some(tlen) = ({
        let t_end = target.len();
        if t_end + rest_len > PATH_MAX {
            None
        } else {
            joined[..t_end].copy_from_slice(target);
            joined[t_end..t_end + rest_len].copy_from_slice(&rest[..rest_len]);
            Some(t_end + rest_len)
        }
    }) else {
        return Step::Done(View::Error(libc::ENAMETOOLONG));
    };
    match normalize_into(&base[..base_len], &joined[..tlen], &mut out.buf[..PATH_MAX]) {
        Some(n) => {
            out.len = n;
            Step::Restart
        }
        None => Step::Done(View::Error(libc::ENAMETOOLONG)),
    }
}

/// Builds the blob path of `hash` into `out`; returns its length.
pub fn blob_path(hash: &vrift_format::ContentHash, out: &mut [u8; PATH_MAX + 1]) -> Option<usize> {
    let table = state::table()?;
    let cas = table.cas_root();
    let mut rel = [0u8; vrift_format::BLOB_REL_PATH_LEN];
    let n = hash.write_blob_rel_path(&mut rel);
    let total = cas.len() + 1 + n;
    if total > PATH_MAX {
        return None;
    }
    out[..cas.len()].copy_from_slice(cas);
    out[cas.len()] = b'/';
    out[cas.len() + 1..total].copy_from_slice(&rel[..n]);
    out[total] = 0;
    Some(total)
}
