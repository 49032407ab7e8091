//! A zip archive with exactly one entry: the file member of an `.xtar`.
//!
//! Written by hand rather than with the `zip` crate because the writer
//! needs to emit pre-compressed data (chunked parallel deflate) with known
//! CRC and sizes, patch the local header of a streamed member in place, and
//! produce identical bytes on every run. The `zip` crate and Info-ZIP
//! `unzip` read what this writes; tests check both.

use std::io::Read;

const LOCAL_SIG: u32 = 0x0403_4b50;
/// Where the CRC-32 is in a local file header.
pub const LOCAL_CRC_AT: usize = 14;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EXTRA_ZIP64: u16 = 0x0001;
const EXTRA_UT: u16 = 0x5455;
const FLAG_UTF8: u16 = 1 << 11;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// Uncompressed sizes from this on are written as zip64, decided up front
/// so that the local header has a fixed length. Chosen well below 4 GiB so
/// that a compressed size cannot overflow 32 bits either.
pub const ZIP64_THRESHOLD: u64 = 0xF000_0000;
/// File type bits of a regular file in the external attributes.
pub const S_IFREG: u32 = 0o100_000;
/// File type bits of a symbolic link in the external attributes.
pub const S_IFLNK: u32 = 0o120_000;

/// The compression method of the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Stored as is (method 0).
    Stored,
    /// Raw deflate (method 8).
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// Everything about the entry that goes into its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Entry name: the path relative to the archive root.
    pub name: Vec<u8>,
    /// Compression method.
    pub method: Method,
    /// CRC-32 of the uncompressed data.
    pub crc: u32,
    /// Compressed size.
    pub csize: u64,
    /// Uncompressed size.
    pub usize: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Unix mode including the file type bits (`S_IFREG` or `S_IFLNK`).
    pub unix_mode: u32,
    /// Whether zip64 fields are used.
    pub zip64: bool,
}

impl EntryInfo {
    /// Whether an entry with this uncompressed size is written as zip64.
    pub fn needs_zip64(usize: u64) -> bool {
        usize >= ZIP64_THRESHOLD
    }

    fn flags(&self) -> u16 {
        if std::str::from_utf8(&self.name).is_ok() && !self.name.is_ascii() {
            FLAG_UTF8
        } else {
            0
        }
    }

    fn version_needed(&self) -> u16 {
        if self.zip64 {
            45
        } else if self.method == Method::Deflated {
            20
        } else {
            10
        }
    }

    fn ut_mtime(&self) -> Option<u32> {
        u32::try_from(self.mtime).ok().filter(|&t| t <= i32::MAX as u32)
    }

    /// The extra fields, the same in the local header and the central
    /// directory: the mtime (UT) and, for large files, the zip64 sizes.
    fn extra_fields(&self) -> Vec<u8> {
        let mut extra = Vec::new();
        if let Some(t) = self.ut_mtime() {
            put16(&mut extra, EXTRA_UT);
            put16(&mut extra, 5);
            extra.push(1);
            put32(&mut extra, t);
        }
        if self.zip64 {
            put16(&mut extra, EXTRA_ZIP64);
            put16(&mut extra, 16);
            put64(&mut extra, self.usize);
            put64(&mut extra, self.csize);
        }
        extra
    }

    /// The local file header, with its extra fields.
    pub fn local_header(&self) -> Vec<u8> {
        // The CRC-32 is at LOCAL_CRC_AT (after the signature, version,
        // flags, method, time and date).
        let extra = self.extra_fields();
        let (time, date) = dos_time(self.mtime);
        let mut h = Vec::with_capacity(30 + self.name.len() + extra.len());
        put32(&mut h, LOCAL_SIG);
        put16(&mut h, self.version_needed());
        put16(&mut h, self.flags());
        put16(&mut h, self.method.code());
        put16(&mut h, time);
        put16(&mut h, date);
        put32(&mut h, self.crc);
        put32(&mut h, if self.zip64 { u32::MAX } else { self.csize as u32 });
        put32(&mut h, if self.zip64 { u32::MAX } else { self.usize as u32 });
        put16(&mut h, self.name.len() as u16);
        put16(&mut h, extra.len() as u16);
        h.extend_from_slice(&self.name);
        h.extend_from_slice(&extra);
        h
    }

