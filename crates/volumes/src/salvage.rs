//! Salvaging a set: every volume present, then the files cut into parts.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use manifest::{Entry, Kind};
use xtar::format::tar::{self as tarfmt, Block, BLOCK};
use xtar::format::{self, MemberName};
use xtar::{ExtractOptions, Observer, Restorer};

use crate::read::{join_parts, FoundParts, SetReport, VolumeSet};
use crate::table::{lossy, Place};
use crate::Result;

/// Finds the part members of a volume by their tar headers alone, as
/// salvage does: damage elsewhere in the volume does not hide them.
/// Says `false` (and stops) when the volume's table names another set.
fn scan_parts(path: &Path, k: u32, set_id: &str, found: &mut FoundParts) -> Result<bool> {
    let read_err = |source| xtar::Error::Read { path: path.to_path_buf(), source };
    let f = File::open(path).map_err(read_err)?;
    let len = f.metadata().map_err(read_err)?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut pos = 0u64;
    let mut long: Option<(Vec<u8>, u64)> = None;
    let mut block = [0u8; BLOCK];
    let io = |source| xtar::Error::Read { path: path.to_path_buf(), source };
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
    opts: &xtar::SalvageOptions,
    obs: &dyn Observer,
) -> Result<(Vec<(u32, xtar::SalvageReport)>, SetReport)> {
    let mut reports = Vec::new();
    let mut found: FoundParts = HashMap::new();
    for (i, vol) in set.volumes.iter().enumerate() {
        let Some(vol) = vol else { continue };
        let k = i as u32 + 1;
        let mut parts = FoundParts::new();
        if !scan_parts(vol, k, &set.table.set_id, &mut parts)? {
            obs.warning(&xtar::Error::Volumes {
                path: vol.clone(),
                message: "this volume belongs to another set; skipped".into(),
            });
            continue;
        }
        for (p, v) in parts {
            found.entry(p).or_default().extend(v);
        }
        match xtar::salvage(vol, dest, opts, obs) {
            Ok(r) => reports.push((k, r)),
            Err(e @ (xtar::Error::Write { .. } | xtar::Error::Exists { .. })) => return Err(e.into()),
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
            obs.warning(&xtar::Error::Member { member: lossy(&e.path), message: set.lost_message(&gone) });
        }
        out.lost.push((e.path.clone(), gone));
    }
    join_parts(set, &found, &mut restorer, &|_| true)?;
    out.report = restorer.finish()?;
    Ok((reports, out))
}
