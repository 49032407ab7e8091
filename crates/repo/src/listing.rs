//! Records read as streams. A backup compares the tree with its parent's
//! whole listing, which for a million files is a record of about 180 MB:
//! held whole and parsed, it took over a gigabyte. Here a record is
//! checked once (its `#end` checksum, hashed as it is read), and its lines
//! are then read one at a time, as often as needed; a snapshot's listing
//! is its chain of records merged line by line (repository.md §2.1).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;

use crate::record::{parse_item, Item, Line, Record, Status, RECORD_MAGIC};
use crate::repository::{Repo, MAX_CHAIN};
use crate::{Error, Result};

/// Where the checked text of a record is.
#[derive(Clone)]
enum Text {
    /// `len` bytes at `start` of a file on this machine: the copy beside
    /// a local archive, or this machine's cache of a remote or encrypted
    /// repository's record.
    File { path: PathBuf, start: u64 },
    /// The text, read whole (a record that has no such file).
    Memory(Arc<Vec<u8>>),
}

/// A record, checked, whose lines can be read as often as needed.
#[derive(Clone)]
pub(crate) struct Source {
    /// Its header (no lines).
    pub header: Arc<Record>,
    /// The bytes of its text.
    pub len: u64,
    text: Text,
    /// Where its first entry line starts, and where its `#end` line
    /// starts (or the text ends), relative to the text.
    body: (u64, u64),
    /// The line number of its first entry line.
    first_line: usize,
}

/// The bytes of a shared buffer, for a cursor.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Source {
    /// The record of archive `name` in `repo`: from a file on this machine
    /// when one holds it whole (checked by hashing it as it is read),
    /// else read whole.
    pub(crate) fn open(repo: &Repo, name: &str) -> Result<Source> {
        if let Some((path, start)) = repo.record_file(name) {
            if let Some(s) = Source::from_file(&path, start, name) {
                return Ok(s);
            }
        }
        let text = repo.raw(name)?;
        repo.forget_raw(name);
        Source::from_memory(text, name)
    }

    /// The record at `start` of the file `path`, when its checksum holds
    /// and it names itself `name`; `None` otherwise (the caller reads it
    /// the usual way, which reports what is wrong).
    fn from_file(path: &Path, start: u64, name: &str) -> Option<Source> {
        let mut f = File::open(path).ok()?;
        let end = f.metadata().ok()?.len();
        let len = end.checked_sub(start)?;
        f.seek(SeekFrom::Start(start)).ok()?;
        let mut r = BufReader::with_capacity(1 << 20, &mut f);
        let (header, header_len, header_lines) = read_header(&mut r, name).ok()?;
        let body_end = if header_line_version(&header)? == 1 {
            len
        } else {
            // The last line: `#end SHA256`.
            let tail_len = len.min(128);
            let mut tail = vec![0; tail_len as usize];
            f.seek(SeekFrom::Start(end - tail_len)).ok()?;
            f.read_exact(&mut tail).ok()?;
            let body = tail.strip_suffix(b"\n")?;
            let at = body.iter().rposition(|&b| b == b'\n')? + 1;
            let sum = body[at..].strip_prefix(b"#end ")?;
            let body_end = len - tail_len + at as u64;
            let mut h = sha2::Sha256::new();
            f.seek(SeekFrom::Start(start)).ok()?;
            let mut part = (&mut f).take(body_end);
            let mut buf = vec![0; 1 << 20];
            loop {
                let n = part.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            (hex::encode(h.finalize()).as_bytes() == sum).then_some(body_end)?
        };
        let header = parse_header(&header, name).ok()?;
        Some(Source {
            header: Arc::new(header),
            len,
            text: Text::File { path: path.to_path_buf(), start },
            body: (header_len, body_end),
            first_line: header_lines + 1,
        })
    }

    /// A record's text, checked by the caller.
    fn from_memory(text: Arc<Vec<u8>>, name: &str) -> Result<Source> {
        let body_end = Record::verify(&text, name)?.len() as u64;
        let (header, header_len, header_lines) = read_header(&mut &text[..], name)?;
        let header = parse_header(&header, name)?;
        Ok(Source {
            header: Arc::new(header),
            len: text.len() as u64,
            text: Text::Memory(text),
            body: (header_len, body_end),
            first_line: header_lines + 1,
        })
    }

    /// Its items (entry lines and removal lines), one at a time.
    pub(crate) fn items(&self) -> Result<Items> {
        let (from, to) = self.body;
        let reader: Box<dyn BufRead + Send> = match &self.text {
            Text::File { path, start } => {
                let mut f = File::open(path).map_err(crate::io_err(path))?;
                f.seek(SeekFrom::Start(start + from)).map_err(crate::io_err(path))?;
                Box::new(BufReader::with_capacity(256 << 10, f.take(to - from)))
            }
            Text::Memory(text) => {
                let mut c = std::io::Cursor::new(Shared(text.clone()));
                c.set_position(from);
                Box::new(c.take(to - from))
            }
        };
        Ok(Items {
            archive: self.header.name.clone(),
            has_base: self.header.base.is_some(),
            reader,
            line_no: self.first_line,
            line: Vec::new(),
            last: None,
        })
    }
}

/// The version number of a record's first line, if it is one.
fn header_line_version(header: &[u8]) -> Option<u32> {
    let first = header.split(|&b| b == b'\n').next()?;
    std::str::from_utf8(first.strip_prefix(RECORD_MAGIC.as_bytes())?.strip_prefix(b" ")?).ok()?.parse().ok()
}

