//! `cargo xtask bench build`: a real C build under `vrift run` against the
//! same build done natively on a physical copy.
//!
//! The project is a generated Lua-sized C project (see `gen_c.rs`), or a
//! copy of the directory named by `VRIFT_BENCH_C_PROJECT` (a tree with a
//! Makefile, e.g. a Lua source tree). Figures:
//!
//! - a clean `make -jJOBS`: natively on the copy (`make clean` before each
//!   run) and under `vrift run` in the project (`vrift discard --yes` before
//!   each run), with the project's daemon already up (the main figure) and
//!   with the daemon stopped, so that its start is part of the build;
//!   Beside the wall clock: the CPU time of the build's processes (and of
//!   the daemon), steadier than the wall clock on a busy machine, and how
//!   long after make exits the daemon has sealed and committed everything;
//! - a no-op `make` after a build: `vrift run -- make` against `make`, and
//!   the same make inside one inception (a bash loop under one `vrift run`,
//!   timing each make with `$EPOCHREALTIME`), which leaves out `vrift
//!   run`'s own start;
//! - the write path's latency: `xtask/c/close_bench.c` (compiled at bench
//!   time) creates N files (open O_CREAT|O_WRONLY|O_TRUNC, write 4 KiB,
//!   close), timing each call, natively and under `vrift run`; then how
//!   long the daemon takes, after the program exits, to seal everything it
//!   staged (polling `vrift daemon status`).
//!
//! Every figure is a median of several runs, after one untimed run of each
//! kind that warms the page cache (and the compiler's files); dirty pages
//! are flushed before each timed run. Runs of the different kinds
//! alternate, so that a slow phase of a shared machine hits all of them.
//! Both sides' outputs are compared file by file, and the project's disk
//! is checked to hold no build output afterwards.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{human, in_sandbox, median, print_machine, CommonArgs, Figure, Report, Row, Target};
use crate::cargo;
use crate::gen_c::{CProject, BENCH_PROGRAM};
use crate::sandbox::{copy_tree, print_output, sync, Sandbox, Vrift};

/// Environment variable: a C project (a directory with a Makefile) to
/// benchmark instead of the generated one.
const PROJECT_ENV: &str = "VRIFT_BENCH_C_PROJECT";

/// A clean build under `vrift run` (daemon up) may take this multiple of
/// the native build.
const CLEAN_TARGET: f64 = 1.05;
/// A no-op `make` under `vrift run` may take this multiple of the native one.
const NOOP_TARGET: f64 = 1.0;

/// Any single command is killed after this long (a hang must not stall the
/// bench forever).
const COMMAND_LIMIT: Duration = Duration::from_secs(300);
/// How long the daemon may take to seal what a build or the driver staged.
const SEAL_LIMIT: Duration = Duration::from_secs(60);
/// How often `vrift daemon status` is asked while waiting for the seal.
const SEAL_POLL: Duration = Duration::from_millis(10);

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Timed runs of each clean build (after one untimed warm-up of each kind); the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Timed runs of the no-op `make` on each side; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=200))]
    noop_runs: u32,
    /// Parallel jobs of the clean build (`make -jJOBS`).
    #[arg(long, value_name = "J", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Files the write-latency driver creates.
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(100..=100_000))]
    files: u32,
    /// Seed of the generated project (the same seed gives the same project).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the generated C project into DIR (which must not exist) and stop.
    #[arg(long, value_name = "DIR")]
    generate_only: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn build(args: BuildArgs) -> Result<()> {
    if let Some(dir) = &args.generate_only {
        ensure!(!dir.exists(), "{} already exists", dir.display());
        let project = CProject::generate(args.seed);
        project.write(dir)?;
        println!(
            "wrote {}: {} .c files, {} lines of C; build it with `make -j{}`",
            dir.display(),
            project.c_files(),
            project.c_lines(),
            args.jobs
        );
        return Ok(());
    }
    print_machine()?;
    let built = cargo::build_release_vrift_and_shim()?;
    in_sandbox("build", &args.common, |sandbox| {
        let vrift = Vrift::new(built.vrift, sandbox);
        let b = BuildBench::new(&args, &vrift, sandbox, built.shim)?;
        let result = b.run();
        if result.is_err() {
            b.print_daemon_log();
        }
        // Never leave a daemon behind in a directory about to be removed.
        if let Err(e) = b.daemon_stop() {
            eprintln!("xtask: could not stop the project's daemon: {e:#}");
        }
        result
    })
}

/// Where a command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Plainly, in the physical copy.
    Native,
    /// Under `vrift run`, in the project.
    Vrift,
}

