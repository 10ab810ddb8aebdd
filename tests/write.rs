//! The write side: real programs under `vrift run` create, change, rename
//! and delete files exactly as on a normal filesystem, everything lands in
//! the rift, and the project's files on disk are never touched.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// The library built, a sandbox, a project (initialised) and a physical
/// twin, both holding [`seed_src_tree`].
fn setup() -> (Sandbox, PathBuf, PathBuf) {
    setup_with(seed_src_tree)
}

#[test]
fn every_mutation_gives_the_linux_result_and_leaves_the_disk_alone() {
    let Some((sb, root, twin)) = setup_with_cc(seed_src_tree) else {
        return;
    };
    let prog = compile_c(&sb, "mutations", &[]);
    let before = disk_files(&root);

    let native = Command::new(&prog).arg(&twin).output().unwrap();
    assert!(native.status.success());
    let prog_s = prog.to_str().unwrap();
    let view = sb.run(&root, &["run", "--", prog_s, "."]);
    assert!(
        view.status.success(),
        "{}",
        String::from_utf8_lossy(&view.stderr)
    );
    let (n, v) = (
        String::from_utf8_lossy(&native.stdout),
        String::from_utf8_lossy(&view.stdout),
    );
    for (a, b) in n.lines().zip(v.lines()) {
        assert_eq!(a, b, "native vs rift");
    }
    assert_eq!(n.lines().count(), v.lines().count());
    assert!(n.contains("creat-excl again             -1 EEXIST"), "{n}");
    assert_eq!(
        disk_files(&root),
        before,
        "the project's files changed on disk"
    );

    // What the rift holds survives the daemon (committed, then reloaded):
    // the whole view equals the twin's tree.
    sb.ok(&root, &["daemon", "stop"]);
    let script = "find . -path ./.vrift -prune -o -print | LC_ALL=C sort | while read -r f; do \
                  if [ -L \"$f\" ]; then echo \"$f -> $(readlink \"$f\")\"; \
                  elif [ -f \"$f\" ]; then echo \"$f $(stat -c %a:%s \"$f\") $(cksum < \"$f\")\"; \
                  else echo \"$f/\"; fi; done";
    same_in_view_and_copy(&sb, &root, &twin, script, true);
}

#[test]
fn a_write_is_visible_to_other_processes_at_once_and_after_close() {
    let (sb, root, _) = setup();
    // A writer keeps its file open while another process reads it.
    let out = sb.ok_in_view(
        &root,
        "exec 3>log.txt; echo first >&3; cat log.txt; echo second >&3; cat log.txt; exec 3>&-; \
             sleep 0.2; cat log.txt; ls",
    );
    assert_eq!(
        out,
        "first\nfirst\nsecond\nfirst\nsecond\nlog.txt\nro.txt\nsrc\n"
    );
    assert!(!root.join("log.txt").exists());
    // `vrift cat` reads the committed rift (the daemon stops first).
    assert_eq!(sb.ok(&root, &["cat", "log.txt"]), "first\nsecond\n");
    let status = sb.ok(&root, &["status"]);
    assert!(status.contains("rift"), "{status}");
}

/// A process started with a umask it never sets itself (the shim reads it
/// on the first create) makes rift files and directories with the modes
/// the kernel would give; and one that sets it is followed.
#[test]
fn created_files_get_the_umask_the_process_inherited_or_set() {
    let (sb, root, twin) = setup();
    // `touch`, `mkdir` and `install -d` are new processes: the umask comes
    // from their parent shell, never through the shim's umask().
    let script = "umask 027; touch new.txt; mkdir newdir; sh -c 'umask 077; touch private.txt'; \
                  stat -c '%n %a' new.txt newdir private.txt";
    let native = Command::new("sh")
        .args(["-c", script])
        .current_dir(&twin)
        .output()
        .unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert_eq!(native, "new.txt 640\nnewdir 750\nprivate.txt 600\n");
    assert_eq!(sb.ok_in_view(&root, script), native);
    assert!(!root.join("new.txt").exists());
}

#[test]
fn exclusive_create_is_atomic_across_processes() {
    let (sb, root, _) = setup();
    // 16 shells race to create one lock file with O_EXCL (noclobber).
    let script =
        "for i in $(seq 16); do (set -C; echo $i > lock 2>/dev/null && echo won) & done; wait";
    let out = sb.ok_in_view(&root, script);
    assert_eq!(out.matches("won").count(), 1, "{out}");
    assert!(!root.join("lock").exists());
}

