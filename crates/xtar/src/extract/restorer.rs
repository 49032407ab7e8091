//! [`Restorer`]: the engine fed from anywhere (backup sets, volume sets).

use std::io::Read;
use std::path::Path;

use manifest::{Entry, Kind};

use super::{Engine, ExtractOptions, ExtractReport, Fate};
use crate::{Observer, Result};

/// Restores a tree whose entries and members come from anywhere (for
/// example from several archives of a backup set): give it the entries,
/// then the member of each file that has content, then finish. It writes
/// as safely as [`extract`] does, and checks every file against its entry.
pub struct Restorer<'a> {
    engine: Engine<'a>,
}

impl<'a> Restorer<'a> {
    /// Restores into `dest`, or only checks when `dest` is `None`.
    pub fn new(dest: Option<&Path>, opts: &'a ExtractOptions, obs: &'a dyn Observer) -> Result<Restorer<'a>> {
        Ok(Restorer { engine: Engine::new(dest, opts, obs)? })
    }

    /// Takes the entries of the tree (any order). Directories are created
    /// now; symlinks and empty files are recreated from their entry; other
    /// files wait for [`Restorer::member`]. Entries of a path already
    /// taken are ignored.
    pub fn entries(&mut self, entries: Vec<Entry>) -> Result<()> {
        let mut rest = Vec::with_capacity(entries.len());
        let mut sorted = entries;
        sorted.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        for e in sorted {
            let from_entry = match e.kind {
                Kind::Symlink => true,
                Kind::File => e.size == 0,
                _ => false,
            };
            if from_entry && self.engine.selected(&e.path) && self.engine.seen.insert(e.path.clone()) {
                let r = self.engine.recreate_from_index(&e);
                self.engine.settle(&e.path, r, Fate::Missing)?;
            } else if !from_entry {
                rest.push(e);
            }
        }
        self.engine.index(b"", rest)
    }

    /// Takes the member (`size` bytes read from `r`) that holds the file
    /// `path`; `stored` is the name its zip entry carries when the member
    /// was stored for another path with the same content.
    pub fn member(&mut self, path: &[u8], stored: Option<&[u8]>, size: u64, r: &mut dyn Read) -> Result<()> {
        let res = self.engine.member_as(path.to_vec(), stored.map(<[u8]>::to_vec), size, r);
        self.engine.fatal_or_problem(res)?;
        self.engine.collect(false)
    }

    /// Books a file whose member could not be found or read.
    pub fn missing(&mut self, path: &[u8], message: &str) -> Result<()> {
        self.engine.damaged(path, message)
    }

    /// Waits for the workers, makes the links, applies directory metadata,
    /// and reports every file that did not come back.
    pub fn finish(self) -> Result<ExtractReport> {
        self.engine.finish().map(|(r, _)| r)
    }
}
