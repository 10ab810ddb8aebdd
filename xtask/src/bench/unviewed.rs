//! `cargo xtask bench unviewed`: programs that cannot load the library
//! (Go, esbuild's Go binary, static C) under `vrift run` against the same
//! commands run natively on a physical copy, in the same run.
//!
//! The vrift side runs such programs in the FUSE view (a mount namespace
//! per program with the view mounted over the project:
//! `VRIFT_UNVIEWED_BY=fuse`); the rows marked "supervisor" run them under
//! the seccomp supervisor instead (`VRIFT_UNVIEWED_BY=seccomp`).
//!
//! Rows:
//! - `go build` of a generated module (PACKAGES packages in a dependency
//!   chain of depth 4, plus a main package), clean (a fresh GOCACHE each
//!   run, both sides; the vrift side discards the rift first) and no-op
//!   (warm cache, output present);
//! - an esbuild bundle of a generated tree of JS modules, when `npm` can
//!   install esbuild (into the bench directory, outside both trees: the
//!   trees get a copy of its node_modules, which the project holds on disk);
//! - a statically linked C loop of `stat` calls on a file of the rift and
//!   on a path outside the project: the supervisor's cost per served call
//!   and per call it hands back to the kernel;
//! - the floor: the no-op build and the outside stat loop natively under
//!   `notify_floor.c`, a listener for the same calls that answers every
//!   one CONTINUE without reading it — what any seccomp-notify supervisor
//!   costs before it looks at a path; and the builds natively in the
//!   physical copy seen through `bindfs` (libfuse's C passthrough
//!   filesystem, one mount kept for the whole run, when it is installed)
//!   — what a FUSE filesystem costs that only passes calls on (the bounds
//!   on the goal below).
//!
//! Medians of RUNS runs after one untimed run of each kind; the sides
//! alternate. The goal (issue 13) is at most 1.3× native for the builds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::{human, in_sandbox, print_machine, CommonArgs, Figure, Report, Row, Target};
use crate::cargo;
use crate::sandbox::{copy_tree, time_output, Sandbox, Vrift};

const GOAL: f64 = 1.3;

#[derive(clap::Args, Debug)]
pub struct UnviewedArgs {
    /// Timed runs of each row (after one untimed warm-up); the median is reported.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Packages of the generated Go module.
    #[arg(long, value_name = "N", default_value_t = 24,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    packages: u32,
    /// JS modules of the generated esbuild tree.
    #[arg(long, value_name = "N", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    modules: u32,
    /// `stat` calls per run of the static C loop.
    #[arg(long, value_name = "N", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    stats: u32,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn unviewed(args: UnviewedArgs) -> Result<()> {
    print_machine()?;
    let built = cargo::build_release_vrift_and_shim()?;
    in_sandbox("unviewed", &args.common, |sandbox| {
        let vrift = Vrift::new(built.vrift, sandbox);
        let result = Bench::new(&args, &vrift, sandbox, built.shim).and_then(|b| b.run());
        // Never leave a daemon behind in a directory about to be removed.
        let _ = vrift.output(&sandbox.path().join("project"), &["daemon", "stop"]);
        result
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Native,
    /// `vrift run`, the program in the FUSE view.
    Vrift,
    /// `vrift run`, the program under the seccomp supervisor.
    Supervisor,
    /// Natively, in the physical copy, under `notify_floor.c`: the same
    /// calls notified to a supervisor that answers CONTINUE unread.
    Floor,
    /// Natively, in the physical copy seen through a bindfs mount.
    Bindfs,
}

struct Bench<'a> {
    args: &'a UnviewedArgs,
    vrift: &'a Vrift<'a>,
    sandbox: &'a Sandbox,
    shim: PathBuf,
    root: PathBuf,
    project: PathBuf,
    copy: PathBuf,
    /// The compiled `notify_floor.c` (None: cc failed; its rows are skipped).
    floor: Option<PathBuf>,
    /// The bindfs mount of the copy (None: bindfs is not installed).
    bindfs: Option<BindfsMount>,
}

/// A bindfs mount of a directory, unmounted on drop.
struct BindfsMount(PathBuf);

impl BindfsMount {
    /// `bindfs` of `dir` at `at`, if bindfs can mount it.
    fn mount(dir: &Path, at: &Path) -> Option<BindfsMount> {
        fs::create_dir_all(at).ok()?;
        let ok = Command::new("bindfs")
            .args(["--no-allow-other", "-o", "attr_timeout=1,entry_timeout=1"])
            .arg(dir)
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("bindfs floor rows skipped: bindfs is not installed or cannot mount");
        }
        ok.then(|| BindfsMount(at.to_path_buf()))
    }
}

