//! Backup sets: a repository of versioned snapshots of one tree.
//!
//! A repository is a directory holding `Archives/NAME.xtar` and `Latest`.
//! Every archive is a normal `.xtar` that `extract` and `salvage` read on
//! their own. The first backup stores every file; later ones store only new
//! and changed files, and each carries, in its `.xtar-snapshot` member, the
//! full manifest of its snapshot with, for every file, the archive and
//! offset of its content. Restoring any snapshot therefore reads only the
//! archives that hold the files asked for. `docs/format/repository.md` is
//! the normative description.
//!
//! ```
//! use repo::{backup, restore, BackupOptions};
//!
//! let src = tempfile::tempdir().unwrap();
//! std::fs::write(src.path().join("notes.txt"), b"first\n").unwrap();
//! let store = tempfile::tempdir().unwrap();
//! let first = backup(src.path(), store.path(), &BackupOptions::default(), &xtar::Silent).unwrap();
//! std::fs::write(src.path().join("notes.txt"), b"second\n").unwrap();
//! backup(src.path(), store.path(), &BackupOptions::default(), &xtar::Silent).unwrap();
//!
//! let dest = store.path().join("restored");
//! let opts = xtar::ExtractOptions::default();
//! let report = restore(store.path(), Some(&first.name), &Default::default(), &dest, &opts, &xtar::Silent).unwrap();
//! assert!(report.is_clean());
//! assert_eq!(std::fs::read(dest.join("notes.txt")).unwrap(), b"first\n");
//! ```

mod backup;
mod check;
mod copy;
mod forget;
mod listing;
mod lock;
pub mod record;
mod repository;
mod restore;
mod sealed;

use std::path::PathBuf;

pub use backup::{backup, host_name, BackupOptions, BackupReport};
pub use check::{check, check_reading, CheckReport, ReadData};
pub use copy::{copy, CopyReport};
pub use forget::{forget, ForgetPlan, Policy};
pub use lock::Lock;
pub use record::{Line, Location, Record, Stat, Stats, Status};
pub use repository::{is_remote, Filter, Repo, SnapshotInfo};
pub use restore::{restore, restore_with, snapshot_manifest};
pub use sealed::{default_cache_dir, init_encrypted, repo_id, write_keyring, ARCHIVE_KEYRING, KEYRING, SEALED_RECORD};

/// The repository format version this code writes: records may list only
/// what changed since their base, and every snapshot's record has a copy
/// beside its archive (`docs/format/repository.md`).
pub const REPOSITORY_VERSION: u32 = 2;

/// Brings the repository at `repo` to the current repository format: the
/// record of every snapshot gets its copy beside its archive (version 1
/// repositories have none, and a copy lost since is written again). Each copy is written whole under a temporary
/// name and renamed, so a run killed part-way leaves a repository that
/// works, and the next run (or backup) goes on. Returns the snapshots
/// whose copy was written.
pub fn migrate(repo: &std::path::Path, keys: &xtar::Keys) -> Result<Vec<String>> {
    let repo = Repo::open_keyed(repo, keys, default_cache_dir())?;
    let _lock = repo.lock()?;
    repo.remove_stale();
    repo.ensure_copies(true)
}

/// What can go wrong with a repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing an archive.
    #[error(transparent)]
    Xtar(#[from] xtar::Error),
    /// A file or directory of the repository.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot record that cannot be parsed.
    #[error("snapshot record of archive {archive}, line {line}: {message}")]
    Record {
        /// The archive.
        archive: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A record of a snapshot's chain cannot be read.
    #[error("snapshot {snapshot} is listed relative to {base}, whose record cannot be read: {source}")]
    Chain {
        /// The snapshot.
        snapshot: String,
        /// The record it needs.
        base: String,
        /// Why it cannot be read.
        #[source]
        source: Box<Error>,
    },
    /// An archive without a snapshot record.
    #[error("archive {archive} has no readable snapshot record")]
    NoRecord {
        /// The archive.
        archive: String,
    },
    /// Not a repository.
    #[error("{path} is not a pybackup repository (no Archives directory)")]
    NotARepo {
        /// The path.
        path: PathBuf,
    },
    /// The snapshot asked for does not exist.
    #[error("no snapshot `{spec}` in {repo}{hint}")]
    NoSnapshot {
        /// What was asked for.
        spec: String,
        /// The repository.
        repo: PathBuf,
        /// Candidates, when ambiguous.
        hint: String,
    },
    /// Another pybackup holds the repository.
    #[error("{path} is locked by another pybackup process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Another run holds a repository in an object store.
    #[error("{} is locked by another pybackup run: {holder}", repo.display())]
    LockedRemote {
        /// The repository.
        repo: PathBuf,
        /// Its lock object, host and age.
        holder: String,
    },
    /// `init` was given a directory that holds other things.
    #[error("{} exists and is neither empty nor a pybackup repository; refusing to use it", path.display())]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The source of a backup is the repository itself.
    #[error("the repository {} is the source directory", path.display())]
    SourceIsRepo {
        /// The repository.
        path: PathBuf,
    },
    /// The keyring of an encrypted repository.
    #[error("{}: {source}", path.display())]
    Keyring {
        /// The keyring (or the repository).
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: keys::Error,
    },
    /// Keys were given and none opens the repository.
    #[error("{} is encrypted and none of the keys given is a way into it (see `pybackup key list`)", repo.display())]
    WrongKey {
        /// The repository.
        repo: PathBuf,
    },
    /// A record of an encrypted repository is needed and no key was given
    /// (and this machine's cache does not hold it).
    #[error(
        "the record of snapshot `{archive}` is encrypted: give a key with -i (an owner key, a recovery key or shares)"
    )]
    NeedKey {
        /// The archive.
        archive: String,
    },
    /// `forget` of an encrypted repository without a key.
    #[error("{} is encrypted: forget reads every snapshot's record, so it needs a key (-i)", repo.display())]
    ForgetNeedsKey {
        /// The repository.
        repo: PathBuf,
    },
    /// A store (a directory or an object store) that failed, or refused.
    #[error("{0}")]
    Store(String),
    /// A worker thread stopped without an answer.
    #[error("a worker thread panicked while {task}")]
    WorkerPanicked {
        /// What it was doing.
        task: &'static str,
    },
    /// A retention policy without any rule would forget every snapshot.
    #[error("no retention rule given; forget will not remove every snapshot")]
    NoRetentionRule,
    /// A snapshot refers to an archive that is not in the repository.
    #[error("snapshots that are kept refer to archive {archive}, which is missing")]
    MissingArchive {
        /// The archive.
        archive: String,
    },
    /// An archive does not hold a member a snapshot refers to.
    #[error(
        "archive {archive} does not hold the member `{}` that the snapshot refers to",
        String::from_utf8_lossy(member)
    )]
    MissingMember {
        /// The archive.
        archive: String,
        /// The member's path.
        member: Vec<u8>,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
