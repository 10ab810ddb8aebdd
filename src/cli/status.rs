//! `vrift status`.

use std::collections::HashMap;

use anyhow::Result;
use serde_json::json;
use vrift_format::ContentHash;

use super::output::utc;
use super::{current_project, Outcome};
use crate::manifest::{Layer, Record};
use crate::{trust, ui};

#[derive(Default)]
struct LayerStats {
    entries: u64,
    files: u64,
    bytes: u64,
}

pub fn status(json: bool) -> Result<Outcome> {
    let project = current_project()?;
    let (_lock, cas, manifest) = project.open_exclusive()?.into_parts();
    let txn = manifest.read()?;

    // Unique content referenced by the live layers, for the dedup ratio.
    let mut unique: HashMap<ContentHash, u64> = HashMap::new();
    let mut stats = [LayerStats::default(), LayerStats::default()];
    for (i, layer) in [Layer::Rift, Layer::Phantom].into_iter().enumerate() {
        txn.for_each(layer, b"", |_, rec| {
            stats[i].entries += 1;
            if let Record::Entry(e) = &rec {
                if let Some(h) = rec.blob() {
                    stats[i].files += 1;
                    stats[i].bytes += e.size;
                    unique.insert(h, e.size);
                }
            }
            Ok(())
        })?;
    }
    let logical = stats[0].bytes + stats[1].bytes;
    let unique_bytes: u64 = unique.values().sum();
    let ratio = if unique_bytes == 0 {
        1.0
    } else {
        logical as f64 / unique_bytes as f64
    };
    let (blobs, store_bytes) = cas
        .list_blobs()?
        .iter()
        .fold((0u64, 0u64), |(n, b), (_, p)| {
            (
                n + 1,
                b + std::fs::symlink_metadata(p).map(|m| m.len()).unwrap_or(0),
            )
        });
    let snapshots = txn.snapshots()?;
    let pending = txn.pending()?.len();
    let trust = match trust::check(project.root(), &project.config_path())? {
        trust::Trust::Trusted => "trusted",
        trust::Trust::ConfigChanged => "config changed since trusted (run `vrift allow`)",
        trust::Trust::Unknown => "not trusted (run `vrift allow`)",
    };

    if json {
        let v = json!({
            "project": project.root().to_string_lossy(),
            "manifest": project.manifest_path().to_string_lossy(),
            "store": { "path": cas.root().to_string_lossy(), "blobs": blobs, "bytes": store_bytes },
            "rift": { "entries": stats[0].entries, "files": stats[0].files, "bytes": stats[0].bytes },
            "phantom": { "entries": stats[1].entries, "files": stats[1].files, "bytes": stats[1].bytes },
            "unique_blobs": unique.len(),
            "unique_bytes": unique_bytes,
            "dedup_ratio": ratio,
            "snapshots": snapshots,
            "pending_ingest": pending,
            "trust": trust,
            "daemon": serde_json::Value::Null,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Outcome::Ok);
    }
    println!("project    {}", project.root().display());
    println!(
        "store      {} ({blobs} blobs, {})",
        cas.root().display(),
        ui::bytes(store_bytes)
    );
    println!(
        "rift       {} entries, {} in files",
        stats[0].entries,
        ui::bytes(stats[0].bytes)
    );
    println!(
        "phantom    {} entries, {} in files (ingested from disk)",
        stats[1].entries,
        ui::bytes(stats[1].bytes)
    );
    println!(
        "dedup      {ratio:.2}x ({} of files in {} unique blobs, {})",
        ui::bytes(logical),
        unique.len(),
        ui::bytes(unique_bytes)
    );
    if snapshots.is_empty() {
        println!("snapshots  none");
    } else {
        println!("snapshots  {}", snapshots.len());
        for s in &snapshots {
            println!(
                "  {:<22} {:>8} entries {:>10}  {}",
                s.name,
                s.entries,
                ui::bytes(s.bytes),
                utc(s.created as i64)
            );
        }
    }
    if pending > 0 {
        println!(
            "journal    {pending} files of an interrupted ingest (`vrift ingest` finishes them)"
        );
    }
    println!("trust      {trust}");
    Ok(Outcome::Ok)
}
