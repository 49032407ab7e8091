//! Opening a repository, naming archives, reading their records.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::record::{apply_deltas, valid_name, PathFilter, Record, Status, RECORD_NAME};
use crate::sealed::{archive_member, Sealing, ARCHIVE_KEYRING, KEYRING, SEALED_RECORD};
use crate::{io_err, Error, Result};

/// The directory of archives inside a repository.
pub const ARCHIVES: &str = "Archives";
/// The file naming the newest complete snapshot.
pub const LATEST: &str = "Latest";
/// The object holding the repository's identity (§12.1).
pub const ID: &str = "id";
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
    /// An encrypted repository's keyring and keys (§9).
    pub(crate) sealing: Option<Sealing>,
    /// Where its objects are: a directory, or an object store.
    place: Place,
    /// In an object store, where this machine keeps the texts of the
    /// records it read or wrote (§12.1), under the repository's identity.
    record_cache: Option<PathBuf>,
    /// In an object store, the upload of the archive written last, under
    /// way while the next one is written (§12).
    upload: Mutex<Option<Upload>>,
}

/// An upload under way: the object's name and length when it is done.
type Upload = std::thread::JoinHandle<Result<(String, u64)>>;

/// Where a repository's objects are.
enum Place {
    /// In the directory `root`.
    Local,
    /// In an object store (`s3://…`), listed when opened.
    Remote { store: std::sync::Arc<dyn store::Store>, sizes: Mutex<std::collections::BTreeMap<String, u64>> },
}

