//! `cargo xtask bench ingest`: ingest and snapshot timings on a large tree,
//! each beside a baseline that does comparable work with coreutils.
//!
//! All timings are wall-clock times of whole processes, with a warm page
//! cache (the tree was just written) and dirty pages flushed before each one.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::gen::{Tree, TreeSpec};
use crate::sandbox::{copy_tree, print_output, sync, time_output, Sandbox, Vrift};
use crate::{cargo, compare, rift};

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Benchmark a copy (cp -a) of this real tree instead of a generated one.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["files", "size_mb", "dup_percent", "seed"])]
    path: Option<PathBuf>,
    /// Regular files to generate (symlinks come on top).
    #[arg(long, value_name = "N", default_value_t = 70_000)]
    files: usize,
    /// Total size of the generated files, in MB (10^6 bytes).
    #[arg(long, value_name = "M", default_value_t = 750)]
    size_mb: u64,
    /// Percentage of files that duplicate another file's content.
    #[arg(long, value_name = "P", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=90))]
    dup_percent: u32,
    /// Seed of the generator (the same seed gives the same tree).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Create the bench directory below DIR (default: $TMPDIR or /tmp).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the bench directory afterwards.
    #[arg(long)]
    keep: bool,
    /// Runs of each snapshot command; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    snapshot_runs: u64,
}

const FIRST_INGEST_TARGET: Duration = Duration::from_secs(4);
const SECOND_INGEST_TARGET: Duration = Duration::from_secs(2);
const SNAPSHOT_TARGET: Duration = Duration::from_millis(150);

pub fn ingest(args: IngestArgs) -> Result<()> {
    let bin = cargo::build_release_vrift()?;
    let sandbox = Sandbox::create(args.dir.as_deref(), "vrift-bench-")?;
    println!("bench directory: {}", sandbox.path().display());
    let vrift = Vrift::new(bin, &sandbox);
    let result = IngestBench::new(&args, &vrift, &sandbox).run();
    if result.is_err() && !args.keep {
        eprintln!("xtask: rerun with --keep to inspect the bench directory");
    }
    println!("cleaning up…");
    let cleanup = sandbox.finish(args.keep);
    result?;
    cleanup
}

/// What the tree holds, hence what ingest must record.
struct Workload {
    files: u64,
    symlinks: u64,
    bytes: u64,
    /// Distinct contents, when known (generated trees).
    unique: Option<u64>,
}

impl Workload {
    fn entries(&self) -> u64 {
        self.files + self.symlinks
    }
}

struct IngestBench<'a> {
    args: &'a IngestArgs,
    vrift: &'a Vrift<'a>,
    store: PathBuf,
    /// Projects: A ingests the tree first, B an identical copy of it.
    a: PathBuf,
    b: PathBuf,
    /// Scratch space for the `cp -al` baseline.
    scratch: PathBuf,
}

/// A measured figure with what it is compared against.
struct Row {
    what: String,
    time: Duration,
    target: Option<Duration>,
    baseline: Option<(String, Duration)>,
}

