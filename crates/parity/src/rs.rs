//! Encoding and repairing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::layout::{Layout, TABLE_RUN};
use crate::packet;
use crate::{Error, Result};

/// How to protect.
#[derive(Debug, Clone)]
pub struct ProtectOptions {
    /// How much recovery data: whole files that may be lost, and percent
    /// of the data blocks for scattered damage.
    pub redundancy: crate::Redundancy,
    /// Block size; chosen by [`crate::choose_block_size`] if `None`.
    pub block: Option<u64>,
    /// The largest parity volume; one volume if `None`.
    pub volume_size: Option<u64>,
    /// Bytes of blocks held in memory at once. More passes over the files
    /// are made when the data is larger.
    pub memory: u64,
    /// Replace existing parity volumes.
    pub overwrite: bool,
}

impl Default for ProtectOptions {
    fn default() -> Self {
        ProtectOptions {
            redundancy: crate::Redundancy::default(),
            block: None,
            volume_size: None,
            memory: 256 << 20,
            overwrite: false,
        }
    }
}

/// What [`protect`] wrote.
#[derive(Debug, Clone)]
pub struct ProtectReport {
    /// The set's geometry.
    pub layout: Layout,
    /// The parity volumes written.
    pub parity_files: Vec<PathBuf>,
    /// Bytes protected.
    pub data_bytes: u64,
    /// Bytes of parity volumes written.
    pub parity_bytes: u64,
    /// Passes made over the data.
    pub passes: u64,
    /// What the recovery data can rebuild.
    pub promise: crate::Promise,
}

/// Adds recovery data for `files` as parity volumes `BASE.pNN.xtar-rs`.
/// The files must sit in one directory with distinct names: that is where
/// [`repair`] looks for them, next to the parity volumes.
pub fn protect(files: &[PathBuf], base: &Path, opts: &ProtectOptions) -> Result<ProtectReport> {
    let mut sizes = Vec::new();
    let mut names: Vec<Vec<u8>> = Vec::new();
    for f in files {
        let m = std::fs::metadata(f).map_err(|source| Error::Read { path: f.clone(), source })?;
        if !m.is_file() {
            return Err(Error::NotAFile(f.clone()));
        }
        let name = f.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
        if names.contains(&name) {
            return Err(Error::DuplicateName(f.clone()));
        }
        names.push(name);
        sizes.push(m.len());
    }
    let block = opts.block.unwrap_or_else(|| crate::choose_block_size(&sizes, opts.redundancy));
    let mut layout = Layout::plan(names, &sizes, vec![[0; 32]; files.len()], block, opts.redundancy)?;
    let base_name = base.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
    layout.place_parity(&base_name, opts.volume_size)?;
    // Losing whole files may take parity volumes with them: add recovery
    // blocks until the promise holds whichever files are lost.
    let step = layout.whole_file_blocks(1).max(1);
    for _ in 0..16 {
        if layout.promise().volumes >= opts.redundancy.volumes {
            break;
        }
        layout.per_group += step;
        layout.check_rate()?;
        layout.place_parity(&base_name, opts.volume_size)?;
    }
    let mut id = Sha256::new();
    for f in &layout.files {
        id.update(&f.name);
        id.update(f.size.to_le_bytes());
    }
    id.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
    layout.set.copy_from_slice(&id.finalize()[..16]);

    let outs: Vec<PathBuf> = (1..=layout.parity.len()).map(|k| crate::parity_name(base, k)).collect();
    if !opts.overwrite {
        if let Some(p) = outs.iter().find(|p| p.symlink_metadata().is_ok()) {
            return Err(Error::Exists(p.clone()));
        }
    }
    let temps = outs.iter().map(|o| fsutil::temp_beside(o).map_err(Error::from)).collect::<Result<Vec<_>>>()?;
    let targets: Vec<Option<&File>> = temps.iter().map(|t| Some(t.as_file())).collect();
    let (crcs, shas, passes) = encode_into(&layout, files, &targets, &outs, opts.memory)?;
    for (f, sha) in layout.files.iter_mut().zip(shas) {
        f.sha256 = sha;
    }
    for (k, t) in temps.iter().enumerate() {
        write_meta(&layout, k, &crcs.iter().map(|c| Some(*c)).collect::<Vec<_>>(), t.as_file(), &outs[k])?;
    }
    let mut parity_bytes = 0;
    for (t, out) in temps.into_iter().zip(&outs) {
        parity_bytes += t.as_file().metadata().map(|m| m.len()).unwrap_or(0);
        fsutil::persist(t, out, opts.overwrite)?;
    }
    let promise = layout.promise();
    Ok(ProtectReport { data_bytes: sizes.iter().sum(), layout, parity_files: outs, parity_bytes, passes, promise })
}

