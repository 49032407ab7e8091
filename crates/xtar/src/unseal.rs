//! Reading encrypted version 3 archives (`docs/format/xtar.md`, §A9): the
//! state the [`Scanner`](crate::read::Scanner) keeps for them, and the
//! decryption of metadata members and pack entries. A pack entry comes out
//! as the zip local entry of the plain format (rebuilt from its gzip
//! header), so everything after the scanner reads both alike.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use keys::seal::{self, ArchiveKey, Opener, SealError};
use manifest::{Entry, Kind};

use crate::format::sealed::{self as fmt, GZ_TAIL};
use crate::format::tar::{self as tarfmt, Block, BLOCK};
use crate::format::zip::{EntryInfo, Method, S_IFREG};
use crate::{Error, Observer, Result};

/// The keys a reader may open encrypted archives with.
pub type Keys = Arc<Vec<keys::RecoveryKey>>;

/// What a piece of an encrypted archive's metadata held.
pub(crate) enum Piece {
    /// Lines of the manifest.
    Manifest {
        /// The text read.
        text: Vec<u8>,
        /// Whether all of it read.
        whole: bool,
    },
    /// Entries of the names tar or the tree tar (the links of files to
    /// their numbers taken out).
    Entries {
        /// The entries read.
        entries: Vec<Entry>,
        /// Whether all of it read.
        whole: bool,
    },
}

/// What a reader knows of an encrypted archive.
pub(crate) struct Unseal {
    pub(crate) key: Option<ArchiveKey>,
    /// Keys given to open it.
    ids: Keys,
    /// The directory the tree tar links files' paths into.
    data_dir: Vec<u8>,
    /// Entry number → (path, mode), from the tree tar's links.
    names: HashMap<u64, (Vec<u8>, u32)>,
    /// The number of the last pack entry read.
    pub(crate) last_id: u64,
    /// The numbers of manifest and tree tar pieces, from the header.
    pub(crate) pieces: Option<(u32, u32, u32)>,
}

impl Unseal {
    /// For an archive whose header says it is encrypted.
    pub(crate) fn new(header: &[u8], ids: Keys) -> Unseal {
        let data_dir = header
            .split(|&b| b == b'\n')
            .find_map(|l| l.strip_prefix(fmt::DATA_LINE))
            .map_or_else(|| fmt::DATA_DIR.to_vec(), <[u8]>::to_vec);
        Unseal { key: None, ids, data_dir, names: HashMap::new(), last_id: 0, pieces: fmt::pieces(header) }
    }

    /// Tries the copy `header` of the age header. A wrong key is an error;
    /// a damaged copy a warning (another copy may do).
    pub(crate) fn try_header(&mut self, header: &[u8], path: &Path, at: u64, obs: &dyn Observer) -> Result<()> {
        if self.key.is_some() {
            return Ok(());
        }
        if self.ids.is_empty() {
            return Err(no_key(path));
        }
        let ids: Vec<&keys::age::x25519::Identity> = self.ids.iter().map(keys::RecoveryKey::identity).collect();
        match ArchiveKey::open(header, &ids) {
            Ok(k) => self.key = Some(k),
            Err(SealError::WrongKey) => {
                return Err(Error::Encrypted {
                    path: path.to_path_buf(),
                    message: "none of the keys given opens it (it was encrypted to other keys)".into(),
                })
            }
            Err(e) => obs.warning(&Error::Damaged {
                path: path.to_path_buf(),
                offset: at,
                message: format!("a copy of `.xtar-age`: {e}; trying another copy"),
            }),
        }
        Ok(())
    }

    /// The archive key, looking for a copy of the age header at the end of
    /// the file when the copies read so far were damaged.
    pub(crate) fn need_key(&mut self, path: &Path, obs: &dyn Observer) -> Result<&ArchiveKey> {
        if self.key.is_none() {
            if self.ids.is_empty() {
                return Err(no_key(path));
            }
            for (at, copy) in tail_copies(path) {
                self.try_header(&copy, path, at, obs)?;
                if self.key.is_some() {
                    break;
                }
            }
        }
        self.key.as_ref().ok_or_else(|| Error::Encrypted {
            path: path.to_path_buf(),
            message: "every copy of its age header (`.xtar-age`) read is damaged; its key cannot be had".into(),
        })
    }

