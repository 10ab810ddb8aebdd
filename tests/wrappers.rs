//! The `.vrift/bin` wrappers and vrift's coreutil applets (issue 5): real
//! processes on real files. Each applet acts on the view exactly as GNU's
//! tool acts on a physical twin directory — results, messages, exit codes —
//! and leaves the project's files on disk alone, even when the real tool
//! cannot load the shim (a static binary) or nothing loads it (a Makefile
//! run with `.vrift/bin` first on PATH and no LD_PRELOAD at all). Outside
//! the project the real tool runs untouched; the wrappers find it past
//! themselves however PATH is spelled, and a loop of wrappers stops.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// [`seed_src_tree`] and `keep/k.txt`.
fn seed_tree(dir: &Path) {
    seed_src_tree(dir);
    fs::create_dir_all(dir.join("keep")).unwrap();
    fs::write(dir.join("keep/k.txt"), "kilo\n").unwrap();
}

/// A project (initialised: it has its wrappers) and a physical twin.
fn project_and_twin(sb: &Sandbox) -> (PathBuf, PathBuf) {
    project_and_twin_with(sb, seed_tree)
}

/// The library built, a sandbox, and [`project_and_twin`] in it.
fn setup() -> (Sandbox, PathBuf, PathBuf) {
    setup_with(seed_tree)
}

fn bin(root: &Path) -> PathBuf {
    root.join(".vrift/bin")
}

/// Every path with its type, mode, size, owner and content (no times:
/// those are checked where a command sets them).
const LISTING: &str =
    "find . -path ./.vrift -prune -o -print | LC_ALL=C sort | while read -r f; do \
    if [ -L \"$f\" ]; then echo \"$f -> $(readlink \"$f\")\"; \
    elif [ -f \"$f\" ]; then echo \"$f $(stat -c %a:%s:%u:%g \"$f\") $(cksum < \"$f\")\"; \
    else echo \"$f/ $(stat -c %a:%u:%g \"$f\")\"; fi; done";

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `sh -c SCRIPT` in the view (`vrift run`), optionally with `.vrift/bin`
/// first on PATH.
fn in_view(sb: &Sandbox, root: &Path, script: &str, wrappers: bool) -> Output {
    let script = if wrappers {
        format!("PATH='{}':\"$PATH\"; {script}", bin(root).display())
    } else {
        script.to_string()
    };
    sb.cmd(root, &["run", "--", "sh", "-c", &script])
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

/// `sh -c SCRIPT` natively in `dir`.
fn native(dir: &Path, script: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

/// A directory with the tools the scripts need besides the applets (and
/// none of the applets' names): with only it and `.vrift/bin` on PATH, a
/// wrapper finds no real tool, so what runs is vrift's applet for sure.
fn tools_dir(sb: &Sandbox) -> PathBuf {
    let dir = sb.path().join("tools");
    if dir.is_dir() {
        return dir;
    }
    fs::create_dir(&dir).unwrap();
    for tool in [
        "sh", "ls", "stat", "find", "sort", "cksum", "readlink", "test", "head", "grep", "make",
        "true", "env", "uniq", "printf", "echo",
    ] {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if found.starts_with('/') {
            std::os::unix::fs::symlink(found, dir.join(tool)).unwrap();
        }
    }
    dir
}

/// `sh -c SCRIPT` in the view with PATH = `.vrift/bin` and [`tools_dir`]:
/// every applet name runs vrift's applet.
fn with_applets(sb: &Sandbox, root: &Path, script: &str) -> Output {
    let script = format!(
        "PATH='{}:{}'; {script}",
        bin(root).display(),
        tools_dir(sb).display()
    );
    in_view(sb, root, &script, false)
}

fn assert_same_listing(sb: &Sandbox, root: &Path, twin: &Path) {
    let v = in_view(sb, root, LISTING, false);
    let t = native(twin, LISTING);
    assert!(t.status.success(), "{}", text(&t));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&t.stdout),
        "the view and the twin differ; view: {}",
        text(&v)
    );
}

