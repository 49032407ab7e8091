//! `restore`: any snapshot, or part of it, reading only the archives that
//! hold the files asked for.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use manifest::{Entry, Kind, Manifest};

use crate::record::Line;
use crate::repository::{Filter, Repo};
use crate::{Error, Result};

/// A reader of `len` bytes of `f` from `pos`, with positioned reads.
pub(crate) struct At<'a> {
    pub(crate) f: &'a File,
    pub(crate) pos: u64,
    pub(crate) end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.f.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

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
    let own = repo.record(archive)?;
    let line = own
        .lines
        .binary_search_by(|l| manifest::cmp_paths(&l.entry.path, member))
        .ok()
        .map(|i| &own.lines[i])
        .filter(|l| l.loc.as_ref().is_some_and(|loc| loc.archive == archive && loc.member.is_none()));
    if let Some(loc) = line.and_then(|l| l.loc.as_ref()) {
        let (name, _, _) = xtar::read::member_at(f, &path, loc.offset)?;
        if name == want {
            return Ok(loc.offset);
        }
    }
    Err(Error::MissingMember { archive: archive.to_string(), member: member.to_vec() })
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
    let repo = Repo::open(repo)?;
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
    read_members(&repo, &lines, &mut restorer)?;
    Ok(restorer.finish()?)
}

/// Feeds the member of every located line to `restorer`, archive by
/// archive, in the order of their offsets.
pub(crate) fn read_members(repo: &Repo, lines: &[Line], restorer: &mut xtar::Restorer<'_>) -> Result<()> {
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
        for l in ls {
            let (Some(loc), Some(member)) = (&l.loc, l.member_name()) else { continue };
            match locate(repo, &f, archive, member, loc.offset) {
                Ok((size, data)) => {
                    let mut r = std::io::BufReader::with_capacity(256 << 10, At { f: &f, pos: data, end: data + size });
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
pub fn snapshot_manifest(repo: &Path, snapshot: Option<&str>, filter: &Filter) -> Result<Manifest> {
    let repo = Repo::open(repo)?;
    let name = repo.resolve(snapshot, filter)?;
    let rec = repo.snapshot(&name)?;
    let mut m = Manifest::new(rec.root.clone());
    m.entries = rec.lines.iter().map(|l| l.entry.clone()).collect::<Vec<Entry>>();
    Ok(m)
}
