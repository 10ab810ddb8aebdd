//! `vrift ingest` / `vrift materialize` on real trees, including bad input:
//! non-UTF-8 names, special files, symlinks out of the tree, hard links,
//! unreadable files, interruptions, concurrent runs and a full store.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn project_with_node_modules(sb: &Sandbox, name: &str, packages: usize) -> std::path::PathBuf {
    let root = sb.mkdir(name);
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(root.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
    write_node_modules(&root.join("node_modules"), packages, 4, 700);
    root
}

#[test]
fn ingest_then_materialize_round_trips_a_tree() {
    let sb = Sandbox::new();
    let root = project_with_node_modules(&sb, "p", 30);
    let pristine = list_tree(&root, &[".vrift"]);

    let out = sb.ok(&root, &["init"]);
    assert!(
        out.contains("phantom candidates written to .vrift/config.toml: node_modules"),
        "{out}"
    );
    let out = sb.ok(&root, &["ingest"]);
    assert!(out.contains("ingested 181 files"), "{out}");
    assert!(out.contains("and 1 symlinks"), "{out}");

    // Files are gone from the disk, directories stay.
    let on_disk = list_tree(&root, &[".vrift"]);
    assert!(on_disk
        .keys()
        .all(|k| !k.starts_with(b"node_modules") || on_disk[k].starts_with("dir")));
    assert!(root.join("node_modules/pkg-3/lib").is_dir());
    assert_eq!(
        fs::read_to_string(root.join("src/main.c")).unwrap().len(),
        29,
        "src untouched"
    );

    // The view still shows them.
    let ls = sb.ok(&root, &["ls", "node_modules/pkg-1"]);
    assert!(ls.contains("phantom  package.json"), "{ls}");
    assert!(ls.contains("disk     lib/"), "{ls}");
    let cat = sb.ok(&root, &["cat", "node_modules/pkg-1/package.json"]);
    assert_eq!(cat, "{\"name\":\"pkg-1\",\"version\":\"1.0.1\"}\n");
    // Through the ingested symlink, too.
    let via_link = sb.ok(&root, &["cat", "node_modules/.bin/tool"]);
    assert!(via_link.starts_with("// pkg 0 file 0"));

    // Duplicates are stored once: 30 identical LICENSE files, one blob.
    let status = sb.ok(&root, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["phantom"]["entries"], 182);
    assert_eq!(v["rift"]["entries"], 0);
    assert!(v["dedup_ratio"].as_f64().unwrap() > 1.0, "{status}");
    assert_eq!(
        v["store"]["blobs"].as_u64().unwrap() as usize,
        sb.blob_count()
    );

    // Blobs are private, read-only and never executable, even for an
    // executable file.
    for fan in fs::read_dir(sb.store().join("blobs")).unwrap() {
        for blob in fs::read_dir(fan.unwrap().path()).unwrap() {
            let mode = blob.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o400);
        }
    }

    let out = sb.ok(&root, &["materialize"]);
    assert!(out.contains("materialized 181 files"), "{out}");
    assert_same_tree(&pristine, &list_tree(&root, &[".vrift"]));
    let status: serde_json::Value =
        serde_json::from_str(&sb.ok(&root, &["status", "--json"])).unwrap();
    assert_eq!(status["phantom"]["entries"], 0);
    // The executable came back executable.
    let mode = fs::metadata(root.join("node_modules/pkg-0/cli.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let run = Command::new(root.join("node_modules/pkg-0/cli.sh"))
        .output()
        .unwrap();
    assert_eq!(run.stdout, b"hi\n");
}

#[test]
fn a_second_identical_tree_adds_no_blobs() {
    let sb = Sandbox::new();
    let a = project_with_node_modules(&sb, "a", 20);
    let b = sb.mkdir("b");
    cp_a(&a.join("node_modules"), &b.join("node_modules"));
    sb.ok(&a, &["init"]);
    sb.ok(&b, &["init"]);
    sb.ok(&a, &["ingest"]);
    let blobs = sb.blob_count();
    let out = sb.ok(&b, &["ingest", "node_modules"]);
    assert!(out.contains(" 0 new blobs"), "{out}");
    assert_eq!(sb.blob_count(), blobs);
    // The duplicates are deleted by a detached cleanup shortly after.
    assert!(
        sb.wait_trash_gone(),
        "the trash of duplicates was not cleaned up"
    );
    assert_eq!(sb.staged_leftovers(), 0);
}

#[test]
fn non_utf8_names_round_trip() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let dir = root.join("deps");
    fs::create_dir_all(&dir).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.txt");
    fs::write(dir.join(name), b"latin-1 name\n").unwrap();
    fs::create_dir(dir.join(std::ffi::OsStr::from_bytes(b"d\x80ir"))).unwrap();
    fs::write(
        dir.join(std::ffi::OsStr::from_bytes(b"d\x80ir/inner")),
        b"inner\n",
    )
    .unwrap();
    let pristine = list_tree(&root, &[".vrift"]);
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["ingest", "deps"]);
    assert!(!dir.join(name).exists());

    let ls = sb.run(&root, &["ls", "deps"]);
    assert!(ls.status.success());
    assert!(
        ls.stdout.windows(10).any(|w| w == b"caf\xe9-\xff.txt"),
        "raw name listed"
    );
    let cat = sb
        .cmd(&root, &[])
        .arg("cat")
        .arg(Path::new("deps").join(name))
        .output()
        .unwrap();
    assert_eq!(cat.stdout, b"latin-1 name\n");

    sb.ok(&root, &["materialize", "deps"]);
    assert_same_tree(&pristine, &list_tree(&root, &[".vrift"]));
}