    /// The central directory and end records that follow the data.
    pub fn trailer(&self) -> Vec<u8> {
        let cd_offset = self.local_header().len() as u64 + self.csize;
        let mut t = self.central_record(&self.extra_fields(), 0);
        let cd_size = t.len() as u64;
        t.extend_from_slice(&end_records_with(1, cd_offset, cd_size, self.zip64));
        t
    }

    /// The central directory header of this entry in a pack (version 3),
    /// whose local header is at `offset` in the zip. Unlike the one of
    /// [`EntryInfo::trailer`], it carries no UT field: Info-ZIP `unzip`
    /// takes the time from the local header.
    pub fn central_header(&self, offset: u64) -> Vec<u8> {
        let mut extra = Vec::new();
        let big_offset = offset >= u64::from(u32::MAX);
        if self.zip64 || big_offset {
            let mut body = Vec::new();
            if self.zip64 {
                put64(&mut body, self.usize);
                put64(&mut body, self.csize);
            }
            if big_offset {
                put64(&mut body, offset);
            }
            put16(&mut extra, EXTRA_ZIP64);
            put16(&mut extra, body.len() as u16);
            extra.extend_from_slice(&body);
        }
        self.central_record(&extra, if big_offset { u32::MAX } else { offset as u32 })
    }

    /// A central directory header with these extra fields and this local
    /// header offset field.
    fn central_record(&self, extra: &[u8], offset_field: u32) -> Vec<u8> {
        let (time, date) = dos_time(self.mtime);
        let mut t = Vec::with_capacity(46 + self.name.len() + extra.len());
        put32(&mut t, CENTRAL_SIG);
        put16(&mut t, (3 << 8) | self.version_needed().max(30)); // made by: Unix
        put16(&mut t, self.version_needed());
        put16(&mut t, self.flags());
        put16(&mut t, self.method.code());
        put16(&mut t, time);
        put16(&mut t, date);
        put32(&mut t, self.crc);
        put32(&mut t, if self.zip64 { u32::MAX } else { self.csize as u32 });
        put32(&mut t, if self.zip64 { u32::MAX } else { self.usize as u32 });
        put16(&mut t, self.name.len() as u16);
        put16(&mut t, extra.len() as u16);
        put16(&mut t, 0); // comment
        put16(&mut t, 0); // disk
        put16(&mut t, 0); // internal attributes
        put32(&mut t, self.unix_mode << 16);
        put32(&mut t, offset_field);
        t.extend_from_slice(&self.name);
        t.extend_from_slice(extra);
        t
    }

    /// Total length of the zip: local header, data and trailer.
    pub fn total_len(&self) -> u64 {
        self.local_header().len() as u64 + self.csize + self.trailer().len() as u64
    }
}

/// The end records of a zip of `count` entries whose central directory
/// of `cd_size` bytes starts at `cd_offset`: the zip64 end record and
/// locator when a value does not fit the classic one, then the end of
/// central directory record.
pub fn end_records(count: u64, cd_offset: u64, cd_size: u64) -> Vec<u8> {
    let zip64 = count >= 0xFFFF || cd_offset >= u64::from(u32::MAX) || cd_size >= u64::from(u32::MAX);
    end_records_with(count, cd_offset, cd_size, zip64)
}

