//! Writing an archive: plan the containers, compress files in parallel,
//! and stream everything through one ordered writer that writes each byte
//! of the archive once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use manifest::{Entry, Kind, Manifest, Timestamp};

use crate::compress::{self, Compressed, LargeFile, CHUNK, SMALL_MAX};
use crate::format::tar::{self as tarfmt, BLOCK};
use crate::format::zip::{EntryInfo, Method, S_IFLNK, S_IFREG};
use crate::format::{self, FORMAT_VERSION, HEADER_MAGIC, INDEX_MAGIC};
use crate::{Error, Observer, Result};

/// Input bytes of small files compressed ahead of the writer, at most.
const WINDOW_BYTES: u64 = 64 << 20;
/// Small files compressed ahead of the writer, at most.
const WINDOW_FILES: usize = 4096;

/// How to build an archive.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// Deflate level, 0 (store) to 9.
    pub level: u32,
    /// Worker threads.
    pub jobs: usize,
    /// Walk rules.
    pub walk: walk::Options,
    /// Files never to archive, by (device, inode): the output itself.
    pub skip_inodes: Vec<(u64, u64)>,
    /// Archive only a selection of the tree (with the directories above it).
    pub select: Option<Select>,
    /// The root recorded in the header and the manifest, instead of the
    /// canonical path of the source (for reproducible archives).
    pub root_label: Option<Vec<u8>>,
}

/// A selection of entries to archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// These paths (relative to the source, `/`-separated), and everything
    /// below those that are directories.
    Paths(std::collections::HashSet<Vec<u8>>),
    /// Entries other than directories modified at or after this time
    /// (seconds, nanoseconds since the epoch).
    ChangedSince(i64, u32),
}

impl Select {
    /// Keeps the selected entries of a walk (in walk order) and the
    /// directories above them; the root is always kept.
    pub fn apply(&self, entries: Vec<walk::Entry>) -> Vec<walk::Entry> {
        let under_listed = |path: &[u8], set: &std::collections::HashSet<Vec<u8>>| {
            let mut end = path.len();
            loop {
                if set.contains(&path[..end]) {
                    return true;
                }
                match path[..end].iter().rposition(|&b| b == b'/') {
                    Some(i) => end = i,
                    None => return false,
                }
            }
        };
        let selected = |e: &walk::Entry| match self {
            Select::Paths(set) => !e.path.is_empty() && under_listed(&e.path, set),
            Select::ChangedSince(sec, nsec) => {
                e.kind != walk::Kind::Dir && (e.meta.mtime, e.meta.mtime_nsec) >= (*sec, *nsec)
            }
        };
        let mut ancestors: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        let keep: Vec<bool> = entries.iter().map(|e| e.path.is_empty() || selected(e)).collect();
        for (e, k) in entries.iter().zip(&keep) {
            if *k {
                let mut p = e.path.as_slice();
                while let Some(i) = p.iter().rposition(|&b| b == b'/') {
                    p = &p[..i];
                    if !ancestors.insert(p.to_vec()) {
                        break;
                    }
                }
            }
        }
        entries.into_iter().zip(keep).filter(|(e, k)| *k || ancestors.contains(&e.path)).map(|(e, _)| e).collect()
    }
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            level: 6,
            jobs: rayon::current_num_threads(),
            walk: walk::Options::default(),
            skip_inodes: Vec::new(),
            select: None,
            root_label: None,
        }
    }
}

/// What a finished compression did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompressSummary {
    /// Regular files stored.
    pub files: u64,
    /// Directories stored.
    pub dirs: u64,
    /// Symlinks and hard links stored.
    pub links: u64,
    /// Bytes of file content read.
    pub bytes_in: u64,
    /// Bytes of archive written.
    pub bytes_out: u64,
    /// Problems reported through [`Observer::warning`].
    pub warnings: u64,
}

struct DirPlan {
    entry: usize,
    children: Vec<usize>,
    subdirs: Vec<usize>,
}

enum Op {
    Open(usize),
    Child(usize),
    Index(usize),
    Close(usize),
}

