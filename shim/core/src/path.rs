//! Path pieces the shim builds and compares without asking the kernel.

use crate::PATH_MAX;

/// `p` without trailing slashes (`/` stays `/`).
#[inline]
pub fn trim_trailing_slash(p: &[u8]) -> &[u8] {
    let mut p = p;
    while p.len() > 1 && p.last() == Some(&b'/') {
        p = &p[..p.len() - 1];
    }
    p
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
}