impl Drop for BindfsMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.0).status();
    }
}

impl<'a> Bench<'a> {
    fn new(
        args: &'a UnviewedArgs,
        vrift: &'a Vrift<'a>,
        sandbox: &'a Sandbox,
        shim: PathBuf,
    ) -> Result<Bench<'a>> {
        let root = fs::canonicalize(sandbox.path())?;
        let project = root.join("project");
        let copy = root.join("copy");
        write_go_module(&project.join("gomod"), args.packages)?;
        let esbuild = install_esbuild(sandbox, &root);
        match &esbuild {
            Ok(modules) => {
                write_js_tree(&project.join("web"), args.modules)?;
                copy_tree(modules, &project.join("web/node_modules"))?;
            }
            Err(e) => println!("esbuild row skipped: {e:#}"),
        }
        copy_tree(&project, &copy)?;
        vrift.output(&project, &["init"])?;
        println!(
            "project: a Go module of {} packages (and {} JS modules for esbuild) in {}; \
             physical copy for the native side in {}",
            args.packages,
            args.modules,
            project.display(),
            copy.display()
        );
        let floor = build_floor(&root);
        // A copy of its own: the builds' outputs (and Go's cache keys,
        // which hold the directory) must not be the native side's.
        copy_tree(&copy, &root.join("copy-bindfs"))?;
        let bindfs = BindfsMount::mount(&root.join("copy-bindfs"), &root.join("bindfs"));
        Ok(Bench {
            args,
            vrift,
            sandbox,
            shim,
            root,
            project,
            copy,
            floor,
            bindfs,
        })
    }

    /// `sh -c script` in `dir` of the side's tree, natively or under `vrift run`.
    fn sh(&self, side: Side, dir: &str, script: &str) -> Command {
        let go_env = |cmd: &mut Command, tag: &str| {
            cmd.env("GOCACHE", self.root.join(format!("gocache-{tag}")))
                .env("GOPATH", self.root.join("gopath"))
                .env("GOFLAGS", "-mod=mod")
                .env("GOTOOLCHAIN", "local")
                .env("GOTELEMETRY", "off");
        };
        match side {
            Side::Native => {
                let mut cmd = self.sandbox.command("sh");
                cmd.args(["-c", script]).current_dir(self.copy.join(dir));
                go_env(&mut cmd, "native");
                cmd
            }
            Side::Floor => {
                let floor = self
                    .floor
                    .as_ref()
                    .expect("floor rows need the floor program");
                let mut cmd = self.sandbox.command(floor);
                cmd.args(["sh", "-c", script])
                    .current_dir(self.copy.join(dir));
                go_env(&mut cmd, "native");
                cmd
            }
            Side::Bindfs => {
                let mount = &self.bindfs.as_ref().expect("bindfs rows need the mount").0;
                let mut cmd = self.sandbox.command("sh");
                cmd.args(["-c", script]).current_dir(mount.join(dir));
                go_env(&mut cmd, "bindfs");
                cmd
            }
            Side::Vrift | Side::Supervisor => {
                let mut cmd = self
                    .vrift
                    .command(&self.project.join(dir), &["run", "--", "sh", "-c", script]);
                cmd.env("VRIFT_SHIM_PATH", &self.shim);
                let by = if side == Side::Vrift {
                    "fuse"
                } else {
                    "seccomp"
                };
                cmd.env("VRIFT_UNVIEWED_BY", by);
                go_env(&mut cmd, "vrift");
                cmd
            }
        }
    }

    fn time(&self, side: Side, dir: &str, script: &str) -> Result<Duration> {
        Ok(time_output(&mut self.sh(side, dir, script), script)?.0)
    }

    /// Median of `runs` timed runs per side (sides alternating) after one
    /// untimed run of each; `before` runs untimed before each run.
    fn row(
        &self,
        name: &str,
        dir: &str,
        script: &str,
        before: &dyn Fn(Side) -> Result<()>,
        goal: Option<f64>,
    ) -> Result<Row> {
        self.row_against(Side::Vrift, name, dir, script, before, goal)
    }

    /// [`Bench::row`] with `against` in the vrift column.
    fn row_against(
        &self,
        against: Side,
        name: &str,
        dir: &str,
        script: &str,
        before: &dyn Fn(Side) -> Result<()>,
        goal: Option<f64>,
    ) -> Result<Row> {
        let mut samples = [Vec::new(), Vec::new()];
        for i in 0..=self.args.runs {
            for (k, side) in [Side::Native, against].into_iter().enumerate() {
                before(side)?;
                let took = self.time(side, dir, script)?;
                if i > 0 {
                    samples[k].push(took);
                }
            }
        }
        let [native, vrift] = samples.map(|s| Figure::median(&s));
        println!(
            "  {name}: native {} · vrift {} · {:.2}×",
            human(native.duration()),
            human(vrift.duration()),
            vrift.seconds / native.seconds.max(1e-9)
        );
        let row = Row::new(name, native, vrift);
        Ok(match goal {
            Some(g) => row.target(Target::Ratio(g)),
            None => row,
        })
    }

    fn run(&self) -> Result<Report> {
        let mut report = Report::new("unviewed");
        let clear_cache = |side: Side| -> Result<()> {
            let tag = if matches!(side, Side::Native | Side::Floor) {
                "native"
            } else {
                "vrift"
            };
            let _ = fs::remove_dir_all(self.root.join(format!("gocache-{tag}")));
            if matches!(side, Side::Vrift | Side::Supervisor) {
                self.vrift.output(&self.project, &["discard", "--yes"])?;
            } else {
                let _ = fs::remove_file(self.copy.join("gomod/app"));
            }
            Ok(())
        };
        println!("\nrows (median of {} runs):", self.args.runs);
        report.push(self.row(
            "go build, clean (fresh GOCACHE)",
            "gomod",
            "go build -o app .",
            &clear_cache,
            Some(GOAL),
        )?);
        let native_out = self.sh(Side::Native, "gomod", "./app").output()?;
        let vrift_out = self.sh(Side::Vrift, "gomod", "./app").output()?;
        ensure!(
            native_out.status.success() && native_out.stdout == vrift_out.stdout,
            "the two builds' programs print different things"
        );
        ensure!(
            !self.project.join("gomod/app").exists(),
            "go build wrote the project's disk"
        );
        report.push(self.row(
            "go build, no-op (warm GOCACHE)",
            "gomod",
            "go build -o app .",
            &|_| Ok(()),
            Some(GOAL),
        )?);
        report.push(self.row_against(
            Side::Supervisor,
            "go build, clean, supervisor",
            "gomod",
            "go build -o app .",
            &clear_cache,
            None,
        )?);
        // The no-op build under the supervisor and the two floors.
        let others = [
            (Side::Supervisor, true, "go build, no-op, supervisor"),
            (
                Side::Floor,
                self.floor.is_some(),
                "go build, no-op, floor (CONTINUE-only listener)",
            ),
            (
                Side::Bindfs,
                self.bindfs.is_some(),
                "go build, no-op, floor (bindfs)",
            ),
        ];
        for (side, _, name) in others.into_iter().filter(|o| o.1) {
            let noop = &|_| Ok(());
            report.push(self.row_against(side, name, "gomod", "go build -o app .", noop, None)?);
        }
        if self.project.join("web/node_modules").is_dir() {
            report.push(self.row(
                &format!("esbuild bundle of {} modules", self.args.modules),
                "web",
                "node_modules/.bin/esbuild src/index.js --bundle --log-level=warning --outfile=dist/out.js",
                &|_| Ok(()),
                Some(GOAL),
            )?);
            report.push(self.row_against(
                Side::Supervisor,
                &format!("esbuild bundle of {} modules, supervisor", self.args.modules),
                "web",
                "node_modules/.bin/esbuild src/index.js --bundle --log-level=warning --outfile=dist/out.js",
                &|_| Ok(()),
                None,
            )?);
            if self.bindfs.is_some() {
                report.push(self.row_against(
                    Side::Bindfs,
                    &format!("esbuild bundle of {} modules, floor (bindfs)", self.args.modules),
                    "web",
                    "node_modules/.bin/esbuild src/index.js --bundle --log-level=warning --outfile=dist/out.js",
                    &|_| Ok(()),
                    None,
                )?);
            }
            ensure!(
                !self.project.join("web/dist/out.js").exists(),
                "esbuild wrote the project's disk"
            );
        }
        report.extend(self.stat_rows()?);
        report.footnote(
            "\nbaseline: the same commands natively in a physical copy (cp -a); vrift: `vrift run -- sh -c …` \
             in the project, the program in the FUSE view (its own mount namespace), or served by the \
             seccomp supervisor in the rows so marked (floor rows: natively under the CONTINUE-only \
             listener; bindfs rows: natively through a bindfs mount of the copy, kept for the run). Both sides pay `sh`'s start; the vrift side also `vrift run`'s and the FUSE \
             view's or the supervisor's start (one exec of vrift).",
        );
        Ok(report)
    }

    /// Served and handed-back calls of a static program, per call.
    fn stat_rows(&self) -> Result<Vec<Row>> {
        let src = self.root.join("stat_loop.c");
        fs::write(
            &src,
            "#include <stdlib.h>\n#include <sys/stat.h>\n\
             int main(int c, char **v) { struct stat st; long n = atol(v[2]);\n\
             for (long i = 0; i < n; i++) if (stat(v[1], &st)) return 1; return 0; }\n",
        )?;
        let bin = self.root.join("stat_loop");
        let ok = Command::new("cc")
            .args(["-O2", "-static", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .context("cannot run cc")?
            .success();
        if !ok {
            println!("static stat rows skipped: cc -static failed");
            return Ok(Vec::new());
        }
        // A file of the rift on the vrift side (written in the view), the
        // same file on disk natively.
        fs::write(self.copy.join("gomod/rift.txt"), "r\n")?;
        let mut w = self.sh(Side::Vrift, "gomod", "echo r > rift.txt");
        ensure!(w.status()?.success(), "cannot write a rift file");
        let n = self.args.stats;
        let mut rows = Vec::new();
        for (name, path) in [
            ("stat of a rift file, per call", "rift.txt"),
            ("stat outside the project, per call", "/usr/bin/env"),
        ] {
            let script = format!("{} {path} {n}", bin.display());
            let empty = format!("{} {path} 0", bin.display());
            for (side, how) in [(Side::Vrift, ""), (Side::Supervisor, ", supervisor")] {
                let name = format!("{name}{how}");
                let row = self.row_against(side, &name, "gomod", &script, &|_| Ok(()), None)?;
                let base =
                    self.row_against(side, "  (an empty run)", "gomod", &empty, &|_| Ok(()), None)?;
                rows.push(per_call(row, &base, n));
            }
        }
        if self.floor.is_some() {
            // What a notification costs before anything is read or decided.
            let script = format!("{} /usr/bin/env {n}", bin.display());
            let empty = format!("{} /usr/bin/env 0", bin.display());
            let name = "stat, per call, floor (CONTINUE-only listener)";
            let row = self.row_against(Side::Floor, name, "gomod", &script, &|_| Ok(()), None)?;
            let base = self.row_against(
                Side::Floor,
                "  (an empty run)",
                "gomod",
                &empty,
                &|_| Ok(()),
                None,
            )?;
            rows.push(per_call(row, &base, n));
        }
        Ok(rows)
    }
}

/// Compiles `notify_floor.c` (the floor of seccomp user notification).
fn build_floor(root: &Path) -> Option<PathBuf> {
    let src = root.join("notify_floor.c");
    fs::write(&src, include_str!("../notify_floor.c")).ok()?;
    let bin = root.join("notify_floor");
    let ok = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("floor rows skipped: cc could not build notify_floor.c");
    }
    ok.then_some(bin)
}

