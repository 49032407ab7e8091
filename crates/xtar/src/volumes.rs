//! Volume sets: one tree cut into archives of at most a given size
//! (`NAME.001.xtar`, `NAME.002.xtar`, …), each a complete `.xtar` of its
//! own, with the table of the whole set (`.xtar-volumes`) in every volume.
//! A file member that does not fit in the room left in a volume is cut
//! into parts (`PATH.zip.K.xtar-part`) on consecutive volumes: that is the
//! only dependency between volumes. See `docs/format/volumes.md`.
//!
//! Writing stages the whole archive first (in a temporary file beside the
//! volumes), plans the volumes from the exact sizes of its members, then
//! writes each volume by copying the members it holds: every file is read
//! and compressed once.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use manifest::{Entry, Kind};
use sha2::Digest;

use crate::extract::{ExtractOptions, ExtractReport, Restorer};
use crate::format::tar::{self as tarfmt, Block, BLOCK};
use crate::format::{self, MemberName, TAIL_GUARD, VOLUMES_NAME};
use crate::read::{Item, Scanner};
use crate::{ArchiveWriter, CompressOptions, CompressSummary, Error, Observer, Result};

/// First line of the table, before the version.
pub const VOLUMES_MAGIC: &str = "#xtar-volumes";
/// Version of the table written.
pub const VOLUMES_VERSION: u32 = 1;
/// Parts smaller than this are not cut: the file starts the next volume.
const MIN_PART: u64 = 64 << 10;

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

/// The path of volume `k` (from 1) of the set `base`: `BASE.NNN.xtar`.
pub fn volume_path(base: &Path, k: u32) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(format!(".{k:03}.xtar"));
    PathBuf::from(s)
}

/// Splits a volume's path into the set's base and the volume number, when
/// it is named like one (`BASE.NNN.xtar`, three digits or more).
pub fn volume_base(path: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    let rest = b.strip_suffix(b".xtar")?;
    let dot = rest.iter().rposition(|&c| c == b'.')?;
    let digits = &rest[dot + 1..];
    if digits.len() < 3 || !digits.iter().all(u8::is_ascii_digit) || dot == 0 {
        return None;
    }
    let k = std::str::from_utf8(digits).ok()?.parse::<u32>().ok().filter(|&k| k > 0)?;
    Some((PathBuf::from(std::ffi::OsStr::from_bytes(&rest[..dot])), k))
}

/// Where an entry's content is in a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// No member: directories, hard links (their first name holds the
    /// data), fifos, sockets, devices.
    None,
    /// The whole member is in this volume.
    Whole(u32),
    /// Cut into parts: part `i + 1` is in the `i`-th volume listed.
    Parts(Vec<u32>),
}

impl Place {
    /// The volumes it needs.
    pub fn volumes(&self) -> &[u32] {
        match self {
            Place::None => &[],
            Place::Whole(v) => std::slice::from_ref(v),
            Place::Parts(v) => v,
        }
    }
}

/// The table of a set: every entry of the tree and where its content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Identifies the set (the same in all its volumes).
    pub set_id: String,
    /// The volume this copy of the table was read from.
    pub volume: u32,
    /// Number of volumes in the set.
    pub count: u32,
    /// The root the set was made from.
    pub root: Vec<u8>,
    /// Every entry, in canonical order, with its place.
    pub entries: Vec<(Place, Entry)>,
}

