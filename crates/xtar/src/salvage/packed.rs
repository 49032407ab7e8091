//! Salvage of version 3 archives: packs of zip entries.
//!
//! The tar headers are found block by block, as for the nested layout.
//! Inside a pack, entries are found three ways, so that no single header
//! decides: from the pack's central directory (their offsets), by walking
//! local headers one after another, and, in bytes that neither explains,
//! by their `PK\3\4` signature at any offset. A pack whose tar header was
//! lost is found by its end-of-central-directory record, which gives its
//! start. Entries found by their central directory or walk are checked
//! against their CRC-32 (and the manifest's SHA-256 when it survived);
//! entries found by signature alone are taken only if the manifest or the
//! tree tar expects them and their content matches exactly.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{SalvageOptions, SalvageReport, MAX_META, MAX_REGIONS};
use crate::extract::{Book, Engine, ExtractOptions};
use crate::format::tar::BLOCK;
use crate::format::{self, gz, zip, MemberName, PLACE_SLACK};
use crate::scan::{BlockScan, Scanned};
use crate::unseal::{SealedReader, Unseal};
use crate::{Error, Observer, Result};

const LOCAL_SIG: &[u8; 4] = b"PK\x03\x04";
const CENTRAL_SIG: &[u8; 4] = b"PK\x01\x02";
const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
/// Bytes read at a time when searching for signatures.
const WINDOW: u64 = 4 << 20;

/// Reads `[pos, end)` of a file through positioned reads.
struct At<'a> {
    f: &'a File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self.f.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// An entry of a central directory: its name, where its local header is,
/// and what the local header would say.
struct Central {
    name: Vec<u8>,
    offset: u64,
    /// Method code, CRC-32, compressed and uncompressed sizes, Unix mode,
    /// and whether zip64 fields hold the sizes.
    method: u16,
    crc: u32,
    csize: u64,
    usize: u64,
    mode: u32,
    zip64: bool,
    /// Its MS-DOS time and date (UTC).
    dos: (u16, u16),
}

impl Central {
    /// The entry this record describes, had it the mtime `mtime`: the
    /// local header a writer of ours gave it is `local_header()` of it.
    fn info(&self, mtime: i64) -> Option<zip::EntryInfo> {
        let method = match self.method {
            0 => zip::Method::Stored,
            8 => zip::Method::Deflated,
            _ => return None,
        };
        Some(zip::EntryInfo {
            name: self.name.clone(),
            method,
            crc: self.crc,
            csize: self.csize,
            usize: self.usize,
            mtime,
            unix_mode: self.mode,
            zip64: self.zip64,
        })
    }
}

struct State<'a, 'e> {
    f: &'a File,
    archive: &'a Path,
    len: u64,
    engine: &'a mut Engine<'e>,
    /// Byte ranges explained (headers, metadata, entries, central
    /// directories), by start: they do not overlap.
    covered: std::collections::BTreeMap<u64, u64>,
    /// Pack numbers seen, and whether each one's central directory read.
    packs: Vec<(u32, bool)>,
    found_by_signature: u64,
    kept: std::collections::HashMap<Vec<u8>, (u64, u64)>,
    /// An encrypted archive: its key and the paths of its entries.
    unseal: Option<Unseal>,
}

impl State<'_, '_> {
    /// The path of the file a zip entry named `name` holds: in version 5,
    /// the name without `.zst` (`None` when it has no such suffix: not an
    /// entry of the archive's).
    fn file_path(&self, name: &[u8]) -> Option<Vec<u8>> {
        // Version 5 (its entries are frames) once the dictionary was sought.
        if !matches!(self.engine.frames, crate::extract::Frames::None) {
            name.strip_suffix(crate::codec::ZIP_SUFFIX).map(<[u8]>::to_vec)
        } else {
            Some(name.to_vec())
        }
    }

    fn read(&self, at: u64, n: u64) -> Vec<u8> {
        let n = n.min(self.len.saturating_sub(at));
        let mut v = vec![0u8; usize::try_from(n).unwrap_or(0)];
        let mut done = 0;
        while done < v.len() {
            match self.f.read_at(&mut v[done..], at + done as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => done += k,
            }
        }
        v.truncate(done);
        v
    }

    fn is_covered(&self, at: u64) -> bool {
        self.covered.range(..=at).next_back().is_some_and(|(_, &end)| at < end)
    }

    fn cover(&mut self, from: u64, to: u64) {
        if to > from {
            let e = self.covered.entry(from).or_insert(to);
            *e = (*e).max(to);
        }
    }

