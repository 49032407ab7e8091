//! Recovering every intact file from a damaged archive.
//!
//! Salvage trusts no single header, index or container boundary. It reads
//! the archive block by block (damage on a disc replaces bytes, it does not
//! shift them, so every header stays on a 512-byte boundary) and takes each
//! valid tar header it meets, at any nesting depth, as what it says. The
//! data of a file member found this way is claimed: nothing inside it is
//! taken for a header. Blocks that are not headers are looked at for the
//! start of a zip member (`PK\3\4`) whose tar header was destroyed; such a
//! member is used only if it matches its index entry's SHA-256 exactly.
//!
//! Names and metadata come from both copies (every directory's index and
//! the manifest at the end), read line by line, so a damaged copy still
//! gives every line it holds intact. Each file is then checked against its
//! CRC-32 and SHA-256 and reported as intact, damaged or missing.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::DeflateDecoder;
use manifest::{Entry, Kind};

use crate::dest::Dest;
use crate::error::lossy;
use crate::extract::{Book, Engine, ExtractOptions, Fate, Frames, Verified};
use crate::format::tar::{self as tarfmt, Block, BLOCK};
use crate::format::zip::{self, Method};
use crate::format::{self, MemberName, HEADER_MAGIC, INDEX_MAGIC};
use crate::scan::{BlockScan, Scanned};
use crate::{Error, Observer, Result};

mod packed;

/// Metadata members larger than this are not read.
const MAX_META: u64 = 1 << 30;
/// Unrecognised regions listed in a report, at most.
const MAX_REGIONS: usize = 1000;

/// How to salvage.
#[derive(Debug, Clone, Default)]
pub struct SalvageOptions {
    /// Replace existing files in the destination.
    pub overwrite: bool,
    /// Keep what can be read of each damaged file as `NAME.damaged`.
    pub keep_damaged: bool,
    /// Worker threads (0: rayon's default).
    pub jobs: usize,
    /// Keys to open an encrypted archive with.
    pub keys: crate::Keys,
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Restored, and checked as said.
    Intact(Verified),
    /// Its member was found but is damaged; not restored (see
    /// [`SalvagedFile::kept`]).
    Damaged,
    /// No member of it was found.
    Missing,
    /// Intact or not, it could not be written (unsafe path, or something in
    /// the way).
    Refused,
}

/// One file (regular file, symlink or hard link) of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvagedFile {
    /// Its path in the archive.
    pub path: Vec<u8>,
    /// What became of it.
    pub state: FileState,
    /// Why, when it is not intact.
    pub detail: String,
    /// Where what could be read of a damaged file was kept (`--keep-damaged`).
    pub kept: Option<PathBuf>,
}

/// What a salvage found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Every file the archive is known to hold, in canonical order.
    pub files: Vec<SalvagedFile>,
    /// Directories restored.
    pub dirs: u64,
    /// Size of the archive.
    pub archive_bytes: u64,
    /// Byte ranges `[start, end)` where neither a header nor member data
    /// was recognised (damage, or zeros), at most 1000 of them.
    pub bad_regions: Vec<(u64, u64)>,
    /// Total bytes in unrecognised regions.
    pub bad_bytes: u64,
    /// Whether the manifest at the end was read whole.
    pub manifest_complete: bool,
    /// Indexes read whole, and directories known.
    pub indexes_complete: u64,
    /// Directories known from any source.
    pub dirs_known: u64,
    /// Whether every file that could have been lost is named: the
    /// manifest, or every directory's index, was read whole.
    pub names_complete: bool,
    /// Members found without their tar header, by their zip header alone
    /// (version 3: entries found by their signature alone).
    pub found_by_zip_header: u64,
    /// Version 3: packs whose central directory was read whole, and packs
    /// found.
    pub packs: Option<(u64, u64)>,
}

impl SalvageReport {
    /// Files in each state: intact, damaged, missing, refused.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let mut c = (0, 0, 0, 0);
        for f in &self.files {
            match f.state {
                FileState::Intact(_) => c.0 += 1,
                FileState::Damaged => c.1 += 1,
                FileState::Missing => c.2 += 1,
                FileState::Refused => c.3 += 1,
            }
        }
        c
    }

    /// Whether everything was recovered: every file intact, and the names
    /// of all files known.
    pub fn is_complete(&self) -> bool {
        self.names_complete && self.files.iter().all(|f| matches!(f.state, FileState::Intact(_)))
    }
}

