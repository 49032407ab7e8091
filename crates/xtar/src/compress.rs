//! Compressing one file into the data of a zip entry, hashing SHA-256 and
//! CRC-32 in the same pass over its bytes.

use std::fs::File;
use std::io::{self, Read};

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::format::zip::Method;

/// Files up to this size are read whole and compressed by one worker
/// (with zlib; see [`Encoder::small_max`]).
pub const SMALL_MAX: u64 = 8 << 20;
/// Chunk size of the parallel deflate of large files.
pub const CHUNK: usize = 1 << 20;
/// Size of the sample that decides between deflate and store.
const SAMPLE: usize = 64 << 10;
/// Deflate is kept only if the sample shrinks below this fraction (in 1/1000).
const KEEP_PER_MILLE: usize = 970;
/// Deflate window, used as the dictionary between chunks.
const WINDOW: usize = 32 << 10;

/// The compressed data and checksums of one file.
#[derive(Debug)]
pub struct Compressed {
    /// How the data is stored.
    pub method: Method,
    /// The compressed bytes.
    pub data: Vec<u8>,
    /// CRC-32 of the original bytes.
    pub crc: u32,
    /// SHA-256 of the original bytes.
    pub sha256: [u8; 32],
    /// Number of original bytes.
    pub size: u64,
}

impl Compressed {
    /// The zip entry of this data, named `name` (a path), for a file of
    /// permission bits `mode` and mtime `mtime` (seconds).
    pub fn entry_info(&self, name: &[u8], mode: u32, mtime: i64) -> crate::format::zip::EntryInfo {
        use crate::format::zip::{EntryInfo, S_IFREG};
        EntryInfo {
            name: name.to_vec(),
            method: self.method,
            crc: self.crc,
            csize: self.data.len() as u64,
            usize: self.size,
            mtime,
            unix_mode: S_IFREG | mode,
            zip64: EntryInfo::needs_zip64(self.size),
        }
    }
}

/// The encoder of files read whole.
#[derive(Debug, Clone, Default)]
pub enum Encoder {
    /// zlib (zlib-rs): what format versions 1 and 2 were written with.
    #[default]
    Zlib,
    /// libdeflate: smaller output at the same level, and faster (version 3).
    Libdeflate,
    /// zstd frames, with the tree's dictionary (version 5): stored zip
    /// entries whose data is the frames.
    Zstd(std::sync::Arc<crate::codec::ZstdEncoder>),
}

impl Encoder {
    /// Files up to this size are read whole and compressed by one worker;
    /// larger ones are deflated in parallel chunks with zlib. libdeflate
    /// has no streaming mode, so files it compresses are read whole: up to
    /// 32 MiB, which keeps two workers' buffers well within the memory
    /// bound while most files get its better ratio.
    pub fn small_max(&self) -> u64 {
        match self {
            Encoder::Zlib => SMALL_MAX,
            Encoder::Libdeflate => 32 << 20,
            Encoder::Zstd(_) => crate::codec::FRAME_MAX,
        }
    }
}

/// Reads at most `limit` bytes of `file` (its size when it was opened) and
/// compresses them. Returns the result and whether the file held a
/// different number of bytes than `limit`.
/// With [`Encoder::Zstd`] the data is the file's frame, stored, and the
/// CRC-32 is of the frame (what a zip reader checks).
pub fn compress_small(file: &mut File, limit: u64, level: u32, encoder: &Encoder) -> io::Result<(Compressed, bool)> {
    let mut raw = Vec::with_capacity(limit as usize);
    file.take(limit).read_to_end(&mut raw)?;
    let grew = {
        let mut probe = [0u8; 1];
        file.read(&mut probe)? > 0
    };
    let changed = raw.len() as u64 != limit || grew;
    let sha256: [u8; 32] = Sha256::digest(&raw).into();
    let size = raw.len() as u64;
    let (method, data, crc) = match encoder {
        Encoder::Zlib => {
            let crc = crc32fast::hash(&raw);
            let (m, d) = deflate_or_store(raw, level);
            (m, d, crc)
        }
        Encoder::Libdeflate => {
            let crc = crc32fast::hash(&raw);
            let (m, d) = libdeflate_or_store(raw, level);
            (m, d, crc)
        }
        Encoder::Zstd(_) if raw.is_empty() => (Method::Stored, raw, 0),
        Encoder::Zstd(z) => {
            let frame = z.frame(&raw)?;
            let crc = crc32fast::hash(&frame);
            (Method::Stored, frame, crc)
        }
    };
    Ok((Compressed { method, data, crc, sha256, size }, changed))
}

