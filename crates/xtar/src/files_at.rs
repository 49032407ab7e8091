//! Reading single files of a version 3 or 4 archive at offsets known
//! beforehand (a backup set's record gives each file's), without reading
//! the rest of the archive.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use fsutil::{ReadAt, Source};

use crate::format::sealed as sealfmt;
use crate::format::tar::padding;
use crate::format::{self, HEADER_NAME};
use crate::unseal::{Keys, SealedReader, Unseal};
use crate::{Error, Observer, Result};

/// The largest `.xtar-header` or `.xtar-age` member read.
const MAX_HEAD: u64 = 1 << 20;

/// A version 3 or 4 archive opened for [`FilesAt::file`]: its header read
/// and, when it is encrypted, its key opened.
pub struct FilesAt {
    path: PathBuf,
    unseal: Option<Unseal>,
}

impl FilesAt {
    /// Reads the header of the archive `f` (named `path` in messages) and,
    /// if it is encrypted, opens its key with one of `ids` (from the first
    /// copy of its age header, else from the copies at its end). A missing
    /// or wrong key is an error here, before anything is read.
    pub fn open(f: &dyn Source, path: &Path, ids: &Keys, obs: &dyn Observer) -> Result<FilesAt> {
        let read = |at: u64, len: u64| -> Result<Vec<u8>> {
            if len > MAX_HEAD {
                return Err(Error::Damaged {
                    path: path.to_path_buf(),
                    offset: at,
                    message: "implausible header".into(),
                });
            }
            let mut b = vec![0u8; len as usize];
            f.read_exact_at(&mut b, at).map_err(|source| Error::ReadArchive {
                path: path.to_path_buf(),
                offset: at,
                source,
            })?;
            Ok(b)
        };
        let (name, size, data) = crate::read::member_at(f, path, 0)?;
        if name != HEADER_NAME {
            return Err(Error::NotXtar { path: path.to_path_buf(), message: "no `.xtar-header` at its start".into() });
        }
        let header = read(data, size)?;
        let version = format::version_of(&header)
            .ok_or_else(|| Error::NotXtar { path: path.to_path_buf(), message: "bad `.xtar-header`".into() })?;
        // Repositories hold versions 3 and 4 (versions 5 and 6, zstd, are
        // written by `compress` only).
        if !(format::PACKED_VERSION..=format::SEALED_VERSION).contains(&version) {
            return Err(Error::Version {
                path: path.to_path_buf(),
                found: version.to_string(),
                supported: format::SEALED_VERSION,
            });
        }
        let sealed = header.split(|&b| b == b'\n').any(|l| l == sealfmt::SEALED_LINE);
        if !sealed {
            return Ok(FilesAt { path: path.to_path_buf(), unseal: None });
        }
        let mut u = Unseal::new(&header, ids.clone());
        let next = data + size + padding(size) as u64;
        if let Ok((name, size, at)) = crate::read::member_at(f, path, next) {
            if name == sealfmt::AGE_NAME {
                u.try_header(&read(at, size)?, path, at, obs)?;
            }
        }
        u.need_key(path, obs)?;
        Ok(FilesAt { path: path.to_path_buf(), unseal: Some(u) })
    }

    /// Whether the archive is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.unseal.is_some()
    }

    /// The file whose pack entry's local header is at `offset` of `f`:
    /// its path (as its zip entry, or for an encrypted archive its own
    /// plaintext, names it), and a reader of it as the plain format's zip
    /// entry, of the length given, for [`crate::Restorer::member`]. An
    /// encrypted entry's chunks are authenticated as they are read: one
    /// that fails is a read error.
    pub fn file<'f>(&self, f: &'f dyn Source, offset: u64) -> Result<(Vec<u8>, u64, Box<dyn Read + 'f>)> {
        let len = f.size().map_err(|source| Error::Read { path: self.path.clone(), source })?;
        let damaged = |message: String| Error::Damaged {
            path: self.path.clone(),
            offset,
            message: format!("pack entry: {message}"),
        };
        let mut head = Vec::new();
        let local = {
            let mut tee = crate::read::TeeRead { inner: ReadAt { f, pos: offset, end: len }, copy: &mut head };
            format::zip::read_local_header(&mut tee).map_err(damaged)?
        };
        let data = offset + head.len() as u64;
        if data.checked_add(local.csize).is_none_or(|end| end > len) {
            return Err(damaged(format!("`{}` overruns the archive", String::from_utf8_lossy(&local.name))));
        }
        let Some(u) = &self.unseal else {
            let size = head.len() as u64 + local.csize;
            let rest = ReadAt { f, pos: data, end: data + local.csize };
            return Ok((local.name, size, Box::new(std::io::Cursor::new(head).chain(rest))));
        };
        let key = u.key.as_ref().ok_or_else(|| damaged("no key".into()))?;
        let n = local.csize.min((keys::seal::NONCE + keys::seal::SEALED_CHUNK) as u64);
        let mut first = vec![0u8; n as usize];
        f.read_exact_at(&mut first, data).map_err(|source| Error::ReadArchive {
            path: self.path.clone(),
            offset: data,
            source,
        })?;
        let opened = crate::unseal::open_entry(u, key, &local.name, local.csize, &first)
            .ok_or_else(|| damaged(format!("entry {} does not open", String::from_utf8_lossy(&local.name))))?;
        if !opened.opening.first_chunk_ok() {
            // Its first chunk did not authenticate: read it to say why.
            let mut r = SealedReader {
                prefix: Vec::new(),
                opening: opened.opening,
                src: std::io::empty(),
                remaining: 0,
                pos: 0,
            };
            let why = r.read(&mut [0u8; 1]).err().map_or_else(|| "damaged".to_string(), |e| e.to_string());
            return Err(damaged(format!("entry {}: {why}", String::from_utf8_lossy(&local.name))));
        }
        let reader = SealedReader {
            prefix: opened.prefix,
            opening: opened.opening,
            src: ReadAt { f, pos: data + n, end: data + local.csize },
            remaining: local.csize - n,
            pos: data + n,
        };
        Ok((opened.path, opened.size, Box::new(reader)))
    }
}

