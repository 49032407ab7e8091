//! The version 3 writer: files compressed into a spill file as they come,
//! then written smallest first, in packs of zip entries, after a manifest
//! that already knows every SHA-256, and before the tree tar of everything
//! without data (`docs/format/xtar.md`, version 3).
//!
//! Ordering by stored size needs every file's compressed size before the
//! first pack is written, so compressed data goes to an anonymous spill
//! file next to the output (or in the work directory) and is copied out
//! once, in order. Memory holds only the entries, never the data.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use manifest::{Entry, Kind};

use super::bytes::Out;
use super::large::zip_stream;
use super::tree::{CompressOptions, CompressSummary, TreeSink};
use super::{Stored, Written};
use crate::compress::{Compressed, Encoder};
use crate::format::tar::BLOCK;
use crate::format::zip::{self, EntryInfo, S_IFREG};
use crate::format::{self, gz, FORMAT_VERSION, HEADER_MAGIC};
use crate::{Error, Observer, Result};

/// Entry bytes (local headers and data) of a pack, at most, unless one
/// entry alone is larger.
pub const PACK_BYTES: u64 = 2 << 20;
/// Entries of a pack, at most: stock `unzip` needs a pack's central
/// directory, so damage there costs it the whole pack (pybackup's salvage
/// reads the entries without it).
pub const PACK_FILES: usize = 1024;

/// A regular file whose compressed data waits in the spill file.
struct Spilled {
    entry: Entry,
    /// How its data is stored, its CRC-32 and compressed size.
    method: zip::Method,
    crc: u32,
    csize: u64,
    /// Where its compressed data starts in the spill file.
    at: u64,
    /// Bytes of its local header and data in a pack.
    stored_len: u64,
}

impl Spilled {
    /// Its zip entry (built when written: the entry keeps one copy of the
    /// path).
    fn info(&self) -> EntryInfo {
        EntryInfo {
            name: self.entry.path.clone(),
            method: self.method,
            crc: self.crc,
            csize: self.csize,
            usize: self.entry.size,
            mtime: self.entry.mtime.sec,
            unix_mode: S_IFREG | self.entry.mode,
            zip64: EntryInfo::needs_zip64(self.entry.size),
        }
    }
}

/// Builds a version 3 archive from the calls of [`super::write_entries`].
pub struct PackedWriter {
    out: Out,
    pool: Arc<rayon::ThreadPool>,
    level: u32,
    follow_links: bool,
    root: Vec<u8>,
    spill: BufWriter<File>,
    spill_len: u64,
    spill_path: PathBuf,
    files: Vec<Spilled>,
    /// Everything that is not a regular file with data: directories,
    /// symlinks, hard links, fifos, sockets, devices.
    others: Vec<Entry>,
    summary: CompressSummary,
    /// The mtime of every tar header: the root directory's.
    mtime: Option<i64>,
}

