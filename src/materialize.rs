//! `vrift materialize`: write the view back to the disk and drop it from the
//! manifest (the inverse of ingest, and the way to keep what a build made).
//!
//! Every file is written to a temp file beside its destination (reflink where
//! the filesystem has it, else `copy_file_range`; never a hard link to a
//! blob), given the entry's mode and mtime, and renamed into place. Only after
//! the disk is flushed are the records removed, in one transaction: a crash
//! leaves the records in place and a re-run finishes the job.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use vrift_format::{Kind, DIR_OPAQUE};

use crate::cas::Cas;
use crate::manifest::{Entry, Layer, Manifest, Record};
use crate::project::Project;
use crate::ui;

#[derive(Debug, Default)]
pub struct Report {
    pub files: u64,
    pub symlinks: u64,
    pub removed: u64,
    pub bytes: u64,
    pub errors: Vec<(PathBuf, String)>,
}

enum Action {
    Write(Entry),
    Remove,
}

/// What to do at a path, and the layers whose records it consumes.
type Step = (Action, Vec<Layer>);

/// Materializes every record at or below `targets` (all records if empty).
pub fn materialize(
    project: &Project,
    cas: &Cas,
    manifest: &Manifest,
    targets: &[Vec<u8>],
) -> Result<Report> {
    let txn = manifest.read()?;
    let prefixes: Vec<&[u8]> = if targets.is_empty() {
        vec![b""]
    } else {
        targets.iter().map(|t| t.as_slice()).collect()
    };
    // Rift over phantom: the rift decides where both hold a record.
    let mut plan: std::collections::BTreeMap<Vec<u8>, Step> = Default::default();
    for prefix in &prefixes {
        for layer in [Layer::Phantom, Layer::Rift] {
            txn.for_each(layer, prefix, |k, rec| {
                let action = match rec {
                    Record::Entry(e) => Action::Write(e),
                    Record::Whiteout => Action::Remove,
                };
                let slot = plan
                    .entry(k.to_vec())
                    .or_insert((Action::Remove, Vec::new()));
                slot.0 = action;
                slot.1.push(layer);
                Ok(())
            })?;
        }
    }
    // An opaque directory shows only what the rift made in it: the disk's
    // other names below it go (a directory the disk had stays, emptied).
    for (path, flags) in txn.dirs()? {
        if flags & DIR_OPAQUE != 0 && prefixes.iter().any(|p| is_at_or_below(&path, p)) {
            for (hidden, _) in crate::view::hidden_by_opaque(&txn, project, &path)? {
                plan.entry(hidden).or_insert((Action::Remove, Vec::new()));
            }
        }
    }
    drop(txn);

    let bar = ui::progress(plan.len() as u64, "materialize");
    let items: Vec<(&Vec<u8>, &Step)> = plan.iter().collect();
    let results: Vec<(usize, io::Result<()>)> = items
        .par_iter()
        .enumerate()
        .map(|(i, (rel, (action, _)))| {
            let dest = project.disk_path(rel);
            let r = match action {
                Action::Write(e) => write_entry(project, cas, &dest, e),
                Action::Remove => remove_disk(&dest),
            };
            bar.inc(1);
            (i, r)
        })
        .collect();
    bar.finish_and_clear();

    // Names of one inode (hard links in the rift) become one inode on disk
    // too: each was written above; all but the first become links to it.
    let mut results = results;
    let mut first_of: std::collections::HashMap<u64, PathBuf> = Default::default();
    for (i, r) in results.iter_mut() {
        let (rel, (action, _)) = items[*i];
        let Action::Write(e) = action else { continue };
        if e.links == 0 || r.is_err() {
            continue;
        }
        let dest = project.disk_path(rel);
        match first_of.entry(e.ino) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(dest);
            }
            std::collections::hash_map::Entry::Occupied(first) => {
                *r = link_over(first.get(), &dest);
            }
        }
    }

    let mut report = Report::default();
    let mut done = Vec::new();
    for (i, r) in results {
        let (rel, (action, layers)) = items[i];
        match r {
            Ok(()) => {
                match action {
                    Action::Write(e) if e.kind == Kind::Symlink => report.symlinks += 1,
                    Action::Write(e) => {
                        report.files += 1;
                        report.bytes += e.size;
                    }
                    Action::Remove => report.removed += 1,
                }
                done.push((rel, layers));
            }
            Err(e) => report.errors.push((project.disk_path(rel), e.to_string())),
        }
    }
    sync_dir(project.root())?;
    let txn = manifest.write()?;
    for (rel, layers) in done {
        for layer in layers {
            txn.remove(*layer, rel)?;
        }
    }
    // Directories are physical already; their marks under the targets go.
    for (path, _) in txn.dirs()? {
        if prefixes.iter().any(|p| is_at_or_below(&path, p)) {
            txn.set_dir_mark(&path, 0)?;
        }
    }
    txn.commit()?;
    Ok(report)
}

