//! `rm [-f] [-i] [-r|-R] [-d] [-v] FILE…`: unlink → a whiteout (or no
//! record) in the rift; directories leave the disk only when the rift made
//! them and nothing physical is left in them (the daemon decides).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;

use super::{is_dot_or_dotdot, join};
use crate::gnu::{file_type_name, quote, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::{Loc, Vfs, Where};
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "dfirRv",
    long: &[
        ("dir", Takes::No, Some('d')),
        ("force", Takes::No, Some('f')),
        ("interactive", Takes::Maybe, None),
        ("one-file-system", Takes::No, None),
        ("no-preserve-root", Takes::No, None),
        ("preserve-root", Takes::Maybe, Some('P')),
        ("recursive", Takes::No, Some('r')),
        ("verbose", Takes::No, Some('v')),
        COMMON[0],
        COMMON[1],
    ],
};

struct Opts {
    force: bool,
    interactive: bool,
    recursive: bool,
    dir: bool,
    verbose: bool,
    stdin_tty: bool,
}

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let mut o = Opts {
        force: false,
        interactive: false,
        recursive: false,
        dir: false,
        verbose: false,
        stdin_tty: std::io::stdin().is_terminal(),
    };
    for (k, v) in &p.opts {
        match k {
            'f' => (o.force, o.interactive) = (true, false),
            'i' => (o.force, o.interactive) = (false, true),
            'r' | 'R' => o.recursive = true,
            'd' => o.dir = true,
            'v' => o.verbose = true,
            'P' if v.is_some() => {
                return Err(Fallback::new("--preserve-root=all is not implemented"))
            }
            _ => {}
        }
    }
    if p.operands.is_empty() {
        return Ok(if o.force {
            0
        } else {
            ui.usage("missing operand")
        });
    }
    for op in &p.operands {
        if is_dot_or_dotdot(op) {
            ui.error(&format!(
                "refusing to remove '.' or '..' directory: skipping {}",
                quote(op)
            ));
            continue;
        }
        let loc = match fs.locate(Path::new(op), false) {
            Ok(l) => l,
            Err(e) => {
                if !(o.force && e.raw_os_error() == Some(libc::ENOENT)) {
                    ui.error_io(&format!("cannot remove {}", quote(op)), &e);
                }
                continue;
            }
        };
        if o.recursive && loc.at == Where::Outside("/".into()) {
            ui.error(&format!(
                "it is dangerous to operate recursively on {}",
                quote("/")
            ));
            ui.error("use --no-preserve-root to override this failsafe");
            continue;
        }
        if o.recursive && loc.is_dir() && fs.slash_after_symlink(Path::new(op)) {
            // `link/`: what it leads to is emptied (as GNU rm does), but
            // the kernel removes nothing through a symlink.
            if let Ok(names) = fs.read_dir(&loc) {
                remove_children(fs, ui, &o, &loc, Path::new(op), &names);
            }
            ui.error(&format!("cannot remove {}: Not a directory", quote(op)));
            continue;
        }
        remove(fs, ui, &o, &loc, Path::new(op));
    }
    Ok(ui.status())
}

/// Removes `loc` (shown as `shown`); whether it is gone.
fn remove(fs: &Vfs<'_>, ui: &Ui, o: &Opts, loc: &Loc, shown: &Path) -> bool {
    let st = match fs.stat_loc(loc) {
        Ok(st) => st,
        Err(e) => {
            if o.force && e.raw_os_error() == Some(libc::ENOENT) {
                return true;
            }
            ui.error_io(&format!("cannot remove {}", quote(shown)), &e);
            return false;
        }
    };
    let protected = !st.is_symlink() && !fs.writable(loc, &st);
    if st.is_dir() {
        if !o.recursive {
            if !o.dir {
                ui.error(&format!("cannot remove {}: Is a directory", quote(shown)));
                return false;
            }
            if o.interactive && !ui.ask(&format!("remove directory {}? ", quote(shown))) {
                return false;
            }
            return finish_dir(fs, ui, o, loc, shown);
        }
        let names = match fs.read_dir(loc) {
            Ok(n) => n,
            Err(e) => {
                ui.error_io(&format!("cannot remove {}", quote(shown)), &e);
                return false;
            }
        };
        if !names.is_empty() && o.interactive {
            let what = if protected {
                "descend into write-protected directory"
            } else {
                "descend into directory"
            };
            if !ui.ask(&format!("{what} {}? ", quote(shown))) {
                return false;
            }
        }
        let all_gone = remove_children(fs, ui, o, loc, shown, &names);
        if (o.interactive || (protected && !o.force && o.stdin_tty))
            && !ui.ask(&format!(
                "remove {}directory {}? ",
                if protected { "write-protected " } else { "" },
                quote(shown)
            ))
        {
            return false;
        }
        // A child that stayed keeps its directory: GNU says nothing more.
        let res = fs.rmdir(loc);
        let errno = res.as_ref().err().and_then(|e| e.raw_os_error());
        if !all_gone && matches!(errno, Some(libc::ENOTEMPTY | libc::EEXIST)) {
            return false;
        }
        return finish_result(ui, o, shown, res);
    }
    if o.interactive || (protected && !o.force && o.stdin_tty) {
        let q = format!(
            "remove {}{} {}? ",
            if protected { "write-protected " } else { "" },
            file_type_name(st.mode, st.size),
            quote(shown)
        );
        if !ui.ask(&q) {
            return false;
        }
    }
    match fs.unlink(loc) {
        Ok(()) => {
            if o.verbose {
                println!("removed {}", quote(shown));
            }
            true
        }
        Err(e) => {
            ui.error_io(&format!("cannot remove {}", quote(shown)), &e);
            false
        }
    }
}

/// Removes the entries `names` of the directory `loc`; whether all went.
fn remove_children(
    fs: &Vfs<'_>,
    ui: &Ui,
    o: &Opts,
    loc: &Loc,
    shown: &Path,
    names: &[std::ffi::OsString],
) -> bool {
    let mut all_gone = true;
    for name in names {
        let child_shown = join(shown.as_os_str(), name);
        match fs.child(loc, name) {
            Ok(child) => all_gone &= remove(fs, ui, o, &child, &child_shown),
            Err(e) => {
                ui.error_io(&format!("cannot remove {}", quote(&child_shown)), &e);
                all_gone = false;
            }
        }
    }
    all_gone
}

fn finish_dir(fs: &Vfs<'_>, ui: &Ui, o: &Opts, loc: &Loc, shown: &Path) -> bool {
    finish_result(ui, o, shown, fs.rmdir(loc))
}

fn finish_result(ui: &Ui, o: &Opts, shown: &Path, res: std::io::Result<()>) -> bool {
    match res {
        Ok(()) => {
            if o.verbose {
                println!("removed directory {}", quote(shown));
            }
            true
        }
        Err(e) => {
            ui.error_io(&format!("cannot remove {}", quote(shown)), &e);
            false
        }
    }
}
