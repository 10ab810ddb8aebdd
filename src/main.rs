//! The `vrift` multicall binary: the CLI, or a coreutil named by argv[0].

use std::path::Path;

// An ELF note (owner "vrift", type 1) by which the LD_PRELOAD library knows
// this process is vrift itself, which never acts through it (DESIGN.md §2),
// without a syscall at every exec (see `exe_is_vrift` in shim/src/lib.rs).
// "R" keeps it from the linker's section garbage collection.
#[cfg(target_os = "linux")]
std::arch::global_asm!(
    ".pushsection .note.vrift,\"aR\",@note",
    ".balign 4",
    ".long 6", // name size: "vrift\0"
    ".long 4", // descriptor size
    ".long 1", // type
    ".asciz \"vrift\"",
    ".balign 4",
    ".long 1", // descriptor: note version
    ".popsection",
);
use std::process::ExitCode;

fn main() -> ExitCode {
    // Dispatch on argv[0] before anything else: an applet must not pay for
    // the CLI's start-up.
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    if let Some(applet) = vrift::applets::applet_for(Path::new(&argv0)) {
        let code = vrift::applets::run(applet, args.collect());
        return ExitCode::from(code as u8);
    }
    if args.next().is_some_and(|a| a == "__syscall-view") {
        return ExitCode::from(vrift::syscall_view::run());
    }
    vrift::cli::main()
}
