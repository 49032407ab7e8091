//! The model of a directory tree, and its text encoding.
//!
//! A [`Manifest`] lists every entry of a tree: path (raw bytes), [`Kind`],
//! mode, modification time with nanoseconds, size, the SHA-256 of regular
//! files and the target of links. Its text form (specified in
//! `docs/format/manifest.md`) is line-oriented, sorted and deterministic,
//! so that ordinary tools can read and diff it.
//!
//! ```
//! use manifest::{Entry, Kind, Manifest, Timestamp};
//!
//! let mut m = Manifest::new(b"/home/me".to_vec());
//! m.entries.push(Entry::dir(Vec::new(), 0o755, Timestamp::new(1_700_000_000, 5)));
//! let mut f = Entry::dir(b"odd\nname".to_vec(), 0o644, Timestamp::new(1_700_000_000, 0));
//! f.kind = Kind::File;
//! f.size = 3;
//! f.sha256 = Some([7; 32]);
//! m.entries.push(f);
//! let text = m.to_text();
//! let back = Manifest::parse(&text).unwrap();
//! assert_eq!(back, m);
//! ```

mod build;
mod diff;
mod entry;
mod escape;
mod text;

pub use build::{build, hash_file, link_order, BuildError, BuildOptions};
pub use diff::{diff, Change};

pub use entry::{
    civil_from_days, cmp_canonical, cmp_paths, days_from_civil, is_within, parent_of, Entry, Kind, Timestamp,
};
pub use escape::{escape_path, unescape_path};
pub use text::{parse_entry_line, push_time, push_u64, write_entry_line, write_header, FORMAT_VERSION, MAGIC};

/// A parse error in a manifest, with the line it was found on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line does not follow the format.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The manifest declares a format version this program does not read.
    #[error("unsupported manifest version `{found}` (this program reads version {FORMAT_VERSION})")]
    Version {
        /// The version found.
        found: String,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A whole tree: where it was taken from, and its entries in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The root the tree was taken from, raw bytes (informational).
    pub root: Vec<u8>,
    /// The entries, the root directory first (empty path), sorted by
    /// [`cmp_paths`].
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// An empty manifest for a tree taken at `root`.
    pub fn new(root: Vec<u8>) -> Manifest {
        Manifest { root, entries: Vec::new() }
    }

    /// Sorts the entries into the canonical order.
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    }

    /// The text encoding: header lines, then one line per entry.
    pub fn to_text(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 120);
        text::write_header(&mut out, &self.root);
        for e in &self.entries {
            write_entry_line(&mut out, e);
        }
        out
    }

    /// Parses the text encoding. Entries must be in canonical order, and
    /// each path may appear only once.
    pub fn parse(input: &[u8]) -> Result<Manifest> {
        text::parse(input)
    }
}
