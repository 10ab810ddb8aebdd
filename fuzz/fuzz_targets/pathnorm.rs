//! The library's lexical normalization, run on every intercepted path:
//! never writes past its buffer, and what it returns is normal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vrift_format::pathnorm::{domain_rel, normalize_into};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cap = data[0] as usize;
    let split = (data[1] as usize).min(data.len() - 2);
    let (base, path) = data[2..].split_at(split);
    let mut base_abs = vec![b'/'];
    base_abs.extend_from_slice(base);
    // Exactly `cap` bytes, so ASan sees any write past the end.
    let mut out = vec![0u8; cap];
    if let Some(n) = normalize_into(&base_abs, path, &mut out) {
        let p = &out[..n];
        assert!(n <= cap && p[0] == b'/');
        assert!(n == 1 || p[n - 1] != b'/', "{p:?}");
        for comp in p[1..].split(|&c| c == b'/') {
            assert!(n == 1 || !matches!(comp, b"" | b"." | b".."), "{p:?}");
        }
        let _ = domain_rel(p, b"/a/b");
    }
});
