//! `cargo xtask demo`: vrift on a real C project, step by step.
//!
//! Every step is a shell line printed as the user would type it and run
//! exactly as printed (`sh -c LINE`, with the release `vrift` first on
//! PATH), followed by what to notice; each is checked, and the demo fails
//! if one does not do what it says. It needs `cc`, `make`, `git` and `bash`,
//! and no network.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};

use crate::sandbox::{copy_tree, print_output, Sandbox};
use crate::{cargo, compare};

/// The vendored dependency: a heavy tree (here 60 small headers), ignored
/// by git like node_modules or .venv.
const VENDOR_FILES: usize = 60;

/// A program in two files, so that an edit rebuilds one object of two.
const SOURCES: &[(&str, &str)] = &[
    (
        "main.c",
        "#include <stdio.h>\n#include \"greet.h\"\n\nint main(void) {\n    printf(\"hello, %s\\n\", who());\n    return 0;\n}\n",
    ),
    ("greet.h", "const char *who(void);\n"),
    (
        "greet.c",
        "#include \"greet.h\"\n\nconst char *who(void) { return \"world\"; }\n",
    ),
    (
        "Makefile",
        "hello: main.o greet.o\n\t$(CC) -o $@ main.o greet.o\n\nmain.o: main.c greet.h\n\t$(CC) -c -o $@ main.c\n\ngreet.o: greet.c greet.h\n\t$(CC) -c -o $@ greet.c\n",
    ),
];

pub fn run(keep: bool, dir: Option<PathBuf>) -> Result<()> {
    for tool in ["cc", "make", "git", "bash"] {
        Command::new(tool)
            .arg("--version")
            .output()
            .with_context(|| format!("the demo needs {tool} on PATH"))?;
    }
    // The shim is found beside the binary.
    let bin = cargo::build_release_vrift_and_shim()?.vrift;
    let sandbox = Sandbox::create(dir.as_deref(), "vrift-demo-")?;
    println!(
        "demo directory: {} (HOME, store and projects live here; {})",
        sandbox.path().display(),
        if keep {
            "kept afterwards"
        } else {
            "removed afterwards unless --keep"
        }
    );
    let result = Demo::new(&bin, &sandbox).and_then(Demo::run);
    // A failed demo is small: keep it so the failure can be inspected.
    sandbox.finish(keep || result.is_err())?;
    result?;
    println!("\ndemo finished: every step did what it says");
    Ok(())
}

struct Demo<'a> {
    sandbox: &'a Sandbox,
    /// PATH with the release vrift first.
    path: std::ffi::OsString,
    hello: PathBuf,
    step: usize,
}

