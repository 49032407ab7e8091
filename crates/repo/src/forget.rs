//! `forget`: retention. Old snapshots go; data that newer snapshots still
//! need is consolidated before any archive is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use manifest::Entry;

use crate::record::{Line, Location, Record, Stats, Status, RECORD_NAME};
use crate::repository::{name_time, Repo};
use crate::restore::read_members;
use crate::{Error, Result};

/// Which snapshots to keep. A snapshot is kept if any rule keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest N snapshots.
    pub keep_last: usize,
    /// The newest snapshot of each of the last N days (UTC) that have one.
    pub keep_daily: usize,
    /// The newest of each of the last N ISO weeks that have one.
    pub keep_weekly: usize,
    /// The newest of each of the last N months that have one.
    pub keep_monthly: usize,
}

/// What `forget` does (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetPlan {
    /// Snapshots kept.
    pub keep: Vec<String>,
    /// Snapshots forgotten.
    pub forget: Vec<String>,
    /// Archives deleted: nothing kept needs them.
    pub delete: Vec<String>,
    /// Archives rewritten to hold only what kept snapshots still need:
    /// name, members kept, bytes of content kept.
    pub consolidate: Vec<(String, u64, u64)>,
    /// Archives left alone because their record cannot be read.
    pub unreadable: Vec<String>,
}

fn civil_from_days(z: i64) -> (i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// The snapshots a policy keeps, from names sorted oldest first.
fn keep(names: &[String], p: &Policy) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    let mut rules: [(usize, Option<i64>); 4] =
        [(p.keep_last, None), (p.keep_daily, None), (p.keep_weekly, None), (p.keep_monthly, None)];
    for name in names.iter().rev() {
        let secs = name_time(name)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let days = secs.div_euclid(86_400);
        let (y, m) = civil_from_days(days);
        // Day 0 was a Thursday; ISO weeks start on Monday.
        let buckets = [None, Some(days), Some((days + 3).div_euclid(7)), Some(y * 12 + m)];
        for (rule, bucket) in rules.iter_mut().zip(buckets) {
            let (left, last) = rule;
            if *left == 0 {
                continue;
            }
            if bucket.is_none() || bucket != *last {
                kept.insert(name.clone());
                *left -= 1;
                *last = bucket;
            }
        }
    }
    kept
}

/// Applies a retention policy to the repository at `repo`.
pub fn forget(repo: &Path, policy: &Policy, dry_run: bool, obs: &dyn xtar::Observer) -> Result<ForgetPlan> {
    if *policy == Policy::default() {
        return Err(Error::Usage("give at least one --keep-* rule; forget will not remove every snapshot".into()));
    }
    let repo = Repo::open(repo)?;
    let _lock = repo.lock()?;
    repo.remove_stale();
    let archives = repo.archives()?;
    let mut records: BTreeMap<String, std::sync::Arc<Record>> = BTreeMap::new();
    let mut plan = ForgetPlan::default();
    for name in &archives {
        match repo.record(name) {
            Ok(r) => {
                records.insert(name.clone(), r);
            }
            Err(_) => plan.unreadable.push(name.clone()),
        }
    }
    let complete: Vec<String> =
        records.values().filter(|r| r.status == Status::Complete).map(|r| r.name.clone()).collect();
    let kept = keep(&complete, policy);
    plan.keep = complete.iter().filter(|n| kept.contains(*n)).cloned().collect();
    plan.forget = complete.iter().filter(|n| !kept.contains(*n)).cloned().collect();
    let newest = complete.last().cloned();

    // What the kept snapshots need, archive by archive: member → line.
    let mut needed: BTreeMap<String, BTreeMap<Vec<u8>, Line>> = BTreeMap::new();
    for name in &plan.keep {
        for l in &records[name].lines {
            if let (Some(loc), Some(m)) = (&l.loc, l.member_name()) {
                needed.entry(loc.archive.clone()).or_default().entry(m.to_vec()).or_insert_with(|| l.clone());
            }
        }
    }
    for (name, rec) in &records {
        if kept.contains(name) {
            continue;
        }
        // Checkpoints of an unfinished run: the next backup reuses them.
        if rec.status == Status::Partial && newest.as_ref().is_none_or(|n| name > n) {
            continue;
        }
        match needed.get(name) {
            None => plan.delete.push(name.clone()),
            Some(members) => {
                let own = rec.lines.iter().filter(|l| l.loc.as_ref().is_some_and(|loc| loc.archive == *name)).count();
                if rec.status != Status::Complete && own == members.len() {
                    continue; // already holds exactly what is needed
                }
                let bytes = members.values().map(|l| l.entry.size).sum();
                plan.consolidate.push((name.clone(), members.len() as u64, bytes));
            }
        }
    }
    if let Some(missing) = needed.keys().find(|a| !records.contains_key(*a) && !plan.unreadable.contains(a)) {
        return Err(Error::Usage(format!("kept snapshots refer to archive {missing}, which is missing; run check")));
    }
    if dry_run {
        return Ok(plan);
    }
    for (name, _, _) in &plan.consolidate {
        consolidate(&repo, &records[name], &needed[name], obs)?;
    }
    for name in &plan.delete {
        let path = repo.archive_path(name);
        std::fs::remove_file(&path).map_err(crate::io_err(&path))?;
    }
    repo.clear_cache();
    repo.set_latest(plan.keep.last().map(String::as_str))?;
    Ok(plan)
}

