//! Faults (issue 14, "Faults"): a daemon killed or exiting idle in the
//! middle of a build fails no write, a daemon that cannot start fails a
//! write at once with its reason, and a damaged blob is never read back.
//!
//! The stress tests assert outcomes only (every write succeeded and is in
//! the view, `vrift fsck` is clean); their durations are printed, and
//! generous limits guard against hangs, never against slowness.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::prelude::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use vrift_format::proto::{encode_request, Op, Request};

/// `kill -9`s of the daemon in the parallel-writes test (the issue's goal).
const KILLS: usize = 100;
/// Writers at once in the kill test.
const WRITERS: usize = 4;
/// Writers at once, and writes of each, in the idle-exit test (2 × 160 =
/// 320 writes): few writers, so that the daemon finds itself idle often.
const IDLE_WRITERS: usize = 2;
const IDLE_WRITES: usize = 160;

/// Daemons of `root` and the starters starting one (`vrift -C ROOT daemon
/// start`, which the library runs).
fn daemons_and_starters(root: &Path) -> Vec<i32> {
    processes_of(root, b"\0daemon\0")
}

/// The daemon socket of `root` for a process without XDG_RUNTIME_DIR (as
/// [`Sandbox::cmd`] runs them).
fn socket_of(root: &Path) -> PathBuf {
    let h = blake3::hash(root.as_os_str().as_bytes());
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/vrift-{uid}/{}.sock", &h.to_hex()[..16]))
}

/// Whether a daemon answers a ping on `socket` (the protocol's frame
/// written out: len, version 1, op 14, a, b, c, two empty paths).
fn answers(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut frame = [0u8; 64];
    let n = encode_request(&mut frame, &Request::bare(Op::Ping)).expect("a ping fits a frame");
    if s.write_all(&frame[..n]).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head[5] == 14
}

/// A writer loop for `sh`: until `stop` exists (and at least `min`
/// rounds), writes `out/wW/fI` and, with `more`, makes, fills, renames
/// into, empties and removes `out/wW/dI` — requests that act twice would
/// fail (mkdir: EEXIST, mv and rm and rmdir: ENOENT). Any failure ends the
/// writer with status 1 and a line; at the end it prints `wW ROUNDS`.
fn writer(w: usize, stop: &Path, min: usize, more: bool, pause: &str) -> String {
    let stop = stop.display();
    let dirs = if more {
        format!(
            r#"mkdir out/w{w}/d$i || {{ echo "FAILED: mkdir w{w}/d$i" >&2; exit 1; }}
    echo t > out/w{w}/d$i/t || {{ echo "FAILED: write w{w}/d$i/t" >&2; exit 1; }}
    mv out/w{w}/d$i/t out/w{w}/d$i/u || {{ echo "FAILED: mv w{w}/d$i/t" >&2; exit 1; }}
    rm out/w{w}/d$i/u || {{ echo "FAILED: rm w{w}/d$i/u" >&2; exit 1; }}
    rmdir out/w{w}/d$i || {{ echo "FAILED: rmdir w{w}/d$i" >&2; exit 1; }}"#
        )
    } else {
        String::new()
    };
    format!(
        r#"(
  set -u
  mkdir -p out/w{w} || exit 1
  i=0
  while [ $i -lt {min} ] || [ ! -e {stop} ]; do
    echo "w{w}-$i" > out/w{w}/f$i || {{ echo "FAILED: write w{w}/f$i" >&2; exit 1; }}
    {dirs}
    {pause}
    i=$((i+1))
  done
  echo "w{w} $i"
) &
pids="$pids $!"
"#
    )
}

/// `n` writers in parallel; exits 1 if any failed.
fn writers_script(n: usize, stop: &Path, min: usize, more: bool, pause: &str) -> String {
    let mut s = String::from("pids=\n");
    for w in 0..n {
        s += &writer(w, stop, min, more, pause);
    }
    s += "fail=0\nfor p in $pids; do wait $p || fail=1; done\nexit $fail\n";
    s
}

