//! ELF: is there a dynamic loader, and is it the shim's architecture?

use anyhow::{Context, Result};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use super::Blocker;

/// What keeps the loader from preloading the shim into this ELF file
/// (mode bits and capabilities are checked by the caller).
pub fn inspect(data: &[u8]) -> Result<Vec<Blocker>> {
    match object::FileKind::parse(data)? {
        object::FileKind::Elf32 => inspect_as::<elf::FileHeader32<Endianness>>(data),
        object::FileKind::Elf64 => inspect_as::<elf::FileHeader64<Endianness>>(data),
        _ => anyhow::bail!("not an ELF file"),
    }
}

fn inspect_as<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Vec<Blocker>> {
    let header = H::parse(data).context("bad ELF header")?;
    let endian = header.endian().context("bad ELF byte order")?;
    let mut blockers = Vec::new();
    let machine = header.e_machine(endian).0;
    if let Some(host) = host_machine() {
        if (machine, header.is_class_64()) != (host, cfg!(target_pointer_width = "64")) {
            blockers.push(Blocker::OtherArchitecture {
                arch: machine_name(machine, header.is_class_64()),
            });
        }
    }
    // No PT_INTERP, no ld.so: nothing reads LD_PRELOAD. This holds for
    // static-pie too (ET_DYN without an interpreter).
    let has_interp = header
        .program_headers(endian, data)
        .context("bad ELF program headers")?
        .iter()
        .any(|ph| ph.p_type(endian) == elf::PT_INTERP);
    if !has_interp {
        blockers.push(Blocker::Static);
    }
    Ok(blockers)
}

/// `e_machine` of the architecture the shim is built for, when we know it.
fn host_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(elf::EM_X86_64.0),
        "aarch64" => Some(elf::EM_AARCH64.0),
        _ => None,
    }
}

fn machine_name(machine: u16, class_64: bool) -> String {
    let known = match (machine, class_64) {
        (m, true) if m == elf::EM_X86_64.0 => "x86_64",
        (m, false) if m == elf::EM_X86_64.0 => "x32",
        (m, _) if m == elf::EM_386.0 => "i386",
        (m, _) if m == elf::EM_AARCH64.0 => "aarch64",
        (m, _) if m == elf::EM_ARM.0 => "arm",
        _ => "",
    };
    if known.is_empty() {
        format!("ELF machine {machine}")
    } else {
        known.to_string()
    }
}

/// The bytes of the exported data symbol `name` (looked up in the dynamic
/// symbol table, then the static one): how `vrift doctor` reads the shim's
/// `VRIFT_SHIM_VERSION` without loading it.
pub fn symbol_bytes(data: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    use object::{Object, ObjectSection, ObjectSymbol};

    let file = object::File::parse(data).context("not an object file")?;
    let found = file
        .dynamic_symbols()
        .chain(file.symbols())
        .find(|s| s.name() == Ok(name));
    let Some(sym) = found else {
        return Ok(None);
    };
    let Some(index) = sym.section_index() else {
        return Ok(None);
    };
    let section = file.section_by_index(index)?;
    Ok(section
        .data_range(sym.address(), sym.size())?
        .map(<[u8]>::to_vec))
}
