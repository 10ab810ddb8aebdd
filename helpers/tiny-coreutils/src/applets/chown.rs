//! `chown [-R] [-h] [-f] OWNER[:[GROUP]] FILE…` (also `:GROUP`,
//! `OWNER.GROUP`, numeric ids): entry metadata in the rift; directories
//! are physical. A change to what the file already has sends nothing.

use std::ffi::{CString, OsString};
use std::path::Path;

use super::join;
use crate::gnu::{quote, Ui};
use crate::opts::{Spec, Takes, COMMON};
use crate::vfs::{Loc, Node, Vfs};
use crate::Fallback;

const SPEC: Spec = Spec {
    short: "fhPR",
    long: &[
        ("changes", Takes::No, None),
        ("silent", Takes::No, Some('f')),
        ("quiet", Takes::No, Some('f')),
        ("verbose", Takes::No, None),
        ("dereference", Takes::No, Some('D')),
        ("no-dereference", Takes::No, Some('h')),
        ("from", Takes::Yes, None),
        ("no-preserve-root", Takes::No, Some('N')),
        ("preserve-root", Takes::No, None),
        ("reference", Takes::Yes, None),
        ("recursive", Takes::No, Some('R')),
        COMMON[0],
        COMMON[1],
    ],
};

/// Keep this id (chown(2)'s -1).
const KEEP: u32 = u32::MAX;

fn user_by_name(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or NULL; we copy out at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn group_by_name(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: as above.
    unsafe {
        let gr = libc::getgrnam(c.as_ptr());
        (!gr.is_null()).then(|| (*gr).gr_gid)
    }
}

fn numeric(s: &str) -> Option<u32> {
    let d = s.strip_prefix('+').unwrap_or(s);
    if d.is_empty() || !d.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    d.parse::<u32>().ok().filter(|&n| n != KEEP)
}

/// GNU's `parse_user_spec`: (uid, gid), KEEP for "unchanged", and
/// whether the old `user.group` form was used; or the error.
pub fn parse_spec(spec: &str) -> Result<(u32, u32, bool), &'static str> {
    let (user, group, dot) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g), false),
        // The old `user.group` form, when `user.group` is no user name.
        None => match spec.split_once('.') {
            Some((u, g)) if user_by_name(spec).is_none() && !u.is_empty() => (u, Some(g), true),
            _ => (spec, None, false),
        },
    };
    let mut uid = KEEP;
    let mut gid = KEEP;
    if !user.is_empty() {
        match user_by_name(user) {
            Some((u, login_group)) => {
                uid = u;
                // `user:` means the user's login group.
                if group == Some("") {
                    gid = login_group;
                }
            }
            None => match numeric(user) {
                Some(u) => {
                    uid = u;
                    if group == Some("") {
                        return Err("invalid spec");
                    }
                }
                None => return Err("invalid user"),
            },
        }
    }
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match group_by_name(g).or_else(|| numeric(g)) {
            Some(g) => g,
            None => return Err("invalid group"),
        };
    }
    Ok((uid, gid, dot))
}

struct Run<'a> {
    fs: &'a Vfs<'a>,
    ui: &'a Ui,
    uid: u32,
    gid: u32,
    recursive: bool,
    quiet: bool,
}

pub fn main(args: &[OsString], fs: &Vfs<'_>, ui: &Ui) -> Result<i32, Fallback> {
    let p = SPEC.parse(args, |_| false)?;
    let recursive = p.has('R');
    if recursive && p.has('D') {
        return Err(Fallback::new("-R --dereference needs -H or -L"));
    }
    // -R walks physically (-P): no symlink is followed, even on the command line.
    let follow = !p.has('h') && !recursive;
    let mut operands = p.operands.clone();
    if operands.is_empty() {
        return Ok(ui.usage("missing operand"));
    }
    let spec = operands.remove(0);
    if operands.is_empty() {
        return Ok(ui.usage(&format!("missing operand after {}", quote(&spec))));
    }
    let spec_text = spec
        .to_str()
        .ok_or_else(|| Fallback::new("an owner that is not UTF-8"))?;
    let (uid, gid) = match parse_spec(spec_text) {
        Ok((uid, gid, dot)) => {
            if dot {
                eprintln!("chown: warning: '.' should be ':': {}", quote(&spec));
            }
            (uid, gid)
        }
        Err(what) => {
            ui.error(&format!("{what}: {}", quote(&spec)));
            return Ok(1);
        }
    };
    let run = Run {
        fs,
        ui,
        uid,
        gid,
        recursive,
        quiet: p.has('f'),
    };
    for f in &operands {
        let path = Path::new(f);
        match fs.locate(path, follow) {
            Ok(loc) if loc.exists() => run.one(&loc, path),
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
    fn report(&self, what: &str, e: &std::io::Error) {
        if self.quiet {
            self.ui.fail();
        } else {
            self.ui.error_io(what, e);
        }
    }

    fn one(&self, loc: &Loc, shown: &Path) {
        let st = match self.fs.stat_loc(loc) {
            Ok(st) => st,
            Err(e) => return self.report(&format!("cannot access {}", quote(shown)), &e),
        };
        let same =
            (self.uid == KEEP || self.uid == st.uid) && (self.gid == KEEP || self.gid == st.gid);
        if !same {
            if let Err(e) = self.fs.chown(loc, self.uid, self.gid) {
                let what = if self.uid == KEEP {
                    "changing group of"
                } else {
                    "changing ownership of"
                };
                self.report(&format!("{what} {}", quote(shown)), &e);
            }
        }
        if !(self.recursive && st.is_dir()) {
            return;
        }
        let names = match self.fs.read_dir(loc) {
            Ok(n) => n,
            Err(e) => return self.report(&format!("cannot read directory {}", quote(shown)), &e),
        };
        for name in names {
            let child_shown = join(shown.as_os_str(), &name);
            match self.fs.child(loc, &name) {
                Ok(child) if matches!(child.node, Node::Absent) => {}
                Ok(child) => self.one(&child, &child_shown),
                Err(e) => self.report(&format!("cannot access {}", quote(&child_shown)), &e),
            }
        }
    }
}
