//! Issue 14: vrift against other users, hostile files and faults. Each
//! test plays the attacker (another uid through `setpriv`) or the unlucky
//! user with real processes, and checks where the bytes went.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// The tests below need root (to act as another user with `setpriv`, and to
/// bind-mount in a private mount namespace) and util-linux and python3,
/// which `.ci/run` installs: in CI a missing piece is a failure, elsewhere
/// the test is skipped with a note.
fn can_attack(test: &str) -> bool {
    let tools = ["setpriv", "unshare", "python3"]
        .iter()
        .all(|t| Command::new(t).arg("--help").output().is_ok());
    if is_root() && tools {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root, setpriv, unshare and python3 in CI"
    );
    eprintln!("skipped {test}: needs root, setpriv, unshare and python3");
    false
}

const NOBODY: &str = "65534";

/// The system's python3 (another user may not enter root's pyenv).
fn python3() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The daemon socket's name for a project (`daemon::project_key`).
fn socket_name(root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let h = blake3::hash(root.as_os_str().as_bytes());
    format!("{}.sock", &h.to_hex()[..16])
}

/// An attacker: listens on `dir/name` and prints one line per connection
/// and per chunk of bytes it receives. With `squat`, it runs as nobody and
/// first creates `dir` mode 0777 (the squatted runtime directory). Without,
/// it binds as root in a directory of root's and becomes nobody before
/// `listen` (so its `SO_PEERCRED` names nobody).
const LISTENER: &str = r#"
import os, socket, sys
d, name, squat = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if squat:
    os.mkdir(d)
    os.chmod(d, 0o777)
path = os.path.join(d, name)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
if not squat:
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    print("connection", flush=True)
    c.settimeout(2)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            print("got", len(b), repr(b[:200]), flush=True)
    except Exception:
        pass
    c.close()
"#;

struct Attacker {
    child: Child,
}

impl Attacker {
    fn start(dir: &Path, name: &str, squat: bool) -> Attacker {
        let mut cmd = if squat {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
                python3(),
            ]);
            c
        } else {
            Command::new(python3())
        };
        let mut child = cmd
            .args(["-c", LISTENER])
            .arg(dir)
            .arg(name)
            .arg(if squat { "1" } else { "0" })
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the attacker did not start");
        Attacker { child }
    }

    /// Everything the attacker saw (it is stopped).
    fn stop(mut self) -> String {
        use std::io::Read;
        let _ = self.child.kill();
        let mut seen = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut seen);
        }
        seen
    }
}

