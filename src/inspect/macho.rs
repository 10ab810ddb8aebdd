//! Mach-O (thin and universal): what dyld does with `DYLD_INSERT_LIBRARIES`.
//!
//! dyld drops `DYLD_*` variables for a "restricted" process and refuses
//! libraries that fail library validation. Per slice we read what decides
//! that: the code directory's flags and entitlements in the embedded code
//! signature (`LC_CODE_SIGNATURE`), a `__RESTRICT,__restrict` section, the
//! loader command, and the CPU subtype.
//!
//! The code signature is a big-endian SuperBlob: `magic, length, count`,
//! then `count` × `(slot type, offset)`; slot 0 is the CodeDirectory
//! (`magic, length, version, flags, …`), slot 5 the entitlements plist.

use anyhow::{bail, Context, Result};
use object::macho;
use object::read::macho::{FatArch, LoadCommandVariant, MachHeader, Section, Segment};
use object::Endianness;

use super::Blocker;

/// Code directory flags (`cs_blobs.h`).
pub const CS_ADHOC: u32 = 0x0002;
pub const CS_RESTRICT: u32 = 0x0800;
pub const CS_REQUIRE_LV: u32 = 0x2000;
pub const CS_RUNTIME: u32 = 0x0001_0000;
pub const CS_LINKER_SIGNED: u32 = 0x0002_0000;

/// Entitlements that re-open a hardened process to `DYLD_INSERT_LIBRARIES`
/// of a library signed by someone else: both are needed.
const ALLOW_DYLD_ENV: &str = "com.apple.security.cs.allow-dyld-environment-variables";
const DISABLE_LV: &str = "com.apple.security.cs.disable-library-validation";

const SUPERBLOB_MAGIC: u32 = 0xfade_0cc0;
const CODE_DIRECTORY_MAGIC: u32 = 0xfade_0c02;
const ENTITLEMENTS_MAGIC: u32 = 0xfade_7171;
const SLOT_CODE_DIRECTORY: u32 = 0;
const SLOT_ENTITLEMENTS: u32 = 5;

/// One architecture of a Mach-O file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// `arm64`, `arm64e`, `x86_64`, … (`cpu N/M` when unknown).
    pub arch: String,
    pub arm64e: bool,
    /// `MH_EXECUTE` (a program, not a library or bundle).
    pub executable: bool,
    /// Has `LC_LOAD_DYLINKER`: dyld runs for it.
    pub dynamic: bool,
    /// Has a `__RESTRICT,__restrict` section.
    pub restrict_section: bool,
    pub signature: Option<Signature>,
}

/// What the embedded code signature says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The CodeDirectory's flags (`CS_*`).
    pub flags: u32,
    /// The entitlements plist (XML), if any.
    pub entitlements: Option<String>,
}

impl Signature {
    pub fn hardened(&self) -> bool {
        self.flags & CS_RUNTIME != 0
    }

    pub fn adhoc(&self) -> bool {
        self.flags & CS_ADHOC != 0
    }

    /// Whether the entitlements set `key` to true.
    pub fn entitled(&self, key: &str) -> bool {
        self.entitlements
            .as_deref()
            .is_some_and(|xml| plist_true(xml, key))
    }
}

/// Every slice of a thin or universal Mach-O file.
pub fn inspect(data: &[u8]) -> Result<Vec<Slice>> {
    match object::FileKind::parse(data)? {
        object::FileKind::MachO32 => Ok(vec![slice::<macho::MachHeader32<Endianness>>(data)?]),
        object::FileKind::MachO64 => Ok(vec![slice::<macho::MachHeader64<Endianness>>(data)?]),
        object::FileKind::MachOFat32 => fat::<macho::FatArch32>(data),
        object::FileKind::MachOFat64 => fat::<macho::FatArch64>(data),
        _ => bail!("not a Mach-O file"),
    }
}

