//! Versions 6 and 5 (`docs/format/xtar.md` §A11): each file's data as
//! zstd frames, compressed with a dictionary: version 6 writes one made of
//! the tree's own small files (raw content, stored as a frame in its
//! copies); version 5's was trained on them, and is still read.
//!
//! A file up to [`FRAME_MAX`] bytes is one frame; a larger one is a
//! sequence of frames of [`crate::compress::CHUNK`] bytes each, compressed
//! in parallel. Every frame declares its content size, which readers use
//! to bound what they decode. Frames are independent of each other and of
//! every other file: damage costs the file it touches, as with deflate.

use std::cell::RefCell;
use std::io::{self, Read};

/// Version 5: the suffix of a file's zip entry name (its data is frames).
pub const ZIP_SUFFIX: &[u8] = b".zst";
/// Bytes of the dictionary in each piece of a copy (§A11): each piece is
/// a gzip member of one stored block, so every copy has the same fixed
/// stride and a reader puts the dictionary together piece by piece from
/// whichever copies are intact there.
pub const DICT_PIECE: usize = 1024;
/// Bytes a piece takes in a copy: gzip header (10), stored block header
/// (5), the piece, CRC-32 and size (8).
pub const DICT_STRIDE: usize = DICT_PIECE + 23;

/// A copy of `dict` as stored: a chain of gzip members, one per
/// [`DICT_PIECE`] bytes, each a single stored block (`gzip -dc` gives the
/// dictionary back); the last one is shorter than a piece (empty when the
/// dictionary is a multiple of pieces), which tells readers where the
/// dictionary ends. No dictionary: no member.
pub fn dict_copy(dict: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dict.len() / DICT_PIECE * DICT_STRIDE + DICT_STRIDE);
    for piece in dict.chunks(DICT_PIECE) {
        crate::format::gz::stored_member(piece, &mut out);
    }
    if !dict.is_empty() && dict.len().is_multiple_of(DICT_PIECE) {
        crate::format::gz::stored_member(&[], &mut out);
    }
    out
}

/// The pieces of the dictionary gathered from its copies so far.
#[derive(Debug, Default, Clone)]
pub struct DictPieces {
    pieces: Vec<Option<Vec<u8>>>,
    /// The number of pieces, once the last one (shorter than a piece) was
    /// read.
    count: Option<usize>,
}

impl DictPieces {
    /// Takes every intact piece of `copy` (the bytes of one copy, damaged
    /// or not): a piece is intact when its gzip header, block header, size
    /// and CRC-32 are right.
    pub fn merge(&mut self, copy: &[u8]) {
        let mut i = 0;
        while i * DICT_STRIDE < copy.len() {
            let m = &copy[i * DICT_STRIDE..copy.len().min((i + 1) * DICT_STRIDE)];
            if let Some(piece) = stored_piece(m) {
                let short = piece.len() < DICT_PIECE;
                if self.pieces.len() <= i {
                    self.pieces.resize(i + 1, None);
                }
                if short {
                    self.count = Some(i + 1);
                }
                self.pieces[i] = Some(piece.to_vec());
                if short {
                    break;
                }
            }
            i += 1;
        }
    }

    /// Takes the intact pieces of `copy` where none was found yet, if
    /// every piece it shares with those found is the same, and it has at
    /// least one: a copy found by where it should be rather than by its
    /// name (its tar header lost). Returns whether it was taken.
    pub fn fill(&mut self, copy: &[u8]) -> bool {
        let mut other = DictPieces::default();
        other.merge(copy);
        let clash = other
            .pieces
            .iter()
            .enumerate()
            .any(|(i, p)| matches!((p, self.pieces.get(i)), (Some(a), Some(Some(b))) if a != b))
            || matches!((self.count, other.count), (Some(a), Some(b)) if a != b);
        if clash || other.found() == 0 {
            return false;
        }
        if self.pieces.len() < other.pieces.len() {
            self.pieces.resize(other.pieces.len(), None);
        }
        for (mine, theirs) in self.pieces.iter_mut().zip(other.pieces) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        self.count = self.count.or(other.count);
        true
    }

