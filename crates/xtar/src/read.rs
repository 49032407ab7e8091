//! Reading an archive as one flat stream of members.
//!
//! Nested containers have no end-of-archive blocks, and every member name is
//! a full path, so the reader does not recurse: it steps *into* a container
//! member instead of skipping it, and reads the headers inside as if they
//! were at the top level. A damaged header is reported and the reader
//! resynchronises on the next valid header block.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::lossy;
use crate::extract::Frames;
use crate::format::sealed as sealfmt;
use crate::format::tar::{self as tarfmt, Block, BLOCK};
use crate::format::{version_supported, MemberName, FORMAT_VERSION, HEADER_MAGIC, INDEX_MAGIC};
use crate::unseal::{Keys, Opening, Piece, Unseal};
use crate::{Error, Observer, Result};

/// Metadata members (header, index, manifest) larger than this are refused.
const MAX_META: u64 = 1 << 30;

/// Where archive bytes come from.
pub enum Source {
    /// A seekable file: skipping data seeks.
    File(BufReader<File>),
    /// Anything else: skipping data reads it.
    Stream(BufReader<Box<dyn Read + Send>>),
}

impl Source {
    /// Opens a file, or standard input for `-`.
    pub fn open(path: &Path) -> Result<Source> {
        if path.as_os_str() == "-" {
            return Ok(Source::Stream(BufReader::with_capacity(1 << 20, Box::new(io::stdin()))));
        }
        // An archive cut into pieces (an encrypted volume set): read them
        // in order as one.
        let read_err = |source| Error::Read { path: path.to_path_buf(), source };
        if let Some(p) = crate::pieces::Pieces::find(path).map_err(read_err)? {
            return Ok(Source::Stream(BufReader::with_capacity(1 << 20, Box::new(p.reader().map_err(read_err)?))));
        }
        let f = File::open(path).map_err(read_err)?;
        let seekable = f.metadata().map(|m| m.is_file()).unwrap_or(false);
        Ok(if seekable {
            Source::File(BufReader::with_capacity(1 << 20, f))
        } else {
            Source::Stream(BufReader::with_capacity(1 << 20, Box::new(f)))
        })
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        match self {
            Source::File(r) => r.seek_relative(i64::try_from(n).map_err(io::Error::other)?),
            Source::Stream(r) => {
                let copied = io::copy(&mut r.by_ref().take(n), &mut io::sink())?;
                if copied < n {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(())
            }
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::File(r) => r.read(buf),
            Source::Stream(r) => r.read(buf),
        }
    }
}

/// One member of the flat stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The `.xtar-header` member, already checked for its version.
    Header {
        /// The root the archive was made from.
        root: Vec<u8>,
        /// The member's bytes as stored.
        text: Vec<u8>,
    },
    /// A file member `PATH.zip`; read its bytes with [`Scanner::data`].
    File {
        /// The path of the file it holds.
        path: Vec<u8>,
        /// Length of the member (the whole zip).
        size: u64,
        /// Offset of its data in the archive.
        offset: u64,
    },
    /// A directory's container starts; its members follow.
    Container {
        /// The directory's path.
        path: Vec<u8>,
    },
    /// A directory's index.
    Index {
        /// The directory's path.
        dir: Vec<u8>,
        /// Its entries.
        entries: Vec<manifest::Entry>,
        /// The member's bytes as stored.
        text: Vec<u8>,
    },
    /// The whole manifest, at the end of the archive.
    Manifest {
        /// Its text.
        text: Vec<u8>,
    },
    /// Part `part` (from 1) of the file member of `path`, split across the
    /// volumes of a set; read its bytes with [`Scanner::data`].
    Part {
        /// The path of the file.
        path: Vec<u8>,
        /// The part's number, from 1.
        part: u32,
        /// Length of the part.
        size: u64,
        /// Offset of its data in the archive.
        offset: u64,
    },
    /// The table of a volume set (`.xtar-volumes`).
    Volumes {
        /// Its text.
        text: Vec<u8>,
    },
    /// Version 3: an index of entries anywhere in the tree (a pack's
    /// files, or everything that is not a regular file).
    Entries {
        /// Its entries.
        entries: Vec<manifest::Entry>,
        /// Whether every line of it was read (no damaged gzip member).
        complete: bool,
    },
    /// A member this version does not know; it was skipped.
    Other {
        /// Its tar name.
        name: Vec<u8>,
    },
}