#[test]
fn each_applet_acts_on_the_view_as_gnu_acts_on_the_disk() {
    let (sb, root, twin) = setup();
    let before = disk_files(&root);
    let mut steps: Vec<Vec<&str>> = vec![
        vec!["mkdir", "-p", "out/deep/er"],
        vec!["mkdir", "-m", "700", "out/private"],
        vec!["mkdir", "-v", "out/v"],
        vec!["touch", "out/new.txt"],
        vec!["touch", "-d", "2001-09-09 01:46:40", "src/a.txt"],
        vec!["touch", "-t", "200001011200.30", "src/b.txt"],
        vec!["touch", "-m", "-d", "@1234567890", "src/sub/c.txt"],
        vec!["touch", "-r", "src/a.txt", "out/new.txt"],
        vec!["touch", "-c", "out/not-made.txt"],
        vec!["chmod", "640", "src/a.txt"],
        vec!["chmod", "u+x,g=u", "src/sub/c.txt"],
        vec!["chmod", "-R", "go-rx", "out"],
        vec!["chmod", "a-w", "keep/k.txt"],
        vec!["cp", "src/a.txt", "out/a.txt"],
        vec!["cp", "-a", "src", "out/src-a"],
        vec!["cp", "-r", "-t", "out", "src/sub"],
        vec!["cp", "-p", "src/b.txt", "out/b.txt"],
        vec!["cp", "-v", "ro.txt", "out/"],
        vec!["cp", "-f", "src/a.txt", "out/ro.txt"],
        vec!["ln", "-s", "../src/a.txt", "out/link"],
        vec!["ln", "-sfn", "a.txt", "out/link"],
        vec!["ln", "src/b.txt", "out/hard"],
        vec!["ln", "-sv", "src/sub", "sublink"],
        vec!["mv", "src/b.txt", "out/moved.txt"],
        vec!["mv", "-v", "-t", "out", "src/sub"],
        vec!["mv", "-n", "out/a.txt", "out/moved.txt"],
        vec!["mv", "--target-directory=keep", "out/v"],
        vec!["rm", "out/hard"],
        vec!["rm", "-rv", "out/src-a/sub"],
        vec!["rm", "-f", "out/nothing"],
        vec!["rmdir", "out/deep/er"],
        vec!["rmdir", "-p", "out/private"],
        vec!["cat", "src/a.txt", "out/moved.txt", "sublink/c.txt"],
        vec![
            "stat",
            "-c",
            "%n %Y",
            "src/a.txt",
            "out/b.txt",
            "out/new.txt",
        ],
    ];
    if is_root() {
        steps.push(vec!["chown", "-R", "1:2", "out/deep"]);
        steps.push(vec!["chown", ":3", "out/a.txt"]);
        steps.push(vec!["chown", "daemon", "src/a.txt"]);
    }
    for step in &steps {
        let (name, args) = step.split_first().unwrap();
        // stat is not wrapped: it reads the view through the shim.
        let tool = if *name == "stat" {
            name.to_string()
        } else {
            bin(&root).join(name).to_string_lossy().into_owned()
        };
        let mut argv = vec!["run", "--", tool.as_str()];
        argv.extend(args);
        // Only vrift's applets on PATH: the wrapper finds no real tool.
        let v = sb
            .cmd(&root, &argv)
            .env("LC_ALL", "C")
            .env("PATH", tools_dir(&sb))
            .output()
            .unwrap();
        let t = Command::new(name)
            .args(args)
            .current_dir(&twin)
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert_eq!(
            text(&v),
            text(&t),
            "{step:?}: view (left) vs GNU on the twin"
        );
    }
    assert_same_listing(&sb, &root, &twin);
    assert_eq!(
        disk_files(&root),
        before,
        "the project's files changed on disk"
    );

    // An option the applet does not implement: the real tool does the whole
    // job (here a dynamic one, which the shim keeps in the view).
    let v = sb
        .cmd(
            &root,
            &[
                "run",
                "--",
                &bin(&root).join("rm").to_string_lossy(),
                "--one-file-system",
                "out/a.txt",
            ],
        )
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stderr)
            .contains("option --one-file-system is not implemented; running /"),
        "{}",
        text(&v)
    );
    let t = native(&twin, "rm --one-file-system out/a.txt");
    assert!(t.status.success());
    assert_same_listing(&sb, &root, &twin);
    assert_eq!(disk_files(&root), before);
}

/// A tiny `rm` in C, linked statically: it cannot load the shim.
const STATIC_RM: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        if (unlink(argv[i]) != 0) {
            fprintf(stderr, "rm: cannot remove '%s': %s\n", argv[i], strerror(errno));
            rc = 1;
        }
    }
    return rc;
}
"#;

/// Builds the static `rm` into `<sandbox>/static/rm`; None if this machine
/// cannot link statically.
fn static_rm(sb: &Sandbox) -> Option<PathBuf> {
    let dir = sb.mkdir("static");
    let src = sb.path().join("static-rm.c");
    fs::write(&src, STATIC_RM).unwrap();
    let out = dir.join("rm");
    let st = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .ok()?;
    if !st.success() {
        return None;
    }
    // Static indeed: no interpreter, so LD_PRELOAD cannot reach it.
    let file = Command::new("sh")
        .arg("-c")
        .arg(format!("readelf -l '{}' | grep -c INTERP", out.display()))
        .output()
        .ok()?;
    assert_eq!(String::from_utf8_lossy(&file.stdout).trim(), "0");
    Some(out)
}

/// The library built, a sandbox and [`static_rm`] in it; `None` (SKIPPED,
/// or a failure under `CI`) when this machine cannot link statically.
fn static_rm_sandbox() -> Option<(Sandbox, PathBuf)> {
    if !has_cc() {
        skip("no C compiler");
        return None;
    }
    build_shim();
    let sb = Sandbox::new();
    let Some(rm) = static_rm(&sb) else {
        skip("cannot link statically (libc6-dev's libc.a missing?)");
        return None;
    };
    Some((sb, rm))
}