impl Table {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (place, e) in &self.entries {
            match place {
                Place::None => out.push(b'-'),
                Place::Whole(v) => out.extend_from_slice(v.to_string().as_bytes()),
                Place::Parts(vs) => {
                    // Always with a `+`, so that one part is not read as a
                    // whole member.
                    for v in vs {
                        out.extend_from_slice(v.to_string().as_bytes());
                        out.push(b'+');
                    }
                }
            }
            out.push(b'\t');
            manifest::write_entry_line(&mut out, e);
        }
        out
    }

    /// The table as stored in volume `volume` (the set id is computed).
    fn to_text(&self, body: &[u8], volume: u32) -> Vec<u8> {
        let mut out = format!(
            "{VOLUMES_MAGIC} {VOLUMES_VERSION}\n#set {}\n#volume {volume}\n#count {}\n#root ",
            self.set_id, self.count
        )
        .into_bytes();
        manifest::escape_path(&mut out, &self.root);
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    }

    /// Parses a table; `path` names it in errors.
    pub fn parse(text: &[u8], path: &Path) -> Result<Table> {
        let bad = |line: usize, message: String| Error::Volumes {
            path: path.to_path_buf(),
            message: format!("table line {line}: {message}"),
        };
        let mut t = Table { set_id: String::new(), volume: 0, count: 0, root: Vec::new(), entries: Vec::new() };
        let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
        let first = lines.next().map(|(_, l)| l).unwrap_or_default();
        if first != format!("{VOLUMES_MAGIC} {VOLUMES_VERSION}").as_bytes() {
            return Err(bad(1, format!("expected `{VOLUMES_MAGIC} {VOLUMES_VERSION}`, found `{}`", lossy(first))));
        }
        for (i, line) in lines {
            let n = i + 1;
            if line.is_empty() {
                continue;
            }
            if let Some(h) = line.strip_prefix(b"#") {
                let (key, value) = match h.iter().position(|&b| b == b' ') {
                    Some(p) => (&h[..p], &h[p + 1..]),
                    None => (h, &b""[..]),
                };
                let num = || std::str::from_utf8(value).ok().and_then(|v| v.parse::<u32>().ok());
                match key {
                    b"set" => t.set_id = lossy(value),
                    b"volume" => t.volume = num().ok_or_else(|| bad(n, "bad volume number".into()))?,
                    b"count" => t.count = num().ok_or_else(|| bad(n, "bad volume count".into()))?,
                    b"root" => t.root = manifest::unescape_path(value).map_err(|m| bad(n, m))?,
                    _ => {}
                }
                continue;
            }
            let tab = line.iter().position(|&b| b == b'\t').ok_or_else(|| bad(n, "no place column".into()))?;
            let col = std::str::from_utf8(&line[..tab]).map_err(|_| bad(n, "bad place column".into()))?;
            let vol = |s: &str| s.parse::<u32>().ok().filter(|&v| v >= 1 && v <= t.count);
            let place = if col == "-" {
                Place::None
            } else if col.contains('+') {
                let vs: Option<Vec<u32>> = col.split('+').filter(|v| !v.is_empty()).map(vol).collect();
                Place::Parts(vs.ok_or_else(|| bad(n, format!("bad volumes `{col}`")))?)
            } else {
                Place::Whole(vol(col).ok_or_else(|| bad(n, format!("bad volume `{col}`")))?)
            };
            let e = manifest::parse_entry_line(&line[tab + 1..], n).map_err(|m| bad(n, m.to_string()))?;
            t.entries.push((place, e));
        }
        if t.count == 0 || t.volume == 0 || t.volume > t.count || t.set_id.is_empty() {
            return Err(bad(1, "the header lacks #set, #volume or #count".into()));
        }
        Ok(t)
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A member of the staged archive.
struct Staged {
    /// First header block, whole length (headers, data, padding).
    at: u64,
    len: u64,
    /// Its data (the zip).
    data_at: u64,
    data_len: u64,
}

/// One volume being planned.
#[derive(Default)]
struct Plan {
    /// Indexes into the walk entries (the root is added when writing).
    entries: Vec<usize>,
    parts: Vec<PartCopy>,
    dirs: HashSet<Vec<u8>>,
    used: u64,
}

/// Bytes the tar header of a member named `name` takes (with its
/// long-name record, if it needs one): exactly what the writer writes.
fn header_cost(name: &[u8]) -> u64 {
    let mut v = Vec::new();
    tarfmt::write_member_header(&mut v, name, 0, 0, 0o644);
    v.len() as u64
}

/// Compresses `src` into the volume set `base` (`BASE.001.xtar`, …).
pub fn compress_volumes(
    src: &Path,
    base: &Path,
    opts: &CompressOptions,
    vopts: &VolumeOptions,
    obs: &dyn Observer,
) -> Result<VolumeSummary> {
    let first = volume_path(base, 1);
    if !vopts.overwrite && first.symlink_metadata().is_ok() {
        return Err(Error::Exists { path: first });
    }
    let dir = match base.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let werr = |source| Error::Write { path: dir.clone(), source };
    // 1. Stage the whole archive.
    let stage =
        tempfile::Builder::new().prefix(".xtar-volumes-stage-").suffix(".partial").tempfile_in(&dir).map_err(werr)?;
    let stage_path = stage.path().to_path_buf();
    let mut opts = opts.clone();
    if let Ok(m) = stage.as_file().metadata() {
        opts.skip_inodes.push((m.dev(), m.ino()));
    }
    let (walked, walk_warnings) = crate::walk_source(src, &opts, obs)?;
    let root_label = crate::root_label(src, &opts);
    let staged = {
        let mut w = ArchiveWriter::new(stage.as_file(), &stage_path, &root_label, &opts)?;
        crate::write_entries(&mut w, src, &walked, obs)?;
        w.finish()?
    };
    let mut summary = staged.summary.clone();
    summary.warnings += walk_warnings;
    let sf = stage.as_file();
    let by_path: HashMap<&[u8], &Entry> = staged.entries.iter().map(|e| (&e.path[..], e)).collect();
    let mut members: HashMap<Vec<u8>, Staged> = HashMap::new();
    for (path, &at) in &staged.offsets {
        if by_path.get(&path[..]).is_some_and(|e| e.kind == Kind::File) {
            let (_, size, data_at) = crate::read::member_at(sf, &stage_path, at)?;
            let len = data_at - at + size + tarfmt::padding(size) as u64;
            members.insert(path.clone(), Staged { at, len, data_at, data_len: size });
        }
    }

    // 2. Plan, with room for a table as large as the last plan's.
    let line_len = |e: &Entry| {
        let mut v = Vec::new();
        manifest::write_entry_line(&mut v, e);
        v.len() as u64
    };
    let mut table_room = 0u64;
    let (plans, table) = loop {
        let (plans, places) = plan(&walked, &by_path, &members, vopts.size, table_room, &line_len, &root_label)?;
        let mut table = Table {
            set_id: String::new(),
            volume: 1,
            count: plans.len() as u32,
            root: root_label.clone(),
            entries: staged
                .entries
                .iter()
                .map(|e| (places.get(&e.path).cloned().unwrap_or(Place::None), e.clone()))
                .collect(),
        };
        let body = table.body();
        table.set_id = hex(&sha2::Sha256::digest(&body)[..16]);
        let need = table.to_text(&body, plans.len() as u32).len() as u64 + 64;
        if need <= table_room {
            break (plans, (table, body));
        }
        table_room = need + need / 64;
    };
    let (mut table, body) = table;

    // 3. Write the volumes, copying the staged members.
    let stage_src = StagedArchive { file: sf, path: &stage_path, src, by_path: &by_path, members: &members };
    let count = plans.len() as u32;
    if !vopts.overwrite {
        if let Some(p) = (1..=count).map(|k| volume_path(base, k)).find(|p| p.symlink_metadata().is_ok()) {
            return Err(Error::Exists { path: p });
        }
    }
    let split_files = table.entries.iter().filter(|(p, _)| matches!(p, Place::Parts(_))).count() as u64;
    let mut out = VolumeSummary { split_files, summary, volumes: Vec::new() };
    let vol_opts = CompressOptions { root_label: Some(root_label.clone()), ..opts.clone() };
    let mut bytes = 0;
    for (i, p) in plans.into_iter().enumerate() {
        let k = i as u32 + 1;
        table.volume = k;
        let text = table.to_text(&body, k);
        let entries: Vec<walk::Entry> =
            std::iter::once(0).chain(p.entries.iter().copied()).map(|i| walked[i].clone()).collect();
        let path = volume_path(base, k);
        let written = crate::write_new_file(&path, vopts.overwrite, |file, out_path| {
            let mut w = ArchiveWriter::new(file, out_path, &root_label, &vol_opts)?;
            stage_src.write_volume(&mut w, &entries, &p.parts)?;
            w.add_extra(VOLUMES_NAME, &text)?;
            let w = w.finish()?;
            if w.summary.bytes_out > vopts.size {
                return Err(Error::Volumes {
                    path: out_path.to_path_buf(),
                    message: format!(
                        "volume {k} came to {} bytes, more than the volume size {} (planned {})",
                        w.summary.bytes_out, vopts.size, p.used
                    ),
                });
            }
            Ok(w)
        })?;
        bytes += written.summary.bytes_out;
        out.volumes.push((path, written.summary.bytes_out));
    }
    // Volumes left from an earlier, larger set of the same name would be
    // taken for part of this one.
    let mut k = count + 1;
    while vopts.overwrite && volume_path(base, k).exists() {
        let _ = std::fs::remove_file(volume_path(base, k));
        k += 1;
    }
    out.summary.bytes_out = bytes;
    drop(stage);
    Ok(out)
}

/// A part of a file member, copied from the staged archive into a member
/// of its own (`PATH.zip.K.xtar-part`) before the manifest.
#[derive(Debug, Clone)]
struct PartCopy {
    /// The file's path.
    path: Vec<u8>,
    /// Part number, from 1.
    k: u32,
    /// Offset in the staged archive of the first byte of the part.
    from: u64,
    /// Bytes in the part.
    len: u64,
    /// Modification time for the tar header.
    mtime: i64,
}

/// The staged archive of the whole tree, whose members the volumes copy.
struct StagedArchive<'a> {
    file: &'a File,
    path: &'a Path,
    /// The tree archived.
    src: &'a Path,
    /// Its manifest entries.
    by_path: &'a HashMap<&'a [u8], &'a Entry>,
    /// Its file members.
    members: &'a HashMap<Vec<u8>, Staged>,
}

