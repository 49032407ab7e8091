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
/// The sealed manifest.
pub const MANIFEST_NAME: &[u8] = b".xtar-manifest.gz.age";
/// The sealed tree tar, and its copy at the end (the same bytes).
pub const TREE_NAME: &[u8] = b".xtar-tree.tar.gz.age";
/// The copy of the sealed tree tar at the end.
pub const TREE_END_NAME: &[u8] = b".xtar-tree.2.tar.gz.age";
/// The header line that says an archive is encrypted.
pub const SEALED_LINE: &[u8] = b"#sealed age";
/// The header line naming the directory that pack entries unzip into.
pub const DATA_LINE: &[u8] = b"#data ";
/// The usual name of that directory.
pub const DATA_DIR: &[u8] = b".xtar-data";
/// A copy of the age header goes after every this many packs.
pub const AGE_EVERY: u32 = 64;

/// Bytes of the gzip header of a file's plaintext.
pub const GZ_HEAD: usize = 10 + 2 + 4 + 12;
/// Bytes of the gzip trailer.
pub const GZ_TAIL: usize = 8;
const STORED_BLOCK: u64 = 65_535;

/// The gzip header of a file of `size` bytes, CRC-32 `crc`, mtime `mtime`.
pub fn gzip_head(mtime: i64, size: u64, crc: u32) -> [u8; GZ_HEAD] {
    let mut h = [0u8; GZ_HEAD];
    h[..4].copy_from_slice(&[0x1f, 0x8b, 8, 4]); // FLG: FEXTRA only
    let t = u32::try_from(mtime).unwrap_or(0);
    h[4..8].copy_from_slice(&t.to_le_bytes());
    h[8] = 0;
    h[9] = 255;
    h[10..12].copy_from_slice(&16u16.to_le_bytes());
    h[12..14].copy_from_slice(b"X3");
    h[14..16].copy_from_slice(&12u16.to_le_bytes());
    h[16..24].copy_from_slice(&size.to_le_bytes());
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What [`gzip_head`] wrote: (mtime, size, CRC-32), or why it is not one.
pub fn parse_gzip_head(h: &[u8]) -> Result<(i64, u64, u32), &'static str> {
    if h.len() < GZ_HEAD || h[..4] != [0x1f, 0x8b, 8, 4] || h[10..16] != [16, 0, b'X', b'3', 12, 0] {
        return Err("its plaintext does not start with this format's gzip header");
    }
    let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let size = u64::from_le_bytes(h[16..24].try_into().map_err(|_| "short header")?);
    Ok((i64::from(le32(&h[4..8])), size, le32(&h[24..28])))
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

/// Bytes of a file's plaintext.
pub fn plain_len(stored: bool, csize: u64) -> u64 {
    GZ_HEAD as u64 + deflate_len(stored, csize) + GZ_TAIL as u64
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
    fn gzip_head_round_trips() {
        let h = gzip_head(1_600_000_000, 123_456_789_012, 0xdead_beef);
        assert_eq!(parse_gzip_head(&h), Ok((1_600_000_000, 123_456_789_012, 0xdead_beef)));
        assert!(parse_gzip_head(&h[..20]).is_err());
    }
}
