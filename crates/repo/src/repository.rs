//! Opening a repository, naming archives, reading their records.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::record::{apply_deltas, valid_name, PathFilter, Record, Status, RECORD_NAME};
use crate::{io_err, Error, Result};

/// The directory of archives inside a repository.
pub const ARCHIVES: &str = "Archives";
/// The file naming the newest complete snapshot.
pub const LATEST: &str = "Latest";
const LOCK: &str = "lock";
/// The suffix of the copy of a snapshot's record beside its archive.
pub const COPY_SUFFIX: &str = ".snapshot";
/// The longest chain of records with a base that a reader follows.
pub const MAX_CHAIN: usize = 256;

/// An open repository.
pub struct Repo {
    root: PathBuf,
    cache: Mutex<HashMap<String, std::sync::Arc<Record>>>,
    raw: Mutex<HashMap<String, std::sync::Arc<Vec<u8>>>>,
}

/// A snapshot as listed: its record's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The archive's name (its UTC time).
    pub name: String,
    /// When it was taken.
    pub time: SystemTime,
    /// What the archive is.
    pub status: Status,
    /// The snapshot it was compared with.
    pub parent: Option<String>,
    /// The machine it was taken on (empty for version 1 records).
    pub host: Vec<u8>,
    /// The source directory.
    pub root: Vec<u8>,
    /// Counts.
    pub stats: crate::Stats,
    /// Size of the archive file (0 when it is missing), and of the copy of
    /// its record.
    pub archive_bytes: u64,
}

/// Which snapshots a command looks at: those of one host, one source
/// directory, or both (all when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only snapshots taken on this machine.
    pub host: Option<Vec<u8>>,
    /// Only snapshots of this source directory.
    pub root: Option<Vec<u8>>,
}

impl Filter {
    /// Whether a snapshot passes.
    pub fn accepts(&self, host: &[u8], root: &[u8]) -> bool {
        self.host.as_deref().is_none_or(|h| h == host) && self.root.as_deref().is_none_or(|r| r == root)
    }
}

/// The time an archive name stands for.
pub fn name_time(name: &str) -> Option<SystemTime> {
    if !valid_name(name) {
        return None;
    }
    let b = name;
    let rfc =
        format!("{}-{}-{}T{}:{}:{}.{}Z", &b[0..4], &b[4..6], &b[6..8], &b[9..11], &b[11..13], &b[13..15], &b[16..22]);
    humantime::parse_rfc3339(&rfc).ok()
}

/// The archive name of a time: `YYYYMMDDTHHMMSS.ffffffZ`, in UTC.
pub fn time_name(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string().replace(['-', ':'], "")
}

impl Repo {
    /// Opens an existing repository.
    pub fn open(root: &Path) -> Result<Repo> {
        if !root.join(ARCHIVES).is_dir() {
            return Err(Error::NotARepo { path: root.to_path_buf() });
        }
        Ok(Repo { root: root.to_path_buf(), cache: Mutex::new(HashMap::new()), raw: Mutex::new(HashMap::new()) })
    }

    /// Opens a repository, creating it if `root` does not exist or is an
    /// empty directory.
    pub fn init(root: &Path) -> Result<Repo> {
        let archives = root.join(ARCHIVES);
        if !archives.is_dir() {
            if root.exists() && std::fs::read_dir(root).map_err(io_err(root))?.next().is_some() {
                return Err(Error::NotEmpty { path: root.to_path_buf() });
            }
            std::fs::create_dir_all(&archives).map_err(io_err(&archives))?;
        }
        Repo::open(root)
    }

