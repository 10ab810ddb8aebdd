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
    // SAFETY: the caller's contract (`# Safety`): every access below stays in
    // `out[..cap]`, reading only what was written.
    unsafe {
        // A base that ends in `/` (other than the root) is the same directory.
        while len > 1 && *out.add(len - 1) == b'/' {
            len -= 1;
        }
        // Fast path: a clean relative or absolute path (no `//`, no component
        // starting with `.`, no trailing `/`) is copied as is, checked 8 bytes
        // at a time while it is copied. Anything else (even a harmless `.bin`)
        // takes the component walk below, which gives the same result.
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
        if copy_clean(out.add(len + sep), body) {
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
}

const SLASHES: u64 = 0x2f2f_2f2f_2f2f_2f2f;
const ONES: u64 = 0x0101_0101_0101_0101;

/// 0x80 in each byte of `x` that is zero (exact).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !((x & LO7).wrapping_add(LO7) | x | LO7)
}

/// Copies `body` (a path without its leading `/`) to `dst` and tells
/// whether it needs no normalization: it does not start with `/` or `.`,
/// has no `/` followed by `/` or `.`, and does not end in `/`. Conservative
/// (`a/.b` is reported unclean). Checks 8 bytes per step: the lanes of a
/// word holding `/` against the lanes of the word one byte further holding
/// `/` or `.`. `dst[..body.len()]` is written whatever the answer.
///
/// # Safety
/// `dst` must be valid for writes of `body.len()` bytes and not overlap it.
#[inline]
unsafe fn copy_clean(dst: *mut u8, body: &[u8]) -> bool {
    // SAFETY: the caller's contract (`# Safety`): writes stay in
    // `dst[..body.len()]`, reads in `body`.
    unsafe {
        let n = body.len();
        let src = body.as_ptr();
        if n == 0 || matches!(body[0], b'/' | b'.') || body[n - 1] == b'/' {
            core::ptr::copy_nonoverlapping(src, dst, n);
            return false;
        }
        let mut bad = 0u64;
        let mut i = 0;
        // x86_64 always has SSE2: 16 bytes per step, the same test as below.
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{
                __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
                _mm_or_si128, _mm_set1_epi8, _mm_storeu_si128,
            };
            let slash = _mm_set1_epi8(b'/' as i8);
            let one = _mm_set1_epi8(1);
            while i + 17 <= n {
                let w = _mm_loadu_si128(src.add(i) as *const __m128i);
                let next = _mm_loadu_si128(src.add(i + 1) as *const __m128i);
                _mm_storeu_si128(dst.add(i) as *mut __m128i, w);
                let hit = _mm_and_si128(
                    _mm_cmpeq_epi8(w, slash),
                    _mm_cmpeq_epi8(_mm_or_si128(next, one), slash),
                );
                bad |= _mm_movemask_epi8(hit) as u64;
                i += 16;
            }
        }
        // Bytes i..i+8 and, one further, i+1..i+9: both loads stay in `body`.
        while i + 9 <= n {
            let w = (src.add(i) as *const u64).read_unaligned();
            let next = (src.add(i + 1) as *const u64).read_unaligned();
            (dst.add(i) as *mut u64).write_unaligned(w);
            // `.` (0x2e) and `/` (0x2f) differ in the low bit only: a lane is
            // zero iff `w` holds `/` and `next` holds `/` or `.`.
            bad |= zero_bytes((w ^ SLASHES) | ((next | ONES) ^ SLASHES));
            i += 8;
        }
        // The last 1..=8 bytes (the final one is not `/`, checked above).
        while i < n {
            let c = *src.add(i);
            *dst.add(i) = c;
            if c == b'/' && matches!(body.get(i + 1), Some(b'/' | b'.')) {
                bad = 1;
            }
            i += 1;
        }
        bad == 0
    }
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
        let clean = |p: &[u8]| {
            let mut dst = [0u8; 128];
            // SAFETY: `dst` is larger than every path tested.
            let ok = unsafe { copy_clean(dst.as_mut_ptr(), p) };
            assert_eq!(&dst[..p.len()], p);
            ok
        };
        assert!(clean(b"a/b.c/d.e"));
        assert!(clean(
            b"tmp/rfx/vrift-bench-shim-KdZY3I/project/node_modules/@b/package.json"
        ));
        for bad in [
            &b"a//b"[..],
            b"a/../b",
            b"./a",
            b"a/.",
            b"a/",
            b"a/.b",
            b"/a",
            b"abcdefgh/.ijklmnop",
            b"abcdefg/.hijklmnop",
            b"abcdefghijklmno//p",
            b"abcdefghijklmnop/",
        ] {
            assert!(!clean(bad), "{bad:?}");
        }
        // Every position of a bad pair is seen, in the words and the tail.
        for at in 1..30 {
            let mut p = [b'x'; 32];
            p[at] = b'/';
            p[at + 1] = b'.';
            assert!(!clean(&p), "at {at}");
            p[at + 1] = b'/';
            assert!(!clean(&p), "at {at}");
            p[at + 1] = b'y';
            assert!(clean(&p), "at {at}");
        }
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