impl<'a> Demo<'a> {
    fn new(vrift: &Path, sandbox: &'a Sandbox) -> Result<Demo<'a>> {
        let bin_dir = vrift.parent().context("vrift has a directory")?;
        let mut dirs = vec![bin_dir.to_path_buf()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        Ok(Demo {
            sandbox,
            path: std::env::join_paths(dirs)?,
            hello: sandbox.path().join("hello"),
            step: 0,
        })
    }

    fn header(&mut self, title: &str) {
        self.step += 1;
        println!("\n==> {}. {title}", self.step);
    }

    fn notice(&self, what: &str) {
        println!("  ↳ {what}");
    }

    /// A command with the sandbox's environment, vrift on PATH and a git
    /// identity (the sandbox's HOME has no git config).
    fn command(&self, program: &str, cwd: &Path) -> Command {
        let mut cmd = self.sandbox.command(program);
        cmd.current_dir(cwd).env("PATH", &self.path);
        for (k, v) in [
            ("GIT_AUTHOR_NAME", "demo"),
            ("GIT_AUTHOR_EMAIL", "demo@example.com"),
            ("GIT_COMMITTER_NAME", "demo"),
            ("GIT_COMMITTER_EMAIL", "demo@example.com"),
            ("LC_ALL", "C"),
        ] {
            cmd.env(k, v);
        }
        cmd
    }

    /// Prints `$ LINE`, runs it with `sh -c` in `cwd`, prints its output and
    /// returns its stdout; fails if the line fails.
    fn line(&self, cwd: &Path, line: &str) -> Result<String> {
        println!("$ {line}");
        let out = self
            .command("sh", cwd)
            .args(["-c", line])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{line}`"))?;
        print_output(&out);
        ensure!(out.status.success(), "`{line}` failed ({})", out.status);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Blobs in the store, from `vrift status --json` (not printed).
    fn store_blobs(&self, cwd: &Path) -> Result<u64> {
        let out = self
            .command("vrift", cwd)
            .args(["status", "--json"])
            .output()?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("vrift status --json printed no JSON")?;
        v["store"]["blobs"].as_u64().context("no store.blobs")
    }

    fn run(mut self) -> Result<()> {
        let top = self.sandbox.path().to_path_buf();
        let hello = self.hello.clone();

        self.header("a small C project under git");
        fs::create_dir(&hello)?;
        for (name, text) in SOURCES {
            fs::write(hello.join(name), text)?;
        }
        fs::write(hello.join(".gitignore"), "vendor/\n")?;
        write_vendor(&hello.join("vendor/libgreet"))?;
        let pristine_vendor = top.join("vendor-pristine");
        copy_tree(&hello.join("vendor"), &pristine_vendor)?;
        println!("$ cd {}", hello.display());
        self.line(&hello, "ls")?;
        self.line(&hello, "git init -q && git add . && git commit -qm hello")?;
        self.notice(&format!(
            "vendor/ ({VENDOR_FILES} headers) stands for a downloaded dependency tree: git ignores it"
        ));

        self.header("make it a vrift project");
        self.line(&hello, "vrift init")?;
        self.notice("`.vrift/` holds the rift's manifest and config (git ignores it); the project is now trusted, so the shell hook may enter it");

        self.header("move the dependency tree into the store");
        self.line(&hello, "vrift ingest vendor")?;
        let left = compare::census(&hello.join("vendor"))?;
        ensure!(left.files == 0, "ingest left {} files on disk", left.files);
        self.line(&hello, "ls vendor/libgreet | wc -l")?;
        self.line(&hello, "vrift cat vendor/libgreet/greet-0.h")?;
        self.notice("the files left the disk (directories stay); the view still shows them, and identical content is stored once for every project");

        self.header("build inside the inception: the outputs land in the rift");
        let out = self.line(&hello, "vrift run -- make")?;
        ensure!(out.contains("-o hello"), "make did not link hello");
        let out = self.line(&hello, "vrift run -- ./hello")?;
        ensure!(out.contains("hello, world"), "./hello printed {out:?}");
        let status = self.line(&hello, "git status --short")?;
        ensure!(status.is_empty(), "the build changed the disk:\n{status}");
        self.notice("git status prints nothing: the disk is as committed");
        let ls = self.line(&hello, "ls")?;
        ensure!(!ls.contains("main.o"), "main.o is on disk");
        self.line(&hello, "vrift ls")?;
        self.notice("`ls` (the disk) has no main.o, greet.o or hello; `vrift ls` (the view) marks them `rift`");
        self.line(&hello, "vrift diff")?;

        self.header("snapshot the build, discard it, restore it: make has nothing to do");
        self.line(&hello, "vrift snapshot save built")?;
        self.line(&hello, "vrift discard --yes")?;
        let diff = self.line(&hello, "vrift diff")?;
        ensure!(diff.trim().is_empty(), "discard left {diff}");
        self.notice("the rift is empty: a fresh checkout, without deleting anything on disk");
        self.line(&hello, "vrift snapshot restore built")?;
        let out = self.line(&hello, "vrift run -- make")?;
        ensure!(
            out.contains("is up to date"),
            "make rebuilt after a restore"
        );
        self.notice("the restore copied no file (the blobs are shared) and kept every output's time, so make is a no-op");

        self.header("edit a source inside the inception, rebuild incrementally");
        self.line(&hello, "vrift run -- sed -i 's/world/rift/' greet.c")?;
        let out = self.line(&hello, "vrift run -- make")?;
        ensure!(
            out.contains("greet.c") && !out.contains("main.c"),
            "make did not rebuild exactly greet.o"
        );
        self.notice("only greet.o was recompiled, then hello relinked");
        let out = self.line(&hello, "vrift run -- ./hello")?;
        ensure!(out.contains("hello, rift"), "./hello printed {out:?}");
        let status = self.line(&hello, "git status --short")?;
        ensure!(status.is_empty(), "the edit reached the disk:\n{status}");
        self.line(&hello, "vrift diff")?;
        self.notice("the edit is in the rift (M greet.c): the disk still says \"world\"");

        self.header("a second worktree: the same build is stored once");
        let feature = top.join("hello-feature");
        self.line(&hello, "git worktree add -q ../hello-feature")?;
        let before = self.store_blobs(&hello)?;
        println!("$ cd ../hello-feature");
        self.line(&feature, "vrift init")?;
        self.line(&feature, "vrift run -- make")?;
        let after = self.store_blobs(&feature)?;
        self.line(&feature, "vrift status")?;
        ensure!(
            after == before,
            "the second worktree's build added {} blobs",
            after.saturating_sub(before)
        );
        self.notice(&format!(
            "the store held {before} blobs before this build and {after} after: its objects and program have the same content as the snapshot's, stored once"
        ));

        self.header("the shell hook: cd enters the rift, cd .. leaves it");
        self.hook_session(&top)?;

        self.header("the store");
        self.line(&hello, "vrift fsck")?;
        self.line(&hello, "vrift gc")?;
        self.notice("nothing to delete while a project or snapshot uses a blob; `vrift snapshot drop built` then `vrift gc --delete` frees what only the snapshot held");

        self.header("write the view back to disk");
        self.line(&hello, "vrift materialize")?;
        let status = self.line(&hello, "git status --short")?;
        ensure!(
            status.contains("greet.c") && status.contains("hello"),
            "materialize did not write the view:\n{status}"
        );
        self.notice("now the edit and the outputs are real files: git sees them");
        let (diffs, seen) = compare::trees(&hello.join("vendor"), &pristine_vendor, &[])?;
        ensure!(
            diffs.is_empty(),
            "vendor/ differs from the pristine copy:\n  {}",
            diffs.join("\n  ")
        );
        self.notice(&format!(
            "vendor/ is back on disk identical to the original ({} files: names, modes, contents, times)",
            seen.files
        ));
        Ok(())
    }

    /// An interactive bash with the hook in its rc file, fed the lines a
    /// user would type.
    fn hook_session(&self, top: &Path) -> Result<()> {
        let home = self.sandbox.path().join("home");
        let rc = "PS1='$ '\neval \"$(vrift hook bash)\"\n";
        fs::write(home.join(".bashrc"), rc)?;
        println!("~/.bashrc:");
        for l in rc.lines() {
            println!("    {l}");
        }
        let typed = "cd hello\necho \"VRIFT_INCEPTION=${VRIFT_INCEPTION-}\"\nmake\ncd ..\necho \"VRIFT_INCEPTION=${VRIFT_INCEPTION-}\"\nexit\n";
        // One stream, in order: bash writes its prompt and the echo of what
        // it reads to stderr, the commands' output to stdout. Without a
        // terminal, bash also warns about job control.
        let mut child = self
            .command("sh", top)
            .args(["-c", "exec bash -i 2>&1"])
            .env("SHELL", "/bin/bash")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run bash")?;
        std::io::Write::write_all(
            &mut child.stdin.take().context("stdin is piped")?,
            typed.as_bytes(),
        )?;
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("$ bash -i   # then typed: cd hello; echo …; make; cd ..; echo …; exit");
        for l in text.lines().filter(|l| {
            !l.starts_with("bash: cannot set terminal") && !l.starts_with("bash: no job control")
        }) {
            println!("    {l}");
        }
        ensure!(
            text.contains("VRIFT_INCEPTION=1\n") && text.contains("VRIFT_INCEPTION=\n"),
            "the hook did not enter and leave:\n{text}"
        );
        ensure!(
            text.contains("is up to date"),
            "make in the hook shell rebuilt:\n{text}"
        );
        self.notice("the prompt's hook entered the trusted project on `cd hello` (make sees the rift: up to date) and restored the environment on `cd ..`");
        Ok(())
    }
}

/// `VENDOR_FILES` headers, a third of them with the same content (real
/// dependency trees are full of duplicates).
fn write_vendor(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    for i in 0..VENDOR_FILES {
        let body = if i % 3 == 0 {
            "/* SPDX-License-Identifier: MIT */\n".to_string()
        } else {
            format!("/* greet {i} */\n#define GREET_{i} {i}\n")
        };
        fs::write(dir.join(format!("greet-{i}.h")), body)?;
    }
    Ok(())
}
