//! Walking directory trees: counting what they hold, comparing two of them.

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

/// What was compared, for the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// What a tree holds, by type (the root itself not counted).
#[derive(Debug, Default)]
pub struct Census {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    /// Fifos, sockets, devices: ingest skips them.
    pub other: u64,
    /// Of the regular files.
    pub bytes: u64,
}

/// Counts what is below `root`, without following symlinks.
pub fn census(root: &Path) -> Result<Census> {
    let mut c = Census::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                c.dirs += 1;
                stack.push(entry.path());
            } else if ft.is_file() {
                c.files += 1;
                c.bytes += entry.metadata()?.len();
            } else if ft.is_symlink() {
                c.symlinks += 1;
            } else {
                c.other += 1;
            }
        }
    }
    Ok(c)
}

/// How many differences are listed before giving up on listing more.
const MAX_LISTED: usize = 20;

/// Compares `actual` with `expected`: the same names, types, modes, file
/// contents and mtimes, and symlink targets, at every level. Top-level names
/// in `ignore` are skipped on both sides. Returns the differences found (at
/// most a screenful) and what was compared.
pub fn trees(actual: &Path, expected: &Path, ignore: &[&str]) -> Result<(Vec<String>, Summary)> {
    let mut cmp = Comparer {
        diffs: Vec::new(),
        summary: Summary::default(),
    };
    cmp.dir(actual, expected, Path::new(""), ignore)?;
    Ok((cmp.diffs, cmp.summary))
}

struct Comparer {
    diffs: Vec<String>,
    summary: Summary,
}

impl Comparer {
    fn differ(&mut self, rel: &Path, what: impl std::fmt::Display) {
        if self.diffs.len() < MAX_LISTED {
            self.diffs.push(format!("{}: {what}", shown(rel)));
        }
    }

    fn dir(&mut self, actual: &Path, expected: &Path, rel: &Path, ignore: &[&str]) -> Result<()> {
        self.summary.dirs += 1;
        let a = names(actual, ignore)?;
        let e = names(expected, ignore)?;
        for name in a.iter().filter(|n| !e.contains(n)) {
            self.differ(&rel.join(name), "unexpected (not in the original)");
        }
        for name in e.iter().filter(|n| !a.contains(n)) {
            self.differ(&rel.join(name), "missing");
        }
        for name in a.iter().filter(|n| e.contains(n)) {
            self.entry(&actual.join(name), &expected.join(name), &rel.join(name))?;
        }
        Ok(())
    }

    fn entry(&mut self, actual: &Path, expected: &Path, rel: &Path) -> Result<()> {
        let am = lstat(actual)?;
        let em = lstat(expected)?;
        let (at, et) = (am.file_type(), em.file_type());
        if at.is_symlink() && et.is_symlink() {
            self.summary.symlinks += 1;
            let (a, e) = (fs::read_link(actual)?, fs::read_link(expected)?);
            if a != e {
                self.differ(rel, format!("links to {a:?}, expected {e:?}"));
            }
            return Ok(());
        }
        if am.mode() != em.mode() {
            self.differ(
                rel,
                format!("mode {:o}, expected {:o}", am.mode(), em.mode()),
            );
            return Ok(());
        }
        if at.is_dir() {
            return self.dir(actual, expected, rel, &[]);
        }
        if at.is_file() {
            self.summary.files += 1;
            self.summary.bytes += em.len();
            if !same_content(actual, expected)? {
                self.differ(
                    rel,
                    format!(
                        "content differs ({} bytes, expected {})",
                        am.len(),
                        em.len()
                    ),
                );
            } else if mtime_ns(&am) != mtime_ns(&em) {
                self.differ(
                    rel,
                    format!("mtime {} ns, expected {}", mtime_ns(&am), mtime_ns(&em)),
                );
            }
        }
        Ok(())
    }
}

fn shown(rel: &Path) -> String {
    rel.display().to_string()
}

fn lstat(path: &Path) -> Result<Metadata> {
    fs::symlink_metadata(path).with_context(|| format!("cannot stat {}", path.display()))
}

fn mtime_ns(m: &Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// Sorted entry names of a directory, minus `ignore`.
fn names(dir: &Path, ignore: &[&str]) -> Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = entry?.file_name();
        if !ignore.iter().any(|i| name == *i) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| File::open(p).with_context(|| format!("cannot read {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends (so both sides stay aligned).
fn read_full(f: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn differences(a: &Path, b: &Path) -> Vec<String> {
        trees(a, b, &[]).unwrap().0
    }

    #[test]
    fn finds_each_kind_of_difference() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for root in [&a, &b] {
            fs::create_dir_all(root.join("d")).unwrap();
            fs::write(root.join("d/f"), "same").unwrap();
            std::os::unix::fs::symlink("d/f", root.join("l")).unwrap();
        }
        let same = std::process::Command::new("cp")
            .args(["-a", "--"])
            .arg(&a)
            .arg(t.path().join("c"))
            .status()
            .unwrap();
        assert!(same.success());
        assert!(differences(&a, &t.path().join("c")).is_empty());

        fs::write(b.join("d/f"), "diff").unwrap();
        fs::remove_file(b.join("l")).unwrap();
        std::os::unix::fs::symlink("elsewhere", b.join("l")).unwrap();
        fs::write(b.join("extra"), "").unwrap();
        fs::set_permissions(b.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
        let found = differences(&b, &a).join("\n");
        assert!(found.contains("extra: unexpected"), "{found}");
        assert!(found.contains("l: links to"), "{found}");
        assert!(found.contains("d: mode"), "{found}");
    }
}
