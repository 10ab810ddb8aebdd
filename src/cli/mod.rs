//! The command-line interface: clap types here, one module per command.

mod daemon;
mod doctor;
mod gc;
mod inception;
mod ingest;
mod init;
mod output;
mod remote;
mod run;
mod shadow;
mod snapshot;
mod status;
mod view_cmds;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::project::Project;

/// vrift: make a project directory a content-addressed, snapshot-able overlay.
#[derive(Parser, Debug)]
#[command(name = "vrift", version, about, propagate_version = true)]
#[command(
    after_help = "Coreutils on the view, without the shim (GNU options, messages, exit codes):\n  vrift chmod|chown|rm|cp|mv|touch|mkdir|rmdir|ln ARGS…"
)]
pub struct Cli {
    /// Run as if vrift was started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create (or repair) .vrift/ in DIR, register and trust the project.
    Init {
        /// Project root (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Move files into the store and project them back through the rift.
    ///
    /// Directories stay on disk; files and symlinks below the paths move into
    /// the content-addressed store (duplicates are stored once) and are
    /// recorded in the manifest. Without paths, ingests the [phantom] paths of
    /// .vrift/config.toml.
    Ingest {
        /// Files or directories inside the project.
        paths: Vec<PathBuf>,
    },
    /// Write rift entries back to disk as real files and drop them from the rift.
    Materialize {
        /// Paths inside the project (default: everything in the rift).
        paths: Vec<PathBuf>,
    },
    /// Show the project, the store, the rift and its snapshots.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List a directory of the view (rift over disk), marking where each name comes from.
    Ls {
        /// Directory or file (default: the current directory).
        path: Option<PathBuf>,
    },
    /// Print files of the view.
    Cat {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Named, immutable snapshots of the rift.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Remotes: object stores (S3, HTTP/WebDAV, a directory) snapshots are pushed to and pulled from.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Upload snapshots (default: every snapshot) and the blobs the remote lacks.
    ///
    /// Blobs go first, the ref `refs/<project>/<snapshot>` last: an
    /// interrupted push leaves no ref, and a rerun uploads only what is missing.
    Push {
        /// Snapshots to push (default: all).
        snapshots: Vec<String>,
        /// The remote (default: `[remote] default`, else the only one).
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
        /// Check every blob even when the remote's ref already names the
        /// snapshot (for a remote that something else prunes).
        #[arg(long)]
        recheck: bool,
    },
    /// Fetch a snapshot from a remote into the local snapshots (then `vrift snapshot restore`).
    Pull {
        snapshot: String,
        /// The remote (default: `[remote] default`, else the only one).
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
        /// Also fetch every blob the local store lacks (verified).
        #[arg(long)]
        eager: bool,
    },
    /// Empty the rift (files, whiteouts, marks) and remove the empty directories it created.
    ///
    /// Files ingested from disk (the phantom layer) are kept.
    Discard {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// What the rift adds (A), changes (M) and hides (D) relative to the disk.
    Diff {
        /// Also list files ingested from disk (P).
        #[arg(long)]
        phantom: bool,
        /// Print JSON: {"changes": [{"change": "added|modified|deleted|phantom", "path"}], "phantom_files"}.
        #[arg(long)]
        json: bool,
    },
    /// Delete blobs no registered project or snapshot references (dry run by default).
    Gc {
        /// Delete them.
        #[arg(long)]
        delete: bool,
        /// Also the local copies of blobs only snapshots reference that the
        /// projects' remotes hold (fetched again on first read).
        #[arg(long)]
        offload: bool,
    },
    /// Verify every blob, quarantine corrupt ones, and check the project's references.
    Fsck,
    /// Trust the project in DIR so the shell hooks may enter it.
    Allow { dir: Option<PathBuf> },
    /// Revoke trust in the project in DIR.
    Deny { dir: Option<PathBuf> },
    /// The project's daemon: the only writer of its rift (started on demand).
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Run a command in the project's inception: it sees the view through the shim.
    ///
    /// The exit status is the command's own.
    Run {
        /// The command and its arguments (put `--` before options meant for it).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<std::ffi::OsString>,
    },
    /// Print shell code entering the project's inception (for `eval`).
    ///
    /// Sets the inception's variables, puts `.vrift/bin` first on PATH,
    /// marks the prompt, and records the prior values for `vrift wake`.
    /// Refuses projects that are not trusted (`vrift allow`).
    Inception {
        /// A directory of the project (default: the current directory).
        dir: Option<PathBuf>,
        /// Shell to write code for (default: from $SHELL, else bash).
        #[arg(long, value_enum)]
        shell: Option<crate::inception::shell::Shell>,
    },
    /// Print shell code leaving the inception: every variable it changed and
    /// the prompt get their exact prior values back.
    Wake {
        /// Shell to write code for (default: from $SHELL, else bash).
        #[arg(long, value_enum)]
        shell: Option<crate::inception::shell::Shell>,
    },
    /// Print the shell hook that enters trusted projects on `cd` and wakes on leaving.
    ///
    /// bash, zsh: `eval "$(vrift hook bash)"` in ~/.bashrc (~/.zshrc);
    /// fish: `vrift hook fish | source` in config.fish.
    Hook {
        #[arg(value_enum)]
        shell: crate::inception::shell::Shell,
    },
    /// Internal: what the hook evaluates at each prompt.
    #[command(name = "__hook-env", hide = true)]
    HookEnv {
        #[arg(long, value_enum)]
        shell: crate::inception::shell::Shell,
    },
    /// Check the set-up: the shim, the store, trust, the shell hook, and
    /// whether the commands builds run can load the shim.
    ///
    /// One line per check; exit status 1 when any failed.
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// macOS: make a copy of a hardened-runtime program that can load the
    /// shim (ad-hoc signed, hardened runtime cleared) in .vrift/helpers, and
    /// a wrapper for it in .vrift/bin.
    ///
    /// Needs a build with the `macos-sign` feature; the original is never changed.
    Shadow {
        /// A program name (looked up on PATH) or path.
        bin: PathBuf,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Internal: delete a trash directory ingest left behind (run detached).
    #[command(name = "__reap", hide = true)]
    Reap { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Freeze the current rift under NAME.
    Save {
        name: String,
        /// Then push it (`vrift push NAME`).
        #[arg(long)]
        push: bool,
        /// The remote to push to (with --push).
        #[arg(long, value_name = "NAME", requires = "push")]
        remote: Option<String>,
    },
    /// List snapshots.
    List,
    /// Replace the rift with snapshot NAME (no blob is copied).
    Restore { name: String },
    /// Delete snapshot NAME (its blobs go at the next `gc --delete`).
    Drop { name: String },
}

/// How a command ended, beyond success.
#[derive(Debug)]
pub enum Outcome {
    Ok,
    /// Finished, but some items failed (already reported).
    Partial,
    Interrupted,
}

pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = inception::hook_env_fast(&args) {
        return code;
    }
    if let Some(code) = crate::applets::dispatch(&args) {
        return code;
    }
    if let Some(cmd) = run::fast_args(&args) {
        return exit_code(run::run(cmd));
    }
    let cli = Cli::parse_from(args);
    if let Some(dir) = &cli.directory {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("vrift: error: cannot enter {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    exit_code(run(cli.command))
}

fn exit_code(result: anyhow::Result<Outcome>) -> ExitCode {
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrift: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Init { dir } => init::init(dir),
        Command::Ingest { paths } => ingest::ingest(paths),
        Command::Materialize { paths } => ingest::materialize(paths),
        Command::Status { json } => status::status(json),
        Command::Ls { path } => view_cmds::ls(path),
        Command::Cat { paths } => view_cmds::cat(paths),
        Command::Snapshot(cmd) => snapshot::snapshot(cmd),
        Command::Remote(cmd) => remote::remote(cmd),
        Command::Push {
            snapshots,
            remote,
            recheck,
        } => remote::push(snapshots, remote, recheck),
        Command::Pull {
            snapshot,
            remote,
            eager,
        } => remote::pull(snapshot, remote, eager),
        Command::Discard { yes } => snapshot::discard(yes),
        Command::Diff { phantom, json } => view_cmds::diff(phantom, json),
        Command::Gc { delete, offload } => gc::gc(crate::gc::Options { delete, offload }),
        Command::Fsck => gc::fsck(),
        Command::Allow { dir } => init::allow(dir),
        Command::Deny { dir } => init::deny(dir),
        Command::Run { cmd } => run::run(cmd),
        Command::Daemon(cmd) => daemon::daemon(cmd),
        Command::Inception { dir, shell } => inception::inception(dir, shell),
        Command::Wake { shell } => inception::wake(shell),
        Command::Hook { shell } => inception::hook(shell),
        Command::HookEnv { shell } => inception::hook_env(shell),
        Command::Reap { dir } => ingest::reap(dir),
        Command::Doctor { json } => doctor::doctor(json),
        Command::Shadow { bin } => shadow::shadow(bin),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "vrift", &mut std::io::stdout());
            Ok(Outcome::Ok)
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum RemoteCommand {
    /// Add remote NAME at URL: s3://bucket[/prefix], http(s)://host/path, file:///dir.
    ///
    /// S3 endpoint, region and credentials come from the standard AWS_*
    /// variables (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true for a plain-HTTP endpoint),
    /// else from the AWS shared files (~/.aws/credentials and ~/.aws/config,
    /// profile AWS_PROFILE: keys, region, endpoint_url).
    Add {
        name: String,
        url: String,
        /// In the user's config (~/.config/vrift/config.toml), for every project.
        #[arg(long)]
        user: bool,
        /// Pull only refs signed by this public key (`NAME:BASE64`, as
        /// `vrift remote key generate` prints it); repeatable.
        #[arg(long = "trusted-key", value_name = "KEY")]
        trusted_keys: Vec<String>,
    },
    /// Remove remote NAME.
    Remove {
        name: String,
        /// From the user's config.
        #[arg(long)]
        user: bool,
    },
    /// List the remotes this project sees (its own, then the user's).
    List,
    /// List the snapshots a remote holds for this project (its refs).
    Snapshots {
        /// The remote (default: `[remote] default`, else the only one).
        name: Option<String>,
    },
    /// Make pulls from remote NAME accept refs signed by KEY (`NAME:BASE64`,
    /// as `vrift remote key public` prints it); once a remote has a key,
    /// unsigned refs and refs signed by other keys are refused.
    Trust {
        name: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        /// The remote in the user's config.
        #[arg(long)]
        user: bool,
    },
    /// Stop trusting KEY (a whole `NAME:BASE64` key, or its name) for
    /// remote NAME; with no key left, its refs are no longer checked.
    Untrust {
        name: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        /// The remote in the user's config.
        #[arg(long)]
        user: bool,
    },
    /// The key refs are signed with (ed25519, in Nix's key format).
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Make a key pair: the secret key goes to ~/.config/vrift/signing-key
    /// (0600; `VRIFT_SIGNING_KEY` names another file), and every push signs
    /// its refs with it. Prints the public key, for remotes' `trusted-keys`.
    Generate {
        /// The key's name (default: this host's name, then `-1`).
        #[arg(long)]
        name: Option<String>,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of the signing key.
    Public,
}

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// Start the daemon in the background (if it is not running) and wait until it answers.
    Start,
    /// Show whether the daemon runs, and what it holds.
    Status,
    /// Stop the daemon after committing everything it holds.
    Stop,
    /// Run the daemon in the foreground (what `start` runs).
    Run,
}

/// The project a command acts on: the one containing the current directory.
fn current_project() -> anyhow::Result<Project> {
    Project::current()
}
