//! Programs that cannot load vrift's library — statically linked ones, Go
//! programs (whose runtime makes its own system calls), the dynamic loader
//! run as a program, valgrind's tools — run in the FUSE view (a mount
//! namespace of their own with the view mounted over the project) or
//! under vrift's syscall supervisor inside an inception: they see the view
//! and what they write lands in the rift, like every other process. Each
//! test runs under both mechanisms (`VRIFT_UNVIEWED_BY`). A program that gains
//! privileges at exec (set-user-ID, set-group-ID, file capabilities), for
//! which the dynamic loader ignores the library, is refused.
//! `VRIFT_UNVIEWED=run` runs one against the disk on purpose.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The two ways such programs are kept in the view (`VRIFT_UNVIEWED_BY`).
const MECHANISMS: [&str; 2] = ["fuse", "seccomp"];

/// `script` with the programs it runs kept in the view `by` a mechanism.
fn by(mechanism: &str, script: &str) -> String {
    format!("export VRIFT_UNVIEWED_BY={mechanism}; {script}")
}

/// Runs `script` in the view of `root`; returns (exit code, stdout, stderr).
fn in_view(sb: &Sandbox, root: &Path, script: &str) -> (i32, String, String) {
    let out = sb.sh_in_view(root, script);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads `input.txt`, writes `written.txt`, and through `/proc/self/cwd`
/// writes `via-proc.txt`; exits with its first argument.
const WRITER_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    char buf[100] = {0};
    FILE *in = fopen("input.txt", "r");
    if (in) { fgets(buf, sizeof buf, in); fclose(in); printf("read: %s", buf); }
    else perror("input.txt");
    FILE *f = fopen("written.txt", "w");
    if (f) { fputs("x\n", f); fclose(f); } else perror("written.txt");
    f = fopen("/proc/self/cwd/via-proc.txt", "w");
    if (f) { fputs("p\n", f); fclose(f); } else perror("via-proc.txt");
    puts("ran");
    return argc > 1 ? atoi(argv[1]) : 0;
}
"#;

/// Opens its argument read-only, then reopens `/proc/self/fd/N` for
/// writing and fchmods the fd; prints each errno (0: it worked).
const POKE_C: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror(argv[1]); return 1; }
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    int w = open(p, O_WRONLY);
    printf("reopen %d\n", w < 0 ? errno : 0);
    if (w >= 0) write(w, "EVIL", 4);
    printf("fchmod %d\n", fchmod(fd, 0777) < 0 ? errno : 0);
    return 0;
}
"#;

/// A static program that execs its arguments (a static parent of what it
/// runs).
const LAUNCHER_C: &str =
    "#include <unistd.h>\nint main(int c, char **v) { execvp(v[1], v + 1); return 127; }\n";

/// The library built and a sandbox for statically linked programs; `None`
/// (and SKIPPED, or a failure under `CI`) when `cc -static` cannot link.
fn static_sandbox() -> Option<Sandbox> {
    if !has_cc() || !can_link_static() {
        skip("no C compiler that links statically (libc6-dev's libc.a missing?)");
        return None;
    }
    build_shim();
    Some(Sandbox::new())
}

