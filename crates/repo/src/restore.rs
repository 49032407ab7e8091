//! `restore`: any snapshot, or part of it, reading only the archives that
//! hold the files asked for.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
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
pub(crate) fn locate(repo: &Repo, f: &File, archive: &str, member: &[u8], offset: u64) -> Result<(u64, u64)> {
    let path = repo.archive_path(archive);
    let start = member_start(repo, f, archive, member, offset)?;
    let (_, size, data) = xtar::read::member_at(f, &path, start)?;
    Ok((size, data))
}

/// Where the member of `member` starts in archive `archive` (open as `f`):
/// at `offset`, the hint a record gives, or else where the archive's own
/// record says.
pub(crate) fn member_start(repo: &Repo, f: &File, archive: &str, member: &[u8], offset: u64) -> Result<u64> {
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
    f: &'f File,
    name: String,
    sealed: Option<xtar::FilesAt>,
}

impl<'f> Holder<'f> {
    /// Opens archive `name` (open as `f`); an encrypted one with the
    /// repository's master key.
    pub(crate) fn open(repo: &Repo, f: &'f File, name: &str, obs: &dyn xtar::Observer) -> Result<Holder<'f>> {
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
    let repo = Repo::open_keyed(repo, &opts.keys, crate::default_cache_dir())?;
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
    let mut lines: Vec<Line> = Vec::new();
    for l in rec.lines.iter().filter(|l| selected(&opts.paths, &l.entry.path)) {
        let mut l = l.clone();
        // A hard link to a file that is not restored becomes a copy of it.
        if l.entry.kind == Kind::HardLink {
            let target = l.entry.target.clone().unwrap_or_default();
            if !selected(&opts.paths, &target) {
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
    read_members(&repo, &lines, &mut restorer, obs)?;
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
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                for l in ls {
                    restorer.missing(&l.entry.path, &format!("its archive {} cannot be read: {e}", path.display()))?;
                }
                continue;
            }
        };
        // A missing or wrong key stops here, before any file of it.
        let holder = Holder::open(repo, &f, archive, obs)?;
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