#[test]
fn special_files_are_skipped_with_a_warning_and_never_opened() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let dir = root.join("deps");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("plain"), b"x").unwrap();
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    sb.ok(&root, &["init"]);
    // Opening the fifo for reading would block forever: the run must not hang.
    let out = sb.run(&root, &["ingest", "deps"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipping") && stderr.contains("fifo (a fifo)"),
        "{stderr}"
    );
    assert!(stderr.contains("sock (a socket)"), "{stderr}");
    assert!(
        fifo.exists() && dir.join("sock").exists(),
        "special files stay on disk"
    );
    assert!(!dir.join("plain").exists());
    if Path::new("/dev/null").exists() {
        // A device node can only be made by root.
        if is_root() {
            let dev = dir.join("null");
            let c = std::ffi::CString::new(dev.as_os_str().as_bytes()).unwrap();
            // SAFETY: valid path; makedev(1, 3) is /dev/null.
            assert_eq!(
                // SAFETY: a valid NUL-terminated path; makedev(1, 3) is /dev/null.
                unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
                0
            );
            let out = sb.run(&root, &["ingest", "deps"]);
            assert!(String::from_utf8_lossy(&out.stderr).contains("null (a character device)"));
            assert!(dev.exists());
        }
    }
}

#[test]
fn symlinks_are_stored_as_symlinks_and_never_followed_out_of_the_tree() {
    let sb = Sandbox::new();
    let outside = sb.mkdir("outside");
    fs::write(outside.join("secret"), b"outside data").unwrap();
    fs::create_dir(outside.join("dir")).unwrap();
    fs::write(outside.join("dir/f"), b"f").unwrap();
    let root = sb.mkdir("p");
    let dir = root.join("deps");
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), dir.join("to-file")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("to-dir")).unwrap();
    std::os::unix::fs::symlink("missing", dir.join("dangling")).unwrap();
    sb.ok(&root, &["init"]);
    let out = sb.ok(&root, &["ingest", "deps"]);
    assert!(
        out.contains("0 files") && out.contains("3 symlinks"),
        "{out}"
    );
    // Nothing outside moved.
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"outside data");
    assert!(outside.join("dir/f").exists());
    assert_eq!(sb.blob_count(), 0);
    let ls = sb.ok(&root, &["ls", "deps"]);
    assert!(
        ls.contains(&format!("to-dir -> {}", outside.display())),
        "{ls}"
    );
    assert!(ls.contains("dangling -> missing"), "{ls}");
    sb.ok(&root, &["materialize"]);
    assert_eq!(
        fs::read_link(dir.join("to-file")).unwrap(),
        outside.join("secret")
    );
    assert_eq!(
        fs::read_link(dir.join("dangling")).unwrap(),
        Path::new("missing")
    );
}