/// Walks `src` and writes its archive to `out`, which must be a new, empty
/// file (it is written with positioned writes to patch container sizes).
pub fn write_archive(
    src: &Path,
    out: &File,
    out_path: &Path,
    opts: &CompressOptions,
    obs: &dyn Observer,
) -> Result<CompressSummary> {
    let (entries, warnings) = walk_source(src, opts, obs)?;
    let mut written = write_entries(src, entries, out, out_path, opts, obs, &mut |_| Vec::new())?;
    written.summary.warnings += warnings;
    Ok(written.summary)
}

/// Walks `src` with the rules of `opts` and applies its selection: the
/// entries [`write_entries`] takes. Walk errors go to `obs` as warnings,
/// and their number is returned.
pub fn walk_source(src: &Path, opts: &CompressOptions, obs: &dyn Observer) -> Result<(Vec<walk::Entry>, u64)> {
    let mut entries: Vec<walk::Entry> = Vec::new();
    let mut walk_errors = Vec::new();
    walk::walk(src, &opts.walk, |e| entries.push(e.clone()), |e| walk_errors.push(e))?;
    let warnings = walk_errors.len() as u64;
    for e in walk_errors {
        obs.warning(&Error::Walk(e));
    }
    match entries.first() {
        Some(root) if root.kind == walk::Kind::Dir => {}
        _ => return Err(Error::Read { path: src.to_path_buf(), source: std::io::Error::other("not a directory") }),
    }
    entries.retain(|e| !(e.kind == walk::Kind::File && opts.skip_inodes.contains(&(e.meta.dev, e.meta.ino))));
    if let Some(sel) = &opts.select {
        entries = sel.apply(entries);
    }
    Ok((entries, warnings))
}

/// What [`write_entries`] stored.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Counts.
    pub summary: CompressSummary,
    /// The manifest entry of everything stored or recorded, in canonical
    /// order: what the archive's `.xtar-manifest` holds.
    pub entries: Vec<Entry>,
    /// For each file and symlink member, by path: the offset in the
    /// archive of its first header block (the long-name record, if any).
    pub offsets: HashMap<Vec<u8>, u64>,
}

/// Extra members for [`write_entries`]: given what was stored, returns
/// `(name, data)` pairs written just before `.xtar-manifest`. Their names
/// must be names readers skip (format §1), such as `.xtar-snapshot`.
pub type ExtraMembers<'a> = dyn FnMut(&Written) -> Vec<(Vec<u8>, Vec<u8>)> + 'a;

/// Writes the archive of `entries` (from [`walk_source`], in walk order,
/// the root first) of the tree at `src` to `out`, a new, empty file.
/// `extra` may add members before the manifest.
pub fn write_entries(
    src: &Path,
    entries: Vec<walk::Entry>,
    out: &File,
    out_path: &Path,
    opts: &CompressOptions,
    obs: &dyn Observer,
    extra: &mut ExtraMembers<'_>,
) -> Result<Written> {
    write_entries_from(src, entries, out, out_path, opts, obs, extra, None)
}

/// File members already written to another archive, copied as they are
/// instead of being compressed again (the volumes of a set are cut from a
/// staged archive this way).
pub(crate) struct Reuse<'a> {
    /// The archive that holds them.
    pub file: &'a File,
    /// Its path, for errors.
    pub path: &'a Path,
    /// By file path: where its member starts (first header block), its
    /// whole length (headers, data, padding), and its manifest entry.
    pub members: &'a HashMap<Vec<u8>, (u64, u64, Entry)>,
    /// Parts of members to copy as members of their own, before the
    /// manifest.
    pub parts: &'a [PartCopy],
}

