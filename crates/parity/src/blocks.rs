//! Reading the protected files block by block, and block checksums.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::layout::Layout;
use crate::{Error, Result};

/// Calls `f(first block, bytes)` for every chunk of whole blocks of the
/// first `size` bytes of `path` (the last block short), and with `hash`
/// returns their SHA-256, computed on another thread. A file shorter than
/// `size` is an error.
pub(crate) fn each_chunk(
    path: &Path,
    size: u64,
    b: usize,
    hash: bool,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<Option<[u8; 32]>> {
    let err = |source| Error::Read { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(err)?;
    let chunk = b * 4096;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<Vec<u8>>>(4);
        let hasher = hash.then(|| {
            scope.spawn(move || {
                let mut sha = Sha256::new();
                for buf in rx {
                    sha.update(&buf[..]);
                }
                <[u8; 32]>::from(sha.finalize())
            })
        });
        let mut done = 0u64;
        while done < size {
            let want = ((size - done) as usize).min(chunk);
            let mut buf = vec![0u8; want];
            file.read_exact(&mut buf).map_err(err)?;
            f(done / b as u64, &buf);
            done += want as u64;
            if hash {
                let _ = tx.send(std::sync::Arc::new(buf));
            }
        }
        drop(tx);
        Ok(hasher.and_then(|h| h.join().ok()))
    })
}

/// The parity volume holding recovery block `k`.
pub(crate) fn parity_of(l: &Layout, k: u64) -> (usize, &crate::layout::ParityVolume) {
    let v = l.parity.iter().position(|p| k >= p.first && k < p.first + p.count).unwrap_or(0);
    (v, &l.parity[v])
}

/// CRC-32 of a block padded with zeros to `b` bytes.
pub(crate) fn crc_padded(block: &[u8], b: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(block);
    if block.len() < b {
        h.update(&vec![0u8; b - block.len()]);
    }
    h.finalize()
}

/// Like [`each_chunk`], but a short file ends the blocks early and an
/// unreadable stretch (a bad sector) is skipped: `f` is called only for
/// blocks read whole (or the file's last, short one).
pub(crate) fn each_block_lenient(path: &Path, size: u64, b: usize, mut f: impl FnMut(u64, &[u8])) -> Result<()> {
    let file = File::open(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let chunk = (b * 2048) as u64;
    let mut buf = vec![0u8; chunk as usize];
    let mut off = 0u64;
    while off < size {
        let want = (size - off).min(chunk) as usize;
        match read_full_at(&file, &mut buf[..want], off) {
            Ok(got) => {
                let usable = if got == want { got } else { got / b * b };
                for (j, block) in buf[..usable].chunks(b).enumerate() {
                    f(off / b as u64 + j as u64, block);
                }
                if got < want {
                    return Ok(()); // the file is short
                }
            }
            Err(_) => {
                for (j, at) in (off..off + want as u64).step_by(b).enumerate() {
                    let len = (size - at).min(b as u64) as usize;
                    if read_full_at(&file, &mut buf[..len], at).is_ok_and(|g| g == len) {
                        f(off / b as u64 + j as u64, &buf[..len]);
                    }
                }
            }
        }
        off += want as u64;
    }
    Ok(())
}

/// Reads into `buf` at `at` until it is full or the file ends.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(r) => got += r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