fn is_at_or_below(path: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'))
}

fn tmp_beside(dest: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".vrift-materialize.");
    name.push(dest.file_name().unwrap_or_default());
    name.push(format!(".{}", std::process::id()));
    dest.with_file_name(name)
}

fn write_entry(project: &Project, cas: &Cas, dest: &Path, e: &Entry) -> io::Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    if fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::other("a directory is in the way"));
    }
    let tmp = tmp_beside(dest);
    let _ = fs::remove_file(&tmp);
    let res = (|| {
        match e.kind {
            Kind::Symlink => {
                std::os::unix::fs::symlink(crate::paths::os(&e.target), &tmp)?;
                set_link_mtime(&tmp, e.mtime_ns)?;
            }
            Kind::Special => {
                // A FIFO, socket or device node, made anew with its type,
                // mode and rdev (a socket on disk is one nobody listens on,
                // as a bound socket's path is after its server exits).
                use std::os::unix::ffi::OsStrExt;
                let c = std::ffi::CString::new(tmp.as_os_str().as_bytes())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                // SAFETY: a NUL-terminated path.
                if unsafe { libc::mknod(c.as_ptr(), (e.mode & libc::S_IFMT) | 0o600, e.size) } != 0
                {
                    return Err(io::Error::last_os_error());
                }
                fs::set_permissions(&tmp, fs::Permissions::from_mode(e.mode & 0o7777))?;
                set_link_mtime(&tmp, e.mtime_ns)?;
            }
            _ => {
                let mut src = crate::view::open_content(project, cas, e)
                    .map_err(|err| io::Error::other(format!("{err:#}")))?;
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&tmp)?;
                clone_or_copy(&mut src, &mut out)?;
                out.set_permissions(fs::Permissions::from_mode(e.mode & 0o7777))?;
                set_mtime(&out, e.mtime_ns)?;
            }
        }
        fs::rename(&tmp, dest)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Replaces `dest` by a hard link to `first` (through a name beside it, so
/// `dest` is never missing).
fn link_over(first: &Path, dest: &Path) -> io::Result<()> {
    let tmp = tmp_beside(dest);
    let _ = fs::remove_file(&tmp);
    fs::hard_link(first, &tmp)?;
    fs::rename(&tmp, dest).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Reflink (`FICLONE`) when the filesystem shares extents, else a kernel copy.
pub fn clone_or_copy(src: &mut File, dst: &mut File) -> io::Result<()> {
    // SAFETY: both fds are open; FICLONE takes the source fd as argument.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if rc == 0 {
        return Ok(());
    }
    // std::io::copy between files uses copy_file_range on Linux.
    io::copy(src, dst)?;
    Ok(())
}

/// Access time left alone, modification time set.
fn mtime_only(mtime_ns: i64) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000),
        },
    ]
}

fn set_mtime(f: &File, mtime_ns: i64) -> io::Result<()> {
    let times = mtime_only(mtime_ns);
    // SAFETY: valid fd and a two-element timespec array.
    if unsafe { libc::futimens(f.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The symlink's own mtime (not its target's): a rename keeps it.
fn set_link_mtime(link: &Path, mtime_ns: i64) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(link.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let times = mtime_only(mtime_ns);
    // SAFETY: a NUL-terminated path and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn remove_disk(dest: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(dest),
        Ok(_) => fs::remove_file(dest),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(root: &Path) -> Result<()> {
    let f = File::open(root).with_context(|| format!("cannot open {}", root.display()))?;
    // SAFETY: syncfs on an fd we own.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot flush {}", root.display()));
    }
    Ok(())
}
