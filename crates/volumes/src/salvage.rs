//! Salvaging a set: every volume present, then the files cut into parts.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use manifest::{Entry, Kind};
use xtar::format::{self, MemberName};
use xtar::scan::{BlockScan, Scanned};
use xtar::{ExtractOptions, Observer, Restorer};

use crate::read::{join_parts, FoundParts, SetReport, VolumeSet};
use crate::table::{lossy, Place, Table};
use crate::Result;

/// Finds the part members of a volume by their tar headers alone, with
/// the same damage-tolerant scan as salvage: damage elsewhere in the
/// volume does not hide them. Says `false` (and stops) when the volume's
/// table names another set.
fn scan_parts(path: &Path, k: u32, set_id: &str, found: &mut FoundParts) -> Result<bool> {
    let mut scan = BlockScan::open(path)?;
    while let Some(block) = scan.next_block()? {
        let Scanned::Member(f) = block else { continue };
        if !f.regular || !f.fits {
            continue;
        }
        match MemberName::parse(&f.name) {
            MemberName::Part(p, part) => {
                found.entry(p).or_default().push((part, k, f.data, f.size));
            }
            MemberName::Volumes => {
                // The set id is on the second line, near the start.
                let head = scan.read_up_to(f.size.min(256))?;
                if Table::set_id_in(&head).is_some_and(|id| id != set_id.as_bytes()) {
                    return Ok(false);
                }
            }
            // Containers are stepped into: their members follow.
            MemberName::Container(_) => continue,
            _ => {}
        }
        scan.seek_to(f.next)?;
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
    let eopts =
        ExtractOptions { overwrite: opts.overwrite, jobs: opts.jobs, paths: Vec::new(), keys: opts.keys.clone() };
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
