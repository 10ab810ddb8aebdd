//! `ln [-s] [-f] [-n] [-L|-P] [-v] [-t DIR|-T] TARGET… [LINK]`: symlinks
//! and hard links are rift entries (a hard link is a second entry with the
//! same content; across the domain's edge, EXDEV as between filesystems).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::{base_name, targets};
use crate::gnu::{quote, quotef, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::Vfs;
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "fLnPst:Tv",
    long: &[
        ("backup", Takes::Maybe, None),
        ("directory", Takes::No, None),
        ("force", Takes::No, Some('f')),
        ("interactive", Takes::No, None),
        ("logical", Takes::No, Some('L')),
        ("no-dereference", Takes::No, Some('n')),
        ("physical", Takes::No, Some('P')),
        ("relative", Takes::No, None),
        ("symbolic", Takes::No, Some('s')),
        ("suffix", Takes::Yes, None),
        ("target-directory", Takes::Yes, Some('t')),
        ("no-target-directory", Takes::No, Some('T')),
        ("verbose", Takes::No, Some('v')),
        COMMON[0],
        COMMON[1],
    ],
};

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let symbolic = p.has('s');
    let force = p.has('f');
    let no_deref = p.has('n');
    let verbose = p.has('v');
    let mut logical = false;
    for (k, _) in &p.opts {
        match k {
            'L' => logical = true,
            'P' => logical = false,
            _ => {}
        }
    }
    let pairs: Vec<(PathBuf, PathBuf)> =
        if p.operands.len() == 1 && p.value('t').is_none() && !p.has('T') {
            // One operand: a link of the same name in the current directory.
            let target = PathBuf::from(&p.operands[0]);
            let name = PathBuf::from(base_name(target.as_os_str()));
            vec![(target, name)]
        } else {
            match targets(
                fs,
                ui,
                p.operands.clone(),
                p.value('t'),
                p.has('T'),
                !no_deref,
            ) {
                Some(t) => t.pairs(),
                None => return Ok(1),
            }
        };
    for (target, link) in pairs {
        make(fs, ui, &target, &link, symbolic, force, logical, verbose);
    }
    Ok(ui.status())
}

#[allow(clippy::too_many_arguments)]
fn make(
    fs: &Vfs<'_>,
    ui: &Ui,
    target: &Path,
    link: &Path,
    symbolic: bool,
    force: bool,
    logical: bool,
    verbose: bool,
) {
    // GNU's wording depends on the error.
    let failed = |e: &io::Error| {
        let errno = e.raw_os_error().unwrap_or(0);
        let what = if symbolic {
            if errno == libc::ENAMETOOLONG || target.as_os_str().is_empty() {
                format!(
                    "failed to create symbolic link {} -> {}",
                    quote(link),
                    quote(target)
                )
            } else {
                format!("failed to create symbolic link {}", quote(link))
            }
        } else if errno == libc::EMLINK {
            format!("failed to create hard link to {}", quote(target))
        } else if [libc::EDQUOT, libc::EEXIST, libc::ENOSPC, libc::EROFS].contains(&errno) {
            format!("failed to create hard link {}", quote(link))
        } else {
            format!(
                "failed to create hard link {} => {}",
                quote(link),
                quote(target)
            )
        };
        ui.error_io(&what, e)
    };
    let tloc = if symbolic {
        None
    } else {
        match fs.locate(target, logical) {
            Ok(l) if l.exists() => {
                if l.is_dir() {
                    return ui.error(&format!(
                        "{}: hard link not allowed for directory",
                        quotef(target)
                    ));
                }
                Some(l)
            }
            Ok(_) => {
                return ui.error_io(
                    &format!("failed to access {}", quote(target)),
                    &io::Error::from_raw_os_error(libc::ENOENT),
                )
            }
            Err(e) => return ui.error_io(&format!("failed to access {}", quote(target)), &e),
        }
    };
    let mut dloc = match fs.locate(link, false) {
        Ok(l) => l,
        Err(e) => return failed(&e),
    };
    if dloc.exists() {
        if !force {
            return failed(&io::Error::from_raw_os_error(libc::EEXIST));
        }
        if dloc.is_dir() {
            return ui.error(&format!("{}: cannot overwrite directory", quotef(link)));
        }
        if let Some(t) = &tloc {
            let same = match (fs.stat_loc(t), fs.stat_loc(&dloc)) {
                (Ok(a), Ok(b)) => a.same_file(&b),
                _ => false,
            };
            if same {
                return ui.error(&format!(
                    "{} and {} are the same file",
                    quote(target),
                    quote(link)
                ));
            }
        }
        if let Err(e) = fs.unlink(&dloc) {
            return ui.error_io(&format!("cannot remove {}", quote(link)), &e);
        }
        dloc = match fs.locate(link, false) {
            Ok(l) => l,
            Err(e) => return failed(&e),
        };
    }
    let made = match &tloc {
        None => fs.symlink(target.as_os_str(), &dloc),
        Some(t) => fs.link(t, &dloc),
    };
    if let Err(e) = made {
        return failed(&e);
    }
    if verbose {
        let arrow = if symbolic { "->" } else { "=>" };
        println!("{} {arrow} {}", quote(link), quote(target));
    }
}