thread_local! {
    /// One libdeflate compressor per worker thread and level.
    static LIBDEFLATE: std::cell::RefCell<Option<(u32, libdeflater::Compressor)>> =
        const { std::cell::RefCell::new(None) };
}

/// Like [`deflate_or_store`], with libdeflate, which compresses a whole
/// buffer at once: a sample of a larger file is compressed first to
/// decide, so incompressible data costs little time.
fn libdeflate_or_store(raw: Vec<u8>, level: u32) -> (Method, Vec<u8>) {
    if level == 0 || raw.is_empty() {
        return (Method::Stored, raw);
    }
    LIBDEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let lvl = libdeflater::CompressionLvl::new(level.clamp(1, 12) as i32).unwrap_or_default();
            *slot = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let Some((_, c)) = slot.as_mut() else { return (Method::Stored, raw) };
        let mut out = Vec::new();
        let mut deflate = |input: &[u8], out: &mut Vec<u8>| -> Option<usize> {
            out.resize(c.deflate_compress_bound(input.len()), 0);
            c.deflate_compress(input, out).ok()
        };
        if raw.len() > 2 * SAMPLE && !surely_shrinks(&raw[..SAMPLE]) {
            match deflate(&raw[..SAMPLE], &mut out) {
                Some(n) if n * 1000 <= SAMPLE * KEEP_PER_MILLE => {}
                _ => return (Method::Stored, raw),
            }
        }
        match deflate(&raw, &mut out) {
            Some(n) if n < raw.len() && n * 1000 <= raw.len() * KEEP_PER_MILLE => {
                out.truncate(n);
                (Method::Deflated, out)
            }
            _ => (Method::Stored, raw),
        }
    })
}

/// Order-0 entropy, in bits a byte, below which a sample needs no trial.
const SURE_BITS: f64 = 6.5;

/// Whether `sample` is sure to pass the trial of [`libdeflate_or_store`]
/// (deflate to 97 %), so that the trial, a level-6 deflate of 64 KiB for
/// every larger file, can be skipped: the entropy of its bytes' histogram
/// is below [`SURE_BITS`]. A Huffman code of the bytes alone costs less
/// than the entropy plus one bit a byte, 7.5 bits (93.75 %), before any
/// match is found, so the trial would pass unless deflate did worse than
/// coding the bytes alone. Only the time changes: the whole file's
/// deflate is judged as before.
fn surely_shrinks(sample: &[u8]) -> bool {
    let mut counts = [0u32; 256];
    for &b in sample {
        counts[usize::from(b)] += 1;
    }
    let n = sample.len() as f64;
    let bits: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) * (n / f64::from(c)).log2()).sum();
    bits < SURE_BITS * n
}

/// Deflates `raw` unless a sample shows it does not compress, or deflate
/// would make it larger.
fn deflate_or_store(raw: Vec<u8>, level: u32) -> (Method, Vec<u8>) {
    if level == 0 || raw.is_empty() {
        return (Method::Stored, raw);
    }
    with_compressor(level, |c| deflate_or_store_with(c, raw))
}

thread_local! {
    /// One deflate state per worker thread and level, reset between files:
    /// setting one up costs more than compressing a small file.
    static COMPRESSOR: std::cell::RefCell<Option<(u32, Compress)>> = const { std::cell::RefCell::new(None) };
}

fn with_compressor<T>(level: u32, f: impl FnOnce(&mut Compress) -> T) -> T {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some((l, c)) if *l == level => c.reset(),
            _ => *slot = Some((level, Compress::new(Compression::new(level), false))),
        }
        match slot.as_mut() {
            Some((_, c)) => f(c),
            None => f(&mut Compress::new(Compression::new(level), false)),
        }
    })
}