    /// The local header at `at`, if one parses there and its entry fits
    /// before `end`.
    fn local_at(&self, at: u64, end: u64) -> Option<zip::LocalHeader> {
        let fixed = self.read(at, 30);
        if fixed.len() < 30 || &fixed[..4] != LOCAL_SIG {
            return None;
        }
        let var = u64::from(u16::from_le_bytes([fixed[26], fixed[27]]))
            + u64::from(u16::from_le_bytes([fixed[28], fixed[29]]));
        let head = self.read(at, 30 + var);
        let l = zip::read_local_header(&mut &head[..]).ok()?;
        (format::check_member_path(&l.name).is_ok() && at + l.len + l.csize <= end).then_some(l)
    }

    /// Takes the entry at `at` (its local header parsed as `l`).
    fn take_entry(&mut self, at: u64, l: &zip::LocalHeader) -> Result<()> {
        let size = l.len + l.csize;
        self.cover(at, at + size);
        if self.unseal.is_some() {
            return self.take_sealed(at, l, false).map(|_| ());
        }
        let Some(path) = self.file_path(&l.name) else { return Ok(()) };
        self.kept.insert(path.clone(), (at, size));
        let mut r = At { f: self.f, pos: at, end: at + size };
        self.engine.member(path, size, &mut r)?;
        self.engine.collect(false)
    }

    /// Takes the entry of an encrypted archive at `at`: its payload opened
    /// and handed to the engine as the plain format's zip entry. An entry
    /// found by its signature alone (`by_signature`) is taken only if its
    /// first chunk authenticates: then it is this archive's, under its own
    /// name (§A9), whether or not the manifest survived to expect it; if it
    /// does not, nothing is said (the signature may be chance). Returns
    /// whether it was taken.
    fn take_sealed(&mut self, at: u64, l: &zip::LocalHeader, by_signature: bool) -> Result<bool> {
        let Some(u) = self.unseal.as_ref() else { return Ok(false) };
        let Some(key) = u.key.as_ref() else { return Ok(false) };
        let data = at + l.len;
        let n = l.csize.min((keys::seal::NONCE + keys::seal::SEALED_CHUNK) as u64);
        let head = self.read(data, n);
        let Some(o) = crate::unseal::open_entry(u, key, &l.name, l.csize, &head) else {
            if !by_signature {
                self.engine.problem(Error::Damaged {
                    path: self.archive.to_path_buf(),
                    offset: at,
                    message: format!(
                        "pack entry `{}` is damaged and has no path in the tree tar (lost in both copies)",
                        String::from_utf8_lossy(&l.name)
                    ),
                });
            }
            return Ok(false);
        };
        if by_signature && !o.opening.first_chunk_ok() {
            return Ok(false);
        }
        let mut r = SealedReader {
            prefix: o.prefix,
            opening: o.opening,
            src: At { f: self.f, pos: data + n, end: data + l.csize },
            remaining: l.csize - n,
            pos: 0,
        };
        self.engine.member(o.path.clone(), o.size, &mut r)?;
        self.kept.insert(o.path, (at, l.len + l.csize));
        self.engine.collect(false)?;
        Ok(true)
    }

    /// Salvages the pack whose data is `[start, end)`; returns whether its
    /// central directory was read whole.
    fn pack(&mut self, start: u64, end: u64) -> Result<bool> {
        let (central, cd_range) = self.central(start, end);
        let cd_whole = central.is_some();
        // A damaged central directory still has records that read: each
        // names an entry and says where it starts (checked below against
        // the local header there).
        let records = match central {
            Some(c) => c,
            None => self.central_records(start, end),
        };
        let mut starts: BTreeSet<u64> = BTreeSet::new();
        let mut records_at: std::collections::HashMap<u64, Central> = Default::default();
        for c in records {
            if c.offset < end - start {
                starts.insert(start + c.offset);
                records_at.insert(start + c.offset, c);
            }
        }
        // Walk the local headers from the start, as far as they go.
        let mut at = start;
        while let Some(l) = self.local_at(at, end) {
            starts.insert(at);
            at += l.len + l.csize;
        }
        let cd_start = cd_range.map_or(end, |r| r.0);
        let mut taken = Vec::new();
        for &s in &starts {
            if self.is_covered(s) {
                continue;
            }
            let record = records_at.get(&s);
            let local = self.local_at(s, cd_start);
            let unreadable = local.is_none();
            let Some(l) = local.filter(|l| record.is_none_or(|c| c.name == l.name)) else {
                // Its central directory record names it, its local header
                // is gone: its data is still where the record says, and
                // the manifest's SHA-256 (or, its line lost, the record's
                // CRC-32) tells whether it is whole. Else book it (a member
                // found later may still do).
                let Some(c) = record else { continue };
                if let Some(n) = self.file_path(&c.name) {
                    match self.headerless(s, c, &n, cd_start, unreadable)? {
                        Some(range) => taken.push(range),
                        // Expected, it may still come by its signature.
                        None if self.engine.expects(&n).is_some() => {}
                        None => self.engine.damaged(&n, "its zip local header is damaged")?,
                    }
                }
                continue;
            };
            taken.push((s, s + l.len + l.csize));
            self.take_entry(s, &l)?;
        }
        if let Some((a, b)) = cd_range {
            self.cover(a, b);
        }
        self.chained(start, cd_start, &starts, &mut taken)?;
        // Bytes of the pack nothing explained: entries found by signature.
        let mut at = start;
        taken.push((cd_start, cd_start));
        taken.sort_unstable();
        for (a, b) in taken {
            if a > at {
                self.search(at, a, false)?;
            }
            at = at.max(b);
        }
        Ok(cd_whole)
    }

