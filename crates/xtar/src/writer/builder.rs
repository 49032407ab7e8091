//! [`ArchiveWriter`]: the public builder of an archive.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use manifest::{Entry, Kind, Manifest};

use super::bytes::Out;
use super::tree::{CompressOptions, CompressSummary};
use crate::compress::Compressed;
use crate::format::tar::{self as tarfmt, BLOCK};
use crate::format::zip::{EntryInfo, Method, S_IFLNK};
use crate::format::{self, MemberName, HEADER_MAGIC, INDEX_MAGIC, NESTED_VERSION};
use crate::{Error, Observer, Result};

/// What an archive holds, as its writer finished it (or so far).
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

/// A file written into an archive.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its manifest entry, with the size and SHA-256 of what was stored.
    pub entry: Entry,
    /// Offset of its member's first header block.
    pub offset: u64,
    /// The file's path on disk, when it changed while it was read.
    pub changed: Option<PathBuf>,
}

/// A directory whose container is open.
struct OpenDir {
    path: Vec<u8>,
    /// The container's last header block and where it is (not for the
    /// root, which has no container).
    header: Option<(u64, [u8; BLOCK])>,
    mtime: i64,
    /// Its index so far: the header, then the lines of the directory's
    /// own entry and its children's, in the order they were added.
    index: Vec<u8>,
    /// Whether its index is written (then only subdirectories may follow).
    indexed: bool,
}

/// Builds an archive, member by member, in the style of tar-rs's
/// `Builder`: [`open_dir`](Self::open_dir) opens a directory's container;
/// its files come next ([`add_file`](Self::add_file),
/// [`add_compressed`](Self::add_compressed),
/// [`copy_member`](Self::copy_member), [`add_symlink`](Self::add_symlink),
/// [`add_record`](Self::add_record)), then its subdirectories;
/// [`close_dir`](Self::close_dir) closes it. A directory's index is
/// written when its first subdirectory opens or when it closes, so it
/// follows the directory's files and precedes its subdirectories (format
/// §2). [`add_extra`](Self::add_extra) adds members such as a snapshot
/// record or a volume table, and [`finish`](Self::finish) writes the
/// manifest, the tail guard and the end of the archive.
///
/// Every byte is written once, in order; container sizes are patched in
/// place, so the output must be a new, empty, seekable file.
pub struct ArchiveWriter {
    out: Out,
    pool: Arc<rayon::ThreadPool>,
    level: u32,
    follow_links: bool,
    root: Vec<u8>,
    /// The root directory's mtime: the mtime of the members after it.
    mtime: Option<i64>,
    stack: Vec<OpenDir>,
    root_closed: bool,
    written: Written,
    /// Bytes of the manifest text so far.
    manifest_len: u64,
    /// An extra member being streamed: where its last header block is,
    /// that block, and where its data starts.
    extra: Option<(u64, [u8; BLOCK], u64)>,
}

