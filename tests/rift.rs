//! The rift layer: snapshots, discard, diff and the view's listing.
//!
//! Until the LD_PRELOAD library writes the rift, these tests write rift
//! records through vrift's own library (as the daemon will), then drive the
//! real CLI.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use vrift::cas::Cas;
use vrift::manifest::{Entry, Layer, Manifest, Record};
use vrift_format::{Kind, DIR_CREATED};

/// Writes rift records into the project's manifest (no CLI may run meanwhile).
fn write_rift(sb: &Sandbox, root: &Path, f: impl FnOnce(&vrift::manifest::WriteTxn<'_>, &Cas)) {
    let cas = Cas::open(&sb.store()).unwrap();
    let manifest = Manifest::open(&root.join(".vrift/manifest.redb"), false).unwrap();
    let txn = manifest.write().unwrap();
    f(&txn, &cas);
    txn.commit().unwrap();
}

fn file(txn: &vrift::manifest::WriteTxn<'_>, cas: &Cas, path: &str, content: &[u8], mode: u32) {
    let hash = cas.put_bytes(content).unwrap();
    let ino = txn.alloc_inos(1).unwrap();
    let entry = Entry {
        kind: Kind::File,
        flags: 0,
        mode: libc::S_IFREG | mode,
        size: content.len() as u64,
        mtime_ns: 1_700_000_000_000_000_000,
        ino,
        hash,
        target: Vec::new(),
        uid: vrift_format::OWNER_INHERIT,
        gid: vrift_format::OWNER_INHERIT,
        atime_ns: 0,
        ctime_ns: 0,
        links: 0,
    };
    txn.put(Layer::Rift, path.as_bytes(), &Record::Entry(entry))
        .unwrap();
}

fn project(sb: &Sandbox) -> std::path::PathBuf {
    let root = sb.mkdir("p");
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(root.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
    fs::write(root.join("src/util.c"), "int util;\n").unwrap();
    sb.ok(&root, &["init"]);
    root
}

#[test]
fn snapshots_save_restore_drop_and_stay_immutable() {
    let sb = Sandbox::new();
    let root = project(&sb);
    fs::create_dir(root.join("build")).unwrap();
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "build/out.o", b"object v1", 0o644);
        txn.set_dir_mark(b"build", DIR_CREATED).unwrap();
    });
    let out = sb.ok(&root, &["snapshot", "save", "s1"]);
    assert!(out.contains("saved snapshot \"s1\": 1 entries"), "{out}");

    // The build goes on: a changed output, a new one, a deleted source.
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "build/out.o", b"object v2", 0o644);
        file(txn, cas, "build/new.o", b"new object", 0o644);
        txn.put(Layer::Rift, b"src/main.c", &Record::Whiteout)
            .unwrap();
    });
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v2");
    let err = sb.fails(&root, &["cat", "src/main.c"]);
    assert!(err.contains("no such file in the view"), "{err}");
    let ls = sb.ok(&root, &["ls", "src"]);
    assert!(
        !ls.contains("main.c") && ls.contains("disk     util.c"),
        "{ls}"
    );
    assert_eq!(
        sb.ok(&root, &["diff"]),
        "A build/new.o\nA build/out.o\nD src/main.c\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("src/main.c")).unwrap().len(),
        29,
        "the disk is untouched"
    );

    let err = sb.fails(&root, &["snapshot", "save", "s1"]);
    assert!(err.contains("already exists"), "{err}");
    sb.ok(&root, &["snapshot", "save", "s2"]);

    let blobs = sb.blob_count();
    let out = sb.ok(&root, &["snapshot", "restore", "s1"]);
    assert!(out.contains("restored snapshot \"s1\": 1 entries"), "{out}");
    assert_eq!(sb.blob_count(), blobs, "restore copies no blob");
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v1");
    assert!(sb
        .fails(&root, &["cat", "build/new.o"])
        .contains("no such file"));
    assert!(sb.ok(&root, &["cat", "src/main.c"]).contains("int main"));

    // s1 was not changed by being restored and then diverging.
    sb.ok(&root, &["snapshot", "restore", "s2"]);
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v2");
    sb.ok(&root, &["snapshot", "restore", "s1"]);
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v1");

    let list = sb.ok(&root, &["snapshot", "list"]);
    assert!(list.starts_with("s1 ") && list.contains("\ns2 "), "{list}");
    sb.ok(&root, &["snapshot", "drop", "s2"]);
    assert!(!sb.ok(&root, &["snapshot", "list"]).contains("s2"));
    let err = sb.fails(&root, &["snapshot", "restore", "s2"]);
    assert!(err.contains("no snapshot named \"s2\""), "{err}");
    let err = sb.fails(&root, &["snapshot", "save", "../evil"]);
    assert!(err.contains("invalid snapshot name"), "{err}");
}