#[test]
fn a_static_rm_is_done_on_the_view_by_the_applet() {
    let Some((sb, rm)) = static_rm_sandbox() else {
        return;
    };
    let static_dir = rm.parent().unwrap().to_path_buf();
    let (root, _) = project_and_twin(&sb);
    let before = disk_files(&root);

    // Without the wrappers the static rm runs under vrift's syscall
    // supervisor: it deletes the file from the view, never from the disk.
    // (On a second project: this one stays clean.)
    let other = sb.mkdir("other");
    fs::write(other.join("victim.txt"), "v\n").unwrap();
    sb.ok(&other, &["init"]);
    let script = format!(
        "PATH='{}':\"$PATH\"; rm victim.txt && ls",
        static_dir.display()
    );
    let listing = sb.ok_in_view(&other, &script);
    assert_eq!(listing, "", "the view still lists the file");
    assert!(
        other.join("victim.txt").exists(),
        "the static rm reached the disk"
    );

    // With .vrift/bin first, the wrapper finds the static rm as the real
    // one, sees the argument is in the project, and the applet does the job
    // on the view.
    let path = format!("{}:{}", bin(&root).display(), static_dir.display());
    let out = in_view(
        &sb,
        &root,
        &format!("PATH='{path}':\"$PATH\"; rm src/a.txt && ls src && cat src/a.txt"),
        false,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "b.txt\nsub\n",
        "{}",
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cat: src/a.txt: No such file or directory\n"
    );
    assert_eq!(
        disk_files(&root),
        before,
        "the project's files changed on disk"
    );
    assert!(root.join("src/a.txt").exists());

    // Outside the project the static rm itself runs, with its own messages.
    let outside = sb.mkdir("outside");
    fs::write(outside.join("x"), "x").unwrap();
    let out = in_view(
        &sb,
        &root,
        &format!(
            "PATH='{path}':\"$PATH\"; rm '{o}/x' '{o}/nothing'",
            o = outside.display()
        ),
        false,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "rm: cannot remove '{}/nothing': No such file or directory\n",
            outside.display()
        )
    );
    assert!(!outside.join("x").exists());
}

#[test]
fn a_makefile_through_vrift_bin_changes_the_view_and_never_the_disk() {
    if Command::new("make").arg("--version").output().is_err() {
        skip("no make");
        return;
    }
    build_shim();
    let makefile = "all:\n\
        \tmkdir -p out/sub/deeper\n\
        \tcp src/a.txt out/a.txt\n\
        \tcp -r src out/tree\n\
        \tchmod 600 out/a.txt\n\
        \tchmod -R g-r out/tree\n\
        \ttouch -d @1000000000 out/a.txt\n\
        \ttouch out/stamp\n\
        \tln -s a.txt out/link\n\
        \trm src/b.txt\n\
        \trm -r out/tree/sub\n\
        \tmv out/stamp out/sub/stamp\n\
        \tcat out/a.txt out/link\n\
        \tstat -c '%Y' out/a.txt\n";
    for shimmed in [true, false] {
        let sb = Sandbox::new();
        let (root, twin) = project_and_twin(&sb);
        fs::write(root.join("Makefile"), makefile).unwrap();
        fs::write(twin.join("Makefile"), makefile).unwrap();
        let before = disk_files(&root);
        let path = format!(
            "{}:{}",
            bin(&root).display(),
            std::env::var("PATH").unwrap()
        );
        let out = if shimmed {
            // As in the inception: the shim loaded, .vrift/bin first on PATH.
            sb.cmd(&root, &["run", "--", "make", "-s"])
                .env("PATH", &path)
                .env("LC_ALL", "C")
                .output()
                .unwrap()
        } else {
            // As for tools that cannot load the shim: no LD_PRELOAD anywhere,
            // the wrappers alone keep every change in the view. (`stat` is
            // no wrapper: it reads the disk, where out/a.txt is absent.)
            Command::new("make")
                .arg("-s")
                .current_dir(&root)
                .env("PATH", &path)
                .env("LC_ALL", "C")
                .env("HOME", sb.home())
                .env("VR_THE_SOURCE", sb.store())
                .env("VRIFT_DAEMON_IDLE", "5")
                .env_remove("LD_PRELOAD")
                .env_remove("VRIFT_PROJECT_ROOT")
                .output()
                .unwrap()
        };
        let t = native(&twin, "make -s");
        assert!(t.status.success(), "{}", text(&t));
        if shimmed {
            assert_eq!(text(&out), text(&t), "make in the view vs on the twin");
        } else {
            assert!(!out.status.success(), "stat reads the disk: {}", text(&out));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "alpha\nalpha\n",
                "{}",
                text(&out)
            );
            // Everything but the last line ran; run that one in the view.
            let stat = in_view(&sb, &root, "stat -c '%Y' out/a.txt", false);
            assert_eq!(String::from_utf8_lossy(&stat.stdout), "1000000000\n");
        }
        assert_same_listing(&sb, &root, &twin);
        assert_eq!(
            disk_files(&root),
            before,
            "the project's files changed on disk (shim: {shimmed})"
        );
    }
}