    /// The entry at `at` whose local header is damaged, read through its
    /// central directory record `c` (file `path`): the local header a
    /// writer of ours gave it (the record's fields and an mtime) is put
    /// before the data that follows it. When the manifest expects the
    /// file, the mtime is its line's and the entry is taken only if it is
    /// the file the line describes (SHA-256). When the line was lost too
    /// (the header does not read at all, `unreadable`), the mtime is the
    /// record's MS-DOS time and the entry is read as any entry the
    /// manifest does not list (checked by the record's CRC-32; its mtime to
    /// the even second). Nothing then vouches for the record's name, so the
    /// name must also end where the damaged header's did (its last bytes,
    /// up to 8, read the same there): a record whose name was hit is not
    /// taken for a file. Returns the range taken. Not for encrypted
    /// archives, whose entries are opened by their own headers.
    fn headerless(
        &mut self,
        at: u64,
        c: &Central,
        path: &[u8],
        end: u64,
        unreadable: bool,
    ) -> Result<Option<(u64, u64)>> {
        if self.unseal.is_some() {
            return Ok(None);
        }
        let expected = self.engine.expects(path).map(|e| e.mtime.sec);
        let mtime = match expected {
            Some(sec) => Some(sec),
            None if unreadable && self.engine.unlisted(path) && self.name_ends_at(at, &c.name) => {
                zip::from_dos_time(c.dos.0, c.dos.1)
            }
            None => None,
        };
        let Some(info) = mtime.and_then(|t| c.info(t)) else { return Ok(None) };
        let head = info.local_header();
        let data = at + head.len() as u64;
        let Some(stop) = data.checked_add(c.csize).filter(|&e| e <= end) else { return Ok(None) };
        let mut r = io::Cursor::new(head).chain(At { f: self.f, pos: data, end: stop });
        if expected.is_some() {
            if !self.engine.candidate(path, stop - at, &mut r)? {
                return Ok(None);
            }
        } else {
            self.engine.member(path.to_vec(), stop - at, &mut r)?;
            self.engine.collect(false)?;
        }
        self.cover(at, stop);
        Ok(Some((at, stop)))
    }

    /// Whether the last bytes of `name` (up to 8) are where a local header
    /// at `at` holds the end of its name.
    fn name_ends_at(&self, at: u64, name: &[u8]) -> bool {
        let tail = name.len().min(8);
        tail > 0 && self.read(at + 30 + (name.len() - tail) as u64, tail as u64) == name[name.len() - tail..]
    }

    /// Entries that neither the central directory nor the walk reached
    /// (their records lost with a damaged central directory, and past a
    /// damaged entry): found by signature in the bytes of the pack
    /// `[start, cd_start)` that nothing explains, and taken when they end
    /// exactly where a known entry (`starts`, or one taken here) or the
    /// central directory starts, or when their length keeps the pack's
    /// order (A2: entries by length, ascending, give or take 2 KiB) with
    /// the entries taken before and after them. Last first, so that a run
    /// of such entries is taken back to front. A stray signature (inside a stored zip file,
    /// say) seldom ends on such a boundary, and its entry, inside a larger
    /// one, is shorter than the entry before that one.
    fn chained(
        &mut self,
        start: u64,
        cd_start: u64,
        starts: &BTreeSet<u64>,
        taken: &mut Vec<(u64, u64)>,
    ) -> Result<()> {
        let mut known: BTreeSet<u64> = starts.clone();
        known.insert(cd_start);
        let mut sorted = taken.clone();
        sorted.sort_unstable();
        let mut gaps = Vec::new();
        let mut at = start;
        for &(a, b) in sorted.iter().chain(std::iter::once(&(cd_start, cd_start))) {
            if a > at {
                gaps.push((at, a));
            }
            at = at.max(b);
        }
        for (a, b) in gaps.into_iter().rev() {
            for pos in self.find(a, b, LOCAL_SIG).into_iter().rev() {
                if self.is_covered(pos) {
                    continue;
                }
                let Some(l) = self.local_at(pos, cd_start) else { continue };
                let end = pos + l.len + l.csize;
                if end > b || !(known.contains(&end) || in_order(taken, pos, end)) {
                    continue;
                }
                known.insert(pos);
                taken.push((pos, end));
                self.take_entry(pos, &l)?;
            }
        }
        Ok(())
    }

