//! `vrift shadow BIN`: a loadable copy of a hardened macOS program.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{current_project, Outcome};
use crate::shadow;

/// Exit status when this build cannot sign (a usage problem, not a failure).
const NO_SIGNING: i32 = 2;

pub fn shadow(bin: PathBuf) -> Result<Outcome> {
    if !shadow::SIGNING {
        eprintln!(
            "vrift: shadow: this build of vrift lacks code-signing support; \
             rebuild it with `cargo build --features macos-sign`"
        );
        std::process::exit(NO_SIGNING);
    }
    let project = current_project()?;
    let original = shadow::resolve(&project, &bin)?;
    let data =
        std::fs::read(&original).with_context(|| format!("cannot read {}", original.display()))?;
    let needed = shadow::needs_shadow(&data)
        .with_context(|| format!("{} is not a Mach-O program", original.display()))?;
    if !needed {
        crate::ui::note(&format!(
            "{} is not signed with the hardened runtime or other flags that keep the shim out; no shadow copy is needed",
            original.display()
        ));
        return Ok(Outcome::Ok);
    }
    let done = shadow::shadow(&project, &original)?;
    println!(
        "shadowed {} as {} (ad-hoc signed, hardened runtime cleared)",
        done.original().display(),
        done.helper().display()
    );
    println!("wrapper: {}", done.wrapper().display());
    Ok(Outcome::Ok)
}
