use std::path::PathBuf;

/// What can go wrong with a volume set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing one volume as an archive.
    #[error(transparent)]
    Xtar(#[from] xtar::Error),
    /// Making the recovery data.
    #[error(transparent)]
    Parity(#[from] parity::Error),
    /// A volume or a set that cannot be read as given.
    #[error("volume set `{}`: {message}", path.display())]
    Set {
        /// The volume or the set's base.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The table of a volume does not parse.
    #[error("volume `{}`: table line {line}: {message}", path.display())]
    Table {
        /// The volume.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The volume size leaves no room for a volume's own metadata.
    #[error(
        "a volume of {size} bytes is too small: the table of the set, the archive's own metadata and room for one part need {least} bytes"
    )]
    TooSmall {
        /// The volume size asked for.
        size: u64,
        /// The least volume size for this tree.
        least: u64,
    },
    /// An entry whose metadata alone does not fit in an empty volume.
    #[error("`{}`: its metadata alone does not fit in a volume of {size} bytes", String::from_utf8_lossy(path))]
    EntryTooLarge {
        /// The entry.
        path: Vec<u8>,
        /// The volume size.
        size: u64,
    },
    /// A volume came out larger than the volume size (a bug: refused).
    #[error("volume {volume} came to {bytes} bytes, more than the volume size {size}")]
    Overfull {
        /// The volume number.
        volume: u32,
        /// Its size.
        bytes: u64,
        /// The volume size.
        size: u64,
    },
}

impl Error {
    /// The error as the `xtar` observer reports warnings.
    pub fn to_warning(&self) -> xtar::Error {
        match self {
            Error::Xtar(e) => xtar::Error::Volumes { path: PathBuf::new(), message: format!("{e:#}") },
            Error::Set { path, message } => xtar::Error::Volumes { path: path.clone(), message: message.clone() },
            other => xtar::Error::Volumes { path: PathBuf::new(), message: other.to_string() },
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
