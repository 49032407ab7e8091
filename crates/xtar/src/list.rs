//! `list`: the entries of an archive with their stored sizes, read from
//! the indexes without decompressing anything.

use std::collections::HashMap;
use std::path::Path;

use manifest::Entry;

use crate::error::lossy;
use crate::read::{Item, Scanner};
use crate::{Error, Observer, Result};

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The entry as its index records it.
    pub entry: Entry,
    /// Bytes its member takes in the archive (files and symlinks).
    pub stored: Option<u64>,
}

/// Calls `f` for every entry of the archive: in archive order for the
/// nested layout (each directory, then its files, then its
/// subdirectories), in canonical path order for version 3. Returns the
/// number of problems reported through `obs` (members without index
/// entries).
pub fn list(archive: &Path, obs: &dyn Observer, f: impl FnMut(Listed)) -> Result<u64> {
    list_keyed(archive, &crate::Keys::default(), obs, f)
}

/// [`list`], opening an encrypted archive with `keys`.
pub fn list_keyed(archive: &Path, keys: &crate::Keys, obs: &dyn Observer, mut f: impl FnMut(Listed)) -> Result<u64> {
    let mut scanner = Scanner::open(archive)?.with_keys(keys.clone());
    scanner.unlock(obs)?;
    let mut stored: HashMap<Vec<u8>, u64> = HashMap::new();
    // Version 3: the entries, by path (the manifest's, then what the
    // indexes add when the manifest was damaged).
    let mut v3: std::collections::BTreeMap<Vec<u8>, Entry> = Default::default();
    while let Some(item) = scanner.next(obs)? {
        match item {
            Item::File { path, size, .. } => {
                stored.insert(path, size);
            }
            Item::Index { entries, .. } => {
                for entry in entries {
                    let s = stored.remove(&entry.path);
                    f(Listed { entry, stored: s });
                }
            }
            Item::Manifest { text } if scanner.version() >= 3 => {
                for e in crate::read::parse_entries(&text).0 {
                    v3.insert(e.path.clone(), e);
                }
            }
            Item::Entries { entries, .. } => {
                for e in entries {
                    v3.entry(e.path.clone()).or_insert(e);
                }
            }
            _ => {}
        }
    }
    let mut v3: Vec<Entry> = v3.into_values().collect();
    v3.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
    for entry in v3 {
        let s = stored.remove(&entry.path);
        f(Listed { entry, stored: s });
    }
    let mut problems = 0;
    let mut orphans: Vec<_> = stored.into_keys().collect();
    orphans.sort_by(|a, b| manifest::cmp_paths(a, b));
    for p in orphans {
        problems += 1;
        obs.warning(&Error::Member { member: lossy(&p), message: "member has no index entry".into() });
    }
    Ok(problems)
}

/// The manifest of the tree an archive holds: its `.xtar-manifest` member,
/// or, when that is missing or damaged, the union of its indexes.
pub fn archive_manifest(archive: &Path, obs: &dyn Observer) -> Result<manifest::Manifest> {
    archive_manifest_keyed(archive, &crate::Keys::default(), obs)
}

/// [`archive_manifest`], opening an encrypted archive with `keys`.
pub fn archive_manifest_keyed(archive: &Path, keys: &crate::Keys, obs: &dyn Observer) -> Result<manifest::Manifest> {
    let mut scanner = Scanner::open(archive)?.with_keys(keys.clone());
    scanner.unlock(obs)?;
    let mut root = Vec::new();
    let mut from_indexes: Vec<Entry> = Vec::new();
    let mut trailer: Option<manifest::Manifest> = None;
    let mut pieces: Vec<u8> = Vec::new();
    while let Some(item) = scanner.next(obs)? {
        match item {
            Item::Header { root: r, .. } => root = r,
            Item::Index { entries, .. } | Item::Entries { entries, .. } => from_indexes.extend(entries),
            // Encrypted: the manifest comes in pieces, in order.
            Item::Manifest { text } if scanner.is_encrypted() => pieces.extend_from_slice(&text),
            Item::Manifest { text } => match manifest::Manifest::parse(&text) {
                Ok(m) => trailer = Some(m),
                Err(source) => obs.warning(&Error::Manifest { what: "`.xtar-manifest`".into(), source }),
            },
            _ => {}
        }
    }
    if !pieces.is_empty() {
        match manifest::Manifest::parse(&pieces) {
            Ok(m) => trailer = Some(m),
            Err(source) => obs.warning(&Error::Manifest { what: "the manifest's pieces".into(), source }),
        }
    }
    if let Some(m) = trailer {
        return Ok(m);
    }
    obs.warning(&Error::Member {
        member: ".xtar-manifest".into(),
        message: "missing or damaged; the manifest is rebuilt from the directory indexes".into(),
    });
    let mut m = manifest::Manifest::new(root);
    m.entries = from_indexes;
    m.sort();
    m.entries.dedup_by(|a, b| a.path == b.path);
    Ok(m)
}
