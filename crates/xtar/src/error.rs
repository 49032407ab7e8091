use std::path::PathBuf;

/// Everything that can go wrong in this crate. Also used for the warnings
/// passed to [`crate::Observer::warning`] when the work goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a source file or directory failed.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Writing an output file failed.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Reading the archive itself failed.
    #[error("cannot read archive `{}` at offset {offset}", path.display())]
    ReadArchive {
        /// The archive.
        path: PathBuf,
        /// Byte offset in the archive.
        offset: u64,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The archive's structure is broken at this offset.
    #[error("archive `{}` is damaged at offset {offset}: {message}", path.display())]
    Damaged {
        /// The archive.
        path: PathBuf,
        /// Byte offset in the archive.
        offset: u64,
        /// What is wrong there.
        message: String,
    },
    /// The input is not an `.xtar` archive.
    #[error("`{}` is not an xtar archive: {message}", path.display())]
    NotXtar {
        /// The input.
        path: PathBuf,
        /// Why not.
        message: String,
    },
    /// This operation does not handle the archive's format version.
    #[error("`{}` is xtar format version {version}; {what}", path.display())]
    VersionNotHandled {
        /// The archive.
        path: PathBuf,
        /// Its version.
        version: u32,
        /// What cannot be done, and what to do instead.
        what: &'static str,
    },
    /// The archive has a format version this program does not read.
    #[error("`{}` is xtar format version {found}; this program reads versions {} to {supported}", path.display(), crate::format::OLDEST_VERSION)]
    Version {
        /// The archive.
        path: PathBuf,
        /// Version found.
        found: String,
        /// Version supported.
        supported: u32,
    },
    /// One member is damaged or inconsistent; the others are fine.
    #[error("member `{member}`: {message}")]
    Member {
        /// The member's path in the archive (lossy UTF-8).
        member: String,
        /// What is wrong.
        message: String,
    },
    /// A member would be written outside the destination, or through a link.
    #[error("refusing member `{member}`: {reason}")]
    Unsafe {
        /// The member's path (lossy UTF-8).
        member: String,
        /// Why it is unsafe.
        reason: String,
    },
    /// A volume set cannot be made or read as asked.
    #[error("volume set `{}`: {message}", path.display())]
    Volumes {
        /// The volume (or output) concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file exists where a member would be written.
    #[error("refusing to overwrite existing `{}`", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file changed while it was being read.
    #[error("`{}` changed while it was read; the archived copy may be inconsistent", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A fifo, socket or device was recorded but not stored.
    #[error("`{}` is a {kind}: recorded in the index, not stored", path.display())]
    NotStored {
        /// The entry.
        path: PathBuf,
        /// What kind it is.
        kind: &'static str,
    },
    /// A worker thread panicked (a bug): the archive is not finished.
    #[error("a worker thread panicked while it compressed `{}`", path.display())]
    WorkerPanicked {
        /// The file it was compressing.
        path: PathBuf,
    },
    /// A path asked for inside an archive that cannot be one.
    #[error("`{}`: {reason}", path.display())]
    BadRequest {
        /// The path as given.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// An archive writer was asked for something out of order.
    #[error("cannot add `{member}` to the archive here: {reason}")]
    WriteOrder {
        /// The member or path.
        member: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Walking the source tree failed on one entry.
    #[error(transparent)]
    Walk(#[from] walk::Error),
    /// An encrypted archive that cannot be opened or written as asked: no
    /// key, a wrong key, a recipient that is not one.
    #[error("`{}` is encrypted: {message}", path.display())]
    Encrypted {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An index or manifest inside the archive does not parse.
    #[error("bad {what} in archive")]
    Manifest {
        /// Which member (`index of a/b`, `manifest`).
        what: String,
        /// The parse error, with its line.
        #[source]
        source: manifest::Error,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Lossy display of raw path bytes, for messages.
pub(crate) fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// An error and its sources, joined with `: `.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl From<fsutil::Error> for Error {
    fn from(e: fsutil::Error) -> Error {
        match e {
            fsutil::Error::Exists { path } => Error::Exists { path },
            fsutil::Error::Write { path, source } => Error::Write { path, source },
            other => Error::Write { path: PathBuf::new(), source: std::io::Error::other(other.to_string()) },
        }
    }
}
