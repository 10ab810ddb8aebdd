//! Binary inspection: can a program load vrift's preload library?
//!
//! The shim reaches a process through `LD_PRELOAD` (Linux) or
//! `DYLD_INSERT_LIBRARIES` (macOS). The loader silently ignores it, and the
//! process then sees the physical tree instead of the view, when:
//!
//! - there is no loader: a static ELF (no `PT_INTERP`), a Mach-O executable
//!   without `LC_LOAD_DYLINKER`;
//! - the process runs in secure mode: setuid or setgid (Linux: `AT_SECURE`,
//!   macOS: dyld "restricted"), or file capabilities (Linux: the
//!   `security.capability` xattr also sets `AT_SECURE`);
//! - macOS code signing forbids it: the hardened runtime (`CS_RUNTIME` in the
//!   code directory) without the entitlements that re-allow `DYLD_*` and
//!   foreign libraries, `CS_RESTRICT`, library validation, or a
//!   `__RESTRICT,__restrict` section;
//! - the architecture does not match the shim: an arm64e process can load
//!   only arm64e libraries; a 32-bit ELF cannot load a 64-bit shim.
//!
//! Those processes need a wrapper (DESIGN.md §3) or, for third-party macOS
//! binaries, a shadow copy (`vrift shadow`).

pub mod elf;
pub mod macho;

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// What a file is, as far as loading the shim goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Kind {
    Elf,
    /// A Mach-O file; `slices` > 1 for a universal (fat) binary.
    MachO {
        slices: usize,
    },
    /// A `#!` script; whether it can load the shim is its interpreter's matter.
    Script {
        interpreter: PathBuf,
    },
    /// Anything else (not an executable format we know).
    Other,
}

/// One reason the shim would not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum Blocker {
    /// No dynamic loader runs for it.
    Static,
    Setuid,
    Setgid,
    /// File capabilities (`security.capability`).
    Capabilities,
    /// Built for another architecture than the shim (`arch` is the binary's).
    OtherArchitecture {
        arch: String,
    },
    /// macOS hardened runtime (`CS_RUNTIME`) without both
    /// `allow-dyld-environment-variables` and `disable-library-validation`.
    HardenedRuntime {
        arch: String,
    },
    /// macOS `CS_RESTRICT` or a `__RESTRICT,__restrict` section.
    Restricted {
        arch: String,
    },
    /// macOS library validation (`CS_REQUIRE_LV`): only same-team libraries load.
    LibraryValidation {
        arch: String,
    },
    /// An arm64e slice: it loads only arm64e libraries.
    Arm64e,
    /// A script whose interpreter cannot load the shim.
    Interpreter {
        path: PathBuf,
        blockers: Vec<Blocker>,
    },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Static => f.write_str("statically linked"),
            Blocker::Setuid => f.write_str("setuid"),
            Blocker::Setgid => f.write_str("setgid"),
            Blocker::Capabilities => f.write_str("has file capabilities"),
            Blocker::OtherArchitecture { arch } => {
                write!(f, "built for {arch}, not {}", std::env::consts::ARCH)
            }
            Blocker::HardenedRuntime { arch } => write!(f, "hardened runtime ({arch})"),
            Blocker::Restricted { arch } => write!(f, "restricted ({arch})"),
            Blocker::LibraryValidation { arch } => write!(f, "library validation ({arch})"),
            Blocker::Arm64e => f.write_str("arm64e"),
            Blocker::Interpreter { path, blockers } => {
                write!(f, "its interpreter {} is ", path.display())?;
                write_list(f, blockers)
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, blockers: &[Blocker]) -> fmt::Result {
    for (i, b) in blockers.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{b}")?;
    }
    Ok(())
}

/// The commands builds call that `vrift doctor` inspects, and that `vrift
/// init` wraps automatically when they cannot load the library.
pub const BUILD_COMMANDS: [&str; 5] = ["make", "cc", "gcc", "cargo", "sh"];

/// The build commands on PATH (past `.vrift/bin`) that cannot load the
/// library, with why: they get a wrapper without being configured.
pub fn unpreloadable_build_commands() -> Vec<(String, Inspection)> {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    BUILD_COMMANDS
        .iter()
        .filter_map(|name| {
            let real = crate::applets::find_real(name, me.as_deref())?;
            let found = inspect(&real).ok()?;
            (!found.can_preload()).then(|| (name.to_string(), found))
        })
        .collect()
}

/// The answer for one file.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    path: PathBuf,
    #[serde(flatten)]
    pub kind: Kind,
    /// Empty when the shim would be loaded.
    pub blockers: Vec<Blocker>,
}

