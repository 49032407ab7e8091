//! `backup`: a new snapshot, storing only what is new or changed.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use manifest::{Entry, Kind, Timestamp};
use rayon::prelude::*;
use sha2::Digest;

use crate::listing::{Items, Merge, Source};
use crate::record::{
    end_line, write_line, write_removal, Item, Line, Location, Record, Stat, Stats, Status, RECORD_NAME,
};
use crate::repository::Repo;
use crate::sealed::{ARCHIVE_KEYRING, SEALED_RECORD};
use crate::Result;

/// How to back up.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Compression and walk settings (the selection is ignored).
    pub compress: xtar::CompressOptions,
    /// Compare content (SHA-256) instead of size, times and inode.
    pub checksum: bool,
    /// Input bytes stored per archive before a checkpoint: a run killed
    /// part-way loses at most about this much work.
    pub checkpoint_bytes: u64,
    /// Files hashed and stored together at most (a checkpoint archive
    /// each, but the last): what a run holds in memory.
    pub batch_files: usize,
    /// The machine name recorded (default: this machine's host name).
    pub host: Option<Vec<u8>>,
    /// The snapshot to compare with (default: the newest of the same host
    /// and source directory).
    pub parent: Option<String>,
    /// Keys to an encrypted repository (none needed: a backup reads this
    /// machine's cache of its own records; with a way in, the records
    /// themselves).
    pub keys: xtar::Keys,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            compress: xtar::CompressOptions::default(),
            checksum: false,
            checkpoint_bytes: 1 << 30,
            batch_files: BATCH_FILES,
            host: None,
            parent: None,
            keys: xtar::Keys::default(),
        }
    }
}

/// This machine's host name (`localhost` when it cannot be read).
pub fn host_name() -> Vec<u8> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|h| h.trim_ascii().to_vec())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| b"localhost".to_vec())
}

/// The checkpoint size of a backup into an object store, unless given.
pub const REMOTE_CHECKPOINT: u64 = 64 << 20;

/// Where archives bound for an object store are written before they are
/// uploaded: `$PYBACKUP_STAGING_DIR`, else the system's temporary directory.
pub(crate) fn staging_dir() -> std::path::PathBuf {
    std::env::var_os("PYBACKUP_STAGING_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| std::env::temp_dir().join("pybackup-staging"), std::path::PathBuf::from)
}

/// A record whose lines are relative to its parent's is written when the
/// parent's chain is shorter than this...
const MAX_DELTAS: usize = 64;
/// ...and the deltas of the chain, this one included, are at most this
/// fraction (1/N) of the size of the record that lists the whole tree.
const DELTA_SHARE: usize = 2;

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The new snapshot.
    pub name: String,
    /// The snapshot it was compared with.
    pub parent: Option<String>,
    /// Counts, as in the record.
    pub stats: Stats,
    /// Archives written by this run (checkpoints, then the snapshot's own).
    pub archives: Vec<String>,
    /// Files whose content an interrupted earlier run had already stored.
    pub resumed: u64,
    /// Files that were hashed because their metadata changed (or all, with
    /// `checksum`).
    pub hashed: u64,
    /// Whether the snapshot's record lists only what changed since its
    /// parent (else the whole tree).
    pub delta: bool,
    /// Bytes of the snapshot's record (each of its two copies).
    pub record_bytes: u64,
    /// Copies of earlier records that were missing and were written (a
    /// version 1 repository's, or a killed run's).
    pub copies_written: u64,
    /// Bytes of archives written.
    pub bytes_written: u64,
    /// Problems that did not stop the backup (unreadable files, left out).
    pub warnings: u64,
}

/// Where content is stored: archive, member, offset.
type Stored = (String, Vec<u8>, u64);

/// What earlier runs left: the newest complete snapshot of the same host
/// and source (the parent, as its chain of records, read line by line
/// when needed: a whole listing of a million files is never held), and
/// the checkpoints that interrupted runs of that host and source wrote
/// after it.
struct Earlier {
    /// The parent's chain of records, newest first.
    parent: Option<Vec<Source>>,
    /// The bytes of the parent's chain of records: those with a base, then
    /// the one that lists the whole tree.
    chain_bytes: (Vec<u64>, u64),
    pending: Vec<Arc<Record>>,
    /// The archives in the repository: content in one that is gone is not
    /// known (the parent may be listed from its copy) and is stored again.
    present: HashSet<String>,
}

impl Earlier {
    fn read(repo: &Repo, host: &[u8], root: &[u8], parent: Option<&str>) -> Result<Earlier> {
        // Version 1 records name no host: they match on the source alone.
        let same = |r: &Record| (r.host == host || r.host.is_empty()) && r.root == root;
        let wanted = match parent {
            Some(spec) => Some(repo.resolve(Some(spec), &crate::Filter::default())?),
            None => None,
        };
        let mut found = None;
        let mut pending = Vec::new();
        for name in repo.names()?.into_iter().rev() {
            let Ok(rec) = Source::open(repo, &name) else { continue };
            match rec.header.status {
                Status::Complete if wanted.as_ref().map_or(same(&rec.header), |w| *w == name) => {
                    found = Some(rec);
                    break;
                }
                Status::Partial if same(&rec.header) => pending.push(repo.record(&name)?),
                _ => {}
            }
        }
        pending.reverse();
        let present: HashSet<String> = repo.archives()?.into_iter().collect();
        let (parent, chain_bytes) = match found {
            None => (None, (Vec::new(), 0)),
            Some(own) => {
                let chain = crate::listing::chain(repo, own)?;
                let mut sizes: Vec<u64> = chain.iter().map(|r| r.len).collect();
                let base = sizes.pop().unwrap_or(0);
                (Some(chain), (sizes, base))
            }
        };
        repo.clear_cache();
        Ok(Earlier { parent, chain_bytes, pending, present })
    }

