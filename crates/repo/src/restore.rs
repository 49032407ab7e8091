//! `restore`: any snapshot, or part of it, reading only the archives that
//! hold the files asked for.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use manifest::{Entry, Kind, Manifest};

use crate::record::Line;
use crate::repository::{Filter, Repo};
use crate::{Error, Result};

pub(crate) use fsutil::ReadAt as At;

/// Finds a member in an opened archive: at `offset` if the header there
/// names it, else at the offset the archive's own record gives (archives
/// rewritten by `forget` move their members). Returns its size and the
/// offset of its data.
pub(crate) fn locate(
    repo: &Repo,
    f: &dyn fsutil::Source,
    archive: &str,
    member: &[u8],
    offset: u64,
) -> Result<(u64, u64)> {
    let path = repo.archive_path(archive);
    let start = member_start(repo, f, archive, member, offset)?;
    let (_, size, data) = xtar::read::member_at(f, &path, start)?;
    Ok((size, data))
}

/// Where the member of `member` starts in archive `archive` (open as `f`):
/// at `offset`, the hint a record gives, or else where the archive's own
/// record says.
pub(crate) fn member_start(
    repo: &Repo,
    f: &dyn fsutil::Source,
    archive: &str,
    member: &[u8],
    offset: u64,
) -> Result<u64> {
    let path = repo.archive_path(archive);
    let want = xtar::format::file_member_name(member);
    if let Ok((name, _, _)) = xtar::read::member_at(f, &path, offset) {
        if name == want {
            return Ok(offset);
        }
    }
    if let Some(at) = own_offset(repo, archive, member) {
        let (name, _, _) = xtar::read::member_at(f, &path, at)?;
        if name == want {
            return Ok(at);
        }
    }
    Err(Error::MissingMember { archive: archive.to_string(), member: member.to_vec() })
}

/// An archive opened to read the files records point at: directly
/// (format version 2), or through its pack entries and key (an encrypted
/// repository's archives, format version 4).
pub(crate) struct Holder<'f> {
    f: &'f dyn fsutil::Source,
    name: String,
    sealed: Option<xtar::FilesAt>,
}

impl<'f> Holder<'f> {
    /// Opens archive `name` (open as `f`); an encrypted one with the
    /// repository's master key.
    pub(crate) fn open(
        repo: &Repo,
        f: &'f dyn fsutil::Source,
        name: &str,
        obs: &dyn xtar::Observer,
    ) -> Result<Holder<'f>> {
        let sealed = match &repo.sealing {
            None => None,
            Some(s) => {
                let master = s.master.as_ref().ok_or_else(|| Error::NeedKey { archive: name.to_string() })?;
                let ids: xtar::Keys = std::sync::Arc::new(vec![keys::RecoveryKey::parse(&master.to_identity_string())
                    .map_err(|e| Error::Keyring { path: repo.root().to_path_buf(), source: e })?]);
                Some(xtar::FilesAt::open(f, &repo.archive_path(name), &ids, obs)?)
            }
        };
        Ok(Holder { f, name: name.to_string(), sealed })
    }

    /// The member of `member` (a path), found at `offset` or where the
    /// archive's own record says: its size and a reader of it.
    pub(crate) fn member(&self, repo: &Repo, member: &[u8], offset: u64) -> Result<(u64, Box<dyn std::io::Read + 'f>)> {
        let Some(files) = &self.sealed else {
            let (size, data) = locate(repo, self.f, &self.name, member, offset)?;
            let r = std::io::BufReader::with_capacity(256 << 10, At { f: self.f, pos: data, end: data + size });
            return Ok((size, Box::new(r)));
        };
        let mut tried = vec![offset];
        if let Ok((path, size, r)) = files.file(self.f, offset) {
            if path == member {
                return Ok((size, r));
            }
        }
        if let Some(at) = own_offset(repo, &self.name, member).filter(|at| !tried.contains(at)) {
            tried.push(at);
            let (path, size, r) = files.file(self.f, at)?;
            if path == member {
                return Ok((size, r));
            }
        }
        Err(Error::MissingMember { archive: self.name.clone(), member: member.to_vec() })
    }
}

