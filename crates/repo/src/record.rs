//! The snapshot record (`.xtar-snapshot`): the manifest of a snapshot,
//! with, for every file that has content, where its data is. A version 2
//! record may list only what differs from an earlier snapshot (its base):
//! the lines that are new or changed, and the paths that are gone.
//! `docs/format/repository.md` is the normative description.

use manifest::{
    escape_path, parse_entry_line, push_time, push_u64, unescape_path, write_entry_line, Entry, Kind, Timestamp,
};
use rayon::prelude::*;
use sha2::Digest;

use crate::{Error, Result};

/// The member name of the record in each archive of a repository.
pub const RECORD_NAME: &[u8] = b".xtar-snapshot";
/// The first word of a record.
pub const RECORD_MAGIC: &str = "#xtar-snapshot";
/// The record format version this code writes.
pub const RECORD_VERSION: u32 = 2;
/// The oldest record format version this code reads.
pub const OLDEST_RECORD_VERSION: u32 = 1;
/// The last line of a version 2 record: this word, a space, and the
/// SHA-256 (hex) of every byte before the line.
const END: &[u8] = b"#end ";

/// A filter on the escaped path field of record lines.
pub type PathFilter<'a> = &'a (dyn Fn(&[u8]) -> bool + Sync);

/// What an archive of a repository is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It completes a snapshot: its record lists the whole tree.
    Complete,
    /// A checkpoint of a run that had not finished: its record lists only
    /// the files stored in it. The next run reuses them.
    Partial,
    /// Data still needed by other snapshots, kept after its own snapshot
    /// was forgotten: its record lists only the files stored in it.
    Data,
}

impl Status {
    /// The word used in the record.
    pub fn word(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Partial => "partial",
            Status::Data => "data",
        }
    }
}

/// Where the content of a file is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The archive (its name, without `.xtar`).
    pub archive: String,
    /// The path the member was stored under, when it differs from the
    /// file's path (a moved file, or a second file with the same content).
    pub member: Option<Vec<u8>>,
    /// Offset of the member's first header block in the archive: a hint,
    /// checked against the member's name when read.
    pub offset: u64,
}

/// The change-detection data of a file, as `lstat` saw it at backup time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Status change time.
    pub ctime: Timestamp,
    /// Inode number.
    pub ino: u64,
}

/// One line of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The manifest entry.
    pub entry: Entry,
    /// Where the content is (regular files with content only).
    pub loc: Option<Location>,
    /// Change detection data (regular files only).
    pub stat: Option<Stat>,
}

impl Line {
    /// The name the file's member carries in its archive.
    pub fn member_name(&self) -> Option<&[u8]> {
        self.loc.as_ref().map(|l| l.member.as_deref().unwrap_or(&self.entry.path))
    }
}

/// Counts kept in a record's header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Regular files and hard links in the snapshot.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Paths not in the parent snapshot.
    pub added: u64,
    /// Paths in the parent snapshot whose content or kind changed.
    pub changed: u64,
    /// Paths of the parent snapshot that are gone.
    pub removed: u64,
    /// Files whose content was stored by this run.
    pub stored: u64,
    /// Their total size.
    pub stored_bytes: u64,
}

/// A parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The archive's name.
    pub name: String,
    /// What the archive is.
    pub status: Status,
    /// The snapshot this one was compared with, if any.
    pub parent: Option<String>,
    /// The snapshot whose record this one's lines are relative to: `None`
    /// when the record lists the whole tree.
    pub base: Option<String>,
    /// The machine the snapshot was taken on (empty in version 1 records).
    pub host: Vec<u8>,
    /// The source directory.
    pub root: Vec<u8>,
    /// Counts.
    pub stats: Stats,
    /// Entries, in canonical order (with a base: those that are new or
    /// differ from the base's).
    pub lines: Vec<Line>,
    /// With a base: the paths of the base's snapshot that this one does
    /// not have, in canonical order.
    pub removed: Vec<Vec<u8>>,
}

