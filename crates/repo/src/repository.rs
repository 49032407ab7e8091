//! Opening a repository, naming archives, reading their records.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::record::{valid_name, Record, Status, RECORD_NAME};
use crate::{io_err, Error, Result};

/// The directory of archives inside a repository.
pub const ARCHIVES: &str = "Archives";
/// The file naming the newest complete snapshot.
pub const LATEST: &str = "Latest";
const LOCK: &str = "lock";

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
    /// Counts.
    pub stats: crate::Stats,
    /// Size of the archive file.
    pub archive_bytes: u64,
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
    /// (`.NAME.xtar.XXXXXX.partial`). Call with the lock held.
    pub fn remove_stale(&self) {
        fsutil::remove_matching(&self.root.join(ARCHIVES), |n| {
            fsutil::partial_target(n)
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| t.strip_suffix(".xtar"))
                .is_some_and(valid_name)
        });
    }

    /// A new archive name: the current UTC time, later than every
    /// existing archive.
    pub fn new_name(&self) -> Result<String> {
        let mut t = SystemTime::now();
        let newest = self.archives()?.pop();
        loop {
            let name = time_name(t);
            if newest.as_ref().is_none_or(|n| name > *n) && !self.archive_path(&name).exists() {
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

    /// The record's text (cached).
    fn raw(&self, name: &str) -> Result<std::sync::Arc<Vec<u8>>> {
        if let Some(r) = self.raw.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(r);
        }
        let text = xtar::read::tail_member(&self.archive_path(name), RECORD_NAME)?
            .ok_or_else(|| Error::NoRecord { archive: name.to_string() })?;
        let text = std::sync::Arc::new(text);
        if let Ok(mut c) = self.raw.lock() {
            c.insert(name.to_string(), text.clone());
        }
        Ok(text)
    }

    /// Reads the record of an archive, parsing only the lines whose escaped
    /// path `keep` accepts (not cached).
    pub fn record_filtered(&self, name: &str, keep: Option<crate::record::PathFilter<'_>>) -> Result<Record> {
        let text = self.raw(name)?;
        let rec = Record::parse_filtered(&text, name, false, keep)?;
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
            .archives()?
            .into_iter()
            .map(|name| {
                let info = self.info(&name);
                (name, info)
            })
            .collect())
    }

    fn info(&self, name: &str) -> Result<SnapshotInfo> {
        let path = self.archive_path(name);
        let text = xtar::read::tail_member(&path, RECORD_NAME)?
            .ok_or_else(|| Error::NoRecord { archive: name.to_string() })?;
        let rec = Record::parse(&text, name, true)?;
        Ok(SnapshotInfo {
            name: name.to_string(),
            time: name_time(name).unwrap_or(SystemTime::UNIX_EPOCH),
            status: rec.status,
            parent: rec.parent,
            stats: rec.stats,
            archive_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        })
    }

    /// The complete snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(self.infos()?.into_iter().filter_map(|(_, i)| i.ok()).filter(|i| i.status == Status::Complete).collect())
    }

    /// The newest complete snapshot, found from the newest archive down
    /// (`Latest` is a convenience for people; the archives decide).
    pub fn latest(&self) -> Result<Option<String>> {
        for name in self.archives()?.into_iter().rev() {
            if let Ok(i) = self.info(&name) {
                if i.status == Status::Complete {
                    return Ok(Some(name));
                }
            }
        }
        Ok(None)
    }

    /// Resolves a snapshot: `None` or `latest` for the newest, else a
    /// full name or a unique prefix of one.
    pub fn resolve(&self, spec: Option<&str>) -> Result<String> {
        let not_found =
            |spec: &str, hint: String| Error::NoSnapshot { spec: spec.to_string(), repo: self.root.clone(), hint };
        match spec {
            None | Some("latest") => self.latest()?.ok_or_else(|| not_found("latest", String::new())),
            Some(s) => {
                let all = self.snapshots()?;
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