impl ArchiveWriter {
    /// Starts an archive in `file` (new and empty; `path` names it in
    /// errors), recording `root` as the source path. Files added from disk
    /// are compressed at `opts.level` with `opts.jobs` threads, and opened
    /// through symlinks only if `opts.walk.follow_links`.
    pub fn new(file: &File, path: &Path, root: &[u8], opts: &CompressOptions) -> Result<ArchiveWriter> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.jobs.max(1))
            .build()
            .map_err(|e| Error::Write { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
        ArchiveWriter::with_pool(file, path, root, opts, Arc::new(pool))
    }

    /// Like [`new`](Self::new), compressing on `pool` (shared with other
    /// writers) instead of a pool of its own.
    pub fn with_pool(
        file: &File,
        path: &Path,
        root: &[u8],
        opts: &CompressOptions,
        pool: Arc<rayon::ThreadPool>,
    ) -> Result<ArchiveWriter> {
        let mut out = Out::new(file, path)?;
        let mut header = format!("{HEADER_MAGIC} {NESTED_VERSION}\n#root ").into_bytes();
        manifest::escape_path(&mut header, root);
        header.push(b'\n');
        out.member(format::HEADER_NAME, &header, 0, 0o644)?;
        Ok(ArchiveWriter {
            out,
            pool,
            level: opts.level,
            follow_links: opts.walk.follow_links,
            root: root.to_vec(),
            mtime: None,
            stack: Vec::new(),
            root_closed: false,
            written: Written::default(),
            manifest_len: Manifest::new(root.to_vec()).to_text().len() as u64,
            extra: None,
        })
    }

    /// The thread pool that compresses files added from disk.
    pub fn pool(&self) -> Arc<rayon::ThreadPool> {
        Arc::clone(&self.pool)
    }

    /// The path of the archive being written, for messages.
    pub fn path(&self) -> &Path {
        &self.out.path
    }

    /// The deflate level and whether symlinks are followed, for files
    /// added from disk.
    pub fn file_options(&self) -> (u32, bool) {
        (self.level, self.follow_links)
    }

    /// Counts problems the caller reported (files left out, files that
    /// changed while read) in the summary.
    pub fn count_warnings(&mut self, n: u64) {
        self.written.summary.warnings += n;
    }

    /// Bytes written so far: the offset of the next member.
    pub fn position(&self) -> u64 {
        self.out.pos
    }

    /// What was added so far, the entries in canonical order.
    pub fn written(&mut self) -> &Written {
        self.written.entries.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        &self.written
    }

    /// An upper bound of the bytes that closing every open container and
    /// [`finish`](Self::finish) would still add, without further members:
    /// the indexes not written yet, the manifest, the tail guard and the
    /// end of the archive.
    pub fn finish_cost(&self) -> u64 {
        let block = BLOCK as u64;
        let header = |name: &[u8]| {
            let mut v = Vec::new();
            tarfmt::write_member_header(&mut v, name, 0, 0, 0o644);
            v.len() as u64
        };
        let indexes: u64 = self
            .stack
            .iter()
            .filter(|d| !d.indexed)
            .map(|d| header(&format::index_name(&d.path)) + d.index.len() as u64 + block)
            .sum();
        let manifest = block + self.manifest_len + block;
        indexes + (manifest + 2 * block).max(format::TAIL_GUARD + block)
    }

    /// Starts an extra member (see [`add_extra`](Self::add_extra)) whose
    /// data is given in pieces by [`extra_data`](Self::extra_data) and
    /// ended by [`end_extra`](Self::end_extra). Returns the offset its
    /// data starts at.
    pub fn begin_extra(&mut self, name: &[u8], mtime: i64) -> Result<u64> {
        if self.extra.is_some() {
            return Err(order(name, "another extra member is still open"));
        }
        self.before_extra(name)?;
        let (at, block) = self.out.open_header(name, mtime, 0o644)?;
        self.extra = Some((at, block, self.out.pos));
        Ok(self.out.pos)
    }

    /// More data of the extra member begun last.
    pub fn extra_data(&mut self, data: &[u8]) -> Result<()> {
        if self.extra.is_none() {
            return Err(order(b"", "no extra member is open"));
        }
        self.out.write(data)
    }

    /// Overwrites bytes of the open extra member's data, from `at` (an
    /// offset in the archive) on.
    pub fn patch_extra(&mut self, at: u64, data: &[u8]) -> Result<()> {
        match self.extra {
            Some((_, _, start)) if at >= start && at + data.len() as u64 <= self.out.pos => self.out.patch(at, data),
            _ => Err(order(b"", "a patch must fall inside the open extra member")),
        }
    }

    /// Ends the extra member begun last: sets its size and pads it.
    pub fn end_extra(&mut self) -> Result<()> {
        let Some((at, block, start)) = self.extra.take() else {
            return Err(order(b"", "no extra member is open"));
        };
        let len = self.out.pos - start;
        self.out.patch_header(at, block, len)?;
        self.out.padding(len)
    }

    /// Opens the container of directory `entry`: the root (empty path)
    /// first, then each directory inside the one open last.
    pub fn open_dir(&mut self, entry: &Entry) -> Result<()> {
        if entry.kind != Kind::Dir {
            return Err(order(&entry.path, "not a directory"));
        }
        match self.stack.last() {
            None if self.root_closed || self.mtime.is_some() => {
                return Err(order(&entry.path, "the root directory is already closed"))
            }
            None if !entry.path.is_empty() => return Err(order(&entry.path, "the root directory comes first")),
            Some(top) if manifest::parent_of(&entry.path) != top.path.as_slice() || entry.path.is_empty() => {
                return Err(order(&entry.path, "not inside the directory open last"))
            }
            _ => {}
        }
        self.write_index()?;
        let mtime = entry.mtime.sec;
        let header = if entry.path.is_empty() {
            self.mtime = Some(mtime);
            None
        } else {
            Some(self.out.open_header(&format::container_name(&entry.path), mtime, 0o755)?)
        };
        let mut e = entry.clone();
        e.size = 0;
        e.sha256 = None;
        let mut index = format!("{INDEX_MAGIC} {NESTED_VERSION}\n#dir ").into_bytes();
        if e.path.is_empty() {
            index.push(b'.');
        } else {
            manifest::escape_path(&mut index, &e.path);
        }
        index.push(b'\n');
        let before = index.len();
        manifest::write_entry_line(&mut index, &e);
        self.manifest_len += (index.len() - before) as u64;
        self.written.entries.push(e);
        self.stack.push(OpenDir { path: entry.path.clone(), header, mtime, index, indexed: false });
        self.written.summary.dirs += 1;
        Ok(())
    }

    /// Closes the directory opened last: writes its index if no
    /// subdirectory did, and patches its container's size.
    pub fn close_dir(&mut self) -> Result<()> {
        self.write_index()?;
        let Some(dir) = self.stack.pop() else {
            return Err(order(b"", "no directory is open"));
        };
        match dir.header {
            Some((at, block)) => {
                let size = self.out.pos - at - BLOCK as u64;
                self.out.patch_header(at, block, size)?;
            }
            None => self.root_closed = true,
        }
        Ok(())
    }

    /// Adds a regular file from disk, at `disk`, as `entry.path` (a child
    /// of the directory open last). Its mode, mtime and size are read
    /// when it is opened; large files are compressed in chunks on the
    /// writer's threads. A file that cannot be read leaves no trace in the
    /// archive and returns [`Error::Read`]; any other error is fatal to
    /// the archive.
    pub fn add_file(&mut self, entry: &Entry, disk: &Path, obs: &dyn Observer) -> Result<Stored> {
        self.check_child(&entry.path)?;
        let start = self.out.pos;
        let pool = Arc::clone(&self.pool);
        match super::large::store(&mut self.out, &pool, disk, &entry.path, self.level, self.follow_links, obs) {
            Ok(s) => {
                let mut e = entry.clone();
                e.kind = Kind::File;
                e.target = None;
                e.mode = s.mode;
                e.mtime = s.mtime;
                e.size = s.size;
                e.sha256 = Some(s.sha256);
                self.stored_file(e, start, s.changed.then(|| disk.to_path_buf()))
            }
            Err(err @ Error::Read { .. }) => {
                self.out.truncate(start)?;
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    /// Adds a regular file already compressed (its mode and mtime from
    /// `entry`, its size and SHA-256 from `data`).
    pub fn add_compressed(&mut self, entry: &Entry, data: &Compressed) -> Result<Stored> {
        self.check_child(&entry.path)?;
        let start = self.out.pos;
        let info = data.entry_info(&entry.path, entry.mode, entry.mtime.sec);
        self.out.zip_member(&info, &data.data, entry.mtime.sec)?;
        let mut e = entry.clone();
        e.kind = Kind::File;
        e.target = None;
        e.size = data.size;
        e.sha256 = Some(data.sha256);
        self.stored_file(e, start, None)
    }

    /// Adds a regular file whose one-entry zip (named `entry.path`, made
    /// by [`stream_zip`](crate::stream_zip)) is the `len` bytes at `at` of
    /// `from` (`from_path` names it in errors); `entry` is what the index
    /// and manifest record.
    pub fn add_zip_copy(&mut self, entry: &Entry, from: &File, from_path: &Path, at: u64, len: u64) -> Result<Stored> {
        self.check_child(&entry.path)?;
        let start = self.out.pos;
        let mut hdr = Vec::new();
        tarfmt::write_member_header(&mut hdr, &format::file_member_name(&entry.path), len, entry.mtime.sec, 0o644);
        self.out.write(&hdr)?;
        self.out.copy_from(from, from_path, at, len)?;
        self.out.padding(len)?;
        let mut e = entry.clone();
        e.kind = Kind::File;
        e.target = None;
        self.stored_file(e, start, None)
    }

    /// Adds a symbolic link (`entry.target` is where it points).
    pub fn add_symlink(&mut self, entry: &Entry) -> Result<u64> {
        self.check_child(&entry.path)?;
        let start = self.out.pos;
        let target = entry.target.clone().unwrap_or_default();
        let info = EntryInfo {
            name: entry.path.clone(),
            method: Method::Stored,
            crc: crc32fast::hash(&target),
            csize: target.len() as u64,
            usize: target.len() as u64,
            mtime: entry.mtime.sec,
            unix_mode: S_IFLNK | 0o777,
            zip64: false,
        };
        self.out.zip_member(&info, &target, entry.mtime.sec)?;
        self.written.offsets.insert(entry.path.clone(), start);
        self.push_child(entry.clone());
        self.written.summary.links += 1;
        Ok(start)
    }

    /// Records an entry that has no member of its own: a hard link (its
    /// `target` is the first name, stored earlier), or a fifo, socket or
    /// device (recorded, never stored).
    pub fn add_record(&mut self, entry: &Entry) -> Result<()> {
        if matches!(entry.kind, Kind::Dir | Kind::File | Kind::Symlink) {
            return Err(order(&entry.path, "a record is a hard link, fifo, socket or device"));
        }
        self.check_child(&entry.path)?;
        if entry.kind == Kind::HardLink {
            self.written.summary.links += 1;
        }
        self.push_child(entry.clone());
        Ok(())
    }

    /// Copies the member of a file or symlink, byte for byte, from
    /// another archive `from` (named `from_path` in errors), where its
    /// first header block is at `offset`. The member must be the one of
    /// `entry.path`; `entry` is what the index and manifest record.
    pub fn copy_member(
        &mut self,
        entry: &Entry,
        from: &dyn fsutil::Source,
        from_path: &Path,
        offset: u64,
    ) -> Result<Stored> {
        if !matches!(entry.kind, Kind::File | Kind::Symlink) {
            return Err(order(&entry.path, "only files and symlinks have members"));
        }
        self.check_child(&entry.path)?;
        let (name, size, data_at) = crate::read::member_at(from, from_path, offset)?;
        if name != format::file_member_name(&entry.path) {
            return Err(Error::Damaged {
                path: from_path.to_path_buf(),
                offset,
                message: format!(
                    "expected the member of `{}`, found `{}`",
                    String::from_utf8_lossy(&entry.path),
                    String::from_utf8_lossy(&name)
                ),
            });
        }
        let len = data_at - offset + size + tarfmt::padding(size) as u64;
        let start = self.out.pos;
        self.out.copy_from(from, from_path, offset, len)?;
        if entry.kind == Kind::Symlink {
            self.written.offsets.insert(entry.path.clone(), start);
            self.push_child(entry.clone());
            self.written.summary.links += 1;
            return Ok(Stored { entry: entry.clone(), offset: start, changed: None });
        }
        self.stored_file(entry.clone(), start, None)
    }

    /// Adds a member that readers skip or that has a meaning of its own
    /// outside the tree (`.xtar-snapshot`, `.xtar-volumes`, a part of a
    /// file cut across volumes): after every container, before the
    /// manifest, closing open containers first; or, before the root
    /// directory opens, directly after the header.
    pub fn add_extra(&mut self, name: &[u8], data: &[u8]) -> Result<()> {
        self.before_extra(name)?;
        let mtime = self.mtime.unwrap_or(0);
        self.out.member(name, data, mtime, 0o644)
    }

    /// Like [`add_extra`](Self::add_extra), with the member's data the
    /// first `len` bytes of the file `from` (a text too large to hold in
    /// memory).
    pub fn add_extra_file(&mut self, name: &[u8], from: &File, from_path: &Path, len: u64) -> Result<()> {
        let mtime = self.mtime.unwrap_or(0);
        self.add_extra_copy(name, mtime, from, from_path, 0, len)
    }

    /// Whether the root directory was opened and closed again: only extra
    /// members can follow.
    pub fn tree_closed(&self) -> bool {
        self.root_closed
    }

    /// Like [`add_extra`](Self::add_extra), with the member's data copied
    /// from `len` bytes at `at` of the file `from` (a part of a file
    /// member cut across volumes).
    pub fn add_extra_copy(
        &mut self,
        name: &[u8],
        mtime: i64,
        from: &File,
        from_path: &Path,
        at: u64,
        len: u64,
    ) -> Result<()> {
        self.before_extra(name)?;
        let mut hdr = Vec::new();
        tarfmt::write_member_header(&mut hdr, name, len, mtime, 0o644);
        self.out.write(&hdr)?;
        self.out.copy_from(from, from_path, at, len)?;
        self.out.padding(len)
    }

    /// Writes the manifest, the tail guard (format §7) and the end of the
    /// archive, closing open containers first, and flushes.
    pub fn finish(mut self) -> Result<Written> {
        if self.extra.is_some() {
            self.end_extra()?;
        }
        while !self.stack.is_empty() {
            self.close_dir()?;
        }
        let Some(mtime) = self.mtime else {
            return Err(order(b"", "an archive needs its root directory"));
        };
        self.written.entries.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        let mut m = Manifest::new(std::mem::take(&mut self.root));
        m.entries = std::mem::take(&mut self.written.entries);
        let manifest_at = self.out.pos;
        self.out.member(format::MANIFEST_NAME, &m.to_text(), mtime, 0o644)?;
        // The last TAIL_GUARD bytes must hold no index, so that losing
        // them cannot take both copies of any line.
        let tail = self.out.pos - manifest_at + 2 * BLOCK as u64;
        if let Some(pad) = format::guard_pad(tail) {
            self.out.member(format::PAD_NAME, &vec![0u8; pad as usize], mtime, 0o644)?;
        }
        self.out.write(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        self.written.summary.bytes_out = self.out.pos;
        self.written.entries = m.entries;
        Ok(self.written)
    }

    fn before_extra(&mut self, name: &[u8]) -> Result<()> {
        if self.extra.is_some() {
            return Err(order(name, "another extra member is still open"));
        }
        if !matches!(MemberName::parse(name), MemberName::Other(_) | MemberName::Volumes | MemberName::Part(..)) {
            return Err(order(name, "an extra member may not take a name of the tree or the format"));
        }
        if self.mtime.is_none() {
            // Before the root opens: a leading extra member, directly
            // after the header (the continuation of a file cut at the end
            // of the previous volume).
            return Ok(());
        }
        while !self.stack.is_empty() {
            self.close_dir()?;
        }
        Ok(())
    }

    /// Checks that `path` may be added now: a child of the directory open
    /// last, before its subdirectories.
    fn check_child(&self, path: &[u8]) -> Result<()> {
        if self.extra.is_some() {
            return Err(order(path, "an extra member is still open"));
        }
        match self.stack.last() {
            Some(top) if top.indexed => Err(order(path, "files come before their directory's subdirectories")),
            Some(top) if !path.is_empty() && manifest::parent_of(path) == top.path.as_slice() => Ok(()),
            _ => Err(order(path, "not inside the directory open last")),
        }
    }

    fn stored_file(&mut self, e: Entry, offset: u64, changed: Option<PathBuf>) -> Result<Stored> {
        self.written.offsets.insert(e.path.clone(), offset);
        self.written.summary.files += 1;
        self.written.summary.bytes_in += e.size;
        self.push_child(e.clone());
        Ok(Stored { entry: e, offset, changed })
    }

    fn push_child(&mut self, e: Entry) {
        if let Some(top) = self.stack.last_mut() {
            let before = top.index.len();
            manifest::write_entry_line(&mut top.index, &e);
            self.manifest_len += (top.index.len() - before) as u64;
        }
        self.written.entries.push(e);
    }

    /// Writes the index of the directory open last, once.
    fn write_index(&mut self) -> Result<()> {
        let Some(top) = self.stack.last_mut() else { return Ok(()) };
        if top.indexed {
            return Ok(());
        }
        top.indexed = true;
        let text = std::mem::take(&mut top.index);
        let (name, mtime) = (format::index_name(&top.path), top.mtime);
        self.out.member(&name, &text, mtime, 0o644)
    }
}

fn order(path: &[u8], reason: &'static str) -> Error {
    Error::WriteOrder { member: String::from_utf8_lossy(path).into_owned(), reason }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Silent;
    use std::io::Read;

    fn dir_entry(path: &str) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::Dir,
            mode: 0o755,
            mtime: manifest::Timestamp::new(1_700_000_000, 0),
            size: 0,
            sha256: None,
            target: None,
        }
    }

    fn file_entry(path: &str) -> Entry {
        Entry { kind: Kind::File, mode: 0o644, ..dir_entry(path) }
    }

    /// The top-level tar member names of an archive, in order.
    fn top_members(path: &Path) -> Vec<String> {
        let mut a = tar::Archive::new(File::open(path).unwrap());
        a.entries().unwrap().map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned()).collect()
    }

    #[test]
    fn copied_member_is_byte_identical_and_extracts() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/a.txt"), b"alpha ".repeat(1000)).unwrap();
        std::fs::write(src.join("b.bin"), (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
        let opts = CompressOptions::default();
        let a_path = t.path().join("a.xtar");
        let rw = |p: &Path| std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(p).unwrap();
        let a_file = rw(&a_path);
        let mut w = ArchiveWriter::new(&a_file, &a_path, b"/src", &opts).unwrap();
        let (entries, _) = crate::walk_source(&src, &opts, &Silent).unwrap();
        crate::write_entries(&mut w, &src, &entries, &Silent).unwrap();
        let a = w.finish().unwrap();

        let b_path = t.path().join("b.xtar");
        let b_file = rw(&b_path);
        let mut w = ArchiveWriter::new(&b_file, &b_path, b"/src", &opts).unwrap();
        let by_path = |p: &[u8]| a.entries.iter().find(|e| e.path == p).unwrap().clone();
        w.open_dir(&by_path(b"")).unwrap();
        let s1 = w.copy_member(&by_path(b"b.bin"), &a_file, &a_path, a.offsets[&b"b.bin".to_vec()]).unwrap();
        w.open_dir(&by_path(b"d")).unwrap();
        let s2 = w.copy_member(&by_path(b"d/a.txt"), &a_file, &a_path, a.offsets[&b"d/a.txt".to_vec()]).unwrap();
        let b = w.finish().unwrap();
        assert_eq!(b.summary.files, 2);

        let bytes_of = |f: &File, p: &Path, at: u64| {
            let (_, size, data) = crate::read::member_at(f, p, at).unwrap();
            let mut v = vec![0u8; (data - at + size) as usize];
            f.read_exact_at(&mut v, at).unwrap();
            v
        };
        use std::os::unix::fs::FileExt;
        for (path, s) in [(&b"b.bin"[..], &s1), (&b"d/a.txt"[..], &s2)] {
            let original = bytes_of(&a_file, &a_path, a.offsets[&path.to_vec()]);
            assert_eq!(bytes_of(&b_file, &b_path, s.offset), original, "{}", String::from_utf8_lossy(path));
        }
        let dest = t.path().join("out");
        let r = crate::extract(&b_path, &dest, &crate::ExtractOptions::default(), &Silent).unwrap();
        assert!(r.is_clean());
        assert_eq!(std::fs::read(dest.join("d/a.txt")).unwrap(), std::fs::read(src.join("d/a.txt")).unwrap());
        assert_eq!(std::fs::read(dest.join("b.bin")).unwrap(), std::fs::read(src.join("b.bin")).unwrap());
    }

    #[test]
    fn copy_member_refuses_another_member() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("x"), b"x").unwrap();
        let a_path = t.path().join("a.xtar");
        crate::compress_to_path(&src, &a_path, &CompressOptions::default(), false, &Silent).unwrap();
        let a_file = File::open(&a_path).unwrap();
        let b_path = t.path().join("b.xtar");
        let b_file = File::create(&b_path).unwrap();
        let mut w = ArchiveWriter::new(&b_file, &b_path, b"/", &CompressOptions::default()).unwrap();
        w.open_dir(&dir_entry("")).unwrap();
        // Offset 0 is the header member, not the member of `y`.
        let err = w.copy_member(&file_entry("y"), &a_file, &a_path, 0).unwrap_err();
        assert!(matches!(err, Error::Damaged { .. }), "{err}");
    }

    #[test]
    fn extra_member_lands_before_the_manifest() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("a.xtar");
        let file = File::create(&path).unwrap();
        let mut w = ArchiveWriter::new(&file, &path, b"/r", &CompressOptions::default()).unwrap();
        w.open_dir(&dir_entry("")).unwrap();
        w.open_dir(&dir_entry("sub")).unwrap();
        let c = Compressed {
            method: Method::Stored,
            data: b"hi".to_vec(),
            crc: crc32fast::hash(b"hi"),
            sha256: [0; 32],
            size: 2,
        };
        w.add_compressed(&file_entry("sub/f"), &c).unwrap();
        w.add_extra(b".xtar-snapshot", b"record").unwrap();
        let written = w.finish().unwrap();
        assert_eq!(written.entries.len(), 3);
        let names = top_members(&path);
        let at = |n: &str| names.iter().position(|m| m == n).unwrap();
        assert_eq!(names[0], ".xtar-header");
        assert!(at(".xtar-index") < at("sub.xtar"));
        assert!(at("sub.xtar") < at(".xtar-snapshot"));
        assert_eq!(at(".xtar-snapshot") + 1, at(".xtar-manifest"));
        let mut a = tar::Archive::new(File::open(&path).unwrap());
        let mut data = String::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if &*e.path_bytes() == b".xtar-snapshot" {
                e.read_to_string(&mut data).unwrap();
            }
        }
        assert_eq!(data, "record");
    }

    #[test]
    fn out_of_order_calls_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("a.xtar");
        let file = File::create(&path).unwrap();
        let mut w = ArchiveWriter::new(&file, &path, b"/r", &CompressOptions::default()).unwrap();
        let c = Compressed { method: Method::Stored, data: Vec::new(), crc: 0, sha256: [0; 32], size: 0 };
        assert!(w.add_compressed(&file_entry("f"), &c).is_err(), "no directory open");
        assert!(w.open_dir(&dir_entry("sub")).is_err(), "root first");
        w.open_dir(&dir_entry("")).unwrap();
        assert!(w.add_compressed(&file_entry("other/f"), &c).is_err(), "not in the open directory");
        w.open_dir(&dir_entry("sub")).unwrap();
        w.close_dir().unwrap();
        let err = w.add_compressed(&file_entry("g"), &c).unwrap_err();
        assert!(matches!(err, Error::WriteOrder { .. }), "files after a subdirectory: {err}");
        assert!(w.add_extra(b"x.zip", b"").is_err(), "a name of the tree");
        assert!(w.add_extra(b".xtar-manifest", b"").is_err(), "a name of the format");
        let before = w.position();
        let err = w.add_file(&file_entry("h"), &t.path().join("missing"), &Silent);
        assert!(matches!(err, Err(Error::WriteOrder { .. })));
        w.finish().unwrap();
        assert!(before > 0);
    }

    #[test]
    fn finish_cost_bounds_what_finishing_adds() {
        let t = tempfile::tempdir().unwrap();
        for (files, deep) in [(0usize, false), (3, false), (400, true)] {
            let path = t.path().join(format!("a{files}.xtar"));
            let file = File::create(&path).unwrap();
            let mut w = ArchiveWriter::new(&file, &path, b"/a/rather/long/root", &CompressOptions::default()).unwrap();
            w.open_dir(&dir_entry("")).unwrap();
            if deep {
                w.open_dir(&dir_entry("d")).unwrap();
                w.open_dir(&dir_entry(&format!("d/{}", "x".repeat(150)))).unwrap();
            }
            let parent = if deep { format!("d/{}/", "x".repeat(150)) } else { String::new() };
            let c = Compressed {
                method: Method::Stored,
                data: b"x".to_vec(),
                crc: crc32fast::hash(b"x"),
                sha256: [1; 32],
                size: 1,
            };
            for i in 0..files {
                w.add_compressed(&file_entry(&format!("{parent}f{i:04}")), &c).unwrap();
            }
            let (at, bound) = (w.position(), w.finish_cost());
            let written = w.finish().unwrap();
            let added = written.summary.bytes_out - at;
            assert!(added <= bound, "{files} files: finishing added {added}, bound {bound}");
            // The tail guard alone is 64 KiB: the bound is not wildly more.
            assert!(bound <= added + 8192, "{files} files: bound {bound} for {added}");
        }
    }

    #[test]
    fn unreadable_file_leaves_no_trace() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("a.xtar");
        let file = File::create(&path).unwrap();
        let mut w = ArchiveWriter::new(&file, &path, b"/r", &CompressOptions::default()).unwrap();
        w.open_dir(&dir_entry("")).unwrap();
        let before = w.position();
        let err = w.add_file(&file_entry("h"), &t.path().join("missing"), &Silent).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        assert_eq!(w.position(), before);
        let written = w.finish().unwrap();
        assert_eq!(written.entries.len(), 1);
        assert!(!top_members(&path).iter().any(|n| n == "h.zip"));
    }
}
