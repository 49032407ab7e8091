//! The damage-tolerant header scan: an archive file read block by block,
//! trusting no single header. Salvage and the readers of volume sets both
//! walk archives with it (DESIGN: one home for each primitive).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::format::tar::{self as tarfmt, Block, BLOCK};
use crate::{Error, Result};

/// Long names longer than this are not believed.
const MAX_LONG_NAME: u64 = 64 << 10;

/// What one step of the scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// A header block with a valid checksum (a preceding GNU long-name
    /// record, if any, already applied).
    Member(Found),
    /// A block of zeros at this offset.
    Zero(u64),
    /// A block that is no header, at this offset; `zip_start` when it
    /// starts like a zip local header (a member whose tar header was lost).
    Invalid {
        /// Its offset.
        at: u64,
        /// It starts with `PK\x03\x04`.
        zip_start: bool,
    },
}

/// A member header found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Offset of its first block: its long-name record, if it has one.
    pub start: u64,
    /// Offset of its header block.
    pub at: u64,
    /// Offset of its data.
    pub data: u64,
    /// Size of its data, as the header says.
    pub size: u64,
    /// Offset just past its data and padding.
    pub next: u64,
    /// Its name.
    pub name: Vec<u8>,
    /// A regular file (type `0`), the only type xtar writes.
    pub regular: bool,
    /// Its data lies within the file.
    pub fits: bool,
}

/// Reads an archive file block by block. The caller decides, for each
/// member found, whether to skip its data ([`seek_to`](Self::seek_to)
/// `found.next`), read it (through [`Read`]) or step into it (do
/// nothing: the next block is the first inside a container).
pub struct BlockScan {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
    path: PathBuf,
    /// A long name read, the offset where it ends and where its record
    /// started.
    long: Option<(Vec<u8>, u64, u64)>,
}

impl BlockScan {
    /// Scans the open file `file` of `len` bytes, named `path` in errors.
    pub fn new(file: File, len: u64, path: &Path) -> BlockScan {
        BlockScan { inner: BufReader::with_capacity(1 << 20, file), pos: 0, len, path: path.to_path_buf(), long: None }
    }

    /// Opens the file at `path` for a scan.
    pub fn open(path: &Path) -> Result<BlockScan> {
        let read_err = |source| Error::Read { path: path.to_path_buf(), source };
        let f = File::open(path).map_err(read_err)?;
        let len = f.metadata().map_err(read_err)?.len();
        Ok(BlockScan::new(f, len, path))
    }

    /// The offset of the next byte read.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn err(&self, offset: u64, source: io::Error) -> Error {
        Error::ReadArchive { path: self.path.clone(), offset, source }
    }

    /// Moves to offset `to`.
    pub fn seek_to(&mut self, to: u64) -> Result<()> {
        let delta = i64::try_from(to)
            .map_err(io::Error::other)
            .and_then(|to| i64::try_from(self.pos).map(|p| to - p).map_err(io::Error::other));
        match delta.and_then(|d| self.inner.seek_relative(d)) {
            Ok(()) => {
                self.pos = to;
                Ok(())
            }
            Err(e) => Err(self.err(to, e)),
        }
    }

    /// Reads at most `n` bytes.
    pub fn read_up_to(&mut self, n: u64) -> Result<Vec<u8>> {
        let at = self.pos;
        let mut v = Vec::new();
        self.take(n).read_to_end(&mut v).map_err(|e| self.err(at, e))?;
        Ok(v)
    }

    /// The next block: a member header, zeros or junk; `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<Scanned>> {
        loop {
            if self.pos + BLOCK as u64 > self.len {
                return Ok(None);
            }
            let at = self.pos;
            let mut block = [0u8; BLOCK];
            self.read_exact(&mut block).map_err(|e| self.err(at, e))?;
            let h = match tarfmt::parse_block(&block) {
                Block::Header(h) => h,
                Block::Zero => return Ok(Some(Scanned::Zero(at))),
                Block::Invalid => {
                    return Ok(Some(Scanned::Invalid { at, zip_start: block.starts_with(b"PK\x03\x04") }))
                }
            };
            let data = self.pos;
            let fits = h.size <= self.len - data;
            let next = data + h.size + tarfmt::padding(h.size) as u64;
            if h.is_long_name() {
                if h.size <= MAX_LONG_NAME && fits {
                    let mut name = self.read_up_to(h.size)?;
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    self.seek_to(next)?;
                    self.long = Some((name, next, at));
                }
                continue;
            }
            let (name, start) = match self.long.take() {
                Some((n, expected_at, start)) if expected_at == at => (n, start),
                _ => (h.name.clone(), at),
            };
            return Ok(Some(Scanned::Member(Found {
                start,
                at,
                data,
                size: h.size,
                next,
                name,
                regular: h.is_regular(),
                fits,
            })));
        }
    }
}

impl Read for BlockScan {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn member(out: &mut Vec<u8>, name: &[u8], data: &[u8]) {
        tarfmt::write_member_header(out, name, data.len() as u64, 0, 0o644);
        out.extend_from_slice(data);
        out.resize(out.len() + tarfmt::padding(data.len() as u64), 0);
    }

    #[test]
    fn finds_members_past_damage_with_long_names() {
        let mut bytes = Vec::new();
        member(&mut bytes, b"a.zip", b"PK\x03\x04 not really");
        bytes.extend_from_slice(&[0x5a; BLOCK]); // junk
        let long = vec![b'n'; 300];
        member(&mut bytes, &long, b"x");
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.tar");
        std::fs::write(&p, &bytes).unwrap();
        let mut s = BlockScan::open(&p).unwrap();
        let mut seen = Vec::new();
        while let Some(x) = s.next_block().unwrap() {
            if let Scanned::Member(f) = &x {
                s.seek_to(f.next).unwrap();
            }
            seen.push(x);
        }
        assert!(matches!(&seen[0], Scanned::Member(f) if f.name == b"a.zip" && f.fits && f.regular));
        assert_eq!(seen[1], Scanned::Invalid { at: 1024, zip_start: false });
        assert!(matches!(&seen[2], Scanned::Member(f) if f.name == long && f.size == 1 && f.start == 1536));
        assert_eq!(seen.len(), 3);
    }
}
