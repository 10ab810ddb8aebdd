//! No call made inside the view may change a blob's bytes or mode, or give
//! it a second name, whatever spelling it uses: `/proc/self/fd/N`,
//! `/dev/fd/N`, `AT_EMPTY_PATH`, an fd inherited across exec that this
//! process's shim never saw opened. And `/proc/self/{cwd,root}` spellings
//! of project paths reach the view, not the disk. (Run as root, mode bits
//! protect nothing: these are the only guard.)

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;

#[test]
fn blobs_cannot_be_changed_or_linked_through_any_fd_spelling() {
    blobs_through_fd_spellings(&[]);
}

/// The same calls from a statically linked program, which the syscall
/// supervisor serves: the same answers.
#[test]
fn blobs_cannot_be_changed_through_any_fd_spelling_by_a_static_program() {
    blobs_through_fd_spellings(&["-static"]);
}

fn blobs_through_fd_spellings(cc_flags: &[&str]) {
    if !has_cc() || !can_link_static() {
        skip("no C compiler that links statically");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let reach = compile_c(&sb, "reach", cc_flags);
    let root = sb.mkdir("proj");
    sb.ok(&root, &["init"]);
    let out = sb.sh_in_view(&root, "echo original > f");
    assert!(out.status.success());
    // Sealed and committed: the entry's content is a blob now.
    sb.ok(&root, &["daemon", "stop"]);
    let hash = blake3::hash(b"original\n").to_hex().to_string();
    let blob = sb.store().join("blobs").join(&hash[..2]).join(&hash);
    let before = fs::metadata(&blob).unwrap();
    let outside = sb.path().join("outside");

    // fd 3 opened by the shell (through its shim), used by a child whose
    // shim never saw it opened.
    let script = format!("exec 3<f; {} {}", reach.display(), outside.display());
    let out = sb.sh_in_view(&root, &script);
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{got}");
    for line in [
        "fchmod EPERM",
        "fchown EPERM",
        "reopen-write EACCES",
        "devfd-write EACCES",
        "linkat-empty EXDEV",
        "linkat-proc EPERM",
        "truncate-proc EPERM",
        "chmod-proc EPERM",
        "setflags EPERM",
        "reopen-read ok",
        "content original",
    ] {
        assert!(got.lines().any(|l| l == line), "missing {line:?} in\n{got}");
    }
    assert!(!outside.exists(), "the blob got a second name");

    // The shell's own fd (known to its shim): /proc/self/fd/3 is the view
    // path, so writing it writes the file, copy-on-write.
    let script = "exec 3<f; echo evil > /proc/self/fd/3; cat f; \
                  echo cwd > /proc/self/cwd/g; cat g; \
                  echo root > /proc/self/root$PWD/h; cat h; \
                  echo devfd >> /dev/fd/3; cat f";
    let out = sb.sh_in_view(&root, script);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "evil\ncwd\nroot\nevil\ndevfd\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["f", "g", "h"] {
        assert!(!root.join(name).exists(), "{name} reached the disk");
    }

    let after = fs::metadata(&blob).unwrap();
    assert_eq!(fs::read(&blob).unwrap(), b"original\n");
    assert_eq!(after.permissions().mode(), before.permissions().mode());
    assert_eq!((after.uid(), after.nlink()), (before.uid(), before.nlink()));
    sb.ok(&root, &["daemon", "stop"]);
    let fsck = sb.ok(&root, &["fsck"]);
    assert!(!fsck.contains("corrupt"), "{fsck}");
}

#[test]
fn attributes_are_never_set_on_the_disk_or_a_blob() {
    attributes_case(&[]);
}

/// The same from a statically linked program (the syscall supervisor).
#[test]
fn attributes_are_never_set_by_a_static_program_either() {
    attributes_case(&["-static"]);
}