/// A program that prints its argv[0] and arguments and exits 3: a "real
/// tool" that shows how it was called.
const SHOW_ARGS: &str = r#"
#include <stdio.h>
int main(int argc, char **argv) {
    printf("real argv0=%s", argv[0]);
    for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]);
    printf("\n");
    return 3;
}
"#;

#[test]
fn outside_the_project_the_real_tool_runs_untouched() {
    let (sb, root, _) = setup();
    let outside = sb.mkdir("outside");
    let o = outside.display().to_string();
    let reset = || {
        let _ = fs::remove_dir_all(&outside);
        fs::create_dir_all(outside.join("d")).unwrap();
        fs::write(outside.join("f"), "outside file\n").unwrap();
    };
    // GNU's own output and exit code, whether called through the wrapper
    // (in the view) or directly: success and failure alike.
    for cmd in [
        format!("rm '{o}/nothing'"),
        format!("rm '{o}/d'"),
        format!("cat '{o}/f' '{o}/nothing'"),
        format!("cp '{o}/f' '{o}/g' && cat '{o}/g'"),
        format!("mkdir '{o}/d'"),
        format!("cp '{o}/f' '{o}/g' && mv '{o}/g' '{o}/d/' && ls '{o}/d'"),
        format!("chmod 600 '{o}/f' && stat -c %a '{o}/f'"),
        format!("touch -d '2001-09-09 01:46:40' '{o}/f' && stat -c %Y '{o}/f'"),
        format!("ln -s f '{o}/l' && readlink '{o}/l'"),
        format!("rmdir '{o}/d'"),
        format!("chown 12345:nosuchgroup '{o}/f'"),
        "rm --no-such-option".to_string(),
        "cat --version | head -1".to_string(),
    ] {
        reset();
        let wrapped = in_view(&sb, &root, &cmd, true);
        reset();
        let direct = in_view(&sb, &root, &cmd, false);
        assert_eq!(text(&wrapped), text(&direct), "{cmd}");
    }

    // The real tool is exec'd with argv[0] as typed, its arguments as given,
    // and its exit code comes back.
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    let fake = sb.mkdir("fake");
    compile_c_source(&sb, "show-args", SHOW_ARGS);
    fs::rename(sb.path().join("show-args"), fake.join("rm")).unwrap();
    let path = format!("{}:{}", bin(&root).display(), fake.display());
    let script = format!(
        "PATH='{path}':\"$PATH\"; cd '{o}' && rm -f -- '{o}/x y' --target-directory=/tmp; echo \"exit $?\""
    );
    let out = in_view(&sb, &root, &script, false);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("real argv0=rm [-f] [--] [{o}/x y] [--target-directory=/tmp]\nexit 3\n"),
        "{}",
        text(&out)
    );
    // An argument in the project, in any of its spellings, goes to the applet.
    fs::copy(fake.join("rm"), fake.join("cp")).unwrap();
    let r = root.display();
    for cmd in [
        "rm ../p/src/nothing".to_string(),
        format!("rm {r}/src/nothing"),
        format!("rm {o}/../p/src/nothing"),
        format!("cp --target-directory={r}/src /nowhere/x"),
        format!("cp -t{r}/src /nowhere/x"),
        format!("cp -vt {r}/src /nowhere/x"),
        format!("cp /nowhere/x -- {r}/src"),
    ] {
        let script = format!("PATH='{path}':\"$PATH\"; cd '{o}' && {cmd}");
        let out = in_view(&sb, &root, &script, false);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("real argv0"),
            "{cmd}: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("/nowhere/x': No such file")
                || String::from_utf8_lossy(&out.stderr).contains("src/nothing': No such file"),
            "{cmd}: {}",
            text(&out)
        );
    }
    // A symlinked spelling of the project (as /tmp vs /private/tmp).
    let alias = sb.path().join("alias");
    std::os::unix::fs::symlink(&root, &alias).unwrap();
    let script = format!(
        "PATH='{path}':\"$PATH\"; cd / && rm '{}/src/a.txt' && ls '{}/src'",
        alias.display(),
        root.display()
    );
    let out = in_view(&sb, &root, &script, false);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "b.txt\nsub\n",
        "{}",
        text(&out)
    );
    assert!(root.join("src/a.txt").exists());
}