    /// Opens and reads a piece of the manifest, the names tar or the tree
    /// tar (`sealed`, the bytes of member `kind`), chunk by chunk: chunks
    /// that do not authenticate are left out (the gzip member inside is
    /// then lost, or resynchronised after) and reported, as is a piece that
    /// does not read whole. The links of files to their numbers are taken
    /// out of tar pieces and remembered.
    pub(crate) fn read_piece(
        &mut self,
        kind: fmt::SealedMember,
        sealed: &[u8],
        path: &Path,
        at: u64,
        obs: &dyn Observer,
    ) -> Result<Piece> {
        let name = kind.name();
        let damaged = |message: String| Error::Damaged { path: path.to_path_buf(), offset: at, message };
        let key = self.need_key(path, obs)?;
        let (plain, mut whole) = match key.open_chunks(&kind.sealed_as(), sealed) {
            Ok(chunks) => {
                let bad = chunks.iter().filter(|c| c.is_none()).count();
                if bad > 0 {
                    obs.warning(&damaged(format!(
                        "`{}`: {bad} of its {} chunks do not authenticate (damaged or tampered with); reading the rest",
                        String::from_utf8_lossy(&name),
                        chunks.len()
                    )));
                }
                (chunks.into_iter().flatten().flatten().collect::<Vec<u8>>(), bad == 0)
            }
            Err(e) => {
                obs.warning(&damaged(format!("`{}`: {e}", String::from_utf8_lossy(&name))));
                (Vec::new(), false)
            }
        };
        let piece = if let fmt::SealedMember::Manifest(_) = kind {
            let d = crate::format::gz::decode(&plain);
            whole &= d.complete;
            Piece::Manifest { text: d.text, whole }
        } else {
            let (entries, complete) = crate::format::tree::read(&plain);
            whole &= complete;
            Piece::Entries { entries: self.take_links(entries), whole }
        };
        if !whole {
            obs.warning(&damaged(format!(
                "`{}` is damaged; reading what is left of it",
                String::from_utf8_lossy(&name)
            )));
        }
        Ok(piece)
    }

    /// Takes the links of files to their entries out of the tree tar's
    /// entries, remembering their paths.
    pub(crate) fn take_links(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        let prefix = [&self.data_dir[..], b"/"].concat();
        let mut rest = Vec::with_capacity(entries.len());
        for e in entries {
            let id = (e.kind == Kind::HardLink)
                .then(|| e.target.as_deref().and_then(|t| t.strip_prefix(&prefix[..])).and_then(fmt::entry_id))
                .flatten();
            match id {
                Some(id) => {
                    self.names.insert(id, (e.path, e.mode));
                }
                None => rest.push(e),
            }
        }
        rest
    }

    /// The path and mode of pack entry `id`, if the tree tar gave them.
    pub(crate) fn name_of(&self, id: u64) -> Option<&(Vec<u8>, u32)> {
        self.names.get(&id)
    }
}

fn no_key(path: &Path) -> Error {
    Error::Encrypted {
        path: path.to_path_buf(),
        message: "give a key to open it with --identity (the owner's key file, a recovery key, or a file of enough \
                  shares of one)"
            .into(),
    }
}

/// The copies of `.xtar-age` in the last 1 MiB of the file at `path`
/// (none if it cannot be read), last first.
fn tail_copies(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut found = copies_in(path, len.saturating_sub(1 << 20), len);
    found.reverse();
    found
}

