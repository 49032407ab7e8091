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
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use manifest::{Entry, Kind};

use super::bytes::Out;
use super::large::zip_stream;
use super::place;
use super::tree::{Codec, CompressOptions, CompressSummary, TreeSink};
use super::{Stored, Written};
use crate::codec::{self, ZstdEncoder};
use crate::compress::{Compressed, Encoder};
use crate::format::tar::BLOCK;
use crate::format::zip::{self, EntryInfo, S_IFREG};
use crate::format::{self, gz, sealed, HEADER_MAGIC};
use crate::{Error, Observer, Result};
use keys::seal::{self, ArchiveKey};

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
    /// Version 5: its data is zstd frames, stored as `PATH.zst`.
    zstd: bool,
}

impl Spilled {
    /// Its zip entry (built when written: the entry keeps one copy of the
    /// path).
    fn info(&self) -> EntryInfo {
        let (name, usize) = zip_name(&self.entry, self.zstd, self.csize);
        EntryInfo {
            name,
            method: self.method,
            crc: self.crc,
            csize: self.csize,
            usize,
            mtime: self.entry.mtime.sec,
            unix_mode: S_IFREG | self.entry.mode,
            zip64: EntryInfo::needs_zip64(self.entry.size),
        }
    }
}

/// A member added after the packs ([`PackedWriter::finish_with`]).
pub enum Extra {
    /// Its bytes.
    Bytes(Vec<u8>),
    /// The first `len` bytes of a file (a text too large to hold in
    /// memory).
    File(File, u64),
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
    /// The key of an encrypted archive (§A9).
    seal: Option<Arc<ArchiveKey>>,
    /// Version 5: the zstd encoder, with the tree's dictionary once
    /// [`PackedWriter::train`] made it.
    zstd: Option<Arc<ZstdEncoder>>,
    /// Versions 5 and 6: a copy of the dictionary as stored (§A11).
    dict_copy: Vec<u8>,
}