    fn pending_names(&self) -> HashSet<String> {
        self.pending.iter().map(|r| r.name.clone()).collect()
    }

    fn parent_name(&self) -> Option<String> {
        self.parent.as_ref().and_then(|c| c.first()).map(|r| r.header.name.clone())
    }

    /// The parent's whole listing (none without a parent), with `more`
    /// applied after it.
    fn listing(&self, more: Vec<Items>) -> Result<Merge> {
        Merge::new(self.parent.as_deref().unwrap_or(&[]), more)
    }

    /// Where the content of each SHA-256 of `wanted` is stored, as the
    /// parent and the checkpoints list it: (archive, member, offset).
    fn stored(&self, wanted: &HashSet<[u8; 32]>) -> Result<HashMap<[u8; 32], Stored>> {
        let mut by_sha = HashMap::new();
        if wanted.is_empty() {
            return Ok(by_sha);
        }
        let mut take = |l: &Line| {
            if let (Some(loc), Some(sha), Some(member)) = (&l.loc, l.entry.sha256, l.member_name()) {
                if wanted.contains(&sha) && self.present.contains(&loc.archive) {
                    by_sha.insert(sha, (loc.archive.clone(), member.to_vec(), loc.offset));
                }
            }
        };
        if self.parent.is_some() {
            let mut listing = self.listing(Vec::new())?;
            while let Some(l) = listing.next_line()? {
                take(&l);
            }
        }
        for rec in &self.pending {
            rec.lines.iter().for_each(&mut take);
        }
        Ok(by_sha)
    }
}

/// Backs up `src` into the repository at `repo` (created if needed).
///
/// The tree is walked in canonical order alongside the parent's listing,
/// read line by line; files whose content is not known are hashed and
/// stored in batches as the walk goes (a checkpoint archive each, but the
/// last); what differs from the parent goes to a temporary file, from
/// which the snapshot's record is written at the end. Memory therefore
/// holds one batch, not the tree.
pub fn backup(src: &Path, repo: &Path, opts: &BackupOptions, obs: &dyn xtar::Observer) -> Result<BackupReport> {
    let mut repo = Repo::init_keyed(repo, &opts.keys)?;
    let _lock = repo.lock()?;
    repo.ensure_identity()?;
    let repo = repo;
    // In an object store, an archive is uploaded whole: smaller ones bound
    // what a run cut short loses, and keep uploads in bounds (§12).
    let mut opts = opts.clone();
    if repo.is_remote() && opts.checkpoint_bytes == BackupOptions::default().checkpoint_bytes {
        opts.checkpoint_bytes = REMOTE_CHECKPOINT;
    }
    let opts = &opts;
    repo.remove_stale();
    let copies_written = repo.ensure_copies(false)?.len() as u64;
    let mut copts = opts.compress.clone();
    copts.select = None;
    let src_canon = src.canonicalize().map_err(crate::io_err(src))?;
    let src_root = src_canon.as_os_str().as_encoded_bytes().to_vec();
    let host = opts.host.clone().unwrap_or_else(host_name);
    let inside = repository_inside(&repo, &src_canon)?;
    let earlier = Earlier::read(&repo, &host, &src_root, opts.parent.as_deref())?;
    let mut pending: HashMap<&[u8], &Line> = HashMap::new();
    for rec in &earlier.pending {
        for l in &rec.lines {
            pending.insert(&l.entry.path, l);
        }
    }
    let mut listing = earlier.listing(Vec::new())?;
    let head = listing.next_line()?;
    let pending_names = earlier.pending_names();
    let mut run = Run {
        repo: &repo,
        src,
        src_root,
        host,
        copts: &copts,
        opts,
        obs,
        report: BackupReport { copies_written, parent: earlier.parent_name(), ..Default::default() },
        earlier: &earlier,
        pending,
        inside,
        listing,
        head,
        first_of: HashMap::new(),
        walked: 0,
        dirs: Vec::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        spill: Spill::new()?,
        results: Spill::new()?,
        buf: Vec::new(),
        same: Stats::default(),
        dropped: HashSet::new(),
        run_names: pending_names.clone(),
        pending_names,
    };
    let mut failure: Option<crate::Error> = None;
    let mut walk_errors = Vec::new();
    walk::walk(
        src,
        &copts.walk,
        |e| {
            if failure.is_none() {
                failure = run.visit(e).err();
            }
        },
        |e| walk_errors.push(e),
    )
    .map_err(|e| crate::Error::Xtar(xtar::Error::Walk(e)))?;
    if let Some(e) = failure {
        return Err(e);
    }
    run.report.warnings += walk_errors.len() as u64;
    for e in walk_errors {
        obs.warning(&xtar::Error::Walk(e));
    }
    // What the parent lists after the last path walked is gone.
    run.seek(None)?;
    run.flush(true)?;
    repo.set_latest(Some(&run.report.name))?;
    Ok(run.report)
}

/// Never backs up the repository into itself: where it is inside the
/// source (its path there, left out of the walk); refused when it is the
/// source.
fn repository_inside(repo: &Repo, src_canon: &Path) -> Result<Option<Vec<u8>>> {
    let repo_canon = repo.root().canonicalize().ok();
    match repo_canon.as_deref().and_then(|r| r.strip_prefix(src_canon).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => {
            use std::os::unix::ffi::OsStrExt;
            Ok(Some(rel.as_os_str().as_bytes().to_vec()))
        }
        Some(_) => Err(crate::Error::SourceIsRepo { path: repo.root().to_path_buf() }),
        None => Ok(None),
    }
}

