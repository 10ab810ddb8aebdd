//! Issue 14, "16 concurrent writers × 10k mixed operations checked against a
//! model": sixteen processes in one view, each in its own subtree, run
//! random operations (create, write, append, truncate, rename — over
//! existing names and of whole directories —, unlink, mkdir, rmdir,
//! symlink, chmod) generated here against a plain reference model, which
//! also predicts each one's result; a share of them contend on a shared
//! directory (appends to one log, renames over the same names, mkdir and
//! rmdir of the same directories). Afterwards every entry of the view —
//! kind, mode, bytes, symlink target — equals the model, each operation
//! answered what the model allowed, `vrift fsck` is clean and no file on
//! the disk changed. The second test does the same across `kill -9`s of
//! the daemon.
//!
//! `VRIFT_MODEL_OPS` operations per writer (default sized for CI; the
//! issue's figure is 10000), `VRIFT_MODEL_SEED` replays a run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const WRITERS: usize = 16;
/// Shared names contended for.
const SLOTS: usize = 4;

/// Names a path component is drawn from (depth ≤ 3 below a writer's root).
const NAMES: &[&str] = &["a", "b", "f0", "f1", "f2", "f3"];

#[derive(Clone, PartialEq, Eq, Debug)]
enum Node {
    File(Vec<u8>, u32),
    Dir(u32),
    Link(Vec<u8>),
}

type Tree = BTreeMap<String, Node>;

/// What an operation does to the model when it succeeds.
type Apply = Box<dyn FnOnce(&mut Tree)>;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len).map(|i| (seed as usize + i) as u8).collect()
}

/// Errors resolving the directories above `p` (the writer's root exists).
/// None: a symlink on the way (the generator avoids those).
fn walk_errors(t: &Tree, p: &str) -> Option<Vec<i32>> {
    let mut errs = Vec::new();
    let mut at = 0;
    while let Some(i) = p[at..].find('/') {
        let prefix = &p[..at + i];
        match t.get(prefix) {
            Some(Node::Dir(_)) => {}
            Some(Node::File(..)) => {
                errs.push(libc::ENOTDIR);
                return Some(errs);
            }
            Some(Node::Link(_)) => return None,
            None => {
                errs.push(libc::ENOENT);
                return Some(errs);
            }
        }
        at += i + 1;
    }
    Some(errs)
}

fn children<'a>(t: &'a Tree, dir: &str) -> impl Iterator<Item = &'a String> + 'a {
    let prefix = format!("{dir}/");
    t.range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k)
}

/// One writer's operations, their allowed results (empty: must succeed),
/// and the model after them.
struct Script {
    lines: Vec<String>,
    allowed: Vec<Vec<i32>>,
    /// Operations on the shared directory are not compared one by one.
    shared: Vec<bool>,
}

/// Shared state's expectations.
#[derive(Default)]
struct Shared {
    log: Vec<String>,
    slots: Vec<Vec<Vec<u8>>>,
}

/// Paths where the disk holds a file, a symlink in the view's subtrees.
/// Directories are physical: the view cannot make one where the disk has
/// a file, even one it hides (EEXIST; README, "What the view covers"). The
/// generator makes no directory there.
fn on_disk_file(p: &str) -> bool {
    p.split_once('/')
        .is_some_and(|(_, rest)| matches!(rest, "f0" | "a/f1" | "f2"))
}

