//! The LD_PRELOAD library, read side: real tools under `vrift run` see the
//! view exactly as they see a physical copy of the same tree.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// A project with an ingested tree, and a physical copy of the same tree.
struct Twin {
    sb: Sandbox,
    root: PathBuf,
    copy: PathBuf,
}

fn twin() -> Twin {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let deps = root.join("deps");
    write_node_modules(&deps, 12, 3, 300);
    fs::create_dir_all(deps.join("pylib/greet")).unwrap();
    fs::write(
        deps.join("pylib/greet/__init__.py"),
        "def hello():\n    return 'hello from the rift'\n",
    )
    .unwrap();
    fs::create_dir_all(deps.join("include")).unwrap();
    fs::write(deps.join("include/answer.h"), "#define ANSWER 42\n").unwrap();
    fs::create_dir_all(deps.join("node/m")).unwrap();
    fs::write(
        deps.join("node/m/index.js"),
        "module.exports = 'required from the rift';\n",
    )
    .unwrap();
    fs::write(
        deps.join("node/m/package.json"),
        "{\"name\":\"m\",\"main\":\"index.js\"}\n",
    )
    .unwrap();
    fs::create_dir_all(deps.join("bin")).unwrap();
    fs::write(
        deps.join("bin/hello.sh"),
        "#!/bin/sh\necho \"script $0 $*\"\n",
    )
    .unwrap();
    fs::set_permissions(
        deps.join("bin/hello.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    if has_cc() {
        let c = sb.path().join("three.c");
        fs::write(&c, "int main(void) { return 3; }\n").unwrap();
        assert!(Command::new("cc")
            .arg(&c)
            .arg("-o")
            .arg(deps.join("bin/three"))
            .status()
            .unwrap()
            .success());
        let l = sb.path().join("f.c");
        fs::write(&l, "int f(void) { return 42; }\n").unwrap();
        let so = deps.join("bin/libf.so");
        assert!(Command::new("cc")
            .args(["-shared", "-fPIC"])
            .arg(&l)
            .arg("-o")
            .arg(so)
            .status()
            .unwrap()
            .success());
    }
    // A symlink to a directory: a rift symlink once ingested.
    std::os::unix::fs::symlink("pkg-1", deps.join("pkg-link")).unwrap();
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(
        root.join("src/main.c"),
        "#include \"answer.h\"\nint main(void) { return ANSWER; }\n",
    )
    .unwrap();
    let copy_parent = sb.mkdir("copy");
    cp_a(&deps, &copy_parent.join("deps"));
    cp_a(&root.join("src"), &copy_parent.join("src"));
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["ingest", "deps"]);
    assert!(
        !deps.join("pkg-1/package.json").exists(),
        "ingested off the disk"
    );
    Twin {
        sb,
        root,
        copy: copy_parent,
    }
}

/// [`twin`] for a test that compiles C; `None` (SKIPPED, or a failure
/// under `CI`) without a C compiler.
fn twin_with_cc() -> Option<Twin> {
    if !has_cc() {
        skip("no C compiler");
        return None;
    }
    Some(twin())
}

impl Twin {
    /// Asserts the script prints the same in the view and in the copy.
    fn same(&self, script: &str) -> String {
        same_in_view_and_copy(&self.sb, &self.root, &self.copy, script, true)
    }
}

#[test]
fn listing_and_walking_tools_see_the_view() {
    let t = twin();
    // Directory times are left out: ingest empties the physical directories,
    // which updates their mtime (file times are compared with stat below).
    let out = t.same("ls -la --time-style=+ deps/pkg-1 deps/pkg-1/lib | grep -v '^total'");
    assert!(out.contains("package.json"));
    // `..` of deps differs only by the project's own .vrift/ (its link count).
    t.same("ls -laR --time-style=+ deps | grep -v '^total' | grep -v ' \\.\\.$'");
    let files = t.same("find deps -type f | sort");
    assert_eq!(
        files.lines().count(),
        12 * 5 + 1 + 4 + if has_cc() { 3 } else { 1 }
    );
    t.same("find deps -type l | sort");
    t.same("find deps -type d | sort");
    t.same("du -a --apparent-size deps | sort -k2");
    t.same("tar cf - deps | tar tf - | sort");
    t.same("tar cf - deps | tar tvf - | grep -v '^d' | sort -k6");
    t.same("find deps -type f | sort | xargs cat | md5sum");
    t.same("grep -r 'module.exports' deps | sort");
    t.same("bash -c 'echo deps/pkg-1*/lib/*.js'");
    t.same("for f in deps/pkg-*/package.json; do cat \"$f\"; done");
}