/// Reads members one after another.
pub struct Scanner {
    src: Source,
    path: PathBuf,
    pos: u64,
    /// Unread bytes of the current member's data, then its padding.
    remaining: u64,
    padding: u64,
    containers: Vec<u64>,
    started: bool,
    ended: bool,
    /// The format version from the header (0 before it is read).
    version: u32,
    /// Version 3: inside a pack, where it ends and its padding.
    pack: Option<(u64, u64)>,
    /// Bytes of the current member already read (a pack entry's local
    /// header), handed out before the rest of its data.
    prefix: Vec<u8>,
    /// Keys to open encrypted archives with.
    ids: Keys,
    /// An encrypted archive: its key and names.
    unseal: Option<Unseal>,
    /// The pack entry of an encrypted archive being read.
    opening: Option<Opening>,
    /// Items read ahead (by [`Scanner::unlock`]).
    pending: std::collections::VecDeque<Item>,
    /// Version 5: how pack entries are decoded (the dictionary, once read).
    frames: Frames,
    /// Version 5: the SHA-256 of the dictionary the header names.
    dict_sum: Option<[u8; 32]>,
    /// Version 5: the pieces of the dictionary read so far.
    dict_pieces: crate::codec::DictPieces,
}

impl Scanner {
    /// Reads from `src`; `path` names the archive in messages.
    pub fn new(src: Source, path: &Path) -> Scanner {
        Scanner {
            src,
            path: path.to_path_buf(),
            pos: 0,
            remaining: 0,
            padding: 0,
            containers: Vec::new(),
            started: false,
            ended: false,
            version: 0,
            pack: None,
            prefix: Vec::new(),
            ids: Keys::default(),
            unseal: None,
            opening: None,
            pending: Default::default(),
            frames: Frames::None,
            dict_sum: None,
            dict_pieces: Default::default(),
        }
    }

    /// How the data of pack entries is decoded (version 5: zstd frames,
    /// with the dictionary once it was read).
    pub(crate) fn frames(&self) -> Frames {
        self.frames.clone()
    }

