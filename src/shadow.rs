//! Shadow copies of hardened macOS programs (`vrift shadow`).
//!
//! dyld ignores `DYLD_INSERT_LIBRARIES` for a program signed with the
//! hardened runtime, so such a program never sees the view. Its shadow copy
//! is the same Mach-O re-signed ad hoc without the flags that shut the shim
//! out, kept in `.vrift/helpers/NAME`; `.vrift/bin/NAME` (first on PATH in
//! the inception) runs it with `DYLD_INSERT_LIBRARIES` restored from
//! `VRIFT_SHIM_PATH`.
//!
//! Invariants: the original is only read; a helper is written to a temp
//! file in its directory and renamed into place, so a reader sees the old
//! copy or the new one, never a partly signed file.
//!
//! Limits: an ad-hoc signature cannot carry restricted entitlements (those
//! that need a provisioning profile); the copy keeps the original's
//! entitlements, so such a program would be refused by macOS. This has been
//! tested on Linux against real Mach-O files only.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::inception::shell::sh_quote;
use crate::project::{Project, STATE_DIR};

/// Whether this build can sign (the `macos-sign` feature, always on macOS).
pub const SIGNING: bool = cfg!(any(feature = "macos-sign", target_os = "macos"));

/// The code directory flags a shadow copy drops: each makes dyld refuse
/// inserted libraries (the hardened runtime, `CS_RESTRICT`, library validation).
pub const CLEARED_FLAGS: u32 = crate::inspect::macho::CS_RUNTIME
    | crate::inspect::macho::CS_RESTRICT
    | crate::inspect::macho::CS_REQUIRE_LV;

/// What `shadow` wrote.
#[derive(Debug)]
pub struct Shadowed {
    original: PathBuf,
    helper: PathBuf,
    wrapper: PathBuf,
}

impl Shadowed {
    /// The program that was shadowed.
    pub fn original(&self) -> &Path {
        &self.original
    }

    /// The re-signed copy, `.vrift/helpers/NAME`.
    pub fn helper(&self) -> &Path {
        &self.helper
    }

    /// The wrapper that runs the helper with the library, `.vrift/bin/NAME`.
    pub fn wrapper(&self) -> &Path {
        &self.wrapper
    }
}

pub fn helpers_dir(project: &Project) -> PathBuf {
    project.root().join(STATE_DIR).join("helpers")
}

pub fn bin_dir(project: &Project) -> PathBuf {
    project.root().join(STATE_DIR).join("bin")
}

/// `bin` as a file: a path, or a name looked up on PATH past the project's
/// own `.vrift/bin` (where an earlier wrapper of the same name lives).
pub fn resolve(project: &Project, bin: &Path) -> Result<PathBuf> {
    if bin.components().count() > 1 || bin.is_absolute() {
        return std::fs::canonicalize(bin)
            .with_context(|| format!("cannot resolve {}", bin.display()));
    }
    let ours = bin_dir(project);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| *d != ours)
        .collect();
    let path = std::env::join_paths(dirs)?;
    let found = which::which_in(bin, Some(path), project.root())
        .with_context(|| format!("{} is not on PATH", bin.display()))?;
    Ok(std::fs::canonicalize(&found).unwrap_or(found))
}

/// Whether a Mach-O file has a slice signed with flags a shadow copy clears.
pub fn needs_shadow(data: &[u8]) -> Result<bool> {
    Ok(crate::inspect::macho::inspect(data)?.iter().any(|s| {
        s.signature
            .as_ref()
            .is_some_and(|g| g.flags & CLEARED_FLAGS != 0)
    }))
}