    /// The repository's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the repository's lock, held until the returned file is
    /// dropped (the kernel releases it if the process dies).
    pub fn lock(&self) -> Result<File> {
        let path = self.root.join(LOCK);
        let f =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    /// The path of an archive.
    pub fn archive_path(&self, name: &str) -> PathBuf {
        self.root.join(ARCHIVES).join(format!("{name}.xtar"))
    }

    /// The path of the copy of an archive's record.
    pub fn copy_path(&self, name: &str) -> PathBuf {
        self.root.join(ARCHIVES).join(format!("{name}{COPY_SUFFIX}"))
    }

    /// The names of every archive and every record copy, oldest first: a
    /// snapshot whose archive is lost is still listed from its copy.
    pub fn names(&self) -> Result<Vec<String>> {
        let dir = self.root.join(ARCHIVES);
        let mut names = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let n = e.file_name();
            let Some(n) = n.to_str() else { continue };
            let Some(name) = n.strip_suffix(".xtar").or_else(|| n.strip_suffix(COPY_SUFFIX)) else { continue };
            if valid_name(name) && e.file_type().is_ok_and(|t| t.is_file()) {
                names.insert(name.to_string());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The names of all archives, oldest first.
    pub fn archives(&self) -> Result<Vec<String>> {
        let dir = self.root.join(ARCHIVES);
        let mut names = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let n = e.file_name();
            let Some(name) = n.to_str().and_then(|n| n.strip_suffix(".xtar")) else { continue };
            if valid_name(name) && e.file_type().is_ok_and(|t| t.is_file()) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes temporary files that killed runs left in `Archives`
    /// (`.NAME.xtar.XXXXXX.partial`, `.NAME.snapshot.XXXXXX.partial`).
    /// Call with the lock held.
    pub fn remove_stale(&self) {
        fsutil::remove_matching(&self.root.join(ARCHIVES), |n| {
            fsutil::partial_target(n)
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| t.strip_suffix(".xtar").or_else(|| t.strip_suffix(COPY_SUFFIX)))
                .is_some_and(valid_name)
        });
    }

    /// Writes the copy of a record (atomically, replacing an older copy).
    pub fn write_copy(&self, name: &str, text: &[u8]) -> Result<()> {
        fsutil::write_bytes(&self.copy_path(name), text, true).map_err(|e| Error::Xtar(e.into()))
    }

    /// Writes the copy of the record of every complete snapshot that has
    /// none. With `all`, every archive is looked at (`migrate`: a version 1
    /// repository's, or copies lost since); without, only the archives newer
    /// than the newest copy, or all when there is no copy (`backup`: a run
    /// killed between its archive and its copy, a first migration), so that
    /// a run does not read the records of every checkpoint and data archive
    /// each time. Returns the names of the copies written. Call with the
    /// lock held.
    pub fn ensure_copies(&self, all: bool) -> Result<Vec<String>> {
        let newest_copy = if all {
            None
        } else {
            let names = self.names()?;
            names.into_iter().rev().find(|n| self.copy_path(n).exists())
        };
        let mut written = Vec::new();
        for name in self.archives()? {
            if newest_copy.as_ref().is_some_and(|c| name <= *c) {
                continue;
            }
            let copy = std::fs::read(self.copy_path(&name)).ok();
            if copy.is_some() && !all {
                continue;
            }
            // With `all`, a copy that is damaged or differs is written again
            // from the archive's record (when that one reads).
            let Ok(text) = (if all { self.archive_record(&name) } else { self.raw(&name).map(|t| t.to_vec()) }) else {
                continue;
            };
            if copy.as_deref() == Some(&text[..]) {
                continue;
            }
            if Record::parse_verified(&text, &name, true, None)
                .is_ok_and(|r| r.status == Status::Complete && r.name == name)
            {
                self.write_copy(&name, &text)?;
                written.push(name);
            }
        }
        Ok(written)
    }

    /// A new archive name: the current UTC time, later than every
    /// existing archive.
    pub fn new_name(&self) -> Result<String> {
        let mut t = SystemTime::now();
        let newest = self.names()?.pop();
        loop {
            let name = time_name(t);
            if newest.as_ref().is_none_or(|n| name > *n)
                && !self.archive_path(&name).exists()
                && !self.copy_path(&name).exists()
            {
                return Ok(name);
            }
            t = match newest.as_deref().and_then(name_time) {
                Some(n) if n >= t => n + Duration::from_micros(1),
                _ => t + Duration::from_micros(1),
            };
        }
    }

    /// Reads the record of an archive (cached).
    pub fn record(&self, name: &str) -> Result<std::sync::Arc<Record>> {
        if let Some(r) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(r);
        }
        let rec = self.record_filtered(name, None)?;
        let rec = std::sync::Arc::new(rec);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name.to_string(), rec.clone());
        }
        Ok(rec)
    }