/// A spill item's flags: the parent lists the path...
const IN_PARENT: u8 = 1;
/// ...with the same line...
const SAME_LINE: u8 = 2;
/// ...or at least the same content (kind, SHA-256, link target).
const SAME_CONTENT: u8 = 4;

/// Files hashed and stored together, at most, by default: a checkpoint
/// archive holds at most this many, so that memory holds one batch (a
/// million files held at once took over a gigabyte), whatever their size.
pub const BATCH_FILES: usize = 50_000;

/// Whether two lines hold the same content (what `changed` counts).
fn same_content(a: &Line, b: &Line) -> bool {
    a.entry.kind == b.entry.kind && a.entry.sha256 == b.entry.sha256 && a.entry.target == b.entry.target
}

/// A file whose content is not known from an earlier run.
struct Cand {
    walk: walk::Entry,
    /// Its new line: without content until hashed or stored; `None` when
    /// it could not be read (left out).
    line: Option<Line>,
}

impl Cand {
    /// Its line, when it has content.
    fn kept(&self) -> Option<&Line> {
        self.line.as_ref().filter(|l| l.loc.is_some())
    }
}

/// A temporary file of lines, written, then read from its start.
struct Spill {
    out: BufWriter<File>,
}

impl Spill {
    fn new() -> Result<Spill> {
        let f = tempfile::tempfile().map_err(crate::io_err(std::env::temp_dir()))?;
        Ok(Spill { out: BufWriter::with_capacity(1 << 20, f) })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(crate::io_err(std::env::temp_dir()))
    }

    /// A reader from its start (after which it is not written again).
    fn reader(&mut self) -> Result<BufReader<&File>> {
        let err = crate::io_err(std::env::temp_dir());
        self.out.flush().map_err(crate::io_err(std::env::temp_dir()))?;
        let f = self.out.get_mut();
        f.seek(SeekFrom::Start(0)).map_err(err)?;
        Ok(BufReader::with_capacity(1 << 20, self.out.get_ref()))
    }
}

/// One backup run.
struct Run<'a> {
    repo: &'a Repo,
    src: &'a Path,
    src_root: Vec<u8>,
    host: Vec<u8>,
    copts: &'a xtar::CompressOptions,
    opts: &'a BackupOptions,
    obs: &'a dyn xtar::Observer,
    report: BackupReport,
    earlier: &'a Earlier,
    /// The checkpoints' lines by path (usually none).
    pending: HashMap<&'a [u8], &'a Line>,
    /// Where the repository is inside the source (left out).
    inside: Option<Vec<u8>>,
    /// The parent's listing, and its line at the walk's place.
    listing: Merge,
    head: Option<Line>,
    /// The first name of each file with several links.
    first_of: HashMap<(u64, u64), Vec<u8>>,
    walked: u64,
    /// Every directory walked, in canonical order (an archive holds those
    /// above the files it stores).
    dirs: Vec<walk::Entry>,
    /// Files whose content is not known, not yet hashed, and their bytes.
    batch: Vec<Cand>,
    batch_bytes: u64,
    /// Every item of the new listing that is not the parent's line as it
    /// stands, in canonical order, one a line: `R` and a removal line (a
    /// path of the parent that is gone); `E`, the flags as a digit, and an
    /// entry line; `C`, the flags as a digit and the parent's line (or
    /// nothing): a file whose line is the next of `results`.
    spill: Spill,
    /// The new line of each `C` item, in order: `K` and the line, or `D`
    /// and the escaped path of a file left out.
    results: Spill,
    buf: Vec<u8>,
    /// Counts of the entries that are the parent's lines as they stand
    /// (not in the spill).
    same: Stats,
    /// Files with several links left out (their other names go too).
    dropped: HashSet<Vec<u8>>,
    /// Archives whose content counts as stored by this run: the
    /// checkpoints of earlier runs it resumes, and its own.
    run_names: HashSet<String>,
    pending_names: HashSet<String>,
}

