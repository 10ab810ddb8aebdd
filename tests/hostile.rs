//! Issue 14, hostile requests: the wire format is public, so a process of
//! the same user can send the daemon any frame. These tests speak the
//! protocol directly (no library in between) and check that the daemon
//! acts only inside its project, survives any frame, and that a client
//! that never reads its replies holds up nobody else.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use vrift_format::proto::{decode_reply, encode_request, frame_len, Op, Request, MAX_FRAME};

/// The daemon's socket (starting the daemon).
fn daemon_socket(sb: &Sandbox, root: &Path) -> PathBuf {
    sb.ok(root, &["daemon", "start"]);
    sb.daemon_socket(root)
}

/// A raw client: one connection, one request at a time.
struct Raw {
    sock: UnixStream,
}

impl Raw {
    fn connect(socket: &Path) -> Raw {
        let sock = UnixStream::connect(socket).unwrap();
        // A guard against a hung daemon, not a measurement.
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Raw { sock }
    }

    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.sock.write_all(frame)
    }

    /// The next reply: (errno, data); None when the daemon closed.
    fn reply(&mut self) -> Option<(i32, Vec<u8>)> {
        let mut buf = vec![0u8; 4];
        self.sock.read_exact(&mut buf).ok()?;
        let total = frame_len(&buf).ok()?;
        buf.resize(total, 0);
        self.sock.read_exact(&mut buf[4..]).ok()?;
        let r = decode_reply(&buf).ok()?;
        Some((r.errno, r.data.to_vec()))
    }

    fn ask(&mut self, req: &Request<'_>) -> Option<(i32, Vec<u8>)> {
        self.send(&frame(req)).ok()?;
        self.reply()
    }
}

fn frame(req: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME + 8];
    let n = encode_request(&mut buf, req).expect("fits a frame");
    buf.truncate(n);
    buf
}

fn req<'a>(op: Op, a: u64, b: u64, path1: &'a [u8], path2: &'a [u8]) -> Request<'a> {
    // A fresh request id per request (the daemon journals them).
    static ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x5eed_0000);
    Request {
        op,
        tid: 0,
        a,
        b,
        c: ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        path1,
        path2,
    }
}

fn ping(socket: &Path) -> bool {
    let Ok(sock) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(60)));
    let mut raw = Raw { sock };
    raw.ask(&req(Op::Ping, 0, 0, b"", b""))
        .is_some_and(|(e, d)| e == 0 && d == b"pong")
}

