//! `chmod [-R] [-f] MODE[,MODE]… FILE…`: entry metadata in the rift (a
//! disk file is copied up first, by the daemon); directories are physical.
//! A mode that would not change anything sends nothing, so a no-op chmod
//! copies no file into the rift.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::join;
use crate::gnu::{perm_string, quote, quotef, Ui};
use crate::mode::Mode;
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::{Loc, Node, Vfs};
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "fR",
    long: &[
        ("changes", Takes::No, None),
        ("silent", Takes::No, Some('f')),
        ("quiet", Takes::No, Some('f')),
        ("verbose", Takes::No, None),
        ("no-preserve-root", Takes::No, Some('N')),
        ("preserve-root", Takes::No, None),
        ("reference", Takes::Yes, None),
        ("recursive", Takes::No, Some('R')),
        COMMON[0],
        COMMON[1],
    ],
};

/// GNU chmod reads `-w`, `-rwx`, `-022`… as modes, not options.
fn mode_like(arg: &[u8]) -> bool {
    arg.len() >= 2
        && arg[1..]
            .iter()
            .all(|c| b"rwxXstugoa,+-=01234567".contains(c))
}

struct Run<'a> {
    fs: &'a Vfs<'a>,
    ui: &'a Ui,
    mode: Mode,
    recursive: bool,
    quiet: bool,
    surprises: bool,
}

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, mode_like)?;
    let mut files = p.operands.clone();
    let surprises = !p.claimed.is_empty();
    let mode_text: OsString = if surprises {
        let parts: Vec<&OsStr> = p.claimed.iter().map(|c| c.as_os_str()).collect();
        parts.join(OsStr::new(","))
    } else if files.is_empty() {
        return Ok(ui.usage("missing operand"));
    } else {
        files.remove(0)
    };
    if files.is_empty() {
        return Ok(ui.usage(&format!("missing operand after {}", quote(&mode_text))));
    }
    let Some(mode) = mode_text.to_str().and_then(Mode::parse) else {
        return Ok(ui.usage(&format!("invalid mode: {}", quote(&mode_text))));
    };
    let run = Run {
        fs,
        ui,
        mode,
        recursive: p.has('R'),
        quiet: p.has('f'),
        surprises,
    };
    for f in &files {
        let path = Path::new(f);
        match fs.locate(path, true) {
            Ok(loc) if loc.exists() => run.one(&loc, path),
            Ok(_) if fs.lstat(path).is_ok_and(|s| s.is_symlink()) => {
                if !run.quiet {
                    ui.error(&format!("cannot operate on dangling symlink {}", quote(f)));
                } else {
                    run.fail();
                }
            }
            Ok(_) => run.report(
                &format!("cannot access {}", quote(f)),
                &std::io::Error::from_raw_os_error(libc::ENOENT),
            ),
            Err(e) => run.report(&format!("cannot access {}", quote(f)), &e),
        }
    }
    Ok(ui.status())
}

impl Run<'_> {
    /// -f hides the message, not the failure.
    fn fail(&self) {
        self.ui.fail();
    }

    fn report(&self, what: &str, e: &std::io::Error) {
        if self.quiet {
            self.fail();
        } else {
            self.ui.error_io(what, e);
        }
    }

    /// Changes `loc` (shown as `shown`), then its tree with -R (preorder,
    /// symlinks met on the way left alone, as GNU chmod does).
    fn one(&self, loc: &Loc, shown: &Path) {
        let st = match self.fs.stat_loc(loc) {
            Ok(st) => st,
            Err(e) => return self.report(&format!("cannot access {}", quote(shown)), &e),
        };
        let old = st.mode & 0o7777;
        let new = self.mode.apply(old, st.is_dir(), self.fs.umask);
        if new != old {
            if let Err(e) = self.fs.chmod(loc, new) {
                self.report(&format!("changing permissions of {}", quote(shown)), &e);
                return;
            }
        }
        if self.surprises {
            let naive = self.mode.apply(old, st.is_dir(), 0);
            if new & !naive != 0 {
                self.ui.error(&format!(
                    "{}: new permissions are {}, not {}",
                    quotef(shown),
                    perm_string(new),
                    perm_string(naive)
                ));
            }
        }
        if !(self.recursive && st.is_dir()) {
            return;
        }
        // The directory as it is now (its mode may have just changed).
        let names = match self.fs.read_dir(loc) {
            Ok(n) => n,
            Err(e) => return self.report(&format!("cannot read directory {}", quote(shown)), &e),
        };
        for name in names {
            let child_shown = join(shown.as_os_str(), &name);
            match self.fs.child(loc, &name) {
                Ok(child) if child.is_symlink() => {}
                Ok(child) if matches!(child.node, Node::Absent) => {}
                Ok(child) => self.one(&child, &child_shown),
                Err(e) => self.report(&format!("cannot access {}", quote(&child_shown)), &e),
            }
        }
    }
}