/// A part of a file member, copied from a staged archive into a member of
/// its own (`PATH.zip.K.xtar-part`) before the manifest.
#[derive(Debug, Clone)]
pub(crate) struct PartCopy {
    /// The file's path.
    pub path: Vec<u8>,
    /// Part number, from 1.
    pub k: u32,
    /// Offset in the staged archive of the first byte of the part.
    pub from: u64,
    /// Bytes in the part.
    pub len: u64,
    /// Modification time for the tar header.
    pub mtime: i64,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write_entries_from(
    src: &Path,
    entries: Vec<walk::Entry>,
    out: &File,
    out_path: &Path,
    opts: &CompressOptions,
    obs: &dyn Observer,
    extra: &mut ExtraMembers<'_>,
    reuse: Option<&Reuse<'_>>,
) -> Result<Written> {
    let reused = |e: &walk::Entry| e.kind == walk::Kind::File && reuse.is_some_and(|r| r.members.contains_key(&e.path));
    let mut summary = CompressSummary::default();
    let warn = |summary: &mut CompressSummary, e: Error| {
        summary.warnings += 1;
        obs.warning(&e);
    };
    match entries.first() {
        Some(root) if root.kind == walk::Kind::Dir && root.path.is_empty() => {}
        _ => return Err(Error::Read { path: src.to_path_buf(), source: std::io::Error::other("not a directory") }),
    }
    let mut offsets: HashMap<Vec<u8>, u64> = HashMap::new();

    // 2. Plan the containers.
    let mut dirs: Vec<DirPlan> = Vec::new();
    let mut dir_of: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            let parent = manifest::parent_of(&e.path);
            let Some(&p) = dir_of.get(parent) else { continue };
            if e.kind == walk::Kind::Dir {
                let d = dirs.len();
                dirs[p].subdirs.push(d);
            } else {
                dirs[p].children.push(i);
            }
        }
        if e.kind == walk::Kind::Dir {
            dir_of.insert(e.path.clone(), dirs.len());
            dirs.push(DirPlan { entry: i, children: Vec::new(), subdirs: Vec::new() });
        }
    }
    drop(dir_of);
    let ops = plan_ops(&dirs);
    let total: u64 = entries.iter().filter(|e| e.kind == walk::Kind::File).map(|e| e.meta.size).sum();
    obs.start(total);

    // Hard links: the first name in write order keeps the data.
    let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
    let mut link_to: HashMap<usize, usize> = HashMap::new();
    for op in &ops {
        if let Op::Child(i) = op {
            let e = &entries[*i];
            if e.kind == walk::Kind::File && e.meta.nlink > 1 {
                match first_link.get(&(e.meta.dev, e.meta.ino)) {
                    Some(&first) => {
                        link_to.insert(*i, first);
                    }
                    None => {
                        first_link.insert((e.meta.dev, e.meta.ino), *i);
                    }
                }
            }
        }
    }
    drop(first_link);
    let jobs: Vec<usize> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Child(i)
                if entries[*i].kind == walk::Kind::File && !link_to.contains_key(i) && !reused(&entries[*i]) =>
            {
                Some(*i)
            }
            _ => None,
        })
        .collect();

    // 3. Write.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::Write { path: out_path.to_path_buf(), source: std::io::Error::other(e) })?;
    let mut w = Out { w: BufWriter::with_capacity(1 << 20, out), pos: 0, path: out_path };
    let mut index: Vec<Option<Entry>> = vec![None; entries.len()];

    let canonical = src.canonicalize().unwrap_or_else(|_| src.to_path_buf());
    let root = opts.root_label.as_deref().unwrap_or(canonical.as_os_str().as_encoded_bytes());
    let mut header = format!("{HEADER_MAGIC} {FORMAT_VERSION}\n#root ").into_bytes();
    manifest::escape_path(&mut header, root);
    header.push(b'\n');
    w.member(format::HEADER_NAME, &header, 0, 0o644)?;

    let (tx, rx) = mpsc::channel::<(usize, Result<Job>)>();
    let mut ready: HashMap<usize, Result<Job>> = HashMap::new();
    let mut next_submit = 0usize;
    let mut written_jobs = 0usize;
    let mut inflight: u64 = 0;
    let mut open: Vec<(usize, u64, [u8; BLOCK])> = Vec::new();

    pool.in_place_scope(|scope| -> Result<()> {
        for op in &ops {
            match *op {
                Op::Open(d) => {
                    let e = &entries[dirs[d].entry];
                    if d != 0 {
                        let mut hdr = Vec::new();
                        let at = tarfmt::write_member_header(
                            &mut hdr,
                            &format::container_name(&e.path),
                            0,
                            e.meta.mtime,
                            0o755,
                        );
                        let block: [u8; BLOCK] = hdr[at..at + BLOCK].try_into().map_err(|_| Error::Write {
                            path: out_path.to_path_buf(),
                            source: std::io::Error::other("header"),
                        })?;
                        let header_pos = w.pos + at as u64;
                        w.write(&hdr)?;
                        open.push((d, header_pos, block));
                    }
                    let mut entry = Entry::from_walk(e);
                    entry.size = 0;
                    index[dirs[d].entry] = Some(entry);
                    summary.dirs += 1;
                }
                Op::Close(d) => {
                    if d != 0 {
                        if let Some((_, header_pos, mut block)) = open.pop() {
                            let size = w.pos - header_pos - BLOCK as u64;
                            tarfmt::patch_size(&mut block, size);
                            w.patch(header_pos, &block)?;
                        }
                    }
                }
                Op::Index(d) => {
                    let dir = &dirs[d];
                    let path = &entries[dir.entry].path;
                    let mut text = format!("{INDEX_MAGIC} {FORMAT_VERSION}\n#dir ").into_bytes();
                    if path.is_empty() {
                        text.push(b'.');
                    } else {
                        manifest::escape_path(&mut text, path);
                    }
                    text.push(b'\n');
                    for &i in std::iter::once(&dir.entry).chain(&dir.children) {
                        if let Some(e) = &index[i] {
                            manifest::write_entry_line(&mut text, e);
                        }
                    }
                    w.member(&format::index_name(path), &text, entries[dir.entry].meta.mtime, 0o644)?;
                }
                Op::Child(i) => {
                    let e = &entries[i];
                    let full = walk::join(src, &e.path);
                    let start = w.pos;
                    match e.kind {
                        walk::Kind::Dir => {}
                        walk::Kind::Symlink => {
                            let target = e.link_target.clone().unwrap_or_default();
                            let info = EntryInfo {
                                name: e.path.clone(),
                                method: Method::Stored,
                                crc: crc32fast::hash(&target),
                                csize: target.len() as u64,
                                usize: target.len() as u64,
                                mtime: e.meta.mtime,
                                unix_mode: S_IFLNK | 0o777,
                                zip64: false,
                            };
                            w.zip_member(&info, &[&target], e.meta.mtime)?;
                            offsets.insert(e.path.clone(), start);
                            index[i] = Some(Entry::from_walk(e));
                            summary.links += 1;
                        }
                        walk::Kind::File => {
                            if let Some(&first) = link_to.get(&i) {
                                if let Some(fe) = index[first].clone() {
                                    let mut le = fe;
                                    le.path = e.path.clone();
                                    le.kind = Kind::HardLink;
                                    le.target = Some(entries[first].path.clone());
                                    index[i] = Some(le);
                                    summary.links += 1;
                                } else {
                                    // The first name could not be read: this one
                                    // is tried as a file of its own.
                                    let r = store_large(&mut w, &pool, &full, e, opts, obs);
                                    if record(&mut summary, &mut index[i], r, &warn)? {
                                        offsets.insert(e.path.clone(), start);
                                    }
                                }
                                continue;
                            }
                            if let Some((r, (at, len, entry))) =
                                reuse.and_then(|r| r.members.get(&e.path).map(|m| (r, m)))
                            {
                                w.copy_from(r.file, r.path, *at, *len)?;
                                offsets.insert(e.path.clone(), start);
                                index[i] = Some(entry.clone());
                                summary.files += 1;
                                summary.bytes_in += entry.size;
                                obs.advance(entry.size);
                                continue;
                            }
                            let seq = written_jobs;
                            // Keep the window of compression ahead full.
                            while next_submit < jobs.len()
                                && (next_submit <= seq || (inflight < WINDOW_BYTES && next_submit < seq + WINDOW_FILES))
                            {
                                let j = jobs[next_submit];
                                let je = &entries[j];
                                if je.meta.size <= SMALL_MAX {
                                    inflight += je.meta.size;
                                    let tx = tx.clone();
                                    let path = walk::join(src, &je.path);
                                    let level = opts.level;
                                    let follow = opts.walk.follow_links;
                                    let n = next_submit;
                                    scope.spawn(move |_| {
                                        let _ = tx.send((n, compress_job(&path, level, follow)));
                                    });
                                }
                                next_submit += 1;
                            }
                            written_jobs += 1;
                            let result = if e.meta.size <= SMALL_MAX {
                                let r = loop {
                                    if let Some(r) = ready.remove(&seq) {
                                        break r;
                                    }
                                    match rx.recv() {
                                        Ok((n, r)) => {
                                            ready.insert(n, r);
                                        }
                                        Err(_) => {
                                            return Err(Error::Write {
                                                path: out_path.to_path_buf(),
                                                source: std::io::Error::other("compression workers stopped"),
                                            })
                                        }
                                    }
                                };
                                inflight -= e.meta.size;
                                r.and_then(|job| write_small(&mut w, e, job, obs))
                            } else {
                                store_large(&mut w, &pool, &full, e, opts, obs)
                            };
                            if record(&mut summary, &mut index[i], result, &warn)? {
                                offsets.insert(e.path.clone(), start);
                            }
                        }
                        _ => {
                            let kind = Entry::from_walk(e).kind.name();
                            obs.notice(&Error::NotStored { path: full, kind });
                            index[i] = Some(Entry::from_walk(e));
                        }
                    }
                }
            }
        }
        Ok(())
    })?;

    // 4. The whole manifest, then the end-of-archive blocks.
    let mut m = Manifest::new(root.to_vec());
    m.entries = index.into_iter().flatten().collect();
    m.sort();
    let mut written = Written { summary, entries: m.entries, offsets };
    if let Some(r) = reuse {
        for p in r.parts {
            let name = format::part_name(&p.path, p.k);
            let mut hdr = Vec::new();
            tarfmt::write_member_header(&mut hdr, &name, p.len, p.mtime, 0o644);
            w.write(&hdr)?;
            w.copy_from(r.file, r.path, p.from, p.len)?;
            w.write(&vec![0u8; tarfmt::padding(p.len)])?;
        }
    }
    for (name, data) in extra(&written) {
        w.member(&name, &data, entries[0].meta.mtime, 0o644)?;
    }
    m.entries = std::mem::take(&mut written.entries);
    let manifest_at = w.pos;
    w.member(format::MANIFEST_NAME, &m.to_text(), entries[0].meta.mtime, 0o644)?;
    // The tail guard (format §7): the last TAIL_GUARD bytes must hold no
    // index, so that losing them cannot take both copies of any line.
    let tail = w.pos - manifest_at + 2 * BLOCK as u64;
    if tail < format::TAIL_GUARD {
        let room = format::TAIL_GUARD - tail;
        // The pad member's own header takes one block.
        let pad = room.saturating_sub(BLOCK as u64).div_ceil(BLOCK as u64) * BLOCK as u64;
        w.member(format::PAD_NAME, &vec![0u8; pad as usize], entries[0].meta.mtime, 0o644)?;
    }
    w.write(&[0u8; 2 * BLOCK])?;
    w.w.flush().map_err(|source| Error::Write { path: out_path.to_path_buf(), source })?;
    written.summary.bytes_out = w.pos;
    written.entries = m.entries;
    Ok(written)
}

