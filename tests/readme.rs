//! The README followed literally, as a newcomer would: its install command
//! in a clean HOME, its two rc lines in `~/.bashrc`, then a real bash in a
//! pty (tmux) running `vrift init` in a small C project, `cd` in and out,
//! and `make`. The outputs must be in the rift and the disk untouched.
//!
//! The install command runs as the README writes it, plus `--from-target`:
//! it installs the binaries this test run already built (a release build
//! inside a test would take minutes) through the same install code.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tmux::{installed, wait_file, Tmux};
use common::{build_shim, Sandbox, VRIFT};

const README: &str = include_str!("../README.md");
const MARKER: &str = "(vrift 🌀)";

/// Whether `tool` is there. CI installs every tool this file needs
/// (`.ci/run`), so there a missing one fails the test instead of skipping it.
fn need(tool: &str) -> bool {
    if installed(tool) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is not installed, and CI is set (.ci/run installs it)"
    );
    common::skip(&format!("{tool} is not installed"));
    false
}

/// The lines of each ```sh block in the README section `heading` (up to the
/// next `## `).
fn sh_blocks(heading: &str) -> Vec<Vec<String>> {
    let start = README
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?} section"));
    let section = &README[start + heading.len() + 2..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(b), l) => b.push(l.to_string()),
            (None, _) => {}
        }
    }
    blocks
}

/// The user's real cargo and rustup homes: the clean HOME must not make
/// cargo download the registry again or lose the toolchain.
fn toolchain_env(cmd: &mut Command) {
    let real_home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let cargo_home = std::env::var_os("CARGO_HOME").map_or(real_home.join(".cargo"), PathBuf::from);
    let rustup_home =
        std::env::var_os("RUSTUP_HOME").map_or(real_home.join(".rustup"), PathBuf::from);
    cmd.env("CARGO_HOME", cargo_home)
        .env("RUSTUP_HOME", rustup_home);
}

/// `line` (a README command starting with `cargo`) run in the repository
/// with HOME = `home`, plus `extra` arguments.
fn cargo_line(home: &Path, line: &str, extra: &[&str]) -> Output {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("cargo"), "{line}");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(words)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", home);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("VRIFT_") || k.starts_with("XDG_") || k == "VR_THE_SOURCE" {
            cmd.env_remove(&k);
        }
    }
    toolchain_env(&mut cmd);
    cmd.output().unwrap()
}

/// An interactive bash in tmux whose commands report their exit status.
struct Shell {
    t: Tmux,
    state: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Shell {
    /// Types `line`, waits for its prompt, returns its exit status.
    fn run(&self, line: &str) -> i32 {
        let n = self.n.get() + 1;
        self.n.set(n);
        let file = self.state.join(format!("status-{n}"));
        let tmp = self.state.join(format!("status-{n}.tmp"));
        self.t.send(&format!(
            "{line}; echo $? > '{}'; mv '{}' '{}'",
            tmp.display(),
            tmp.display(),
            file.display()
        ));
        let status = wait_file(&self.t, &file);
        self.t
            .wait_for("the prompt", |t| t.last_line().ends_with("PROMPT>"));
        status.trim().parse().unwrap()
    }

    fn ok(&self, line: &str) {
        let st = self.run(line);
        assert_eq!(st, 0, "`{line}` exited {st}; pane:\n{}", self.t.history());
    }

    fn in_rift(&self) -> bool {
        self.t.last_line().starts_with(MARKER)
    }
}

const HELLO_C: &str =
    "#include <stdio.h>\nint main(void) { puts(\"hello from the rift\"); return 0; }\n";
const MAKEFILE: &str =
    "hello: hello.o\n\t$(CC) -o $@ hello.o\n\nhello.o: hello.c\n\t$(CC) -c -o $@ hello.c\n";

fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    common::assert_ok(&format!("git {args:?}"), &out)
}

