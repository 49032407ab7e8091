//! The engine every restore runs on: entries and members in any order, files unpacked on a pool, checked, and written safely.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;

use filetime::FileTime;
use manifest::{Entry, Kind};
use sha2::{Digest, Sha256};
use tempfile::TempPath;

use crate::dest::{is_fatal, Dest, Placer};
use crate::error::lossy;
use crate::format::{self};
use crate::{Error, Observer, Result};

use super::{unpack_as, ExtractOptions, ExtractReport, Frames, Unpacked};

/// Members up to this size are read into memory and unpacked by a worker;
/// larger ones are streamed by the reading thread.
const IN_MEMORY_MAX: u64 = 16 << 20;
/// Compressed bytes handed to workers and not yet finished, at most.
const WINDOW_BYTES: u64 = 64 << 20;

/// How a restored file was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Its content matches the SHA-256 of its index entry.
    Sha256,
    /// No index entry was left: its zip member's CRC-32 and size match.
    Crc32,
    /// Recreated from its index entry alone (symlinks, empty files).
    Index,
    /// A hard link to a file that was restored.
    Link,
}

type JobResult = (Vec<u8>, u64, Result<Unpacked>);

/// Per-file outcomes, kept when salvaging.
#[derive(Default)]
pub(crate) struct Book {
    /// Outcome of each file, symlink and hard link, by path.
    pub(crate) outcomes: std::collections::BTreeMap<Vec<u8>, Result<Verified, (Fate, String)>>,
    /// Directories whose index was read whole: a member below one of them
    /// that the index does not list is not part of this archive.
    pub(crate) complete_dirs: HashSet<Vec<u8>>,
    /// Whether the manifest was read whole.
    pub(crate) manifest_complete: bool,
}

/// Checks an unpacked file against its index entry (or takes its zip's
/// metadata without one), sets its mode and mtime through its open handle
/// and, with a destination, moves it into place.
fn place(
    path: &[u8],
    tmp: Option<(TempPath, Option<std::fs::File>)>,
    sha256: [u8; 32],
    size: u64,
    zip: (Option<u32>, Option<i64>),
    entry: Option<&Entry>,
    placer: Option<&Placer>,
) -> Result<Verified> {
    let damaged = |message: String| Error::Member { member: lossy(path), message };
    let (mode, mtime, verified) = match entry {
        Some(e) => {
            if e.kind != Kind::File {
                return Err(damaged(format!("the index says this is a {}, the member holds a file", e.kind.name())));
            }
            if e.size != size {
                return Err(damaged(format!("size {size} disagrees with the index ({})", e.size)));
            }
            if e.sha256.is_some_and(|h| h != sha256) {
                return Err(damaged("content does not match its SHA-256 in the index".into()));
            }
            let v = if e.sha256.is_some() { Verified::Sha256 } else { Verified::Crc32 };
            (e.mode, FileTime::from_unix_time(e.mtime.sec, e.mtime.nsec), v)
        }
        None => (zip.0.map_or(0o644, |m| m & 0o7777), FileTime::from_unix_time(zip.1.unwrap_or(0), 0), Verified::Crc32),
    };
    if let (Some((tmp, file)), Some(placer)) = (tmp, placer) {
        let write_err = |source| Error::Write { path: tmp.to_path_buf(), source };
        let perm = std::fs::Permissions::from_mode(mode);
        match file {
            Some(file) => {
                file.set_permissions(perm).map_err(write_err)?;
                filetime::set_file_handle_times(&file, None, Some(mtime)).map_err(write_err)?;
            }
            None => {
                std::fs::set_permissions(&tmp, perm).map_err(write_err)?;
                filetime::set_file_mtime(&tmp, mtime).map_err(write_err)?;
            }
        }
        placer.persist(tmp, path)?;
    }
    Ok(verified)
}

/// Why a file was not restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its member was found but failed its checks.
    Damaged,
    /// No member was found.
    Missing,
    /// It was not written: unsafe, or something is in the way.
    Refused,
}

