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

use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

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
pub fn walk(root: &Path, opts: &Options, visit: impl FnMut(&Entry), on_error: impl FnMut(Error)) -> Result<()> {
    walk_with_budget(root, opts, READ_AHEAD, visit, on_error)
}

/// Entries that directory readers may hold ahead of the visitor before
/// they stop reading ahead.
const READ_AHEAD: usize = 1 << 16;

// Directories are read on the rayon pool, each by one job that lists it,
// applies the rules, reads the metadata of the kept children relative to
// the open directory (no path lookup from the root per entry) and starts
// the jobs for its subdirectories while the read-ahead budget lasts. The
// calling thread takes the listings in walk order, so the visit order does
// not depend on timing; a subdirectory nobody has read yet when its turn
// comes is read then.
fn walk_with_budget(
    root: &Path,
    opts: &Options,
    budget: usize,
    mut visit: impl FnMut(&Entry),
    mut on_error: impl FnMut(Error),
) -> Result<()> {
    let root_meta = if opts.follow_links { std::fs::metadata(root) } else { std::fs::symlink_metadata(root) }
        .map_err(|source| Error::Io { path: root.to_path_buf(), source })?;
    let root_entry = Entry::from_metadata(Vec::new(), root, &root_meta, &mut on_error);
    let verdict = opts.rules.root_verdict();
    let mut post = Post { pending: Vec::new() };
    post.take(root_entry, verdict, 0, &mut visit);
    if !root_meta.is_dir() {
        return Ok(());
    }
    let shared =
        Arc::new(Shared { opts: opts.clone(), root_dev: root_meta.dev(), budget, in_flight: AtomicUsize::new(0) });
    let first = DirJob {
        dir: root.to_path_buf(),
        rel: Vec::new(),
        depth: 0,
        verdict,
        ancestors: Arc::new(vec![(root_meta.dev(), root_meta.ino())]),
    };
    let mut stack: Vec<std::vec::IntoIter<Child>> = Vec::new();
    let enter = |sub: Sub, stack: &mut Vec<std::vec::IntoIter<Child>>, on_error: &mut dyn FnMut(Error)| {
        let listing = match sub {
            Sub::Reading(rx, dir) => wait(&rx).ok_or(dir),
            Sub::Later(job) => Ok(read_dir(&shared, job)),
        };
        match listing {
            // A reader that panicked left nothing: say so, never skip quietly.
            Err(dir) => {
                on_error(Error::Io { path: dir, source: std::io::Error::other("reading the directory failed") })
            }
            Ok(listing) => {
                let n = listing.children.len();
                let _ = shared.in_flight.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(n)));
                for e in listing.errors {
                    on_error(e);
                }
                stack.push(listing.children.into_iter());
            }
        }
    };
    enter(Sub::Later(first), &mut stack, &mut on_error);
    while let Some(top) = stack.last_mut() {
        let Some(child) = top.next() else {
            stack.pop();
            continue;
        };
        for e in child.errors {
            on_error(e);
        }
        if let Some(entry) = child.entry {
            post.take(entry, child.verdict, child.depth, &mut visit);
        }
        if let Some(sub) = child.sub {
            enter(sub, &mut stack, &mut on_error);
        }
    }
    Ok(())
}

/// What every directory reader needs.
struct Shared {
    opts: Options,
    root_dev: u64,
    budget: usize,
    /// Entries listed but not yet taken by the visitor (approximate).
    in_flight: AtomicUsize,
}

/// A directory to read.
struct DirJob {
    dir: PathBuf,
    rel: Vec<u8>,
    depth: usize,
    verdict: Verdict,
    /// `(dev, ino)` of the directories from the root down to this one, to
    /// find loops when links are followed.
    ancestors: Arc<Vec<(u64, u64)>>,
}

/// The listing of a directory: its kept children in name order.
struct Listing {
    children: Vec<Child>,
    /// Errors reading the directory itself.
    errors: Vec<Error>,
}

/// One child of a listed directory.
struct Child {
    entry: Option<Entry>,
    errors: Vec<Error>,
    verdict: Verdict,
    depth: usize,
    /// Its own listing, when it is a directory to descend into.
    sub: Option<Sub>,
}

/// A subdirectory's listing: being read, or to be read when its turn comes.
enum Sub {
    Reading(std::sync::mpsc::Receiver<Listing>, PathBuf),
    Later(DirJob),
}

