//! Programs that cannot load vrift's library — statically linked ones, Go
//! programs (whose runtime makes its own system calls), the dynamic loader
//! run as a program, valgrind's tools — run under vrift's syscall
//! supervisor inside an inception: they see the view and what they write
//! lands in the rift, like every other process. A program that gains
//! privileges at exec (set-user-ID, set-group-ID, file capabilities), for
//! which the dynamic loader ignores the library, is refused.
//! `VRIFT_UNVIEWED=run` runs one against the disk on purpose.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
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
    let root = sb.mkdir("p");
    fs::write(root.join("input.txt"), "disk\n").unwrap();
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);

    // The input changed in the view: the static program reads the view's.
    let (code, out, err) = in_view(
        &sb,
        &root,
        &format!("echo view > input.txt && {} 3", writer.display()),
    );
    assert_eq!((code, out.as_str()), (3, "read: view\nran\n"), "{err}");
    assert_eq!(err, "", "the supervisor said something");
    assert_eq!(sb.ok(&root, &["cat", "written.txt"]), "x\n");
    assert_eq!(sb.ok(&root, &["cat", "via-proc.txt"]), "p\n");
    assert_eq!(disk_files(&root), before, "a static program wrote the disk");

    // The shared blob behind a rift file cannot be written through its fd
    // (EACCES); fchmod of the fd changes the view's entry, as it would the
    // file on disk, and not the blob.
    let (_, out, err) = in_view(&sb, &root, &format!("{} written.txt", poke.display()));
    assert_eq!(out, "reopen 13\nfchmod 0\n", "{err}");
    assert_eq!(sb.ok(&root, &["cat", "written.txt"]), "x\n");
    assert_eq!(sb.ok_in_view(&root, "stat -c %a written.txt"), "777\n");
    let fsck = sb.ok(&root, &["fsck"]);
    assert!(!fsck.contains("corrupt"), "{fsck}");

    // Asked for explicitly, the static program runs against the disk.
    let (code, out, _) = in_view(
        &sb,
        &root,
        &format!("VRIFT_UNVIEWED=run {}", writer.display()),
    );
    assert_eq!((code, out.as_str()), (0, "read: disk\nran\n"));
    assert!(root.join("written.txt").exists());
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
    // the signal on; the program's death by it is the status the shell sees.
    let script = format!(
        "{} & pid=$!; while [ -z \"$(cat /proc/$pid/task/$pid/children 2>/dev/null)\" ]; do sleep 0.05; done; \
         kill -TERM $pid; wait $pid; echo $?",
        pauser.display()
    );
    let (code, out, err) = in_view(&sb, &root, &script);
    assert_eq!((code, out.as_str()), (0, "143\n"), "{err}");
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

    let out = sb.ok_in_view(&root, "/lib64/ld-linux-x86-64.so.2 ./hello");
    assert_eq!(out, "read: in-view\nran\n");
    let out = sb.ok_in_view(&root, "ldd ./hello");
    assert!(out.contains("libc.so.6"), "{out}");
    if Command::new("valgrind").arg("--version").output().is_err() {
        skip("valgrind is not installed");
    } else {
        let (code, out, err) = in_view(&sb, &root, "valgrind -q --error-exitcode=99 ./hello 5");
        assert_eq!((code, out.as_str()), (5, "read: in-view\nran\n"), "{err}");
    }
    assert_eq!(disk_files(&root), before, "the loader reached the disk");
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
    let out = sb.ok_in_view(&root, &format!("{go_env} go build -o hello . && ./hello"));
    assert_eq!(out, "result.txt\n");
    assert_eq!(
        sb.ok(&root, &["cat", "out/result.txt"]),
        "42 from the view\n"
    );
    let out = sb.ok_in_view(&root, &format!("{go_env} go vet . && go test ./..."));
    assert!(out.starts_with("ok "), "{out}");
    assert!(!root.join("hello").exists());
    assert_eq!(disk_files(&root), before, "go wrote the project's disk");
}

/// A dynamic program started by a static one runs under the filter too; if
/// it starts the project's daemon, the daemon is under it as well. vrift's
/// own calls are never served through the view (its mkdir would wait for
/// itself), and a supervisor whose program ended keeps serving the daemon
/// without holding the caller's pipes.
#[test]
fn a_daemon_started_under_the_filter_is_left_to_the_kernel() {
    let Some(sb) = static_sandbox() else { return };
    let launcher = static_binary(
        &sb,
        "launcher",
        "#include <unistd.h>\nint main(int c, char **v) { execvp(v[1], v + 1); return 127; }\n",
    );
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["daemon", "stop"]);
    let script = format!(
        "{} sh -c 'mkdir d && echo y > d/g && cat d/g'",
        launcher.display()
    );
    assert_eq!(sb.ok_in_view(&root, &script), "y\n");
    assert_eq!(sb.ok(&root, &["cat", "d/g"]), "y\n");
    assert!(!root.join("d/g").exists());
    sb.ok(&root, &["daemon", "stop"]);
}

/// A program under the supervisor that execs a file the view changed
/// cannot be given the view's file (its path argument cannot be changed
/// from outside): it gets EACCES and one line, never the stale copy the
/// disk holds under that name.
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
    let (code, out, err) = in_view(&sb, &root, &script);
    assert_eq!((code, out.as_str()), (127, "view\n"), "{err}");
    assert!(err.contains("which only the view holds"), "{err}");
    assert_eq!(err.matches("vrift:").count(), 1, "{err}");
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
    let out = sb.ok_in_view(&root, &format!("echo x > f && {}", prog.display()));
    assert_eq!(out, "open EFAULT\nmkdir EFAULT\nstat EFAULT\n");
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
