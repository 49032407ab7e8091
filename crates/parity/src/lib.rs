//! Reed–Solomon recovery data over a set of files, for discs that lose
//! sectors or go missing.
//!
//! [`protect`] cuts the files into blocks (their last block padded with
//! zeros), records a CRC-32 of every block, and computes recovery blocks
//! with a Reed–Solomon code over GF(2^16) (the `reed-solomon-simd` crate,
//! the same field as par2). Blocks are dealt to independent codes
//! ("groups") in turn, so a burst of damage or a whole missing file is
//! spread evenly over all of them. The recovery data goes into one or more
//! *parity volumes*, `BASE.pNN.xtar-rs`, each holding the set's descriptor
//! and block checksums twice. [`repair`] finds damaged blocks by their
//! checksums (they are known erasures), rebuilds them when the redundancy
//! allows, and says exactly what it could not. `docs/format/recovery.md` is
//! the normative description.
//!
//! ```
//! use parity::{protect, repair, ProtectOptions, RepairOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("a.xtar");
//! std::fs::write(&file, (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>()).unwrap();
//! let made = protect(&[file.clone()], &dir.path().join("a"), &ProtectOptions::default()).unwrap();
//!
//! // Damage 3 KiB in the middle, then repair in place.
//! let mut bytes = std::fs::read(&file).unwrap();
//! bytes[100_000..103_072].fill(0xff);
//! std::fs::write(&file, &bytes).unwrap();
//! let report = repair(&made.parity_files, &RepairOptions::default()).unwrap();
//! assert!(report.is_complete());
//! assert_eq!(std::fs::read(&file).unwrap()[100_000], (100_000u32 * 7 % 251) as u8);
//! ```

mod blocks;
mod layout;
mod packet;
mod promise;
mod protect;
mod repair;

use std::path::{Path, PathBuf};

pub use layout::{choose_block_size, Layout};
pub use promise::{Promise, Redundancy};
pub use protect::{protect, ProtectOptions, ProtectReport};
pub use repair::{repair, BlockRange, FileOutcome, FileState, RepairOptions, RepairReport};

/// The name of the parity volumes of a file (an archive `NAME.xtar`, a
/// volume `NAME.NNN.xtar`, or a parity volume `NAME.pNN.xtar-rs`): `NAME`,
/// so that the parity volumes are `NAME.p01.xtar-rs`, …
pub fn base_of(file: &Path) -> PathBuf {
    let s = file.as_os_str().to_string_lossy();
    let s = s
        .strip_suffix(SUFFIX)
        .map(|r| r.trim_end_matches(|c: char| c.is_ascii_digit()))
        .and_then(|r| r.strip_suffix(".p"))
        .unwrap_or(&s);
    let s = s.strip_suffix(".xtar").unwrap_or(s);
    let s = match s.rsplit_once('.') {
        Some((head, num)) if num.len() == 3 && num.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => s,
    };
    PathBuf::from(s)
}

/// The file name suffix of parity volumes.
pub const SUFFIX: &str = ".xtar-rs";
/// The sector size of CD, DVD and BD media: blocks never straddle one.
pub const SECTOR: u64 = 2048;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file failed.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// No usable descriptor was found in any parity volume.
    #[error("no readable recovery descriptor in {}", list(.0))]
    NoDescriptor(Vec<PathBuf>),
    /// A file to protect is not a regular file.
    #[error("`{}` is not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// Two files to protect have the same name (they must sit side by
    /// side to be repaired).
    #[error("two files named `{}`", .0.display())]
    DuplicateName(PathBuf),
    /// A redundancy outside 0..=1000 percent, or none at all.
    #[error("redundancy {0}% is outside 0..=1000, or no recovery data was asked for")]
    Redundancy(u32),
    /// A block size that is not a positive multiple of 64.
    #[error("block size {0} is not a multiple of 64")]
    BlockSize(u64),
    /// Every file to protect is empty.
    #[error("nothing to protect: the files are empty")]
    NothingToProtect,
    /// More recovery blocks per group than GF(2^16) allows.
    #[error("{percent}% of {blocks} blocks per group is beyond what GF(2^16) allows")]
    TooManyBlocks {
        /// The redundancy asked for.
        percent: u32,
        /// Data blocks per group.
        blocks: u64,
    },
    /// A parity volume too small for one block and the metadata.
    #[error("a parity volume of {size} bytes cannot hold one recovery block and its metadata ({needed} bytes)")]
    VolumeTooSmall {
        /// The largest size allowed.
        size: u64,
        /// What one block and the metadata need.
        needed: u64,
    },
    /// The Reed–Solomon encoder or decoder refused a group.
    #[error("Reed-Solomon coding of group {group} failed")]
    Coding {
        /// The group.
        group: u64,
        /// The coder's error.
        #[source]
        source: reed_solomon_simd::Error,
    },
    /// An output file exists already.
    #[error("`{}` exists; not overwritten", .0.display())]
    Exists(PathBuf),
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The name of parity volume `k` (from 1) of the set `base`.
pub fn parity_name(base: &Path, k: usize) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(format!(".p{k:02}{SUFFIX}"));
    PathBuf::from(s)
}

/// The parity volumes of `base` present on disk, in order.
pub fn find_parity(base: &Path) -> Vec<PathBuf> {
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&stem)?.strip_prefix(".p")?.strip_suffix(SUFFIX)?;
            (rest.len() >= 2 && rest.bytes().all(|b| b.is_ascii_digit())).then(|| dir.join(&name))
        })
        .collect();
    found.sort();
    found
}

impl From<fsutil::Error> for Error {
    fn from(e: fsutil::Error) -> Error {
        match e {
            fsutil::Error::Exists { path } => Error::Exists(path),
            fsutil::Error::Write { path, source } => Error::Write { path, source },
            other => Error::Write { path: PathBuf::new(), source: std::io::Error::other(other.to_string()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names() {
        for (f, b) in [
            ("d/a.xtar", "d/a"),
            ("d/a.003.xtar", "d/a"),
            ("d/a.p02.xtar-rs", "d/a"),
            ("a.tar", "a.tar"),
            ("a.1.xtar", "a.1"),
        ] {
            assert_eq!(base_of(Path::new(f)), PathBuf::from(b), "{f}");
        }
    }
}