/// Whether `location` names an object store rather than a directory.
pub fn is_remote(location: &Path) -> bool {
    location.to_str().is_some_and(|s| s.contains("://"))
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
        Repo::open_keyed(root, &[], crate::sealed::default_cache_dir())
    }

    /// Opens an existing repository; if it is encrypted, with the first of
    /// `ids` that is a way in (none: only this machine's cached records
    /// in `cache`, under the repository's identity, can be read). Keys
    /// given that open nothing are an error.
    pub fn open_keyed(root: &Path, ids: &[keys::RecoveryKey], cache: Option<PathBuf>) -> Result<Repo> {
        if is_remote(root) {
            let url = root.to_str().unwrap_or_default();
            let store = store::open(url).map_err(|e| Error::Store(e.to_string()))?;
            return Repo::open_in(std::sync::Arc::from(store), root, ids, cache);
        }
        if !root.join(ARCHIVES).is_dir() {
            return Err(Error::NotARepo { path: root.to_path_buf() });
        }
        Repo::with_place(root, Place::Local, ids, cache)
    }

    /// Opens the repository in an object store (`label` names it in
    /// messages), as [`Repo::open_keyed`] does. Its objects are listed
    /// once, here; archives are read by ranges.
    pub fn open_in(
        store: std::sync::Arc<dyn store::Store>,
        label: &Path,
        ids: &[keys::RecoveryKey],
        cache: Option<PathBuf>,
    ) -> Result<Repo> {
        let mut sizes = std::collections::BTreeMap::new();
        for o in store.list("").map_err(|e| Error::Store(e.to_string()))? {
            sizes.insert(o.name, o.size);
        }
        if !sizes.keys().any(|n| n.starts_with("Archives/")) && !sizes.contains_key(KEYRING) {
            return Err(Error::NotARepo { path: label.to_path_buf() });
        }
        Repo::with_place(label, Place::Remote { store, sizes: Mutex::new(sizes) }, ids, cache)
    }

    fn with_place(root: &Path, place: Place, ids: &[keys::RecoveryKey], cache: Option<PathBuf>) -> Result<Repo> {
        let mut repo = Repo {
            root: root.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
            raw: Mutex::new(HashMap::new()),
            sealing: None,
            place,
            record_cache: None,
            upload: Mutex::new(None),
        };
        if let Some(text) = repo.keyring_text()? {
            repo.sealing = Some(Sealing::new(root, &text, ids, cache.clone())?);
        } else if repo.is_remote() {
            repo.record_cache = match (repo.identity(), cache) {
                (Some(id), Some(dir)) => Some(dir.join(id)),
                _ => None,
            };
        }
        Ok(repo)
    }

    /// The repository's identity (§12.1): the object `id` (32 hex digits),
    /// if it has one.
    pub fn identity(&self) -> Option<String> {
        let id = self.read_object(ID).ok()?;
        let id = String::from_utf8_lossy(&id).trim().to_string();
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    }

    /// Gives the repository an identity if it has none (a new one, or one
    /// made by an older pybackup): 16 random bytes in hex.
    pub(crate) fn ensure_identity(&mut self) -> Result<()> {
        if self.sealing.is_some() {
            return Ok(());
        }
        let id = match self.identity() {
            Some(id) => id,
            None => {
                let mut b = [0u8; 16];
                getrandom::fill(&mut b)
                    .map_err(|e| Error::Store(format!("no randomness for the repository's identity: {e}")))?;
                let id = hex::encode(b);
                self.put_object(ID, format!("{id}\n").as_bytes())?;
                id
            }
        };
        if self.is_remote() && self.record_cache.is_none() {
            self.record_cache = crate::sealed::default_cache_dir().map(|d| d.join(id));
        }
        Ok(())
    }

    /// Whether the repository is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.sealing.is_some()
    }

    /// The keyring of an encrypted repository.
    pub fn keyring(&self) -> Option<&keys::Keyring> {
        self.sealing.as_ref().map(|s| &s.keyring)
    }

    /// The master key, when a way in was given.
    pub fn master_key(&self) -> Option<&keys::RecoveryKey> {
        self.sealing.as_ref().and_then(|s| s.master.as_ref())
    }

    /// The keyring's text: the file `keyring`, or, when it is lost, the
    /// copy in the newest archive that holds one (an encrypted archive's
    /// header says so; an unencrypted repository's archives are not
    /// walked). The file is written again from the copy when it can be.
    fn keyring_text(&self) -> Result<Option<String>> {
        let path = self.root.join(KEYRING);
        match self.read_object(KEYRING) {
            Ok(b) => return Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
            Err(_) => {}
        }
        for name in self.archives()?.into_iter().rev() {
            if !self.archive_is_sealed(&name) {
                // Unencrypted archives: an unencrypted repository.
                return Ok(None);
            }
            if let Some(b) = self.archive_member(&name, ARCHIVE_KEYRING) {
                let text = String::from_utf8_lossy(&b).into_owned();
                if keys::Keyring::parse(&text).is_ok() {
                    if matches!(self.place, Place::Local) {
                        let _ = fsutil::write_bytes(&path, text.as_bytes(), false);
                    }
                    return Ok(Some(text));
                }
            }
        }
        Ok(None)
    }

    /// Writes the keyring of an encrypted repository (whole, replacing the
    /// old one; archives written later hold the new one).
    pub fn write_keyring(&self, keyring: &keys::Keyring) -> Result<()> {
        self.put_object(KEYRING, keyring.to_text().as_bytes())
    }

    /// Whether the repository is in an object store (`s3://…`).
    pub fn is_remote(&self) -> bool {
        matches!(self.place, Place::Remote { .. })
    }

    /// The bytes of object `rel` (`Archives/NAME.snapshot`, `keyring`,
    /// `Latest`); a missing one is `NotFound`.
    pub(crate) fn read_object(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        match &self.place {
            Place::Local => std::fs::read(self.root.join(rel)),
            Place::Remote { store, .. } => store.read(rel).map_err(|e| match e {
                store::Error::NotFound { .. } => std::io::ErrorKind::NotFound.into(),
                e => std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// The size of object `rel`, if there is one.
    fn object_size(&self, rel: &str) -> Option<u64> {
        match &self.place {
            Place::Local => std::fs::metadata(self.root.join(rel)).ok().filter(|m| m.is_file()).map(|m| m.len()),
            Place::Remote { sizes, .. } => sizes.lock().ok().and_then(|s| s.get(rel).copied()),
        }
    }

    /// Whether archive `name` is in the repository.
    pub fn archive_exists(&self, name: &str) -> bool {
        self.object_size(&format!("{ARCHIVES}/{name}.xtar")).is_some()
    }

    /// Archive `name`, to be read at offsets (from an object store, by
    /// ranged reads of the blocks read).
    pub fn open_archive(&self, name: &str) -> Result<Box<dyn fsutil::Source>> {
        let rel = format!("{ARCHIVES}/{name}.xtar");
        match &self.place {
            Place::Local => {
                let path = self.archive_path(name);
                if path.is_dir() {
                    let parts = fsutil::Parts::open(&path).map_err(io_err(&path))?;
                    let missing = || io_err(&path)(std::io::ErrorKind::NotFound.into());
                    return Ok(Box::new(parts.ok_or_else(missing)?));
                }
                Ok(Box::new(File::open(&path).map_err(io_err(&path))?))
            }
            Place::Remote { store, .. } => {
                let size = self
                    .object_size(&rel)
                    .ok_or_else(|| io_err(self.archive_path(name))(std::io::ErrorKind::NotFound.into()))?;
                Ok(Box::new(store::RemoteObject::new(store.clone(), &rel, size)))
            }
        }
    }

    /// Member `member` of archive `name`, found by walking its headers.
    pub(crate) fn archive_member(&self, name: &str, member: &[u8]) -> Option<Vec<u8>> {
        let f = self.open_archive(name).ok()?;
        archive_member(f.as_ref(), &self.archive_path(name), member)
    }

    /// Whether archive `name` is encrypted (its `.xtar-header` says so).
    pub(crate) fn archive_is_sealed(&self, name: &str) -> bool {
        let Ok(f) = self.open_archive(name) else { return false };
        archive_member_first(f.as_ref(), &self.archive_path(name))
            .is_some_and(|h| h.split(|&b| b == b'\n').any(|l| l == b"#sealed age"))
    }

    /// Opens a repository, creating it if `root` does not exist or is an
    /// empty directory.
    pub fn init(root: &Path) -> Result<Repo> {
        Repo::init_keyed(root, &[])
    }

    /// [`Repo::init`], with keys for an encrypted repository, as
    /// [`Repo::open_keyed`] takes them.
    pub fn init_keyed(root: &Path, ids: &[keys::RecoveryKey]) -> Result<Repo> {
        if is_remote(root) {
            // A new repository in a store: an empty prefix is one.
            let url = root.to_str().unwrap_or_default();
            let store: std::sync::Arc<dyn store::Store> =
                std::sync::Arc::from(store::open(url).map_err(|e| Error::Store(e.to_string()))?);
            return match Repo::open_in(store.clone(), root, ids, crate::sealed::default_cache_dir()) {
                // Empty, or only what a first run that has not written an
                // archive yet leaves (its lock, the identity): new.
                Err(Error::NotARepo { .. })
                    if store
                        .list("")
                        .map_err(|e| Error::Store(e.to_string()))?
                        .iter()
                        .all(|o| o.name.starts_with("locks/") || o.name == ID) =>
                {
                    Repo::with_place(root, Place::Remote { store, sizes: Mutex::default() }, ids, None)
                }
                other => other,
            };
        }
        let archives = root.join(ARCHIVES);
        if !archives.is_dir() {
            if root.exists() && std::fs::read_dir(root).map_err(io_err(root))?.next().is_some() {
                return Err(Error::NotEmpty { path: root.to_path_buf() });
            }
            std::fs::create_dir_all(&archives).map_err(io_err(&archives))?;
        }
        Repo::open_keyed(root, ids, crate::sealed::default_cache_dir())
    }

    /// The repository's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the repository's lock, held until the returned file is
    /// dropped (the kernel releases it if the process dies).
    pub fn lock(&self) -> Result<crate::lock::Lock> {
        if let Place::Remote { store, .. } = &self.place {
            return crate::lock::Lock::remote(store.clone(), &self.root);
        }
        let path = self.root.join(LOCK);
        let f =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        match f.try_lock() {
            Ok(()) => Ok(crate::lock::Lock::Local(f)),
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
        let names: std::collections::BTreeSet<String> = self
            .files()?
            .into_iter()
            .filter_map(|n| n.strip_suffix(".xtar").or_else(|| n.strip_suffix(COPY_SUFFIX)).map(str::to_string))
            .filter(|n| valid_name(n))
            .collect();
        Ok(names.into_iter().collect())
    }

    /// The names of all archives, oldest first.
    pub fn archives(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .files()?
            .into_iter()
            .filter_map(|n| n.strip_suffix(".xtar").map(str::to_string))
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The names of the regular files in `Archives`.
    fn files(&self) -> Result<Vec<String>> {
        match &self.place {
            Place::Remote { sizes, .. } => Ok(sizes
                .lock()
                .map(|s| s.keys().filter_map(|n| n.strip_prefix("Archives/")).map(str::to_string).collect())
                .unwrap_or_default()),
            Place::Local => {
                let dir = self.root.join(ARCHIVES);
                let mut out = Vec::new();
                for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
                    let e = e.map_err(io_err(&dir))?;
                    let Some(n) = e.file_name().to_str().map(str::to_string) else { continue };
                    let kind = e.file_type();
                    // An archive a WebDAV store wrote in parts is a
                    // directory of them (a share's directory read here).
                    let parted = || {
                        kind.as_ref().is_ok_and(|t| t.is_dir())
                            && n.ends_with(".xtar")
                            && fsutil::Parts::open(&e.path()).is_ok_and(|p| p.is_some())
                    };
                    if kind.as_ref().is_ok_and(|t| t.is_file()) || parted() {
                        out.push(n);
                    }
                }
                Ok(out)
            }
        }
    }

    /// Removes temporary files that killed runs left in `Archives`
    /// (`.NAME.xtar.XXXXXX.partial`, `.NAME.snapshot.XXXXXX.partial`).
    /// Call with the lock held.
    pub fn remove_stale(&self) {
        if self.is_remote() {
            // Nothing is published under a temporary name there: an upload
            // cut short is no object.
            return;
        }
        fsutil::remove_matching(&self.root.join(ARCHIVES), |n| {
            fsutil::partial_target(n)
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| t.strip_suffix(".xtar").or_else(|| t.strip_suffix(COPY_SUFFIX)))
                .is_some_and(valid_name)
        });
    }

    /// Writes the copy of a record whose text is `text`: sealed to the
    /// master key in an encrypted repository.
    pub fn write_record_copy(&self, name: &str, text: &[u8]) -> Result<()> {
        match &self.sealing {
            Some(s) => self.write_copy(name, &s.seal(text)?),
            None => self.write_copy(name, text),
        }
    }

    /// Makes the copy of archive `name`'s record the same as the record in
    /// the archive, when that one reads (after a run killed while it
    /// rewrote one or the other).
    pub fn refresh_copy(&self, name: &str) -> Result<()> {
        let stored = match &self.sealing {
            Some(_) => match self.archive_member(name, SEALED_RECORD) {
                Some(sealed) if self.archive_record(name).is_ok() => sealed,
                _ => return Ok(()),
            },
            None => match self.archive_record(name) {
                Ok(text) => text,
                Err(_) => return Ok(()),
            },
        };
        if self.read_object(&copy_rel(name)).ok().as_deref() != Some(&stored[..]) {
            self.write_copy(name, &stored)?;
        }
        Ok(())
    }

    /// After `forget` sealed the record of `name` again, this machine's
    /// cached text of it (if it has one) becomes the new text: its old
    /// text may be listed relative to a snapshot that is gone.
    pub fn refresh_cache(&self, name: &str) -> Result<()> {
        let Some(s) = &self.sealing else { return Ok(()) };
        if !s.cache.as_ref().is_some_and(|d| d.join(format!("{name}{COPY_SUFFIX}")).exists()) {
            return Ok(());
        }
        let text = self.copy_record(name)?;
        let sealed = self.read_object(&copy_rel(name)).map_err(io_err(self.copy_path(name)))?;
        s.keep(name, &text, &sealed).map_err(io_err(self.copy_path(name)))
    }

    /// Writes the copy of a record (atomically, replacing an older copy).
    pub fn write_copy(&self, name: &str, text: &[u8]) -> Result<()> {
        // Never a copy before its archive is whole in the store.
        self.wait_upload()?;
        self.put_object(&copy_rel(name), text)
    }

    /// Publishes object `rel` whole (write-then-rename on a disk, one PUT
    /// in a store), replacing what was there.
    pub(crate) fn put_object(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        match &self.place {
            Place::Local => fsutil::write_bytes(&self.root.join(rel), bytes, true).map_err(|e| Error::Xtar(e.into())),
            Place::Remote { store, sizes } => {
                store.put(rel, bytes).map_err(|e| Error::Store(e.to_string()))?;
                if let Ok(mut s) = sizes.lock() {
                    s.insert(rel.to_string(), bytes.len() as u64);
                }
                Ok(())
            }
        }
    }

    /// Removes object `rel` (nothing happens when there is none).
    pub(crate) fn delete_object(&self, rel: &str) -> Result<()> {
        match &self.place {
            Place::Local => match std::fs::remove_file(self.root.join(rel)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(self.root.join(rel))(e)),
                _ => Ok(()),
            },
            Place::Remote { store, sizes } => {
                store.delete(rel).map_err(|e| Error::Store(e.to_string()))?;
                if let Ok(mut s) = sizes.lock() {
                    s.remove(rel);
                }
                Ok(())
            }
        }
    }

    /// Writes a new archive `name` through `write` (given a new, empty
    /// file and the path it goes by) and publishes it whole: renamed into
    /// place on a disk; in a store, written to a temporary file in
    /// `staging`, uploaded (a multipart upload, completed last), removed.
    pub(crate) fn publish_archive<T>(
        &self,
        name: &str,
        staging: &Path,
        write: impl FnOnce(&File, &Path) -> xtar::Result<T>,
    ) -> Result<T> {
        self.publish(name, staging, false, write)
    }

    /// [`Repo::publish_archive`] of an archive that replaces archive
    /// `name` whole (`forget` rewriting it).
    pub(crate) fn replace_archive<T>(
        &self,
        name: &str,
        staging: &Path,
        write: impl FnOnce(&File, &Path) -> xtar::Result<T>,
    ) -> Result<T> {
        self.publish(name, staging, true, write)
    }

    fn publish<T>(
        &self,
        name: &str,
        staging: &Path,
        overwrite: bool,
        write: impl FnOnce(&File, &Path) -> xtar::Result<T>,
    ) -> Result<T> {
        let out = self.archive_path(name);
        let Place::Remote { store, .. } = &self.place else {
            return Ok(xtar::write_new_file(&out, overwrite, write)?);
        };
        std::fs::create_dir_all(staging).map_err(io_err(staging))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.xtar."))
            .suffix(".upload")
            .tempfile_in(staging)
            .map_err(io_err(staging))?;
        let value = write(tmp.as_file(), &out)?;
        let mut f = tmp.reopen().map_err(io_err(tmp.path()))?;
        let len = f.metadata().map_err(io_err(tmp.path()))?.len();
        let rel = format!("{ARCHIVES}/{name}.xtar");
        // One upload at a time, under way while the next archive is
        // written: the staging directory holds at most two.
        self.wait_upload()?;
        let store = store.clone();
        let handle = std::thread::spawn(move || {
            // A new archive never replaces one of its name; `forget`'s
            // rewrite does.
            let put = if overwrite { store.put_from(&rel, &mut f, len) } else { store.put_from_new(&rel, &mut f, len) };
            put.map_err(|e| Error::Store(e.to_string()))?;
            drop(tmp);
            Ok((rel, len))
        });
        if let Ok(mut u) = self.upload.lock() {
            *u = Some(handle);
        }
        Ok(value)
    }

    /// Waits for the upload under way, if any (an error of it is this
    /// call's). Call before anything that names an archive is written (its
    /// record's copy, `Latest`).
    pub(crate) fn wait_upload(&self) -> Result<()> {
        let handle = self.upload.lock().ok().and_then(|mut u| u.take());
        let Some(h) = handle else { return Ok(()) };
        let (rel, len) = h.join().map_err(|_| Error::WorkerPanicked { task: "uploading an archive" })??;
        if let Place::Remote { sizes, .. } = &self.place {
            if let Ok(mut s) = sizes.lock() {
                s.insert(rel, len);
            }
        }
        Ok(())
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
        if self.sealing.is_some() {
            return self.ensure_sealed_copies(all);
        }
        let newest_copy = if all {
            None
        } else {
            let names = self.names()?;
            names.into_iter().rev().find(|n| self.object_size(&copy_rel(n)).is_some())
        };
        let mut written = Vec::new();
        for name in self.archives()? {
            if newest_copy.as_ref().is_some_and(|c| name <= *c) {
                continue;
            }
            let copy = self.read_object(&copy_rel(&name)).ok();
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

    /// [`Repo::ensure_copies`] of an encrypted repository: a copy is the
    /// archive's sealed record, byte for byte, so no key is needed.
    fn ensure_sealed_copies(&self, all: bool) -> Result<Vec<String>> {
        let mut written = Vec::new();
        let archives = self.archives()?;
        let newest_copy =
            if all { None } else { self.names()?.into_iter().rev().find(|n| self.object_size(&copy_rel(n)).is_some()) };
        for name in archives {
            if newest_copy.as_ref().is_some_and(|c| name <= *c)
                || (!all && self.object_size(&copy_rel(&name)).is_some())
            {
                continue;
            }
            let Some(sealed) = self.archive_member(&name, SEALED_RECORD) else { continue };
            if self.read_object(&copy_rel(&name)).ok().as_deref() == Some(&sealed[..]) {
                continue;
            }
            // With the key, a damaged member is not copied over a good copy.
            if let Some(s) = &self.sealing {
                if let Some(opened) = s.open(&name, &sealed) {
                    if opened.ok().filter(|t| Record::verify(t, &name).is_ok()).is_none() {
                        continue;
                    }
                }
            }
            self.write_copy(&name, &sealed)?;
            written.push(name);
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
                && !self.archive_exists(&name)
                && self.object_size(&copy_rel(&name)).is_none()
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
        let text = if self.sealing.is_some() { self.sealed_raw(name)? } else { self.plain_raw(name)? };
        let text = std::sync::Arc::new(text);
        if let Ok(mut c) = self.raw.lock() {
            c.insert(name.to_string(), text.clone());
        }
        Ok(text)
    }

    /// A file on this machine that holds the text of `name`'s record whole,
    /// and where the text starts in it: the copy beside a local archive,
    /// or this machine's cache of a remote or encrypted repository's record
    /// (taken only while it is still the repository's, as `raw` takes it).
    /// Not checked: the caller checks it.
    pub(crate) fn record_file(&self, name: &str) -> Option<(PathBuf, u64)> {
        match &self.sealing {
            Some(s) if s.master.is_none() => s.cached_file(name, self.object_size(&copy_rel(name))),
            Some(_) => None,
            None if self.is_remote() => {
                let len = self.object_size(&copy_rel(name))?;
                let p = self.record_cache.as_ref()?.join(format!("{name}-{len}{COPY_SUFFIX}"));
                p.is_file().then_some((p, 0))
            }
            None => Some((self.copy_path(name), 0)).filter(|(p, _)| p.is_file()),
        }
    }

    /// Writes the copy of a record whose text is the first `len` bytes of
    /// `text` (a file: a record of a million files is 180 MB).
    pub(crate) fn write_copy_from(&self, name: &str, text: &File, len: u64) -> Result<()> {
        use std::io::{Read, Seek};
        let path = self.copy_path(name);
        let mut from = text;
        from.seek(std::io::SeekFrom::Start(0)).map_err(io_err(&path))?;
        match &self.place {
            Place::Local => {
                let mut tmp = fsutil::temp_beside(&path).map_err(|e| Error::Xtar(e.into()))?;
                std::io::copy(&mut from.take(len), tmp.as_file_mut()).map_err(io_err(&path))?;
                fsutil::persist(tmp, &path, true).map_err(|e| Error::Xtar(e.into()))
            }
            Place::Remote { store, sizes } => {
                // Never a copy before its archive is whole in the store.
                self.wait_upload()?;
                let rel = copy_rel(name);
                store.put_from(&rel, &mut from.take(len), len).map_err(|e| Error::Store(e.to_string()))?;
                if let Ok(mut s) = sizes.lock() {
                    s.insert(rel, len);
                }
                Ok(())
            }
        }
    }

    /// Keeps the text of a record this run wrote (the first `len` bytes of
    /// `text`) in this machine's cache (a repository in an object store,
    /// §12.1); a cache that cannot be written costs the next run one
    /// download.
    pub(crate) fn keep_record(&self, name: &str, text: &File, len: u64) {
        use std::io::{Read, Seek};
        let Some(dir) = &self.record_cache else { return };
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(format!("{name}-{len}{COPY_SUFFIX}"));
        let mut from = text;
        let _ = (|| -> std::io::Result<()> {
            from.seek(std::io::SeekFrom::Start(0))?;
            let mut tmp = fsutil::temp_beside(&path).map_err(std::io::Error::other)?;
            std::io::copy(&mut from.take(len), tmp.as_file_mut())?;
            fsutil::persist(tmp, &path, true).map_err(std::io::Error::other)
        })();
    }

    /// Drops the cached text and record of `name`.
    pub(crate) fn forget_raw(&self, name: &str) {
        if let Ok(mut c) = self.raw.lock() {
            c.remove(name);
        }
        if let Ok(mut c) = self.cache.lock() {
            c.remove(name);
        }
    }

    /// The record as its copy beside the archive holds it, checked (and,
    /// in an encrypted repository, opened).
    pub fn copy_record(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.copy_path(name);
        let bytes = self.read_object(&copy_rel(name)).map_err(io_err(&path))?;
        let text = match &self.sealing {
            Some(s) => s.open(name, &bytes).unwrap_or(Err(Error::NeedKey { archive: name.to_string() }))?,
            None => bytes,
        };
        Record::verify(&text, name)?;
        Ok(text)
    }

    /// The record of an encrypted repository's archive: opened with the
    /// master key (from the copy, else the archive), or, without it, this
    /// machine's cached text of it (§9.3).
    fn sealed_raw(&self, name: &str) -> Result<Vec<u8>> {
        let Some(s) = &self.sealing else { return Err(Error::NoRecord { archive: name.to_string() }) };
        if s.master.is_none() {
            let listed = self.object_size(&copy_rel(name));
            let text = s.cached(name, listed).ok_or_else(|| Error::NeedKey { archive: name.to_string() })?;
            Record::verify(&text, name)?;
            return Ok(text);
        }
        let copy = self.read_object(&copy_rel(name)).ok();
        let member = || self.archive_member(name, SEALED_RECORD);
        let mut first_err = None;
        for sealed in [copy, member()].into_iter().flatten() {
            match s.open(name, &sealed) {
                Some(Ok(text)) if Record::verify(&text, name).is_ok() => return Ok(text),
                Some(Ok(text)) => first_err = first_err.or(Record::verify(&text, name).err()),
                Some(Err(e)) => first_err = first_err.or(Some(e)),
                None => {}
            }
        }
        Err(first_err.unwrap_or(Error::NoRecord { archive: name.to_string() }))
    }

    /// The record of an unencrypted repository's archive: its own, or its
    /// copy when that cannot be read.
    fn plain_raw(&self, name: &str) -> Result<Vec<u8>> {
        // In an object store: this machine's cached text first (§12.1),
        // then the copy: one small read instead of the archive's tail
        // (they hold the same bytes, §2.2).
        if self.is_remote() {
            // Keyed by the copy's listed size: a copy `forget` rewrote, or
            // removed, is not taken from the cache.
            let cached = match (self.record_cache.as_ref(), self.object_size(&copy_rel(name))) {
                (Some(d), Some(len)) => Some(d.join(format!("{name}-{len}{COPY_SUFFIX}"))),
                _ => None,
            };
            if let Some(text) = cached.as_ref().and_then(|p| std::fs::read(p).ok()) {
                if Record::verify(&text, name).is_ok() {
                    return Ok(text);
                }
            }
            if let Ok(copy) = self.read_object(&copy_rel(name)) {
                if Record::verify(&copy, name).is_ok() {
                    if let Some(p) = &cached {
                        let _ = p.parent().map(std::fs::create_dir_all);
                        let _ = fsutil::write_bytes(p, &copy, true);
                    }
                    return Ok(copy);
                }
            }
        }
        let text = match self.archive_record(name) {
            Ok(text) => text,
            Err(e) => match self.read_object(&copy_rel(name)) {
                Ok(copy) if Record::verify(&copy, name).is_ok() => copy,
                _ => return Err(e),
            },
        };
        Ok(text)
    }

    /// The record as the archive holds it, checked (not cached, no copy).
    pub fn archive_record(&self, name: &str) -> Result<Vec<u8>> {
        if let Some(s) = &self.sealing {
            let sealed = self
                .archive_member(name, SEALED_RECORD)
                .ok_or_else(|| Error::NoRecord { archive: name.to_string() })?;
            let text = s.open(name, &sealed).unwrap_or(Err(Error::NeedKey { archive: name.to_string() }))?;
            Record::verify(&text, name)?;
            return Ok(text);
        }
        let f = self.open_archive(name)?;
        let text = xtar::read::tail_member_in(f.as_ref(), &self.archive_path(name), RECORD_NAME)?
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
        Record::parse_verified(&text, name, false, keep)?.named(name)
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
        let size = |rel: String| self.object_size(&rel).unwrap_or(0);
        Ok(SnapshotInfo {
            name: name.to_string(),
            time: name_time(name).unwrap_or(SystemTime::UNIX_EPOCH),
            status: rec.status,
            parent: rec.parent.clone(),
            host: rec.host.clone(),
            root: rec.root.clone(),
            stats: rec.stats,
            archive_bytes: size(format!("{ARCHIVES}/{name}.xtar")) + size(copy_rel(name)),
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
        let not_found = |spec: &str, hint: String| {
            if self.sealing.as_ref().is_some_and(|s| s.master.is_none()) {
                return Error::NeedKey { archive: spec.to_string() };
            }
            Error::NoSnapshot { spec: spec.to_string(), repo: self.root.clone(), hint }
        };
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
        self.wait_upload()?;
        match name {
            None => self.delete_object(LATEST),
            Some(name) => self.put_object(LATEST, format!("{name}\n").as_bytes()),
        }
    }
}

/// The object name of the copy of archive `name`'s record.
pub(crate) fn copy_rel(name: &str) -> String {
    format!("{ARCHIVES}/{name}{COPY_SUFFIX}")
}

/// The data of an archive's first member (its `.xtar-header`).
fn archive_member_first(f: &dyn fsutil::Source, path: &Path) -> Option<Vec<u8>> {
    let (name, size, data) = xtar::read::member_at(f, path, 0).ok()?;
    if name != b".xtar-header" || size > 1 << 16 {
        return None;
    }
    let mut b = vec![0u8; size as usize];
    f.read_exact_at(&mut b, data).ok()?;
    Some(b)
}