fn attributes_case(cc_flags: &[&str]) {
    if !has_cc() || !can_link_static() {
        skip("no C compiler that links statically");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let prog = compile_c(&sb, "xattrs", cc_flags);
    let root = sb.mkdir("proj");
    fs::write(root.join("seed.txt"), "seed\n").unwrap();
    let outside = sb.path().join("outside.txt");
    fs::write(&outside, "o").unwrap();
    let native = |mode: &str| {
        let out = std::process::Command::new(&prog)
            .args([mode, outside.to_str().unwrap()])
            .current_dir(&root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let prep = native("prep");
    if prep.contains("EOPNOTSUPP") {
        assert!(
            std::env::var_os("CI").is_none(),
            "no user xattrs on {}",
            root.display()
        );
        eprintln!("SKIPPED: the temp directory's filesystem has no user xattrs");
        return;
    }
    assert_eq!(prep, "prep ok\n");
    sb.ok(&root, &["init"]);
    let out = sb.sh_in_view(&root, "echo rift > f");
    assert!(out.status.success());
    sb.ok(&root, &["daemon", "stop"]);
    let script = format!("exec 3<f; {} view {}", prog.display(), outside.display());
    let out = sb.sh_in_view(&root, &script);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "setxattr disk EOPNOTSUPP\n\
         removexattr disk EOPNOTSUPP\n\
         lsetxattr rift EOPNOTSUPP\n\
         lremovexattr rift EOPNOTSUPP\n\
         fsetxattr disk fd EOPNOTSUPP\n\
         fremovexattr disk fd EOPNOTSUPP\n\
         fsetxattr rift fd EOPNOTSUPP\n\
         fsetxattr blob fd EPERM\n\
         fremovexattr blob fd EPERM\n\
         setxattr outside ok\n\
         getxattr disk ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The disk kept its attribute and got no new one; outside, the call
    // did what it does.
    assert_eq!(
        native("check"),
        "check pre ok\ncheck x ENODATA\ncheck outside ok\n"
    );
}

#[test]
fn executable_copies_cannot_be_poisoned_and_fsck_checks_them() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let a = sb.mkdir("a");
    let b = sb.mkdir("b");
    sb.ok(&a, &["init"]);
    sb.ok(&b, &["init"]);
    let build =
        "printf 'int main(void) { return 7; }\\n' > p.c && cc -o prog p.c && ./prog; echo rc=$?";
    for root in [&a, &b] {
        let out = sb.sh_in_view(root, build);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "rc=7\n");
    }
    // Project a tries to plant a program through its mirror of prog, which
    // is a hard link to the store's executable copy that b runs too.
    let out = sb.sh_in_view(
        &a,
        "cp /bin/true .vrift/exec/prog; echo cp=$?; chmod 777 .vrift/exec/prog; echo chmod=$?; \
         ln .vrift/exec/prog stolen; echo ln=$?",
    );
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.contains("cp=1") && got.contains("chmod=1") && got.contains("ln=1"),
        "{got}"
    );
    let out = sb.sh_in_view(&b, "./prog; echo rc=$?");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rc=7\n");

    // Changed behind vrift's back (outside any view): fsck finds and removes
    // the copy, and the next run makes a good one again.
    let exec = sb.store().join("exec");
    let copy = fs::read_dir(&exec).unwrap().next().unwrap().unwrap().path();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(&copy, b"#!/bin/sh\nexit 3\n").unwrap();
    let out = sb.run(&a, &["fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("tampered executable copy"),
        "{text}"
    );
    assert!(!copy.exists());
    let out = sb.sh_in_view(&b, "./prog; echo rc=$?");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rc=7\n");

    // Cut short, as a power loss can leave a copy (copies are not flushed):
    // the next run sees the size is not its blob's and makes it again.
    let copy = fs::read_dir(&exec).unwrap().next().unwrap().unwrap().path();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(&copy, b"").unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o555)).unwrap();
    let out = sb.sh_in_view(&a, "./prog; echo rc=$?");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rc=7\n");
    assert!(fs::metadata(&copy).unwrap().len() > 0);
}

