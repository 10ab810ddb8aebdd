//! Path pieces the shim builds and compares without asking the kernel.

use core::mem::MaybeUninit;

use vrift_format::pathnorm::append_components;

use crate::PATH_MAX;

/// A resolution's scratch space: an absolute path of up to PATH_MAX bytes,
/// NUL-terminated on demand. Left uninitialized (only the written prefix is
/// ever read): a 4 KiB memset per call would cost more than the whole
/// lookup.
///
/// Invariant: `buf[..len]` is initialized and `len <= PATH_MAX`.
pub struct PathBuf {
    buf: [MaybeUninit<u8>; PATH_MAX + 1],
    len: usize,
    /// Set when the path is in the domain and the table knew nothing of it
    /// (so libc's ENOENT may still hide a rift entry behind a physical
    /// symlink: see `resolve::physical_fallback` in the shim).
    pub in_domain_miss: bool,
    /// Offset of the rift-relative part (valid for Disk/Entry).
    pub rel_start: usize,
    /// The path named a blob of the store through an fd the shim did not
    /// open (`/proc/self/fd/N`): nothing may change it.
    pub in_store: bool,
    /// The path was replaced by what a magic link leads to, and libc must
    /// be given the replacement (see `resolve::shell_control` in the shim).
    pub magic_rewrite: bool,
    /// Set by the caller before resolving: the call checks permissions
    /// with the real ids (`access` without `AT_EACCESS`), not the
    /// effective ones (see `resolve::search_denied` in the shim).
    pub real_ids: bool,
    /// The walk to the path fails, with this errno (0: it does not): a
    /// rift file named as a directory (`file/`, `file/.`: ENOTDIR), or a
    /// `name/..` on the way that is not a directory. No call may take it
    /// for "absent, so create it".
    pub walk_error: i32,
}

impl Default for PathBuf {
    fn default() -> PathBuf {
        PathBuf::new()
    }
}

impl PathBuf {
    #[inline]
    pub fn new() -> PathBuf {
        PathBuf {
            buf: [const { MaybeUninit::uninit() }; PATH_MAX + 1],
            len: 0,
            in_domain_miss: false,
            rel_start: 0,
            in_store: false,
            magic_rewrite: false,
            real_ids: false,
            walk_error: 0,
        }
    }

    /// The buffer, for a writer of raw memory (PATH_MAX + 1 bytes); then
    /// [`set_len`](Self::set_len).
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr() as *mut u8
    }

    /// The path written so far.
    #[inline]
    pub fn abs(&self) -> &[u8] {
        // SAFETY: buf[..len] is always initialized (the invariant).
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr() as *const u8, self.len) }
    }

    /// The rift-relative part (from [`rel_start`](Self::rel_start)).
    #[inline]
    pub fn rel(&self) -> &[u8] {
        &self.abs()[self.rel_start.min(self.len)..]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the length after a write through [`as_mut_ptr`](Self::as_mut_ptr).
    ///
    /// # Safety
    /// `n <= PATH_MAX` and the first `n` bytes of the buffer are written.
    #[inline]
    pub unsafe fn set_len(&mut self, n: usize) {
        self.len = n;
    }

    /// Keeps the first `n` bytes (all of them if there are fewer).
    #[inline]
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Replaces the content with `bytes`; false (unchanged) if too long.
    #[inline]
    pub fn set(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > PATH_MAX {
            return false;
        }
        // SAFETY: within capacity.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.as_mut_ptr(), bytes.len()) };
        self.len = bytes.len();
        true
    }

    /// Replaces the content with the concatenation of `parts`; false
    /// (unchanged) if too long.
    #[inline]
    pub fn set_parts(&mut self, parts: &[&[u8]]) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > PATH_MAX {
            return false;
        }
        let mut n = 0;
        for p in parts {
            // SAFETY: n + p.len() <= total <= capacity.
            unsafe {
                core::ptr::copy_nonoverlapping(p.as_ptr(), self.as_mut_ptr().add(n), p.len())
            };
            n += p.len();
        }
        self.len = n;
        true
    }

    /// Replaces the symlink at `self[..link_end]` by its `target` (relative
    /// to the link's directory, or from `/` when absolute), keeping the rest
    /// of the path from `rest_start` on, normalized; false if the result
    /// would not fit (the path is then unspecified). Never inlined: its
    /// scratch buffer would otherwise add a stack page to every caller's
    /// frame (a resolution runs on every path call).
    #[inline(never)]
    pub fn substitute_link(&mut self, link_end: usize, target: &[u8], rest_start: usize) -> bool {
        let mut rest = [const { MaybeUninit::<u8>::uninit() }; PATH_MAX];
        let rest_start = rest_start.min(self.len);
        let rest_len = self.len - rest_start;
        // SAFETY: copying the initialized tail of the path into our buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.abs().as_ptr().add(rest_start),
                rest.as_mut_ptr() as *mut u8,
                rest_len,
            )
        };
        // SAFETY: rest[..rest_len] was just written.
        let rest = unsafe { core::slice::from_raw_parts(rest.as_ptr() as *const u8, rest_len) };
        let abs = self.abs();
        let mut dir_end = link_end.min(abs.len());
        while dir_end > 0 && abs[dir_end - 1] != b'/' {
            dir_end -= 1;
        }
        self.truncate(if target.first() == Some(&b'/') {
            1
        } else {
            dir_end.max(1)
        });
        self.append(target) && self.append(rest)
    }

    /// The path, NUL-terminated.
    #[inline]
    pub fn c_ptr(&mut self) -> *const libc::c_char {
        self.buf[self.len] = MaybeUninit::new(0);
        self.buf.as_ptr() as *const libc::c_char
    }

    /// Appends (normalizing: `//` and `.` collapse, `..` pops a component,
    /// never above `/`) `path` onto the absolute path in the buffer; false
    /// if the result would not fit.
    #[inline]
    pub fn append(&mut self, path: &[u8]) -> bool {
        // SAFETY: buf[..len] is initialized, capacity is PATH_MAX.
        match unsafe { append_components(self.as_mut_ptr(), PATH_MAX, self.len, path) } {
            Some(n) => {
                self.len = n;
                true
            }
            None => false,
        }
    }
}

