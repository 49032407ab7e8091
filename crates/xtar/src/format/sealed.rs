//! Encrypted version 3 archives (`docs/format/xtar.md`, §A9): the bytes
//! of a file's plaintext before it is sealed, and the names and lines that
//! only encrypted archives have.
//!
//! A file's plaintext is one gzip member (RFC 1952) of its zip data: a
//! header with the file's mtime and an extra field giving its size and
//! CRC-32 up front, the raw deflate stream (stored data wrapped in stored
//! deflate blocks), and the usual trailer. `gzip -dN` restores its content
//! and mtime; a reader rebuilds the zip local header of the plain format
//! from it, so that the rest of the reader does not know the difference.

/// The member holding the archive's age header.
pub const AGE_NAME: &[u8] = b".xtar-age";
/// The header line giving the number of manifest and tree tar pieces.
pub const PIECES_LINE: &[u8] = b"#pieces ";

/// A member only encrypted archives have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealedMember {
    /// `.xtar-age`: a copy of the age header.
    Age,
    /// `.xtar-manifest.NNNNNN.gz.age`: piece N (from 1) of the manifest.
    Manifest(u32),
    /// `.xtar-names.NNNNNN.tar.gz.age`: piece N of the names tar (the hard
    /// links from files' paths to their numbers, for stock tools).
    Names(u32),
    /// `.xtar-tree.NNNNNN.tar.gz.age`: piece N of the tree tar.
    Tree(u32),
    /// `.xtar-tree-end.NNNNNN.tar.gz.age`: its copy at the end (the same
    /// bytes, sealed under the first copy's name).
    TreeEnd(u32),
}

impl SealedMember {
    /// The member's name.
    pub fn name(self) -> Vec<u8> {
        match self {
            SealedMember::Age => AGE_NAME.to_vec(),
            SealedMember::Manifest(i) => format!(".xtar-manifest.{i:06}.gz.age").into_bytes(),
            SealedMember::Names(i) => format!(".xtar-names.{i:06}.tar.gz.age").into_bytes(),
            SealedMember::Tree(i) => format!(".xtar-tree.{i:06}.tar.gz.age").into_bytes(),
            SealedMember::TreeEnd(i) => format!(".xtar-tree-end.{i:06}.tar.gz.age").into_bytes(),
        }
    }

    /// The name its payload is sealed under (a tree piece's copy: the
    /// first copy's).
    pub fn sealed_as(self) -> Vec<u8> {
        match self {
            SealedMember::TreeEnd(i) => SealedMember::Tree(i).name(),
            other => other.name(),
        }
    }

    /// The member a name is, if any.
    pub fn parse(name: &[u8]) -> Option<SealedMember> {
        if name == AGE_NAME {
            return Some(SealedMember::Age);
        }
        let numbered = |prefix: &[u8], suffix: &[u8]| -> Option<u32> {
            let d = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            if d.len() < 6 || !d.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(d).ok()?.parse().ok().filter(|&i| i > 0)
        };
        numbered(b".xtar-manifest.", b".gz.age")
            .map(SealedMember::Manifest)
            .or_else(|| numbered(b".xtar-names.", b".tar.gz.age").map(SealedMember::Names))
            .or_else(|| numbered(b".xtar-tree.", b".tar.gz.age").map(SealedMember::Tree))
            .or_else(|| numbered(b".xtar-tree-end.", b".tar.gz.age").map(SealedMember::TreeEnd))
    }
}

/// Bytes of tar in a piece of the names tar: large, since only stock
/// tools need it (pybackup reads each file's name from its plaintext).
pub const NAMES_PIECE: usize = 1 << 20;

/// The numbers of manifest, names and tree tar pieces a header gives.
pub fn pieces(header: &[u8]) -> Option<(u32, u32, u32)> {
    let line = header.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(PIECES_LINE))?;
    let text = std::str::from_utf8(line).ok()?;
    let mut w = text.split(' ');
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}
/// The header line that says an archive is encrypted.
pub const SEALED_LINE: &[u8] = b"#sealed age";
/// The header line naming the directory that pack entries unzip into.
pub const DATA_LINE: &[u8] = b"#data ";
/// The usual name of that directory.
pub const DATA_DIR: &[u8] = b".xtar-data";
/// A copy of the age header goes after every this many packs.
pub const AGE_EVERY: u32 = 64;