/// A cwd whose path is longer than PATH_MAX (reached by raw chdir calls, or
/// inherited) cannot be read, so no path relative to it can be told in or
/// out of the view: inside the project such a call fails with ENAMETOOLONG
/// instead of reaching the disk; natively it creates the file.
#[test]
fn a_cwd_deeper_than_path_max_in_the_project_never_reaches_the_disk() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let probe = compile_c(&sb, "deep_cwd", &[]);
    let root = sb.mkdir("proj");
    let chain =
        "import os\nfor _ in range(25):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\n";
    for dir in [&root, &sb.mkdir("native")] {
        let st = std::process::Command::new("python3")
            .args(["-c", chain])
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    sb.ok(&root, &["init"]);
    let out = sb.sh_in_view(&root, &probe.display().to_string());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ENAMETOOLONG\n");
    let native = std::process::Command::new(&probe)
        .current_dir(sb.path().join("native"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&native.stdout), "created\n");
    let found = std::process::Command::new("find")
        .args([root.to_str().unwrap(), "-name", "f"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&found.stdout),
        "",
        "f reached the disk"
    );
}

/// A symlink outside the project that points into it: changes made
/// through it are changes of the view (the rift), never of the disk.
#[test]
fn changes_through_a_symlink_from_outside_land_in_the_rift() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    fs::create_dir(root.join("src")).unwrap();
    for name in ["a.c", "b.c", "keep.c"] {
        fs::write(root.join("src").join(name), name).unwrap();
    }
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);
    let link = sb.path().join("plink");
    std::os::unix::fs::symlink(&root, &link).unwrap();
    let l = link.display();
    let script = format!(
        "rm {l}/src/a.c && echo new > {l}/src/new.c && mv {l}/src/b.c {l}/src/moved.c && \
         chmod 600 {l}/src/keep.c && ls src && cat src/new.c && stat -c %a src/keep.c"
    );
    assert_eq!(
        sb.ok_in_view(&root, &script),
        "keep.c\nmoved.c\nnew.c\nnew\n600\n"
    );
    assert_eq!(disk_files(&root), before, "the disk changed");
    assert_eq!(
        fs::metadata(root.join("src/keep.c"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
}

/// Symlinks that lead out of the project write where they lead, as on
/// disk: a physical one (`physout -> /elsewhere`) and one made in the view;
/// a physical symlink to a directory inside the project writes the rift.
#[test]
fn symlinks_leading_out_of_the_project_write_where_they_lead() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    let out1 = sb.mkdir("elsewhere");
    let out2 = sb.mkdir("elsewhere2");
    std::os::unix::fs::symlink(&out1, root.join("physout")).unwrap();
    fs::create_dir(root.join("real")).unwrap();
    std::os::unix::fs::symlink("real", root.join("inlink")).unwrap();
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);
    let script = format!(
        "echo x > physout/f && mkdir physout/d && ln -s '{}' rl_abs && echo y > rl_abs/g && \
         mkdir rl_abs/dd && echo z > inlink/h && cat real/h",
        out2.display()
    );
    assert_eq!(sb.ok_in_view(&root, &script), "z\n");
    assert_eq!(fs::read_to_string(out1.join("f")).unwrap(), "x\n");
    assert!(out1.join("d").is_dir());
    assert_eq!(fs::read_to_string(out2.join("g")).unwrap(), "y\n");
    assert!(out2.join("dd").is_dir());
    assert_eq!(disk_files(&root), before, "the project's disk changed");
    assert_eq!(sb.ok(&root, &["cat", "real/h"]), "z\n");
}

/// Inode flags are never set on the files behind the view: `chattr +i` on
/// a rift file being written fails with EOPNOTSUPP (the rift keeps no
/// flags; an immutable staging file could never be sealed), and the file
/// seals and reads back afterwards.
#[test]
fn inode_flags_are_never_set_on_a_rift_file() {
    if std::process::Command::new("chattr")
        .arg("-V")
        .output()
        .is_err()
    {
        skip("chattr is not installed (e2fsprogs)");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    sb.ok(&root, &["init"]);
    let out = sb.sh_in_view(
        &root,
        "exec 4>f; echo x >&4; chattr +i f 2>/dev/null; echo rc=$?; exec 4>&-; cat f",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "rc=1\nx\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sb.ok(&root, &["daemon", "stop"]);
    assert_eq!(sb.ok(&root, &["cat", "f"]), "x\n");
    sb.ok(&root, &["discard", "--yes"]);
    let fsck = sb.ok(&root, &["fsck"]);
    assert!(!fsck.contains("corrupt"), "{fsck}");
}