    /// Every central directory record in the pack `[start, end)` that
    /// parses on its own, wherever it is.
    fn central_records(&self, start: u64, end: u64) -> Vec<Central> {
        let mut out = Vec::new();
        for pos in self.find(start, end, CENTRAL_SIG) {
            let head = self.read(pos, 46);
            if head.len() < 46 {
                continue;
            }
            let u16_at = |o: usize| u64::from(u16::from_le_bytes([head[o], head[o + 1]]));
            let rec = self.read(pos, 46 + u16_at(28) + u16_at(30) + u16_at(32));
            if let Some(mut c) = parse_central(&rec, 1) {
                if let Some(c) = c.pop().filter(|c| format::check_member_path(&c.name).is_ok()) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The central directory of the pack `[start, end)`, from its end
    /// record, and the range it and the end records take.
    fn central(&self, start: u64, end: u64) -> (Option<Vec<Central>>, Option<(u64, u64)>) {
        let tail_len = (end - start).min(22 + 0xFFFF + 76);
        let tail = self.read(end - tail_len, tail_len);
        let Some(i) = tail.windows(4).rposition(|w| w == EOCD_SIG) else { return (None, None) };
        let e = &tail[i..];
        if e.len() < 22 {
            return (None, None);
        }
        let u16_at = |o: usize| u64::from(u16::from_le_bytes([e[o], e[o + 1]]));
        let u32_at = |o: usize| u64::from(u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]));
        let (count, cd_size, cd_offset) = (u16_at(10), u32_at(12), u32_at(16));
        if cd_offset == u64::from(u32::MAX) || start + cd_offset + cd_size > end {
            return (None, None);
        }
        let cd = self.read(start + cd_offset, cd_size);
        let range = Some((start + cd_offset, end));
        (parse_central(&cd, count), range)
    }

    /// Looks for entries by their signature in `[from, to)`, outside what
    /// is covered. With `packs`, end records there first reveal packs whose
    /// tar header was lost (then their entries are found through their
    /// central directory, and checked by CRC-32 alone if need be).
    fn search(&mut self, from: u64, to: u64, packs: bool) -> Result<()> {
        if packs {
            for pos in self.find(from, to, EOCD_SIG) {
                if !self.is_covered(pos) {
                    if let Some((s, e)) = self.orphan_pack(pos) {
                        self.pack(s, e)?;
                    }
                }
            }
        }
        for pos in self.find(from, to, LOCAL_SIG) {
            if self.is_covered(pos) {
                continue;
            }
            let Some(l) = self.local_at(pos, self.len) else { continue };
            if self.unseal.is_some() {
                if self.take_sealed(pos, &l, true)? {
                    self.found_by_signature += 1;
                    self.cover(pos, pos + l.len + l.csize);
                }
                continue;
            }
            let Some(path) = self.file_path(&l.name) else { continue };
            if self.engine.expects(&path).is_none() {
                continue;
            }
            let size = l.len + l.csize;
            let mut r = At { f: self.f, pos, end: pos + size };
            if self.engine.candidate(&path, size, &mut r)? {
                self.found_by_signature += 1;
                self.cover(pos, pos + size);
                self.kept.insert(path, (pos, size));
            }
        }
        Ok(())
    }

    /// Offsets in `[from, to)` where `sig` starts.
    fn find(&self, from: u64, to: u64, sig: &[u8; 4]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let chunk = self.read(at, (to - at).min(WINDOW + 3));
            if chunk.len() < 4 {
                break;
            }
            let step = (chunk.len() - 3) as u64;
            out.extend(
                chunk
                    .windows(4)
                    .enumerate()
                    .filter(|&(i, w)| (i as u64) < step && w == sig)
                    .map(|(i, _)| at + i as u64),
            );
            at += step;
        }
        out
    }

