//! Repairing: damaged blocks found by their checksums, groups decoded,
//! files and parity volumes rewritten whole or reported exactly.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::blocks::{crc_padded, each_block_lenient, each_chunk, parity_of, read_full_at};
use crate::layout::Layout;
use crate::packet;
use crate::protect::{encode_into, write_meta};
use crate::{Error, Result};

/// Blocks rebuilt by one group: (block index, bytes).
type Rebuilt = Vec<(u64, Vec<u8>)>;

/// How to repair.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// Only report; write nothing.
    pub dry_run: bool,
    /// Where the protected files are; the parity volumes' directory if `None`.
    pub dir: Option<PathBuf>,
    /// As for [`crate::ProtectOptions::memory`].
    pub memory: u64,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions { dry_run: false, dir: None, memory: 256 << 20 }
    }
}

/// A run of blocks, as a byte range of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// The state of a file of the set, after [`repair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Every block checked out.
    Intact,
    /// Damaged blocks were rebuilt; the file now matches its SHA-256.
    Repaired {
        /// Blocks rebuilt.
        blocks: u64,
    },
    /// The file was missing and was rebuilt whole.
    Rebuilt,
    /// Damaged (or, with `dry_run`, would be repaired: see `repairable`).
    Damaged {
        /// Blocks damaged.
        blocks: u64,
        /// Whether the redundancy suffices to rebuild them.
        repairable: bool,
        /// The byte ranges that are still (or would stay) damaged.
        left: Vec<BlockRange>,
        /// Where a partial rebuild of a missing file was written, if any.
        partial: Option<PathBuf>,
    },
    /// Missing, and with `dry_run` or not enough redundancy, not rebuilt.
    Missing {
        /// Whether the redundancy suffices to rebuild it.
        repairable: bool,
    },
}

/// One file of the set and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    /// Where it is (or belongs).
    pub path: PathBuf,
    /// Its state.
    pub state: FileState,
}

/// What [`repair`] found and did.
#[derive(Debug, Clone)]
pub struct RepairReport {
    /// The set's geometry, from the descriptor.
    pub layout: Layout,
    /// The protected files.
    pub files: Vec<FileOutcome>,
    /// The parity volumes.
    pub parity: Vec<FileOutcome>,
    /// Groups that lost more blocks than they have intact recovery blocks:
    /// `(group, blocks lost, recovery blocks intact)`.
    pub short: Vec<(u64, u64, u64)>,
    /// Table entries lost in every copy (their blocks count as damaged).
    pub unknown_checksums: u64,
}

impl RepairReport {
    /// Whether every file of the set (parity volumes included) is now intact.
    pub fn is_complete(&self) -> bool {
        self.files
            .iter()
            .chain(&self.parity)
            .all(|f| matches!(f.state, FileState::Intact | FileState::Repaired { .. } | FileState::Rebuilt))
    }
}

/// A parity volume read whole, with what its intact packets say.
struct Scanned {
    path: PathBuf,
    bytes: Vec<u8>,
    /// The first descriptor that parses.
    descriptor: Option<Layout>,
    /// The set ids of its descriptors.
    sets: Vec<[u8; 16]>,
    /// Its volume number, from its volume packets.
    volume: Option<u64>,
    /// Its table packets: (first entry, CRCs).
    tables: Vec<(u64, Vec<u32>)>,
}

impl Scanned {
    /// Reads and scans `path`; `None` if it cannot be read.
    fn read(path: &Path) -> Option<Scanned> {
        let bytes = std::fs::read(path).ok()?;
        let (mut descriptor, mut sets, mut volume, mut tables) = (None, Vec::new(), None, Vec::new());
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        for (_, kind, body) in packet::scan(&bytes) {
            match kind {
                packet::DESCRIPTOR => {
                    if let Some(d) = Layout::parse(body) {
                        sets.push(d.set);
                        descriptor.get_or_insert(d);
                    }
                }
                packet::VOLUME if body.len() == 8 => volume = volume.or(Some(word(body))),
                packet::TABLE if body.len() >= 12 => {
                    let count = u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize;
                    if body.len() == 12 + 4 * count {
                        let crcs = body[12..].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                        tables.push((word(&body[..8]), crcs.collect()));
                    }
                }
                _ => {}
            }
        }
        Some(Scanned { path: path.to_path_buf(), bytes, descriptor, sets, volume, tables })
    }
}

