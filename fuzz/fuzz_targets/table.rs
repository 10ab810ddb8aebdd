//! A doctored `.vrift/view.table`: the library maps it in every process of
//! the view. Any bytes are refused or read without a fault.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vrift_format::table::Table;
use vrift_format::view;

fuzz_target!(|data: &[u8]| {
    // The table is mapped page-aligned: copy into 8-aligned memory.
    let mut words = vec![0u64; data.len().div_ceil(8)];
    // SAFETY: `words` holds at least data.len() bytes.
    let bytes = unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), words.as_mut_ptr() as *mut u8, data.len());
        std::slice::from_raw_parts(words.as_ptr() as *const u8, data.len())
    };
    let Ok(t) = Table::new(bytes) else { return };
    let _ = (t.root(), t.cas_root(), t.socket_path(), t.exe_path(), t.root_ids());
    let _ = (t.generation(), t.entry_count(), t.may_hide(), t.has_symlinks(), t.superseded());
    for i in 0..t.slot_count().min(4096) {
        if let Some((key, _)) = t.slot(i) {
            let key = key.to_vec();
            let _ = view::lookup(&t, &key);
            let _ = view::missing_errno(&t, &key);
        }
    }
    for rel in [&b""[..], b"a", b"a/b", b"a/b/c", b"src/main.c", b".vrift"] {
        let _ = t.lookup(rel);
        let _ = view::lookup(&t, rel);
        let _ = view::hides_disk_names(&t, rel);
        if let Some(d) = t.dir(rel) {
            let _ = d.is_empty();
            for c in d.children().take(10_000) {
                let _ = c;
            }
            for c in d.child_slots().take(10_000) {
                let _ = c;
            }
        }
    }
});