/// Whether `name` is a valid archive name: `YYYYMMDDTHHMMSS.ffffffZ`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 23
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 => c == b'T',
            15 => c == b'.',
            22 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Appends one entry line of a record, with its newline.
pub(crate) fn write_line(out: &mut Vec<u8>, l: &Line) {
    write_entry_line(out, &l.entry);
    out.pop(); // the newline
    match &l.loc {
        Some(loc) => {
            out.push(b'\t');
            out.extend_from_slice(loc.archive.as_bytes());
            out.push(b'\t');
            match &loc.member {
                Some(m) => escape_path(out, m),
                None => out.push(b'='),
            }
            out.push(b'\t');
            push_u64(out, loc.offset);
        }
        None => out.extend_from_slice(b"\t-\t-\t-"),
    }
    match &l.stat {
        Some(st) => {
            out.push(b'\t');
            push_time(out, st.ctime);
            out.push(b'\t');
            push_u64(out, st.ino);
        }
        None => out.extend_from_slice(b"\t-\t-"),
    }
    out.push(b'\n');
}

/// Appends a removal line: the escaped path and `-`.
pub(crate) fn write_removal(out: &mut Vec<u8>, path: &[u8]) {
    escape_path(out, path);
    out.extend_from_slice(b"\t-\n");
}