/// Lines of an index or manifest, read leniently.
struct Lines {
    entries: Vec<Entry>,
    /// Header valid, every line valid, ends with a newline.
    complete: bool,
    /// The version the first line declares, if it is readable.
    version: Option<String>,
}

/// Reads an index (`dir` is `Some`) or the manifest line by line, keeping
/// every line that parses and belongs.
fn lenient(text: &[u8], magic: &str, dir: Option<&[u8]>) -> Lines {
    let mut out = Lines { entries: Vec::new(), complete: text.ends_with(b"\n"), version: None };
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if i == 0 {
            out.version = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.strip_prefix(magic))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_string);
            out.complete &= out.version.is_some();
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(d) = line.strip_prefix(b"#dir ") {
            let d = if d == b"." { Ok(Vec::new()) } else { manifest::unescape_path(d) };
            out.complete &= dir.is_some_and(|dir| d.is_ok_and(|d| d == dir));
            continue;
        }
        if line.starts_with(b"#") {
            continue;
        }
        let Ok(e) = manifest::parse_entry_line(line, i + 1) else {
            out.complete = false;
            continue;
        };
        if let Some(dir) = dir {
            let belongs = if e.path == dir {
                e.kind == Kind::Dir
            } else {
                e.kind != Kind::Dir && manifest::parent_of(&e.path) == dir
            };
            if !belongs {
                out.complete = false;
                continue;
            }
        }
        out.entries.push(e);
    }
    out
}

/// Scan state.
struct Scan {
    len: u64,
    /// Block offsets that start like a zip member, outside any claimed data.
    candidates: Vec<u64>,
    /// Data ranges of members whose tar header was valid, in order.
    claimed: Vec<(u64, u64)>,
    bad: Vec<(u64, u64)>,
    bad_bytes: u64,
    /// Where each file member was found: data offset and size.
    members: HashMap<Vec<u8>, (u64, u64)>,
    dirs: BTreeSet<Vec<u8>>,
    found: bool,
}

impl Scan {
    fn bad_block(&mut self, at: u64) {
        self.bad_bytes += BLOCK as u64;
        let full = self.bad.len() >= MAX_REGIONS;
        match self.bad.last_mut() {
            Some(last) if last.1 == at => last.1 += BLOCK as u64,
            _ if full => {}
            _ => self.bad.push((at, at + BLOCK as u64)),
        }
    }

    fn inside_claimed(&self, at: u64) -> bool {
        let i = self.claimed.partition_point(|r| r.0 <= at);
        i > 0 && at < self.claimed[i - 1].1
    }
}

