//! vrift's tiny coreutils: `chmod`, `chown`, `rm`, `cp`, `mv`, `touch`,
//! `mkdir`, `rmdir`, `cat` and `ln`, acting on the *view* (DESIGN.md §2)
//! without LD_PRELOAD.
//!
//! They exist for the programs that cannot load the shim — static binaries,
//! setuid ones, macOS's SIP-protected `/bin` — which the wrappers in
//! `.vrift/bin` send here when an argument lies in the project.
//!
//! # How they see the view
//!
//! Reads go through the hot table (mapped read-only, as the shim maps it)
//! and the disk ([`vfs`]); every change of a path in the domain is a request
//! to the project's daemon, which decides with the errno Linux would give.
//! Paths outside the domain (and vrift's own `.vrift/`) go to the disk
//! directly. The crate depends on `vrift-format` and libc only: the daemon
//! connection is lent by the vrift binary through [`Connector`] (a crate
//! depending on the vrift library could not be linked back into it).
//!
//! # What they promise
//!
//! GNU coreutils' behaviour, messages (as in the C locale) and exit codes
//! for the options they implement. Anything else — an option they do not
//! know, a date only GNU's parser reads — makes them hand the whole command
//! to the real tool before touching anything ([`Fallback`]): never a
//! partial result.

pub mod applets;
pub mod date;
pub mod gnu;
pub mod mode;
pub mod opts;
pub mod table;
pub mod vfs;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

pub use vrift_format::proto::{Op, Request};

/// The names the applets answer to.
pub const APPLETS: &[&str] = &[
    "chmod", "chown", "rm", "cp", "mv", "touch", "mkdir", "rmdir", "cat", "ln",
];

/// The applet called `name`, if there is one.
pub fn applet(name: &str) -> Option<&'static str> {
    APPLETS.iter().copied().find(|a| *a == name)
}

/// A daemon's answer (see `vrift_format::proto`).
#[derive(Debug)]
pub struct Answer {
    pub errno: i32,
    /// `REPLY_*` bits.
    pub flags: u32,
    pub a: u64,
    pub b: u64,
    pub data: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

/// A connection to the daemon of one project.
pub trait Daemon {
    /// Sends one request and waits for its answer. An `Err` is a transport
    /// failure (the daemon is unreachable), not a refused operation.
    fn call(&mut self, req: &Request<'_>) -> io::Result<Answer>;
}

/// Opens connections to project daemons (starting one if needed).
pub trait Connector {
    /// A connection to the daemon of the project rooted at `root` (canonical).
    fn connect(&self, root: &Path) -> io::Result<Box<dyn Daemon>>;
}

/// What an applet runs with.
pub struct Context<'a> {
    /// The canonical root of the project whose view the applet acts on;
    /// `None` when there is none (every path is then a disk path).
    pub root: Option<PathBuf>,
    pub connector: &'a dyn Connector,
    /// The real tool, for what the applet does not implement.
    pub real: Option<PathBuf>,
}

/// Why an applet hands a command to the real tool.
#[derive(Debug)]
pub struct Fallback(pub String);

impl Fallback {
    pub fn new(why: impl Into<String>) -> Fallback {
        Fallback(why.into())
    }
}

/// Whether any argument of a command, read as a path, lies in the project
/// at `root` (canonical): operands, values attached to options
/// (`--target-directory=DIR`, `-tDIR`), everything after `--`. It errs on
/// the side of "yes" — a relative word is a path in the cwd — since the
/// applets handle paths outside the project too; the wrappers ask this to
/// choose between vrift's applet and the real command.
pub fn touches_domain(root: &Path, args: &[OsString]) -> bool {
    use std::os::unix::ffi::OsStrExt;

    struct NoDaemon;
    impl Connector for NoDaemon {
        fn connect(&self, _: &Path) -> io::Result<Box<dyn Daemon>> {
            Err(io::Error::other("a domain test changes nothing"))
        }
    }
    let fs = vfs::Vfs::new(Some(root), &NoDaemon);
    let mut words: Vec<&OsStr> = Vec::new();
    let mut operands_only = false;
    for a in args {
        let b = a.as_bytes();
        if operands_only || b.len() < 2 || b[0] != b'-' {
            if !b.is_empty() {
                words.push(a);
            }
        } else if b == b"--" {
            operands_only = true;
        } else if let Some(long) = b.strip_prefix(b"--") {
            if let Some(eq) = long.iter().position(|&c| c == b'=') {
                words.push(OsStr::from_bytes(&long[eq + 1..]));
            }
        } else {
            // `-tDIR`, `-rftDIR`: any tail of a cluster may be a value.
            words.extend((2..b.len()).map(|i| OsStr::from_bytes(&b[i..])));
        }
    }
    words
        .into_iter()
        .filter(|w| !w.is_empty())
        .any(|w| fs.lies_inside(Path::new(w)))
}

/// Runs applet `name` with `args` (without argv[0]); returns the exit code.
/// When the applet cannot do the whole job it execs the real tool instead
/// (and returns only if that fails).
pub fn run(name: &str, args: Vec<OsString>, cx: &Context<'_>) -> i32 {
    // Die of SIGPIPE like the C tools (`cat big | head` ends quietly with
    // 141), instead of Rust's "ignore it and fail the write".
    // SAFETY: resetting a signal disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let Some(name) = applet(name) else {
        eprintln!("vrift: {name}: no such applet");
        return 127;
    };
    let ui = gnu::Ui::new(name);
    let fs = vfs::Vfs::new(cx.root.as_deref(), cx.connector);
    let outcome = match name {
        "chmod" => applets::chmod::main(&args, &fs, &ui),
        "chown" => applets::chown::main(&args, &fs, &ui),
        "rm" => applets::rm::main(&args, &fs, &ui),
        "cp" => applets::cp::main(&args, &fs, &ui),
        "mv" => applets::mv::main(&args, &fs, &ui),
        "touch" => applets::touch::main(&args, &fs, &ui),
        "mkdir" => applets::mkdir::main(&args, &fs, &ui),
        "rmdir" => applets::rmdir::main(&args, &fs, &ui),
        "cat" => applets::cat::main(&args, &fs, &ui),
        "ln" => applets::ln::main(&args, &fs, &ui),
        _ => unreachable!("every applet is dispatched"),
    };
    match outcome {
        Ok(code) => code,
        Err(Fallback(why)) => exec_real(name, &args, cx.real.as_deref(), &why),
    }
}

/// Execs the real tool with the original arguments (argv[0] = `name`, so
/// its messages read as if it had been called directly).
pub fn exec_real(name: &str, args: &[OsString], real: Option<&Path>, why: &str) -> i32 {
    let Some(real) = real else {
        eprintln!(
            "{name}: {why}, and no other {name} is on PATH (vrift's {name} does not do this)"
        );
        return 127;
    };
    eprintln!("vrift: {name}: {why}; running {} instead", real.display());
    let err = std::process::Command::new(real)
        .arg0(OsStr::new(name))
        .args(args)
        .exec();
    eprintln!("{name}: cannot run {}: {err}", real.display());
    126
}