/// One timed clean build: wall clock, and CPU time (user + system) of the
/// build's processes and, under vrift, of the project's daemon.
struct Built {
    took: Duration,
    cpu: Duration,
    daemon_cpu: Duration,
    /// Under vrift: when the daemon had sealed everything the build staged.
    drain: Option<Drain>,
}

/// What `vrift daemon status` says.
struct Status {
    pid: u32,
    staged: u64,
    uncommitted: u64,
    text: String,
}

/// How long after a writer exited the daemon had nothing staged, and had
/// also committed every change.
#[derive(Clone, Copy)]
struct Drain {
    sealed: Duration,
    committed: Duration,
    /// The staged count first seen after the writer exited.
    staged_at_exit: u64,
    /// The daemon's pid.
    pid: u32,
}

/// `close_bench`'s figures, in microseconds: p50, p99, max, mean per phase.
struct Latency {
    open: [f64; 4],
    write: [f64; 4],
    close: [f64; 4],
    total: [f64; 4],
}

struct BuildBench<'a> {
    args: &'a BuildArgs,
    vrift: &'a Vrift<'a>,
    sandbox: &'a Sandbox,
    shim: PathBuf,
    /// The vrift project, and the physical copy the native side uses.
    project: PathBuf,
    copy: PathBuf,
    /// The compiled `close_bench` driver (outside the project).
    driver: PathBuf,
    /// True for the generated project (whose outputs are known).
    generated: bool,
}

