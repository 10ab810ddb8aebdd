//! POSIX corners answered in the view exactly as on disk: bad pointers
//! (EFAULT, never a crash), names past NAME_MAX, long paths, ENOTDIR below
//! a file the view made. The same C program runs natively in a copy and
//! under `vrift run` in the project; its lines must match, and what it
//! wrote must be in the rift, not on the project's disk.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

#[test]
fn bad_pointers_long_names_and_long_paths_answer_as_the_kernel() {
    let Some((sb, root, n)) = probe_native_and_in_view("edges") else {
        return;
    };
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
/// access01; gVisor's CanTruncateReadOnly, PathNotCleaned,
/// CannotRemoveDots): each corner answers in the view as on disk.
#[test]
fn issue_15_ltp_corners_answer_as_the_kernel() {
    let Some((sb, root, n)) = probe_native_and_in_view("ltp_corners") else {
        return;
    };
    assert!(n.contains("read O_PATH                  -1 EBADF"), "{n}");
    assert!(n.contains("fstat after O_TRUNC          0\n"), "{n}");
    assert!(n.contains("lstat missing/../f           -1 ENOENT"), "{n}");
    assert!(n.contains("stat f/../f                  -1 ENOTDIR"), "{n}");
    assert!(n.contains("mknod fifo nx/               -1 ENOENT"), "{n}");
    assert!(n.contains("rename f to m/               -1 ENOTDIR"), "{n}");
    assert!(n.contains("stat l2/../only              0 -"), "{n}");
    assert!(n.contains("access lk/made2              0 -"), "{n}");
    // What it wrote is in the rift, through a link outside too.
    assert!(!root.join("f").exists());
    assert!(!root.join("lk/made2").exists());
    assert_eq!(sb.ok(&root, &["cat", "f"]), "data\n");
}

/// Runs the C probe `tests/c/NAME.c` natively in a twin directory and in
/// the view of a fresh project; asserts the lines match. Returns the
/// sandbox, the project and the native output.
fn probe_native_and_in_view(name: &str) -> Option<(Sandbox, std::path::PathBuf, String)> {
    probe_with_setup(name, |_, _| {})
}

/// [`probe_native_and_in_view`] after `setup` ran on the project and on
/// its physical twin (before `vrift init`).
fn probe_with_setup(
    name: &str,
    setup: impl Fn(&Sandbox, &Path),
) -> Option<(Sandbox, std::path::PathBuf, String)> {
    if !has_cc() {
        skip("no C compiler");
        return None;
    }
    build_shim();
    let sb = Sandbox::new();
    let prog = compile_c(&sb, name, &[]);
    let root = sb.mkdir("proj");
    let twin = sb.mkdir("twin");
    for dir in [&root, &twin] {
        setup(&sb, dir);
    }
    sb.ok(&root, &["init"]);
    let n = same_probe_output(&sb, &prog, &root, &twin);
    Some((sb, root, n))
}

/// Lets every user reach `dir` (the sandbox's directories are private).
fn open_to_others(sb: &Sandbox, dir: &Path) {
    for anc in dir.ancestors().take_while(|a| a.starts_with(sb.path())) {
        let mode = fs::metadata(anc).unwrap().permissions().mode();
        fs::set_permissions(anc, fs::Permissions::from_mode(mode | 0o011)).unwrap();
    }
}

/// Permissions for the process's credentials (issue 15): as root, a probe
/// makes files and directories of every kind of mode; its children drop to
/// nobody (`seteuid`, `setuid`, `setresuid`; with a supplementary group and
/// without) and read, stat, access, create, write, truncate, remove (in
/// sticky directories too), rename, link, chmod, chown and utimes, each
/// allowed or refused exactly as on disk (compared line by line); root
/// that dropped capabilities (the process's, or one thread's through the
/// raw `capset`) is refused what they granted; what nobody creates is
/// nobody's; the disk of the project is untouched.
#[test]
fn a_process_that_changes_its_credentials_is_judged_by_them() {
    if !is_root() {
        skip("needs root (the probe drops to nobody)");
        return;
    }
    // nobody must be able to reach both trees.
    let Some((sb, root, n)) = probe_with_setup("creds", open_to_others) else {
        return;
    };
    let twin = sb.path().join("twin");
    for line in [
        "read root file 0644 ok",
        "read root file 0600 EACCES",
        "stat below 0700 dir EACCES",
        "access below 0700 dir ok",
        "readlink below 0700 dir EACCES",
        "create in 0755 dir EACCES",
        "create in 0777 dir ok",
        "d777/new 65534:65534 0644",
        "write-open of 0644 root file EACCES",
        "write-open of 0666 root file ok",
        "write-open below 0700 dir EACCES",
        "unlink root file, sticky dir EPERM",
        "unlink own file, sticky dir ok",
        "chmod root file EPERM",
        "d777/new 65534:65534 2770",
        "chown own file to root EPERM",
        "utimes now, root file 0644 EACCES",
        "utimes explicit, root file 0666 EPERM",
        "truncate root file 0644 EACCES",
        "link root file 0644 EPERM",
        "rmdir root dir, sticky EPERM",
        "create in 0755 dir as root again ok",
        "member: write-open of group 0660 ok",
        "outsider: write-open of group 0660 EACCES",
        "400 files made as nobody, unseen: 0",
        "suid4777 0:0 0777",
        "sgid2777 0:0 0777",
        "suidtrunc 0:0 0777",
        "suidroot 0:0 4755",
        "d755/rootgrp 0:65534 0644",
        "d755/fifo 0:65534 0600",
        "d755/grpdir 0:65534 0755",
        "no DAC: stat in 0000 dir EACCES",
        "no DAC: exec of own 0011 file EACCES",
        "no DAC: write-open of 0444 file EACCES",
        "no DAC: read of 0000 file EACCES",
        "no DAC: create in 0555 dir EACCES",
        "no DAC: write-open of own 0644 ok",
        "no DAC: access W of 0444 file ok",
        "no FOWNER: chmod nobody's file EPERM",
        "no FOWNER: utimes nobody's file EPERM",
        "no CHOWN: chown root file EPERM",
        "main thread: chmod nobody's file ok",
        "nob644 65534:65534 0640",
        "new userns: truncate of 0444 file EACCES",
    ] {
        assert!(has_line(&n, line), "{line:?} in\n{n}");
    }
    // Everything nobody made is in the rift only.
    for made in ["d777/new2", "d777/l", "d777/member", "d755/root2"] {
        assert!(twin.join(made).symlink_metadata().is_ok(), "{made}");
        assert!(
            root.join(made).symlink_metadata().is_err(),
            "{made} on disk"
        );
    }
    let owner = sb.sh_in_view(&root, "stat -c %u:%g d777/member");
    assert_eq!(text(&owner.stdout).trim(), "65534:65534");
}

/// A process that starts in the project as another uid than its owner's
/// (`setpriv` before the program) cannot read the project's table: it is
/// refused in the project with one line, never shown the disk as the view
/// nor let write there (a shared store, so that it can load the library).
#[test]
fn a_process_started_as_another_uid_is_refused_not_shown_the_disk() {
    let Some((err, leaked)) = write_as_nobody_after_setpriv(true) else {
        return;
    };
    assert!(
        err.contains("runs as another user than the project's owner and cannot see its view"),
        "{err}"
    );
    assert!(!leaked, "the write reached the disk");
}

/// With a private store (0700) the other uid could not even load the
/// library: the dynamic loader would skip it with a warning and the
/// program would write the project's disk. The library of the process
/// that changed its user refuses to start it instead, with one line.
#[test]
fn a_program_started_after_a_change_of_user_that_cannot_load_the_library_is_refused() {
    let Some((err, leaked)) = write_as_nobody_after_setpriv(false) else {
        return;
    };
    assert!(
        err.contains("vrift: refusing to run") && err.contains("may not read the view library"),
        "{err}"
    );
    assert!(!leaked, "the write reached the disk");
}

/// `vrift run -- setpriv --reuid=65534 … sh -c 'echo x > open/leak'` in
/// a project whose store is `shared` or private: the stderr, and whether
/// the write reached the disk. None (skipped) unless root.
fn write_as_nobody_after_setpriv(shared: bool) -> Option<(String, bool)> {
    if !is_root() {
        skip("needs root (setpriv to nobody)");
        return None;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    open_to_others(&sb, &root);
    let mut init = sb.cmd(&root, &["init"]);
    if shared {
        init.env("VRIFT_STORE_SHARED", "1");
    }
    assert!(init.status().unwrap().success());
    fs::create_dir(root.join("open")).unwrap();
    fs::set_permissions(root.join("open"), fs::Permissions::from_mode(0o777)).unwrap();
    let out = sb.run(
        &root,
        &[
            "run",
            "--",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            "echo x > open/leak",
        ],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    Some((err, root.join("open/leak").exists()))
}

/// Hard links are one inode with several names (issue 15; git clone
/// --local, ccache's hard-link mode and pnpm rely on them): the count and
/// inode number, a write or chmod through one name seen through the
/// others, unlinking one keeping the rest, rename between two names of one
/// inode doing nothing, a link made while the file is written, links to a
/// disk file and to a symlink — each as on disk (compared line by line).
/// The links survive the daemon (the index is rebuilt from the table), and
/// the disk's file is untouched.
#[test]
fn hard_links_are_one_inode_with_several_names() {
    let Some((sb, root, n)) = probe_with_setup("links", |_, dir| {
        fs::write(dir.join("disk.txt"), "disk").unwrap();
    }) else {
        return;
    };
    for line in [
        "a nlink 2 mode 0644 size 3 content one",
        "same inode a b: yes",
        "a nlink 2 mode 0644 size 6 content onetwo",
        "a nlink 2 mode 0600 size 6 content onetwo",
        "b nlink 3 mode 0600 size 6 content onetwo",
        "c nlink 2 mode 0600 size 6 content onetwo",
        "rename b c (one inode) ok",
        "b nlink 1 mode 0600 size 6 content onetwo",
        "fstat of the writer: nlink 2",
        "w nlink 2 mode 0644 size 3 content xyz",
        "disk.txt nlink 2 mode 0644 size 9 content disk+more",
        "same inode s s2: yes",
        "link dir EPERM",
    ] {
        assert!(has_line(&n, line), "{line:?} in\n{n}");
    }
    assert_eq!(fs::read_to_string(root.join("disk.txt")).unwrap(), "disk");
    assert!(!root.join("b").exists(), "a rift file on disk");
    // Across a daemon restart: the count, and a write through one name
    // seen through the other.
    sb.ok(&root, &["daemon", "stop"]);
    let out = sb.sh_in_view(
        &root,
        "stat -c %h w2 && echo more >> w2 && cat w && stat -c %h disk2",
    );
    assert_eq!(
        text(&out.stdout),
        "2\nxyzmore\n2\n",
        "{}",
        text(&out.stderr)
    );
    // Written back to the disk, the names of one inode are one inode there.
    sb.ok(&root, &["materialize"]);
    let (w, w2) = (
        fs::metadata(root.join("w")).unwrap(),
        fs::metadata(root.join("w2")).unwrap(),
    );
    assert_eq!((w.ino(), w.nlink()), (w2.ino(), 2));
    assert_eq!(fs::read_to_string(root.join("w2")).unwrap(), "xyzmore\n");
}

/// LTP open04, creat05, dup06, dup205 (issue 15): the daemon keeps no fd
/// per file open for writing (three processes hold 180 such files while
/// the daemon, started under their limit of 100, ran out before), and a
/// process whose fd table is full gets EMFILE for an open — before the
/// daemon creates anything — and still unlinks, renames and mkdirs.
#[test]
fn fd_limits_answer_as_the_kernel_and_never_exhaust_the_daemon() {
    let Some((sb, root, n)) = probe_native_and_in_view("fds") else {
        return;
    };
    for line in [
        "writers holding 60 files 3 of 3",
        "files read back 180 of 180",
        "opened every free slot yes EMFILE",
        "creat when full -1 EMFILE",
        "unlink when full 0 -",
        "stat another -1 ENOENT",
        "open takes the freed slot yes",
    ] {
        assert!(has_line(&n, line), "{line:?} in\n{n}");
    }
    // What it wrote is in the rift.
    assert!(!root.join("h2_59").exists());
    assert_eq!(sb.ok(&root, &["cat", "h2_59"]), "h2_59");
}

/// Whether `out` has `line`, runs of blanks counting as one.
fn has_line(out: &str, line: &str) -> bool {
    out.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line)
}

/// Times as the kernel changes them (issue 15): write, chmod, chown,
/// utimensat, truncate, rename and link move a rift entry's ctime (and only
/// a write or truncate its mtime); a name made or removed in a directory
/// moves the directory's mtime and ctime; reading moves nothing; times set
/// through a read fd show in its fstat.
#[test]
fn ctime_and_parent_times_change_as_on_disk() {
    let Some((_sb, root, n)) = probe_native_and_in_view("times") else {
        return;
    };
    for line in [
        "chmod ok ctime moved mtime kept",
        "rename (moved file) ok ctime moved mtime kept",
        "fstat ctime = stat ctime yes",
        "dir: create ok ctime moved mtime moved",
        "dir: unlink ok ctime moved mtime moved",
        "dir: open existing ok ctime kept mtime kept",
        "futimesat fd, fstat ok atime 10 mtime 20",
        "futimens now, fstat ok atime now mtime now",
    ] {
        assert!(has_line(&n, line), "{line:?} in\n{n}");
    }
    assert!(!root.join("d/f").exists());
}

/// Set-group-ID dropped on create as the kernel drops it (issue 15): in a
/// set-group-ID directory, by a process outside its group without
/// CAP_FSETID (the probe drops it), for a mode with group execute.
#[test]
fn set_group_id_is_dropped_on_create_for_non_members() {
    if !is_root() {
        skip("needs root (the probe chowns a directory and drops CAP_FSETID)");
        return;
    }
    let Some((_sb, root, n)) = probe_native_and_in_view("setgid") else {
        return;
    };
    for line in [
        "CAP_FSETID, setgid dir 2755",
        "outsider, setgid dir 0755",
        "outsider, no g+x 2745",
        "outsider, plain dir 2755",
    ] {
        assert!(has_line(&n, line), "{line:?} in\n{n}");
    }
    assert!(!root.join("sg/b").exists());
}

/// The mode bits hold for the project's own user too (gVisor's chmod,
/// open_create, rename, symlink and unlink tests as `nobody`): a file made
/// read-only cannot be written or truncated, a file of mode 000 cannot be
/// read, a directory made read-only takes no new name and loses none, one
/// made unsearchable hides what is below it from stat, open and readlink
/// (the library checks search permission from then on) — each as on disk (the same script natively and in the view). Run as a
/// user that is not root (root passes these checks): as root, the whole
/// project, its daemon and the script run as nobody.
#[test]
fn mode_bits_hold_for_the_projects_own_user() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    let twin = sb.mkdir("twin");
    let nobody = is_root();
    if nobody {
        chown_to_nobody(&sb.path());
    }
    // As the project's user: nobody through setpriv when the test is root.
    let run = |cwd: &Path, program: &str, args: &[&str]| {
        command_as(&sb, cwd, program, args, nobody)
            .output()
            .unwrap()
    };
    let init = run(&root, VRIFT, &["init"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let script = "umask 022
        say() { if (eval \"$2\") 2>/dev/null; then echo \"$1: ok\"; else echo \"$1: denied\"; fi; }
        echo hi > f; chmod 444 f
        say 'append to 0444' 'echo x >> f'
        say 'truncate 0444' ': > f'
        chmod 000 f
        say 'read 0000' 'cat f >/dev/null'
        chmod 600 f
        say 'read 0600' 'cat f >/dev/null'
        mkdir ro; echo z > ro/z; chmod 555 ro
        say 'create in 0555 dir' 'echo x > ro/new'
        say 'mkdir in 0555 dir' 'mkdir ro/d'
        say 'symlink in 0555 dir' 'ln -s x ro/l'
        say 'unlink in 0555 dir' 'rm -f ro/z'
        say 'rename out of 0555 dir' 'mv ro/z moved'
        say 'rename into 0555 dir' 'mv f ro/f'
        chmod 755 ro
        say 'unlink once writable' 'rm ro/z'
        mkdir sd; echo s > sd/s; ln -s s sd/l; chmod 644 sd
        say 'stat in 0644 dir' 'test -e sd/s'
        say 'read in 0644 dir' 'cat sd/s'
        say 'readlink in 0644 dir' 'readlink sd/l'
        say 'list 0644 dir' 'ls sd'
        chmod 755 sd
        say 'stat once searchable' 'test -e sd/s'
        chmod 644 sd
        cat f; ls ro";
    let view = run(&root, VRIFT, &["run", "--", "sh", "-c", script]);
    let native = run(&twin, "sh", &["-c", script]);
    assert_eq!(
        text(&view.stdout),
        text(&native.stdout),
        "{}",
        text(&view.stderr)
    );
    let out = text(&native.stdout);
    for line in [
        "append to 0444: denied",
        "truncate 0444: denied",
        "read 0000: denied",
        "read 0600: ok",
        "create in 0555 dir: denied",
        "symlink in 0555 dir: denied",
        "unlink in 0555 dir: denied",
        "rename out of 0555 dir: denied",
        "unlink once writable: ok",
        "stat in 0644 dir: denied",
        "read in 0644 dir: denied",
        "readlink in 0644 dir: denied",
        "list 0644 dir: ok",
        "stat once searchable: ok",
    ] {
        assert!(has_line(&out, line), "{line:?} in\n{out}");
    }
    // What the view wrote is in the rift.
    assert!(!root.join("f").exists());
    // vrift's own coreutils ask for the same search permission.
    let cp = run(&root, VRIFT, &["cp", "sd/s", "copied"]);
    assert!(
        !cp.status.success() && text(&cp.stderr).contains("Permission denied"),
        "{cp:?}"
    );
    // The project's user may still stop its own daemon.
    let stop = run(&root, VRIFT, &["daemon", "stop"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
}

/// A filesystem mounted below the project (a tmpfs on `build/`, LTP's
/// loop devices) is not the project's: what the view does there, the
/// kernel does on it (its EROFS, its own links, FIFOs and renames), a
/// rename or link between it and the project is EXDEV, and none of it is
/// in the rift.
#[test]
fn a_filesystem_mounted_below_the_project_is_not_the_rifts() {
    if !is_root() {
        skip("mounting a tmpfs needs root");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::create_dir(root.join("mnt")).unwrap();
    fs::write(root.join("seed.txt"), "seed\n").unwrap();
    sb.ok(&root, &["init"]);
    let mnt = root.join("mnt");
    let tmpfs = Tmpfs::mount(&mnt, "size=4m");

    let out = sb.ok_in_view(
        &root,
        "set -e
         echo on-tmpfs > mnt/f
         mkdir mnt/d && echo in-d > mnt/d/g
         mv mnt/f mnt/d/h
         ln mnt/d/h mnt/hl
         chmod 600 mnt/d/h
         mkfifo mnt/fifo
         echo rift > r.txt
         mv r.txt mnt/moved
         ln mnt/d/g linked 2>&1 || true
         ln seed.txt mnt/seedlink 2>&1 || true
         rmdir mnt 2>&1 || true
         mkdir e && python3 -c 'import os; os.rename(\"e\", \"mnt\")' 2>&1 | tail -1
         cat mnt/moved mnt/hl",
    );
    assert!(
        out.contains(
            "ln: failed to create hard link 'linked' => 'mnt/d/g': Invalid cross-device link"
        ),
        "{out}"
    );
    assert!(
        out.contains("'mnt/seedlink' => 'seed.txt': Invalid cross-device link"),
        "{out}"
    );
    assert!(
        out.contains("rmdir: failed to remove 'mnt': Device or resource busy"),
        "{out}"
    );
    // A rename onto the mount point: the kernel's EBUSY, as natively.
    assert!(
        out.contains("OSError: [Errno 16] Device or resource busy: 'e' -> 'mnt'"),
        "{out}"
    );
    assert!(out.ends_with("rift\non-tmpfs\n"), "{out}");

    // All of it is on the tmpfs, as the kernel made it.
    assert_eq!(fs::read_to_string(mnt.join("d/h")).unwrap(), "on-tmpfs\n");
    let h = fs::metadata(mnt.join("d/h")).unwrap();
    assert_eq!(h.mode() & 0o7777, 0o600);
    assert_eq!(h.nlink(), 2, "one inode, two names");
    assert_eq!(h.ino(), fs::metadata(mnt.join("hl")).unwrap().ino());
    assert!(fs::symlink_metadata(mnt.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::read_to_string(mnt.join("moved")).unwrap(), "rift\n");
    assert!(!mnt.join("f").exists());
    // Nothing of it in the rift; the project's own disk untouched.
    let diff = sb.ok(&root, &["diff"]);
    assert!(!diff.contains("mnt"), "{diff}");
    assert!(!root.join("r.txt").exists() && !root.join("linked").exists());
    assert_eq!(sb.ok_in_view(&root, "ls mnt"), "d\nfifo\nhl\nmoved\n");

    // vrift's own coreutils (what the wrappers of programs that cannot
    // load the library run) make their changes there on the disk too.
    sb.ok(&root, &["mkdir", "mnt/made"]);
    sb.ok(&root, &["mv", "mnt/d/g", "mnt/made/g"]);
    sb.ok(&root, &["chmod", "640", "mnt/made/g"]);
    sb.ok(&root, &["rm", "mnt/hl"]);
    let g = fs::metadata(mnt.join("made/g")).unwrap();
    assert_eq!(g.mode() & 0o7777, 0o640);
    assert!(!mnt.join("d/g").exists() && !mnt.join("hl").exists());
    assert_eq!(fs::metadata(mnt.join("d/h")).unwrap().nlink(), 1);
    let diff = sb.ok(&root, &["diff"]);
    assert!(!diff.contains("mnt"), "{diff}");

    // Read-only, the kernel refuses as it does outside the view.
    tmpfs.read_only();
    let out = sb.ok_in_view(
        &root,
        "touch mnt/new 2>&1 || true; chmod 644 mnt/d/h 2>&1 || true; rm mnt/moved 2>&1 || true",
    );
    assert!(
        out.contains("touch: cannot touch 'mnt/new': Read-only file system"),
        "{out}"
    );
    assert!(
        out.contains("changing permissions of 'mnt/d/h': Read-only file system"),
        "{out}"
    );
    assert!(
        out.contains("cannot remove 'mnt/moved': Read-only file system"),
        "{out}"
    );
    assert_eq!(
        fs::metadata(mnt.join("d/h")).unwrap().mode() & 0o7777,
        0o600
    );
    assert!(mnt.join("moved").exists());
    drop(tmpfs);
}