#[test]
fn a_newcomer_follows_the_readme() {
    for tool in ["tmux", "bash", "make", "cc", "git"] {
        if !need(tool) {
            return;
        }
    }
    build_shim();
    let target = Path::new(VRIFT).parent().unwrap().to_str().unwrap();
    let sb = Sandbox::new();
    let home = sb.home();

    // The README's install command, in the clean HOME (default prefix).
    let install = sh_blocks("## Install");
    assert_eq!(
        install[0],
        ["cargo xtask install"],
        "the README's install block changed"
    );
    let out = cargo_line(&home, &install[0][0], &["--from-target", target]);
    let said = common::assert_ok("cargo xtask install", &out);
    let prefix = home.join(".local");
    for rel in [
        "bin/vrift",
        "lib/vrift/libvrift_shim.so",
        "share/bash-completion/completions/vrift",
        "share/zsh/site-functions/_vrift",
        "share/fish/vendor_completions.d/vrift.fish",
        "share/man/man1/vrift.1",
        "share/man/man1/vrift-init.1",
        "share/man/man1/vrift-snapshot-restore.1",
    ] {
        assert!(prefix.join(rel).is_file(), "{rel} not installed:\n{said}");
    }
    assert!(
        !prefix.join("share/man/man1/vrift-__hook-env.1").exists(),
        "hidden commands get no man page"
    );
    assert!(
        said.contains("export PATH="),
        "PATH advice missing:\n{said}"
    );

    // The README's rc lines, run as written (after a plain prompt, so the
    // test can see when a command finished).
    fs::write(home.join(".bashrc"), "PS1='PROMPT> '\n").unwrap();
    let rc_lines = &install[1];
    assert_eq!(rc_lines.len(), 2, "{rc_lines:?}");
    for line in rc_lines {
        let out = Command::new("bash")
            .args(["-c", line])
            .env("HOME", &home)
            .output()
            .unwrap();
        common::assert_ok(line, &out);
    }

    // A small real C project under git.
    let proj = sb.mkdir("hello");
    fs::write(proj.join("hello.c"), HELLO_C).unwrap();
    fs::write(proj.join("Makefile"), MAKEFILE).unwrap();
    git(&proj, &home, &["init", "-q"]);
    git(&proj, &home, &["add", "."]);
    git(
        &proj,
        &home,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "hello",
        ],
    );

    let state = sb.mkdir("state");
    let env = vec![
        ("HOME", home.display().to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
        ("TERM", "xterm-256color".to_string()),
        ("LANG", "C.UTF-8".to_string()),
        ("SHELL", "/bin/bash".to_string()),
    ];
    let sh = Shell {
        t: Tmux::start(&sb, &sb.path(), &env, &["bash".into(), "-i".into()]),
        state: state.clone(),
        n: std::cell::Cell::new(0),
    };
    sh.t.wait_for("the first prompt", |t| t.last_line().ends_with("PROMPT>"));

    // vrift is on PATH, and a fresh set-up is healthy.
    sh.ok(&format!(
        "command -v vrift > '{}'",
        state.join("which").display()
    ));
    assert_eq!(
        fs::read_to_string(state.join("which")).unwrap().trim(),
        prefix.join("bin/vrift").display().to_string()
    );
    sh.ok(&format!(
        "vrift doctor > '{}' 2>&1",
        state.join("doctor").display()
    ));
    let doctor = fs::read_to_string(state.join("doctor")).unwrap();
    assert!(
        doctor.contains(&format!(
            "✓ shim: {} loads",
            prefix.join("lib/vrift/libvrift_shim.so").display()
        )),
        "{doctor}"
    );
    assert!(doctor.contains("✓ hook: installed in"), "{doctor}");

    // The README's usage: cd in, `vrift init`; the hook enters at the next prompt.
    sh.ok("cd hello");
    assert!(!sh.in_rift(), "entered before init:\n{}", sh.t.screen());
    sh.ok("vrift init");
    assert!(sh.in_rift(), "not entered after init:\n{}", sh.t.screen());
    sh.ok("cd ..");
    assert!(!sh.in_rift(), "still in after leaving:\n{}", sh.t.screen());
    sh.ok("cd hello");
    assert!(sh.in_rift(), "not entered again:\n{}", sh.t.screen());

    sh.ok(&format!("make > '{}' 2>&1", state.join("make").display()));
    // The shell itself runs the program the build left in the rift.
    sh.ok(&format!("./hello > '{}'", state.join("hello").display()));
    assert_eq!(
        fs::read_to_string(state.join("hello")).unwrap(),
        "hello from the rift\n"
    );
    // A second make has nothing to do: the rift's mtimes are consistent.
    sh.ok(&format!("make > '{}' 2>&1", state.join("make2").display()));
    let again = fs::read_to_string(state.join("make2")).unwrap();
    assert!(again.contains("is up to date"), "{again}");
    sh.ok("cd ..");
    assert!(!sh.in_rift());

    // Seen from outside (no shim): the disk is as committed, the outputs
    // are in the rift.
    assert_eq!(git(&proj, &home, &["status", "--porcelain"]), "");
    assert!(!proj.join("hello").exists() && !proj.join("hello.o").exists());
    let diff = Command::new(prefix.join("bin/vrift"))
        .arg("diff")
        .current_dir(&proj)
        .env("HOME", &home)
        .output()
        .unwrap();
    let diff = common::assert_ok("vrift diff", &diff);
    for f in ["hello", "hello.o"] {
        assert!(diff.lines().any(|l| l == format!("A {f}")), "{diff}");
    }
    let json = Command::new(prefix.join("bin/vrift"))
        .args(["diff", "--json"])
        .current_dir(&proj)
        .env("HOME", &home)
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&common::assert_ok("vrift diff --json", &json)).unwrap();
    assert_eq!(
        json["changes"],
        serde_json::json!([
            { "change": "added", "path": "hello" },
            { "change": "added", "path": "hello.o" },
        ]),
        "{json}"
    );

    // And the README's uninstall.
    let out = cargo_line(&home, "cargo xtask uninstall", &[]);
    common::assert_ok("cargo xtask uninstall", &out);
    assert!(!prefix.join("bin/vrift").exists());
    assert!(!prefix.join("lib/vrift").exists());
    assert!(!prefix.join("share/man/man1/vrift.1").exists());
}