/// A test that fails half-way leaves no listener behind.
impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The per-user fallback runtime directory (no `XDG_RUNTIME_DIR`: the
/// sandboxed commands have none).
fn tmp_runtime_dir() -> PathBuf {
    // SAFETY: getuid cannot fail.
    PathBuf::from(format!("/tmp/vrift-{}", unsafe { libc::getuid() }))
}

/// `vrift ARGS` in a private mount namespace where `squat` is mounted over
/// the real fallback runtime directory: the squat is seen exactly where
/// vrift looks, while the other tests (and users) of this machine keep
/// theirs. Exit 90/91: the namespace could not be set up (see [`squatted`]).
fn in_squatted_ns(sb: &Sandbox, cwd: &Path, squat: &Path, args: &[&str]) -> Command {
    let real = tmp_runtime_dir();
    let script = format!(
        "[ -d {real} ] || mkdir -m 700 {real} || exit 90; mount --bind \"$1\" {real} || exit 91; shift; exec \"$@\"",
        real = real.display()
    );
    // `unshare -m sh -c SCRIPT sh SQUAT vrift ARGS`, in the sandbox's
    // environment (that of `sb.cmd`).
    let sandboxed = sb.cmd(cwd, &[]);
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(squat)
        .arg(VRIFT)
        .args(args)
        .current_dir(cwd);
    for (k, v) in sandboxed.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// The output of a command of [`in_squatted_ns`], which must have run.
fn squatted(cmd: Command) -> Output {
    let out = output_within(cmd, Duration::from_secs(30)).expect("hung");
    assert!(
        !matches!(out.status.code(), Some(90 | 91)),
        "cannot bind-mount over {} in a private mount namespace (CAP_SYS_ADMIN?): {}",
        tmp_runtime_dir().display(),
        text(&out.stderr)
    );
    out
}

// ---- 1. the runtime directory and the daemon's peer ---------------------------

#[test]
fn a_squatted_runtime_directory_is_refused_and_receives_nothing() {
    if !can_attack("a_squatted_runtime_directory_is_refused_and_receives_nothing") {
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["daemon", "stop"]);
    // Nobody creates the runtime directory first, mode 0777, and listens
    // on the socket name root's daemon would use.
    let squat = PathBuf::from(format!(
        "/tmp/vrift-squat-{}",
        sb.path().file_name().unwrap().to_string_lossy()
    ));
    let _ = fs::remove_dir_all(&squat);
    let attacker = Attacker::start(&squat, &socket_name(&root), true);
    assert_eq!(fs::metadata(&squat).unwrap().uid(), 65534);

    let write = in_squatted_ns(
        &sb,
        &root,
        &squat,
        &["run", "--", "sh", "-c", "echo secret-bytes > secret.txt"],
    );
    let out = squatted(write);
    let status = squatted(in_squatted_ns(&sb, &root, &squat, &["daemon", "status"]));
    let start = squatted(in_squatted_ns(&sb, &root, &squat, &["daemon", "start"]));
    let seen = attacker.stop();
    let _ = fs::remove_dir_all(&squat);

    let err = text(&out.stderr);
    assert!(!seen.contains("secret"), "the attacker got: {seen}");
    assert!(!seen.contains("connection"), "the attacker got: {seen}");
    assert!(!out.status.success(), "the write succeeded: {err}");
    let dir = tmp_runtime_dir();
    let named = format!("refusing the runtime directory {}", dir.display());
    assert!(err.contains(&named), "no clear message: {err}");
    assert!(
        err.lines().filter(|l| l.contains(&named)).count() == 1,
        "one line: {err}"
    );
    assert!(!root.join("secret.txt").exists());
    // The CLI refuses it too, naming it, instead of saying "not running".
    assert!(!status.status.success(), "{}", text(&status.stdout));
    assert!(
        text(&status.stderr).contains(&named),
        "{}",
        text(&status.stderr)
    );
    assert!(!start.status.success());
    assert!(
        text(&start.stderr).contains(&named),
        "{}",
        text(&start.stderr)
    );
}

#[test]
fn a_daemon_socket_served_by_another_user_is_refused() {
    if !can_attack("a_daemon_socket_served_by_another_user_is_refused") {
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    // A private runtime directory of ours, but the socket in it is served by
    // a process that runs as nobody (it could have been left by a process
    // that dropped privileges, or planted by a race): SO_PEERCRED tells.
    let xdg = sb.mkdir("xdg");
    let rt = xdg.join("vrift");
    fs::create_dir(&rt).unwrap();
    fs::set_permissions(&rt, fs::Permissions::from_mode(0o700)).unwrap();
    // The hot table records the socket path of the runtime directory in
    // force when it is written: every command sees this one.
    for args in [&["init"][..], &["daemon", "stop"]] {
        let mut c = sb.cmd(&root, args);
        c.env("XDG_RUNTIME_DIR", &xdg);
        assert!(c.status().unwrap().success(), "{args:?}");
    }
    let attacker = Attacker::start(&rt, &socket_name(&root), false);

    let mut write = sb.cmd(
        &root,
        &["run", "--", "sh", "-c", "echo secret-bytes > secret.txt"],
    );
    write.env("XDG_RUNTIME_DIR", &xdg);
    let out = output_within(write, Duration::from_secs(30)).expect("the write hung");
    let mut status = sb.cmd(&root, &["daemon", "status"]);
    status.env("XDG_RUNTIME_DIR", &xdg);
    let status = output_within(status, Duration::from_secs(30)).expect("status hung");
    let seen = attacker.stop();

    let err = text(&out.stderr);
    assert!(!seen.contains("got"), "the attacker got: {seen}");
    assert!(!out.status.success(), "the write succeeded: {err}");
    let sock = rt.join(socket_name(&root));
    let named = format!("refusing the daemon socket {}", sock.display());
    assert!(err.contains(&named), "no clear message: {err}");
    assert!(!root.join("secret.txt").exists());
    assert!(!status.status.success());
    assert!(
        text(&status.stderr).contains(&named),
        "{}",
        text(&status.stderr)
    );
}

#[test]
fn the_daemon_refuses_a_runtime_directory_open_to_others() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["daemon", "stop"]);
    let xdg = sb.mkdir("xdg");
    let rt = xdg.join("vrift");
    fs::create_dir(&rt).unwrap();
    fs::set_permissions(&rt, fs::Permissions::from_mode(0o733)).unwrap();
    let mut start = sb.cmd(&root, &["daemon", "start"]);
    start.env("XDG_RUNTIME_DIR", &xdg);
    let out = output_within(start, Duration::from_secs(30)).expect("start hung");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("refusing the runtime directory {}", rt.display())),
        "{err}"
    );
    assert!(err.contains("mode 0733"), "{err}");
    // Refused, not repaired behind the user's back.
    assert_eq!(fs::metadata(&rt).unwrap().mode() & 0o777, 0o733);
    // A symlink to a private directory of ours is refused as well.
    let real = sb.mkdir("real-rt");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
    fs::remove_dir(&rt).unwrap();
    std::os::unix::fs::symlink(&real, &rt).unwrap();
    let mut start = sb.cmd(&root, &["daemon", "start"]);
    start.env("XDG_RUNTIME_DIR", &xdg);
    let out = output_within(start, Duration::from_secs(30)).expect("start hung");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("a symlink"),
        "{}",
        text(&out.stderr)
    );
}

