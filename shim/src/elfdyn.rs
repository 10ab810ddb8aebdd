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
