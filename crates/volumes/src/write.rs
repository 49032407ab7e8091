//! Writing a set in one pass: the tree writer of `xtar` drives a
//! [`SetWriter`], which places each member in the volume open at the time
//! and opens the next volume when it is full. Every byte is written once;
//! the only thing patched afterwards is the set's table, for which every
//! volume reserves room (volumes.md §5).

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use manifest::{Entry, Kind};
use xtar::format::tar::BLOCK;
use xtar::format::zip::{EntryInfo, S_IFLNK, S_IFREG};
use xtar::format::{self, VOLUMES_NAME};
use xtar::{ArchiveWriter, CompressOptions, CompressSummary, Compressed, Observer, Stored, TreeSink};

use crate::plan::{self, Placement};
use crate::table::{volume_path, Place, Table};
use crate::{Error, Result};

/// How to cut a set.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// Largest size of a volume, in bytes.
    pub size: u64,
    /// Replace existing volumes of the same name.
    pub overwrite: bool,
}

/// What [`compress_volumes`] wrote.
#[derive(Debug, Clone, Default)]
pub struct VolumeSummary {
    /// The volumes, in order, with their sizes.
    pub volumes: Vec<(PathBuf, u64)>,
    /// Files cut into parts across volumes.
    pub split_files: u64,
    /// Counts of the whole set (`bytes_out` is the sum of the volumes).
    pub summary: CompressSummary,
}

/// Compresses `src` into the volume set `base` (`BASE.001.xtar`, …), in
/// one pass: each volume is written under a temporary name beside its
/// final one, and all are renamed when the set is complete (after the
/// set's table is written into the room each reserved). A run that fails
/// leaves no volume of the set behind, and so needs no more disk than the
/// finished volumes and the one being written.
pub fn compress_volumes(
    src: &Path,
    base: &Path,
    opts: &CompressOptions,
    vopts: &VolumeOptions,
    obs: &dyn Observer,
) -> Result<VolumeSummary> {
    let first = volume_path(base, 1);
    if !vopts.overwrite && first.symlink_metadata().is_ok() {
        return Err(xtar::Error::Exists { path: first }.into());
    }
    let mut opts = opts.clone();
    // Volumes of an earlier set of this name are never archived into it.
    let mut k = 1;
    while let Ok(m) = std::fs::symlink_metadata(volume_path(base, k)) {
        opts.skip_inodes.push((m.dev(), m.ino()));
        k += 1;
    }
    let (walked, walk_warnings) = xtar::walk_source(src, &opts, obs)?;
    let root = xtar::root_label(src, &opts);
    let (table_room, _) =
        plan::table_room(&walked, &root, vopts.size).map_err(|least| Error::TooSmall { size: vopts.size, least })?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| xtar::Error::Write { path: base.to_path_buf(), source: std::io::Error::other(e) })?;
    let mut set = SetWriter {
        base: base.to_path_buf(),
        opts,
        size: vopts.size,
        root,
        table_room,
        pool: Arc::new(pool),
        cur: None,
        done: Vec::new(),
        stack: Vec::new(),
        root_entry: None,
        table: Vec::new(),
        whole_in: HashMap::new(),
        summary: CompressSummary { warnings: walk_warnings, ..Default::default() },
        split_files: 0,
        failed: None,
    };
    let written = xtar::write_entries(&mut set, src, &walked, obs);
    if let Some(e) = set.failed.take() {
        return Err(e);
    }
    written?;
    set.finish(vopts.overwrite)
}

/// The volume being written.
struct Volume {
    k: u32,
    tmp: tempfile::NamedTempFile,
    w: ArchiveWriter,
    /// How many directories of the set's open stack this volume has open.
    depth: usize,
    /// Nothing but directories was added yet: a member that does not fit
    /// now never will.
    fresh: bool,
    /// Its root directory was opened.
    rooted: bool,
}

/// A volume written whole, waiting for the set's table (closed: a set of
/// many volumes holds no descriptor for each).
struct Done {
    tmp: tempfile::TempPath,
    /// Where the room for the table starts.
    table_at: u64,
    bytes: u64,
}

/// A file being cut into parts.
struct Cut {
    path: Vec<u8>,
    mtime: i64,
    /// Number of the part open now, from 1.
    part: u32,
    /// Bytes the open part may still take.
    left: u64,
    /// The volumes of its parts.
    vols: Vec<u32>,
    /// Volume and offset of the first part's data.
    start: (u32, u64),
}