/// Checks the set that the parity volumes `parity` belong to and rebuilds
/// damaged or missing files in place when the redundancy allows. Repaired
/// files are written beside the originals and renamed over them only once
/// they match their SHA-256; a missing file rebuilt only in part is written
/// as `NAME.partial` (zeros where blocks are lost).
pub fn repair(parity: &[PathBuf], opts: &RepairOptions) -> Result<RepairReport> {
    let set = read_set(parity, opts)?;
    let damage = find_damage(&set)?;
    let groups = count_groups(&set.l, &damage);
    let rebuilt = if opts.dry_run { BTreeMap::new() } else { decode_groups(&set, &damage, &groups, opts.memory)? };
    let files = write_files(&set, &damage, &groups, &rebuilt, opts.dry_run)?;
    let data_whole =
        files.iter().all(|o| matches!(o.state, FileState::Intact | FileState::Repaired { .. } | FileState::Rebuilt));
    let parity = repair_parity(&set, &damage, &groups, data_whole, opts)?;
    let unknown_checksums = set.unknown_checksums();
    Ok(RepairReport { layout: set.l, files, parity, short: groups.short, unknown_checksums })
}

/// The set as its parity volumes describe it, with what they hold.
struct SetView {
    l: Layout,
    /// Where the parity volumes are.
    parity_dir: PathBuf,
    /// Where each protected file is (or belongs).
    files: Vec<PathBuf>,
    /// The checksum of every block, data then recovery, from every
    /// readable copy of the table.
    table: BTreeMap<u64, u32>,
    /// The bytes of each parity volume that could be read.
    volumes: Vec<Option<Vec<u8>>>,
}

impl SetView {
    /// Table entries lost in every copy.
    fn unknown_checksums(&self) -> u64 {
        let total = self.l.data_blocks() + self.l.recovery_blocks();
        (0..total).filter(|i| !self.table.contains_key(i)).count() as u64
    }

    fn parity_paths(&self) -> Vec<PathBuf> {
        self.l.parity.iter().map(|pv| self.parity_dir.join(std::ffi::OsStr::from_bytes(&pv.name))).collect()
    }
}

/// Reads the descriptor and checksums from every readable copy: each
/// parity volume (those given, and those the descriptor names beside
/// them) is read and scanned for packets once.
fn read_set(parity: &[PathBuf], opts: &RepairOptions) -> Result<SetView> {
    let mut paths: Vec<PathBuf> = parity.to_vec();
    let mut scanned: Vec<Scanned> = paths.iter().filter_map(|p| Scanned::read(p)).collect();
    let l = scanned.iter().find_map(|s| s.descriptor.clone()).ok_or_else(|| Error::NoDescriptor(parity.to_vec()))?;
    let parity_dir = paths.first().map(|p| fsutil::dir_of(p).to_path_buf()).unwrap_or_else(|| PathBuf::from("."));
    let dir = opts.dir.clone().unwrap_or_else(|| parity_dir.clone());
    for pv in &l.parity {
        let p = parity_dir.join(std::ffi::OsStr::from_bytes(&pv.name));
        if !paths.contains(&p) {
            scanned.extend(Scanned::read(&p));
            paths.push(p);
        }
    }
    // Map files to parity volumes (by their volume packet, else their name),
    // and keep only those of this set; their tables make one table.
    let mut table: BTreeMap<u64, u32> = BTreeMap::new();
    let mut volumes: Vec<Option<Vec<u8>>> = vec![None; l.parity.len()];
    for s in scanned {
        let same_set = s.sets.contains(&l.set);
        let by_name =
            l.parity.iter().position(|pv| Some(pv.name.as_slice()) == s.path.file_name().map(|n| n.as_bytes()));
        let Some(v) = s.volume.map(|v| v as usize).filter(|&v| v < l.parity.len()).or(by_name) else { continue };
        if !same_set && by_name.is_none() {
            continue;
        }
        if same_set {
            for (first, crcs) in s.tables {
                table.extend(crcs.into_iter().enumerate().map(|(j, c)| (first + j as u64, c)));
            }
        }
        if volumes[v].is_none() {
            volumes[v] = Some(s.bytes);
        }
    }
    let files = l.files.iter().map(|f| dir.join(std::ffi::OsStr::from_bytes(&f.name))).collect();
    Ok(SetView { l, parity_dir, files, table, volumes })
}