    /// The record's text, checked (cached): from the archive, or, when
    /// the archive is missing or its record damaged, from its copy.
    pub fn raw(&self, name: &str) -> Result<std::sync::Arc<Vec<u8>>> {
        if let Some(r) = self.raw.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(r);
        }
        let text = match self.archive_record(name) {
            Ok(text) => text,
            Err(e) => match std::fs::read(self.copy_path(name)) {
                Ok(copy) if Record::verify(&copy, name).is_ok() => copy,
                _ => return Err(e),
            },
        };
        let text = std::sync::Arc::new(text);
        if let Ok(mut c) = self.raw.lock() {
            c.insert(name.to_string(), text.clone());
        }
        Ok(text)
    }

    /// The record as the archive holds it, checked (not cached, no copy).
    pub fn archive_record(&self, name: &str) -> Result<Vec<u8>> {
        let text = xtar::read::tail_member(&self.archive_path(name), RECORD_NAME)?
            .ok_or_else(|| Error::NoRecord { archive: name.to_string() })?;
        Record::verify(&text, name)?;
        Ok(text)
    }

    /// The records a snapshot's listing is made of, newest first: its own,
    /// then its base's, and so on to one that lists the whole tree.
    pub fn chain(&self, name: &str) -> Result<Vec<std::sync::Arc<Record>>> {
        let mut chain = vec![self.record_header(name)?];
        while let Some(base) = chain.last().and_then(|r| r.base.clone()) {
            if chain.len() > MAX_CHAIN {
                return Err(Error::Record {
                    archive: name.to_string(),
                    line: 5,
                    message: format!("more than {MAX_CHAIN} records with a base in a row"),
                });
            }
            let rec = self.record_header(&base).map_err(|e| Error::Chain {
                snapshot: name.to_string(),
                base: base.clone(),
                source: Box::new(e),
            })?;
            if rec.status != Status::Complete {
                return Err(Error::Chain {
                    snapshot: name.to_string(),
                    base,
                    source: Box::new(Error::NoRecord { archive: rec.name.clone() }),
                });
            }
            chain.push(rec);
        }
        Ok(chain)
    }

    /// The header of a record (its lines not parsed).
    pub fn record_header(&self, name: &str) -> Result<std::sync::Arc<Record>> {
        if let Some(r) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(r);
        }
        let text = self.raw(name)?;
        Ok(std::sync::Arc::new(Record::parse_verified(&text, name, true, None)?))
    }

    /// The whole listing of a snapshot: its record with those of its chain
    /// applied, as one record that has no base.
    pub fn snapshot(&self, name: &str) -> Result<Record> {
        self.snapshot_filtered(name, None)
    }

    /// Like [`Repo::snapshot`], parsing only the lines whose escaped path
    /// `keep` accepts.
    pub fn snapshot_filtered(&self, name: &str, keep: Option<PathFilter<'_>>) -> Result<Record> {
        let chain = self.chain(name)?;
        // Parsed afresh (not from the cache): their lines are moved, not
        // copied, into the listing.
        let [own, between @ .., base] = chain.as_slice() else { return self.record_filtered(name, keep) };
        let base = self.record_filtered(&base.name, keep)?;
        let mut deltas: Vec<Record> =
            between.iter().rev().map(|r| self.record_filtered(&r.name, keep)).collect::<Result<_>>()?;
        let mut own = self.record_filtered(&own.name, keep)?;
        deltas.push(Record {
            lines: std::mem::take(&mut own.lines),
            removed: std::mem::take(&mut own.removed),
            ..Record::new(&own.name, own.status, b"")
        });
        own.lines = apply_deltas(base.lines, deltas);
        own.base = None;
        Ok(own)
    }

    /// Reads the record of an archive, parsing only the lines whose escaped
    /// path `keep` accepts (not cached).
    pub fn record_filtered(&self, name: &str, keep: Option<crate::record::PathFilter<'_>>) -> Result<Record> {
        let text = self.raw(name)?;
        let rec = Record::parse_verified(&text, name, false, keep)?;
        if rec.name != name {
            return Err(Error::Record {
                archive: name.to_string(),
                line: 2,
                message: format!("the record is named {}, not after its archive", rec.name),
            });
        }
        Ok(rec)
    }

    /// Forgets cached records (after archives were rewritten).
    pub fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
        if let Ok(mut c) = self.raw.lock() {
            c.clear();
        }
    }

    /// Every archive's record header, oldest first. Archives whose record
    /// cannot be read are returned as errors, by name.
    pub fn infos(&self) -> Result<Vec<(String, Result<SnapshotInfo>)>> {
        Ok(self
            .names()?
            .into_iter()
            .map(|name| {
                let info = self.info(&name);
                (name, info)
            })
            .collect())
    }

    fn info(&self, name: &str) -> Result<SnapshotInfo> {
        let rec = self.record_header(name)?;
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        Ok(SnapshotInfo {
            name: name.to_string(),
            time: name_time(name).unwrap_or(SystemTime::UNIX_EPOCH),
            status: rec.status,
            parent: rec.parent.clone(),
            host: rec.host.clone(),
            root: rec.root.clone(),
            stats: rec.stats,
            archive_bytes: size(self.archive_path(name)) + size(self.copy_path(name)),
        })
    }

    /// The complete snapshots that `filter` accepts, oldest first.
    pub fn snapshots(&self, filter: &Filter) -> Result<Vec<SnapshotInfo>> {
        Ok(self
            .infos()?
            .into_iter()
            .filter_map(|(_, i)| i.ok())
            .filter(|i| i.status == Status::Complete && filter.accepts(&i.host, &i.root))
            .collect())
    }

    /// The newest complete snapshot that `filter` accepts, found from the
    /// newest archive down (`Latest` is a convenience for people; the
    /// archives decide).
    pub fn latest(&self, filter: &Filter) -> Result<Option<String>> {
        for name in self.names()?.into_iter().rev() {
            if let Ok(i) = self.info(&name) {
                if i.status == Status::Complete && filter.accepts(&i.host, &i.root) {
                    return Ok(Some(name));
                }
            }
        }
        Ok(None)
    }

    /// Resolves a snapshot among those `filter` accepts: `None` or
    /// `latest` for the newest, else a full name or a unique prefix of one.
    pub fn resolve(&self, spec: Option<&str>, filter: &Filter) -> Result<String> {
        let not_found =
            |spec: &str, hint: String| Error::NoSnapshot { spec: spec.to_string(), repo: self.root.clone(), hint };
        match spec {
            None | Some("latest") => self.latest(filter)?.ok_or_else(|| not_found("latest", String::new())),
            Some(s) => {
                let all = self.snapshots(filter)?;
                if let Some(i) = all.iter().find(|i| i.name == s) {
                    return Ok(i.name.clone());
                }
                let matching: Vec<&SnapshotInfo> = all.iter().filter(|i| i.name.starts_with(s)).collect();
                match matching.as_slice() {
                    [one] => Ok(one.name.clone()),
                    [] => Err(not_found(s, String::new())),
                    many => Err(not_found(
                        s,
                        format!(
                            " unambiguously; it could be {}",
                            many.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )),
                }
            }
        }
    }

    /// Points `Latest` at `name` (written atomically).
    pub fn set_latest(&self, name: Option<&str>) -> Result<()> {
        let path = self.root.join(LATEST);
        match name {
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
                _ => Ok(()),
            },
            Some(name) => {
                fsutil::write_bytes(&path, format!("{name}\n").as_bytes(), true).map_err(|e| Error::Xtar(e.into()))
            }
        }
    }
}
