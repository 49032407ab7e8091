//! Archiving a walked tree: the plan, the compression window and the
//! builder, composed.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use manifest::{Entry, Kind, Timestamp};

use std::sync::Arc;

use super::builder::{ArchiveWriter, Stored};
use super::pipeline::{Input, Next, Window};
use super::plan::{plan, Step};
use crate::compress::Compressed;
use crate::{Error, Observer, Result};

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
    /// The format version [`write_archive`] writes: 3 (packs, smallest
    /// first; the default) or 2 (one container per directory). Writers of
    /// volume sets and backup sets write version 2 whatever this says.
    pub version: u32,
    /// Version 3: where compressed data waits while files are sorted by
    /// size (an unlinked file); `None`: beside the output.
    pub spill_dir: Option<std::path::PathBuf>,
    /// Version 3: encrypt the archive to these age recipients (`age1…`);
    /// none: not encrypted.
    pub recipients: Vec<String>,
    /// How files are compressed: deflate (versions 3 and 4) or zstd with
    /// a dictionary trained on the tree (version 5; `level` is then
    /// zstd's, 1 to 22).
    pub codec: Codec,
}

/// How the files of a packed archive are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// Deflate: what every zip reader reads (versions 3 and 4).
    #[default]
    Deflate,
    /// zstd frames with a dictionary trained on the tree (version 5):
    /// smaller, read by pybackup or by `unzip` then `zstd -d -D`.
    Zstd,
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

/// Why a path of a selection list was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListSkip {
    /// Nothing is there.
    Missing,
    /// It is not inside the source.
    Outside,
}