/// Which blocks are bad, which files are there, and the intact recovery
/// blocks.
struct Damage<'a> {
    bad: Vec<bool>,
    present: Vec<bool>,
    recovery: BTreeMap<u64, &'a [u8]>,
}

/// Checks every block of the protected files and the parity volumes
/// against its checksum; a missing file and a block not read are bad.
fn find_damage(set: &SetView) -> Result<Damage<'_>> {
    let l = &set.l;
    let n = l.data_blocks();
    let b = l.block as usize;
    let mut bad: Vec<bool> = vec![false; (n + l.recovery_blocks()) as usize];
    let mut present = vec![false; set.files.len()];
    for (fi, (f, path)) in l.files.iter().zip(&set.files).enumerate() {
        // Blocks not read (missing, past the end, unreadable) stay bad.
        for k in 0..f.size.div_ceil(l.block) {
            bad[(f.first + k) as usize] = true;
        }
        if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        present[fi] = true;
        each_block_lenient(path, f.size, b, |k, block| {
            let i = f.first + k;
            bad[i as usize] = set.table.get(&i) != Some(&crc_padded(block, b));
        })?;
    }
    let mut recovery: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for k in 0..l.recovery_blocks() {
        let (v, pv) = parity_of(l, k);
        let at = (pv.offset + (k - pv.first) * l.block) as usize;
        let block = set.volumes[v].as_ref().and_then(|bytes| bytes.get(at..at + b));
        match block {
            Some(block) if set.table.get(&(n + k)) == Some(&crc32fast::hash(block)) => {
                recovery.insert(k, block);
            }
            _ => bad[(n + k) as usize] = true,
        }
    }
    Ok(Damage { bad, present, recovery })
}

/// Per group: data blocks lost and recovery blocks intact.
struct Groups {
    lost: Vec<u64>,
    intact: Vec<u64>,
    /// Groups that cannot be rebuilt: `(group, lost, intact)`.
    short: Vec<(u64, u64, u64)>,
}

impl Groups {
    /// Whether the group of data block `i` can be rebuilt.
    fn fixable(&self, l: &Layout, i: u64) -> bool {
        let g = (i % l.groups) as usize;
        self.lost[g] <= self.intact[g]
    }
}

fn count_groups(l: &Layout, d: &Damage<'_>) -> Groups {
    let mut lost = vec![0u64; l.groups as usize];
    for i in (0..l.data_blocks()).filter(|&i| d.bad[i as usize]) {
        lost[(i % l.groups) as usize] += 1;
    }
    let mut intact = vec![0u64; l.groups as usize];
    for k in d.recovery.keys() {
        intact[(k % l.groups) as usize] += 1;
    }
    let short = (0..l.groups)
        .filter(|&g| lost[g as usize] > intact[g as usize])
        .map(|g| (g, lost[g as usize], intact[g as usize]))
        .collect();
    Groups { lost, intact, short }
}

/// Decodes the groups that lost blocks and can be rebuilt, as many at a
/// time as `memory` holds; returns the rebuilt data blocks whose checksum
/// (when known) matches.
fn decode_groups(set: &SetView, d: &Damage<'_>, groups: &Groups, memory: u64) -> Result<BTreeMap<u64, Vec<u8>>> {
    let l = &set.l;
    let b = l.block as usize;
    let mut rebuilt: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let todo: Vec<u64> = (0..l.groups).filter(|&g| groups.lost[g as usize] > 0 && groups.fixable(l, g)).collect();
    let per_pass = (memory / (l.group_max() * l.block).max(1)).max(1) as usize;
    for pass in todo.chunks(per_pass) {
        let index: BTreeMap<u64, usize> = pass.iter().enumerate().map(|(j, &g)| (g, j)).collect();
        let mut have: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); pass.len()];
        for (fi, (f, path)) in l.files.iter().zip(&set.files).enumerate() {
            if !d.present[fi] {
                continue;
            }
            each_block_lenient(path, f.size, b, |k, block| {
                let i = f.first + k;
                if let Some(&j) = index.get(&(i % l.groups)) {
                    if !d.bad[i as usize] {
                        let mut v = block.to_vec();
                        v.resize(b, 0);
                        have[j].push(((i / l.groups) as usize, v));
                    }
                }
            })?;
        }
        let results: Vec<Result<Rebuilt>> = pass
            .par_iter()
            .zip(have)
            .map(|(&g, originals)| {
                let e = |source| Error::Coding { group: g, source };
                let mut dec =
                    reed_solomon_simd::ReedSolomonDecoder::new(l.group_len(g) as usize, l.per_group as usize, b)
                        .map_err(e)?;
                for (j, shard) in &originals {
                    dec.add_original_shard(*j, shard).map_err(e)?;
                }
                for (k, shard) in d.recovery.range(g..).filter(|(k, _)| *k % l.groups == g) {
                    dec.add_recovery_shard((k / l.groups) as usize, shard).map_err(e)?;
                }
                let res = dec.decode().map_err(e)?;
                Ok(res.restored_original_iter().map(|(j, data)| (j as u64 * l.groups + g, data.to_vec())).collect())
            })
            .collect();
        for r in results {
            for (i, data) in r? {
                // A rebuilt block must match its checksum when that is
                // known (the whole file's SHA-256 is checked in the end).
                if set.table.get(&i).is_none_or(|&c| c == crc32fast::hash(&data)) {
                    rebuilt.insert(i, data);
                }
            }
        }
    }
    Ok(rebuilt)
}

