//! `check`: every snapshot can be restored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use manifest::Entry;

use crate::record::{Line, Status};
use crate::repository::Repo;
use crate::restore::{read_members, Holder};
use crate::Result;

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Complete snapshots checked.
    pub snapshots: u64,
    /// Archives in the repository.
    pub archives: u64,
    /// Archives read whole (decompressed and hashed; without a key, their
    /// bytes checked against their CRC-32s).
    pub read: u64,
    /// Distinct members referred to, each found (and with `read_data`,
    /// decompressed and hashed) once.
    pub members: u64,
    /// Everything wrong, one message each, naming the archive, snapshot
    /// or file.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Collects warnings as messages.
struct Collect<'a> {
    inner: &'a dyn xtar::Observer,
    messages: Mutex<Vec<String>>,
}

impl xtar::Observer for Collect<'_> {
    fn advance(&self, bytes: u64) {
        self.inner.advance(bytes);
    }
    fn warning(&self, w: &xtar::Error) {
        if let Ok(mut m) = self.messages.lock() {
            m.push(w.to_string());
        }
    }
}

/// Checks that every snapshot's records are readable, in both copies, that
/// every snapshot's listing can be put together, and that every member
/// they refer to is where they say; with `read_data`, also decompresses
/// every referred member and checks its CRC-32, size and SHA-256.
pub fn check(repo: &Path, read_data: bool, keys: &xtar::Keys, obs: &dyn xtar::Observer) -> Result<CheckReport> {
    let read = if read_data { ReadData::All } else { ReadData::None };
    check_reading(repo, read, keys, obs)
}

/// Which archives `check` reads whole (downloads, in an object store):
/// a user spreads a full check over days with a part each day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadData {
    /// None: records and where each file is only.
    None,
    /// Every archive.
    All,
    /// Part `k` of `n` (1-based): the archives whose place in the sorted
    /// list of all, counted from 0, is `k - 1` modulo `n`. Parts 1 to `n`
    /// together read every archive once.
    Part {
        /// Which part.
        k: u32,
        /// Of how many.
        n: u32,
    },
    /// A random choice of this many per thousand of the archives (at
    /// least one when there is any).
    Permille(u32),
}

impl ReadData {
    /// Parses `1/5` or `10%` (as `--read-data-subset` takes them).
    pub fn parse_subset(s: &str) -> std::result::Result<ReadData, String> {
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| format!("`{s}`: expected a percentage such as 10%"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!("`{s}`: a percentage above 0 and at most 100"));
            }
            return Ok(ReadData::Permille((v * 10.0).round().max(1.0) as u32));
        }
        let (k, n) =
            s.split_once('/').ok_or_else(|| format!("`{s}`: expected K/N (such as 1/5) or P% (such as 10%)"))?;
        let (k, n): (u32, u32) = (
            k.trim().parse().map_err(|_| format!("`{s}`: bad part number"))?,
            n.trim().parse().map_err(|_| format!("`{s}`: bad number of parts"))?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(format!("`{s}`: K/N needs 1 <= K <= N"));
        }
        Ok(ReadData::Part { k, n })
    }

    /// The archives of `all` (sorted) to read whole.
    fn choose(self, all: &[String]) -> BTreeSet<String> {
        match self {
            ReadData::None => BTreeSet::new(),
            ReadData::All => all.iter().cloned().collect(),
            ReadData::Part { k, n } => all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as u64 % u64::from(n) == u64::from(k - 1))
                .map(|(_, a)| a.clone())
                .collect(),
            ReadData::Permille(p) => {
                let want = ((all.len() as u64 * u64::from(p)).div_ceil(1000) as usize)
                    .min(all.len())
                    .max(usize::from(!all.is_empty()));
                // A different choice each run: a time-seeded shuffle.
                let mut seed = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1;
                let mut order: Vec<&String> = all.iter().collect();
                for i in (1..order.len()).rev() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    order.swap(i, (seed % (i as u64 + 1)) as usize);
                }
                order.into_iter().take(want).cloned().collect()
            }
        }
    }
}

