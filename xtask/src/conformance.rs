//! `cargo xtask conformance`: the view's POSIX answers against a suite
//! nobody here wrote — the Linux Test Project's filesystem syscall tests —
//! run natively and in the rift side by side.
//!
//! The LTP tree is brought and built by hand (it is never part of this
//! repository, and CI cannot fetch it): `--ltp DIR` or `VRIFT_LTP_DIR`
//! names it; without one the task prints SKIPPED and exits 0. Building
//! only the tests this task runs takes a minute:
//!
//! ```sh
//! make autotools && ./configure && make -C lib
//! for d in open stat …; do make -C testcases/kernel/syscalls/$d; done
//! ```
//!
//! The tests are the entries of LTP's `runtest/syscalls` whose program is
//! built in one of the [`GROUPS`] directories. Each runs twice, in the
//! same sandbox: natively with its temporary directory (`TMPDIR`, where LTP
//! makes its `LTP_*` working directory) on a physical directory, and under
//! `vrift run` with `TMPDIR` inside a vrift project, so every file the
//! test makes, changes or removes is in the rift. The outcomes (LTP's exit
//! status and its TPASS/TFAIL/TBROK/TCONF/TWARN lines) are compared per
//! test; for each difference the first result line that differs is shown.
//!
//! `--user nobody` (root only) runs both sides, `vrift init` and the
//! daemon included, as `nobody` through `setpriv`; `--user both` runs as
//! the current user, then as `nobody`.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::cargo;
use crate::sandbox::{time_output, Sandbox};

/// The directories of `testcases/kernel/syscalls` whose tests run: the
/// calls that take a path or act on a file's metadata or names.
pub const GROUPS: &[&str] = &[
    "access",
    "chdir",
    "chmod",
    "chown",
    "close",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "execve",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fstat",
    "fstatat",
    "ftruncate",
    "getcwd",
    "getdents",
    "lchown",
    "link",
    "linkat",
    "lstat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "open",
    "openat",
    "readlink",
    "readlinkat",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "stat",
    "statx",
    "symlink",
    "symlinkat",
    "truncate",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
];

/// The environment variable naming the LTP tree when `--ltp` is not given.
const LTP_ENV: &str = "VRIFT_LTP_DIR";

#[derive(clap::Args, Debug)]
pub struct ConformanceArgs {
    /// The LTP source tree, configured and with the tests of the syscall
    /// groups built (default: $VRIFT_LTP_DIR; without either: SKIPPED).
    #[arg(long, value_name = "DIR")]
    ltp: Option<PathBuf>,
    /// Run only the tests whose name starts with one of these prefixes
    /// (comma-separated, e.g. `open,stat`).
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

pub fn conformance(args: ConformanceArgs) -> Result<()> {
    let Some(ltp) = args
        .ltp
        .clone()
        .or_else(|| std::env::var_os(LTP_ENV).map(PathBuf::from))
    else {
        println!(
            "conformance: SKIPPED: no LTP tree (pass --ltp DIR or set {LTP_ENV}; \
             see `cargo xtask conformance --help`)"
        );
        return Ok(());
    };
    let ltp = fs::canonicalize(&ltp)
        .with_context(|| format!("the LTP tree {} does not exist", ltp.display()))?;
    let tests = discover(&ltp, &args.filter)?;
    ensure!(
        !tests.is_empty(),
        "no built LTP test in {} matches (build the syscall groups first; see --help)",
        ltp.display()
    );
    let root = is_root()?;
    let users: Vec<Option<User>> = match args.user {
        Who::Current => vec![None],
        Who::Nobody => vec![Some(User::nobody(root)?)],
        Who::Both => vec![None, Some(User::nobody(root)?)],
    };
    let built = cargo::build_release_vrift_and_shim()?;
    for user in users {
        let who = match &user {
            Some(u) => format!("nobody (uid {}, through setpriv)", u.uid),
            None if root => "root".to_string(),
            None => "the current user".to_string(),
        };
        println!("\n== LTP {} tests as {who}", tests.len());
        let sandbox = Sandbox::create(args.dir.as_deref(), "vrift-conformance-")?;
        let run = Run::new(&args, &ltp, &sandbox, &built, user)?;
        let result = run.all(&tests);
        let _ = run.stop_daemon();
        // A test as root may leave a file immutable (unlink09 does, in the
        // rift on a staging file): clear the flags so the sandbox can go.
        let _ = Command::new("chattr")
            .args(["-R", "-f", "-i", "-a"])
            .arg(sandbox.path())
            .stderr(Stdio::null())
            .status();
        if args.keep {
            println!("logs: {}", sandbox.path().join("logs").display());
        }
        sandbox.finish(args.keep)?;
        // Differences are the task's findings, listed above, not its
        // failure: the exit status says whether the runs completed.
        result?;
    }
    Ok(())
}

/// One LTP test: its runtest name, program and arguments.
#[derive(Debug, Clone)]
struct Test {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

/// The entries of `runtest/syscalls` whose program is built in one of the
/// [`GROUPS`], in the file's order, filtered by name prefix.
fn discover(ltp: &Path, filter: &[String]) -> Result<Vec<Test>> {
    let runtest = ltp.join("runtest/syscalls");
    let text = fs::read_to_string(&runtest).with_context(|| {
        format!(
            "cannot read {} (is {} an LTP tree?)",
            runtest.display(),
            ltp.display()
        )
    })?;
    let syscalls = ltp.join("testcases/kernel/syscalls");
    let mut tests = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(cmd)) = (words.next(), words.next()) else {
            continue;
        };
        if !filter.is_empty() && !filter.iter().any(|f| name.starts_with(f.as_str())) {
            continue;
        }
        let Some(program) = GROUPS
            .iter()
            .map(|g| syscalls.join(g).join(cmd))
            .find(|p| is_executable(p))
        else {
            continue;
        };
        tests.push(Test {
            name: name.to_string(),
            program,
            args: words.map(str::to_string).collect(),
        });
    }
    Ok(tests)
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
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

/// What one run of a test gave.
#[derive(Debug, Default)]
struct Outcome {
    /// The exit code, or None if killed (by a signal or the timeout).
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    /// TPASS, TFAIL, TBROK, TCONF, TWARN lines.
    counts: [u32; 5],
    /// The result lines, in order, with the temporary directories replaced.
    results: Vec<(usize, String)>,
}

const KINDS: [&str; 5] = ["TPASS", "TFAIL", "TBROK", "TCONF", "TWARN"];

impl Outcome {
    /// One word: pass (exit 0), conf (only TCONF), or the worst of
    /// BROK, FAIL, WARN from LTP's exit bits; SIGn, TIME.
    fn verdict(&self) -> String {
        if self.timed_out {
            return "TIME".into();
        }
        if let Some(s) = self.signal {
            return format!("SIG{s}");
        }
        match self.code {
            Some(0) => "pass".into(),
            Some(32) => "conf".into(),
            Some(c) if c & 2 != 0 => "BROK".into(),
            Some(c) if c & 1 != 0 => "FAIL".into(),
            Some(c) if c & 4 != 0 => "WARN".into(),
            Some(c) => format!("exit{c}"),
            None => "?".into(),
        }
    }