impl Cut {
    fn new(path: &[u8], mtime: i64) -> Cut {
        Cut { path: path.to_vec(), mtime, part: 1, left: 0, vols: Vec::new(), start: (0, 0) }
    }
}

/// Where the bytes of a cut file come from: given where to write them,
/// writes the whole zip and returns its final local header when the first
/// bytes written were a provisional one.
type Fill<'a> = dyn FnMut(&mut dyn FnMut(&[u8]) -> xtar::Result<()>) -> xtar::Result<Option<Vec<u8>>> + 'a;

/// Places the members of a tree in volumes; see [`compress_volumes`].
struct SetWriter {
    base: PathBuf,
    opts: CompressOptions,
    size: u64,
    root: Vec<u8>,
    table_room: u64,
    pool: Arc<rayon::ThreadPool>,
    cur: Option<Volume>,
    done: Vec<Done>,
    /// The directories open in the tree, the root first.
    stack: Vec<Entry>,
    /// The root directory's entry: every volume opens it.
    root_entry: Option<Entry>,
    /// The set's table: every entry and where its content is.
    table: Vec<(Place, Entry)>,
    /// The volume that holds each file's member whole.
    whole_in: HashMap<Vec<u8>, u32>,
    summary: CompressSummary,
    split_files: u64,
    /// An error of the set itself, carried through the tree writer.
    failed: Option<Error>,
}

fn line_len(e: &Entry) -> u64 {
    let mut v = Vec::new();
    manifest::write_entry_line(&mut v, e);
    v.len() as u64
}

/// The bytes of a file member, whole: tar header, zip, padding.
fn member_len(path: &[u8], zip_len: u64) -> u64 {
    plan::header_cost(&format::file_member_name(path)) + zip_len.div_ceil(BLOCK as u64) * BLOCK as u64
}

impl SetWriter {
    /// Turns an error of the set into one the tree writer passes on: the
    /// original is kept and returned by [`compress_volumes`].
    fn carry(&mut self, e: Error) -> xtar::Error {
        match e {
            Error::Xtar(x) => x,
            other => {
                let carried = xtar::Error::Volumes { path: self.base.clone(), message: other.to_string() };
                self.failed = Some(other);
                carried
            }
        }
    }

    fn volume(&mut self) -> xtar::Result<&mut Volume> {
        if self.cur.is_none() {
            let k = self.done.len() as u32 + 1;
            let path = volume_path(&self.base, k);
            fsutil::remove_stale_temps(&path);
            let tmp = fsutil::temp_beside(&path)?;
            let w = ArchiveWriter::with_pool(tmp.as_file(), &path, &self.root, &self.opts, Arc::clone(&self.pool))?;
            self.cur = Some(Volume { k, tmp, w, depth: 0, fresh: true, rooted: false });
        }
        self.cur.as_mut().ok_or_else(|| xtar::Error::Volumes { path: self.base.clone(), message: "no volume".into() })
    }

    /// The volume open now, with every directory of the tree's open stack
    /// opened in it; a volume whose tree is closed (it ends with the
    /// first part of a cut file) is finished first.
    fn tree_volume(&mut self) -> xtar::Result<&mut Volume> {
        if self.cur.as_ref().is_some_and(|v| v.w.tree_closed()) {
            self.finish_volume()?;
        }
        let stack = std::mem::take(&mut self.stack);
        let v = self.volume();
        let r = v.and_then(|v| {
            while v.depth < stack.len() {
                v.w.open_dir(&stack[v.depth])?;
                v.depth += 1;
                v.rooted = true;
            }
            Ok(())
        });
        self.stack = stack;
        r?;
        self.volume()
    }

    /// Bytes left for members in the volume open now.
    fn room(&self) -> u64 {
        match &self.cur {
            Some(v) => {
                // A volume whose root is not open yet will open it (its
                // index and its lines) before it is finished.
                let root = match (&self.root_entry, v.rooted) {
                    (Some(r), false) => 3 * line_len(r) + 3 * BLOCK as u64,
                    _ => 0,
                };
                self.size.saturating_sub(
                    v.w.position() + v.w.finish_cost() + plan::table_cost(self.table_room) + plan::SLACK + root,
                )
            }
            None => 0,
        }
    }

