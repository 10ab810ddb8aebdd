//! The `vrift` multicall binary: the CLI, or a coreutil named by argv[0].

use std::path::Path;
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
    vrift::cli::main()
}