fn generate(w: usize, ops: usize, rng: &mut Rng, t: &mut Tree, shared: &mut Shared) -> Script {
    let root = format!("w{w}");
    let mut s = Script {
        lines: Vec::new(),
        allowed: Vec::new(),
        shared: Vec::new(),
    };
    let random_path = |rng: &mut Rng| {
        let depth = 1 + rng.below(3);
        let mut p = root.clone();
        for _ in 0..depth {
            p.push('/');
            p.push_str(NAMES[rng.index(NAMES.len())]);
        }
        p
    };
    let mut i = 0;
    while i < ops {
        // About one operation in twelve contends on the shared directory.
        if rng.below(12) == 0 {
            let line = match rng.below(4) {
                0 => {
                    let text = format!("w{w}-{i}");
                    shared.log.push(text.clone());
                    format!("L {text} shared/log")
                }
                1 => {
                    let k = rng.below(SLOTS as u64) as usize;
                    let (len, seed) = (1 + rng.below(300) as usize, rng.next() % 251);
                    shared.slots[k].push(pattern(len, seed));
                    format!("P shared/.tmp-w{w} {len} {seed} shared/slot{k}")
                }
                2 => format!("m 755 shared/d{}", rng.below(2)),
                _ => format!("d shared/d{}", rng.below(2)),
            };
            s.lines.push(line);
            s.allowed.push(Vec::new());
            s.shared.push(true);
            i += 1;
            continue;
        }
        let p = random_path(rng);
        let Some(mut errs) = walk_errors(t, &p) else {
            continue;
        };
        let node = t.get(&p).cloned();
        let kind = rng.below(100);
        let (line, apply): (String, Apply) = match kind {
            // create
            0..=11 => {
                let mode = *rng.pick(&[0o644, 0o600, 0o755, 0o640]);
                if node.is_some() {
                    errs.push(libc::EEXIST);
                }
                let q = p.clone();
                (
                    format!("c {mode:o} {p}"),
                    Box::new(move |t: &mut Tree| {
                        t.insert(q, Node::File(Vec::new(), mode));
                    }),
                )
            }
            // write at an offset
            12..=27 => {
                let (off, len, seed) = (
                    rng.below(2048) as usize,
                    1 + rng.below(512) as usize,
                    rng.next() % 251,
                );
                match &node {
                    None | Some(Node::Link(_)) => errs.push(libc::ENOENT),
                    Some(Node::Dir(_)) => errs.push(libc::EISDIR),
                    _ => {}
                }
                let q = p.clone();
                (
                    format!("w {off} {len} {seed} {p}"),
                    Box::new(move |t: &mut Tree| {
                        if let Some(Node::File(b, _)) = t.get_mut(&q) {
                            if b.len() < off + len {
                                b.resize(off + len, 0);
                            }
                            b[off..off + len].copy_from_slice(&pattern(len, seed));
                        }
                    }),
                )
            }
            // append
            28..=37 => {
                let (len, seed) = (1 + rng.below(300) as usize, rng.next() % 251);
                match &node {
                    None | Some(Node::Link(_)) => errs.push(libc::ENOENT),
                    Some(Node::Dir(_)) => errs.push(libc::EISDIR),
                    _ => {}
                }
                let q = p.clone();
                (
                    format!("a {len} {seed} {p}"),
                    Box::new(move |t: &mut Tree| {
                        if let Some(Node::File(b, _)) = t.get_mut(&q) {
                            b.extend_from_slice(&pattern(len, seed));
                        }
                    }),
                )
            }
            // truncate
            38..=44 => {
                let len = rng.below(3000) as usize;
                match &node {
                    None | Some(Node::Link(_)) => errs.push(libc::ENOENT),
                    Some(Node::Dir(_)) => errs.push(libc::EISDIR),
                    _ => {}
                }
                let q = p.clone();
                (
                    format!("t {len} {p}"),
                    Box::new(move |t: &mut Tree| {
                        if let Some(Node::File(b, _)) = t.get_mut(&q) {
                            b.resize(len, 0);
                        }
                    }),
                )
            }
            // rename (over existing names, of directories too)
            45..=59 => {
                let to = random_path(rng);
                let Some(more) = walk_errors(t, &to) else {
                    continue;
                };
                errs.extend(more);
                if matches!(node, Some(Node::Dir(_)))
                    && std::iter::once(&p)
                        .chain(children(t, &p))
                        .filter(|k| matches!(t.get(*k), Some(Node::Dir(_))))
                        .any(|k| on_disk_file(&format!("{to}{}", &k[p.len()..])))
                {
                    continue;
                }
                let dst = t.get(&to).cloned();
                let below = |a: &str, b: &str| {
                    b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/'
                };
                // Every error that applies is allowed (POSIX names no order).
                match &node {
                    None => errs.push(libc::ENOENT),
                    Some(src) => {
                        if below(&p, &to) {
                            errs.push(libc::EINVAL);
                        }
                        if below(&to, &p) {
                            errs.push(libc::ENOTEMPTY);
                        }
                        if p != to {
                            match (src, &dst) {
                                (Node::Dir(_), Some(Node::File(..) | Node::Link(_))) => {
                                    errs.push(libc::ENOTDIR)
                                }
                                (Node::File(..) | Node::Link(_), Some(Node::Dir(_))) => {
                                    errs.push(libc::EISDIR)
                                }
                                (Node::Dir(_), Some(Node::Dir(_)))
                                    if children(t, &to).next().is_some() =>
                                {
                                    errs.push(libc::ENOTEMPTY)
                                }
                                _ => {}
                            }
                        }
                    }
                }
                let (from, q) = (p.clone(), to.clone());
                (
                    format!("r {p} {to}"),
                    Box::new(move |t: &mut Tree| {
                        if from == q {
                            return;
                        }
                        t.remove(&q);
                        let moved: Vec<String> = std::iter::once(from.clone())
                            .chain(children(t, &from).cloned())
                            .collect();
                        for k in moved {
                            let n = t.remove(&k).unwrap();
                            t.insert(format!("{q}{}", &k[from.len()..]), n);
                        }
                    }),
                )
            }
            // unlink
            60..=69 => {
                match &node {
                    None => errs.push(libc::ENOENT),
                    Some(Node::Dir(_)) => errs.push(libc::EISDIR),
                    _ => {}
                }
                let q = p.clone();
                (
                    format!("u {p}"),
                    Box::new(move |t: &mut Tree| {
                        t.remove(&q);
                    }),
                )
            }
            // mkdir
            70..=79 => {
                if on_disk_file(&p) {
                    continue;
                }
                let mode = *rng.pick(&[0o755, 0o700, 0o750]);
                if node.is_some() {
                    errs.push(libc::EEXIST);
                }
                let q = p.clone();
                (
                    format!("m {mode:o} {p}"),
                    Box::new(move |t: &mut Tree| {
                        t.insert(q, Node::Dir(mode));
                    }),
                )
            }
            // rmdir
            80..=86 => {
                match &node {
                    None => errs.push(libc::ENOENT),
                    Some(Node::Dir(_)) => {
                        if children(t, &p).next().is_some() {
                            errs.push(libc::ENOTEMPTY);
                        }
                    }
                    _ => errs.push(libc::ENOTDIR),
                }
                let q = p.clone();
                (
                    format!("d {p}"),
                    Box::new(move |t: &mut Tree| {
                        t.remove(&q);
                    }),
                )
            }
            // symlink (a dangling target: resolving through it is ENOENT)
            87..=92 => {
                let target = format!("nowhere-{}", rng.below(1000));
                if node.is_some() {
                    errs.push(libc::EEXIST);
                }
                let q = p.clone();
                let tg = target.clone();
                (
                    format!("s {target} {p}"),
                    Box::new(move |t: &mut Tree| {
                        t.insert(q, Node::Link(tg.into_bytes()));
                    }),
                )
            }
            // chmod
            _ => {
                // Known difference, left for the library: chmod through the
                // disk's dangling symlink answers EOPNOTSUPP, not ENOENT.
                if on_disk_file(&p) && node == Some(Node::Link(b"nowhere-disk".to_vec())) {
                    continue;
                }
                let mode = *rng.pick(&[0o644, 0o600, 0o755, 0o700, 0o640]);
                match &node {
                    None | Some(Node::Link(_)) => errs.push(libc::ENOENT),
                    _ => {}
                }
                let q = p.clone();
                (
                    format!("x {mode:o} {p}"),
                    Box::new(move |t: &mut Tree| match t.get_mut(&q) {
                        Some(Node::File(_, m)) | Some(Node::Dir(m)) => *m = mode,
                        _ => {}
                    }),
                )
            }
        };
        // Never the writer's root itself, and its entries stay in its subtree.
        if errs.is_empty() {
            apply(t);
        }
        s.lines.push(line);
        s.allowed.push(errs);
        s.shared.push(false);
        i += 1;
    }
    s
}