/// `source` compiled with `cc -static` into the sandbox as `name`.
fn static_binary(sb: &Sandbox, name: &str, source: &str) -> PathBuf {
    let src = sb.path().join(format!("{name}.c"));
    fs::write(&src, source).unwrap();
    let out = sb.path().join(name);
    let status = Command::new("cc")
        .args(["-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "cc -static {name}.c failed");
    out
}

#[test]
fn static_programs_see_the_view_and_write_to_the_rift() {
    let Some(sb) = static_sandbox() else { return };
    let writer = static_binary(&sb, "writer", WRITER_C);
    let poke = static_binary(&sb, "poke", POKE_C);
    for m in MECHANISMS {
        let root = sb.mkdir(&format!("p-{m}"));
        fs::write(root.join("input.txt"), "disk\n").unwrap();
        sb.ok(&root, &["init"]);
        let before = disk_files(&root);

        // The input changed in the view: the static program reads the view's.
        let (code, out, err) = in_view(
            &sb,
            &root,
            &by(
                m,
                &format!("echo view > input.txt && {} 3", writer.display()),
            ),
        );
        assert_eq!((code, out.as_str()), (3, "read: view\nran\n"), "{m}: {err}");
        assert_eq!(err, "", "{m}: vrift said something");
        assert_eq!(sb.ok(&root, &["cat", "written.txt"]), "x\n");
        assert_eq!(sb.ok(&root, &["cat", "via-proc.txt"]), "p\n");
        assert_eq!(
            disk_files(&root),
            before,
            "{m}: a static program wrote the disk"
        );

        // The shared blob behind a rift file cannot be written through its
        // fd. The supervisor hands the program the blob's fd, so a reopen
        // for writing is refused (EACCES); in the FUSE view the fd is the
        // view's file, and a reopen writes the view (a copy), as root may
        // on disk. fchmod of the fd changes the view's entry, not the blob.
        let (_, out, err) = in_view(
            &sb,
            &root,
            &by(m, &format!("{} written.txt", poke.display())),
        );
        let (reopen, content) = match m {
            "fuse" => ("reopen 0\nfchmod 0\n", "EVIL"),
            _ => ("reopen 13\nfchmod 0\n", "x\n"),
        };
        assert_eq!(out, reopen, "{m}: {err}");
        assert_eq!(sb.ok(&root, &["cat", "written.txt"]), content, "{m}");
        assert_eq!(sb.ok_in_view(&root, "stat -c %a written.txt"), "777\n");
        let fsck = sb.ok(&root, &["fsck"]);
        assert!(!fsck.contains("corrupt"), "{m}: {fsck}");

        // Asked for explicitly, the static program runs against the disk.
        let (code, out, _) = in_view(
            &sb,
            &root,
            &by(m, &format!("VRIFT_UNVIEWED=run {}", writer.display())),
        );
        assert_eq!((code, out.as_str()), (0, "read: disk\nran\n"), "{m}");
        assert!(root.join("written.txt").exists());
    }
}

#[test]
fn a_static_program_killed_by_a_signal_ends_its_supervisor_the_same_way() {
    let Some(sb) = static_sandbox() else { return };
    let pauser = static_binary(
        &sb,
        "pauser",
        "#include <unistd.h>\nint main(void) { pause(); return 0; }\n",
    );
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    // `kill` targets the pid the shell knows: the supervisor, which passes
    // the signal on, or the program itself in the FUSE view (exec'd in that
    // pid once its namespace is made); the program's death by it is the
    // status the shell sees.
    let script = format!(
        "{} & pid=$!; until [ \"$(cat /proc/$pid/comm)\" = pauser ] || pgrep -x -P $pid pauser >/dev/null; \
         do sleep 0.05; done; kill -TERM $pid; wait $pid; echo $?",
        pauser.display()
    );
    for m in MECHANISMS {
        let (code, out, err) = in_view(&sb, &root, &by(m, &script));
        assert_eq!((code, out.as_str()), (0, "143\n"), "{m}: {err}");
    }
}

#[test]
fn the_loader_ldd_and_valgrind_run_programs_built_in_the_view() {
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);
    fs::write(sb.path().join("hello.c"), WRITER_C).unwrap();
    let src = sb.path().join("hello.c");
    sb.ok_in_view(
        &root,
        &format!("cc -o hello {} && echo in-view > input.txt", src.display()),
    );
    assert!(!root.join("hello").exists());

    let valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    if !valgrind {
        skip("valgrind is not installed");
    }
    for m in MECHANISMS {
        let out = sb.ok_in_view(&root, &by(m, "/lib64/ld-linux-x86-64.so.2 ./hello"));
        assert_eq!(out, "read: in-view\nran\n", "{m}");
        let out = sb.ok_in_view(&root, &by(m, "ldd ./hello"));
        assert!(out.contains("libc.so.6"), "{m}: {out}");
        if valgrind {
            let script = by(m, "valgrind -q --error-exitcode=99 ./hello 5");
            let (code, out, err) = in_view(&sb, &root, &script);
            assert_eq!(
                (code, out.as_str()),
                (5, "read: in-view\nran\n"),
                "{m}: {err}"
            );
        }
        assert_eq!(
            disk_files(&root),
            before,
            "{m}: the loader reached the disk"
        );
    }
}

fn go_installed() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

const MAIN_GO: &str = r#"package main

import (
	"fmt"
	"os"
)

func Double(n int) int { return 2 * n }

func main() {
	b, err := os.ReadFile("data/input.txt")
	if err != nil {
		panic(err)
	}
	os.MkdirAll("out", 0o755)
	if err := os.WriteFile("out/result.txt", []byte(fmt.Sprintf("%d %s", Double(21), b)), 0o644); err != nil {
		panic(err)
	}
	entries, _ := os.ReadDir("out")
	for _, e := range entries {
		fmt.Println(e.Name())
	}
}
"#;

const MAIN_TEST_GO: &str = r#"package main

import (
	"os"
	"testing"
)

func TestDouble(t *testing.T) {
	if Double(2) != 4 {
		t.Fatal("Double(2)")
	}
	b, err := os.ReadFile("data/input.txt")
	if err != nil || string(b) != "from the view\n" {
		t.Fatalf("fixture: %q %v", b, err)
	}
}
"#;

#[test]
fn go_builds_tests_and_runs_in_the_view() {
    if !go_installed() {
        skip("go is not installed (Debian's golang-go)");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("gomod");
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);
    fs::write(sb.path().join("main.go"), MAIN_GO).unwrap();
    fs::write(sb.path().join("main_test.go"), MAIN_TEST_GO).unwrap();
    let go_env = format!(
        "export GOCACHE='{c}' GOPATH='{p}' GOFLAGS=-mod=mod GOTOOLCHAIN=local;",
        c = sb.path().join("gocache").display(),
        p = sb.path().join("gopath").display()
    );
    // The whole module exists only in the rift.
    sb.ok_in_view(
        &root,
        &format!(
            "{go_env} printf 'module example.com/w\\n\\ngo 1.19\\n' > go.mod && mkdir data && \
             echo 'from the view' > data/input.txt && cp '{}' '{}' .",
            sb.path().join("main.go").display(),
            sb.path().join("main_test.go").display()
        ),
    );
    for m in MECHANISMS {
        let script = by(
            m,
            &format!("{go_env} rm -rf out hello && go build -o hello . && ./hello"),
        );
        assert_eq!(sb.ok_in_view(&root, &script), "result.txt\n", "{m}");
        assert_eq!(
            sb.ok(&root, &["cat", "out/result.txt"]),
            "42 from the view\n"
        );
        let out = sb.ok_in_view(
            &root,
            &by(m, &format!("{go_env} go vet . && go test -count=1 ./...")),
        );
        assert!(out.starts_with("ok "), "{m}: {out}");
        assert!(!root.join("hello").exists());
        assert_eq!(
            disk_files(&root),
            before,
            "{m}: go wrote the project's disk"
        );
    }
}

/// A dynamic program started by a static one runs under the filter too; if
/// it starts the project's daemon, the daemon is under it as well. vrift's
/// own calls are never served through the view (its mkdir would wait for
/// itself), and a supervisor whose program ended keeps serving the daemon
/// without holding the caller's pipes.
#[test]
fn a_daemon_started_under_the_filter_is_left_to_the_kernel() {
    let Some(sb) = static_sandbox() else { return };
    let launcher = static_binary(&sb, "launcher", LAUNCHER_C);
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    for m in MECHANISMS {
        sb.ok(&root, &["daemon", "stop"]);
        let script = format!(
            "{} sh -c 'mkdir d-{m} && echo y > d-{m}/g && cat d-{m}/g'",
            launcher.display()
        );
        assert_eq!(sb.ok_in_view(&root, &by(m, &script)), "y\n", "{m}");
        assert_eq!(sb.ok(&root, &["cat", &format!("d-{m}/g")]), "y\n");
        assert!(!root.join(format!("d-{m}/g")).exists());
    }
    sb.ok(&root, &["daemon", "stop"]);
}

/// A program under the supervisor that execs a file the view changed
/// cannot be given the view's file (its path argument cannot be changed
/// from outside): it gets EACCES and one line, never the stale copy the
/// disk holds under that name. In the FUSE view it runs the view's file.
#[test]
fn a_supervised_program_never_execs_the_disks_stale_copy() {
    let Some(sb) = static_sandbox() else { return };
    let launcher = static_binary(
        &sb,
        "launcher",
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(int c, char **v) { execv(v[1], v + 1); perror(v[1]); return 127; }\n",
    );
    let root = sb.mkdir("p");
    fs::write(root.join("prog"), "#!/bin/sh\necho disk\n").unwrap();
    Command::new("chmod")
        .args(["755", root.join("prog").to_str().unwrap()])
        .status()
        .unwrap();
    sb.ok(&root, &["init"]);
    let script = format!(
        "printf '#!/bin/sh\\necho view\\n' > prog && ./prog && {} ./prog",
        launcher.display()
    );
    let (code, out, err) = in_view(&sb, &root, &by("seccomp", &script));
    assert_eq!((code, out.as_str()), (127, "view\n"), "{err}");
    assert!(err.contains("which only the view holds"), "{err}");
    assert_eq!(err.matches("vrift:").count(), 1, "{err}");
    // In the FUSE view the kernel execs the view's file.
    let (code, out, err) = in_view(&sb, &root, &by("fuse", &script));
    assert_eq!((code, out.as_str()), (0, "view\nview\n"), "{err}");
}

/// Bad pointers from a program under the supervisor get EFAULT, as from
/// the kernel: a path that is not mapped, and a stat buffer that is not
/// (for a file the supervisor serves).
#[test]
fn bad_pointers_from_a_supervised_program_get_efault() {
    let Some(sb) = static_sandbox() else { return };
    let prog = static_binary(
        &sb,
        "badptr",
        r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
int main(void) {
    int r = open((const char *)1, O_RDONLY);
    printf("open %s\n", r < 0 ? strerrorname_np(errno) : "ok");
    r = mkdir((const char *)1, 0755);
    printf("mkdir %s\n", r < 0 ? strerrorname_np(errno) : "ok");
    r = stat("f", (struct stat *)1);
    printf("stat %s\n", r < 0 ? strerrorname_np(errno) : "ok");
    return 0;
}
"#,
    );
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    for m in MECHANISMS {
        let out = sb.ok_in_view(&root, &by(m, &format!("echo x > f && {}", prog.display())));
        assert_eq!(out, "open EFAULT\nmkdir EFAULT\nstat EFAULT\n", "{m}");
    }
}

/// A set-group-ID program runs in the kernel's secure-execution mode, where
/// the dynamic loader ignores `LD_PRELOAD`: it would read the disk, not
/// the view (a rift file "does not exist" for it), and write the disk. It
/// is refused with one line, unless `VRIFT_UNVIEWED=run`; under
/// `no_new_privs` (where the kernel ignores the bit) it runs in the view.
#[test]
fn a_program_that_gains_privileges_is_refused_not_run_on_the_disk() {
    if !is_root() {
        skip("needs root (a program set-group-ID to nogroup)");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::write(root.join("disk.txt"), "on disk\n").unwrap();
    sb.ok(&root, &["init"]);
    // Outside the project: a copy of cat, set-group-ID to nogroup (root
    // keeps its user, and may read everything the test made).
    let sucat = set_group_id_cat(&sb.mkdir("bin").join("sgcat"));
    let sucat = sucat.display().to_string();

    let (code, out, err) = in_view(
        &sb,
        &root,
        &format!("echo rift > rift.txt; {sucat} rift.txt; echo \"exit $?\"; {sucat} disk.txt"),
    );
    assert_eq!(code, 126, "{out}{err}");
    assert_eq!(out, "exit 126\n", "{err}");
    // Both refused; said once (dash starts both by vfork: one memory).
    assert_eq!(err.matches("Permission denied").count(), 2, "{err}");
    assert!(
        err.contains(&format!(
            "vrift: refusing to run {sucat}: it gains privileges"
        )),
        "{err}"
    );
    assert!(!root.join("rift.txt").exists());

    // On purpose, it runs, against the disk: no rift file for it.
    let (_, out, err) = in_view(
        &sb,
        &root,
        &format!("VRIFT_UNVIEWED=run {sucat} disk.txt rift.txt"),
    );
    assert_eq!(out, "on disk\n", "{err}");
    assert!(err.contains("rift.txt: No such file or directory"), "{err}");

    // Under no_new_privs the kernel ignores the bit: the library loads.
    let (code, out, err) = in_view(
        &sb,
        &root,
        &format!("setpriv --no-new-privs {sucat} rift.txt"),
    );
    assert_eq!((code, out.as_str()), (0, "rift\n"), "{err}");

    // So it does on a nosuid mount.
    let nosuid = sb.mkdir("nosuid");
    let _mounted = Tmpfs::mount(&nosuid, "nosuid,size=4m");
    let there = set_group_id_cat(&nosuid.join("sgcat"));
    let (code, out, err) = in_view(&sb, &root, &format!("{} rift.txt", there.display()));
    assert_eq!((code, out.as_str()), (0, "rift\n"), "{err}");
}

/// A copy of cat at `at`, set-group-ID to nogroup (mode 2755).
fn set_group_id_cat(at: &Path) -> PathBuf {
    fs::copy("/bin/cat", at).unwrap();
    let st = Command::new("chgrp")
        .arg("nogroup")
        .arg(at)
        .status()
        .unwrap();
    assert!(st.success(), "chgrp nogroup {}", at.display());
    fs::set_permissions(at, std::os::unix::fs::PermissionsExt::from_mode(0o2755)).unwrap();
    at.to_path_buf()
}

/// Changes a static program makes with raw calls, each printed with its
/// result: file I/O, rename, symlinks in and out of the project, hard
/// links, modes, times, listings. `argv[1]`: a directory outside the
/// project; the cwd: the project (or its physical twin).
const CHANGES_C: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static void say(const char *what, int r) {
    printf("%s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
}
static void show(const char *path) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("read %s %s\n", path, strerrorname_np(errno)); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    struct stat st;
    stat(path, &st);
    printf("read %s %zd [%s] size %lld mode %o nlink %lu\n", path, n, buf,
           (long long)st.st_size, st.st_mode & 07777, (unsigned long)st.st_nlink);
}
static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}
static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { printf("list %s %s\n", dir, strerrorname_np(errno)); return; }
    char *names[64]; int n = 0; struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("list %s:", dir);
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");
}
int main(int argc, char **argv) {
    char out[512];
    int fd = open("a", O_WRONLY | O_CREAT | O_EXCL, 0644);
    say("create a", fd);
    write(fd, "abc", 3); close(fd);
    say("create a again", open("a", O_WRONLY | O_CREAT | O_EXCL, 0644));
    fd = open("a", O_WRONLY | O_APPEND);
    write(fd, "de", 2); close(fd);
    show("a");
    say("truncate a", truncate("a", 2));
    show("a");
    say("rename a b", rename("a", "b"));
    show("a"); show("b");
    say("mkdir d", mkdir("d", 0755));
    fd = open("d/f", O_WRONLY | O_CREAT, 0600); write(fd, "f", 1); close(fd);
    say("rename d e", rename("d", "e"));
    show("e/f");
    say("chmod e/f", chmod("e/f", 0640));
    say("link e/f g", link("e/f", "g"));
    show("g");
    say("symlink s", symlink("b", "s"));
    char target[64] = {0};
    say("readlink s", (int)readlink("s", target, sizeof target - 1));
    printf("target %s\n", target);
    show("s");
    say("unlink b", unlink("b"));
    show("s");
    say("unlink disk.txt", unlink("disk.txt"));
    show("disk.txt");
    show("keep.txt");
    snprintf(out, sizeof out, "%s/out.txt", argv[1]);
    say("symlink out", symlink(out, "out"));
    fd = open("out", O_WRONLY | O_CREAT, 0644);
    say("write through out", fd);
    write(fd, "o", 1); close(fd);
    show(out);
    fd = open("physout/new.txt", O_WRONLY | O_CREAT, 0644);
    say("write through physout", fd);
    write(fd, "n", 1); close(fd);
    say("mkdir physout/dd", mkdir("physout/dd", 0755));
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
    say("utimens keep.txt", utimensat(AT_FDCWD, "keep.txt", ts, 0));
    struct stat st; stat("keep.txt", &st);
    printf("mtime %ld\n", (long)st.st_mtime);
    say("rmdir e", rmdir("e"));
    fd = open("alloc", O_WRONLY | O_CREAT, 0644);
    say("fallocate", fallocate(fd, 0, 0, 8192));
    close(fd);
    show("alloc");
    fd = open("n\xff\x01", O_WRONLY | O_CREAT, 0644);
    say("create a non-UTF-8 name", fd);
    write(fd, "u", 1); close(fd);
    show("n\xff\x01");
    list(".");
    list("e");
    return 0;
}
"#;