/// A root daemon serves a process of the view that dropped to nobody (it
/// kept a handle on the socket): another nobody process, outside the view,
/// reaches neither the socket nor that handle, and the dropped process's
/// write lands in the rift.
#[test]
fn a_root_daemon_serves_dropped_processes_and_no_other_user() {
    if !can_attack("a_root_daemon_serves_dropped_processes_and_no_other_user") {
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["daemon", "start"]);
    let sock = sb.daemon_socket(&root);
    // Everything on the way is open to nobody but the runtime directory
    // (0700, the daemon's): what keeps others out is vrift's, not the
    // sandbox's privacy.
    for dir in [root.as_path(), sock.parent().unwrap().parent().unwrap()] {
        for anc in dir.ancestors().take_while(|a| a.starts_with(sb.path())) {
            let mode = fs::metadata(anc).unwrap().permissions().mode();
            fs::set_permissions(anc, fs::Permissions::from_mode(mode | 0o011)).unwrap();
        }
    }
    fs::create_dir(root.join("open")).unwrap();
    fs::set_permissions(root.join("open"), fs::Permissions::from_mode(0o777)).unwrap();
    let pid_file = sb.path().join("holder.pid");
    // The holder: drops to nobody (keeping root as its saved uid), writes
    // through the view, then waits with its handle open.
    let holder = format!(
        r#"
import os, sys, time
os.setgroups([]); os.setegid({NOBODY}); os.seteuid({NOBODY})
open("open/by-nobody", "w").write("hi")
os.seteuid(0)
open("{pid}", "w").write(str(os.getpid()))
os.seteuid({NOBODY})
time.sleep(20)
"#,
        pid = pid_file.display()
    );
    let mut child = sb
        .cmd(&root, &["run", "--", python3(), "-c", &holder])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(&pid_file).map_or(true, |p| p.is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never wrote"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = fs::read_to_string(&pid_file).unwrap();
    let probe = format!(
        r#"
import socket
for p in ["{sock}", "/proc/{pid}/fd/256"]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p); print("reached", p)
    except OSError as e:
        print("refused", e.errno)
"#,
        sock = sock.display()
    );
    let out = as_nobody(&format!("{} -c '{probe}'", python3()));
    let _ = child.kill();
    let _ = child.wait();
    let said = text(&out.stdout);
    assert_eq!(
        said.matches("refused 13").count(),
        2,
        "{said}{}",
        text(&out.stderr)
    );
    assert!(
        !root.join("open/by-nobody").exists(),
        "the write reached the disk"
    );
    let owner = sb.sh_in_view(&root, "stat -c %u:%s open/by-nobody");
    assert_eq!(text(&owner.stdout).trim(), "65534:2");
}