/// Per call: each run's time less the empty run's median, over `n` (never
/// below zero).
fn per_call(row: Row, empty: &Row, n: u32) -> Row {
    let less = |f: &Option<Figure>, base: &Option<Figure>| {
        let base = base.as_ref().map_or(0.0, |b| b.seconds);
        f.as_ref()
            .map(|f| f.map(|s| (s - base).max(0.0) / f64::from(n)))
    };
    Row {
        baseline: less(&row.baseline, &empty.baseline),
        vrift: less(&row.vrift, &empty.vrift),
        ..row
    }
    .note(format!("per call: {n} calls less an empty run"))
}

/// A module of `packages` packages: package i imports i-1 … i-4, each with
/// a few files of small functions; main imports the last four.
fn write_go_module(dir: &Path, packages: u32) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("go.mod"), "module example.com/bench\n\ngo 1.19\n")?;
    for p in 0..packages {
        let pkg = dir.join(format!("p{p}"));
        fs::create_dir_all(&pkg)?;
        let deps: Vec<u32> = (p.saturating_sub(4)..p).collect();
        for f in 0..4 {
            let mut src = format!("package p{p}\n\n");
            if f == 0 && !deps.is_empty() {
                src.push_str("import (\n");
                for d in &deps {
                    src.push_str(&format!("\t\"example.com/bench/p{d}\"\n"));
                }
                src.push_str(")\n\n");
            }
            for k in 0..40 {
                src.push_str(&format!(
                    "func F{f}_{k}(x int) int {{\n\ty := x\n\tfor i := 0; i < {k}; i++ {{\n\t\ty = y*31 + i\n\t}}\n\treturn y\n}}\n\n"
                ));
            }
            if f == 0 {
                src.push_str("func Sum(x int) int {\n\ts := F0_1(x)\n");
                for d in &deps {
                    src.push_str(&format!("\ts += p{d}.Sum(x)\n"));
                }
                src.push_str("\treturn s\n}\n");
            }
            fs::write(pkg.join(format!("f{f}.go")), src)?;
        }
    }
    let mut main = String::from("package main\n\nimport (\n\t\"fmt\"\n");
    let last: Vec<u32> = (packages.saturating_sub(4)..packages).collect();
    for d in &last {
        main.push_str(&format!("\t\"example.com/bench/p{d}\"\n"));
    }
    main.push_str(")\n\nfunc main() {\n\ts := 0\n");
    for d in &last {
        main.push_str(&format!("\ts += p{d}.Sum(3)\n"));
    }
    main.push_str("\tfmt.Println(s)\n}\n");
    fs::write(dir.join("main.go"), main)?;
    Ok(())
}

