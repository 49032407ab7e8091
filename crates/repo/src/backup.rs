//! `backup`: a new snapshot, storing only what is new or changed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use manifest::{Entry, Kind, Timestamp};
use rayon::prelude::*;
use sha2::Digest;

use crate::record::{diff_lines, Line, Location, Record, Stat, Stats, Status, RECORD_NAME};
use crate::repository::Repo;
use crate::sealed::{ARCHIVE_KEYRING, SEALED_RECORD};
use crate::Result;

/// How to back up.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Compression and walk settings (the selection is ignored).
    pub compress: xtar::CompressOptions,
    /// Compare content (SHA-256) instead of size, times and inode.
    pub checksum: bool,
    /// Input bytes stored per archive before a checkpoint: a run killed
    /// part-way loses at most about this much work.
    pub checkpoint_bytes: u64,
    /// The machine name recorded (default: this machine's host name).
    pub host: Option<Vec<u8>>,
    /// The snapshot to compare with (default: the newest of the same host
    /// and source directory).
    pub parent: Option<String>,
    /// Keys to an encrypted repository (none needed: a backup reads this
    /// machine's cache of its own records; with a way in, the records
    /// themselves).
    pub keys: xtar::Keys,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            compress: xtar::CompressOptions::default(),
            checksum: false,
            checkpoint_bytes: 1 << 30,
            host: None,
            parent: None,
            keys: xtar::Keys::default(),
        }
    }
}

/// This machine's host name (`localhost` when it cannot be read).
pub fn host_name() -> Vec<u8> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|h| h.trim_ascii().to_vec())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| b"localhost".to_vec())
}

/// The checkpoint size of a backup into an object store, unless given.
pub const REMOTE_CHECKPOINT: u64 = 64 << 20;

/// Where archives bound for an object store are written before they are
/// uploaded: `$PYBACKUP_STAGING_DIR`, else the system's temporary directory.
pub(crate) fn staging_dir() -> std::path::PathBuf {
    std::env::var_os("PYBACKUP_STAGING_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| std::env::temp_dir().join("pybackup-staging"), std::path::PathBuf::from)
}

/// A record whose lines are relative to its parent's is written when the
/// parent's chain is shorter than this...
const MAX_DELTAS: usize = 64;
/// ...and the deltas of the chain, this one included, are at most this
/// fraction (1/N) of the size of the record that lists the whole tree.
const DELTA_SHARE: usize = 2;

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The new snapshot.
    pub name: String,
    /// The snapshot it was compared with.
    pub parent: Option<String>,
    /// Counts, as in the record.
    pub stats: Stats,
    /// Archives written by this run (checkpoints, then the snapshot's own).
    pub archives: Vec<String>,
    /// Files whose content an interrupted earlier run had already stored.
    pub resumed: u64,
    /// Files that were hashed because their metadata changed (or all, with
    /// `checksum`).
    pub hashed: u64,
    /// Whether the snapshot's record lists only what changed since its
    /// parent (else the whole tree).
    pub delta: bool,
    /// Bytes of the snapshot's record (each of its two copies).
    pub record_bytes: u64,
    /// Copies of earlier records that were missing and were written (a
    /// version 1 repository's, or a killed run's).
    pub copies_written: u64,
    /// Bytes of archives written.
    pub bytes_written: u64,
    /// Problems that did not stop the backup (unreadable files, left out).
    pub warnings: u64,
}

/// What earlier runs left: the newest complete snapshot of the same host
/// and source (the parent, with its whole listing), and the checkpoints
/// that interrupted runs of that host and source wrote after it.
struct Earlier {
    parent: Option<Record>,
    /// The bytes of the parent's chain of records: those with a base, then
    /// the one that lists the whole tree.
    chain_bytes: (Vec<u64>, u64),
    pending: Vec<Arc<Record>>,
}

