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

use super::{in_sandbox, mb, ms, secs, CommonArgs, Figure, Report, Row, Target, TreeArgs};
use crate::gen::Tree;
use crate::sandbox::{copy_tree, print_output, sync, time_output, Sandbox, Vrift};
use crate::{cargo, compare, rift};

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Benchmark a copy (cp -a) of this real tree instead of a generated one.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["files", "size_mb", "dup_percent", "seed"])]
    path: Option<PathBuf>,
    #[command(flatten)]
    tree: TreeArgs,
    /// Runs of each snapshot command; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    snapshot_runs: u64,
    #[command(flatten)]
    common: CommonArgs,
}

const FIRST_INGEST_TARGET: Duration = Duration::from_secs(4);
const SECOND_INGEST_TARGET: Duration = Duration::from_secs(2);
const SNAPSHOT_TARGET: Duration = Duration::from_millis(150);

pub fn ingest(args: IngestArgs) -> Result<()> {
    let bin = cargo::build_release_vrift()?;
    in_sandbox("ingest", &args.common, |sandbox| {
        let vrift = Vrift::new(bin, sandbox);
        IngestBench::new(&args, &vrift, sandbox).run()
    })
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

    fn run(&self) -> Result<Report> {
        let work = self.prepare_tree()?;
        let [cp_a, cp_al, rm] = self.baselines()?;
        let mut report = Report::new("ingest");
        report.push(Row::baseline_only("cp -a  tree (baseline)", cp_a.clone()));
        report.push(Row::baseline_only("cp -al tree (baseline)", cp_al.clone()));
        report.push(Row::baseline_only("rm -rf of a copy (baseline)", rm));

        let first = self.time_ingest(&self.a, "first ingest (new blobs)")?;
        report.push(
            Row::new("vrift ingest: first", cp_a.clone(), Figure::once(first))
                .note("baseline: cp -a")
                .target(Target::AtMost(FIRST_INGEST_TARGET)),
        );
        let second = self.time_ingest(&self.b, "ingest of an identical copy (blobs exist)")?;
        report.push(
            Row::new("vrift ingest: identical copy", cp_al, Figure::once(second))
                .note("baseline: cp -al")
                .target(Target::AtMost(SECOND_INGEST_TARGET)),
        );

        let mirrored = self.fill_rift()?;
        self.wait_for_reaper();
        report.extend(self.snapshot_rows(mirrored)?);
        report.footnote(throughput(&work, first, cp_a.duration()));
        self.verify(&work)?;
        Ok(report)
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
        let spec = self.args.tree.spec();
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
    fn baselines(&self) -> Result<[Figure; 3]> {
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
        Ok([cp_a, cp_al, rm].map(Figure::once))
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
        let row = |verb: &str, figure: Figure| {
            Row::new(label(verb), floor.clone(), figure)
                .note("baseline: snapshot list")
                .target(Target::AtMost(SNAPSHOT_TARGET))
        };
        Ok(vec![row("save", save), row("restore", restore)])
    }

    /// Runs `vrift ARGS` in A `runs` times (calling `before(i)` untimed before
    /// each), prints the samples and returns them (their median reported).
    fn median_of(
        &self,
        runs: u64,
        args: &[&str],
        before: impl Fn(u64) -> Result<()>,
    ) -> Result<Figure> {
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
        Ok(Figure::median(&samples))
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

/// The first ingest's rate, and `cp -a`'s.
fn throughput(work: &Workload, ingest: Duration, cp: Duration) -> String {
    let rate = |t: Duration| {
        let s = t.as_secs_f64();
        format!(
            "{:.0} files/s, {:.0} MB/s",
            work.entries() as f64 / s,
            work.bytes as f64 / 1e6 / s
        )
    };
    format!(
        "\nfirst ingest: {} entries, {} in {}: {} (cp -a: {})",
        work.entries(),
        mb(work.bytes),
        secs(ingest),
        rate(ingest),
        rate(cp)
    )
}