/// Checks what the writers of [`writers_script`] left: every `fI` of each
/// writer's rounds with its content, no `dI` left in the view or on disk,
/// and `vrift fsck` clean. Returns the number of files written.
fn check_written(sb: &Sandbox, root: &Path, n: usize, out: &Output) -> usize {
    let stdout = text(&out.stdout);
    let rounds: BTreeMap<usize, usize> = stdout
        .lines()
        .filter_map(|l| {
            let (w, n) = l.strip_prefix('w')?.split_once(' ')?;
            Some((w.parse().ok()?, n.trim().parse().ok()?))
        })
        .collect();
    assert_eq!(rounds.len(), n, "writers that finished: {stdout}");
    let listing = sb.ok_in_view(
        root,
        "for f in out/w*/*; do printf '%s %s\\n' \"$f\" \"$(cat \"$f\")\"; done",
    );
    let seen: BTreeMap<String, String> = listing
        .lines()
        .map(|l| {
            let (f, c) = l.split_once(' ').unwrap();
            (f.to_string(), c.to_string())
        })
        .collect();
    let mut want = BTreeMap::new();
    for (w, n) in &rounds {
        for i in 0..*n {
            want.insert(format!("out/w{w}/f{i}"), format!("w{w}-{i}"));
        }
    }
    assert_eq!(seen, want, "the view differs from what the writers wrote");
    for w in 0..n {
        let left: Vec<String> = fs::read_dir(root.join(format!("out/w{w}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "left on the disk in out/w{w}: {left:?}");
    }
    sb.ok(root, &["fsck"]);
    want.len()
}

#[test]
fn kill_9_of_the_daemon_during_parallel_writes_fails_no_write() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let stop = sb.path().join("stop");
    let start = Instant::now();
    let child = {
        let script = writers_script(WRITERS, &stop, 10, true, ":");
        let cmd = sb.cmd(&root, &["run", "--", "sh", "-c", &script]);
        std::thread::spawn(move || output_within(cmd, Duration::from_secs(600)))
    };
    let socket = socket_of(&root);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut kills = 0;
    let mut last = 0;
    let guard = Instant::now() + Duration::from_secs(300);
    while kills < KILLS && !child.is_finished() && Instant::now() < guard {
        let Some(&pid) = daemon_pids(&root).iter().find(|&&p| p != last) else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        // Mostly a daemon at work (answering, then 0–30 ms in); every
        // fifth one as soon as it appears (killed while starting).
        if kills % 5 != 4 {
            while !answers(&socket) && Instant::now() < guard && !child.is_finished() {
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(rng.below(30)));
        }
        // SAFETY: kill(2) of a pid we found; a stale one is ESRCH.
        if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
            kills += 1;
        }
        last = pid;
    }
    fs::write(&stop, "").unwrap();
    let out = child
        .join()
        .unwrap()
        .expect("the writers hung (10 minutes)");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "a write failed across {kills} kills:\n{}",
        text(&out.stderr)
    );
    assert_eq!(kills, KILLS, "the writers ended before the kills");
    let files = check_written(&sb, &root, WRITERS, &out);
    // How often a lost answer's retry found its request done (for the
    // figures; how often a kill lands there is chance).
    let log = fs::read_to_string(root.join(".vrift/daemon.log")).unwrap_or_default();
    let retried = log.matches("answered as done").count();
    eprintln!(
        "{kills} kill -9 during {WRITERS} parallel writers: {files} files, {} requests, all succeeded in {:.1} s; {retried} retries answered as done",
        files * 6,
        took.as_secs_f64()
    );
}

