//! Streaming a file from disk into a member, its chunks compressed in
//! parallel (pigz style), with the zip and tar headers patched at the end.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use manifest::Timestamp;

use super::bytes::Out;
use crate::compress::{LargeFile, CHUNK};

use crate::format;
use crate::format::zip::{EntryInfo, S_IFREG};
use crate::{Error, Observer, Result};

/// What was read of a file streamed into an archive.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// Its permission bits, when it was opened.
    pub mode: u32,
    /// Its mtime, when it was opened.
    pub mtime: Timestamp,
    /// Bytes read.
    pub size: u64,
    /// SHA-256 of the bytes read.
    pub sha256: [u8; 32],
    /// It changed while it was read.
    pub changed: bool,
    /// The final local header of the zip.
    pub local_header: Vec<u8>,
    /// Bytes of the whole zip.
    pub zip_len: u64,
}

/// Opens a regular file for reading, and its metadata as of then.
pub(crate) fn open_regular(path: &Path, follow: bool) -> Result<(File, walk::Meta)> {
    let read_err = |source| Error::Read { path: path.to_path_buf(), source };
    // O_NONBLOCK: a file replaced by a fifo since the walk must not hang us.
    // O_NOFOLLOW: nor one replaced by a symlink, unless links are followed.
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    let m = f.metadata().map_err(read_err)?;
    if !m.is_file() {
        return Err(read_err(std::io::Error::other("no longer a regular file")));
    }
    Ok((f, walk::Meta::from_std(&m)))
}

/// Whether the open file `f` no longer has the metadata `before`.
pub(crate) fn changed_since(f: &File, before: &walk::Meta) -> bool {
    match f.metadata() {
        Ok(m) => {
            m.size() != before.size
                || m.mtime() != before.mtime
                || m.mtime_nsec() as u32 != before.mtime_nsec
                || m.ctime() != before.ctime
                || m.ctime_nsec() as u32 != before.ctime_nsec
        }
        Err(_) => true,
    }
}

/// Streams the file at `disk` into a member named for `name`. Read errors
/// are [`Error::Read`]; the caller drops what was written of the member.
pub(crate) fn store(
    w: &mut Out,
    pool: &rayon::ThreadPool,
    disk: &Path,
    name: &[u8],
    level: u32,
    follow: bool,
    obs: &dyn Observer,
) -> Result<Streamed> {
    let (f, meta) = open_regular(disk, follow)?;
    let (header_pos, block) = w.open_header(&format::file_member_name(name), meta.mtime, 0o644)?;
    let local_pos = w.pos;
    let s = zip_stream(f, meta, disk, name, level, None, pool, obs, &mut |b| w.write(b))?;
    w.patch(local_pos, &s.local_header)?;
    w.patch_header(header_pos, block, s.zip_len)?;
    w.padding(s.zip_len)?;
    Ok(s)
}

/// Opens the file at `disk` and compresses it into a one-entry zip named
/// `name`, whose bytes go to `emit` in order (see [`Streamed`] for the
/// local header to patch afterwards); large files are compressed in
/// parallel chunks on `pool`. With `zstd` (version 5) each chunk is a zstd
/// frame and the entry is stored: its size and CRC-32 are the frames'. For writers that place a file member
/// themselves (cut across volumes).
#[allow(clippy::too_many_arguments)]
pub fn stream_zip(
    disk: &Path,
    name: &[u8],
    level: u32,
    follow: bool,
    pool: &rayon::ThreadPool,
    obs: &dyn Observer,
    emit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<Streamed> {
    let (f, meta) = open_regular(disk, follow)?;
    zip_stream(f, meta, disk, name, level, None, pool, obs, emit)
}

/// Compresses the open file `f` (with its metadata `meta`, read at open;
/// `disk` names it in errors) into the bytes of a one-entry zip named
/// `name`, handed to `emit` in order: a provisional local header, the
/// data, compressed in chunks on `pool`, and the trailer. The caller must
/// overwrite the first `local_header.len()` bytes with the returned
/// `local_header`, which has the same length and the final sizes and CRC.
#[allow(clippy::too_many_arguments)]
pub(crate) fn zip_stream(
    f: File,
    meta: walk::Meta,
    disk: &Path,
    name: &[u8],
    level: u32,
    zstd: Option<&std::sync::Arc<crate::codec::ZstdEncoder>>,
    pool: &rayon::ThreadPool,
    obs: &dyn Observer,
    emit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<Streamed> {
    let read_err = |source| Error::Read { path: disk.to_path_buf(), source };
    let mut reader = f.take(meta.size);
    let batch_len = pool.current_num_threads().max(1) * 2;
    let read_chunk = |r: &mut std::io::Take<File>| -> Result<Vec<u8>> {
        let mut c = Vec::with_capacity(CHUNK);
        r.by_ref().take(CHUNK as u64).read_to_end(&mut c).map_err(read_err)?;
        Ok(c)
    };
    let first = read_chunk(&mut reader)?;
    let mut lf = match zstd {
        Some(z) => LargeFile::zstd(std::sync::Arc::clone(z)),
        None => LargeFile::new(level, &first),
    };
    let mut info = EntryInfo {
        name: name.to_vec(),
        method: lf.method(),
        crc: 0,
        csize: 0,
        usize: meta.size,
        mtime: meta.mtime,
        unix_mode: S_IFREG | meta.mode,
        zip64: EntryInfo::needs_zip64(meta.size),
    };
    let local_len = info.local_header().len();
    emit(&info.local_header())?;

    let mut eof = first.len() < CHUNK || reader.limit() == 0;
    let mut pending = vec![first];
    let mut csize = 0u64;
    loop {
        while !eof && pending.len() < batch_len {
            let c = read_chunk(&mut reader)?;
            eof = c.len() < CHUNK || reader.limit() == 0;
            if !c.is_empty() {
                pending.push(c);
            }
        }
        let read: u64 = pending.iter().map(|c| c.len() as u64).sum();
        let out = pool.install(|| lf.batch(&pending, eof)).map_err(read_err)?;
        for o in &out {
            emit(o)?;
            csize += o.len() as u64;
        }
        obs.advance(read);
        pending.clear();
        if eof {
            break;
        }
    }
    let (crc, sha256, size) = lf.finish();
    let mut rest = [0u8; 1];
    let mut file = reader.into_inner();
    let grew = file.read(&mut rest).unwrap_or(0) > 0;
    info.crc = crc;
    info.csize = csize;
    info.usize = if zstd.is_some() { csize } else { size };
    let trailer = info.trailer();
    emit(&trailer)?;
    let local_header = info.local_header();
    if local_header.len() != local_len {
        return Err(Error::Write {
            path: disk.to_path_buf(),
            source: std::io::Error::other("zip header length changed"),
        });
    }
    let zip_len = local_len as u64 + csize + trailer.len() as u64;
    let changed = size != meta.size || grew || changed_since(&file, &meta);
    Ok(Streamed {
        mode: meta.mode,
        mtime: Timestamp::new(meta.mtime, meta.mtime_nsec),
        size,
        sha256,
        changed,
        local_header,
        zip_len,
    })
}
