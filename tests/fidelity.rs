//! POSIX corners answered in the view exactly as on disk: bad pointers
//! (EFAULT, never a crash), names past NAME_MAX, long paths, ENOTDIR below
//! a file the view made. The same C program runs natively in a copy and
//! under `vrift run` in the project; its lines must match, and what it
//! wrote must be in the rift, not on the project's disk.

mod common;

use std::fs;

use common::*;

#[test]
fn bad_pointers_long_names_and_long_paths_answer_as_the_kernel() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let prog = compile_c(&sb, "edges", &[]);
    let root = sb.mkdir("proj");
    let twin = sb.mkdir("twin");
    sb.ok(&root, &["init"]);
    let n = same_probe_output(&sb, &prog, &root, &twin);
    assert!(
        n.contains("creat 256                    -1 ENAMETOOLONG"),
        "{n}"
    );

    // The files went to the rift: the deep directories are physical (as
    // every directory), the files in them are not.
    let deep: std::path::PathBuf = (0..8).map(|i| format!("{i}{}", "d".repeat(127))).collect();
    assert!(root.join(&deep).is_dir());
    assert!(!root.join(deep.join("g")).exists());
    assert!(!root.join("f").exists());
    let rel = deep.join("g");
    assert_eq!(sb.ok(&root, &["cat", rel.to_str().unwrap()]), "deep\n");
}

#[test]
fn raw_syscall_numbers_of_the_path_family_act_on_the_view() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let prog = compile_c(&sb, "rawsys", &[]);
    let seed = |dir: &std::path::Path| {
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("seed.txt"), "seed\n").unwrap();
        fs::write(dir.join("sub/inner.txt"), "in\n").unwrap();
    };
    let (root, twin) = project_and_twin_with(&sb, seed);
    let before = disk_files(&root);
    same_probe_output(&sb, &prog, &root, &twin);
    // Nothing of it reached the project's disk.
    assert_eq!(disk_files(&root), before);
    assert_eq!(sb.ok(&root, &["cat", "o2.txt"]), "o2\n");
}

/// Issue 15, found by `cargo xtask conformance` (LTP's access04, fstatat01,
/// unlinkat01, link04, open13, fchmodat2_01, chown02, fchown02, fchown05,
/// access01): each corner answers in the view as on disk.
#[test]
fn issue_15_ltp_corners_answer_as_the_kernel() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let prog = compile_c(&sb, "ltp_corners", &[]);
    let root = sb.mkdir("proj");
    let twin = sb.mkdir("twin");
    sb.ok(&root, &["init"]);
    let n = same_probe_output(&sb, &prog, &root, &twin);
    assert!(n.contains("read O_PATH                  -1 EBADF"), "{n}");
    // What it wrote is in the rift.
    assert!(!root.join("f").exists());
    assert_eq!(sb.ok(&root, &["cat", "f"]), "data\n");
}
