//! Shared helpers for the integration tests: a sandboxed environment (own
//! HOME, own store) that runs the real `vrift` binary, and tree comparison.

#![allow(dead_code)]

pub mod tmux;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const VRIFT: &str = env!("CARGO_BIN_EXE_vrift");

/// A temp dir with its own HOME and store; nothing of the user's is touched.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("vrift-test-")
            .tempdir()
            .unwrap();
        fs::create_dir_all(dir.path().join("home")).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> PathBuf {
        fs::canonicalize(self.dir.path()).unwrap()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    /// The pid of the daemon of `root`, as `vrift daemon status` says it.
    pub fn daemon_pid(&self, root: &Path) -> String {
        let status = self.ok(root, &["daemon", "status"]);
        status
            .lines()
            .find_map(|l| l.strip_prefix("pid "))
            .unwrap_or_else(|| panic!("no pid in {status}"))
            .trim()
            .to_string()
    }

    /// The socket the daemon of `root` listens on (it must be running).
    pub fn daemon_socket(&self, root: &Path) -> PathBuf {
        let status = self.ok(root, &["daemon", "status"]);
        PathBuf::from(
            status
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("running on "))
                .unwrap_or_else(|| panic!("{status}")),
        )
    }

    /// A new directory in the sandbox.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path().join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// `vrift ARGS` in `cwd`, environment scrubbed of the user's vrift state.
    pub fn cmd(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(VRIFT);
        c.args(args).current_dir(cwd);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("VRIFT_") || k.starts_with("XDG_") || k == "VR_THE_SOURCE" {
                c.env_remove(&k);
            }
        }
        c.env("HOME", self.home())
            .env("VR_THE_SOURCE", self.store())
            // Daemons of finished tests do not linger.
            .env("VRIFT_DAEMON_IDLE", "5");
        c
    }

    /// `vrift run -- sh -c SCRIPT` in the project `root`: the script in the view.
    pub fn sh_in_view(&self, root: &Path, script: &str) -> Output {
        self.run(root, &["run", "--", "sh", "-c", script])
    }

    pub fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        self.cmd(cwd, args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        assert_ok(&format!("vrift {args:?}"), &self.run(cwd, args))
    }

    /// [`Sandbox::sh_in_view`], asserting success; returns stdout.
    pub fn ok_in_view(&self, root: &Path, script: &str) -> String {
        assert_ok(
            &format!("in the view: {script}"),
            &self.sh_in_view(root, script),
        )
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        assert!(
            !out.status.success(),
            "vrift {args:?} should have failed\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Files staged in the store's tmp/ (excluding the trash of duplicates
    /// that a detached cleanup deletes after an ingest).
    pub fn staged_leftovers(&self) -> usize {
        fs::read_dir(self.store().join("tmp"))
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("trash.")
            })
            .count()
    }

    /// Waits (up to 30 s) until no trash directory is left in the store.
    pub fn wait_trash_gone(&self) -> bool {
        for _ in 0..300 {
            let any = fs::read_dir(self.store().join("tmp")).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("trash.")
            });
            if !any {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// Number of blobs in the store.
    pub fn blob_count(&self) -> usize {
        let blobs = self.store().join("blobs");
        let Ok(fans) = fs::read_dir(blobs) else {
            return 0;
        };
        fans.map(|f| fs::read_dir(f.unwrap().path()).unwrap().count())
            .sum()
    }
}

/// Asserts that `what` succeeded (printing its output if not); its stdout.
pub fn assert_ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a tree holds, for comparisons: path → description.
pub type TreeListing = BTreeMap<Vec<u8>, String>;

/// Lists a tree: file contents (hashed), modes, symlink targets, directories.
/// `skip` names top-level entries to leave out (such as `.vrift`).
pub fn list_tree(root: &Path, skip: &[&str]) -> TreeListing {
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut TreeListing) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap();
        if dir == root && skip.iter().any(|s| entry.file_name() == OsStr::new(s)) {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let desc = if meta.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            walk(root, &path, skip, out);
            format!("dir {mode:o}")
        } else if meta.is_file() {
            let bytes = fs::read(&path).unwrap();
            format!(
                "file {mode:o} {} {} mtime={}",
                bytes.len(),
                blake3::hash(&bytes).to_hex(),
                meta.mtime()
            )
        } else {
            format!("special {:o}", meta.mode())
        };
        out.insert(rel.as_os_str().as_bytes().to_vec(), desc);
    }
}

