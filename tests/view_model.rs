//! One model of the view: random trees (disk + rift records + whiteouts +
//! opaque/created marks + rift symlinks, chains and files over directories
//! included) read by every reader of the view — the shim in a real process,
//! the daemon's rift, the applets' vfs, the CLI's `view` — and by a plain
//! component-by-component reference model written here. Every path must be
//! classified, and every directory listed, the same way by all of them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use common::*;
use vrift::manifest::{Entry, Layer, Record};
use vrift::project::Project;
use vrift_format::{ContentHash, Kind, DIR_CREATED, DIR_OPAQUE, OWNER_INHERIT};

/// What a reader says a path is (lstat semantics: a final symlink is not
/// followed, those on the way are).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    File,
    Symlink,
    Dir(Vec<String>),
    Enoent,
    Enotdir,
    Eloop,
    /// The walk leaves the project (not compared).
    Outside,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

/// Every path of up to three of [`NAMES`].
fn all_paths() -> Vec<String> {
    let mut out = Vec::new();
    let mut layer = vec![String::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for p in &layer {
            for n in NAMES {
                let q = if p.is_empty() {
                    n.to_string()
                } else {
                    format!("{p}/{n}")
                };
                out.push(q.clone());
                next.push(q);
            }
        }
        layer = next;
    }
    out
}

/// A random state: the disk's directories and files, the rift's records
/// (only where the disk has the parent directory: directories are
/// physical) and directory marks (only on physical directories).
struct State {
    dirs: BTreeSet<String>,
    files: BTreeSet<String>,
    records: BTreeMap<String, Record>,
    marks: BTreeMap<String, u8>,
}

fn parent(p: &str) -> &str {
    p.rfind('/').map_or("", |i| &p[..i])
}

fn entry(kind: Kind, target: &str) -> Record {
    Record::Entry(Entry {
        kind,
        flags: 0,
        mode: if kind == Kind::Symlink {
            0o120777
        } else {
            0o100644
        },
        size: 1,
        mtime_ns: 1_000_000_000,
        ino: vrift_format::SYNTHETIC_INO_BASE + 1,
        hash: ContentHash::default(),
        target: target.as_bytes().to_vec(),
        uid: OWNER_INHERIT,
        gid: OWNER_INHERIT,
        atime_ns: 0,
        ctime_ns: 0,
        links: 0,
    })
}

fn random_state(r: &mut Rng) -> State {
    let paths = all_paths();
    let mut dirs = BTreeSet::new();
    let mut files = BTreeSet::new();
    for p in &paths {
        let par = parent(p);
        if !(par.is_empty() || dirs.contains(par)) {
            continue;
        }
        match r.below(4) {
            0 | 1 => {
                dirs.insert(p.clone());
            }
            2 => {
                files.insert(p.clone());
            }
            _ => {}
        }
    }
    let mut records = BTreeMap::new();
    for _ in 0..r.below(8) {
        let p = &paths[r.index(paths.len())];
        let par = parent(p);
        if !(par.is_empty() || dirs.contains(par)) {
            continue;
        }
        let rec = match r.below(4) {
            0 => Record::Whiteout,
            1 => entry(Kind::File, ""),
            _ => {
                // Relative, absolute-in-project, up-and-over, or dangling.
                let t = &paths[r.index(paths.len())];
                let target = match r.below(3) {
                    0 => t.clone(),
                    1 => format!("../{t}"),
                    _ => format!("{t}/zz"),
                };
                entry(Kind::Symlink, &target)
            }
        };
        // Whoever writes an entry over a physical directory marks it so
        // (the table makes it a stopping point).
        let rec = match rec {
            Record::Entry(mut e) if dirs.contains(p) => {
                e.flags |= vrift_format::FLAG_HIDES_DIR;
                Record::Entry(e)
            }
            other => other,
        };
        records.insert(p.clone(), rec);
    }
    let mut marks = BTreeMap::new();
    let dir_list: Vec<&String> = dirs.iter().collect();
    for _ in 0..r.below(4) {
        if dir_list.is_empty() {
            break;
        }
        let d = dir_list[r.index(dir_list.len())];
        marks.insert(d.clone(), 1 + r.below(3) as u8);
    }
    State {
        dirs,
        files,
        records,
        marks,
    }
}

