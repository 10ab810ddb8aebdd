//! The LD_PRELOAD library under stress: threads, fork, vfork, signals,
//! process start-up, an interposed malloc, closefrom, errno, and the cost
//! rules of its hot path (no syscall, no allocation on a miss).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// A project whose `deps/` was ingested: (sandbox, root).
fn project() -> Option<(Sandbox, PathBuf)> {
    if !has_cc() {
        skip("no C compiler");
        return None;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    write_node_modules(&root.join("deps"), 4, 3, 100);
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["ingest", "deps"]);
    Some((sb, root))
}

fn safety(sb: &Sandbox, root: &std::path::Path, mode: &str) -> String {
    let bin = compile_c(sb, "safety", &["-pthread"]);
    let file = root.join("deps/pkg-1/package.json");
    let dir = root.join("deps/pkg-1");
    sb.ok(
        root,
        &[
            "run",
            "--",
            bin.to_str().unwrap(),
            mode,
            file.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    )
}

#[test]
fn threads_share_the_view_without_tearing() {
    let Some((sb, root)) = project() else { return };
    assert_eq!(safety(&sb, &root, "threads"), "threads bad=0\n");
}

/// The table is mapped and the cwd read on first need: threads that all
/// need them at once, and a child forked meanwhile, see the rift (20
/// processes, each racing afresh).
#[test]
fn threads_racing_to_the_first_lookup_all_see_the_view() {
    let Some((sb, root)) = project() else { return };
    let bin = compile_c(&sb, "safety", &["-pthread"]);
    let file = root.join("deps/pkg-1/package.json");
    let args = [
        "run",
        "--",
        bin.to_str().unwrap(),
        "first-touch",
        file.to_str().unwrap(),
        ".",
    ];
    for _ in 0..20 {
        assert_eq!(sb.ok(&root, &args), "first-touch bad=0\n");
    }
}

#[test]
fn fork_and_vfork_children_see_the_view() {
    let Some((sb, root)) = project() else { return };
    let out = safety(&sb, &root, "fork");
    assert!(out.starts_with("fork child sees=1\n"), "{out}");
    // The vfork child execs cat on a rift file with a scrubbed environment.
    assert!(out.contains("{\"name\":\"pkg-1\""), "{out}");
    assert!(out.contains("vfork exec status=0\n"), "{out}");
    assert!(
        out.ends_with("after a vfork child's chdir sees=1/1\n"),
        "{out}"
    );
}

/// A signal handler that changes directory (chdir is async-signal-safe) and
/// resolves a relative path, landing while the same thread updates the cwd
/// cache: no hang (the run is bounded by `timeout`), no stale directory.
#[test]
fn signal_handlers_that_chdir_neither_hang_nor_see_a_stale_cwd() {
    let Some((sb, root)) = project() else { return };
    let bin = compile_c(&sb, "safety", &["-pthread"]);
    let file = root.join("deps/pkg-1/package.json");
    let dir = root.join("deps/pkg-1");
    let out = sb.ok(
        &root,
        &[
            "run",
            "--",
            "timeout",
            "120",
            bin.to_str().unwrap(),
            "signals-chdir",
            file.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out, "signals-chdir bad=0 handler_bad=0 handler_ran=1\n");
}

#[test]
fn signal_handlers_can_use_the_shim_mid_call() {
    let Some((sb, root)) = project() else { return };
    assert_eq!(
        safety(&sb, &root, "signals"),
        "signals bad=0 handler_bad=0 handler_ran=1\n"
    );
}

#[test]
fn closefrom_does_not_break_the_shim_and_its_fds_stay_out_of_the_way() {
    let Some((sb, root)) = project() else { return };
    assert_eq!(
        safety(&sb, &root, "closefrom"),
        "after closefrom sees=1 dir=1\nfd>2=1 cloexec-kept=1\n"
    );
}

#[test]
fn fds_closed_inside_libc_leave_nothing_stale() {
    let Some((sb, root)) = project() else { return };
    assert_eq!(
        safety(&sb, &root, "stale"),
        "fclose same-fd=1 fresh=1\nclosedir same-fd=1 fresh=1\ndirfd-relative=1\n"
    );
}

#[test]
fn errno_is_preserved_on_success() {
    let Some((sb, root)) = project() else { return };
    assert_eq!(safety(&sb, &root, "errno"), "errno kept hit=1 miss=1\n");
}

#[test]
fn constructors_and_an_interposed_malloc_neither_deadlock_nor_allocate() {
    let Some((sb, root)) = project() else { return };
    let bin = compile_c(&sb, "early", &[]);
    let lib = compile_c(&sb, "early_lib", &["-shared", "-fPIC"]);
    let target = root.join("deps/pkg-2/package.json");
    // Another preloaded library whose constructor may run before the shim's.
    let out = sb
        .cmd(&root, &["run", "--", bin.to_str().unwrap()])
        .env("LD_PRELOAD", &lib)
        .env("EARLY_TARGET", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ctor_saw=1 malloc_stats=1 allocations_in_lookups=0\n"
    );
}

#[test]
fn a_miss_makes_no_syscall_beyond_the_one_it_replaces() {
    let Some((sb, root)) = project() else { return };
    if Command::new("strace").arg("-V").output().is_err() {
        skip("strace is not installed");
        return;
    }
    let bin = compile_c_source(
        &sb,
        "loop",
        r#"#include <stdlib.h>
#include <sys/stat.h>
int main(int argc, char **argv) { struct stat st; int n = atoi(argv[2]);
for (int i = 0; i < n; i++) stat(argv[1], &st); return 0; }"#,
    );
    let count = |path: &str, n: u32| -> u64 {
        let log = sb.path().join(format!("trace-{n}-{}", path.len()));
        let st = sb
            .cmd(
                &root,
                &[
                    "run",
                    "--",
                    "strace",
                    "-f",
                    "-c",
                    "-o",
                    log.to_str().unwrap(),
                    bin.to_str().unwrap(),
                    path,
                    &n.to_string(),
                ],
            )
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let text = fs::read_to_string(&log).unwrap();
        // "100.00  seconds  usecs/call  calls  [errors]  total"
        let total = text
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap();
        total.parse().unwrap()
    };
    // The difference between 1000 and 3000 calls is what the loop costs.
    // A miss outside the domain costs nothing either (no search for a
    // physical symlink into the domain there: see physical_fallback).
    for path in [
        "/usr",
        "/usr/no-such-file",
        "deps",
        "deps/missing-on-disk",
        "deps/pkg-1/package.json",
    ] {
        let per_call = (count(path, 3000) - count(path, 1000)) as f64 / 2000.0;
        let expected = if path.ends_with("package.json") {
            0.0
        } else {
            1.0
        };
        assert_eq!(per_call, expected, "{path}: syscalls per stat");
    }
}

/// Every process of an inception loads the library: it must bring no library
/// of its own (the shipped build has no std, so no libgcc_s), and its fds
/// and mappings are the only trace it leaves.
#[test]
fn the_library_loads_nothing_but_itself_into_a_process() {
    let Some((sb, root)) = project() else { return };
    let maps = sb.ok(&root, &["run", "--", "cat", "/proc/self/maps"]);
    let libs: std::collections::BTreeSet<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains(".so"))
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    // The inception's copy of the library, named by its content.
    let is_shim = |l: &str| l.starts_with("libvrift_shim");
    assert!(libs.iter().any(|l| is_shim(l)), "shim not loaded: {libs:?}");
    let baseline = Command::new("cat").arg("/proc/self/maps").output().unwrap();
    let native_libs: std::collections::BTreeSet<String> = String::from_utf8_lossy(&baseline.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains(".so"))
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect();
    let extra: Vec<&&str> = libs
        .iter()
        .filter(|l| !is_shim(l) && !native_libs.contains(**l))
        .collect();
    assert!(extra.is_empty(), "the shim pulled in {extra:?}");
}

#[test]
fn the_shims_own_blobs_fd_survives_a_program_closing_or_replacing_it() {
    let Some((sb, root)) = project() else { return };
    // The program finds the shim's fd (a directory fd on the store's
    // blobs/), closes every fd from 3 up, reads a rift file, then puts a
    // pipe on the shim's fd number and reads again: the content is right
    // each time, and the fd is never 0-2 and always close-on-exec.
    let bin = compile_c_source(
        &sb,
        "ownfd",
        r#"#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int slurp(const char *p, char *out) {
    int fd = open(p, O_RDONLY); if (fd < 0) return -1;
    int n = read(fd, out, 200); close(fd); if (n < 0) return -1; out[n] = 0; return n;
}
static int own(void) {
    char link[64], target[4096]; int found = -1;
    for (int fd = 0; fd < 5000; fd++) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0) continue; target[n] = 0;
        size_t len = strlen(target);
        if (len >= 6 && !strcmp(target + len - 6, "/blobs")) found = fd;
    }
    return found;
}
int main(int argc, char **argv) {
    char a[256], b[256], c[256];
    if (slurp(argv[1], a) < 0) { puts("first read failed"); return 1; }
    int fd = own();
    printf("own fd>2=%d cloexec=%d\n", fd > 2, fd > 2 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    for (int i = 3; i < 5000; i++) close(i);
    printf("after close loop same=%d\n", slurp(argv[1], b) > 0 && !strcmp(a, b));
    slurp(argv[1], b);
    fd = own();
    int p[2]; pipe(p); if (fd > 2) dup2(p[0], fd);
    printf("after dup2 same=%d\n", slurp(argv[1], c) > 0 && !strcmp(a, c));
    return 0;
}"#,
    );
    let file = root.join("deps/pkg-1/package.json");
    let out = sb.ok(
        &root,
        &["run", "--", bin.to_str().unwrap(), file.to_str().unwrap()],
    );
    assert_eq!(
        out,
        "own fd>2=1 cloexec=1\nafter close loop same=1\nafter dup2 same=1\n"
    );
}