/// Lays out what `CHANGES_C` expects in `dir`: two files and a symlink
/// pointing out of the tree, to `outside`.
fn changes_tree(dir: &Path, outside: &Path) {
    fs::write(dir.join("disk.txt"), "disk").unwrap();
    fs::write(dir.join("keep.txt"), "keep").unwrap();
    std::os::unix::fs::symlink(outside, dir.join("physout")).unwrap();
}

/// The same raw calls give the same answers in the view (the FUSE view and
/// the supervisor's) as on the disk, what they change lands in the rift — never on the project's disk
/// — and what they write through symlinks pointing out of the project
/// lands where those point, as on the disk.
#[test]
fn raw_calls_in_the_view_answer_as_the_disk_does() {
    let Some(sb) = static_sandbox() else { return };
    let prog = static_binary(&sb, "changes", CHANGES_C);
    for m in MECHANISMS {
        let root = sb.mkdir(&format!("p-{m}"));
        let twin = sb.mkdir(&format!("twin-{m}"));
        let out_view = sb.mkdir(&format!("out-view-{m}"));
        let out_twin = sb.mkdir(&format!("out-twin-{m}"));
        changes_tree(&root, &out_view);
        changes_tree(&twin, &out_twin);
        sb.ok(&root, &["init"]);
        let before = disk_files(&root);

        let native = Command::new(&prog)
            .arg(&out_twin)
            .current_dir(&twin)
            .output()
            .unwrap();
        assert!(native.status.success());
        let native =
            String::from_utf8_lossy(&native.stdout).replace(&*out_twin.to_string_lossy(), "OUT");
        let script = by(m, &format!("{} {}", prog.display(), out_view.display()));
        let (code, view, err) = in_view(&sb, &root, &script);
        assert_eq!(code, 0, "{m}: {err}");
        assert_eq!(
            view.replace(&*out_view.to_string_lossy(), "OUT"),
            native,
            "{m}"
        );
        assert_eq!(err, "", "{m}");

        // The project's disk holds what it held; the view holds the changes.
        assert_eq!(
            disk_files(&root),
            before,
            "{m}: a raw call reached the project's disk"
        );
        assert_eq!(sb.ok(&root, &["cat", "g"]), "f");
        assert!(sb.fails(&root, &["cat", "disk.txt"]).contains("disk.txt"));
        // Outside the project, as on disk.
        assert_eq!(fs::read_to_string(out_view.join("out.txt")).unwrap(), "o");
        assert_eq!(fs::read_to_string(out_view.join("new.txt")).unwrap(), "n");
        assert!(out_view.join("dd").is_dir());
    }
}