    /// Version 5: the bytes of the copy of the dictionary at the end
    /// (`.xtar-zstd.2.dict.gz`), found by its tar header within the last
    /// 64 MiB, when the archive is a file. Positioned reads: the scanner's
    /// place is unchanged.
    fn tail_dict(&self) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let Source::File(r) = &self.src else { return None };
        let f = r.get_ref();
        let len = f.metadata().ok()?.len();
        let lowest = len.saturating_sub(64 << 20);
        let mut end = len - len % BLOCK as u64;
        let mut buf = vec![0u8; 1 << 20];
        while end > lowest {
            let start = end.saturating_sub(buf.len() as u64).max(lowest);
            let n = usize::try_from(end - start).ok()?;
            f.read_exact_at(&mut buf[..n], start).ok()?;
            for off in (0..n / BLOCK).rev().map(|i| i * BLOCK) {
                let Ok(block) = <&[u8; BLOCK]>::try_from(&buf[off..off + BLOCK]) else { continue };
                let tarfmt::Block::Header(h) = tarfmt::parse_block(block) else { continue };
                if h.name != crate::format::ZSTD_DICT_END_NAME || h.size > MAX_META {
                    continue;
                }
                let mut data = vec![0u8; usize::try_from(h.size).ok()?];
                if f.read_exact_at(&mut data, start + off as u64 + BLOCK as u64).is_ok() {
                    return Some(data);
                }
            }
            end = start;
        }
        None
    }

    /// Version 5: takes the intact pieces of a copy of the dictionary;
    /// once every piece is there and the whole is the one the header
    /// names, files can be decoded. A damaged copy is reported.
    fn take_dict(&mut self, data: &[u8], at: u64, obs: &dyn Observer) {
        if matches!(self.frames, Frames::Zstd(_)) {
            return;
        }
        let (version, sum) = (Some(self.version), self.dict_sum);
        let named = |p: &crate::codec::DictPieces| {
            p.whole()
                .and_then(|w| crate::codec::dict_of_copy(&w, version))
                .filter(|d| sum == Some(crate::format::zstd_dict_sum(d)))
        };
        let mut alone = crate::codec::DictPieces::default();
        alone.merge(data);
        // A whole copy is the dictionary; only a damaged one needs the
        // pieces of the copies before it (each whole is decoded once).
        let dict = named(&alone).or_else(|| {
            obs.warning(&self.damaged(at, "a copy of the zstd dictionary is damaged; taking its intact pieces"));
            self.dict_pieces.merge(data);
            named(&self.dict_pieces)
        });
        if let Some(d) = dict {
            self.frames = Frames::Zstd(std::sync::Arc::new(crate::codec::ZstdDecoder::new(&d)));
        }
    }

    /// Gives the keys to open an encrypted archive with.
    pub fn with_keys(mut self, ids: Keys) -> Scanner {
        self.ids = ids;
        self
    }

    /// Whether the archive is encrypted (known once its header was read).
    pub fn is_encrypted(&self) -> bool {
        self.unseal.is_some()
    }

    /// Reads the header and, for an encrypted archive, opens its key, so
    /// that a missing or wrong key is an error before anything is written.
    /// The items read are handed out by [`Scanner::next`] as usual.
    pub fn unlock(&mut self, obs: &dyn Observer) -> Result<()> {
        if self.started {
            return Ok(());
        }
        if let Some(item) = self.next_item(obs)? {
            self.pending.push_back(item);
        }
        if self.unseal.is_some() {
            // The age header follows; the scanner takes it in passing.
            if let Some(item) = self.next_item(obs)? {
                self.pending.push_back(item);
            }
            let path = self.path.clone();
            if let Some(u) = self.unseal.as_mut() {
                u.need_key(&path, obs)?;
            }
        }
        Ok(())
    }

    /// The format version the header gave (0 if no header was read).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Opens an archive file (or `-` for standard input).
    pub fn open(path: &Path) -> Result<Scanner> {
        Ok(Scanner::new(Source::open(path)?, path))
    }

    /// The archive's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, source: io::Error) -> Error {
        Error::ReadArchive { path: self.path.clone(), offset: self.pos, source }
    }

    fn damaged(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::Damaged { path: self.path.clone(), offset, message: message.into() }
    }

    /// Reads the data of the current [`Item::File`] member.
    pub fn data(&mut self) -> MemberData<'_> {
        MemberData { s: self }
    }

    fn finish_member(&mut self) -> Result<()> {
        self.prefix.clear();
        self.opening = None;
        let n = self.remaining + self.padding;
        if n > 0 {
            self.src.skip(n).map_err(|e| self.io_err(e))?;
            self.pos += n;
            self.remaining = 0;
            self.padding = 0;
        }
        Ok(())
    }

    /// Reads one block; `None` at the end of the input.
    fn block(&mut self) -> Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.src.read(&mut b[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        self.pos += got as u64;
        if got == 0 {
            return Ok(None);
        }
        if got < BLOCK && !self.started {
            return Err(Error::NotXtar { path: self.path.clone(), message: "too short to be a tar archive".into() });
        }
        if got < BLOCK {
            return Err(self.damaged(self.pos - got as u64, "archive ends in the middle of a block (truncated)"));
        }
        Ok(Some(b))
    }

    /// The next member, or `None` at the end of the archive. Damage that
    /// the reader can step over goes to `obs` as a warning.
    pub fn next(&mut self, obs: &dyn Observer) -> Result<Option<Item>> {
        if let Some(item) = self.pending.pop_front() {
            return Ok(Some(item));
        }
        self.next_item(obs)
    }

    fn next_item(&mut self, obs: &dyn Observer) -> Result<Option<Item>> {
        self.finish_member()?;
        if self.ended {
            return Ok(None);
        }
        if let Some((end, pad)) = self.pack {
            if let Some(item) = self.pack_entry(end, obs)? {
                return Ok(Some(item));
            }
            self.pack = None;
            self.remaining = end.saturating_sub(self.pos);
            self.padding = pad;
            self.finish_member()?;
        }
        let mut long_name: Option<Vec<u8>> = None;
        let mut resyncing: Option<u64> = None;
        loop {
            while self.containers.last().is_some_and(|&end| end <= self.pos) {
                self.containers.pop();
            }
            let at = self.pos;
            let Some(block) = self.block()? else {
                if !self.started {
                    return Err(Error::NotXtar { path: self.path.clone(), message: "empty input".into() });
                }
                self.ended = true;
                if !self.containers.is_empty() || resyncing.is_some() {
                    obs.warning(&self.damaged(at, "archive is truncated (no end-of-archive marker)"));
                }
                return Ok(None);
            };
            let header = match tarfmt::parse_block(&block) {
                Block::Zero if self.containers.is_empty() && self.started => {
                    self.ended = true;
                    return Ok(None);
                }
                Block::Header(h) => h,
                Block::Zero | Block::Invalid => {
                    if !self.started {
                        return Err(Error::NotXtar {
                            path: self.path.clone(),
                            message: "the first block is not a tar header".into(),
                        });
                    }
                    if resyncing.is_none() {
                        resyncing = Some(at);
                        obs.warning(&self.damaged(at, "invalid tar header; skipping to the next valid one"));
                    }
                    long_name = None;
                    continue;
                }
            };
            if header.is_long_name() {
                if header.size > 64 << 10 {
                    obs.warning(&self.damaged(at, "implausible long name record"));
                    continue;
                }
                let mut name = Vec::new();
                (&mut self.src).take(header.size).read_to_end(&mut name).map_err(|e| self.io_err(e))?;
                self.pos += name.len() as u64;
                if (name.len() as u64) < header.size {
                    return Err(self.damaged(self.pos, "archive is truncated inside a long name record"));
                }
                let pad = tarfmt::padding(header.size) as u64;
                self.src.skip(pad).map_err(|e| self.io_err(e))?;
                self.pos += pad;
                while name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
                continue;
            }
            let regular = header.is_regular();
            let name = long_name.take().unwrap_or(header.name);
            self.remaining = header.size;
            self.padding = tarfmt::padding(header.size) as u64;
            let data_at = self.pos;
            let kind = if self.version >= 3 { MemberName::parse_v3(&name) } else { MemberName::parse(&name) };
            if !self.started {
                self.started = true;
                if kind != MemberName::Header {
                    return Err(Error::NotXtar {
                        path: self.path.clone(),
                        message: format!(
                            "the first member is `{}`, not `.xtar-header`",
                            String::from_utf8_lossy(&name)
                        ),
                    });
                }
            }
            if !regular {
                return Ok(Some(Item::Other { name }));
            }
            if kind == MemberName::Pad {
                self.finish_member()?;
                continue;
            }
            if self.version >= crate::format::ZSTD_VERSION && crate::format::is_zstd_dict_name(&name) {
                let data = self.meta_data(header.size)?;
                self.take_dict(&data, data_at, obs);
                self.finish_member()?;
                continue;
            }
            if self.unseal.is_some() {
                if let Some(item) = self.sealed_member(&name, header.size, data_at, obs)? {
                    return Ok(Some(item));
                }
                if sealfmt::SealedMember::parse(&name).is_some() {
                    // The age header, taken in passing.
                    self.finish_member()?;
                    continue;
                }
            }
            return Ok(Some(match kind {
                MemberName::Header => {
                    let text = self.meta_data(header.size)?;
                    Item::Header { root: self.check_header(&text)?, text }
                }
                MemberName::ManifestGz => {
                    let z = self.meta_data(header.size)?;
                    let d = crate::format::gz::decode(&z);
                    if !d.complete {
                        obs.warning(&self.damaged(data_at, "the manifest is damaged; reading what is left of it"));
                    }
                    Item::Manifest { text: d.text }
                }
                MemberName::Pack(_) => {
                    // Version 5 without an intact first copy of the
                    // dictionary: the copy at the end, if the archive is a
                    // file that can be read there.
                    if matches!(self.frames, Frames::NoDictionary) {
                        if let Some(d) = self.tail_dict() {
                            self.take_dict(&d, data_at, obs);
                            if matches!(self.frames, Frames::Zstd(_)) {
                                obs.notice(&self.damaged(data_at, "using the copy of the zstd dictionary at the end"));
                            }
                        }
                    }
                    // Step into the pack: its zip entries follow.
                    self.pack = Some((data_at + header.size, tarfmt::padding(header.size) as u64));
                    self.remaining = 0;
                    self.padding = 0;
                    return self.next_item(obs);
                }
                MemberName::TreeTar => {
                    let z = self.meta_data(header.size)?;
                    let (entries, complete) = crate::format::tree::read(&z);
                    if !complete {
                        obs.warning(
                            &self.damaged(data_at, "`.xtar-tree.tar.gz` is damaged; reading what is left of it"),
                        );
                    }
                    Item::Entries { entries, complete }
                }
                MemberName::Manifest => Item::Manifest { text: self.meta_data(header.size)? },
                MemberName::Index(dir) => {
                    let text = self.meta_data(header.size)?;
                    match parse_index(&text, &dir) {
                        Ok(entries) => Item::Index { dir, entries, text },
                        Err(source) => {
                            obs.warning(&Error::Manifest {
                                what: format!("index of `{}` at offset {data_at}", String::from_utf8_lossy(&dir)),
                                source,
                            });
                            Item::Other { name }
                        }
                    }
                }
                MemberName::File(path) => Item::File { path, size: header.size, offset: data_at },
                MemberName::Container(path) => {
                    // Step into the container: its members follow directly.
                    self.containers.push(data_at + header.size);
                    self.remaining = 0;
                    self.padding = 0;
                    Item::Container { path }
                }
                MemberName::Part(path, part) => Item::Part { path, part, size: header.size, offset: data_at },
                MemberName::Volumes => Item::Volumes { text: self.meta_data(header.size)? },
                MemberName::Other(_) | MemberName::Pad => Item::Other { name },
            }));
        }
    }

    /// The next entry of the pack that ends at `end`, or `None` when its
    /// central directory (or damage) is reached.
    fn pack_entry(&mut self, end: u64, obs: &dyn Observer) -> Result<Option<Item>> {
        let at = self.pos;
        if end < at + 30 {
            return Ok(None);
        }
        let mut head = Vec::new();
        let local = {
            let mut tee = TeeRead { inner: (&mut self.src).take(end - at), copy: &mut head };
            crate::format::zip::read_local_header(&mut tee)
        };
        self.pos += head.len() as u64;
        match local {
            Ok(l) if l.len + l.csize <= end - at && self.unseal.is_some() => {
                self.remaining = l.csize;
                self.padding = 0;
                self.sealed_entry(l, at, end, obs)
            }
            Ok(l) if l.len + l.csize <= end - at => {
                self.remaining = l.csize;
                self.padding = 0;
                let mut path = l.name;
                if self.version >= crate::format::ZSTD_VERSION {
                    match path.strip_suffix(crate::codec::ZIP_SUFFIX) {
                        Some(p) => path = p.to_vec(),
                        None => {
                            obs.warning(&self.damaged(
                                at,
                                format!("pack entry `{}` is not named `PATH.zst`; skipped", lossy(&path)),
                            ));
                            self.finish_member()?;
                            return self.pack_entry(end, obs);
                        }
                    }
                }
                self.prefix = head;
                Ok(Some(Item::File { path, size: l.len + l.csize, offset: at }))
            }
            Ok(_) => {
                obs.warning(&self.damaged(at, "a zip entry overruns its pack; skipping the rest of the pack"));
                Ok(None)
            }
            // The central directory: the pack's entries are done.
            Err(_) if head.starts_with(b"PK\x01\x02") => Ok(None),
            Err(m) => {
                obs.warning(&self.damaged(at, format!("{m}; skipping the rest of the pack")));
                Ok(None)
            }
        }
    }

    /// A member only encrypted archives have: the age header (taken in
    /// passing: `None`), the sealed manifest or tree tar (opened). `None`
    /// for other members.
    fn sealed_member(&mut self, name: &[u8], size: u64, data_at: u64, obs: &dyn Observer) -> Result<Option<Item>> {
        use sealfmt::SealedMember;
        let path = self.path.clone();
        let Some(kind) = SealedMember::parse(name) else { return Ok(None) };
        if kind == SealedMember::Age {
            let h = self.meta_data(size)?;
            if let Some(u) = self.unseal.as_mut() {
                u.try_header(&h, &path, data_at, obs)?;
            }
            return Ok(None);
        }
        let z = self.meta_data(size)?;
        let Some(u) = self.unseal.as_mut() else { return Ok(None) };
        Ok(Some(match u.read_piece(kind, &z, &path, data_at, obs)? {
            Piece::Manifest { text, .. } => Item::Manifest { text },
            Piece::Entries { entries, whole } => Item::Entries { entries, complete: whole },
        }))
    }

    /// A pack entry of an encrypted archive, whose local header `l` was
    /// read: its plaintext handed out as the plain format's zip entry.
    fn sealed_entry(
        &mut self,
        l: crate::format::zip::LocalHeader,
        at: u64,
        end: u64,
        obs: &dyn Observer,
    ) -> Result<Option<Item>> {
        let path = self.path.clone();
        let n = l.csize.min((keys::seal::NONCE + keys::seal::SEALED_CHUNK) as u64) as usize;
        let mut head = vec![0u8; n];
        self.src.read_exact(&mut head).map_err(|e| self.io_err(e))?;
        self.pos += n as u64;
        self.remaining -= n as u64;
        if let Some(u) = self.unseal.as_mut() {
            u.need_key(&path, obs)?;
        }
        let Some(u) = self.unseal.as_ref() else { return Ok(None) };
        let Some(key) = u.key.as_ref() else { return Ok(None) };
        let last = u.last_id;
        let opened = crate::unseal::open_entry(u, key, &l.name, l.csize, &head);
        let Some(o) = opened else {
            obs.warning(&self.damaged(
                at,
                format!(
                    "pack entry `{}` is damaged and has no path in the tree tar (lost in both copies); skipped",
                    lossy(&l.name)
                ),
            ));
            self.finish_member()?;
            return self.pack_entry(end, obs);
        };
        if let Some(id) = crate::format::sealed::entry_id(&l.name) {
            if id <= last {
                obs.warning(&self.damaged(
                    at,
                    format!(
                        "pack entry {id} (`{}`) comes after entry {last}: members were reordered or replayed",
                        lossy(&o.path)
                    ),
                ));
            }
            if let Some(u) = self.unseal.as_mut() {
                u.last_id = id;
            }
        }
        self.prefix = o.prefix;
        self.opening = Some(o.opening);
        Ok(Some(Item::File { path: o.path, size: o.size, offset: at }))
    }

    fn meta_data(&mut self, size: u64) -> Result<Vec<u8>> {
        if size > MAX_META {
            return Err(self.damaged(self.pos, format!("metadata member claims {size} bytes")));
        }
        let mut text = Vec::new();
        (&mut self.src).take(size).read_to_end(&mut text).map_err(|e| self.io_err(e))?;
        self.pos += text.len() as u64;
        self.remaining = size - text.len() as u64;
        if self.remaining > 0 {
            return Err(self.damaged(self.pos, "archive is truncated inside a metadata member"));
        }
        Ok(text)
    }

    fn check_header(&mut self, text: &[u8]) -> Result<Vec<u8>> {
        let mut lines = text.split(|&b| b == b'\n');
        let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let version = first
            .strip_prefix(HEADER_MAGIC)
            .and_then(|v| v.strip_prefix(' '))
            .ok_or_else(|| Error::NotXtar { path: self.path.clone(), message: "bad `.xtar-header`".into() })?;
        if !version_supported(version) {
            return Err(Error::Version {
                path: self.path.clone(),
                found: version.to_string(),
                supported: FORMAT_VERSION,
            });
        }
        self.version = version.parse().unwrap_or(0);
        if self.version >= crate::format::ZSTD_VERSION {
            self.frames = Frames::NoDictionary;
            match crate::format::zstd_dict_of(text) {
                Some(None) => self.frames = Frames::Zstd(std::sync::Arc::new(crate::codec::ZstdDecoder::new(&[]))),
                Some(Some(sum)) => self.dict_sum = Some(sum),
                None => {
                    return Err(Error::NotXtar {
                        path: self.path.clone(),
                        message: "a version 5 header without its `#zstd-dict` line".into(),
                    })
                }
            }
        }
        if self.version >= crate::format::SEALED_VERSION
            && text.split(|&b| b == b'\n').any(|l| l == sealfmt::SEALED_LINE)
        {
            self.unseal = Some(Unseal::new(text, self.ids.clone()));
        }
        let root = lines
            .find_map(|l| l.strip_prefix(b"#root "))
            .and_then(|r| manifest::unescape_path(r).ok())
            .unwrap_or_default();
        Ok(root)
    }
}