impl State {
    /// The reference: the rules read component by component, as the
    /// kernel walks a path, following rift symlinks on the way.
    fn model(&self, path: &str) -> Seen {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut opaque = false;
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            match name.as_str() {
                "" | "." => continue,
                ".." => {
                    if cur.pop().is_none() {
                        return Seen::Outside;
                    }
                    // Leaving a directory: recompute what hides the disk.
                    opaque = self.opaque_at_or_above(&cur.join("/"), false);
                    continue;
                }
                _ => {}
            }
            cur.push(name);
            let p = cur.join("/");
            let last = pending.is_empty();
            match self.records.get(&p) {
                Some(Record::Whiteout) => return Seen::Enoent,
                Some(Record::Entry(e)) if e.kind == Kind::Symlink && !last => {
                    hops += 1;
                    if hops > 40 {
                        return Seen::Eloop;
                    }
                    cur.pop();
                    let t = String::from_utf8(e.target.clone()).unwrap();
                    for c in t.split('/').rev() {
                        pending.push(c.to_string());
                    }
                    opaque = self.opaque_at_or_above(&cur.join("/"), false);
                    continue;
                }
                Some(Record::Entry(e)) if last => {
                    return if e.kind == Kind::Symlink {
                        Seen::Symlink
                    } else {
                        Seen::File
                    }
                }
                Some(Record::Entry(_)) => return Seen::Enotdir,
                None => {}
            }
            let mark = self.marks.get(&p).copied().unwrap_or(0);
            if opaque && mark & DIR_CREATED == 0 {
                return Seen::Enoent;
            }
            if self.files.contains(&p) {
                return if last { Seen::File } else { Seen::Enotdir };
            }
            if !self.dirs.contains(&p) {
                // The disk lacks it; a rift file on the way would have
                // stopped the walk already.
                return Seen::Enoent;
            }
            if last {
                return Seen::Dir(self.model_list(&p));
            }
            opaque |= mark & DIR_OPAQUE != 0;
        }
        Seen::Dir(self.model_list(&cur.join("/")))
    }

    fn opaque_at_or_above(&self, dir: &str, _: bool) -> bool {
        let mut p = dir;
        while !p.is_empty() {
            if self.marks.get(p).is_some_and(|m| m & DIR_OPAQUE != 0) {
                return true;
            }
            p = parent(p);
        }
        false
    }

    fn model_list(&self, dir: &str) -> Vec<String> {
        let hidden = self.opaque_at_or_above(dir, true);
        let join = |n: &str| {
            if dir.is_empty() {
                n.to_string()
            } else {
                format!("{dir}/{n}")
            }
        };
        let mut out = Vec::new();
        for n in NAMES {
            let p = join(n);
            let shows = match self.records.get(&p) {
                Some(Record::Whiteout) => false,
                Some(Record::Entry(_)) => true,
                None => {
                    (self.dirs.contains(&p) || self.files.contains(&p))
                        && (!hidden || self.marks.get(&p).is_some_and(|m| m & DIR_CREATED != 0))
                }
            };
            if shows {
                out.push(n.to_string());
            }
        }
        out
    }

    /// Whether the walk to `path` meets a rift symlink on the way (the
    /// daemon never follows one: clients resolve them first).
    fn through_rift_symlink(&self, path: &str) -> bool {
        let mut p = path;
        loop {
            p = parent(p);
            if p.is_empty() {
                return false;
            }
            if matches!(self.records.get(p), Some(Record::Entry(e)) if e.kind == Kind::Symlink) {
                return true;
            }
        }
    }
}

