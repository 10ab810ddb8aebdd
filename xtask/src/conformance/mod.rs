//! `cargo xtask conformance`: the view's POSIX answers against suites
//! nobody here wrote — the Linux Test Project's filesystem syscall tests
//! ([`ltp`]) and gVisor's syscall tests ([`gvisor`]) — run natively and in
//! the rift side by side.
//!
//! Neither suite is part of this repository, and CI cannot fetch them:
//! `--ltp DIR` (or `VRIFT_LTP_DIR`) names a built LTP tree, `--gvisor DIR`
//! (or `VRIFT_GVISOR_DIR`) a gVisor source tree, whose tests this task
//! builds with g++; a suite named by neither is SKIPPED (exit 0).
//!
//! Each test runs twice, in the same sandbox: natively with its temporary
//! directory (`TMPDIR` and `TEST_TMPDIR`) on a physical directory, and
//! under `vrift run` with them inside a vrift project, so every file the
//! test makes, changes or removes is in the rift. The outcomes are
//! compared per test; for each difference the first result line that
//! differs is shown, and the run ends with the figures: tests run, passed
//! natively, passed in the rift, and the tests passing natively only.
//!
//! `--user nobody` (root only) runs both sides, `vrift init` and the
//! daemon included, as `nobody` through `setpriv`; `--user both` runs as
//! the current user, then as `nobody`.

pub mod gvisor;
pub mod ltp;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::cargo;
use crate::sandbox::{time_output, Sandbox};

/// The environment variables naming the suites when no flag does.
const LTP_ENV: &str = "VRIFT_LTP_DIR";
const GVISOR_ENV: &str = "VRIFT_GVISOR_DIR";

#[derive(clap::Args, Debug)]
pub struct ConformanceArgs {
    /// The LTP source tree, configured and with the tests of the syscall
    /// groups built (default: $VRIFT_LTP_DIR).
    #[arg(long, value_name = "DIR")]
    ltp: Option<PathBuf>,
    /// A gVisor source tree: its `test/syscalls/linux` tests of the file
    /// calls are built with g++, gtest, gmock and abseil (Debian's
    /// libgtest-dev, libgmock-dev, libabsl-dev) into target/gvisor-tests
    /// (default: $VRIFT_GVISOR_DIR).
    #[arg(long, value_name = "DIR")]
    gvisor: Option<PathBuf>,
    /// Run only the tests whose name starts with one of these prefixes
    /// (comma-separated, e.g. `open,stat`; gVisor's are `stat_test/StatTest.Fstat`).
    #[arg(long, value_name = "PREFIX,…", value_delimiter = ',')]
    filter: Vec<String>,
    /// Who runs the tests: the current user, `nobody` (root only, through
    /// setpriv), or both in turn.
    #[arg(long, value_enum, default_value_t = Who::Current)]
    user: Who,
    /// Seconds after which a test (and all it started) is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    timeout: u64,
    /// Test every filesystem LTP can make on a loop device (default: only
    /// ext4, through LTP_SINGLE_FS_TYPE).
    #[arg(long)]
    all_filesystems: bool,
    /// Create the sandbox below DIR (default: $TMPDIR or /tmp).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the sandbox (with each test's output under logs/) afterwards.
    #[arg(long)]
    keep: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Who {
    Current,
    Nobody,
    Both,
}

/// The two suites, and how each reads a run's output.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Suite {
    Ltp,
    Gvisor,
}

impl Suite {
    fn outcome(self, log: &Path, code: Option<i32>) -> Result<Outcome> {
        match self {
            Suite::Ltp => ltp::outcome(log, code),
            Suite::Gvisor => gvisor::outcome(log, code),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Suite::Ltp => "LTP",
            Suite::Gvisor => "gVisor",
        }
    }
}