/// Bytes of the fixed part of a file's gzip header: the gzip fields, XLEN
/// and the `X3` subfield.
pub const GZ_FIXED: usize = 10 + 2 + 4 + 12;
/// Bytes of the gzip trailer.
pub const GZ_TAIL: usize = 8;
/// Paths longer than this have no `XP` subfield (the gzip header must fit
/// in the first 64 KiB chunk).
pub const MAX_OWN_PATH: usize = 60_000;
const STORED_BLOCK: u64 = 65_535;

/// What a file's gzip header tells of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnHead {
    /// Its mtime, seconds (0 when out of 0 … 2^32−1).
    pub mtime: i64,
    /// Its size.
    pub size: u64,
    /// The CRC-32 of its content.
    pub crc: u32,
    /// Its permission bits, mtime nanoseconds and path, from the `XP`
    /// subfield (absent for paths over [`MAX_OWN_PATH`] bytes).
    pub own: Option<(u32, u32, Vec<u8>)>,
    /// Bytes of the header.
    pub len: usize,
}

/// Bytes of the gzip header of a file whose path is `path_len` bytes.
pub fn head_len(path_len: usize) -> usize {
    GZ_FIXED + if path_len <= MAX_OWN_PATH { 4 + 8 + path_len } else { 0 }
}

/// The gzip header of a file: mtime in MTIME, and in the extra field the
/// subfield `X3` (size, CRC-32) and the subfield `XP` (mode, mtime
/// nanoseconds, path), so that each file's plaintext names it.
pub fn gzip_head(mtime: i64, nsec: u32, mode: u32, size: u64, crc: u32, path: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(head_len(path.len()));
    h.extend_from_slice(&[0x1f, 0x8b, 8, 4]); // FLG: FEXTRA only
    h.extend_from_slice(&u32::try_from(mtime).unwrap_or(0).to_le_bytes());
    h.extend_from_slice(&[0, 255]);
    let xlen = head_len(path.len()) - 12;
    h.extend_from_slice(&(xlen as u16).to_le_bytes());
    h.extend_from_slice(b"X3");
    h.extend_from_slice(&12u16.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&crc.to_le_bytes());
    if path.len() <= MAX_OWN_PATH {
        h.extend_from_slice(b"XP");
        h.extend_from_slice(&((8 + path.len()) as u16).to_le_bytes());
        h.extend_from_slice(&mode.to_le_bytes());
        h.extend_from_slice(&nsec.to_le_bytes());
        h.extend_from_slice(path);
    }
    h
}

/// What [`gzip_head`] wrote, or why it is not one.
pub fn parse_gzip_head(h: &[u8]) -> Result<OwnHead, &'static str> {
    let bad = "its plaintext does not start with this format's gzip header";
    if h.len() < GZ_FIXED || h[..4] != [0x1f, 0x8b, 8, 4] || h[12..16] != [b'X', b'3', 12, 0] {
        return Err(bad);
    }
    let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let xlen = usize::from(u16::from_le_bytes([h[10], h[11]]));
    let len = 12 + xlen;
    if xlen < 16 || h.len() < len {
        return Err(bad);
    }
    let size = u64::from_le_bytes(h[16..24].try_into().map_err(|_| bad)?);
    let own = if xlen > 16 {
        let x = &h[28..len];
        if x.len() < 12 || &x[..2] != b"XP" || usize::from(u16::from_le_bytes([x[2], x[3]])) != x.len() - 4 {
            return Err(bad);
        }
        Some((le32(&x[4..8]), le32(&x[8..12]), x[12..].to_vec()))
    } else {
        None
    };
    Ok(OwnHead { mtime: i64::from(le32(&h[4..8])), size, crc: le32(&h[24..28]), own, len })
}

/// The gzip trailer of a file of `size` bytes, CRC-32 `crc`.
pub fn gzip_tail(size: u64, crc: u32) -> [u8; GZ_TAIL] {
    let mut t = [0u8; GZ_TAIL];
    t[..4].copy_from_slice(&crc.to_le_bytes());
    t[4..].copy_from_slice(&(size as u32).to_le_bytes());
    t
}