    /// The pack an end record at `eocd` closes, when its fields point back
    /// to a central directory that parses: `[start, end)`.
    fn orphan_pack(&self, eocd: u64) -> Option<(u64, u64)> {
        let e = self.read(eocd, 22);
        if e.len() < 22 {
            return None;
        }
        let cd_size = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
        let cd_offset = u64::from(u32::from_le_bytes([e[16], e[17], e[18], e[19]]));
        let start = eocd.checked_sub(cd_size)?.checked_sub(cd_offset)?;
        let cd = self.read(eocd - cd_size, 4);
        (cd == CENTRAL_SIG).then_some((start, eocd + 22))
    }
}

/// Whether an entry at `[pos, end)` keeps the pack's order with the taken
/// entries before and after it: packs hold their entries by length,
/// ascending, each placed out of that order by at most [`PLACE_SLACK`]
/// bytes (A2), so no entry is longer than one after it by more than that.
/// Both neighbours must exist.
fn in_order(taken: &[(u64, u64)], pos: u64, end: u64) -> bool {
    let before = taken.iter().filter(|t| t.1 <= pos).max_by_key(|t| t.1);
    let after = taken.iter().filter(|t| t.0 >= end).min_by_key(|t| t.0);
    match (before, after) {
        (Some(b), Some(a)) => b.1 - b.0 <= end - pos + PLACE_SLACK && end - pos <= a.1 - a.0 + PLACE_SLACK,
        _ => false,
    }
}

/// Parses `count` central directory headers.
fn parse_central(cd: &[u8], count: u64) -> Option<Vec<Central>> {
    let mut out = Vec::new();
    let mut p = 0usize;
    for _ in 0..count {
        let h = cd.get(p..p + 46)?;
        if &h[..4] != CENTRAL_SIG {
            return None;
        }
        let u16_at = |o: usize| usize::from(u16::from_le_bytes([h[o], h[o + 1]]));
        let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let (n, x, c) = (u16_at(28), u16_at(30), u16_at(32));
        let name = cd.get(p + 46..p + 46 + n)?.to_vec();
        // Uncompressed size, compressed size, offset: each marked
        // 0xFFFFFFFF is in the zip64 field, in that order.
        let mut fields = [24, 20, 42].map(|o| (u32_at(o) == u32::MAX, u64::from(u32_at(o))));
        if fields.iter().any(|f| f.0) {
            let mut extra = cd.get(p + 46 + n..p + 46 + n + x)?;
            while extra.len() >= 4 {
                let id = u16::from_le_bytes([extra[0], extra[1]]);
                let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
                if id == 1 {
                    let mut body = extra.get(4..4 + len)?;
                    for f in fields.iter_mut().filter(|f| f.0) {
                        let v = body.get(..8)?;
                        f.1 = u64::from_le_bytes(v.try_into().ok()?);
                        body = &body[8..];
                    }
                }
                extra = extra.get(4 + len..)?;
            }
        }
        let [(zip64, usize), (_, csize), (_, offset)] = fields;
        let (method, crc, mode) = (u16::from_le_bytes([h[10], h[11]]), u32_at(16), u32_at(38) >> 16);
        let dos = (u16_at(12) as u16, u16_at(14) as u16);
        out.push(Central { name, offset, method, crc, csize, usize, mode, zip64, dos });
        p += 46 + n + x + c;
    }
    Some(out)
}

