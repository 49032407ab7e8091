//! Scanning a directory tree for backup tools.
//!
//! [`walk`] visits every entry below a root in a deterministic order
//! (depth first, children sorted by their raw name bytes), reports `lstat`
//! metadata, keeps names as raw bytes (so non-UTF-8 names survive), and
//! applies the [`Rules`] shared by `pybackup` and `pyactivity`:
//! `--exclude NAME`, `--exclude-glob` / `--include-glob` (the longest
//! matching pattern wins), and `--one-file-system`.
//!
//! Errors on single entries (an unreadable directory, a vanished file) do
//! not stop the walk: they go to the caller's error callback and the walk
//! goes on.
//!
//! ```
//! use walk::{walk, Options, Rules};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir(dir.path().join("keep")).unwrap();
//! std::fs::write(dir.path().join("keep/a.txt"), b"hi").unwrap();
//! std::fs::create_dir(dir.path().join("target")).unwrap();
//! std::fs::write(dir.path().join("target/junk"), b"x").unwrap();
//!
//! let mut rules = Rules::default();
//! rules.exclude_name("target");
//! let opts = Options { rules: rules.build().unwrap(), ..Options::default() };
//! let mut seen = Vec::new();
//! walk(dir.path(), &opts, |e| seen.push(e.path.clone()), |err| panic!("{err}")).unwrap();
//! assert_eq!(seen, vec![b"".to_vec(), b"keep".to_vec(), b"keep/a.txt".to_vec()]);
//! ```

mod entry;
mod rules;

pub use entry::{Entry, Kind, Meta};
pub use rules::{RuleSet, Rules, Verdict};

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// An error met while walking. It always names the path that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a directory or the metadata of an entry failed.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Following symbolic links led back to a directory already being walked.
    #[error("symbolic link loop at `{}`", path.display())]
    Loop {
        /// Where the loop was found.
        path: PathBuf,
    },
    /// A glob pattern did not parse.
    #[error("invalid glob pattern `{pattern}`")]
    Glob {
        /// The pattern as given.
        pattern: String,
        /// Why it is invalid.
        #[source]
        source: globset::Error,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to walk.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Follow symbolic links (off by default: links are reported as links).
    pub follow_links: bool,
    /// Do not descend into directories on other file systems than the root.
    pub one_file_system: bool,
    /// Which entries to keep.
    pub rules: RuleSet,
}

/// Walks `root` and calls `visit` for every kept entry, in deterministic
/// depth-first order: a directory comes before its children, and children
/// are sorted by their raw name bytes.
///
/// The root itself is reported first, with an empty path. Entry paths are
/// relative to `root`, with `/` between components.
///
/// When include globs are present, a directory is reported only if it is
/// included itself or holds an included entry, so that every kept file
/// arrives with the directories above it.
///
/// Errors on single entries go to `on_error`, and the walk goes on. Only an
/// unreadable root is returned as an error.
pub fn walk(root: &Path, opts: &Options, mut visit: impl FnMut(&Entry), mut on_error: impl FnMut(Error)) -> Result<()> {
    let root_meta = if opts.follow_links { std::fs::metadata(root) } else { std::fs::symlink_metadata(root) }
        .map_err(|source| Error::Io { path: root.to_path_buf(), source })?;

    // Reading directories and deciding on entries runs on one thread; the
    // metadata of the entries (lstat dominates a metadata-only walk) is read
    // in parallel a chunk at a time, and the entries are visited in walk
    // order on the calling thread.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Found>>(4);
    std::thread::scope(|scope| {
        scope.spawn(move || decide(root, opts, tx));
        let mut post = Post { pending: Vec::new() };
        for chunk in rx {
            let done: Vec<Stat> = chunk.into_par_iter().map(|f| stat(f, opts.follow_links, &root_meta)).collect();
            for s in done {
                for e in s.errors {
                    on_error(e);
                }
                if let Some(entry) = s.entry {
                    post.take(entry, s.verdict, s.depth, &mut visit);
                }
            }
        }
    });
    Ok(())
}