/// The regular files and symlinks below `root` (not `.vrift`), with their
/// content: what "the disk is untouched" means. Directories are left out:
/// the view's directories are physical by design (DESIGN.md §2).
pub fn disk_files(root: &Path) -> BTreeMap<String, String> {
    list_tree(root, &[".vrift"])
        .into_iter()
        .filter(|(_, v)| !v.starts_with("dir "))
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
        .collect()
}

/// A project `p` (initialised) and a physical twin `twin`, both filled by `seed`.
pub fn project_and_twin_with(sb: &Sandbox, seed: fn(&Path)) -> (PathBuf, PathBuf) {
    let root = sb.mkdir("p");
    let twin = sb.mkdir("twin");
    seed(&root);
    seed(&twin);
    sb.ok(&root, &["init"]);
    (root, twin)
}

/// Stops the daemon of `root` and cuts its manifest to 100 bytes: a
/// daemon started afterwards cannot open it.
pub fn corrupt_manifest(sb: &Sandbox, root: &Path) {
    sb.ok(root, &["daemon", "stop"]);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(root.join(".vrift/manifest.redb"))
        .unwrap();
    f.set_len(100).unwrap();
}

/// Pids of the daemons serving `root` (`vrift -C ROOT daemon run`).
pub fn daemon_pids(root: &Path) -> Vec<i32> {
    processes_of(root, b"\0daemon\0run\0")
}

