//! The multicall dispatch point: `vrift` invoked as `chmod`, `rm`, `cp`, …
//! (argv[0]), as `vrift rm ARGS…`, or by a `.vrift/bin` wrapper as `vrift
//! __wrap ROOT NAME REAL ARGS…`. The applets themselves live in
//! helpers/tiny-coreutils; this module gives them their project and lends
//! them the daemon client.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use vrift_coreutils::{Answer, Connector, Context, Daemon, Request};

use crate::env_vars;
use crate::project::{Project, STATE_DIR};

/// The names vrift answers to as a coreutil.
pub const APPLETS: &[&str] = vrift_coreutils::APPLETS;

/// The applet named by `argv0`, if it is one.
pub fn applet_for(argv0: &Path) -> Option<&'static str> {
    let name = argv0.file_name()?.to_str()?;
    vrift_coreutils::applet(name)
}

/// The applets `vrift NAME ARGS…` runs: all but `cat`, which is vrift's own
/// command of that name (the view's committed content, CLI messages).
pub fn subcommand_applet(name: &str) -> Option<&'static str> {
    vrift_coreutils::applet(name).filter(|a| *a != "cat")
}

/// `vrift NAME ARGS…` for an applet and `vrift __wrap …`, recognised
/// before clap: an applet must not pay for the CLI's start-up. None when
/// the arguments are neither.
pub fn dispatch(args: &[OsString]) -> Option<std::process::ExitCode> {
    let first = args.get(1)?.to_str()?;
    let code = if first == "__wrap" {
        wrap(args[2..].to_vec())
    } else {
        run(subcommand_applet(first)?, args[2..].to_vec())
    };
    Some(std::process::ExitCode::from(code.clamp(0, 255) as u8))
}

/// Connections to project daemons, through vrift's own client.
pub(crate) struct Daemons;

/// Survives the daemon: a request whose answer a dying daemon took with
/// it is asked again of the next one (see [`crate::daemon::client::Session`]).
struct Conn(crate::daemon::client::Session);

fn io_err(e: anyhow::Error) -> io::Error {
    io::Error::other(format!("{e:#}"))
}

impl Connector for Daemons {
    fn connect(&self, root: &Path) -> io::Result<Box<dyn Daemon>> {
        let project = Project::at(root).map_err(io_err)?;
        let session = crate::daemon::client::Session::open(project).map_err(io_err)?;
        Ok(Box::new(Conn(session)))
    }
}

impl Daemon for Conn {
    fn call(&mut self, req: &Request<'_>) -> io::Result<Answer> {
        self.0.call(req).map_err(io_err)
    }
}

/// Inside the FUSE view (a program that cannot load the library, and its
/// children: `fuse_view` sets `VRIFT_SYSCALL_VIEW=fuse`) the kernel shows
/// the view: an applet there acts through it like any other program. (Its
/// own model of the view would bypass the mount, whose kernel caches would
/// then not see its changes for up to their TTL.)
fn in_fuse_view() -> bool {
    std::env::var_os(env_vars::VRIFT_SYSCALL_VIEW).is_some_and(|v| v == "fuse")
}

/// The project an applet acts on: the inception's, else the one containing
/// the current directory; none outside any project, or in the FUSE view.
fn domain_root() -> Option<PathBuf> {
    if in_fuse_view() {
        return None;
    }
    if let Some(root) = std::env::var_os(env_vars::VRIFT_PROJECT_ROOT).filter(|r| !r.is_empty()) {
        if let Ok(root) = std::fs::canonicalize(root) {
            if root.join(STATE_DIR).is_dir() {
                return Some(root);
            }
        }
    }
    Project::current().ok().map(|p| p.root().to_path_buf())
}

fn me() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok())
}

/// Runs `applet` on the view with `args`; the exit code (or the real
/// tool's, which it execs for what it does not implement).
pub fn run(applet: &str, args: Vec<OsString>) -> i32 {
    let cx = Context {
        root: domain_root(),
        connector: &Daemons,
        real: find_real(applet, me().as_deref()),
    };
    vrift_coreutils::run(applet, args, &cx)
}

/// `vrift __wrap ROOT NAME REAL ARGS…` (what a wrapper execs; REAL may be
/// empty): the applet when an argument lies in the project at ROOT, else
/// the real command with argv[0] = NAME, as if the wrapper were not there.
pub fn wrap(mut args: Vec<OsString>) -> i32 {
    if args.len() < 3 {
        eprintln!("vrift: __wrap ROOT NAME REAL [ARGS…] is what .vrift/bin wrappers run");
        return 2;
    }
    let rest = args.split_off(3);
    let (root, name, real) = (&args[0], args[1].to_string_lossy(), &args[2]);
    let real = (!real.is_empty()).then(|| PathBuf::from(real));
    let root = std::fs::canonicalize(root).ok().filter(|_| !in_fuse_view());
    if let Some(applet) = vrift_coreutils::applet(&name) {
        let inside = root
            .as_deref()
            .is_some_and(|r| vrift_coreutils::touches_domain(r, &rest));
        if inside || real.is_none() {
            let cx = Context {
                root,
                connector: &Daemons,
                real,
            };
            return vrift_coreutils::run(applet, rest, &cx);
        }
    }
    let Some(real) = real else {
        eprintln!("{name}: command not found");
        return 127;
    };
    warn_if_unpreloadable(&name, &real, root.as_deref(), &rest);
    let err = std::process::Command::new(&real)
        .arg0(&*name)
        .args(rest)
        .exec();
    eprintln!("{name}: cannot run {}: {err}", real.display());
    if err.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// A command that cannot load the library, called on paths of the project,
/// writes past the rift: say so (one line) before running it.
fn warn_if_unpreloadable(name: &str, real: &Path, root: Option<&Path>, args: &[OsString]) {
    let Some(root) = root else { return };
    if !vrift_coreutils::touches_domain(root, args) {
        return;
    }
    if let Ok(found) = crate::inspect::inspect(real) {
        if !found.can_preload() {
            eprintln!(
                "vrift: {name} ({}) cannot load vrift's library ({}): what it writes in {} goes to the disk, not the rift",
                real.display(),
                found.why(),
                root.display()
            );
        }
    }
}

/// The first `name` on PATH that is not vrift itself (compared
/// canonically) nor a `.vrift/bin` wrapper.
pub fn find_real(name: &str, me: Option<&Path>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !is_wrapper_dir(dir))
        .map(|dir| dir.join(name))
        .filter(|cand| is_executable(cand))
        .find(|cand| std::fs::canonicalize(cand).ok().as_deref() != me)
}

/// Whether `dir` is a project's `.vrift/bin` (however PATH spells it).
fn is_wrapper_dir(dir: &Path) -> bool {
    let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    canon.ends_with(Path::new(STATE_DIR).join("bin"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