fn dir_of(p: &Path) -> PathBuf {
    fsutil::dir_of(p).to_path_buf()
}

/// Reads the data files in passes, computing block CRCs and file SHA-256s,
/// and writes the recovery blocks of every group into the parity volumes
/// that have a target. Returns the CRCs of all data then recovery blocks,
/// the SHA-256s, and the number of passes.
fn encode_into(
    l: &Layout,
    files: &[PathBuf],
    targets: &[Option<&File>],
    outs: &[PathBuf],
    memory: u64,
) -> Result<(Vec<u32>, Vec<[u8; 32]>, u64)> {
    let b = l.block as usize;
    let n = l.data_blocks();
    let mut crcs = vec![0u32; (n + l.recovery_blocks()) as usize];
    let mut shas = vec![[0u8; 32]; files.len()];
    // The encoders hold the blocks (their working space is about twice
    // the group's data); as many groups per pass as the budget allows.
    let group_bytes = 2 * l.group_max() * l.block;
    let per_pass = (memory / group_bytes.max(1)).clamp(1, l.groups);
    let mut passes = 0;
    let mut g0 = 0;
    let mut pad = vec![0u8; b];
    let mut encs: Vec<reed_solomon_simd::ReedSolomonEncoder> = Vec::new();
    while g0 < l.groups {
        let g1 = (g0 + per_pass).min(l.groups);
        passes += 1;
        // Encoders are reused from pass to pass: their working space is
        // allocated once.
        for g in g0..g1 {
            let j = (g - g0) as usize;
            let (count, rec) = (l.group_len(g) as usize, l.per_group as usize);
            let e = |source| Error::Coding { group: g, source };
            match encs.get_mut(j) {
                Some(enc) => enc.reset(count, rec, b).map_err(e)?,
                None => encs.push(reed_solomon_simd::ReedSolomonEncoder::new(count, rec, b).map_err(e)?),
            }
        }
        encs.truncate((g1 - g0) as usize);
        let first_pass = g0 == 0;
        for (fi, (f, path)) in l.files.iter().zip(files).enumerate() {
            let mut add_err = None;
            let sha = each_chunk(path, f.size, b, first_pass, |k0, chunk| {
                for (j, block) in chunk.chunks(b).enumerate() {
                    let i = f.first + k0 + j as u64;
                    if first_pass {
                        crcs[i as usize] = crc_padded(block, b);
                    }
                    let g = i % l.groups;
                    if (g0..g1).contains(&g) {
                        let shard = if block.len() == b {
                            block
                        } else {
                            pad.fill(0);
                            pad[..block.len()].copy_from_slice(block);
                            &pad
                        };
                        if let Err(e) = encs[(g - g0) as usize].add_original_shard(shard) {
                            add_err.get_or_insert(Error::Coding { group: g, source: e });
                        }
                    }
                }
            })?;
            if let Some(e) = add_err {
                return Err(e);
            }
            if let Some(sha) = sha {
                shas[fi] = sha;
            }
        }
        let encoded: Vec<Result<Vec<Vec<u8>>>> = encs
            .par_iter_mut()
            .enumerate()
            .map(|(j, enc)| {
                let res = enc.encode().map_err(|source| Error::Coding { group: g0 + j as u64, source })?;
                Ok(res.recovery_iter().map(|r| r.to_vec()).collect())
            })
            .collect();
        for (j, rec) in encoded.into_iter().enumerate() {
            let g = g0 + j as u64;
            for (r, data) in rec?.into_iter().enumerate() {
                let k = r as u64 * l.groups + g;
                crcs[(n + k) as usize] = crc32fast::hash(&data);
                let (v, pv) = parity_of(l, k);
                if let Some(file) = targets[v] {
                    file.write_all_at(&data, pv.offset + (k - pv.first) * l.block)
                        .map_err(|source| Error::Write { path: outs[v].clone(), source })?;
                }
            }
        }
        g0 = g1;
    }
    Ok((crcs, shas, passes))
}

