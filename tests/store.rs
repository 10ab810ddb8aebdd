//! The store and the manifest under damage and concurrency: fsck, gc, corrupt
//! or foreign manifests, locks.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn ingested_project(sb: &Sandbox, name: &str, packages: usize) -> std::path::PathBuf {
    let root = sb.mkdir(name);
    write_node_modules(&root.join("node_modules"), packages, 3, 500);
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["ingest"]);
    root
}

fn some_blob(sb: &Sandbox) -> std::path::PathBuf {
    let fan = fs::read_dir(sb.store().join("blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    fs::read_dir(fan.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn fsck_quarantines_a_corrupt_blob_and_reports_what_referenced_it() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 10);
    assert!(sb.ok(&root, &["fsck"]).contains("no problems found"));

    let blob = some_blob(&sb);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&blob)
        .unwrap()
        .write_all(b"bitrot")
        .unwrap();
    let out = sb.run(&root, &["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let name = blob.file_name().unwrap().to_str().unwrap();
    assert!(stdout.contains(&format!("corrupt blob {name}")), "{stdout}");
    assert!(stdout.contains("references missing blob"), "{stdout}");
    assert!(!blob.exists(), "moved out of blobs/");
    let quarantined: Vec<_> = fs::read_dir(sb.store().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(quarantined.len(), 1);
    // Reading the damaged file now fails clearly instead of returning bad bytes.
    let rel = find_path_with_blob(&sb, &root, name);
    let err = sb.fails(&root, &["cat", &rel]);
    assert!(err.contains("is missing from the store"), "{err}");
}

/// The view path of the (phantom) entry stored as blob `hash`.
fn find_path_with_blob(sb: &Sandbox, root: &std::path::Path, hash: &str) -> String {
    let listing = sb.ok(root, &["diff", "--phantom"]);
    for line in listing.lines() {
        let path = &line[2..];
        let out = sb.run(root, &["cat", path]);
        if !out.status.success() || blake3::hash(&out.stdout).to_hex().as_str() == hash {
            return path.to_string();
        }
    }
    panic!("no entry references {hash}");
}

#[test]
fn fsck_repairs_a_blob_made_writable() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 3);
    let blob = some_blob(&sb);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o755)).unwrap();
    let out = sb.ok(&root, &["fsck"]);
    assert!(out.contains("repaired the mode of 1 blobs"), "{out}");
    assert_eq!(
        fs::metadata(&blob).unwrap().permissions().mode() & 0o777,
        0o400
    );
}

#[test]
fn gc_sweeps_only_what_no_project_or_snapshot_references() {
    let sb = Sandbox::new();
    let a = ingested_project(&sb, "a", 8);
    let b = sb.mkdir("b");
    fs::create_dir_all(b.join("deps")).unwrap();
    fs::write(b.join("deps/only-in-b"), b"unique to b").unwrap();
    fs::write(
        b.join("deps/LICENSE"),
        "MIT License\n\nPermission is hereby granted...\n",
    )
    .unwrap();
    sb.ok(&b, &["init"]);
    sb.ok(&b, &["ingest", "deps"]);
    let before = sb.blob_count();

    let out = sb.ok(&a, &["gc"]);
    assert!(
        out.contains(&format!(
            "{before} in use by 2 projects and their snapshots"
        )),
        "{out}"
    );
    assert!(out.contains("0 unreferenced blobs"), "{out}");

    // Materializing a leaves its blobs unreferenced, except the LICENSE b shares.
    sb.ok(&a, &["materialize"]);
    let out = sb.ok(&a, &["gc"]);
    let unreferenced = before - 2;
    assert!(
        out.contains(&format!("{unreferenced} unreferenced blobs")),
        "{out}"
    );
    assert!(out.contains("; 2 in use by 2 projects"), "{out}");
    assert_eq!(sb.blob_count(), before, "a dry run deletes nothing");
    let out = sb.ok(&a, &["gc", "--delete"]);
    assert!(
        out.contains(&format!("deleted {unreferenced} unreferenced blobs")),
        "{out}"
    );
    assert_eq!(sb.blob_count(), 2);
    assert_eq!(
        sb.ok(&b, &["cat", "deps/LICENSE"]),
        "MIT License\n\nPermission is hereby granted...\n"
    );
    assert!(sb.ok(&b, &["fsck"]).contains("no problems found"));

    // A deleted project is noticed and unregistered.
    fs::remove_dir_all(&a).unwrap();
    let out = sb.ok(&b, &["gc", "--delete"]);
    assert!(out.contains("is gone; unregistered"), "{out}");
    assert!(sb.ok(&b, &["gc"]).contains("in use by 1 project and"));
}

