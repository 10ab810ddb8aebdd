//! POSIX corners answered in the view exactly as on disk: bad pointers
//! (EFAULT, never a crash), names past NAME_MAX, long paths, ENOTDIR below
//! a file the view made. The same C program runs natively in a copy and
//! under `vrift run` in the project; its lines must match, and what it
//! wrote must be in the rift, not on the project's disk.

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn bad_pointers_long_names_and_long_paths_answer_as_the_kernel() {
    if !has_cc() {
        assert!(std::env::var_os("CI").is_none(), "cc is missing in CI");
        eprintln!("SKIPPED: no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let prog = compile_c(&sb, "edges", &[]);
    let root = sb.mkdir("proj");
    let twin = sb.mkdir("twin");
    sb.ok(&root, &["init"]);
    let native = Command::new(&prog).current_dir(&twin).output().unwrap();
    assert!(native.status.success(), "native run failed");
    let view = sb.run(&root, &["run", "--", prog.to_str().unwrap()]);
    assert!(
        view.status.success(),
        "view run failed ({:?}): {}",
        view.status,
        String::from_utf8_lossy(&view.stderr)
    );
    let (n, v) = (
        String::from_utf8_lossy(&native.stdout),
        String::from_utf8_lossy(&view.stdout),
    );
    for (a, b) in n.lines().zip(v.lines()) {
        assert_eq!(b, a, "view (left) vs native (right)");
    }
    assert_eq!(v.lines().count(), n.lines().count(), "{v}");
    assert!(n.contains("creat 256                    -1 ENAMETOOLONG"), "{n}");

    // The files went to the rift: the deep directories are physical (as
    // every directory), the files in them are not.
    let deep: std::path::PathBuf = (0..8)
        .map(|i| format!("{i}{}", "d".repeat(127)))
        .collect();
    assert!(root.join(&deep).is_dir());
    assert!(!root.join(deep.join("g")).exists());
    assert!(!root.join("f").exists());
    let rel = deep.join("g");
    assert_eq!(sb.ok(&root, &["cat", rel.to_str().unwrap()]), "deep\n");
}