impl<'a> BuildBench<'a> {
    /// Puts the sources in `project/` (generated, or a copy of
    /// `$VRIFT_BENCH_C_PROJECT` after `make clean`), copies them to `copy/`
    /// with `cp -a`, runs `vrift init` in the project and compiles the
    /// latency driver.
    fn new(
        args: &'a BuildArgs,
        vrift: &'a Vrift<'a>,
        sandbox: &'a Sandbox,
        shim: PathBuf,
    ) -> Result<BuildBench<'a>> {
        // The shim sees absolute paths: resolve symlinks such as /tmp → /private/tmp.
        let root = fs::canonicalize(sandbox.path())?;
        let project = root.join("project");
        let copy = root.join("copy");
        let generated = match std::env::var_os(PROJECT_ENV).filter(|v| !v.is_empty()) {
            Some(src) => {
                let src = PathBuf::from(src);
                ensure!(
                    src.join("Makefile").is_file() || src.join("makefile").is_file(),
                    "{PROJECT_ENV}={} has no Makefile",
                    src.display()
                );
                println!(
                    "\nproject: a copy of {} (from {PROJECT_ENV}), not the generated one",
                    src.display()
                );
                copy_tree(&src, &project)?;
                // A project of its own would confuse `vrift init`.
                let _ = fs::remove_dir_all(project.join(".vrift"));
                // Outputs already there would turn the clean builds into no-ops.
                match timed(
                    sandbox.command("make").arg("clean").current_dir(&project),
                    "make clean",
                ) {
                    Ok((took, _)) => println!("  `make clean` in the copy: {}", human(took)),
                    Err(e) => println!("  `make clean` in the copy failed; going on: {e:#}"),
                }
                false
            }
            None => {
                let gen = CProject::generate(args.seed);
                gen.write(&project)?;
                println!(
                    "\nproject: generated (seed {}): {} .c files ({} lines of C), \
                     {} lines in all, a Makefile building into build/ with ar and two links \
                     (set {PROJECT_ENV}=DIR to use a real project instead)",
                    args.seed,
                    gen.c_files(),
                    gen.c_lines(),
                    gen.lines()
                );
                true
            }
        };
        copy_tree(&project, &copy)?;
        println!(
            "  physical copy (cp -a) for the native side: {}",
            copy.display()
        );
        println!("  vrift project: {}", project.display());
        print_output(&vrift.output(&project, &["init"])?);
        let driver = cargo::compile_c_driver("close_bench", &root)?;
        Ok(BuildBench {
            args,
            vrift,
            sandbox,
            shim,
            project,
            copy,
            driver,
            generated,
        })
    }

    fn run(&self) -> Result<Report> {
        let load_before = load_average();
        println!("\nload average before: {load_before}");
        let on_disk = physical_files(&self.project)?;
        let mut report = Report::new("build");
        report.extend(self.clean_builds()?);
        self.compare_outputs()?;
        report.extend(self.noop_rows()?);
        self.check_disk(&on_disk, "the builds")?;
        report.extend(self.latency_rows()?);
        self.check_disk(&on_disk, "the latency driver")?;
        self.footnotes(&mut report, &load_before);
        Ok(report)
    }

    /// `program` run plainly in the physical copy, with the sandbox's environment.
    fn native(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.sandbox.command(program);
        cmd.current_dir(&self.copy);
        no_make_flags(&mut cmd);
        cmd
    }

    /// `vrift run -- program` in the project, with the shim built for this bench.
    fn under_vrift(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.vrift.command(&self.project, &["run", "--"]);
        cmd.arg(program).env("VRIFT_SHIM_PATH", &self.shim);
        no_make_flags(&mut cmd);
        cmd
    }

    fn on(&self, side: Side, program: impl AsRef<OsStr>) -> Command {
        match side {
            Side::Native => self.native(program),
            Side::Vrift => self.under_vrift(program),
        }
    }

    fn make_j(&self, side: Side) -> Command {
        let mut cmd = self.on(side, "make");
        cmd.arg(format!("-j{}", self.args.jobs));
        cmd
    }

    /// `vrift ARGS` in the project; fails (with its output) if it fails.
    fn vrift_ok(&self, args: &[&str]) -> Result<Output> {
        let what = format!("vrift {}", args.join(" "));
        Ok(timed(&mut self.vrift.command(&self.project, args), &what)?.1)
    }

    fn daemon_stop(&self) -> Result<()> {
        self.vrift_ok(&["daemon", "stop"]).map(drop)
    }

    /// What the daemon says about itself; `None` when it is not running.
    fn daemon_status(&self) -> Result<Option<Status>> {
        let mut cmd = self.vrift.command(&self.project, &["daemon", "status"]);
        let (_, out) = run_limited(&mut cmd, "vrift daemon status")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            if text.starts_with("not running") {
                return Ok(None);
            }
            bail!(
                "`vrift daemon status` failed ({}):\n{text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let field = |name: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("`vrift daemon status` printed no {name:?} line:\n{text}"))
        };
        Ok(Some(Status {
            pid: field("pid ")? as u32,
            staged: field("staged files:")?,
            uncommitted: field("uncommitted changes:")?,
            text,
        }))
    }

    /// Polls `vrift daemon status` until nothing is staged and nothing is
    /// uncommitted; times are counted from the call (right after the writer
    /// exited). The daemon must be running: it idles 30 s before exiting.
    fn wait_sealed(&self) -> Result<Drain> {
        let start = Instant::now();
        let mut staged_at_exit = None;
        let mut sealed = None;
        loop {
            let Some(Status {
                pid,
                staged,
                uncommitted,
                text,
            }) = self.daemon_status()?
            else {
                bail!(
                    "the project's daemon is not running right after a writer exited \
                     (it should idle 30 s before exiting)"
                );
            };
            let now = start.elapsed();
            staged_at_exit.get_or_insert(staged);
            if staged == 0 && sealed.is_none() {
                sealed = Some(now);
            }
            if staged == 0 && uncommitted == 0 {
                return Ok(Drain {
                    sealed: sealed.unwrap_or(now),
                    committed: now,
                    staged_at_exit: staged_at_exit.unwrap_or(0),
                    pid,
                });
            }
            if now > SEAL_LIMIT {
                bail!(
                    "{} s after the writer exited, the daemon still reports:\n{text}",
                    SEAL_LIMIT.as_secs()
                );
            }
            std::thread::sleep(SEAL_POLL);
        }
    }

    /// One clean native build: `make clean` (untimed), then `make -jJ`.
    fn native_build(&self) -> Result<Built> {
        let mut clean = self.native("make");
        clean.arg("clean");
        timed(&mut clean, "make clean (copy)")?;
        sync()?;
        let what = format!("make -j{} (copy)", self.args.jobs);
        let cpu = children_cpu()?;
        let (took, _) = timed(&mut self.make_j(Side::Native), &what)?;
        Ok(Built {
            took,
            cpu: children_cpu()? - cpu,
            daemon_cpu: Duration::ZERO,
            drain: None,
        })
    }

    /// One clean build under `vrift run`: the daemon stopped and the rift
    /// discarded (untimed), the daemon started again unless `cold`, then
    /// `vrift run -- make -jJ`, then the wait until the daemon has sealed
    /// what the build staged.
    ///
    /// The daemon's CPU time is counted from just before the build (from
    /// its start when `cold`) until everything is committed.
    fn vrift_build(&self, cold: bool) -> Result<Built> {
        self.daemon_stop()?;
        self.vrift_ok(&["discard", "--yes"])?;
        let daemon_before = if cold {
            None
        } else {
            self.vrift_ok(&["daemon", "start"])?;
            let status = self
                .daemon_status()?
                .context("the daemon is not running right after `vrift daemon start`")?;
            Some((status.pid, process_cpu(status.pid)?))
        };
        sync()?;
        let what = format!("vrift run -- make -j{}", self.args.jobs);
        let cpu = children_cpu()?;
        let (took, _) = timed(&mut self.make_j(Side::Vrift), &what)?;
        let cpu = children_cpu()? - cpu;
        let drain = self.wait_sealed()?;
        let daemon_cpu = match daemon_before {
            Some((pid, _)) if pid != drain.pid => bail!(
                "the daemon changed during the build (pid {pid}, then {}); see .vrift/daemon.log",
                drain.pid
            ),
            Some((_, before)) => process_cpu(drain.pid)? - before,
            None => process_cpu(drain.pid)?,
        };
        Ok(Built {
            took,
            cpu,
            daemon_cpu,
            drain: Some(drain),
        })
    }

    fn clean_builds(&self) -> Result<Vec<Row>> {
        let j = self.args.jobs;
        let runs = self.args.runs;
        println!(
            "\nclean `make -j{j}`: one untimed run of each kind, then {runs} timed runs of each, \
             alternating\n  native:           `make clean` (untimed), `make -j{j}` in the copy\n  \
             vrift, daemon up: `vrift daemon stop`, `vrift discard --yes`, `vrift daemon start` \
             (untimed), `vrift run -- make -j{j}`\n  vrift, cold:      the same without \
             `vrift daemon start`: the build's first write starts the daemon\n  \
             sealed: after make exits, `vrift daemon status` is polled every {} ms until \
             \"staged files: 0\" and \"uncommitted changes: 0\"",
            SEAL_POLL.as_millis()
        );
        let warm = Instant::now();
        self.native_build()?;
        self.vrift_build(false)?;
        self.vrift_build(true)?;
        println!("  warm-up runs done in {}", human(warm.elapsed()));
        let mut native = Vec::new();
        let mut up = Vec::new();
        let mut cold = Vec::new();
        for run in 1..=runs {
            let n = self.native_build()?;
            let u = self.vrift_build(false)?;
            let c = self.vrift_build(true)?;
            let (ud, cd) = (u.drain.expect("vrift"), c.drain.expect("vrift"));
            println!(
                "  run {run}: native {} (cpu {})\n         vrift, daemon up {} (cpu {} + daemon {}; \
                 {} staged at exit, sealed +{}, committed +{})\n         vrift, cold      {} \
                 (cpu {} + daemon {}; {} staged at exit, sealed +{}, committed +{})",
                human(n.took),
                human(n.cpu),
                human(u.took),
                human(u.cpu),
                human(u.daemon_cpu),
                ud.staged_at_exit,
                human(ud.sealed),
                human(ud.committed),
                human(c.took),
                human(c.cpu),
                human(c.daemon_cpu),
                cd.staged_at_exit,
                human(cd.sealed),
                human(cd.committed)
            );
            native.push(n);
            up.push(u);
            cold.push(c);
        }
        let runs = |v: &[Built], f: &dyn Fn(&Built) -> Duration| {
            Figure::median(&v.iter().map(f).collect::<Vec<_>>())
        };
        let native_wall = runs(&native, &|b| b.took);
        let native_cpu = runs(&native, &|b| b.cpu);
        let what = |kind: &str| {
            format!(
                "clean make -j{j}, {kind} (median of {runs})",
                runs = self.args.runs
            )
        };
        let row = |what: String, baseline: &Figure, value| {
            Row::new(what, baseline.clone(), value).note("baseline: native")
        };
        Ok(vec![
            row(
                what("daemon already up"),
                &native_wall,
                runs(&up, &|b| b.took),
            )
            .target(Target::Ratio(CLEAN_TARGET)),
            row(
                what("cold daemon start"),
                &native_wall,
                runs(&cold, &|b| b.took),
            ),
            row(
                what("daemon up, until all committed"),
                &native_wall,
                runs(&up, &|b| {
                    b.took + b.drain.map_or(Duration::ZERO, |d| d.committed)
                }),
            ),
            row(
                "  CPU time (user+sys) of the build, daemon up".into(),
                &native_cpu,
                runs(&up, &|b| b.cpu),
            ),
            row(
                "  CPU time of the build + the daemon's, daemon up".into(),
                &native_cpu,
                runs(&up, &|b| b.cpu + b.daemon_cpu),
            ),
        ])
    }

    /// Both sides' trees after a clean build must hold the same files with
    /// the same contents (the generated project must; a real one may embed
    /// dates or paths, so there a difference is only reported).
    fn compare_outputs(&self) -> Result<()> {
        println!(
            "\ncomparing the trees after the last builds (cksum of every file, symlink targets):"
        );
        let list = |side| -> Result<String> {
            let mut cmd = self.on(side, "sh");
            cmd.args(["-c", LISTING]);
            Ok(String::from_utf8_lossy(&timed(&mut cmd, "listing")?.1.stdout).into_owned())
        };
        let (native, view) = (list(Side::Native)?, list(Side::Vrift)?);
        let files = native.lines().count();
        if native == view {
            println!("  identical: {files} files and symlinks");
        } else {
            let a: BTreeSet<&str> = native.lines().collect();
            let b: BTreeSet<&str> = view.lines().collect();
            let mut diff = String::new();
            for l in a.difference(&b).take(20) {
                diff.push_str(&format!("    native only: {l}\n"));
            }
            for l in b.difference(&a).take(20) {
                diff.push_str(&format!("    view only:   {l}\n"));
            }
            if self.generated {
                bail!("the view after `vrift run -- make` differs from the native build:\n{diff}");
            }
            println!(
                "  WARNING: the trees differ ({} vs {} lines; a real project may embed dates \
                 or paths):\n{diff}",
                files,
                view.lines().count()
            );
        }
        if self.generated {
            let run = |side| -> Result<String> {
                let what = format!("{BENCH_PROGRAM} 42");
                let mut cmd = self.on(side, BENCH_PROGRAM);
                cmd.arg("42");
                Ok(String::from_utf8_lossy(&timed(&mut cmd, &what)?.1.stdout).into_owned())
            };
            let (native, view) = (run(Side::Native)?, run(Side::Vrift)?);
            ensure!(
                native == view,
                "{BENCH_PROGRAM} prints differently when built in the rift:\n{view}\nnative:\n{native}"
            );
            println!(
                "  {BENCH_PROGRAM} 42 prints the same on both sides: {}",
                native.lines().last().unwrap_or("").trim()
            );
        }
        Ok(())
    }

    /// A no-op `make` after the builds, and `vrift run -- true` for the
    /// share of vrift run's own start.
    fn noop_rows(&self) -> Result<Vec<Row>> {
        let runs = self.args.noop_runs;
        println!(
            "\nno-op `make` after the build: one untimed run of each side, then {runs} timed, \
             alternating"
        );
        let mut times = [Vec::new(), Vec::new()];
        let mut outs = [String::new(), String::new()];
        for run in 0..=runs {
            for (i, side) in [Side::Native, Side::Vrift].into_iter().enumerate() {
                let what = match side {
                    Side::Native => "make (no-op, copy)",
                    Side::Vrift => "vrift run -- make (no-op)",
                };
                let (took, out) = timed(&mut self.on(side, "make"), what)?;
                if run > 0 {
                    times[i].push(took);
                }
                let root = match side {
                    Side::Native => &self.copy,
                    Side::Vrift => &self.project,
                };
                outs[i] = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
                .replace(&*root.to_string_lossy(), "<root>");
            }
        }
        let [native_out, view_out] = outs;
        ensure!(
            native_out == view_out,
            "the no-op `make` prints differently under vrift run:\n{view_out}\nnative:\n{native_out}"
        );
        if self.generated {
            ensure!(
                native_out.contains("Nothing to be done"),
                "the no-op `make` did something:\n{native_out}"
            );
        }
        println!("  both print: {}", native_out.trim().replace('\n', " | "));
        let [native, view] = times;
        let best = |v: &[Duration]| v.iter().copied().min().unwrap_or_default();
        println!(
            "  `vrift run -- make` vs `make`: median vrift {}  native {}; best vrift {}  native {}",
            human(median(&mut view.clone())),
            human(median(&mut native.clone())),
            human(best(&view)),
            human(best(&native))
        );

        // The same make inside one inception: what a shell that ran
        // `vrift inception` sees, without `vrift run`'s own start.
        let in_shell = self.noop_in_shell(&native_out)?;

        let mut times = [Vec::new(), Vec::new()];
        for run in 0..=runs {
            for (i, side) in [Side::Native, Side::Vrift].into_iter().enumerate() {
                let (took, _) = timed(&mut self.on(side, "true"), "true")?;
                if run > 0 {
                    times[i].push(took);
                }
            }
        }
        let [t_native, t_view] = times;
        Ok(vec![
            Row::new(
                format!("no-op make (median of {runs})"),
                Figure::median(&native),
                Figure::median(&view),
            )
            .note("baseline: native")
            .target(Target::Ratio(NOOP_TARGET)),
            Row::new(
                format!("no-op make inside one inception (median of {runs})"),
                Figure::median(&in_shell.0),
                Figure::median(&in_shell.1),
            )
            .note("baseline: native")
            .target(Target::Ratio(NOOP_TARGET)),
            Row::new(
                format!("  for reference: vrift run -- true (median of {runs})"),
                Figure::median(&t_native),
                Figure::median(&t_view),
            )
            .note("baseline: true"),
        ])
    }

    /// A no-op `make`, timed by bash around each run in a loop, natively
    /// and under one `vrift run -- bash`: every run (native, vrift). The runs
    /// come in [`NOOP_CHUNKS`] loops a side, alternating sides, each loop's
    /// first run untimed. `expected` is what the no-op `make` prints
    /// natively, with the project's root replaced by `<root>`.
    fn noop_in_shell(&self, expected: &str) -> Result<(Vec<Duration>, Vec<Duration>)> {
        let runs = self.args.noop_runs;
        let chunks = NOOP_CHUNKS.min(runs);
        let mut samples = [Vec::new(), Vec::new()];
        for chunk in 0..chunks {
            // Spread the runs over the chunks; the first chunks take the rest.
            let n = runs / chunks + u32::from(chunk < runs % chunks);
            for (i, side) in [Side::Native, Side::Vrift].into_iter().enumerate() {
                samples[i].extend(self.noop_loop(side, n, expected)?);
            }
        }
        let [native, view] = samples;
        let min = |v: &[Duration]| v.iter().copied().min().unwrap_or_default();
        println!(
            "  inside one inception (bash loops timing each make with $EPOCHREALTIME, {chunks} \
             loops a side, alternating): median vrift {}  native {}; best vrift {}  native {}",
            human(median(&mut view.clone())),
            human(median(&mut native.clone())),
            human(min(&view)),
            human(min(&native))
        );
        Ok((native, view))
    }

    /// One `bash -c NOOP_LOOP` of `n` + 1 no-op makes on `side`: the
    /// timings of the last `n`.
    fn noop_loop(&self, side: Side, n: u32, expected: &str) -> Result<Vec<Duration>> {
        let (root, out_file) = match side {
            Side::Native => (&self.copy, "noop-native.out"),
            Side::Vrift => (&self.project, "noop-vrift.out"),
        };
        // Beside the project, so that writing it is not a rift write.
        let out_file = root.with_file_name(out_file);
        let mut cmd = self.on(side, "bash");
        cmd.args(["-c", NOOP_LOOP, "noop-loop", &(n + 1).to_string()])
            .arg(&out_file)
            .env("LC_ALL", "C");
        let (_, out) = timed(&mut cmd, "bash -c 'while …; do make; done'")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let samples = text
            .lines()
            .skip(1)
            .map(|l| {
                let (a, b) = l.split_once(' ').unwrap_or((l, ""));
                match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(a), Ok(b)) if b >= a => Ok(Duration::from_secs_f64(b - a)),
                    _ => bail!("the no-op make loop printed {l:?}"),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        ensure!(
            samples.len() == n as usize,
            "the no-op make loop printed {} timings, not {n}:\n{text}",
            samples.len()
        );
        let printed = fs::read_to_string(&out_file)?.replace(&*root.to_string_lossy(), "<root>");
        ensure!(
            printed == expected,
            "in the loop, the last no-op `make` printed:\n{printed}\ninstead of:\n{expected}"
        );
        Ok(samples)
    }

    /// `close_bench DIR N` on each side (one untimed run into another
    /// directory first), the seal drain after it, and a check that both
    /// sides read back the same files.
    fn latency_rows(&self) -> Result<Vec<Row>> {
        let n = self.args.files;
        println!(
            "\nwrite latency: {} DIR {n} (open O_CREAT|O_WRONLY|O_TRUNC, write 4 KiB, close; \
             each call timed), one untimed run into lat-warm/, then one timed run into lat/",
            self.driver.display()
        );
        for root in [&self.copy, &self.project] {
            for dir in ["lat-warm", "lat"] {
                fs::create_dir(root.join(dir))?;
            }
        }
        let run = |side: Side, dir: &str| -> Result<Latency> {
            let mut cmd = self.on(side, &self.driver);
            cmd.arg(dir).arg(n.to_string());
            let (_, out) = timed(&mut cmd, &format!("close_bench {dir} {n}"))?;
            parse_latency(&String::from_utf8_lossy(&out.stdout))
        };
        run(Side::Native, "lat-warm")?;
        sync()?;
        let native = run(Side::Native, "lat")?;

        self.daemon_stop()?;
        self.vrift_ok(&["discard", "--yes"])?;
        self.vrift_ok(&["daemon", "start"])?;
        run(Side::Vrift, "lat-warm")?;
        self.wait_sealed()?;
        sync()?;
        let view = run(Side::Vrift, "lat")?;
        let drain = self.wait_sealed()?;

        for (name, l) in [("native", &native), ("vrift run", &view)] {
            println!("  {name}: (p50 / p99 / max / mean, µs)");
            for (phase, v) in [
                ("open", l.open),
                ("write", l.write),
                ("close", l.close),
                ("total", l.total),
            ] {
                println!(
                    "    {phase:<6} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    v[0], v[1], v[2], v[3]
                );
            }
        }
        println!(
            "  after the driver exited: {} staged; sealed +{}, committed +{}",
            drain.staged_at_exit,
            human(drain.sealed),
            human(drain.committed)
        );

        let check = "cat lat/* | cksum; ls lat | wc -l";
        let read_back = |side| -> Result<String> {
            let mut cmd = self.on(side, "sh");
            cmd.args(["-c", check]);
            Ok(String::from_utf8_lossy(&timed(&mut cmd, check)?.1.stdout).into_owned())
        };
        let (a, b) = (read_back(Side::Native)?, read_back(Side::Vrift)?);
        ensure!(
            a == b,
            "`{check}` reads back differently in the view:\n{b}\nnative:\n{a}"
        );
        println!(
            "  `{check}` reads back the same: {}",
            a.trim().replace('\n', " | ")
        );

        let us = |v: f64| Figure::once(Duration::from_secs_f64(v / 1e6));
        let row = |what: String, v: f64, base: f64| {
            Row::new(what, us(base), us(v)).note("baseline: native; one run of the driver")
        };
        Ok(vec![
            row(
                format!("open+write 4K+close p50 ({n} new files)"),
                view.total[0],
                native.total[0],
            ),
            row(
                format!("open+write 4K+close p99 ({n} new files)"),
                view.total[1],
                native.total[1],
            ),
            row("close() p50".into(), view.close[0], native.close[0]),
            row("close() p99".into(), view.close[1], native.close[1]),
            Row::vrift_only(
                format!(
                    "seal drain after the driver exits ({} staged)",
                    drain.staged_at_exit
                ),
                Figure::once(drain.sealed),
            ),
        ])
    }

    /// The project's disk must hold exactly the files it held before.
    fn check_disk(&self, before: &BTreeSet<PathBuf>, after_what: &str) -> Result<()> {
        let now = physical_files(&self.project)?;
        let added: Vec<_> = now.difference(before).take(10).collect();
        let removed: Vec<_> = before.difference(&now).take(10).collect();
        ensure!(
            added.is_empty() && removed.is_empty(),
            "after {after_what}, the project's disk changed: added {added:?}, removed {removed:?}"
        );
        println!(
            "  the project's disk holds the same {} files as before {after_what} (outputs are in the rift)",
            now.len()
        );
        Ok(())
    }

    /// The end of the daemon's log, for a report.
    fn print_daemon_log(&self) {
        let log = self.project.join(".vrift/daemon.log");
        match fs::read_to_string(&log) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!("xtask: last {} lines of {}:", tail.len(), log.display());
                for l in tail {
                    eprintln!("    {l}");
                }
            }
            Err(e) => eprintln!("xtask: no daemon log at {}: {e}", log.display()),
        }
    }

    /// The machine, the project and the load, under the table.
    fn footnotes(&self, report: &mut Report, load_before: &str) {
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let load_after = load_average();
        let command: Vec<String> = std::env::args().skip(1).collect();
        report.footnote(format!("\ncommand: cargo xtask {}", command.join(" ")));
        report.footnote(format!(
            "machine: {nproc} cores; builds use make -j{}; project: {}\n\
             load average (1, 5, 15 min) before: {load_before}; after: {load_after}",
            self.args.jobs,
            if self.generated {
                format!("generated (seed {})", self.args.seed)
            } else {
                format!("a copy of ${PROJECT_ENV}")
            }
        ));
        let busiest = [load_before, &load_after]
            .iter()
            .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        if busiest > 0.5 * nproc as f64 {
            report.footnote(format!(
                "note: other work was running on this machine (1-min load up to {busiest:.2} on \
                 {nproc} cores): wall-clock figures are noisy; the CPU-time rows are steadier"
            ));
        }
    }
}