/// Recovers every intact file of a damaged `archive` into `dest`.
///
/// Never stops early for damage: every problem is booked against its file
/// in the report. Fails only when the archive cannot be read at all, when
/// it declares a format version this program does not know, when nothing
/// in it looks like an `.xtar`, or when the destination cannot be written.
pub fn salvage(archive: &Path, dest: &Path, opts: &SalvageOptions, obs: &dyn Observer) -> Result<SalvageReport> {
    let read_err = |source| Error::Read { path: archive.to_path_buf(), source };
    // An archive cut into pieces: the pieces there are, put at their
    // places in one file (the missing ones as holes), in the destination
    // for the time of the salvage.
    if let Some(p) = crate::pieces::Pieces::find(archive).map_err(read_err)? {
        let write_err = |source| Error::Write { path: dest.to_path_buf(), source };
        std::fs::create_dir_all(dest).map_err(write_err)?;
        let name = p.whole.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut whole =
            tempfile::Builder::new().prefix(&format!(".{name}.pieces-")).tempfile_in(dest).map_err(write_err)?;
        p.assemble(whole.as_file_mut()).map_err(write_err)?;
        for k in &p.missing {
            obs.warning(&Error::Read {
                path: crate::pieces::piece_path(&p.whole, *k),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "this piece is missing; salvaging the others",
                ),
            });
        }
        return salvage(whole.path(), dest, opts, obs);
    }
    let file = File::open(archive).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(Error::NotXtar {
            path: archive.to_path_buf(),
            message: "salvage reads a regular file (copy a stream to a file first)".into(),
        });
    }
    let len = meta.len();
    obs.start(len);
    let mut r = BlockScan::new(file, len, archive);
    let header = check_first_header(&mut r, archive)?;
    let packed = match &header {
        Some((v, _)) => *v >= 3,
        None => looks_packed(&mut r)?,
    };
    // An encrypted archive: its key first, so that without one nothing is
    // written.
    let text = header.map(|h| h.1).unwrap_or_default();
    let sealed = text.split(|&b| b == b'\n').any(|l| l == format::sealed::SEALED_LINE)
        || (packed && text.is_empty() && crate::unseal::has_age_copies(archive));
    if sealed {
        let unseal = crate::unseal::find_key(archive, &opts.keys, &text, obs)?;
        return packed::salvage_packed(archive, dest, opts, Some(unseal), &text, obs);
    }
    if packed {
        return packed::salvage_packed(archive, dest, opts, None, &text, obs);
    }

    let eopts =
        ExtractOptions { overwrite: opts.overwrite, jobs: opts.jobs, paths: Vec::new(), keys: opts.keys.clone() };
    let mut engine = Engine::new(Some(dest), &eopts, obs)?;
    engine.book = Some(Book::default());
    let mut scan = Scan {
        len,
        candidates: Vec::new(),
        claimed: Vec::new(),
        bad: Vec::new(),
        bad_bytes: 0,
        members: HashMap::new(),
        dirs: BTreeSet::new(),
        found: false,
    };
    if let Err(e) = scan_blocks(&mut r, &mut scan, &mut engine, archive, obs) {
        // Let the workers finish, so their temporary files are removed.
        let _ = engine.drain();
        return Err(e);
    }
    engine.drain()?;

    // Members whose tar header was lost, found by their zip header.
    let mut by_zip = 0;
    for at in std::mem::take(&mut scan.candidates) {
        if scan.inside_claimed(at) {
            continue;
        }
        r.seek_to(at)?;
        let Ok(local) = zip::read_local_header(&mut r) else { continue };
        if engine.expects(&local.name).is_none() {
            continue;
        }
        // Local header, data, and a trailer of at most 4 KiB.
        let size = (local.len + local.csize + 4096).min(len - at);
        r.seek_to(at)?;
        if engine.candidate(&local.name, size, &mut (&mut r).take(size))? {
            scan.members.insert(local.name.clone(), (at, size));
            by_zip += 1;
        }
    }

    let (manifest_complete, complete_dirs) =
        engine.book.as_ref().map(|b| (b.manifest_complete, b.complete_dirs.clone())).unwrap_or_default();
    let (extracted, book) = engine.finish()?;
    let book = book.unwrap_or_default();

    // Every directory known: from indexes, containers and file paths.
    let mut dirs = scan.dirs;
    for p in book.outcomes.keys() {
        let mut d = manifest::parent_of(p);
        while !d.is_empty() && dirs.insert(d.to_vec()) {
            d = manifest::parent_of(d);
        }
    }
    dirs.insert(Vec::new());
    let indexes_complete = dirs.iter().filter(|d| complete_dirs.contains(*d)).count() as u64;
    if !scan.found && book.outcomes.is_empty() {
        return Err(Error::NotXtar {
            path: archive.to_path_buf(),
            message: "no xtar member found anywhere in it".into(),
        });
    }

    let mut report = SalvageReport {
        files: Vec::new(),
        dirs: extracted.dirs,
        archive_bytes: len,
        bad_regions: scan.bad,
        bad_bytes: scan.bad_bytes,
        manifest_complete,
        indexes_complete,
        dirs_known: dirs.len() as u64,
        names_complete: manifest_complete || indexes_complete == dirs.len() as u64,
        found_by_zip_header: by_zip,
        packs: None,
    };
    report.files = report_files(book, &scan.members, &mut r, dest, opts, &Frames::None, obs)?;
    Ok(report)
}

