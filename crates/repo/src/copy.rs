//! `copy`: a repository to another place (a directory or an object
//! store), resumable and incremental: only what the destination lacks is
//! sent, every object sent is read back and checked by SHA-256, and the
//! destination ends as a copy of the source (repository.md §10).

use std::collections::BTreeMap;
use std::io::Read;

use sha2::Digest;
use store::{ObjectReader, Store};

use crate::{Error, Result};

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Objects sent.
    pub copied: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects the destination had already.
    pub skipped: u64,
    /// Objects removed from the destination because the source no longer
    /// has them (snapshots forgotten, archives rewritten).
    pub removed: u64,
}

/// Whether `name` is an object of a repository: its archives and record
/// copies, its keyring, `Latest` (not the lock, not temporaries).
fn is_repo_object(name: &str) -> bool {
    if name == crate::repository::LATEST || name == crate::sealed::KEYRING || name == crate::repository::ID {
        return true;
    }
    let Some(file) = name.strip_prefix("Archives/") else { return false };
    file.strip_suffix(".xtar")
        .or_else(|| file.strip_suffix(crate::repository::COPY_SUFFIX))
        .is_some_and(crate::record::valid_name)
}

/// The order objects are sent in: archives first, oldest first, then the
/// copies of records, then the keyring, `Latest` last (a copy cut short
/// leaves the destination a repository whose newest snapshots are not all
/// there yet, never one that names what it lacks).
fn rank(name: &str) -> u8 {
    if name.ends_with(".xtar") {
        0
    } else if name.ends_with(crate::repository::COPY_SUFFIX) {
        1
    } else if name == crate::sealed::KEYRING {
        2
    } else {
        3
    }
}

/// Copies the repository in `src` to `dst`. Archives are immutable once
/// written, so one of the same name and size at `dst` is taken as there;
/// the small objects (record copies, keyring, `Latest`) are compared byte
/// for byte. Objects of the repository that `dst` has and `src` has not
/// are removed last. A `dst` that holds another repository is refused.
pub fn copy(src: &dyn Store, dst: &dyn Store, obs: &dyn xtar::Observer) -> Result<CopyReport> {
    let store_err = |e: store::Error| Error::Store(e.to_string());
    let from = objects(src)?;
    if !from.keys().any(|n| n.starts_with("Archives/")) && !from.contains_key(crate::sealed::KEYRING) {
        return Err(Error::Store(format!("{} holds no pybackup repository", src.describe())));
    }
    let to = objects(dst)?;
    same_repository(src, dst, &from, &to)?;
    let mut order: Vec<(&String, &u64)> = from.iter().collect();
    order.sort_by_key(|(n, _)| (rank(n), n.to_string()));
    let mut report = CopyReport::default();
    obs.start(from.values().sum());
    for (name, &size) in order {
        let there = match to.get(name) {
            Some(&s) if s == size && rank(name) == 0 => true,
            Some(&s) if s == size => src.read(name).map_err(store_err)? == dst.read(name).map_err(store_err)?,
            _ => false,
        };
        if there {
            report.skipped += 1;
        } else {
            send(src, dst, name, size)?;
            report.copied += 1;
            report.bytes += size;
        }
        obs.advance(size);
    }
    for name in to.keys().filter(|n| !from.contains_key(*n)) {
        dst.delete(name).map_err(store_err)?;
        report.removed += 1;
    }
    Ok(report)
}

/// The objects of the repository in `s`, with their sizes.
fn objects(s: &dyn Store) -> Result<BTreeMap<String, u64>> {
    let listed = s.list("").map_err(|e| Error::Store(e.to_string()))?;
    Ok(listed.into_iter().filter(|o| is_repo_object(&o.name)).map(|o| (o.name, o.size)).collect())
}

/// Refuses a destination that holds another repository: a different
/// keyring, or archives of which the source has none.
fn same_repository(
    src: &dyn Store,
    dst: &dyn Store,
    from: &BTreeMap<String, u64>,
    to: &BTreeMap<String, u64>,
) -> Result<()> {
    let store_err = |e: store::Error| Error::Store(e.to_string());
    let another = || {
        Error::Store(format!(
            "{} holds another repository than {}; refusing to copy over it",
            dst.describe(),
            src.describe()
        ))
    };
    if from.contains_key(crate::sealed::KEYRING) && to.contains_key(crate::sealed::KEYRING) {
        let ring = |s: &dyn Store| -> Result<String> {
            let text = s.read(crate::sealed::KEYRING).map_err(store_err)?;
            keys::Keyring::parse(&String::from_utf8_lossy(&text))
                .map(|k| k.recipient)
                .map_err(|e| Error::Store(format!("{}: keyring: {e}", s.describe())))
        };
        if ring(src)? != ring(dst)? {
            return Err(another());
        }
    }
    let archives =
        |m: &BTreeMap<String, u64>| -> Vec<String> { m.keys().filter(|n| n.ends_with(".xtar")).cloned().collect() };
    let (a, b) = (archives(from), archives(to));
    if !b.is_empty() && !b.iter().any(|n| from.contains_key(n)) && !a.is_empty() {
        return Err(another());
    }
    Ok(())
}

/// Sends object `name` (`size` bytes) from `src` to `dst`, then reads it
/// back from `dst` and compares SHA-256s; a copy that does not match is
/// removed and is an error.
fn send(src: &dyn Store, dst: &dyn Store, name: &str, size: u64) -> Result<()> {
    let store_err = |e: store::Error| Error::Store(e.to_string());
    let mut hashing = Hashing { inner: ObjectReader::new(src, name, size), sha: sha2::Sha256::new() };
    dst.put_from(name, &mut hashing, size).map_err(store_err)?;
    let sent: [u8; 32] = hashing.sha.finalize().into();
    let mut back = Hashing { inner: ObjectReader::new(dst, name, size), sha: sha2::Sha256::new() };
    std::io::copy(&mut back, &mut std::io::sink())
        .map_err(|e| Error::Store(format!("{}: reading `{name}` back: {e}", dst.describe())))?;
    let got: [u8; 32] = back.sha.finalize().into();
    if got != sent {
        let _ = dst.delete(name);
        return Err(Error::Store(format!(
            "{}: `{name}` read back differs from what was sent (SHA-256); removed, copy again",
            dst.describe()
        )));
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}