/// A file of the store a static program inherits (its shell's `< file`)
/// is no way to the blob: such a program runs under the supervisor, which
/// refuses fchmod of the fd and a reopen of `/proc/self/fd/0` for writing
/// (root may, on disk); with the FUSE view insisted on, it gets a private
/// copy, which they change. The view and the store keep their content.
#[test]
fn an_inherited_fd_of_a_rift_file_cannot_reach_its_blob() {
    let Some(sb) = static_sandbox() else { return };
    let poke = static_binary(
        &sb,
        "poke0",
        r#"
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    char buf[16] = {0};
    read(0, buf, 4);
    printf("read [%s]\n", buf);
    fchmod(0, 0777);
    int w = open("/proc/self/fd/0", O_WRONLY);
    if (w >= 0) write(w, "EVIL", 4);
    return 0;
}
"#,
    );
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok_in_view(&root, "echo content > r.txt");
    // Sealed into the store: the shell's redirection then opens the blob.
    sb.ok(&root, &["daemon", "stop"]);
    for m in MECHANISMS {
        let out = sb.ok_in_view(&root, &by(m, &format!("{} < r.txt", poke.display())));
        assert_eq!(out, "read [cont]\n", "{m}");
        assert_eq!(sb.ok(&root, &["cat", "r.txt"]), "content\n", "{m}");
        assert_eq!(sb.ok_in_view(&root, "stat -c %a r.txt"), "644\n", "{m}");
        let fsck = sb.ok(&root, &["fsck"]);
        assert!(!fsck.contains("corrupt"), "{m}: {fsck}");
    }
}