/// Walks the directories and applies the rules, sending the entries to
/// keep (and walk errors, in their place) in chunks.
fn decide(root: &Path, opts: &Options, tx: std::sync::mpsc::SyncSender<Vec<Found>>) {
    let mut it = walkdir::WalkDir::new(root)
        .follow_links(opts.follow_links)
        .same_file_system(opts.one_file_system)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()))
        .into_iter();
    // verdicts[d] is the verdict of the directory at depth d on the current route.
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut chunk: Vec<Found> = Vec::with_capacity(CHUNK);
    while let Some(next) = it.next() {
        let dent = match next {
            Ok(d) => d,
            Err(err) => {
                let e = convert_walkdir_error(err, root);
                chunk.push(Found {
                    rel: Vec::new(),
                    full: PathBuf::new(),
                    depth: 0,
                    verdict: Verdict::Exclude,
                    error: Some(e),
                });
                continue;
            }
        };
        let depth = dent.depth();
        let rel = relative_bytes(root, dent.path());
        let is_dir = dent.file_type().is_dir();

        verdicts.truncate(depth);
        let verdict = match verdicts.last() {
            None => opts.rules.root_verdict(),
            Some(&parent) => opts.rules.decide(&rel, dent.file_name().as_bytes(), is_dir, parent),
        };
        if verdict == Verdict::Exclude || (!is_dir && verdict == Verdict::Undecided) {
            if is_dir {
                it.skip_current_dir();
            }
            continue;
        }
        if is_dir {
            verdicts.push(verdict);
        }
        chunk.push(Found { rel, full: dent.into_path(), depth, verdict, error: None });
        if chunk.len() == CHUNK && tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).is_err() {
            return;
        }
    }
    let _ = tx.send(chunk);
}

/// Entries whose metadata is read together.
const CHUNK: usize = 2048;

/// An entry decided on, before its metadata is read.
struct Found {
    rel: Vec<u8>,
    full: PathBuf,
    depth: usize,
    verdict: Verdict,
    /// A walk error to report in this place instead.
    error: Option<Error>,
}

/// An entry with its metadata (or the errors that kept it out).
struct Stat {
    entry: Option<Entry>,
    errors: Vec<Error>,
    verdict: Verdict,
    depth: usize,
}

fn stat(f: Found, follow_links: bool, root_meta: &std::fs::Metadata) -> Stat {
    let mut errors = Vec::new();
    if let Some(e) = f.error {
        return Stat { entry: None, errors: vec![e], verdict: f.verdict, depth: f.depth };
    }
    let meta = if f.depth == 0 {
        Ok(root_meta.clone())
    } else if follow_links {
        std::fs::metadata(&f.full)
    } else {
        std::fs::symlink_metadata(&f.full)
    };
    let entry = match meta {
        Ok(m) => Some(Entry::from_metadata(f.rel, &f.full, &m, &mut |e| errors.push(e))),
        Err(source) => {
            errors.push(Error::Io { path: f.full, source });
            None
        }
    };
    Stat { entry, errors, verdict: f.verdict, depth: f.depth }
}

/// Visits entries in walk order, holding back undecided directories until
/// something below them is kept.
struct Post {
    pending: Vec<Entry>,
}

impl Post {
    fn take(&mut self, entry: Entry, verdict: Verdict, depth: usize, visit: &mut dyn FnMut(&Entry)) {
        // Keep only the pending directories that are ancestors of this entry.
        while self.pending.last().is_some_and(|p| !is_ancestor(&p.path, &entry.path)) {
            self.pending.pop();
        }
        if verdict == Verdict::Undecided && depth > 0 {
            self.pending.push(entry);
            return;
        }
        for d in self.pending.drain(..) {
            visit(&d);
        }
        visit(&entry);
    }
}

fn is_ancestor(dir: &[u8], path: &[u8]) -> bool {
    dir.is_empty() || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

fn relative_bytes(root: &Path, path: &Path) -> Vec<u8> {
    match path.strip_prefix(root) {
        Ok(rel) => rel.as_os_str().as_bytes().to_vec(),
        Err(_) => path.as_os_str().as_bytes().to_vec(),
    }
}

fn convert_walkdir_error(err: walkdir::Error, root: &Path) -> Error {
    let path = err.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
    if let Some(ancestor) = err.loop_ancestor() {
        let _ = ancestor;
        return Error::Loop { path };
    }
    match err.into_io_error() {
        Some(source) => Error::Io { path, source },
        None => Error::Io { path, source: std::io::Error::other("walk failed") },
    }
}

/// Joins a root path and a relative byte path from an [`Entry`].
pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}