/// Books the outcome of storing one file: a write error is fatal, a read
/// error is a warning and the file is left out. Says whether it was stored.
fn record(
    summary: &mut CompressSummary,
    slot: &mut Option<Entry>,
    r: Result<Stored>,
    warn: &impl Fn(&mut CompressSummary, Error),
) -> Result<bool> {
    match r {
        Ok(s) => {
            summary.files += 1;
            summary.bytes_in += s.entry.size;
            *slot = Some(s.entry);
            if let Some(path) = s.changed {
                warn(summary, Error::Changed { path });
            }
            Ok(true)
        }
        Err(err @ Error::Write { .. }) => Err(err),
        Err(err) => {
            warn(summary, err);
            Ok(false)
        }
    }
}

/// Depth-first order: a directory's container opens, its non-directory
/// children follow, then its index, then its subdirectories' containers.
fn plan_ops(dirs: &[DirPlan]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    ops.push(Op::Open(0));
    ops.extend(dirs[0].children.iter().map(|&c| Op::Child(c)));
    ops.push(Op::Index(0));
    while let Some((d, next)) = stack.pop() {
        if let Some(&s) = dirs[d].subdirs.get(next) {
            stack.push((d, next + 1));
            ops.push(Op::Open(s));
            ops.extend(dirs[s].children.iter().map(|&c| Op::Child(c)));
            ops.push(Op::Index(s));
            stack.push((s, 0));
        } else {
            ops.push(Op::Close(d));
        }
    }
    ops
}