    /// How many pieces were found.
    pub fn found(&self) -> usize {
        self.pieces.iter().filter(|p| p.is_some()).count()
    }

    /// The dictionary, when every piece was found.
    pub fn whole(&self) -> Option<Vec<u8>> {
        let n = self.count?;
        let mut out = Vec::with_capacity(n * DICT_PIECE);
        for p in self.pieces.get(..n)? {
            out.extend_from_slice(p.as_deref()?);
        }
        Some(out)
    }
}

/// The data of one stored gzip member of a dictionary copy, if intact.
fn stored_piece(m: &[u8]) -> Option<&[u8]> {
    if m.len() < 23 || m[..4] != [0x1f, 0x8b, 8, 0] || m[10] != 1 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([m[11], m[12]]));
    let nlen = u16::from_le_bytes([m[13], m[14]]);
    if nlen != !(len as u16) || len > DICT_PIECE || m.len() != len + 23 {
        return None;
    }
    let data = &m[15..15 + len];
    let crc = u32::from_le_bytes(m[15 + len..19 + len].try_into().ok()?);
    let size = u32::from_le_bytes(m[19 + len..23 + len].try_into().ok()?);
    (crc32fast::hash(data) == crc && size as usize == len).then_some(data)
}

/// Version 6: the largest dictionary, 4 MiB of the tree's own small files.
pub const DICT_MAX: u64 = 4 << 20;
/// Version 6: one byte of dictionary for this many bytes of small files.
pub const DICT_SHARE: u64 = 64;
/// Version 6: a dictionary of fewer bytes is not made.
pub const DICT_MIN: usize = 1 << 10;
/// Version 6: readers refuse a copy whose frame declares a larger
/// dictionary (room for writers to grow [`DICT_MAX`]; a bound on what
/// damaged or hostile data makes them decode).
pub const DICT_LIMIT: u64 = 64 << 20;
/// Files up to this size are samples for the dictionary.
pub const SAMPLE_FILE_MAX: u64 = 128 << 10;
/// The level of the frame that holds the dictionary in its copies.
const DICT_FRAME_LEVEL: i32 = 19;
/// The first bytes of a zstd dictionary (RFC 8878 §5): a raw-content
/// dictionary must not begin with them, or zstd reads it as a trained one.
const DICT_MAGIC: [u8; 4] = [0x37, 0xa4, 0x30, 0xec];
/// The first bytes of a zstd frame.
const FRAME_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Version 6: how many bytes of samples (and so of dictionary) a tree
/// with `small` bytes of sample files gets: one 64th of them, at most
/// [`DICT_MAX`].
pub fn dict_target(small: u64) -> u64 {
    (small / DICT_SHARE).min(DICT_MAX)
}

/// Version 6: the dictionary made of `samples` (files of the tree, in
/// walk order), a raw-content dictionary (RFC 8878 §5): their bytes one
/// after the other, the first `target` of them, without leading bytes
/// that would make it look like a trained dictionary. `None` when that is
/// fewer than [`DICT_MIN`] bytes.
pub fn sampled_dictionary(samples: &[Vec<u8>], target: u64) -> Option<Vec<u8>> {
    let mut d = samples.concat();
    d.truncate(usize::try_from(target).unwrap_or(usize::MAX));
    if d.starts_with(&DICT_MAGIC) {
        d.remove(0);
    }
    (d.len() >= DICT_MIN).then_some(d)
}

/// Version 6: what the copies of `dict` hold: one zstd frame of it (level
/// 19, no dictionary, its size declared). Empty for no dictionary.
pub fn dict_frame(dict: &[u8]) -> io::Result<Vec<u8>> {
    if dict.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(dict.len()));
    zstd::zstd_safe::compress(&mut out, dict, DICT_FRAME_LEVEL).map_err(|c| zerr("zstd compression failed", c))?;
    Ok(out)
}