impl Run<'_> {
    /// Moves the parent's listing to `path` (to its end with `None`),
    /// spilling a removal item for every path before it; returns the line
    /// of `path`.
    fn seek(&mut self, path: Option<&[u8]>) -> Result<Option<Line>> {
        while let Some(h) = &self.head {
            let ord = path.map_or(std::cmp::Ordering::Less, |p| manifest::cmp_canonical(&h.entry.path, p));
            if ord.is_gt() {
                break;
            }
            let line = self.head.take();
            self.head = self.listing.next_line()?;
            if ord.is_eq() {
                return Ok(line);
            }
            if let Some(gone) = line {
                self.buf.clear();
                self.buf.push(b'R');
                write_removal(&mut self.buf, &gone.entry.path);
                self.spill.write(&self.buf)?;
            }
        }
        Ok(None)
    }

    /// Takes one entry of the walk.
    fn visit(&mut self, e: &walk::Entry) -> Result<()> {
        if self.walked == 0 && e.kind != walk::Kind::Dir {
            return Err(crate::Error::Xtar(xtar::Error::Read {
                path: self.src.to_path_buf(),
                source: std::io::Error::other("not a directory"),
            }));
        }
        if self.inside.as_deref().is_some_and(|rel| manifest::is_within(&e.path, rel))
            || (e.kind == walk::Kind::File && self.copts.skip_inodes.contains(&(e.meta.dev, e.meta.ino)))
        {
            return Ok(());
        }
        self.walked += 1;
        let parent = self.seek(Some(&e.path))?;
        let mut entry = Entry::from_walk(e);
        let stat = Some(Stat { ctime: Timestamp::new(e.meta.ctime, e.meta.ctime_nsec), ino: e.meta.ino });
        let line = match e.kind {
            walk::Kind::File if e.meta.nlink > 1 && self.first_of.contains_key(&(e.meta.dev, e.meta.ino)) => {
                entry.kind = Kind::HardLink;
                entry.target = self.first_of.get(&(e.meta.dev, e.meta.ino)).cloned();
                Line { entry, loc: None, stat: None }
            }
            walk::Kind::File => {
                if e.meta.nlink > 1 {
                    self.first_of.insert((e.meta.dev, e.meta.ino), e.path.clone());
                }
                if e.meta.size == 0 {
                    entry.sha256 = Some(sha2::Sha256::digest(b"").into());
                    Line { entry, loc: None, stat }
                } else {
                    let present = &self.earlier.present;
                    let stored = |l: &&Line| l.loc.as_ref().is_some_and(|loc| present.contains(&loc.archive));
                    let known = self.pending.get(&e.path[..]).copied().or(parent.as_ref().filter(stored)).filter(|k| {
                        !self.opts.checksum
                            && k.loc.is_some()
                            && k.entry.kind == Kind::File
                            && k.entry.size == e.meta.size
                            && k.entry.mtime == entry.mtime
                            && k.stat == stat
                    });
                    match known {
                        Some(k) => {
                            entry.sha256 = k.entry.sha256;
                            Line { entry, loc: k.loc.clone(), stat }
                        }
                        None => return self.candidate(e, parent, Line { entry, loc: None, stat }),
                    }
                }
            }
            walk::Kind::Dir => {
                self.dirs.push(e.clone());
                Line { entry, loc: None, stat: None }
            }
            _ => Line { entry, loc: None, stat: None },
        };
        let mut flags = 0;
        if let Some(p) = &parent {
            flags |= IN_PARENT;
            if *p == line {
                flags |= SAME_LINE;
            }
            if same_content(p, &line) {
                flags |= SAME_CONTENT;
            }
        }
        // Hard links always go to the spill: their first name may yet be
        // left out, and they with it.
        if flags & SAME_LINE != 0 && line.entry.kind != Kind::HardLink {
            if line.entry.kind == Kind::File {
                self.same.files += 1;
                self.same.bytes += line.entry.size;
            }
            return Ok(());
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[b'E', b'0' + flags]);
        write_line(&mut self.buf, &line);
        self.spill.write(&self.buf)
    }

    /// Takes a file whose content is not known into the batch (hashed and
    /// stored when the batch is full).
    fn candidate(&mut self, e: &walk::Entry, parent: Option<Line>, line: Line) -> Result<()> {
        self.buf.clear();
        match &parent {
            Some(p) => {
                self.buf.extend_from_slice(&[b'C', b'0' + IN_PARENT]);
                write_line(&mut self.buf, p);
            }
            None => self.buf.extend_from_slice(b"C0\n"),
        }
        self.spill.write(&self.buf)?;
        self.batch_bytes += e.meta.size;
        self.batch.push(Cand { walk: e.clone(), line: Some(line) });
        if self.batch.len() >= self.opts.batch_files.max(1) || self.batch_bytes >= self.opts.checkpoint_bytes.max(1) {
            self.flush(false)?;
        }
        Ok(())
    }

    /// Hashes the batch; content already stored is not stored again; the
    /// rest goes into an archive: a checkpoint, or with `last` the
    /// snapshot's own, with its record. A checkpoint that would store
    /// nothing is not written.
    fn flush(&mut self, last: bool) -> Result<()> {
        let to_store = self.hash()?;
        if last || !to_store.is_empty() {
            let name = self.repo.new_name()?;
            self.run_names.insert(name.clone());
            let written = self.write_archive(&name, &to_store, last)?;
            self.report.warnings += written.summary.warnings;
            self.report.bytes_written += written.summary.bytes_out;
            self.report.archives.push(name.clone());
            self.report.name = name;
        }
        if !last {
            self.settle()?;
        }
        Ok(())
    }

    /// Moves the batch's new lines to `results`.
    fn settle(&mut self) -> Result<()> {
        for c in std::mem::take(&mut self.batch) {
            self.buf.clear();
            match c.kept() {
                Some(l) => {
                    self.buf.push(b'K');
                    write_line(&mut self.buf, l);
                }
                None => {
                    if c.walk.meta.nlink > 1 {
                        self.dropped.insert(c.walk.path.clone());
                    }
                    self.buf.push(b'D');
                    write_removal(&mut self.buf, &c.walk.path);
                }
            }
            self.results.write(&self.buf)?;
        }
        self.batch_bytes = 0;
        Ok(())
    }

    /// Hashes the batch; returns the files whose content is not stored yet.
    fn hash(&mut self) -> Result<Vec<usize>> {
        self.report.hashed += self.batch.len() as u64;
        let src = self.src;
        let hashes: Vec<std::io::Result<([u8; 32], u64)>> =
            self.batch.par_iter().map(|c| manifest::hash_file(&walk::join(src, &c.walk.path))).collect();
        let wanted: HashSet<[u8; 32]> = hashes.iter().filter_map(|h| h.as_ref().ok().map(|(s, _)| *s)).collect();
        let by_sha = self.earlier.stored(&wanted)?;
        let mut to_store: Vec<usize> = Vec::new();
        for (i, h) in hashes.into_iter().enumerate() {
            let c = &mut self.batch[i];
            let Some(line) = c.line.as_mut() else { continue };
            match h {
                Ok((sha, size)) if size == line.entry.size => match by_sha.get(&sha) {
                    Some((archive, member, offset)) => {
                        line.entry.sha256 = Some(sha);
                        let member = (member[..] != line.entry.path[..]).then(|| member.clone());
                        line.loc = Some(Location { archive: archive.clone(), member, offset: *offset });
                    }
                    None => to_store.push(i),
                },
                Ok(_) => to_store.push(i), // it changed while read: store what is there
                Err(source) => {
                    self.report.warnings += 1;
                    self.obs.warning(&xtar::Error::Read { path: walk::join(src, &c.walk.path), source });
                    c.line = None;
                }
            }
        }
        Ok(to_store)
    }

    /// The walk entries an archive of `files` (of the batch) holds: the
    /// files, the directories above them and the root, in canonical order.
    fn entries_of(&self, files: &[usize]) -> Vec<walk::Entry> {
        let mut above: HashSet<&[u8]> = HashSet::new();
        for &i in files {
            let mut p = &self.batch[i].walk.path[..];
            while let Some(k) = p.iter().rposition(|&b| b == b'/') {
                p = &p[..k];
                if !above.insert(p) {
                    break;
                }
            }
        }
        let mut entries: Vec<walk::Entry> = self
            .dirs
            .iter()
            .filter(|d| d.path.is_empty() || above.contains(&d.path[..]))
            .cloned()
            .chain(files.iter().map(|&i| self.batch[i].walk.clone()))
            .collect();
        entries.sort_by(|a, b| manifest::cmp_canonical(&a.path, &b.path));
        entries
    }

    /// Writes archive `name` with `files` of the batch and its record.
    fn write_archive(&mut self, name: &str, files: &[usize], complete: bool) -> Result<xtar::Written> {
        let by_path: HashMap<Vec<u8>, usize> = files.iter().map(|&i| (self.batch[i].walk.path.clone(), i)).collect();
        let entries = self.entries_of(files);
        let written = if self.repo.sealing.is_some() {
            self.write_sealed(name, &entries, &by_path, complete)?
        } else {
            self.write_plain(name, &entries, &by_path, complete)?
        };
        // Files the writer could not read were warned about and left out
        // (the last batch was settled with its record already).
        for &i in files {
            if let Some(c) = self.batch.get_mut(i) {
                if c.line.as_ref().is_some_and(|l| l.loc.is_none()) {
                    c.line = None;
                }
            }
        }
        Ok(written)
    }

    /// [`Run::write_archive`] into an unencrypted repository: a version 2
    /// archive with the record as its member, and the copy beside it.
    fn write_plain(
        &mut self,
        name: &str,
        entries: &[walk::Entry],
        by_path: &HashMap<Vec<u8>, usize>,
        complete: bool,
    ) -> Result<xtar::Written> {
        let (repo, src, copts, obs) = (self.repo, self.src, self.copts, self.obs);
        let mut copy: Option<(File, u64)> = None;
        let mut failure: Option<crate::Error> = None;
        let staging = staging_dir();
        let written = repo
            .publish_archive(name, &staging, |file, out| {
                let mut writer = xtar::ArchiveWriter::new(file, out, &xtar::root_label(src, copts), copts)?;
                xtar::write_entries(&mut writer, src, entries, obs)?;
                self.book(name, writer.written(), by_path);
                if complete {
                    let (text, len) = match self.snapshot_record(name) {
                        Ok(text) => text,
                        Err(e) => {
                            failure = Some(e);
                            let e = std::io::Error::other("the snapshot's record could not be put together");
                            return Err(xtar::Error::Write { path: out.to_path_buf(), source: e });
                        }
                    };
                    writer.add_extra_file(RECORD_NAME, &text, out, len)?;
                    copy = Some((text, len));
                } else {
                    writer.add_extra(RECORD_NAME, &self.checkpoint_record(name))?;
                }
                writer.finish()
            })
            .map_err(|e| failure.take().unwrap_or(e))?;
        // The snapshot's record, a second time, beside its archive: losing
        // either leaves it (and every snapshot listed relative to it).
        // Checkpoints have no copy (§2.2).
        if let Some((text, len)) = &copy {
            repo.write_copy_from(name, text, *len)?;
            repo.keep_record(name, text, *len);
        }
        Ok(written)
    }

    /// [`Run::write_archive`] into an encrypted repository (§9): a version
    /// 4 archive encrypted to the master key, with the keyring and the
    /// sealed record as members; the sealed record's copy beside it (for
    /// checkpoints too: this machine's cache is checked against it); and
    /// the record's text in this machine's cache.
    fn write_sealed(
        &mut self,
        name: &str,
        entries: &[walk::Entry],
        by_path: &HashMap<Vec<u8>, usize>,
        complete: bool,
    ) -> Result<xtar::Written> {
        let repo = self.repo;
        let Some(sealing) = repo.sealing.as_ref() else {
            return Err(crate::Error::NoRecord { archive: name.into() });
        };
        let keyring = sealing.keyring.to_text().into_bytes();
        let mut copts = self.copts.clone();
        copts.version = xtar::format::SEALED_VERSION;
        copts.recipients = vec![sealing.keyring.recipient.clone()];
        let staging = staging_dir();
        copts.spill_dir = Some(if self.repo.is_remote() {
            staging.clone()
        } else {
            self.repo.root().join(crate::repository::ARCHIVES)
        });
        let (src, obs) = (self.src, self.obs);
        let mut kept: Option<(RecordText, RecordText)> = None;
        let mut failure: Option<crate::Error> = None;
        let written = repo
            .publish_archive(name, &staging, |file, out| {
                let spill = copts.spill_dir.clone().unwrap_or_default();
                let mut w = xtar::PackedWriter::new(file, out, &xtar::root_label(src, &copts), &copts, &spill)?;
                xtar::write_entries(&mut w, src, entries, obs)?;
                w.finish_with(|written| {
                    self.book(name, written, by_path);
                    let sealed = self.record_text(name, complete).and_then(|text| {
                        let sealed = match &text {
                            RecordText::Memory(t) => RecordText::Memory(sealing.seal(t)?),
                            RecordText::File(f, len) => {
                                let (f, len) = sealing.seal_file(f, *len)?;
                                RecordText::File(f, len)
                            }
                        };
                        Ok((text, sealed))
                    });
                    let (text, sealed) = match sealed {
                        Ok(pair) => pair,
                        Err(e) => {
                            failure = Some(e);
                            let e = std::io::Error::other("the snapshot's record could not be put together");
                            return Err(xtar::Error::Write { path: out.to_path_buf(), source: e });
                        }
                    };
                    let member = match &sealed {
                        RecordText::Memory(t) => xtar::Extra::Bytes(t.clone()),
                        RecordText::File(f, len) => xtar::Extra::File(
                            f.try_clone().map_err(|e| xtar::Error::Write { path: out.to_path_buf(), source: e })?,
                            *len,
                        ),
                    };
                    kept = Some((text, sealed));
                    Ok(vec![
                        (ARCHIVE_KEYRING.to_vec(), xtar::Extra::Bytes(keyring.clone())),
                        (SEALED_RECORD.to_vec(), member),
                    ])
                })
            })
            .map_err(|e| failure.take().unwrap_or(e))?;
        if let Some((text, sealed)) = kept {
            // The copy of the sealed record, and the text in this
            // machine's cache (a sealed text in memory had its text there).
            let cached = match &sealed {
                RecordText::Memory(s) => {
                    repo.write_copy(name, s)?;
                    sealing.keep(name, &text.to_vec()?, s)
                }
                RecordText::File(sf, slen) => {
                    repo.write_copy_from(name, sf, *slen)?;
                    match &text {
                        RecordText::File(f, len) => sealing.keep_file(name, f, *len, *slen),
                        RecordText::Memory(t) => sealing.keep(name, t, &sealed.to_vec()?),
                    }
                }
            };
            if let Err(e) = cached {
                self.report.warnings += 1;
                self.obs.warning(&xtar::Error::Write { path: "the cache of this machine's records".into(), source: e });
            }
        }
        Ok(written)
    }

    /// Books where each stored file now is, from what the writer wrote.
    fn book(&mut self, name: &str, w: &xtar::Written, by_path: &HashMap<Vec<u8>, usize>) {
        for e in &w.entries {
            let (Some(&i), Some(&offset)) = (by_path.get(&e.path), w.offsets.get(&e.path)) else { continue };
            if let Some(line) = self.batch[i].line.as_mut() {
                line.entry = e.clone();
                line.loc = Some(Location { archive: name.to_string(), member: None, offset });
            }
        }
    }

    /// The record of archive `name`: the whole snapshot's (maybe relative
    /// to its parent, in a temporary file) when `complete`, else the
    /// checkpoint's.
    fn record_text(&mut self, name: &str, complete: bool) -> Result<RecordText> {
        Ok(match complete {
            true => {
                let (text, len) = self.snapshot_record(name)?;
                RecordText::File(text, len)
            }
            false => RecordText::Memory(self.checkpoint_record(name)),
        })
    }

    /// The record of checkpoint archive `name`: the files it stored.
    fn checkpoint_record(&self, name: &str) -> Vec<u8> {
        let mut rec = self.new_record(name, Status::Partial);
        rec.lines = self
            .batch
            .iter()
            .filter_map(|c| c.line.clone())
            .filter(|l| l.loc.as_ref().is_some_and(|loc| loc.archive == name))
            .collect();
        for l in &rec.lines {
            rec.stats.files += 1;
            rec.stats.bytes += l.entry.size;
            rec.stats.stored += 1;
            rec.stats.stored_bytes += l.entry.size;
        }
        rec.to_text()
    }

    /// An empty record of archive `name` of this run.
    fn new_record(&self, name: &str, status: Status) -> Record {
        let mut rec = Record::new(name, status, &self.src_root);
        rec.parent = self.report.parent.clone();
        rec.host = self.host.clone();
        rec
    }

    /// The record of the snapshot, archive `name`, in a temporary file
    /// (and its length), once the last batch's lines join the others'.
    fn snapshot_record(&mut self, name: &str) -> Result<(File, u64)> {
        for c in &mut self.batch {
            if c.line.as_ref().is_some_and(|l| l.loc.is_none()) {
                c.line = None;
            }
        }
        self.settle()?;
        let rec = self.new_record(name, Status::Complete);
        self.complete_record(rec)
    }

    /// The record of the snapshot. The spill of the walk, read once with
    /// the new lines of the files hashed and stored since, gives the
    /// counts and what changed since the parent; the record lists that
    /// alone when the parent's chain is short enough and the changes small
    /// enough beside the whole listing, else the whole tree (the parent's
    /// listing with the changes applied, merged line by line).
    fn complete_record(&mut self, mut rec: Record) -> Result<(File, u64)> {
        let name = rec.name.clone();
        let (run_names, pending_names) = (&self.run_names, &self.pending_names);
        let mut s = self.same;
        let mut resumed = 0u64;
        let mut count = |s: &mut Stats, l: &Line| {
            if matches!(l.entry.kind, Kind::File | Kind::HardLink) {
                s.files += 1;
                s.bytes += l.entry.size;
            }
            if let Some(loc) = &l.loc {
                if loc.archive == name || run_names.contains(&loc.archive) {
                    s.stored += 1;
                    s.stored_bytes += l.entry.size;
                }
                resumed += u64::from(pending_names.contains(&loc.archive));
            }
        };
        let bad = |what: &str| crate::Error::Io {
            path: std::env::temp_dir(),
            source: std::io::Error::other(format!("this run's list of changes is damaged: {what}")),
        };
        let parse = |text: &[u8]| match crate::record::parse_item(text.strip_suffix(b"\n").unwrap_or(text), 0) {
            Ok(Item::Line(l)) => Ok(l),
            _ => Err(bad("a line")),
        };
        let dropped = &self.dropped;
        let mut spill = self.spill.reader()?;
        let mut results = self.results.reader()?;
        let mut delta = Body::new()?;
        let (mut item, mut result, mut buf) = (Vec::new(), Vec::new(), Vec::new());
        let read = |r: &mut BufReader<&File>, into: &mut Vec<u8>| {
            into.clear();
            r.read_until(b'\n', into).map_err(crate::io_err(std::env::temp_dir()))
        };
        while read(&mut spill, &mut item)? > 0 {
            let (&tag, rest) = item.split_first().ok_or_else(|| bad("an empty line"))?;
            let flags = rest.first().map_or(0, |f| f.wrapping_sub(b'0'));
            let text = rest.get(1..).unwrap_or_default();
            buf.clear();
            match tag {
                b'R' => {
                    s.removed += 1;
                    buf.extend_from_slice(rest);
                }
                b'E' => {
                    let l = parse(text)?;
                    let target_gone = l.entry.target.as_ref().is_some_and(|t| dropped.contains(t));
                    if l.entry.kind == Kind::HardLink && target_gone {
                        if flags & IN_PARENT != 0 {
                            s.removed += 1;
                            write_removal(&mut buf, &l.entry.path);
                        }
                    } else {
                        count(&mut s, &l);
                        if flags & IN_PARENT == 0 {
                            s.added += u64::from(!l.entry.path.is_empty());
                        } else if flags & SAME_CONTENT == 0 {
                            s.changed += 1;
                        }
                        if flags & SAME_LINE == 0 {
                            buf.extend_from_slice(text);
                        }
                    }
                }
                b'C' => {
                    let parent = if flags & IN_PARENT != 0 { Some(parse(text)?) } else { None };
                    if read(&mut results, &mut result)? == 0 {
                        return Err(bad("a file has no new line"));
                    }
                    match result.split_first() {
                        Some((b'K', l)) => {
                            let l = parse(l)?;
                            count(&mut s, &l);
                            match &parent {
                                None => s.added += 1,
                                Some(p) if !same_content(p, &l) => s.changed += 1,
                                Some(_) => {}
                            }
                            if parent.as_ref() != Some(&l) {
                                write_line(&mut buf, &l);
                            }
                        }
                        Some((b'D', removal)) => {
                            if parent.is_some() {
                                s.removed += 1;
                                buf.extend_from_slice(removal);
                            }
                        }
                        _ => return Err(bad("a new line")),
                    }
                }
                _ => return Err(bad("an unknown item")),
            }
            delta.write(&buf)?;
        }
        rec.stats = s;
        self.report.stats = s;
        self.report.resumed = resumed;
        let Some(parent) = self.earlier.parent_name() else {
            // Without a parent, every entry was spilled: the changes are
            // the whole listing.
            let text = delta.into_record(&rec)?;
            self.report.record_bytes = text.1;
            return Ok(text);
        };
        let (deltas, base) = &self.earlier.chain_bytes;
        rec.base = Some(parent);
        let mut head = Vec::new();
        rec.write_header(&mut head);
        let text_len = head.len() as u64 + delta.len + END_LINE;
        let so_far: u64 = deltas.iter().sum::<u64>() + text_len;
        if deltas.len() < MAX_DELTAS && so_far.saturating_mul(DELTA_SHARE as u64) <= *base {
            self.report.delta = true;
            let text = delta.into_record(&rec)?;
            self.report.record_bytes = text.1;
            return Ok(text);
        }
        // The whole tree: the parent's listing with the changes applied.
        rec.base = None;
        let changes = Items::from_reader("this run's changes", Box::new(BufReader::new(delta.into_file()?)));
        let mut listing = self.earlier.listing(vec![changes])?;
        let mut whole = Body::new()?;
        while let Some(l) = listing.next_line()? {
            buf.clear();
            write_line(&mut buf, &l);
            whole.write(&buf)?;
        }
        let text = whole.into_record(&rec)?;
        self.report.record_bytes = text.1;
        Ok(text)
    }
}

