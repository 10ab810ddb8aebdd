//! `rmdir [-p] [-v] [--ignore-fail-on-non-empty] DIR…`: empty in the view
//! is what counts (a directory whose files are all whiteouts is empty).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::gnu::{quote, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::Vfs;
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "pv",
    long: &[
        ("ignore-fail-on-non-empty", Takes::No, Some('I')),
        ("parents", Takes::No, Some('p')),
        ("verbose", Takes::No, Some('v')),
        COMMON[0],
        COMMON[1],
    ],
};

fn remove(fs: &Vfs<'_>, path: &Path) -> io::Result<()> {
    if fs.slash_after_symlink(path) {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    let loc = fs.locate(path, false)?;
    if !loc.exists() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if !loc.is_dir() {
        // rmdir(2) of a symlink to a directory fails the same way.
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    fs.rmdir(&loc)
}

fn not_empty(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST))
}

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let (parents, verbose, ignore) = (p.has('p'), p.has('v'), p.has('I'));
    if p.operands.is_empty() {
        return Ok(ui.usage("missing operand"));
    }
    for op in &p.operands {
        if verbose {
            println!("rmdir: removing directory, {}", quote(op));
        }
        if let Err(e) = remove(fs, Path::new(op)) {
            if e.raw_os_error() == Some(libc::ENOTDIR) && fs.slash_after_symlink(Path::new(op)) {
                // GNU's wording for `rmdir link/`.
                ui.error(&format!(
                    "failed to remove {}: Symbolic link not followed",
                    quote(op)
                ));
            } else if !(ignore && not_empty(&e)) {
                ui.error_io(&format!("failed to remove {}", quote(op)), &e);
            }
            continue;
        }
        if !parents {
            continue;
        }
        // Each ancestor named in the operand, innermost first.
        let mut cur = op.as_bytes();
        loop {
            while cur.len() > 1 && cur.ends_with(b"/") {
                cur = &cur[..cur.len() - 1];
            }
            let Some(slash) = cur.iter().rposition(|&c| c == b'/') else {
                break;
            };
            cur = &cur[..slash];
            while cur.len() > 1 && cur.ends_with(b"/") {
                cur = &cur[..cur.len() - 1];
            }
            if cur.is_empty() || cur == b"/" {
                break;
            }
            let dir = OsStr::from_bytes(cur);
            if verbose {
                println!("rmdir: removing directory, {}", quote(dir));
            }
            if let Err(e) = remove(fs, Path::new(dir)) {
                if !(ignore && not_empty(&e)) {
                    ui.error_io(&format!("failed to remove directory {}", quote(dir)), &e);
                }
                break;
            }
        }
    }
    Ok(ui.status())
}
