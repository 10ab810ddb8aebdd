//! Programs that cannot load vrift's library — statically linked ones, Go
//! programs (whose runtime makes its own system calls), the dynamic loader
//! run as a program — never run silently against the project's disk inside
//! an inception: they are refused with one line that says why, unless
//! `VRIFT_UNVIEWED=run` asks for them to run anyway.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `script` in the view of `root`; returns (exit code, stdout, stderr).
fn in_view(sb: &Sandbox, root: &Path, script: &str) -> (i32, String, String) {
    let out = sb.sh_in_view(root, script);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WRITER_C: &str = r#"
#include <stdio.h>
int main(void) {
    FILE *f = fopen("written.txt", "w");
    if (f) { fputs("x\n", f); fclose(f); }
    puts("ran");
    return 0;
}
"#;

#[test]
fn static_programs_and_the_loader_are_refused_not_run_against_the_disk() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let src = sb.path().join("writer.c");
    fs::write(&src, WRITER_C).unwrap();
    let stat = sb.path().join("writer-static");
    let ok = Command::new("cc")
        .args(["-static", "-o"])
        .arg(&stat)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip("cc -static cannot link (libc6-dev's libc.a missing?)");
        return;
    }
    let dynamic = compile_c_source(&sb, "writer-dynamic", WRITER_C);
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);

    let (code, out, err) = in_view(&sb, &root, &format!("{}", stat.display()));
    assert_eq!((code, out.as_str()), (126, ""), "{err}");
    assert!(
        err.contains("refusing to run") && err.contains("statically linked"),
        "{err}"
    );
    assert_eq!(err.matches("vrift: refusing").count(), 1, "{err}");
    let (code, _, err) = in_view(
        &sb,
        &root,
        &format!("/lib64/ld-linux-x86-64.so.2 {}", dynamic.display()),
    );
    assert_eq!(code, 126, "{err}");
    assert!(!root.join("written.txt").exists());

    // A dynamic program of the same source runs, in the view.
    let (code, out, err) = in_view(&sb, &root, &dynamic.display().to_string());
    assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
    assert!(!root.join("written.txt").exists());
    assert_eq!(sb.ok(&root, &["cat", "written.txt"]), "x\n");

    // Asked for explicitly, the static one runs: against the disk.
    let (code, out, _) = in_view(
        &sb,
        &root,
        &format!("VRIFT_UNVIEWED=run {}", stat.display()),
    );
    assert_eq!((code, out.as_str()), (0, "ran\n"));
    assert!(root.join("written.txt").exists());
}

#[test]
fn go_programs_are_refused_in_the_view() {
    let go = Command::new("go").arg("version").output();
    if !go.is_ok_and(|o| o.status.success()) {
        skip("go is not installed (Debian's golang-go)");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let m = sb.mkdir("gomod");
    fs::write(m.join("go.mod"), "module example.com/w\n\ngo 1.19\n").unwrap();
    fs::write(
        m.join("main.go"),
        "package main\n\nimport \"os\"\n\nfunc main() { os.WriteFile(\"written.txt\", []byte(\"go\\n\"), 0o644) }\n",
    )
    .unwrap();
    let bin = sb.path().join("gowriter");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&m)
        .env("GOCACHE", sb.path().join("gocache"))
        .env("GOPATH", sb.path().join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let (code, _, err) = in_view(&sb, &root, &bin.display().to_string());
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("is a Go program"), "{err}");
    assert!(!root.join("written.txt").exists());
    // The go command itself is a Go program.
    let (code, _, err) = in_view(&sb, &root, "go version");
    assert_eq!(code, 126, "{err}");
}