impl PackedWriter {
    /// Starts an archive in `file` (new and empty; `path` names it in
    /// errors), recording `root`. Compressed data is spilled into an
    /// unnamed temporary file in `spill_dir`.
    pub fn new(
        file: &File,
        path: &Path,
        root: &[u8],
        opts: &CompressOptions,
        spill_dir: &Path,
    ) -> Result<PackedWriter> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.jobs.max(1))
            .build()
            .map_err(|e| Error::Write { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
        let spill = tempfile::tempfile_in(spill_dir)
            .map_err(|source| Error::Write { path: spill_dir.to_path_buf(), source })?;
        Ok(PackedWriter {
            out: Out::new(file, path)?,
            pool: Arc::new(pool),
            level: opts.level,
            follow_links: opts.walk.follow_links,
            root: root.to_vec(),
            spill: BufWriter::with_capacity(1 << 20, spill),
            spill_len: 0,
            spill_path: spill_dir.to_path_buf(),
            files: Vec::new(),
            others: Vec::new(),
            summary: CompressSummary::default(),
            mtime: None,
        })
    }

    fn spill_err(&self, source: std::io::Error) -> Error {
        Error::Write { path: self.spill_path.clone(), source }
    }

    fn spill_write(&mut self, b: &[u8]) -> Result<()> {
        self.spill.write_all(b).map_err(|e| self.spill_err(e))?;
        self.spill_len += b.len() as u64;
        Ok(())
    }

    fn stored(&mut self, entry: Entry, info: EntryInfo, at: u64) -> Stored {
        self.summary.files += 1;
        self.summary.bytes_in += entry.size;
        let stored_len = info.local_header().len() as u64 + info.csize;
        let (method, crc, csize) = (info.method, info.crc, info.csize);
        self.files.push(Spilled { entry: entry.clone(), method, crc, csize, at, stored_len });
        Stored { entry, offset: 0, changed: None }
    }

    fn check_path(&self, path: &[u8]) -> Result<()> {
        if self.mtime.is_none() {
            return Err(order(path, "an archive needs its root directory first"));
        }
        format::check_member_path(path).map_err(|reason| Error::WriteOrder { member: lossy(path), reason })
    }

    /// Writes the archive: header, manifest, guard, packs, tree tar and the
    /// end; flushes.
    pub fn finish(mut self) -> Result<Written> {
        let Some(mtime) = self.mtime else {
            return Err(order(b"", "an archive needs its root directory"));
        };
        self.spill.flush().map_err(|e| self.spill_err(e))?;
        let mut files = std::mem::take(&mut self.files);
        // Smallest first, so that damage at the end, where media fail
        // first, costs as few files as the bytes allow (format §3.2).
        files.sort_by(|a, b| {
            a.stored_len.cmp(&b.stored_len).then_with(|| manifest::cmp_paths(&a.entry.path, &b.entry.path))
        });
        let mut others = std::mem::take(&mut self.others);
        others.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));

        // The manifest's order, by reference: the entries are not copied.
        let mut all: Vec<&Entry> = others.iter().chain(files.iter().map(|f| &f.entry)).collect();
        all.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));

        let mut header = format!("{HEADER_MAGIC} {FORMAT_VERSION}\n#root ").into_bytes();
        manifest::escape_path(&mut header, &self.root);
        header.push(b'\n');
        self.out.member(format::HEADER_NAME, &header, mtime, 0o644)?;

        let mut z = Vec::new();
        let mut text = Vec::with_capacity(all.len() * 100);
        manifest::write_header(&mut text, &self.root);
        for e in &all {
            manifest::write_entry_line(&mut text, e);
        }
        self.pool.install(|| gz::compress(&text, &mut z));
        drop(text);
        self.out.member(format::MANIFEST_GZ_NAME, &z, mtime, 0o644)?;
        let manifest_end = self.out.pos;
        let tree = self.pool.install(|| format::tree::write(all.iter().copied()));
        drop(all);
        self.out.member(format::TREE_TAR_NAME, &tree, mtime, 0o644)?;
        // The head guard: no pack within GUARD bytes after the manifest, so
        // that no burst of damage that long takes both copies of a file's
        // line (its zip headers are the second copy). The tree tar fills
        // part of it.
        if let Some(pad) = format::guard_pad(self.out.pos - manifest_end) {
            self.out.member(format::PAD_NAME, &vec![0u8; pad as usize], mtime, 0o644)?;
        }

        let spill = self.spill.get_ref().try_clone().map_err(|e| self.spill_err(e))?;
        let mut k = 0u32;
        let mut start = 0;
        while start < files.len() {
            let mut end = start;
            let mut bytes = 0u64;
            while end < files.len() && end - start < PACK_FILES {
                let len = files[end].stored_len;
                if end > start && bytes + len > PACK_BYTES {
                    break;
                }
                bytes += len;
                end += 1;
            }
            k += 1;
            self.write_pack(k, &files[start..end], &spill, mtime)?;
            start = end;
        }

        let packs_end = self.out.pos;
        // The second copy of the tree tar: tail damage, where media fail
        // first, leaves stock tools the first; head damage this one.
        self.out.member(format::TREE_TAR_END_NAME, &tree, mtime, 0o644)?;
        // The tail guard: the last GUARD bytes hold no pack, so that losing
        // them costs stock tools no pack's central directory.
        let tail = self.out.pos - packs_end + 2 * BLOCK as u64;
        if let Some(pad) = format::guard_pad(tail) {
            self.out.member(format::PAD_NAME, &vec![0u8; pad as usize], mtime, 0o644)?;
        }
        self.out.write(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        self.summary.bytes_out = self.out.pos;
        let mut entries: Vec<Entry> = others.into_iter().chain(files.into_iter().map(|f| f.entry)).collect();
        entries.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        Ok(Written { summary: self.summary, entries, offsets: Default::default() })
    }

    /// Writes pack `k`, the zip of `files`.
    fn write_pack(&mut self, k: u32, files: &[Spilled], spill: &File, mtime: i64) -> Result<()> {
        let mut central = Vec::new();
        let mut offset = 0u64;
        for f in files {
            central.extend_from_slice(&f.info().central_header(offset));
            offset += f.stored_len;
        }
        let trailer = zip::end_records(files.len() as u64, offset, central.len() as u64);
        let len = offset + central.len() as u64 + trailer.len() as u64;
        let mut hdr = Vec::new();
        format::tar::write_member_header(&mut hdr, &format::pack_name(k), len, mtime, 0o644);
        self.out.write(&hdr)?;
        for f in files {
            self.out.write(&f.info().local_header())?;
            self.out.copy_from(spill, &self.spill_path, f.at, f.csize)?;
        }
        self.out.write(&central)?;
        self.out.write(&trailer)?;
        self.out.padding(len)
    }
}