impl Earlier {
    fn read(repo: &Repo, host: &[u8], root: &[u8], parent: Option<&str>) -> Result<Earlier> {
        // Version 1 records name no host: they match on the source alone.
        let same = |r: &Record| (r.host == host || r.host.is_empty()) && r.root == root;
        let wanted = match parent {
            Some(spec) => Some(repo.resolve(Some(spec), &crate::Filter::default())?),
            None => None,
        };
        let mut found = None;
        let mut pending = Vec::new();
        // Headers only: the lines of a whole-tree record are parsed once,
        // below, when the listing is put together.
        for name in repo.names()?.into_iter().rev() {
            match repo.record_header(&name) {
                Ok(r) if r.status == Status::Complete && wanted.as_ref().map_or(same(&r), |w| *w == name) => {
                    found = Some(name);
                    break;
                }
                Ok(r) if r.status == Status::Partial && same(&r) => pending.push(repo.record(&name)?),
                _ => {}
            }
        }
        pending.reverse();
        let (parent, chain_bytes) = match found {
            None => (None, (Vec::new(), 0)),
            Some(name) => {
                let chain = repo.chain(&name)?;
                let mut sizes: Vec<u64> =
                    chain.iter().map(|r| repo.raw(&r.name).map(|t| t.len() as u64)).collect::<Result<_>>()?;
                let base = sizes.pop().unwrap_or(0);
                let mut parent = repo.snapshot(&name)?;
                // Content in an archive that is gone is not known: it is
                // stored again (the parent may be listed from its copy).
                let present: HashSet<String> = repo.archives()?.into_iter().collect();
                for l in &mut parent.lines {
                    if l.loc.as_ref().is_some_and(|loc| !present.contains(&loc.archive)) {
                        l.loc = None;
                    }
                }
                (Some(parent), (sizes, base))
            }
        };
        // The records' texts are not needed any more (a whole-tree record
        // of a million files is over 200 MB).
        repo.clear_cache();
        Ok(Earlier { parent, chain_bytes, pending })
    }

    fn pending_names(&self) -> HashSet<String> {
        self.pending.iter().map(|r| r.name.clone()).collect()
    }

    /// Content by SHA-256: (archive, member name, offset).
    fn by_sha(&self) -> HashMap<[u8; 32], (&str, &[u8], u64)> {
        let mut by_sha = HashMap::new();
        for rec in self.parent.iter().chain(self.pending.iter().map(|r| &**r)) {
            for l in &rec.lines {
                if let (Some(loc), Some(sha), Some(member)) = (&l.loc, l.entry.sha256, l.member_name()) {
                    by_sha.insert(sha, (loc.archive.as_str(), member, loc.offset));
                }
            }
        }
        by_sha
    }
}

/// Looks up what earlier runs recorded of a path: the checkpoints' lines
/// by path (usually none), the parent's by walking them alongside the
/// tree, both in canonical order.
struct Known<'r> {
    pending: HashMap<&'r [u8], &'r Line>,
    parent: &'r [Line],
    cursor: usize,
}

impl<'r> Known<'r> {
    fn new(earlier: &'r Earlier) -> Known<'r> {
        let mut pending: HashMap<&[u8], &Line> = HashMap::new();
        for rec in &earlier.pending {
            for l in &rec.lines {
                pending.insert(&l.entry.path, l);
            }
        }
        Known { pending, parent: earlier.parent.as_ref().map_or(&[], |p| &p.lines[..]), cursor: 0 }
    }

    /// The line of `path`; paths must be asked in canonical order.
    fn get(&mut self, path: &[u8]) -> Option<&'r Line> {
        if let Some(l) = self.pending.get(path) {
            return Some(*l);
        }
        while self.cursor < self.parent.len()
            && manifest::cmp_canonical(&self.parent[self.cursor].entry.path, path) == std::cmp::Ordering::Less
        {
            self.cursor += 1;
        }
        self.parent.get(self.cursor).filter(|l| l.entry.path == path)
    }
}