/// `vrift run -- PROGRAM` with a program that cannot load the library
/// keeps it in the view too (it is started through the inception's
/// shell, not by vrift's own exec).
#[test]
fn vrift_run_keeps_a_static_program_in_the_view() {
    let Some(sb) = static_sandbox() else { return };
    let writer = static_binary(&sb, "writer", WRITER_C);
    let root = sb.mkdir("p");
    fs::write(root.join("input.txt"), "disk\n").unwrap();
    sb.ok(&root, &["init"]);
    sb.ok_in_view(&root, "echo view > input.txt");
    let out = sb.ok(&root, &["run", "--", writer.to_str().unwrap()]);
    assert_eq!(out, "read: view\nran\n");
    assert!(
        !root.join("written.txt").exists(),
        "vrift run ran it on the disk"
    );
    assert_eq!(sb.ok(&root, &["cat", "written.txt"]), "x\n");
}

/// For a user other than root the FUSE view is mounted in a user namespace
/// of its own (mapping only that user): a static program of such a user
/// sees the view and writes the rift, and the files keep their owner.
#[test]
fn the_fuse_view_serves_a_user_other_than_root() {
    if !is_root() {
        skip("needs root to act as another user (setpriv)");
        return;
    }
    let Some(sb) = static_sandbox() else { return };
    let fuse_open = fs::metadata("/dev/fuse").is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o006 == 0o006
    });
    if !fuse_open {
        skip("/dev/fuse is not open to other users (.ci/run makes it 0666, as Debian does)");
        return;
    }
    let writer = static_binary(&sb, "writer", WRITER_C);
    let root = sb.mkdir("p");
    fs::write(root.join("input.txt"), "disk\n").unwrap();
    chown_to_nobody(&sb.path());
    let as_nobody =
        |cwd: &Path, args: &[&str]| command_as(&sb, cwd, VRIFT, args, true).output().unwrap();
    let init = as_nobody(&root, &["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let before = disk_files(&root);
    let script = by(
        "fuse",
        &format!(
            "echo view > input.txt && {} && stat -c '%u %a' written.txt",
            writer.display()
        ),
    );
    let out = as_nobody(&root, &["run", "--", "sh", "-c", &script]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "read: view\nran\n65534 644\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(disk_files(&root), before, "the program wrote the disk");
    let cat = as_nobody(&root, &["cat", "written.txt"]);
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "x\n");
    as_nobody(&root, &["daemon", "stop"]);
}

/// A program in the FUSE view that runs vrift's own tools (an applet) after
/// the project's daemon would have idled out: the applet acts through the
/// mount like any program there (its change is seen at once by the rest of
/// the program, and lands in the rift), and no daemon is started inside the
/// namespace (the server holds a connection for the program's life).
#[test]
fn vrift_tools_inside_the_fuse_view_act_through_it() {
    let Some(sb) = static_sandbox() else { return };
    let launcher = static_binary(&sb, "launcher", LAUNCHER_C);
    let root = sb.mkdir("p");
    fs::write(root.join("a.txt"), "a\n").unwrap();
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["daemon", "stop"]);
    let script = by(
        "fuse",
        &format!(
            "{} sh -c 'sleep 1.5; {} cp a.txt b.txt && cat b.txt'",
            launcher.display(),
            VRIFT
        ),
    );
    let mut cmd = sb.cmd(&root, &["run", "--", "sh", "-c", &script]);
    cmd.env("VRIFT_DAEMON_IDLE", "0.3");
    let out = output_within(cmd, std::time::Duration::from_secs(60))
        .expect("the program hung: a daemon started inside the namespace?");
    assert_eq!(text(&out.stdout), "a\n", "{}", text(&out.stderr));
    assert_eq!(sb.ok(&root, &["cat", "b.txt"]), "a\n");
    assert!(!root.join("b.txt").exists());
}

/// A file another process of the inception makes while a program runs in
/// the FUSE view (through the library, not the mount) reaches that program
/// too: the kernel's cached absence of the name expires (0.2 s).
#[test]
fn a_change_made_outside_the_fuse_view_reaches_the_program() {
    let Some(sb) = static_sandbox() else { return };
    let waiter = static_binary(
        &sb,
        "waiter",
        r#"
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    if (stat("late.txt", &st) == 0) { puts("there at once"); return 1; }
    for (int i = 0; i < 600; i++) {
        if (stat("late.txt", &st) == 0) {
            char buf[16] = {0};
            int fd = open("late.txt", O_RDONLY);
            read(fd, buf, sizeof buf - 1);
            printf("seen %s", buf);
            return 0;
        }
        usleep(50000);
    }
    puts("never seen");
    return 1;
}
"#,
    );
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    for m in MECHANISMS {
        let script = by(
            m,
            &format!(
                "rm -f late.txt; (sleep 0.5; echo {m} > late.txt) & {}; rc=$?; wait; exit $rc",
                waiter.display()
            ),
        );
        let (code, out, err) = in_view(&sb, &root, &script);
        assert_eq!((code, out), (0, format!("seen {m}\n")), "{m}: {err}");
    }
}