    /// Writes the table's room and the end of the volume open now.
    fn finish_volume(&mut self) -> xtar::Result<()> {
        let Some(mut v) = self.cur.take() else { return Ok(()) };
        if !v.rooted {
            // A volume that holds only the end of a cut file still has
            // the root directory, as every archive does.
            if let Some(root) = &self.root_entry {
                v.w.open_dir(root)?;
            }
        }
        let root_mtime = self.root_entry.as_ref().map_or(0, |r| r.mtime.sec);
        let table_at = v.w.begin_extra(VOLUMES_NAME, root_mtime)?;
        let fill = vec![b'\n'; 64 << 10];
        let mut left = self.table_room;
        while left > 0 {
            let n = left.min(fill.len() as u64) as usize;
            v.w.extra_data(&fill[..n])?;
            left -= n as u64;
        }
        v.w.end_extra()?;
        let written = v.w.finish()?;
        let bytes = written.summary.bytes_out;
        if bytes > self.size {
            let e = Error::Overfull { volume: v.k, bytes, size: self.size };
            return Err(self.carry(e));
        }
        self.done.push(Done { tmp: v.tmp.into_temp_path(), table_at, bytes });
        Ok(())
    }

    /// Finds room for a member of `len` bytes: in the volume open now, in
    /// the next one, or cut starting here.
    fn find_room(&mut self, path: &[u8], len: u64, cuttable: bool) -> xtar::Result<Placement> {
        loop {
            self.tree_volume()?;
            let fresh = self.cur.as_ref().is_some_and(|v| v.fresh);
            match plan::place(self.room(), len, plan::part_overhead(path), cuttable) {
                Placement::NextVolume if fresh => {
                    let e = Error::EntryTooLarge { path: path.to_vec(), size: self.size };
                    return Err(self.carry(e));
                }
                Placement::NextVolume => self.finish_volume()?,
                p => return Ok(p),
            }
        }
    }

    fn added(&mut self) {
        if let Some(v) = self.cur.as_mut() {
            v.fresh = false;
        }
    }

    /// Starts the next part of a cut file in the volume open now (at its
    /// end, or, in a new volume, directly after its header).
    fn begin_part(&mut self, cut: &mut Cut) -> xtar::Result<()> {
        let name = format::part_name(&cut.path, cut.part);
        let mtime = cut.mtime;
        let overhead = plan::part_overhead(&cut.path);
        if self.volume()?.w.tree_closed() && cut.part == 1 {
            // The volume ends with another file's parts: start anew.
            self.finish_volume()?;
        }
        self.volume()?;
        let room = self.room();
        let v = self.volume()?;
        let at = v.w.begin_extra(&name, mtime)?;
        v.fresh = false;
        cut.vols.push(v.k);
        if cut.part == 1 {
            cut.start = (v.k, at);
        }
        cut.left = room.saturating_sub(overhead).max(1);
        Ok(())
    }