/// The dictionary that the whole of a copy's pieces, `stored`, holds: in
/// version 6 one frame (declaring at most [`DICT_LIMIT`] bytes, decoding
/// to exactly them), in version 5 the dictionary itself. Without a
/// version (a header lost), each is recognised by its first bytes.
/// `None` when `stored` is neither.
pub fn dict_of_copy(stored: &[u8], version: Option<u32>) -> Option<Vec<u8>> {
    if stored.is_empty() {
        return Some(Vec::new());
    }
    let framed = match version {
        Some(v) => v >= crate::format::ZSTD_FRAMED_DICT_VERSION,
        None => stored.starts_with(&FRAME_MAGIC),
    };
    if !framed {
        let trained = stored.starts_with(&DICT_MAGIC) && zstd::zstd_safe::get_dict_id_from_dict(stored).is_some();
        return (version.is_some() || trained).then(|| stored.to_vec());
    }
    let size = match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(s)) if s <= DICT_LIMIT && s > 0 => usize::try_from(s).ok()?,
        _ => return None,
    };
    if zstd::zstd_safe::find_frame_compressed_size(stored).ok()? != stored.len() {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(size);
    let n = zstd::zstd_safe::decompress(&mut out, stored).ok()?;
    (n == size).then_some(out)
}

/// Content of one frame, at most. Readers refuse a frame that declares
/// more, so that damaged or hostile data cannot make them decode without
/// bound.
pub const FRAME_MAX: u64 = 32 << 20;
/// The default level: zstd's 19, the highest without `--ultra`.
pub const DEFAULT_LEVEL: u32 = 19;
/// The highest level.
pub const LEVEL_MAX: u32 = 22;
/// A frame of a file larger than this sample that compresses worse than
/// [`KEEP_PER_MILLE`] on its first [`SAMPLE`] bytes is made at level 1,
/// without the dictionary: incompressible data costs little time.
const SAMPLE: usize = 64 << 10;
const KEEP_PER_MILLE: usize = 970;

thread_local! {
    static CCTX: RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

fn zerr(what: &str, code: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {}", zstd::zstd_safe::get_error_name(code)))
}

/// Compresses files into frames, with the tree's dictionary when it has one.
pub struct ZstdEncoder {
    level: i32,
    dict: Vec<u8>,
    cdict: Option<zstd::zstd_safe::CDict<'static>>,
}

impl std::fmt::Debug for ZstdEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdEncoder").field("level", &self.level).field("dict", &self.dict.len()).finish()
    }
}

impl ZstdEncoder {
    /// An encoder at `level` (1 to [`LEVEL_MAX`]) with `dict` (empty: none).
    pub fn new(dict: Vec<u8>, level: u32) -> io::Result<ZstdEncoder> {
        let level = level.clamp(1, LEVEL_MAX) as i32;
        let cdict = if dict.is_empty() {
            None
        } else {
            Some(
                zstd::zstd_safe::CDict::try_create(&dict, level)
                    .ok_or_else(|| io::Error::other("zstd could not load the dictionary"))?,
            )
        };
        Ok(ZstdEncoder { level, dict, cdict })
    }

    /// The dictionary (empty when there is none).
    pub fn dict(&self) -> &[u8] {
        &self.dict
    }

    /// The frame of `raw` (one frame, whatever its size: callers cut large
    /// files into chunks of at most [`FRAME_MAX`]).
    pub fn frame(&self, raw: &[u8]) -> io::Result<Vec<u8>> {
        let incompressible = raw.len() > 2 * SAMPLE && {
            let probe = self.compress_with(&raw[..SAMPLE], 1, false)?;
            probe.len() * 1000 > SAMPLE * KEEP_PER_MILLE
        };
        if incompressible {
            self.compress_with(raw, 1, false)
        } else {
            self.compress_with(raw, self.level, true)
        }
    }