/// `src/index.js` requiring `modules` modules in a tree.
fn write_js_tree(dir: &Path, modules: u32) -> Result<()> {
    let src = dir.join("src");
    fs::create_dir_all(&src)?;
    fs::write(
        dir.join("package.json"),
        r#"{"name":"bench","version":"1.0.0","private":true}"#,
    )?;
    let mut index = String::new();
    for m in 0..modules {
        let sub = src.join(format!("d{}", m / 50));
        fs::create_dir_all(&sub)?;
        let body = format!(
            "export function f{m}(x) {{ let y = x; for (let i = 0; i < {k}; i++) y = (y * 31 + i) % 1000003; return y; }}\n",
            k = m % 17
        );
        fs::write(sub.join(format!("m{m}.js")), body)?;
        index.push_str(&format!(
            "import {{ f{m} }} from './d{}/m{m}.js';\n",
            m / 50
        ));
    }
    index.push_str("let s = 0;\n");
    for m in 0..modules {
        index.push_str(&format!("s += f{m}({m});\n"));
    }
    index.push_str("console.log(s);\n");
    fs::write(src.join("index.js"), index)?;
    Ok(())
}

/// `npm install esbuild` into `<root>/esbuild`, natively; returns its
/// node_modules.
fn install_esbuild(sandbox: &Sandbox, root: &Path) -> Result<PathBuf> {
    let dir = root.join("esbuild");
    fs::create_dir_all(&dir)?;
    fs::write(
        dir.join("package.json"),
        r#"{"name":"esbuild-holder","version":"1.0.0","private":true}"#,
    )?;
    let out = sandbox
        .command("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "esbuild@0.19.12",
        ])
        .env("npm_config_cache", root.join("npm-cache"))
        .current_dir(&dir)
        .output()
        .context("cannot run npm")?;
    ensure!(
        out.status.success(),
        "npm install esbuild failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(dir.join("node_modules"))
}
