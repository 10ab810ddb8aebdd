//! `mkdir [-p] [-m MODE] [-v] DIR…`: directories are physical (DESIGN.md
//! §2); the daemon makes them and records them as made by the rift.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::gnu::{quote, Ui};
use crate::mode::Mode;
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::{Node, Vfs};
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "m:pv",
    long: &[
        ("mode", Takes::Yes, Some('m')),
        ("parents", Takes::No, Some('p')),
        ("verbose", Takes::No, Some('v')),
        ("context", Takes::Maybe, None),
        COMMON[0],
        COMMON[1],
    ],
};

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let parents = p.has('p');
    let verbose = p.has('v');
    let umask = fs.umask;
    let mode = match p.value('m') {
        None => 0o777 & !umask,
        Some(m) => match m.to_str().and_then(Mode::parse) {
            Some(mode) => mode.apply(0o777, true, umask),
            None => {
                ui.error(&format!("invalid mode {}", quote(m)));
                return Ok(1);
            }
        },
    };
    if p.operands.is_empty() {
        return Ok(ui.usage("missing operand"));
    }
    for op in &p.operands {
        let path = Path::new(op);
        if parents && !make_parents(fs, ui, path, verbose) {
            continue;
        }
        make(fs, ui, path, mode, p.value('m').is_some(), verbose, parents);
    }
    Ok(ui.status())
}

/// Makes one directory. With `-p` an existing directory is fine.
fn make(
    fs: &Vfs<'_>,
    ui: &Ui,
    path: &Path,
    mode: u32,
    explicit_mode: bool,
    verbose: bool,
    parents: bool,
) -> bool {
    let fail = |e: &std::io::Error| {
        ui.error_io(&format!("cannot create directory {}", quote(path)), e);
        false
    };
    let loc = match fs.locate(path, false) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    if loc.exists() {
        if parents && fs.stat(path).is_ok_and(|s| s.is_dir()) {
            return true;
        }
        return fail(&std::io::Error::from_raw_os_error(libc::EEXIST));
    }
    if let Err(e) = fs.mkdir(&loc, mode) {
        return fail(&e);
    }
    if verbose {
        println!("mkdir: created directory {}", quote(path));
    }
    // mkdir(2) outside the domain applied the umask again, and ignores the
    // special bits: GNU sets an explicit -m mode afterwards.
    if explicit_mode && (mode & !0o777 != 0 || mode & fs.umask != 0) {
        if let Ok(now) = fs.locate(path, false) {
            if let Err(e) = fs.chmod(&now, mode) {
                ui.error_io(&format!("cannot set permissions of {}", quote(path)), &e);
                return false;
            }
        }
    }
    true
}

/// `-p`: the missing ancestors of `path`, made u+wx so the walk can go on.
/// False after reporting the ancestor that could not be made.
fn make_parents(fs: &Vfs<'_>, ui: &Ui, path: &Path, verbose: bool) -> bool {
    let bytes = path.as_os_str().as_bytes();
    let mut prefix = PathBuf::new();
    let parts: Vec<&[u8]> = bytes.split(|&c| c == b'/').collect();
    if bytes.first() == Some(&b'/') {
        prefix.push("/");
    }
    let last_nonempty = parts.iter().rposition(|p| !p.is_empty()).unwrap_or(0);
    for part in &parts[..last_nonempty] {
        if part.is_empty() {
            continue;
        }
        prefix.push(std::ffi::OsStr::from_bytes(part));
        if *part == b"." || *part == b".." {
            continue;
        }
        let made = fs.locate(&prefix, true).and_then(|loc| match loc.node {
            _ if loc.is_dir() => Ok(()),
            Node::Absent => {
                fs.mkdir(&loc, (0o777 & !fs.umask) | 0o300)?;
                if verbose {
                    println!("mkdir: created directory {}", quote(&prefix));
                }
                Ok(())
            }
            _ => Err(std::io::Error::from_raw_os_error(libc::ENOTDIR)),
        });
        if let Err(e) = made {
            ui.error_io(&format!("cannot create directory {}", quote(&prefix)), &e);
            return false;
        }
    }
    true
}