impl StagedArchive<'_> {
    /// Writes the tree of one volume (`entries`, the root first, in walk
    /// order) and its parts into `w`, copying the staged members. A
    /// further name of a file whose first name is in another volume is
    /// stored as a file of its own, read again from the source.
    fn write_volume(&self, w: &mut ArchiveWriter<'_>, entries: &[walk::Entry], parts: &[PartCopy]) -> Result<()> {
        let steps = crate::plan(entries.iter().map(|e| (e.path.as_slice(), e.kind == walk::Kind::Dir)));
        let links = crate::writer::HardLinks::find(entries, &steps);
        let mut heads: HashMap<usize, Entry> = HashMap::new();
        for step in steps {
            let i = match step {
                crate::Step::Open(i) => {
                    w.open_dir(&Entry::from_walk(&entries[i]))?;
                    continue;
                }
                crate::Step::Close => {
                    w.close_dir()?;
                    continue;
                }
                crate::Step::Add(i) => i,
            };
            let e = &entries[i];
            let stored = match e.kind {
                walk::Kind::Symlink => {
                    w.add_symlink(&Entry::from_walk(e))?;
                    continue;
                }
                walk::Kind::File => {
                    if let Some(head) = links.later.get(&i).and_then(|f| heads.get(f)) {
                        let mut le = head.clone();
                        le.path = e.path.clone();
                        le.kind = Kind::HardLink;
                        le.target = Some(entries[links.later[&i]].path.clone());
                        w.add_record(&le)?;
                        continue;
                    }
                    let staged = self.by_path.get(&e.path[..]).filter(|s| s.kind == Kind::File);
                    match (staged, self.members.get(&e.path)) {
                        (Some(entry), Some(m)) => w.copy_member(entry, self.file, self.path, m.at)?,
                        _ => crate::writer::store_file(w, &Entry::from_walk(e), &walk::join(self.src, &e.path))?,
                    }
                }
                walk::Kind::Dir => continue,
                _ => {
                    w.add_record(&Entry::from_walk(e))?;
                    continue;
                }
            };
            if links.heads.contains(&i) {
                heads.insert(i, stored.entry);
            }
        }
        for p in parts {
            w.add_extra_copy(&format::part_name(&p.path, p.k), p.mtime, self.file, self.path, p.from, p.len)?;
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where each entry's content goes, by path.
type Places = HashMap<Vec<u8>, Place>;

/// Assigns the entries to volumes of at most `size` bytes, in walk order.
#[allow(clippy::too_many_arguments)]
fn plan(
    walked: &[walk::Entry],
    by_path: &HashMap<&[u8], &Entry>,
    members: &HashMap<Vec<u8>, Staged>,
    size: u64,
    table_room: u64,
    line_len: &dyn Fn(&Entry) -> u64,
    root: &[u8],
) -> Result<(Vec<Plan>, Places)> {
    // What every volume holds besides its entries: the header, the root's
    // container lines and index, the table, the manifest's header, the
    // tail guard (which also covers the manifest's padding and the end
    // blocks) and one block of slack.
    let root_line = by_path.get(&b""[..]).map_or(0, |e| line_len(e));
    let fixed = 2 * BLOCK as u64
        + (2 * BLOCK as u64 + 64 + 4 * root.len() as u64 + 2 * root_line)
        + (2 * BLOCK as u64 + table_room)
        + (2 * BLOCK as u64 + 64 + 4 * root.len() as u64)
        + TAIL_GUARD
        + BLOCK as u64;
    if fixed + MIN_PART > size {
        return Err(Error::Volumes {
            path: PathBuf::from(lossy(root)),
            message: format!(
                "a volume of {size} bytes is too small: the table of the set and the archive's own metadata take {fixed} bytes of each volume"
            ),
        });
    }
    let mut plans: Vec<Plan> = Vec::new();
    let mut places: HashMap<Vec<u8>, Place> = HashMap::new();
    let mut cur = Plan { used: fixed, ..Plan::default() };
    // Cost of the directories above `path` that the volume lacks.
    let dir_cost = |p: &[u8]| -> u64 {
        let e = by_path.get(p).map_or(0, |e| line_len(e));
        // Container header, index header, the index's first lines and
        // padding, and the directory's line in the index and the manifest.
        let mut first = Vec::new();
        manifest::escape_path(&mut first, p);
        header_cost(&format::container_name(p))
            + header_cost(&format::index_name(p))
            + 32
            + first.len() as u64
            + BLOCK as u64
            + 2 * e
    };
    let missing_dirs = |plan: &Plan, path: &[u8]| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut p = manifest::parent_of(path);
        while !p.is_empty() && !plan.dirs.contains(p) {
            out.push(p.to_vec());
            p = manifest::parent_of(p);
        }
        out
    };
    let dir_index: HashMap<&[u8], usize> =
        walked.iter().enumerate().filter(|(_, w)| w.kind == walk::Kind::Dir).map(|(i, w)| (&w.path[..], i)).collect();
    let add_dirs = |plan: &mut Plan, dirs: Vec<Vec<u8>>| {
        for d in dirs {
            plan.used += dir_cost(&d);
            if let Some(&i) = dir_index.get(&d[..]) {
                plan.entries.push(i);
            }
            plan.dirs.insert(d);
        }
    };
    // Where each file's data is whole, for hard links.
    let mut whole_in: HashMap<&[u8], usize> = HashMap::new();
    for (i, w) in walked.iter().enumerate().skip(1) {
        let Some(e) = by_path.get(&w.path[..]) else { continue };
        let lines = 2 * line_len(e);
        let above = missing_dirs(&cur, &w.path);
        let above_cost: u64 = above.iter().map(|d| dir_cost(d)).sum();
        let cost = match (e.kind, members.get(&w.path)) {
            (Kind::Dir, _) => dir_cost(&w.path),
            (Kind::File, Some(m)) => m.len + lines,
            (Kind::Symlink, _) => {
                let t = e.target.as_ref().map_or(0, Vec::len) as u64;
                header_cost(&format::file_member_name(&w.path))
                    + 2 * BLOCK as u64
                    + 2 * w.path.len() as u64
                    + t
                    + 256
                    + lines
            }
            (Kind::HardLink, _) => {
                let with_first = e.target.as_deref().and_then(|t| whole_in.get(t)) == Some(&plans.len());
                if !with_first {
                    // Its first name is elsewhere: the set's table has it,
                    // this volume does not.
                    continue;
                }
                lines
            }
            (Kind::File, None) => continue, // not stored (unreadable)
            _ => lines,
        };
        if cur.used + above_cost + cost <= size {
            add_dirs(&mut cur, above);
            cur.used += cost;
            cur.entries.push(i);
            if e.kind == Kind::Dir {
                cur.dirs.insert(w.path.clone());
            }
            if e.kind == Kind::File {
                places.insert(w.path.clone(), Place::Whole(plans.len() as u32 + 1));
                whole_in.insert(&w.path, plans.len());
            } else if e.kind == Kind::Symlink {
                places.insert(w.path.clone(), Place::Whole(plans.len() as u32 + 1));
            }
            continue;
        }
        let member = members.get(&w.path).filter(|_| e.kind == Kind::File);
        // Too little room left for a part: the entry starts the next volume.
        let part_overhead = header_cost(&format::part_name(&w.path, u32::MAX)) + BLOCK as u64;
        let tiny_room = size.saturating_sub(cur.used + part_overhead) < MIN_PART;
        if e.kind == Kind::HardLink {
            continue; // its first name stays behind: the table has it
        }
        if member.is_none() || tiny_room {
            if cur.entries.is_empty() && cur.parts.is_empty() {
                return Err(Error::Volumes {
                    path: PathBuf::from(lossy(&w.path)),
                    message: format!("its metadata alone does not fit in a volume of {size} bytes"),
                });
            }
            plans.push(std::mem::replace(&mut cur, Plan { used: fixed, ..Plan::default() }));
        }
        let above = missing_dirs(&cur, &w.path);
        let above_cost: u64 = above.iter().map(|d| dir_cost(d)).sum();
        let Some(m) = member.filter(|_| cur.used + above_cost + cost > size) else {
            // It fits (in the new volume).
            if cur.used + above_cost + cost > size {
                return Err(Error::Volumes {
                    path: PathBuf::from(lossy(&w.path)),
                    message: format!("its metadata alone does not fit in a volume of {size} bytes"),
                });
            }
            add_dirs(&mut cur, above);
            cur.used += cost;
            cur.entries.push(i);
            if e.kind == Kind::Dir {
                cur.dirs.insert(w.path.clone());
            }
            if matches!(e.kind, Kind::Symlink | Kind::File) {
                places.insert(w.path.clone(), Place::Whole(plans.len() as u32 + 1));
            }
            if e.kind == Kind::File {
                whole_in.insert(&w.path, plans.len());
            }
            continue;
        };
        // A file member larger than the room left: cut it into parts, the
        // first filling this volume.
        let mut done = 0u64;
        let mut vols = Vec::new();
        let mut k = 1u32;
        while done < m.data_len {
            let room = size.saturating_sub(cur.used + part_overhead);
            if room < MIN_PART.min(m.data_len - done) {
                if cur.entries.is_empty() && cur.parts.is_empty() {
                    return Err(Error::Volumes {
                        path: PathBuf::from(lossy(&w.path)),
                        message: format!("no room for a part in a volume of {size} bytes"),
                    });
                }
                plans.push(std::mem::replace(&mut cur, Plan { used: fixed, ..Plan::default() }));
                continue;
            }
            let take = room.min(m.data_len - done);
            cur.parts.push(PartCopy { path: w.path.clone(), k, from: m.data_at + done, len: take, mtime: e.mtime.sec });
            cur.used += part_overhead + take;
            vols.push(plans.len() as u32 + 1);
            done += take;
            k += 1;
            if done < m.data_len {
                plans.push(std::mem::replace(&mut cur, Plan { used: fixed, ..Plan::default() }));
            }
        }
        places.insert(w.path.clone(), Place::Parts(vols));
    }
    plans.push(cur);
    for p in &mut plans {
        // Directories brought in for what is below them came late.
        p.entries.sort_unstable();
        p.entries.dedup();
    }
    Ok((plans, places))
}

/// A volume set as found on disk.
#[derive(Debug)]
pub struct VolumeSet {
    /// The set's table (from the first volume that had a readable one).
    pub table: Table,
    /// Path of each volume, by number (index 0 is volume 1); `None` when
    /// the volume is missing.
    pub volumes: Vec<Option<PathBuf>>,
    /// Paths of the volumes as their names say (for messages).
    pub names: Vec<PathBuf>,
}

impl VolumeSet {
    /// Numbers of the missing volumes.
    pub fn missing(&self) -> Vec<u32> {
        (1..=self.table.count).filter(|&k| self.volumes[k as usize - 1].is_none()).collect()
    }

    /// The entries whose content is lost because a volume is missing, with
    /// the missing volumes they need.
    pub fn lost(&self) -> Vec<(&Entry, Vec<u32>)> {
        self.table
            .entries
            .iter()
            .filter(|(_, e)| e.kind == Kind::File && e.size > 0)
            .filter_map(|(place, e)| {
                let gone: Vec<u32> =
                    place.volumes().iter().copied().filter(|&v| self.volumes[v as usize - 1].is_none()).collect();
                (!gone.is_empty()).then_some((e, gone))
            })
            .collect()
    }

    fn name(&self, k: u32) -> String {
        self.names.get(k as usize - 1).map_or_else(|| format!("volume {k}"), |p| p.display().to_string())
    }

    fn lost_message(&self, gone: &[u32]) -> String {
        let names: Vec<String> = gone.iter().map(|&k| self.name(k)).collect();
        format!("lost: its data is on {}, which is missing", names.join(" and "))
    }
}

/// Opens the set that `given` volumes belong to: the table is read from
/// the first of them that has a readable one, and the other volumes are
/// looked for beside it (`BASE.NNN.xtar`).
pub fn open_set(given: &[PathBuf]) -> Result<VolumeSet> {
    let first =
        given.first().ok_or_else(|| Error::Volumes { path: PathBuf::new(), message: "no volume given".into() })?;
    match find_set(given)? {
        Ok(set) => Ok(set),
        Err(why) => Err(why.unwrap_or_else(|| Error::Volumes {
            path: first.clone(),
            message: "not named like a volume (NAME.001.xtar), or no volume table found".into(),
        })),
    }
}

/// The set that `given` volumes belong to, or, when they are not named
/// like volumes or no volume of theirs holds a readable table, why not
/// (the last read error, if any): then they are plain archives as far as
/// can be told. A table that is there but does not parse is an error.
pub fn find_set(given: &[PathBuf]) -> Result<std::result::Result<VolumeSet, Option<Error>>> {
    let Some((base, _)) = given.first().and_then(|p| volume_base(p)) else { return Ok(Err(None)) };
    let mut candidates: Vec<PathBuf> = given.to_vec();
    // Volumes beside the given ones, up to the first gap of 100 numbers.
    let mut k = 1;
    let mut gap = 0;
    while gap < 100 {
        let p = volume_path(&base, k);
        if p.exists() {
            if !candidates.contains(&p) {
                candidates.push(p);
            }
            gap = 0;
        } else {
            gap += 1;
        }
        k += 1;
    }
    let mut table = None;
    let mut last_err = None;
    for c in &candidates {
        match crate::read::tail_member(c, VOLUMES_NAME) {
            Ok(Some(text)) => {
                table = Some(Table::parse(&text, c)?);
                break;
            }
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
    }
    let Some(table) = table else { return Ok(Err(last_err)) };
    let names: Vec<PathBuf> = (1..=table.count).map(|k| volume_path(&base, k)).collect();
    let mut volumes: Vec<Option<PathBuf>> = vec![None; table.count as usize];
    for c in candidates {
        if let Some((_, k)) = volume_base(&c) {
            if k >= 1 && k <= table.count && c.is_file() {
                volumes[k as usize - 1] = Some(c);
            }
        }
    }
    Ok(Ok(VolumeSet { table, volumes, names }))
}

/// Reads the parts of a file, one after another, from their volumes.
struct PartsReader {
    parts: Vec<(File, u64, u64)>,
    i: usize,
    pos: u64,
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some((f, at, len)) = self.parts.get(self.i) {
            if self.pos == *len {
                self.i += 1;
                self.pos = 0;
                continue;
            }
            let n = buf.len().min((len - self.pos) as usize);
            let got = f.read_at(&mut buf[..n], at + self.pos)?;
            if got == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "volume ends inside a part"));
            }
            self.pos += got as u64;
            return Ok(got);
        }
        Ok(0)
    }
}