// ---- 2. a private store ----------------------------------------------------------

/// Runs `sh -c script` as nobody; returns its output.
fn as_nobody(script: &str) -> Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap()
}

/// The store's blobs whose content contains `needle` (read as root).
fn blobs_containing(sb: &Sandbox, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for fan in fs::read_dir(sb.store().join("blobs")).unwrap() {
        for blob in fs::read_dir(fan.unwrap().path()).unwrap() {
            let p = blob.unwrap().path();
            let bytes = fs::read(&p).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                out.push(p);
            }
        }
    }
    out
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn another_user_reads_nothing_of_the_store() {
    if !can_attack("another_user_reads_nothing_of_the_store") {
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    // Only the store's own modes stand between nobody and the blobs (the
    // sandbox is as open as a default home directory).
    fs::set_permissions(sb.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(sb.home(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok_in_view(
        &root,
        "umask 077; echo AWS_SECRET=hunter2-for-the-test > .env",
    );
    sb.ok(&root, &["daemon", "stop"]);
    let blobs = blobs_containing(&sb, b"hunter2-for-the-test");
    assert_eq!(blobs.len(), 1, "the secret was sealed into one blob");
    let blob = &blobs[0];
    assert_eq!(mode_of(blob), 0o400, "{}", blob.display());
    let store = sb.store();
    for dir in ["", "blobs", "tmp", "exec", "projects", "quarantine"] {
        assert_eq!(mode_of(&store.join(dir)), 0o700, "store/{dir}");
    }
    assert_eq!(
        mode_of(blob.parent().unwrap()),
        0o700,
        "the fan-out directory"
    );

    let cat = as_nobody(&format!("cat '{}'", blob.display()));
    assert!(!cat.status.success());
    assert!(!text(&cat.stdout).contains("hunter2"));
    let ls = as_nobody(&format!("ls '{}'", store.join("blobs").display()));
    assert!(!ls.status.success(), "{}", text(&ls.stdout));
    let grep = as_nobody(&format!("grep -r hunter2 '{}'", store.display()));
    assert!(
        !text(&grep.stdout).contains("hunter2"),
        "{}",
        text(&grep.stdout)
    );
}

#[test]
fn an_older_open_store_is_tightened_when_opened_and_fsck_fixes_blobs() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::write(root.join("a.txt"), "alpha\n").unwrap();
    sb.ok(&root, &["init"]);
    sb.ok(&root, &["ingest", "."]);
    let store = sb.store();
    // What an older vrift left: 0755 directories, 0444 blobs.
    for dir in ["", "blobs", "tmp", "projects"] {
        fs::set_permissions(store.join(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let blob = blobs_containing(&sb, b"alpha\n").pop().unwrap();
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o444)).unwrap();
    sb.ok(&root, &["status"]);
    for dir in ["", "blobs", "tmp", "projects"] {
        assert_eq!(mode_of(&store.join(dir)), 0o700, "store/{dir}");
    }
    // Blobs are not walked on every command; fsck repairs them.
    assert_eq!(mode_of(&blob), 0o444);
    let out = sb.ok(&root, &["fsck"]);
    assert!(out.contains("now 0400"), "{out}");
    // 0400 and the verified-once mark (fsck hashed it).
    assert_eq!(mode_of(&blob), 0o400 | 0o1000);
}

#[test]
fn a_shared_store_is_an_explicit_choice_that_sticks() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::write(root.join("a.txt"), "alpha\n").unwrap();
    let mut init = sb.cmd(&root, &["init"]);
    init.env("VRIFT_STORE_SHARED", "1");
    assert!(init.status().unwrap().success());
    assert!(sb.store().join("shared").is_file());
    // Later commands without the variable keep it shared.
    sb.ok(&root, &["ingest", "."]);
    assert_eq!(mode_of(&sb.store()), 0o755);
    let blob = blobs_containing(&sb, b"alpha\n").pop().unwrap();
    assert_eq!(mode_of(&blob), 0o444);
}

// ---- 3. special files never block and are never copied ----------------------------

/// Opens the FIFO for reading and writing (which never blocks) and closes
/// it: anything stuck opening it is released.
fn unblock_fifo(p: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p);
}

#[test]
fn a_fifo_in_the_project_never_blocks_the_daemon() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let fifo = root.join("p");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let script = "chmod 600 p; echo chmod=$?; mv p q; echo mv=$?; touch p; echo touch=$?; \
                  ln p l; echo ln=$?; echo after > after.txt && cat after.txt";
    let run = output_within(
        sb.cmd(&root, &["run", "--", "sh", "-c", script]),
        Duration::from_secs(20),
    );
    let status = output_within(
        sb.cmd(&root, &["daemon", "status"]),
        Duration::from_secs(20),
    );
    unblock_fifo(&fifo);
    let run = run.expect("a request on a FIFO hung the daemon");
    let out = text(&run.stdout);
    let err = text(&run.stderr);
    // Metadata of a physical special file cannot be recorded in the rift
    // (it has no kind for it): a clear POSIX error, at once.
    for op in ["chmod", "mv", "touch", "ln"] {
        assert!(out.contains(&format!("{op}=1")), "{op}: {out}\n{err}");
    }
    assert!(err.contains("Operation not supported"), "{err}");
    assert!(
        out.contains("after\n"),
        "a later write failed: {out}\n{err}"
    );
    let status = status.expect("daemon status hung");
    assert!(status.status.success(), "{}", text(&status.stderr));
    // The FIFO is still a FIFO on disk, and nothing of it is in the store.
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::symlink_metadata(&fifo).unwrap().file_type()
    ));
    assert!(!root.join("q").exists());
}