/// The report's line for every file booked, in canonical order; with
/// `--keep-damaged`, what can be read of each damaged file whose member
/// is at `members[path]` (offset, size) is kept beside it.
fn report_files(
    book: Book,
    members: &HashMap<Vec<u8>, (u64, u64)>,
    r: &mut BlockScan,
    dest: &Path,
    opts: &SalvageOptions,
    frames: &Frames,
    obs: &dyn Observer,
) -> Result<Vec<SalvagedFile>> {
    let mut keeper = if opts.keep_damaged { Some(Dest::new(dest, opts.overwrite)?) } else { None };
    let mut outcomes: Vec<_> = book.outcomes.into_iter().collect();
    outcomes.sort_by(|a, b| manifest::cmp_paths(&a.0, &b.0));
    let mut files = Vec::with_capacity(outcomes.len());
    for (path, outcome) in outcomes {
        let (state, detail) = match outcome {
            Ok(v) => (FileState::Intact(v), String::new()),
            Err((Fate::Damaged, m)) => (FileState::Damaged, m),
            Err((Fate::Missing, m)) => (FileState::Missing, m),
            Err((Fate::Refused, m)) => (FileState::Refused, m),
        };
        let mut kept = None;
        if let (FileState::Damaged, Some(keeper), Some(&(at, size))) = (&state, keeper.as_mut(), members.get(&path)) {
            kept = keep_damaged(r, at, size, &path, keeper, frames, obs);
        }
        files.push(SalvagedFile { path, state, detail, kept });
    }
    Ok(files)
}

/// Whether an archive whose header was lost has the version 3 layout: the
/// first member header of the format found decides.
fn looks_packed(r: &mut BlockScan) -> Result<bool> {
    let mut answer = false;
    while let Some(block) = r.next_block()? {
        let Scanned::Member(f) = block else { continue };
        match MemberName::parse_v3(&f.name) {
            MemberName::ManifestGz | MemberName::Pack(_) | MemberName::TreeTar => {
                answer = true;
                break;
            }
            MemberName::Header | MemberName::Pad | MemberName::Other(_) => {}
            _ => break,
        }
        if matches!(MemberName::parse(&f.name), MemberName::File(_) | MemberName::Container(_) | MemberName::Index(_)) {
            break;
        }
        if f.fits {
            r.seek_to(f.next)?;
        }
    }
    r.seek_to(0)?;
    Ok(answer)
}

/// Refuses an archive whose first member is an `.xtar-header` of a version
/// this program does not read, and returns the version it declares. A
/// damaged or missing header is no reason to stop (`None`): the indexes
/// say the version too. With the version, the header's text.
fn check_first_header(r: &mut BlockScan, archive: &Path) -> Result<Option<(u32, Vec<u8>)>> {
    let mut b = [0u8; BLOCK];
    if r.read_exact(&mut b).is_err() {
        return Err(Error::NotXtar { path: archive.to_path_buf(), message: "too short to be a tar archive".into() });
    }
    if let Block::Header(h) = tarfmt::parse_block(&b) {
        if MemberName::parse(&h.name) == MemberName::Header && h.size < 4096 {
            let text = r.read_up_to(h.size).ok().unwrap_or_default();
            let first = text.split(|&c| c == b'\n').next().unwrap_or_default();
            if let Some(v) = first.strip_prefix(HEADER_MAGIC.as_bytes()).and_then(|v| v.strip_prefix(b" ")) {
                let v = String::from_utf8_lossy(v).into_owned();
                if !format::version_supported(&v) {
                    return Err(Error::Version {
                        path: archive.to_path_buf(),
                        found: v,
                        supported: format::FORMAT_VERSION,
                    });
                }
                r.seek_to(0)?;
                return Ok(v.parse().ok().map(|v| (v, text)));
            }
        }
    }
    r.seek_to(0)?;
    Ok(None)
}