/// Where the parts of split files were found: by path, (part, volume,
/// data offset, size).
type FoundParts = HashMap<Vec<u8>, Vec<(u32, u32, u64, u64)>>;

/// Joins the parts of the split files `wanted` from `found` and gives each
/// to `restorer`; a file with a part missing is booked as missing.
fn join_parts(
    set: &VolumeSet,
    found: &FoundParts,
    restorer: &mut Restorer<'_>,
    wanted: &dyn Fn(&[u8]) -> bool,
) -> Result<()> {
    for (place, e) in &set.table.entries {
        let Place::Parts(vols) = place else { continue };
        if e.kind != Kind::File || e.size == 0 || !wanted(&e.path) {
            continue;
        }
        if vols.iter().any(|&v| set.volumes[v as usize - 1].is_none()) {
            continue; // booked as lost already
        }
        let mut have = found.get(&e.path).cloned().unwrap_or_default();
        have.sort_unstable();
        let complete = have.len() == vols.len()
            && have.iter().enumerate().all(|(i, &(k, v, _, _))| k as usize == i + 1 && v == vols[i]);
        if !complete {
            let names: Vec<String> = vols.iter().map(|&v| set.name(v)).collect();
            restorer.missing(&e.path, &format!("a part on {} could not be read", names.join(" or ")))?;
            continue;
        }
        let mut parts = Vec::new();
        for &(_, v, at, len) in &have {
            let path =
                set.volumes[v as usize - 1].as_ref().map_or_else(|| set.names[v as usize - 1].clone(), Clone::clone);
            let f = File::open(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
            parts.push((f, at, len));
        }
        let total = have.iter().map(|p| p.3).sum();
        restorer.member(&e.path, None, total, &mut PartsReader { parts, i: 0, pos: 0 })?;
    }
    Ok(())
}

/// What a set extraction or check did.
#[derive(Debug, Clone, Default)]
pub struct SetReport {
    /// The outcome over the whole set.
    pub report: ExtractReport,
    /// Files lost because a volume is missing, with those volumes.
    pub lost: Vec<(Vec<u8>, Vec<u32>)>,
    /// Volumes missing from the set.
    pub missing_volumes: Vec<u32>,
}

fn wanted_by(paths: &[Vec<u8>]) -> impl Fn(&[u8]) -> bool + '_ {
    move |p: &[u8]| paths.is_empty() || paths.iter().any(|w| manifest::is_within(p, w))
}