/// The copies of `.xtar-age` whose tar header starts in `[from, to)` of
/// the file at `path` (block-aligned offsets), first first.
fn copies_in(path: &Path, from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
    use std::os::unix::fs::FileExt;
    let Ok(f) = std::fs::File::open(path) else { return Vec::new() };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return Vec::new() };
    let mut found = Vec::new();
    let mut start = from / BLOCK as u64 * BLOCK as u64;
    let end = to.min(len);
    // Windows of 4 MiB, overlapping by the most a copy takes.
    while start < end {
        let n = (end - start + (64 << 10)).min(len - start).min(4 << 20);
        let mut buf = vec![0u8; n as usize];
        if f.read_exact_at(&mut buf, start).is_err() {
            break;
        }
        let mut i = 0;
        while i + BLOCK <= buf.len() && start + (i as u64) < end {
            if let Ok(block) = <&[u8; BLOCK]>::try_from(&buf[i..i + BLOCK]) {
                if let Block::Header(h) = tarfmt::parse_block(block) {
                    let data = i + BLOCK;
                    if h.name == fmt::AGE_NAME && h.size < 64 << 10 && data + h.size as usize <= buf.len() {
                        found.push((start + i as u64, buf[data..data + h.size as usize].to_vec()));
                    }
                }
            }
            i += BLOCK;
        }
        if start + n >= end {
            break;
        }
        start += (n - (64 << 10)) / BLOCK as u64 * BLOCK as u64;
    }
    found
}

/// Whether the file at `path` holds a copy of an age header in its first
/// or last MiB: an encrypted archive whose `.xtar-header` was lost.
pub(crate) fn has_age_copies(path: &Path) -> bool {
    !copies_in(path, 0, 1 << 20).is_empty() || !tail_copies(path).is_empty()
}

/// The key of the encrypted archive at `path` (a regular file), from the
/// first copy of its age header that opens: at its start, at its end, or,
/// when both ends are damaged, anywhere. What a salvage starts with.
pub(crate) fn find_key(path: &Path, ids: &Keys, header: &[u8], obs: &dyn Observer) -> Result<Unseal> {
    let mut u = Unseal::new(header, ids.clone());
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    for copy in [copies_in(path, 0, 1 << 20), tail_copies(path)] {
        for (at, h) in copy {
            u.try_header(&h, path, at, obs)?;
            if u.key.is_some() {
                return Ok(u);
            }
        }
    }
    if u.ids.is_empty() {
        return Err(no_key(path));
    }
    for (at, h) in copies_in(path, 1 << 20, len.saturating_sub(1 << 20)) {
        u.try_header(&h, path, at, obs)?;
        if u.key.is_some() {
            return Ok(u);
        }
    }
    Err(Error::Encrypted {
        path: path.to_path_buf(),
        message: "no copy of its age header (`.xtar-age`) was found intact; its key cannot be had".into(),
    })
}

/// Reads a pack entry of an encrypted archive from `src` (its payload
/// after the nonce and first chunk): the plain format's zip entry.
pub(crate) struct SealedReader<R> {
    pub(crate) prefix: Vec<u8>,
    pub(crate) opening: Opening,
    pub(crate) src: R,
    pub(crate) remaining: u64,
    pub(crate) pos: u64,
}

impl<R: Read> Read for SealedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.prefix.is_empty() {
            let n = buf.len().min(self.prefix.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Ok(n);
        }
        self.opening.read(&mut self.src, &mut self.remaining, &mut self.pos, buf)
    }
}

/// A pack entry of an encrypted archive being read: its plaintext as the
/// plain format's zip entry (local header, deflate data, central header).
pub(crate) struct Opening {
    opener: Option<Opener>,
    next_chunk: u64,
    /// Plaintext not yet handed out (deflate data), from `at`.
    plain: Vec<u8>,
    at: usize,
    /// Deflate bytes still to hand out.
    left: u64,
    /// The central header, handed out after the data.
    tail: Vec<u8>,
    /// Why the entry cannot be read, reported when it is.
    failed: Option<String>,
}

/// What [`open_entry`] makes of a pack entry: its path, the local header
/// to hand out first, its size as a plain zip entry, and the reader state.
pub(crate) struct Opened {
    pub(crate) path: Vec<u8>,
    pub(crate) prefix: Vec<u8>,
    pub(crate) size: u64,
    pub(crate) opening: Opening,
}