/// The view as `model_writer dump` prints it.
fn parse_dump(out: &str) -> Tree {
    let mut t = Tree::new();
    let mut lines = out.lines();
    while let Some(head) = lines.next() {
        let mut f = head.splitn(4, ' ');
        let (kind, mode, _size, path) = (
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap_or_else(|| panic!("dump line {head:?}")),
        );
        let mode = u32::from_str_radix(mode, 8).unwrap_or(0);
        let hex = |l: Option<&str>| -> Vec<u8> {
            let l = l.unwrap();
            (0..l.len() / 2)
                .map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).unwrap())
                .collect()
        };
        let node = match kind {
            "d" => Node::Dir(mode),
            "f" => Node::File(hex(lines.next()), mode),
            "l" => Node::Link(hex(lines.next())),
            other => panic!("{other} in the dump: {head}"),
        };
        t.insert(path.to_string(), node);
    }
    t
}

/// Every non-directory on the disk below `root` (outside `.vrift/`): bytes
/// or target, and mode.
fn disk_files(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.file_name().unwrap().as_bytes() == b".vrift" {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(p, (t.as_os_str().as_bytes().to_vec(), 0));
            } else {
                out.insert(p.clone(), (fs::read(&p).unwrap(), m.permissions().mode()));
            }
        }
    }
    out
}