pub(crate) struct Engine<'a> {
    /// Where to restore; `None` verifies only.
    dest: Option<Dest>,
    opts: &'a ExtractOptions,
    obs: &'a dyn Observer,
    pub(crate) report: ExtractReport,
    pool: rayon::ThreadPool,
    tx: mpsc::Sender<JobResult>,
    rx: mpsc::Receiver<JobResult>,
    inflight: u64,
    jobs: usize,
    /// Index entries of files and links whose members have not come yet.
    expected: HashMap<Vec<u8>, Entry>,
    /// Unpacked members whose index entries have not come yet.
    arrived: HashMap<Vec<u8>, Unpacked>,
    /// Paths of every index entry taken so far (an entry may come twice:
    /// from its directory's index and from the manifest).
    pub(super) seen: HashSet<Vec<u8>>,
    dirs: Vec<Entry>,
    hardlinks: Vec<Entry>,
    symlinks: Vec<(Vec<u8>, Vec<u8>, FileTime, Verified)>,
    matched: HashSet<usize>,
    /// Salvaging: outcomes are booked per file instead of warned about.
    pub(crate) book: Option<Book>,
    /// Version 3: symlinks and empty files have no member; their index
    /// entry is all there is.
    pub(crate) links_in_index: bool,
    /// How pack entries' data is read: zstd frames in version 5.
    pub(crate) frames: Frames,
}