/// Starts reading pack entry `name` (its number), `sealed` bytes long,
/// whose first bytes (nonce and first chunk) are `head`. `None` when the
/// entry has no known path.
pub(crate) fn open_entry(u: &Unseal, key: &ArchiveKey, name: &[u8], sealed: u64, head: &[u8]) -> Option<Opened> {
    let id = fmt::entry_id(name)?;
    let known = u.name_of(id).cloned();
    let fail = |path: Vec<u8>, message: String| Opened {
        path,
        prefix: Vec::new(),
        size: sealed,
        opening: Opening {
            opener: None,
            next_chunk: 0,
            plain: Vec::new(),
            at: 0,
            left: 0,
            tail: Vec::new(),
            failed: Some(message),
        },
    };
    // Without its first chunk, a file is named by the tree tar or not at
    // all (then nobody can be told it is damaged).
    let fail_known = |message: String| known.as_ref().map(|(p, _)| fail(p.clone(), message));
    let opener = match key.opener(name, sealed) {
        Ok(o) => o,
        Err(e) => return fail_known(e.to_string()),
    };
    let first = head.get(seal::NONCE..).unwrap_or_default();
    let chunk0 = match opener.open_chunk(0, first) {
        Ok(c) => c,
        Err(e) => {
            let moved = !key.nonce_matches(name, &head[..head.len().min(seal::NONCE)]);
            let why = if moved { "; its nonce is another member's: moved, swapped or replayed" } else { "" };
            return fail_known(format!("its encrypted data: {e}{why}"));
        }
    };
    let h = match fmt::parse_gzip_head(&chunk0) {
        Ok(h) => h,
        Err(m) => return fail_known(m.to_string()),
    };
    // The file names itself (XP); the tree tar's name is for files whose
    // path is too long for that.
    let (path, mode) = match (&h.own, known) {
        (Some((mode, _, p)), _) => (p.clone(), *mode),
        (None, Some(k)) => k,
        (None, None) => return None,
    };
    if crate::format::check_member_path(&path).is_err() {
        return Some(fail(path, "its path is not a safe relative path".into()));
    }
    let plain_len = seal::plain_len(sealed).unwrap_or(0);
    let Some(deflated) = plain_len.checked_sub((h.len + GZ_TAIL) as u64) else {
        return Some(fail(path, "its plaintext is too short".into()));
    };
    let info = EntryInfo {
        name: path.clone(),
        method: Method::Deflated,
        crc: h.crc,
        csize: deflated,
        usize: h.size,
        mtime: h.mtime,
        unix_mode: S_IFREG | (mode & 0o7777),
        zip64: EntryInfo::needs_zip64(h.size),
    };
    let prefix = info.local_header();
    let tail = info.central_header(0);
    let total = prefix.len() as u64 + deflated + tail.len() as u64;
    Some(Opened {
        path,
        prefix,
        size: total,
        opening: Opening {
            opener: Some(opener),
            next_chunk: 1,
            plain: chunk0,
            at: h.len,
            left: deflated,
            tail,
            failed: None,
        },
    })
}

impl Opening {
    /// Whether its first chunk authenticated (and its header parsed).
    pub(crate) fn first_chunk_ok(&self) -> bool {
        self.failed.is_none()
    }

    /// Hands out the next bytes; `src` gives the sealed chunks still
    /// unread (`remaining` bytes of them), updating `pos`.
    pub(crate) fn read(
        &mut self,
        src: &mut dyn Read,
        remaining: &mut u64,
        pos: &mut u64,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        if let Some(m) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, m.clone()));
        }
        if self.left > 0 && self.at >= self.plain.len() {
            let Some(op) = &self.opener else { return Ok(0) };
            let n = (*remaining).min(seal::SEALED_CHUNK as u64) as usize;
            let mut chunk = vec![0u8; n];
            src.read_exact(&mut chunk)?;
            *remaining -= n as u64;
            *pos += n as u64;
            op.open_in_place(self.next_chunk, &mut chunk).map_err(|e| {
                self.failed = Some(format!("its encrypted data: {e}"));
                io::Error::new(io::ErrorKind::InvalidData, format!("its encrypted data: {e}"))
            })?;
            self.next_chunk += 1;
            self.plain = chunk;
            self.at = 0;
        }
        if self.left > 0 {
            let n = buf.len().min(self.plain.len() - self.at).min(usize::try_from(self.left).unwrap_or(usize::MAX));
            buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
            self.at += n;
            self.left -= n as u64;
            return Ok(n);
        }
        let n = buf.len().min(self.tail.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail.drain(..n);
        Ok(n)
    }
}