/// Recovers every intact file of a damaged version 3 `archive` into `dest`.
pub(super) fn salvage_packed(
    archive: &Path,
    dest: &Path,
    opts: &SalvageOptions,
    unseal: Option<Unseal>,
    header: &[u8],
    obs: &dyn Observer,
) -> Result<SalvageReport> {
    let read_err = |source| Error::Read { path: archive.to_path_buf(), source };
    let file = File::open(archive).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    let eopts =
        ExtractOptions { overwrite: opts.overwrite, jobs: opts.jobs, paths: Vec::new(), keys: opts.keys.clone() };
    let mut engine = Engine::new(Some(dest), &eopts, obs)?;
    engine.book = Some(Book::default());
    engine.links_in_index = true;
    let mut st = State {
        f: &file,
        archive,
        len,
        engine: &mut engine,
        covered: Default::default(),
        packs: Vec::new(),
        found_by_signature: 0,
        kept: Default::default(),
        unseal,
    };
    let r = run(&mut st, archive, header, obs);
    let (found_by_signature, packs, kept) = (st.found_by_signature, std::mem::take(&mut st.packs), st.kept.clone());
    let frames = st.engine.frames.clone();
    let covered: Vec<(u64, u64)> = std::mem::take(&mut st.covered).into_iter().collect();
    let (manifest_complete, tree_complete) = match r {
        Ok(x) => x,
        Err(e) => {
            let _ = engine.drain();
            return Err(e);
        }
    };
    let (extracted, book) = engine.finish()?;
    let book = book.unwrap_or_default();
    if book.outcomes.is_empty() && packs.is_empty() && !manifest_complete {
        return Err(Error::NotXtar {
            path: archive.to_path_buf(),
            message: "no xtar member found anywhere in it".into(),
        });
    }
    // Names are complete when the manifest was read whole, or when every
    // pack from the first to the last before the tree tar was found with
    // its central directory, and the tree tar was read whole.
    let mut numbers: Vec<u32> = packs.iter().map(|p| p.0).collect();
    numbers.sort_unstable();
    let contiguous = numbers.iter().enumerate().all(|(i, &k)| k as usize == i + 1);
    let names_complete = manifest_complete || (tree_complete && contiguous && packs.iter().all(|p| p.1));
    let (bad_regions, bad_bytes) = gaps(covered, len);
    let dirs_known =
        book.outcomes.keys().map(|p| manifest::parent_of(p).to_vec()).collect::<BTreeSet<_>>().len() as u64;
    let mut report = SalvageReport {
        files: Vec::new(),
        dirs: extracted.dirs,
        archive_bytes: len,
        bad_regions,
        bad_bytes,
        manifest_complete,
        indexes_complete: 0,
        dirs_known,
        names_complete,
        found_by_zip_header: found_by_signature,
        packs: Some((packs.iter().filter(|p| p.1).count() as u64, packs.len() as u64)),
    };
    let mut scan = BlockScan::open(archive)?;
    report.files = super::report_files(book, &kept, &mut scan, dest, opts, &frames, obs)?;
    Ok(report)
}

