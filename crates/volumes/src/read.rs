//! Reading a set: finding its volumes and table, extracting and checking.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use manifest::{Entry, Kind};
use xtar::format::VOLUMES_NAME;
use xtar::read::{Item, Scanner};
use xtar::{ExtractOptions, ExtractReport, Observer, Restorer};

use crate::table::{volume_base, volume_path, Place, Table};
use crate::{Error, Result};

/// A volume set as found on disk.
#[derive(Debug)]
pub struct VolumeSet {
    /// The set's table (from the first volume that had a readable one).
    pub table: Table,
    /// Path of each volume, by number (index 0 is volume 1); `None` when
    /// the volume is missing.
    pub volumes: Vec<Option<PathBuf>>,
    /// Paths of the volumes as their names say (for messages).
    pub names: Vec<PathBuf>,
}

impl VolumeSet {
    /// Numbers of the missing volumes.
    pub fn missing(&self) -> Vec<u32> {
        (1..=self.table.count).filter(|&k| self.volumes[k as usize - 1].is_none()).collect()
    }

    /// The entries whose content is lost because a volume is missing, with
    /// the missing volumes they need.
    pub fn lost(&self) -> Vec<(&Entry, Vec<u32>)> {
        self.table
            .entries
            .iter()
            .filter(|(_, e)| e.kind == Kind::File && e.size > 0)
            .filter_map(|(place, e)| {
                let gone: Vec<u32> =
                    place.volumes().iter().copied().filter(|&v| self.volumes[v as usize - 1].is_none()).collect();
                (!gone.is_empty()).then_some((e, gone))
            })
            .collect()
    }

    pub(crate) fn name(&self, k: u32) -> String {
        self.names.get(k as usize - 1).map_or_else(|| format!("volume {k}"), |p| p.display().to_string())
    }

    pub(crate) fn lost_message(&self, gone: &[u32]) -> String {
        let names: Vec<String> = gone.iter().map(|&k| self.name(k)).collect();
        format!("lost: its data is on {}, which is missing", names.join(" and "))
    }
}

/// Opens the set that `given` volumes belong to: the table is read from
/// the first of them that has a readable one, and the other volumes are
/// looked for beside it (`BASE.NNN.xtar`).
pub fn open_set(given: &[PathBuf]) -> Result<VolumeSet> {
    let first = given.first().ok_or_else(|| Error::Set { path: PathBuf::new(), message: "no volume given".into() })?;
    match find_set(given)? {
        Ok(set) => Ok(set),
        Err(why) => Err(why.map_or_else(
            || Error::Set {
                path: first.clone(),
                message: "not named like a volume (NAME.001.xtar), or no volume table found".into(),
            },
            Error::Xtar,
        )),
    }
}

/// The set that `given` volumes belong to, or, when they are not named
/// like volumes or no volume of theirs holds a readable table, why not
/// (the last read error, if any): then they are plain archives as far as
/// can be told. A table that is there but does not parse is an error.
pub fn find_set(given: &[PathBuf]) -> Result<std::result::Result<VolumeSet, Option<xtar::Error>>> {
    let Some((base, _)) = given.first().and_then(|p| volume_base(p)) else { return Ok(Err(None)) };
    let mut candidates: Vec<PathBuf> = given.to_vec();
    // Volumes beside the given ones, up to the first gap of 100 numbers.
    let mut k = 1;
    let mut gap = 0;
    while gap < 100 {
        let p = volume_path(&base, k);
        if p.exists() {
            if !candidates.contains(&p) {
                candidates.push(p);
            }
            gap = 0;
        } else {
            gap += 1;
        }
        k += 1;
    }
    let mut table = None;
    let mut last_err = None;
    for c in &candidates {
        match xtar::read::tail_member(c, VOLUMES_NAME) {
            Ok(Some(text)) => {
                table = Some(Table::parse(&text, c)?);
                break;
            }
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
    }
    let Some(table) = table else { return Ok(Err(last_err)) };
    let names: Vec<PathBuf> = (1..=table.count).map(|k| volume_path(&base, k)).collect();
    let mut volumes: Vec<Option<PathBuf>> = vec![None; table.count as usize];
    for c in candidates {
        if let Some((_, k)) = volume_base(&c) {
            if k >= 1 && k <= table.count && c.is_file() {
                volumes[k as usize - 1] = Some(c);
            }
        }
    }
    Ok(Ok(VolumeSet { table, volumes, names }))
}

/// Reads the parts of a file, one after another, from their volumes.
struct PartsReader {
    parts: Vec<(File, u64, u64)>,
    i: usize,
    pos: u64,
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some((f, at, len)) = self.parts.get(self.i) {
            if self.pos == *len {
                self.i += 1;
                self.pos = 0;
                continue;
            }
            let n = buf.len().min((len - self.pos) as usize);
            let got = f.read_at(&mut buf[..n], at + self.pos)?;
            if got == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "volume ends inside a part"));
            }
            self.pos += got as u64;
            return Ok(got);
        }
        Ok(0)
    }
}

/// Where the parts of split files were found: by path, (part, volume,
/// data offset, size).
pub(crate) type FoundParts = HashMap<Vec<u8>, Vec<(u32, u32, u64, u64)>>;

