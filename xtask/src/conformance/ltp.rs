//! The Linux Test Project's filesystem syscall tests: which to run, and
//! what a run's output says.
//!
//! The LTP tree is brought and built by hand (it is never part of this
//! repository, and CI cannot fetch it). Building only the tests this suite
//! runs takes a few minutes:
//!
//! ```sh
//! make autotools && ./configure && make -C lib
//! for d in open stat …; do make -C testcases/kernel/syscalls/$d; done
//! ```
//!
//! The tests are the entries of LTP's `runtest/syscalls` whose program is
//! built in one of the [`GROUPS`] directories. LTP makes its `LTP_*`
//! working directory in `TMPDIR`. A run's outcome is LTP's exit status
//! and its TPASS/TFAIL/TBROK/TCONF/TWARN lines.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Outcome, Test};

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

/// The entries of `runtest/syscalls` whose program is built in one of the
/// [`GROUPS`], in the file's order, filtered by name prefix.
pub fn discover(ltp: &Path, filter: &[String]) -> Result<Vec<Test>> {
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
        if !super::selected(name, filter) {
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

/// Where LTP's helper programs (`open12_child`, `execve_child`) are found:
/// put on PATH.
pub fn helper_dirs(ltp: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = GROUPS
        .iter()
        .map(|g| ltp.join("testcases/kernel/syscalls").join(g))
        .filter(|d| d.is_dir())
        .collect();
    dirs.push(ltp.join("testcases/lib"));
    dirs
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

const KINDS: [&str; 5] = ["TPASS", "TFAIL", "TBROK", "TCONF", "TWARN"];

/// The outcome of one run: one word from LTP's exit status — pass (0),
/// conf (only TCONF), or the worst of BROK, FAIL, WARN from its bits —
/// the count of each kind of result line, and the result lines in order.
pub fn outcome(log: &Path, code: Option<i32>) -> Result<Outcome> {
    let mut counts = [0u32; 5];
    let mut results = Vec::new();
    let file = File::open(log)?;
    for line in BufReader::new(file).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        let Some(kind) = line
            .split(|c: char| c.is_whitespace() || c == ':')
            .find_map(|w| KINDS.iter().position(|k| *k == w))
        else {
            continue;
        };
        counts[kind] += 1;
        results.push((kind, line));
    }
    let verdict = match code {
        Some(0) => "pass".to_string(),
        Some(32) => "conf".into(),
        Some(c) if c & 2 != 0 => "BROK".into(),
        Some(c) if c & 1 != 0 => "FAIL".into(),
        Some(c) if c & 4 != 0 => "WARN".into(),
        Some(c) => format!("exit{c}"),
        None => "?".into(),
    };
    let [p, f, b, c, _] = counts;
    Ok(Outcome {
        passed: code == Some(0),
        verdict,
        detail: format!("{p}/{f}/{b}/{c}"),
        results,
    })
}