/// Rewrites archive `rec.name` to hold only `members`, as a data archive.
/// The new archive replaces the old one atomically, so at every moment
/// the repository holds every member that kept snapshots need.
fn consolidate(repo: &Repo, rec: &Record, members: &BTreeMap<Vec<u8>, Line>, obs: &dyn xtar::Observer) -> Result<()> {
    let stage =
        tempfile::Builder::new().prefix(".forget-").tempdir_in(repo.root()).map_err(crate::io_err(repo.root()))?;
    let tree = stage.path().join("tree");
    let lines: Vec<Line> = members
        .iter()
        .map(|(m, l)| {
            let mut l = l.clone();
            l.entry = Entry { path: m.clone(), ..l.entry };
            if let Some(loc) = l.loc.as_mut() {
                loc.member = None;
            }
            l
        })
        .collect();
    let opts = xtar::ExtractOptions::default();
    let mut restorer = xtar::Restorer::new(Some(&tree), &opts, obs)?;
    restorer.entries(lines.iter().map(|l| l.entry.clone()).collect())?;
    read_members(repo, &lines, &mut restorer)?;
    let r = restorer.finish()?;
    if !r.is_clean() {
        return Err(Error::Usage(format!(
            "archive {}: {} member(s) that kept snapshots need cannot be read; nothing was deleted (run check)",
            rec.name, r.problems
        )));
    }
    let copts = xtar::CompressOptions { root_label: Some(rec.root.clone()), ..Default::default() };
    let (entries, _) = xtar::walk_source(&tree, &copts, obs)?;
    let out = repo.archive_path(&rec.name);
    xtar::write_new_file(&out, true, |file, out| {
        xtar::write_entries(&tree, entries, file, out, &copts, obs, &mut |w: &xtar::Written| {
            let mut data = Record {
                name: rec.name.clone(),
                status: Status::Data,
                parent: None,
                root: rec.root.clone(),
                stats: Stats::default(),
                lines: Vec::new(),
            };
            for e in &w.entries {
                if let (Some(&offset), manifest::Kind::File) = (w.offsets.get(&e.path), e.kind) {
                    data.stats.files += 1;
                    data.stats.bytes += e.size;
                    let loc = Location { archive: rec.name.clone(), member: None, offset };
                    data.lines.push(Line { entry: e.clone(), loc: Some(loc), stat: None });
                }
            }
            vec![(RECORD_NAME.to_vec(), data.to_text())]
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_buckets() {
        let names: Vec<String> = [
            "20261001T100000.000000Z",
            "20261101T100000.000000Z",
            "20261115T100000.000000Z",
            "20261122T080000.000000Z",
            "20261122T200000.000000Z",
            "20261123T090000.000000Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let k = |p: Policy| keep(&names, &p).into_iter().collect::<Vec<_>>();
        assert_eq!(k(Policy { keep_last: 2, ..Default::default() }), vec![names[4].clone(), names[5].clone()]);
        // Newest of each day: the 23rd, then the evening of the 22nd.
        assert_eq!(k(Policy { keep_daily: 2, ..Default::default() }), vec![names[4].clone(), names[5].clone()]);
        // 2026-11-23 is a Monday: a new ISO week.
        assert_eq!(k(Policy { keep_weekly: 2, ..Default::default() }), vec![names[4].clone(), names[5].clone()]);
        assert_eq!(k(Policy { keep_monthly: 2, ..Default::default() }), vec![names[0].clone(), names[5].clone()]);
        assert_eq!(
            k(Policy { keep_last: 1, keep_monthly: 3, ..Default::default() }),
            vec![names[0].clone(), names[5].clone()]
        );
    }
}