/// Where archive `archive`'s own record says the file `member` it stores
/// under its own name is.
fn own_offset(repo: &Repo, archive: &str, member: &[u8]) -> Option<u64> {
    let own = repo.record(archive).ok()?;
    let i = own.lines.binary_search_by(|l| manifest::cmp_paths(&l.entry.path, member)).ok()?;
    own.lines[i].loc.as_ref().filter(|loc| loc.archive == archive && loc.member.is_none()).map(|loc| loc.offset)
}

/// Whether `path` is one of `paths` or below one (all when empty).
fn selected(paths: &[Vec<u8>], path: &[u8]) -> bool {
    paths.is_empty() || paths.iter().any(|p| manifest::is_within(path, p))
}

/// Restores the snapshot `snapshot` (`None`: the newest that `filter`
/// accepts) of the repository at `repo` into `dest`; `opts.paths`
/// restricts it to some paths.
pub fn restore(
    repo: &Path,
    snapshot: Option<&str>,
    filter: &Filter,
    dest: &Path,
    opts: &xtar::ExtractOptions,
    obs: &dyn xtar::Observer,
) -> Result<xtar::ExtractReport> {
    restore_with(repo, snapshot, filter, &walk::RuleSet::default(), dest, opts, obs)
}

/// [`restore`] with include/exclude rules, decided as `backup` decides
/// them (`walk::RuleSet`: `--exclude NAME` always wins, else the longest
/// matching glob, exclusion on a tie, else the parent's verdict): what
/// they leave out is not restored.
pub fn restore_with(
    repo: &Path,
    snapshot: Option<&str>,
    filter: &Filter,
    rules: &walk::RuleSet,
    dest: &Path,
    opts: &xtar::ExtractOptions,
    obs: &dyn xtar::Observer,
) -> Result<xtar::ExtractReport> {
    let repo = Repo::open_keyed(repo, &opts.keys, crate::default_cache_dir())?;
    restore_ruled(&repo, snapshot, filter, rules, dest, opts, obs)
}

/// The paths of `lines` (in canonical order) that `rules` keep: entries
/// they include, and the directories above them.
fn kept_by_rules(lines: &[Line], rules: &walk::RuleSet) -> std::collections::HashSet<Vec<u8>> {
    use walk::Verdict;
    let root = rules.root_verdict();
    let mut verdicts: HashMap<&[u8], Verdict> = HashMap::new();
    let mut kept = std::collections::HashSet::new();
    for l in lines {
        let p = &l.entry.path[..];
        if p.is_empty() {
            verdicts.insert(p, root);
            continue;
        }
        let parent = manifest::parent_of(p);
        let pv = verdicts.get(parent).copied().unwrap_or(root);
        let name = p.rsplit(|&b| b == b'/').next().unwrap_or(p);
        let is_dir = l.entry.kind == Kind::Dir;
        let v = rules.decide(p, name, is_dir, pv);
        if is_dir {
            verdicts.insert(p, v);
        }
        if v == Verdict::Include {
            kept.insert(p.to_vec());
        }
    }
    // The directories above what is kept, the root included.
    let mut above = Vec::new();
    for p in &kept {
        let mut q = &p[..];
        while !q.is_empty() {
            q = manifest::parent_of(q);
            above.push(q.to_vec());
        }
    }
    kept.extend(above);
    kept.insert(Vec::new());
    kept
}