/// Reads a record's header lines (those before its first entry line):
/// their bytes, their length and how many lines they are.
fn read_header(r: &mut impl BufRead, name: &str) -> Result<(Vec<u8>, u64, usize)> {
    let mut header = Vec::new();
    let mut lines = 0;
    loop {
        let buf = r.fill_buf().map_err(|e| Error::Record {
            archive: name.into(),
            line: lines + 1,
            message: e.to_string(),
        })?;
        if buf.is_empty() || !(buf[0] == b'#' || buf[0] == b'\n') {
            break;
        }
        let at = header.len();
        r.read_until(b'\n', &mut header).map_err(|e| Error::Record {
            archive: name.into(),
            line: lines + 1,
            message: e.to_string(),
        })?;
        lines += 1;
        if header[at..].starts_with(b"#end ") {
            // An empty record: its `#end` line is not part of the header.
            header.truncate(at);
            lines -= 1;
            break;
        }
    }
    let len = header.len() as u64;
    Ok((header, len, lines))
}

/// Parses a record's header lines, as [`Record::parse`] would.
fn parse_header(header: &[u8], name: &str) -> Result<Record> {
    if header_line_version(header).is_none() {
        // Let the usual check say what is wrong.
        Record::verify(header, name)?;
    }
    Record::parse_header(header, name)?.named(name)
}

impl Items {
    /// The items of a record's body read from `reader` (lines of a record
    /// this run wrote; `label` names it in errors).
    pub(crate) fn from_reader(label: &str, reader: Box<dyn BufRead + Send>) -> Items {
        Items { archive: label.to_string(), has_base: true, reader, line_no: 1, line: Vec::new(), last: None }
    }
}

/// The items of one record, read one at a time, checked for order.
pub(crate) struct Items {
    archive: String,
    has_base: bool,
    reader: Box<dyn BufRead + Send>,
    line_no: usize,
    line: Vec<u8>,
    last: Option<Vec<u8>>,
}

impl Items {
    /// The next item, or `None` at the end.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>> {
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line).map_err(|e| Error::Record {
                archive: self.archive.clone(),
                line: self.line_no,
                message: e.to_string(),
            })?;
            if n == 0 {
                return Ok(None);
            }
            let no = self.line_no;
            self.line_no += 1;
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            let err = |message: String| Error::Record { archive: self.archive.clone(), line: no, message };
            let item = parse_item(line, no).map_err(err)?;
            if matches!(item, Item::Removed(_)) && !self.has_base {
                return Err(err("removal lines in a record without a #base".into()));
            }
            if let Some(p) = &self.last {
                if manifest::cmp_canonical(p, item.path()) != std::cmp::Ordering::Less {
                    return Err(err("entries out of order or repeated".into()));
                }
            }
            let last = self.last.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(item.path());
            return Ok(Some(item));
        }
    }
}

/// The records a snapshot's listing is made of, newest first, each
/// checked: its own, its base's, and so on to one that lists the whole
/// tree.
pub(crate) fn chain(repo: &Repo, own: Source) -> Result<Vec<Source>> {
    let name = own.header.name.clone();
    let mut chain = vec![own];
    while let Some(base) = chain.last().and_then(|r| r.header.base.clone()) {
        if chain.len() > MAX_CHAIN {
            return Err(Error::Record {
                archive: name.to_string(),
                line: 5,
                message: format!("more than {MAX_CHAIN} records with a base in a row"),
            });
        }
        let chain_err =
            |source: Error| Error::Chain { snapshot: name.to_string(), base: base.clone(), source: Box::new(source) };
        let rec = Source::open(repo, &base).map_err(chain_err)?;
        if rec.header.status != Status::Complete {
            return Err(chain_err(Error::NoRecord { archive: base.clone() }));
        }
        chain.push(rec);
    }
    Ok(chain)
}

/// A snapshot's whole listing, line by line in canonical order: the items
/// of several streams merged, a later stream's item winning on the same
/// path (a removal item takes the path out).
pub(crate) struct Merge {
    streams: Vec<Items>,
    heads: Vec<Option<Item>>,
    /// The path being merged (a buffer kept between lines).
    path: Vec<u8>,
}

impl Merge {
    /// The listing of `chain` (newest first, as [`chain`] gives it), with
    /// `more` applied after it (oldest first).
    pub(crate) fn new(chain: &[Source], more: Vec<Items>) -> Result<Merge> {
        let mut streams: Vec<Items> = chain.iter().rev().map(Source::items).collect::<Result<_>>()?;
        streams.extend(more);
        let heads = streams.iter_mut().map(Items::next_item).collect::<Result<_>>()?;
        Ok(Merge { streams, heads, path: Vec::new() })
    }

    /// The next line of the listing, or `None` at its end.
    pub(crate) fn next_line(&mut self) -> Result<Option<Line>> {
        loop {
            let mut least: Option<usize> = None;
            for (i, h) in self.heads.iter().enumerate() {
                let Some(h) = h else { continue };
                least = match least.and_then(|l| self.heads[l].as_ref()) {
                    Some(l) if manifest::cmp_canonical(h.path(), l.path()).is_gt() => least,
                    _ => Some(i),
                };
            }
            let Some(at) = least else { return Ok(None) };
            self.path.clear();
            self.path.extend_from_slice(self.heads[at].as_ref().map_or(&[][..], |h| h.path()));
            // The newest stream that has the path wins; every stream moves
            // past it.
            let mut won = None;
            for i in 0..self.heads.len() {
                if self.heads[i].as_ref().is_some_and(|h| h.path() == &self.path[..]) {
                    won = self.heads[i].take();
                    self.heads[i] = self.streams[i].next_item()?;
                }
            }
            if let Some(Item::Line(l)) = won {
                return Ok(Some(l));
            }
        }
    }
}
