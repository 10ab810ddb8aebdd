//! Lexical path normalization into caller-provided buffers (no allocation):
//! the shim's domain test (DESIGN.md §2) runs on every intercepted call.

/// Joins `path` onto the absolute directory `base` (ignored when `path` is
/// absolute) and normalizes the result into `out`: `//` and `.` collapse,
/// `..` pops a component (never above `/`). Returns the length written, or
/// `None` if it does not fit.
pub fn normalize_into(base: &[u8], path: &[u8], out: &mut [u8]) -> Option<usize> {
    let push_components = |src: &[u8], out: &mut [u8], len: &mut usize| -> Option<()> {
        for comp in src.split(|&c| c == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    while *len > 0 && out[*len - 1] != b'/' {
                        *len -= 1;
                    }
                    // Drop the separator too, except the root's.
                    if *len > 1 {
                        *len -= 1;
                    } else {
                        *len = 1.min(*len);
                    }
                }
                name => {
                    if *len == 0 || out[*len - 1] != b'/' {
                        *out.get_mut(*len)? = b'/';
                        *len += 1;
                    }
                    let end = len.checked_add(name.len())?;
                    out.get_mut(*len..end)?.copy_from_slice(name);
                    *len = end;
                }
            }
        }
        Some(())
    };
    *out.get_mut(0)? = b'/';
    let mut len = 1;
    if path.first() != Some(&b'/') {
        push_components(base, out, &mut len)?;
    }
    push_components(path, out, &mut len)?;
    Some(len)
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