/// Waits for a listing. On a rayon worker thread (a caller inside a pool),
/// it runs other jobs of the pool meanwhile, so that a pool of one thread
/// cannot deadlock.
fn wait(rx: &std::sync::mpsc::Receiver<Listing>) -> Option<Listing> {
    if rayon::current_thread_index().is_none() {
        return rx.recv().ok();
    }
    loop {
        match rx.try_recv() {
            Ok(l) => return Some(l),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    match rx.recv_timeout(std::time::Duration::from_millis(1)) {
                        Ok(l) => return Some(l),
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    }
                }
            }
        }
    }
}

/// Reads one directory: lists it, decides on each child, reads the kept
/// children's metadata and starts reading their subdirectories.
fn read_dir(shared: &Arc<Shared>, job: DirJob) -> Listing {
    let opts = &shared.opts;
    let mut errors = Vec::new();
    let mut found: Vec<(Vec<u8>, std::fs::DirEntry)> = Vec::new();
    match std::fs::read_dir(&job.dir) {
        Ok(rd) => {
            for d in rd {
                match d {
                    Ok(d) => found.push((d.file_name().into_vec(), d)),
                    Err(source) => errors.push(Error::Io { path: job.dir.clone(), source }),
                }
            }
        }
        Err(source) => errors.push(Error::Io { path: job.dir.clone(), source }),
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let depth = job.depth + 1;
    let mut children = Vec::with_capacity(found.len());
    for (name, dent) in found {
        let mut rel = Vec::with_capacity(job.rel.len() + 1 + name.len());
        rel.extend_from_slice(&job.rel);
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        let full = || job.dir.join(OsStr::from_bytes(&name));
        let mut child = Child { entry: None, errors: Vec::new(), verdict: Verdict::Exclude, depth, sub: None };

        // What it is, before the rules: the directory entry's type, or the
        // target's when links are followed.
        let mut meta = None;
        let is_dir = match dent.file_type() {
            Ok(ft) if opts.follow_links && ft.is_symlink() => match std::fs::metadata(full()) {
                Ok(m) => {
                    let d = m.is_dir();
                    meta = Some(m);
                    d
                }
                Err(source) => {
                    child.errors.push(Error::Io { path: full(), source });
                    children.push(child);
                    continue;
                }
            },
            Ok(ft) => ft.is_dir(),
            Err(source) => {
                child.errors.push(Error::Io { path: full(), source });
                children.push(child);
                continue;
            }
        };
        let verdict = opts.rules.decide(&rel, &name, is_dir, job.verdict);
        if verdict == Verdict::Exclude || (!is_dir && verdict == Verdict::Undecided) {
            continue;
        }
        child.verdict = verdict;
        let m = match meta.map_or_else(|| dent.metadata(), Ok) {
            Ok(m) => m,
            Err(source) => {
                child.errors.push(Error::Io { path: full(), source });
                children.push(child);
                continue;
            }
        };
        if m.is_dir() {
            let id = (m.dev(), m.ino());
            if opts.follow_links && job.ancestors.contains(&id) {
                child.errors.push(Error::Loop { path: full() });
                children.push(child);
                continue;
            }
            if !opts.one_file_system || m.dev() == shared.root_dev {
                let mut ancestors = Vec::new();
                if opts.follow_links {
                    ancestors.reserve(job.ancestors.len() + 1);
                    ancestors.extend_from_slice(&job.ancestors);
                    ancestors.push(id);
                }
                child.sub = Some(Sub::Later(DirJob {
                    dir: full(),
                    rel: rel.clone(),
                    depth,
                    verdict,
                    ancestors: Arc::new(ancestors),
                }));
            }
        }
        if m.file_type().is_symlink() {
            child.entry = Some(Entry::from_metadata(rel, &full(), &m, &mut |e| child.errors.push(e)));
        } else {
            child.entry = Some(Entry::from_metadata(rel, Path::new(""), &m, &mut |_| {}));
        }
        children.push(child);
    }

    // Start reading the subdirectories while the budget lasts.
    let held = shared.in_flight.fetch_add(children.len(), Relaxed) + children.len();
    if held < shared.budget {
        for child in &mut children {
            if let Some(Sub::Later(_)) = child.sub {
                let Some(Sub::Later(sub)) = child.sub.take() else { continue };
                let dir = sub.dir.clone();
                let (tx, rx) = std::sync::mpsc::channel();
                let shared = Arc::clone(shared);
                rayon::spawn(move || {
                    let _ = tx.send(read_dir(&shared, sub));
                });
                child.sub = Some(Sub::Reading(rx, dir));
            }
        }
    }
    Listing { children, errors }
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

/// Joins a root path and a relative byte path from an [`Entry`].
pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A tree with nested directories, files, links and an empty directory.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in ["a", "a/b", "a/b/c", "a/empty", "z", "m.d"] {
            std::fs::create_dir(r.join(d)).unwrap();
        }
        for (i, f) in ["a/1", "a/b/2", "a/b/c/3", "a/b/c/4", "z/5", "top", "m.d/x.txt", "m.d/y.rs"].iter().enumerate() {
            std::fs::write(r.join(f), vec![b'x'; i]).unwrap();
        }
        symlink("../top", r.join("a/link")).unwrap();
        symlink("nowhere", r.join("dangling")).unwrap();
        dir
    }

    /// Every path below `root`, depth first, children in byte order, read
    /// the simplest way.
    fn reference(root: &Path, rel: &[u8], out: &mut Vec<Vec<u8>>) {
        let mut names: Vec<Vec<u8>> = std::fs::read_dir(root.join(OsStr::from_bytes(rel)))
            .unwrap()
            .map(|d| d.unwrap().file_name().into_vec())
            .collect();
        names.sort();
        for n in names {
            let mut p = rel.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&n);
            out.push(p.clone());
            if std::fs::symlink_metadata(root.join(OsStr::from_bytes(&p))).unwrap().is_dir() {
                reference(root, &p, out);
            }
        }
    }

    fn paths(root: &Path, opts: &Options, budget: usize) -> (Vec<Vec<u8>>, Vec<Error>) {
        let (mut seen, mut errors) = (Vec::new(), Vec::new());
        walk_with_budget(root, opts, budget, |e| seen.push(e.path.clone()), |e| errors.push(e)).unwrap();
        (seen, errors)
    }

    #[test]
    fn order_and_content_do_not_depend_on_read_ahead() {
        let dir = tree();
        let mut want = vec![Vec::new()];
        reference(dir.path(), b"", &mut want);
        for budget in [0, 1, 3, READ_AHEAD] {
            let (seen, errors) = paths(dir.path(), &Options::default(), budget);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(seen, want, "read-ahead budget {budget}");
        }
    }

    #[test]
    fn metadata_is_the_entrys_own() {
        let dir = tree();
        let mut got = Vec::new();
        walk(dir.path(), &Options::default(), |e| got.push(e.clone()), |e| panic!("{e}")).unwrap();
        for e in &got {
            let m = std::fs::symlink_metadata(join(dir.path(), &e.path)).unwrap();
            assert_eq!((e.meta.ino, e.meta.size, e.meta.mtime), (m.ino(), m.size(), m.mtime()), "{:?}", e.path);
        }
        let link = got.iter().find(|e| e.path == b"a/link").unwrap();
        assert_eq!((link.kind, link.link_target.as_deref()), (Kind::Symlink, Some(&b"../top"[..])));
        let dangling = got.iter().find(|e| e.path == b"dangling").unwrap();
        assert_eq!(dangling.link_target.as_deref(), Some(&b"nowhere"[..]));
    }

    #[test]
    fn include_globs_bring_only_the_directories_above() {
        let dir = tree();
        let mut rules = Rules::default();
        rules.include_glob("*.rs").include_glob("3");
        let opts = Options { rules: rules.build().unwrap(), ..Options::default() };
        for budget in [0, READ_AHEAD] {
            let (seen, _) = paths(dir.path(), &opts, budget);
            let want: Vec<&[u8]> = vec![b"", b"a", b"a/b", b"a/b/c", b"a/b/c/3", b"m.d", b"m.d/y.rs"];
            assert_eq!(seen, want);
        }
    }

    #[test]
    fn following_links_reports_a_loop_and_goes_on() {
        let dir = tree();
        symlink("..", dir.path().join("a/b/up")).unwrap();
        let opts = Options { follow_links: true, ..Options::default() };
        let (seen, errors) = paths(dir.path(), &opts, READ_AHEAD);
        assert!(errors.iter().any(|e| matches!(e, Error::Loop { path } if path.ends_with("a/b/up"))), "{errors:?}");
        assert!(seen.contains(&b"z/5".to_vec()));
        // The followed link is reported as what it points to.
        assert!(errors.iter().any(|e| matches!(e, Error::Io { path, .. } if path.ends_with("dangling"))));
    }

    #[test]
    fn a_pool_of_one_thread_does_not_deadlock() {
        let dir = tree();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let (seen, _) = pool.install(|| paths(dir.path(), &Options::default(), READ_AHEAD));
        let mut want = vec![Vec::new()];
        reference(dir.path(), b"", &mut want);
        assert_eq!(seen, want);
    }

    #[test]
    fn a_file_as_root_is_reported_alone() {
        let dir = tree();
        let (seen, errors) = paths(&dir.path().join("top"), &Options::default(), READ_AHEAD);
        assert_eq!((seen, errors.len()), (vec![Vec::new()], 0));
    }
}