/// Lays `state` out: the disk, the manifest, the published hot table.
fn lay_out(sb: &Sandbox, root: &Path, state: &State) -> Project {
    for d in &state.dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in &state.files {
        fs::write(root.join(f), "x").unwrap();
    }
    let project = Project::at(root).unwrap();
    let cas = vrift::cas::Cas::open(&sb.store()).unwrap();
    let manifest = project.manifest().unwrap();
    let txn = manifest.write().unwrap();
    for (p, rec) in &state.records {
        txn.put(Layer::Rift, p.as_bytes(), rec).unwrap();
    }
    for (p, m) in &state.marks {
        txn.set_dir_mark(p.as_bytes(), *m).unwrap();
    }
    txn.commit().unwrap();
    vrift::table::publish(&project, &cas, &manifest).unwrap();
    project
}

const PROBE: &str = r#"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        struct stat st;
        printf("%s ", argv[i]);
        if (lstat(argv[i], &st) != 0) { printf("%s\n", errno == ENOTDIR ? "ENOTDIR" : errno == ENOENT ? "ENOENT" : errno == ELOOP ? "ELOOP" : "other"); continue; }
        if (S_ISLNK(st.st_mode)) { printf("symlink\n"); continue; }
        if (!S_ISDIR(st.st_mode)) { printf("file\n"); continue; }
        DIR *d = opendir(argv[i]);
        if (!d) { printf("dir-unlistable\n"); continue; }
        char *names[64]; int n = 0; struct dirent *e;
        while ((e = readdir(d)) && n < 64)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
        closedir(d);
        qsort(names, n, sizeof *names, cmp);
        printf("dir");
        for (int k = 0; k < n; k++) printf(" %s", names[k]);
        printf("\n");
    }
    return 0;
}
"#;

fn parse_probe(line: &str) -> (String, Seen) {
    let mut words = line.split(' ');
    let path = words.next().unwrap().to_string();
    let seen = match words.next().unwrap() {
        "ENOENT" => Seen::Enoent,
        "ENOTDIR" => Seen::Enotdir,
        "ELOOP" => Seen::Eloop,
        "symlink" => Seen::Symlink,
        "file" => Seen::File,
        "dir" => Seen::Dir(words.map(str::to_string).collect()),
        other => panic!("probe: {other}"),
    };
    (path, seen)
}

fn cli_seen(project: &Project, path: &str) -> Seen {
    let manifest = project.manifest().unwrap();
    let txn = manifest.read().unwrap();
    let node = vrift::view::lookup(&txn, project, path.as_bytes()).unwrap();
    match node {
        vrift::view::Node::Entry(_, e) if e.kind == Kind::Symlink => Seen::Symlink,
        vrift::view::Node::Entry(..) => Seen::File,
        vrift::view::Node::Disk(m) if m.is_dir() => {
            let items = vrift::view::list_dir(&txn, project, path.as_bytes()).unwrap();
            Seen::Dir(
                items
                    .iter()
                    .map(|i| String::from_utf8(i.name.clone()).unwrap())
                    .filter(|n| n != ".vrift")
                    .collect(),
            )
        }
        vrift::view::Node::Disk(_) => Seen::File,
        vrift::view::Node::Absent => Seen::Enoent,
    }
}

struct NoDaemon;
impl vrift_coreutils::Connector for NoDaemon {
    fn connect(&self, _: &Path) -> std::io::Result<Box<dyn vrift_coreutils::Daemon>> {
        Err(std::io::Error::other("the model test sends no request"))
    }
}

fn vfs_seen(root: &Path, path: &str) -> Seen {
    let vfs = vrift_coreutils::vfs::Vfs::new(Some(root), &NoDaemon);
    match vfs.locate(&root.join(path), false) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Seen::Enotdir,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Seen::Enoent,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Seen::Eloop,
        Err(e) => panic!("vfs {path}: {e}"),
        Ok(loc) if !loc.exists() => Seen::Enoent,
        Ok(loc) if loc.is_dir() => Seen::Dir(
            vfs.read_dir(&loc)
                .unwrap()
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
        ),
        Ok(loc) => match &loc.node {
            vrift_coreutils::vfs::Node::Entry(h, _) if h.kind == Kind::Symlink => Seen::Symlink,
            vrift_coreutils::vfs::Node::Disk(m) if m.file_type().is_symlink() => Seen::Symlink,
            _ => Seen::File,
        },
    }
}