/// What can be seen of a directory tree from outside: each path's mode,
/// owner, size and mtime.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = fs::symlink_metadata(&d).unwrap();
        out.push(format!(
            "{} {:o} {}:{} {} {}.{}",
            d.display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ));
        if m.is_dir() {
            for e in fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_frames_act_only_inside_the_project() {
    build_shim();
    let sb = Sandbox::new();
    let outside = sb.mkdir("outside");
    fs::create_dir(outside.join("d")).unwrap();
    fs::write(outside.join("d/secret"), "s").unwrap();
    fs::set_permissions(outside.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    let root = sb.mkdir("p");
    fs::write(root.join("a.txt"), "a").unwrap();
    // A physical symlink in the project to a directory outside it (a
    // checkout may carry one).
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    sb.ok(&root, &["init"]);
    let socket = daemon_socket(&sb, &root);
    let state = root.join(".vrift");
    let state_mode = fs::metadata(&state).unwrap().mode();
    let before = snapshot(&outside);
    let store_before = snapshot(&sb.store());

    let mut c = Raw::connect(&socket);
    let long_target = vec![b'x'; 12_000];
    let long_name = vec![b'n'; 300];
    let deep: Vec<u8> = std::iter::repeat_n(&b"d/"[..], 2100)
        .flatten()
        .copied()
        .chain(*b"f")
        .collect();
    let creat = (libc::O_CREAT | libc::O_WRONLY) as u64;
    let attacks: Vec<(&str, Request<'_>)> = vec![
        (
            "chmod through a symlink",
            req(Op::Chmod, 0o777, 0, b"out/d", b""),
        ),
        (
            "chown through a symlink",
            req(Op::Chown, u32::MAX as u64, 4242, b"out/d", b""),
        ),
        (
            "utimes through a symlink",
            req(Op::Utimes, 1_000_000_000, 1_000_000_000, b"out/d", b""),
        ),
        (
            "mkdir through a symlink",
            req(Op::Mkdir, 0o777, 0, b"out/new", b""),
        ),
        (
            "rmdir through a symlink",
            req(Op::Rmdir, 0, 0, b"out/d", b""),
        ),
        (
            "open through a symlink",
            req(Op::OpenWrite, creat, 0o644, b"out/d/secret", b""),
        ),
        (
            "unlink through a symlink",
            req(Op::Unlink, 0, 0, b"out/d/secret", b""),
        ),
        (
            "truncate through a symlink",
            req(Op::Truncate, 0, 0, b"out/d/secret", b""),
        ),
        (
            "rename into a symlink",
            req(Op::Rename, 0, 0, b"a.txt", b"out/d/x"),
        ),
        (
            "rename out of a symlink",
            req(Op::Rename, 0, 0, b"out/d/secret", b"stolen"),
        ),
        (
            "link through a symlink",
            req(Op::Link, 0, 0, b"out/d/secret", b"stolen2"),
        ),
        (
            "symlink through a symlink",
            req(Op::Symlink, 0, 0, b"out/d/l", b"/etc"),
        ),
        ("chmod .vrift", req(Op::Chmod, 0o777, 0, b".vrift", b"")),
        (
            "mkdir in .vrift",
            req(Op::Mkdir, 0o755, 0, b".vrift/evil", b""),
        ),
        (
            "open in .vrift",
            req(Op::OpenWrite, creat, 0o644, b".vrift/evil2", b""),
        ),
        (
            "unlink in .vrift",
            req(Op::Unlink, 0, 0, b".vrift/view.table", b""),
        ),
        (
            "rename over .vrift",
            req(Op::Rename, 0, 0, b"a.txt", b".vrift/config.toml"),
        ),
        (
            "a 12,000-byte symlink target",
            req(Op::Symlink, 0, 0, b"long", &long_target),
        ),
        (
            "a name past NAME_MAX",
            req(Op::Mkdir, 0o755, 0, &long_name, b""),
        ),
        ("a path past PATH_MAX", req(Op::Mkdir, 0o755, 0, &deep, b"")),
        (
            "an absolute path",
            req(Op::Mkdir, 0o755, 0, b"/tmp/vrift-abs", b""),
        ),
        (
            "a dot-dot path",
            req(Op::Mkdir, 0o755, 0, b"../escape", b""),
        ),
    ];
    let mut failures = Vec::new();
    for (what, r) in &attacks {
        match c.ask(r) {
            Some((0, _)) => failures.push(format!("{what}: answered as done")),
            Some(_) => {}
            // Refused by closing the connection: fine, once more with a new one.
            None => c = Raw::connect(&socket),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(snapshot(&outside), before, "something outside changed");
    assert_eq!(
        fs::metadata(&state).unwrap().mode(),
        state_mode,
        ".vrift's mode changed"
    );
    assert!(!state.join("evil").exists());
    assert!(!Path::new("/tmp/vrift-abs").exists());
    assert!(!sb.path().join("escape").exists());
    // The store only gains what the project wrote (nothing here).
    assert_eq!(snapshot(&sb.store()).len(), store_before.len());
    // The view shows none of it either.
    let listing = sb.ok_in_view(&root, "ls -a . .vrift; cat a.txt; ls out/d");
    assert!(
        !listing.contains("stolen") && !listing.contains("evil"),
        "{listing}"
    );
    assert!(listing.contains("secret"), "{listing}");
    // And legitimate requests still work, the daemon unchanged.
    let pid = sb.daemon_pid(&root);
    assert_eq!(
        c.ask(&req(Op::Mkdir, 0o755, 0, b"fine", b"")).map(|r| r.0),
        Some(0)
    );
    assert!(root.join("fine").is_dir());
    assert_eq!(sb.daemon_pid(&root), pid);
    sb.ok(&root, &["daemon", "stop"]);
}

/// Issue 14, check-then-act: the daemon refuses a request path with a
/// physical symlink on the way, but a process of the user can swap a
/// directory for a symlink to outside between that check and the
/// operation. A thread here swaps `d` (a real directory) and a symlink to
/// a directory outside, atomically and without pause (RENAME_EXCHANGE),
/// while requests on `d/...` arrive; whatever each answers, nothing
/// outside is read or changed.
#[test]
fn a_directory_swapped_for_a_symlink_mid_request_never_leads_outside() {
    build_shim();
    let sb = Sandbox::new();
    let secret = format!("TOP-SECRET-{}\n", std::process::id());
    let outside = sb.mkdir("outside");
    let root = sb.mkdir("p");
    for dir in [&outside, &root.join("d")] {
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::create_dir_all(dir.join("gone")).unwrap();
        fs::set_permissions(dir.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
    }
    fs::write(outside.join("x"), &secret).unwrap();
    fs::write(root.join("d/x"), "inside\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("alt")).unwrap();
    sb.ok(&root, &["init"]);
    let socket = daemon_socket(&sb, &root);
    let before = snapshot(&outside);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (a, b) = (
            std::ffi::CString::new(root.join("d").as_os_str().as_encoded_bytes()).unwrap(),
            std::ffi::CString::new(root.join("alt").as_os_str().as_encoded_bytes()).unwrap(),
        );
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: two valid C strings.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
                swaps += 1;
            }
            swaps
        })
    };
    let rounds = iterations(2000);
    let mut c = Raw::connect(&socket);
    let creat = (libc::O_CREAT | libc::O_WRONLY) as u64;
    let mut done = 0;
    for i in 0..rounds {
        let name = format!("d/new{i}");
        let r = match i % 8 {
            0 => req(Op::Chmod, 0o777, 0, b"d/sub", b""),
            1 => req(Op::Chown, u32::MAX as u64, 4242, b"d/sub", b""),
            2 => req(Op::Utimes, 1_000_000_000, 1_000_000_000, b"d/sub", b""),
            3 => req(Op::Mkdir, 0o777, 0, name.as_bytes(), b""),
            4 => req(Op::Rmdir, 0, 0, b"d/gone", b""),
            5 => req(Op::OpenWrite, libc::O_WRONLY as u64, 0, b"d/x", b""),
            6 => req(Op::OpenWrite, creat, 0o644, name.as_bytes(), b""),
            _ => req(Op::Truncate, 3, 0, b"d/x", b""),
        };
        match c.ask(&r) {
            Some((0, _)) => done += 1,
            Some(_) => {}
            None => c = Raw::connect(&socket),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("{rounds} requests, {done} done, {swaps} swaps");
    assert!(swaps > 0);
    assert_eq!(snapshot(&outside), before, "something outside changed");
    // The same requests are served once `d` holds still as a directory.
    if fs::symlink_metadata(root.join("d")).unwrap().is_symlink() {
        fs::rename(root.join("d"), root.join("tmp")).unwrap();
        fs::rename(root.join("alt"), root.join("d")).unwrap();
        fs::rename(root.join("tmp"), root.join("alt")).unwrap();
    }
    assert_eq!(
        c.ask(&req(Op::Chmod, 0o750, 0, b"d/sub", b"")).map(|r| r.0),
        Some(0)
    );
    assert_eq!(
        fs::metadata(root.join("d/sub")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        c.ask(&req(Op::Mkdir, 0o755, 0, b"d/last", b""))
            .map(|r| r.0),
        Some(0)
    );
    assert!(root.join("d/last").is_dir());
    assert_eq!(snapshot(&outside), before, "something outside changed");
    // Nothing outside was read: no blob or staging file holds the secret.
    let mut leaked = Vec::new();
    let mut stack = vec![sb.store()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if fs::read(&p).is_ok_and(|b| b == secret.as_bytes()) {
                leaked.push(p);
            }
        }
    }
    assert!(leaked.is_empty(), "outside bytes copied in: {leaked:?}");
    assert!(ping(&socket));
    sb.ok(&root, &["daemon", "stop"]);
}

#[test]
fn a_store_inside_the_project_is_not_the_projects_to_change() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    fs::write(root.join("a.txt"), "a").unwrap();
    let store = root.join("store");
    let run = |args: &[&str]| {
        let out = sb
            .cmd(&root, args)
            .env("VR_THE_SOURCE", &store)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    run(&["init"]);
    run(&["daemon", "start"]);
    let status = run(&["daemon", "status"]);
    let socket = PathBuf::from(
        status
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("running on "))
            .unwrap(),
    );
    let before = snapshot(&store);
    let mut c = Raw::connect(&socket);
    for r in [
        req(Op::Chmod, 0o777, 0, b"store", b""),
        req(Op::Mkdir, 0o777, 0, b"store/evil", b""),
        req(Op::Utimes, 1_000_000_000, 1_000_000_000, b"store", b""),
        req(Op::Rename, 0, 0, b"a.txt", b"store/x"),
    ] {
        let got = c.ask(&r).map(|r| r.0);
        assert_ne!(
            got,
            Some(0),
            "{:?} {} answered as done",
            r.op,
            text(r.path1)
        );
        if got.is_none() {
            c = Raw::connect(&socket);
        }
    }
    assert_eq!(snapshot(&store), before, "the store changed");
    run(&["daemon", "stop"]);
}

/// Replies waiting unread in our socket's receive queue (FIONREAD).
fn unread(sock: &UnixStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD into our int.
    unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONREAD, &mut n) };
    n.max(0) as usize
}

#[test]
fn a_client_that_never_reads_its_replies_holds_up_nobody() {
    build_shim();
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    let socket = daemon_socket(&sb, &root);
    // 40,000 requests sent in one go by a client that reads none of the
    // replies until the end: far more replies than a socket buffer holds.
    const FLOOD: usize = 40_000;
    let one = frame(&req(Op::Ping, 0, 0, b"", b""));
    let all: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * FLOOD)
        .collect();
    let flood = UnixStream::connect(&socket).unwrap();
    let writer = flood.try_clone().unwrap();
    let sending = std::thread::spawn(move || (&writer).write_all(&all).is_ok());
    // Until the daemon has filled our receive queue and stopped.
    let mut last = 0;
    let mut same = 0;
    while same < 5 {
        std::thread::sleep(Duration::from_millis(100));
        let now = unread(&flood);
        if now == last && now > 0 {
            same += 1;
        } else {
            same = 0;
        }
        last = now;
    }
    // Another client's writes go through meanwhile.
    let out = sb.ok_in_view(
        &root,
        "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > f$i; done; cat f10",
    );
    assert_eq!(out, "10\n");
    // The flooder was held back, not dropped: once it reads, every one of
    // its requests is answered.
    flood
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut raw = Raw { sock: flood };
    let mut answered = 0;
    while answered < FLOOD {
        match raw.reply() {
            Some((0, d)) if d == b"pong" => answered += 1,
            other => panic!("reply {answered} of {FLOOD}: {other:?}"),
        }
    }
    assert!(sending.join().unwrap(), "the daemon took every request");
    assert!(ping(&socket));
    sb.ok(&root, &["daemon", "stop"]);
}