#[test]
fn an_idle_exit_never_drops_a_client() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    // Each writer stops after IDLE_WRITES rounds: the stop file is there
    // from the start (the loop's "at least" count is the bound).
    let stop = sb.path().join("stop");
    fs::write(&stop, "").unwrap();
    // Pauses around the idle time: writes arrive as the daemon exits.
    let pause =
        "case $((i % 4)) in 0) sleep 0.04;; 1) sleep 0.05;; 2) sleep 0.06;; *) sleep 0.07;; esac";
    let script = writers_script(IDLE_WRITERS, &stop, IDLE_WRITES, false, pause);
    let mut cmd = sb.cmd(&root, &["run", "--", "sh", "-c", &script]);
    // 50 ms idle: the daemon exits in the writers' pauses, again and
    // again, while others connect.
    cmd.env("VRIFT_DAEMON_IDLE", "0.05");
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (root, done) = (root.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::Acquire) {
                seen.extend(daemon_pids(&root));
                std::thread::sleep(Duration::from_millis(3));
            }
            seen.len()
        })
    };
    let start = Instant::now();
    let out = output_within(cmd, Duration::from_secs(600)).expect("the writers hung");
    let took = start.elapsed();
    done.store(true, Ordering::Release);
    let daemons = watcher.join().unwrap();
    assert!(
        out.status.success(),
        "a write failed while daemons exited idle:\n{}",
        text(&out.stderr)
    );
    // Without exits the test would prove nothing.
    assert!(daemons > 1, "the daemon never exited idle");
    let files = check_written(&sb, &root, IDLE_WRITERS, &out);
    eprintln!(
        "idle exits: {daemons} daemons served {files} writes, all succeeded in {:.1} s",
        took.as_secs_f64()
    );
}

// ---- a daemon that cannot start: at once, with its reason -----------------------

/// The system's python3 (another user may not enter root's pyenv).
fn python3() -> Option<&'static str> {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn a_write_with_sigchld_ignored_fails_at_once_with_the_reason() {
    let Some(py) = python3() else {
        return skip("python3 is not installed");
    };
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    corrupt_manifest(&sb, &root);
    // SIGCHLD ignored: the kernel reaps the starter, waitpid cannot tell
    // its status.
    let code = "import signal; signal.signal(signal.SIGCHLD, signal.SIG_IGN); open('x.txt', 'w').write('x')";
    // 10 s guards against the old ~30 s stall (no tighter timing assertion).
    let start = Instant::now();
    let run = output_within(
        sb.cmd(&root, &["run", "--", py, "-c", code]),
        Duration::from_secs(10),
    )
    .expect("the write stalled");
    eprintln!("failed in {:.2} s", start.elapsed().as_secs_f64());
    let err = text(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("before answering") && err.contains("manifest"),
        "the starter's reason is missing: {err}"
    );
    assert!(err.contains("Input/output error"), "{err}");
    assert!(!root.join("x.txt").exists());
}

#[test]
fn a_writer_whose_runtime_dir_differs_from_the_publishers_still_writes() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let xdg = sb.mkdir("xdg");
    // The table names the socket of a daemon without XDG_RUNTIME_DIR
    // (/tmp/vrift-UID); that daemon is gone when a writer whose
    // XDG_RUNTIME_DIR differs starts the next one, which listens there.
    let script = format!(
        "{v} daemon start && {v} daemon stop && XDG_RUNTIME_DIR={x} sh -c 'echo moved > x.txt' && cat x.txt",
        v = VRIFT,
        x = xdg.display()
    );
    let start = Instant::now();
    let run = output_within(
        sb.cmd(&root, &["run", "--", "sh", "-c", &script]),
        Duration::from_secs(10),
    )
    .expect("the write stalled");
    eprintln!("wrote in {:.2} s", start.elapsed().as_secs_f64());
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "moved\n");
    assert!(xdg.join("vrift").is_dir(), "the daemon listened elsewhere");
    assert!(!root.join("x.txt").exists());
}

// ---- a damaged blob is never read back ---------------------------------------------

