//! Taking the manifest of a live tree: walk, then hash files in parallel.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::{cmp_paths, parent_of, Entry, Kind, Manifest};

/// A problem with one entry while taking a manifest; the rest goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The walk could not read an entry.
    #[error(transparent)]
    Walk(#[from] walk::Error),
    /// A file could not be read for hashing.
    #[error("cannot hash `{}`", path.display())]
    Hash {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// How to take a manifest.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Walk rules.
    pub walk: walk::Options,
    /// Hash regular files (SHA-256).
    pub hash: bool,
    /// Worker threads for hashing (0: rayon's default).
    pub jobs: usize,
}

/// The order in which hard-linked names are met in an archive: by parent
/// directory (canonical order), then by name. The first name of an inode in
/// this order holds the data; later names are [`Kind::HardLink`] entries.
pub fn link_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    cmp_paths(parent_of(a), parent_of(b)).then_with(|| crate::Entry::name_of(a).cmp(crate::Entry::name_of(b)))
}

/// Takes the manifest of the tree at `root`. Entries that cannot be read
/// go to `on_error` and are left out. `root` is recorded canonicalized.
pub fn build(
    root: &Path,
    opts: &BuildOptions,
    mut on_error: impl FnMut(BuildError) + Send,
) -> Result<Manifest, BuildError> {
    let mut walked: Vec<walk::Entry> = Vec::new();
    let mut errors = Vec::new();
    walk::walk(root, &opts.walk, |e| walked.push(e.clone()), |e| errors.push(e))?;
    for e in errors {
        on_error(BuildError::Walk(e));
    }
    let canonical = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut m = Manifest::new(canonical.as_os_str().as_encoded_bytes().to_vec());

    // Hard links: the first name in archive order keeps the data.
    let mut files: Vec<usize> =
        (0..walked.len()).filter(|&i| walked[i].kind == walk::Kind::File && walked[i].meta.nlink > 1).collect();
    files.sort_by(|&a, &b| link_order(&walked[a].path, &walked[b].path));
    let mut first: HashMap<(u64, u64), usize> = HashMap::new();
    let mut link_to: HashMap<usize, usize> = HashMap::new();
    for i in files {
        let key = (walked[i].meta.dev, walked[i].meta.ino);
        match first.get(&key) {
            Some(&f) => {
                link_to.insert(i, f);
            }
            None => {
                first.insert(key, i);
            }
        }
    }

    let mut entries: Vec<Entry> = walked.iter().map(Entry::from_walk).collect();
    let mut failed = vec![false; entries.len()];
    if opts.hash {
        let todo: Vec<usize> =
            (0..walked.len()).filter(|&i| walked[i].kind == walk::Kind::File && !link_to.contains_key(&i)).collect();
        let hash_all = || -> Vec<(usize, HashResult)> {
            todo.par_iter()
                .map(|&i| {
                    let path = walk::join(root, &walked[i].path);
                    (i, hash_file(&path).map_err(|source| BuildError::Hash { path, source }))
                })
                .collect()
        };
        let pool = (opts.jobs > 0).then(|| rayon::ThreadPoolBuilder::new().num_threads(opts.jobs).build().ok());
        let results = match pool.flatten() {
            Some(pool) => pool.install(hash_all),
            None => hash_all(),
        };
        for (i, r) in results {
            match r {
                Ok((h, size)) => {
                    entries[i].sha256 = Some(h);
                    entries[i].size = size;
                }
                Err(e) => {
                    failed[i] = true;
                    on_error(e);
                }
            }
        }
    }
    for (&i, &f) in &link_to {
        let first = entries[f].clone();
        let l = &mut entries[i];
        l.kind = Kind::HardLink;
        l.sha256 = first.sha256;
        l.size = first.size;
        l.target = Some(first.path);
        failed[i] = failed[f];
    }
    m.entries = entries.into_iter().zip(failed).filter(|(_, f)| !f).map(|(e, _)| e).collect();
    m.sort();
    Ok(m)
}

/// The hash and length of one file, or why it could not be read.
type HashResult = Result<([u8; 32], u64), BuildError>;

/// SHA-256 and length of a file, read once.
pub fn hash_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut n: u64 = 0;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}