/// An inception preloads a copy of the library named by its content in the
/// store: removing (or rebuilding) the installed library while it runs
/// leaves every process started afterwards in the view, where the dynamic
/// loader would otherwise skip the missing LD_PRELOAD with a warning and
/// the process would write the disk.
#[test]
fn removing_the_installed_library_mid_inception_keeps_new_processes_in_the_view() {
    let built = build_shim();
    let sb = Sandbox::new();
    let lib_dir = sb.mkdir("installed");
    let lib = lib_dir.join("libvrift_shim.so");
    fs::copy(&built, &lib).unwrap();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let started = sb.path().join("started");
    let go = sb.path().join("go");
    let script = format!(
        "touch '{s}'; while [ ! -e '{g}' ]; do sleep 0.05; done; sh -c 'echo x > after.txt'; cat after.txt",
        s = started.display(),
        g = go.display()
    );
    let child = sb
        .cmd(&root, &["run", "--", "sh", "-c", &script])
        .env("VRIFT_SHIM_PATH", &lib)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if started.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started.exists(), "the inception did not start");
    fs::remove_file(&lib).unwrap();
    fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\n", "{err}");
    assert!(!err.contains("cannot be preloaded"), "{err}");
    assert!(
        !root.join("after.txt").exists(),
        "after.txt reached the disk"
    );
}

/// `vrift gc --delete` removes copies of the view library that no process
/// maps and that are not the installed one's; the current copy stays.
#[test]
fn gc_removes_old_library_copies_no_process_uses() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok_in_view(&root, "true");
    let lib = sb.store().join("lib");
    let old = lib.join("libvrift_shim-00000000000000000000000000000000.so");
    fs::write(&old, "an old build").unwrap();
    let current: Vec<_> = fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| *p != old)
        .collect();
    assert_eq!(current.len(), 1, "{current:?}");
    let out = sb.ok(&root, &["gc", "--delete"]);
    assert!(
        out.contains("deleted 1 old copy of the view library"),
        "{out}"
    );
    assert!(!old.exists());
    assert!(current[0].exists());
}
