//! Real dependency trees in the rift: a Python venv with pip's own
//! site-packages, and a node_modules installed by npm. Under `vrift run`
//! every tool must see exactly what it sees in a physical copy.
//!
//! The npm case needs the registry; it skips with a message when npm or the
//! network is unavailable.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

struct Real {
    sb: Sandbox,
    root: PathBuf,
    copy: PathBuf,
}

impl Real {
    /// Moves `tree` (relative to the project) into the rift after copying it.
    fn ingest(sb: Sandbox, root: PathBuf, tree: &str) -> Real {
        let copy = sb.mkdir("copy");
        cp_a(&root.join(tree), &copy.join(tree));
        sb.ok(&root, &["init"]);
        sb.ok(&root, &["ingest", tree]);
        Real { sb, root, copy }
    }

    fn same(&self, script: &str) -> String {
        same_in_view_and_copy(&self.sb, &self.root, &self.copy, script, false)
    }
}

fn tool_walks(r: &Real, tree: &str) {
    r.same(&format!("find {tree} | sort"));
    r.same(&format!(
        "find {tree} -type f -exec md5sum {{}} + | sort -k2"
    ));
    r.same(&format!("du -a --apparent-size {tree} | sort -k2"));
    r.same(&format!(
        "ls -laR --time-style=+ {tree} | grep -v '^total' | grep -v ' \\.\\.$' | md5sum"
    ));
    r.same(&format!(
        "tar cf - {tree} | tar tvf - | grep -v '^d' | sort -k6"
    ));
    r.same(&format!(
        "stat -c '%n %s %a %F %Y' $(find {tree} -type f | sort | head -50)"
    ));
    let diff = r.sb.run(
        &r.root,
        &[
            "run",
            "--",
            "diff",
            "-r",
            tree,
            r.copy.join(tree).to_str().unwrap(),
        ],
    );
    assert!(
        diff.status.success() && diff.stdout.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );
}

#[test]
fn a_python_venv_with_pip_runs_from_the_rift() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(root.join("venv"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        skip("python3 -m venv (with ensurepip) is not available");
        return;
    }
    let r = Real::ingest(sb, root, "venv");
    assert_eq!(
        r.root.join("venv/bin").read_dir().unwrap().count(),
        0,
        "ingested off the disk"
    );
    tool_walks(&r, "venv");
    let out = r.same(
        "venv/bin/python -c 'import pip, json, email.mime.text; print(pip.__version__ != \"\")'",
    );
    assert_eq!(out, "True\n");
    r.same("venv/bin/python -m pip --version | cut -d' ' -f1-2");
    r.same("venv/bin/python -m pip list --format=freeze --disable-pip-version-check 2>/dev/null | sort");
}

#[test]
fn an_npm_node_modules_runs_from_the_rift() {
    build_shim();
    if Command::new("npm").arg("--version").output().is_err() {
        skip("npm is not installed");
        return;
    }
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    std::fs::write(
        root.join("package.json"),
        r#"{"name":"p","version":"1.0.0","private":true}"#,
    )
    .unwrap();
    let install = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "is-number@7.0.0",
            "semver@7.6.0",
            "chalk@4.1.2",
        ])
        .current_dir(&root)
        .env("npm_config_cache", sb.path().join("npm-cache"))
        .output()
        .unwrap();
    if !install.status.success() {
        eprintln!(
            "skipped: npm install failed (registry unreachable?): {}",
            String::from_utf8_lossy(&install.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
        return;
    }
    std::fs::copy(
        root.join("package.json"),
        sb.mkdir("copy").join("package.json"),
    )
    .unwrap();
    let r = Real::ingest(sb, root, "node_modules");
    tool_walks(&r, "node_modules");
    if Command::new("node").arg("--version").output().is_ok() {
        let out = r.same(
            "node -e 'const s = require(\"semver\"); const n = require(\"is-number\"); \
             console.log(s.satisfies(\"1.2.3\", \"^1.0.0\"), n(5), typeof require(\"chalk\").red)'",
        );
        assert_eq!(out, "true true function\n");
        r.same("node -e 'console.log(require.resolve(\"semver\").replace(process.cwd(), \".\"))'");
    } else {
        skip("node is not installed");
    }
}