impl Record {
    /// An empty record of archive `name`.
    pub fn new(name: &str, status: Status, root: &[u8]) -> Record {
        Record {
            name: name.to_string(),
            status,
            parent: None,
            base: None,
            host: Vec::new(),
            root: root.to_vec(),
            stats: Stats::default(),
            lines: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// The record's text (version 2).
    pub fn to_text(&self) -> Vec<u8> {
        // Lines are written in parallel chunks, then joined in order into
        // one buffer of the exact size.
        let mut parts: Vec<Vec<u8>> = self
            .lines
            .par_chunks(4096)
            .map(|chunk| {
                let mut out = Vec::with_capacity(chunk.len() * 256);
                for l in chunk {
                    write_line(&mut out, l);
                }
                out
            })
            .collect();
        if !self.removed.is_empty() {
            // Removals are merged into the lines, in canonical order.
            let mut merged = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + self.removed.len() * 64);
            let mut r = self.removed.iter().peekable();
            for l in &self.lines {
                while let Some(p) = r.next_if(|p| manifest::cmp_canonical(p, &l.entry.path).is_lt()) {
                    write_removal(&mut merged, p);
                }
                write_line(&mut merged, l);
            }
            for p in r {
                write_removal(&mut merged, p);
            }
            parts = vec![merged];
        }
        let mut out = Vec::with_capacity(512 + self.root.len() * 4 + parts.iter().map(Vec::len).sum::<usize>());
        self.write_header(&mut out);
        for p in parts {
            out.extend_from_slice(&p);
        }
        let sum = sha2::Sha256::digest(&out);
        end_line(&mut out, &sum.into());
        out
    }

    /// Appends the record's header lines (everything before its entry
    /// lines).
    pub(crate) fn write_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            &format!(
                "{RECORD_MAGIC} {RECORD_VERSION}\n#name {}\n#status {}\n#parent {}\n#base {}\n#host ",
                self.name,
                self.status.word(),
                self.parent.as_deref().unwrap_or("-"),
                self.base.as_deref().unwrap_or("-"),
            )
            .into_bytes(),
        );
        escape_path(out, &self.host);
        out.extend_from_slice(b"\n#root ");
        escape_path(out, &self.root);
        let s = &self.stats;
        out.extend_from_slice(
            format!(
                "\n#stats files={} bytes={} added={} changed={} removed={} stored={} stored-bytes={}\n",
                s.files, s.bytes, s.added, s.changed, s.removed, s.stored, s.stored_bytes
            )
            .as_bytes(),
        );
    }

    /// Checks a record's text without parsing its lines: the first line,
    /// and for version 2 the checksum of its last line. Returns the part
    /// to parse (without the checksum line).
    pub fn verify<'t>(text: &'t [u8], archive: &str) -> Result<&'t [u8]> {
        Record::strip_end(text, archive, true)
    }

    /// The version of a record, and its text without the `#end` line,
    /// checked against it when `check`.
    fn strip_end<'t>(text: &'t [u8], archive: &str, check: bool) -> Result<&'t [u8]> {
        let err = |line: usize, message: String| Error::Record { archive: archive.to_string(), line, message };
        let first_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
        let first = String::from_utf8_lossy(&text[..first_end]);
        let version: u32 = first
            .strip_prefix(RECORD_MAGIC)
            .and_then(|v| v.strip_prefix(' '))
            .ok_or_else(|| err(1, format!("not a snapshot record (first line `{first}`)")))?
            .parse()
            .map_err(|_| err(1, format!("bad record version in `{first}`")))?;
        if !(OLDEST_RECORD_VERSION..=RECORD_VERSION).contains(&version) {
            return Err(err(
                1,
                format!(
                    "record version {version}; this pybackup reads versions {OLDEST_RECORD_VERSION} to {RECORD_VERSION}"
                ),
            ));
        }
        if version == 1 {
            return Ok(text);
        }
        let lines = || text.iter().filter(|&&b| b == b'\n').count();
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        let last_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let Some(sum) = body[last_start..].strip_prefix(END) else {
            return Err(err(lines(), "the record is cut short (no `#end` line with its checksum)".into()));
        };
        if check && sum != hex::encode(sha2::Sha256::digest(&text[..last_start])).as_bytes() {
            return Err(err(lines(), "the record is damaged: its checksum does not match".into()));
        }
        Ok(&text[..last_start])
    }

    /// Like [`Record::parse_filtered`], for a text that [`Record::verify`]
    /// already accepted: its checksum is not computed again.
    pub fn parse_verified(
        text: &[u8],
        archive: &str,
        header_only: bool,
        keep: Option<PathFilter<'_>>,
    ) -> Result<Record> {
        let body = Record::strip_end(text, archive, false)?;
        Record::parse_body_of(body, archive, header_only, keep)
    }

    /// Parses a record; `archive` names it in errors. With `header_only`,
    /// the entry lines are not read.
    pub fn parse(text: &[u8], archive: &str, header_only: bool) -> Result<Record> {
        Record::parse_filtered(text, archive, header_only, None)
    }

    /// Like [`Record::parse`], keeping only the entry lines whose first
    /// field (the escaped path) `keep` accepts; the others are not parsed.
    pub fn parse_filtered(
        text: &[u8],
        archive: &str,
        header_only: bool,
        keep: Option<PathFilter<'_>>,
    ) -> Result<Record> {
        let body = Record::verify(text, archive)?;
        Record::parse_body_of(body, archive, header_only, keep)
    }

    /// The record, when it is named `archive` (the archive it was read
    /// from); an error otherwise.
    pub(crate) fn named(self, archive: &str) -> Result<Record> {
        if self.name != archive {
            return Err(Error::Record {
                archive: archive.to_string(),
                line: 2,
                message: format!("the record is named {}, not after its archive", self.name),
            });
        }
        Ok(self)
    }

    /// Parses the header lines of a record (the lines before its first
    /// entry line), not checked against a checksum.
    pub(crate) fn parse_header(header: &[u8], archive: &str) -> Result<Record> {
        Record::parse_body_of(header, archive, true, None)
    }

    /// Parses a record's text without its `#end` line.
    fn parse_body_of(text: &[u8], archive: &str, header_only: bool, keep: Option<PathFilter<'_>>) -> Result<Record> {
        let err = |line: usize, message: String| Error::Record { archive: archive.to_string(), line, message };
        let mut rec = Record::new("", Status::Complete, b"");
        let mut status = None;
        // The header lines come first.
        let mut n = 1;
        let mut pos = text.iter().position(|&b| b == b'\n').map_or(text.len(), |i| i + 1);
        while pos < text.len() {
            let end = text[pos..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| pos + i);
            let line = &text[pos..end];
            if !line.is_empty() && !line.starts_with(b"#") {
                break;
            }
            n += 1;
            pos = (end + 1).min(text.len());
            let Some(h) = line.strip_prefix(b"#") else { continue };
            let h = String::from_utf8_lossy(h);
            let (key, value) = h.split_once(' ').unwrap_or((&h, ""));
            match key {
                "name" => rec.name = value.to_string(),
                "status" => {
                    status = Some(match value {
                        "complete" => Status::Complete,
                        "partial" => Status::Partial,
                        "data" => Status::Data,
                        other => return Err(err(n, format!("unknown status `{other}`"))),
                    })
                }
                "parent" if value != "-" => rec.parent = Some(value.to_string()),
                "base" if value != "-" => rec.base = Some(value.to_string()),
                "host" => {
                    rec.host = unescape_path(value.as_bytes()).map_err(|m| err(n, m))?;
                }
                "root" => {
                    rec.root = unescape_path(value.as_bytes()).map_err(|m| err(n, m))?;
                }
                "stats" => rec.stats = parse_stats(value).ok_or_else(|| err(n, "bad #stats line".into()))?,
                _ => {}
            }
        }
        if !header_only {
            (rec.lines, rec.removed) = parse_body(&text[pos..], n + 1, keep).map_err(|(n, m)| err(n, m))?;
        }
        if !valid_name(&rec.name) {
            return Err(err(2, format!("bad or missing #name `{}`", rec.name)));
        }
        rec.status = status.ok_or_else(|| err(3, "missing #status".into()))?;
        if rec.parent.as_deref().is_some_and(|p| !valid_name(p)) {
            return Err(err(4, "bad #parent".into()));
        }
        if rec.base.as_deref().is_some_and(|b| !valid_name(b) || b >= rec.name.as_str()) {
            return Err(err(5, "bad #base (not the name of an earlier archive)".into()));
        }
        if !rec.removed.is_empty() && rec.base.is_none() {
            return Err(err(n, "removal lines in a record without a #base".into()));
        }
        Ok(rec)
    }
}