#[test]
fn hard_linked_files_are_copied_not_moved() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let dir = root.join("deps");
    fs::create_dir_all(&dir).unwrap();
    let outside = sb.mkdir("outside");
    fs::write(outside.join("shared"), b"shared content").unwrap();
    fs::hard_link(outside.join("shared"), dir.join("linked")).unwrap();
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["ingest", "deps"]);
    // The other link keeps its own mode and content; the blob is a separate inode.
    let meta = fs::metadata(outside.join("shared")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert_eq!(meta.nlink(), 1);
    assert_eq!(sb.ok(&root, &["cat", "deps/linked"]), "shared content");
}

#[test]
fn unreadable_files_are_reported_and_the_run_goes_on() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let dir = root.join("deps");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("ok1"), b"1").unwrap();
    fs::write(dir.join("secret"), b"s").unwrap();
    fs::write(dir.join("sub/ok2"), b"2").unwrap();
    fs::set_permissions(dir.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::create_dir(dir.join("locked")).unwrap();
    fs::write(dir.join("locked/hidden"), b"h").unwrap();
    fs::set_permissions(dir.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();

    let run_as_user = |args: &[&str]| {
        let mut c = sb.cmd(&root, args);
        if is_root() {
            // Root reads everything: run as an unprivileged user instead.
            let mut s = Command::new("setpriv");
            s.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            s.arg(VRIFT).args(args).current_dir(&root);
            s.env("HOME", sb.home()).env("VR_THE_SOURCE", sb.store());
            c = s;
        }
        c.output().unwrap()
    };
    if is_root() {
        let st = Command::new("chown")
            .arg("-R")
            .arg("65534:65534")
            .arg(sb.path())
            .status()
            .unwrap();
        assert!(st.success());
        fs::set_permissions(sb.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run_as_user(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_as_user(&["ingest", "deps"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "partial failure exits 1: {stderr}"
    );
    assert!(stderr.contains("secret: Permission denied"), "{stderr}");
    assert!(stderr.contains("locked"), "{stderr}");
    assert!(
        stderr.contains("could not be ingested and stay on disk"),
        "{stderr}"
    );
    // The readable files went on.
    assert!(!dir.join("ok1").exists() && !dir.join("sub/ok2").exists());
    assert!(dir.join("secret").exists());
    let out = run_as_user(&["cat", "deps/sub/ok2"]);
    assert_eq!(out.stdout, b"2");
    fs::set_permissions(dir.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Starts `vrift ingest deps` in the background and waits until it has
/// stored at least one blob (so it is mid-way).
fn start_ingest_and_wait(sb: &Sandbox, root: &Path) -> std::process::Child {
    let child = sb
        .cmd(root, &["ingest", "deps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sb.blob_count() == 0 {
        assert!(Instant::now() < deadline, "ingest stored nothing in 60s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

fn big_tree(sb: &Sandbox) -> (std::path::PathBuf, TreeListing) {
    let root = sb.mkdir("p");
    write_node_modules(&root.join("deps"), 1500, 12, 2000);
    let pristine = list_tree(&root, &[".vrift"]);
    sb.ok(&root, &["init"]);
    (root, pristine)
}

fn files_left_on_disk(dir: &Path) -> usize {
    list_tree(dir, &[])
        .values()
        .filter(|v| !v.starts_with("dir"))
        .count()
}

#[test]
fn ctrl_c_mid_ingest_leaves_a_consistent_rift_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let (root, pristine) = big_tree(&sb);
    let total = pristine.values().filter(|v| !v.starts_with("dir")).count();
    let child = start_ingest_and_wait(&sb, &root);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left = files_left_on_disk(&root.join("deps"));
    assert!(left > 0, "the interrupt came too late to test anything");

    // Consistent: every file is either still on disk or in the rift.
    let v: serde_json::Value = serde_json::from_str(&sb.ok(&root, &["status", "--json"])).unwrap();
    assert_eq!(v["pending_ingest"], 0);
    assert_eq!(
        v["phantom"]["entries"].as_u64().unwrap() as usize + left,
        total
    );

    sb.ok(&root, &["ingest", "deps"]);
    assert_eq!(files_left_on_disk(&root.join("deps")), 0);
    sb.ok(&root, &["fsck"]);
    sb.ok(&root, &["materialize"]);
    assert_same_tree(&pristine, &list_tree(&root, &[".vrift"]));
}

#[test]
fn kill_9_mid_ingest_loses_nothing() {
    let sb = Sandbox::new();
    let (root, pristine) = big_tree(&sb);
    let mut child = start_ingest_and_wait(&sb, &root);
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        files_left_on_disk(&root.join("deps")) > 0,
        "the kill came too late to test anything"
    );

    // Any command finishes the interrupted batch first; the re-run completes.
    sb.ok(&root, &["status"]);
    sb.ok(&root, &["ingest", "deps"]);
    assert_eq!(files_left_on_disk(&root.join("deps")), 0);
    assert_eq!(sb.staged_leftovers(), 0, "no staged file leaks");
    // The killed run's set-aside duplicates go at the next gc.
    sb.ok(&root, &["gc", "--delete"]);
    assert!(sb.wait_trash_gone(), "trash left after gc --delete");
    let fsck = sb.ok(&root, &["fsck"]);
    assert!(fsck.contains("no problems found"), "{fsck}");
    sb.ok(&root, &["materialize"]);
    assert_same_tree(&pristine, &list_tree(&root, &[".vrift"]));
}

#[test]
fn a_second_ingest_of_the_same_project_waits_for_the_first() {
    let sb = Sandbox::new();
    let (root, pristine) = big_tree(&sb);
    let first = start_ingest_and_wait(&sb, &root);
    let second = sb.run(&root, &["ingest", "deps"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for another vrift command"),
        "{stderr}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    sb.ok(&root, &["materialize"]);
    assert_same_tree(&pristine, &list_tree(&root, &[".vrift"]));
}

#[test]
fn a_full_store_gives_a_clean_error_and_loses_nothing() {
    if !is_root() {
        skip("mounting a small tmpfs as the full store needs root");
        return;
    }
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    write_node_modules(&root.join("deps"), 60, 4, 20_000);
    let pristine = list_tree(&root, &[".vrift"]);
    fs::create_dir_all(sb.store()).unwrap();
    let _guard = Tmpfs::mount(&sb.store(), "size=1m");

    sb.ok(&root, &["init"]);
    let stderr = sb.fails(&root, &["ingest", "deps"]);
    assert!(stderr.contains("out of space"), "{stderr}");
    assert!(
        stderr.contains(&sb.store().display().to_string()),
        "names the store: {stderr}"
    );
    // No partial blob: every blob verifies, no temp file is left.
    let fsck = sb.ok(&root, &["fsck"]);
    assert!(fsck.contains("no problems found"), "{fsck}");
    assert_eq!(sb.staged_leftovers(), 0);
    // Every file is still reachable: the view equals the original tree.
    sb.ok(&root, &["materialize"]);
    assert_same_tree(&pristine, &list_tree(&root, &[".vrift"]));
    drop(_guard);
}

#[test]
fn a_python_venv_survives_ingest_and_materialize() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(root.join(".venv"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        skip("python3 -m venv is not available");
        return;
    }
    let site = Command::new(root.join(".venv/bin/python"))
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .unwrap();
    let site = String::from_utf8(site.stdout).unwrap().trim().to_string();
    fs::create_dir_all(Path::new(&site).join("hello")).unwrap();
    fs::write(
        Path::new(&site).join("hello/__init__.py"),
        "GREETING = 'hi from the rift'\n",
    )
    .unwrap();
    let pristine = list_tree(&root, &[".vrift"]);

    let out = sb.ok(&root, &["init"]);
    assert!(out.contains(".venv"), "venv detected: {out}");
    sb.ok(&root, &["ingest"]);
    assert!(
        !root.join(".venv/bin/python").exists()
            && fs::symlink_metadata(root.join(".venv/bin/python")).is_err()
    );
    sb.ok(&root, &["materialize"]);
    assert_same_tree(&pristine, &list_tree(&root, &[".vrift"]));
    let out = Command::new(root.join(".venv/bin/python"))
        .args(["-c", "import hello; print(hello.GREETING)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from the rift\n");
}

#[test]
fn ingest_outside_the_project_or_of_missing_paths_is_refused() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let elsewhere = sb.mkdir("elsewhere");
    fs::write(elsewhere.join("f"), b"f").unwrap();
    sb.ok(&root, &["init"]);
    let err = sb.fails(&root, &["ingest", elsewhere.to_str().unwrap()]);
    assert!(err.contains("is outside the project"), "{err}");
    assert!(elsewhere.join("f").exists());
    let err = sb.fails(&root, &["ingest", "nope"]);
    assert!(err.contains("nope: no such file or directory"), "{err}");
    let err = sb.fails(&root, &["ingest", ".vrift"]);
    assert!(err.contains("vrift's own state"), "{err}");
    let err = sb.fails(&root, &["ingest"]);
    assert!(err.contains("nothing to ingest"), "{err}");
}

/// Directories stay on disk through an ingest, and so do their times:
/// moving the files out does not leave every directory "modified now".
#[test]
fn ingest_keeps_the_directories_times() {
    let sb = Sandbox::new();
    let root = project_with_node_modules(&sb, "p", 5);
    sb.ok(&root, &["init"]);
    fs::write(root.join("src/lone.txt"), "alone\n").unwrap();
    let past = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let dirs: Vec<std::path::PathBuf> = walkdir::WalkDir::new(root.join("node_modules"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.into_path())
        .chain([root.join("src")])
        .collect();
    assert!(dirs.len() > 10, "{dirs:?}");
    for d in &dirs {
        let times = fs::FileTimes::new().set_modified(past).set_accessed(past);
        fs::File::open(d).unwrap().set_times(times).unwrap();
    }
    sb.ok(&root, &["ingest"]);
    // A single file's directory too.
    sb.ok(&root, &["ingest", "src/lone.txt"]);
    assert!(!root.join("src/lone.txt").exists());
    for d in &dirs {
        assert_eq!(
            fs::metadata(d).unwrap().modified().unwrap(),
            past,
            "{}",
            d.display()
        );
    }
}

/// A filesystem mounted below the project is the kernel's, not the view's
/// (the daemon passes changes there back to libc): ingest never moves its
/// files into the store — a walk skips it with one line, a target on it is
/// refused, and `init` does not propose it.
#[test]
fn ingest_leaves_a_filesystem_mounted_in_the_project_alone() {
    if !is_root() {
        skip("mounting a tmpfs needs root");
        return;
    }
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::create_dir_all(root.join("deps/m")).unwrap();
    fs::write(root.join("deps/a.txt"), "a\n").unwrap();
    let mnt = root.join("deps/m");
    let _guard = Tmpfs::mount(&mnt, "size=1m");
    fs::create_dir(mnt.join("node_modules")).unwrap();
    fs::write(mnt.join("node_modules/f.txt"), "on the tmpfs\n").unwrap();

    let out = sb.ok(&root, &["init"]);
    assert!(
        !out.contains("deps/m"),
        "init proposes no tree on the mount: {out}"
    );
    let out = sb.run(&root, &["ingest", "deps"]);
    assert_ok("vrift ingest deps", &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("skipping {}", mnt.display())) && err.contains("another filesystem"),
        "{err}"
    );
    // deps/a.txt moved into the store; the tmpfs's file stayed where it is.
    assert!(!root.join("deps/a.txt").exists());
    assert_eq!(
        fs::read_to_string(mnt.join("node_modules/f.txt")).unwrap(),
        "on the tmpfs\n"
    );
    assert_eq!(sb.ok(&root, &["cat", "deps/a.txt"]), "a\n");
    let err = sb.fails(&root, &["ingest", "deps/m/node_modules"]);
    assert!(
        err.contains("deps/m/node_modules") && err.contains("another filesystem"),
        "{err}"
    );
    assert!(mnt.join("node_modules/f.txt").exists());
    drop(_guard);
}