/// Installing again while a process has the library mapped (a shell inside
/// an inception) gives the new library a new file: the running process
/// keeps the old one, intact, and new processes load the new one.
#[test]
fn reinstalling_leaves_a_running_process_its_library() {
    if !need("sleep") {
        return;
    }
    build_shim();
    let target = Path::new(VRIFT).parent().unwrap();
    let sb = Sandbox::new();
    let home = sb.home();
    let prefix = sb.path().join("prefix");
    let prefix_s = prefix.to_str().unwrap();
    let install = |from: &Path| {
        let out = cargo_line(
            &home,
            "cargo xtask install",
            &[
                "--prefix",
                prefix_s,
                "--from-target",
                from.to_str().unwrap(),
            ],
        );
        common::assert_ok("cargo xtask install", &out);
    };
    install(target);
    let lib = prefix.join("lib/vrift/libvrift_shim.so");
    let old = fs::metadata(&lib).unwrap();

    let mut running = Command::new("sleep")
        .arg("60")
        .env("LD_PRELOAD", &lib)
        .spawn()
        .unwrap();
    let maps = format!("/proc/{}/maps", running.id());
    let mapped = |suffix: &str| {
        fs::read_to_string(&maps)
            .unwrap()
            .lines()
            .any(|l| l.ends_with(&format!("{}{suffix}", lib.display())))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !mapped("") {
        assert!(
            std::time::Instant::now() < deadline,
            "the library never got mapped"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // A different library (the same one with bytes past its end, which the
    // loader ignores), beside the same binary.
    let next = sb.mkdir("next");
    std::os::unix::fs::symlink(VRIFT, next.join("vrift")).unwrap();
    let mut bytes = fs::read(target.join("libvrift_shim.so")).unwrap();
    bytes.extend_from_slice(&[0; 16]);
    fs::write(next.join("libvrift_shim.so"), &bytes).unwrap();
    install(&next);

    let new = fs::metadata(&lib).unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&new),
        std::os::unix::fs::MetadataExt::ino(&old)
    );
    assert_eq!(new.len(), old.len() + 16);
    assert!(
        running.try_wait().unwrap().is_none(),
        "the running process died"
    );
    assert!(
        mapped(" (deleted)"),
        "{}",
        fs::read_to_string(&maps).unwrap()
    );
    running.kill().unwrap();
    running.wait().unwrap();
}