/// Parses an index member: `#xtar-index 1`, `#dir PATH`, then entry lines,
/// each of which must be the directory itself or a direct child of it.
pub fn parse_index(text: &[u8], dir: &[u8]) -> manifest::Result<Vec<manifest::Entry>> {
    let syntax = |line, message: &str| manifest::Error::Syntax { line, message: message.to_string() };
    let mut entries = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let n = n + 1;
        if n == 1 {
            let v = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.strip_prefix(INDEX_MAGIC))
                .and_then(|l| l.strip_prefix(' '));
            match v {
                Some(v) if crate::format::nested_version(v) => continue,
                Some(v) => return Err(manifest::Error::Version { found: v.to_string() }),
                None => return Err(syntax(1, "not an index")),
            }
        }
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let e = manifest::parse_entry_line(line, n)?;
        if e.path != dir && manifest::parent_of(&e.path) != dir {
            return Err(syntax(n, "entry does not belong to this directory"));
        }
        if e.path == dir && e.kind != manifest::Kind::Dir {
            return Err(syntax(n, "the directory's own entry is not a directory"));
        }
        if e.kind == manifest::Kind::Dir && e.path != dir {
            return Err(syntax(n, "subdirectories have their own index"));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Parses the lines of a version 3 index or manifest text, keeping every
/// line that parses (and its path is safe); returns them in canonical
/// order and the number of lines refused.
pub fn parse_entries(text: &[u8]) -> (Vec<manifest::Entry>, usize) {
    let mut entries = Vec::new();
    let mut bad = 0;
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() || line.starts_with(b"#") {
            if n == 0 && !line.starts_with(INDEX_MAGIC.as_bytes()) && !line.starts_with(manifest::MAGIC.as_bytes()) {
                bad += 1;
            }
            continue;
        }
        match manifest::parse_entry_line(line, n + 1) {
            Ok(e) if e.path.is_empty() || crate::format::check_member_path(&e.path).is_ok() => entries.push(e),
            _ => bad += 1,
        }
    }
    entries.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    (entries, bad)
}

