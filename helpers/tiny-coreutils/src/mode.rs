//! chmod modes, octal and symbolic: a port of gnulib's `modechange.c`, so
//! that `u+x`, `go=`, `a-w,+X`, `=r`, `g=u` and `755` mean exactly what
//! GNU chmod and `mkdir -m` make of them (umask for an empty "who", `X`,
//! the set-id bits a directory keeps unless they are mentioned).

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const S_IRWXU: u32 = 0o700;
const S_IRWXG: u32 = 0o070;
const S_IRWXO: u32 = 0o007;
const ALL: u32 = 0o7777;
const R: u32 = 0o444;
const W: u32 = 0o222;
const X: u32 = 0o111;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flag {
    Ordinary,
    /// `X`: execute bits only for directories or files with one set.
    XIfAnyX,
    /// `g=u` and friends: copy existing bits.
    CopyExisting,
}

#[derive(Clone, Copy, Debug)]
struct Change {
    op: u8,
    flag: Flag,
    affected: u32,
    value: u32,
    mentioned: u32,
}

/// A compiled mode.
#[derive(Clone, Debug)]
pub struct Mode {
    changes: Vec<Change>,
}

impl Mode {
    /// Compiles a mode string; `None` if it is invalid.
    pub fn parse(s: &str) -> Option<Mode> {
        let b = s.as_bytes();
        if b.first().is_some_and(|c| (b'0'..b'8').contains(c)) {
            let mut octal: u32 = 0;
            for &c in b {
                if !(b'0'..b'8').contains(&c) {
                    return None;
                }
                octal = octal * 8 + (c - b'0') as u32;
                if octal > ALL {
                    return None;
                }
            }
            // Fewer than five digits leave a directory's set-id bits alone
            // unless they are set (GNU's "mentioned").
            let mentioned = if b.len() < 5 {
                (octal & (S_ISUID | S_ISGID)) | S_ISVTX | 0o777
            } else {
                ALL
            };
            return Some(Mode {
                changes: vec![Change {
                    op: b'=',
                    flag: Flag::Ordinary,
                    affected: ALL,
                    value: octal,
                    mentioned,
                }],
            });
        }
        let mut changes = Vec::new();
        let mut i = 0;
        loop {
            let mut affected = 0;
            while let Some(&c) = b.get(i) {
                match c {
                    b'u' => affected |= S_ISUID | S_IRWXU,
                    b'g' => affected |= S_ISGID | S_IRWXG,
                    b'o' => affected |= S_ISVTX | S_IRWXO,
                    b'a' => affected |= ALL,
                    b'=' | b'+' | b'-' => break,
                    _ => return None,
                }
                i += 1;
            }
            if !matches!(b.get(i), Some(b'=' | b'+' | b'-')) {
                return None;
            }
            while let Some(&op) = b.get(i).filter(|c| matches!(c, b'=' | b'+' | b'-')) {
                i += 1;
                let mut mentioned = 0;
                let (value, flag) = match b.get(i) {
                    Some(c @ b'0'..=b'7') => {
                        let _ = c;
                        let mut octal: u32 = 0;
                        while let Some(&d) = b.get(i).filter(|d| (b'0'..b'8').contains(*d)) {
                            octal = octal * 8 + (d - b'0') as u32;
                            if octal > ALL {
                                return None;
                            }
                            i += 1;
                        }
                        if affected != 0 || !matches!(b.get(i), None | Some(b',')) {
                            return None;
                        }
                        affected = ALL;
                        mentioned = ALL;
                        (octal, Flag::Ordinary)
                    }
                    Some(b'u') => {
                        i += 1;
                        (S_IRWXU, Flag::CopyExisting)
                    }
                    Some(b'g') => {
                        i += 1;
                        (S_IRWXG, Flag::CopyExisting)
                    }
                    Some(b'o') => {
                        i += 1;
                        (S_IRWXO, Flag::CopyExisting)
                    }
                    _ => {
                        let mut value = 0;
                        let mut flag = Flag::Ordinary;
                        while let Some(&c) = b.get(i) {
                            match c {
                                b'r' => value |= R,
                                b'w' => value |= W,
                                b'x' => value |= X,
                                b'X' => flag = Flag::XIfAnyX,
                                b's' => value |= S_ISUID | S_ISGID,
                                b't' => value |= S_ISVTX,
                                _ => break,
                            }
                            i += 1;
                        }
                        (value, flag)
                    }
                };
                changes.push(Change {
                    op,
                    flag,
                    affected,
                    value,
                    mentioned: if mentioned != 0 {
                        mentioned
                    } else if affected != 0 {
                        affected & value
                    } else {
                        value
                    },
                });
            }
            match b.get(i) {
                None => return Some(Mode { changes }),
                Some(b',') => i += 1,
                Some(_) => return None,
            }
        }
    }

    /// The new permission bits of a file with mode `old` (only its low 12
    /// bits are used).
    pub fn apply(&self, old: u32, is_dir: bool, umask: u32) -> u32 {
        let mut new = old & ALL;
        for ch in &self.changes {
            let omit = if is_dir { S_ISUID | S_ISGID } else { 0 } & !ch.mentioned;
            let mut value = ch.value;
            match ch.flag {
                Flag::Ordinary => {}
                Flag::CopyExisting => {
                    value &= new;
                    value |= (if value & R != 0 { R } else { 0 })
                        | (if value & W != 0 { W } else { 0 })
                        | (if value & X != 0 { X } else { 0 });
                }
                Flag::XIfAnyX => {
                    if new & X != 0 || is_dir {
                        value |= X;
                    }
                }
            }
            value &= (if ch.affected != 0 {
                ch.affected
            } else {
                !umask
            }) & !omit;
            match ch.op {
                b'=' => {
                    let preserved = (if ch.affected != 0 { !ch.affected } else { 0 }) | omit;
                    new = (new & preserved) | value;
                }
                b'+' => new |= value,
                _ => new &= !value,
            }
        }
        new & ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str, old: u32, dir: bool) -> u32 {
        Mode::parse(s)
            .unwrap_or_else(|| panic!("{s}"))
            .apply(old, dir, 0o022)
    }

    #[test]
    fn modes_mean_what_gnu_chmod_makes_of_them() {
        assert_eq!(m("755", 0o600, false), 0o755);
        assert_eq!(m("644", 0o2755, true), 0o2644, "a directory keeps setgid");
        assert_eq!(m("00644", 0o2755, true), 0o644, "unless five digits say so");
        assert_eq!(m("u+x", 0o644, false), 0o744);
        assert_eq!(m("go-r", 0o644, false), 0o600);
        assert_eq!(m("a=r", 0o777, false), 0o444);
        assert_eq!(m("+x", 0o644, false), 0o755);
        assert_eq!(m("-w", 0o666, false), 0o466, "the umask protects g/o w");
        assert_eq!(m("=r", 0o666, false), 0o444);
        assert_eq!(m("a+X", 0o644, false), 0o644);
        assert_eq!(m("a+X", 0o744, false), 0o755);
        assert_eq!(m("a+X", 0o600, true), 0o711);
        assert_eq!(m("g=u", 0o640, false), 0o660);
        assert_eq!(m("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(m("u+s", 0o755, false), 0o4755);
        assert_eq!(m("+t", 0o755, true), 0o1755);
        assert_eq!(m("o+w-x", 0o755, false), 0o756);
        assert_eq!(m("=755", 0o600, false), 0o755);
        for bad in [
            "", "x", "u", "u+q", "9", "7777777", "u=7", "+7x", "a,", "rwx",
        ] {
            assert!(Mode::parse(bad).is_none(), "{bad}");
        }
    }
}