/// The store's blob holding exactly `content`.
fn blob_of(sb: &Sandbox, content: &[u8]) -> PathBuf {
    let h = blake3::hash(content).to_hex().to_string();
    let mut found = Vec::new();
    for fan in fs::read_dir(sb.store().join("blobs")).unwrap().flatten() {
        for b in fs::read_dir(fan.path()).unwrap().flatten() {
            if b.file_name().to_string_lossy().contains(&h) {
                found.push(b.path());
            }
        }
    }
    assert_eq!(found.len(), 1, "blob {h}: {found:?}");
    found.remove(0)
}

fn damage(blob: &Path, how: impl FnOnce(&mut fs::File)) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(blob, fs::Permissions::from_mode(0o600)).unwrap();
    let mut f = fs::OpenOptions::new().write(true).open(blob).unwrap();
    how(&mut f);
    drop(f);
    fs::set_permissions(blob, fs::Permissions::from_mode(0o400)).unwrap();
}

#[test]
fn a_damaged_blob_is_never_read_back() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let content = b"the content of a file sealed into the store\n";
    sb.ok_in_view(
        &root,
        "printf 'the content of a file sealed into the store\\n' > f.txt",
    );
    sb.ok(&root, &["daemon", "stop"]);
    assert_eq!(sb.ok_in_view(&root, "cat f.txt").as_bytes(), content);
    let blob = blob_of(&sb, content);

    type Damage = Box<dyn FnOnce(&mut fs::File)>;
    let cases: [(&str, Damage); 2] = [
        ("truncated", Box::new(|f| f.set_len(10).unwrap())),
        (
            "extended",
            Box::new(|f| {
                f.set_len(0).unwrap();
                f.write_all(content).unwrap();
                f.write_all(b"and more").unwrap();
            }),
        ),
    ];
    for (what, how) in cases {
        damage(&blob, how);
        // Through the library: EIO and one line, no byte of the blob.
        let out = sb.sh_in_view(&root, "cat f.txt");
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what}: cat succeeded");
        assert!(
            out.stdout.is_empty(),
            "{what}: bytes came out: {:?}",
            text(&out.stdout)
        );
        assert_eq!(
            err.matches("damaged").count(),
            1,
            "{what}: one line naming the damage: {err}"
        );
        assert!(
            err.contains("f.txt") && err.contains("Input/output error"),
            "{what}: {err}"
        );
        // `vrift cat`: the same, by size.
        assert_cat_refuses(&sb, &root, what);
        damage(&blob, |f| {
            f.set_len(0).unwrap();
            f.write_all(content).unwrap();
        });
        assert_eq!(sb.ok_in_view(&root, "cat f.txt").as_bytes(), content);
    }

    // Same size, other bytes: `vrift cat` hashes and refuses; the library
    // checks only the size (README, "Security"), and `vrift fsck` finds it.
    damage(&blob, |f| f.write_all(b"THE").unwrap());
    assert_cat_refuses(&sb, &root, "same size, other bytes");
    assert!(!sb.run(&root, &["fsck"]).status.success(), "fsck missed it");
}

/// `vrift cat f.txt` in `root` refuses a damaged blob: it fails, prints
/// nothing and says "damaged".
fn assert_cat_refuses(sb: &Sandbox, root: &Path, what: &str) {
    let out = sb.run(root, &["cat", "f.txt"]);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "{what}: vrift cat printed {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("damaged"),
        "{what}: {}",
        text(&out.stderr)
    );
}

/// Issue 14: the CLI's other requests (status, stop) are asked again when
/// the daemon dies with their answer, as writes are. The daemon is stopped
/// (SIGSTOP) so the request waits in its socket, then killed.
#[test]
fn status_and_stop_survive_a_daemon_killed_with_their_answer() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    for args in [&["daemon", "status"][..], &["daemon", "stop"][..]] {
        sb.ok(&root, &["daemon", "start"]);
        let pid = *daemon_pids(&root).first().expect("a daemon runs");
        // SAFETY: kill(2) of the daemon we started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        let child = sb
            .cmd(&root, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The request is in the stopped daemon's socket before it dies.
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            stdout.starts_with("not running"),
            "vrift {args:?} after the daemon died with its answer:\n{stdout}{stderr}"
        );
        assert!(!stderr.contains("answer"), "{stderr}");
    }
}