/// Restores a whole set into `dest` (or only checks it when `dest` is
/// `None`). Each file lost to a missing volume is reported by name.
pub fn extract_set(
    set: &VolumeSet,
    dest: Option<&Path>,
    opts: &ExtractOptions,
    obs: &dyn Observer,
) -> Result<SetReport> {
    let wanted = wanted_by(&opts.paths);
    let mut restorer = Restorer::new(dest, opts, obs)?;
    restorer.entries(
        set.table
            .entries
            .iter()
            .filter(|(_, e)| wanted(&e.path) || e.path.is_empty())
            .map(|(_, e)| e.clone())
            .collect(),
    )?;
    let mut out = SetReport { missing_volumes: set.missing(), ..SetReport::default() };
    for (e, gone) in set.lost() {
        if wanted(&e.path) {
            restorer.missing(&e.path, &set.lost_message(&gone))?;
            out.lost.push((e.path.clone(), gone));
        }
    }
    let whole: HashMap<&[u8], u32> = set
        .table
        .entries
        .iter()
        .filter(|(_, e)| e.kind == Kind::File && e.size > 0 && wanted(&e.path))
        .filter_map(|(p, e)| match p {
            Place::Whole(v) => Some((&e.path[..], *v)),
            _ => None,
        })
        .collect();
    obs.start(set.volumes.iter().flatten().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum());
    let mut found: FoundParts = HashMap::new();
    for (i, vol) in set.volumes.iter().enumerate() {
        let k = i as u32 + 1;
        let Some(vol) = vol else { continue };
        let mut scanner = Scanner::open(vol)?;
        let r = (|| -> Result<()> {
            while let Some(item) = scanner.next(obs)? {
                match item {
                    Item::File { path, size, .. } if whole.get(&path[..]) == Some(&k) => {
                        restorer.member(&path, None, size, &mut scanner.data())?;
                        obs.advance(size);
                    }
                    Item::Part { path, part, size, offset } => {
                        found.entry(path).or_default().push((part, k, offset, size));
                    }
                    Item::Volumes { text } => {
                        let id = text.split(|&b| b == b'\n').nth(1).and_then(|l| l.strip_prefix(b"#set "));
                        if id != Some(set.table.set_id.as_bytes()) {
                            return Err(Error::Volumes {
                                path: vol.clone(),
                                message: "this volume belongs to another set".into(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            match e {
                Error::Write { .. } | Error::Exists { .. } => return Err(e),
                // The files of a damaged volume not read by now are reported
                // as missing by `finish`; salvage gets more out of it.
                e => obs.warning(&e),
            }
        }
    }
    join_parts(set, &found, &mut restorer, &wanted)?;
    out.report = restorer.finish()?;
    Ok(out)
}

/// Finds the part members of a volume by their tar headers alone, as
/// salvage does: damage elsewhere in the volume does not hide them.
/// Says `false` (and stops) when the volume's table names another set.
fn scan_parts(path: &Path, k: u32, set_id: &str, found: &mut FoundParts) -> Result<bool> {
    let f = File::open(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let len = f.metadata().map_err(|source| Error::Read { path: path.to_path_buf(), source })?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut pos = 0u64;
    let mut long: Option<(Vec<u8>, u64)> = None;
    let mut block = [0u8; BLOCK];
    let io = |source| Error::Read { path: path.to_path_buf(), source };
    while pos + BLOCK as u64 <= len {
        r.read_exact(&mut block).map_err(io)?;
        pos += BLOCK as u64;
        let Block::Header(h) = tarfmt::parse_block(&block) else { continue };
        let data = pos;
        let next = data + h.size + tarfmt::padding(h.size) as u64;
        if next > len {
            continue;
        }
        if h.is_long_name() && h.size <= 64 << 10 {
            let mut name = vec![0u8; h.size as usize];
            r.read_exact(&mut name).map_err(io)?;
            while name.last() == Some(&0) {
                name.pop();
            }
            r.seek_relative((next - data - h.size) as i64).map_err(io)?;
            pos = next;
            long = Some((name, next));
            continue;
        }
        let name = match long.take() {
            Some((n, at)) if at == data - BLOCK as u64 => n,
            _ => h.name.clone(),
        };
        // Containers are stepped into: their members follow their header.
        match (h.is_regular(), MemberName::parse(&name)) {
            (true, MemberName::Part(p, part)) => {
                found.entry(p).or_default().push((part, k, data, h.size));
            }
            (true, MemberName::Volumes) => {
                // The set id is on the second line, near the start.
                let mut head = vec![0u8; h.size.min(256) as usize];
                r.read_exact(&mut head).map_err(io)?;
                r.seek_relative(-(head.len() as i64)).map_err(io)?;
                let id = head.split(|&b| b == b'\n').nth(1).and_then(|l| l.strip_prefix(b"#set "));
                if id.is_some_and(|id| id != set_id.as_bytes()) {
                    return Ok(false);
                }
            }
            _ => continue,
        }
        r.seek_relative((next - data) as i64).map_err(io)?;
        pos = next;
    }
    Ok(true)
}

/// Salvages every volume present into `dest`, then joins the split files
/// whose parts can be found. Returns each volume's report and the report
/// of the joined files, with the files lost to missing volumes.
pub fn salvage_set(
    set: &VolumeSet,
    dest: &Path,
    opts: &crate::SalvageOptions,
    obs: &dyn Observer,
) -> Result<(Vec<(u32, crate::SalvageReport)>, SetReport)> {
    let mut reports = Vec::new();
    let mut found: FoundParts = HashMap::new();
    for (i, vol) in set.volumes.iter().enumerate() {
        let Some(vol) = vol else { continue };
        let k = i as u32 + 1;
        let mut parts = FoundParts::new();
        if !scan_parts(vol, k, &set.table.set_id, &mut parts)? {
            obs.warning(&Error::Volumes {
                path: vol.clone(),
                message: "this volume belongs to another set; skipped".into(),
            });
            continue;
        }
        for (p, v) in parts {
            found.entry(p).or_default().extend(v);
        }
        match crate::salvage(vol, dest, opts, obs) {
            Ok(r) => reports.push((k, r)),
            Err(e @ (Error::Write { .. } | Error::Exists { .. })) => return Err(e),
            Err(e) => obs.warning(&e),
        }
    }
    let eopts = ExtractOptions { overwrite: opts.overwrite, jobs: opts.jobs, paths: Vec::new() };
    let mut restorer = Restorer::new(Some(dest), &eopts, obs)?;
    // Split files, and hard links whose first name is in another volume
    // (the volumes hold them only in the table).
    let split: Vec<Entry> = set
        .table
        .entries
        .iter()
        .filter(|(p, e)| {
            (matches!(p, Place::Parts(_)) && e.kind == Kind::File)
                || (e.kind == Kind::HardLink
                    && format::check_member_path(&e.path).is_ok()
                    && dest.join(std::ffi::OsStr::from_bytes(&e.path)).symlink_metadata().is_err())
        })
        .map(|(_, e)| e.clone())
        .collect();
    let mut out = SetReport { missing_volumes: set.missing(), ..SetReport::default() };
    let split_paths: HashSet<Vec<u8>> = split.iter().map(|e| e.path.clone()).collect();
    restorer.entries(split)?;
    for (e, gone) in set.lost() {
        if split_paths.contains(&e.path) {
            restorer.missing(&e.path, &set.lost_message(&gone))?;
        } else {
            obs.warning(&Error::Member { member: lossy(&e.path), message: set.lost_message(&gone) });
        }
        out.lost.push((e.path.clone(), gone));
    }
    join_parts(set, &found, &mut restorer, &|_| true)?;
    out.report = restorer.finish()?;
    Ok((reports, out))
}