/// xorshift64*: a small deterministic generator (the seed is printed, and
/// `VRIFT_FUZZ_SEED` replays a run).
/// The fuzz tests' sequence: `VRIFT_FUZZ_SEED`, or a new seed (printed).
fn rng_from_env() -> Rng {
    let seed = std::env::var("VRIFT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("VRIFT_FUZZ_SEED={seed}");
    Rng(seed)
}

fn iterations(default: usize) -> usize {
    std::env::var("VRIFT_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const PATHS: &[&[u8]] = &[
    b"",
    b"a.txt",
    b"d",
    b"d/e",
    b"d/e/f.txt",
    b"new",
    b"out",
    b"out/d",
    b"out/d/secret",
    b".vrift",
    b".vrift/evil",
    b".vrift/view.table",
    b"..",
    b"../x",
    b"/etc/passwd",
    b"a//b",
    b"./a",
    b"a\0b",
    b"fifo",
];

/// A request a hostile client might send: a real operation (never Stop)
/// with chosen or random fields and paths.
fn random_request(rng: &mut Rng) -> Vec<u8> {
    let ops = [
        Op::OpenWrite,
        Op::Unlink,
        Op::Rmdir,
        Op::Mkdir,
        Op::Rename,
        Op::Symlink,
        Op::Link,
        Op::Chmod,
        Op::Chown,
        Op::Utimes,
        Op::Truncate,
        Op::Seal,
        Op::LinkTmp,
        Op::Ping,
        Op::Status,
        Op::FetchBlob,
    ];
    let op = ops[rng.index(ops.len())];
    let path = |rng: &mut Rng| -> Vec<u8> {
        match rng.below(4) {
            0 => rng.bytes(64),
            1 => vec![b'n'; rng.index(5000)],
            _ => PATHS[rng.index(PATHS.len())].to_vec(),
        }
    };
    let p1 = path(rng);
    let p2 = path(rng);
    let mut a = rng.next();
    let b = rng.next() & 0o7777;
    if matches!(op, Op::Truncate) {
        a %= 1 << 20; // a real file of that size gets hashed: keep it small
    }
    if matches!(op, Op::Chmod | Op::Mkdir) {
        a = 0o700 | (a & 0o7077); // never lock the test out of its own tree
    }
    if matches!(op, Op::Chown) {
        a = u32::MAX as u64;
    }
    frame(&Request {
        op,
        tid: rng.next() as u32,
        a,
        b,
        c: rng.next(),
        path1: &p1,
        path2: &p2,
    })
}

/// `frame` damaged the way a fuzzer would: bytes flipped, cut, extended,
/// the length word or a path length rewritten.
fn mutate(rng: &mut Rng, mut f: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !f.is_empty() => {
                let i = rng.index(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            1 if !f.is_empty() => {
                let i = rng.index(f.len());
                f.truncate(i);
            }
            2 => f.extend(rng.bytes(32)),
            3 if f.len() >= 4 => {
                let v = rng.next() as u32 % (2 * MAX_FRAME as u32);
                f[..4].copy_from_slice(&v.to_le_bytes());
            }
            4 if f.len() >= 36 => {
                let v = rng.next() as u32;
                f[32..36].copy_from_slice(&v.to_le_bytes());
            }
            _ if f.len() >= 6 => f[5] = rng.next() as u8,
            _ => {}
        }
    }
    f
}

#[test]
fn the_decoder_survives_any_bytes() {
    let mut rng = rng_from_env();
    for _ in 0..iterations(200_000) {
        let f = if rng.below(3) == 0 {
            rng.bytes(200)
        } else {
            {
                let r = random_request(&mut rng);
                mutate(&mut rng, r)
            }
        };
        if let Ok(n) = frame_len(&f) {
            assert!((4..=MAX_FRAME + 4).contains(&n));
        }
        let _ = vrift_format::proto::decode_request(&f);
        let _ = decode_reply(&f);
    }
    // And what is encoded decodes to itself.
    for _ in 0..iterations(20_000) {
        let p1 = rng.bytes(300);
        let p2 = rng.bytes(300);
        let r = Request {
            op: Op::from_u8(1 + rng.below(17) as u8).unwrap(),
            tid: rng.next() as u32,
            a: rng.next(),
            b: rng.next(),
            c: rng.next(),
            path1: &p1,
            path2: &p2,
        };
        let f = frame(&r);
        assert_eq!(vrift_format::proto::decode_request(&f), Ok(r));
    }
}

#[test]
fn the_daemon_survives_random_and_mutated_frames() {
    build_shim();
    let sb = Sandbox::new();
    let outside = sb.mkdir("outside");
    fs::create_dir(outside.join("d")).unwrap();
    fs::write(outside.join("d/secret"), "s").unwrap();
    let root = sb.mkdir("p");
    fs::write(root.join("a.txt"), "a").unwrap();
    fs::create_dir_all(root.join("d/e")).unwrap();
    fs::write(root.join("d/e/f.txt"), "f").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    sb.ok(&root, &["init"]);
    let socket = daemon_socket(&sb, &root);
    let pid = sb.daemon_pid(&root);
    let before = snapshot(&outside);
    let mut rng = rng_from_env();
    let mut c = Raw::connect(&socket);
    let (mut answered, mut dropped) = (0, 0);
    for i in 0..iterations(3_000) {
        let f = match rng.below(4) {
            0 => rng.bytes(100),
            1 => {
                let r = random_request(&mut rng);
                mutate(&mut rng, r)
            }
            _ => random_request(&mut rng),
        };
        let decoded = vrift_format::proto::decode_request(&f);
        if decoded.is_ok_and(|r| r.op == Op::Stop) {
            continue; // a stop is honoured: not what this test is about
        }
        let whole = frame_len(&f).is_ok_and(|n| n == f.len()) && decoded.is_ok();
        if c.send(&f).is_err() {
            dropped += 1;
            c = Raw::connect(&socket);
            continue;
        }
        if whole {
            match c.reply() {
                Some(_) => answered += 1,
                None => panic!("frame {i} ({f:?}): no answer to a well-formed request"),
            }
        } else {
            // A damaged frame: the daemon drops the connection (or waits
            // for the rest of it); either way, start again.
            dropped += 1;
            c = Raw::connect(&socket);
        }
    }
    eprintln!("{answered} answered, {dropped} connections dropped");
    assert!(answered > 0);
    assert!(ping(&socket), "the daemon stopped answering");
    assert_eq!(sb.daemon_pid(&root), pid, "the daemon was replaced");
    assert_eq!(snapshot(&outside), before, "something outside changed");
    // Random opens leave files staged that no process writes any more: the
    // daemon would wait for them; this one is ours to end.
    drop(c);
    if sb.run(&root, &["daemon", "stop"]).status.code() != Some(0) {
        let _ = std::process::Command::new("kill").arg(&pid).status();
    }
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+rwx"])
        .arg(&root)
        .status();
}