/// [`check`], reading the archives `read` chooses whole.
pub fn check_reading(repo: &Path, read: ReadData, keys: &xtar::Keys, obs: &dyn xtar::Observer) -> Result<CheckReport> {
    let repo = Repo::open_keyed(repo, keys, crate::default_cache_dir())?;
    if repo.is_encrypted() && repo.master_key().is_none() {
        return check_without_key(&repo, read, obs);
    }
    let mut report = CheckReport::default();
    // (archive, member) → the line that refers to it first, and who does.
    let mut refs: BTreeMap<(String, Vec<u8>), (Line, String)> = BTreeMap::new();
    let archives = repo.archives()?;
    report.archives = archives.len() as u64;
    let to_read = read.choose(&archives);
    report.read = to_read.len() as u64;
    for name in &repo.names()? {
        let rec = match repo.record(name) {
            Ok(r) => r,
            Err(e) => {
                report.problems.push(format!("archive {name}: {e}"));
                continue;
            }
        };
        if rec.status != Status::Complete {
            continue;
        }
        report.snapshots += 1;
        redundancy(&repo, name, &mut report.problems);
        let rec = match repo.snapshot(name) {
            Ok(r) => r,
            Err(e) => {
                report.problems.push(format!("snapshot {name} cannot be listed: {e}"));
                continue;
            }
        };
        for l in &rec.lines {
            if let (Some(loc), Some(m)) = (&l.loc, l.member_name()) {
                refs.entry((loc.archive.clone(), m.to_vec())).or_insert_with(|| (l.clone(), name.clone()));
            }
        }
    }
    report.members = refs.len() as u64;
    let archive_set: BTreeSet<&String> = archives.iter().collect();
    let mut by_archive: BTreeMap<String, Vec<(Vec<u8>, Line, String)>> = BTreeMap::new();
    for ((archive, member), (line, snap)) in refs {
        by_archive.entry(archive).or_default().push((member, line, snap));
    }
    for (archive, members) in by_archive {
        if !archive_set.contains(&archive) {
            for (member, _, snap) in &members {
                report.problems.push(format!(
                    "snapshot {snap}: `{}` is in archive {archive}, which is missing",
                    String::from_utf8_lossy(member)
                ));
            }
            continue;
        }
        if to_read.contains(&archive) {
            // Each member once, under its own name, against its SHA-256.
            let lines: Vec<Line> = members
                .iter()
                .map(|(member, l, _)| {
                    let mut l = l.clone();
                    l.entry = Entry { path: member.clone(), ..l.entry };
                    if let Some(loc) = l.loc.as_mut() {
                        loc.member = None;
                    }
                    l
                })
                .collect();
            let collect = Collect { inner: obs, messages: Mutex::new(Vec::new()) };
            let opts = xtar::ExtractOptions::default();
            let mut restorer = xtar::Restorer::new(None, &opts, &collect)?;
            restorer.entries(lines.iter().map(|l| l.entry.clone()).collect())?;
            read_members(&repo, &lines, &mut restorer, obs)?;
            restorer.finish()?;
            for m in collect.messages.into_inner().unwrap_or_default() {
                report.problems.push(format!("archive {archive}: {m}"));
            }
        } else {
            let f = repo.open_archive(&archive)?;
            let holder = Holder::open(&repo, f.as_ref(), &archive, obs)?;
            for (member, line, snap) in &members {
                let offset = line.loc.as_ref().map_or(0, |l| l.offset);
                if let Err(e) = holder.member(&repo, member, offset) {
                    report.problems.push(format!("snapshot {snap}: {e}"));
                }
            }
        }
    }
    Ok(report)
}

/// Checks that a snapshot's record is in its archive and in its copy, the
/// same bytes in both.
fn redundancy(repo: &Repo, name: &str, problems: &mut Vec<String>) {
    let archive = repo.archive_path(name);
    let copy_path = repo.copy_path(name);
    let main = repo.archive_record(name);
    let copy = repo.copy_record(name).map_err(|e| e.to_string());
    match (main, copy) {
        (Ok(a), Ok(c)) if a != c => problems.push(format!(
            "snapshot {name}: the record in {} and its copy {} differ",
            archive.display(),
            copy_path.display()
        )),
        (Ok(_), Ok(_)) => {}
        (Err(e), Ok(_)) if !repo.archive_exists(name) => problems.push(format!(
            "snapshot {name}: its archive {} is missing (the snapshot is still listed, from {}): {e}",
            archive.display(),
            copy_path.display()
        )),
        (Err(e), Ok(_)) => problems.push(format!(
            "snapshot {name}: the record in its archive {} cannot be read (its copy {} can): {e}",
            archive.display(),
            copy_path.display()
        )),
        (Ok(_), Err(e)) => problems.push(format!(
            "snapshot {name}: the copy of its record, {}, cannot be read ({e}); `pybackup migrate` writes it \
             again",
            copy_path.display()
        )),
        (Err(a), Err(c)) => {
            problems.push(format!("snapshot {name}: neither its record ({a}) nor its copy ({c}) can be read"))
        }
    }
}

