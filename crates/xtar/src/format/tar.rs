//! Tar headers: ustar, with the GNU long-name record for names that do not
//! fit the ustar name and prefix fields, and base-256 numbers for sizes of
//! 8 GiB and more.

/// Size of a tar block.
pub const BLOCK: usize = 512;
const GNU_LONGNAME: u8 = b'L';
const GNU_LONGLINK: u8 = b'K';
const LONGLINK_NAME: &[u8] = b"././@LongLink";

/// Bytes of zero padding after `size` bytes of data.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Writes the header block(s) of a regular-file member into `out` and
/// returns the offset within `out` of the final header block, whose size
/// field [`patch_size`] can rewrite later.
pub fn write_member_header(out: &mut Vec<u8>, name: &[u8], size: u64, mtime: i64, mode: u32) -> usize {
    let (ustar_name, prefix) = match split_ustar(name) {
        Some(split) => split,
        None => {
            // GNU long name record, then a header with a truncated name.
            long_record(out, GNU_LONGNAME, name);
            (&name[..100], &b""[..])
        }
    };
    let at = out.len();
    let mut h = [0u8; BLOCK];
    fill_header(&mut h, ustar_name, prefix, size, mtime, mode, b'0', false);
    out.extend_from_slice(&h);
    at
}

/// The kind of a tree entry (version 3's tree tar): its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// An empty regular file (`0`).
    Empty,
    /// A hard link (`1`) to the name in `link`.
    HardLink,
    /// A symbolic link (`2`) to `link`.
    Symlink,
    /// A directory (`5`); its name ends with `/`.
    Dir,
}

/// Writes the header block(s) of an entry without data: a GNU long-name
/// record (`L`) when the name does not fit ustar, a GNU long-link record
/// (`K`) when the link target is longer than 100 bytes, then the header.
pub fn write_entry_header(out: &mut Vec<u8>, name: &[u8], kind: EntryKind, link: &[u8], mtime: i64, mode: u32) {
    let name: Vec<u8> = if kind == EntryKind::Dir { [name, b"/"].concat() } else { name.to_vec() };
    let long_link = link.len() > 100;
    if long_link {
        long_record(out, GNU_LONGLINK, link);
    }
    let (ustar_name, prefix) = match split_ustar(&name) {
        // A long link needs GNU headers throughout: keep the name whole.
        Some(split) if !long_link => split,
        _ if name.len() <= 100 => (&name[..], &b""[..]),
        _ => {
            long_record(out, GNU_LONGNAME, &name);
            (&name[..100], &b""[..])
        }
    };
    let flag = match kind {
        EntryKind::Empty => b'0',
        EntryKind::HardLink => b'1',
        EntryKind::Symlink => b'2',
        EntryKind::Dir => b'5',
    };
    let mut h = [0u8; BLOCK];
    fill_header(&mut h, ustar_name, prefix, 0, mtime, mode, flag, long_link);
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    set_checksum(&mut h);
    out.extend_from_slice(&h);
}

/// A GNU long-name (`L`) or long-link (`K`) record holding `value`.
fn long_record(out: &mut Vec<u8>, flag: u8, value: &[u8]) {
    let mut h = [0u8; BLOCK];
    fill_header(&mut h, LONGLINK_NAME, b"", value.len() as u64 + 1, 0, 0, flag, true);
    out.extend_from_slice(&h);
    out.extend_from_slice(value);
    out.push(0);
    out.resize(out.len() + padding(value.len() as u64 + 1), 0);
}

/// Splits a name into ustar `name` (≤ 100 bytes) and `prefix` (≤ 155
/// bytes) fields at a `/`, if possible.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((name, b""));
    }
    if name.len() > 256 {
        return None;
    }
    // The prefix must end at a '/', be at most 155 bytes, and leave at most
    // 100 bytes of name.
    let min_split = name.len() - 101; // index of '/' such that name part <= 100
    (min_split..name.len().min(156)).find(|&i| name[i] == b'/').filter(|&i| i > 0).map(|i| (&name[i + 1..], &name[..i]))
}

#[allow(clippy::too_many_arguments)]
fn fill_header(h: &mut [u8; BLOCK], name: &[u8], prefix: &[u8], size: u64, mtime: i64, mode: u32, kind: u8, gnu: bool) {
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    number(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.clamp(0, 0o77777777777) as u64);
    h[156] = kind;
    if gnu {
        h[257..265].copy_from_slice(b"ustar  \0");
    } else {
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len()].copy_from_slice(prefix);
    }
    set_checksum(h);
}

fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// A size field: octal below 8 GiB, GNU base-256 above.
fn number(field: &mut [u8], v: u64) {
    if v < (1u64 << 33) {
        octal(field, v);
    } else {
        field.fill(0);
        field[0] = 0x80;
        let be = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&be);
    }
}

fn set_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// Rewrites the size field of a header block and its checksum.
pub fn patch_size(h: &mut [u8; BLOCK], size: u64) {
    number(&mut h[124..136], size);
    set_checksum(h);
}