/// Processes whose command line has `-C ROOT` followed by `tail`.
pub fn processes_of(root: &Path, tail: &[u8]) -> Vec<i32> {
    let mut want = b"-C\0".to_vec();
    want.extend_from_slice(root.as_os_str().as_bytes());
    want.extend_from_slice(tail);
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            if cmd.windows(want.len()).any(|w| w == want.as_slice()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// What `sh -c SCRIPT` prints in `dir`: in the view (`vrift run`) or
/// natively; it must succeed either way.
pub fn sh_in_view_or_natively(sb: &Sandbox, dir: &Path, script: &str, view: bool) -> String {
    if view {
        return sb.ok(dir, &["run", "--", "sh", "-c", script]);
    }
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh -c {script}: {}",
        text(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A small tree: `src/a.txt`, `src/b.txt`, `src/sub/c.txt` and a
/// read-only `ro.txt`.
pub fn seed_src_tree(dir: &Path) {
    fs::create_dir_all(dir.join("src/sub")).unwrap();
    fs::write(dir.join("src/a.txt"), "alpha\n").unwrap();
    fs::write(dir.join("src/b.txt"), "bravo\n").unwrap();
    fs::write(dir.join("src/sub/c.txt"), "charlie\n").unwrap();
    fs::write(dir.join("ro.txt"), "ro\n").unwrap();
    fs::set_permissions(dir.join("ro.txt"), fs::Permissions::from_mode(0o444)).unwrap();
}

/// The library built, a sandbox, and [`project_and_twin_with`] `seed` in it:
/// the set-up of most tests of the view.
pub fn setup_with(seed: fn(&Path)) -> (Sandbox, PathBuf, PathBuf) {
    build_shim();
    let sb = Sandbox::new();
    let (root, twin) = project_and_twin_with(&sb, seed);
    (sb, root, twin)
}

/// [`setup_with`] for a test that compiles C; `None` (SKIPPED, or a
/// failure under `CI`) without a C compiler.
pub fn setup_with_cc(seed: fn(&Path)) -> Option<(Sandbox, PathBuf, PathBuf)> {
    if !has_cc() {
        skip("no C compiler");
        return None;
    }
    Some(setup_with(seed))
}

/// Asserts two listings are equal, printing the first differences.
pub fn assert_same_tree(a: &TreeListing, b: &TreeListing) {
    if a == b {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            Some(w) if w == v => {}
            Some(w) => diffs.push(format!("{}: {v} vs {w}", String::from_utf8_lossy(k))),
            None => diffs.push(format!("{}: only in the first", String::from_utf8_lossy(k))),
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!(
                "{}: only in the second",
                String::from_utf8_lossy(k)
            ));
        }
    }
    diffs.truncate(20);
    panic!("trees differ:\n{}", diffs.join("\n"));
}

/// `cp -a src dst`.
pub fn cp_a(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Writes a node_modules-like tree: `packages` packages with a few files
/// each, shared content across packages, a symlink and a .bin entry.
pub fn write_node_modules(dir: &Path, packages: usize, files_per_package: usize, file_size: usize) {
    for p in 0..packages {
        let pkg = dir.join(format!("pkg-{p}"));
        fs::create_dir_all(pkg.join("lib")).unwrap();
        fs::write(
            pkg.join("package.json"),
            format!("{{\"name\":\"pkg-{p}\",\"version\":\"1.0.{}\"}}\n", p % 7),
        )
        .unwrap();
        // Every package ships the same LICENSE: real trees are full of duplicates.
        fs::write(
            pkg.join("LICENSE"),
            "MIT License\n\nPermission is hereby granted...\n",
        )
        .unwrap();
        for f in 0..files_per_package {
            let mut body =
                format!("// pkg {p} file {f}\nmodule.exports = {};\n", p * 1000 + f).into_bytes();
            body.resize(file_size.max(body.len()), b'x');
            fs::write(pkg.join("lib").join(format!("m{f}.js")), body).unwrap();
        }
    }
    fs::create_dir_all(dir.join(".bin")).unwrap();
    std::os::unix::fs::symlink("../pkg-0/lib/m0.js", dir.join(".bin/tool")).unwrap();
    let script = dir.join("pkg-0/cli.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether the tests run as root (some cases need another user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Builds libvrift_shim.so as it ships (panic=abort, no std: profile
/// `shim-dev`) and puts it beside the vrift binary, where vrift looks for it
/// (once per test binary).
pub fn build_shim() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let st = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "--profile",
                    "shim-dev",
                    "-p",
                    "vrift-shim",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo build -p vrift-shim");
            assert!(st.success(), "building the shim failed");
            // target/debug/vrift -> target/shim-dev/libvrift_shim.so
            let bin_dir = Path::new(VRIFT).parent().unwrap();
            let built = bin_dir.parent().unwrap().join("shim-dev/libvrift_shim.so");
            assert!(built.is_file(), "{} missing", built.display());
            let so = bin_dir.join("libvrift_shim.so");
            // Copy, then rename: processes of other tests may have it mapped.
            let tmp = bin_dir.join(format!("libvrift_shim.so.{}", std::process::id()));
            fs::copy(&built, &tmp).unwrap();
            fs::rename(&tmp, &so).unwrap();
            so
        })
        .clone()
}

/// A test that cannot run here: says SKIPPED and why, or fails when `CI`
/// is set (`.ci/run` installs everything the tests need; only what must be
/// fetched from outside the package registries may be missing there).
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{why} (CI must have it: see .ci/run)"
    );
    eprintln!("SKIPPED: {why}");
}

/// Whether `cc -static` links (libc6-dev's libc.a is there).
pub fn can_link_static() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.c");
        fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        Command::new("cc")
            .args(["-static", "-o"])
            .arg(dir.path().join("t"))
            .arg(&src)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

pub fn has_cc() -> bool {
    Command::new("cc").arg("--version").output().is_ok()
}

/// Compiles C `source` into the sandbox as `name`.
pub fn compile_c_source(sb: &Sandbox, name: &str, source: &str) -> PathBuf {
    let src = sb.path().join(format!("{name}.c"));
    fs::write(&src, source).unwrap();
    cc(sb, &src, name, &[])
}

/// Compiles `tests/c/NAME.c` into the sandbox with extra flags.
pub fn compile_c(sb: &Sandbox, name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    cc(sb, &src, name, flags)
}