/// Writes what was rebuilt into the protected files (or, with `dry_run`,
/// says what would be), and books each file's state.
fn write_files(
    set: &SetView,
    d: &Damage<'_>,
    groups: &Groups,
    rebuilt: &BTreeMap<u64, Vec<u8>>,
    dry_run: bool,
) -> Result<Vec<FileOutcome>> {
    let l = &set.l;
    let mut outcomes = Vec::new();
    for (fi, (f, path)) in l.files.iter().zip(&set.files).enumerate() {
        let blocks = f.size.div_ceil(l.block);
        let bad_here: Vec<u64> = (0..blocks).filter(|k| d.bad[(f.first + k) as usize]).collect();
        let fixable = |k: &u64| groups.fixable(l, f.first + k);
        let state = if bad_here.is_empty() {
            FileState::Intact
        } else if dry_run {
            let repairable = bad_here.iter().all(fixable);
            let left = ranges(bad_here.iter().copied().filter(|k| !fixable(k)), l.block, f.size);
            if d.present[fi] {
                FileState::Damaged { blocks: bad_here.len() as u64, repairable, left, partial: None }
            } else {
                FileState::Missing { repairable }
            }
        } else {
            let (fixed, left_blocks): (Vec<u64>, Vec<u64>) =
                bad_here.iter().copied().partition(|k| rebuilt.contains_key(&(f.first + k)));
            write_fixed(f, path, d.present[fi], &fixed, rebuilt, l.block, left_blocks.is_empty())?.unwrap_or_else(
                |partial| FileState::Damaged {
                    blocks: bad_here.len() as u64,
                    repairable: false,
                    left: ranges(left_blocks.iter().copied(), l.block, f.size),
                    partial,
                },
            )
        };
        outcomes.push(FileOutcome { path: path.clone(), state });
    }
    Ok(outcomes)
}

/// Rewrites damaged or missing parity volumes whole, when the data is
/// whole (or says whether it could be, with `dry_run`), and books each
/// parity volume's state.
fn repair_parity(
    set: &SetView,
    d: &Damage<'_>,
    groups: &Groups,
    data_whole: bool,
    opts: &RepairOptions,
) -> Result<Vec<FileOutcome>> {
    let l = &set.l;
    let n = l.data_blocks();
    let bad_blocks =
        |v: usize| (l.parity[v].first..l.parity[v].first + l.parity[v].count).filter(|k| d.bad[(n + k) as usize]);
    let unknown_checksums = set.unknown_checksums();
    let damaged: Vec<bool> = (0..l.parity.len())
        .map(|v| {
            set.volumes[v].as_ref().is_none_or(|bytes| bytes.len() as u64 != l.parity[v].size)
                || bad_blocks(v).next().is_some()
                || unknown_checksums > 0
        })
        .collect();
    let paths = set.parity_paths();
    if !opts.dry_run && data_whole && damaged.iter().any(|d| *d) {
        let temps: Vec<Option<tempfile::NamedTempFile>> = paths
            .iter()
            .zip(&damaged)
            .map(|(p, d)| if *d { fsutil::temp_beside(p).map(Some).map_err(Error::from) } else { Ok(None) })
            .collect::<Result<_>>()?;
        let targets: Vec<Option<&File>> = temps.iter().map(|t| t.as_ref().map(|t| t.as_file())).collect();
        let (crcs, _, _) = encode_into(l, &set.files, &targets, &paths, opts.memory)?;
        let crcs: Vec<Option<u32>> = crcs.into_iter().map(Some).collect();
        for (v, t) in temps.into_iter().enumerate() {
            if let Some(t) = t {
                write_meta(l, v, &crcs, t.as_file(), &paths[v])?;
                fsutil::persist(t, &paths[v], true)?;
            }
        }
    }
    let mut out = Vec::new();
    for (v, p) in paths.iter().enumerate() {
        let state = match (damaged[v], set.volumes[v].is_some()) {
            (false, _) => FileState::Intact,
            (true, true) if !opts.dry_run && data_whole => FileState::Repaired { blocks: bad_blocks(v).count() as u64 },
            (true, false) if !opts.dry_run && data_whole => FileState::Rebuilt,
            (true, true) => FileState::Damaged {
                blocks: bad_blocks(v).count() as u64,
                repairable: data_whole || (opts.dry_run && groups.short.is_empty()),
                left: Vec::new(),
                partial: None,
            },
            (true, false) => FileState::Missing { repairable: groups.short.is_empty() },
        };
        out.push(FileOutcome { path: p.clone(), state });
    }
    Ok(out)
}

