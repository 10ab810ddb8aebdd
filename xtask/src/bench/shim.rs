//! `cargo xtask bench shim`: what the LD_PRELOAD shim costs, per call and
//! for whole tools, each figure beside the same work done natively on a
//! physical copy (`cp -a` before ingest) and, per call, under fakechroot (a
//! reference LD_PRELOAD path-rewriting layer).
//!
//! Per-call costs come from `xtask/c/shim_bench.c` (best of 5 rounds of N
//! calls; each side is measured twice, alternating, and the better run is
//! kept). The exec row also runs with an empty preloaded library (what any
//! LD_PRELOAD layer pays at each exec) and prints page faults per exec,
//! which, unlike time, do not move with the machine's load. Whole tools are timed as processes, including `vrift run`'s own
//! start, best of `--runs` after one warm-up. The page cache is warm.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{in_sandbox, mb, print_machine, secs, CommonArgs, Figure, Report, Row, Target};
use crate::cargo;
use crate::gen::{Tree, TreeSpec};
use crate::sandbox::{copy_tree, print_output, time_output, Sandbox, Vrift};

#[derive(clap::Args, Debug)]
pub struct ShimArgs {
    /// Regular files in the generated node_modules (symlinks come on top).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    files: usize,
    /// Total size of the generated files, in MB (10^6 bytes).
    #[arg(long, value_name = "M", default_value_t = 100)]
    size_mb: u64,
    /// Seed of the generator (the same seed gives the same tree).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed runs of each whole-tool command (after one warm-up); the best is reported.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Skip the node rows (they `npm install` real packages from the registry).
    #[arg(long)]
    no_npm: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// Calls per driver round (the driver keeps the best of 5 rounds), chosen
/// so that one round takes 100 ms or more.
const STAT_CALLS: u32 = 100_000;
const OPEN_CALLS: u32 = 50_000;
const READDIR_CALLS: u32 = 500;
const EXEC_CALLS: u32 = 1_000;
/// Driver runs per side, alternating between the sides; the best is kept.
/// On a shared or virtual machine, per-process noise (±15% on a stat) is
/// larger than within a run, so the tight targets get more runs.
const STAT_PASSES: u32 = 5;
const OPEN_PASSES: u32 = 3;
const READDIR_PASSES: u32 = 2;
const EXEC_PASSES: u32 = 4;

/// Real packages with many files for the node rows, pinned so that runs
/// stay comparable; all load with `require`.
const NPM_PACKAGES: &[&str] = &[
    "eslint@8.57.0",
    "@babel/core@7.24.5",
    "typescript@5.4.5",
    "lodash@4.17.21",
];
const NODE_SCRIPT: &str = "const e = require('eslint'), b = require('@babel/core'), \
     t = require('typescript'), l = require('lodash'); \
     console.log(typeof e.ESLint, b.version, t.version, l.VERSION)";
/// The npm install gives up after this long (an unreachable registry).
const NPM_TIMEOUT_SECS: u32 = 180;

pub fn shim(args: ShimArgs) -> Result<()> {
    print_machine()?;
    let built = cargo::build_release_vrift_and_shim()?;
    in_sandbox("shim", &args.common, |sandbox| {
        let vrift = Vrift::new(built.vrift, sandbox);
        ShimBench::new(&args, &vrift, sandbox, built.shim)?.run()
    })
}

/// Where a measured command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Plainly, in the physical copy.
    Native,
    /// Under `vrift run` in the project.
    Vrift,
    /// Under `fakechroot` (no chroot: paths pass through its wrappers), in
    /// the physical copy.
    Fakechroot,
    /// Plainly, in the physical copy, with an empty library preloaded: the
    /// floor any LD_PRELOAD layer pays at each exec.
    EmptyPreload,
}

/// A per-call measurement: the driver's operation on a path in the view,
/// and on the corresponding physical path for the baseline.
struct Case {
    what: String,
    mode: &'static str,
    calls: u32,
    /// Driver runs per side.
    passes: u32,
    view: PathBuf,
    physical: PathBuf,
    baseline_name: &'static str,
    target: Target,
    /// Also measured with an empty preloaded library (exec).
    floor: bool,
}