fn deflate_or_store_with(c: &mut Compress, raw: Vec<u8>) -> (Method, Vec<u8>) {
    let mut out = Vec::with_capacity(raw.len() / 2 + 64);
    let sample = raw.len().min(SAMPLE);
    let rest = if sample < raw.len() {
        // Compress the sample with a sync flush (a deterministic boundary),
        // judge it, and either go on with the same stream or give up.
        if run(c, &raw[..sample], &mut out, FlushCompress::Sync).is_err() || out.len() * 1000 > sample * KEEP_PER_MILLE
        {
            return (Method::Stored, raw);
        }
        &raw[sample..]
    } else {
        &raw[..]
    };
    if run(c, rest, &mut out, FlushCompress::Finish).is_err()
        || out.len() >= raw.len()
        || out.len() * 1000 > raw.len() * KEEP_PER_MILLE
    {
        return (Method::Stored, raw);
    }
    (Method::Deflated, out)
}

/// Feeds all of `input` to `c` and flushes as asked, growing `out` as needed.
fn run(c: &mut Compress, input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) -> Result<(), ()> {
    let start_in = c.total_in();
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(8192));
        }
        let consumed = (c.total_in() - start_in) as usize;
        let status = c.compress_vec(&input[consumed..], out, flush).map_err(|_| ())?;
        let all_in = (c.total_in() - start_in) as usize == input.len();
        // zlib's rule: a flush is complete when all input is consumed and
        // the output buffer was not filled up.
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            _ => all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(());
        }
    }
}

/// Streaming compression of a large file: reads it in [`CHUNK`]-sized
/// pieces, hashes them in order, and deflates batches of chunks in parallel
/// (each chunk primed with the previous 32 KiB, as pigz does), handing the
/// compressed bytes to `sink` in order.
pub struct LargeFile {
    level: u32,
    method: Method,
    sha: Sha256,
    crc: crc32fast::Hasher,
    size: u64,
    dict: Vec<u8>,
    /// Version 5: each chunk is a zstd frame, and the CRC-32 is of the
    /// frames.
    zstd: Option<(std::sync::Arc<crate::codec::ZstdEncoder>, crc32fast::Hasher)>,
}

impl LargeFile {
    /// Decides the method from the first chunk.
    pub fn new(level: u32, first_chunk: &[u8]) -> LargeFile {
        let method = if level == 0 {
            Method::Stored
        } else {
            let sample = &first_chunk[..first_chunk.len().min(SAMPLE)];
            let mut c = Compress::new(Compression::new(level), false);
            let mut out = Vec::with_capacity(sample.len());
            match run(&mut c, sample, &mut out, FlushCompress::Finish) {
                Ok(()) if out.len() * 1000 <= sample.len() * KEEP_PER_MILLE => Method::Deflated,
                _ => Method::Stored,
            }
        };
        LargeFile {
            level,
            method,
            sha: Sha256::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
            dict: Vec::new(),
            zstd: None,
        }
    }

    /// Version 5: every chunk becomes a zstd frame of `enc`'s, stored.
    pub fn zstd(enc: std::sync::Arc<crate::codec::ZstdEncoder>) -> LargeFile {
        let mut lf = LargeFile::new(0, &[]);
        lf.zstd = Some((enc, crc32fast::Hasher::new()));
        lf
    }

    /// The method chosen.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Processes a batch of chunks; `last` marks the end of the file.
    /// Returns the compressed bytes of the batch, in order.
    pub fn batch(&mut self, chunks: &[Vec<u8>], last: bool) -> io::Result<Vec<Vec<u8>>> {
        for c in chunks {
            self.sha.update(c);
            self.crc.update(c);
            self.size += c.len() as u64;
        }
        if let Some((enc, crc)) = &mut self.zstd {
            let out: Vec<io::Result<Vec<u8>>> = chunks.par_iter().map(|c| enc.frame(c)).collect();
            let out = out.into_iter().collect::<io::Result<Vec<_>>>()?;
            for o in &out {
                crc.update(o);
            }
            return Ok(out);
        }
        if self.method == Method::Stored {
            return Ok(chunks.to_vec());
        }
        let n = chunks.len();
        let dicts: Vec<&[u8]> = (0..n).map(|i| if i == 0 { &self.dict[..] } else { tail(&chunks[i - 1]) }).collect();
        let level = self.level;
        let out: Vec<io::Result<Vec<u8>>> = chunks
            .par_iter()
            .enumerate()
            .map(|(i, chunk)| {
                let finish = last && i + 1 == n;
                deflate_chunk(chunk, dicts[i], level, finish)
            })
            .collect();
        if let Some(c) = chunks.last() {
            self.dict = tail(c).to_vec();
        }
        let mut res = Vec::with_capacity(n);
        for o in out {
            res.push(o?);
        }
        if n == 0 && last {
            res.push(deflate_chunk(&[], &self.dict, level, true)?);
        }
        Ok(res)
    }