/// Appends the last line of a record: `#end` and the SHA-256 of every
/// byte before it.
pub(crate) fn end_line(out: &mut Vec<u8>, sum: &[u8; 32]) {
    out.extend_from_slice(END);
    out.extend_from_slice(hex::encode(sum).as_bytes());
    out.push(b'\n');
}

/// One line of a record's body, and one change a record with a base makes
/// to its base: an entry, or a path that is gone.
pub(crate) enum Item {
    /// An entry line.
    Line(Line),
    /// A removal line: the path is gone.
    Removed(Vec<u8>),
}

impl Item {
    /// The path it is about.
    pub(crate) fn path(&self) -> &[u8] {
        match self {
            Item::Line(l) => &l.entry.path,
            Item::Removed(p) => p,
        }
    }
}

type Body = (Vec<Line>, Vec<Vec<u8>>);

/// Parses the entry lines of a record, `first` being the line number of
/// the first, in parallel chunks of whole lines. Lines starting with `#`
/// there are ignored (headers come first; paths starting with `#` are
/// escaped). Errors carry their line number.
fn parse_body(body: &[u8], first: usize, keep: Option<PathFilter<'_>>) -> std::result::Result<Body, (usize, String)> {
    const CHUNK: usize = 256 * 1024;
    let mut chunks: Vec<(usize, &[u8])> = Vec::new();
    let (mut start, mut line_no) = (0, first);
    while start < body.len() {
        let mut end = (start + CHUNK).min(body.len());
        end = body[end..].iter().position(|&b| b == b'\n').map_or(body.len(), |i| end + i + 1);
        chunks.push((line_no, &body[start..end]));
        line_no += body[start..end].iter().filter(|&&b| b == b'\n').count();
        start = end;
    }
    type Part = std::result::Result<(usize, Vec<Item>), (usize, String)>;
    let parsed: Vec<Part> = chunks
        .par_iter()
        .map(|&(first, chunk)| {
            let mut items: Vec<Item> = Vec::new();
            let mut first_kept = first;
            for (i, line) in chunk.split(|&b| b == b'\n').enumerate() {
                let n = first + i;
                if line.is_empty() || line.starts_with(b"#") {
                    continue;
                }
                if let Some(keep) = keep {
                    if !keep(line.split(|&b| b == b'\t').next().unwrap_or_default()) {
                        continue;
                    }
                }
                let item = parse_item(line, n).map_err(|m| (n, m))?;
                if items.is_empty() {
                    first_kept = n;
                }
                if let Some(p) = items.last() {
                    if manifest::cmp_canonical(p.path(), item.path()) != std::cmp::Ordering::Less {
                        return Err((n, "entries out of order or repeated".into()));
                    }
                }
                items.push(item);
            }
            Ok((first_kept, items))
        })
        .collect();
    let (mut lines, mut removed): Body = (Vec::new(), Vec::new());
    let mut last: Option<Vec<u8>> = None;
    for part in parsed {
        let (first_kept, part) = part?;
        if let (Some(p), Some(l)) = (&last, part.first()) {
            if manifest::cmp_canonical(p, l.path()) != std::cmp::Ordering::Less {
                return Err((first_kept, "entries out of order or repeated".into()));
            }
        }
        if let Some(l) = part.last() {
            last = Some(l.path().to_vec());
        }
        for item in part {
            match item {
                Item::Line(l) => lines.push(l),
                Item::Removed(p) => removed.push(p),
            }
        }
    }
    Ok((lines, removed))
}

