//! Comparing two trees: a merge-join over paths in canonical order, then
//! pairing removed and added files with the same SHA-256 as moves.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::{cmp_paths, Entry, Kind, Manifest};

/// One difference between tree A and tree B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only in B.
    Added(Entry),
    /// Only in A.
    Removed(Entry),
    /// Same path and type; different content (hash, size, or link target).
    /// Without hashes, a different mtime counts as a content change.
    Modified {
        /// The entry in A.
        old: Entry,
        /// The entry in B.
        new: Entry,
    },
    /// Same path, different type (a file became a directory, ...).
    TypeChanged {
        /// The entry in A.
        old: Entry,
        /// The entry in B.
        new: Entry,
    },
    /// Same content; mode or mtime differ.
    Metadata {
        /// The entry in A.
        old: Entry,
        /// The entry in B.
        new: Entry,
    },
    /// A file of A found at another path in B, with the same SHA-256.
    Moved {
        /// The entry in A.
        old: Entry,
        /// The entry in B.
        new: Entry,
    },
}

impl Change {
    /// The path a reader sorts and filters by (the new one for moves).
    pub fn path(&self) -> &[u8] {
        match self {
            Change::Added(e) | Change::Removed(e) => &e.path,
            Change::Modified { new, .. }
            | Change::TypeChanged { new, .. }
            | Change::Metadata { new, .. }
            | Change::Moved { new, .. } => &new.path,
        }
    }

    /// A short word for the kind of change.
    pub fn word(&self) -> &'static str {
        match self {
            Change::Added(_) => "added",
            Change::Removed(_) => "removed",
            Change::Modified { .. } => "modified",
            Change::TypeChanged { .. } => "type-changed",
            Change::Metadata { .. } => "metadata",
            Change::Moved { .. } => "moved",
        }
    }
}

/// Files and hard links compare as the same type.
fn class(k: Kind) -> Kind {
    match k {
        Kind::HardLink => Kind::File,
        k => k,
    }
}

fn compare(old: &Entry, new: &Entry) -> Option<Change> {
    let pair = || (old.clone(), new.clone());
    if class(old.kind) != class(new.kind) {
        let (old, new) = pair();
        return Some(Change::TypeChanged { old, new });
    }
    let content_differs = match class(old.kind) {
        Kind::File => match (old.sha256, new.sha256) {
            (Some(a), Some(b)) => a != b || old.size != new.size,
            _ => old.size != new.size || old.mtime != new.mtime,
        },
        Kind::Symlink => old.target != new.target,
        _ => false,
    };
    if content_differs {
        let (old, new) = pair();
        return Some(Change::Modified { old, new });
    }
    if old.mode != new.mode || old.mtime != new.mtime {
        let (old, new) = pair();
        return Some(Change::Metadata { old, new });
    }
    None
}

/// All differences from `a` to `b` among the paths `keep` accepts, sorted
/// by path.
pub fn diff(a: &Manifest, b: &Manifest, keep: impl Fn(&Entry) -> bool) -> Vec<Change> {
    let (mut i, mut j) = (0, 0);
    let (ea, eb) = (&a.entries, &b.entries);
    let mut changes = Vec::new();
    let mut removed: Vec<Entry> = Vec::new();
    let mut added: Vec<Entry> = Vec::new();
    while i < ea.len() || j < eb.len() {
        let ord = match (ea.get(i), eb.get(j)) {
            (Some(x), Some(y)) => cmp_paths(&x.path, &y.path),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                if keep(&ea[i]) {
                    removed.push(ea[i].clone());
                }
                i += 1;
            }
            Ordering::Greater => {
                if keep(&eb[j]) {
                    added.push(eb[j].clone());
                }
                j += 1;
            }
            Ordering::Equal => {
                if keep(&ea[i]) || keep(&eb[j]) {
                    changes.extend(compare(&ea[i], &eb[j]));
                }
                i += 1;
                j += 1;
            }
        }
    }
    // Moves: a removed file and an added file with the same SHA-256.
    let mut by_hash: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (k, e) in removed.iter().enumerate() {
        if let (Kind::File | Kind::HardLink, Some(h)) = (e.kind, e.sha256) {
            by_hash.entry(h).or_default().push(k);
        }
    }
    for v in by_hash.values_mut() {
        v.reverse(); // pop() takes the first in path order
    }
    let mut moved_from = vec![false; removed.len()];
    for e in added {
        let found = match (e.kind, e.sha256) {
            (Kind::File | Kind::HardLink, Some(h)) => by_hash.get_mut(&h).and_then(Vec::pop),
            _ => None,
        };
        match found {
            Some(k) => {
                moved_from[k] = true;
                changes.push(Change::Moved { old: removed[k].clone(), new: e });
            }
            None => changes.push(Change::Added(e)),
        }
    }
    changes.extend(removed.into_iter().zip(moved_from).filter(|(_, m)| !m).map(|(e, _)| Change::Removed(e)));
    changes.sort_by(|x, y| cmp_paths(x.path(), y.path()).then_with(|| x.word().cmp(y.word())));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    fn file(path: &str, sha: u8, size: u64) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o644,
            mtime: Timestamp::new(100, 0),
            size,
            sha256: Some([sha; 32]),
            target: None,
        }
    }

    fn dir(path: &str) -> Entry {
        Entry::dir(path.as_bytes().to_vec(), 0o755, Timestamp::new(100, 0))
    }

    fn manifest(entries: Vec<Entry>) -> Manifest {
        let mut m = Manifest::new(Vec::new());
        m.entries = entries;
        m.sort();
        m
    }

    fn words(c: &[Change]) -> Vec<(String, &'static str)> {
        c.iter().map(|c| (String::from_utf8_lossy(c.path()).into_owned(), c.word())).collect()
    }

    #[test]
    fn every_kind_of_change() {
        let mut chmod = file("chmod", 4, 1);
        let a = manifest(vec![
            dir(""),
            file("same", 1, 1),
            file("edited", 2, 1),
            file("gone", 3, 1),
            chmod.clone(),
            file("becomes-dir", 5, 1),
            dir("becomes-file"),
            file("old-name", 6, 10),
        ]);
        chmod.mode = 0o600;
        let b = manifest(vec![
            dir(""),
            file("same", 1, 1),
            file("edited", 9, 2),
            file("new", 7, 1),
            chmod,
            dir("becomes-dir"),
            file("becomes-file", 8, 1),
            file("sub-new-name", 6, 10),
        ]);
        let c = diff(&a, &b, |_| true);
        assert_eq!(
            words(&c),
            vec![
                ("becomes-dir".into(), "type-changed"),
                ("becomes-file".into(), "type-changed"),
                ("chmod".into(), "metadata"),
                ("edited".into(), "modified"),
                ("gone".into(), "removed"),
                ("new".into(), "added"),
                ("sub-new-name".into(), "moved"),
            ]
        );
        assert!(diff(&a, &a, |_| true).is_empty());
    }

    #[test]
    fn without_hashes_mtime_decides() {
        let mut x = file("f", 1, 1);
        x.sha256 = None;
        let mut y = x.clone();
        y.mtime = Timestamp::new(200, 0);
        let c = diff(&manifest(vec![x]), &manifest(vec![y]), |_| true);
        assert_eq!(words(&c), vec![("f".into(), "modified")]);
    }
}
