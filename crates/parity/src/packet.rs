//! Self-checking packets: the metadata of parity volumes (recovery.md §3).

/// The first 8 bytes of every packet.
pub const MAGIC: &[u8; 8] = b"XTRSPK01";
/// Header length: magic, type, body length, body CRC, header CRC.
pub const HEADER: usize = 24;

/// Packet types.
pub const DESCRIPTOR: u32 = 1;
/// A run of block checksums.
pub const TABLE: u32 = 2;
/// Which parity volume this file is.
pub const VOLUME: u32 = 3;

/// Appends a packet; the body is padded with zeros to 8 bytes.
pub fn push(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&kind.to_le_bytes());
    h.extend_from_slice(&(body.len() as u32).to_le_bytes());
    h.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    let hc = crc32fast::hash(&h);
    h.extend_from_slice(&hc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(body);
    out.resize(out.len() + padding(body.len()), 0);
}

/// The size of a packet with a body of `len` bytes.
pub fn size(len: usize) -> usize {
    HEADER + len + padding(len)
}

fn padding(len: usize) -> usize {
    (8 - len % 8) % 8
}

/// Every intact packet in `buf` (at 8-byte aligned offsets), in order:
/// `(offset, type, body)`. Damaged packets are skipped.
pub fn scan(buf: &[u8]) -> Vec<(usize, u32, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + HEADER <= buf.len() {
        // Find the next magic at an aligned offset.
        let Some(i) = buf[at..].windows(8).step_by(8).position(|w| w == MAGIC) else { break };
        at += i * 8;
        if at + HEADER > buf.len() {
            break;
        }
        let h = &buf[at..at + HEADER];
        let word = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let (kind, len, body_crc, head_crc) = (word(8), word(12) as usize, word(16), word(20));
        if crc32fast::hash(&h[..20]) == head_crc && at + HEADER + len <= buf.len() {
            let body = &buf[at + HEADER..at + HEADER + len];
            if crc32fast::hash(body) == body_crc {
                out.push((at, kind, body));
                at += size(len);
                continue;
            }
        }
        at += 8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_found_and_damage_is_skipped() {
        let mut buf = vec![0u8; 16];
        push(&mut buf, TABLE, b"hello");
        push(&mut buf, DESCRIPTOR, b"world, longer body");
        let found = scan(&buf);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].1, found[0].2), (TABLE, &b"hello"[..]));
        assert_eq!((found[1].1, found[1].2), (DESCRIPTOR, &b"world, longer body"[..]));
        let mut bad = buf.clone();
        bad[16 + HEADER + 1] ^= 1; // first body
        let found = scan(&bad);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, DESCRIPTOR);
    }
}
