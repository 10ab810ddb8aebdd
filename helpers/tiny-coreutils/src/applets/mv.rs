//! `mv [-f|-n] [-v] [-t DIR|-T] SRC… DEST`: a rename in the rift (atomic,
//! in the daemon); across the domain's edge (EXDEV, as between two
//! filesystems) a copy as `cp -a` followed by the removal of the source.

use std::ffi::OsString;
use std::io;
use std::path::Path;

use super::cp::{Copier, Opts as CpOpts};
use super::{join, targets};
use crate::gnu::{quote, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::{Loc, Vfs};
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "fnt:Tv",
    long: &[
        ("backup", Takes::Maybe, None),
        ("debug", Takes::No, None),
        ("force", Takes::No, Some('f')),
        ("interactive", Takes::No, None),
        ("no-clobber", Takes::No, Some('n')),
        ("no-copy", Takes::No, None),
        ("no-target-directory", Takes::No, Some('T')),
        ("strip-trailing-slashes", Takes::No, None),
        ("suffix", Takes::Yes, None),
        ("target-directory", Takes::Yes, Some('t')),
        ("update", Takes::Maybe, None),
        ("verbose", Takes::No, Some('v')),
        ("context", Takes::No, None),
        COMMON[0],
        COMMON[1],
    ],
};

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let mut no_clobber = false;
    for (k, _) in &p.opts {
        match k {
            'f' => no_clobber = false,
            'n' => no_clobber = true,
            _ => {}
        }
    }
    let verbose = p.has('v');
    let Some(t) = targets(fs, ui, p.operands.clone(), p.value('t'), p.has('T'), true) else {
        return Ok(1);
    };
    for (src, dst) in t.pairs() {
        move_one(fs, ui, &src, &dst, no_clobber, verbose);
    }
    Ok(ui.status())
}

fn move_one(fs: &Vfs<'_>, ui: &Ui, src: &Path, dst: &Path, no_clobber: bool, verbose: bool) {
    let sloc = match fs.locate(src, false) {
        Ok(l) if l.exists() => l,
        Ok(_) => {
            return ui.error_io(
                &format!("cannot stat {}", quote(src)),
                &io::Error::from_raw_os_error(libc::ENOENT),
            )
        }
        Err(e) => return ui.error_io(&format!("cannot stat {}", quote(src)), &e),
    };
    let cannot =
        |e: &io::Error| ui.error_io(&format!("cannot move {} to {}", quote(src), quote(dst)), e);
    if fs.slash_after_symlink(src) {
        // rename(2) goes through no symlink.
        return cannot(&io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    let sst = match fs.stat_loc(&sloc) {
        Ok(s) => s,
        Err(e) => return ui.error_io(&format!("cannot stat {}", quote(src)), &e),
    };
    let dloc = match fs.locate(dst, false) {
        Ok(l) => l,
        Err(e) => return cannot(&e),
    };
    if let Ok(dst_st) = fs.stat_loc(&dloc) {
        if dst_st.same_file(&sst) {
            return ui.error(&format!(
                "{} and {} are the same file",
                quote(src),
                quote(dst)
            ));
        }
        if no_clobber {
            return;
        }
        if dst_st.is_dir() && !sst.is_dir() {
            return ui.error(&format!(
                "cannot overwrite directory {} with non-directory",
                quote(dst)
            ));
        }
        if !dst_st.is_dir() && sst.is_dir() {
            return ui.error(&format!(
                "cannot overwrite non-directory {} with directory {}",
                quote(dst),
                quote(src)
            ));
        }
    }
    if sst.is_dir() {
        let dest_at = Loc {
            at: fs.whereabouts(dst),
            node: crate::vfs::Node::Absent,
        };
        if dest_at.is_within(&sloc) {
            return ui.error(&format!(
                "cannot move {} to a subdirectory of itself, {}",
                quote(src),
                quote(dst)
            ));
        }
    }
    let flags = if no_clobber {
        libc::RENAME_NOREPLACE
    } else {
        0
    };
    match fs.rename(&sloc, &dloc, flags) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            if !across(fs, ui, &sloc, &dloc, src, dst) {
                return;
            }
        }
        Err(e) if no_clobber && e.raw_os_error() == Some(libc::EEXIST) => return,
        Err(e) => return cannot(&e),
    }
    if verbose {
        println!("renamed {} -> {}", quote(src), quote(dst));
    }
}

/// A move between the view and the disk outside it: copy (as `cp -a`),
/// then remove the source. Whether it all went.
fn across(fs: &Vfs<'_>, ui: &Ui, sloc: &Loc, dloc: &Loc, src: &Path, dst: &Path) -> bool {
    if dloc.exists() {
        let gone = if dloc.is_dir() {
            fs.rmdir(dloc)
        } else {
            fs.unlink(dloc)
        };
        if let Err(e) = gone {
            ui.error_io(&format!("cannot remove {}", quote(dst)), &e);
            return false;
        }
    }
    let opts = CpOpts::archive();
    let mut copier = Copier::new(fs, ui, &opts);
    if !copier.top(src, dst) {
        return false;
    }
    remove_tree(fs, ui, sloc, src)
}

/// Removes a tree (no prompts: mv owns what it moved).
fn remove_tree(fs: &Vfs<'_>, ui: &Ui, loc: &Loc, shown: &Path) -> bool {
    if loc.is_dir() {
        let names = match fs.read_dir(loc) {
            Ok(n) => n,
            Err(e) => {
                ui.error_io(&format!("cannot remove {}", quote(shown)), &e);
                return false;
            }
        };
        let mut ok = true;
        for name in names {
            let child_shown = join(shown.as_os_str(), &name);
            ok &= match fs.child(loc, &name) {
                Ok(c) => remove_tree(fs, ui, &c, &child_shown),
                Err(e) => {
                    ui.error_io(&format!("cannot remove {}", quote(&child_shown)), &e);
                    false
                }
            };
        }
        if !ok {
            return false;
        }
        if let Err(e) = fs.rmdir(loc) {
            ui.error_io(&format!("cannot remove {}", quote(shown)), &e);
            return false;
        }
        return true;
    }
    match fs.unlink(loc) {
        Ok(()) => true,
        Err(e) => {
            ui.error_io(&format!("cannot remove {}", quote(shown)), &e);
            false
        }
    }
}
