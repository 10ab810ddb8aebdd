//! Real open-source projects from the registries build under `vrift run`
//! as they do natively, with nothing written to the project's files on
//! disk: Lua (Debian's source package, built with its own Makefile), a
//! crates.io crate with `cargo build`, an npm project with `npm install &&
//! npm run build`. Each skips with a message when its registry cannot be
//! reached.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn tool_ok(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checksums of the files `find ARGS` lists, in the view or natively.
fn checksums(sb: &Sandbox, dir: &Path, find_args: &str, view: bool) -> String {
    let script = format!("find {find_args} -type f | LC_ALL=C sort | xargs cksum");
    sh_in_view_or_natively(sb, dir, &script, view)
}

const LUA_URL: &str = "http://deb.debian.org/debian/pool/main/l/lua5.4/lua5.4_5.4.4.orig.tar.gz";

#[test]
fn lua_from_debian_builds_with_its_makefile() {
    if !has_cc() || !tool_ok("make") || !tool_ok("curl") {
        skip("cc, make or curl is missing");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let tgz = sb.path().join("lua.tar.gz");
    let got = Command::new("curl")
        .args(["-sSfL", "--max-time", "60", "-o"])
        .arg(&tgz)
        .arg(LUA_URL)
        .status()
        .is_ok_and(|s| s.success());
    if !got {
        eprintln!("skipped: {LUA_URL} is unreachable");
        return;
    }
    for d in ["proj", "twin"] {
        let dir = sb.mkdir(d);
        let st = Command::new("tar")
            .args(["xzf"])
            .arg(&tgz)
            .args(["--strip-components=1", "-C"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let (root, twin) = (sb.path().join("proj"), sb.path().join("twin"));
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);

    let native = Command::new("make")
        .args(["-j2", "posix"])
        .current_dir(&twin)
        .output()
        .unwrap();
    assert!(
        native.status.success(),
        "{}",
        String::from_utf8_lossy(&native.stderr)
    );
    sb.ok(&root, &["run", "--", "make", "-j2", "posix"]);
    let outputs = "src \\( -name '*.o' -o -name liblua.a -o -name lua -o -name luac \\)";
    let (r, n) = (
        checksums(&sb, &root, outputs, true),
        checksums(&sb, &twin, outputs, false),
    );
    assert!(r.lines().count() > 30, "{r}");
    assert_eq!(r, n, "outputs are byte-identical");
    assert_eq!(
        sb.ok(
            &root,
            &["run", "--", "./src/lua", "-e", "print(6 * 7, _VERSION)"]
        ),
        "42\tLua 5.4\n"
    );
    // Up to date: make has nothing to do.
    let again = sb.ok(&root, &["run", "--", "make", "posix"]);
    assert!(!again.contains("gcc"), "{again}");
    assert_eq!(
        disk_files(&root),
        before,
        "nothing written to the project's disk"
    );
}

#[test]
fn a_crate_builds_with_cargo() {
    if !tool_ok("cargo") {
        skip("cargo is missing");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("crate");
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"1\"\n\n[workspace]\n",
    )
    .unwrap();
    fs::write(
        root.join("src/main.rs"),
        "fn main() { let mut b = itoa::Buffer::new(); println!(\"n={}\", b.format(6 * 7)); }\n",
    )
    .unwrap();
    // Fetch the dependency natively (into ~/.cargo, outside the project).
    let fetch = Command::new("cargo")
        .args(["generate-lockfile", "--quiet"])
        .current_dir(&root)
        .output()
        .unwrap();
    if !fetch.status.success() {
        eprintln!(
            "skipped: crates.io is unreachable: {}",
            String::from_utf8_lossy(&fetch.stderr)
        );
        return;
    }
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);
    let out = sb.run(&root, &["run", "--", "cargo", "build", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sb.ok(&root, &["run", "--", "./target/debug/demo"]),
        "n=42\n"
    );
    // A second build does nothing; the project's files are untouched.
    let again = sb.run(&root, &["run", "--", "cargo", "build"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && !err.contains("Compiling"),
        "{err}"
    );
    assert_eq!(disk_files(&root), before);
}

#[test]
fn an_npm_project_installs_and_builds() {
    let Some((sb, root, before)) = npm_project(&[
        (
            "package.json",
            r#"{"name":"web","version":"1.0.0","private":true,"scripts":{"build":"node build.js"},"dependencies":{"is-number":"7.0.0"}}"#,
        ),
        (
            "build.js",
            "const fs = require('fs'); const isNumber = require('is-number');\n\
             fs.mkdirSync('dist', { recursive: true });\n\
             fs.writeFileSync('dist/out.txt', 'built ' + isNumber(5) + '\\n');\n",
        ),
    ]) else {
        return;
    };
    sb.ok(&root, &["run", "--", "npm", "run", "--silent", "build"]);
    assert_eq!(
        sb.ok(&root, &["run", "--", "cat", "dist/out.txt"]),
        "built true\n"
    );
    let listing = sb.ok(&root, &["run", "--", "ls", "node_modules/is-number"]);
    assert!(listing.contains("index.js"), "{listing}");
    assert!(!root.join("node_modules/is-number/index.js").exists());
    assert_eq!(disk_files(&root), before);
}

/// esbuild is a Go program shipped inside an npm package: its bundle runs
/// under the syscall supervisor, resolves the dependencies the rift holds
/// (`node_modules` was installed in the view) and writes the bundle to the
/// rift.
#[test]
fn an_esbuild_bundle_resolves_rift_modules_and_writes_to_the_rift() {
    let Some((sb, root, before)) = npm_project(&[
        (
            "package.json",
            r#"{"name":"web","version":"1.0.0","private":true,"scripts":{"bundle":"esbuild src/index.js --bundle --platform=node --log-level=warning --outfile=dist/x.js"},"dependencies":{"is-number":"7.0.0","esbuild":"0.19.12"}}"#,
        ),
        (
            "src/index.js",
            "const isNumber = require('is-number');\nconsole.log('bundled', isNumber(5));\n",
        ),
    ]) else {
        return;
    };
    // esbuild's own install check ran its Go binary: in the view, or the
    // binary it checked would not be there.
    assert!(!root.join("node_modules/esbuild/bin/esbuild").exists());
    sb.ok(&root, &["run", "--", "npm", "run", "--silent", "bundle"]);
    assert_eq!(
        sb.ok(&root, &["run", "--", "node", "dist/x.js"]),
        "bundled true\n"
    );
    let bundle = sb.ok(&root, &["cat", "dist/x.js"]);
    assert!(bundle.contains("isNumber"), "{bundle}");
    assert!(!root.join("dist/x.js").exists(), "esbuild wrote the disk");
    assert_eq!(disk_files(&root), before);
}

/// The library built and a project `web` holding `files` (relative paths
/// and contents), initialised, then `npm install`ed in the view; with what
/// its disk held before the install. `None` when node or npm is missing
/// (SKIPPED, or a failure under `CI`) or the registry is unreachable.
fn npm_project(files: &[(&str, &str)]) -> Option<(Sandbox, PathBuf, BTreeMap<String, String>)> {
    if !tool_ok("npm") || !tool_ok("node") {
        skip("node or npm is missing");
        return None;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("web");
    for (rel, content) in files {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    sb.ok(&root, &["init"]);
    let before = disk_files(&root);
    npm_install_in_view(&sb, &root).then_some((sb, root, before))
}

/// `npm install` in the view of `root`; false (with a line saying so) when
/// the registry is unreachable, a panic on any other failure.
fn npm_install_in_view(sb: &Sandbox, root: &Path) -> bool {
    let install = sb.run(
        root,
        &[
            "run",
            "--",
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
    );
    if !install.status.success() {
        let err = String::from_utf8_lossy(&install.stderr);
        if err.contains("ENOTFOUND") || err.contains("ETIMEDOUT") || err.contains("EAI_AGAIN") {
            eprintln!("skipped: the npm registry is unreachable: {err}");
            return false;
        }
        panic!("npm install failed: {err}");
    }
    true
}