/// The verified-once mark (issue 14): a blob is hashed by the first
/// verifying reader (`vrift cat`) or `vrift fsck`, which mark it; later
/// readers check its size only. `verify = true` hashes on every read.
#[test]
fn a_blob_is_verified_once_unless_verify_is_true() {
    use std::os::unix::fs::PermissionsExt;
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let content = b"verified once, then trusted by its mark\n";
    sb.ok_in_view(
        &root,
        "printf 'verified once, then trusted by its mark\\n' > f.txt; echo other > g.txt",
    );
    sb.ok(&root, &["daemon", "stop"]);
    let blob = blob_of(&sb, content);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&blob), 0o400, "a new blob is not marked");
    assert_eq!(sb.ok(&root, &["cat", "f.txt"]).as_bytes(), content);
    assert_eq!(mode(&blob), 0o1400, "vrift cat hashed it and marked it");
    // fsck marks every blob it finds good.
    let other = blob_of(&sb, b"other\n");
    assert_eq!(mode(&other), 0o400);
    sb.ok(&root, &["fsck"]);
    assert_eq!(mode(&other), 0o1400);

    // Changed in place at the same size, the mark kept: the mark is
    // trusted (the size matches) ...
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o1600)).unwrap();
    let mut bad = content.to_vec();
    bad[0] = b'V';
    fs::write(&blob, &bad).unwrap();
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o1400)).unwrap();
    assert_eq!(sb.ok(&root, &["cat", "f.txt"]).as_bytes(), bad);
    // ... unless `verify = true`: then every read hashes.
    let config = root.join(".vrift/config.toml");
    let old = fs::read_to_string(&config).unwrap_or_default();
    fs::write(&config, format!("verify = true\n{old}")).unwrap();
    assert_cat_refuses(&sb, &root, "verify = true read a changed blob");
    // And fsck, which always hashes, finds it.
    assert!(!sb.run(&root, &["fsck"]).status.success(), "fsck missed it");
}

/// `verify = true` reaches the library: the first open of a blob without
/// the verified-once mark has the daemon hash it (and mark it), so a blob
/// changed in place at the same size is refused — EIO and one line — by
/// open, fopen and exec alike. Without `verify` the library checks the
/// size only (the README's trade-off).
#[test]
fn under_verify_true_the_library_has_unmarked_blobs_verified() {
    use std::os::unix::fs::PermissionsExt;
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    sb.ok_in_view(
        &root,
        "printf 'good bytes\\n' > good.txt; printf 'bad bytes\\n' > bad.txt; \
         printf '#!/bin/sh\\necho ran\\n' > tool.sh; chmod +x tool.sh",
    );
    sb.ok(&root, &["daemon", "stop"]);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let change = |content: &[u8], to: &[u8]| {
        let blob = blob_of(&sb, content);
        fs::set_permissions(&blob, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&blob, to).unwrap();
        fs::set_permissions(&blob, fs::Permissions::from_mode(0o400)).unwrap();
    };
    change(b"bad bytes\n", b"BAD bytes\n");
    change(b"#!/bin/sh\necho ran\n", b"#!/bin/sh\necho RAN\n");
    let good = blob_of(&sb, b"good bytes\n");
    assert_eq!(
        sb.ok(&root, &["run", "--", "cat", "bad.txt"]),
        "BAD bytes\n"
    );
    assert_eq!(mode(&good), 0o400);

    let config = root.join(".vrift/config.toml");
    let old = fs::read_to_string(&config).unwrap_or_default();
    fs::write(&config, format!("verify = true\n{old}")).unwrap();
    assert_eq!(
        sb.ok(&root, &["run", "--", "cat", "good.txt"]),
        "good bytes\n"
    );
    assert_eq!(mode(&good), 0o1400, "the daemon hashed and marked it");
    for (what, cmd) in [
        ("open", &["cat", "bad.txt"][..]),
        ("fopen", &["sed", "-n", "p", "bad.txt"][..]),
        ("exec", &["./tool.sh"][..]),
        ("the cat applet", &[][..]),
    ] {
        let out = if cmd.is_empty() {
            // vrift run as `cat` (argv[0]): the applet, which asks the
            // daemon the same way.
            use std::os::unix::process::CommandExt;
            sb.cmd(&root, &["bad.txt"]).arg0("cat").output().unwrap()
        } else {
            let mut args = vec!["run", "--"];
            args.extend_from_slice(cmd);
            sb.run(&root, &args)
        };
        let err = text(&out.stderr);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "{what} read a changed blob: {}",
            text(&out.stdout)
        );
        assert!(
            err.contains("damaged") && err.contains("hashes to"),
            "{what}: {err}"
        );
    }
    // Marked: read again without asking (and still right).
    sb.ok(&root, &["daemon", "stop"]);
    assert_eq!(
        sb.ok(&root, &["run", "--", "cat", "good.txt"]),
        "good bytes\n"
    );
    let status = sb.run(&root, &["daemon", "status"]);
    assert!(
        text(&status.stdout).contains("not running"),
        "a marked blob is read without asking the daemon: {}",
        text(&status.stdout)
    );
    assert!(
        !sb.run(&root, &["fsck"]).status.success(),
        "fsck missed the changed blobs"
    );
}