fn daemon_seen(rift: &vrift::daemon::rift::Rift, path: &str) -> Seen {
    use vrift::daemon::rift::Node;
    match rift.node(path.as_bytes()) {
        Node::Entry(h, _) if h.kind == Kind::Symlink => Seen::Symlink,
        Node::Entry(..) | Node::Phys(_) => Seen::File,
        Node::Absent => Seen::Enoent,
        Node::NotDir => Seen::Enotdir,
        Node::Dir => {
            let mut names: Vec<String> = rift
                .list(path.as_bytes())
                .into_iter()
                .map(|n| String::from_utf8(n).unwrap())
                .collect();
            names.sort();
            Seen::Dir(names)
        }
    }
}

#[test]
fn every_reader_of_the_view_agrees_with_the_reference_model() {
    assert!(
        has_cc() || std::env::var_os("CI").is_none(),
        "cc is missing"
    );
    if !has_cc() {
        skip("no C compiler");
        return;
    }
    build_shim();
    let sb = Sandbox::new();
    let probe = compile_c_source(&sb, "probe", PROBE);
    let paths = all_paths();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut checked = 0;
    for case in 0..40 {
        let state = random_state(&mut rng);
        let root = sb.mkdir(&format!("p{case}"));
        sb.ok(&root, &["init"]);
        let project = lay_out(&sb, &root, &state);
        let shim = sb
            .cmd(&root, &["run", "--"])
            .arg(&probe)
            .args(&paths)
            .env("VRIFT_DAEMON_IDLE", "1")
            .output()
            .unwrap();
        assert!(
            shim.status.success(),
            "{}",
            String::from_utf8_lossy(&shim.stderr)
        );
        let shim: BTreeMap<String, Seen> = String::from_utf8(shim.stdout)
            .unwrap()
            .lines()
            .map(parse_probe)
            .collect();
        let describe = || {
            format!(
                "case {case}: dirs {:?} files {:?} records {:?} marks {:?}",
                state.dirs,
                state.files,
                state
                    .records
                    .iter()
                    .map(|(k, r)| match r {
                        Record::Whiteout => format!("{k}=WH"),
                        Record::Entry(e) if e.kind == Kind::Symlink =>
                            format!("{k}->{}", String::from_utf8_lossy(&e.target)),
                        Record::Entry(_) => format!("{k}=F"),
                    })
                    .collect::<Vec<_>>(),
                state.marks
            )
        };
        for p in &paths {
            let want = state.model(p);
            if want == Seen::Outside {
                continue;
            }
            assert_eq!(shim[p], want, "shim at {p}\n{}", describe());
            // The CLI does not tell ENOTDIR or ELOOP from ENOENT (all:
            // absent).
            let cli_want = if matches!(want, Seen::Enotdir | Seen::Eloop) {
                Seen::Enoent
            } else {
                want.clone()
            };
            assert_eq!(
                cli_seen(&project, p),
                cli_want,
                "cli at {p}\n{}",
                describe()
            );
            assert_eq!(vfs_seen(&root, p), want, "vfs at {p}\n{}", describe());
            checked += 1;
        }
        // The daemon's rift, opened over the same manifest (it rebuilds
        // the same table): paths that need no symlink on the way.
        let cas = vrift::cas::Cas::open(&sb.store()).unwrap();
        let manifest = project.manifest().unwrap();
        let id = vrift::daemon::live::Identity {
            root: root.as_os_str().as_bytes().to_vec(),
            cas_root: sb.store().as_os_str().as_bytes().to_vec(),
            socket: Vec::new(),
            exe: Vec::new(),
            verify: false,
        };
        let rift = vrift::daemon::rift::Rift::open(Project::at(&root).unwrap(), cas, manifest, id)
            .unwrap();
        for p in paths.iter().filter(|p| !state.through_rift_symlink(p)) {
            if state.model(p) == Seen::Outside {
                continue;
            }
            assert_eq!(
                daemon_seen(&rift, p),
                state.model(p),
                "daemon at {p}\n{}",
                describe()
            );
        }
        drop(rift);
        // No daemon of this test lingers on the next case's files.
        let _ = Command::new(VRIFT)
            .args(["daemon", "stop"])
            .current_dir(&root)
            .env("HOME", sb.home())
            .env("VR_THE_SOURCE", sb.store())
            .output();
    }
    assert!(checked > 1000);
}