#[test]
fn the_real_tool_is_found_past_vrift_bin_however_path_spells_it() {
    let Some((sb, root, _)) = setup_with_cc(seed_tree) else {
        return;
    };
    let fake = sb.mkdir("fake");
    compile_c_source(&sb, "show-args", SHOW_ARGS);
    fs::rename(sb.path().join("show-args"), fake.join("rm")).unwrap();
    // .vrift/bin through a symlinked directory, and a symlink to vrift
    // named rm: neither is the real rm.
    let alias = sb.path().join("bin-alias");
    std::os::unix::fs::symlink(bin(&root), &alias).unwrap();
    let multicall = sb.mkdir("multicall");
    std::os::unix::fs::symlink(VRIFT, multicall.join("rm")).unwrap();
    let (b, a, m, f) = (
        bin(&root).display().to_string(),
        alias.display().to_string(),
        multicall.display().to_string(),
        fake.display().to_string(),
    );
    for path in [
        format!("{b}:{b}:{f}"),
        format!("{a}:{b}:{f}"),
        format!("{b}:{a}:{m}:{f}"),
        format!("{b}/:{b}/../bin:{f}"),
    ] {
        let out = in_view(
            &sb,
            &root,
            &format!("PATH='{path}':/usr/bin:/bin; rm /nowhere/x"),
            false,
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "real argv0=rm [/nowhere/x]\n",
            "PATH={path}: {}",
            text(&out)
        );
        assert_eq!(out.status.code(), Some(3));
    }
    // No real rm at all: the applet does the job everywhere.
    let out = in_view(
        &sb,
        &root,
        &format!("PATH='{b}'; rm src/a.txt /nowhere/x"),
        false,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rm: cannot remove '/nowhere/x': No such file or directory\n"
    );
    // A command with no applet and no real binary.
    fs::write(
        root.join(".vrift/config.toml"),
        "[wrappers]\ncommands = [\"no-such-tool\"]\n",
    )
    .unwrap();
    sb.ok(&root, &["allow"]);
    let out = in_view(&sb, &root, "no-such-tool x", true);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "no-such-tool: command not found\n"
    );
}

#[test]
fn a_loop_of_wrappers_is_stopped() {
    let (sb, root, _) = setup();
    // A ccache-style masquerade: an `rm` that runs "the rm on PATH", where
    // PATH puts .vrift/bin first again — which finds the wrapper, which
    // finds the masquerade…
    let masq = sb.mkdir("masq");
    let script = masq.join("rm");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nPATH='{}':\"$PATH\" exec rm \"$@\"\n",
            bin(&root).display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let start = Instant::now();
    let out = in_view(
        &sb,
        &root,
        &format!(
            "PATH='{}:{}':\"$PATH\"; rm /nowhere/x",
            bin(&root).display(),
            masq.display()
        ),
        false,
    );
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(126), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "vrift wrapper: rm: wrappers call each other in a loop (VRIFT_WRAPPER_DEPTH=32); check PATH"
        ),
        "{}",
        text(&out)
    );
}