#[test]
fn many_writers_lose_nothing() {
    let (sb, root, twin) = setup();
    // 8 processes × 40 rounds of create, append, rename, unlink on their own
    // names and on shared ones; the same script on the twin is the model.
    let script = r#"
        work() {
            p=$1
            mkdir -p "w/$p"
            i=0
            while [ $i -lt 40 ]; do
                echo "$p $i" > "w/$p/f$i.tmp"
                echo "more" >> "w/$p/f$i.tmp"
                mv "w/$p/f$i.tmp" "w/$p/f$i"
                if [ $((i % 3)) -eq 0 ]; then rm "w/$p/f$i"; fi
                echo "$p" >> "shared-$p.log"
                i=$((i + 1))
            done
        }
        mkdir -p w
        for p in 1 2 3 4 5 6 7 8; do work $p & done
        wait
        find w -type f | LC_ALL=C sort | xargs cksum
        cat shared-*.log | LC_ALL=C sort | uniq -c
    "#;
    let before = disk_files(&root);
    same_in_view_and_copy(&sb, &root, &twin, script, true);
    assert_eq!(disk_files(&root), before);
    let _ = twin;
}

#[test]
fn a_killed_daemon_loses_no_write_whose_close_returned() {
    let (sb, root, _) = setup();
    sb.ok_in_view(
        &root,
        "for i in $(seq 50); do echo $i > out-$i.txt; done; mv src/a.txt src/moved.txt",
    );
    // kill -9 the daemon before its group commit or seal can run.
    let pid = sb.daemon_pid(&root);
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // A fresh daemon (started by the next write) replays the journal.
    let out = sb.ok_in_view(
        &root,
        "cat out-1.txt out-50.txt src/moved.txt; ls src; echo again > again.txt",
    );
    assert_eq!(out, "1\n50\nalpha\nb.txt\nmoved.txt\nsub\n");
    let pid2 = sb.daemon_pid(&root);
    assert_ne!(pid, pid2);
    Command::new("kill").args(["-9", &pid2]).status().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // And a CLI command does too, with nothing running.
    assert_eq!(sb.ok(&root, &["cat", "out-7.txt"]), "7\n");
    let fsck = sb.ok(&root, &["fsck"]);
    assert!(!fsck.contains("missing"), "{fsck}");
    // No staging file leaked once a daemon ran again and stopped: all were
    // sealed into the store, and the names a killed daemon kept for its
    // readers (sealed files) are gone.
    sb.ok_in_view(&root, "echo last > last.txt; cat last.txt");
    sb.ok(&root, &["daemon", "stop"]);
    assert_eq!(
        sb.ok(&root, &["cat", "last.txt", "out-50.txt"]),
        "last\n50\n"
    );
    let staging = sb.store().join("staging");
    let left: Vec<_> = fs::read_dir(&staging).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Polls `done` until it gives a value; fails naming `what` after a minute
/// (a bound for a hang, not a timing).
fn wait_for<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited a minute for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child that must not outlive a failed assertion (it would hold the
/// test harness's output pipe open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The generation and the used length (header to arena end) of the
/// published hot table, read from the file (asking the daemon would count
/// as activity and keep it from being quiet).
fn table_header(root: &Path) -> (u64, u64) {
    let bytes = fs::read(root.join(".vrift/view.table")).unwrap();
    let at = |off: usize| u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
    // Format fields: GENERATION 16, ARENA_OFF 64, ARENA_LEN 72.
    (at(16), at(64) + at(72))
}

#[test]
fn a_scattered_hot_table_is_rebuilt_once_quiet_and_readers_follow() {
    let (sb, root, _) = setup();
    let stop = sb.path().join("stop");
    // A shell that maps the table now and reads again after the rebuild.
    let reader_script = format!(
        "read a < src/a.txt; echo \"$a\"; \
         while [ ! -e {stop} ]; do sleep 0.05; done; \
         read x < gen/f0; read y < gen/f399; set -- gen/*; echo \"$x|$y|$#\"",
        stop = stop.display()
    );
    let mut reader = KillOnDrop(
        sb.cmd(&root, &["run", "--", "sh", "-c", &reader_script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = reader.0.stdout.take().unwrap();
    let mut first = [0u8; 6];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"alpha\n");

    // 400 files written three times: records superseded in place, one-entry
    // listing chunks, all appended to the arena.
    sb.ok(
        &root,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "mkdir gen; for pass in 1 2 3; do i=0; while [ $i -lt 400 ]; do \
             echo \"$pass $i\" > gen/f$i; i=$((i + 1)); done; done",
        ],
    );
    let (gen_written, used_written) = table_header(&root);
    let (gen_now, used_now) = wait_for("the daemon to rebuild its scattered table", || {
        let (g, u) = table_header(&root);
        (g > gen_written).then_some((g, u))
    });
    assert!(
        used_now * 2 < used_written,
        "generation {gen_now} uses {used_now} bytes, the scattered one {used_written}"
    );

    fs::write(&stop, "").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(reader.0.wait().unwrap().success());
    assert_eq!(rest, "3 0|3 399|400\n");
    assert_eq!(
        sb.ok_in_view(&root, "cat gen/f7; ls gen | wc -l"),
        "3 7\n400\n"
    );
}

/// Every file is sealed by its own close: with the daemon's periodic sweep
/// pushed out of reach, no staged file may be left once the writers are
/// gone. (The kernel reports a close before the file stops counting as
/// open for writing, so a daemon that tries its lease at once can be
/// refused; it must try again rather than wait for the sweep.)
#[test]
fn close_events_alone_seal_every_file() {
    let (sb, root, _) = setup();
    let writes = "mkdir many; for d in a b c d; do mkdir many/$d; i=0; \
                  while [ $i -lt 800 ]; do echo $i > many/$d/f$i; i=$((i + 1)); done; done";
    let out = sb
        .cmd(&root, &["run", "--", "sh", "-c", writes])
        .env("VRIFT_DAEMON_SEAL_SWEEP", "3600")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("every file closed to be sealed", || {
        sb.ok(&root, &["daemon", "status"])
            .contains("staged files: 0\n")
            .then_some(())
    });
    assert_eq!(
        sb.ok_in_view(&root, "cat many/d/f799; ls many/a | wc -l"),
        "799\n800\n"
    );
}

/// A file read by the next process the moment its writer has closed it is
/// there, whole, while the daemon seals it (moves it into the store and
/// republishes its record) at the same time: `ar` reading the objects `cc`
/// just wrote failed this way once in a few hundred builds.
#[test]
fn a_file_is_readable_throughout_its_seal() {
    let (sb, root, _) = setup();
    let script = "mkdir r; i=0; while [ $i -lt 300 ]; do \
                  echo \"$i\" > r/f$i; \
                  cat r/f$i r/f$i > r/g$i || exit 1; \
                  [ \"$(cat r/g$i)\" = \"$i\n$i\" ] || exit 2; \
                  read x < r/f$i; [ \"$x\" = \"$i\" ] || exit 3; \
                  i=$((i + 1)); done; echo ok";
    assert_eq!(sb.ok_in_view(&root, script), "ok\n");
}

/// Rift entries whose owner is inherited report the root's device, uid
/// and gid (recorded in the table, so no process stats the root for them).
#[test]
fn rift_entries_report_the_roots_device_and_owner() {
    use std::os::unix::fs::MetadataExt;
    let (sb, root, _) = setup();
    if is_root() {
        std::os::unix::fs::chown(&root, Some(1234), Some(5678)).unwrap();
    }
    let meta = fs::metadata(&root).unwrap();
    // Ingested files inherit the owner; the table is published after the chown.
    fs::create_dir(root.join("pkg")).unwrap();
    fs::write(root.join("pkg/a.txt"), "a\n").unwrap();
    sb.ok(&root, &["ingest", "pkg"]);
    let out = sb.ok(&root, &["run", "--", "stat", "-c", "%d %u %g", "pkg/a.txt"]);
    assert_eq!(
        out,
        format!("{} {} {}\n", meta.dev(), meta.uid(), meta.gid())
    );
}

#[test]
fn the_daemon_refuses_garbage_and_oversized_frames_and_stays_up() {
    let (sb, root, _) = setup();
    sb.ok(&root, &["daemon", "start"]);
    let socket = sb.daemon_socket(&root);
    let mode = fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    // Open to other uids only where a root daemon serves them (a process
    // of the view that dropped root keeps a handle on it); the directory
    // is private either way.
    let want = if is_root() { 0o666 } else { 0o600 };
    assert_eq!(mode, want, "socket mode");
    let dir_mode = fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "runtime dir mode");
    for frame in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        u32::MAX.to_le_bytes().to_vec(),
        [&8u32.to_le_bytes()[..], &[9, 1, 0, 0, 0, 0, 0, 0]].concat(), // wrong version
        [&8u32.to_le_bytes()[..], &[1, 200, 0, 0, 0, 0, 0, 0]].concat(), // unknown op
        // A path length pointing past the end of a complete frame.
        [
            &32u32.to_le_bytes()[..],
            &[1, 2, 0, 0],
            &[0u8; 24],
            &[255, 255, 255, 0],
        ]
        .concat(),
    ] {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&frame);
        let mut buf = [0u8; 64];
        // The daemon drops the connection; it never answers garbage.
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
    // A path escaping the project is refused, and nothing is created.
    let out = sb.run(&root, &["run", "--", "sh", "-c", "echo x > ../escape.txt"]);
    assert!(out.status.success());
    assert!(
        sb.path().join("escape.txt").exists(),
        "outside the domain is the disk's"
    );
    let status = sb.ok(&root, &["daemon", "status"]);
    assert!(status.starts_with("running on"), "{status}");
    let out = sb.ok_in_view(&root, "echo ok > ok.txt; cat ok.txt");
    assert_eq!(out, "ok\n");
    sb.ok(&root, &["daemon", "stop"]);
    assert!(!socket.exists());
}

#[test]
fn an_unreachable_daemon_fails_writes_with_eio_and_one_line() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    seed_src_tree(&root);
    // The table names the vrift binary that starts the daemon: publish it
    // with a copy, then remove the copy.
    let gone = sb.path().join("bin/vrift");
    fs::create_dir_all(gone.parent().unwrap()).unwrap();
    fs::copy(VRIFT, &gone).unwrap();
    let st = Command::new(&gone)
        .arg("init")
        .current_dir(&root)
        .env("HOME", sb.home())
        .env("VR_THE_SOURCE", sb.store())
        .status()
        .unwrap();
    assert!(st.success());
    fs::remove_file(&gone).unwrap();
    // The library starts the daemon with `VRIFT_EXE` (never the table's
    // path, which a project could forge): name the removed copy there.
    let script = format!(
        "VRIFT_EXE='{}' sh -c 'echo x > new.txt; echo rc=$?; cat src/a.txt'",
        gone.display()
    );
    let out = sb.run(&root, &["run", "--", "sh", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("rc=1") || stdout.contains("rc=2"),
        "{stdout}"
    );
    assert!(stdout.contains("alpha"), "reads still work: {stdout}");
    assert!(
        stderr.contains("daemon cannot be reached") && stderr.contains("Input/output error"),
        "{stderr}"
    );
    assert!(
        !root.join("new.txt").exists(),
        "never falls back to the disk"
    );
}

#[test]
fn an_idle_daemon_commits_and_exits_and_strangers_cannot_connect() {
    let (sb, root, _) = setup();
    if is_root()
        && Command::new("setpriv").arg("--help").output().is_ok()
        && Path::new("/usr/bin/python3").exists()
    {
        // The runtime directory is 0700: another user cannot reach the socket.
        sb.ok(&root, &["daemon", "start"]);
        let socket = sb.daemon_socket(&root);
        let probe = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["/usr/bin/python3", "-c"])
            .arg(format!(
                "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect({:?})\nexcept OSError as e:\n print(e.errno); sys.exit(0)\nprint('connected')",
                socket.to_str().unwrap()
            ))
            .current_dir("/")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&probe.stdout);
        assert_eq!(
            said.trim(),
            libc::EACCES.to_string(),
            "{said} {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        sb.ok(&root, &["daemon", "stop"]);
    }
    let out = sb
        .cmd(&root, &["run", "--", "sh", "-c", "echo kept > kept.txt"])
        .env("VRIFT_DAEMON_IDLE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    // After the idle period it is gone, its journal empty, the change committed.
    let mut gone = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let st = sb.run(&root, &["daemon", "status"]);
        if !st.status.success() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the daemon did not exit when idle");
    let journal = root.join(".vrift/daemon.journal");
    assert_eq!(fs::metadata(&journal).map(|m| m.len()).unwrap_or(0), 0);
    assert_eq!(sb.ok(&root, &["cat", "kept.txt"]), "kept\n");
}

#[test]
fn threads_fork_and_vfork_write_without_deadlock() {
    let Some((sb, root, _)) = setup_with_cc(seed_src_tree) else {
        return;
    };
    let prog = compile_c(&sb, "write_safety", &["-pthread"]);
    let before = disk_files(&root);
    let mut child = sb
        .cmd(&root, &["run", "--", prog.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A deadlock would hang: give it a generous bound, then fail loudly.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write side hung under threads/fork/vfork"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "threads 200/200 fork 1 vfork 1 readback 1 1\n"
    );
    assert_eq!(disk_files(&root), before);
}

#[test]
fn entering_the_inception_starts_the_daemon() {
    let (sb, root, _) = setup();
    let code = sb.ok(&root, &["inception", "--shell", "bash"]);
    assert!(code.contains("VRIFT_INCEPTION"), "{code}");
    let mut up = false;
    for _ in 0..100 {
        if sb.run(&root, &["daemon", "status"]).status.success() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "no daemon after entering the inception");
    sb.ok(&root, &["daemon", "stop"]);
}

/// Mutations made with syscall(2) directly, as runtimes that bypass libc's
/// wrappers do.
const RAW_SYSCALLS_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    int fd = syscall(SYS_openat, AT_FDCWD, "raw.txt", O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, "raw\n", 4) != 4) return 1;
    close(fd);
    printf("mkdirat %ld\n", syscall(SYS_mkdirat, AT_FDCWD, "rawdir", 0755));
    printf("renameat2 %ld\n", syscall(SYS_renameat2, AT_FDCWD, "raw.txt", AT_FDCWD, "rawdir/moved.txt", 0));
    printf("symlinkat %ld\n", syscall(SYS_symlinkat, "moved.txt", AT_FDCWD, "rawdir/ln"));
    printf("unlinkat %ld\n", syscall(SYS_unlinkat, AT_FDCWD, "src/a.txt", 0));
    printf("fchmodat %ld\n", syscall(SYS_fchmodat, AT_FDCWD, "rawdir/moved.txt", 0600));
    return 0;
}
"#;