/// Crash points instead of timed kills (docs/design.md, "Crash points"):
/// an ingest killed at each of its steps, and a daemon killed at each step
/// of a seal and of a group commit, lose no file and leave `vrift fsck`
/// clean. Each step must be reached (the process dies by SIGKILL), so a
/// step that moved or vanished fails the test.
#[test]
fn every_ingest_and_seal_step_survives_a_crash() {
    use std::os::unix::process::ExitStatusExt;
    build_shim();
    for step in vrift::failpoint::STEPS
        .iter()
        .filter(|s| s.starts_with("ingest.") || s.starts_with("seal.") || s.starts_with("commit."))
    {
        let sb = Sandbox::new();
        let root = sb.mkdir("p");
        fs::create_dir_all(root.join("deps/sub")).unwrap();
        let mut files: BTreeMap<String, String> = (0..20)
            .map(|i| {
                let dir = if i % 2 == 0 { "deps/sub" } else { "deps" };
                (format!("{dir}/f{i}.txt"), format!("content {i}\n"))
            })
            .collect();
        for (p, c) in &files {
            fs::write(root.join(p), c).unwrap();
        }
        sb.ok(&root, &["init"]);
        if step.starts_with("ingest.") {
            let out = sb
                .cmd(&root, &["ingest", "deps"])
                .env("VRIFT_FAILPOINT", step)
                .output()
                .unwrap();
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGKILL),
                "{step}: the ingest did not reach it: {}",
                text(&out.stderr)
            );
            // The next ingest finishes or undoes the crashed one first.
            sb.ok(&root, &["ingest", "deps"]);
        } else {
            let script = "echo written > deps/new.txt && echo more >> deps/f1.txt";
            let out = sb
                .cmd(&root, &["run", "--", "sh", "-c", script])
                .env("VRIFT_FAILPOINT", step)
                .output()
                .unwrap();
            assert!(out.status.success(), "{step}: {}", text(&out.stderr));
            // The daemon reaches the step once it seals (or commits) what
            // was written, and dies there; a daemon the library started
            // again meanwhile dies there too. Quiet means no daemon and
            // no starter, twice 200 ms apart.
            let guard = Instant::now() + Duration::from_secs(30);
            let mut quiet = 0;
            while quiet < 2 {
                assert!(
                    Instant::now() < guard,
                    "{step}: the daemon never reached it"
                );
                std::thread::sleep(Duration::from_millis(200));
                quiet = match daemons_and_starters(&root).is_empty() {
                    true => quiet + 1,
                    false => 0,
                };
            }
            files.insert("deps/new.txt".into(), "written\n".into());
            files.insert("deps/f1.txt".into(), "content 1\nmore\n".into());
        }
        for (p, c) in &files {
            assert_eq!(&sb.ok(&root, &["cat", p]), c, "{step}: {p}");
        }
        sb.ok(&root, &["fsck"]);
        // In the view too, through a daemon started afterwards, which
        // seals what a crashed one left staged.
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        let all: String = files.values().map(String::as_str).collect();
        assert_eq!(
            sb.ok_in_view(&root, &format!("cat {}", names.join(" "))),
            all,
            "{step}: in the view"
        );
        sb.ok(&root, &["daemon", "stop"]);
        sb.ok(&root, &["fsck"]);
        eprintln!("{step}: no file lost, fsck clean");
    }
}