#[test]
fn discard_empties_the_rift_removes_created_dirs_and_keeps_phantoms() {
    let sb = Sandbox::new();
    let root = project(&sb);
    write_node_modules(&root.join("node_modules"), 3, 2, 100);
    sb.ok(&root, &["ingest", "node_modules"]);
    fs::create_dir_all(root.join("build/obj")).unwrap();
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "build/obj/a.o", b"a", 0o644);
        txn.set_dir_mark(b"build", DIR_CREATED).unwrap();
        txn.set_dir_mark(b"build/obj", DIR_CREATED).unwrap();
        // The rift hides a phantom file, too.
        txn.put(
            Layer::Rift,
            b"node_modules/pkg-1/LICENSE",
            &Record::Whiteout,
        )
        .unwrap();
    });
    sb.ok(&root, &["snapshot", "save", "built"]);
    assert!(sb
        .fails(&root, &["cat", "node_modules/pkg-1/LICENSE"])
        .contains("no such file"));

    // Without a terminal, discard refuses unless told --yes.
    let err = sb.fails(&root, &["discard"]);
    assert!(err.contains("pass --yes"), "{err}");
    let out = sb.ok(&root, &["discard", "--yes"]);
    assert!(
        out.contains("discarded 2 rift entries; removed 2 empty directories"),
        "{out}"
    );
    assert!(!root.join("build").exists());
    assert!(sb
        .ok(&root, &["cat", "node_modules/pkg-1/LICENSE"])
        .starts_with("MIT"));
    let v: serde_json::Value = serde_json::from_str(&sb.ok(&root, &["status", "--json"])).unwrap();
    assert_eq!(v["rift"]["entries"], 0);
    assert_eq!(v["phantom"]["entries"], 14);
    assert_eq!(
        sb.ok(&root, &["discard", "--yes"]),
        "the rift is already empty\n"
    );

    // Restoring recreates the physical directories the rift needs.
    let out = sb.ok(&root, &["snapshot", "restore", "built"]);
    assert!(out.contains("recreated 2 directories"), "{out}");
    assert!(root.join("build/obj").is_dir());
    assert_eq!(sb.ok(&root, &["cat", "build/obj/a.o"]), "a");
}

#[test]
fn diff_reports_changes_only_where_the_content_differs() {
    let sb = Sandbox::new();
    let root = project(&sb);
    let same = fs::read(root.join("src/util.c")).unwrap();
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "src/util.c", &same, 0o644);
        file(
            txn,
            cas,
            "src/main.c",
            b"int main(void) { return 1; }\n",
            0o644,
        );
        txn.put(Layer::Rift, b"src/never-existed.c", &Record::Whiteout)
            .unwrap();
    });
    assert_eq!(sb.ok(&root, &["diff"]), "M src/main.c\n");
    // A mode change is a change.
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "src/util.c", &same, 0o755)
    });
    assert_eq!(sb.ok(&root, &["diff"]), "M src/main.c\nM src/util.c\n");
}