/// The passes: tar headers and metadata, packs, then what no header
/// explains. Returns whether the manifest and the tree tar were whole.
fn run(st: &mut State<'_, '_>, archive: &Path, header: &[u8], obs: &dyn Observer) -> Result<(bool, bool)> {
    let mut scan = BlockScan::open(archive)?;
    // Versions 5 and 6: the copies of the zstd dictionary found, and
    // where; and where each member of ours starts and ends (a copy whose
    // tar header was lost lies against one of them).
    let mut dicts: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut bounds: Vec<(u64, u64)> = Vec::new();
    let mut manifest_complete = false;
    let mut tree_complete = false;
    let mut packs: Vec<(u32, u64, u64)> = Vec::new();
    let mut reported = 0u64;
    // Encrypted: the pieces of the manifest and of the tree tar read whole.
    let mut sealed_pieces: std::collections::HashSet<crate::format::sealed::SealedMember> = Default::default();
    while let Some(block) = scan.next_block()? {
        if scan.pos() - reported >= 1 << 20 {
            obs.advance(scan.pos() - reported);
            reported = scan.pos();
        }
        let f = match block {
            Scanned::Member(f) if f.regular => f,
            Scanned::Member(_) | Scanned::Invalid { .. } => continue,
            Scanned::Zero(at) => {
                if at + 2 * BLOCK as u64 >= st.len {
                    st.cover(at, at + BLOCK as u64);
                }
                continue;
            }
        };
        let end = if f.fits { f.next } else { st.len };
        if st.unseal.is_some() && f.fits && f.size <= MAX_META {
            if let Some(whole) = sealed_meta(st, &mut scan, archive, &f.name, f.start, f.data, f.size, end, obs)? {
                if let Some(piece) = whole {
                    sealed_pieces.insert(piece);
                }
                scan.seek_to(f.next)?;
                continue;
            }
        }
        if format::is_zstd_dict_name(&f.name) && f.fits && f.size <= MAX_META {
            bounds.push((f.start, f.next));
            st.cover(f.start, end);
            dicts.push((f.data, scan.read_up_to(f.size)?));
            scan.seek_to(f.next)?;
            continue;
        }
        let kind = MemberName::parse_v3(&f.name);
        if matches!(kind, MemberName::Other(_)) {
            // Not a header of ours: a block inside some data that happens
            // to parse. Go on block by block.
            continue;
        }
        st.cover(f.start, f.data);
        bounds.push((f.start, f.next));
        match kind {
            MemberName::ManifestGz | MemberName::TreeTar if f.fits && f.size <= MAX_META => {
                let z = scan.read_up_to(f.size)?;
                st.cover(f.data, end);
                if kind == MemberName::ManifestGz {
                    let d = gz::decode(&z);
                    let (entries, bad) = crate::read::parse_entries(&d.text);
                    manifest_complete = d.complete && bad == 0 && d.text.starts_with(manifest::MAGIC.as_bytes());
                    if let Some(b) = st.engine.book.as_mut() {
                        b.manifest_complete = manifest_complete;
                    }
                    st.engine.index(b"", entries)?;
                } else {
                    let (entries, complete) = format::tree::read(&z);
                    tree_complete = complete;
                    st.engine.index(b"", entries)?;
                }
            }
            MemberName::Pack(k) => {
                packs.push((k, f.data, f.data + f.size.min(st.len - f.data)));
                st.cover(f.data + f.size, end);
            }
            _ => st.cover(f.data, end),
        }
        if f.fits {
            scan.seek_to(f.next)?;
        }
    }
    obs.advance(st.len.saturating_sub(reported));
    if let Some((m, _, t)) = st.unseal.as_ref().and_then(|u| u.pieces) {
        use crate::format::sealed::SealedMember;
        manifest_complete = (1..=m).all(|i| sealed_pieces.contains(&SealedMember::Manifest(i)));
        tree_complete = (1..=t).all(|i| {
            sealed_pieces.contains(&SealedMember::Tree(i)) || sealed_pieces.contains(&SealedMember::TreeEnd(i))
        });
        if let Some(b) = st.engine.book.as_mut() {
            b.manifest_complete = manifest_complete;
        }
    }
    if !manifest_complete && st.unseal.is_none() {
        // A manifest whose tar header was lost: its gzip members, where no
        // header explains the bytes and outside every pack found.
        let mut known: Vec<(u64, u64)> = st.covered.iter().map(|(&a, &b)| (a, b)).collect();
        known.extend(packs.iter().map(|&(_, a, b)| (a, b)));
        for (a, b) in gaps(known, st.len).0 {
            for pos in st.find(a, b, &[0x1f, 0x8b, 8, 0]) {
                if st.is_covered(pos) {
                    continue;
                }
                let bytes = st.read(pos, (b - pos).min(gz::PIECE as u64 * 2 + 4096));
                if !bytes.starts_with(&gz::HEADER) {
                    continue;
                }
                let Some((text, used)) = gz::decode_one(&bytes) else { continue };
                let (entries, _) = crate::read::parse_entries(&text);
                if !entries.is_empty() {
                    st.cover(pos, pos + used as u64);
                    st.engine.index(b"", entries)?;
                }
            }
        }
    }
    choose_dictionary(st, header, dicts, &bounds, obs);
    for (k, start, end) in packs {
        let whole = st.pack(start, end)?;
        st.packs.push((k, whole));
    }
    // What no header explains: packs whose tar header was lost, and
    // entries on their own.
    let holes = gaps(st.covered.iter().map(|(&a, &b)| (a, b)).collect(), st.len).0;
    for (a, b) in holes {
        st.search(a, b, true)?;
    }
    Ok((manifest_complete, tree_complete))
}

/// Version 5 (a `#zstd-dict` line in the header, or, the header lost, a
/// copy of the dictionary found): the dictionary put together piece by
/// piece from the intact pieces of every copy found (§A11), taken when it
/// is the one the header names, or, without the header, when zstd reads
/// it as a dictionary.
fn choose_dictionary(
    st: &mut State<'_, '_>,
    header: &[u8],
    dicts: Vec<(u64, Vec<u8>)>,
    bounds: &[(u64, u64)],
    obs: &dyn Observer,
) {
    use crate::codec::{DictPieces, ZstdDecoder};
    use crate::extract::Frames;
    use std::sync::Arc;
    let named = format::zstd_dict_of(header);
    if named.is_none() && (dicts.is_empty() || !header.is_empty()) {
        return;
    }
    let mut pieces = DictPieces::default();
    for (_, d) in &dicts {
        pieces.merge(d);
    }
    let version = format::version_of(header);
    let named_whole = |p: &DictPieces, want: &[u8; 32]| {
        p.whole().and_then(|w| crate::codec::dict_of_copy(&w, version)).filter(|d| format::zstd_dict_sum(d) == *want)
    };
    let chosen: Option<Vec<u8>> = match named {
        Some(None) => Some(Vec::new()),
        // The copies found by name, else with those whose tar header was
        // lost, one at a time.
        Some(Some(want)) => named_whole(&pieces, &want).or_else(|| {
            headerless_copies(st, &dicts, bounds)
                .into_iter()
                .find_map(|copy| pieces.fill(&copy).then(|| named_whole(&pieces, &want)).flatten())
        }),
        None if dicts.iter().all(|(_, d)| d.is_empty()) => Some(Vec::new()),
        // The header lost: a frame (version 6) or a trained dictionary
        // (version 5), told apart by their first bytes.
        None => pieces.whole().and_then(|w| crate::codec::dict_of_copy(&w, None)),
    };
    st.engine.frames = match chosen {
        Some(d) => Frames::Zstd(Arc::new(ZstdDecoder::new(&d))),
        None => {
            let e = Error::Damaged {
                path: st.archive.to_path_buf(),
                offset: dicts.first().map_or(0, |d| d.0),
                message: format!(
                    "no copy of the zstd dictionary has every piece intact, nor do the {} copies found together: \
                     its files cannot be decoded",
                    dicts.len()
                ),
            };
            obs.warning(&e);
            Frames::NoDictionary
        }
    };
}

