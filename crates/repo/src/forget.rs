//! `forget`: retention. Old snapshots go; data that newer snapshots still
//! need is consolidated before any archive is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use manifest::{Entry, Kind};

use crate::record::{diff_lines, Line, Location, Record, Status, RECORD_NAME};
use crate::repository::{name_time, Filter, Repo};
use crate::restore::{member_start, Holder};
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
    /// Kept snapshots whose record was listed relative to a forgotten one,
    /// written again relative to the nearest kept one (or whole).
    pub rebase: Vec<String>,
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
        let (y, m, _) = manifest::civil_from_days(days);
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

/// Applies a retention policy to the repository at `repo`: to the
/// snapshots of each host and source directory on its own (a snapshot of
/// one source never pushes out one of another), and only to those that
/// `filter` accepts (the others are kept).
pub fn forget(
    repo: &Path,
    policy: &Policy,
    filter: &Filter,
    dry_run: bool,
    keys: &xtar::Keys,
    obs: &dyn xtar::Observer,
) -> Result<ForgetPlan> {
    if *policy == Policy::default() {
        return Err(Error::NoRetentionRule);
    }
    let repo = Repo::open_keyed(repo, keys, crate::default_cache_dir())?;
    // Without the key, only this machine's records could be read: what
    // other snapshots need would be unknown, and could be deleted.
    if repo.is_encrypted() && repo.master_key().is_none() {
        return Err(Error::ForgetNeedsKey { repo: repo.root().to_path_buf() });
    }
    let _lock = repo.lock()?;
    repo.remove_stale();
    let mut records: BTreeMap<String, std::sync::Arc<Record>> = BTreeMap::new();
    let mut plan = ForgetPlan::default();
    for name in repo.names()? {
        match repo.record(&name) {
            Ok(r) => {
                records.insert(name, r);
            }
            Err(_) => plan.unreadable.push(name),
        }
    }
    let complete: Vec<String> =
        records.values().filter(|r| r.status == Status::Complete).map(|r| r.name.clone()).collect();
    let mut groups: BTreeMap<(&[u8], &[u8]), Vec<String>> = BTreeMap::new();
    let mut kept = BTreeSet::new();
    for name in &complete {
        let r = &records[name];
        if filter.accepts(&r.host, &r.root) {
            groups.entry((&r.host, &r.root)).or_default().push(name.clone());
        } else {
            kept.insert(name.clone());
        }
    }
    for names in groups.values() {
        kept.extend(keep(names, policy));
    }
    plan.keep = complete.iter().filter(|n| kept.contains(*n)).cloned().collect();
    plan.forget = complete.iter().filter(|n| !kept.contains(*n)).cloned().collect();
    let newest = complete.last().cloned();

    // What the kept snapshots need, archive by archive: member → line. A
    // kept snapshot whose listing cannot be put together stops `forget`:
    // what it needs is unknown.
    let mut needed: BTreeMap<String, BTreeMap<Vec<u8>, Line>> = BTreeMap::new();
    for name in &plan.keep {
        for l in &repo.snapshot(name)?.lines {
            if let (Some(loc), Some(m)) = (&l.loc, l.member_name()) {
                needed.entry(loc.archive.clone()).or_default().entry(m.to_vec()).or_insert_with(|| l.clone());
            }
        }
        if records[name].base.as_ref().is_some_and(|b| !kept.contains(b)) {
            plan.rebase.push(name.clone());
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
        let archive_exists = repo.archive_exists(name);
        match needed.get(name) {
            _ if !archive_exists => plan.delete.push(name.clone()),
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
        return Err(Error::MissingArchive { archive: missing.clone() });
    }
    if dry_run {
        return Ok(plan);
    }
    // First, no kept snapshot is listed relative to a forgotten one any
    // more (the forgotten records are still there until the end, so every
    // step leaves every kept snapshot whole).
    for name in &plan.rebase {
        rebase(&repo, &records, &kept, name, needed.get(name), obs)?;
    }
    // A run killed while it rebased may have left a copy that differs from
    // its archive's record: the archive's is the one that holds.
    for name in &plan.keep {
        repo.refresh_copy(name)?;
    }
    for name in &plan.rebase {
        repo.refresh_cache(name)?;
    }
    // Then the forgotten snapshots go: the copy of each record first, so
    // that a run killed here leaves no copy that outlives its archive.
    for name in &plan.forget {
        repo.delete_object(&crate::repository::copy_rel(name))?;
        if let Some(s) = &repo.sealing {
            s.forget(name);
        }
    }
    // Newest first: a forgotten snapshot still listed after a run killed
    // here is listed relative to older ones only, which are still there.
    let mut steps: Vec<(&String, bool)> = plan.consolidate.iter().map(|(n, _, _)| (n, true)).collect();
    steps.extend(plan.delete.iter().map(|n| (n, false)));
    steps.sort_by(|a, b| b.0.cmp(a.0));
    for (name, keeps_data) in steps {
        if keeps_data {
            consolidate(&repo, &records[name], &needed[name], obs)?;
            continue;
        }
        // The archive, then any copy of its record (an encrypted
        // repository keeps one for checkpoints and data archives too).
        for rel in [format!("{}/{name}.xtar", crate::repository::ARCHIVES), crate::repository::copy_rel(name)] {
            repo.delete_object(&rel)?;
        }
        if let Some(s) = &repo.sealing {
            s.forget(name);
        }
    }
    repo.clear_cache();
    repo.set_latest(plan.keep.last().map(String::as_str))?;
    Ok(plan)
}

/// Writes the record of kept snapshot `name` again, relative to the
/// nearest kept snapshot of its chain (or whole when there is none): its
/// copy first, then its archive (whose members are copied byte for byte).
fn rebase(
    repo: &Repo,
    records: &BTreeMap<String, std::sync::Arc<Record>>,
    kept: &BTreeSet<String>,
    name: &str,
    members: Option<&BTreeMap<Vec<u8>, Line>>,
    obs: &dyn xtar::Observer,
) -> Result<()> {
    let own = &records[name];
    let mut anchor = own.base.clone();
    while let Some(b) = anchor.as_ref().filter(|b| !kept.contains(*b)) {
        anchor = records.get(b).and_then(|r| r.base.clone());
    }
    let whole = repo.snapshot(name)?;
    let mut rec = whole.clone();
    if let Some(a) = &anchor {
        let (changed, removed) = diff_lines(&repo.snapshot(a)?.lines, &whole.lines);
        (rec.lines, rec.removed, rec.base) = (changed, removed, Some(a.clone()));
    }
    repo.write_record_copy(name, &rec.to_text())?;
    if !repo.archive_exists(name) {
        return Ok(());
    }
    let empty = BTreeMap::new();
    rewrite(repo, &whole, members.unwrap_or(&empty), obs, |offsets| {
        // The members this archive holds have moved: their offsets too.
        for l in &mut rec.lines {
            if let (Some(loc), Some(m)) = (l.loc.clone(), l.member_name().map(<[u8]>::to_vec)) {
                if loc.archive == name {
                    if let Some(&o) = offsets.get(&m) {
                        l.loc = Some(Location { offset: o, ..loc });
                    }
                }
            }
        }
        rec.to_text()
    })?;
    // The offsets changed: the copy must say the same as the archive.
    repo.refresh_copy(name)
}

/// Rewrites archive `rec.name` to hold only `members`, as a data archive:
/// each kept member is copied byte for byte (nothing is decompressed or
/// compressed again), inside containers for the directories above it. The
/// new archive replaces the old one atomically, so at every moment the
/// repository holds every member that kept snapshots need.
fn consolidate(repo: &Repo, rec: &Record, members: &BTreeMap<Vec<u8>, Line>, obs: &dyn xtar::Observer) -> Result<()> {
    rewrite(repo, rec, members, obs, |offsets| {
        let mut data = Record::new(&rec.name, Status::Data, &rec.root);
        data.host = rec.host.clone();
        data.lines = offsets_lines(rec, members, offsets);
        data.stats.files = data.lines.len() as u64;
        data.stats.bytes = data.lines.iter().map(|l| l.entry.size).sum();
        data.to_text()
    })
}

/// The lines of a data record: each kept member under its own name, at
/// its new offset.
fn offsets_lines(rec: &Record, members: &BTreeMap<Vec<u8>, Line>, offsets: &BTreeMap<Vec<u8>, u64>) -> Vec<Line> {
    members
        .iter()
        .filter_map(|(m, l)| {
            let offset = *offsets.get(m)?;
            let entry = Entry { path: m.clone(), kind: Kind::File, ..l.entry.clone() };
            Some(Line { entry, loc: Some(Location { archive: rec.name.clone(), member: None, offset }), stat: None })
        })
        .collect()
}

/// Rewrites archive `rec.name` to hold only `members`, each copied byte
/// for byte inside containers for the directories above it, with the
/// record `record` makes from where each member now starts.
fn rewrite(
    repo: &Repo,
    rec: &Record,
    members: &BTreeMap<Vec<u8>, Line>,
    obs: &dyn xtar::Observer,
    record: impl FnOnce(&BTreeMap<Vec<u8>, u64>) -> Vec<u8>,
) -> Result<()> {
    if repo.sealing.is_some() {
        return rewrite_sealed(repo, rec, members, obs, record);
    }
    let old_path = repo.archive_path(&rec.name);
    let old = repo.open_archive(&rec.name)?;
    let old = old.as_ref();
    let tree = consolidated_tree(rec, members);
    let steps = xtar::plan(tree.iter().map(|e| (e.path.as_slice(), e.kind == Kind::Dir)));
    // Where each kept member starts, checked against its name, before
    // anything is written.
    let mut starts = Vec::with_capacity(tree.len());
    for e in &tree {
        starts.push(match members.get(&e.path).and_then(|l| l.loc.as_ref()) {
            Some(loc) if e.kind == Kind::File => member_start(repo, old, &rec.name, &e.path, loc.offset)?,
            _ => 0,
        });
    }
    obs.start(tree.iter().map(|e| e.size).sum());
    let copts = xtar::CompressOptions { jobs: 1, ..Default::default() };
    repo.replace_archive(&rec.name, &crate::backup::staging_dir(), |file, out| {
        let mut w = xtar::ArchiveWriter::new(file, out, &rec.root, &copts)?;
        for step in &steps {
            match *step {
                xtar::Step::Open(i) => w.open_dir(&tree[i])?,
                xtar::Step::Close => w.close_dir()?,
                xtar::Step::Add(i) => {
                    w.copy_member(&tree[i], old, &old_path, starts[i])?;
                    obs.advance(tree[i].size);
                }
            }
        }
        let text = {
            let written = w.written();
            let offsets: BTreeMap<Vec<u8>, u64> = written
                .entries
                .iter()
                .filter(|e| e.kind == Kind::File)
                .filter_map(|e| Some((e.path.clone(), *written.offsets.get(&e.path)?)))
                .collect();
            record(&offsets)
        };
        w.add_extra(RECORD_NAME, &text)?;
        w.finish()
    })?;
    repo.wait_upload()
}

/// [`rewrite`] of an encrypted repository's archive: a new version 4
/// archive encrypted to the master key, each kept file's compressed data
/// decrypted from the old one and copied (not compressed again), with the
/// keyring and the sealed record; then the record's copy.
fn rewrite_sealed(
    repo: &Repo,
    rec: &Record,
    members: &BTreeMap<Vec<u8>, Line>,
    obs: &dyn xtar::Observer,
    record: impl FnOnce(&BTreeMap<Vec<u8>, u64>) -> Vec<u8>,
) -> Result<()> {
    use xtar::TreeSink;
    let Some(sealing) = repo.sealing.as_ref() else { return Err(Error::NoRecord { archive: rec.name.clone() }) };
    let old = repo.open_archive(&rec.name)?;
    let holder = Holder::open(repo, old.as_ref(), &rec.name, obs)?;
    let tree = consolidated_tree(rec, members);
    let steps = xtar::plan(tree.iter().map(|e| (e.path.as_slice(), e.kind == Kind::Dir)));
    obs.start(tree.iter().map(|e| e.size).sum());
    let spill =
        if repo.is_remote() { crate::backup::staging_dir() } else { repo.root().join(crate::repository::ARCHIVES) };
    let copts = xtar::CompressOptions {
        jobs: 1,
        version: xtar::format::SEALED_VERSION,
        recipients: vec![sealing.keyring.recipient.clone()],
        ..Default::default()
    };
    let keyring = sealing.keyring.to_text().into_bytes();
    let mut sealed_record = Vec::new();
    std::fs::create_dir_all(&spill).map_err(crate::io_err(&spill))?;
    repo.replace_archive(&rec.name, &crate::backup::staging_dir(), |file, out| {
        let mut w = xtar::PackedWriter::new(file, out, &rec.root, &copts, &spill)?;
        for step in &steps {
            match *step {
                xtar::Step::Open(i) => w.open_dir(&tree[i])?,
                xtar::Step::Close => w.close_dir()?,
                xtar::Step::Add(i) => {
                    let e = &tree[i];
                    let offset = members.get(&e.path).and_then(|l| l.loc.as_ref()).map_or(0, |l| l.offset);
                    let failed = |message: String| xtar::Error::Member {
                        member: String::from_utf8_lossy(&e.path).into(),
                        message,
                    };
                    let (_, mut r) = holder.member(repo, &e.path, offset).map_err(|e| failed(e.to_string()))?;
                    let local = xtar::format::zip::read_local_header(&mut r).map_err(failed)?;
                    w.add_zip_data(e, &local, &mut r)?;
                    obs.advance(e.size);
                }
            }
        }
        w.finish_with(|written| {
            let offsets: BTreeMap<Vec<u8>, u64> = written.offsets.iter().map(|(p, o)| (p.clone(), *o)).collect();
            let text = record(&offsets);
            sealed_record = sealing
                .seal(&text)
                .map_err(|e| xtar::Error::Write { path: out.to_path_buf(), source: std::io::Error::other(e) })?;
            Ok(vec![
                (crate::sealed::ARCHIVE_KEYRING.to_vec(), xtar::Extra::Bytes(keyring.clone())),
                (crate::sealed::SEALED_RECORD.to_vec(), xtar::Extra::Bytes(sealed_record.clone())),
            ])
        })
    })?;
    repo.write_copy(&rec.name, &sealed_record)
}

/// The entries of a consolidated archive, in canonical order: each kept
/// file under the name of its member, and the directories above them
/// (with their metadata from the record where it has them).
fn consolidated_tree(rec: &Record, members: &BTreeMap<Vec<u8>, Line>) -> Vec<Entry> {
    let mut dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    dirs.insert(Vec::new());
    for m in members.keys() {
        let mut p = m.as_slice();
        while !p.is_empty() {
            p = manifest::parent_of(p);
            if !dirs.insert(p.to_vec()) {
                break;
            }
        }
    }
    let root_mtime = rec.lines.first().filter(|l| l.entry.path.is_empty()).map(|l| l.entry.mtime);
    let mut tree: Vec<Entry> = dirs
        .into_iter()
        .map(|path| {
            let found = rec
                .lines
                .binary_search_by(|l| manifest::cmp_paths(&l.entry.path, &path))
                .ok()
                .map(|i| &rec.lines[i].entry)
                .filter(|e| e.kind == Kind::Dir);
            match found {
                Some(e) => e.clone(),
                None => Entry {
                    path,
                    kind: Kind::Dir,
                    mode: 0o755,
                    mtime: root_mtime.unwrap_or(manifest::Timestamp::new(0, 0)),
                    size: 0,
                    sha256: None,
                    target: None,
                },
            }
        })
        .collect();
    tree.extend(members.iter().map(|(m, l)| Entry { path: m.clone(), kind: Kind::File, ..l.entry.clone() }));
    tree.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
    tree
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::FileExt;

    /// The bytes of the member whose first header block is at `at`.
    fn member_bytes(path: &Path, at: u64) -> Vec<u8> {
        let f = std::fs::File::open(path).unwrap();
        let (_, size, data) = xtar::read::member_at(&f, path, at).unwrap();
        let mut v = vec![0u8; (data - at + size) as usize];
        f.read_exact_at(&mut v, at).unwrap();
        v
    }

    #[test]
    fn consolidation_copies_kept_members_byte_for_byte() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let repo_path = t.path().join("repo");
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::write(src.join("a.txt"), b"kept a ".repeat(300)).unwrap();
        std::fs::write(src.join("b.txt"), b"replaced b").unwrap();
        std::fs::write(src.join("sub/deeper/c.bin"), (0..9000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>())
            .unwrap();
        std::fs::write(src.join("sub/copy.bin"), (0..9000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>()).unwrap();
        // Level 1: members compressed again at any other level would differ.
        let mut opts = crate::BackupOptions::default();
        opts.compress.level = 1;
        let first = crate::backup(&src, &repo_path, &opts, &xtar::Silent).unwrap();
        let repo = Repo::open(&repo_path).unwrap();
        let old_path = repo.archive_path(&first.name);
        let saved = t.path().join("saved.xtar");
        std::fs::copy(&old_path, &saved).unwrap();
        let old_rec = repo.record(&first.name).unwrap();

        std::fs::write(src.join("b.txt"), b"new b, stored in the second archive").unwrap();
        let second = crate::backup(&src, &repo_path, &opts, &xtar::Silent).unwrap();
        let plan = forget(
            &repo_path,
            &Policy { keep_last: 1, ..Default::default() },
            &Filter::default(),
            false,
            &Default::default(),
            &xtar::Silent,
        )
        .unwrap();
        assert_eq!(plan.forget, vec![first.name.clone()]);
        assert_eq!(plan.consolidate.len(), 1, "{plan:?}");

        let repo = Repo::open(&repo_path).unwrap();
        let data = repo.record(&first.name).unwrap();
        assert_eq!(data.status, Status::Data);
        let kept: Vec<&Line> = data.lines.iter().filter(|l| l.loc.is_some()).collect();
        assert!(kept.len() >= 3, "{kept:?}");
        assert!(!kept.iter().any(|l| l.entry.path == b"b.txt"), "the replaced file is gone");
        for l in kept {
            let old = old_rec.lines.iter().find(|o| o.member_name() == l.member_name() && o.loc.is_some()).unwrap();
            assert_eq!(
                member_bytes(&old_path, l.loc.as_ref().unwrap().offset),
                member_bytes(&saved, old.loc.as_ref().unwrap().offset),
                "member of {}",
                String::from_utf8_lossy(&l.entry.path)
            );
        }
        let dest = t.path().join("restored");
        let r = crate::restore(
            &repo_path,
            Some(&second.name),
            &crate::Filter::default(),
            &dest,
            &xtar::ExtractOptions::default(),
            &xtar::Silent,
        )
        .unwrap();
        assert!(r.is_clean());
        for p in ["a.txt", "b.txt", "sub/deeper/c.bin", "sub/copy.bin"] {
            assert_eq!(std::fs::read(dest.join(p)).unwrap(), std::fs::read(src.join(p)).unwrap(), "{p}");
        }
        let check = crate::check(&repo_path, true, &Default::default(), &xtar::Silent).unwrap();
        assert!(check.is_clean(), "{check:?}");
    }

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