/// Reads through to `inner`, keeping a copy of what was read.
pub(crate) struct TeeRead<'a, R> {
    pub(crate) inner: R,
    pub(crate) copy: &'a mut Vec<u8>,
}

impl<R: Read> Read for TeeRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The data of the current file member.
pub struct MemberData<'a> {
    s: &'a mut Scanner,
}

impl Read for MemberData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.s.prefix.is_empty() {
            let n = buf.len().min(self.s.prefix.len());
            buf[..n].copy_from_slice(&self.s.prefix[..n]);
            self.s.prefix.drain(..n);
            return Ok(n);
        }
        if let Some(o) = self.s.opening.as_mut() {
            return o.read(&mut self.s.src, &mut self.s.remaining, &mut self.s.pos, buf);
        }
        let max = buf.len().min(usize::try_from(self.s.remaining).unwrap_or(usize::MAX));
        if max == 0 {
            return Ok(0);
        }
        let n = self.s.src.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive is truncated: it ends inside this member",
            ));
        }
        self.s.pos += n as u64;
        self.s.remaining -= n as u64;
        Ok(n)
    }
}

/// The member whose first header block (or long-name record) is at
/// `offset` in `f`: its name, its size and the offset of its data. Used
/// to read one member directly, for instance from a backup set's record.
pub fn member_at(f: &dyn fsutil::Source, path: &Path, offset: u64) -> Result<(Vec<u8>, u64, u64)> {
    let damaged =
        |at: u64, message: &str| Error::Damaged { path: path.to_path_buf(), offset: at, message: message.into() };
    let read_block = |at: u64| -> Result<[u8; BLOCK]> {
        let mut b = [0u8; BLOCK];
        f.read_exact_at(&mut b, at).map_err(|source| Error::ReadArchive {
            path: path.to_path_buf(),
            offset: at,
            source,
        })?;
        Ok(b)
    };
    let mut at = offset;
    let mut long_name = None;
    for _ in 0..2 {
        let Block::Header(h) = tarfmt::parse_block(&read_block(at)?) else {
            return Err(damaged(at, "no valid tar header where the member should start"));
        };
        at += BLOCK as u64;
        if h.is_long_name() && long_name.is_none() {
            if h.size > 64 << 10 {
                return Err(damaged(at, "implausible long name record"));
            }
            let mut name = vec![0u8; h.size as usize];
            f.read_exact_at(&mut name, at).map_err(|source| Error::ReadArchive {
                path: path.to_path_buf(),
                offset: at,
                source,
            })?;
            while name.last() == Some(&0) {
                name.pop();
            }
            at += h.size + tarfmt::padding(h.size) as u64;
            long_name = Some(name);
            continue;
        }
        if !h.is_regular() {
            return Err(damaged(at - BLOCK as u64, "the header there is not a regular member"));
        }
        return Ok((long_name.unwrap_or(h.name), h.size, at));
    }
    Err(damaged(offset, "two long name records in a row"))
}