/// A registration in the making (another process's temporary file in the
/// store's registry, renamed into place a moment later) is not a project:
/// gc neither reads it as one nor removes it as gone (that race failed a
/// gc beside an ingest once: the file was renamed between listing and read).
#[test]
fn gc_leaves_a_registration_in_the_making_alone() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let in_making = sb.store().join("projects/.tmpAbC123");
    fs::write(&in_making, "/no/such/project").unwrap();
    let out = sb.ok(&root, &["gc", "--delete"]);
    assert!(!out.contains("unregistered"), "{out}");
    assert!(out.contains("in use by 1 project"), "{out}");
    assert!(in_making.exists(), "gc removed another process's file");
}

#[test]
fn gc_running_beside_ingests_never_deletes_a_referenced_blob() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    // Several rounds of ingest racing gc --delete; the view must stay whole.
    for round in 0..4 {
        let deps = root.join(format!("deps{round}"));
        write_node_modules(&deps, 300, 3, 300);
        let pristine = list_tree(&deps, &[]);
        let ingest = sb
            .cmd(&root, &["ingest", &format!("deps{round}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let gcs: Vec<_> = (0..3).map(|_| sb.run(&root, &["gc", "--delete"])).collect();
        let ingest = ingest.wait_with_output().unwrap();
        assert!(
            ingest.status.success(),
            "{}",
            String::from_utf8_lossy(&ingest.stderr)
        );
        for g in gcs {
            assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
        }
        let fsck = sb.ok(&root, &["fsck"]);
        assert!(fsck.contains("no problems found"), "round {round}: {fsck}");
        sb.ok(&root, &["materialize", &format!("deps{round}")]);
        assert_same_tree(&pristine, &list_tree(&deps, &[]));
    }
}

#[test]
fn a_corrupt_manifest_gets_a_clear_error_not_a_panic() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 2);
    let manifest = root.join(".vrift/manifest.redb");
    fs::write(
        &manifest,
        b"this is not a redb file at all, just some garbage bytes",
    )
    .unwrap();
    for args in [
        &["status"][..],
        &["ls"],
        &["ingest", "node_modules"],
        &["snapshot", "list"],
    ] {
        let out = sb.run(&root, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&manifest.display().to_string()),
            "names the file: {stderr}"
        );
        assert!(stderr.contains("vrift init"), "says what to do: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // gc refuses to sweep when a registered manifest is unreadable.
    let stderr = sb.fails(&root, &["gc", "--delete"]);
    assert!(
        stderr.contains("gc needs every registered project's manifest"),
        "{stderr}"
    );
    assert!(sb.blob_count() > 0);
}

#[test]
fn a_truncated_manifest_gets_a_clear_error() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 20);
    let manifest = root.join(".vrift/manifest.redb");
    let bytes = fs::read(&manifest).unwrap();
    fs::write(&manifest, &bytes[..bytes.len() / 3]).unwrap();
    let out = sb.run(&root, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("manifest.redb"), "{stderr}");
}

