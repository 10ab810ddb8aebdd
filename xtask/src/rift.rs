//! Filling a project's rift layer through the library, for benchmarks that
//! need a large rift quickly (a real build writes it through the shim),
//! holding the same locks as any vrift command (the store's gc lock shared,
//! then the project lock).

use std::path::Path;

use anyhow::Result;
use vrift::cas::Cas;
use vrift::lock::LockMode;
use vrift::manifest::{Entry, Layer, Manifest, Record};
use vrift::project::Project;
use vrift_format::FLAG_PHANTOM;

/// Writes one rift entry per phantom entry, at the same path with the same
/// content, mode and inode: what the rift holds after a build inside the
/// inception rewrote every ingested file identically. Returns the count.
pub fn mirror_phantom(root: &Path, store: &Path) -> Result<u64> {
    let project = Project::find(root)?;
    let cas = Cas::open(store)?;
    let _gc = cas.gc_lock(LockMode::Shared)?;
    let _lock = project.lock()?;
    let manifest = Manifest::open(&project.manifest_path(), false)?;
    let txn = manifest.write()?;
    let mut count = 0;
    txn.for_each(Layer::Phantom, b"", |path, rec| {
        let rec = match rec {
            // The rift's own entries were not moved from the disk.
            Record::Entry(e) => Record::Entry(Entry {
                flags: e.flags & !FLAG_PHANTOM,
                ..e
            }),
            Record::Whiteout => Record::Whiteout,
        };
        count += 1;
        txn.put(Layer::Rift, path, &rec)
    })?;
    txn.commit()?;
    Ok(count)
}