#[test]
fn a_character_device_is_never_copied() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "needs root in CI");
        eprintln!("skipped: mknod needs root");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let st = Command::new("mknod")
        .arg(root.join("zero"))
        .args(["c", "1", "5"])
        .status()
        .unwrap();
    assert!(st.success());
    let run = output_within(
        sb.cmd(
            &root,
            &["run", "--", "sh", "-c", "chmod 600 zero; echo chmod=$?"],
        ),
        Duration::from_secs(20),
    );
    // Whatever happened, stop a daemon that may be copying zeros.
    let _ = output_within(sb.cmd(&root, &["daemon", "stop"]), Duration::from_secs(5));
    let run = run.expect("chmod of a device hung");
    assert!(
        text(&run.stdout).contains("chmod=1"),
        "{}",
        text(&run.stderr)
    );
    // (The store's lib/ holds the library inceptions preload.)
    let big = fs::read_dir(sb.store())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.ends_with("lib"))
        .flat_map(|p| walk_sizes(&p))
        .max()
        .unwrap_or(0);
    assert!(big < 1 << 20, "the store holds a file of {big} bytes");
}

fn walk_sizes(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(walk_sizes(&e.path()));
        } else {
            out.push(m.len());
        }
    }
    out
}

// ---- 4. a daemon that cannot start fails the write at once --------------------------