/// What [`check_without_key`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeylessCheck {
    /// Tar members walked.
    pub members: u64,
    /// Pack entries whose bytes were checked against their CRC-32.
    pub entries: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Everything wrong, one message each, naming the offset.
    pub problems: Vec<String>,
}

/// Checks what can be checked of a version 3 or 4 archive without its key
/// (what the holder of someone else's encrypted archive can check): every
/// tar header from the start to the end blocks, every stored pack entry
/// against its CRC-32 (every entry of an encrypted archive is one: its
/// CRC-32 is of the sealed bytes, xtar.md §A9.2), and that every copy of
/// `.xtar-age` is the same.
pub fn check_without_key(path: &Path) -> Result<KeylessCheck> {
    let f = File::open(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    check_without_key_in(&f, path)
}

/// [`check_without_key`] of the archive `f` (named `path` in messages).
pub fn check_without_key_in(f: &dyn Source, path: &Path) -> Result<KeylessCheck> {
    let len = f.size().map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let mut report = KeylessCheck::default();
    let mut age: Option<Vec<u8>> = None;
    let mut at = 0u64;
    loop {
        if at + 1024 > len {
            report.problems.push(format!("{}: cut short at byte {at} (no end blocks)", path.display()));
            break;
        }
        let mut block = [0u8; 512];
        f.read_exact_at(&mut block, at).map_err(|source| Error::ReadArchive {
            path: path.to_path_buf(),
            offset: at,
            source,
        })?;
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let (name, size, data) = match crate::read::member_at(f, path, at) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(e.to_string());
                break;
            }
        };
        if data.checked_add(size).is_none_or(|end| end > len) {
            report.problems.push(format!("{}: member at byte {at} overruns the archive", path.display()));
            break;
        }
        report.members += 1;
        if name == sealfmt::AGE_NAME && size <= MAX_HEAD {
            let mut h = vec![0u8; size as usize];
            f.read_exact_at(&mut h, data).map_err(|source| Error::ReadArchive {
                path: path.to_path_buf(),
                offset: data,
                source,
            })?;
            match &age {
                Some(first) if *first != h => report
                    .problems
                    .push(format!("{}: the copy of `.xtar-age` at byte {at} differs from the first", path.display())),
                Some(_) => {}
                None => age = Some(h),
            }
        }
        if matches!(format::MemberName::parse_v3(&name), format::MemberName::Pack(_)) {
            check_pack(f, path, data, size, &mut report);
        }
        at = data + size + padding(size) as u64;
    }
    Ok(report)
}

/// Checks each entry of the pack whose data is `[data, data + size)`
/// against the CRC-32 its local header gives.
fn check_pack(f: &dyn Source, path: &Path, data: u64, size: u64, report: &mut KeylessCheck) {
    let end = data + size;
    let mut pos = data;
    while pos + 30 <= end {
        let mut head = Vec::new();
        let local = {
            let mut tee = crate::read::TeeRead { inner: ReadAt { f, pos, end }, copy: &mut head };
            format::zip::read_local_header(&mut tee)
        };
        let local = match local {
            Ok(l) => l,
            Err(_) if head.starts_with(b"PK\x01\x02") => return,
            Err(m) => {
                report.problems.push(format!("{}: pack entry at byte {pos}: {m}", path.display()));
                return;
            }
        };
        let body = pos + head.len() as u64;
        if body + local.csize > end {
            report.problems.push(format!("{}: pack entry at byte {pos} overruns its pack", path.display()));
            return;
        }
        let mut crc = crc32fast::Hasher::new();
        let mut r = ReadAt { f, pos: body, end: body + local.csize };
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => crc.update(&buf[..n]),
                Err(e) => {
                    report.problems.push(format!("{}: pack entry at byte {pos}: {e}", path.display()));
                    return;
                }
            }
        }
        report.entries += 1;
        report.bytes += local.csize;
        if local.method == format::zip::Method::Stored && crc.finalize() != local.crc {
            report.problems.push(format!(
                "{}: pack entry `{}` at byte {pos}: its bytes do not match their CRC-32 (damaged)",
                path.display(),
                String::from_utf8_lossy(&local.name)
            ));
        }
        pos = body + local.csize;
    }
}