/// A small file, compressed by a worker.
struct Job {
    compressed: Compressed,
    meta: walk::Meta,
    changed: bool,
    path: PathBuf,
}

fn open_regular(path: &Path, follow: bool) -> Result<(File, walk::Meta)> {
    let read_err = |source| Error::Read { path: path.to_path_buf(), source };
    // O_NONBLOCK: a file replaced by a fifo since the walk must not hang us.
    // O_NOFOLLOW: nor one replaced by a symlink, unless links are followed.
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    let m = f.metadata().map_err(read_err)?;
    if !m.is_file() {
        return Err(read_err(std::io::Error::other("no longer a regular file")));
    }
    Ok((f, walk::Meta::from_std(&m)))
}

fn changed_since(f: &File, before: &walk::Meta) -> bool {
    match f.metadata() {
        Ok(m) => {
            m.size() != before.size
                || m.mtime() != before.mtime
                || m.mtime_nsec() as u32 != before.mtime_nsec
                || m.ctime() != before.ctime
                || m.ctime_nsec() as u32 != before.ctime_nsec
        }
        Err(_) => true,
    }
}

fn compress_job(path: &Path, level: u32, follow: bool) -> Result<Job> {
    let (mut f, meta) = open_regular(path, follow)?;
    let (compressed, short) = compress::compress_small(&mut f, meta.size, level)
        .map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let changed = short || changed_since(&f, &meta);
    Ok(Job { compressed, meta, changed, path: path.to_path_buf() })
}