impl<'a> Engine<'a> {
    pub(crate) fn new(dest: Option<&Path>, opts: &'a ExtractOptions, obs: &'a dyn Observer) -> Result<Engine<'a>> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(opts.jobs).build().map_err(|e| Error::Write {
            path: dest.unwrap_or(Path::new(".")).to_path_buf(),
            source: io::Error::other(e),
        })?;
        let (tx, rx) = mpsc::channel();
        Ok(Engine {
            dest: dest.map(|d| Dest::new(d, opts.overwrite)).transpose()?,
            opts,
            obs,
            report: ExtractReport::default(),
            pool,
            tx,
            rx,
            inflight: 0,
            jobs: 0,
            expected: HashMap::new(),
            arrived: HashMap::new(),
            seen: HashSet::new(),
            dirs: Vec::new(),
            hardlinks: Vec::new(),
            symlinks: Vec::new(),
            matched: HashSet::new(),
            book: None,
            links_in_index: false,
            frames: Frames::None,
        })
    }

    pub(crate) fn problem(&mut self, e: Error) {
        self.report.problems += 1;
        self.obs.warning(&e);
    }

    /// A fatal error (the destination cannot be written) stops the run;
    /// anything else is reported against the one file.
    pub(crate) fn fatal_or_problem(&mut self, r: Result<()>) -> Result<()> {
        match r {
            Err(Error::Write { path, source }) if is_fatal(&source) => Err(Error::Write { path, source }),
            Err(e) => {
                self.problem(e);
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Books the outcome for one file: `Ok(None)` means it is not settled
    /// yet. Fatal errors stop the run.
    pub(super) fn settle(&mut self, path: &[u8], r: Result<Option<Verified>>, fate: Fate) -> Result<()> {
        match r {
            Ok(None) => Ok(()),
            Ok(Some(v)) => {
                if let Some(book) = self.book.as_mut() {
                    book.outcomes.insert(path.to_vec(), Ok(v));
                }
                Ok(())
            }
            Err(Error::Write { path, source }) if is_fatal(&source) => Err(Error::Write { path, source }),
            Err(e) => {
                self.report.problems += 1;
                match self.book.as_mut() {
                    Some(book) => {
                        let fate = match e {
                            Error::Unsafe { .. } | Error::Exists { .. } | Error::Write { .. } => Fate::Refused,
                            _ => fate,
                        };
                        let message = match &e {
                            Error::Member { message, .. } => message.clone(),
                            other => crate::error::chain(other),
                        };
                        book.outcomes.insert(path.to_vec(), Err((fate, message)));
                    }
                    None => self.obs.warning(&e),
                }
                Ok(())
            }
        }
    }

    /// Whether `path` is to be restored; records which request matched.
    pub(super) fn selected(&mut self, path: &[u8]) -> bool {
        if self.opts.paths.is_empty() {
            return true;
        }
        let mut any = false;
        for (i, p) in self.opts.paths.iter().enumerate() {
            if manifest::is_within(path, p) {
                self.matched.insert(i);
                any = true;
            }
        }
        any
    }

    /// Takes the member of the file at `path`, `size` bytes read from `r`.
    pub(crate) fn member(&mut self, path: Vec<u8>, size: u64, r: &mut dyn Read) -> Result<()> {
        self.member_as(path, None, size, r)
    }

    /// Like [`Engine::member`], for a member stored under another name
    /// (`stored`: the path its zip entry names).
    pub(crate) fn member_as(
        &mut self,
        path: Vec<u8>,
        stored: Option<Vec<u8>>,
        size: u64,
        r: &mut dyn Read,
    ) -> Result<()> {
        if !self.selected(&path) {
            return Ok(());
        }
        let dir = match &mut self.dest {
            Some(d) => d.prepare(&path).map(Some),
            None => format::check_member_path(&path)
                .map(|()| None)
                .map_err(|reason| Error::Unsafe { member: lossy(&path), reason: reason.into() }),
        };
        let dir = match dir {
            Ok(dir) => dir,
            Err(e) => {
                self.expected.remove(&path);
                return self.settle(&path, Err(e), Fate::Refused);
            }
        };
        if size <= IN_MEMORY_MAX {
            let mut bytes = Vec::new();
            if let Err(e) = r.take(size).read_to_end(&mut bytes) {
                let e = Error::Member { member: lossy(&path), message: format!("cannot read member: {e}") };
                self.expected.remove(&path);
                return self.settle(&path, Err(e), Fate::Damaged);
            }
            while self.inflight > WINDOW_BYTES {
                self.collect(true)?;
            }
            self.inflight += size;
            self.jobs += 1;
            // With its entry known, the worker checks the file and moves
            // it into place itself: the renames run in parallel.
            let ahead = match (self.dest.as_ref(), self.expected.get(&path)) {
                (Some(d), Some(e)) if e.kind == Kind::File => Some((d.placer(), e.clone())),
                _ => None,
            };
            if ahead.is_some() {
                self.expected.remove(&path);
            }
            let tx = self.tx.clone();
            let frames = self.frames.clone();
            self.pool.spawn(move || {
                let res = unpack_as(&path, stored.as_deref(), &frames, &mut &bytes[..], size, dir.as_deref());
                let res = match (res, ahead) {
                    (Ok(Unpacked::File { tmp, sha256, size, zip_mode, zip_mtime }), Some((placer, e))) => {
                        place(&path, tmp, sha256, size, (zip_mode, zip_mtime), Some(&e), Some(&placer))
                            .map(|verified| Unpacked::Done { verified, size })
                    }
                    // It waits for the main thread: close it.
                    (res, _) => res.map(Unpacked::closed),
                };
                let _ = tx.send((path, size, res));
            });
            Ok(())
        } else {
            let res = unpack_as(&path, stored.as_deref(), &self.frames, r, size, dir.as_deref());
            let r = self.arrive(path.clone(), res);
            self.settle(&path, r, Fate::Damaged)
        }
    }

    /// Takes finished worker results; `block` waits for at least one.
    pub(crate) fn collect(&mut self, block: bool) -> Result<()> {
        let mut wait = block && self.jobs > 0;
        loop {
            let next = if wait { self.rx.recv().ok() } else { self.rx.try_recv().ok() };
            let Some((path, size, res)) = next else { return Ok(()) };
            wait = false;
            self.jobs -= 1;
            self.inflight -= size;
            let r = self.arrive(path.clone(), res);
            self.settle(&path, r, Fate::Damaged)?;
        }
    }

    /// Waits for every worker.
    pub(crate) fn drain(&mut self) -> Result<()> {
        while self.jobs > 0 {
            self.collect(true)?;
        }
        Ok(())
    }

    pub(super) fn arrive(&mut self, path: Vec<u8>, res: Result<Unpacked>) -> Result<Option<Verified>> {
        let unpacked = match res {
            // A worker checked it against its entry and moved it into place.
            Ok(Unpacked::Done { verified, size }) => {
                self.report.files += 1;
                self.report.bytes += size;
                return Ok(Some(verified));
            }
            Ok(u) => u,
            Err(e) => {
                self.expected.remove(&path);
                return Err(e);
            }
        };
        if self.book.as_ref().is_some_and(|b| b.outcomes.get(&path).is_some_and(|o| o.is_ok())) {
            // A second member for a file already restored: keep the first.
            return Ok(None);
        }
        match self.expected.remove(&path) {
            Some(entry) => self.finalize(&path, unpacked, Some(&entry)),
            None => {
                self.arrived.insert(path, unpacked.closed());
                Ok(None)
            }
        }
    }

    /// Takes the entries of an index (or of the manifest) of the
    /// directory `dir`; entries already taken are ignored.
    pub(crate) fn index(&mut self, dir: &[u8], entries: Vec<Entry>) -> Result<()> {
        if !dir.is_empty() {
            format::check_member_path(dir)
                .map_err(|reason| Error::Unsafe { member: lossy(dir), reason: reason.into() })?;
        }
        for e in entries {
            if !self.selected(&e.path) || !self.seen.insert(e.path.clone()) {
                continue;
            }
            match e.kind {
                Kind::Dir => {
                    if let (Some(dest), false) = (self.dest.as_mut(), e.path.is_empty()) {
                        let r = dest.ensure_dir(&e.path, &e.path);
                        if self.book.is_some() {
                            self.fatal_or_problem(r)?;
                        } else {
                            r?;
                        }
                    }
                    self.dirs.push(e);
                }
                Kind::Symlink if self.links_in_index => {
                    let r = self.recreate_from_index(&e);
                    self.settle(&e.path, r, Fate::Missing)?;
                }
                // Version 3: an empty file has no member either.
                Kind::File if self.links_in_index && e.size == 0 => {
                    let r = self.recreate_from_index(&e);
                    self.settle(&e.path, r, Fate::Missing)?;
                }
                Kind::File | Kind::Symlink
                    if self.book.as_ref().is_some_and(|b| b.outcomes.contains_key(&e.path))
                        && !(e.kind == Kind::Symlink || e.size == 0) =>
                {
                    // Salvaging, its member was already found damaged.
                }
                Kind::File | Kind::Symlink => match self.arrived.remove(&e.path) {
                    Some(u) => {
                        let path = e.path.clone();
                        let r = self.finalize(&path, u, Some(&e));
                        self.settle(&path, r, Fate::Damaged)?;
                    }
                    None => {
                        self.expected.insert(e.path.clone(), e);
                    }
                },
                Kind::HardLink => self.hardlinks.push(e),
                Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => {}
            }
        }
        Ok(())
    }

    /// Books a file member that cannot even be read as damaged.
    pub(crate) fn damaged(&mut self, path: &[u8], message: &str) -> Result<()> {
        self.expected.remove(path);
        let e = Error::Member { member: lossy(path), message: message.into() };
        self.settle(path, Err(e), Fate::Damaged)
    }

    /// Whether a file still waits for its member, and its index entry.
    pub(crate) fn expects(&self, path: &[u8]) -> Option<&Entry> {
        self.expected.get(path)
    }

    /// Tries a member found without a trusted tar header for a file that
    /// is still expected: it is taken only if it matches the file's index
    /// entry exactly (SHA-256 for files, target for symlinks).
    pub(crate) fn candidate(&mut self, path: &[u8], size: u64, r: &mut dyn Read) -> Result<bool> {
        let Some(entry) = self.expected.get(path).cloned() else { return Ok(false) };
        let dir = match self.dest.as_mut().map(|d| d.prepare(path)).transpose() {
            Ok(dir) => dir,
            Err(_) => return Ok(false),
        };
        let Ok(u) = unpack_as(path, None, &self.frames, r, size, dir.as_deref()) else { return Ok(false) };
        let matches = match (&u, entry.kind) {
            (Unpacked::File { sha256, size, .. }, Kind::File) => entry.sha256 == Some(*sha256) && entry.size == *size,
            (Unpacked::Symlink { target, .. }, Kind::Symlink) => entry.target.as_deref() == Some(&target[..]),
            _ => false,
        };
        if !matches {
            return Ok(false);
        }
        self.expected.remove(path);
        let r = self.finalize(path, u, Some(&entry));
        self.settle(path, r, Fate::Damaged)?;
        Ok(true)
    }

    /// Checks an unpacked member against its index entry, applies the
    /// metadata and moves it into place.
    pub(super) fn finalize(&mut self, path: &[u8], u: Unpacked, entry: Option<&Entry>) -> Result<Option<Verified>> {
        let damaged = |message: String| Error::Member { member: lossy(path), message };
        match u {
            Unpacked::Symlink { target, zip_mtime } => {
                if let Some(e) = entry {
                    if e.kind != Kind::Symlink || e.target.as_deref() != Some(&target[..]) {
                        return Err(damaged("symlink member disagrees with the index".into()));
                    }
                }
                let mtime = match entry {
                    Some(e) => FileTime::from_unix_time(e.mtime.sec, e.mtime.nsec),
                    None => FileTime::from_unix_time(zip_mtime.unwrap_or(0), 0),
                };
                let verified = if entry.is_some() { Verified::Sha256 } else { Verified::Crc32 };
                // Booked when the link is made, after every file.
                self.symlinks.push((path.to_vec(), target, mtime, verified));
                Ok(None)
            }
            Unpacked::File { tmp, sha256, size, zip_mode, zip_mtime } => {
                let placer = self.dest.as_ref().map(Dest::placer);
                let verified = place(path, tmp, sha256, size, (zip_mode, zip_mtime), entry, placer.as_ref())?;
                self.report.files += 1;
                self.report.bytes += size;
                Ok(Some(verified))
            }
            Unpacked::Done { verified, size } => {
                self.report.files += 1;
                self.report.bytes += size;
                Ok(Some(verified))
            }
        }
    }

    /// Whether a file the manifest does not list may still come from a
    /// member alone: its line was lost (the manifest was not read whole,
    /// and its directory's lines were not all read) and nothing was booked
    /// for it yet.
    pub(crate) fn unlisted(&self, path: &[u8]) -> bool {
        !self.expected.contains_key(path)
            && !self.foreign(path)
            && self.book.as_ref().is_none_or(|b| !b.outcomes.contains_key(path))
    }

    /// Whether a member without an index entry is foreign: its directory's
    /// index, or the manifest, was read whole and does not list it.
    pub(super) fn foreign(&self, path: &[u8]) -> bool {
        self.book.as_ref().is_some_and(|b| b.manifest_complete || b.complete_dirs.contains(manifest::parent_of(path)))
    }

    /// Restores, from its index entry alone, a file that needs no data:
    /// a symlink, or an empty file.
    pub(super) fn recreate_from_index(&mut self, e: &Entry) -> Result<Option<Verified>> {
        let empty: [u8; 32] = Sha256::digest(b"").into();
        match e.kind {
            Kind::Symlink if e.target.is_some() => {
                let mtime = FileTime::from_unix_time(e.mtime.sec, e.mtime.nsec);
                self.symlinks.push((e.path.clone(), e.target.clone().unwrap_or_default(), mtime, Verified::Index));
                Ok(None)
            }
            Kind::File if e.size == 0 && e.sha256.is_none_or(|h| h == empty) => {
                let Some(dest) = self.dest.as_mut() else { return Ok(Some(Verified::Index)) };
                let dir = dest.prepare(&e.path)?;
                let t = tempfile::Builder::new()
                    .prefix(".xtar-tmp-")
                    .tempfile_in(&dir)
                    .map_err(|source| Error::Write { path: dir.clone(), source })?;
                let (file, path) = t.into_parts();
                let u = Unpacked::File {
                    tmp: Some((path, Some(file))),
                    sha256: empty,
                    size: 0,
                    zip_mode: None,
                    zip_mtime: None,
                };
                self.finalize(&e.path, u, Some(e)).map(|_| Some(Verified::Index))
            }
            _ => Err(Error::Member {
                member: lossy(&e.path),
                message: "listed in the index but its member is missing or damaged".into(),
            }),
        }
    }

    pub(crate) fn finish(mut self) -> Result<(ExtractReport, Option<Book>)> {
        self.drain()?;
        // Members whose index is missing keep what their zip says.
        let mut orphans: Vec<(Vec<u8>, Unpacked)> = self.arrived.drain().collect();
        orphans.sort_by(|a, b| manifest::cmp_paths(&a.0, &b.0));
        for (path, u) in orphans {
            if self.book.is_some() {
                if self.foreign(&path) {
                    let e = Error::Member {
                        member: lossy(&path),
                        message: "found where no index lists it; it looks like data from inside another file, \
                                  not restored"
                            .into(),
                    };
                    self.obs.warning(&e);
                    continue;
                }
            } else {
                self.problem(Error::Member {
                    member: lossy(&path),
                    message: "no index entry; restored with the metadata of its zip member".into(),
                });
            }
            let r = self.finalize(&path, u, None);
            self.settle(&path, r, Fate::Damaged)?;
        }
        let mut missing: Vec<Entry> = self.expected.drain().map(|(_, e)| e).collect();
        missing.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        for e in missing {
            if self.book.is_some() {
                let r = self.recreate_from_index(&e);
                self.settle(&e.path, r, Fate::Missing)?;
            } else {
                self.problem(Error::Member {
                    member: lossy(&e.path),
                    message: "listed in the index but its member is missing or damaged".into(),
                });
            }
        }
        if self.dest.is_none() {
            self.report.links += (self.hardlinks.len() + self.symlinks.len()) as u64;
            self.report.dirs += self.dirs.len() as u64;
            return Ok((self.report, self.book));
        }
        for link in std::mem::take(&mut self.hardlinks) {
            let r = self.hard_link(&link).map(|()| Some(Verified::Link));
            self.settle(&link.path, r, Fate::Missing)?;
        }
        for (path, target, mtime, verified) in std::mem::take(&mut self.symlinks) {
            let r = self.symlink(&path, &target, mtime).map(|()| Some(verified));
            self.settle(&path, r, Fate::Damaged)?;
        }
        // Directory metadata last, deepest first, so that restoring their
        // contents did not change their mtimes or need their permissions.
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| manifest::cmp_paths(&b.path, &a.path));
        let Some(dest) = self.dest.take() else { return Ok((self.report, self.book)) };
        for d in dirs {
            if d.path.is_empty() && !dest.created {
                continue;
            }
            let abs = dest.abs(&d.path);
            if self.book.is_some() && !abs.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let r = std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(d.mode))
                .and_then(|()| filetime::set_file_mtime(&abs, FileTime::from_unix_time(d.mtime.sec, d.mtime.nsec)))
                .map_err(|source| Error::Write { path: abs, source });
            self.report.dirs += 1;
            self.fatal_or_problem(r)?;
        }
        for (i, p) in self.opts.paths.iter().enumerate() {
            if !self.matched.contains(&i) {
                self.report.problems += 1;
                self.obs.warning(&Error::Member { member: lossy(p), message: "not found in the archive".into() });
            }
        }
        Ok((self.report, self.book))
    }

    pub(super) fn hard_link(&mut self, e: &Entry) -> Result<()> {
        let target = e.target.clone().unwrap_or_default();
        let Some(dest) = self.dest.as_mut() else { return Ok(()) };
        dest.prepare(&e.path)?;
        let src = dest.abs(&target);
        if !src.symlink_metadata().is_ok_and(|m| m.is_file()) {
            return Err(Error::Member {
                member: lossy(&e.path),
                message: format!("hard link to `{}`, which was not restored", lossy(&target)),
            });
        }
        let at = dest.clear_for_link(&e.path)?;
        std::fs::hard_link(&src, &at).map_err(|source| Error::Write { path: at, source })?;
        self.report.links += 1;
        Ok(())
    }

    pub(super) fn symlink(&mut self, path: &[u8], target: &[u8], mtime: FileTime) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let Some(dest) = self.dest.as_mut() else { return Ok(()) };
        dest.prepare(path)?;
        let at = dest.clear_for_link(path)?;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &at)
            .map_err(|source| Error::Write { path: at.clone(), source })?;
        filetime::set_symlink_file_times(&at, mtime, mtime).map_err(|source| Error::Write { path: at, source })?;
        self.report.links += 1;
        Ok(())
    }
}