/// Bytes of the deflate stream of zip data of `csize` bytes: itself when
/// deflated, wrapped in stored blocks (5 bytes each, at most 65,535 bytes
/// of data) when stored.
pub fn deflate_len(stored: bool, csize: u64) -> u64 {
    if stored {
        csize + 5 * csize.div_ceil(STORED_BLOCK).max(1)
    } else {
        csize
    }
}

/// Bytes of a file's plaintext (its path `path_len` bytes).
pub fn plain_len(stored: bool, csize: u64, path_len: usize) -> u64 {
    head_len(path_len) as u64 + deflate_len(stored, csize) + GZ_TAIL as u64
}

/// Wraps stored bytes into deflate stored blocks as they come.
pub struct StoredBlocks {
    left: u64,
    in_block: u64,
}

impl StoredBlocks {
    /// For `csize` bytes of stored data.
    pub fn new(csize: u64) -> StoredBlocks {
        StoredBlocks { left: csize, in_block: 0 }
    }

    /// Appends `data` (the next bytes) to `out`, with block headers.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if self.left == 0 && self.in_block == 0 && data.is_empty() {
            // Empty stored data: one empty final block.
            out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
            return;
        }
        while !data.is_empty() {
            if self.in_block == 0 {
                let n = self.left.min(STORED_BLOCK);
                let last = n == self.left;
                out.push(u8::from(last));
                out.extend_from_slice(&(n as u16).to_le_bytes());
                out.extend_from_slice(&(!(n as u16)).to_le_bytes());
                self.in_block = n;
            }
            let k = (self.in_block.min(data.len() as u64)) as usize;
            out.extend_from_slice(&data[..k]);
            data = &data[k..];
            self.in_block -= k as u64;
            self.left -= k as u64;
        }
    }
}

/// The pack entry name of the `id`-th file (from 1): its number.
pub fn entry_name(id: u64) -> Vec<u8> {
    id.to_string().into_bytes()
}

/// The number of a pack entry name, if it is one.
pub fn entry_id(name: &[u8]) -> Option<u64> {
    if name.is_empty() || name.len() > 19 || !name.iter().all(u8::is_ascii_digit) || name[0] == b'0' {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn stored_blocks_inflate_back() {
        for len in [0usize, 1, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let mut w = StoredBlocks::new(len as u64);
            let mut out = Vec::new();
            if len == 0 {
                w.push(&[], &mut out);
            }
            for piece in data.chunks(1000) {
                w.push(piece, &mut out);
            }
            assert_eq!(out.len() as u64, deflate_len(true, len as u64), "{len}");
            let mut back = Vec::new();
            flate2::read::DeflateDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn member_names_round_trip() {
        for m in [
            SealedMember::Age,
            SealedMember::Manifest(3),
            SealedMember::Names(2),
            SealedMember::Tree(1),
            SealedMember::TreeEnd(123_456),
        ] {
            assert_eq!(SealedMember::parse(&m.name()), Some(m));
        }
        assert_eq!(SealedMember::TreeEnd(7).sealed_as(), SealedMember::Tree(7).name());
        assert_eq!(SealedMember::parse(b".xtar-tree.000000.tar.gz.age"), None);
        assert_eq!(SealedMember::parse(b".xtar-manifest.gz"), None);
        assert_eq!(pieces(b"#xtar 4\n#sealed age\n#pieces 12 3 340\n"), Some((12, 3, 340)));
    }

    #[test]
    fn gzip_head_round_trips() {
        let h = gzip_head(1_600_000_000, 7, 0o4755, 123_456_789_012, 0xdead_beef, b"dir/file name");
        assert_eq!(h.len(), head_len(13));
        let p = parse_gzip_head(&h).unwrap();
        assert_eq!((p.mtime, p.size, p.crc, p.len), (1_600_000_000, 123_456_789_012, 0xdead_beef, h.len()));
        assert_eq!(p.own, Some((0o4755, 7, b"dir/file name".to_vec())));
        assert!(parse_gzip_head(&h[..20]).is_err());
        let long = vec![b'a'; MAX_OWN_PATH + 1];
        let h = gzip_head(1, 0, 0o644, 5, 6, &long);
        assert_eq!(parse_gzip_head(&h).unwrap().own, None);
    }
}