impl Inspection {
    /// The file inspected.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the loader would load the shim into this program.
    pub fn can_preload(&self) -> bool {
        self.blockers.is_empty()
    }

    /// The blockers as one phrase ("statically linked, setuid").
    pub fn why(&self) -> String {
        struct List<'a>(&'a [Blocker]);
        impl fmt::Display for List<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_list(f, self.0)
            }
        }
        List(&self.blockers).to_string()
    }
}

/// How deep `#!` interpreters are followed (Linux allows a few levels).
const MAX_SCRIPT_DEPTH: usize = 4;

/// Inspects the file at `path` (following symlinks).
pub fn inspect(path: &Path) -> Result<Inspection> {
    inspect_at_depth(path, 0)
}

fn inspect_at_depth(path: &Path, depth: usize) -> Result<Inspection> {
    use std::os::unix::fs::PermissionsExt;

    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .permissions()
        .mode();
    let mut blockers = Vec::new();
    let kind = if let Some(interp) = script_interpreter(&data) {
        // The kernel ignores setuid on scripts; only the interpreter matters.
        let interp = resolve_interpreter(&interp);
        if depth < MAX_SCRIPT_DEPTH && interp.is_file() {
            let inner = inspect_at_depth(&interp, depth + 1)?;
            if !inner.can_preload() {
                blockers.push(Blocker::Interpreter {
                    path: interp.clone(),
                    blockers: inner.blockers,
                });
            }
        }
        Kind::Script {
            interpreter: interp,
        }
    } else {
        let kind = match object::FileKind::parse(&*data) {
            Ok(object::FileKind::Elf32 | object::FileKind::Elf64) => {
                blockers.extend(
                    elf::inspect(&data)
                        .with_context(|| format!("cannot parse ELF {}", path.display()))?,
                );
                Kind::Elf
            }
            Ok(
                object::FileKind::MachO32
                | object::FileKind::MachO64
                | object::FileKind::MachOFat32
                | object::FileKind::MachOFat64,
            ) => {
                let slices = macho::inspect(&data)
                    .with_context(|| format!("cannot parse Mach-O {}", path.display()))?;
                blockers.extend(macho::blockers(&slices));
                Kind::MachO {
                    slices: slices.len(),
                }
            }
            _ => Kind::Other,
        };
        if kind != Kind::Other {
            if mode & 0o4000 != 0 {
                blockers.push(Blocker::Setuid);
            }
            // Setgid without group-execute is mandatory locking, not setgid.
            if mode & 0o2010 == 0o2010 {
                blockers.push(Blocker::Setgid);
            }
            if has_capabilities(path)? {
                blockers.push(Blocker::Capabilities);
            }
        }
        kind
    };
    Ok(Inspection {
        path: path.to_path_buf(),
        kind,
        blockers,
    })
}

/// The interpreter named by a `#!` line, and for `#!/usr/bin/env NAME` the
/// NAME (resolved on PATH by [`resolve_interpreter`]).
fn script_interpreter(data: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;

    let line = data.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let mut words = line
        .split(|b| *b == b' ' || *b == b'\t' || *b == b'\r')
        .filter(|w| !w.is_empty());
    let first = words.next()?;
    if first.ends_with(b"/env") {
        // `env -S …` and option forms: take the first word that is not an option.
        return words
            .find(|w| !w.starts_with(b"-"))
            .map(|w| PathBuf::from(OsStr::from_bytes(w)));
    }
    Some(PathBuf::from(OsStr::from_bytes(first)))
}

fn resolve_interpreter(name: &Path) -> PathBuf {
    if name.is_absolute() {
        return name.to_path_buf();
    }
    which::which(name).unwrap_or_else(|_| name.to_path_buf())
}

/// Whether `path` carries file capabilities (Linux `security.capability`).
#[cfg(target_os = "linux")]
pub fn has_capabilities(path: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;

    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} contains a NUL byte", path.display()))?;
    // SAFETY: a valid C string and a zero-sized buffer: getxattr only
    // reports the value's size.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    if n >= 0 {
        return Ok(n > 0);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // No such attribute, or a filesystem without xattrs.
        Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(false),
        _ => {
            Err(err).with_context(|| format!("cannot read the capabilities of {}", path.display()))
        }
    }
}

/// Whether `path` carries file capabilities (a Linux notion; none elsewhere).
#[cfg(not(target_os = "linux"))]
pub fn has_capabilities(_path: &Path) -> Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        assert_eq!(
            script_interpreter(b"#!/bin/sh -e\necho"),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            script_interpreter(b"#! /usr/bin/env -S python3 -u\n"),
            Some(PathBuf::from("python3"))
        );
        assert_eq!(script_interpreter(b"\x7fELF"), None);
    }
}
