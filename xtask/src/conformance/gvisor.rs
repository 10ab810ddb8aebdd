//! gVisor's syscall tests (`test/syscalls/linux` of a gVisor tree): built
//! here with g++ against Debian's gtest, gmock and abseil — gVisor builds
//! them with Bazel, which this task does without — and run one test case
//! per process (`--gtest_filter`), so a crash loses one case, not a file.
//!
//! The tests make their files in `TEST_TMPDIR`. A run's outcome is
//! gtest's: OK, FAILED (with the failure messages) or SKIPPED (a test
//! that needs what the process lacks, e.g. CAP_DAC_OVERRIDE as `nobody`).

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::{Outcome, Test};
use crate::cargo;

/// The test files (`test/syscalls/linux/NAME.cc`) of the file calls. gVisor
/// has no readlink test file: readlink is tested in symlink.cc.
pub const TESTS: &[&str] = &[
    "chmod",
    "chown",
    "getdents",
    "link",
    "mkdir",
    "open",
    "open_create",
    "rename",
    "stat",
    "symlink",
    "truncate",
    "unlink",
    "utimes",
];

/// The `test/util` sources the tests above need, compiled once into an
/// archive. `test_util_impl.cc` is replaced by `xtask/c/gvisor_test_init.cc`
/// (the same without Google Benchmark).
const UTIL: &[&str] = &[
    "fs_util",
    "linux_capability_util",
    "logging",
    "multiprocess_util",
    "platform_util",
    "posix_error",
    "save_util",
    "save_util_linux",
    "socket_util",
    "temp_path",
    "test_main",
    "test_util",
    "time_util",
];

/// The pkg-config modules the tests link (Debian: libabsl-dev, libgtest-dev,
/// libgmock-dev).
const PKG_MODULES: &[&str] = &[
    "absl_flags_parse",
    "absl_strings",
    "absl_str_format",
    "absl_time",
    "absl_synchronization",
    "absl_node_hash_set",
    "absl_node_hash_map",
    "gmock",
    "gtest",
];

/// Builds the [`TESTS`] of the gVisor tree `src` into
/// `<target>/gvisor-tests/` (only what is older than its source) and
/// returns the binaries.
pub fn build(src: &Path) -> Result<Vec<PathBuf>> {
    let linux = src.join("test/syscalls/linux");
    ensure!(
        linux.join("stat.cc").is_file(),
        "{} is not a gVisor tree (no test/syscalls/linux/stat.cc)",
        src.display()
    );
    let out = target_dir().join("gvisor-tests");
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let libs = pkg_config_libs()?;
    let mut objects = Vec::new();
    let init = cargo::workspace_root().join("xtask/c/gvisor_test_init.cc");
    let sources = UTIL
        .iter()
        .map(|u| src.join("test/util").join(format!("{u}.cc")))
        .chain([init]);
    for source in sources {
        let stem = source.file_stem().unwrap_or_default().to_string_lossy();
        let object = out.join(format!("{stem}.o"));
        if stale(&object, &source) {
            gxx(src, &["-c"], &[source.as_path()], &object, &[])?;
        }
        objects.push(object);
    }
    let mut bins = Vec::new();
    for test in TESTS {
        let source = linux.join(format!("{test}.cc"));
        let bin = out.join(format!("{test}_test"));
        if objects.iter().chain([&source]).any(|s| stale(&bin, s)) {
            let mut inputs = vec![source.as_path()];
            inputs.extend(objects.iter().map(PathBuf::as_path));
            gxx(src, &[], &inputs, &bin, &libs)?;
        }
        bins.push(bin);
    }
    Ok(bins)
}

/// Whether `output` is missing or older than `input`.
fn stale(output: &Path, input: &Path) -> bool {
    let time = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (time(output), time(input)) {
        (Some(o), Some(i)) => o < i,
        _ => true,
    }
}

/// `CARGO_TARGET_DIR`, else the workspace's `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cargo::workspace_root().join("target"))
}

