//! Metadata text as a chain of small gzip members (format version 3).
//!
//! The manifest and the indexes of a version 3 archive are line-oriented
//! text compressed as a concatenation of gzip members, each holding whole
//! lines and at most [`PIECE`] bytes of text. `gzip -dc` (and `zcat`)
//! reads the chain as one text; a reader that meets damage decodes every
//! member it can and loses only the lines of the members the damage
//! touches, because each member is found again by its header and checked
//! by its own CRC-32.

use std::io::Read;

/// Text per gzip member, at most (a longer single line is one member).
pub const PIECE: usize = 64 << 10;
/// A member that inflates to more than this is refused.
const PIECE_MAX_OUT: u64 = 16 << 20;
/// libdeflate level for metadata: it is small, so take the better ratio.
const LEVEL: i32 = 9;
/// The first bytes of every member we write: magic, deflate, no flags.
const MAGIC: [u8; 4] = [0x1f, 0x8b, 8, 0];

/// Compresses `text` (whole lines) into a chain of gzip members appended
/// to `out`. The gzip headers carry no name and no time, so the bytes
/// depend only on the text.
/// The pieces are compressed in parallel on the current rayon pool.
pub fn compress(text: &[u8], out: &mut Vec<u8>) {
    for m in compress_each(text) {
        out.extend_from_slice(&m);
    }
}

/// The gzip members [`compress`] would write, each on its own.
pub fn compress_each(text: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(piece_end(rest));
        pieces.push(piece);
        rest = tail;
    }
    members(&pieces)
}

/// Each of `pieces` compressed into a gzip member of its own (in parallel
/// on the current rayon pool).
pub fn members(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    members_at(pieces, LEVEL)
}

/// [`members`] at libdeflate level `level` (1 to 12).
pub fn members_at(pieces: &[&[u8]], level: i32) -> Vec<Vec<u8>> {
    use rayon::prelude::*;
    pieces.par_iter().map(|p| member(p, level)).collect()
}

/// One gzip member holding `piece`.
fn member(piece: &[u8], level: i32) -> Vec<u8> {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap_or_default());
    let mut out = vec![0u8; c.gzip_compress_bound(piece.len())];
    match c.gzip_compress(piece, &mut out) {
        Ok(n) => {
            out.truncate(n);
            // Pin the header bytes that encoders may vary (XFL, OS), so
            // the output depends only on the text.
            out[8] = 0;
            out[9] = 255;
            out
        }
        // Cannot happen with a buffer of the bound's size; stay correct anyway.
        Err(_) => {
            let mut out = Vec::new();
            stored_member(piece, &mut out);
            out
        }
    }
}

/// Where the first piece of `text` ends: after the last newline within
/// [`PIECE`] bytes, or after the first newline when one line is longer.
fn piece_end(text: &[u8]) -> usize {
    if text.len() <= PIECE {
        return text.len();
    }
    match text[..PIECE].iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => text.iter().position(|&b| b == b'\n').map_or(text.len(), |i| i + 1),
    }
}

/// A gzip member holding `data` in stored deflate blocks.
pub(crate) fn stored_member(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 255]);
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let n = c.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
}

/// What could be read of a chain.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The text of every member that decoded and checked, in order.
    pub text: Vec<u8>,
    /// Whether the whole input decoded as one clean chain.
    pub complete: bool,
}

/// Decodes a chain of gzip members, stepping over damage: a member that
/// fails is dropped and decoding resumes at the next gzip header after it.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut out = Decoded { text: Vec::new(), complete: true };
    let mut at = 0;
    while at < bytes.len() {
        match decode_one(&bytes[at..]) {
            Some((text, used)) => {
                out.text.extend_from_slice(&text);
                at += used;
            }
            None => {
                out.complete = false;
                match find_magic(&bytes[at + 1..]) {
                    Some(i) => at += 1 + i,
                    None => break,
                }
            }
        }
    }
    out
}

fn find_magic(b: &[u8]) -> Option<usize> {
    b.windows(MAGIC.len()).position(|w| w == MAGIC)
}

/// The first ten bytes of every member this module writes.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// One member at the start of `b`, if it decodes and checks: its text and
/// its length in `b`.
pub fn decode_one(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    if !b.starts_with(&MAGIC[..3]) {
        return None;
    }
    let mut rest = b;
    let mut d = flate2::bufread::GzDecoder::new(&mut rest);
    let mut text = Vec::new();
    (&mut d).take(PIECE_MAX_OUT + 1).read_to_end(&mut text).ok()?;
    if text.len() as u64 > PIECE_MAX_OUT || d.header().is_none() {
        return None;
    }
    drop(d);
    Some((text, b.len() - rest.len()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lines(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 97)).into_bytes()).collect()
    }

    #[test]
    fn a_chain_is_one_gzip_text_to_stock_readers() {
        let text = lines(5000);
        let mut z = Vec::new();
        compress(&text, &mut z);
        assert!(z.len() < text.len() / 3);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&z[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, text);
        assert_eq!(decode(&z), Decoded { text, complete: true });
    }

    #[test]
    fn damage_costs_only_the_members_it_touches() {
        let text = lines(20_000);
        let mut z = Vec::new();
        compress(&text, &mut z);
        let members = z.windows(4).filter(|w| *w == MAGIC).count();
        assert!(members >= 4, "{members} members");
        let mid = z.len() / 2;
        for b in &mut z[mid..mid + 100] {
            *b = 0;
        }
        let d = decode(&z);
        assert!(!d.complete);
        // Whole lines survive, each one of the original, in order.
        let got: Vec<&[u8]> = d.text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert!(got.len() > 20_000 / 2 && got.len() < 20_000, "{}", got.len());
        let all: std::collections::HashSet<&[u8]> = text.split(|&b| b == b'\n').collect();
        assert!(got.iter().all(|l| all.contains(l)));
    }

    #[test]
    fn output_depends_only_on_the_text() {
        let text = lines(3000);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        compress(&text, &mut a);
        compress(&text, &mut b);
        assert_eq!(a, b);
        let mut s = Vec::new();
        stored_member(b"abc\n", &mut s);
        assert_eq!(decode(&s).text, b"abc\n");
    }
}