#[test]
fn stat_and_cat_report_each_entry_as_on_disk() {
    let t = twin();
    t.same("stat -c '%n %s %a %F %Y %h' deps/pkg-3/package.json deps/pkg-0/cli.sh deps/.bin/tool");
    t.same("stat -L -c '%n %s %F' deps/.bin/tool");
    t.same("cat deps/pkg-2/LICENSE deps/.bin/tool");
    t.same("readlink deps/.bin/tool; readlink -f deps/.bin/tool | sed 's|.*/deps/|deps/|'");
    t.same("test -x deps/pkg-0/cli.sh && echo exec; test -r deps/pkg-1/LICENSE && echo readable; test -e deps/nope || echo absent");
    t.same("wc -c deps/pkg-*/lib/m1.js | sort");
}

#[test]
fn copying_out_of_the_view_gives_the_original_tree() {
    let t = twin();
    let out = t.sb.path().join("out");
    t.sb.ok(
        &t.root,
        &["run", "--", "cp", "-a", "deps", out.to_str().unwrap()],
    );
    assert_same_tree(&list_tree(&t.copy.join("deps"), &[]), &list_tree(&out, &[]));
    let diff = t.sb.run(
        &t.root,
        &[
            "run",
            "--",
            "diff",
            "-r",
            "deps",
            t.copy.join("deps").to_str().unwrap(),
        ],
    );
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert!(diff.stdout.is_empty());
}

#[test]
fn interpreters_and_compilers_load_from_the_view() {
    let t = twin();
    t.same("python3 -c 'import sys; sys.path.insert(0, \"deps/pylib\"); import greet; print(greet.hello())'");
    t.same("python3 -c 'import os; print(sorted(os.listdir(\"deps/pkg-4\")))'");
    if Command::new("node").arg("--version").output().is_ok() {
        t.same("node -e 'console.log(require(\"./deps/node/m\"))'");
    } else {
        skip("not installed");
    }
    if Command::new("cc").arg("--version").output().is_ok() {
        t.same("cc -Ideps/include -fsyntax-only src/main.c && echo compiled");
        t.same("cc -Ideps/include -E src/main.c | grep -c 42");
    } else {
        skip("not installed");
    }
}

/// A C program exercising calls tools use less visibly: fstat on an fd,
/// /proc/self/fd readback, openat relative to a directory fd, readdir types.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct stat a, b;
    if (stat(argv[1], &a) != 0) { perror("stat"); return 1; }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror("open"); return 1; }
    if (fstat(fd, &b) != 0) { perror("fstat"); return 1; }
    printf("same-ino %d same-mode %d same-size %d\n", a.st_ino == b.st_ino, a.st_mode == b.st_mode, a.st_size == b.st_size);
    struct stat c;
    fstatat(fd, "", &c, AT_EMPTY_PATH);
    printf("empty-path %d\n", c.st_ino == a.st_ino);
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    printf("fd-path-ends-with-arg %d\n", n > 0 && strlen(target) >= strlen(argv[1]) && strcmp(target + strlen(target) - strlen(argv[1]), argv[1]) == 0);
    int fd2 = dup(fd);
    struct stat d;
    fstat(fd2, &d);
    printf("dup-keeps-view %d\n", d.st_ino == a.st_ino);
    int dfd = open(argv[2], O_RDONLY | O_DIRECTORY);
    int rel = openat(dfd, "package.json", O_RDONLY);
    char buf[64] = {0};
    printf("openat-dirfd %d %.8s\n", rel >= 0, rel >= 0 && read(rel, buf, 8) > 0 ? buf : "");
    DIR *dir = opendir(argv[2]);
    struct dirent *e;
    int files = 0, dirs = 0;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_type == DT_REG) files++;
        if (e->d_type == DT_DIR) dirs++;
    }
    closedir(dir);
    printf("types files=%d dirs=%d\n", files, dirs);
    return 0;
}
"#;

#[test]
fn fds_of_rift_files_report_the_view() {
    let Some(t) = twin_with_cc() else { return };
    let bin = compile_c_source(&t.sb, "probe", PROBE_C);
    let out = t.sb.ok(
        &t.root,
        &[
            "run",
            "--",
            bin.to_str().unwrap(),
            "deps/pkg-1/LICENSE",
            "deps/pkg-1",
        ],
    );
    assert_eq!(
        out,
        "same-ino 1 same-mode 1 same-size 1\nempty-path 1\nfd-path-ends-with-arg 1\ndup-keeps-view 1\n\
         openat-dirfd 1 {\"name\":\ntypes files=2 dirs=3\n"
    );
}