/// The linker flags of [`PKG_MODULES`], or an error naming the packages.
fn pkg_config_libs() -> Result<Vec<String>> {
    let out = Command::new("pkg-config")
        .arg("--libs")
        .args(PKG_MODULES)
        .output()
        .context("cannot run pkg-config (Debian: apt-get install pkg-config)")?;
    if !out.status.success() {
        bail!(
            "pkg-config finds no gtest, gmock or abseil ({}); on Debian: \
             apt-get install g++ pkg-config libgtest-dev libgmock-dev libabsl-dev",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut libs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    libs.push("-lpthread".into());
    Ok(libs)
}

/// `g++ -std=c++17 -O1 -I SRC FLAGS INPUTS -o OUTPUT LIBS`.
fn gxx(src: &Path, flags: &[&str], inputs: &[&Path], output: &Path, libs: &[String]) -> Result<()> {
    println!("$ g++ {} -o {}", inputs[0].display(), output.display());
    let status = Command::new("g++")
        .args(["-std=c++17", "-O1", "-I"])
        .arg(src)
        .args(flags)
        .args(inputs)
        .arg("-o")
        .arg(output)
        .args(libs)
        .status()
        .context("cannot run g++ (Debian: apt-get install g++)")?;
    ensure!(
        status.success(),
        "g++ failed on {} ({status})",
        inputs[0].display()
    );
    Ok(())
}

/// Every test case of the built binaries, named `BINARY/Suite.Case`, in
/// gtest's order, filtered by name prefix.
pub fn discover(bins: &[PathBuf], filter: &[String]) -> Result<Vec<Test>> {
    let mut tests = Vec::new();
    for bin in bins {
        let out = Command::new(bin)
            .arg("--gtest_list_tests")
            .output()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        ensure!(
            out.status.success(),
            "{} --gtest_list_tests failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let file = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for case in list(&String::from_utf8_lossy(&out.stdout)) {
            let name = format!("{file}/{case}");
            if super::selected(&name, filter) {
                tests.push(Test {
                    name,
                    program: bin.clone(),
                    args: vec![format!("--gtest_filter={case}")],
                });
            }
        }
    }
    Ok(tests)
}

/// The `Suite.Case` names of `--gtest_list_tests` output: a suite line
/// (`StatTest.`, `Getdents/GetdentsTest/0.  # TypeParam = …`) then its
/// cases, indented (`  Fstat`, `  Param/1  # GetParam() = …`).
fn list(output: &str) -> Vec<String> {
    let mut cases = Vec::new();
    let mut suite = String::new();
    for line in output.lines() {
        let word = line.split('#').next().unwrap_or("").trim();
        if word.is_empty() {
            continue;
        }
        if line.starts_with(' ') {
            cases.push(format!("{suite}{word}"));
        } else {
            suite = word.to_string();
        }
    }
    cases
}

/// The outcome of one test case: gtest's `[       OK ]`, `[  FAILED  ]`
/// or `[  SKIPPED ]`, and each failure message (`file:line: Failure` and
/// the lines that explain it, joined) as a result line.
pub fn outcome(log: &Path, code: Option<i32>) -> Result<Outcome> {
    let file = File::open(log)?;
    let (mut ok, mut failed, mut skipped) = (false, false, false);
    let mut results: Vec<(usize, String)> = Vec::new();
    let mut message: Option<String> = None;
    for line in BufReader::new(file).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        if line.starts_with('[') {
            if let Some(m) = message.take() {
                results.push((1, m));
            }
            ok |= line.starts_with("[       OK ]");
            failed |= line.starts_with("[  FAILED  ]");
            skipped |= line.starts_with("[  SKIPPED ]");
            continue;
        }
        if line.contains(": Failure") || line.contains(": Skipped") {
            if let Some(m) = message.take() {
                results.push((1, m));
            }
            message = Some(line.trim().to_string());
        } else if let Some(m) = &mut message {
            if !line.trim().is_empty() {
                m.push_str(" · ");
                m.push_str(line.trim());
            }
        }
    }
    if let Some(m) = message.take() {
        results.push((1, m));
    }
    let verdict = if failed {
        "FAIL"
    } else if skipped {
        "skip"
    } else if ok && code == Some(0) {
        "pass"
    } else {
        // No verdict line: the process died in the test or before it.
        "BROK"
    };
    Ok(Outcome {
        passed: verdict == "pass",
        verdict: verdict.into(),
        detail: String::new(),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_plain_typed_and_parameterized_cases() {
        let out = "StatTest.\n  FstatatAbs\n  FstatatEmptyPath\n\
                   Getdents/GetdentsTest/0.  # TypeParam = Getdents\n  VerifyEntries\n\
                   All/OpenTest.\n  Flags/1  # GetParam() = 4\n";
        assert_eq!(
            list(out),
            [
                "StatTest.FstatatAbs",
                "StatTest.FstatatEmptyPath",
                "Getdents/GetdentsTest/0.VerifyEntries",
                "All/OpenTest.Flags/1"
            ]
        );
    }
}