/// Finds the member named `name` that directly precedes `.xtar-manifest`
/// at the end of an archive, by reading backwards from the end, and
/// returns its data. `Ok(None)` if there is none. Only the archive's tail
/// is read: the manifest, the member, and what follows them.
pub fn tail_member(path: &Path, name: &[u8]) -> Result<Option<Vec<u8>>> {
    let f = File::open(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    tail_member_in(&f, path, name)
}

/// [`tail_member`] of the archive `f` (named `path` in messages).
pub fn tail_member_in(f: &dyn fsutil::Source, path: &Path, name: &[u8]) -> Result<Option<Vec<u8>>> {
    let len = f.size().map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let io = |at: u64| move |source| Error::ReadArchive { path: path.to_path_buf(), offset: at, source };
    let mut end = len - len % BLOCK as u64;
    let mut chunk: Vec<u8> = Vec::new();
    let mut chunk_at = end;
    // The boundary where the member after the one we look for starts: the
    // manifest's header, once found.
    let mut manifest_at: Option<u64> = None;
    while end >= BLOCK as u64 {
        let at = end - BLOCK as u64;
        if at < chunk_at {
            let start = at.saturating_sub(1 << 20) / BLOCK as u64 * BLOCK as u64;
            // One buffer, reused for every chunk.
            chunk.resize((end - start) as usize, 0);
            f.read_exact_at(&mut chunk, start).map_err(io(start))?;
            chunk_at = start;
        }
        let i = (at - chunk_at) as usize;
        let block: &[u8; BLOCK] = chunk[i..i + BLOCK].try_into().map_err(|_| io(at)(std::io::Error::other("block")))?;
        end = at;
        let Block::Header(h) = tarfmt::parse_block(block) else { continue };
        if !h.is_regular() {
            continue;
        }
        let data_end = at + BLOCK as u64 + h.size + tarfmt::padding(h.size) as u64;
        match (MemberName::parse(&h.name), manifest_at) {
            (MemberName::Manifest, None) => manifest_at = Some(at),
            (MemberName::Pad, None) => {}
            (_, Some(m)) if h.name == name && data_end == m => {
                if h.size > MAX_META {
                    return Err(Error::Damaged {
                        path: path.to_path_buf(),
                        offset: at,
                        message: "member too large".into(),
                    });
                }
                let mut data = vec![0u8; h.size as usize];
                f.read_exact_at(&mut data, at + BLOCK as u64).map_err(io(at))?;
                return Ok(Some(data));
            }
            // Any other member before the manifest: there is none.
            (_, Some(m)) if data_end == m => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}
