//! One module per applet; each `main` parses its arguments first (handing
//! anything it does not implement to the real tool, see [`crate::Fallback`])
//! and only then acts, reporting each failure GNU's way and going on.

pub mod cat;
pub mod chmod;
pub mod chown;
pub mod cp;
pub mod ln;
pub mod mkdir;
pub mod mv;
pub mod rm;
pub mod rmdir;
pub mod touch;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::gnu::{quote, Ui};
use crate::vfs::Vfs;

/// An operand's last component, trailing slashes ignored (GNU's
/// `last_component`): `a/b/` → `b`, `/` → `/`.
pub fn base_name(p: &OsStr) -> &OsStr {
    let b = p.as_bytes();
    let trimmed = {
        let mut end = b.len();
        while end > 1 && b[end - 1] == b'/' {
            end -= 1;
        }
        &b[..end]
    };
    if trimmed == b"/" {
        return OsStr::from_bytes(trimmed);
    }
    match trimmed.iter().rposition(|&c| c == b'/') {
        Some(i) => OsStr::from_bytes(&trimmed[i + 1..]),
        None => OsStr::from_bytes(trimmed),
    }
}

/// `dir/name` as GNU prints it: trailing slashes of `dir` dropped first.
pub fn join(dir: &OsStr, name: &OsStr) -> PathBuf {
    let b = dir.as_bytes();
    let mut end = b.len();
    while end > 0 && b[end - 1] == b'/' {
        end -= 1;
    }
    let mut v = b[..end].to_vec();
    v.push(b'/');
    v.extend_from_slice(name.as_bytes());
    PathBuf::from(OsStr::from_bytes(&v))
}

/// How cp, mv and ln read their operands.
pub enum Targets {
    /// Each source goes into this directory under its own name.
    IntoDir(OsString, Vec<OsString>),
    /// One source, one destination name.
    One(OsString, OsString),
}

/// The GNU rules shared by cp, mv and ln: `-t DIR`, `-T`, and "the last
/// operand is a directory" when there are several or it is one. `None`
/// after reporting a usage error (the caller exits 1).
pub fn targets(
    fs: &Vfs<'_>,
    ui: &Ui,
    mut operands: Vec<OsString>,
    target_dir: Option<&OsStr>,
    no_target_dir: bool,
    follow_dest: bool,
) -> Option<Targets> {
    if let Some(dir) = target_dir {
        if no_target_dir {
            ui.error("cannot combine --target-directory (-t) and --no-target-directory (-T)");
            return None;
        }
        if operands.is_empty() {
            ui.usage("missing file operand");
            return None;
        }
        let ln = ui.prog == "ln";
        match fs.stat(Path::new(dir)) {
            Ok(st) if st.is_dir() => {}
            Ok(_) if ln => {
                ui.error(&format!("target {} is not a directory", quote(dir)));
                return None;
            }
            Ok(_) => {
                ui.error_io(
                    &format!("target directory {}", quote(dir)),
                    &std::io::Error::from_raw_os_error(libc::ENOTDIR),
                );
                return None;
            }
            Err(e) => {
                let what = if ln {
                    "failed to access"
                } else {
                    "target directory"
                };
                ui.error_io(&format!("{what} {}", quote(dir)), &e);
                return None;
            }
        }
        return Some(Targets::IntoDir(dir.to_os_string(), operands));
    }
    match operands.len() {
        0 => {
            ui.usage("missing file operand");
            return None;
        }
        1 => {
            ui.usage(&format!(
                "missing destination file operand after {}",
                quote(&operands[0])
            ));
            return None;
        }
        _ => {}
    }
    if no_target_dir {
        if operands.len() > 2 {
            ui.usage(&format!("extra operand {}", quote(&operands[2])));
            return None;
        }
        let dest = operands.pop().expect("two");
        return Some(Targets::One(operands.remove(0), dest));
    }
    let dest = operands.pop().expect("two or more");
    let dest_is_dir = if follow_dest {
        fs.stat(Path::new(&dest)).map(|s| s.is_dir())
    } else {
        fs.lstat(Path::new(&dest)).map(|s| s.is_dir())
    };
    match dest_is_dir {
        Ok(true) => Some(Targets::IntoDir(dest, operands)),
        _ if operands.len() == 1 => Some(Targets::One(operands.remove(0), dest)),
        Ok(false) => {
            ui.error_io(
                &format!("target {}", quote(&dest)),
                &std::io::Error::from_raw_os_error(libc::ENOTDIR),
            );
            None
        }
        Err(e) => {
            ui.error_io(&format!("target {}", quote(&dest)), &e);
            None
        }
    }
}

impl Targets {
    /// (source, destination) pairs.
    pub fn pairs(&self) -> Vec<(PathBuf, PathBuf)> {
        match self {
            Targets::IntoDir(dir, sources) => sources
                .iter()
                .map(|s| (PathBuf::from(s), join(dir, base_name(s))))
                .collect(),
            Targets::One(s, d) => vec![(PathBuf::from(s), PathBuf::from(d))],
        }
    }
}

/// Whether the operand names `.` or `..` as its last component.
pub fn is_dot_or_dotdot(p: &OsStr) -> bool {
    let b = base_name(p).as_bytes();
    b == b"." || b == b".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_joins() {
        assert_eq!(base_name(OsStr::new("a/b/")), "b");
        assert_eq!(base_name(OsStr::new("/")), "/");
        assert_eq!(base_name(OsStr::new("x")), "x");
        assert_eq!(join(OsStr::new("t//"), OsStr::new("a")), Path::new("t/a"));
        assert_eq!(join(OsStr::new("/"), OsStr::new("a")), Path::new("/a"));
        assert!(is_dot_or_dotdot(OsStr::new("e/..")));
        assert!(is_dot_or_dotdot(OsStr::new("./")));
    }
}