/// [`restore_with`] from a repository already open.
fn restore_ruled(
    repo: &Repo,
    snapshot: Option<&str>,
    filter: &Filter,
    rules: &walk::RuleSet,
    dest: &Path,
    opts: &xtar::ExtractOptions,
    obs: &dyn xtar::Observer,
) -> Result<xtar::ExtractReport> {
    let name = repo.resolve(snapshot, filter)?;
    // Only the lines asked for are parsed (the record of a big tree is
    // large), then those of hard-link targets outside them.
    let escaped: Vec<Vec<u8>> = opts
        .paths
        .iter()
        .map(|p| {
            let mut e = Vec::new();
            manifest::escape_path(&mut e, p);
            e
        })
        .collect();
    let keep = |field: &[u8]| selected(&escaped, field);
    let filter: Option<crate::record::PathFilter<'_>> = if escaped.is_empty() { None } else { Some(&keep) };
    let rec = repo.snapshot_filtered(&name, filter)?;
    let targets: Vec<Vec<u8>> = rec
        .lines
        .iter()
        .filter(|l| l.entry.kind == Kind::HardLink)
        .filter_map(|l| l.entry.target.clone())
        .filter(|t| !selected(&opts.paths, t))
        .map(|t| {
            let mut e = Vec::new();
            manifest::escape_path(&mut e, &t);
            e
        })
        .collect();
    let extra = if targets.is_empty() {
        Vec::new()
    } else {
        let keep = |field: &[u8]| targets.iter().any(|t| t == field);
        repo.snapshot_filtered(&name, Some(&keep))?.lines
    };
    let by_path: HashMap<&[u8], &Line> = rec.lines.iter().chain(&extra).map(|l| (&l.entry.path[..], l)).collect();
    let ruled = (!rules.is_empty()).then(|| kept_by_rules(&rec.lines, rules));
    let restored = |p: &[u8]| selected(&opts.paths, p) && ruled.as_ref().is_none_or(|k| k.contains(p));
    let mut lines: Vec<Line> = Vec::new();
    for l in rec.lines.iter().filter(|l| restored(&l.entry.path)) {
        let mut l = l.clone();
        // A hard link to a file that is not restored becomes a copy of it.
        if l.entry.kind == Kind::HardLink {
            let target = l.entry.target.clone().unwrap_or_default();
            if !restored(&target) {
                if let Some(t) = by_path.get(&target[..]) {
                    l.entry.kind = Kind::File;
                    l.entry.target = None;
                    l.entry.size = t.entry.size;
                    l.entry.sha256 = t.entry.sha256;
                    l.loc = t.loc.clone();
                    if let Some(loc) = l.loc.as_mut() {
                        loc.member.get_or_insert(target);
                    }
                }
            }
        }
        lines.push(l);
    }
    let mut restorer = xtar::Restorer::new(Some(dest), opts, obs)?;
    restorer.entries(lines.iter().map(|l| l.entry.clone()).collect())?;
    read_members(repo, &lines, &mut restorer, obs)?;
    Ok(restorer.finish()?)
}

/// Feeds the member of every located line to `restorer`, archive by
/// archive, in the order of their offsets.
pub(crate) fn read_members(
    repo: &Repo,
    lines: &[Line],
    restorer: &mut xtar::Restorer<'_>,
    obs: &dyn xtar::Observer,
) -> Result<()> {
    let mut by_archive: BTreeMap<&str, Vec<&Line>> = BTreeMap::new();
    for l in lines {
        if let Some(loc) = &l.loc {
            by_archive.entry(&loc.archive).or_default().push(l);
        }
    }
    for (archive, mut ls) in by_archive {
        ls.sort_by_key(|l| l.loc.as_ref().map_or(0, |loc| loc.offset));
        let path = repo.archive_path(archive);
        let f = match repo.open_archive(archive) {
            Ok(f) => f,
            Err(e) => {
                for l in ls {
                    restorer.missing(&l.entry.path, &format!("its archive {} cannot be read: {e}", path.display()))?;
                }
                continue;
            }
        };
        // A missing or wrong key stops here, before any file of it.
        let holder = Holder::open(repo, f.as_ref(), archive, obs)?;
        for l in ls {
            let (Some(loc), Some(member)) = (&l.loc, l.member_name()) else { continue };
            match holder.member(repo, member, loc.offset) {
                Ok((size, mut r)) => {
                    let stored = loc.member.as_deref();
                    restorer.member(&l.entry.path, stored, size, &mut r)?;
                }
                Err(e) => restorer.missing(&l.entry.path, &e.to_string())?,
            }
        }
    }
    Ok(())
}