/// One driver run: nanoseconds per call, and (exec) page faults per child.
#[derive(Clone, Copy, Debug)]
struct Sample {
    ns: f64,
    faults: Option<f64>,
}

struct ShimBench<'a> {
    args: &'a ShimArgs,
    vrift: &'a Vrift<'a>,
    sandbox: &'a Sandbox,
    shim: PathBuf,
    /// The compiled `shim_bench` driver.
    driver: PathBuf,
    /// An empty shared library (see [`Side::EmptyPreload`]).
    empty_preload: PathBuf,
    /// The project whose node_modules is ingested, and its copy.
    project: PathBuf,
    copy: PathBuf,
    /// `fakechroot --version`, if it is installed.
    fakechroot: Option<String>,
}

impl<'a> ShimBench<'a> {
    fn new(
        args: &'a ShimArgs,
        vrift: &'a Vrift<'a>,
        sandbox: &'a Sandbox,
        shim: PathBuf,
    ) -> Result<ShimBench<'a>> {
        // The shim sees absolute paths: resolve symlinks such as /tmp → /private/tmp.
        let root = fs::canonicalize(sandbox.path())?;
        let driver = cargo::compile_c_driver("shim_bench", &root)?;
        let empty_preload = cargo::compile_empty_library(&root)?;
        let fakechroot = fakechroot_version();
        match &fakechroot {
            Some(v) => println!("reference layer: {v}"),
            None => println!(
                "reference layer: fakechroot is not installed (apt-get install fakechroot); \
                 its column shows n/a"
            ),
        }
        Ok(ShimBench {
            args,
            vrift,
            sandbox,
            shim,
            driver,
            empty_preload,
            project: root.join("project"),
            copy: root.join("copy"),
            fakechroot,
        })
    }

    fn run(&self) -> Result<Report> {
        let tree = self.prepare()?;
        let mut report = Report::new("shim");
        report.extend(self.per_call_rows(&tree)?);
        report.extend(self.tool_rows(&tree)?);
        report.extend(self.node_rows()?);
        if self.fakechroot.is_none() {
            report.footnote("fakechroot: n/a (not installed; apt-get install fakechroot)");
        }
        Ok(report)
    }

    /// Generates the project, copies it, then `vrift init` and `vrift ingest
    /// node_modules`.
    fn prepare(&self) -> Result<Tree> {
        let spec = TreeSpec {
            files: self.args.files,
            bytes: self.args.size_mb * 1_000_000,
            dup_percent: 30,
            seed: self.args.seed,
        };
        let tree = Tree::plan(&spec);
        println!(
            "\ngenerating node_modules: {} packages, {} files in {} directories, {}, {} symlinks",
            tree.package_count(),
            tree.file_count(),
            tree.dir_count(),
            mb(tree.bytes()),
            tree.symlink_count()
        );
        let start = Instant::now();
        fs::create_dir_all(self.project.join("src"))?;
        fs::write(
            self.project.join("package.json"),
            "{ \"name\": \"bench\", \"private\": true }\n",
        )?;
        fs::write(
            self.project.join("src/main.c"),
            "int main(void) { return 0; }\n",
        )?;
        tree.write(&self.project.join("node_modules"))?;
        println!("generated in {}", secs(start.elapsed()));
        copy_tree(&self.project, &self.copy)?;
        println!("physical copy (cp -a): {}", self.copy.display());

        print_output(&self.vrift.output(&self.project, &["init"])?);
        let (took, out) = self
            .vrift
            .timed(&self.project, &["ingest", "node_modules"])?;
        print_output(&out);
        println!("vrift ingest node_modules: {}", secs(took));
        let manifest = self
            .project
            .join("node_modules")
            .join(tree.first_manifest());
        ensure!(
            !manifest.exists(),
            "{} is still on disk after ingest",
            manifest.display()
        );
        Ok(tree)
    }

    /// The driver's rows: each case on the view under `vrift run`, natively
    /// on the physical path, and under fakechroot on the physical path.
    fn per_call_rows(&self, tree: &Tree) -> Result<Vec<Row>> {
        let manifest = format!("node_modules/{}", tree.first_manifest());
        let listed = fs::read_dir(self.copy.join("node_modules"))?.count();
        let view_and_copy = |rel: &str| (self.project.join(rel), self.copy.join(rel));
        let same = |p: PathBuf| (p.clone(), p);
        let case =
            |what: String, mode, (calls, passes), (view, physical), baseline_name, target| Case {
                floor: mode == "exec",
                what,
                mode,
                calls,
                passes,
                view,
                physical,
                baseline_name,
                target,
            };
        let cases = [
            case(
                "stat: ingested file".into(),
                "stat",
                (STAT_CALLS, STAT_PASSES),
                view_and_copy(&manifest),
                "native, copy",
                Target::AtMost(Duration::from_nanos(100)),
            ),
            case(
                "stat: outside the domain (/usr/bin/env)".into(),
                "stat",
                (STAT_CALLS, STAT_PASSES),
                same("/usr/bin/env".into()),
                "native",
                Target::Ratio(1.05),
            ),
            case(
                "stat: physical file in the domain (src/main.c)".into(),
                "stat",
                (STAT_CALLS, STAT_PASSES),
                same(self.project.join("src/main.c")),
                "native, same file",
                Target::Ratio(1.10),
            ),
            case(
                "open+read 4K+close: ingested file".into(),
                "open",
                (OPEN_CALLS, OPEN_PASSES),
                view_and_copy(&manifest),
                "native, copy",
                Target::Ratio(1.0),
            ),
            case(
                format!("readdir: ingested dir (node_modules, {listed} entries)"),
                "readdir",
                (READDIR_CALLS, READDIR_PASSES),
                view_and_copy("node_modules"),
                "native, copy",
                Target::None,
            ),
            case(
                "exec /bin/true (fork+exec+wait)".into(),
                "exec",
                (EXEC_CALLS, EXEC_PASSES),
                same("/bin/true".into()),
                "native",
                Target::Ratio(1.10),
            ),
        ];
        println!(
            "\nper-call costs (time per call: best of 5 rounds, best of 2-{STAT_PASSES} runs a side):"
        );
        cases.iter().map(|c| self.measure_case(c)).collect()
    }

    fn measure_case(&self, case: &Case) -> Result<Row> {
        let mut runs: [Vec<Sample>; 4] = Default::default();
        let sides = [
            Side::Native,
            Side::Vrift,
            Side::Fakechroot,
            Side::EmptyPreload,
        ];
        for _ in 0..case.passes {
            for (i, side) in sides.into_iter().enumerate() {
                if (side == Side::Fakechroot && self.fakechroot.is_none())
                    || (side == Side::EmptyPreload && !case.floor)
                {
                    continue;
                }
                let path = if side == Side::Vrift {
                    &case.view
                } else {
                    &case.physical
                };
                runs[i].push(self.driver(side, case.mode, path, case.calls)?);
            }
        }
        let none = Sample {
            ns: f64::INFINITY,
            faults: None,
        };
        let best = |v: &[Sample]| {
            v.iter()
                .copied()
                .min_by(|a, b| a.ns.total_cmp(&b.ns))
                .unwrap_or(none)
        };
        let figure = |v: &[Sample]| Figure::best_secs(v.iter().map(|s| s.ns / 1e9).collect());
        let [native, view, fake, floor] = runs.each_ref().map(|v| best(v));
        let fake = self.fakechroot.as_ref().map(|_| fake.ns);
        println!(
            "  {:<50} vrift run {:>10}  native {:>10}  fakechroot {:>10}  ({} runs of {} calls)",
            case.what,
            time(view.ns),
            time(native.ns),
            fake.map_or("n/a".into(), time),
            case.passes,
            case.calls
        );
        if case.floor {
            let faults = |s: Sample| s.faults.map_or("n/a".into(), |f| format!("{f:.1}"));
            println!(
                "  {:<50} empty preloaded library {:>10} ({:.2}x native); page faults per exec: \
                 native {}, empty library {}, vrift run {}",
                "",
                time(floor.ns),
                floor.ns / native.ns,
                faults(native),
                faults(floor),
                faults(view),
            );
        }
        let mut row = Row::new(case.what.clone(), figure(&runs[0]), figure(&runs[1]))
            .note(format!("baseline: {}", case.baseline_name))
            .target(case.target);
        if fake.is_some() {
            row = row.other("fakechroot", figure(&runs[2]));
        }
        if case.floor {
            row = row.other("empty preload", figure(&runs[3]));
        }
        Ok(row)
    }

    /// `shim_bench MODE PATH CALLS` on `side`: nanoseconds per call. Fails
    /// if the driver does (it exits 1 when the operation fails).
    fn driver(&self, side: Side, mode: &str, path: &Path, calls: u32) -> Result<Sample> {
        let mut cmd = match side {
            Side::Native => self.native(&self.copy, &self.driver),
            Side::Vrift => self.under_vrift(&self.project, &self.driver),
            Side::Fakechroot => {
                let mut cmd = self.native(&self.copy, "fakechroot");
                cmd.arg(&self.driver);
                cmd
            }
            Side::EmptyPreload => {
                let mut cmd = self.native(&self.copy, &self.driver);
                cmd.env("LD_PRELOAD", &self.empty_preload);
                cmd
            }
        };
        cmd.arg(mode).arg(path).arg(calls.to_string());
        let what = format!("shim_bench {mode} {} {calls}", path.display());
        let (_, out) = time_output(&mut cmd, &what)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut numbers = text.lines().map(|l| l.trim().parse::<f64>());
        let ns = numbers
            .next()
            .and_then(|n| n.ok())
            .with_context(|| format!("`{what}` printed {text:?}, not a number"))?;
        let faults = numbers.next().and_then(|n| n.ok());
        Ok(Sample { ns, faults })
    }

    /// `program` run plainly in `cwd`, with the sandbox's environment.
    fn native(&self, cwd: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.sandbox.command(program);
        cmd.current_dir(cwd);
        cmd
    }

    /// `vrift run -- program` in the project at `cwd`, with the shim built
    /// for this bench.
    fn under_vrift(&self, cwd: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.vrift.command(cwd, &["run", "--"]);
        cmd.arg(program).env("VRIFT_SHIM_PATH", &self.shim);
        cmd
    }

    /// Whole tools on the generated tree: `find | wc -l`, and `vrift run`'s
    /// own start for reference.
    fn tool_rows(&self, tree: &Tree) -> Result<Vec<Row>> {
        println!(
            "\nwhole tools (wall clock, best of {} runs after a warm-up):",
            self.args.runs
        );
        let start = self.best_of("true (process start)", |side| match side {
            Side::Vrift => self.under_vrift(&self.project, "true"),
            _ => self.native(&self.copy, "true"),
        })?;
        let script = "find node_modules -type f | wc -l";
        let find = self.best_of(script, |side| {
            let mut cmd = match side {
                Side::Vrift => self.under_vrift(&self.project, "sh"),
                _ => self.native(&self.copy, "sh"),
            };
            cmd.args(["-c", script]);
            cmd
        })?;
        let (view_count, copy_count) = (find.view_out.trim(), find.native_out.trim());
        ensure!(
            view_count == copy_count,
            "`{script}` counts {view_count} files in the view but {copy_count} in the copy"
        );
        ensure!(
            copy_count == tree.file_count().to_string(),
            "`{script}` counts {copy_count} files in the copy, but {} were generated",
            tree.file_count()
        );
        println!("  both count {copy_count} files");
        Ok(vec![
            Row::new(
                "vrift run -- true (vrift run's own start)",
                start.native,
                start.view,
            )
            .note("baseline: true"),
            Row::new(
                format!("{script} ({copy_count} files)"),
                find.native,
                find.view,
            )
            .note("baseline: native, copy")
            .target(Target::Faster),
        ])
    }

    /// `node -e "require(…)"` of real packages installed by npm, ingested vs
    /// on disk; no rows (and a message) when npm, node or the registry is
    /// unavailable.
    fn node_rows(&self) -> Result<Vec<Row>> {
        println!(
            "\nnode: require() of real packages ({})",
            NPM_PACKAGES.join(" ")
        );
        if self.args.no_npm {
            println!("  skipped: --no-npm");
            return Ok(Vec::new());
        }
        for tool in ["node", "npm"] {
            if !Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                println!("  skipped: {tool} is not installed");
                return Ok(Vec::new());
            }
        }
        let root = self.project.with_file_name("npm");
        let (app, disk) = (root.join("app"), root.join("disk"));
        fs::create_dir_all(&app)?;
        fs::write(
            app.join("package.json"),
            "{ \"name\": \"bench-app\", \"version\": \"1.0.0\", \"private\": true }\n",
        )?;
        if let Err(e) = npm_install(&app) {
            println!("  skipped: {e:#}");
            return Ok(Vec::new());
        }
        let census = crate::compare::census(&app.join("node_modules"))?;
        println!(
            "  installed: {} files in {} directories, {}",
            census.files,
            census.dirs,
            mb(census.bytes)
        );
        copy_tree(&app, &disk)?;
        print_output(&self.vrift.output(&app, &["init"])?);
        print_output(&self.vrift.output(&app, &["ingest", "node_modules"])?);
        let what = "node -e \"require('eslint'); require('@babel/core'); …\"";
        let node = self.best_of(what, |side| {
            let mut cmd = match side {
                Side::Vrift => self.under_vrift(&app, "node"),
                _ => self.native(&disk, "node"),
            };
            cmd.args(["-e", NODE_SCRIPT]);
            cmd
        })?;
        ensure!(
            node.view_out == node.native_out,
            "node printed {:?} with the rift but {:?} on disk",
            node.view_out,
            node.native_out
        );
        println!("  both print: {}", node.native_out.trim());
        Ok(vec![Row::new(
            format!("{what} ({} files)", census.files),
            node.native,
            node.view,
        )
        .note("baseline: on disk")
        .target(Target::Ratio(0.8))])
    }

    /// Runs the command `make(side)` makes for the view and for the copy,
    /// alternating, one warm-up each then `--runs` timed; keeps the best.
    fn best_of(&self, what: &str, make: impl Fn(Side) -> Command) -> Result<Timed> {
        let mut runs = [Vec::new(), Vec::new()];
        let mut outs = [String::new(), String::new()];
        for run in 0..=self.args.runs {
            for (i, side) in [Side::Native, Side::Vrift].into_iter().enumerate() {
                let (took, out) = time_output(&mut make(side), what)?;
                if run > 0 {
                    runs[i].push(took);
                }
                outs[i] = String::from_utf8_lossy(&out.stdout).into_owned();
            }
        }
        let [native, view] = runs.map(|r| Figure::best(&r));
        println!(
            "  {what:<50} vrift run {:>10}  native {:>10}",
            time(view.seconds * 1e9),
            time(native.seconds * 1e9)
        );
        let [native_out, view_out] = outs;
        Ok(Timed {
            view,
            native,
            view_out,
            native_out,
        })
    }
}