    /// CRC-32 (of the frames, for zstd), SHA-256 and size of everything
    /// processed.
    pub fn finish(self) -> (u32, [u8; 32], u64) {
        let crc = match self.zstd {
            Some((_, c)) => c.finalize(),
            None => self.crc.finalize(),
        };
        (crc, self.sha.finalize().into(), self.size)
    }
}

fn tail(c: &[u8]) -> &[u8] {
    &c[c.len().saturating_sub(WINDOW)..]
}

fn deflate_chunk(chunk: &[u8], dict: &[u8], level: u32, finish: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(chunk.len() / 2 + 1024);
    let flush = if finish { FlushCompress::Finish } else { FlushCompress::Sync };
    run(&mut c, chunk, &mut out, flush).map_err(|()| io::Error::other("deflate failed"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::DeflateDecoder;

    fn inflate(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        DeflateDecoder::new(data).read_to_end(&mut out).expect("valid deflate");
        out
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"the quick brown fox jumps over the lazy dog\n"[i % 44]).collect()
    }

    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn text_is_deflated_noise_is_stored() {
        for n in [10, 1000, 100_000] {
            let (m, d) = deflate_or_store(text(n), 6);
            if n > 10 {
                assert_eq!(m, Method::Deflated, "n={n}");
                assert_eq!(inflate(&d), text(n));
            }
            let (m, d) = deflate_or_store(noise(n), 6);
            assert_eq!(m, Method::Stored, "n={n}");
            assert_eq!(d, noise(n));
        }
    }

    #[test]
    fn only_samples_of_low_entropy_skip_the_trial() {
        assert!(surely_shrinks(&text(SAMPLE)));
        assert!(!surely_shrinks(&noise(SAMPLE)));
        // Bytes spread evenly over 64 values carry 6 bits a byte, over 128
        // values 7 bits: the first is sure to shrink, the second is tried.
        let spread = |k: usize| (0..SAMPLE).map(|i| ((i * 7919) % k) as u8).collect::<Vec<u8>>();
        assert!(surely_shrinks(&spread(64)));
        assert!(!surely_shrinks(&spread(128)));
        // The whole file is judged either way.
        for data in [text(3 * SAMPLE), noise(3 * SAMPLE), spread(128).repeat(3)] {
            let (m, d) = libdeflate_or_store(data.clone(), 6);
            match m {
                Method::Deflated => assert_eq!(inflate(&d), data),
                _ => assert_eq!(d, data),
            }
        }
        assert_eq!(libdeflate_or_store(text(3 * SAMPLE), 6).0, Method::Deflated);
        assert_eq!(libdeflate_or_store(noise(3 * SAMPLE), 6).0, Method::Stored);
    }

    #[test]
    fn chunked_deflate_concatenates_into_one_stream() {
        let data = text(3 * CHUNK + 12345);
        let chunks: Vec<Vec<u8>> = data.chunks(CHUNK).map(<[u8]>::to_vec).collect();
        let mut lf = LargeFile::new(6, &chunks[0]);
        assert_eq!(lf.method(), Method::Deflated);
        let mut out = Vec::new();
        let a = lf.batch(&chunks[..2], false).expect("batch");
        let b = lf.batch(&chunks[2..], true).expect("batch");
        for c in a.into_iter().chain(b) {
            out.extend(c);
        }
        assert_eq!(inflate(&out), data);
        let (crc, sha, size) = lf.finish();
        assert_eq!((crc, size), (crc32fast::hash(&data), data.len() as u64));
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
        // Priming with the previous window costs almost nothing in ratio.
        let (_, whole) = deflate_or_store(data.clone(), 6);
        assert!(out.len() < whole.len() + whole.len() / 50 + 200, "{} vs {}", out.len(), whole.len());
    }
}