/// Whether `path` can only name a directory, as the kernel reads its last
/// component: it ends with a slash (`file/`), or with `.` or `..`
/// (`file/.`). Such a last component is followed even by lstat, and a
/// file there is ENOTDIR — a normalized path no longer says so.
pub fn names_a_directory(path: &[u8]) -> bool {
    match path.last() {
        Some(b'/') => path.iter().any(|&c| c != b'/'),
        Some(b'.') => {
            let start = path.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
            matches!(&path[start..], b"." | b"..")
        }
        _ => false,
    }
}

/// The next `..` of `path` (from byte `from` on) that follows a name
/// (`dir/name/..`, not a leading `../` or `../..`): the length of the
/// prefix that ends with that name (ask again from there for the next
/// one). The kernel walks the name before it
/// goes up, so `dir/missing/../f` is ENOENT and `file/../f` ENOTDIR where
/// a lexical reading finds `dir/f`. None for the paths of almost every
/// call (no such `..`).
pub fn next_inner_dotdot(path: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    // Where the previous component ended, if it was a name.
    let mut name_end: Option<usize> = None;
    while pos < path.len() {
        while pos < path.len() && path[pos] == b'/' {
            pos += 1;
        }
        let start = pos;
        while pos < path.len() && path[pos] != b'/' {
            pos += 1;
        }
        match &path[start..pos] {
            b"" | b"." => {}
            b".." => {
                if let Some(end) = name_end {
                    return Some(end);
                }
            }
            _ => name_end = Some(pos),
        }
    }
    None
}

/// `.` or `..` as `path`'s last component (trailing slashes aside): 1 or
/// 2, else 0. The kernel refuses to rename such a name (EBUSY) or rmdir
/// it (EINVAL, ENOTEMPTY).
pub fn last_dots(path: &[u8]) -> usize {
    let p = trim_trailing_slash(path);
    let start = p.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    match &p[start..] {
        b"." => 1,
        b".." => 2,
        _ => 0,
    }
}

/// Whether `path` ends with a slash after a name (`x/`): open with
/// O_CREAT there is EISDIR, whether or not `x` exists.
pub fn ends_with_slash(path: &[u8]) -> bool {
    path.last() == Some(&b'/') && path.iter().any(|&c| c != b'/')
}

/// `p` without trailing slashes (`/` stays `/`).
#[inline]
pub fn trim_trailing_slash(p: &[u8]) -> &[u8] {
    let mut p = p;
    while p.len() > 1 && p.last() == Some(&b'/') {
        p = &p[..p.len() - 1];
    }
    p
}

/// What a kernel magic link at the start of a path names (see
/// [`proc_link`]).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ProcLink {
    /// `/proc/self/cwd`: the process's working directory.
    Cwd,
    /// `/proc/self/root`: its root (`/`).
    Root,
    /// `/proc/self/fd/N`, `/dev/fd/N`: what fd N is open on.
    Fd(i32),
}