fn file_entry(e: &walk::Entry, meta: &walk::Meta, size: u64, sha: [u8; 32]) -> Entry {
    let mut entry = Entry::from_walk(e);
    entry.mode = meta.mode;
    entry.mtime = Timestamp::new(meta.mtime, meta.mtime_nsec);
    entry.size = size;
    entry.sha256 = Some(sha);
    entry
}

fn write_small(w: &mut Out<'_>, e: &walk::Entry, job: Job, obs: &dyn Observer) -> Result<Stored> {
    let c = job.compressed;
    let info = EntryInfo {
        name: e.path.clone(),
        method: c.method,
        crc: c.crc,
        csize: c.data.len() as u64,
        usize: c.size,
        mtime: job.meta.mtime,
        unix_mode: S_IFREG | job.meta.mode,
        zip64: EntryInfo::needs_zip64(c.size),
    };
    w.zip_member(&info, &[&c.data], job.meta.mtime)?;
    obs.advance(e.meta.size);
    let entry = file_entry(e, &job.meta, c.size, c.sha256);
    Ok(Stored { entry, changed: job.changed.then_some(job.path) })
}

/// A file written into the archive; `changed` names it if it changed
/// while it was read.
struct Stored {
    entry: Entry,
    changed: Option<PathBuf>,
}