fn order(path: &[u8], reason: &'static str) -> Error {
    Error::WriteOrder { member: lossy(path), reason }
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

impl TreeSink for PackedWriter {
    fn open_dir(&mut self, entry: &Entry) -> Result<()> {
        if entry.path.is_empty() {
            if self.mtime.is_some() {
                return Err(order(b"", "the root directory opens once"));
            }
            self.mtime = Some(entry.mtime.sec);
        } else {
            self.check_path(&entry.path)?;
        }
        self.summary.dirs += 1;
        self.others.push(entry.clone());
        Ok(())
    }

    fn close_dir(&mut self) -> Result<()> {
        Ok(())
    }

    fn add_compressed(&mut self, entry: &Entry, data: &Compressed) -> Result<Stored> {
        self.check_path(&entry.path)?;
        if data.size == 0 {
            // No data: the tree tar holds it, not a pack.
            let mut e = entry.clone();
            e.size = 0;
            e.sha256 = Some(data.sha256);
            self.summary.files += 1;
            self.others.push(e.clone());
            return Ok(Stored { entry: e, offset: 0, changed: None });
        }
        let at = self.spill_len;
        self.spill_write(&data.data)?;
        let mut e = entry.clone();
        e.size = data.size;
        e.sha256 = Some(data.sha256);
        let info = data.entry_info(&e.path, e.mode, e.mtime.sec);
        Ok(self.stored(e, info, at))
    }

    fn add_file(&mut self, entry: &Entry, disk: &Path, obs: &dyn Observer) -> Result<Stored> {
        self.check_path(&entry.path)?;
        let (f, meta) = super::large::open_regular(disk, self.follow_links)?;
        let start = self.spill_len;
        let (pool, level) = (Arc::clone(&self.pool), self.level);
        let s = zip_stream(f, meta, disk, &entry.path, level, &pool, obs, &mut |b| self.spill_write(b))?;
        let local = zip::read_local_header(&mut &s.local_header[..])
            .map_err(|m| Error::Write { path: disk.to_path_buf(), source: std::io::Error::other(m) })?;
        let mut e = entry.clone();
        e.mode = s.mode;
        e.mtime = s.mtime;
        e.size = s.size;
        e.sha256 = Some(s.sha256);
        let info = EntryInfo {
            name: e.path.clone(),
            method: local.method,
            crc: local.crc,
            csize: local.csize,
            usize: local.usize,
            mtime: e.mtime.sec,
            unix_mode: S_IFREG | e.mode,
            zip64: EntryInfo::needs_zip64(local.usize),
        };
        let mut stored = self.stored(e, info, start + local.len);
        stored.changed = s.changed.then(|| disk.to_path_buf());
        Ok(stored)
    }

    fn add_symlink(&mut self, entry: &Entry) -> Result<()> {
        self.check_path(&entry.path)?;
        self.summary.links += 1;
        self.others.push(entry.clone());
        Ok(())
    }

    fn add_record(&mut self, entry: &Entry) -> Result<()> {
        self.check_path(&entry.path)?;
        if entry.kind == Kind::HardLink {
            self.summary.links += 1;
        }
        self.others.push(entry.clone());
        Ok(())
    }

    fn pool(&self) -> Arc<rayon::ThreadPool> {
        Arc::clone(&self.pool)
    }

    fn file_options(&self) -> (u32, bool) {
        (self.level, self.follow_links)
    }

    fn encoder(&self) -> Encoder {
        Encoder::Libdeflate
    }

    fn count_warnings(&mut self, n: u64) {
        self.summary.warnings += n;
    }

    fn path(&self) -> &Path {
        &self.out.path
    }
}