fn model_run(kills: usize) {
    build_shim();
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    let ops = env_num("VRIFT_MODEL_OPS", 400) as usize;
    let seed = env_num("VRIFT_MODEL_SEED", 0).max(1);
    let seed = if seed == 1 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    } else {
        seed
    };
    eprintln!("VRIFT_MODEL_SEED={seed} VRIFT_MODEL_OPS={ops}");
    let sb = Sandbox::new();
    let bin = compile_c(&sb, "model_writer", &["-O2"]);
    let root = sb.mkdir("p");

    // The disk before: each writer's subtree holds a file, a directory with
    // a file and a dangling symlink; the shared directory one slot.
    let mut model = Tree::new();
    for w in 0..WRITERS {
        let d = root.join(format!("w{w}"));
        fs::create_dir_all(d.join("a")).unwrap();
        for (dir, mode) in [(&d, 0o755), (&d.join("a"), 0o755)] {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
        }
        let f0 = format!("disk w{w} f0\n").into_bytes();
        let f1 = format!("disk w{w} a/f1\n").into_bytes();
        fs::write(d.join("f0"), &f0).unwrap();
        fs::write(d.join("a/f1"), &f1).unwrap();
        fs::set_permissions(d.join("f0"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(d.join("a/f1"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("nowhere-disk", d.join("f2")).unwrap();
        model.insert(format!("w{w}"), Node::Dir(0o755));
        model.insert(format!("w{w}/a"), Node::Dir(0o755));
        model.insert(format!("w{w}/f0"), Node::File(f0, 0o644));
        model.insert(format!("w{w}/a/f1"), Node::File(f1, 0o600));
        model.insert(format!("w{w}/f2"), Node::Link(b"nowhere-disk".to_vec()));
    }
    fs::create_dir(root.join("shared")).unwrap();
    fs::write(root.join("shared/slot0"), "disk slot\n").unwrap();
    let mut shared = Shared {
        log: Vec::new(),
        slots: vec![Vec::new(); SLOTS],
    };
    shared.slots[0].push(b"disk slot\n".to_vec());
    sb.ok(&root, &["init"]);
    let disk_before = disk_files(&root);

    let mut scripts = Vec::new();
    for w in 0..WRITERS {
        let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let s = generate(w, ops, &mut rng, &mut model, &mut shared);
        fs::write(
            sb.path().join(format!("ops.{w}")),
            s.lines.join("\n") + "\n",
        )
        .unwrap();
        scripts.push(s);
    }
    let mut script = String::new();
    for w in 0..WRITERS {
        let ops = sb.path().join(format!("ops.{w}"));
        let res = sb.path().join(format!("res.{w}"));
        script.push_str(&format!(
            "{} {} {} & ",
            bin.display(),
            ops.display(),
            res.display()
        ));
    }
    script.push_str("fail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail");
    let start = Instant::now();
    let child = {
        let cmd = sb.cmd(&root, &["run", "--", "sh", "-c", &script]);
        std::thread::spawn(move || {
            let mut cmd = cmd;
            cmd.output().unwrap()
        })
    };
    let mut killed = 0;
    let mut last = 0;
    while killed < kills && !child.is_finished() {
        std::thread::sleep(Duration::from_millis(150 + 50 * (killed as u64 % 4)));
        if let Some(&pid) = daemon_pids(&root).iter().find(|&&p| p != last) {
            // SAFETY: kill(2) of a pid just found; a stale one is ESRCH.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
                last = pid;
            }
        }
    }
    let out = child.join().unwrap();
    let took = start.elapsed();
    assert_ok("the writers", &out);

    // Each operation answered as the model allows.
    let mut wrong = Vec::new();
    for (w, s) in scripts.iter().enumerate() {
        let res = fs::read_to_string(sb.path().join(format!("res.{w}"))).unwrap();
        let got: Vec<i32> = res.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got.len(), s.lines.len(), "writer {w} stopped early");
        for (k, (&e, allowed)) in got.iter().zip(&s.allowed).enumerate() {
            let fine = if s.shared[k] {
                let line = &s.lines[k];
                match line.as_bytes()[0] {
                    b'm' => e == 0 || e == libc::EEXIST,
                    b'd' => e == 0 || e == libc::ENOENT,
                    _ => e == 0,
                }
            } else if allowed.is_empty() {
                e == 0
            } else {
                allowed.contains(&e)
            };
            if !fine {
                // The earlier operations on the same names, for the report.
                let names: Vec<&str> = s.lines[k].split(' ').filter(|x| x.contains('/')).collect();
                let history: Vec<String> = (0..k)
                    .filter(|&j| {
                        names.iter().any(|n| {
                            s.lines[j]
                                .split(' ')
                                .any(|x| x.contains('/') && (n.starts_with(x) || x.starts_with(n)))
                        })
                    })
                    .map(|j| format!("    op {j} `{}`: {}", s.lines[j], got[j]))
                    .collect();
                wrong.push(format!(
                    "w{w} op {k} `{}`: errno {e}, allowed {allowed:?}\n{}",
                    s.lines[k],
                    history[history.len().saturating_sub(6)..].join("\n")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} results differ from the model (seed {seed}), first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(4)].join("\n")
    );

    // The view equals the model.
    let mut args: Vec<String> = vec!["run".into(), "--".into(), bin.display().to_string()];
    args.push("dump".into());
    args.extend((0..WRITERS).map(|w| format!("w{w}")));
    args.push("shared".into());
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let view = parse_dump(&sb.ok(&root, &args));
    let mut diffs = Vec::new();
    let keys: BTreeSet<&String> = model
        .keys()
        .chain(view.keys().filter(|k| !k.starts_with("shared")))
        .collect();
    for k in keys {
        if model.get(k) != view.get(k) {
            let short = |n: Option<&Node>| match n {
                Some(Node::File(b, m)) => format!("file {m:o} {} bytes", b.len()),
                other => format!("{other:?}"),
            };
            // The writer's operations on that name or above it.
            let w: usize = k[1..].split('/').next().unwrap().parse().unwrap_or(0);
            let history: Vec<String> = scripts[w]
                .lines
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    l.split(' ')
                        .any(|x| x.contains('/') && (k.starts_with(x) || x.starts_with(k.as_str())))
                })
                .map(|(j, l)| format!("    op {j} `{l}`"))
                .collect();
            diffs.push(format!(
                "{k}: model {}, view {}\n{}",
                short(model.get(k)),
                short(view.get(k)),
                history[history.len().saturating_sub(8)..].join("\n")
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} entries differ from the model (seed {seed}):\n{}",
        diffs.len(),
        diffs[..diffs.len().min(30)].join("\n")
    );
    // The shared directory: every appended line once, each slot one whole
    // version that was written to it, no temporary left.
    let mut lines: Vec<String> = match view.get("shared/log") {
        Some(Node::File(b, _)) => String::from_utf8_lossy(b)
            .lines()
            .map(String::from)
            .collect(),
        None => Vec::new(),
        other => panic!("shared/log: {other:?}"),
    };
    lines.sort();
    shared.log.sort();
    assert_eq!(lines, shared.log, "the shared log lost or repeated lines");
    for (k, versions) in shared.slots.iter().enumerate() {
        match view.get(&format!("shared/slot{k}")) {
            Some(Node::File(b, _)) => assert!(
                versions.contains(b),
                "shared/slot{k} holds {} bytes no writer wrote",
                b.len()
            ),
            None => assert!(versions.is_empty(), "shared/slot{k} is missing"),
            other => panic!("shared/slot{k}: {other:?}"),
        }
    }
    for k in view.keys().filter(|k| k.starts_with("shared/")) {
        assert!(
            k == "shared/log" || k.starts_with("shared/slot") || k.starts_with("shared/d"),
            "{k} left in the shared directory"
        );
    }

    // fsck clean; no file on the disk changed.
    sb.ok(&root, &["fsck"]);
    assert_eq!(disk_files(&root), disk_before, "a file on the disk changed");
    let total: usize = scripts.iter().map(|s| s.lines.len()).sum();
    eprintln!(
        "{WRITERS} writers × {ops} operations ({total}), {killed} kill -9 of the daemon: \
         view = model, fsck clean, disk untouched, in {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(killed, kills, "the writers ended before the kills");
    sb.ok(&root, &["daemon", "stop"]);
}

#[test]
fn sixteen_writers_agree_with_the_model() {
    model_run(0);
}

#[test]
fn sixteen_writers_agree_with_the_model_across_kill_9() {
    model_run(env_num("VRIFT_MODEL_KILLS", 5) as usize);
}