/// Streams a large file into the archive, compressing chunks on the pool.
fn store_large(
    w: &mut Out<'_>,
    pool: &rayon::ThreadPool,
    path: &Path,
    e: &walk::Entry,
    opts: &CompressOptions,
    obs: &dyn Observer,
) -> Result<Stored> {
    let level = opts.level;
    let read_err = |source| Error::Read { path: path.to_path_buf(), source };
    let (f, meta) = open_regular(path, opts.walk.follow_links)?;
    let mut reader = f.take(meta.size);
    let batch_len = pool.current_num_threads().max(1) * 2;
    let read_chunk = |r: &mut std::io::Take<File>| -> Result<Vec<u8>> {
        let mut c = Vec::with_capacity(CHUNK);
        r.by_ref().take(CHUNK as u64).read_to_end(&mut c).map_err(read_err)?;
        Ok(c)
    };
    let first = read_chunk(&mut reader)?;
    let mut lf = LargeFile::new(level, &first);
    let mut info = EntryInfo {
        name: e.path.clone(),
        method: lf.method(),
        crc: 0,
        csize: 0,
        usize: meta.size,
        mtime: meta.mtime,
        unix_mode: S_IFREG | meta.mode,
        zip64: EntryInfo::needs_zip64(meta.size),
    };
    let mut hdr = Vec::new();
    let at = tarfmt::write_member_header(&mut hdr, &format::file_member_name(&e.path), 0, meta.mtime, 0o644);
    let header_pos = w.pos + at as u64;
    let mut block = [0u8; BLOCK];
    block.copy_from_slice(&hdr[at..at + BLOCK]);
    w.write(&hdr)?;
    let local_pos = w.pos;
    let local_len = info.local_header().len() as u64;
    w.write(&info.local_header())?;

    let mut eof = first.len() < CHUNK || reader.limit() == 0;
    let mut pending = vec![first];
    let mut csize = 0u64;
    loop {
        while !eof && pending.len() < batch_len {
            let c = read_chunk(&mut reader)?;
            eof = c.len() < CHUNK || reader.limit() == 0;
            if !c.is_empty() {
                pending.push(c);
            }
        }
        let read: u64 = pending.iter().map(|c| c.len() as u64).sum();
        let out = pool.install(|| lf.batch(&pending, eof)).map_err(read_err)?;
        for o in &out {
            w.write(o)?;
            csize += o.len() as u64;
        }
        obs.advance(read);
        pending.clear();
        if eof {
            break;
        }
    }
    let (crc, sha, size) = lf.finish();
    let mut rest = [0u8; 1];
    let mut file = reader.into_inner();
    let grew = file.read(&mut rest).unwrap_or(0) > 0;
    info.crc = crc;
    info.csize = csize;
    info.usize = size;
    let trailer = info.trailer();
    w.write(&trailer)?;
    let local = info.local_header();
    if local.len() as u64 != local_len {
        return Err(Error::Write {
            path: w.path.to_path_buf(),
            source: std::io::Error::other("zip header length changed"),
        });
    }
    w.patch(local_pos, &local)?;
    let member_len = local_len + csize + trailer.len() as u64;
    tarfmt::patch_size(&mut block, member_len);
    w.patch(header_pos, &block)?;
    w.write(&vec![0u8; tarfmt::padding(member_len)])?;
    let changed = size != meta.size || grew || changed_since(&file, &meta);
    Ok(Stored { entry: file_entry(e, &meta, size, sha), changed: changed.then(|| path.to_path_buf()) })
}

/// The output: a buffered writer that knows its position and can patch
/// bytes already written.
struct Out<'a> {
    w: BufWriter<&'a File>,
    pos: u64,
    path: &'a Path,
}

impl Out<'_> {
    fn err(&self, source: std::io::Error) -> Error {
        Error::Write { path: self.path.to_path_buf(), source }
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(|e| self.err(e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn patch(&mut self, at: u64, b: &[u8]) -> Result<()> {
        self.w.flush().map_err(|e| self.err(e))?;
        self.w.get_ref().write_all_at(b, at).map_err(|e| self.err(e))
    }

    /// Copies `len` bytes at `at` of another file.
    fn copy_from(&mut self, f: &File, path: &Path, at: u64, len: u64) -> Result<()> {
        let mut buf = vec![0u8; len.min(1 << 20) as usize];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            f.read_exact_at(&mut buf[..n], at + done).map_err(|source| Error::ReadArchive {
                path: path.to_path_buf(),
                offset: at + done,
                source,
            })?;
            self.write(&buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    /// A whole member from memory.
    fn member(&mut self, name: &[u8], data: &[u8], mtime: i64, mode: u32) -> Result<()> {
        let mut hdr = Vec::new();
        tarfmt::write_member_header(&mut hdr, name, data.len() as u64, mtime, mode);
        self.write(&hdr)?;
        self.write(data)?;
        self.write(&vec![0u8; tarfmt::padding(data.len() as u64)])
    }

    /// A file member: tar header, zip local header, data, zip trailer.
    fn zip_member(&mut self, info: &EntryInfo, data: &[&[u8]], mtime: i64) -> Result<()> {
        let local = info.local_header();
        let trailer = info.trailer();
        let len = local.len() as u64 + info.csize + trailer.len() as u64;
        let mut hdr = Vec::new();
        tarfmt::write_member_header(&mut hdr, &format::file_member_name(&info.name), len, mtime, 0o644);
        self.write(&hdr)?;
        self.write(&local)?;
        for d in data {
            self.write(d)?;
        }
        self.write(&trailer)?;
        self.write(&vec![0u8; tarfmt::padding(len)])
    }
}