/// `sh -c SCRIPT` in the view of `root`; asserts success.
fn in_view(sb: &Sandbox, root: &Path, script: &str) -> String {
    build_shim();
    let out = sb.sh_in_view(root, script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_directory_the_disk_had_is_never_removed_by_rmdir_mkdir_or_discard() {
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    fs::create_dir_all(root.join("p/empty")).unwrap();
    fs::create_dir_all(root.join("q/empty")).unwrap();
    sb.ok(&root, &["init"]);
    in_view(&sb, &root, "rmdir p/empty && mkdir p/empty");
    in_view(
        &sb,
        &root,
        "rmdir q/empty && mkdir q/empty && rmdir q/empty",
    );
    assert!(
        root.join("q/empty").is_dir(),
        "rmdir removed a physical dir"
    );
    assert_eq!(
        in_view(&sb, &root, "ls -d p/empty; test -e q/empty || echo gone"),
        "p/empty\ngone\n"
    );
    sb.ok(&root, &["discard", "--yes"]);
    assert!(
        root.join("p/empty").is_dir(),
        "discard removed a physical dir"
    );
    assert!(
        root.join("q/empty").is_dir(),
        "discard removed a physical dir"
    );
    // The view is the disk again.
    assert_eq!(
        in_view(&sb, &root, "ls -d p/empty q/empty"),
        "p/empty\nq/empty\n"
    );
    // A directory the rift made still goes with a discard.
    in_view(&sb, &root, "mkdir made");
    assert!(root.join("made").is_dir());
    sb.ok(&root, &["discard", "--yes"]);
    assert!(!root.join("made").exists());
}

#[test]
fn a_directory_emptied_and_made_again_is_diffed_and_materialized() {
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/f"), "f").unwrap();
    fs::write(root.join("d/sub/g"), "g").unwrap();
    fs::write(root.join("keep"), "k").unwrap();
    sb.ok(&root, &["init"]);
    in_view(&sb, &root, "rm -rf d && mkdir d && echo new > d/n");
    assert_eq!(in_view(&sb, &root, "ls -A d"), "n\n");
    let diff = sb.ok(&root, &["diff"]);
    assert_eq!(diff, "D d/f\nA d/n\nD d/sub/g\n", "{diff}");
    let listing = sb.ok(&root, &["ls", "d"]);
    assert!(
        listing.contains('n') && !listing.contains("sub"),
        "{listing}"
    );
    sb.ok(&root, &["materialize"]);
    let mut names: Vec<String> = fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["n"]);
    assert_eq!(fs::read_to_string(root.join("d/n")).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(root.join("keep")).unwrap(), "k");
    assert_eq!(sb.ok(&root, &["diff"]), "");
}

#[test]
fn materialize_keeps_a_symlinks_recorded_mtime() {
    let sb = Sandbox::new();
    let root = sb.mkdir("proj");
    sb.ok(&root, &["init"]);
    in_view(&sb, &root, "ln -s somewhere l && touch -h -d @1000000000 l");
    sb.ok(&root, &["materialize"]);
    let m = fs::symlink_metadata(root.join("l")).unwrap();
    assert!(m.file_type().is_symlink());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(m.mtime(), 1_000_000_000);
}