/// Backs up `src` into the repository at `repo` (created if needed).
pub fn backup(src: &Path, repo: &Path, opts: &BackupOptions, obs: &dyn xtar::Observer) -> Result<BackupReport> {
    let mut repo = Repo::init_keyed(repo, &opts.keys)?;
    let _lock = repo.lock()?;
    repo.ensure_identity()?;
    let repo = repo;
    // In an object store, an archive is uploaded whole: smaller ones bound
    // what a run cut short loses, and keep uploads in bounds (§12).
    let mut opts = opts.clone();
    if repo.is_remote() && opts.checkpoint_bytes == BackupOptions::default().checkpoint_bytes {
        opts.checkpoint_bytes = REMOTE_CHECKPOINT;
    }
    let opts = &opts;
    repo.remove_stale();
    let copies_written = repo.ensure_copies(false)?.len() as u64;
    let mut copts = opts.compress.clone();
    copts.select = None;
    let src_canon = src.canonicalize().map_err(crate::io_err(src))?;
    let src_root = src_canon.as_os_str().as_encoded_bytes().to_vec();
    let host = opts.host.clone().unwrap_or_else(host_name);
    let (earlier, walked, walk_warnings) =
        read_earlier_while_walking(&repo, src, (&host, &src_root, opts.parent.as_deref()), &copts, obs)?;
    let walked = without_repository(&repo, &src_canon, walked)?;
    let mut run = Run {
        repo: &repo,
        src,
        src_root,
        host,
        copts,
        opts,
        obs,
        report: BackupReport { warnings: walk_warnings, copies_written, ..Default::default() },
        walked,
        earlier,
        lines: Vec::new(),
    };
    run.report.parent = run.earlier.parent.as_ref().map(|p| p.name.clone());
    let candidates = run.classify();
    let to_store = run.hash(&candidates);
    run.store(&to_store)?;
    repo.set_latest(Some(&run.report.name))?;
    Ok(run.report)
}

/// Reads what earlier archives hold while the tree is walked.
fn read_earlier_while_walking(
    repo: &Repo,
    src: &Path,
    (host, root, parent): (&[u8], &[u8], Option<&str>),
    copts: &xtar::CompressOptions,
    obs: &dyn xtar::Observer,
) -> Result<(Earlier, Vec<walk::Entry>, u64)> {
    let (earlier, walked) = std::thread::scope(|scope| {
        let earlier = scope.spawn(|| Earlier::read(repo, host, root, parent));
        let walked = xtar::walk_source(src, copts, obs);
        let earlier = earlier.join().unwrap_or(Err(crate::Error::WorkerPanicked { task: "reading records" }));
        (earlier, walked)
    });
    let (walked, warnings) = walked?;
    Ok((earlier?, walked, warnings))
}

/// Never backs up the repository into itself: it is left out of the walk
/// when it is inside the source, and refused when it is the source.
fn without_repository(repo: &Repo, src_canon: &Path, walked: Vec<walk::Entry>) -> Result<Vec<walk::Entry>> {
    let repo_canon = repo.root().canonicalize().ok();
    match repo_canon.as_deref().and_then(|r| r.strip_prefix(src_canon).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => {
            use std::os::unix::ffi::OsStrExt;
            let rel = rel.as_os_str().as_bytes();
            Ok(walked.into_iter().filter(|e| !manifest::is_within(&e.path, rel)).collect())
        }
        Some(_) => Err(crate::Error::SourceIsRepo { path: repo.root().to_path_buf() }),
        None => Ok(walked),
    }
}

/// One backup run, stage by stage: classify the walked entries, hash the
/// candidates, store what is new.
struct Run<'a> {
    repo: &'a Repo,
    src: &'a Path,
    src_root: Vec<u8>,
    host: Vec<u8>,
    copts: xtar::CompressOptions,
    opts: &'a BackupOptions,
    obs: &'a dyn xtar::Observer,
    report: BackupReport,
    walked: Vec<walk::Entry>,
    earlier: Earlier,
    /// The new record's line of each walked entry (`None`: left out).
    lines: Vec<Option<Line>>,
}