/// Copies of the dictionary whose tar header was lost: every copy has the
/// same length as those found, and lies against a member of ours (after
/// the header or the tree tar's copy, before the manifest, a pack, or the
/// other copy before that pack), so the bytes where one would start are
/// tried there; those with an intact piece among their first three are
/// read whole. The caller takes their pieces only where they agree with
/// the pieces found.
fn headerless_copies(st: &State<'_, '_>, dicts: &[(u64, Vec<u8>)], bounds: &[(u64, u64)]) -> Vec<Vec<u8>> {
    use crate::codec::{DictPieces, DICT_STRIDE};
    let Some(len) = dicts.iter().map(|d| d.1.len() as u64).max().filter(|&l| l > 0) else { return Vec::new() };
    let padded = len.div_ceil(BLOCK as u64) * BLOCK as u64;
    let mut at: BTreeSet<u64> = BTreeSet::new();
    for &(start, next) in bounds {
        at.insert(next + BLOCK as u64);
        for back in [padded, 2 * padded + BLOCK as u64] {
            if let Some(s) = start.checked_sub(back) {
                at.insert(s);
            }
        }
    }
    let known: BTreeSet<u64> = dicts.iter().map(|d| d.0).collect();
    let mut out = Vec::new();
    for s in at {
        if known.contains(&s) || s + len > st.len || st.is_covered(s) {
            continue;
        }
        let mut probe = DictPieces::default();
        probe.merge(&st.read(s, len.min(3 * DICT_STRIDE as u64)));
        if probe.found() > 0 {
            out.push(st.read(s, len));
        }
    }
    out
}

/// A member only encrypted archives have, at `start` (data at `data`,
/// `size` bytes, the next member at `end`): the age header (taken), a piece
/// of the manifest or of the tree tar (opened chunk by chunk and read).
/// `None` for other members; else the piece read whole, if it is one.
#[allow(clippy::too_many_arguments)]
fn sealed_meta(
    st: &mut State<'_, '_>,
    scan: &mut BlockScan,
    scan_path: &Path,
    name: &[u8],
    start: u64,
    data: u64,
    size: u64,
    end: u64,
    obs: &dyn Observer,
) -> Result<Option<Option<crate::format::sealed::SealedMember>>> {
    use crate::format::sealed::SealedMember;
    let Some(kind) = SealedMember::parse(name) else { return Ok(None) };
    st.cover(start, end);
    if kind == SealedMember::Age {
        return Ok(Some(None));
    }
    let z = scan.read_up_to(size)?;
    let Some(u) = st.unseal.as_mut() else { return Ok(None) };
    let complete = match u.read_piece(kind, &z, scan_path, data, obs)? {
        crate::unseal::Piece::Manifest { text, whole } => {
            let (entries, bad) = crate::read::parse_entries(&text);
            st.engine.index(b"", entries)?;
            whole && bad == 0
        }
        crate::unseal::Piece::Entries { entries, whole } => {
            st.engine.index(b"", entries)?;
            whole
        }
    };
    Ok(Some(complete.then_some(kind)))
}

/// The ranges of `[0, len)` that `covered` leaves out (at most
/// [`MAX_REGIONS`] of them) and their total length.
fn gaps(mut covered: Vec<(u64, u64)>, len: u64) -> (Vec<(u64, u64)>, u64) {
    covered.sort_unstable();
    let mut out = Vec::new();
    let mut total = 0;
    let mut at = 0u64;
    for (a, b) in covered {
        if a > at {
            total += a - at;
            if out.len() < MAX_REGIONS {
                out.push((at, a));
            }
        }
        at = at.max(b);
    }
    if at < len {
        total += len - at;
        if out.len() < MAX_REGIONS {
            out.push((at, len));
        }
    }
    (out, total)
}