/// Joins the parts of the split files `wanted` from `found` and gives each
/// to `restorer`; a file with a part missing is booked as missing.
pub(crate) fn join_parts(
    set: &VolumeSet,
    found: &FoundParts,
    restorer: &mut Restorer<'_>,
    wanted: &dyn Fn(&[u8]) -> bool,
) -> Result<()> {
    for (place, e) in &set.table.entries {
        let Place::Parts(vols) = place else { continue };
        if e.kind != Kind::File || e.size == 0 || !wanted(&e.path) {
            continue;
        }
        if vols.iter().any(|&v| set.volumes[v as usize - 1].is_none()) {
            continue; // booked as lost already
        }
        let mut have = found.get(&e.path).cloned().unwrap_or_default();
        have.sort_unstable();
        let complete = have.len() == vols.len()
            && have.iter().enumerate().all(|(i, &(k, v, _, _))| k as usize == i + 1 && v == vols[i]);
        if !complete {
            let names: Vec<String> = vols.iter().map(|&v| set.name(v)).collect();
            restorer.missing(&e.path, &format!("a part on {} could not be read", names.join(" or ")))?;
            continue;
        }
        let mut parts = Vec::new();
        for &(_, v, at, len) in &have {
            let path =
                set.volumes[v as usize - 1].as_ref().map_or_else(|| set.names[v as usize - 1].clone(), Clone::clone);
            let f = File::open(&path).map_err(|source| xtar::Error::Read { path: path.clone(), source })?;
            parts.push((f, at, len));
        }
        let total = have.iter().map(|p| p.3).sum();
        restorer.member(&e.path, None, total, &mut PartsReader { parts, i: 0, pos: 0 })?;
    }
    Ok(())
}

/// What a set extraction or check did.
#[derive(Debug, Clone, Default)]
pub struct SetReport {
    /// The outcome over the whole set.
    pub report: ExtractReport,
    /// Files lost because a volume is missing, with those volumes.
    pub lost: Vec<(Vec<u8>, Vec<u32>)>,
    /// Volumes missing from the set.
    pub missing_volumes: Vec<u32>,
}

fn wanted_by(paths: &[Vec<u8>]) -> impl Fn(&[u8]) -> bool + '_ {
    move |p: &[u8]| paths.is_empty() || paths.iter().any(|w| manifest::is_within(p, w))
}

/// Restores a whole set into `dest` (or only checks it when `dest` is
/// `None`). Each file lost to a missing volume is reported by name.
pub fn extract_set(
    set: &VolumeSet,
    dest: Option<&Path>,
    opts: &ExtractOptions,
    obs: &dyn Observer,
) -> Result<SetReport> {
    let wanted = wanted_by(&opts.paths);
    let mut restorer = Restorer::new(dest, opts, obs)?;
    restorer.entries(
        set.table
            .entries
            .iter()
            .filter(|(_, e)| wanted(&e.path) || e.path.is_empty())
            .map(|(_, e)| e.clone())
            .collect(),
    )?;
    let mut out = SetReport { missing_volumes: set.missing(), ..SetReport::default() };
    for (e, gone) in set.lost() {
        if wanted(&e.path) {
            restorer.missing(&e.path, &set.lost_message(&gone))?;
            out.lost.push((e.path.clone(), gone));
        }
    }
    let whole: HashMap<&[u8], u32> = set
        .table
        .entries
        .iter()
        .filter(|(_, e)| e.kind == Kind::File && e.size > 0 && wanted(&e.path))
        .filter_map(|(p, e)| match p {
            Place::Whole(v) => Some((&e.path[..], *v)),
            _ => None,
        })
        .collect();
    obs.start(set.volumes.iter().flatten().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum());
    let mut found: FoundParts = HashMap::new();
    for (i, vol) in set.volumes.iter().enumerate() {
        let k = i as u32 + 1;
        let Some(vol) = vol else { continue };
        let mut scanner = Scanner::open(vol)?;
        let r = (|| -> xtar::Result<()> {
            while let Some(item) = scanner.next(obs)? {
                match item {
                    Item::File { path, size, .. } if whole.get(&path[..]) == Some(&k) => {
                        restorer.member(&path, None, size, &mut scanner.data())?;
                        obs.advance(size);
                    }
                    Item::Part { path, part, size, offset } => {
                        found.entry(path).or_default().push((part, k, offset, size));
                    }
                    Item::Volumes { text } => {
                        let id = Table::set_id_in(&text);
                        if id != Some(set.table.set_id.as_bytes()) {
                            return Err(xtar::Error::Volumes {
                                path: vol.clone(),
                                message: "this volume belongs to another set".into(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            match e {
                xtar::Error::Write { .. } | xtar::Error::Exists { .. } => return Err(e.into()),
                // The files of a damaged volume not read by now are reported
                // as missing by `finish`; salvage gets more out of it.
                e => obs.warning(&e),
            }
        }
    }
    join_parts(set, &found, &mut restorer, &wanted)?;
    out.report = restorer.finish()?;
    Ok(out)
}