fn ranges(blocks: impl Iterator<Item = u64>, block: u64, size: u64) -> Vec<BlockRange> {
    let mut out: Vec<BlockRange> = Vec::new();
    for k in blocks {
        let (s, e) = (k * block, ((k + 1) * block).min(size));
        match out.last_mut() {
            Some(r) if r.end == s => r.end = e,
            _ => out.push(BlockRange { start: s, end: e }),
        }
    }
    out
}

/// Writes a repaired copy of a file and renames it over the original when
/// it is whole and matches its SHA-256. `Err(partial)` when it is not.
fn write_fixed(
    f: &crate::layout::Protected,
    path: &Path,
    present: bool,
    fixed: &[u64],
    rebuilt: &BTreeMap<u64, Vec<u8>>,
    block: u64,
    whole: bool,
) -> Result<std::result::Result<FileState, Option<PathBuf>>> {
    if fixed.is_empty() {
        return Ok(Err(None));
    }
    let werr = |source| Error::Write { path: path.to_path_buf(), source };
    let t = fsutil::temp_beside(path)?;
    // Whether the copy holds every byte of the original that could be read.
    let mut copied = !present;
    if present {
        let src = File::open(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
        copied = true;
        let mut off = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        while off < f.size {
            let want = (f.size - off).min(buf.len() as u64) as usize;
            match read_full_at(&src, &mut buf[..want], off) {
                Ok(got) => {
                    t.as_file().write_all_at(&buf[..got], off).map_err(werr)?;
                    if got < want {
                        break;
                    }
                }
                // A bad stretch: copied block by block, what reads.
                Err(_) => {
                    for at in (off..off + want as u64).step_by(block as usize) {
                        let len = (f.size - at).min(block) as usize;
                        match read_full_at(&src, &mut buf[..len], at) {
                            Ok(g) => t.as_file().write_all_at(&buf[..g], at).map_err(werr)?,
                            Err(_) => copied = false,
                        }
                    }
                }
            }
            off += want as u64;
        }
        if let Ok(m) = std::fs::metadata(path) {
            // Keep the original's permissions.
            let _ = t.as_file().set_permissions(m.permissions());
        }
    }
    t.as_file().set_len(f.size).map_err(werr)?;
    for k in fixed {
        let data = &rebuilt[&(f.first + k)];
        let len = (f.size - k * block).min(block) as usize;
        t.as_file().write_all_at(&data[..len], k * block).map_err(werr)?;
    }
    if whole {
        let sum = each_chunk(t.path(), f.size, block as usize, true, |_, _| {})?;
        if sum == Some(f.sha256) {
            fsutil::persist(t, path, true)?;
            return Ok(Ok(if present {
                FileState::Repaired { blocks: fixed.len() as u64 }
            } else {
                FileState::Rebuilt
            }));
        }
        return Ok(Err(None));
    }
    if present && copied {
        // Better than before: the blocks that could be rebuilt are, and
        // every byte that could be read is kept.
        fsutil::persist(t, path, true)?;
        Ok(Err(None))
    } else {
        let mut partial = path.as_os_str().to_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        fsutil::persist(t, &partial, true)?;
        Ok(Err(Some(partial)))
    }
}