/// What `new` changes of `old` (both full listings in canonical order):
/// the lines of `new` that `old` lacks or has otherwise, and the paths of
/// `old` that `new` lacks.
pub fn diff_lines(old: &[Line], new: &[Line]) -> (Vec<Line>, Vec<Vec<u8>>) {
    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let ord = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => manifest::cmp_canonical(&o.entry.path, &n.entry.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                removed.push(old[i].entry.path.clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                changed.push(new[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if old[i] != new[j] {
                    changed.push(new[j].clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    (changed, removed)
}

/// Merges two lists in canonical order; on the same path, `newer` wins.
fn merge_by_path<T>(older: Vec<T>, newer: Vec<T>, path: impl Fn(&T) -> &[u8]) -> Vec<T> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let mut newer = newer.into_iter().peekable();
    for o in older {
        let mut same = false;
        while let Some(n) = newer.next_if(|n| manifest::cmp_canonical(path(n), path(&o)).is_le()) {
            same |= path(&n) == path(&o);
            out.push(n);
        }
        if !same {
            out.push(o);
        }
    }
    out.extend(newer);
    out
}

/// The full listing of a snapshot: `base`'s lines (a full listing) with
/// the changes of `deltas` (records with a base, oldest first) applied.
pub fn apply_deltas(base: Vec<Line>, deltas: Vec<Record>) -> Vec<Line> {
    let mut overlay: Vec<Item> = Vec::new();
    for d in deltas {
        let sets = d.lines.into_iter().map(Item::Line).collect();
        let removals = d.removed.into_iter().map(Item::Removed).collect();
        overlay = merge_by_path(overlay, merge_by_path(removals, sets, Item::path), Item::path);
    }
    if overlay.is_empty() {
        return base;
    }
    // The last merge straight into lines: the base's are moved once.
    let mut out = Vec::with_capacity(base.len() + overlay.len());
    let mut overlay = overlay.into_iter().peekable();
    for l in base {
        let mut same = false;
        while let Some(c) = overlay.next_if(|c| manifest::cmp_canonical(c.path(), &l.entry.path).is_le()) {
            same |= c.path() == &l.entry.path[..];
            if let Item::Line(n) = c {
                out.push(n);
            }
        }
        if !same {
            out.push(l);
        }
    }
    out.extend(overlay.filter_map(|c| match c {
        Item::Line(l) => Some(l),
        Item::Removed(_) => None,
    }));
    out
}

fn parse_stats(v: &str) -> Option<Stats> {
    let mut s = Stats::default();
    for kv in v.split(' ') {
        let (k, v) = kv.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "files" => s.files = v,
            "bytes" => s.bytes = v,
            "added" => s.added = v,
            "changed" => s.changed = v,
            "removed" => s.removed = v,
            "stored" => s.stored = v,
            "stored-bytes" => s.stored_bytes = v,
            _ => {}
        }
    }
    Some(s)
}

/// Parses one line of a record's body (without its newline): a removal
/// line or an entry line.
pub(crate) fn parse_item(line: &[u8], n: usize) -> std::result::Result<Item, String> {
    match line.strip_suffix(b"\t-").filter(|p| !p.contains(&b'\t')) {
        Some(p) => {
            let p = unescape_path(p)?;
            xtar::format::check_member_path(&p).map_err(|r| format!("removed path: {r}"))?;
            Ok(Item::Removed(p))
        }
        None => Ok(Item::Line(parse_line(line, n)?)),
    }
}

/// Parses one entry line: the 7 manifest fields, then archive, member,
/// offset, ctime and inode.
fn parse_line(line: &[u8], n: usize) -> std::result::Result<Line, String> {
    // Where the 11 tabs are (no allocation: a million lines are parsed a
    // run).
    let mut tabs = [0usize; 11];
    let mut found = 0;
    for (i, _) in line.iter().enumerate().filter(|(_, &b)| b == b'\t') {
        if let Some(t) = tabs.get_mut(found) {
            *t = i;
        }
        found += 1;
    }
    if found != 11 {
        return Err(format!("expected 12 tab-separated fields, found {}", found + 1));
    }
    let entry = parse_entry_line(&line[..tabs[6]], n).map_err(|e| e.to_string())?;
    let field = |i: usize| &line[tabs[i - 1] + 1..tabs.get(i).copied().unwrap_or(line.len())];
    let num = |f: &[u8], what: &str| -> std::result::Result<u64, String> {
        std::str::from_utf8(f).ok().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad {what}"))
    };
    let loc = match (field(7), field(8), field(9)) {
        (b"-", b"-", b"-") => None,
        (a, m, o) => {
            let archive = std::str::from_utf8(a).ok().filter(|a| valid_name(a)).ok_or("bad archive name")?;
            let member = match m {
                b"=" => None,
                m => {
                    let p = unescape_path(m)?;
                    xtar::format::check_member_path(&p).map_err(|r| format!("member path: {r}"))?;
                    Some(p)
                }
            };
            Some(Location { archive: archive.to_string(), member, offset: num(o, "offset")? })
        }
    };
    if loc.is_some() && (entry.kind != Kind::File || entry.sha256.is_none()) {
        return Err("a location on an entry that is not a hashed file".into());
    }
    let stat = match (field(10), field(11)) {
        (b"-", b"-") => None,
        (c, i) => {
            let s = std::str::from_utf8(c).map_err(|_| "bad ctime")?;
            let (sec, nsec) = s.split_once('.').ok_or("bad ctime")?;
            let sec: i64 = sec.parse().map_err(|_| "bad ctime")?;
            let nsec: u32 = nsec.parse().ok().filter(|n| *n < 1_000_000_000).ok_or("bad ctime")?;
            Some(Stat { ctime: Timestamp::new(sec, nsec), ino: num(i, "inode")? })
        }
    };
    Ok(Line { entry, loc, stat })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let file = |p: &[u8], loc: Option<Location>| Line {
            entry: Entry {
                path: p.to_vec(),
                kind: Kind::File,
                mode: 0o644,
                mtime: Timestamp::new(-2, 5),
                size: 3,
                sha256: Some([7; 32]),
                target: None,
            },
            loc,
            stat: Some(Stat { ctime: Timestamp::new(1_700_000_000, 999_999_999), ino: 42 }),
        };
        Record {
            name: "20261123T101500.123456Z".into(),
            status: Status::Partial,
            parent: Some("20261122T000000.000000Z".into()),
            base: None,
            host: b"box one".to_vec(),
            removed: Vec::new(),
            root: b"/home/a b\n".to_vec(),
            stats: Stats { files: 2, bytes: 6, added: 1, changed: 1, removed: 3, stored: 1, stored_bytes: 3 },
            lines: vec![
                Line { entry: Entry::dir(Vec::new(), 0o755, Timestamp::new(5, 0)), loc: None, stat: None },
                file(
                    b"a\tb",
                    Some(Location {
                        archive: "20261122T000000.000000Z".into(),
                        member: Some(b"old/x y".to_vec()),
                        offset: 1536,
                    }),
                ),
                file(b"c", Some(Location { archive: "20261123T101500.123456Z".into(), member: None, offset: 0 })),
            ],
        }
    }

    /// The text with its checksum line computed again (after an edit).
    fn reseal(text: &str) -> Vec<u8> {
        let body = &text[..text.rfind("#end ").expect("sealed")];
        let mut out = body.as_bytes().to_vec();
        out.extend_from_slice(END);
        out.extend_from_slice(hex::encode(sha2::Sha256::digest(body.as_bytes())).as_bytes());
        out.push(b'\n');
        out
    }

    #[test]
    fn records_round_trip() {
        let r = sample();
        let text = r.to_text();
        assert_eq!(Record::parse(&text, "x", false).expect("parses"), r);
        let head = Record::parse(&text, "x", true).expect("parses");
        assert!(head.lines.is_empty());
        assert_eq!(head.stats, r.stats);
    }

    #[test]
    fn hostile_records_are_refused_with_their_line() {
        let text = String::from_utf8(sample().to_text()).expect("utf8");
        for (bad, line) in [
            (text.replace("20261122T000000.000000Z\told", "../../etc\told"), 10),
            (text.replace("\told/x", "\t../x"), 10),
            (text.replace("\t1536\t", "\tlots\t"), 10),
            (text.replace("#status partial", "#status odd"), 3),
            (text.replace("#xtar-snapshot 2", "#xtar-snapshot 9"), 1),
            (text.replace("#base -", "#base 20261124T000000.000000Z"), 5),
        ] {
            match Record::parse(&reseal(&bad), "x", false) {
                Err(Error::Record { line: l, .. }) => assert_eq!(l, line, "{bad}"),
                other => panic!("accepted or wrong error: {other:?}"),
            }
        }
    }

    /// A record long enough to be parsed in several chunks: it round-trips,
    /// and an error far into it names its own line.
    #[test]
    fn long_records_round_trip_and_name_the_bad_line() {
        let mut r = sample();
        let template = r.lines[2].clone();
        r.lines.truncate(1);
        for i in 0..20_000 {
            let mut l = template.clone();
            l.entry.path = format!("d/{i:06}").into_bytes();
            r.lines.push(l);
        }
        let text = r.to_text();
        assert!(text.len() > 4 * 256 * 1024, "several chunks: {}", text.len());
        assert_eq!(Record::parse(&text, "x", false).expect("parses"), r);
        // Lines 1-8 are headers, 9 the root: entry k is on line 10 + k.
        for k in [1usize, 5_000, 12_345, 19_998] {
            let bad = String::from_utf8(text.clone()).expect("utf8").replacen(
                &format!("d/{k:06}\t"),
                &format!("d/{:06}\t", k - 1),
                1,
            );
            match Record::parse(&reseal(&bad), "x", false) {
                Err(Error::Record { line, .. }) => assert_eq!(line, 10 + k, "entry {k}"),
                other => panic!("entry {k}: accepted or wrong error: {other:?}"),
            }
        }
        // Out of order across every possible chunk border.
        let mut swapped = r.clone();
        swapped.lines[1..].reverse();
        assert!(Record::parse(&swapped.to_text(), "x", false).is_err());
    }

    #[test]
    fn a_damaged_or_cut_record_is_refused() {
        let text = sample().to_text();
        let mut flipped = text.clone();
        flipped[text.len() / 2] ^= 0x20;
        let cut = &text[..text.len() - 100];
        for (bad, what) in [(&flipped[..], "checksum does not match"), (cut, "cut short")] {
            match Record::parse(bad, "x", false) {
                Err(e) => assert!(e.to_string().contains(what), "{e}"),
                Ok(_) => panic!("accepted: {what}"),
            }
        }
    }

    /// A delta (lines that changed, paths removed) applied to its base
    /// gives the new listing back, and survives its text.
    #[test]
    fn deltas_apply_to_their_base() {
        let old = sample();
        let mut new = old.clone();
        new.lines.remove(1); // "a\tb" is gone
        new.lines[1].stat = Some(Stat { ctime: Timestamp::new(9, 9), ino: 43 }); // "c" touched
        let mut added = new.lines[1].clone();
        added.entry.path = b"b".to_vec();
        new.lines.insert(1, added);
        let (changed, removed) = diff_lines(&old.lines, &new.lines);
        assert_eq!(removed, vec![b"a\tb".to_vec()]);
        assert_eq!(
            changed.iter().map(|l| l.entry.path.clone()).collect::<Vec<_>>(),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        let mut delta = Record::new("20261124T000000.000000Z", Status::Complete, b"/");
        delta.base = Some(old.name.clone());
        (delta.lines, delta.removed) = (changed, removed);
        let delta = Record::parse(&delta.to_text(), "x", false).expect("parses");
        assert_eq!(apply_deltas(old.lines.clone(), vec![delta]), new.lines);
        // A chain: each step's whole listing is the previous one's with the
        // step's delta applied, whatever a path went through (removed and
        // added again, changed twice, added then removed).
        let mut steps = vec![old.lines.clone()];
        let mut deltas = Vec::new();
        type Edit<'a> = &'a dyn Fn(&mut Vec<Line>);
        let edits: [Edit<'_>; 4] = [
            &|v| v.retain(|l| l.entry.path != b"c"),
            &|v| {
                let mut l = v[1].clone();
                l.entry.path = b"c".to_vec();
                l.entry.size = 99;
                v.push(l);
                v.retain(|l| l.entry.path != b"a\tb");
            },
            &|v| v.iter_mut().for_each(|l| l.entry.mode = 0o600),
            &|v| {
                let mut l = v[0].clone();
                l.entry.path = b"z/deep".to_vec();
                v.push(l);
            },
        ];
        for edit in edits {
            let mut next = steps.last().cloned().unwrap_or_default();
            edit(&mut next);
            next.sort_by(|a, b| manifest::cmp_canonical(&a.entry.path, &b.entry.path));
            let (changed, removed) = diff_lines(steps.last().map_or(&[][..], |v| &v[..]), &next);
            let mut d = Record::new("20261125T000000.000000Z", Status::Complete, b"/");
            (d.lines, d.removed, d.base) = (changed, removed, Some(old.name.clone()));
            deltas.push(d);
            steps.push(next);
            assert_eq!(&apply_deltas(old.lines.clone(), deltas.clone()), steps.last().expect("step"));
        }
        // An unchanged snapshot's delta is empty.
        assert_eq!(diff_lines(&old.lines, &old.lines), (Vec::new(), Vec::new()));
    }
}
