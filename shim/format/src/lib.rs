//! On-disk formats shared by the `vrift` binary and its LD_PRELOAD library.
//!
//! This crate has no dependencies and never allocates in its decoding paths:
//! the shim links it into every process of a build. Everything here is a
//! *format*: changing an encoding means bumping [`SCHEMA_VERSION`].
//!
//! # Invariants
//!
//! 1. A blob's name is the lowercase hex BLAKE3 hash of exactly its bytes;
//!    nothing else (no mode, no name) is covered by the hash.
//! 2. A blob lives at `<cas>/blobs/<first two hex digits>/<all 64 hex digits>`.
//! 3. Rift paths are relative to the canonical project root, `/`-separated,
//!    with no leading or trailing `/`, no empty, `.` or `..` component, and are
//!    compared as raw bytes (Linux names need not be UTF-8).
//! 4. Synthetic inode numbers are `SYNTHETIC_INO_BASE + n`, far above anything
//!    ext4, xfs or btrfs hand out for real files, so they never collide with a
//!    physical inode seen through the same view.

#![no_std]

pub mod pathnorm;
pub mod proto;
pub mod table;
pub mod view;

/// Version of the manifest schema and of the record encoding below.
/// (3: the ingest journal holds one row per batch, and the rift layer may be
/// a snapshot's table after a restore; the record encoding is version 2's.)
pub const SCHEMA_VERSION: u32 = 3;

/// First synthetic inode number handed to rift entries.
pub const SYNTHETIC_INO_BASE: u64 = 1 << 60;

/// Length of a BLAKE3 digest in bytes.
pub const HASH_LEN: usize = 32;

/// Length of a hash written as lowercase hex.
pub const HASH_HEX_LEN: usize = 2 * HASH_LEN;

/// Name of the blob directory below the CAS root.
pub const BLOBS_DIR: &str = "blobs";

/// A BLAKE3 content hash: the name of a blob.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ContentHash(pub [u8; HASH_LEN]);

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The two hex digits of each byte (one load per byte when encoding).
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    t
};

impl ContentHash {
    /// Writes the hash as 64 lowercase hex digits into `out`.
    pub fn write_hex(&self, out: &mut [u8; HASH_HEX_LEN]) {
        for (i, &b) in self.0.iter().enumerate() {
            let [hi, lo] = HEX_PAIRS[b as usize];
            out[2 * i] = hi;
            out[2 * i + 1] = lo;
        }
    }

    /// Parses 64 hex digits (either case). `None` for anything else.
    pub fn from_hex(s: &[u8]) -> Option<ContentHash> {
        if s.len() != HASH_HEX_LEN {
            return None;
        }
        let mut out = [0u8; HASH_LEN];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(ContentHash(out))
    }

    /// Writes `blobs/ab/abcd…` (the blob's path relative to the CAS root)
    /// into `out` and returns the number of bytes written.
    pub fn write_blob_rel_path(&self, out: &mut [u8; BLOB_REL_PATH_LEN]) -> usize {
        let prefix = BLOBS_DIR.as_bytes();
        out[..prefix.len()].copy_from_slice(prefix);
        let n = prefix.len();
        out[n] = b'/';
        [out[n + 1], out[n + 2]] = HEX_PAIRS[self.0[0] as usize];
        out[n + 3] = b'/';
        let hex: &mut [u8; HASH_HEX_LEN] = (&mut out[n + 4..]).try_into().expect("sized");
        self.write_hex(hex);
        BLOB_REL_PATH_LEN
    }
}

/// Length of `blobs/ab/<64 hex>`.
pub const BLOB_REL_PATH_LEN: usize = BLOBS_DIR.len() + 4 + HASH_HEX_LEN;

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl core::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut hex = [0u8; HASH_HEX_LEN];
        self.write_hex(&mut hex);
        // Hex digits are ASCII, hence valid UTF-8.
        f.write_str(core::str::from_utf8(&hex).unwrap_or("?"))
    }
}

impl core::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// What a rift record holds at a path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    /// A regular file whose content is a blob.
    File = 1,
    /// A symbolic link; its target is stored in the record.
    Symlink = 2,
    /// The path is deleted in the view (ENOENT, absent from listings).
    Whiteout = 3,
    /// A FIFO, socket or device node (the type bits of `mode` say which;
    /// `size` holds its `st_rdev`, and it shows size 0). The kernel object
    /// behind it is the node `<cas>/nodes/<name>`, named by the record's
    /// trailing bytes: FIFOs and devices are made there by the daemon, a
    /// socket by the `bind` that creates it.
    Special = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::File),
            2 => Some(Kind::Symlink),
            3 => Some(Kind::Whiteout),
            4 => Some(Kind::Special),
            _ => None,
        }
    }
}

