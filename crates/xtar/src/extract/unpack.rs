//! Unpacking one member: its zip read, checked and written to a temporary file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::Path;

use flate2::bufread::DeflateDecoder;
use sha2::{Digest, Sha256};
use tempfile::TempPath;

use crate::codec::ZstdDecoder;
use crate::dest::is_fatal;
use crate::error::lossy;
use crate::format::zip::{self, Method, S_IFLNK};
use crate::{Error, Result};

/// A member unpacked into a temporary file (or a symlink target).
pub(crate) enum Unpacked {
    /// A file in a temporary file (`None` when verifying only), still open
    /// (until [`Unpacked::closed`]) so that its metadata is set through the
    /// handle.
    File {
        tmp: Option<(TempPath, Option<File>)>,
        sha256: [u8; 32],
        size: u64,
        zip_mode: Option<u32>,
        zip_mtime: Option<i64>,
    },
    /// A symlink member (versions 1 and 2).
    Symlink { target: Vec<u8>, zip_mtime: Option<i64> },
    /// A file a worker already checked and moved into place.
    Done { verified: super::Verified, size: u64 },
}

impl Unpacked {
    /// The same with its temporary file closed: what waits for its index
    /// entry must not hold a file descriptor (thousands may wait).
    pub(crate) fn closed(self) -> Unpacked {
        match self {
            Unpacked::File { tmp: Some((p, _)), sha256, size, zip_mode, zip_mtime } => {
                Unpacked::File { tmp: Some((p, None)), sha256, size, zip_mode, zip_mtime }
            }
            other => other,
        }
    }
}

fn path_buf(p: &[u8]) -> std::path::PathBuf {
    std::path::PathBuf::from(lossy(p))
}

/// How a pack entry's data is to be read.
#[derive(Debug, Clone, Default)]
pub(crate) enum Frames {
    /// As zip says (stored or deflated): versions 1 to 4.
    #[default]
    None,
    /// Zstd frames, stored as `PATH.zst` (version 5).
    Zstd(std::sync::Arc<ZstdDecoder>),
    /// Zstd frames whose dictionary was not read (damaged or cut off).
    NoDictionary,
}

