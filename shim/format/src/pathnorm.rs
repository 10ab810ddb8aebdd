//! Lexical path normalization into caller-provided buffers (no allocation):
//! the shim's domain test (DESIGN.md §2) runs on every intercepted call.

/// Appends the components of `path` onto the absolute path already in
/// `out[..len]` (`len >= 1`, `out[0] == b'/'`), normalizing as it goes: `//`
/// and `.` collapse, `..` pops a component (never above `/`). Returns the
/// new length, or `None` if it does not fit in `cap` bytes.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes and `out[..len]` must be
/// initialized. Only bytes below the returned length are written or read.
pub unsafe fn append_components(
    out: *mut u8,
    cap: usize,
    mut len: usize,
    path: &[u8],
) -> Option<usize> {
    // A base that ends in `/` (other than the root) is the same directory.
    while len > 1 && *out.add(len - 1) == b'/' {
        len -= 1;
    }
    // Fast path: a clean relative or absolute path (no `//`, `.` or `..`
    // component, no trailing `/`) is copied as is.
    if is_clean(path) {
        let body = path.strip_prefix(b"/").unwrap_or(path);
        if body.is_empty() {
            return Some(len);
        }
        let sep = usize::from(*out.add(len - 1) != b'/');
        let end = len.checked_add(sep)?.checked_add(body.len())?;
        if end > cap {
            return None;
        }
        if sep == 1 {
            *out.add(len) = b'/';
        }
        core::ptr::copy_nonoverlapping(body.as_ptr(), out.add(len + sep), body.len());
        return Some(end);
    }
    for comp in path.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                while len > 1 && *out.add(len - 1) != b'/' {
                    len -= 1;
                }
                // Drop the separator too, except the root's.
                if len > 1 {
                    len -= 1;
                }
            }
            name => {
                let sep = usize::from(*out.add(len - 1) != b'/');
                let end = len.checked_add(sep)?.checked_add(name.len())?;
                if end > cap {
                    return None;
                }
                if sep == 1 {
                    *out.add(len) = b'/';
                }
                core::ptr::copy_nonoverlapping(name.as_ptr(), out.add(len + sep), name.len());
                len = end;
            }
        }
    }
    Some(len)
}

/// Whether `path` needs no normalization beyond dropping a leading `/`:
/// no empty, `.` or `..` component and no trailing `/`. Only the bytes that
/// start a component are examined closely.
#[inline]
fn is_clean(path: &[u8]) -> bool {
    let n = path.len();
    if n > 1 && path[n - 1] == b'/' {
        return false;
    }
    let mut i = usize::from(path.first() == Some(&b'/'));
    while i < n {
        // `i` starts a component.
        match path[i] {
            b'/' => return false, // `//`
            b'.' => {
                let next = path.get(i + 1).copied();
                if matches!(next, None | Some(b'/')) {
                    return false; // `.`
                }
                if next == Some(b'.') && matches!(path.get(i + 2), None | Some(b'/')) {
                    return false; // `..`
                }
            }
            _ => {}
        }
        match path[i..].iter().position(|&c| c == b'/') {
            Some(p) => i += p + 1,
            None => break,
        }
    }
    true
}

/// Joins `path` onto the absolute directory `base` (ignored when `path` is
/// absolute) and normalizes the result into `out` (see [`append_components`]).
pub fn normalize_into(base: &[u8], path: &[u8], out: &mut [u8]) -> Option<usize> {
    *out.first_mut()? = b'/';
    let cap = out.len();
    let ptr = out.as_mut_ptr();
    // SAFETY: `out` is an initialized slice of `cap` bytes; out[0] is written.
    unsafe {
        let len = if path.first() == Some(&b'/') {
            1
        } else {
            append_components(ptr, cap, 1, base)?
        };
        append_components(ptr, cap, len, path)
    }
}

/// If the normalized absolute `abs` is `root` or below it, the rift path
/// (`b""` for the root itself).
#[inline]
pub fn domain_rel<'a>(abs: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    let rest = abs.strip_prefix(root)?;
    match rest.first() {
        None => Some(b""),
        Some(b'/') => Some(&rest[1..]),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(base: &str, path: &str, want: &str) {
        let mut out = [0u8; 256];
        let n = normalize_into(base.as_bytes(), path.as_bytes(), &mut out).unwrap();
        assert_eq!(&out[..n], want.as_bytes(), "{base} + {path}");
    }

    #[test]
    fn normalizes() {
        check("/", "/a//b/./c/", "/a/b/c");
        check("/x/y", "z", "/x/y/z");
        check("/x/y", "../z", "/x/z");
        check("/x", "../../..", "/");
        check("/", "/..", "/");
        check("/p", ".", "/p");
        check("/p/q", "..", "/p");
        check("/", "a/../../b", "/b");
    }

    #[test]
    fn clean_paths_take_the_fast_path_with_the_same_result() {
        for (base, path, want) in [
            ("/x", "a/b.c/.d/..e", "/x/a/b.c/.d/..e"),
            ("/x", "/abs/p", "/abs/p"),
            ("/", "a", "/a"),
            ("/x", "a/./b", "/x/a/b"),
            ("/x", "./a", "/x/a"),
            ("/x", "a/", "/x/a"),
            ("/x", "/", "/"),
            ("/x", "", "/x"),
            ("/x/y/", "../z", "/x/z"),
            ("/x/y/", "z", "/x/y/z"),
        ] {
            check(base, path, want);
        }
        assert!(is_clean(b"a/b.c/.d"));
        assert!(!is_clean(b"a//b"));
        assert!(!is_clean(b"a/../b"));
        assert!(!is_clean(b"./a"));
        assert!(!is_clean(b"a/."));
    }

    #[test]
    fn too_long_is_refused() {
        let mut out = [0u8; 4];
        assert_eq!(normalize_into(b"/", b"/abcdef", &mut out), None);
    }

    #[test]
    fn domain_test() {
        assert_eq!(domain_rel(b"/p", b"/p"), Some(&b""[..]));
        assert_eq!(domain_rel(b"/p/a/b", b"/p"), Some(&b"a/b"[..]));
        assert_eq!(domain_rel(b"/pp/a", b"/p"), None);
        assert_eq!(domain_rel(b"/q", b"/p"), None);
    }
}