pub fn conformance(args: ConformanceArgs) -> Result<()> {
    let dir = |flag: &Option<PathBuf>, env: &str| {
        flag.clone()
            .or_else(|| std::env::var_os(env).map(PathBuf::from))
    };
    let ltp = dir(&args.ltp, LTP_ENV);
    let gvisor = dir(&args.gvisor, GVISOR_ENV);
    if ltp.is_none() && gvisor.is_none() {
        println!(
            "conformance: SKIPPED: no suite (pass --ltp DIR or set {LTP_ENV}, \
             --gvisor DIR or set {GVISOR_ENV}; see `cargo xtask conformance --help`)"
        );
        return Ok(());
    }
    let mut suites = Vec::new();
    if let Some(ltp) = ltp {
        let ltp = fs::canonicalize(&ltp)
            .with_context(|| format!("the LTP tree {} does not exist", ltp.display()))?;
        let tests = ltp::discover(&ltp, &args.filter)?;
        ensure!(
            !tests.is_empty(),
            "no built LTP test in {} matches (build the syscall groups first; see --help)",
            ltp.display()
        );
        suites.push((Suite::Ltp, tests, ltp::helper_dirs(&ltp)));
    } else {
        println!("conformance: LTP SKIPPED (no --ltp DIR, no {LTP_ENV})");
    }
    if let Some(src) = gvisor {
        let src = fs::canonicalize(&src)
            .with_context(|| format!("the gVisor tree {} does not exist", src.display()))?;
        let bins = gvisor::build(&src)?;
        let tests = gvisor::discover(&bins, &args.filter)?;
        ensure!(!tests.is_empty(), "no gVisor test matches the filter");
        suites.push((Suite::Gvisor, tests, Vec::new()));
    } else {
        println!("conformance: gVisor SKIPPED (no --gvisor DIR, no {GVISOR_ENV})");
    }
    let root = is_root()?;
    let users: Vec<Option<User>> = match args.user {
        Who::Current => vec![None],
        Who::Nobody => vec![Some(User::nobody(root)?)],
        Who::Both => vec![None, Some(User::nobody(root)?)],
    };
    let built = cargo::build_release_vrift_and_shim()?;
    let mut figures = Vec::new();
    for (suite, tests, path) in &suites {
        for user in &users {
            let who = match user {
                Some(u) => format!("nobody (uid {}, through setpriv)", u.uid),
                None if root => "root".to_string(),
                None => "the current user".to_string(),
            };
            println!("\n== {} {} tests as {who}", suite.name(), tests.len());
            let sandbox = Sandbox::create(args.dir.as_deref(), "vrift-conformance-")?;
            let run = Run::new(&args, *suite, path, &sandbox, &built, *user)?;
            let result = run.all(tests);
            let _ = run.stop_daemon();
            // A test as root may leave a file immutable (unlink09 does, in
            // the rift on a staging file): clear the flags so the sandbox
            // can go.
            let _ = Command::new("chattr")
                .args(["-R", "-f", "-i", "-a"])
                .arg(sandbox.path())
                .stderr(Stdio::null())
                .status();
            unmount_below(sandbox.path());
            if args.keep {
                println!("logs: {}", sandbox.path().join("logs").display());
            }
            sandbox.finish(args.keep)?;
            // Differences are the task's findings, listed above, not its
            // failure: the exit status says whether the runs completed.
            figures.push(format!(
                "{:<7} {:<8} {}",
                suite.name(),
                short(user, root),
                result?
            ));
        }
    }
    println!("\nsuite   user     figures");
    for line in figures {
        println!("{line}");
    }
    Ok(())
}

/// Detaches what a test left mounted below `dir` (LTP mounts a loop
/// device in its temporary directory, and a killed test leaves it), deepest
/// first, so the sandbox can be removed.
fn unmount_below(dir: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}

fn short(user: &Option<User>, root: bool) -> &'static str {
    match user {
        Some(_) => "nobody",
        None if root => "root",
        None => "current",
    }
}

/// Whether a test named `name` passes the `--filter` prefixes.
fn selected(name: &str, filter: &[String]) -> bool {
    filter.is_empty() || filter.iter().any(|f| name.starts_with(f.as_str()))
}