/// Unpacks one zip member read from `r` (exactly `size` bytes) into a
/// temporary file in `dir`, checking its name, CRC-32 and size. The file
/// is `path`, stored under the name `stored` (its zip entry's name) when
/// that differs; `frames` says how its data is coded.
pub(crate) fn unpack_as(
    path: &[u8],
    stored: Option<&[u8]>,
    frames: &Frames,
    r: &mut dyn Read,
    size: u64,
    dir: Option<&Path>,
) -> Result<Unpacked> {
    let damaged = |message: String| Error::Member { member: lossy(path), message };
    let zstd = match frames {
        Frames::None => None,
        Frames::Zstd(d) => Some(d),
        Frames::NoDictionary => {
            return Err(damaged(
                "the archive's zstd dictionary was not read (damaged or cut off): `pybackup salvage` reads its \
                 copy at the end"
                    .into(),
            ))
        }
    };
    let zst_name;
    let stored = match (stored, zstd) {
        (Some(s), _) => Some(s),
        (None, Some(_)) => {
            zst_name = [path, crate::codec::ZIP_SUFFIX].concat();
            Some(&zst_name[..])
        }
        (None, None) => None,
    };
    let mut r = r.take(size);
    let local = zip::read_local_header(&mut r).map_err(damaged)?;
    if zstd.is_some() && (local.method != Method::Stored || local.usize != local.csize) {
        return Err(damaged("its zip entry is not stored zstd frames".into()));
    }
    if local.name != stored.unwrap_or(path) {
        return Err(damaged(format!(
            "its zip entry is named `{}`; refusing a member whose names disagree",
            lossy(&local.name)
        )));
    }
    if local.len + local.csize > size {
        return Err(damaged(format!("zip data ({} bytes) overruns the member ({size} bytes)", local.csize)));
    }
    // Symlinks are small and stored; look at the trailer to know the type,
    // which needs the data first, so keep small stored data in memory.
    let mut data = (&mut r).take(local.csize);
    let mut hasher = Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut head = Vec::new();
    let inline_limit: u64 = 64 << 10;
    let mut tmp_file: Option<(BufWriter<File>, TempPath)> = None;
    let mut written: u64 = 0;
    let mut sink =
        |chunk: &[u8], tmp_file: &mut Option<(BufWriter<File>, TempPath)>, head: &mut Vec<u8>| -> io::Result<()> {
            hasher.update(chunk);
            if zstd.is_none() {
                crc.update(chunk);
            }
            written += chunk.len() as u64;
            if zstd.is_none() && written > local.usize {
                return Err(io::Error::other("data is longer than its declared size"));
            }
            if tmp_file.is_none() && (head.len() + chunk.len()) as u64 <= inline_limit {
                head.extend_from_slice(chunk);
                return Ok(());
            }
            let Some(dir) = dir else {
                // Verifying only: nothing to keep beyond the head.
                return Ok(());
            };
            if tmp_file.is_none() {
                let t = tempfile::Builder::new().prefix(".xtar-tmp-").tempfile_in(dir)?;
                let (f, p) = t.into_parts();
                let mut w = BufWriter::with_capacity(1 << 16, f);
                w.write_all(head)?;
                head.clear();
                *tmp_file = Some((w, p));
            }
            if let Some((w, _)) = tmp_file.as_mut() {
                // All-zero chunks become holes: a sparse file stays sparse.
                if chunk.iter().all(|&b| b == 0) {
                    w.seek(io::SeekFrom::Current(chunk.len() as i64))?;
                } else {
                    w.write_all(chunk)?;
                }
            }
            Ok(())
        };
    let mut buf = vec![0u8; 1 << 16];
    let mut frames_crc = crc32fast::Hasher::new();
    let result: io::Result<()> = (|| {
        if let Some(z) = zstd {
            let mut tee = CrcRead { inner: &mut data, crc: &mut frames_crc };
            z.decode(&mut tee, &mut |b| sink(b, &mut tmp_file, &mut head))?;
            return Ok(());
        }
        match local.method {
            Method::Stored => loop {
                let n = data.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                sink(&buf[..n], &mut tmp_file, &mut head)?;
            },
            Method::Deflated => {
                let mut dec = DeflateDecoder::new(io::BufReader::new(&mut data));
                loop {
                    let n = dec.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    sink(&buf[..n], &mut tmp_file, &mut head)?;
                }
            }
        }
        Ok(())
    })();
    result.map_err(|e| match e.kind() {
        io::ErrorKind::Other
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::InvalidData
        | io::ErrorKind::UnexpectedEof
            if !is_fatal(&e) =>
        {
            damaged(format!("cannot decompress: {e}"))
        }
        _ => Error::Write { path: dir.map_or_else(|| path_buf(path), Path::to_path_buf), source: e },
    })?;
    if zstd.is_some() {
        crc = frames_crc;
    } else if written != local.usize {
        return Err(damaged(format!("holds {written} bytes but declares {}", local.usize)));
    }
    if crc.finalize() != local.crc {
        return Err(damaged("CRC-32 mismatch".into()));
    }
    // Skip what is left of the compressed data, then read the trailer.
    io::copy(&mut data, &mut io::sink()).map_err(|e| damaged(format!("cannot read member: {e}")))?;
    let mut trailer = Vec::new();
    (&mut r).take(4096).read_to_end(&mut trailer).map_err(|e| damaged(format!("cannot read member: {e}")))?;
    let zip_mode = zip::central_unix_mode(&trailer);
    if zip_mode.is_some_and(|m| m & 0o170_000 == S_IFLNK) {
        if tmp_file.is_some() || written > inline_limit || head.is_empty() {
            return Err(damaged("implausible symlink target".into()));
        }
        return Ok(Unpacked::Symlink { target: head, zip_mtime: local.mtime });
    }
    let tmp = match (tmp_file, dir) {
        (_, None) => None,
        (Some((w, p)), _) => {
            let f = w.into_inner().map_err(|e| Error::Write { path: p.to_path_buf(), source: e.into_error() })?;
            // Trailing holes need the length set explicitly.
            f.set_len(written).map_err(|source| Error::Write { path: p.to_path_buf(), source })?;
            Some((p, Some(f)))
        }
        (None, Some(dir)) => {
            let t = tempfile::Builder::new()
                .prefix(".xtar-tmp-")
                .tempfile_in(dir)
                .map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
            let (mut f, p) = t.into_parts();
            f.write_all(&head).map_err(|source| Error::Write { path: p.to_path_buf(), source })?;
            Some((p, Some(f)))
        }
    };
    Ok(Unpacked::File { tmp, sha256: hasher.finalize().into(), size: written, zip_mode, zip_mtime: local.mtime })
}

/// Reads through, keeping the CRC-32 of what was read.
struct CrcRead<'a, R: Read> {
    inner: R,
    crc: &'a mut crc32fast::Hasher,
}

impl<R: Read> Read for CrcRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}