/// Pass over every block of the archive.
fn scan_blocks(
    r: &mut BlockScan,
    scan: &mut Scan,
    engine: &mut Engine<'_>,
    archive: &Path,
    obs: &dyn Observer,
) -> Result<()> {
    let len = scan.len;
    let mut reported = 0u64;
    let mut zeros: Option<u64> = None;
    loop {
        if r.pos() - reported >= 1 << 20 {
            obs.advance(r.pos() - reported);
            reported = r.pos();
        }
        let Some(block) = r.next_block()? else { break };
        let at = match &block {
            Scanned::Member(f) => f.start,
            Scanned::Zero(at) | Scanned::Invalid { at, .. } => *at,
        };
        if let Some(z) = zeros.take_if(|_| !matches!(block, Scanned::Zero(_))) {
            // A run of zero blocks that does not reach the end: zeroed sectors.
            let mut b = z;
            while b < at {
                scan.bad_block(b);
                b += BLOCK as u64;
            }
        }
        let f = match block {
            Scanned::Member(f) => f,
            Scanned::Zero(at) => {
                zeros.get_or_insert(at);
                continue;
            }
            Scanned::Invalid { at, zip_start } => {
                if zip_start {
                    scan.candidates.push(at);
                }
                scan.bad_block(at);
                continue;
            }
        };
        if !f.regular {
            if f.fits {
                r.seek_to(f.next)?;
            }
            continue;
        }
        match MemberName::parse(&f.name) {
            MemberName::Container(dir) => {
                // Step in: its members follow.
                scan.found = true;
                scan.dirs.insert(dir);
            }
            MemberName::File(path) => {
                scan.found = true;
                if !f.fits {
                    engine.damaged(&path, "the archive ends inside its member (truncated)")?;
                    continue;
                }
                scan.claimed.push((f.data, f.data + f.size));
                scan.members.insert(path.clone(), (f.data, f.size));
                engine.member(path, f.size, &mut (&mut *r).take(f.size))?;
                r.seek_to(f.next)?;
            }
            kind @ (MemberName::Header | MemberName::Manifest | MemberName::Index(_)) => {
                if !f.fits || f.size > MAX_META {
                    continue;
                }
                scan.found = true;
                scan.claimed.push((f.data, f.data + f.size));
                let text = r.read_up_to(f.size)?;
                r.seek_to(f.next)?;
                metadata(kind, &text, scan, engine, archive, f.data, obs)?;
            }
            MemberName::Other(_)
            | MemberName::Pad
            | MemberName::Part(..)
            | MemberName::Volumes
            | MemberName::ManifestGz
            | MemberName::TreeTar
            | MemberName::Pack(_) => {
                if f.fits {
                    scan.claimed.push((f.data, f.data + f.size));
                    r.seek_to(f.next)?;
                }
            }
        }
        engine.collect(false)?;
    }
    if r.pos() < len {
        scan.bad_block(r.pos());
    }
    obs.advance(len.saturating_sub(reported));
    Ok(())
}

/// Takes the lines of a metadata member.
fn metadata(
    kind: MemberName,
    text: &[u8],
    scan: &mut Scan,
    engine: &mut Engine<'_>,
    archive: &Path,
    offset: u64,
    obs: &dyn Observer,
) -> Result<()> {
    let (lines, dir) = match kind {
        MemberName::Index(ref dir) => (lenient(text, INDEX_MAGIC, Some(dir)), dir.clone()),
        MemberName::Manifest => (lenient(text, manifest::MAGIC, None), Vec::new()),
        _ => return Ok(()),
    };
    let version_ok = match (&kind, lines.version.as_deref()) {
        (MemberName::Index(_), Some(v)) => format::nested_version(v),
        (MemberName::Manifest, Some(v)) => v == manifest::FORMAT_VERSION.to_string(),
        (_, None) => true, // a damaged first line: the lines still parse
        _ => false,
    };
    if !version_ok {
        obs.warning(&Error::Damaged {
            path: archive.to_path_buf(),
            offset,
            message: format!(
                "metadata of an unknown version `{}` ignored",
                lines.version.as_deref().unwrap_or_default()
            ),
        });
        return Ok(());
    }
    if let Some(book) = engine.book.as_mut() {
        if lines.complete {
            match kind {
                MemberName::Index(_) => {
                    book.complete_dirs.insert(dir.clone());
                }
                _ => book.manifest_complete = true,
            }
        }
    }
    if let MemberName::Index(d) = &kind {
        scan.dirs.insert(d.clone());
    }
    for e in &lines.entries {
        if e.kind == Kind::Dir {
            scan.dirs.insert(e.path.clone());
        }
    }
    let r = engine.index(&dir, lines.entries);
    engine.fatal_or_problem(r)
}

