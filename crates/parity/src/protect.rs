//! Protecting files: recovery blocks computed in passes over the data,
//! written into parity volumes with their metadata at both ends.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::blocks::{crc_padded, each_chunk, parity_of};
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

/// Reads the data files in passes, computing block CRCs and file SHA-256s,
/// and writes the recovery blocks of every group into the parity volumes
/// that have a target. Returns the CRCs of all data then recovery blocks,
/// the SHA-256s, and the number of passes.
pub(crate) fn encode_into(
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

/// Writes the metadata at both ends of parity volume `k`.
pub(crate) fn write_meta(l: &Layout, k: usize, crcs: &[Option<u32>], file: &File, path: &Path) -> Result<()> {
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