impl<'a> IngestBench<'a> {
    fn new(args: &'a IngestArgs, vrift: &'a Vrift<'a>, sandbox: &Sandbox) -> IngestBench<'a> {
        IngestBench {
            args,
            vrift,
            store: sandbox.store().to_path_buf(),
            a: sandbox.path().join("a"),
            b: sandbox.path().join("b"),
            scratch: sandbox.path().join("scratch"),
        }
    }

    fn run(&self) -> Result<()> {
        let work = self.prepare_tree()?;
        let mut rows = self.baselines()?;
        let (cp_a, cp_al) = (rows[0].time, rows[1].time);

        let first = self.time_ingest(&self.a, "first ingest (new blobs)")?;
        rows.push(row(
            "vrift ingest: first",
            first,
            FIRST_INGEST_TARGET,
            ("cp -a", cp_a),
        ));
        let second = self.time_ingest(&self.b, "ingest of an identical copy (blobs exist)")?;
        rows.push(row(
            "vrift ingest: identical copy",
            second,
            SECOND_INGEST_TARGET,
            ("cp -al", cp_al),
        ));

        let mirrored = self.fill_rift()?;
        self.wait_for_reaper();
        rows.extend(self.snapshot_rows(mirrored)?);

        print_table(&rows);
        print_throughput(&work, first, cp_a);
        self.verify(&work)
    }

    /// Creates project A's node_modules (generated, or a copy of --path).
    fn prepare_tree(&self) -> Result<Workload> {
        let tree_dir = self.a.join("node_modules");
        fs::create_dir_all(&self.a)?;
        fs::write(self.a.join("package.json"), "{ \"name\": \"bench\" }\n")?;
        let work = match &self.args.path {
            Some(src) => copy_real_tree(src, &tree_dir)?,
            None => self.generate(&tree_dir)?,
        };
        ensure!(work.entries() > 0, "the tree to ingest is empty");
        Ok(work)
    }

    fn generate(&self, dest: &Path) -> Result<Workload> {
        let spec = TreeSpec {
            files: self.args.files,
            bytes: self.args.size_mb * 1_000_000,
            dup_percent: self.args.dup_percent,
            seed: self.args.seed,
        };
        let tree = Tree::plan(&spec);
        let work = Workload {
            files: tree.file_count() as u64,
            symlinks: tree.symlink_count() as u64,
            bytes: tree.bytes(),
            unique: Some(tree.unique_contents() as u64),
        };
        println!(
            "generating {} packages: {} files in {} directories, {}, {} symlinks; \
             {} files ({:.1}%) duplicate another's content, {} distinct contents (seed {})",
            tree.package_count(),
            work.files,
            tree.dir_count(),
            mb(work.bytes),
            work.symlinks,
            work.files - tree.unique_contents() as u64,
            100.0 * (work.files - tree.unique_contents() as u64) as f64 / work.files as f64,
            tree.unique_contents(),
            spec.seed
        );
        let start = Instant::now();
        tree.write(dest)?;
        println!("generated in {}", secs(start.elapsed()));
        Ok(work)
    }

    /// Coreutils doing comparable work on the same filesystem: `cp -a`
    /// (reads and writes every byte; its copy becomes project B), `cp -al`
    /// (metadata only) and `rm -rf` of a copy (removing the files, which
    /// every ingest must do).
    fn baselines(&self) -> Result<Vec<Row>> {
        let tree = self.a.join("node_modules");
        fs::create_dir_all(&self.b)?;
        fs::write(self.b.join("package.json"), "{ \"name\": \"bench\" }\n")?;
        let b_tree = self.b.join("node_modules");
        let cp_a = time_process("cp", &["-a".as_ref(), tree.as_os_str(), b_tree.as_os_str()])?;
        fs::create_dir_all(&self.scratch)?;
        let links = self.scratch.join("links");
        let cp_al = time_process("cp", &["-al".as_ref(), tree.as_os_str(), links.as_os_str()])?;
        // The hard links must go before ingesting A: ingest copies files
        // with more than one link instead of moving them.
        fs::remove_dir_all(&links)?;
        let copy = self.scratch.join("copy");
        copy_tree(&tree, &copy)?;
        let rm = time_process("rm", &["-rf".as_ref(), copy.as_os_str()])?;
        Ok(vec![
            baseline_row("cp -a  tree (baseline)", cp_a),
            baseline_row("cp -al tree (baseline)", cp_al),
            baseline_row("rm -rf of a copy (baseline)", rm),
        ])
    }

    /// `vrift init` (untimed), then the timed `vrift ingest node_modules`.
    fn time_ingest(&self, project: &Path, what: &str) -> Result<Duration> {
        println!("\n{what}: {}", project.display());
        print_output(&self.vrift.output(project, &["init"])?);
        sync()?;
        let (time, out) = self.vrift.timed(project, &["ingest", "node_modules"])?;
        print_output(&out);
        println!("  wall clock: {}", secs(time));
        Ok(time)
    }

    /// Puts one rift entry per phantom entry in A (what the shim would write).
    fn fill_rift(&self) -> Result<u64> {
        let start = Instant::now();
        let n = rift::mirror_phantom(&self.a, &self.store)?;
        println!(
            "\nfilled A's rift with {n} entries (one per phantom entry) through the library in {}",
            secs(start.elapsed())
        );
        Ok(n)
    }

    /// Waits (up to two minutes) until the ingests' background reaper has
    /// deleted the duplicates it set aside: the snapshot commands are timed
    /// alone, as the baselines are, not against 100k deletions on the same
    /// disk (on a `discard`-mounted ext4 each costs 180-300 µs of journal).
    /// The wait is printed.
    fn wait_for_reaper(&self) {
        let start = Instant::now();
        let trash_left = || {
            std::fs::read_dir(self.store.join("tmp")).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("trash.")))
            })
        };
        while trash_left() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "\nwaited {} for the ingests' background deletion of duplicates to finish{}",
            secs(start.elapsed()),
            if trash_left() {
                " (gave up: still running)"
            } else {
                ""
            }
        );
    }

    /// `snapshot save` and `snapshot restore`, each beside the cost of any
    /// manifest command (`snapshot list`: start, lock, open, read).
    fn snapshot_rows(&self, rift_entries: u64) -> Result<Vec<Row>> {
        let runs = self.args.snapshot_runs;
        let floor = self.median_of(runs, &["snapshot", "list"], |_| Ok(()))?;
        // Snapshots are immutable: drop the previous run's before saving again.
        let save = self.median_of(runs, &["snapshot", "save", "s1"], |i| {
            if i > 0 {
                self.vrift.output(&self.a, &["snapshot", "drop", "s1"])?;
            }
            Ok(())
        })?;
        let restore = self.median_of(runs, &["snapshot", "restore", "s1"], |_| Ok(()))?;
        let entries = self.snapshot_entries("s1")?;
        println!("snapshot s1 holds {entries} entries (rift: {rift_entries})");
        let label =
            |verb: &str| format!("vrift snapshot {verb} ({entries} entries, median of {runs})");
        let floor_name = "snapshot list";
        Ok(vec![
            row(&label("save"), save, SNAPSHOT_TARGET, (floor_name, floor)),
            row(
                &label("restore"),
                restore,
                SNAPSHOT_TARGET,
                (floor_name, floor),
            ),
        ])
    }

    /// Runs `vrift ARGS` in A `runs` times (calling `before(i)` untimed before
    /// each), prints the samples and returns their median.
    fn median_of(
        &self,
        runs: u64,
        args: &[&str],
        before: impl Fn(u64) -> Result<()>,
    ) -> Result<Duration> {
        let mut samples = Vec::new();
        let mut last = None;
        for i in 0..runs {
            before(i)?;
            sync()?;
            let (time, out) = self.vrift.timed(&self.a, args)?;
            samples.push(time);
            last = Some(out);
        }
        println!("\n$ vrift {}  (last run)", args.join(" "));
        print_output(&last.expect("runs >= 1"));
        let shown: Vec<String> = samples.iter().map(|d| ms(*d)).collect();
        println!("  samples: {}", shown.join(", "));
        samples.sort();
        Ok(samples[samples.len() / 2])
    }

    fn status(&self, project: &Path) -> Result<serde_json::Value> {
        let out = self.vrift.output(project, &["status", "--json"])?;
        serde_json::from_slice(&out.stdout).context("vrift status --json printed invalid JSON")
    }

    fn snapshot_entries(&self, name: &str) -> Result<u64> {
        let status = self.status(&self.a)?;
        let snaps = status["snapshots"]
            .as_array()
            .context("status has snapshots")?;
        snaps
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["entries"].as_u64())
            .with_context(|| format!("status lists no snapshot {name}"))
    }

    /// fsck passes, both projects record every entry, nothing is left on
    /// disk, and (generated trees) the store deduplicated exactly.
    fn verify(&self, work: &Workload) -> Result<()> {
        println!("\nverifying:");
        let (time, out) = self.vrift.timed(&self.a, &["fsck"])?;
        print_output(&out);
        println!("  vrift fsck: exit 0 in {}", secs(time));
        let expected = work.entries();
        for (name, project) in [("A", &self.a), ("B", &self.b)] {
            let status = self.status(project)?;
            let phantom = status["phantom"]["entries"].as_u64();
            ensure!(
                phantom == Some(expected),
                "project {name}: status shows {phantom:?} phantom entries, expected {expected}"
            );
            ensure!(
                status["pending_ingest"] == 0,
                "project {name}: an ingest is still pending"
            );
            let left = compare::census(&project.join("node_modules"))?;
            ensure!(
                left.files + left.symlinks == 0,
                "project {name}: {} files and {} symlinks were left on disk",
                left.files,
                left.symlinks
            );
            println!("  project {name}: {expected} phantom entries, only directories left on disk");
        }
        let status = self.status(&self.a)?;
        let rift = status["rift"]["entries"].as_u64();
        ensure!(
            rift == Some(expected),
            "A's rift has {rift:?} entries after restore, expected {expected}"
        );
        if let Some(unique) = work.unique {
            let blobs = status["store"]["blobs"].as_u64();
            ensure!(
                blobs == Some(unique),
                "the store holds {blobs:?} blobs, expected {unique} (one per distinct content)"
            );
            println!("  store: {unique} blobs, one per distinct content");
        }
        println!("  A's rift after restore: {expected} entries");
        Ok(())
    }
}