    /// Writes bytes of a cut file's zip, opening new parts in new volumes
    /// as each fills.
    fn part_data(&mut self, cut: &mut Cut, mut data: &[u8]) -> xtar::Result<()> {
        while !data.is_empty() {
            if cut.left == 0 {
                self.volume()?.w.end_extra()?;
                self.finish_volume()?;
                cut.part += 1;
                self.begin_part(cut)?;
            }
            let n = (cut.left.min(data.len() as u64)) as usize;
            self.volume()?.w.extra_data(&data[..n])?;
            cut.left -= n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// Cuts a file member, its first part filling the volume open now:
    /// its zip bytes come from `fill`, which writes them through the
    /// closure it is given. Returns the table's place.
    fn cut(&mut self, path: &[u8], mtime: i64, fill: &mut Fill<'_>) -> xtar::Result<Place> {
        let mut cut = Cut::new(path, mtime);
        self.begin_part(&mut cut)?;
        let local = {
            let me = &mut *self;
            let c = &mut cut;
            fill(&mut |b| me.part_data(c, b))
        };
        match local {
            Ok(local) => self.end_cut(cut, local.as_deref()),
            Err(e) => {
                self.abandon_cut();
                Err(e)
            }
        }
    }

    /// Ends a cut file: its zip's local header, final now, goes to the
    /// start of part 1 (in the part still open, or in a finished volume),
    /// and the last part is closed. Returns the table's place.
    fn end_cut(&mut self, cut: Cut, local: Option<&[u8]>) -> xtar::Result<Place> {
        if let Some(local) = local {
            let (k, at) = cut.start;
            match self.cur.as_mut() {
                Some(v) if v.k == k => v.w.patch_extra(at, local)?,
                _ => patch_path(&self.done[k as usize - 1].tmp, at, local)?,
            }
        }
        self.volume()?.w.end_extra()?;
        self.split_files += 1;
        Ok(Place::Parts(cut.vols))
    }

    /// A file that could not be read while it was cut: what was written of
    /// it stays, as parts no table names; the open part is ended so the
    /// volume stays whole.
    fn abandon_cut(&mut self) {
        if let Some(v) = self.cur.as_mut() {
            let _ = v.w.end_extra();
        }
    }

    /// Writes out the set: the table into every volume, then every volume
    /// under its name.
    fn finish(mut self, overwrite: bool) -> Result<VolumeSummary> {
        self.finish_volume()?;
        let count = self.done.len() as u32;
        self.table.sort_by(|a, b| manifest::cmp_paths(&a.1.path, &b.1.path));
        let mut table = Table { set_id: String::new(), volume: 1, count, root: self.root.clone(), entries: self.table };
        let body = table.body();
        table.set_id = Table::set_id_of(&body);
        let names: Vec<PathBuf> = (1..=count).map(|k| volume_path(&self.base, k)).collect();
        if !overwrite {
            if let Some(p) = names.iter().find(|p| p.symlink_metadata().is_ok()) {
                return Err(xtar::Error::Exists { path: p.clone() }.into());
            }
        }
        for (i, d) in self.done.iter().enumerate() {
            let text = table.to_text(&body, i as u32 + 1);
            if text.len() as u64 > self.table_room {
                return Err(Error::Set {
                    path: names[i].clone(),
                    message: format!("the set's table ({} bytes) outgrew its room ({})", text.len(), self.table_room),
                });
            }
            patch_path(&d.tmp, d.table_at, &text)?;
        }
        let mut out =
            VolumeSummary { volumes: Vec::new(), split_files: self.split_files, summary: self.summary.clone() };
        let mut renamed: Vec<PathBuf> = Vec::new();
        for (d, name) in self.done.into_iter().zip(&names) {
            if let Err(e) = fsutil::persist_path(d.tmp, name, overwrite) {
                // No half set: what was renamed goes again.
                for p in &renamed {
                    let _ = std::fs::remove_file(p);
                }
                return Err(xtar::Error::from(e).into());
            }
            renamed.push(name.clone());
            out.volumes.push((name.clone(), d.bytes));
            out.summary.bytes_out += d.bytes;
        }
        // Volumes left from an earlier, larger set of the same name would
        // be taken for part of this one.
        let mut k = count + 1;
        while overwrite && volume_path(&self.base, k).exists() {
            let _ = std::fs::remove_file(volume_path(&self.base, k));
            k += 1;
        }
        Ok(out)
    }
}

/// Overwrites bytes of a finished volume, kept by its path.
fn patch_path(path: &Path, at: u64, data: &[u8]) -> xtar::Result<()> {
    let err = |source| xtar::Error::Write { path: path.to_path_buf(), source };
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(err)?;
    f.write_all_at(data, at).map_err(err)
}

impl TreeSink for SetWriter {
    fn open_dir(&mut self, entry: &Entry) -> xtar::Result<()> {
        if entry.path.is_empty() {
            self.root_entry = Some(entry.clone());
        }
        let cost = plan::header_cost(&format::container_name(&entry.path))
            + plan::header_cost(&format::index_name(&entry.path))
            + 3 * line_len(entry)
            + 3 * BLOCK as u64;
        loop {
            self.tree_volume()?;
            let fresh = self.cur.as_ref().is_some_and(|v| v.fresh);
            if cost <= self.room() {
                break;
            }
            if fresh {
                let e = Error::EntryTooLarge { path: entry.path.clone(), size: self.size };
                return Err(self.carry(e));
            }
            self.finish_volume()?;
        }
        let v = self.tree_volume()?;
        v.w.open_dir(entry)?;
        v.depth += 1;
        v.rooted = true;
        let mut e = entry.clone();
        e.size = 0;
        e.sha256 = None;
        self.stack.push(e.clone());
        self.table.push((Place::None, e));
        self.summary.dirs += 1;
        Ok(())
    }

    fn close_dir(&mut self) -> xtar::Result<()> {
        let depth = self.stack.len();
        self.stack.pop();
        if let Some(v) = self.cur.as_mut() {
            if v.depth == depth && !v.w.tree_closed() {
                v.w.close_dir()?;
                v.depth -= 1;
            }
        }
        Ok(())
    }

    fn add_compressed(&mut self, entry: &Entry, data: &Compressed) -> xtar::Result<Stored> {
        let mut stored = entry.clone();
        stored.kind = Kind::File;
        stored.size = data.size;
        stored.sha256 = Some(data.sha256);
        let info = data.entry_info(&entry.path, entry.mode, entry.mtime.sec);
        let len = member_len(&entry.path, info.total_len()) + 2 * line_len(&stored);
        match self.find_room(&entry.path, len, true)? {
            Placement::Cut { .. } => {
                let (local, trailer) = (info.local_header(), info.trailer());
                let place = self.cut(&entry.path, entry.mtime.sec, &mut |emit| {
                    emit(&local)?;
                    emit(&data.data)?;
                    emit(&trailer)?;
                    Ok(None)
                })?;
                self.booked(stored.clone(), place);
                Ok(Stored { entry: stored, offset: 0, changed: None })
            }
            _ => {
                let v = self.tree_volume()?;
                let s = v.w.add_compressed(entry, data)?;
                let k = v.k;
                self.added();
                self.booked(s.entry.clone(), Place::Whole(k));
                Ok(s)
            }
        }
    }

    fn add_file(&mut self, entry: &Entry, disk: &Path, obs: &dyn Observer) -> xtar::Result<Stored> {
        // The member's size is known only once it is written: plan with a
        // bound (deflate never grows data by more than 0.1 %, stored
        // data not at all).
        let bound = entry.size + entry.size / 1000 + 1024;
        let info = EntryInfo {
            name: entry.path.clone(),
            method: format::zip::Method::Deflated,
            crc: 0,
            csize: bound,
            usize: entry.size,
            mtime: entry.mtime.sec,
            unix_mode: S_IFREG | entry.mode,
            zip64: EntryInfo::needs_zip64(entry.size.max(bound)),
        };
        let mut line = entry.clone();
        line.sha256 = Some([0; 32]);
        let len = member_len(&entry.path, info.total_len()) + 2 * line_len(&line) + 64;
        match self.find_room(&entry.path, len, true)? {
            Placement::Cut { .. } => self.stream_large(entry, disk, obs),
            _ => {
                let v = self.tree_volume()?;
                let s = v.w.add_file(entry, disk, obs)?;
                let k = v.k;
                self.added();
                self.booked(s.entry.clone(), Place::Whole(k));
                Ok(s)
            }
        }
    }

    fn add_symlink(&mut self, entry: &Entry) -> xtar::Result<()> {
        let target = entry.target.as_deref().unwrap_or_default();
        let info = EntryInfo {
            name: entry.path.clone(),
            method: format::zip::Method::Stored,
            crc: 0,
            csize: target.len() as u64,
            usize: target.len() as u64,
            mtime: entry.mtime.sec,
            unix_mode: S_IFLNK | 0o777,
            zip64: false,
        };
        let len = member_len(&entry.path, info.total_len()) + 2 * line_len(entry);
        self.find_room(&entry.path, len, false)?;
        let v = self.tree_volume()?;
        v.w.add_symlink(entry)?;
        let k = v.k;
        self.added();
        self.summary.links += 1;
        self.table.push((Place::Whole(k), entry.clone()));
        Ok(())
    }

    fn add_record(&mut self, entry: &Entry) -> xtar::Result<()> {
        self.table.push((Place::None, entry.clone()));
        if entry.kind == Kind::HardLink {
            self.summary.links += 1;
            // In a volume only beside the first name's data (volumes.md §3).
            let head = entry.target.as_deref().and_then(|t| self.whole_in.get(t)).copied();
            if head.is_none()
                || head != self.cur.as_ref().map(|v| v.k)
                || self.cur.as_ref().is_some_and(|v| v.w.tree_closed())
            {
                return Ok(());
            }
        }
        let len = 2 * line_len(entry);
        self.find_room(&entry.path, len, false)?;
        let v = self.tree_volume()?;
        v.w.add_record(entry)?;
        self.added();
        Ok(())
    }

    fn pool(&self) -> Arc<rayon::ThreadPool> {
        Arc::clone(&self.pool)
    }

    fn file_options(&self) -> (u32, bool) {
        (self.opts.level, self.opts.walk.follow_links)
    }

    fn count_warnings(&mut self, n: u64) {
        self.summary.warnings += n;
    }

    fn path(&self) -> &Path {
        &self.base
    }
}

impl SetWriter {
    /// Stores a large file whose member may not fit in the room left: its
    /// zip is spilled beside the volumes while it fits in that room (so
    /// the volume and the spill together never pass the volume size),
    /// then added whole; if it outgrows the room, the spill becomes the
    /// first part and the rest goes straight into parts on the next
    /// volumes.
    fn stream_large(&mut self, entry: &Entry, disk: &Path, obs: &dyn Observer) -> xtar::Result<Stored> {
        let mut line = entry.clone();
        line.sha256 = Some([0; 32]);
        let whole_extra =
            plan::header_cost(&format::file_member_name(&entry.path)) + BLOCK as u64 + 2 * line_len(&line) + 64;
        let limit = self.room().saturating_sub(whole_extra.max(plan::part_overhead(&entry.path)));
        let spill_path = volume_path(&self.base, self.done.len() as u32 + 1);
        // Named like the volume's own temporary file, so that a killed
        // run's spill is swept with it.
        let spill = fsutil::temp_beside(&spill_path)?;
        let spill_err = |source| xtar::Error::Write { path: spill.path().to_path_buf(), source };
        let (level, follow) = (self.opts.level, self.opts.walk.follow_links);
        let pool = Arc::clone(&self.pool);
        let mut spilled = 0u64;
        let mut cut: Option<Cut> = None;
        let streamed = {
            let me = &mut *self;
            let (spilled, cut) = (&mut spilled, &mut cut);
            let spill = &spill;
            xtar::stream_zip(disk, &entry.path, level, follow, &pool, obs, &mut |b| {
                if cut.is_none() && *spilled + b.len() as u64 <= limit {
                    spill.as_file().write_all_at(b, *spilled).map_err(spill_err)?;
                    *spilled += b.len() as u64;
                    return Ok(());
                }
                if cut.is_none() {
                    // Too large for this volume: the spill is the start
                    // of the first part.
                    let mut c = Cut::new(&entry.path, entry.mtime.sec);
                    me.begin_part(&mut c)?;
                    let mut buf = vec![0u8; 1 << 20];
                    let mut done = 0u64;
                    while done < *spilled {
                        let n = (*spilled - done).min(buf.len() as u64) as usize;
                        spill.as_file().read_exact_at(&mut buf[..n], done).map_err(spill_err)?;
                        me.part_data(&mut c, &buf[..n])?;
                        done += n as u64;
                    }
                    *cut = Some(c);
                }
                match cut.as_mut() {
                    Some(c) => me.part_data(c, b),
                    None => Ok(()),
                }
            })
        };
        let s = match streamed {
            Ok(s) => s,
            Err(e) => {
                if cut.is_some() {
                    self.abandon_cut();
                }
                return Err(e);
            }
        };
        let mut e = entry.clone();
        e.kind = Kind::File;
        e.mode = s.mode;
        e.mtime = s.mtime;
        e.size = s.size;
        e.sha256 = Some(s.sha256);
        let changed = s.changed.then(|| disk.to_path_buf());
        match cut {
            None => {
                spill.as_file().write_all_at(&s.local_header, 0).map_err(spill_err)?;
                let v = self.tree_volume()?;
                let stored = v.w.add_zip_copy(&e, spill.as_file(), spill.path(), 0, spilled)?;
                let k = v.k;
                self.added();
                self.booked(stored.entry.clone(), Place::Whole(k));
                Ok(Stored { changed, ..stored })
            }
            Some(c) => {
                let place = self.end_cut(c, Some(&s.local_header))?;
                self.booked(e.clone(), place);
                Ok(Stored { entry: e, offset: 0, changed })
            }
        }
    }

    /// Books a stored file in the table and the counts.
    fn booked(&mut self, e: Entry, place: Place) {
        if let Place::Whole(k) = place {
            self.whole_in.insert(e.path.clone(), k);
        }
        self.summary.files += 1;
        self.summary.bytes_in += e.size;
        self.table.push((place, e));
    }
}