#[test]
fn a_corrupt_manifest_fails_a_write_at_once_with_the_reason() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    corrupt_manifest(&sb, &root);
    // 10 s guards against the old ~30 s stall (no tighter timing assertion).
    let run = output_within(
        sb.cmd(&root, &["run", "--", "sh", "-c", "echo x > x.txt"]),
        Duration::from_secs(10),
    )
    .expect("the write stalled");
    let err = text(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("exited") && err.contains("before answering") && err.contains("manifest"),
        "the starter's reason is missing: {err}"
    );
    let log = fs::read_to_string(root.join(".vrift/daemon.log")).unwrap();
    assert!(log.contains("manifest"), "{log}");
    assert!(!root.join("x.txt").exists());
}

#[test]
fn an_unusable_runtime_directory_fails_a_write_at_once_with_the_reason() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    let xdg = sb.mkdir("xdg");
    for args in [&["init"][..], &["daemon", "stop"]] {
        let mut c = sb.cmd(&root, args);
        c.env("XDG_RUNTIME_DIR", &xdg);
        assert!(c.status().unwrap().success(), "{args:?}");
    }
    // The runtime directory cannot be created: its parent is a file now.
    let _ = fs::remove_dir_all(&xdg);
    fs::write(&xdg, "not a directory").unwrap();
    let mut cmd = sb.cmd(&root, &["run", "--", "sh", "-c", "echo x > x.txt"]);
    cmd.env("XDG_RUNTIME_DIR", &xdg);
    let run = output_within(cmd, Duration::from_secs(10)).expect("the write stalled");
    let err = text(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains(&xdg.join("vrift").display().to_string()) && err.contains("Not a directory"),
        "the starter's reason is missing: {err}"
    );
    assert!(!root.join("x.txt").exists());
}

// ---- 5. a slow request does not stall the others ----------------------------------

/// The daemon's count of staged files (`daemon status`), None if none runs.
fn staged_files(sb: &Sandbox, root: &Path) -> Option<u64> {
    let mut c = sb.cmd(root, &["daemon", "status"]);
    c.env("VRIFT_DAEMON_IDLE", "120");
    let out = output_within(c, Duration::from_secs(60)).expect("daemon status hung");
    text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("staged files: "))
        .map(|n| n.trim().parse().unwrap())
}

#[test]
fn sealing_a_large_file_does_not_stall_other_writes() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let run = |script: &str| {
        let mut c = sb.cmd(&root, &["run", "--", "sh", "-c", script]);
        c.env("VRIFT_DAEMON_IDLE", "120");
        let out = output_within(c, Duration::from_secs(120)).expect("hung");
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // 4 GiB of holes: instant to make, seconds to hash.
    run("truncate -s 4G big.img");
    // Another client is answered while the big file is still being sealed
    // (before, the truncate itself waited for the whole hash, and so did
    // every request behind it).
    assert_eq!(run("echo small > small.txt && cat small.txt"), "small\n");
    let staged = staged_files(&sb, &root).expect("the daemon runs");
    assert!(
        staged >= 1,
        "big.img was sealed before the small write was answered"
    );
    // And the big file is sealed in the end, whole.
    let mut sealed = false;
    for _ in 0..600 {
        if staged_files(&sb, &root) == Some(0) {
            sealed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(sealed, "big.img was never sealed");
    assert_eq!(run("stat -c %s big.img"), "4294967296\n");
    let big = walk_sizes(&sb.store().join("blobs"))
        .into_iter()
        .filter(|&n| n == 4 << 30)
        .count();
    assert_eq!(big, 1, "one 4 GiB blob");
}

/// A program that records that it ran (a marker file), then fails.
fn plant(path: &Path, marker: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        path,
        format!(
            "#!/bin/sh\necho \"$0 $*\" >> '{}'\nexit 3\n",
            marker.display()
        ),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_program_planted_in_vrift_bin_of_a_trusted_project_never_runs() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]); // trusted from here on
    sb.ok(&root, &["run", "--", "true"]); // the wrappers are written
    let marker = sb.path().join("planted-ran");
    // A project (a clone, an archive) that ships `.vrift/bin/make`, and one
    // that replaces a wrapper vrift wrote.
    let make = root.join(".vrift/bin/make");
    plant(&make, &marker);
    plant(&root.join(".vrift/bin/rm"), &marker);
    // Entering the trusted project the way the shell hook does, then
    // running what a build runs, first on PATH.
    let hook = sb.run(&root, &["__hook-env", "--shell", "bash"]);
    assert!(hook.status.success(), "{}", text(&hook.stderr));
    assert!(
        text(&hook.stderr).contains(".vrift/bin/make"),
        "the removal is reported: {}",
        text(&hook.stderr)
    );
    let script = format!(
        "{}\nmake --version >/dev/null 2>&1; rm -f nothing; echo done",
        text(&hook.stdout)
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&root)
        .env("HOME", sb.home())
        .env("VR_THE_SOURCE", sb.store())
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stderr));
    assert!(
        !marker.exists(),
        "a planted program ran: {}",
        fs::read_to_string(&marker).unwrap_or_default()
    );
    assert!(!make.exists(), ".vrift/bin holds only vrift's wrappers");
    // `.vrift/bin` itself as a symlink (to the user's own bin, say) is
    // replaced by a directory, never written through.
    let elsewhere = sb.mkdir("elsewhere");
    fs::write(elsewhere.join("keep"), "mine").unwrap();
    fs::remove_dir_all(root.join(".vrift/bin")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join(".vrift/bin")).unwrap();
    sb.ok(&root, &["run", "--", "true"]);
    assert!(root.join(".vrift/bin").symlink_metadata().unwrap().is_dir());
    assert_eq!(fs::read_to_string(elsewhere.join("keep")).unwrap(), "mine");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1);
}