/// Record flag: the entry was moved into the rift from the disk by `vrift ingest`.
pub const FLAG_PHANTOM: u8 = 1;
/// Record flag: the entry stands where the disk has a directory (the rift
/// replaced a directory by a file or symlink), so it hides that subtree.
/// Set by whoever writes such a record; the table counts these as hiding.
pub const FLAG_HIDES_DIR: u8 = 2;
/// Record flag: the file is being written. Its content (and size and times)
/// is the staging file `<cas>/staging/<target>`, not a blob; the daemon
/// seals it into the CAS once no process has it open for writing.
pub const FLAG_STAGED: u8 = 4;

/// Owner value meaning "the project root's owner" (what ingest records).
pub const OWNER_INHERIT: u32 = u32::MAX;

/// The name of vrift's state directory below a project root, as a literal
/// for `concat!` (see [`STATE_DIR_NAME`]).
#[macro_export]
macro_rules! state_dir {
    () => {
        ".vrift"
    };
}

/// The name of the executable copies' directory, as a literal for
/// `concat!` (see [`EXEC_DIR`]).
#[macro_export]
macro_rules! exec_dir {
    () => {
        "exec"
    };
}

/// Name of vrift's state directory below a project root (never part of
/// the view).
pub const STATE_DIR_NAME: &str = state_dir!();

/// Name of the directory of executable copies below the CAS root
/// (`<store>/exec/<hash>`, mode 0555: the CAS keeps no exec bits).
pub const EXEC_DIR: &str = exec_dir!();

/// A project's mirror of the executable copies its programs run from
/// (hard links), relative to its root: `.vrift/exec/`.
pub const EXEC_MIRROR: &str = concat!(state_dir!(), "/", exec_dir!(), "/");

/// Name of the staging directory below the CAS root.
pub const STAGING_DIR: &str = "staging";

/// Name of the directory below the CAS root that holds the kernel nodes of
/// special files in the rift ([`Kind::Special`]).
pub const NODES_DIR: &str = "nodes";

/// Whether `mode`'s type is one a [`Kind::Special`] record holds.
pub fn is_special_type(mode: u32) -> bool {
    matches!(
        mode & 0o170000,
        0o010000 | 0o140000 | 0o020000 | 0o060000 // FIFO, socket, char, block
    )
}

/// Encoded size of a file or symlink record without its symlink target.
pub const RECORD_HEADER_LEN: usize = 88;
/// The size of a header written before records carried a ctime (byte 2
/// without [`HEADER_HAS_CTIME`]): still decoded, its ctime read as 0.
pub const RECORD_HEADER_LEN_V1: usize = 80;
/// Byte 2 of a record: the header is [`RECORD_HEADER_LEN`] bytes long and
/// ends with `ctime_ns`.
pub const HEADER_HAS_CTIME: u8 = 1;
/// Byte 2 of a record (with [`HEADER_HAS_CTIME`]): the inode has more than
/// 255 other names, and the header is [`RECORD_HEADER_LEN_LINKS`] bytes
/// long, their count a u32 at 88 (byte 3 says 255).
pub const HEADER_HAS_LINKS: u8 = 2;
/// The size of a header with [`HEADER_HAS_LINKS`].
pub const RECORD_HEADER_LEN_LINKS: usize = 96;
/// The most names an inode may have (ext4's limit): `link` gives EMLINK.
pub const MAX_LINKS: u32 = 65_000;

/// Longest symlink target a record may carry (Linux `PATH_MAX`).
pub const MAX_SYMLINK_TARGET: usize = 4096;

/// The fixed part of a file or symlink record.
///
/// Encoding (little endian), 88 bytes followed by the symlink target (or,
/// for a staged file, the staging file's name):
///
/// ```text
///  0  kind u8        1  flags u8       2 HEADER_HAS_CTIME (| HEADER_HAS_LINKS)
///  3  other names of the inode (hard links), at most 255
///  4  mode u32 (permission bits and file-type bits as in st_mode)
///  8  size u64       16 mtime_ns i64   24 ino u64
/// 32  hash [u8; 32] (zero for symlinks and staged files)
/// 64  uid u32        68 gid u32 (OWNER_INHERIT: the project root's)
/// 72  atime_ns i64
/// 80  ctime_ns i64 (0: the mtime; records without HEADER_HAS_CTIME end at 80)
/// 88  (HEADER_HAS_LINKS only) other names u32, 4 bytes zero: the header
///     ends at 96
/// 88  symlink target bytes (symlinks) / staging name (staged files)
///     / node name (special files)
/// ```
///
/// A special file ([`Kind::Special`]) keeps its `st_rdev` in `size`.
///
/// A whiteout is encoded as the single byte `3`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecordHeader {
    pub kind: Kind,
    pub flags: u8,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub hash: ContentHash,
    pub uid: u32,
    pub gid: u32,
    pub atime_ns: i64,
    /// The last change of the entry (0: its mtime; a staged file's is its
    /// staging file's when later).
    pub ctime_ns: i64,
    /// Hard links: how many other names the inode has (`st_nlink` - 1;
    /// every name's record carries the same inode, metadata and count).
    pub links: u32,
}