/// Calls `f(first block, bytes)` for every chunk of whole blocks of the
/// first `size` bytes of `path` (the last block short), and with `hash`
/// returns their SHA-256, computed on another thread. A file shorter than
/// `size` is an error.
fn each_chunk(path: &Path, size: u64, b: usize, hash: bool, mut f: impl FnMut(u64, &[u8])) -> Result<Option<[u8; 32]>> {
    let err = |source| Error::Read { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(err)?;
    let chunk = b * 4096;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<Vec<u8>>>(4);
        let hasher = hash.then(|| {
            scope.spawn(move || {
                let mut sha = Sha256::new();
                for buf in rx {
                    sha.update(&buf[..]);
                }
                <[u8; 32]>::from(sha.finalize())
            })
        });
        let mut done = 0u64;
        while done < size {
            let want = ((size - done) as usize).min(chunk);
            let mut buf = vec![0u8; want];
            file.read_exact(&mut buf).map_err(err)?;
            f(done / b as u64, &buf);
            done += want as u64;
            if hash {
                let _ = tx.send(std::sync::Arc::new(buf));
            }
        }
        drop(tx);
        Ok(hasher.and_then(|h| h.join().ok()))
    })
}

/// The parity volume holding recovery block `k`.
fn parity_of(l: &Layout, k: u64) -> (usize, &crate::layout::ParityVolume) {
    let v = l.parity.iter().position(|p| k >= p.first && k < p.first + p.count).unwrap_or(0);
    (v, &l.parity[v])
}

/// CRC-32 of a block padded with zeros to `b` bytes.
fn crc_padded(block: &[u8], b: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(block);
    if block.len() < b {
        h.update(&vec![0u8; b - block.len()]);
    }
    h.finalize()
}

/// Writes the metadata at both ends of parity volume `k`.
fn write_meta(l: &Layout, k: usize, crcs: &[Option<u32>], file: &File, path: &Path) -> Result<()> {
    let meta = build_meta(l, k, crcs);
    let pv = &l.parity[k];
    let err = |source| Error::Write { path: path.to_path_buf(), source };
    file.set_len(pv.size).map_err(err)?;
    file.write_all_at(&meta, 0).map_err(err)?;
    // The tail copy, in reverse packet order: descriptor last.
    file.write_all_at(&meta_tail(l, k, crcs), pv.size - meta.len() as u64).map_err(err)?;
    Ok(())
}

fn build_meta(l: &Layout, k: usize, crcs: &[Option<u32>]) -> Vec<u8> {
    let mut out = Vec::new();
    packet::push(&mut out, packet::DESCRIPTOR, &l.descriptor());
    packet::push(&mut out, packet::VOLUME, &(k as u64).to_le_bytes());
    push_table(&mut out, crcs);
    out
}

fn meta_tail(l: &Layout, k: usize, crcs: &[Option<u32>]) -> Vec<u8> {
    let mut out = Vec::new();
    push_table(&mut out, crcs);
    packet::push(&mut out, packet::VOLUME, &(k as u64).to_le_bytes());
    packet::push(&mut out, packet::DESCRIPTOR, &l.descriptor());
    out
}

fn push_table(out: &mut Vec<u8>, crcs: &[Option<u32>]) {
    for (r, run) in crcs.chunks(TABLE_RUN as usize).enumerate() {
        let mut body = Vec::with_capacity(12 + 4 * run.len());
        body.extend_from_slice(&(r as u64 * TABLE_RUN).to_le_bytes());
        body.extend_from_slice(&(run.len() as u32).to_le_bytes());
        for c in run {
            body.extend_from_slice(&c.unwrap_or(0).to_le_bytes());
        }
        packet::push(out, packet::TABLE, &body);
    }
}

/// Blocks rebuilt by one group: (block index, bytes).
type Rebuilt = Vec<(u64, Vec<u8>)>;