#[test]
fn a_doctored_view_table_cannot_choose_what_the_library_runs() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    // No daemon runs: the first write in the view starts one.
    let _ = sb.run(&root, &["daemon", "stop"]);
    // The table names the vrift binary as a path string: put a program of
    // the project's choosing in its place (same length, same layout).
    let vrift = fs::canonicalize(VRIFT).unwrap();
    let vrift = vrift.as_os_str().as_encoded_bytes().to_vec();
    let dir = tempfile::Builder::new()
        .prefix("vp")
        .tempdir_in("/tmp")
        .unwrap();
    let dir_len = dir.path().as_os_str().len() + 1;
    if vrift.len() <= dir_len {
        return skip("the vrift binary's path is too short to forge in its place");
    }
    let planted = dir.path().join("x".repeat(vrift.len() - dir_len));
    let marker = sb.path().join("planted-ran");
    plant(&planted, &marker);
    let table_path = root.join(".vrift/view.table");
    let table = fs::read(&table_path).unwrap();
    let at = table
        .windows(vrift.len())
        .position(|w| w == vrift)
        .expect("the table names the vrift binary");
    let mut doctored = table.clone();
    doctored[at..at + vrift.len()].copy_from_slice(planted.as_os_str().as_encoded_bytes());
    fs::write(&table_path, &doctored).unwrap();
    // A write in the view starts the daemon, and a static program runs
    // under vrift's supervisor: both with the vrift that set up the view.
    let out = sb.sh_in_view(&root, "echo x > f.txt && cat f.txt");
    assert!(
        !marker.exists(),
        "the library ran the table's program: {}",
        fs::read_to_string(&marker).unwrap_or_default()
    );
    assert_eq!(text(&out.stdout), "x\n", "{}", text(&out.stderr));
    if can_link_static() {
        let src = sb.path().join("static_true.c");
        fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let prog = sb.path().join("static_true");
        let st = Command::new("cc")
            .args(["-static", "-o"])
            .arg(&prog)
            .arg(&src)
            .status()
            .unwrap();
        assert!(st.success());
        let out = sb.sh_in_view(&root, &format!("'{}'; echo rc=$?", prog.display()));
        assert!(
            !marker.exists(),
            "the library ran the table's program as the supervisor: {}",
            fs::read_to_string(&marker).unwrap_or_default()
        );
        assert!(text(&out.stdout).contains("rc="), "{}", text(&out.stderr));
    }
    let _ = sb.run(&root, &["daemon", "stop"]);
}