/// Lists every file (with cksum) and symlink (with its target) below the
/// current directory, `.vrift/` aside, sorted.
const LISTING: &str = "find . -path ./.vrift -prune -o -type f -print0 \
     | LC_ALL=C sort -z | xargs -0 -r cksum; \
     find . -path ./.vrift -prune -o -type l -printf '%p -> %l\\n' | LC_ALL=C sort";

/// Runs `make` "$1" times with its output in the file "$2" (outside the
/// project), printing the bash clock before and after each run; stops if
/// make fails.
const NOOP_LOOP: &str = r#"i=0
while [ "$i" -lt "$1" ]; do
  s=$EPOCHREALTIME
  make >"$2" 2>&1 || { cat "$2" >&2; exit 1; }
  e=$EPOCHREALTIME
  echo "$s $e"
  i=$((i + 1))
done"#;

/// Loops a side for the no-op `make` inside one inception.
const NOOP_CHUNKS: u32 = 3;

/// A make started by make (MAKEFLAGS in the environment) must not pass
/// its jobserver or flags on to the measured one.
fn no_make_flags(cmd: &mut Command) {
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"] {
        cmd.env_remove(var);
    }
}

/// Regular files and symlinks below `root` on disk (not through the shim),
/// `.vrift/` aside, as relative paths.
fn physical_files(root: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if path != root.join(".vrift") {
                    stack.push(path);
                }
            } else {
                found.insert(path.strip_prefix(root)?.to_path_buf());
            }
        }
    }
    Ok(found)
}