/// The bytes of a record's `#end` line.
const END_LINE: u64 = 5 + 64 + 1;
/// A record's text: in memory, or the first `len` bytes of a temporary
/// file.
enum RecordText {
    Memory(Vec<u8>),
    File(File, u64),
}

impl RecordText {
    fn to_vec(&self) -> Result<Vec<u8>> {
        match self {
            RecordText::Memory(t) => Ok(t.clone()),
            RecordText::File(f, len) => {
                let mut f = f;
                let mut out = Vec::with_capacity(*len as usize);
                f.seek(SeekFrom::Start(0)).map_err(crate::io_err(std::env::temp_dir()))?;
                f.take(*len).read_to_end(&mut out).map_err(crate::io_err(std::env::temp_dir()))?;
                Ok(out)
            }
        }
    }
}

/// A record's body being written to a temporary file.
struct Body {
    out: BufWriter<File>,
    len: u64,
}

impl Body {
    fn new() -> Result<Body> {
        let f = tempfile::tempfile().map_err(crate::io_err(std::env::temp_dir()))?;
        Ok(Body { out: BufWriter::with_capacity(1 << 20, f), len: 0 })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.len += bytes.len() as u64;
        self.out.write_all(bytes).map_err(crate::io_err(std::env::temp_dir()))
    }

