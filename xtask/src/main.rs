//! Developer tasks for vrift, run as `cargo xtask <task>`.
//!
//! - `install`, `uninstall`: vrift, its library, completions and man pages
//!   under a prefix (default `~/.local`).
//! - `demo`: a guided tour on a small C project (make, git, the bash hook), checked end to end.
//! - `conformance`: LTP's and gVisor's filesystem syscall tests natively and in the rift.
//! - `bench ingest`: ingest and snapshot timings on a large node_modules-like tree.
//! - `bench shim`: what the LD_PRELOAD shim costs per call and for whole tools.
//! - `bench build`: a clean and a no-op `make` of a C project, and write
//!   latency, under `vrift run` against native.
//! - `bench unviewed`: Go, esbuild and static programs (the syscall
//!   supervisor) under `vrift run` against native.
//! - `bench remote`: push and pull through SeaweedFS's S3 beside `rclone copy`.
//!
//! Every bench ends with the same table (see `bench/mod.rs`) and takes
//! `--save DIR` to write every timed run to `DIR/BENCH.csv`.
//!
//! Every task but `install` and `uninstall` works in a fresh temporary
//! directory with its own `HOME`,
//! `XDG_DATA_HOME` and `VR_THE_SOURCE`, so the user's store and trust list
//! are never touched.

mod bench;
mod cargo;
mod compare;
mod conformance;
mod demo;
mod gen;
mod gen_c;
mod install;
mod rift;
mod sandbox;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "Developer tasks for vrift")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Build vrift and its library in release mode and install them with
    /// completions and man pages under PREFIX (default ~/.local).
    Install(install::InstallArgs),
    /// Remove what `install` put under PREFIX (the store and trusted projects are kept).
    Uninstall(install::UninstallArgs),
    /// Build vrift and tour it on a small C project: make in the rift,
    /// snapshots, an incremental rebuild, two worktrees, the shell hook.
    Demo {
        /// Keep the temporary directory (project, store, HOME) afterwards.
        #[arg(long)]
        keep: bool,
        /// Create the temporary directory below DIR (default: $TMPDIR or /tmp).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// LTP's filesystem syscall tests natively and in the rift, side by
    /// side (needs an LTP tree: --ltp DIR or VRIFT_LTP_DIR; else SKIPPED).
    Conformance(conformance::ConformanceArgs),
    /// Benchmarks (without a name: list them).
    Bench {
        #[command(subcommand)]
        bench: Option<Bench>,
    },
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Ingest, second-copy ingest and snapshot save/restore on a large node_modules-like tree.
    Ingest(bench::ingest::IngestArgs),
    /// Per-call and whole-tool costs under `vrift run` against native and fakechroot.
    Shim(bench::shim::ShimArgs),
    /// Clean and no-op `make` of a Lua-sized C project and write latency under `vrift run` against native.
    Build(bench::build::BuildArgs),
    /// Go builds, an esbuild bundle and static programs (served by the syscall supervisor) under `vrift run` against native.
    Unviewed(bench::unviewed::UnviewedArgs),
    /// Push, second push, eager and lazy pull of a generated tree through SeaweedFS (S3) beside `rclone copy`.
    Remote(bench::remote::RemoteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Install(args) => install::install(args),
        Task::Uninstall(args) => install::uninstall(args),
        Task::Demo { keep, dir } => demo::run(keep, dir),
        Task::Conformance(args) => conformance::conformance(args),
        Task::Bench { bench: None } => {
            list_benches();
            Ok(())
        }
        Task::Bench {
            bench: Some(Bench::Ingest(args)),
        } => bench::ingest::ingest(args),
        Task::Bench {
            bench: Some(Bench::Shim(args)),
        } => bench::shim::shim(args),
        Task::Bench {
            bench: Some(Bench::Build(args)),
        } => bench::build::build(args),
        Task::Bench {
            bench: Some(Bench::Unviewed(args)),
        } => bench::unviewed::unviewed(args),
        Task::Bench {
            bench: Some(Bench::Remote(args)),
        } => bench::remote::remote(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lists the benches from the clap definition, so the list cannot go stale.
fn list_benches() {
    let cli = Cli::command();
    let bench = cli
        .find_subcommand("bench")
        .expect("the bench subcommand exists");
    println!("available benches (run `cargo xtask bench <name> --help` for options):");
    for sub in bench.get_subcommands().filter(|s| s.get_name() != "help") {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        println!("  {:<10} {about}", sub.get_name());
    }
}