/// A decoded header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The full name (prefix joined with name).
    pub name: Vec<u8>,
    /// The size of the data that follows.
    pub size: u64,
    /// The type flag byte.
    pub kind: u8,
    /// The modification time field.
    pub mtime: u64,
}

impl Header {
    /// Whether this is a GNU long-name record (its data is the next name).
    pub fn is_long_name(&self) -> bool {
        self.kind == GNU_LONGNAME
    }

    /// Whether this header announces a regular file (`0` or NUL).
    pub fn is_regular(&self) -> bool {
        self.kind == b'0' || self.kind == 0
    }
}

/// What one 512-byte block is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// All zeros (end-of-archive marker, or padding).
    Zero,
    /// A header with a valid checksum.
    Header(Header),
    /// Not a valid header.
    Invalid,
}

/// Decodes one block.
pub fn parse_block(b: &[u8; BLOCK]) -> Block {
    if b.iter().all(|&x| x == 0) {
        return Block::Zero;
    }
    let Some(stored) = parse_octal(&b[148..156]) else {
        return Block::Invalid;
    };
    let unsigned: u64 =
        b.iter().enumerate().map(|(i, &x)| if (148..156).contains(&i) { 32 } else { u64::from(x) }).sum();
    if stored != unsigned {
        return Block::Invalid;
    }
    let Some(size) = parse_number(&b[124..136]) else {
        return Block::Invalid;
    };
    let mtime = parse_number(&b[136..148]).unwrap_or(0);
    let name = cstr(&b[..100]);
    let ustar = &b[257..263] == b"ustar\0";
    let prefix = if ustar { cstr(&b[345..500]) } else { &[][..] };
    let full = if prefix.is_empty() { name.to_vec() } else { [prefix, b"/", name].concat() };
    Block::Header(Header { name: full, size, kind: b[156], mtime })
}

fn cstr(f: &[u8]) -> &[u8] {
    match f.iter().position(|&b| b == 0) {
        Some(i) => &f[..i],
        None => f,
    }
}

fn parse_octal(f: &[u8]) -> Option<u64> {
    let s = f.iter().copied().skip_while(|&b| b == b' ');
    let mut v: u64 = 0;
    let mut any = false;
    for b in s {
        match b {
            b'0'..=b'7' => {
                v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
                any = true;
            }
            b' ' | 0 => break,
            _ => return None,
        }
    }
    any.then_some(v)
}

fn parse_number(f: &[u8]) -> Option<u64> {
    if f[0] & 0x80 != 0 {
        if f[0] != 0x80 || f[1..f.len() - 8].iter().any(|&b| b != 0) {
            return None; // negative or wider than 64 bits
        }
        let mut be = [0u8; 8];
        be.copy_from_slice(&f[f.len() - 8..]);
        return Some(u64::from_be_bytes(be));
    }
    parse_octal(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(name: &[u8], size: u64) -> Header {
        let mut out = Vec::new();
        let at = write_member_header(&mut out, name, size, 1_700_000_000, 0o644);
        assert_eq!(out.len() % BLOCK, 0);
        let mut blocks = out.chunks_exact(BLOCK).map(|c| {
            let mut b = [0u8; BLOCK];
            b.copy_from_slice(c);
            parse_block(&b)
        });
        let first = blocks.next().expect("a block");
        let Block::Header(h) = first else { panic!("invalid first block") };
        if h.is_long_name() {
            let data = &out[BLOCK..BLOCK + h.size as usize - 1];
            let Block::Header(mut real) = parse_block(out[at..at + BLOCK].try_into().expect("block")) else {
                panic!("invalid header")
            };
            real.name = data.to_vec();
            return real;
        }
        h
    }

    #[test]
    fn names_of_every_length_round_trip() {
        for len in [1usize, 99, 100, 101, 150, 255, 256, 257, 1000, 5000] {
            let name: Vec<u8> = (0..len).map(|i| if i % 7 == 6 { b'/' } else { b'a' + (i % 26) as u8 }).collect();
            assert_eq!(roundtrip(&name, 5).name, name, "len {len}");
        }
    }

    #[test]
    fn huge_sizes_use_base_256() {
        let h = roundtrip(b"big.zip", 1u64 << 40);
        assert_eq!(h.size, 1u64 << 40);
        let mut out = Vec::new();
        write_member_header(&mut out, b"x", 0, 0, 0o644);
        let mut block: [u8; BLOCK] = out[..BLOCK].try_into().expect("block");
        patch_size(&mut block, 9 << 30);
        assert_eq!(
            parse_block(&block),
            Block::Header(Header { name: b"x".to_vec(), size: 9 << 30, kind: b'0', mtime: 0 })
        );
    }

    #[test]
    fn damaged_block_is_invalid() {
        let mut out = Vec::new();
        write_member_header(&mut out, b"x.zip", 10, 0, 0o644);
        out[3] ^= 1;
        assert_eq!(parse_block(out[..BLOCK].try_into().expect("block")), Block::Invalid);
    }
}