/// A decoded record borrowing its symlink target from the encoded bytes.
pub type RecordRef<'a> = view::RecordOf<&'a [u8]>;

/// Why bytes could not be decoded as a record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    Empty,
    UnknownKind(u8),
    Truncated,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty record"),
            DecodeError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            DecodeError::Truncated => f.write_str("truncated record"),
        }
    }
}

/// An encoded [`RecordHeader`] (see [`RecordHeader::encode`]).
#[derive(Clone, Copy)]
pub struct EncodedHeader {
    bytes: [u8; RECORD_HEADER_LEN_LINKS],
    len: usize,
}

impl EncodedHeader {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl RecordHeader {
    /// Encodes the header: [`RECORD_HEADER_LEN`] bytes, or
    /// [`RECORD_HEADER_LEN_LINKS`] for an inode of more than 256 names.
    pub fn encode(&self) -> EncodedHeader {
        let mut b = [0u8; RECORD_HEADER_LEN_LINKS];
        b[0] = self.kind as u8;
        b[1] = self.flags;
        b[2] = HEADER_HAS_CTIME;
        b[3] = self.links.min(255) as u8;
        let mut len = RECORD_HEADER_LEN;
        if self.links > 255 {
            b[2] |= HEADER_HAS_LINKS;
            b[88..92].copy_from_slice(&self.links.to_le_bytes());
            len = RECORD_HEADER_LEN_LINKS;
        }
        b[4..8].copy_from_slice(&self.mode.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..24].copy_from_slice(&self.mtime_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.ino.to_le_bytes());
        b[32..64].copy_from_slice(&self.hash.0);
        b[64..68].copy_from_slice(&self.uid.to_le_bytes());
        b[68..72].copy_from_slice(&self.gid.to_le_bytes());
        b[72..80].copy_from_slice(&self.atime_ns.to_le_bytes());
        b[80..88].copy_from_slice(&self.ctime_ns.to_le_bytes());
        EncodedHeader { bytes: b, len }
    }

    /// A special file's device number (`st_rdev`); 0 for anything else.
    pub fn rdev(&self) -> u64 {
        if self.kind == Kind::Special {
            self.size
        } else {
            0
        }
    }