/// Runs `script` with the wrappers in the view and natively in the twin
/// (stderr merged into stdout, then the exit code); asserts the same.
fn same_messages(sb: &Sandbox, root: &Path, twin: &Path, script: &str) {
    let script = format!("{{ {script} ; }} 2>&1; echo \"exit $?\"");
    let v = with_applets(sb, root, &script);
    let t = native(twin, &script);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&t.stdout),
        "{script}: view (left) vs GNU on the twin; view stderr: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn messages_and_results_match_gnu_case_by_case() {
    let (sb, root, twin) = setup();
    for script in [
        // rm
        "rm",
        "rm -f",
        "rm nothing",
        "rm src",
        "rm -d src",
        "rm -r .",
        "rm -rf src/..",
        "rm src/a.txt/",
        "rm -i src/a.txt < /dev/null; ls src",
        "echo y | rm -i src/a.txt; ls src",
        "printf 'y\\nn\\n' | rm -ri src/sub; ls src",
        // rmdir
        "rmdir",
        "rmdir src",
        "rmdir src/a.txt",
        "rmdir nothing",
        "rmdir --ignore-fail-on-non-empty src",
        "mkdir -p e/f && rmdir -pv e/f",
        // mkdir
        "mkdir",
        "mkdir src",
        "mkdir x/y",
        "mkdir -p src/a.txt/z",
        "mkdir -p src/a.txt",
        "mkdir -m 9 x",
        // touch
        "touch",
        "touch nothing/x",
        "touch -d 2001-02-30 x",
        "touch -t 13011200 x",
        "touch -r nothing x",
        "touch -c -d @5 src/a.txt && stat -c %Y src/a.txt",
        // mtime unchanged, compared within each tree (the two trees are
        // seeded at different instants, possibly across a second).
        "m=$(stat -c %Y src/a.txt); touch -a -d @7 src/a.txt && stat -c %X src/a.txt \
         && [ \"$(stat -c %Y src/a.txt)\" = \"$m\" ] && echo mtime kept",
        // chmod
        "chmod",
        "chmod 755",
        "chmod xyz src/a.txt",
        "chmod 755 nothing",
        "chmod -w src/a.txt; stat -c %a src/a.txt",
        "umask 022; chmod 666 src/a.txt && chmod -w src/a.txt; stat -c %a src/a.txt",
        "ln -s nowhere dangling; chmod 600 dangling",
        "chmod -f 600 nothing",
        // chown
        "chown",
        "chown 0",
        "chown no-such-user src/a.txt",
        "chown :no-such-group src/a.txt",
        "chown 0:0 nothing",
        // cp
        "cp",
        "cp src/a.txt",
        "cp nothing x",
        "cp src x",
        "cp src/a.txt src/a.txt",
        "cp -r src src/sub",
        "cp src/a.txt src/b.txt nothing",
        "cp src/a.txt src/b.txt ro.txt",
        "cp src/a.txt nothing/x",
        "cp -r src ro.txt",
        "mkdir d && cp src/a.txt d && cp ro.txt d/a.txt && cat d/a.txt",
        "cp -n src/a.txt src/b.txt; cat src/b.txt",
        "cp -T src/a.txt src/b.txt x",
        "cp -t nothing src/a.txt",
        "ln -s nowhere x && cp src/a.txt x",
        "ln -s b.txt src/l && cp src/a.txt src/l && cat src/b.txt",
        // mv
        "mv",
        "mv src/a.txt",
        "mv nothing x",
        "mv src src/sub",
        "mv src/a.txt src/a.txt",
        "mv src ro.txt",
        "mkdir d && mv src/a.txt d && mv ro.txt d/a.txt && cat d/a.txt && ls -a d",
        "mkdir -p d/sub/x && mv src/sub d",
        "mkdir d2 && mv src/a.txt src/b.txt d2 && ls d2 src",
        // ln
        "ln",
        "ln nothing x",
        "ln src x",
        "ln -s src/a.txt src/b.txt",
        "ln src/a.txt src/b.txt",
        "ln -sf a.txt src",
        "ln -s x y z",
        "ln -sfT x src",
        "ln -f src/a.txt src/a.txt",
        "ln -s /tmp && readlink tmp",
        // cat
        "cat nothing src/a.txt",
        "cat src",
        "echo from-stdin | cat - src/a.txt",
        // and what succeeds, read back through the shim
        "chown daemon: src/a.txt && stat -c %U:%G src/a.txt",
        "chown bin.daemon src/a.txt && stat -c %U:%G src/a.txt",
        "ln -s a.txt src/l && chown -h 1:1 src/l && stat -c %u:%g src/l src/a.txt",
        "ln -s a.txt src/l && chown 2 src/l && stat -c %u:%g src/l src/a.txt",
        "ln -s a.txt src/l && cp src/l x && cp -P src/l y && readlink y; stat -c %F x",
        "ln -s ../ro.txt src/l && cp -r src x && readlink x/l && cp -rL src y && stat -c %F y/l",
        "cp -a src x && chmod -R 700 x && stat -c '%a %n' x x/sub x/a.txt",
        "chmod 4755 src/a.txt && chmod g+s,o-x src/a.txt && stat -c %a src/a.txt",
        "chmod =r,u+w src && stat -c %a src",
        "mkdir -p -m 711 x/y/z && stat -c '%a %n' x x/y x/y/z",
        "mkdir -m u=rwx,g=rx,o= x && stat -c %a x",
        "touch -d '2001-09-09T01:46:40.5' x && stat -c '%Y %y' x",
        "touch -t 0101010101 x && stat -c %Y x",
        "touch -d @1 x && touch -m -r ro.txt x && stat -c %X x",
        "mv -T src x && ls x",
        "mv src/a.txt src/b.txt && cat src/b.txt && ls src",
        "ln -s src s && mv s/a.txt s/z.txt && ls src",
        "rm -rf src && ls",
        "rm -d keep src/sub; ls keep src",
        "rm -v ro.txt src/a.txt",
        "cat src/a.txt src/b.txt src/sub/c.txt",
        "rmdir -p src/sub; ls src",
        "ln -s src s && rm -r s/; ls -a s/ src",
        "ln -s src s && rmdir s/",
        "ln -s src s && mv s/ x; ls",
    ] {
        // Every script starts from the same trees.
        for dir in [&root, &twin] {
            native(
                dir,
                "rm -rf src keep ro.txt x y z d d2 e tmp dangling s; true",
            );
        }
        sb.ok(&root, &["discard", "--yes"]);
        seed_tree(&root);
        seed_tree(&twin);
        same_messages(&sb, &root, &twin, script);
    }
}