#[test]
fn whiteouts_and_rift_entries_shape_listings() {
    use vrift::manifest::{Layer, Manifest, Record};
    let t = twin();
    {
        let project = vrift::project::Project::at(&t.root).unwrap();
        let cas = vrift::cas::Cas::open(&t.sb.store()).unwrap();
        let manifest = Manifest::open(&project.manifest_path(), false).unwrap();
        let txn = manifest.write().unwrap();
        txn.put(Layer::Rift, b"deps/pkg-1/LICENSE", &Record::Whiteout)
            .unwrap();
        txn.put(Layer::Rift, b"src/main.c", &Record::Whiteout)
            .unwrap();
        txn.commit().unwrap();
        vrift::table::publish(&project, &cas, &manifest).unwrap();
    }
    let out = t.sb.ok(&t.root, &["run", "--", "ls", "deps/pkg-1", "src"]);
    assert_eq!(out, "deps/pkg-1:\nlib\npackage.json\n\nsrc:\n");
    let out = t.sb.run(&t.root, &["run", "--", "cat", "src/main.c"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such file or directory"));
    assert!(t.root.join("src/main.c").exists(), "the disk is untouched");
}

#[test]
fn vrift_itself_is_not_affected_inside_run() {
    let t = twin();
    // The CLI started inside an inception still reads its own state directly.
    let out = t.sb.ok(&t.root, &["run", "--", VRIFT, "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bin = if has_cc() { 3 } else { 1 };
    assert_eq!(
        v["phantom"]["entries"].as_u64().unwrap(),
        12 * 5 + 1 + 4 + 1 + 1 + bin
    );
    // Exit codes pass through.
    let out = t.sb.run(&t.root, &["run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = t.sb.run(&t.root, &["run", "--", "no-such-program-xyz"]);
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn rift_executables_and_scripts_run_and_scrubbed_children_keep_the_view() {
    let t = twin();
    let root = t.root.display().to_string();
    let out =
        t.sb.ok(&t.root, &["run", "--", "./deps/bin/hello.sh", "a", "b"]);
    assert_eq!(
        out,
        format!("script {root}/deps/bin/hello.sh a b\n"),
        "$0 is the view path"
    );
    // env -i drops LD_PRELOAD: the child keeps the view all the same.
    let out = t.sb.ok(
        &t.root,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "env -i /bin/cat deps/pkg-1/package.json; env -i sh -c './deps/bin/hello.sh x'",
        ],
    );
    assert_eq!(
        out,
        format!(
            "{{\"name\":\"pkg-1\",\"version\":\"1.0.1\"}}\nscript {root}/deps/bin/hello.sh x\n"
        )
    );
    // posix_spawn, fork+exec with an empty env, system(), popen(), dlopen().
    let py = r#"
import ctypes, os, subprocess
print(subprocess.run(['./deps/bin/hello.sh', 'py'], capture_output=True, text=True, env={}).stdout.strip())
pid = os.posix_spawn('/bin/cat', ['cat', 'deps/pkg-2/package.json'], {})
os.waitpid(pid, 0)
os.system('cat deps/pkg-3/package.json')
print(os.popen('cat deps/pkg-4/package.json').read().strip())
"#;
    let out = t.sb.ok(&t.root, &["run", "--", "python3", "-c", py]);
    assert_eq!(
        out,
        format!(
            "script {root}/deps/bin/hello.sh py\n{{\"name\":\"pkg-2\",\"version\":\"1.0.2\"}}\n\
             {{\"name\":\"pkg-3\",\"version\":\"1.0.3\"}}\n{{\"name\":\"pkg-4\",\"version\":\"1.0.4\"}}\n"
        )
    );
    if has_cc() {
        let out = t.sb.run(&t.root, &["run", "--", "./deps/bin/three"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = t.sb.ok(
            &t.root,
            &[
                "run",
                "--",
                "python3",
                "-c",
                "import ctypes; print(ctypes.CDLL('./deps/bin/libf.so').f())",
            ],
        );
        assert_eq!(out, "42\n");
        // The store's blobs stay non-executable; the copy is keyed by hash.
        let exec_dir = t.sb.store().join("exec");
        assert!(fs::read_dir(&exec_dir).unwrap().count() >= 2);
    } else {
        skip("no C compiler");
    }
    // A non-executable rift file is refused like on disk.
    let out = t.sb.run(
        &t.root,
        &["run", "--", "sh", "-c", "./deps/pkg-1/package.json"],
    );
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// glibc's own walkers and name functions (glob, nftw, scandir, realpath,
/// canonicalize_file_name) must see the view too. (glibc's fts_* is tested
/// below; find, du and the coreutils use gnulib's fts, tested above.)
const WALK_C: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
static int files, links;
static int cb(const char *p, const struct stat *s, int t, struct FTW *f) {
    if (t == FTW_F) files++;
    if (t == FTW_SL) links++;
    return 0;
}
static const char *tail(const char *p) { const char *d = strstr(p, "/deps/"); return d ? d + 1 : p; }
int main(void) {
    glob_t g;
    if (glob("deps/pkg-1*/lib/*.js", 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) printf("glob %s\n", g.gl_pathv[i]);
    nftw("deps", cb, 16, FTW_PHYS);
    printf("nftw files=%d links=%d\n", files, links);
    struct dirent **list;
    int k = scandir("deps/pkg-2", &list, NULL, alphasort);
    for (int i = 0; i < k; i++) printf("scandir %s\n", list[i]->d_name);
    char *rp = realpath("deps/.bin/tool", NULL);
    printf("realpath %s\n", rp ? tail(rp) : "(null)");
    char *cf = canonicalize_file_name("deps/pkg-3/../pkg-3/package.json");
    printf("canonical %s\n", cf ? tail(cf) : "(null)");
    return 0;
}
"#;

#[test]
fn glibc_walkers_and_realpath_see_the_view() {
    let Some(t) = twin_with_cc() else { return };
    let bin = compile_c_source(&t.sb, "walk", WALK_C);
    let out = t.same(bin.to_str().unwrap());
    assert!(out.contains("glob deps/pkg-1/lib/m0.js"), "{out}");
    assert!(out.contains("scandir package.json"), "{out}");
    assert!(out.contains("realpath deps/pkg-0/lib/m0.js"), "{out}");
    assert!(out.contains("canonical deps/pkg-3/package.json"), "{out}");
}

#[test]
fn freopen_readdir_r_statfs_and_access_match_the_copy() {
    let Some(t) = twin_with_cc() else { return };
    let bin = compile_c(&t.sb, "misc", &["-Wno-deprecated-declarations"]);
    let out = t.same(&format!(
        "{} deps/pkg-1/package.json deps/pkg-1",
        bin.display()
    ));
    assert!(out.starts_with("freopen {\"name\":\"pkg-1\""), "{out}");
    assert!(
        out.contains("readdir_r 5\n") && out.contains("statfs 1 statvfs 1"),
        "{out}"
    );
}

/// Directory reads that bypass readdir's plain loop: telldir/seekdir across
/// the disk and rift phases of a merged stream, dirfd, raw getdents64 and
/// getdents (syscall and glibc wrapper), glibc's fts_* (rebuilt on the view:
/// glibc's own calls libc internally), and getcwd after a chdir through a
/// rift symlink. A whiteout and ingested (rift-only) files are in the tree.
#[test]
fn telldir_getdents_fts_and_getcwd_see_the_view() {
    use vrift::manifest::{Layer, Manifest, Record};
    let Some(t) = twin_with_cc() else { return };
    {
        let project = vrift::project::Project::at(&t.root).unwrap();
        let cas = vrift::cas::Cas::open(&t.sb.store()).unwrap();
        let manifest = Manifest::open(&project.manifest_path(), false).unwrap();
        let txn = manifest.write().unwrap();
        txn.put(Layer::Rift, b"deps/pkg-1/LICENSE", &Record::Whiteout)
            .unwrap();
        txn.commit().unwrap();
        vrift::table::publish(&project, &cas, &manifest).unwrap();
    }
    fs::remove_file(t.copy.join("deps/pkg-1/LICENSE")).unwrap();
    let bin = compile_c(&t.sb, "dirs", &[]);
    let bin = bin.to_str().unwrap();
    for dir in ["deps", "deps/pkg-1", "deps/pkg-0/lib"] {
        let out = t.same(&format!("{bin} seek {dir}"));
        assert!(
            out.contains(" bad=0 past_end=0 dirfd_bad=0\n"),
            "{dir}: {out}"
        );
        let out = t.same(&format!("{bin} dents {dir}"));
        assert!(out.contains("all three agree 1\n"), "{dir}: {out}");
    }
    let out = t.same(&format!("{bin} dents deps/pkg-1"));
    assert!(out.contains("dent package.json 8\n"), "{out}");
    assert!(!out.contains("LICENSE"), "the whiteout is hidden: {out}");
    assert!(
        out.contains(" small 0/-1\n"),
        "at the end: 0; a too-small buffer: EINVAL: {out}"
    );
    let out = t.same(&format!("{bin} fts deps"));
    assert!(
        out.contains("fts 8 2 deps/pkg-3/package.json 35 100644\n"),
        "{out}"
    );
    assert!(out.contains("fts 12 1 deps/pkg-link 5 120777\n"), "{out}");
    assert!(
        out.contains("fts 8 2 deps/pkg-link/package.json"),
        "logical: {out}"
    );
    assert!(!out.contains("pkg-1/LICENSE"), "{out}");
    let out = t.same(&format!("{bin} cwd deps/pkg-link"));
    assert_eq!(
        out,
        "getcwd deps/pkg-1\ngetcwd-malloc same 1\nrelative stat 35\nafter fchdir deps/pkg-1 1\n"
    );
    t.same("cd deps/pkg-link && pwd -P | sed 's|.*/deps/|deps/|' && cat package.json");
}

/// `shim/exports.txt` is the one table of exports: the library exports
/// exactly its symbols (build.rs makes the version script from it), each
/// row's module defines it, and each row names a test that calls it (its
/// source, the helpers and constants it names and the tests/c probes it
/// compiles call `SYMBOL(`), or a variant row whose base has one; the
/// functions the loader or vrift itself call name the test that drives
/// them. No `NOT` row (not interposed) is exported.
#[test]
fn every_export_is_a_table_row_with_a_test() {
    let so = build_shim();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = fs::read_to_string(manifest.join("shim/exports.txt")).unwrap();
    // symbol -> (module, proof)
    let mut rows = std::collections::BTreeMap::new();
    let mut not_interposed = Vec::new();
    for line in table.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [] | ["SYSCALL", ..] => {}
            ["NOT", name, ..] => not_interposed.push(*name),
            [sym, module, proof, ..] => assert!(
                rows.insert(*sym, (*module, *proof)).is_none(),
                "{sym}: two rows"
            ),
            _ => panic!("exports.txt: `{line}`: SYMBOL MODULE TEST SYSCALLS SIGNATURE"),
        }
    }
    let calls = |src: &str, sym: &str| {
        src.match_indices(&format!("{sym}(")).any(|(at, _)| {
            !src[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    };
    let mut missing = Vec::new();
    for (sym, (module, proof)) in &rows {
        let defined = ["rs", "c"].iter().any(|ext| {
            fs::read_to_string(manifest.join(format!("shim/src/{module}.{ext}")))
                .is_ok_and(|src| src.contains(sym))
        });
        if !defined {
            missing.push(format!("{sym}: not in module {module}"));
        }
        if let Some(base) = proof.strip_prefix('=') {
            match rows.get(base) {
                Some((base_module, p)) if !p.starts_with('=') && base != *sym => {
                    let siblings: Vec<&str> = rows
                        .iter()
                        .filter(|(_, (_, p))| p.strip_prefix('=') == Some(base))
                        .map(|(s, _)| *s)
                        .collect();
                    if !shares_body(manifest, (sym, module), (base, base_module), &siblings) {
                        missing.push(format!("{sym}: a body of its own, not {base}'s"));
                    }
                }
                _ => missing.push(format!("{sym}: variant of {base}, which has no test")),
            }
            continue;
        }
        let (caller, test) = match proof.split_once(':') {
            Some((c, t)) if !t.starts_with(':') => (Some(c), t),
            _ => (None, *proof),
        };
        let Some((file, name)) = test.split_once("::") else {
            missing.push(format!("{sym}: no test named"));
            continue;
        };
        let src = fs::read_to_string(manifest.join(format!("tests/{file}.rs"))).unwrap_or_default();
        if !src.contains(&format!("#[test]\nfn {name}()")) {
            missing.push(format!("{sym}: no test {file}::{name}"));
            continue;
        }
        let ok = match caller {
            None => calls(&test_sources(manifest, &src, name), sym),
            Some("loader") => sym.starts_with("la_"),
            Some("vrift") => vrift_names(&manifest.join("src"), sym),
            Some(c) => {
                missing.push(format!("{sym}: unknown caller {c}"));
                continue;
            }
        };
        if !ok {
            missing.push(format!("{sym}: {proof} does not call it"));
        }
    }
    for name in &not_interposed {
        if rows.contains_key(name) {
            missing.push(format!("{name}: both exported and not interposed"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    let nm = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output();
    let Ok(nm) = nm else {
        skip("nm is not installed");
        return;
    };
    let exported: std::collections::BTreeSet<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    let wanted: std::collections::BTreeSet<String> = rows.keys().map(|s| s.to_string()).collect();
    assert_eq!(
        exported.difference(&wanted).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "exported but not in the table"
    );
    assert_eq!(
        wanted.difference(&exported).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the table but not exported"
    );
}

/// Whether `variant` runs `base`'s code (an `=BASE` row): both are made by
/// the same macro (`m!(variant, …)`, `m!(base, …)`), or `base`'s body calls
/// `variant` (the variant is the body: `vrift_openat`), or the variant
/// forwards to `base` (calls it), or every function
/// and macro the variant's body calls (but `call_real!`, its own real
/// function and `fail`) is `base`, a sibling variant of it, or one that
/// `base`'s body calls too (a shared `_impl`, `stream_open`). fchown,
/// calling `by_fd!` where chown calls `fchownat`, is not chown's variant.
fn shares_body(
    manifest: &std::path::Path,
    (variant, module): (&str, &str),
    (base, base_module): (&str, &str),
    siblings: &[&str],
) -> bool {
    let read = |m: &str| {
        ["rs", "c"]
            .iter()
            .find_map(|ext| fs::read_to_string(manifest.join(format!("shim/src/{m}.{ext}"))).ok())
            .unwrap_or_default()
    };
    let (vsrc, bsrc) = (read(module), read(base_module));
    let macro_of = |src: &str, sym: &str| {
        let at = src.find(&format!("!({sym},"))?;
        let start = src[..at].rfind(|c: char| !(c.is_alphanumeric() || c == '_'))? + 1;
        Some(src[start..at].to_string())
    };
    if macro_of(&vsrc, variant).is_some_and(|m| Some(m) == macro_of(&bsrc, base)) {
        return true;
    }
    let Some(vbody) = definition(&vsrc, variant) else {
        // Generated (vrift_syscall): only the base's forwarding can say.
        return definition(&bsrc, base).is_some_and(|b| called(b).contains(variant));
    };
    let bcalls = definition(&bsrc, base).map(called).unwrap_or_default();
    if bcalls.contains(variant) {
        return true;
    }
    let vcalls = called(vbody);
    if vcalls.contains(base) {
        return true;
    }
    !vcalls.is_empty()
        && vcalls.iter().all(|c| {
            c == base
                || siblings.contains(&c.as_str())
                || bcalls.contains(c)
                || c == variant
                || c == "fail"
                || c == "call_real"
                || c.chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        })
}

/// The text of function `sym`'s definition in `src` (Rust `fn sym(`, or a
/// C definition at a line start): to its closing `}` at a line start, or
/// the line itself for a one-line C function.
fn definition<'a>(src: &'a str, sym: &str) -> Option<&'a str> {
    let at = src.find(&format!("fn {sym}(")).or_else(|| {
        src.match_indices(&format!("{sym}("))
            .map(|(i, _)| i)
            .find(|&i| {
                let line = &src[src[..i].rfind('\n').map_or(0, |n| n + 1)..i];
                let rest = &src[i..src[i..].find('\n').map_or(src.len(), |e| i + e)];
                line.ends_with([' ', '*'])
                    && !line.starts_with([' ', '\t', '#', '/', '*'])
                    && !line.contains('(')
                    && !rest.trim_end().ends_with(';')
            })
    })?;
    let line = &src[at..src[at..].find('\n').map_or(src.len(), |e| at + e)];
    if line.contains('{') && line.trim_end().ends_with('}') {
        return Some(line);
    }
    let end = src[at..].find("\n}\n").map_or(src.len(), |e| at + e + 3);
    Some(&src[at..end])
}

/// The names a body calls (`name(` or `name!(`, not a path's `::name(` or
/// a method's `.name(`), after its signature.
fn called(def: &str) -> std::collections::BTreeSet<String> {
    let body = &def[def.find('{').unwrap_or(0)..];
    let b = body.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if word(b[i]) && (i == 0 || !(word(b[i - 1]) || b[i - 1] == b':' || b[i - 1] == b'.')) {
            let start = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            let name = &body[start..i];
            let bang = b.get(i) == Some(&b'!');
            if b.get(i + bang as usize) == Some(&b'(')
                && !name.as_bytes()[0].is_ascii_digit()
                && ![
                    "if", "while", "match", "return", "sizeof", "for", "Some", "Ok", "Err",
                ]
                .contains(&name)
                && !name.starts_with("va_")
            {
                out.insert(name.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The source of test `name` in `src` (a tests/*.rs file): its body, then
/// transitively the functions of the file it calls and the constants it
/// names, and each `tests/c/NAME.c` a string "NAME" of those names.
fn test_sources(manifest: &std::path::Path, src: &str, name: &str) -> String {
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(item) = todo.pop() {
        if !seen.insert(item.clone()) {
            continue;
        }
        let Some(text) = item_text(src, &item) else {
            continue;
        };
        out.push_str(text);
        let words = text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '"'));
        for w in words.filter(|w| !w.is_empty()) {
            if let Some(probe) = w.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                let c = manifest.join(format!("tests/c/{probe}.c"));
                if let Ok(c) = fs::read_to_string(c) {
                    out.push_str(&c);
                }
            } else if !w.contains('"') {
                todo.push(w.to_string());
            }
        }
    }
    out
}

/// The text of `fn NAME` (to its closing `}` at the line start) or of
/// `const NAME` (a raw string to its `"#`, anything else to `;`) in `src`.
fn item_text<'a>(src: &'a str, name: &str) -> Option<&'a str> {
    if let Some(at) = src.find(&format!("\nfn {name}(")) {
        let end = src[at..].find("\n}\n").map_or(src.len(), |e| at + e + 3);
        return Some(&src[at..end]);
    }
    let at = src.find(&format!("\nconst {name}: "))?;
    let rest = &src[at..];
    let end = match rest.find("r#\"") {
        Some(r) if !rest[..r].contains(';') => rest[r..].find("\"#").map(|e| r + e + 2),
        _ => rest.find(';').map(|e| e + 1),
    };
    Some(&rest[..end.unwrap_or(rest.len())])
}

/// Whether vrift's own source (under `dir`) names `sym`.
fn vrift_names(dir: &std::path::Path, sym: &str) -> bool {
    fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            vrift_names(&p, sym)
        } else {
            fs::read_to_string(&p).is_ok_and(|s| s.contains(sym))
        }
    })
}

/// Binaries linked against older symbol versions (realpath@GLIBC_2.2.5,
/// glob@GLIBC_2.2.5, nftw@GLIBC_2.2.5) bind to the shim's unversioned
/// definitions just as new ones do, and so see the view.
const OLD_VERSIONS_C: &str = r#"
#define _GNU_SOURCE
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern char *realpath_old(const char *, char *);
extern int glob_old(const char *, int, int (*)(const char *, int), glob_t *);
extern int nftw_old(const char *, int (*)(const char *, const struct stat *, int, struct FTW *), int, int);
__asm__(".symver realpath_old, realpath@GLIBC_2.2.5");
__asm__(".symver glob_old, glob@GLIBC_2.2.5");
__asm__(".symver nftw_old, nftw@GLIBC_2.2.5");
static int files;
static int cb(const char *p, const struct stat *s, int t, struct FTW *f) { if (t == FTW_F) files++; return 0; }
int main(void) {
    char buf[4096], buf2[4096];
    char *a = realpath_old("deps/.bin/tool", buf), *b = realpath("deps/.bin/tool", buf2);
    printf("realpath old %s new-same %d\n", a ? strstr(a, "/deps/") + 1 : "(null)", a && b && strcmp(a, b) == 0);
    glob_t g;
    if (glob_old("deps/pkg-1*/lib/*.js", 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) printf("glob old %s\n", g.gl_pathv[i]);
    nftw_old("deps", cb, 16, FTW_PHYS);
    printf("nftw old files=%d\n", files);
    return 0;
}
"#;

#[test]
fn old_symbol_versions_bind_to_the_shim() {
    let Some(t) = twin_with_cc() else { return };
    let bin = compile_c_source(&t.sb, "oldvers", OLD_VERSIONS_C);
    if let Ok(o) = Command::new("objdump").arg("-T").arg(&bin).output() {
        let syms = String::from_utf8_lossy(&o.stdout);
        assert!(syms.contains("(GLIBC_2.2.5) realpath"), "{syms}");
        assert!(syms.contains("(GLIBC_2.3)  realpath"), "{syms}");
    } else {
        skip("objdump is not installed (binutils)");
    }
    let out = t.same(bin.to_str().unwrap());
    assert!(
        out.starts_with("realpath old deps/pkg-0/lib/m0.js new-same 1\n"),
        "{out}"
    );
    assert!(out.contains("glob old deps/pkg-1/lib/m0.js\n"), "{out}");
    let files = 12 * 5 + 1 + 4 + if has_cc() { 3 } else { 1 };
    assert!(out.ends_with(&format!("nftw old files={files}\n")), "{out}");
}

#[test]
fn physical_symlinks_into_ingested_trees_reach_the_rift() {
    let t = twin();
    // Made after the ingest: a physical link to an ingested directory and
    // one to an ingested file, as pnpm workspaces and vendored links do.
    for base in [&t.root, &t.copy] {
        std::os::unix::fs::symlink("deps/pkg-1", base.join("link-dir")).unwrap();
        std::os::unix::fs::symlink("deps/pkg-2/package.json", base.join("link-file")).unwrap();
    }
    t.same("cat link-dir/package.json link-file");
    t.same("stat -c '%n %s %F' link-dir/package.json link-file");
    t.same("python3 -c 'print(open(\"link-dir/LICENSE\").read()[:3])'");
    t.same("test -e link-dir/nope || echo absent");
}

#[test]
fn physical_symlinks_into_ingested_trees_list_read_links_check_access_and_run() {
    let t = twin();
    for base in [&t.root, &t.copy] {
        std::os::unix::fs::symlink("deps", base.join("link-deps")).unwrap();
        std::os::unix::fs::symlink("deps/pkg-1", base.join("link-dir")).unwrap();
        std::os::unix::fs::symlink("deps/bin", base.join("link-bin")).unwrap();
        std::os::unix::fs::symlink("deps/pkg-2/package.json", base.join("link-file")).unwrap();
    }
    // A final physical symlink to a rift file, after another miss in the
    // same directory (the cache of verified directories must not hide it);
    // fopen (sed) through a directory link.
    t.same(
        "python3 -c 'import os; print(os.path.exists(\"nope\")); print(open(\"link-file\").read())'; \
         sed -n 1p link-dir/package.json link-file",
    );
    // opendir through the link: the merged listing (ls, ls -R, a glob).
    let out = t.same("ls link-dir; ls -R link-deps/pkg-2; echo link-dir/lib/*");
    assert!(out.contains("package.json"), "{out}");
    t.same("ls -la --time-style=+ link-dir/ | grep -v '^total' | grep -v ' \\.\\.\\?$'");
    // readlink of a rift symlink reached through the link.
    let out = t
        .same("readlink link-deps/.bin/tool; readlink -f link-deps/.bin/tool | sed 's|.*/deps/||'");
    assert!(out.starts_with("../pkg-0/lib/m0.js\n"), "{out}");
    // access/faccessat/euidaccess.
    t.same(
        "python3 -c 'import os; print(os.access(\"link-dir/package.json\", os.R_OK), \
         os.access(\"link-dir/package.json\", os.X_OK), os.access(\"link-dir/nope\", os.F_OK), \
         os.access(\"link-bin/hello.sh\", os.X_OK, follow_symlinks=False))'; \
         /usr/bin/test -r link-dir/LICENSE && echo readable",
    );
    // exec: a rift script and a rift program through the link (execve,
    // execvp via env, posix_spawn via a probe).
    let out = t.sb.ok(
        &t.root,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "./link-bin/hello.sh a b; env link-bin/hello.sh c",
        ],
    );
    let root = t.root.display();
    assert_eq!(
        out,
        format!("script {root}/deps/bin/hello.sh a b\nscript {root}/deps/bin/hello.sh c\n")
    );
    if has_cc() {
        t.same("./link-bin/three; echo $?; env link-bin/three; echo $?");
        let spawn = compile_c_source(
            &t.sb,
            "spawn",
            r#"#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
extern char **environ;
int main(int argc, char **argv) {
    pid_t pid; int st;
    char *args[] = {argv[1], NULL};
    int r = posix_spawn(&pid, argv[1], NULL, NULL, args, environ);
    if (r != 0) { printf("spawn %d\n", r); return 1; }
    waitpid(pid, &st, 0);
    printf("exit %d\n", WEXITSTATUS(st));
    return 0;
}"#,
        );
        let out = t.same(&format!("{} link-bin/three", spawn.display()));
        assert_eq!(out, "exit 3\n");
    } else {
        skip("no C compiler");
    }
}