    fn cell(&self) -> String {
        let [p, f, b, c, _] = self.counts;
        format!("{:<5} {p}/{f}/{b}/{c}", self.verdict())
    }

    fn passed(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    fn same(&self, other: &Outcome) -> bool {
        self.verdict() == other.verdict() && self.counts == other.counts
    }
}

struct Run<'a> {
    args: &'a ConformanceArgs,
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
        ltp: &Path,
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
        // LTP's helper programs (`open12_child`, `execve_child`) are found
        // on PATH.
        let mut dirs: Vec<PathBuf> = GROUPS
            .iter()
            .map(|g| ltp.join("testcases/kernel/syscalls").join(g))
            .filter(|d| d.is_dir())
            .collect();
        dirs.push(ltp.join("testcases/lib"));
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(dirs)?;
        let run = Run {
            args,
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

    /// Runs every test on both sides, prints the table and the figures.
    fn all(&self, tests: &[Test]) -> Result<()> {
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
            passed_native += u32::from(native.passed());
            passed_rift += u32::from(rift.passed());
            let same = native.same(&rift);
            println!(
                "{:<width$}  {:<16}  {:<16}{}",
                test.name,
                native.cell(),
                rift.cell(),
                if same { "" } else { "  ≠" }
            );
            if !same {
                if native.passed() && !rift.passed() {
                    worse += 1;
                }
                let (n, r) = first_difference(&native, &rift);
                println!("    native: {n}\n    rift:   {r}");
                differing.push(test.name.clone());
            }
        }
        println!(
            "\ntests run {} · passed natively {passed_native} · passed in the rift {passed_rift} · \
             differences {} (passing natively only: {worse})",
            tests.len(),
            differing.len()
        );
        if !differing.is_empty() {
            println!("differing: {}", differing.join(" "));
        }
        Ok(())
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
        cmd.args(&test.args).current_dir(tmp).env("TMPDIR", tmp);
        let dir = self.logs.join(tag);
        fs::create_dir_all(&dir)?;
        let log = dir.join(format!("{}.log", test.name));
        let out = File::create(&log)?;
        cmd.stdout(out.try_clone()?).stderr(out).process_group(0);
        let (status, timed_out) =
            run_with_timeout(&mut cmd, Duration::from_secs(self.args.timeout), &test.name)?;
        let mut outcome = parse(&log, &[tmp.as_path(), &self.project])?;
        outcome.timed_out = timed_out;
        outcome.code = status.code();
        outcome.signal = status.signal();
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

/// The result lines of a test's output, with its temporary directories
/// (and LTP's random `LTP_xxxXXXXXX` names below them) made comparable.
fn parse(log: &Path, dirs: &[&Path]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let file = File::open(log)?;
    for line in BufReader::new(file).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        let Some(kind) = line
            .split(|c: char| c.is_whitespace() || c == ':')
            .find_map(|w| KINDS.iter().position(|k| *k == w))
        else {
            continue;
        };
        outcome.counts[kind] += 1;
        let mut text = line.clone();
        for d in dirs {
            text = text.replace(&*d.to_string_lossy(), "$TMP");
        }
        outcome.results.push((kind, text));
    }
    Ok(outcome)
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
                    None => format!("(no more result lines; {})", o.verdict()),
                };
                return (show(a, native), show(b, rift));
            }
        }
    }
    let status = |o: &Outcome| format!("(same result lines; exit {:?})", o.code);
    (status(native), status(rift))
}