    fn compress_with(&self, raw: &[u8], level: i32, with_dict: bool) -> io::Result<Vec<u8>> {
        CCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            let cctx = slot.get_or_insert_with(zstd::zstd_safe::CCtx::create);
            let mut out: Vec<u8> = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
            use zstd::zstd_safe::{CParameter, DictAttachPref, ResetDirective};
            let z = |what: &'static str| move |c| zerr(what, c);
            cctx.reset(ResetDirective::SessionAndParameters).map_err(z("zstd reset failed"))?;
            let r = match (&self.cdict, with_dict) {
                // Attached, whatever the file's size: zstd would otherwise
                // copy the dictionary's tables (tens of MB for 4 MiB of
                // dictionary at level 19) into the context for every file
                // over 8 KiB.
                (Some(d), true) => {
                    cctx.set_parameter(CParameter::ForceAttachDict(DictAttachPref::ForceAttach))
                        .map_err(z("zstd parameter refused"))?;
                    cctx.ref_cdict(d).map_err(z("zstd dictionary refused"))?;
                    cctx.compress2(&mut out, raw)
                }
                _ => cctx.compress(&mut out, raw, level),
            };
            r.map_err(|c| zerr("zstd compression failed", c))?;
            Ok(out)
        })
    }
}

/// Decodes frames, with the archive's dictionary when it has one.
pub struct ZstdDecoder {
    ddict: Option<zstd::zstd_safe::DDict<'static>>,
}

impl std::fmt::Debug for ZstdDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdDecoder").field("dict", &self.ddict.is_some()).finish()
    }
}

impl ZstdDecoder {
    /// A decoder with `dict` (empty: none).
    pub fn new(dict: &[u8]) -> ZstdDecoder {
        let ddict = (!dict.is_empty()).then(|| zstd::zstd_safe::DDict::create(dict));
        ZstdDecoder { ddict }
    }