/// The end records, with the zip64 ones when `zip64` (the single-entry
/// zips of versions 1 and 2 then also mark the classic offset field).
fn end_records_with(count: u64, cd_offset: u64, cd_size: u64, zip64: bool) -> Vec<u8> {
    let mut t = Vec::new();
    if zip64 {
        let eocd64_offset = cd_offset + cd_size;
        put32(&mut t, ZIP64_EOCD_SIG);
        put64(&mut t, 44);
        put16(&mut t, (3 << 8) | 45);
        put16(&mut t, 45);
        put32(&mut t, 0);
        put32(&mut t, 0);
        put64(&mut t, count);
        put64(&mut t, count);
        put64(&mut t, cd_size);
        put64(&mut t, cd_offset);
        put32(&mut t, ZIP64_LOCATOR_SIG);
        put32(&mut t, 0);
        put64(&mut t, eocd64_offset);
        put32(&mut t, 1);
    }
    put32(&mut t, EOCD_SIG);
    put16(&mut t, 0);
    put16(&mut t, 0);
    put16(&mut t, count.min(0xFFFF) as u16);
    put16(&mut t, count.min(0xFFFF) as u16);
    put32(&mut t, cd_size.min(u64::from(u32::MAX)) as u32);
    put32(&mut t, if zip64 { u32::MAX } else { cd_offset.min(u64::from(u32::MAX)) as u32 });
    put16(&mut t, 0);
    t
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// MS-DOS time and date of a Unix time, in UTC, clamped to 1980..2107.
fn dos_time(t: i64) -> (u16, u16) {
    let min = 315_532_800; // 1980-01-01
    let max = 4_354_819_199; // 2107-12-31 23:59:59
    let t = t.clamp(min, max);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = manifest::civil_from_days(days);
    let time = ((secs / 3600) << 11) | (((secs % 3600) / 60) << 5) | ((secs % 60) / 2);
    let date = ((y - 1980) << 9) | (m << 5) | d;
    (time as u16, date as u16)
}

/// The Unix time of an MS-DOS time and date read as UTC (as [`dos_time`]
/// writes them; seconds to the even second), or `None` for fields out of
/// range.
pub fn from_dos_time(time: u16, date: u16) -> Option<i64> {
    let (time, date) = (i64::from(time), i64::from(date));
    let (y, m, d) = (1980 + (date >> 9), (date >> 5) & 15, date & 31);
    let (h, min, s) = (time >> 11, (time >> 5) & 63, (time & 31) * 2);
    if !(1..=12).contains(&m) || d == 0 || h > 23 || min > 59 || s > 59 {
        return None;
    }
    Some(manifest::days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60 + s)
}

/// A parsed local file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHeader {
    /// Entry name.
    pub name: Vec<u8>,
    /// Compression method.
    pub method: Method,
    /// CRC-32 of the uncompressed data.
    pub crc: u32,
    /// Compressed size.
    pub csize: u64,
    /// Uncompressed size.
    pub usize: u64,
    /// Modification time from the UT extra field, when present.
    pub mtime: Option<i64>,
    /// Length of the header including name and extra fields.
    pub len: u64,
}

/// Reads and checks a local file header. Errors are messages for the user.
pub fn read_local_header(r: &mut impl Read) -> Result<LocalHeader, String> {
    let mut fixed = [0u8; 30];
    r.read_exact(&mut fixed).map_err(|e| format!("truncated zip header: {e}"))?;
    let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
    if u32_at(0) != LOCAL_SIG {
        return Err("not a zip member (bad local header signature)".into());
    }
    let flags = u16_at(6);
    if flags & FLAG_DATA_DESCRIPTOR != 0 {
        return Err("zip member uses a data descriptor, which xtar never writes".into());
    }
    if flags & 1 != 0 {
        return Err("zip member is encrypted".into());
    }
    let method = match u16_at(8) {
        0 => Method::Stored,
        8 => Method::Deflated,
        m => return Err(format!("unsupported zip compression method {m}")),
    };
    let crc = u32_at(14);
    let mut csize = u64::from(u32_at(18));
    let mut usize = u64::from(u32_at(22));
    let name_len = usize::from(u16_at(26));
    let extra_len = usize::from(u16_at(28));
    let mut rest = vec![0u8; name_len + extra_len];
    r.read_exact(&mut rest).map_err(|e| format!("truncated zip header: {e}"))?;
    let name = rest[..name_len].to_vec();
    let mut extra = &rest[name_len..];
    let mut mtime = None;
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let body = extra.get(4..4 + len).ok_or("zip extra field overruns its header")?;
        match id {
            EXTRA_ZIP64 => {
                let mut fields = body.chunks_exact(8).map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    u64::from_le_bytes(b)
                });
                if usize == u64::from(u32::MAX) {
                    usize = fields.next().ok_or("zip64 field lacks the size")?;
                }
                if csize == u64::from(u32::MAX) {
                    csize = fields.next().ok_or("zip64 field lacks the compressed size")?;
                }
            }
            EXTRA_UT if !body.is_empty() && body[0] & 1 != 0 && body.len() >= 5 => {
                mtime = Some(i64::from(u32::from_le_bytes([body[1], body[2], body[3], body[4]])));
            }
            _ => {}
        }
        extra = &extra[4 + len..];
    }
    Ok(LocalHeader { name, method, crc, csize, usize, mtime, len: (30 + name_len + extra_len) as u64 })
}