/// `/proc/{self,thread-self,PID}/{cwd,root,fd/N}` (PID = `pid`, this
/// process) and `/dev/fd/N` at the start of `path`: what the link names
/// and where the rest of the path starts. None for anything else (another
/// process, other /proc entries, no fd number) — such a path is read as it
/// is spelt.
pub fn proc_link(path: &[u8], pid: u32) -> Option<(ProcLink, usize)> {
    let component = |from: usize| {
        let tail = &path[from.min(path.len())..];
        let n = tail.iter().position(|&c| c == b'/').unwrap_or(tail.len());
        &tail[..n]
    };
    let fd_at = if path.starts_with(b"/dev/fd/") {
        8
    } else if path.starts_with(b"/proc/") {
        let who = component(6);
        let me = who == b"self" || who == b"thread-self" || parse_decimal(who) == Some(pid);
        if !me {
            return None;
        }
        let what_at = 6 + who.len() + 1;
        match component(what_at) {
            b"cwd" => return Some((ProcLink::Cwd, what_at + 3)),
            b"root" => return Some((ProcLink::Root, what_at + 4)),
            b"fd" => what_at + 3,
            _ => return None,
        }
    } else {
        return None;
    };
    let digits = component(fd_at);
    let fd = i32::try_from(parse_decimal(digits)?).ok()?;
    Some((ProcLink::Fd(fd), fd_at + digits.len()))
}

/// A decimal number of up to 9 digits (an fd or a pid in a `/proc` path).
#[inline]
pub fn parse_decimal(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    s.iter().try_fold(0u32, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + (c - b'0') as u32)
    })
}

/// Writes `v` in decimal at the start of `out` (which must hold its
/// digits: 20 for any u64); returns how many bytes.
#[inline]
pub fn write_decimal(out: &mut [u8], mut v: u64) -> usize {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = digits[n - 1 - i];
    }
    n
}

