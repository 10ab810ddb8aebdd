//! The ELF note that marks the vrift binary (owner "vrift", type 1; see
//! `src/main.rs`), read from a loaded `PT_NOTE` segment.

/// Whether the notes in `bytes` (a `PT_NOTE` segment) include owner
/// "vrift", type 1.
pub fn has_vrift_note(bytes: &[u8]) -> bool {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut at = 0;
    while let (Some(namesz), Some(descsz), Some(kind)) = (word(at), word(at + 4), word(at + 8)) {
        let name = at + 12;
        if kind == 1 && bytes.get(name..name + namesz) == Some(b"vrift\0") {
            return true;
        }
        at = name + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::has_vrift_note;
    use std::vec::Vec;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn finds_the_vrift_note_after_others() {
        let mut seg = note(b"GNU\0", 3, &[0xab; 20]);
        seg.extend(note(b"vrift\0", 1, b"x"));
        assert!(has_vrift_note(&seg));
    }

    #[test]
    fn other_owners_types_and_truncated_notes_are_not_vrift() {
        assert!(!has_vrift_note(&note(b"GNU\0", 1, b"")));
        assert!(!has_vrift_note(&note(b"vrift\0", 2, b"")));
        assert!(!has_vrift_note(&note(b"vrifty\0", 1, b"")));
        let whole = note(b"vrift\0", 1, b"");
        assert!(!has_vrift_note(&whole[..15]));
        assert!(!has_vrift_note(&[]));
    }

    #[test]
    fn a_huge_size_ends_the_walk() {
        let mut seg = Vec::new();
        seg.extend_from_slice(&u32::MAX.to_ne_bytes());
        seg.extend_from_slice(&u32::MAX.to_ne_bytes());
        seg.extend_from_slice(&1u32.to_ne_bytes());
        assert!(!has_vrift_note(&seg));
    }
}