/// Writes what can be read of a damaged member next to where the file
/// would be, as `NAME.damaged`: the raw data of a stored member (only the
/// damaged sectors are wrong), or the output of a deflated one up to the
/// first error.
fn keep_damaged(
    r: &mut BlockScan,
    at: u64,
    size: u64,
    path: &[u8],
    dest: &mut Dest,
    frames: &Frames,
    obs: &dyn Observer,
) -> Option<PathBuf> {
    let kept = [path, b".damaged"].concat();
    let res: Result<PathBuf> = (|| {
        r.seek_to(at)?;
        let mut member = (&mut *r).take(size);
        let local = zip::read_local_header(&mut member)
            .map_err(|m| Error::Member { member: lossy(path), message: format!("nothing to keep: {m}") })?;
        let dir = dest.prepare(&kept)?;
        let tmp = tempfile::Builder::new()
            .prefix(".xtar-tmp-")
            .tempfile_in(&dir)
            .map_err(|source| Error::Write { path: dir.clone(), source })?;
        let (f, tmp_path) = tmp.into_parts();
        let mut w = io::BufWriter::new(f);
        let mut data = member.take(local.csize.min(local.usize.saturating_add(1 << 20)));
        let copied = match (local.method, frames) {
            // zstd frames (version 5): their content, as far as it decodes.
            (Method::Stored, Frames::Zstd(z)) => {
                let mut n = 0u64;
                let mut failed = None;
                let _ = z.decode(&mut data, &mut |b| {
                    n += b.len() as u64;
                    w.write_all(b).inspect_err(|e| failed = Some(io::Error::new(e.kind(), e.to_string())))
                });
                failed.map_or(Ok(n), Err)
            }
            (Method::Stored, _) => io::copy(&mut (&mut data).take(local.usize), &mut w),
            (Method::Deflated, _) => {
                let mut dec = DeflateDecoder::new(BufReader::new(&mut data));
                let mut buf = vec![0u8; 1 << 16];
                let mut n = 0u64;
                loop {
                    match dec.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            if n + k as u64 > local.usize {
                                break;
                            }
                            w.write_all(&buf[..k]).map_err(|source| Error::Write { path: dir.clone(), source })?;
                            n += k as u64;
                        }
                    }
                }
                Ok(n)
            }
        };
        copied.map_err(|source| Error::Write { path: dir.clone(), source })?;
        w.flush().map_err(|source| Error::Write { path: dir.clone(), source })?;
        dest.persist(tmp_path, &kept)?;
        Ok(dest.abs(&kept))
    })();
    match res {
        Ok(p) => Some(p),
        Err(e) => {
            obs.warning(&e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_keeps_the_good_lines() {
        let sha = "00".repeat(32);
        let text = format!(
            "#xtar-index 2\n#dir a\na\td\t0755\t1.000000000\t0\t-\t-\n\
             a/x\tf\t0644\t1.000000000\t1\t{sha}\t-\na/\0\0garbage\na/y\tl\t0777\t1.000000000\t0\t-\tb\n"
        );
        let l = lenient(text.as_bytes(), INDEX_MAGIC, Some(b"a"));
        assert!(!l.complete);
        let paths: Vec<_> = l.entries.iter().map(|e| String::from_utf8_lossy(&e.path).into_owned()).collect();
        assert_eq!(paths, ["a", "a/x", "a/y"]);
        assert_eq!(l.version.as_deref(), Some("2"));
        let whole = text.replace("a/\0\0garbage\n", "");
        assert!(lenient(whole.as_bytes(), INDEX_MAGIC, Some(b"a")).complete);
    }

    #[test]
    fn lenient_rejects_lines_of_other_directories() {
        let l = lenient(b"#xtar-index 2\n#dir a\nb\td\t0755\t0.000000000\t0\t-\t-\n", INDEX_MAGIC, Some(b"a"));
        assert!(l.entries.is_empty());
        assert!(!l.complete);
    }
}