/// `check` of an encrypted repository without a key (what the friend who
/// stores it can run, repository.md §9.5): the keyring parses; every
/// archive's structure, and every encrypted file's bytes against their
/// CRC-32; every record's copy is the archive's sealed record byte for
/// byte; every complete snapshot this machine's cache holds can be listed
/// and every file it lists is in an archive that exists.
fn check_without_key(repo: &Repo, read: ReadData, obs: &dyn xtar::Observer) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let archives = repo.archives()?;
    report.archives = archives.len() as u64;
    // Without a key, checking is reading: `None` reads every archive (as
    // it always did); a subset reads that subset.
    let to_read = match read {
        ReadData::None | ReadData::All => ReadData::All.choose(&archives),
        part => part.choose(&archives),
    };
    report.read = to_read.len() as u64;
    let sizes: Vec<u64> =
        archives.iter().map(|a| repo.open_archive(a).map(|f| f.size().unwrap_or(0)).unwrap_or(0)).collect();
    obs.start(sizes.iter().sum());
    for (name, size) in archives.iter().zip(sizes) {
        if !to_read.contains(name) {
            continue;
        }
        let path = repo.archive_path(name);
        let checked = repo.open_archive(name).and_then(|f| Ok(xtar::check_without_key_in(f.as_ref(), &path)?));
        match checked {
            Ok(c) => {
                report.members += c.entries;
                report.problems.extend(c.problems.into_iter().map(|p| format!("archive {name}: {p}")));
            }
            Err(e) => report.problems.push(format!("archive {name}: {e}")),
        }
        obs.advance(size);
        let member = repo.archive_member(name, crate::sealed::SEALED_RECORD);
        let copy = repo.read_object(&crate::repository::copy_rel(name)).ok();
        match (member, copy) {
            (Some(m), Some(c)) if m == c => {}
            (Some(_), Some(_)) => report.problems.push(format!(
                "snapshot {name}: the sealed record in its archive and its copy {} differ",
                repo.copy_path(name).display()
            )),
            (None, Some(_)) => {
                report.problems.push(format!("archive {name}: its sealed record cannot be read (its copy can)"))
            }
            (Some(_), None) => report.problems.push(format!(
                "snapshot {name}: the copy of its record, {}, is missing; `pybackup migrate` writes it again",
                repo.copy_path(name).display()
            )),
            (None, None) => report.problems.push(format!("archive {name}: no sealed record, and no copy")),
        }
    }
    // Copies whose archive is gone: their snapshots are still listed, and
    // what they stored is lost.
    let present: BTreeSet<&String> = archives.iter().collect();
    for name in repo.names()? {
        if !present.contains(&name) {
            report.problems.push(format!(
                "snapshot {name}: its archive {} is missing (the snapshot is still listed, from its copy)",
                repo.archive_path(&name).display()
            ));
        }
        // What this machine's own snapshots list, it can check.
        if let Ok(rec) = repo.record_header(&name) {
            if rec.status != Status::Complete {
                continue;
            }
            report.snapshots += 1;
            match repo.snapshot(&name) {
                Ok(listing) => {
                    for l in &listing.lines {
                        if let Some(loc) = l.loc.as_ref().filter(|loc| !present.contains(&loc.archive)) {
                            report.problems.push(format!(
                                "snapshot {name}: `{}` is in archive {}, which is missing",
                                String::from_utf8_lossy(&l.entry.path),
                                loc.archive
                            ));
                        }
                    }
                }
                Err(e) => report.problems.push(format!("snapshot {name} cannot be listed: {e}")),
            }
        }
    }
    match repo.read_object(crate::sealed::KEYRING).map(|b| String::from_utf8_lossy(&b).into_owned()) {
        Ok(t) if keys::Keyring::parse(&t).is_ok() => {}
        Ok(_) => report.problems.push("the keyring file is damaged (every archive holds a copy)".into()),
        Err(e) => report.problems.push(format!("the keyring file cannot be read ({e}); every archive holds a copy")),
    }
    Ok(report)
}