/// Runs `cmd` (stdin from /dev/null, output captured, in a process group of
/// its own) and times it from start to exit; fails, with its output, if it
/// fails or is still running after [`COMMAND_LIMIT`] (then its group is
/// killed).
fn timed(cmd: &mut Command, what: &str) -> Result<(Duration, Output)> {
    let (elapsed, out) = run_limited(cmd, what)?;
    if !out.status.success() {
        bail!("`{what}` failed ({}):\n{}", out.status, shown(&out));
    }
    Ok((elapsed, out))
}

/// [`timed`], whatever the exit status.
fn run_limited(cmd: &mut Command, what: &str) -> Result<(Duration, Output)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
    let pid = child.id();
    let (done, wait) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(COMMAND_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            return true;
        }
        false
    });
    let out = child.wait_with_output();
    let elapsed = start.elapsed();
    let _ = done.send(());
    let killed = watchdog.join().unwrap_or(false);
    let out = out.with_context(|| format!("cannot wait for {what}"))?;
    if killed {
        bail!(
            "`{what}` was still running after {} s and was killed; its output:\n{}",
            COMMAND_LIMIT.as_secs(),
            shown(&out)
        );
    }
    Ok((elapsed, out))
}

/// A command's stdout and stderr, for a message.
fn shown(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses `close_bench`'s four lines (`PHASE p50 p99 max mean`).
fn parse_latency(text: &str) -> Result<Latency> {
    let phase = |name: &str| -> Result<[f64; 4]> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .with_context(|| format!("close_bench printed no {name} line:\n{text}"))?;
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("close_bench printed {line:?}"))?;
        v.try_into()
            .map_err(|_| anyhow::anyhow!("close_bench printed {line:?}, not 4 figures"))
    };
    Ok(Latency {
        open: phase("open")?,
        write: phase("write")?,
        close: phase("close")?,
        total: phase("total")?,
    })
}

/// CPU time (user + system) of this process's waited-for children, from
/// /proc/self/stat: every process a waited command and its own waited
/// descendants ran (make, the compilers…), but not a daemon that detached.
fn children_cpu() -> Result<Duration> {
    // After the command name: state is field 3; cutime and cstime are 16 and 17.
    stat_ticks("self", &[13, 14])
}

/// CPU time (user + system) of the running process `pid` itself.
fn process_cpu(pid: u32) -> Result<Duration> {
    // utime and stime are fields 14 and 15.
    stat_ticks(&pid.to_string(), &[11, 12])
}

/// The sum of the given fields of /proc/PID/stat (counted from the field
/// after the command name), in clock ticks, as a duration.
fn stat_ticks(pid: &str, fields: &[usize]) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let after_name = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path} is malformed: {text}"))?;
    let values: Vec<&str> = after_name.split_whitespace().collect();
    let mut ticks = 0u64;
    for &f in fields {
        ticks += values
            .get(f)
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("{path} is malformed: {text}"))?;
    }
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The three load averages of /proc/loadavg.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