/// The manifest of a snapshot (for `diff`).
pub fn snapshot_manifest(repo: &Path, snapshot: Option<&str>, filter: &Filter, keys: &xtar::Keys) -> Result<Manifest> {
    let repo = Repo::open_keyed(repo, keys, crate::default_cache_dir())?;
    let name = repo.resolve(snapshot, filter)?;
    let rec = repo.snapshot(&name)?;
    let mut m = Manifest::new(rec.root.clone());
    m.entries = rec.lines.iter().map(|l| l.entry.clone()).collect::<Vec<Entry>>();
    Ok(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A store that counts the bytes read from it.
    struct Counting {
        inner: store::Local,
        read: AtomicU64,
    }

    impl store::Store for Counting {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn list(&self, prefix: &str) -> store::Result<Vec<store::Object>> {
            self.inner.list(prefix)
        }
        fn size(&self, name: &str) -> store::Result<Option<u64>> {
            self.inner.size(name)
        }
        fn read_range(&self, name: &str, offset: u64, len: u64) -> store::Result<Vec<u8>> {
            let b = self.inner.read_range(name, offset, len)?;
            self.read.fetch_add(b.len() as u64, Ordering::Relaxed);
            Ok(b)
        }
        fn read(&self, name: &str) -> store::Result<Vec<u8>> {
            let b = self.inner.read(name)?;
            self.read.fetch_add(b.len() as u64, Ordering::Relaxed);
            Ok(b)
        }
        fn put(&self, name: &str, data: &[u8]) -> store::Result<()> {
            self.inner.put(name, data)
        }
        fn put_from(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> store::Result<()> {
            self.inner.put_from(name, data, len)
        }
        fn delete(&self, name: &str) -> store::Result<()> {
            self.inner.delete(name)
        }
    }

    /// Restoring one small file from a snapshot whose archive is large
    /// reads the record and the blocks around the file, not the archive:
    /// for a plain repository (format 2 archives) and an encrypted one
    /// (format 4, its key opened from the archive's head).
    #[test]
    fn one_file_from_a_large_archive_reads_under_a_megabyte() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("small")).unwrap();
        let mut x = 88172645463325252u64;
        let big: Vec<u8> = (0..48u32 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(src.join("big.bin"), &big).unwrap();
        for i in 0..200 {
            std::fs::write(src.join(format!("small/f{i:03}.txt")), format!("small file {i}\n")).unwrap();
        }
        let master = keys::RecoveryKey::generate();
        let ring = keys::Keyring::create(&[("owner", &master.recipient())]).unwrap().0;
        let sealed_repo = t.path().join("sealed");
        crate::init_encrypted(&sealed_repo, &ring).unwrap();
        for (repo, ids) in [(t.path().join("plain"), Vec::new()), (sealed_repo, vec![master])] {
            let opts = crate::BackupOptions { keys: Arc::new(Vec::new()), ..Default::default() };
            let cache = Some(t.path().join("cache"));
            // Backups without a key read this machine's cache.
            std::env::set_var("PYBACKUP_CACHE_DIR", t.path().join("cache"));
            crate::backup(&src, &repo, &opts, &xtar::Silent).unwrap();
            let counting = Arc::new(Counting { inner: store::Local::new(&repo), read: AtomicU64::new(0) });
            let opened = Repo::open_in(counting.clone(), Path::new("counted"), &ids, cache).unwrap();
            let eopts = xtar::ExtractOptions {
                paths: vec![b"small/f123.txt".to_vec()],
                keys: Arc::new(
                    ids.iter().map(|k| keys::RecoveryKey::parse(&k.to_identity_string()).unwrap()).collect(),
                ),
                ..Default::default()
            };
            let dest = t.path().join(format!("out-{}", repo.file_name().unwrap().to_string_lossy()));
            let before = counting.read.load(Ordering::Relaxed);
            let none = walk::RuleSet::default();
            let r = restore_ruled(&opened, None, &Filter::default(), &none, &dest, &eopts, &xtar::Silent).unwrap();
            assert!(r.is_clean(), "{r:?}");
            assert_eq!(std::fs::read(dest.join("small/f123.txt")).unwrap(), b"small file 123\n");
            let read = counting.read.load(Ordering::Relaxed) - before;
            let archive: u64 = std::fs::read_dir(repo.join("Archives"))
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .max()
                .unwrap();
            assert!(archive > 40 << 20, "the archive is {archive} bytes");
            eprintln!("{}: {read} bytes read to restore one file of a {archive}-byte archive", repo.display());
            assert!(read < 1 << 20, "{}: {read} bytes read to restore one file", repo.display());
        }
    }
}