#[test]
fn ls_marks_where_each_name_comes_from() {
    let sb = Sandbox::new();
    let root = project(&sb);
    fs::create_dir_all(root.join("deps")).unwrap();
    fs::write(root.join("deps/ingested.txt"), b"p").unwrap();
    sb.ok(&root, &["ingest", "deps"]);
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "generated.h", b"#define X 1\n", 0o644);
        file(
            txn,
            cas,
            "deps/ingested.txt",
            b"overridden by the rift",
            0o600,
        );
        let link = Entry {
            kind: Kind::Symlink,
            flags: 0,
            mode: libc::S_IFLNK | 0o777,
            size: 10,
            mtime_ns: 0,
            ino: txn.alloc_inos(1).unwrap(),
            hash: Default::default(),
            target: b"src/main.c".to_vec(),
            uid: vrift_format::OWNER_INHERIT,
            gid: vrift_format::OWNER_INHERIT,
            atime_ns: 0,
            ctime_ns: 0,
            links: 0,
        };
        txn.put(Layer::Rift, b"main-link", &Record::Entry(link))
            .unwrap();
    });
    let ls = sb.ok(&root, &["ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 4, "{ls}");
    assert!(
        lines[0].starts_with("drwx") && lines[0].ends_with("disk     deps/"),
        "{ls}"
    );
    assert!(
        lines[1].starts_with("-rw-r--r--") && lines[1].ends_with("rift     generated.h"),
        "{ls}"
    );
    assert!(
        lines[2].starts_with("lrwxrwxrwx")
            && lines[2].ends_with("rift     main-link -> src/main.c"),
        "{ls}"
    );
    assert!(lines[3].ends_with("disk     src/"), "{ls}");
    assert!(
        !ls.contains(".vrift"),
        "vrift's own state is not part of the view"
    );
    let deps = sb.ok(&root, &["ls", "deps"]);
    assert!(
        deps.starts_with("-rw-------") && deps.contains("rift     ingested.txt"),
        "{deps}"
    );
    assert_eq!(
        sb.ok(&root, &["cat", "deps/ingested.txt"]),
        "overridden by the rift"
    );
    assert!(sb.ok(&root, &["cat", "main-link"]).contains("int main"));
    // ls of a single file.
    let one = sb.ok(&root, &["ls", "generated.h"]);
    assert!(one.ends_with("rift     generated.h\n"), "{one}");
}

#[test]
fn gc_keeps_blobs_that_only_a_snapshot_references() {
    let sb = Sandbox::new();
    let root = project(&sb);
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "out.bin", b"kept by the snapshot", 0o644)
    });
    sb.ok(&root, &["snapshot", "save", "keep"]);
    sb.ok(&root, &["discard", "--yes"]);
    let out = sb.ok(&root, &["gc", "--delete"]);
    assert!(out.contains("deleted 0 unreferenced blobs"), "{out}");
    sb.ok(&root, &["snapshot", "drop", "keep"]);
    let out = sb.ok(&root, &["gc", "--delete"]);
    assert!(out.contains("deleted 1 unreferenced blobs"), "{out}");
}

#[test]
fn materialize_writes_the_rift_to_disk_and_applies_whiteouts() {
    let sb = Sandbox::new();
    let root = project(&sb);
    fs::create_dir(root.join("build")).unwrap();
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "build/tool", b"#!/bin/sh\necho built\n", 0o755);
        file(txn, cas, "src/util.c", b"int util = 2;\n", 0o600);
        txn.put(Layer::Rift, b"src/main.c", &Record::Whiteout)
            .unwrap();
    });
    let out = sb.ok(&root, &["materialize"]);
    assert!(
        out.contains("materialized 2 files") && out.contains("removed 1 hidden paths"),
        "{out}"
    );
    assert!(!root.join("src/main.c").exists());
    assert_eq!(
        fs::read_to_string(root.join("src/util.c")).unwrap(),
        "int util = 2;\n"
    );
    let run = std::process::Command::new(root.join("build/tool"))
        .output()
        .unwrap();
    assert_eq!(run.stdout, b"built\n");
    // A materialized file is a file of its own, never a link to a blob.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(root.join("build/tool")).unwrap().nlink(), 1);
    assert_eq!(sb.ok(&root, &["diff"]), "");
}

#[test]
fn the_hot_table_follows_every_command_and_retires_old_generations() {
    use std::os::unix::fs::FileExt;
    use vrift_format::table::{FLAG_SUPERSEDED, TABLE_FILE};
    use vrift_format::RecordRef;

    let sb = Sandbox::new();
    let root = project(&sb);
    let table = root.join(".vrift").join(TABLE_FILE);
    let count = || vrift::table::read_table(&table, |t| t.entry_count()).expect("a valid table");
    assert_eq!(count(), 0, "init publishes an empty table");
    let old = fs::File::open(&table).unwrap();
    let flags = |f: &fs::File| {
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, 12).unwrap();
        u32::from_le_bytes(b)
    };
    assert_eq!(flags(&old) & FLAG_SUPERSEDED, 0);

    write_node_modules(&root.join("node_modules"), 2, 1, 10);
    sb.ok(&root, &["ingest", "node_modules"]);
    assert_eq!(count(), 8);
    assert_eq!(
        flags(&old) & FLAG_SUPERSEDED,
        FLAG_SUPERSEDED,
        "the old generation is retired"
    );
    vrift::table::read_table(&table, |t| {
        assert_eq!(t.root(), root.as_os_str().as_encoded_bytes());
        assert_eq!(t.cas_root(), sb.store().as_os_str().as_encoded_bytes());
        assert!(matches!(
            t.lookup(b"node_modules/pkg-1/LICENSE"),
            Some(RecordRef::Entry { .. })
        ));
        let d = t.dir(b"node_modules/pkg-1").unwrap();
        assert_eq!(d.children().count(), 2, "LICENSE and package.json");
        assert!(t.generation() >= 2);
    });

    // A restore and a discard change the view: the table follows.
    write_rift(&sb, &root, |txn, _| {
        txn.put(Layer::Rift, b"src/main.c", &Record::Whiteout)
            .unwrap();
    });
    sb.ok(&root, &["snapshot", "save", "hidden"]);
    sb.ok(&root, &["discard", "--yes"]);
    vrift::table::read_table(&table, |t| assert_eq!(t.lookup(b"src/main.c"), None)).unwrap();
    sb.ok(&root, &["snapshot", "restore", "hidden"]);
    vrift::table::read_table(&table, |t| {
        assert_eq!(t.lookup(b"src/main.c"), Some(RecordRef::Whiteout));
        assert!(t.may_hide());
    })
    .unwrap();
    sb.ok(&root, &["materialize"]);
    assert_eq!(count(), 0);
}