impl Run<'_> {
    /// Decides, for every file, whether its content is known (same size,
    /// mtime, ctime and inode as an earlier run recorded); returns the
    /// files to hash.
    fn classify(&mut self) -> Vec<usize> {
        let walked = &self.walked;
        let mut known = Known::new(&self.earlier);
        let mut lines: Vec<Option<Line>> = Vec::with_capacity(walked.len());
        let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
        let mut candidates: Vec<usize> = Vec::new();
        let empty_sha: [u8; 32] = sha2::Sha256::digest(b"").into();
        for (i, e) in walked.iter().enumerate() {
            let mut entry = Entry::from_walk(e);
            let stat = Some(Stat { ctime: Timestamp::new(e.meta.ctime, e.meta.ctime_nsec), ino: e.meta.ino });
            match e.kind {
                walk::Kind::File if e.meta.nlink > 1 && first_of.contains_key(&(e.meta.dev, e.meta.ino)) => {
                    entry.kind = Kind::HardLink;
                    entry.target = Some(walked[first_of[&(e.meta.dev, e.meta.ino)]].path.clone());
                    lines.push(Some(Line { entry, loc: None, stat: None }));
                }
                walk::Kind::File => {
                    if e.meta.nlink > 1 {
                        first_of.insert((e.meta.dev, e.meta.ino), i);
                    }
                    if e.meta.size == 0 {
                        entry.sha256 = Some(empty_sha);
                        lines.push(Some(Line { entry, loc: None, stat }));
                        continue;
                    }
                    let same = known.get(&e.path).filter(|k| {
                        !self.opts.checksum
                            && k.loc.is_some()
                            && k.entry.kind == Kind::File
                            && k.entry.size == e.meta.size
                            && k.entry.mtime == entry.mtime
                            && k.stat == stat
                    });
                    match same {
                        Some(k) => {
                            entry.sha256 = k.entry.sha256;
                            lines.push(Some(Line { entry, loc: k.loc.clone(), stat }));
                        }
                        None => {
                            candidates.push(i);
                            lines.push(Some(Line { entry, loc: None, stat }));
                        }
                    }
                }
                _ => lines.push(Some(Line { entry, loc: None, stat: None })),
            }
        }
        self.lines = lines;
        candidates
    }

    /// Hashes the candidates; content already stored is not stored again.
    /// Returns the files to store.
    fn hash(&mut self, candidates: &[usize]) -> Vec<usize> {
        let by_sha = if candidates.is_empty() { HashMap::new() } else { self.earlier.by_sha() };
        self.report.hashed = candidates.len() as u64;
        type Hashed = (usize, std::io::Result<([u8; 32], u64)>);
        let (src, walked) = (self.src, &self.walked);
        let hashes: Vec<Hashed> =
            candidates.par_iter().map(|&i| (i, manifest::hash_file(&walk::join(src, &walked[i].path)))).collect();
        let mut to_store: Vec<usize> = Vec::new();
        for (i, h) in hashes {
            let Some(line) = self.lines[i].as_mut() else { continue };
            match h {
                Ok((sha, size)) if size == line.entry.size => match by_sha.get(&sha) {
                    Some(&(archive, member, offset)) => {
                        line.entry.sha256 = Some(sha);
                        let member = (member != &line.entry.path[..]).then(|| member.to_vec());
                        line.loc = Some(Location { archive: archive.to_string(), member, offset });
                    }
                    None => to_store.push(i),
                },
                Ok(_) => to_store.push(i), // it changed while read: store what is there
                Err(source) => {
                    self.report.warnings += 1;
                    self.obs.warning(&xtar::Error::Read { path: walk::join(src, &walked[i].path), source });
                    self.lines[i] = None;
                }
            }
        }
        to_store
    }

    /// Stores the files `to_store`, in checkpoints of about
    /// `checkpoint_bytes` each: every archive but the last holds a partial
    /// record of what it stored, the last the whole snapshot's record.
    fn store(&mut self, to_store: &[usize]) -> Result<()> {
        let batches = self.batches(to_store);
        let last = batches.len() - 1;
        let pending_names = self.earlier.pending_names();
        // Archives whose content counts as stored by this run.
        let mut run_names = pending_names.clone();
        for (b, batch) in batches.into_iter().enumerate() {
            let name = self.repo.new_name()?;
            run_names.insert(name.clone());
            let written = self.write_archive(&name, &batch, b == last, &run_names, &pending_names)?;
            // Files the writer could not read were warned about and left out.
            for &i in &batch {
                if let Some(slot) = self.lines.get_mut(i) {
                    if slot.as_ref().is_some_and(|l| l.loc.is_none()) {
                        *slot = None;
                    }
                }
            }
            self.report.warnings += written.summary.warnings;
            self.report.bytes_written += written.summary.bytes_out;
            self.report.archives.push(name.clone());
            self.report.name = name;
        }
        Ok(())
    }

    /// The files to store, cut into checkpoints (at least one, maybe empty).
    fn batches(&self, to_store: &[usize]) -> Vec<Vec<usize>> {
        let mut batches: Vec<Vec<usize>> = vec![Vec::new()];
        let mut batch_bytes = 0u64;
        for &i in to_store {
            if batch_bytes >= self.opts.checkpoint_bytes.max(1) {
                batches.push(Vec::new());
                batch_bytes = 0;
            }
            batch_bytes += self.walked[i].meta.size;
            if let Some(b) = batches.last_mut() {
                b.push(i);
            }
        }
        batches
    }

    /// Writes archive `name` with the files of `batch` and its record.
    fn write_archive(
        &mut self,
        name: &str,
        batch: &[usize],
        complete: bool,
        run_names: &HashSet<String>,
        pending_names: &HashSet<String>,
    ) -> Result<xtar::Written> {
        let selected: HashSet<Vec<u8>> = batch.iter().map(|&i| self.walked[i].path.clone()).collect();
        let by_path: HashMap<Vec<u8>, usize> = batch.iter().map(|&i| (self.walked[i].path.clone(), i)).collect();
        let entries = if batch.is_empty() {
            self.walked.iter().take(1).cloned().collect()
        } else {
            // Only the stored files and the directories above them are
            // copied out of the walk (a million entries are 150 MB).
            let mut above: HashSet<&[u8]> = HashSet::new();
            for &i in batch {
                let mut p = &self.walked[i].path[..];
                while let Some(k) = p.iter().rposition(|&b| b == b'/') {
                    p = &p[..k];
                    if !above.insert(p) {
                        break;
                    }
                }
            }
            let subset: Vec<walk::Entry> = self
                .walked
                .iter()
                .filter(|e| e.path.is_empty() || selected.contains(&e.path) || above.contains(&e.path[..]))
                .cloned()
                .collect();
            xtar::Select::Paths(selected).apply(subset)
        };
        if self.repo.sealing.is_some() {
            return self.write_sealed(name, &entries, &by_path, (batch, complete), (run_names, pending_names));
        }
        let (src, copts, obs) = (self.src, self.copts.clone(), self.obs);
        let mut copy: Option<Vec<u8>> = None;
        let staging = staging_dir();
        let written = self.repo.publish_archive(name, &staging, |file, out| {
            let mut writer = xtar::ArchiveWriter::new(file, out, &xtar::root_label(src, &copts), &copts)?;
            xtar::write_entries(&mut writer, src, &entries, obs)?;
            let text = {
                let w = writer.written();
                self.book(name, w, &by_path);
                self.record_text(name, batch, complete, run_names, pending_names)
            };
            writer.add_extra(RECORD_NAME, &text)?;
            let written = writer.finish();
            if complete {
                copy = Some(text);
            }
            written
        })?;
        // The snapshot's record, a second time, beside its archive: losing
        // either leaves it (and every snapshot listed relative to it).
        if let Some(text) = copy {
            self.repo.write_copy(name, &text)?;
            self.repo.keep_record(name, &text);
        }
        Ok(written)
    }

    /// [`Run::write_archive`] into an encrypted repository (§9): a version
    /// 4 archive encrypted to the master key, with the keyring and the
    /// sealed record as members; the sealed record's copy beside it (for
    /// checkpoints too: this machine's cache is checked against it); and
    /// the record's text in this machine's cache.
    fn write_sealed(
        &mut self,
        name: &str,
        entries: &[walk::Entry],
        by_path: &HashMap<Vec<u8>, usize>,
        (batch, complete): (&[usize], bool),
        (run_names, pending_names): (&HashSet<String>, &HashSet<String>),
    ) -> Result<xtar::Written> {
        let Some(sealing) = self.repo.sealing.as_ref() else {
            return Err(crate::Error::NoRecord { archive: name.into() });
        };
        let keyring = sealing.keyring.to_text().into_bytes();
        let mut copts = self.copts.clone();
        copts.version = xtar::format::SEALED_VERSION;
        copts.recipients = vec![sealing.keyring.recipient.clone()];
        let staging = staging_dir();
        copts.spill_dir = Some(if self.repo.is_remote() {
            staging.clone()
        } else {
            self.repo.root().join(crate::repository::ARCHIVES)
        });
        let (src, obs) = (self.src, self.obs);
        let mut kept: Option<(Vec<u8>, Vec<u8>)> = None;
        let written = self.repo.publish_archive(name, &staging, |file, out| {
            let spill = copts.spill_dir.clone().unwrap_or_default();
            let mut w = xtar::PackedWriter::new(file, out, &xtar::root_label(src, &copts), &copts, &spill)?;
            xtar::write_entries(&mut w, src, entries, obs)?;
            w.finish_with(|written| {
                self.book(name, written, by_path);
                let text = self.record_text(name, batch, complete, run_names, pending_names);
                let sealed = self
                    .repo
                    .sealing
                    .as_ref()
                    .map(|s| s.seal(&text))
                    .transpose()
                    .map_err(|e| xtar::Error::Write { path: out.to_path_buf(), source: std::io::Error::other(e) })?
                    .unwrap_or_default();
                kept = Some((text, sealed.clone()));
                Ok(vec![(ARCHIVE_KEYRING.to_vec(), keyring.clone()), (SEALED_RECORD.to_vec(), sealed)])
            })
        })?;
        if let Some((text, sealed)) = kept {
            self.repo.write_copy(name, &sealed)?;
            if let Some(Err(e)) = self.repo.sealing.as_ref().map(|s| s.keep(name, &text, &sealed)) {
                self.report.warnings += 1;
                self.obs.warning(&xtar::Error::Write { path: "the cache of this machine's records".into(), source: e });
            }
        }
        Ok(written)
    }

    /// Books where each stored file now is, from what the writer wrote.
    fn book(&mut self, name: &str, w: &xtar::Written, by_path: &HashMap<Vec<u8>, usize>) {
        for e in &w.entries {
            let (Some(&i), Some(&offset)) = (by_path.get(&e.path), w.offsets.get(&e.path)) else { continue };
            if let Some(line) = self.lines[i].as_mut() {
                line.entry = e.clone();
                line.loc = Some(Location { archive: name.to_string(), member: None, offset });
            }
        }
    }

    /// The text of archive `name`'s record: the whole snapshot's (maybe
    /// relative to its parent) when `complete`, else the checkpoint's.
    fn record_text(
        &mut self,
        name: &str,
        batch: &[usize],
        complete: bool,
        run_names: &HashSet<String>,
        pending_names: &HashSet<String>,
    ) -> Vec<u8> {
        let rec = self.record(name, batch, complete);
        let rec = finish_record(rec, self.earlier.parent.as_ref(), run_names);
        if !complete {
            return rec.to_text();
        }
        self.report.stats = rec.stats;
        self.report.resumed =
            rec.lines.iter().filter(|l| l.loc.as_ref().is_some_and(|loc| pending_names.contains(&loc.archive))).count()
                as u64;
        let text = self.relative_to_parent(rec);
        self.report.record_bytes = text.len() as u64;
        text
    }

    /// The text of a complete record: only what differs from the parent
    /// when the parent's chain is short enough and the deltas small enough
    /// beside the whole listing, else the whole tree.
    fn relative_to_parent(&mut self, mut rec: Record) -> Vec<u8> {
        let whole = |rec: &Record| rec.to_text();
        let Some(parent) = &self.earlier.parent else { return whole(&rec) };
        let (deltas, base) = &self.earlier.chain_bytes;
        if deltas.len() + 1 > MAX_DELTAS {
            return whole(&rec);
        }
        let (changed, removed) = diff_lines(&parent.lines, &rec.lines);
        let full = std::mem::replace(&mut rec.lines, changed);
        rec.removed = removed;
        rec.base = Some(parent.name.clone());
        let text = rec.to_text();
        let so_far: u64 = deltas.iter().sum::<u64>() + text.len() as u64;
        if so_far.saturating_mul(DELTA_SHARE as u64) > *base {
            rec.lines = full;
            rec.removed.clear();
            rec.base = None;
            return whole(&rec);
        }
        self.report.delta = true;
        text
    }

    /// The record of archive `name`: the whole snapshot when `complete`
    /// (the lines are not needed after it), else what `batch` stored.
    fn record(&mut self, name: &str, batch: &[usize], complete: bool) -> Record {
        let mut rec = Record::new(name, if complete { Status::Complete } else { Status::Partial }, &self.src_root);
        rec.parent = self.report.parent.clone();
        rec.host = self.host.clone();
        if !complete {
            rec.lines = batch.iter().filter_map(|&i| self.lines[i].clone()).filter(|l| l.loc.is_some()).collect();
            return rec;
        }
        rec.lines = std::mem::take(&mut self.lines).into_iter().flatten().collect();
        rec.lines.retain(|l| l.entry.kind != Kind::File || l.entry.size == 0 || l.loc.is_some());
        // A hard link whose first name could not be read goes too.
        if rec.lines.iter().any(|l| l.entry.kind == Kind::HardLink) {
            let present: HashSet<Vec<u8>> = rec.lines.iter().map(|l| l.entry.path.clone()).collect();
            rec.lines.retain(|l| {
                l.entry.kind != Kind::HardLink || l.entry.target.as_ref().is_some_and(|t| present.contains(t))
            });
        }
        rec
    }
}