/// One test: its name, program and arguments.
#[derive(Debug, Clone)]
pub struct Test {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

fn is_root() -> Result<bool> {
    Ok(id(&["-u"])? == 0)
}

/// `id ARGS` as a number.
fn id(args: &[&str]) -> Result<u32> {
    let out = Command::new("id")
        .args(args)
        .output()
        .context("cannot run id")?;
    ensure!(out.status.success(), "id {} failed", args.join(" "));
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// A user other than the current one, switched to with setpriv.
#[derive(Debug, Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
}

impl User {
    fn nobody(root: bool) -> Result<User> {
        ensure!(
            root,
            "--user nobody needs root (the tests are started through setpriv --reuid)"
        );
        Ok(User {
            uid: id(&["-u", "nobody"])?,
            gid: id(&["-g", "nobody"])?,
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Native,
    Rift,
}

/// What one run of a test gave, as its suite reads it.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Whether the run passed (not only skipped).
    passed: bool,
    /// One word: pass, conf/skip, FAIL, BROK, SIGn, TIME…
    verdict: String,
    /// The suite's counts of result lines, compared too.
    detail: String,
    /// The result lines (kind, text), in order, with the temporary
    /// directories replaced.
    results: Vec<(usize, String)>,
}

impl Outcome {
    fn cell(&self) -> String {
        format!("{:<5} {}", self.verdict, self.detail)
    }

    fn same(&self, other: &Outcome) -> bool {
        self.verdict == other.verdict && self.detail == other.detail
    }
}

struct Run<'a> {
    args: &'a ConformanceArgs,
    suite: Suite,
    sandbox: &'a Sandbox,
    vrift: PathBuf,
    shim: PathBuf,
    user: Option<User>,
    native_tmp: PathBuf,
    project: PathBuf,
    rift_tmp: PathBuf,
    runtime: PathBuf,
    logs: PathBuf,
    path: std::ffi::OsString,
}

impl<'a> Run<'a> {
    fn new(
        args: &'a ConformanceArgs,
        suite: Suite,
        helper_dirs: &[PathBuf],
        sandbox: &'a Sandbox,
        built: &cargo::Release,
        user: Option<User>,
    ) -> Result<Run<'a>> {
        let root = fs::canonicalize(sandbox.path())?;
        let native_tmp = root.join("native");
        let project = root.join("project");
        let rift_tmp = project.join("tmp");
        let runtime = root.join("run");
        let logs = root.join("logs");
        for d in [&native_tmp, &rift_tmp, &runtime, &logs] {
            fs::create_dir_all(d)?;
        }
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700))?;
        if let Some(u) = user {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", u.uid, u.gid))
                .arg(&root)
                .status()
                .context("cannot run chown")?;
            ensure!(status.success(), "chown -R {} failed", root.display());
        }
        let mut dirs = helper_dirs.to_vec();
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(dirs)?;
        let run = Run {
            args,
            suite,
            sandbox,
            vrift: built.vrift.clone(),
            shim: built.shim.clone(),
            user,
            native_tmp,
            project,
            rift_tmp,
            runtime,
            logs,
            path,
        };
        let mut init = run.command(&run.vrift);
        init.arg("init").current_dir(&run.project);
        time_output(&mut init, "vrift init")?;
        println!(
            "native TMPDIR {} · rift TMPDIR {} (project {})",
            run.native_tmp.display(),
            run.rift_tmp.display(),
            run.project.display()
        );
        Ok(run)
    }

    /// `program`, as the run's user, with the sandbox's environment.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = match self.user {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        };
        self.sandbox.set_env(&mut cmd);
        cmd.env("XDG_RUNTIME_DIR", &self.runtime)
            .env("VRIFT_SHIM_PATH", &self.shim)
            .env("VRIFT_QUIET", "1")
            .env("PATH", &self.path)
            .env("LTP_COLORIZE_OUTPUT", "n");
        if !self.args.all_filesystems {
            cmd.env("LTP_SINGLE_FS_TYPE", "ext4");
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn stop_daemon(&self) -> Result<()> {
        let mut cmd = self.command(&self.vrift);
        cmd.args(["daemon", "stop"]).current_dir(&self.project);
        time_output(&mut cmd, "vrift daemon stop").map(|_| ())
    }

    /// Runs every test on both sides, prints the table and the figures,
    /// and returns the figures.
    fn all(&self, tests: &[Test]) -> Result<String> {
        let width = tests.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
        println!(
            "{:<width$}  {:<16}  {:<16}  (verdict pass/fail/brok/conf lines)",
            "test", "native", "rift"
        );
        let (mut passed_native, mut passed_rift, mut worse) = (0, 0, 0);
        let mut differing = Vec::new();
        for test in tests {
            let native = self.one(test, Side::Native)?;
            let rift = self.one(test, Side::Rift)?;
            passed_native += u32::from(native.passed);
            passed_rift += u32::from(rift.passed);
            let same = native.same(&rift);
            println!(
                "{:<width$}  {:<16}  {:<16}{}",
                test.name,
                native.cell(),
                rift.cell(),
                if same { "" } else { "  ≠" }
            );
            if !same {
                if native.passed && !rift.passed {
                    worse += 1;
                }
                let (n, r) = first_difference(&native, &rift);
                println!("    native: {n}\n    rift:   {r}");
                differing.push(test.name.clone());
            }
        }
        let figures = format!(
            "tests run {} · passed natively {passed_native} · passed in the rift {passed_rift} · \
             differences {} (passing natively only: {worse})",
            tests.len(),
            differing.len()
        );
        println!("\n{figures}");
        if !differing.is_empty() {
            println!("differing: {}", differing.join(" "));
        }
        Ok(figures)
    }

    /// Runs `test` on one side, its output in `logs/<side>/<name>.log`.
    fn one(&self, test: &Test, side: Side) -> Result<Outcome> {
        let (tmp, tag) = match side {
            Side::Native => (&self.native_tmp, "native"),
            Side::Rift => (&self.rift_tmp, "rift"),
        };
        let mut cmd = match side {
            Side::Native => self.command(&test.program),
            Side::Rift => {
                let mut c = self.command(&self.vrift);
                c.arg("run").arg("--").arg(&test.program);
                c
            }
        };
        cmd.args(&test.args)
            .current_dir(tmp)
            .env("TMPDIR", tmp)
            .env("TEST_TMPDIR", tmp);
        let dir = self.logs.join(tag);
        // gVisor's names hold `/` (`stat_test/StatTest.Fstat`).
        let log = dir.join(format!("{}.log", test.name));
        fs::create_dir_all(log.parent().unwrap_or(&dir))?;
        let out = File::create(&log)?;
        cmd.stdout(out.try_clone()?).stderr(out).process_group(0);
        let (status, timed_out) =
            run_with_timeout(&mut cmd, Duration::from_secs(self.args.timeout), &test.name)?;
        let mut outcome = self.suite.outcome(&log, status.code())?;
        if timed_out {
            outcome.passed = false;
            outcome.verdict = "TIME".into();
        } else if let Some(s) = status.signal() {
            outcome.passed = false;
            outcome.verdict = format!("SIG{s}");
        }
        // LTP's random `LTP_xxxXXXXXX` names are below these.
        for (_, text) in &mut outcome.results {
            for d in [tmp.as_path(), &self.project] {
                *text = text.replace(&*d.to_string_lossy(), "$TMP");
            }
        }
        Ok(outcome)
    }
}

/// Runs `cmd` (a process group leader), killing its group after `limit`.
fn run_with_timeout(cmd: &mut Command, limit: Duration, what: &str) -> Result<(ExitStatus, bool)> {
    let mut child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .arg(format!("-{}", child.id()))
                .status();
            return Ok((child.wait()?, true));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The first result line whose kind differs between the two sides (or the
/// first line one side has and the other lacks).
fn first_difference(native: &Outcome, rift: &Outcome) -> (String, String) {
    let n = &native.results;
    let r = &rift.results;
    for i in 0..n.len().max(r.len()) {
        match (n.get(i), r.get(i)) {
            (Some(a), Some(b)) if a.0 == b.0 => continue,
            (a, b) => {
                let show = |l: Option<&(usize, String)>, o: &Outcome| match l {
                    Some((_, t)) => t.clone(),
                    None => format!("(no more result lines; {})", o.verdict),
                };
                return (show(a, native), show(b, rift));
            }
        }
    }
    let status = |o: &Outcome| format!("(same result lines; {})", o.verdict);
    (status(native), status(rift))
}
