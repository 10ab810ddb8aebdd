//! Inputs the fuzz targets (`fuzz/`) found crashing, replayed on every
//! test run: each is refused or read without a fault.

use vrift_format::table::Table;
use vrift_format::view;

/// What `fuzz/fuzz_targets/table.rs` does with its input.
fn read_table(data: &[u8]) {
    let mut words = vec![0u64; data.len().div_ceil(8)];
    // SAFETY: `words` holds at least data.len() bytes.
    let bytes = unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), words.as_mut_ptr() as *mut u8, data.len());
        std::slice::from_raw_parts(words.as_ptr() as *const u8, data.len())
    };
    let Ok(t) = Table::new(bytes) else { return };
    let _ = (t.root(), t.cas_root(), t.socket_path(), t.exe_path());
    for rel in [&b""[..], b"a", b"a/b", b"a/b/c", b"src/main.c", b".vrift"] {
        let _ = t.lookup(rel);
        let _ = view::lookup(&t, rel);
        if let Some(d) = t.dir(rel) {
            for c in d.children().take(10_000) {
                let _ = c;
            }
        }
    }
}

#[test]
fn a_table_whose_bloom_filter_is_misaligned_is_refused() {
    let data = include_bytes!("data/table-misaligned-bloom");
    let mut words = vec![0u64; data.len().div_ceil(8)];
    // SAFETY: as above.
    let bytes = unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), words.as_mut_ptr() as *mut u8, data.len());
        std::slice::from_raw_parts(words.as_ptr() as *const u8, data.len())
    };
    assert!(Table::new(bytes).is_err());
    read_table(data);
}