    /// The file, at its start.
    fn into_file(self) -> Result<File> {
        let err = |e: std::io::Error| crate::Error::Io { path: std::env::temp_dir(), source: e };
        let mut f = self.out.into_inner().map_err(|e| err(e.into_error()))?;
        f.seek(SeekFrom::Start(0)).map_err(err)?;
        Ok(f)
    }

    /// The whole record: `rec`'s header, this body, the `#end` line.
    fn into_record(self, rec: &Record) -> Result<(File, u64)> {
        let len = self.len;
        let mut body = self.into_file()?.take(len);
        let mut text = Body::new()?;
        let mut h = sha2::Sha256::new();
        let mut head = Vec::new();
        rec.write_header(&mut head);
        h.update(&head);
        text.write(&head)?;
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = body.read(&mut buf).map_err(crate::io_err(std::env::temp_dir()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            text.write(&buf[..n])?;
        }
        let mut end = Vec::new();
        end_line(&mut end, &h.finalize().into());
        text.write(&end)?;
        let len = text.len;
        Ok((text.into_file()?, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;

    /// What a tree holds, path by path: kind and content (or link target),
    /// and, for files with several links, the first path of their inode.
    fn describe(root: &Path) -> BTreeMap<String, (char, Vec<u8>, Option<String>)> {
        let mut out = BTreeMap::new();
        let mut first: HashMap<u64, String> = HashMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
            names.sort();
            for p in names {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let v = if m.file_type().is_symlink() {
                    ('l', std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes(), None)
                } else if m.is_dir() {
                    stack.push(p.clone());
                    ('d', Vec::new(), None)
                } else {
                    let link = (m.nlink() > 1).then(|| first.entry(m.ino()).or_insert_with(|| rel.clone()).clone());
                    ('f', std::fs::read(&p).unwrap(), link)
                };
                out.insert(rel, v);
            }
        }
        out
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// The listing of a snapshot without where the content is: what two
    /// runs that stored it differently must agree on.
    fn listing(repo: &Path, name: &str) -> Vec<Entry> {
        let rec = Repo::open(repo).unwrap().snapshot(name).unwrap();
        rec.lines.into_iter().map(|l| l.entry).collect()
    }

    fn restores_as(repo: &Path, name: &str, tree: &Path, scratch: &Path) {
        let dest = scratch.join(format!("restored-{name}"));
        let opts = xtar::ExtractOptions::default();
        let r = crate::restore(repo, Some(name), &Default::default(), &dest, &opts, &xtar::Silent).unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(describe(&dest), describe(tree), "snapshot {name} of {}", repo.display());
        std::fs::remove_dir_all(dest).unwrap();
    }

    /// A run hashes and stores its files in batches as it walks (memory
    /// holds one batch): with batches of 4 files, a tree of 40 comes out
    /// in checkpoints, and every snapshot (the first, one that lists what
    /// changed, one that lists the whole tree again because most of it
    /// changed) is listed exactly as with one batch, counts the same
    /// changes, and restores the tree, hard links, moved and duplicated
    /// files included.
    #[test]
    fn runs_in_small_batches_list_and_restore_as_runs_in_one() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        for i in 0..40 {
            write(&src, &format!("d{}/f{i:02}.txt", i % 5), format!("file {i}\n").repeat(1 + i % 3).as_bytes());
        }
        write(&src, "same/a.txt", b"duplicate\n");
        write(&src, "same/b.txt", b"duplicate\n");
        write(&src, "empty", b"");
        std::fs::hard_link(src.join("d1/f01.txt"), src.join("d4/link-to-f01")).unwrap();
        std::os::unix::fs::symlink("d0/f00.txt", src.join("sym")).unwrap();
        let small = BackupOptions { batch_files: 4, host: Some(b"h".to_vec()), ..Default::default() };
        let whole = BackupOptions { host: Some(b"h".to_vec()), ..Default::default() };
        let (a, b) = (t.path().join("small"), t.path().join("whole"));
        let step = |what: &str| {
            let ra = backup(&src, &a, &small, &xtar::Silent).unwrap();
            let rb = backup(&src, &b, &whole, &xtar::Silent).unwrap();
            assert_eq!(ra.stats, rb.stats, "{what}: counts");
            assert_eq!(ra.delta, rb.delta, "{what}: relative to the parent or whole");
            assert_eq!(listing(&a, &ra.name), listing(&b, &rb.name), "{what}: listing");
            restores_as(&a, &ra.name, &src, t.path());
            (ra, rb)
        };
        let (first, one) = step("first");
        assert!(first.archives.len() >= 10, "{:?}", first.archives);
        assert_eq!(one.archives.len(), 1);
        assert_eq!(first.stats.stored, one.stats.stored);

        // A few changes: a record of what changed.
        write(&src, "d2/f02.txt", b"changed\n");
        write(&src, "d3/f03.txt", b"changed too\n");
        std::fs::rename(src.join("d4/f04.txt"), src.join("moved.txt")).unwrap();
        std::fs::remove_file(src.join("d0/f05.txt")).unwrap();
        write(&src, "new/one.txt", b"a new file\n");
        let (ra, _) = step("a few changes");
        assert!(ra.delta, "{ra:?}");
        let s = ra.stats;
        // The moved file is one added and one removed; its content is not
        // stored again.
        assert_eq!((s.added, s.changed, s.removed), (3, 2, 2), "{s:?}");
        assert_eq!(s.stored, 3, "{s:?}");

        // Most files change: the whole tree again.
        for i in 6..40 {
            let p = format!("d{}/f{i:02}.txt", i % 5);
            if src.join(&p).exists() {
                write(&src, &p, format!("new content {i}\n").as_bytes());
            }
        }
        let (ra, _) = step("most files changed");
        assert!(!ra.delta, "{ra:?}");

        // Unchanged.
        let (ra, _) = step("unchanged");
        assert!(ra.delta && ra.stats.stored == 0 && ra.archives.len() == 1, "{ra:?}");
    }
}