/// A mkdir journals its request id before it makes the directory (so that
/// its retry is not answered EEXIST by its own directory); a daemon killed
/// in between left the directory unmade, and its retry, answered "done",
/// left the client with a directory that is not there (`mkdir -p a/b/c`
/// then failed on `a/b`: "Directory nonexistent" under 100 kill -9s). The
/// retry now makes it.
#[test]
fn a_mkdir_or_rmdir_its_daemon_died_in_is_done_by_the_retry() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let cases = [
        (
            "mkdir.journaled",
            "mkdir -p a/b/c && echo x > a/b/c/f && cat a/b/c/f",
            "x\n",
        ),
        (
            "rmdir.journaled",
            "mkdir -p r/s && rmdir r/s && ls -a r && test ! -e r/s && echo gone",
            ".\n..\ngone\n",
        ),
    ];
    for (step, script, want) in cases {
        let once = sb.path().join(format!("{step}-fired"));
        let out = sb
            .cmd(&root, &["run", "--", "sh", "-c", script])
            .env("VRIFT_FAILPOINT", step)
            .env("VRIFT_FAILPOINT_ONCE", &once)
            .output()
            .unwrap();
        assert!(once.exists(), "no daemon reached the crash point {step}");
        assert!(out.status.success(), "{step}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), want, "{step}");
        // The next case's daemon starts with its own crash point.
        sb.ok(&root, &["daemon", "stop"]);
    }
    assert!(fs::metadata(root.join("a/b/c")).unwrap().is_dir());
    assert_eq!(sb.ok(&root, &["cat", "a/b/c/f"]), "x\n");
    assert!(!root.join("r/s").exists(), "the rmdir was done on disk");
    let out = sb.ok(&root, &["fsck"]);
    assert!(out.contains("no problems found"), "{out}");
}

#[test]
fn a_project_removed_and_initialised_again_gets_its_own_daemon() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::write(root.join("a.txt"), "a\n").unwrap();
    sb.ok(&root, &["init"]);
    sb.ok_in_view(&root, "echo old > b.txt");
    let old = sb.daemon_socket(&root);
    assert!(answers(&old));
    // The same path, another project; the old daemon still listens.
    fs::remove_dir_all(&root).unwrap();
    fs::create_dir(&root).unwrap();
    fs::write(root.join("a.txt"), "a\n").unwrap();
    sb.ok(&root, &["init"]);
    let out = sb.ok_in_view(&root, "echo new > c.txt; cat c.txt; ls");
    assert_eq!(out, "new\na.txt\nc.txt\n");
    // The write is in this project's rift (and nowhere on its disk).
    let status = sb.ok(&root, &["status"]);
    assert!(status.contains("rift       1 entries"), "{status}");
    assert!(!root.join("c.txt").exists());
    let out = sb.ok_in_view(&root, "cat c.txt");
    assert_eq!(out, "new\n");
}