/// Makes the shadow copy of `original` (resolved) and its wrapper in `project`.
pub fn shadow(project: &Project, original: &Path) -> Result<Shadowed> {
    let name = original
        .file_name()
        .context("the program has no file name")?
        .to_owned();
    if original.starts_with(project.root().join(STATE_DIR)) {
        bail!(
            "{} is vrift's own file; shadow the original program",
            original.display()
        );
    }
    let data =
        std::fs::read(original).with_context(|| format!("cannot read {}", original.display()))?;
    let slices = crate::inspect::macho::inspect(&data)
        .with_context(|| format!("{} is not a Mach-O program", original.display()))?;
    if slices.iter().any(|s| s.restrict_section) {
        bail!(
            "{} has a __RESTRICT,__restrict section, which re-signing cannot remove",
            original.display()
        );
    }
    let signed = sign::resign(&data, &name.to_string_lossy())
        .with_context(|| format!("cannot re-sign {}", original.display()))?;

    let helper = helpers_dir(project).join(&name);
    write_executable(&helper, &signed)?;
    let wrapper = bin_dir(project).join(&name);
    write_executable(&wrapper, wrapper_script(&helper).as_bytes())?;
    Ok(Shadowed {
        original: original.to_path_buf(),
        helper,
        wrapper,
    })
}

/// The `.vrift/bin` wrapper: puts the shim first in `DYLD_INSERT_LIBRARIES`
/// (SIP strips `DYLD_*` when a protected program such as /bin/sh starts
/// another one, so the inception's value is rebuilt from `VRIFT_SHIM_PATH`),
/// then runs the helper in its place.
pub fn wrapper_script(helper: &Path) -> String {
    let helper =
        String::from_utf8_lossy(&sh_quote(helper.as_os_str().as_encoded_bytes())).into_owned();
    format!(
        r#"#!/bin/sh
# vrift shadow wrapper (written by `vrift shadow`; re-run it to refresh).
if [ -n "${{VRIFT_SHIM_PATH-}}" ]; then
  case ":${{DYLD_INSERT_LIBRARIES-}}:" in
    *":$VRIFT_SHIM_PATH:"*) ;;
    *) DYLD_INSERT_LIBRARIES=$VRIFT_SHIM_PATH${{DYLD_INSERT_LIBRARIES:+:$DYLD_INSERT_LIBRARIES}} ;;
  esac
  export DYLD_INSERT_LIBRARIES
fi
exec {helper} "$@"
"#
    )
}

/// Writes `bytes` as an executable (0755) at `dest`: temp file beside it, then rename.
fn write_executable(dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    let dir = dest.parent().context("destination has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".shadow.")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    tmp.persist(dest)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

#[cfg(any(feature = "macos-sign", target_os = "macos"))]
mod sign {
    use anyhow::Result;
    use apple_codesign::{CodeSignatureFlags, MachOSigner, SettingsScope, SigningSettings};

    /// `data` re-signed ad hoc (no signing key) without [`super::CLEARED_FLAGS`];
    /// the identifier, entitlements and other settings of the original
    /// signature are kept, `fallback_id` names slices that had none.
    pub fn resign(data: &[u8], fallback_id: &str) -> Result<Vec<u8>> {
        let cleared = CodeSignatureFlags::from_bits_truncate(super::CLEARED_FLAGS);
        let mut settings = SigningSettings::default();
        settings.import_settings_from_macho(data)?;
        if settings.binary_identifier(SettingsScope::Main).is_none() {
            settings.set_binary_identifier(SettingsScope::Main, fallback_id);
        }
        // Imported flags live in per-slice scopes, which override Main.
        let slices = crate::inspect::macho::inspect(data)?.len();
        settings.remove_code_signature_flags(SettingsScope::Main, cleared);
        for index in 0..slices {
            settings.remove_code_signature_flags(SettingsScope::MultiArchIndex(index), cleared);
        }
        let mut out = Vec::with_capacity(data.len() + 64 * 1024);
        MachOSigner::new(data)?.write_signed_binary(&settings, &mut out)?;
        Ok(out)
    }
}

#[cfg(not(any(feature = "macos-sign", target_os = "macos")))]
mod sign {
    pub fn resign(_data: &[u8], _fallback_id: &str) -> anyhow::Result<Vec<u8>> {
        anyhow::bail!("this build of vrift has no code-signing support")
    }
}