/// How to repair.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// Only report; write nothing.
    pub dry_run: bool,
    /// Where the protected files are; the parity volumes' directory if `None`.
    pub dir: Option<PathBuf>,
    /// As for [`ProtectOptions::memory`].
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
    // 1. The descriptor and checksums, from every readable copy. Each
    //    parity volume is read and scanned for packets once.
    let mut paths: Vec<PathBuf> = parity.to_vec();
    let mut scanned: Vec<Scanned> = paths.iter().filter_map(|p| Scanned::read(p)).collect();
    let l = scanned.iter().find_map(|s| s.descriptor.clone()).ok_or_else(|| Error::NoDescriptor(parity.to_vec()))?;
    let parity_dir = paths.first().map(|p| dir_of(p)).unwrap_or_else(|| PathBuf::from("."));
    let dir = opts.dir.clone().unwrap_or_else(|| parity_dir.clone());
    // Parity volumes named by the descriptor but not given are looked for.
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
    let n = l.data_blocks();
    let total = n + l.recovery_blocks();
    let unknown_checksums = (0..total).filter(|i| !table.contains_key(i)).count() as u64;
    let b = l.block as usize;

    // 2. Which blocks are bad.
    let files: Vec<PathBuf> = l.files.iter().map(|f| dir.join(std::ffi::OsStr::from_bytes(&f.name))).collect();
    let mut bad: Vec<bool> = vec![false; total as usize];
    let mut present = vec![false; files.len()];
    for (fi, (f, path)) in l.files.iter().zip(&files).enumerate() {
        let blocks = f.size.div_ceil(l.block);
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => present[fi] = true,
            _ => {
                for k in 0..blocks {
                    bad[(f.first + k) as usize] = true;
                }
                continue;
            }
        }
        // Blocks not read (past the end, unreadable) stay bad.
        for k in 0..blocks {
            bad[(f.first + k) as usize] = true;
        }
        each_block_lenient(path, f.size, b, |k, block| {
            let i = f.first + k;
            bad[i as usize] = table.get(&i) != Some(&crc_padded(block, b));
        })?;
    }
    let mut recovery: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for k in 0..l.recovery_blocks() {
        let (v, pv) = parity_of(&l, k);
        let at = (pv.offset + (k - pv.first) * l.block) as usize;
        let block = volumes[v].as_ref().and_then(|bytes| bytes.get(at..at + b));
        match block {
            Some(block) if table.get(&(n + k)) == Some(&crc32fast::hash(block)) => {
                recovery.insert(k, block);
            }
            _ => bad[(n + k) as usize] = true,
        }
    }

    // 3. Which groups can be rebuilt.
    let mut lost = vec![0u64; l.groups as usize];
    for i in 0..n {
        if bad[i as usize] {
            lost[(i % l.groups) as usize] += 1;
        }
    }
    let mut intact_rec = vec![0u64; l.groups as usize];
    for k in recovery.keys() {
        intact_rec[(k % l.groups) as usize] += 1;
    }
    let short: Vec<(u64, u64, u64)> = (0..l.groups)
        .filter(|&g| lost[g as usize] > intact_rec[g as usize])
        .map(|g| (g, lost[g as usize], intact_rec[g as usize]))
        .collect();
    let fixable = |i: u64| lost[(i % l.groups) as usize] <= intact_rec[(i % l.groups) as usize];

    // 4. Decode the groups that lost blocks and can be rebuilt.
    let mut rebuilt: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let todo: Vec<u64> = (0..l.groups).filter(|&g| lost[g as usize] > 0 && fixable(g)).collect();
    if !opts.dry_run && !todo.is_empty() {
        let per_pass = (opts.memory / (l.group_max() * l.block).max(1)).max(1) as usize;
        for pass in todo.chunks(per_pass) {
            let index: BTreeMap<u64, usize> = pass.iter().enumerate().map(|(j, &g)| (g, j)).collect();
            let mut have: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); pass.len()];
            for (fi, (f, path)) in l.files.iter().zip(&files).enumerate() {
                if !present[fi] {
                    continue;
                }
                each_block_lenient(path, f.size, b, |k, block| {
                    let i = f.first + k;
                    if let Some(&j) = index.get(&(i % l.groups)) {
                        if !bad[i as usize] {
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
                    for (k, shard) in recovery.range(g..).filter(|(k, _)| *k % l.groups == g) {
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
                    if table.get(&i).is_none_or(|&c| c == crc32fast::hash(&data)) {
                        rebuilt.insert(i, data);
                    }
                }
            }
        }
    }

    // 5. Write what was rebuilt.
    let mut outcomes = Vec::new();
    for (fi, (f, path)) in l.files.iter().zip(&files).enumerate() {
        let blocks = f.size.div_ceil(l.block);
        let bad_here: Vec<u64> = (0..blocks).filter(|k| bad[(f.first + k) as usize]).collect();
        let state = if bad_here.is_empty() {
            FileState::Intact
        } else if opts.dry_run {
            let repairable = bad_here.iter().all(|k| fixable(f.first + k));
            let left = ranges(bad_here.iter().copied().filter(|k| !fixable(f.first + k)), l.block, f.size);
            if present[fi] {
                FileState::Damaged { blocks: bad_here.len() as u64, repairable, left, partial: None }
            } else {
                FileState::Missing { repairable }
            }
        } else {
            let fixed: Vec<u64> = bad_here.iter().copied().filter(|k| rebuilt.contains_key(&(f.first + k))).collect();
            let left_blocks: Vec<u64> =
                bad_here.iter().copied().filter(|k| !rebuilt.contains_key(&(f.first + k))).collect();
            write_fixed(f, path, present[fi], &fixed, &rebuilt, l.block, left_blocks.is_empty())?.unwrap_or_else(
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

    // 6. Parity volumes: rewritten whole when damaged and the data is whole.
    let data_whole =
        outcomes.iter().all(|o| matches!(o.state, FileState::Intact | FileState::Repaired { .. } | FileState::Rebuilt));
    let mut parity_out = Vec::new();
    let damaged_pv: Vec<bool> = (0..l.parity.len())
        .map(|v| {
            let pv = &l.parity[v];
            volumes[v].as_ref().is_none_or(|bytes| {
                bytes.len() as u64 != pv.size || (pv.first..pv.first + pv.count).any(|k| bad[(n + k) as usize])
            }) || unknown_checksums > 0
        })
        .collect();
    let ppaths: Vec<PathBuf> =
        l.parity.iter().map(|pv| parity_dir.join(std::ffi::OsStr::from_bytes(&pv.name))).collect();
    if !opts.dry_run && data_whole && damaged_pv.iter().any(|d| *d) {
        let temps: Vec<Option<tempfile::NamedTempFile>> = ppaths
            .iter()
            .zip(&damaged_pv)
            .map(|(p, d)| if *d { fsutil::temp_beside(p).map(Some).map_err(Error::from) } else { Ok(None) })
            .collect::<Result<_>>()?;
        let targets: Vec<Option<&File>> = temps.iter().map(|t| t.as_ref().map(|t| t.as_file())).collect();
        let (crcs, _, _) = encode_into(&l, &files, &targets, &ppaths, opts.memory)?;
        let crcs: Vec<Option<u32>> = crcs.into_iter().map(Some).collect();
        for (v, t) in temps.into_iter().enumerate() {
            if let Some(t) = t {
                write_meta(&l, v, &crcs, t.as_file(), &ppaths[v])?;
                fsutil::persist(t, &ppaths[v], true)?;
            }
        }
    }
    for (v, p) in ppaths.iter().enumerate() {
        let state = match (damaged_pv[v], volumes[v].is_some()) {
            (false, _) => FileState::Intact,
            (true, _) if !opts.dry_run && data_whole => {
                if volumes[v].is_some() {
                    FileState::Repaired {
                        blocks: (l.parity[v].first..l.parity[v].first + l.parity[v].count)
                            .filter(|k| bad[(n + k) as usize])
                            .count() as u64,
                    }
                } else {
                    FileState::Rebuilt
                }
            }
            (true, true) => FileState::Damaged {
                blocks: (l.parity[v].first..l.parity[v].first + l.parity[v].count)
                    .filter(|k| bad[(n + k) as usize])
                    .count() as u64,
                repairable: data_whole || (opts.dry_run && short.is_empty()),
                left: Vec::new(),
                partial: None,
            },
            (true, false) => FileState::Missing { repairable: short.is_empty() },
        };
        parity_out.push(FileOutcome { path: p.clone(), state });
    }
    Ok(RepairReport { layout: l, files: outcomes, parity: parity_out, short, unknown_checksums })
}

/// Like [`each_block`], but a short file ends the blocks early and an
/// unreadable stretch (a bad sector) is skipped: `f` is called only for
/// blocks read whole (or the file's last, short one).
fn each_block_lenient(path: &Path, size: u64, b: usize, mut f: impl FnMut(u64, &[u8])) -> Result<()> {
    let file = File::open(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let chunk = (b * 2048) as u64;
    let mut buf = vec![0u8; chunk as usize];
    let mut off = 0u64;
    while off < size {
        let want = (size - off).min(chunk) as usize;
        match read_full_at(&file, &mut buf[..want], off) {
            Ok(got) => {
                let usable = if got == want { got } else { got / b * b };
                for (j, block) in buf[..usable].chunks(b).enumerate() {
                    f(off / b as u64 + j as u64, block);
                }
                if got < want {
                    return Ok(()); // the file is short
                }
            }
            Err(_) => {
                for (j, at) in (off..off + want as u64).step_by(b).enumerate() {
                    let len = (size - at).min(b as u64) as usize;
                    if read_full_at(&file, &mut buf[..len], at).is_ok_and(|g| g == len) {
                        f(off / b as u64 + j as u64, &buf[..len]);
                    }
                }
            }
        }
        off += want as u64;
    }
    Ok(())
}

/// Reads into `buf` at `at` until it is full or the file ends.
fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(r) => got += r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
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