    /// Decodes every frame `r` holds, in order, handing their content to
    /// `sink`; returns the bytes decoded. A frame without a content size,
    /// declaring more than [`FRAME_MAX`], decoding to another size, cut
    /// off, or damaged is an error of kind `InvalidData`.
    pub fn decode(&self, r: &mut dyn Read, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<u64> {
        let limit = zstd::zstd_safe::compress_bound(FRAME_MAX as usize) + 4096;
        let mut buf: Vec<u8> = Vec::new();
        let mut eof = false;
        let mut total = 0u64;
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        loop {
            if buf.is_empty() {
                if eof {
                    return Ok(total);
                }
                eof = fill(r, &mut buf, 64 << 10)?;
                if buf.is_empty() {
                    return Ok(total);
                }
            }
            let n = match zstd::zstd_safe::find_frame_compressed_size(&buf) {
                Ok(n) if n <= buf.len() => n,
                Ok(_) | Err(_) if !eof && buf.len() < limit => {
                    let more = buf.len().max(64 << 10).min(limit - buf.len());
                    eof = fill(r, &mut buf, more)?;
                    continue;
                }
                Ok(_) => return Err(bad("a zstd frame is cut off".into())),
                Err(c) => return Err(zerr("damaged zstd frame", c)),
            };
            let frame = &buf[..n];
            let size = match zstd::zstd_safe::get_frame_content_size(frame) {
                Ok(Some(s)) if s <= FRAME_MAX => s,
                Ok(Some(s)) => return Err(bad(format!("a zstd frame declares {s} bytes, more than {FRAME_MAX}"))),
                Ok(None) => return Err(bad("a zstd frame does not declare its size".into())),
                Err(_) => return Err(bad("damaged zstd frame header".into())),
            };
            let out = DCTX.with(|cell| -> io::Result<Vec<u8>> {
                let mut slot = cell.borrow_mut();
                let dctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
                let mut out: Vec<u8> = Vec::with_capacity(size as usize);
                let r = match &self.ddict {
                    Some(d) => dctx.decompress_using_ddict(&mut out, frame, d),
                    None => dctx.decompress(&mut out, frame),
                };
                r.map_err(|c| zerr("cannot decode a zstd frame", c))?;
                Ok(out)
            })?;
            if out.len() as u64 != size {
                return Err(bad(format!("a zstd frame holds {} bytes but declares {size}", out.len())));
            }
            total += size;
            sink(&out)?;
            buf.drain(..n);
        }
    }
}

/// Reads up to `n` more bytes of `r` onto `buf`; returns whether `r` ended.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, n: usize) -> io::Result<bool> {
    let want = n as u64;
    let got = r.take(want).read_to_end(buf)? as u64;
    Ok(got < want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, seed: u64) -> Vec<u8> {
        let words: [&[u8]; 6] = [b"import ", b"def ", b"return ", b"self.", b"value", b"\n    "];
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(words[(x % 6) as usize]);
        }
        v.truncate(n);
        v
    }

    fn decode_all(d: &ZstdDecoder, frames: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        d.decode(&mut &frames[..], &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn frames_round_trip_with_and_without_a_dictionary() {
        let samples: Vec<Vec<u8>> = (0..200).map(|i| text(2000 + i * 7, i as u64)).collect();
        let dict = sampled_dictionary(&samples, 64 << 10).expect("enough samples");
        assert_eq!(dict.len(), 64 << 10);
        for d in [Vec::new(), dict] {
            let enc = ZstdEncoder::new(d.clone(), 3).expect("encoder");
            let dec = ZstdDecoder::new(&d);
            let a = text(5000, 99);
            let b = text(300_000, 7);
            let mut frames = enc.frame(&a).expect("frame");
            frames.extend(enc.frame(&b).expect("frame"));
            assert_eq!(decode_all(&dec, &frames).expect("decodes"), [a, b].concat());
        }
    }

    #[test]
    fn the_dictionary_makes_small_files_smaller() {
        let samples: Vec<Vec<u8>> = (0..200).map(|i| text(1500, i as u64)).collect();
        let dict = sampled_dictionary(&samples, 32 << 10).expect("sampled");
        let with = ZstdEncoder::new(dict, 19).expect("encoder");
        let without = ZstdEncoder::new(Vec::new(), 19).expect("encoder");
        let f = text(1500, 1000);
        assert!(with.frame(&f).expect("frame").len() < without.frame(&f).expect("frame").len());
    }

    #[test]
    fn a_dictionary_comes_back_from_the_intact_pieces_of_damaged_copies() {
        let dict: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let copy = dict_copy(&dict);
        assert_eq!(copy.len(), 4 * DICT_STRIDE + (5000 - 4 * DICT_PIECE) + 23);
        // `gzip -dc` reads a copy as the dictionary.
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&copy[..]).read_to_end(&mut back).expect("gzip");
        assert_eq!(back, dict);
        // Two copies damaged in different pieces make one whole.
        let (mut a, mut b) = (copy.clone(), copy.clone());
        a[DICT_STRIDE + 40] ^= 1;
        a[4 * DICT_STRIDE + 5] ^= 1;
        b[100] ^= 1;
        b[2 * DICT_STRIDE + 30] ^= 1;
        let mut p = DictPieces::default();
        p.merge(&a);
        assert_eq!(p.whole(), None);
        p.merge(&b);
        assert_eq!(p.whole(), Some(dict.clone()));
        // The same piece damaged in both: not whole.
        let mut p = DictPieces::default();
        let mut c = copy.clone();
        c[DICT_STRIDE + 1] ^= 1;
        p.merge(&a);
        p.merge(&c);
        assert_eq!(p.whole(), None);
        // A dictionary of whole pieces ends with an empty one; a copy cut
        // after a whole piece is not taken for the whole.
        let even: Vec<u8> = (0..2048u32).map(|i| i as u8).collect();
        let copy = dict_copy(&even);
        assert_eq!(copy.len(), 2 * DICT_STRIDE + 23);
        let mut p = DictPieces::default();
        p.merge(&copy[..2 * DICT_STRIDE]);
        assert_eq!(p.whole(), None);
        p.merge(&copy);
        assert_eq!(p.whole(), Some(even));
    }

    #[test]
    fn a_copy_found_by_place_fills_only_missing_pieces_and_only_if_it_agrees() {
        let dict: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let copy = dict_copy(&dict);
        let mut a = copy.clone();
        a[DICT_STRIDE + 40] ^= 1;
        let mut p = DictPieces::default();
        p.merge(&a);
        assert_eq!(p.whole(), None);
        // Another dictionary's copy disagrees on the pieces both have.
        let other: Vec<u8> = (0..5000u32).map(|i| (i * 3 % 251) as u8).collect();
        assert!(!p.fill(&dict_copy(&other)));
        assert!(!p.fill(&[0u8; 3000]), "no piece at all");
        assert_eq!(p.whole(), None);
        // The same dictionary's copy, damaged elsewhere, completes it.
        let mut b = copy.clone();
        b[10] ^= 1;
        assert!(p.fill(&b));
        assert_eq!(p.whole(), Some(dict));
    }

    #[test]
    fn bad_frames_are_refused() {
        let enc = ZstdEncoder::new(Vec::new(), 3).expect("encoder");
        let dec = ZstdDecoder::new(&[]);
        let f = enc.frame(&text(10_000, 3)).expect("frame");
        assert!(decode_all(&dec, &f[..f.len() - 3]).is_err(), "cut");
        let mut flipped = f.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        // A flipped byte may still decode (zstd frames carry no checksum
        // here: the zip entry's CRC-32 covers them); it must not panic and
        // must not pass the declared size.
        if let Ok(out) = decode_all(&dec, &flipped) {
            assert_eq!(out.len(), 10_000);
        }
        assert!(decode_all(&dec, b"not zstd at all").is_err());
        // A frame that needs a dictionary, without it.
        let samples: Vec<Vec<u8>> = (0..200).map(|i| text(2000, i as u64)).collect();
        let dict = sampled_dictionary(&samples, 32 << 10).expect("sampled");
        let f = ZstdEncoder::new(dict, 3).expect("encoder").frame(&text(2000, 5)).expect("frame");
        assert!(decode_all(&dec, &f).is_err());
    }

    #[test]
    fn a_sampled_dictionary_is_the_samples_cut_to_its_size() {
        let samples: Vec<Vec<u8>> = vec![DICT_MAGIC.to_vec(), DICT_MAGIC.to_vec(), text(3000, 1), text(3000, 2)];
        // A first byte that would make zstd take it for a trained
        // dictionary is dropped; the rest is the samples, cut to size.
        let d = sampled_dictionary(&samples, 5000).expect("sampled");
        let all = samples.concat();
        assert_eq!(d, all[1..5000]);
        assert_eq!(sampled_dictionary(&samples[2..3], 500), None, "below DICT_MIN");
        assert_eq!(dict_target(1 << 20), 16 << 10);
        assert_eq!(dict_target(1 << 40), DICT_MAX);
    }

    #[test]
    fn a_copy_holds_the_dictionary_as_one_frame() {
        let dict = text(200_000, 3);
        let frame = dict_frame(&dict).expect("frame");
        assert!(frame.len() < dict.len() / 2, "{}", frame.len());
        assert_eq!(dict_of_copy(&frame, Some(6)), Some(dict.clone()));
        assert_eq!(dict_of_copy(&frame, None), Some(dict.clone()), "told by its first bytes");
        assert_eq!(dict_frame(&[]).expect("none"), Vec::<u8>::new());
        // Cut, damaged, or with bytes after it: refused.
        assert_eq!(dict_of_copy(&frame[..frame.len() - 1], Some(6)), None);
        assert_eq!(dict_of_copy(&[&frame[..], b"x"].concat(), Some(6)), None);
        let mut bad = frame.clone();
        bad[frame.len() / 2] ^= 0xff;
        if let Some(d) = dict_of_copy(&bad, Some(6)) {
            assert_ne!(
                d, dict,
                "a damaged frame is refused or gives other bytes (the header's SHA-256 then refuses it)"
            );
        }
        // A frame that declares more than DICT_LIMIT is not decoded.
        let mut big = Vec::with_capacity(1 << 20);
        zstd::zstd_safe::compress(&mut big, &vec![0u8; (DICT_LIMIT + 1) as usize], 1).expect("compress");
        assert_eq!(dict_of_copy(&big, Some(6)), None);
        // Version 5 copies hold the dictionary itself.
        assert_eq!(dict_of_copy(&dict, Some(5)), Some(dict.clone()));
        // Without a header, bytes that are neither a frame nor a trained
        // dictionary are nothing.
        assert_eq!(dict_of_copy(&dict, None), None);
    }
}