/// The zip name and "uncompressed size" of file `e`'s entry: for zstd
/// frames (version 5), `PATH.zst` and the frames' size, so that `unzip`
/// gives the frames for `zstd -d`.
fn zip_name(e: &Entry, zstd: bool, csize: u64) -> (Vec<u8>, u64) {
    if zstd {
        ([&e.path[..], codec::ZIP_SUFFIX].concat(), csize)
    } else {
        (e.path.clone(), e.size)
    }
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
        let seal = if opts.recipients.is_empty() {
            None
        } else {
            let encrypted = |e: seal::SealError| Error::Encrypted { path: path.to_path_buf(), message: e.to_string() };
            Some(Arc::new(
                ArchiveKey::new(&seal::parse_recipients(&opts.recipients).map_err(encrypted)?).map_err(encrypted)?,
            ))
        };
        let zstd = match (opts.codec, &seal) {
            (Codec::Deflate, _) => None,
            (Codec::Zstd, None) => Some(Arc::new(
                ZstdEncoder::new(Vec::new(), opts.level)
                    .map_err(|source| Error::Write { path: path.to_path_buf(), source })?,
            )),
            (Codec::Zstd, Some(_)) => {
                return Err(Error::Encrypted {
                    path: path.to_path_buf(),
                    message: "zstd archives are not encrypted (format version 6 has no encrypted form); \
                              leave out --codec zstd or the recipients"
                        .into(),
                })
            }
        };
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
            seal,
            zstd,
            dict_copy: Vec::new(),
        })
    }

    /// Versions 5 and 6: makes the dictionary of a sample of the small
    /// files of `entries` (a walk of `src`, in its order: the sample, and
    /// so the archive, is the same for the same tree), before any file is
    /// added: every k-th file of 1 byte to 128 KiB, k the largest whose
    /// files hold [`codec::dict_target`] bytes (§A11).
    pub fn train(&mut self, src: &Path, entries: &[walk::Entry]) -> Result<()> {
        if self.zstd.is_none() {
            return Ok(());
        }
        let small: Vec<&walk::Entry> = entries
            .iter()
            .filter(|e| e.kind == walk::Kind::File && e.meta.size > 0 && e.meta.size <= codec::SAMPLE_FILE_MAX)
            .collect();
        let total: u64 = small.iter().map(|e| e.meta.size).sum();
        let target = codec::dict_target(total);
        if target < codec::DICT_MIN as u64 {
            return Ok(());
        }
        // Every k-th small file, so that the sample spreads over the tree:
        // the largest k whose files hold the target (the first of them may
        // be small files, which a k from the mean size would not fill).
        let sum = |k: usize| small.iter().step_by(k).map(|e| e.meta.size).sum::<u64>();
        let mut k = usize::try_from(total.div_ceil(target)).unwrap_or(1).max(1);
        while k > 1 && sum(k) < target {
            k -= 1;
        }
        let picked: Vec<std::path::PathBuf> = small.iter().step_by(k).map(|e| walk::join(src, &e.path)).collect();
        let follow = self.follow_links;
        let samples: Vec<Vec<u8>> = self.pool.install(|| {
            use rayon::prelude::*;
            picked
                .par_iter()
                .map(|p| {
                    super::large::open_regular(p, follow)
                        .ok()
                        .and_then(|(f, _)| {
                            let mut v = Vec::new();
                            f.take(codec::SAMPLE_FILE_MAX).read_to_end(&mut v).ok().map(|_| v)
                        })
                        .unwrap_or_default()
                })
                .collect()
        });
        let Some(dict) = codec::sampled_dictionary(&samples, target) else { return Ok(()) };
        let copy = codec::dict_frame(&dict).map_err(|e| self.spill_err(e))?;
        let enc = ZstdEncoder::new(dict, self.level).map_err(|e| self.spill_err(e))?;
        self.zstd = Some(Arc::new(enc));
        self.dict_copy = codec::dict_copy(&copy);
        Ok(())
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
        let zstd = self.zstd.is_some();
        self.files.push(Spilled { entry: entry.clone(), method, crc, csize, at, stored_len, zstd });
        Stored { entry, offset: 0, changed: None }
    }

    fn check_path(&self, path: &[u8]) -> Result<()> {
        if self.mtime.is_none() {
            return Err(order(path, "an archive needs its root directory first"));
        }
        format::check_member_path(path).map_err(|reason| Error::WriteOrder { member: lossy(path), reason })
    }

    /// Adds a regular file whose data is already compressed as a zip
    /// entry's: `local` is that entry's local header (its method, CRC-32,
    /// sizes) and `data` gives its `local.csize` bytes, copied as they are
    /// (a file moved from another version 3 or 4 archive, which `forget`
    /// does). `entry` gives its path, mode, mtime and SHA-256.
    pub fn add_zip_data(
        &mut self,
        entry: &Entry,
        local: &zip::LocalHeader,
        data: &mut dyn std::io::Read,
    ) -> Result<Stored> {
        self.check_path(&entry.path)?;
        let at = self.spill_len;
        let copied = std::io::copy(&mut std::io::Read::take(data, local.csize), &mut self.spill)
            .map_err(|e| self.spill_err(e))?;
        self.spill_len += copied;
        if copied != local.csize {
            return Err(Error::Member {
                member: lossy(&entry.path),
                message: format!("its data ends after {copied} of {} bytes", local.csize),
            });
        }
        let mut e = entry.clone();
        e.size = local.usize;
        let info = entry_info(&e, local);
        Ok(self.stored(e, info, at))
    }

    /// Writes the archive: header, manifest, guard, packs, tree tar and the
    /// end; flushes.
    pub fn finish(self) -> Result<Written> {
        self.finish_with(|_| Ok(Vec::new()))
    }

    /// Like [`PackedWriter::finish`], with members of the caller's after
    /// the packs: `extras` is given what was written so far (every file
    /// with the offset of its pack entry's local header) and returns the
    /// members, `(name, bytes)`, each written as it is (a backup set's
    /// record and keyring). Readers skip members they do not know (§A1).
    pub fn finish_with(mut self, extras: impl FnOnce(&Written) -> Result<Vec<(Vec<u8>, Extra)>>) -> Result<Written> {
        let Some(root_mtime) = self.mtime else {
            return Err(order(b"", "an archive needs its root directory"));
        };
        // An encrypted archive shows no time of the tree (§A9).
        let mtime = if self.seal.is_some() { 0 } else { root_mtime };
        self.spill.flush().map_err(|e| self.spill_err(e))?;
        let mut files = std::mem::take(&mut self.files);
        if self.seal.is_some() {
            for f in &mut files {
                f.stored_len = sealed_payload_len(f);
            }
        }
        // Smallest first, so that damage at the end, where media fail
        // first, costs as few files as the bytes allow (format §3.2).
        files.sort_by(|a, b| {
            a.stored_len.cmp(&b.stored_len).then_with(|| manifest::cmp_paths(&a.entry.path, &b.entry.path))
        });
        let mut others = std::mem::take(&mut self.others);
        others.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        // Encrypted: each file's entry is named by its number, and the tree
        // tar links its path to that name in the data directory.
        let data_dir = self.data_dir(&others);
        if self.seal.is_some() {
            for (i, f) in files.iter_mut().enumerate() {
                let id = i as u64 + 1;
                f.stored_len = sealed_info(id, f.stored_len, 0).local_header().len() as u64 + f.stored_len;
            }
        }
        let packs = cut_packs(&files);
        // Version 5: copies 3 and 4 of the dictionary before the packs a
        // third and two thirds of the way.
        let dict = self.zstd.as_ref().map(|z| z.dict().to_vec()).unwrap_or_default();
        let dict_copy = std::mem::take(&mut self.dict_copy);
        let n = packs.len() as u32;
        let among = if dict.is_empty() { [0, 0] } else { [n / 3 + 1, 2 * n / 3 + 1] };
        // Each pack's entries placed against sectors (A2), and where each
        // pack's tar header will be, from the end of the head guard.
        let before = |k: u32| -> u64 {
            match &self.seal {
                Some(key) if k.is_multiple_of(sealed::AGE_EVERY) => member_len(key.header().len() as u64),
                Some(_) => 0,
                None => among.iter().filter(|&&at| at == k).count() as u64 * member_len(dict_copy.len() as u64),
            }
        };
        let placed = place_packs(&mut files, &packs, self.seal.is_some(), &self.pool, before);

        // The manifest's order, by reference: the entries are not copied.
        let mut all: Vec<&Entry> = others.iter().chain(files.iter().map(|f| &f.entry)).collect();
        all.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        // Encrypted, each file's link to its number, in path order (the
        // order of `all`; a file is known by its entry's address).
        let mut links = Vec::new();
        if self.seal.is_some() {
            let ids: std::collections::HashMap<*const Entry, u64> =
                files.iter().enumerate().map(|(i, f)| (&f.entry as *const Entry, i as u64 + 1)).collect();
            for e in &all {
                let Some(&id) = ids.get(&(*e as *const Entry)) else { continue };
                let target = [&data_dir[..], b"/", &sealed::entry_name(id)].concat();
                let mut link = Entry::dir(e.path.clone(), e.mode, e.mtime);
                link.kind = Kind::HardLink;
                link.target = Some(target);
                links.push(link);
            }
        }

        let mut text = Vec::with_capacity(all.len() * 100);
        manifest::write_header(&mut text, &self.root);
        for e in &all {
            manifest::write_entry_line(&mut text, e);
        }
        let manifest_pieces = self.pool.install(|| gz::compress_each(&text));
        drop(text);
        // Encrypted: the links from files' paths to their numbers make a
        // names tar of their own (stock tools need it, pybackup does not:
        // each file names itself), at the head only; the tree tar holds
        // the rest: the further names of hard links to those files, then
        // directories, symlinks and empty files, then the further names of
        // empty files. No name is made in a directory after its mtime.
        let (names_pieces, tree_pieces) = if self.seal.is_some() {
            let with_data: std::collections::HashSet<&[u8]> = links.iter().map(|l| &l.path[..]).collect();
            let to_data = |e: &&Entry| e.target.as_deref().is_some_and(|t| with_data.contains(t));
            let hard = others.iter().filter(|e| e.kind == Kind::HardLink);
            let ordered = hard
                .clone()
                .filter(to_data)
                .chain(others.iter().filter(|e| format::tree::holds(e) && e.kind != Kind::HardLink))
                .chain(hard.filter(|e| !to_data(e)));
            // One tar header per file, for stock tools only: compressed
            // at a faster level than the rest of the metadata.
            let names = self.pool.install(|| {
                format::tree::write_members_at(links.iter(), sealed::NAMES_PIECE, false, Some(NAMES_LEVEL))
            });
            (names, self.pool.install(|| format::tree::write_members(ordered)))
        } else {
            (Vec::new(), vec![self.pool.install(|| format::tree::write(all.iter().copied()))])
        };
        drop(all);
        drop(links);

        let version = if self.seal.is_some() {
            format::SEALED_VERSION
        } else if self.zstd.is_some() {
            format::ZSTD_FRAMED_DICT_VERSION
        } else {
            format::PACKED_VERSION
        };
        let mut header = format!("{HEADER_MAGIC} {version}\n").into_bytes();
        if self.seal.is_some() {
            let pieces = format!("{} {} {}", manifest_pieces.len(), names_pieces.len(), tree_pieces.len()).into_bytes();
            for line in [
                sealed::SEALED_LINE,
                &[sealed::DATA_LINE, &data_dir[..]].concat(),
                &[sealed::PIECES_LINE, &pieces[..]].concat(),
            ] {
                header.extend_from_slice(line);
                header.push(b'\n');
            }
        } else {
            header.extend_from_slice(b"#root ");
            manifest::escape_path(&mut header, &self.root);
            header.push(b'\n');
        }
        // Version 5: the dictionary's SHA-256 (`-`: none), and the
        // dictionary itself in four copies: after the header, among the
        // packs twice, and at the end (§A11).
        if self.zstd.is_some() {
            header.extend_from_slice(&format::zstd_dict_line(&dict));
            header.push(b'\n');
        }
        self.out.member(format::HEADER_NAME, &header, mtime, 0o644)?;
        // Written even when empty (no dictionary): its name tells a reader
        // whose header was lost that entries are zstd frames.
        if self.zstd.is_some() {
            self.out.member(format::ZSTD_DICT_NAME, &dict_copy, mtime, 0o644)?;
        }
        if let Some(key) = &self.seal {
            let h = key.header().to_vec();
            self.out.member(sealed::AGE_NAME, &h, mtime, 0o644)?;
        }

        // Encrypted, the manifest and the tree tar are a member per gzip
        // member, each sealed on its own: damage costs the lines of the
        // pieces it touches, as unencrypted, not a 64 KiB chunk of them.
        let tree_members: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = if self.seal.is_some() {
            for (i, z) in manifest_pieces.iter().enumerate() {
                let m = sealed::SealedMember::Manifest(i as u32 + 1);
                let z = self.sealed_meta(&m.sealed_as(), z)?;
                self.out.member(&m.name(), &z, mtime, 0o644)?;
            }
            for (i, n) in names_pieces.iter().enumerate() {
                let m = sealed::SealedMember::Names(i as u32 + 1);
                let n = self.sealed_meta(&m.sealed_as(), n)?;
                self.out.member(&m.name(), &n, mtime, 0o644)?;
            }
            let mut v = Vec::with_capacity(tree_pieces.len());
            for (i, t) in tree_pieces.iter().enumerate() {
                let (head, end) =
                    (sealed::SealedMember::Tree(i as u32 + 1), sealed::SealedMember::TreeEnd(i as u32 + 1));
                v.push((head.name(), end.name(), self.sealed_meta(&head.sealed_as(), t)?));
            }
            v
        } else {
            self.out.member(format::MANIFEST_GZ_NAME, &manifest_pieces.concat(), mtime, 0o644)?;
            vec![(format::TREE_TAR_NAME.to_vec(), format::TREE_TAR_END_NAME.to_vec(), tree_pieces.concat())]
        };
        drop(manifest_pieces);
        drop(names_pieces);
        drop(tree_pieces);
        let manifest_end = self.out.pos;
        for (name, _, bytes) in &tree_members {
            self.out.member(name, bytes, mtime, 0o644)?;
        }
        // The head guard: no pack within GUARD bytes after the manifest, so
        // that no burst of damage that long takes both copies of a file's
        // line (its zip headers are the second copy). The tree tar fills
        // part of it. The first pack starts on a sector boundary, which the
        // placement counts from.
        if let Some(pad) = format::head_pad(self.out.pos, self.out.pos - manifest_end, !packs.is_empty()) {
            self.out.member(format::PAD_NAME, &vec![0u8; pad as usize], mtime, 0o644)?;
        }

        let base = self.out.pos;
        let spill = self.spill.get_ref().try_clone().map_err(|e| self.spill_err(e))?;
        let mut starts = Vec::with_capacity(packs.len());
        if self.seal.is_some() {
            starts = self.write_sealed_packs(&packs, &files, &spill, mtime)?;
        } else {
            for &(k, start, end) in &packs {
                for (_, copy) in among.iter().zip(3u32..).filter(|(at, _)| **at == k) {
                    self.out.member(&format::zstd_dict_name(copy), &dict_copy, mtime, 0o644)?;
                }
                starts.push(self.out.pos);
                self.write_pack(k, &files[start..end], &spill, mtime)?;
            }
        }
        // A pack that is not where its entries were placed would be a
        // mistake of this writer: say so rather than leave it unnoticed.
        if !(packs.is_empty() || base.is_multiple_of(format::SECTOR))
            || starts.iter().zip(&placed).any(|(&at, &p)| at - base != p)
        {
            return Err(order(b"", "a pack is not where its entries were placed"));
        }
        // Where each file's pack entry starts: after its pack's tar header
        // (one block: pack names are short) and the entries before it.
        let mut offsets = std::collections::HashMap::with_capacity(files.len());
        for (&(_, start, end), &at) in packs.iter().zip(&starts) {
            let mut pos = at + BLOCK as u64;
            for f in &files[start..end] {
                offsets.insert(f.entry.path.clone(), pos);
                pos += f.stored_len;
            }
        }
        self.summary.bytes_out = self.out.pos;
        let mut written = Written { summary: self.summary.clone(), entries: Vec::new(), offsets };
        written.entries = others.iter().cloned().chain(files.iter().map(|f| f.entry.clone())).collect();
        written.entries.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        drop(files);
        drop(others);
        for (name, extra) in extras(&written)? {
            match extra {
                Extra::Bytes(bytes) => self.out.member(&name, &bytes, mtime, 0o644)?,
                Extra::File(f, len) => {
                    let mut hdr = Vec::new();
                    crate::format::tar::write_member_header(&mut hdr, &name, len, mtime, 0o644);
                    self.out.write(&hdr)?;
                    self.out.copy_from(&f, Path::new("a temporary file"), 0, len)?;
                    self.out.padding(len)?;
                }
            }
        }

        let packs_end = self.out.pos;
        // The second copy of the tree tar: tail damage, where media fail
        // first, leaves stock tools the first; head damage this one.
        for (_, end_name, bytes) in &tree_members {
            self.out.member(end_name, bytes, mtime, 0o644)?;
        }
        if self.zstd.is_some() {
            self.out.member(format::ZSTD_DICT_END_NAME, &dict_copy, mtime, 0o644)?;
        }
        self.write_age(mtime)?;
        // The tail guard: the last GUARD bytes hold no pack, so that losing
        // them costs stock tools no pack's central directory.
        // Without packs there is nothing to guard: the head guard already
        // keeps the two copies of the tree tar apart (§A5).
        let tail = self.out.pos - packs_end + 2 * BLOCK as u64;
        if let Some(pad) = format::guard_pad(tail).filter(|_| !packs.is_empty()) {
            self.out.member(format::PAD_NAME, &vec![0u8; pad as usize], mtime, 0o644)?;
        }
        self.out.write(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        self.summary.bytes_out = self.out.pos;
        written.summary = self.summary;
        Ok(written)
    }

    /// The directory pack entries unzip into: `.xtar-data`, unless the
    /// tree's root holds that name.
    fn data_dir(&self, others: &[Entry]) -> Vec<u8> {
        let taken =
            |name: &[u8]| others.iter().any(|e| e.path == name) || self.files.iter().any(|f| f.entry.path == name);
        let mut dir = sealed::DATA_DIR.to_vec();
        let mut n = 1;
        while taken(&dir) {
            dir = format!("{}.{n}", String::from_utf8_lossy(sealed::DATA_DIR)).into_bytes();
            n += 1;
        }
        dir
    }

    /// A metadata member's bytes, sealed under `name`.
    fn sealed_meta(&self, name: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let Some(key) = &self.seal else { return Ok(plain.to_vec()) };
        let mut out = Vec::new();
        key.seal(name, plain, &mut out).map_err(|e| self.out.err(std::io::Error::other(e)))?;
        Ok(out)
    }

    /// A copy of the age header.
    fn write_age(&mut self, mtime: i64) -> Result<()> {
        let Some(key) = &self.seal else { return Ok(()) };
        let h = key.header().to_vec();
        self.out.member(sealed::AGE_NAME, &h, mtime, 0o644)
    }

    /// Writes the packs of an encrypted archive, with a copy of the age
    /// header before every 64th. Packs of small entries are sealed in
    /// parallel, a window of them at a time, in memory, the next window
    /// while this one is written; a pack whose entry is larger is sealed as
    /// it is written.
    fn write_sealed_packs(
        &mut self,
        packs: &[(u32, usize, usize)],
        files: &[Spilled],
        spill: &File,
        mtime: i64,
    ) -> Result<Vec<u64>> {
        let mut starts = Vec::with_capacity(packs.len());
        let window = 4 * self.pool.current_num_threads().max(1);
        let Some(key) = self.seal.clone() else {
            return Err(order(b"", "not an encrypted archive"));
        };
        let (pool, spill_path) = (self.pool.clone(), self.spill_path.clone());
        let seal_group = |group: &[(u32, usize, usize)]| -> Vec<Option<Result<Vec<u8>>>> {
            pool.install(|| {
                use rayon::prelude::*;
                group
                    .par_iter()
                    .map(|&(k, start, end)| {
                        let fs = &files[start..end];
                        let small = fs.iter().all(|f| sealed_payload_len(f) <= IN_MEMORY);
                        small.then(|| sealed_pack(&key, k, start as u64 + 1, fs, spill, &spill_path, mtime))
                    })
                    .collect()
            })
        };
        let groups: Vec<&[(u32, usize, usize)]> = packs.chunks(window).collect();
        let mut sealed = groups.first().map(|g| seal_group(g));
        for (i, group) in groups.iter().enumerate() {
            let Some(this) = sealed.take() else { break };
            // The next window is sealed by the pool while this one is
            // written here.
            let next = groups.get(i + 1);
            let written = std::thread::scope(|scope| {
                let ahead = next.map(|g| scope.spawn(|| seal_group(g)));
                let mut result = Ok(());
                for (&(k, start, end), bytes) in group.iter().zip(this) {
                    result = (|| {
                        if k.is_multiple_of(sealed::AGE_EVERY) {
                            self.write_age(mtime)?;
                        }
                        starts.push(self.out.pos);
                        match bytes {
                            Some(b) => self.out.write(&b?),
                            None => self.write_sealed_pack(k, start as u64 + 1, &files[start..end], spill, mtime),
                        }
                    })();
                    if result.is_err() {
                        break;
                    }
                }
                let ahead = ahead.map(|h| h.join());
                (result, ahead)
            });
            match written {
                (Err(e), _) => return Err(e),
                (Ok(()), Some(Ok(next))) => sealed = Some(next),
                (Ok(()), Some(Err(_))) => return Err(order(b"", "a sealing thread panicked")),
                (Ok(()), None) => {}
            }
        }
        Ok(starts)
    }

    /// Writes pack `k` of an encrypted archive as it is sealed: each
    /// file's plaintext (§A9) sealed under its number, from `first` on, as
    /// a stored entry; payloads larger than [`IN_MEMORY`] are sealed twice
    /// (the nonce is fixed, so the bytes are the same): once for the CRC-32
    /// of the local header, once to write.
    fn write_sealed_pack(&mut self, k: u32, first: u64, files: &[Spilled], spill: &File, mtime: i64) -> Result<()> {
        let (mut infos, len, trailer) = sealed_layout(first, files);
        let mut hdr = Vec::new();
        format::tar::write_member_header(&mut hdr, &format::pack_name(k), len, mtime, 0o644);
        self.out.write(&hdr)?;
        let (Some(key), out, spill_path) = (self.seal.as_deref(), &mut self.out, &self.spill_path) else {
            return Err(order(b"", "not an encrypted archive"));
        };
        let mut buf = Vec::new();
        for (f, info) in files.iter().zip(infos.iter_mut()) {
            if info.csize <= IN_MEMORY {
                seal_in_memory(key, f, info, spill, spill_path, &mut buf)?;
                out.write(&info.local_header())?;
                out.write(&buf)?;
            } else {
                let mut crc = crc32fast::Hasher::new();
                seal_file_with(key, f, &info.name, spill, spill_path, &mut |b| {
                    crc.update(b);
                    Ok(())
                })?;
                info.crc = crc.finalize();
                out.write(&info.local_header())?;
                seal_file_with(key, f, &info.name, spill, spill_path, &mut |b| out.write(b))?;
            }
        }
        self.out.write(&central_directory(&infos))?;
        self.out.write(&trailer)?;
        self.out.padding(len)
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

/// The packs of `files` (in length order): `(number, first, end)`, each
/// taking files while its entries stay within [`PACK_BYTES`] and
/// [`PACK_FILES`] (A2).
fn cut_packs(files: &[Spilled]) -> Vec<(u32, usize, usize)> {
    let mut packs = Vec::new();
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
        packs.push((packs.len() as u32 + 1, start, end));
        start = end;
    }
    packs
}

/// Bytes of a tar member of `len` bytes of data: its header and padding.
fn member_len(len: u64) -> u64 {
    BLOCK as u64 + len + format::tar::padding(len) as u64
}

/// Orders the entries of each pack of `files` against sectors (A2,
/// [`place::order`]), packs in parallel on `pool`; an encrypted pack's
/// files are numbered in the new order. `before(k)` is the bytes of the
/// members written before pack `k` (copies of the dictionary or of the age
/// header). Returns where each pack's tar header will be, counted from the
/// end of the head guard, which the writer puts on a sector boundary (A5).
/// A pack's length does not depend on the order of its entries.
fn place_packs(
    files: &mut Vec<Spilled>,
    packs: &[(u32, usize, usize)],
    sealed: bool,
    pool: &rayon::ThreadPool,
    before: impl Fn(u32) -> u64,
) -> Vec<u64> {
    let mut at = 0u64;
    let mut starts = Vec::with_capacity(packs.len());
    for &(k, start, end) in packs {
        at += before(k);
        starts.push(at);
        let fs = &files[start..end];
        let len = if sealed { sealed_layout(start as u64 + 1, fs).1 } else { plain_pack_len(fs) };
        at += member_len(len);
    }
    let orders: Vec<Vec<usize>> = pool.install(|| {
        use rayon::prelude::*;
        packs
            .par_iter()
            .zip(&starts)
            .map(|(&(_, start, end), &at)| {
                let fs = &files[start..end];
                let data = |f: &Spilled| if sealed { sealed_payload_len(f) } else { f.csize };
                let items: Vec<place::Item> = fs
                    .iter()
                    .map(|f| place::Item { key: if sealed { data(f) } else { f.stored_len }, data: data(f) })
                    .collect();
                // Local header lengths: a file's own (its name), or, sealed,
                // those of the numbers of the slots (and of one more), with
                // and without the zip64 field.
                let own: Vec<u64> = fs.iter().map(|f| f.stored_len - f.csize).collect();
                let numbered = |len: u64| -> Vec<u64> {
                    let ids = (start as u64 + 1)..=(end as u64 + 1);
                    if sealed {
                        ids.map(|id| sealed_info(id, len, 0).local_header().len() as u64).collect()
                    } else {
                        Vec::new()
                    }
                };
                let small = numbered(0);
                let zip64 = items.iter().any(|i| EntryInfo::needs_zip64(i.data));
                let large = if zip64 { numbered(zip::ZIP64_THRESHOLD) } else { Vec::new() };
                let header = |slot: usize, i: usize| match (sealed, EntryInfo::needs_zip64(items[i].data)) {
                    (false, _) => own[i],
                    (true, false) => small[slot],
                    (true, true) => large[slot],
                };
                place::order(at + BLOCK as u64, &items, header)
            })
            .collect()
    });
    for (&(_, start, end), order) in packs.iter().zip(orders) {
        let mut rank = vec![0usize; order.len()];
        for (slot, &i) in order.iter().enumerate() {
            rank[i] = slot;
        }
        let mut moved: Vec<(usize, Spilled)> = files.drain(start..end).enumerate().map(|(i, f)| (rank[i], f)).collect();
        moved.sort_unstable_by_key(|m| m.0);
        files.splice(start..start, moved.into_iter().map(|m| m.1));
        if sealed {
            for (i, f) in files[start..end].iter_mut().enumerate() {
                let p = sealed_payload_len(f);
                f.stored_len = sealed_info((start + i) as u64 + 1, p, 0).local_header().len() as u64 + p;
            }
        }
    }
    starts
}

/// The data length of the pack of `files` (entries, central directory,
/// end records), as [`PackedWriter::write_pack`] writes it.
fn plain_pack_len(files: &[Spilled]) -> u64 {
    let mut offset = 0u64;
    let mut central = 0u64;
    for f in files {
        central += f.info().central_header(offset).len() as u64;
        offset += f.stored_len;
    }
    offset + central + zip::end_records(files.len() as u64, offset, central).len() as u64
}

/// The zip entry of file `e` whose data is as `local` describes it.
fn entry_info(e: &Entry, local: &zip::LocalHeader) -> EntryInfo {
    EntryInfo {
        name: e.path.clone(),
        method: local.method,
        crc: local.crc,
        csize: local.csize,
        usize: local.usize,
        mtime: e.mtime.sec,
        unix_mode: zip::S_IFREG | e.mode,
        zip64: EntryInfo::needs_zip64(local.usize),
    }
}

/// The libdeflate level of the names tar of an encrypted archive: one
/// tar header per file, for stock tools only. Level 1 against 6 on the
/// stdlib: 0.99 MB against 0.85 MB, and about 0.1 s less of CPU, which
/// takes the cost of encrypting from 1.06× to 1.04× the wall time of
/// compressing without it (`docs/architecture.md`, "Encryption").
const NAMES_LEVEL: i32 = 1;

/// Payloads up to this size are sealed in memory.
const IN_MEMORY: u64 = 4 << 20;

/// The entries of an encrypted pack of `files` numbered from `first` (CRCs
/// not known yet), the pack's length and its end records.
fn sealed_layout(first: u64, files: &[Spilled]) -> (Vec<EntryInfo>, u64, Vec<u8>) {
    let infos: Vec<EntryInfo> =
        files.iter().enumerate().map(|(i, f)| sealed_info(first + i as u64, sealed_payload_len(f), 0)).collect();
    let mut offset = 0u64;
    let mut central_len = 0u64;
    for info in &infos {
        central_len += info.central_header(offset).len() as u64;
        offset += info.local_header().len() as u64 + info.csize;
    }
    let trailer = zip::end_records(files.len() as u64, offset, central_len);
    let len = offset + central_len + trailer.len() as u64;
    (infos, len, trailer)
}

/// Pack `k` of an encrypted archive, its tar header and padding included,
/// sealed in memory (every payload at most [`IN_MEMORY`]).
fn sealed_pack(
    key: &ArchiveKey,
    k: u32,
    first: u64,
    files: &[Spilled],
    spill: &File,
    spill_path: &Path,
    mtime: i64,
) -> Result<Vec<u8>> {
    let (mut infos, len, trailer) = sealed_layout(first, files);
    let mut out = Vec::with_capacity(len as usize + 2 * BLOCK);
    format::tar::write_member_header(&mut out, &format::pack_name(k), len, mtime, 0o644);
    for (f, info) in files.iter().zip(infos.iter_mut()) {
        // The local header first, its CRC-32 patched once the payload is
        // sealed after it: each byte is written once.
        let header_at = out.len();
        out.extend_from_slice(&info.local_header());
        let data_at = out.len();
        seal_file_into(key, f, &info.name, spill, spill_path, &mut out, None)?;
        info.crc = crc32fast::hash(&out[data_at..]);
        out[header_at + zip::LOCAL_CRC_AT..header_at + zip::LOCAL_CRC_AT + 4].copy_from_slice(&info.crc.to_le_bytes());
    }
    out.extend_from_slice(&central_directory(&infos));
    out.extend_from_slice(&trailer);
    out.resize(out.len() + format::tar::padding(len), 0);
    Ok(out)
}

/// Seals the payload of `f` into `buf` (emptied first) and sets the
/// CRC-32 of its entry `info`.
fn seal_in_memory(
    key: &ArchiveKey,
    f: &Spilled,
    info: &mut EntryInfo,
    spill: &File,
    spill_path: &Path,
    buf: &mut Vec<u8>,
) -> Result<()> {
    buf.clear();
    seal_file_with(key, f, &info.name, spill, spill_path, &mut |b| {
        buf.extend_from_slice(b);
        Ok(())
    })?;
    info.crc = crc32fast::hash(buf);
    Ok(())
}

/// The central directory of a pack of the entries `infos`, in order.
fn central_directory(infos: &[EntryInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for info in infos {
        out.extend_from_slice(&info.central_header(offset));
        offset += info.local_header().len() as u64 + info.csize;
    }
    out
}

/// Bytes of a file's sealed payload.
fn sealed_payload_len(f: &Spilled) -> u64 {
    seal::sealed_len(sealed::plain_len(f.method == zip::Method::Stored, f.csize, f.entry.path.len()))
}

/// The stored pack entry of file number `id`, its payload `len` bytes: no
/// time, no permissions of the file.
fn sealed_info(id: u64, len: u64, crc: u32) -> EntryInfo {
    EntryInfo {
        name: sealed::entry_name(id),
        method: zip::Method::Stored,
        crc,
        csize: len,
        usize: len,
        mtime: -1,
        unix_mode: S_IFREG | 0o600,
        zip64: EntryInfo::needs_zip64(len),
    }
}

/// Seals the plaintext of `f` (gzip header, deflate stream, trailer) read
/// from the spill file, handing the payload to `sink` in pieces.
fn seal_file_with(
    key: &ArchiveKey,
    f: &Spilled,
    name: &[u8],
    spill: &File,
    spill_path: &Path,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut out = Vec::with_capacity((sealed_payload_len(f) as usize).min(2 << 20));
    seal_file_into(key, f, name, spill, spill_path, &mut out, Some(sink))
}

/// Where sealed bytes go as they are ready.
type Sink<'a> = dyn FnMut(&[u8]) -> Result<()> + 'a;

/// Seals the plaintext of `f` onto the end of `out`; with a `sink`, what
/// is sealed is handed to it (and taken from `out`) every MiB or so and at
/// the end, else it all stays in `out`.
fn seal_file_into(
    key: &ArchiveKey,
    f: &Spilled,
    name: &[u8],
    spill: &File,
    spill_path: &Path,
    out: &mut Vec<u8>,
    mut sink: Option<&mut Sink<'_>>,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let seal_err =
        |e: seal::SealError| Error::Write { path: spill_path.to_path_buf(), source: std::io::Error::other(e) };
    let mut s = key.sealer(name, out);
    let e = &f.entry;
    s.update(&sealed::gzip_head(e.mtime.sec, e.mtime.nsec, e.mode, e.size, f.crc, &e.path), out).map_err(seal_err)?;
    let stored = f.method == zip::Method::Stored;
    let mut blocks = sealed::StoredBlocks::new(f.csize);
    let mut buf = vec![0u8; f.csize.min(1 << 20) as usize];
    let mut wrapped = Vec::new();
    let mut done = 0u64;
    while done < f.csize {
        let n = (f.csize - done).min(buf.len() as u64) as usize;
        spill.read_exact_at(&mut buf[..n], f.at + done).map_err(|source| Error::ReadArchive {
            path: spill_path.to_path_buf(),
            offset: f.at + done,
            source,
        })?;
        if stored {
            wrapped.clear();
            blocks.push(&buf[..n], &mut wrapped);
            s.update(&wrapped, out).map_err(seal_err)?;
        } else {
            s.update(&buf[..n], out).map_err(seal_err)?;
        }
        done += n as u64;
        if let Some(sink) = sink.as_mut() {
            let ready = s.ready();
            if ready >= 1 << 20 {
                sink(&out[..ready])?;
                out.drain(..ready);
                s.drained(ready);
            }
        }
    }
    s.update(&sealed::gzip_tail(f.entry.size, f.crc), out).map_err(seal_err)?;
    s.finish(out).map_err(seal_err)?;
    if let Some(sink) = sink {
        sink(out)?;
        out.clear();
    }
    Ok(())
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
        let mut info = data.entry_info(&e.path, e.mode, e.mtime.sec);
        (info.name, info.usize) = zip_name(&e, self.zstd.is_some(), info.csize);
        Ok(self.stored(e, info, at))
    }

    fn add_file(&mut self, entry: &Entry, disk: &Path, obs: &dyn Observer) -> Result<Stored> {
        self.check_path(&entry.path)?;
        let (f, meta) = super::large::open_regular(disk, self.follow_links)?;
        let start = self.spill_len;
        let (pool, level, zstd) = (Arc::clone(&self.pool), self.level, self.zstd.clone());
        let (name, _) = zip_name(entry, zstd.is_some(), 0);
        let s = zip_stream(f, meta, disk, &name, level, zstd.as_ref(), &pool, obs, &mut |b| self.spill_write(b))?;
        let local = zip::read_local_header(&mut &s.local_header[..])
            .map_err(|m| Error::Write { path: disk.to_path_buf(), source: std::io::Error::other(m) })?;
        let mut e = entry.clone();
        e.mode = s.mode;
        e.mtime = s.mtime;
        e.size = s.size;
        e.sha256 = Some(s.sha256);
        let mut info = entry_info(&e, &local);
        (info.name, info.usize) = zip_name(&e, self.zstd.is_some(), info.csize);
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
        match &self.zstd {
            Some(z) => Encoder::Zstd(Arc::clone(z)),
            None => Encoder::Libdeflate,
        }
    }

    fn count_warnings(&mut self, n: u64) {
        self.summary.warnings += n;
    }

    fn path(&self) -> &Path {
        &self.out.path
    }
}