/// Writes the concatenation of `parts` and a NUL into `out`; its length
/// (without the NUL), or None if longer than PATH_MAX.
#[inline]
pub fn join_into(parts: &[&[u8]], out: &mut [u8; PATH_MAX + 1]) -> Option<usize> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total > PATH_MAX {
        return None;
    }
    let mut n = 0;
    for part in parts {
        out[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    out[n] = 0;
    Some(n)
}

/// `<cas>/<dir>/<name>`, NUL-terminated, into `out` (see [`join_into`]);
/// None if `name` is not a plain name (empty or with a `/`) or too long.
#[inline]
pub fn named_in_store(
    cas: &[u8],
    dir: &str,
    name: &[u8],
    out: &mut [u8; PATH_MAX + 1],
) -> Option<usize> {
    if name.is_empty() || name.contains(&b'/') {
        return None;
    }
    join_into(&[cas, b"/", dir.as_bytes(), b"/", name], out)
}

/// Whether `abs` lies below `<cas>/staging/`: a staging file of the store
/// (a rift file being written).
#[inline]
pub fn in_staging(cas: &[u8], abs: &[u8]) -> bool {
    abs.strip_prefix(cas)
        .and_then(|r| r.strip_prefix(b"/"))
        .is_some_and(is_staging_rel)
}

/// Whether `abs` lies in the store `cas` but not in its staging area
/// (files being written, which their writers may change): a blob, an
/// executable copy, the store's own state.
#[inline]
pub fn in_store(cas: &[u8], abs: &[u8]) -> bool {
    abs.strip_prefix(cas)
        .and_then(|r| r.strip_prefix(b"/"))
        .is_some_and(|rest| !is_staging_rel(rest))
}

fn is_staging_rel(rest: &[u8]) -> bool {
    let staging = vrift_format::STAGING_DIR.as_bytes();
    rest.starts_with(staging) && rest.get(staging.len()) == Some(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &[u8]) -> PathBuf {
        let mut p = PathBuf::new();
        assert!(p.set(s));
        p
    }

    #[test]
    fn a_trailing_slash_or_dot_names_a_directory() {
        for (path, dir) in [
            (&b"file/"[..], true),
            (b"a/b//", true),
            (b"a/.", true),
            (b"a/..", true),
            (b".", true),
            (b"file", false),
            (b"a/.hidden", false),
            (b"a/x.", false),
            (b"/", false),
            (b"", false),
        ] {
            assert_eq!(names_a_directory(path), dir, "{:?}", path);
        }
        assert_eq!(last_dots(b"d/."), 1);
        assert_eq!(last_dots(b"d/../"), 2);
        assert_eq!(last_dots(b"d/.x"), 0);
        assert!(ends_with_slash(b"x/"));
        assert!(!ends_with_slash(b"/"));
        assert!(!ends_with_slash(b"x/."));
    }

    #[test]
    fn an_inner_dotdot_is_found_after_a_name() {
        for (path, want) in [
            (&b"dir/missing/../f"[..], Some(11)),
            (b"/p/a/./../x", Some(4)),
            (b"../x", None),
            (b"../../a", None),
            (b"a/b", None),
            (b"a/..x/y", None),
            (b"a/..", Some(1)),
            (b"", None),
        ] {
            assert_eq!(next_inner_dotdot(path, 0), want, "{:?}", path);
        }
        // Each in turn, the next asked from the end of the one before.
        let p = b"a/../b/c/../d";
        assert_eq!(next_inner_dotdot(p, 0), Some(1));
        assert_eq!(next_inner_dotdot(p, 1), Some(8));
        assert_eq!(next_inner_dotdot(p, 8), None);
        assert_eq!(next_inner_dotdot(b"a/b/../../x", 3), None);
    }

    #[test]
    fn append_normalizes_onto_an_absolute_path() {
        for (base, add, want) in [
            (&b"/"[..], &b"a/b"[..], &b"/a/b"[..]),
            (b"/p", b"./src//x.c", b"/p/src/x.c"),
            (b"/p/src", b"../lib/", b"/p/lib"),
            (b"/p", b"../../../..", b"/"),
            (b"/p", b"", b"/p"),
            (b"/", b"..", b"/"),
        ] {
            let mut p = path(base);
            assert!(p.append(add));
            assert_eq!(p.abs(), want, "{:?} + {:?}", base, add);
        }
    }

    #[test]
    fn nothing_longer_than_path_max_is_written() {
        let long = [b'a'; PATH_MAX];
        let mut p = PathBuf::new();
        assert!(p.set(&long));
        assert!(!p.set(&[b'a'; PATH_MAX + 1]));
        assert_eq!(p.len(), PATH_MAX);
        assert!(!p.set_parts(&[&long, b"x"]));
        assert_eq!(p.len(), PATH_MAX, "a refused set leaves the path");
        let mut p = path(b"/");
        assert!(!p.append(&long));
        assert!(p.append(&long[..PATH_MAX - 1]));
        assert_eq!(p.len(), PATH_MAX);
    }

    #[test]
    fn parts_rel_truncate_and_the_nul() {
        let mut p = PathBuf::new();
        assert!(p.is_empty());
        assert!(p.set_parts(&[b"/root", b"/", b"src/a.c"]));
        assert_eq!(p.abs(), b"/root/src/a.c");
        p.rel_start = 6;
        assert_eq!(p.rel(), b"src/a.c");
        p.rel_start = 99;
        assert_eq!(p.rel(), b"");
        // SAFETY: c_ptr wrote a NUL after the path.
        let c = unsafe { core::ffi::CStr::from_ptr(p.c_ptr()) };
        assert_eq!(c.to_bytes(), b"/root/src/a.c");
        p.truncate(5);
        assert_eq!(p.abs(), b"/root");
        p.truncate(100);
        assert_eq!(p.abs(), b"/root");
    }

    #[test]
    fn a_raw_writer_then_set_len() {
        let mut p = PathBuf::new();
        // SAFETY: 4 bytes of a PATH_MAX + 1 buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(b"/tmp".as_ptr(), p.as_mut_ptr(), 4);
            p.set_len(4);
        }
        assert_eq!(p.abs(), b"/tmp");
    }

    #[test]
    fn trailing_slashes_go_but_the_root_stays() {
        assert_eq!(trim_trailing_slash(b"/a/b//"), b"/a/b");
        assert_eq!(trim_trailing_slash(b"/a"), b"/a");
        assert_eq!(trim_trailing_slash(b"///"), b"/");
        assert_eq!(trim_trailing_slash(b""), b"");
    }

    #[test]
    fn decimals_of_up_to_nine_digits() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"123456789"), Some(123_456_789));
        assert_eq!(parse_decimal(b"1234567890"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"12a"), None);
        assert_eq!(parse_decimal(b"-1"), None);
    }

    #[test]
    fn joined_paths_are_nul_terminated_and_bounded() {
        let mut out = [0xffu8; PATH_MAX + 1];
        assert_eq!(join_into(&[b"/cas", b"/", b"x"], &mut out), Some(6));
        assert_eq!(&out[..7], b"/cas/x\0");
        let long = [b'a'; PATH_MAX];
        assert_eq!(join_into(&[&long], &mut out), Some(PATH_MAX));
        assert_eq!(out[PATH_MAX], 0);
        assert_eq!(join_into(&[&long, b"b"], &mut out), None);
    }

    #[test]
    fn store_names_must_be_plain() {
        let mut out = [0u8; PATH_MAX + 1];
        let n = named_in_store(b"/c", "staging", b"f1", &mut out).unwrap();
        assert_eq!(&out[..n], b"/c/staging/f1");
        assert_eq!(named_in_store(b"/c", "staging", b"", &mut out), None);
        assert_eq!(named_in_store(b"/c", "staging", b"a/b", &mut out), None);
    }

    #[test]
    fn staging_files_are_not_the_store() {
        let staging = vrift_format::STAGING_DIR;
        let st = std::format!("/cas/{staging}/x");
        assert!(in_staging(b"/cas", st.as_bytes()));
        assert!(!in_store(b"/cas", st.as_bytes()));
        assert!(in_store(b"/cas", b"/cas/blobs/ab/cd"));
        assert!(!in_staging(b"/cas", b"/cas/blobs/ab/cd"));
        // A sibling that merely starts like the store or the staging area.
        assert!(!in_store(b"/cas", b"/cas2/blobs/x"));
        let near = std::format!("/cas/{staging}x/y");
        assert!(!in_staging(b"/cas", near.as_bytes()));
        assert!(in_store(b"/cas", near.as_bytes()));
        assert!(!in_store(b"/cas", b"/cas"));
    }

    #[test]
    fn a_symlink_is_replaced_by_its_target_and_the_rest_kept() {
        for (start, link_end, target, rest_start, want) in [
            // relative target: from the link's directory
            (
                &b"/p/lib/cur/x.h"[..],
                10usize,
                &b"v2"[..],
                10usize,
                &b"/p/lib/v2/x.h"[..],
            ),
            (b"/p/lib/cur/x.h", 10, b"../inc", 10, b"/p/inc/x.h"),
            // absolute target: from `/`
            (b"/p/lib/cur/x.h", 10, b"/opt/v3/", 10, b"/opt/v3/x.h"),
            // a link at the root's level, and one that is the whole path
            (b"/l/a", 2, b"target", 2, b"/target/a"),
            (b"/p/l", 4, b"t", 4, b"/p/t"),
            // the rest normalized after the target
            (b"/p/l/../q", 4, b"d/e", 4, b"/p/d/q"),
        ] {
            let mut p = path(start);
            assert!(p.substitute_link(link_end, target, rest_start));
            assert_eq!(p.abs(), want, "{:?}", core::str::from_utf8(start));
        }
    }

    #[test]
    fn a_substitution_past_path_max_fails() {
        let long = [b'a'; PATH_MAX - 1];
        let mut p = path(b"/p/l/x");
        assert!(!p.substitute_link(4, &long, 4));
    }

    #[test]
    fn magic_links_are_read_for_this_process_only() {
        let pid = 4242;
        for (spelling, want) in [
            (&b"/proc/self/cwd"[..], Some((ProcLink::Cwd, 14))),
            (b"/proc/self/cwd/src/a.c", Some((ProcLink::Cwd, 14))),
            (b"/proc/thread-self/root/etc", Some((ProcLink::Root, 22))),
            (b"/proc/4242/fd/7/x", Some((ProcLink::Fd(7), 15))),
            (b"/proc/self/fd/12", Some((ProcLink::Fd(12), 16))),
            (b"/dev/fd/3", Some((ProcLink::Fd(3), 9))),
            (b"/dev/fd/3/sub", Some((ProcLink::Fd(3), 9))),
            (b"/proc/1/cwd", None),
            (b"/proc/self/exe", None),
            (b"/proc/self/fd/", None),
            (b"/proc/self/fd/x1", None),
            (b"/dev/fd/99999999999", None),
            (b"/proc/selfish/cwd", None),
            (b"/dev/fdx/3", None),
            (b"/etc/passwd", None),
        ] {
            assert_eq!(
                proc_link(spelling, pid),
                want,
                "{:?}",
                core::str::from_utf8(spelling)
            );
        }
    }

    #[test]
    fn decimals_are_written_most_significant_first() {
        let mut out = [0u8; 20];
        for (v, want) in [
            (0u64, &b"0"[..]),
            (7, b"7"),
            (42, b"42"),
            (u64::MAX, b"18446744073709551615"),
        ] {
            let n = write_decimal(&mut out, v);
            assert_eq!(&out[..n], want);
            assert_eq!(
                parse_decimal(&out[..n]).map(u64::from),
                (n <= 9).then_some(v)
            );
        }
    }
}