#[test]
fn a_restored_rift_shares_the_snapshot_until_it_changes_and_outlives_its_drop() {
    let sb = Sandbox::new();
    let root = project(&sb);
    fs::create_dir(root.join("build")).unwrap();
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "build/out.o", b"object v1", 0o644);
        file(txn, cas, "build/keep.o", b"kept", 0o644);
    });
    sb.ok(&root, &["snapshot", "save", "s1"]);
    sb.ok(&root, &["snapshot", "restore", "s1"]);

    // Changes after a restore (a write, a removal) land in the rift, never
    // in the snapshot the restored rift came from.
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "build/out.o", b"object v2", 0o644);
        assert!(txn.remove(Layer::Rift, b"build/keep.o").unwrap());
    });
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v2");
    assert!(sb
        .fails(&root, &["cat", "build/keep.o"])
        .contains("no such file"));
    sb.ok(&root, &["snapshot", "restore", "s1"]);
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v1");
    assert_eq!(sb.ok(&root, &["cat", "build/keep.o"]), "kept");

    // Discard after a restore empties the rift, not the snapshot.
    sb.ok(&root, &["discard", "--yes"]);
    assert!(sb
        .fails(&root, &["cat", "build/out.o"])
        .contains("no such file"));
    let out = sb.ok(&root, &["snapshot", "restore", "s1"]);
    assert!(out.contains("restored snapshot \"s1\": 2 entries"), "{out}");

    // Dropping the snapshot the rift shares keeps the rift, which can
    // still change, and gc keeps what it references.
    sb.ok(&root, &["snapshot", "drop", "s1"]);
    assert!(!sb.ok(&root, &["snapshot", "list"]).contains("s1"));
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v1");
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "build/out.o", b"object v3", 0o644);
    });
    sb.ok(&root, &["gc", "--delete"]);
    assert_eq!(sb.ok(&root, &["cat", "build/out.o"]), "object v3");
    assert_eq!(sb.ok(&root, &["cat", "build/keep.o"]), "kept");
    let status = sb.ok(&root, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["rift"]["entries"], 2, "{status}");
}

#[test]
fn restore_recreates_a_deep_missing_chain_and_only_that() {
    let sb = Sandbox::new();
    let root = project(&sb);
    fs::create_dir_all(root.join("out/a/b/c")).unwrap();
    fs::create_dir_all(root.join("out/x")).unwrap();
    write_rift(&sb, &root, |txn, cas| {
        file(txn, cas, "out/a/b/c/deep.o", b"deep", 0o644);
        file(txn, cas, "out/a/mid.o", b"mid", 0o644);
        file(txn, cas, "out/x/side.o", b"side", 0o644);
    });
    sb.ok(&root, &["snapshot", "save", "s"]);
    fs::remove_dir_all(root.join("out/a")).unwrap();
    let out = sb.ok(&root, &["snapshot", "restore", "s"]);
    assert!(out.contains("recreated 3 directories"), "{out}");
    assert!(root.join("out/a/b/c").is_dir());
    assert_eq!(sb.ok(&root, &["cat", "out/a/b/c/deep.o"]), "deep");
    assert_eq!(sb.ok(&root, &["cat", "out/x/side.o"]), "side");
    // They are marked as the rift's: discard removes them again, and
    // leaves the directory that was there before.
    sb.ok(&root, &["discard", "--yes"]);
    assert!(!root.join("out/a").exists());
    assert!(root.join("out/x").is_dir());
}