fn copy_real_tree(src: &Path, dest: &Path) -> Result<Workload> {
    println!("copying {} (cp -a)…", src.display());
    copy_tree(src, dest)?;
    let c = compare::census(dest)?;
    if c.other > 0 {
        println!(
            "note: {} special files in the tree; ingest skips them",
            c.other
        );
    }
    println!(
        "tree: {} files in {} directories, {}, {} symlinks",
        c.files,
        c.dirs,
        mb(c.bytes),
        c.symlinks
    );
    Ok(Workload {
        files: c.files,
        symlinks: c.symlinks,
        bytes: c.bytes,
        unique: None,
    })
}

/// Times `program ARGS` after flushing dirty pages, and says how long it took.
fn time_process(program: &str, args: &[&OsStr]) -> Result<Duration> {
    sync()?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    let shown = format!("{program} {}", args[0].to_string_lossy());
    let (time, _) = time_output(&mut cmd, &shown)?;
    println!("{shown}: {}", secs(time));
    Ok(time)
}

fn row(what: &str, time: Duration, target: Duration, baseline: (&str, Duration)) -> Row {
    Row {
        what: what.to_string(),
        time,
        target: Some(target),
        baseline: Some((baseline.0.to_string(), baseline.1)),
    }
}

fn baseline_row(what: &str, time: Duration) -> Row {
    Row {
        what: what.to_string(),
        time,
        target: None,
        baseline: None,
    }
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let line = |cells: [&str; 6]| {
        let [what, time, target, met, baseline, ratio] = cells;
        format!("{what:<width$}  {time:>10}  {target:>8}  {met:<4}  {baseline:<24}  {ratio:>7}")
    };
    let header = line(["measurement", "time", "target", "met", "baseline", "ratio"]);
    println!("\n{header}\n{}", "-".repeat(header.chars().count()));
    for r in rows {
        let (target, met) = match r.target {
            Some(t) => (
                format!("≤ {}", duration(t)),
                if r.time <= t { "yes" } else { "NO" },
            ),
            None => ("-".into(), "-"),
        };
        let (baseline, ratio) = match &r.baseline {
            Some((name, t)) => (
                format!("{name} {}", duration(*t)),
                format!("{:.2}x", r.time.as_secs_f64() / t.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        let time = duration(r.time);
        println!(
            "{}",
            line([&r.what, &time, &target, met, &baseline, &ratio])
        );
    }
}

fn print_throughput(work: &Workload, ingest: Duration, cp: Duration) {
    let rate = |t: Duration| {
        let s = t.as_secs_f64();
        format!(
            "{:.0} files/s, {:.0} MB/s",
            work.entries() as f64 / s,
            work.bytes as f64 / 1e6 / s
        )
    };
    println!(
        "\nfirst ingest: {} entries, {} in {}: {} (cp -a: {})",
        work.entries(),
        mb(work.bytes),
        secs(ingest),
        rate(ingest),
        rate(cp)
    );
}

/// Seconds above one second, milliseconds below; round targets stay round.
fn duration(d: Duration) -> String {
    let whole_ms = d.subsec_nanos().is_multiple_of(1_000_000);
    match (d >= Duration::from_secs(1), whole_ms) {
        (true, true) if d.subsec_millis() == 0 => format!("{} s", d.as_secs()),
        (true, _) => secs(d),
        (false, true) => format!("{} ms", d.as_millis()),
        (false, false) => ms(d),
    }
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