#[test]
fn trees_cross_the_edge_of_the_project_and_rift_entries_read_back() {
    let (sb, root, twin) = setup();
    // Ingested files (phantom entries: content in the store only).
    sb.ok(&root, &["ingest", "keep"]);
    let before = disk_files(&root);
    let (ov, ot) = (sb.mkdir("outside-view"), sb.mkdir("outside-twin"));
    for dir in [&ov, &ot] {
        fs::create_dir_all(dir.join("dir/inner")).unwrap();
        fs::write(dir.join("f"), "from outside\n").unwrap();
        fs::write(dir.join("dir/inner/g"), "deep\n").unwrap();
        std::os::unix::fs::symlink("inner/g", dir.join("dir/link")).unwrap();
    }
    let script = "set -e; \
        cp src/a.txt src/new.txt && ln src/a.txt src/hard && ln -s sub src/subl; \
        cp src/subl/c.txt from-rift-link.txt; touch src/subl/made-through-link; \
        mv src/new.txt \"$O/\" && mv \"$O/f\" src/ && mv \"$O/dir\" src/; \
        cp -a src \"$O/copy\"; mv keep \"$O/keep\"; cp -r \"$O/keep\" back; \
        cat src/f \"$O/new.txt\" src/dir/link back/k.txt; \
        rm -r src/dir/inner; mv src/sub src/moved; chmod -R a+w src/moved; \
        cd \"$O\" && find . | LC_ALL=C sort && cat copy/hard copy/subl/c.txt";
    let run = |out_dir: &Path, view: bool| {
        let s = format!("O='{}'; {script}", out_dir.display());
        let o = if view {
            with_applets(&sb, &root, &s)
        } else {
            native(&twin, &s)
        };
        (
            String::from_utf8_lossy(&o.stdout).replace(&out_dir.display().to_string(), "$O"),
            String::from_utf8_lossy(&o.stderr).replace(&out_dir.display().to_string(), "$O"),
            o.status.code(),
        )
    };
    let v = run(&ov, true);
    let t = run(&ot, false);
    assert_eq!(v, t, "view (left) vs GNU on the twin");
    assert_same_listing(&sb, &root, &twin);
    // What left the project is real files outside it, as on the twin.
    let strip = |l: TreeListing| -> Vec<(Vec<u8>, String)> {
        l.into_iter()
            .map(|(k, v)| (k, v.split(" mtime=").next().unwrap().to_string()))
            .collect()
    };
    assert_eq!(strip(list_tree(&ov, &[])), strip(list_tree(&ot, &[])));
    // Inside, the disk kept its files; only directories were made.
    let now = disk_files(&root);
    assert_eq!(now, before, "the project's files changed on disk");
}

#[test]
fn what_an_applet_does_not_implement_goes_whole_to_the_real_tool() {
    let (sb, root, twin) = setup();
    // A date only GNU's parser reads: the real touch (shimmed here) does
    // the whole job, and one line says so.
    let script = "touch -d 'next thursday' x && test -f x; echo \"exit $?\"";
    let v = in_view(&sb, &root, script, true);
    let t = native(&twin, script);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&t.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&v.stderr),
        "vrift: touch: the date 'next thursday' needs GNU's date parser; running /usr/bin/touch instead\n"
    );
    let v = in_view(&sb, &root, "touch -d garbage-date y", true);
    assert_eq!(
        String::from_utf8_lossy(&v.stderr),
        "vrift: touch: the date 'garbage-date' needs GNU's date parser; running /usr/bin/touch instead\n\
         touch: invalid date format 'garbage-date'\n"
    );
    assert_eq!(v.status.code(), Some(1));
    assert!(
        !root.join("x").exists(),
        "the real touch was shimmed: x is in the rift"
    );
}

#[test]
fn wrappers_follow_the_config_and_are_rewritten_when_stale() {
    let (sb, root, _) = setup();
    let names = |root: &Path| {
        let mut v: Vec<String> = fs::read_dir(bin(root))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&root),
        ["cat", "chmod", "chown", "cp", "ln", "mkdir", "mv", "rm", "rmdir", "touch"]
    );
    // A command from the config gets a wrapper at the next entry; one
    // dropped from it loses its wrapper; any other file is removed, with a
    // warning (issue 14: nothing the project ships runs from there).
    fs::write(
        root.join(".vrift/config.toml"),
        "[wrappers]\ncommands = [\"make\", \"tar\", \"../evil\"]\n",
    )
    .unwrap();
    fs::write(bin(&root).join("mine"), "#!/bin/sh\necho mine\n").unwrap();
    sb.ok(&root, &["allow"]);
    let out = sb.run(&root, &["run", "--", "true"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("\"../evil\" is neither a command name nor a path relative to the project root"));
    assert!(
        names(&root).contains(&"make".to_string()) && names(&root).contains(&"tar".to_string())
    );
    fs::write(
        root.join(".vrift/config.toml"),
        "[wrappers]\ncommands = [\"make\"]\n",
    )
    .unwrap();
    sb.ok(&root, &["allow"]);
    sb.ok(&root, &["run", "--", "true"]);
    let now = names(&root);
    assert!(!now.contains(&"tar".to_string()) && !now.contains(&"mine".to_string()));
    // A passed-through command keeps its exit code and output.
    let out = in_view(&sb, &root, "make -f /dev/null nothing-to-make", true);
    let direct = in_view(&sb, &root, "make -f /dev/null nothing-to-make", false);
    assert_eq!(text(&out), text(&direct));

    // A wrapper that is stale (edited, or written by another vrift) is
    // rewritten, atomically, with the stamp of this vrift.
    let rm = bin(&root).join("rm");
    let good = fs::read_to_string(&rm).unwrap();
    fs::write(&rm, good.replace("vrift_exe=", "vrift_exe_old=")).unwrap();
    sb.ok(&root, &["run", "--", "true"]);
    assert_eq!(fs::read_to_string(&rm).unwrap(), good);
    let stamp = good
        .lines()
        .find(|l| l.starts_with("# vrift-wrapper: "))
        .unwrap();
    assert!(stamp.contains(" template "), "{stamp}");
    assert!(good.contains(&format!(
        "vrift_exe='{}'",
        fs::canonicalize(VRIFT).unwrap().display()
    )));
    // `vrift run` checks the wrappers against a record of what it last
    // wrote: a deleted one, or one rewritten with the same size, is noticed.
    fs::remove_file(&rm).unwrap();
    sb.ok(&root, &["run", "--", "true"]);
    assert_eq!(fs::read_to_string(&rm).unwrap(), good);
    fs::write(&rm, good.replace("vrift_exe=", "vrift_exX=")).unwrap();
    sb.ok(&root, &["run", "--", "true"]);
    assert_eq!(fs::read_to_string(&rm).unwrap(), good);
}