#[test]
fn a_manifest_with_flipped_bits_gets_a_clear_error() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 20);
    let manifest = root.join(".vrift/manifest.redb");
    let mut bytes = fs::read(&manifest).unwrap();
    for i in (8192..bytes.len()).step_by(97) {
        bytes[i] ^= 0xff;
    }
    fs::write(&manifest, &bytes).unwrap();
    let out = sb.run(&root, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("manifest.redb is corrupt"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
}

#[test]
fn a_manifest_of_another_schema_version_is_refused_with_advice() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 2);
    let manifest = root.join(".vrift/manifest.redb");
    {
        let db = redb::Database::open(&manifest).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(def).unwrap();
            meta.insert("schema", 99u32.to_le_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let stderr = sb.fails(&root, &["status"]);
    assert!(stderr.contains("schema version 99"), "{stderr}");
    assert!(stderr.contains("upgrade vrift"), "{stderr}");
    assert!(stderr.contains(&manifest.display().to_string()), "{stderr}");
}

#[test]
fn a_manifest_of_the_previous_schema_is_upgraded_in_place() {
    use redb::ReadableTable;
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 2);
    let manifest = root.join(".vrift/manifest.redb");
    let schema = |v: Option<u32>| -> u32 {
        let db = redb::Database::open(&manifest).unwrap();
        let txn = db.begin_write().unwrap();
        let found = {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(def).unwrap();
            if let Some(v) = v {
                meta.insert("schema", v.to_le_bytes().as_slice()).unwrap();
            }
            let found = meta.get("schema").unwrap().unwrap().value().to_vec();
            u32::from_le_bytes(found.try_into().unwrap())
        };
        txn.commit().unwrap();
        found
    };
    schema(Some(2));
    let status = sb.ok(&root, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["phantom"]["entries"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert_eq!(schema(None), vrift_format::SCHEMA_VERSION);
    sb.ok(&root, &["snapshot", "save", "after-upgrade"]);
}

#[test]
fn a_locked_project_makes_commands_wait_with_a_message() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 2);
    let lock = root.join(".vrift/lock");
    // Hold the project lock for a while from another process.
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "1.5"])
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(Duration::from_millis(200));
    let out = sb.run(&root, &["status"]);
    holder.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for another vrift command using this project"),
        "{stderr}"
    );
}

#[test]
fn commands_outside_a_project_say_so() {
    let sb = Sandbox::new();
    let nowhere = sb.mkdir("nowhere");
    for args in [
        &["status"][..],
        &["ingest"],
        &["ls"],
        &["snapshot", "list"],
        &["discard", "--yes"],
        &["diff"],
    ] {
        let stderr = sb.fails(&nowhere, args);
        assert!(
            stderr.contains("not inside a vrift project"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("vrift init"), "{stderr}");
    }
}

#[test]
fn the_store_fans_out_on_demand() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::create_dir_all(root.join("deps")).unwrap();
    fs::write(root.join("deps/one"), b"one").unwrap();
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["ingest", "deps"]);
    let fans = fs::read_dir(sb.store().join("blobs")).unwrap().count();
    assert_eq!(fans, 1, "one blob, one fan-out directory");
}

#[test]
fn a_manifest_held_open_by_another_process_is_reported_not_waited_on_forever() {
    let sb = Sandbox::new();
    let root = ingested_project(&sb, "p", 2);
    // Another process (here: this test) has the database open without vrift's lock.
    let held = vrift::manifest::Manifest::open(&root.join(".vrift/manifest.redb"), false).unwrap();
    let stderr = sb.fails(&root, &["status"]);
    assert!(stderr.contains("is in use by another process"), "{stderr}");
    assert!(stderr.contains("manifest.redb"), "{stderr}");
    drop(held);
    sb.ok(&root, &["status"]);
}

#[test]
fn projects_ingesting_the_same_content_at_once_share_blobs_safely() {
    let sb = Sandbox::new();
    let mut roots = Vec::new();
    for name in ["a", "b", "c"] {
        let root = sb.mkdir(name);
        write_node_modules(&root.join("node_modules"), 200, 3, 400);
        sb.ok(&root, &["init"]);
        roots.push(root);
    }
    let pristine: Vec<_> = roots
        .iter()
        .map(|r| list_tree(&r.join("node_modules"), &[]))
        .collect();
    let children: Vec<_> = roots
        .iter()
        .map(|r| {
            sb.cmd(r, &["ingest"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let single = {
        let sb2 = Sandbox::new();
        let r = sb2.mkdir("x");
        write_node_modules(&r.join("node_modules"), 200, 3, 400);
        sb2.ok(&r, &["init"]);
        sb2.ok(&r, &["ingest"]);
        sb2.blob_count()
    };
    assert_eq!(
        sb.blob_count(),
        single,
        "three identical trees are stored once"
    );
    assert_eq!(sb.staged_leftovers(), 0);
    for (r, pristine) in roots.iter().zip(&pristine) {
        assert!(sb.ok(r, &["fsck"]).contains("no problems found"));
        sb.ok(r, &["materialize"]);
        assert_same_tree(pristine, &list_tree(&r.join("node_modules"), &[]));
    }
}