    /// Whether the content is a staging file still being written.
    pub fn is_staged(&self) -> bool {
        self.kind == Kind::File && self.flags & FLAG_STAGED != 0
    }
}

/// The encoding of a whiteout record.
pub const WHITEOUT_RECORD: [u8; 1] = [Kind::Whiteout as u8];

/// Decodes a record without allocating.
pub fn decode_record(bytes: &[u8]) -> Result<RecordRef<'_>, DecodeError> {
    let kind_byte = *bytes.first().ok_or(DecodeError::Empty)?;
    let kind = Kind::from_u8(kind_byte).ok_or(DecodeError::UnknownKind(kind_byte))?;
    if kind == Kind::Whiteout {
        return Ok(RecordRef::Whiteout);
    }
    let len = match bytes.get(2).copied().unwrap_or(0) {
        b if b & HEADER_HAS_CTIME != 0 && b & HEADER_HAS_LINKS != 0 => RECORD_HEADER_LEN_LINKS,
        b if b & HEADER_HAS_CTIME != 0 => RECORD_HEADER_LEN,
        _ => RECORD_HEADER_LEN_V1,
    };
    if bytes.len() < len {
        return Err(DecodeError::Truncated);
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let u64_at = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let mut hash = [0u8; HASH_LEN];
    hash.copy_from_slice(&bytes[32..64]);
    let header = RecordHeader {
        kind,
        flags: bytes[1],
        mode: u32_at(4),
        size: u64_at(8),
        mtime_ns: u64_at(16) as i64,
        ino: u64_at(24),
        hash: ContentHash(hash),
        uid: u32_at(64),
        gid: u32_at(68),
        atime_ns: u64_at(72) as i64,
        ctime_ns: if len >= RECORD_HEADER_LEN {
            u64_at(80) as i64
        } else {
            0
        },
        links: if len == RECORD_HEADER_LEN_LINKS {
            u32_at(88)
        } else {
            bytes[3] as u32
        },
    };
    Ok(RecordRef::Entry {
        header,
        target: &bytes[len..],
    })
}

/// Directory mark flag: the directory was created through the rift.
pub const DIR_CREATED: u8 = 1;
/// Directory mark flag: the directory is opaque (lists only rift entries below it).
pub const DIR_OPAQUE: u8 = 2;

/// Longest name of one path component (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Whether a component of `path` is longer than [`NAME_MAX`] (the kernel's
/// `ENAMETOOLONG`).
pub fn has_long_name(path: &[u8]) -> bool {
    path.split(|&c| c == b'/').any(|comp| comp.len() > NAME_MAX)
}

/// Whether `path` is a well-formed rift path (invariant 3 above).
pub fn is_valid_rift_path(path: &[u8]) -> bool {
    if path.is_empty() || path.len() > 4096 {
        return false;
    }
    path.split(|&c| c == b'/')
        .all(|comp| !comp.is_empty() && comp != b"." && comp != b".." && !comp.contains(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = (i * 37) as u8;
        }
        let hash = ContentHash(h);
        let mut hex = [0u8; HASH_HEX_LEN];
        hash.write_hex(&mut hex);
        assert_eq!(ContentHash::from_hex(&hex), Some(hash));
        assert_eq!(ContentHash::from_hex(b"zz"), None);
    }

    #[test]
    fn blob_path_has_fanout() {
        let hash = ContentHash([0xab; 32]);
        let mut out = [0u8; BLOB_REL_PATH_LEN];
        let n = hash.write_blob_rel_path(&mut out);
        let s = core::str::from_utf8(&out[..n]).unwrap();
        assert!(s.starts_with("blobs/ab/abab"));
        assert_eq!(n, BLOB_REL_PATH_LEN);
    }

    #[test]
    fn record_round_trips() {
        let header = RecordHeader {
            kind: Kind::Symlink,
            flags: FLAG_PHANTOM,
            mode: 0o120777,
            size: 5,
            mtime_ns: -3,
            ino: SYNTHETIC_INO_BASE + 9,
            hash: ContentHash::default(),
            uid: 7,
            gid: OWNER_INHERIT,
            atime_ns: 11,
            ctime_ns: 13,
            links: 0,
        };
        let mut buf = [0u8; RECORD_HEADER_LEN + 5];
        buf[..RECORD_HEADER_LEN].copy_from_slice(header.encode().as_bytes());
        buf[RECORD_HEADER_LEN..].copy_from_slice(b"a/b/c");
        assert_eq!(
            decode_record(&buf),
            Ok(RecordRef::Entry {
                header,
                target: b"a/b/c"
            })
        );
        // A record written before records carried a ctime.
        let mut old = [0u8; RECORD_HEADER_LEN_V1 + 5];
        old[..RECORD_HEADER_LEN_V1]
            .copy_from_slice(&header.encode().as_bytes()[..RECORD_HEADER_LEN_V1]);
        old[2] = 0;
        old[RECORD_HEADER_LEN_V1..].copy_from_slice(b"a/b/c");
        assert_eq!(
            decode_record(&old),
            Ok(RecordRef::Entry {
                header: RecordHeader {
                    ctime_ns: 0,
                    ..header
                },
                target: b"a/b/c"
            })
        );
        // Link counts: in byte 3 up to 255 other names, then in the longer
        // header.
        for links in [3u32, 255, 256, 64_999] {
            let h = RecordHeader { links, ..header };
            let mut rec = [0u8; RECORD_HEADER_LEN_LINKS + 5];
            let enc = h.encode();
            let n = enc.as_bytes().len();
            assert_eq!(n == RECORD_HEADER_LEN_LINKS, links > 255);
            rec[..n].copy_from_slice(enc.as_bytes());
            rec[n..n + 5].copy_from_slice(b"a/b/c");
            assert_eq!(
                decode_record(&rec[..n + 5]),
                Ok(RecordRef::Entry {
                    header: h,
                    target: b"a/b/c"
                })
            );
        }
        assert_eq!(decode_record(&WHITEOUT_RECORD), Ok(RecordRef::Whiteout));
        assert_eq!(decode_record(&[9]), Err(DecodeError::UnknownKind(9)));
        assert_eq!(decode_record(&[1, 0]), Err(DecodeError::Truncated));
        assert_eq!(decode_record(&[]), Err(DecodeError::Empty));
    }

    #[test]
    fn rift_paths_are_validated() {
        assert!(is_valid_rift_path(b"a/b\xff/c"));
        for bad in [&b""[..], b"/a", b"a/", b"a//b", b"a/./b", b"../a", b"a\0b"] {
            assert!(!is_valid_rift_path(bad), "{bad:?}");
        }
    }
}
