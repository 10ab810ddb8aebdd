//! Reading a program's `DT_RUNPATH`/`DT_RPATH` (ELF64, native byte order)
//! with pread on the stack: no allocation, no mapping.

use libc::c_int;

// Dynamic section tags (elf.h).
const DT_NULL: i64 = 0;
const DT_STRTAB: i64 = 5;
const DT_RPATH: i64 = 15;
const DT_RUNPATH: i64 = 29;

/// Calls `f` with each entry of the run path of the ELF file open on `fd`
/// (DT_RUNPATH, else DT_RPATH). Nothing for other files.
pub fn for_each_run_path_entry(fd: c_int, mut f: impl FnMut(&[u8])) {
    let mut ehdr = [0u8; 64];
    if pread(fd, &mut ehdr, 0) != 64 || &ehdr[..4] != b"\x7fELF" || ehdr[4] != 2 {
        return; // not ELF64
    }
    let phoff = u64_at(&ehdr, 32);
    let phentsize = u16_at(&ehdr, 54) as u64;
    let phnum = u16_at(&ehdr, 56) as u64;
    if phentsize < 56 || phnum > 256 {
        return;
    }
    // The dynamic segment, and the loads that map addresses to offsets.
    let mut loads = [(0u64, 0u64, 0u64); 16]; // (vaddr, filesz, offset)
    let mut nloads = 0;
    let mut dynamic = None;
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        if pread(fd, &mut ph, phoff + i * phentsize) != 56 {
            return;
        }
        let (kind, offset, vaddr, filesz) = (
            u32_at(&ph, 0),
            u64_at(&ph, 8),
            u64_at(&ph, 16),
            u64_at(&ph, 32),
        );
        match kind {
            libc::PT_LOAD if nloads < loads.len() => {
                loads[nloads] = (vaddr, filesz, offset);
                nloads += 1;
            }
            libc::PT_DYNAMIC => dynamic = Some((offset, filesz)),
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return; // static
    };
    let (mut strtab, mut runpath, mut rpath) = (None, None, None);
    let mut i = 0;
    while i + 16 <= dyn_size.min(64 * 1024) {
        let mut d = [0u8; 16];
        if pread(fd, &mut d, dyn_off + i) != 16 {
            return;
        }
        let (tag, val) = (u64_at(&d, 0) as i64, u64_at(&d, 8));
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(val),
            DT_RUNPATH => runpath = Some(val),
            DT_RPATH => rpath = Some(val),
            _ => {}
        }
        i += 16;
    }
    let (Some(strtab), Some(at)) = (strtab, runpath.or(rpath)) else {
        return;
    };
    let Some(file_off) = loads[..nloads]
        .iter()
        .find(|(v, sz, _)| strtab >= *v && strtab < v + sz)
        .map(|(v, _, off)| strtab - v + off)
    else {
        return;
    };
    let mut s = [0u8; 1024];
    let n = pread(fd, &mut s, file_off + at);
    if n <= 0 {
        return;
    }
    let s = &s[..n as usize];
    let s = &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())];
    for entry in s.split(|&c| c == b':').filter(|e| !e.is_empty()) {
        f(entry);
    }
}

/// What a program file is, as far as loading the shim goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Loader {
    /// Started by the dynamic loader (`PT_INTERP`): loads the shim.
    Dynamic,
    /// No `PT_INTERP`: statically linked (or static-pie), or a dynamic
    /// loader itself; the shim is never loaded into it.
    Static,
    /// A Go program (a `Go` build-id note): dynamically linked or not, its
    /// runtime makes its own system calls for files.
    Go,
    /// Not an ELF64 file of this machine (a script, or unreadable).
    Other,
}

const PT_NOTE: u32 = 4;
/// The Go linker's build-id note (`.note.go.buildid`): owner "Go", type 4.
const NT_GO_BUILD_ID: u32 = 4;

/// Classifies the program open on `fd` from its first 4 KiB (the ELF and
/// program headers, and the Go linker's note, which it puts right after
/// them): one pread.
pub fn loader_of(fd: c_int) -> Loader {
    let mut head = [0u8; 4096];
    let n = pread(fd, &mut head, 0);
    if n < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 {
        return Loader::Other;
    }
    let head = &head[..n as usize];
    let (phoff, phentsize, phnum) = (
        u64_at(head, 32) as usize,
        u16_at(head, 54) as usize,
        u16_at(head, 56) as usize,
    );
    if phentsize < 56 {
        return Loader::Other;
    }
    let mut interp = false;
    for i in 0..phnum.min(64) {
        let at = phoff + i * phentsize;
        let Some(ph) = head.get(at..at + 56) else {
            break;
        };
        let (kind, offset, filesz) = (
            u32_at(ph, 0),
            u64_at(ph, 8) as usize,
            u64_at(ph, 32) as usize,
        );
        if kind == libc::PT_INTERP {
            interp = true;
        }
        if kind == PT_NOTE {
            if let Some(notes) = head.get(offset..offset.saturating_add(filesz)) {
                if has_go_note(notes) {
                    return Loader::Go;
                }
            }
        }
    }
    if interp {
        Loader::Dynamic
    } else {
        Loader::Static
    }
}

/// Whether the notes hold one owned by "Go" of the build-id type.
fn has_go_note(mut notes: &[u8]) -> bool {
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (
            u32_at(notes, 0) as usize,
            u32_at(notes, 4) as usize,
            u32_at(notes, 8),
        );
        let name_end = 12 + namesz;
        if notes.get(12..name_end) == Some(b"Go\0\0".as_slice()) && kind == NT_GO_BUILD_ID {
            return true;
        }
        let next = 12 + namesz.div_ceil(4) * 4 + descsz.div_ceil(4) * 4;
        if next > notes.len() || next == 0 {
            return false;
        }
        notes = &notes[next..];
    }
    false
}

fn pread(fd: c_int, buf: &mut [u8], off: u64) -> isize {
    // SAFETY: reading into our buffer.
    unsafe { crate::raw_syscall!(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), off) as isize }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}