/// The unix mode (with type bits) from the central directory that follows
/// the data, if it can be found in `trailer`.
pub fn central_unix_mode(trailer: &[u8]) -> Option<u32> {
    if trailer.len() < 46 || trailer[..4] != CENTRAL_SIG.to_le_bytes() {
        return None;
    }
    let made_by_unix = trailer[5] == 3;
    let attr = u32::from_le_bytes([trailer[38], trailer[39], trailer[40], trailer[41]]);
    made_by_unix.then_some(attr >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &[u8], usize: u64, zip64: bool) -> EntryInfo {
        EntryInfo {
            name: name.to_vec(),
            method: Method::Stored,
            crc: crc32fast::hash(&vec![b'x'; usize as usize]),
            csize: usize,
            usize,
            mtime: 1_700_000_000,
            unix_mode: S_IFREG | 0o640,
            zip64,
        }
    }

    fn build(i: &EntryInfo) -> Vec<u8> {
        let mut z = i.local_header();
        z.extend(std::iter::repeat_n(b'x', i.usize as usize));
        z.extend(i.trailer());
        z
    }

    #[test]
    fn the_zip_crate_reads_our_members() {
        for zip64 in [false, true] {
            let i = info("dir/caf\u{e9}.txt".as_bytes(), 100, zip64);
            let bytes = build(&i);
            assert_eq!(bytes.len() as u64, i.total_len());
            let mut a = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip reads it");
            let mut f = a.by_index(0).expect("entry");
            assert_eq!(f.name(), "dir/caf\u{e9}.txt");
            assert_eq!(f.unix_mode(), Some(S_IFREG | 0o640));
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("data");
            assert_eq!(data, vec![b'x'; 100]);
        }
    }

    #[test]
    fn local_header_round_trips() {
        let i = info(b"a/b", 10, true);
        let bytes = build(&i);
        let h = i.local_header();
        assert_eq!(h[LOCAL_CRC_AT..LOCAL_CRC_AT + 4], i.crc.to_le_bytes());
        let h = read_local_header(&mut &bytes[..]).expect("parses");
        assert_eq!((h.name.as_slice(), h.usize, h.csize, h.crc), (&b"a/b"[..], 10, 10, i.crc));
        assert_eq!(h.mtime, Some(1_700_000_000));
        let trailer = &bytes[(h.len + h.csize) as usize..];
        assert_eq!(central_unix_mode(trailer), Some(S_IFREG | 0o640));
    }

    #[test]
    fn dos_times_read_back_to_the_even_second() {
        for t in [315_532_800i64, 1_700_000_001, 1_700_000_000, 4_354_819_198] {
            let (time, date) = dos_time(t);
            assert_eq!(from_dos_time(time, date), Some(t - t % 2), "{t}");
        }
        assert_eq!(from_dos_time(0, 0), None);
    }

    #[test]
    fn dos_dates() {
        assert_eq!(manifest::civil_from_days(0), (1970, 1, 1));
        assert_eq!(manifest::civil_from_days(19_723), (2024, 1, 1));
        let (_, date) = dos_time(1_700_000_000); // 2023-11-14
        assert_eq!(date, ((2023 - 1980) << 9) | (11 << 5) | 14);
    }
}