/// `cc SRC FLAGS -o SANDBOX/NAME`, which must succeed.
fn cc(sb: &Sandbox, src: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = sb.path().join(name);
    let st = Command::new("cc")
        .arg(src)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "compiling {}", src.display());
    out
}

/// Runs the probe `prog` natively in `twin` and in the view (`vrift run` in
/// `root`); both must succeed and print the same lines (compared line by
/// line, so a failure names the first that differs). Returns the output.
pub fn same_probe_output(sb: &Sandbox, prog: &Path, root: &Path, twin: &Path) -> String {
    let native = Command::new(prog).current_dir(twin).output().unwrap();
    assert!(
        native.status.success(),
        "native run failed ({:?}): {}",
        native.status,
        String::from_utf8_lossy(&native.stderr)
    );
    let view = sb.run(root, &["run", "--", prog.to_str().unwrap()]);
    assert!(
        view.status.success(),
        "view run failed ({:?}): {}",
        view.status,
        String::from_utf8_lossy(&view.stderr)
    );
    let (n, v) = (
        String::from_utf8_lossy(&native.stdout),
        String::from_utf8_lossy(&view.stdout),
    );
    for (a, b) in n.lines().zip(v.lines()) {
        assert_eq!(b, a, "view (left) vs native (right)");
    }
    assert_eq!(v.lines().count(), n.lines().count(), "{v}");
    n.into_owned()
}

/// Runs `sh -c SCRIPT` in the view (`vrift run` in `root`) and in the
/// physical `copy`; asserts the same stdout and exit status (and, if
/// `quiet`, nothing on the view's stderr). Returns the stdout.
pub fn same_in_view_and_copy(
    sb: &Sandbox,
    root: &Path,
    copy: &Path,
    script: &str,
    quiet: bool,
) -> String {
    let view = sb.run(root, &["run", "--", "sh", "-c", script]);
    let phys = Command::new("sh")
        .args(["-c", script])
        .current_dir(copy)
        .output()
        .unwrap();
    let (v, c) = (
        String::from_utf8_lossy(&view.stdout),
        String::from_utf8_lossy(&phys.stdout),
    );
    assert!(
        phys.status.success(),
        "{script} failed on the copy: {}",
        String::from_utf8_lossy(&phys.stderr)
    );
    assert_eq!(
        v,
        c,
        "{script}: view and copy differ\nview stderr: {}",
        String::from_utf8_lossy(&view.stderr)
    );
    assert_eq!(view.status.code(), phys.status.code(), "{script}");
    if quiet {
        assert!(
            view.stderr.is_empty(),
            "{script}: {}",
            String::from_utf8_lossy(&view.stderr)
        );
    }
    v.into_owned()
}

/// Lossy UTF-8 of a command's output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd` and kills it after `limit` (a guard against a hang, not a
/// timing assertion): None if it had to be killed.
pub fn output_within(mut cmd: Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained by threads: a chatty child must not block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (o.join().unwrap(), e.join().unwrap());
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// A small deterministic random sequence (xorshift*): the same seed gives
/// the same sequence, so a failing seed can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index below `len`.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.index(v.len())]
    }

    /// Up to `max` random bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.index(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A tmpfs mounted at a directory (root only), unmounted (lazily: a
/// daemon may still hold a file of it) when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with mount options `opts` (`size=1m`) at `dir`.
    pub fn mount(dir: &Path, opts: &str) -> Tmpfs {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs -o {opts} {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    /// Remounts it read-only.
    pub fn read_only(&self) {
        let st = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount {} read-only", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `program` with `args` in `cwd` with the sandbox's environment, run as
/// nobody (65534, through setpriv) when `nobody`, else as this user.
pub fn command_as(sb: &Sandbox, cwd: &Path, program: &str, args: &[&str], nobody: bool) -> Command {
    let inner = sb.cmd(cwd, &[]);
    let mut c = if nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        c
    } else {
        Command::new(program)
    };
    c.args(args).current_dir(cwd);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Gives everything below `dir` to nobody (65534:65534), for tests that
/// act as another user ([`command_as`]).
pub fn chown_to_nobody(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}