/// Sorts the lines and computes the counts of a record.
fn finish_record(mut rec: Record, parent: Option<&Record>, run: &HashSet<String>) -> Record {
    rec.lines.sort_by(|a, b| manifest::cmp_canonical(&a.entry.path, &b.entry.path));
    let mut s = Stats::default();
    for l in &rec.lines {
        if matches!(l.entry.kind, Kind::File | Kind::HardLink) {
            s.files += 1;
            s.bytes += l.entry.size;
        }
        if l.loc.as_ref().is_some_and(|loc| {
            loc.archive == rec.name || (run.contains(&loc.archive) && rec.status == Status::Complete)
        }) {
            s.stored += 1;
            s.stored_bytes += l.entry.size;
        }
    }
    if let (Some(p), Status::Complete) = (parent, rec.status) {
        // Both are in canonical order: merge them.
        let (mut i, mut j) = (0, 0);
        let mut pairs: Vec<(&Line, Option<&Line>)> = Vec::with_capacity(rec.lines.len());
        while i < rec.lines.len() {
            let l = &rec.lines[i];
            match p.lines.get(j).map(|o| manifest::cmp_canonical(&o.entry.path, &l.entry.path)) {
                Some(std::cmp::Ordering::Less) => {
                    s.removed += 1;
                    j += 1;
                }
                Some(std::cmp::Ordering::Equal) => {
                    pairs.push((l, p.lines.get(j)));
                    i += 1;
                    j += 1;
                }
                _ => {
                    pairs.push((l, None));
                    i += 1;
                }
            }
        }
        s.removed += (p.lines.len() - j.min(p.lines.len())) as u64;
        for (l, old) in pairs {
            match old {
                None => s.added += 1,
                Some(o)
                    if o.entry.kind != l.entry.kind
                        || o.entry.sha256 != l.entry.sha256
                        || o.entry.target != l.entry.target =>
                {
                    s.changed += 1
                }
                Some(_) => {}
            }
        }
    } else if rec.status == Status::Complete {
        s.added = rec.lines.iter().filter(|l| !l.entry.path.is_empty()).count() as u64;
    }
    rec.stats = s;
    rec
}