/// Best times of a command with and without the shim (every run kept),
/// and what each printed on its last run.
struct Timed {
    view: Figure,
    native: Figure,
    view_out: String,
    native_out: String,
}

fn fakechroot_version() -> Option<String> {
    let out = Command::new("fakechroot").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `npm install` of [`NPM_PACKAGES`] into `dir`, bounded by a timeout.
fn npm_install(dir: &Path) -> Result<()> {
    println!("  $ npm install {}", NPM_PACKAGES.join(" "));
    let start = Instant::now();
    let out = Command::new("timeout")
        .arg(NPM_TIMEOUT_SECS.to_string())
        .args(["npm", "install", "--no-audit", "--no-fund", "--no-progress"])
        .args(NPM_PACKAGES)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run npm (through timeout)")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr
            .lines()
            .find(|l| l.contains("ERR"))
            .or_else(|| stderr.lines().next())
            .unwrap_or("");
        let why = if out.status.code() == Some(124) {
            format!("timed out after {NPM_TIMEOUT_SECS} s")
        } else {
            out.status.to_string()
        };
        bail!("npm install failed ({why}; registry unreachable?): {first}");
    }
    println!("  npm install: {}", secs(start.elapsed()));
    Ok(())
}

/// Nanoseconds as ns, µs or ms, whichever reads best.
fn time(ns: f64) -> String {
    if ns < 10_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 10_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}