/// `[wrappers] commands` names a tool by its path in the project, as the
/// config's comment promises: a tool that exists only in the rift (a
/// `node_modules/.bin` script a build put there) is called by name in the
/// inception, and `vrift doctor` inspects it from the view.
#[test]
fn a_tool_only_in_the_rift_is_wrapped_by_its_path() {
    let (sb, root, _) = setup();
    let made = in_view(
        &sb,
        &root,
        "mkdir -p node_modules/.bin && printf '#!/bin/sh\\necho greet \"$*\"\\n' > node_modules/.bin/greet && chmod +x node_modules/.bin/greet",
        false,
    );
    assert!(made.status.success(), "{}", text(&made));
    assert!(!root.join("node_modules/.bin/greet").exists(), "on disk");
    fs::write(
        root.join(".vrift/config.toml"),
        "[wrappers]\ncommands = [\"./node_modules/.bin/greet\"]\n",
    )
    .unwrap();
    sb.ok(&root, &["allow"]);

    let out = in_view(&sb, &root, "cd src && greet a 'b c'", true);
    assert_eq!(
        text(&out),
        "status Some(0)\nstdout:\ngreet a b c\nstderr:\n"
    );
    let wrapper = fs::read_to_string(bin(&root).join("greet")).unwrap();
    assert!(
        wrapper.contains("vrift_path='node_modules/.bin/greet'"),
        "{wrapper}"
    );

    let out = sb.run(&root, &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "./node_modules/.bin/greet")
        .unwrap_or_else(|| panic!("no check for the tool: {v}"));
    assert_eq!(check["status"], "ok", "{check}");
    assert_eq!(
        check["detail"], "its file in the view can load the shim",
        "{check}"
    );
}

#[test]
fn wrapper_templates_pass_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("shellcheck is not installed (apt-get install shellcheck)");
        return;
    }
    let sb = Sandbox::new();
    let (root, _) = project_and_twin(&sb);
    // The rendered wrapper, and the template itself (placeholders are
    // plain words where they stand).
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("wrappers/wrapper.sh");
    for file in [bin(&root).join("rm"), template] {
        let out = Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn init_wraps_build_commands_that_cannot_load_the_library() {
    // A static program standing in for `make` (as a static busybox or Go
    // tool would), first on PATH.
    let Some((sb, rm)) = static_rm_sandbox() else {
        return;
    };
    let make = rm.with_file_name("make");
    fs::rename(&rm, &make).unwrap();
    let path = format!(
        "{}:{}",
        make.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let root = sb.mkdir("p");
    seed_tree(&root);
    let out = sb
        .cmd(&root, &["init"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "make ({}) cannot load vrift's library (statically linked",
            make.display()
        )),
        "{err}"
    );
    let wrapper = bin(&root).join("make");
    assert!(wrapper.is_file(), "init wrapped it");
    // Called on a path of the project it says, in one line, that its writes
    // go past the rift, then runs; elsewhere it is silent.
    let run = |arg: &str| {
        Command::new(&wrapper)
            .arg(arg)
            .current_dir(&root)
            .env("PATH", format!("{}:{path}", bin(&root).display()))
            .output()
            .unwrap()
    };
    let inside = run("src/b.txt");
    let said = String::from_utf8_lossy(&inside.stderr);
    assert_eq!(
        said.lines()
            .filter(|l| l.contains("goes to the disk, not the rift"))
            .count(),
        1,
        "{said}"
    );
    let outside = run("/nonexistent-vrift-test");
    assert!(
        !String::from_utf8_lossy(&outside.stderr).contains("vrift:"),
        "silent outside the project"
    );
}