#[test]
fn direct_syscalls_of_the_write_family_are_served_by_the_rift() {
    let Some((sb, root, _)) = setup_with_cc(seed_src_tree) else {
        return;
    };
    let prog = compile_c_source(&sb, "raw_syscalls", RAW_SYSCALLS_C);
    let before = disk_files(&root);
    let out = sb.ok(&root, &["run", "--", prog.to_str().unwrap()]);
    assert_eq!(
        out,
        "mkdirat 0\nrenameat2 0\nsymlinkat 0\nunlinkat 0\nfchmodat 0\n"
    );
    let view = sb.ok_in_view(&root, "cat rawdir/ln; stat -c %a rawdir/moved.txt; ls src");
    assert_eq!(view, "raw\n600\nb.txt\nsub\n");
    assert_eq!(disk_files(&root), before);
}

#[test]
fn gc_with_a_running_daemon_keeps_what_the_rift_references() {
    let (sb, root, _) = setup();
    // Written, sealed and journaled, not yet committed: the daemon is up.
    let out = sb
        .cmd(
            &root,
            &[
                "run",
                "--",
                "sh",
                "-c",
                "for i in 1 2 3; do echo kept-$i > k$i.txt; done; echo gone > g.txt; rm g.txt",
            ],
        )
        .env("VRIFT_DAEMON_IDLE", "60")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(sb.run(&root, &["daemon", "status"]).status.success());
    let start = std::time::Instant::now();
    let gc = sb.ok(&root, &["gc", "--delete"]);
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "gc waited for the daemon"
    );
    assert!(gc.contains("deleted"), "{gc}");
    for i in 1..=3 {
        assert_eq!(
            sb.ok(&root, &["cat", &format!("k{i}.txt")]),
            format!("kept-{i}\n")
        );
    }
    let fsck = sb.ok(&root, &["fsck"]);
    assert!(fsck.contains("no problems"), "{fsck}");
}

/// A FIFO of the disk is no rift file: the daemon answers an open for
/// writing with the protocol's PASS flag and the library opens the real
/// FIFO, so its reader gets the bytes (and nothing lands in the rift).
#[test]
fn writing_into_a_fifo_of_the_project_reaches_its_reader() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let st = Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = sb.ok_in_view(
        &root,
        "timeout 20 cat pipe > got.txt & echo through > pipe; wait; cat got.txt",
    );
    assert_eq!(out, "through\n");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::symlink_metadata(root.join("pipe")).unwrap().file_type()
    ));
    assert!(
        !root.join("got.txt").exists(),
        "the reader's file is a rift file"
    );
}