impl Select {
    /// The selection of a list of paths (`--files-from`): `list` holds
    /// paths separated by `sep` (newline or NUL), relative to `cwd` or
    /// absolute, which must be inside `src`. Returns the selection, and
    /// each path left out with the reason.
    pub fn from_list(src: &Path, cwd: &Path, list: &[u8], sep: u8) -> (Select, Vec<(std::path::PathBuf, ListSkip)>) {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let src_abs = lexical(&cwd.join(src));
        let src_canon = src.canonicalize().unwrap_or_else(|_| src_abs.clone());
        let mut set = std::collections::HashSet::new();
        let mut skipped = Vec::new();
        for raw in list.split(|&b| b == sep).filter(|l| !l.is_empty()) {
            let p = lexical(&cwd.join(std::ffi::OsString::from_vec(raw.to_vec())));
            let rel = p.strip_prefix(&src_abs).or_else(|_| p.strip_prefix(&src_canon));
            match rel {
                Ok(r) if p.symlink_metadata().is_ok() => {
                    if !r.as_os_str().is_empty() {
                        set.insert(r.as_os_str().as_bytes().to_vec());
                    }
                }
                Ok(_) => skipped.push((p, ListSkip::Missing)),
                Err(_) => skipped.push((p, ListSkip::Outside)),
            }
        }
        (Select::Paths(set), skipped)
    }

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
            version: crate::format::PACKED_VERSION,
            spill_dir: None,
            recipients: Vec::new(),
            codec: Codec::Deflate,
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

/// The root an archive of `src` records: `opts.root_label`, or the
/// canonical path of `src`.
pub fn root_label(src: &Path, opts: &CompressOptions) -> Vec<u8> {
    match &opts.root_label {
        Some(l) => l.clone(),
        None => {
            let canonical = src.canonicalize().unwrap_or_else(|_| src.to_path_buf());
            canonical.into_os_string().into_encoded_bytes()
        }
    }
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
    if opts.codec == Codec::Zstd && opts.version < 3 {
        return Err(Error::Write {
            path: out_path.to_path_buf(),
            source: std::io::Error::other("zstd frames need the packed layout (format version 6), not version 2"),
        });
    }
    let (entries, warnings) = walk_source(src, opts, obs)?;
    if opts.version >= 3 {
        let spill_dir = match (&opts.spill_dir, out_path.parent()) {
            (Some(d), _) => d.as_path(),
            (None, Some(p)) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut w = super::PackedWriter::new(out, out_path, &root_label(src, opts), opts, spill_dir)?;
        w.train(src, &entries)?;
        write_entries(&mut w, src, &entries, obs)?;
        w.count_warnings(warnings);
        return Ok(w.finish()?.summary);
    }
    let mut w = ArchiveWriter::new(out, out_path, &root_label(src, opts), opts)?;
    write_entries(&mut w, src, &entries, obs)?;
    w.count_warnings(warnings);
    Ok(w.finish()?.summary)
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

/// What [`write_entries`] writes a tree into: one archive
/// ([`ArchiveWriter`]) or anything that places the same members
/// elsewhere (the volumes of a set). The verbs are those of
/// [`ArchiveWriter`], which documents them.
pub trait TreeSink {
    /// Opens a directory's container.
    fn open_dir(&mut self, entry: &Entry) -> Result<()>;
    /// Closes the directory opened last.
    fn close_dir(&mut self) -> Result<()>;
    /// Adds a file compressed in memory.
    fn add_compressed(&mut self, entry: &Entry, data: &Compressed) -> Result<Stored>;
    /// Adds a file streamed from disk; [`Error::Read`] means it was left out.
    fn add_file(&mut self, entry: &Entry, disk: &Path, obs: &dyn Observer) -> Result<Stored>;
    /// Adds a symbolic link.
    fn add_symlink(&mut self, entry: &Entry) -> Result<()>;
    /// Records an entry without a member (hard link, fifo, socket, device).
    fn add_record(&mut self, entry: &Entry) -> Result<()>;
    /// The pool that compresses files.
    fn pool(&self) -> Arc<rayon::ThreadPool>;
    /// The deflate level and whether symlinks are followed.
    fn file_options(&self) -> (u32, bool);
    /// The encoder of files compressed whole.
    fn encoder(&self) -> crate::compress::Encoder {
        crate::compress::Encoder::Zlib
    }
    /// Counts problems reported to the observer.
    fn count_warnings(&mut self, n: u64);
    /// The output, for messages.
    fn path(&self) -> &Path;
}

impl TreeSink for ArchiveWriter {
    fn open_dir(&mut self, entry: &Entry) -> Result<()> {
        ArchiveWriter::open_dir(self, entry)
    }
    fn close_dir(&mut self) -> Result<()> {
        ArchiveWriter::close_dir(self)
    }
    fn add_compressed(&mut self, entry: &Entry, data: &Compressed) -> Result<Stored> {
        ArchiveWriter::add_compressed(self, entry, data)
    }
    fn add_file(&mut self, entry: &Entry, disk: &Path, obs: &dyn Observer) -> Result<Stored> {
        ArchiveWriter::add_file(self, entry, disk, obs)
    }
    fn add_symlink(&mut self, entry: &Entry) -> Result<()> {
        ArchiveWriter::add_symlink(self, entry).map(|_| ())
    }
    fn add_record(&mut self, entry: &Entry) -> Result<()> {
        ArchiveWriter::add_record(self, entry)
    }
    fn pool(&self) -> Arc<rayon::ThreadPool> {
        ArchiveWriter::pool(self)
    }
    fn file_options(&self) -> (u32, bool) {
        ArchiveWriter::file_options(self)
    }
    fn count_warnings(&mut self, n: u64) {
        ArchiveWriter::count_warnings(self, n)
    }
    fn path(&self) -> &Path {
        ArchiveWriter::path(self)
    }
}

/// Writes the tree of `entries` (from [`walk_source`], in walk order, the
/// root first) of the directory `src` into `w`, which has no directory
/// open yet; small files are compressed on the writer's pool, ahead of it.
/// A file that cannot be read is reported to `obs` and left out; the
/// caller may add extra members and must [`finish`](ArchiveWriter::finish).
pub fn write_entries(w: &mut dyn TreeSink, src: &Path, entries: &[walk::Entry], obs: &dyn Observer) -> Result<()> {
    match entries.first() {
        Some(root) if root.kind == walk::Kind::Dir && root.path.is_empty() => {}
        _ => return Err(Error::Read { path: src.to_path_buf(), source: std::io::Error::other("not a directory") }),
    }
    let steps = plan(entries.iter().map(|e| (e.path.as_slice(), e.kind == walk::Kind::Dir)));
    let total: u64 = entries.iter().filter(|e| e.kind == walk::Kind::File).map(|e| e.meta.size).sum();
    obs.start(total);
    let links = HardLinks::find(entries, &steps);
    let inputs = steps
        .iter()
        .filter_map(|s| match *s {
            Step::Add(i) if entries[i].kind == walk::Kind::File && !links.later.contains_key(&i) => {
                Some(Input { disk: walk::join(src, &entries[i].path), size: entries[i].meta.size })
            }
            _ => None,
        })
        .collect();
    let (level, follow) = w.file_options();
    let mut window = Window::new(inputs, level, follow, w.encoder());
    // Stored entries of files with further names, by entry number.
    let mut heads: HashMap<usize, Entry> = HashMap::new();
    let out_path = w.path().to_path_buf();
    w.pool().in_place_scope(|scope| -> Result<()> {
        for step in &steps {
            let i = match *step {
                Step::Open(i) => {
                    w.open_dir(&Entry::from_walk(&entries[i]))?;
                    continue;
                }
                Step::Close => {
                    w.close_dir()?;
                    continue;
                }
                Step::Add(i) => i,
            };
            let e = &entries[i];
            let full = walk::join(src, &e.path);
            let stored = match e.kind {
                walk::Kind::Symlink => {
                    w.add_symlink(&Entry::from_walk(e))?;
                    continue;
                }
                walk::Kind::File => match links.later.get(&i) {
                    Some(first) => match heads.get(first) {
                        Some(head) => {
                            let mut le = head.clone();
                            le.path = e.path.clone();
                            le.kind = Kind::HardLink;
                            le.target = Some(entries[*first].path.clone());
                            w.add_record(&le)?;
                            continue;
                        }
                        // The first name could not be read: this one is
                        // tried as a file of its own.
                        None => w.add_file(&Entry::from_walk(e), &full, obs),
                    },
                    None => match window.next(scope, &out_path)? {
                        Next::Small(r) => match *r {
                            Ok(job) => {
                                let mut entry = Entry::from_walk(e);
                                entry.mode = job.meta.mode;
                                entry.mtime = Timestamp::new(job.meta.mtime, job.meta.mtime_nsec);
                                let r = w.add_compressed(&entry, &job.compressed);
                                obs.advance(e.meta.size);
                                r.map(|s| Stored { changed: job.changed.then_some(job.path), ..s })
                            }
                            Err(err) => Err(err),
                        },
                        Next::Large => w.add_file(&Entry::from_walk(e), &full, obs),
                    },
                },
                walk::Kind::Dir => continue,
                _ => {
                    let entry = Entry::from_walk(e);
                    obs.notice(&Error::NotStored { path: full, kind: entry.kind.name() });
                    w.add_record(&entry)?;
                    continue;
                }
            };
            match stored {
                Ok(s) => {
                    if let Some(path) = s.changed {
                        w.count_warnings(1);
                        obs.warning(&Error::Changed { path });
                    }
                    if links.heads.contains(&i) {
                        heads.insert(i, s.entry);
                    }
                }
                // A file that cannot be read is left out; anything else
                // stops the archive.
                Err(err @ Error::Read { .. }) => {
                    w.count_warnings(1);
                    obs.warning(&err);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    })
}

/// Hard links: the first name in write order keeps the data.
struct HardLinks {
    /// Entries that are a later name of a file: the first name's number.
    later: HashMap<usize, usize>,
    /// Entries that are the first name of a file with later names.
    heads: std::collections::HashSet<usize>,
}

impl HardLinks {
    fn find(entries: &[walk::Entry], steps: &[Step]) -> HardLinks {
        let mut first: HashMap<(u64, u64), usize> = HashMap::new();
        let mut links = HardLinks { later: HashMap::new(), heads: Default::default() };
        for step in steps {
            let Step::Add(i) = *step else { continue };
            let e = &entries[i];
            if e.kind == walk::Kind::File && e.meta.nlink > 1 {
                match first.get(&(e.meta.dev, e.meta.ino)) {
                    Some(&f) => {
                        links.later.insert(i, f);
                        links.heads.insert(f);
                    }
                    None => {
                        first.insert((e.meta.dev, e.meta.ino), i);
                    }
                }
            }
        }
        links
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn lexical(p: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// A path asked for inside an archive (`extract ARCHIVE DEST PATH`), as
/// the archive spells it: relative, `/`-separated, without `.` or `..`.
pub fn request_path(p: &Path) -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n.as_bytes()),
            std::path::Component::CurDir => {}
            _ => {
                return Err(Error::BadRequest {
                    path: p.to_path_buf(),
                    reason: "give paths relative to the archive root, without `..`",
                })
            }
        }
    }
    if parts.is_empty() {
        return Err(Error::BadRequest { path: p.to_path_buf(), reason: "it names no path inside the archive" });
    }
    Ok(parts.join(&b'/'))
}