fn fat<A: FatArch>(data: &[u8]) -> Result<Vec<Slice>> {
    let file = object::read::macho::MachOFatFile::<A>::parse(data)?;
    let mut slices = Vec::new();
    for (i, arch) in file.arches().iter().enumerate() {
        let bytes = arch
            .data(data)
            .with_context(|| format!("universal binary slice {i} is out of bounds"))?;
        let slice = match object::FileKind::parse(bytes)? {
            object::FileKind::MachO32 => slice::<macho::MachHeader32<Endianness>>(bytes),
            object::FileKind::MachO64 => slice::<macho::MachHeader64<Endianness>>(bytes),
            _ => bail!("universal binary slice {i} is not a Mach-O file"),
        };
        slices.push(slice.with_context(|| format!("universal binary slice {i}"))?);
    }
    Ok(slices)
}

fn slice<H: MachHeader<Endian = Endianness>>(data: &[u8]) -> Result<Slice> {
    let header = H::parse(data, 0).context("bad Mach-O header")?;
    let endian = header.endian()?;
    let cputype = header.cputype(endian).0;
    let subtype = header.cpusubtype(endian).0 & !macho::CPU_SUBTYPE_MASK;
    let arm64e = cputype == macho::CPU_TYPE_ARM64.0 && subtype == 2; // CPU_SUBTYPE_ARM64E
    let mut out = Slice {
        arch: arch_name(cputype, arm64e),
        arm64e,
        executable: header.filetype(endian).0 == macho::MH_EXECUTE.0,
        dynamic: false,
        restrict_section: false,
        signature: None,
    };
    let mut commands = header.load_commands(endian, data, 0)?;
    while let Some(command) = commands.next()? {
        match command.variant()? {
            LoadCommandVariant::LoadDylinker(_) => out.dynamic = true,
            LoadCommandVariant::Segment32(seg, sections) => {
                out.restrict_section |= seg
                    .sections(endian, sections)?
                    .iter()
                    .any(|s| is_restrict(s.segname(), s.sectname()));
            }
            LoadCommandVariant::Segment64(seg, sections) => {
                out.restrict_section |= seg
                    .sections(endian, sections)?
                    .iter()
                    .any(|s| is_restrict(s.segname(), s.sectname()));
            }
            LoadCommandVariant::LinkeditData(ld) if command.cmd() == macho::LC_CODE_SIGNATURE => {
                let (off, size) = (
                    ld.dataoff.get(endian) as usize,
                    ld.datasize.get(endian) as usize,
                );
                let blob = off
                    .checked_add(size)
                    .and_then(|end| data.get(off..end))
                    .context("code signature is out of bounds")?;
                out.signature = Some(parse_signature(blob)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// dyld's test is by name (a `__restrict` section in a `__RESTRICT` segment);
/// object files keep the segment name in the section header only, so that is
/// where we look.
fn is_restrict(segname: &[u8; 16], sectname: &[u8; 16]) -> bool {
    trim_nul(segname) == b"__RESTRICT" && trim_nul(sectname) == b"__restrict"
}

fn trim_nul(name: &[u8; 16]) -> &[u8] {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    &name[..end]
}

fn be32(data: &[u8], at: usize) -> Result<u32> {
    let b = data
        .get(at..at + 4)
        .context("code signature is truncated")?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the flags and the entitlements out of a SuperBlob.
pub fn parse_signature(blob: &[u8]) -> Result<Signature> {
    if be32(blob, 0)? != SUPERBLOB_MAGIC {
        bail!("code signature is not a SuperBlob");
    }
    let count = be32(blob, 8)? as usize;
    let mut flags = None;
    let mut entitlements = None;
    for i in 0..count.min(blob.len() / 8) {
        let slot = be32(blob, 12 + i * 8)?;
        let at = be32(blob, 16 + i * 8)? as usize;
        match slot {
            SLOT_CODE_DIRECTORY => {
                if be32(blob, at)? != CODE_DIRECTORY_MAGIC {
                    bail!("slot 0 of the code signature is not a CodeDirectory");
                }
                flags = Some(be32(blob, at + 12)?);
            }
            SLOT_ENTITLEMENTS if be32(blob, at)? == ENTITLEMENTS_MAGIC => {
                let len = be32(blob, at + 4)? as usize;
                let xml = blob
                    .get(at + 8..at + len.max(8))
                    .context("entitlements are truncated")?;
                entitlements = Some(String::from_utf8_lossy(xml).into_owned());
            }
            _ => {}
        }
    }
    Ok(Signature {
        flags: flags.context("code signature has no CodeDirectory")?,
        entitlements,
    })
}

/// Whether an XML plist maps `key` to `<true/>`.
fn plist_true(xml: &str, key: &str) -> bool {
    let needle = format!("<key>{key}</key>");
    xml.match_indices(&needle)
        .any(|(i, _)| xml[i + needle.len()..].trim_start().starts_with("<true/>"))
}

fn arch_name(cputype: u32, arm64e: bool) -> String {
    match cputype {
        t if t == macho::CPU_TYPE_ARM64.0 && arm64e => "arm64e".into(),
        t if t == macho::CPU_TYPE_ARM64.0 => "arm64".into(),
        t if t == macho::CPU_TYPE_X86_64.0 => "x86_64".into(),
        t if t == macho::CPU_TYPE_X86.0 => "i386".into(),
        t if t == macho::CPU_TYPE_ARM.0 => "arm".into(),
        t if t == macho::CPU_TYPE_ARM64_32.0 => "arm64_32".into(),
        t => format!("cpu {t:#x}"),
    }
}

/// What keeps dyld from inserting the shim, over all slices (each blocker
/// once, naming the slices it applies to).
pub fn blockers(slices: &[Slice]) -> Vec<Blocker> {
    let mut hardened = Vec::new();
    let mut restricted = Vec::new();
    let mut lv = Vec::new();
    let mut statik = false;
    for s in slices {
        statik |= s.executable && !s.dynamic;
        let sig = s.signature.as_ref();
        let flags = sig.map_or(0, |g| g.flags);
        let entitled = |k| sig.is_some_and(|g| g.entitled(k));
        if flags & CS_RUNTIME != 0 && !(entitled(ALLOW_DYLD_ENV) && entitled(DISABLE_LV)) {
            hardened.push(s.arch.clone());
        } else if flags & CS_REQUIRE_LV != 0 && !entitled(DISABLE_LV) {
            // The hardened runtime implies library validation; name it only alone.
            lv.push(s.arch.clone());
        }
        if flags & CS_RESTRICT != 0 || s.restrict_section {
            restricted.push(s.arch.clone());
        }
    }
    let mut out = Vec::new();
    if statik {
        out.push(Blocker::Static);
    }
    if !hardened.is_empty() {
        out.push(Blocker::HardenedRuntime {
            arch: hardened.join(", "),
        });
    }
    if !lv.is_empty() {
        out.push(Blocker::LibraryValidation {
            arch: lv.join(", "),
        });
    }
    if !restricted.is_empty() {
        out.push(Blocker::Restricted {
            arch: restricted.join(", "),
        });
    }
    // An arm64e process loads only arm64e libraries; a universal binary with
    // a plain arm64 slice runs that one unless arm64e is enabled for it.
    let arm64e = slices.iter().any(|s| s.arm64e);
    let arm64 = slices.iter().any(|s| s.arch == "arm64");
    if arm64e && !arm64 {
        out.push(Blocker::Arm64e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plist_booleans() {
        let xml = "<dict>\n\t<key>a</key>\n\t<true/>\n\t<key>b</key><false/></dict>";
        assert!(plist_true(xml, "a"));
        assert!(!plist_true(xml, "b"));
        assert!(!plist_true(xml, "c"));
    }
}
