//! The byte writer: a buffered output that knows its position, patches
//! bytes already written (container sizes, zip headers) and can drop a
//! member it could not finish.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::format;
use crate::format::tar::{self as tarfmt, BLOCK};
use crate::format::zip::EntryInfo;
use crate::{Error, Result};

pub(crate) struct Out {
    w: BufWriter<File>,
    pub(crate) pos: u64,
    pub(crate) path: PathBuf,
}

impl Out {
    /// Writes from the start of `file`, which must be new and empty,
    /// through a handle of its own.
    pub(crate) fn new(file: &File, path: &Path) -> Result<Out> {
        let own = file.try_clone().map_err(|source| Error::Write { path: path.to_path_buf(), source })?;
        Ok(Out { w: BufWriter::with_capacity(1 << 20, own), pos: 0, path: path.to_path_buf() })
    }

    pub(crate) fn err(&self, source: std::io::Error) -> Error {
        Error::Write { path: self.path.clone(), source }
    }

    pub(crate) fn write(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(|e| self.err(e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Overwrites bytes at `at`, before the current position.
    pub(crate) fn patch(&mut self, at: u64, b: &[u8]) -> Result<()> {
        self.w.flush().map_err(|e| self.err(e))?;
        self.w.get_ref().write_all_at(b, at).map_err(|e| self.err(e))
    }

    /// Drops everything written from `at` on (a member that could not be
    /// finished), so the archive never holds a half member.
    pub(crate) fn truncate(&mut self, at: u64) -> Result<()> {
        self.w.flush().map_err(|e| self.err(e))?;
        self.w.get_ref().set_len(at).map_err(|e| self.err(e))?;
        self.w.get_mut().seek(SeekFrom::Start(at)).map_err(|e| self.err(e))?;
        self.pos = at;
        Ok(())
    }

    /// Copies `len` bytes at `at` of another file.
    pub(crate) fn copy_from(&mut self, f: &dyn fsutil::Source, path: &Path, at: u64, len: u64) -> Result<()> {
        let mut buf = vec![0u8; len.min(1 << 20) as usize];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            f.read_exact_at(&mut buf[..n], at + done).map_err(|source| Error::ReadArchive {
                path: path.to_path_buf(),
                offset: at + done,
                source,
            })?;
            self.write(&buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    /// A whole member from memory.
    pub(crate) fn member(&mut self, name: &[u8], data: &[u8], mtime: i64, mode: u32) -> Result<()> {
        let mut hdr = Vec::new();
        tarfmt::write_member_header(&mut hdr, name, data.len() as u64, mtime, mode);
        self.write(&hdr)?;
        self.write(data)?;
        self.padding(data.len() as u64)
    }

    /// The zero bytes that round a member of `len` bytes up to a block.
    pub(crate) fn padding(&mut self, len: u64) -> Result<()> {
        self.write(&[0u8; BLOCK][..tarfmt::padding(len)])
    }

    /// Writes the header of a member whose size is not known yet; returns
    /// where its last header block is and that block, for
    /// [`Out::patch_header`].
    pub(crate) fn open_header(&mut self, name: &[u8], mtime: i64, mode: u32) -> Result<(u64, [u8; BLOCK])> {
        let mut hdr = Vec::new();
        let at = tarfmt::write_member_header(&mut hdr, name, 0, mtime, mode);
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(&hdr[at..at + BLOCK]);
        let header_pos = self.pos + at as u64;
        self.write(&hdr)?;
        Ok((header_pos, block))
    }

    /// Sets the size of a member opened with [`Out::open_header`].
    pub(crate) fn patch_header(&mut self, header_pos: u64, mut block: [u8; BLOCK], size: u64) -> Result<()> {
        tarfmt::patch_size(&mut block, size);
        self.patch(header_pos, &block)
    }

    /// A file member: tar header, zip local header, data, zip trailer.
    pub(crate) fn zip_member(&mut self, info: &EntryInfo, data: &[u8], mtime: i64) -> Result<()> {
        let local = info.local_header();
        let trailer = info.trailer();
        let len = local.len() as u64 + info.csize + trailer.len() as u64;
        let mut hdr = Vec::new();
        tarfmt::write_member_header(&mut hdr, &format::file_member_name(&info.name), len, mtime, 0o644);
        self.write(&hdr)?;
        self.write(&local)?;
        self.write(data)?;
        self.write(&trailer)?;
        self.padding(len)
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| self.err(e))
    }
}
