//! Special files in the view: FIFOs, device nodes and Unix sockets made in
//! a project are rift entries (nodes in the store), behave as on disk, and
//! never reach the project's disk; snapshots, discard, materialize and gc
//! know them.

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;

use common::*;

fn seed(dir: &std::path::Path) {
    fs::write(dir.join("keep.txt"), "kept\n").unwrap();
}

/// A project holding one file on its disk, initialised.
fn seeded_project() -> (Sandbox, std::path::PathBuf) {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    seed(&root);
    sb.ok(&root, &["init"]);
    (sb, root)
}

#[test]
fn mknod_family_through_every_spelling_matches_the_kernel() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let prog = compile_c(&sb, "special", &[]);
    let (root, twin) = project_and_twin_with(&sb, seed);
    let before = disk_files(&root);
    let n = same_probe_output(&sb, &prog, &root, &twin);
    assert!(n.contains("fifo read 16 'through the fifo'"), "{n}");
    assert!(n.contains("socket read 4 'ping'"), "{n}");
    // Nothing of it reached the project's disk.
    assert_eq!(disk_files(&root), before);
}

#[test]
fn fifos_devices_and_sockets_are_rift_entries_and_never_reach_the_disk() {
    let (sb, root) = seeded_project();
    let before = disk_files(&root);
    // The shell's own tools: mkfifo(1), test(1), ls, stat, a reader and a
    // writer, mv, and a socket served and reached by python3.
    let out = sb.ok_in_view(
        &root,
        r#"set -e
        mkfifo -m 0640 pipe
        [ -p pipe ] && echo is-fifo
        ls -l pipe | cut -c1-10
        stat -c '%F %a' pipe
        cat pipe > got & echo hello > pipe; wait
        cat got
        mv pipe pipe2; [ -p pipe2 ] && [ ! -e pipe ] && echo moved
        python3 -c '
import socket, os
s = socket.socket(socket.AF_UNIX); s.bind("sock"); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect("sock")
a, _ = s.accept(); c.sendall(b"over the socket"); print(a.recv(64).decode())
print("is-socket", os.path.exists("sock"))
'
        [ -S sock ] && echo sock-is-socket
        if [ "$(id -u)" = 0 ]; then
            mknod zero c 1 5
            stat -c '%F %t,%T' zero
            head -c 4 zero | od -An -tx1
        fi
        "#,
    );
    assert!(out.contains("is-fifo"), "{out}");
    assert!(out.contains("prw-r-----"), "{out}");
    assert!(out.contains("fifo 640"), "{out}");
    assert!(out.contains("hello"), "{out}");
    assert!(out.contains("moved"), "{out}");
    assert!(out.contains("over the socket"), "{out}");
    assert!(out.contains("sock-is-socket"), "{out}");
    if is_root() {
        assert!(out.contains("character special file 1,5"), "{out}");
        assert!(out.contains("00 00 00 00"), "{out}");
    }
    // The disk never saw any of it.
    assert_eq!(disk_files(&root), before);
    assert!(!root.join("pipe2").exists() && !root.join("sock").exists());
    // The CLI lists them; discard takes them away, the disk still untouched.
    let ls = sb.ok(&root, &["ls"]);
    assert!(ls.contains("pipe2") && ls.contains("sock"), "{ls}");
    let diff = sb.ok(&root, &["diff"]);
    assert!(diff.contains("pipe2"), "{diff}");
    sb.ok(&root, &["discard", "--yes"]);
    let gone = sb.run(
        &root,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "[ -e pipe2 ] || [ -e sock ] || echo gone",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&gone.stdout), "gone\n");
    assert_eq!(disk_files(&root), before);
}

#[test]
fn special_files_come_back_with_a_snapshot_and_materialize_onto_the_disk() {
    let (sb, root) = seeded_project();
    sb.ok_in_view(&root, "mkfifo -m 0604 pipe && mkdir -p d && mkfifo d/inner");
    sb.ok(&root, &["snapshot", "save", "with-fifo"]);
    sb.ok_in_view(&root, "rm pipe d/inner");
    // gc keeps the nodes: the snapshot still names them.
    sb.ok(&root, &["gc", "--delete"]);
    sb.ok(&root, &["snapshot", "restore", "with-fifo"]);
    let out = sb.ok_in_view(
        &root,
        "[ -p pipe ] && [ -p d/inner ] && echo back; (cat pipe &) ; echo again > pipe; sleep 0.2",
    );
    assert!(out.contains("back"), "{out}");
    assert!(out.contains("again"), "{out}");
    assert!(!root.join("pipe").exists(), "the disk got the fifo");
    // Materialized: a real FIFO with the recorded mode, on the disk.
    sb.ok(&root, &["materialize"]);
    let m = fs::symlink_metadata(root.join("pipe")).unwrap();
    assert!(m.file_type().is_fifo());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(m.permissions().mode() & 0o7777, 0o604);
    assert!(fs::symlink_metadata(root.join("d/inner"))
        .unwrap()
        .file_type()
        .is_fifo());
    // Once no record or snapshot names a node, gc takes it.
    sb.ok(&root, &["snapshot", "drop", "with-fifo"]);
    let nodes = sb.store().join("nodes");
    sb.ok(&root, &["gc", "--delete"]);
    let left = fs::read_dir(&nodes).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        left,
        0,
        "nodes no record names are left in {}",
        nodes.display()
    );
}

#[test]
fn a_static_program_makes_its_fifo_in_the_view() {
    if !can_link_static() {
        skip("cannot link statically (glibc static libraries missing)");
        return;
    }
    let (sb, root) = seeded_project();
    let prog = compile_c(&sb, "static_fifo", &["-static"]);
    let before = disk_files(&root);
    let out = sb.ok_in_view(
        &root,
        &format!("{} && [ -p sfifo ] && echo seen", prog.display()),
    );
    assert_eq!(out, "fifo\nseen\n");
    assert_eq!(disk_files(&root), before);
}
