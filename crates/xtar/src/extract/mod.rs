//! Restoring files: from an archive (`extract`) or from a launched tree of
//! members (`expand`). Both feed the same engine.

use std::fs::File;
use std::path::Path;

use crate::error::lossy;
use crate::format::{self, MemberName};
use crate::read::{parse_index, Item, Scanner};
use crate::{Error, Observer, Result};

mod engine;
mod restorer;
mod unpack;

pub(crate) use engine::{Book, Engine};
pub use engine::{Fate, Verified};
pub use restorer::Restorer;
pub(crate) use unpack::{unpack_as, Frames, Unpacked};

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Replace existing files.
    pub overwrite: bool,
    /// Worker threads (0: rayon's default).
    pub jobs: usize,
    /// Restore only these paths and what is below them (all when empty).
    pub paths: Vec<Vec<u8>>,
    /// Keys to open an encrypted archive with.
    pub keys: crate::Keys,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Regular files restored and verified.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks and hard links restored.
    pub links: u64,
    /// Bytes of file content restored.
    pub bytes: u64,
    /// Files damaged, missing, refused or not restored; each was reported
    /// through [`Observer::warning`].
    pub problems: u64,
}

impl ExtractReport {
    /// Whether everything asked for was restored intact.
    pub fn is_clean(&self) -> bool {
        self.problems == 0
    }
}

/// Restores an archive (or `-` for standard input) into `dest`.
///
/// An encrypted archive is opened with `opts.keys` first: without a key
/// that opens it, nothing is written.
pub fn extract(archive: &Path, dest: &Path, opts: &ExtractOptions, obs: &dyn Observer) -> Result<ExtractReport> {
    let mut scanner = Scanner::open(archive)?.with_keys(opts.keys.clone());
    scanner.unlock(obs)?;
    if let Ok(m) = std::fs::metadata(archive) {
        obs.start(m.len());
    }
    let mut engine = Engine::new(Some(dest), opts, obs)?;
    if let Err(e) = run_scanner(&mut scanner, &mut engine, obs) {
        // Let the workers finish, so their temporary files are removed.
        let _ = engine.drain();
        return Err(e);
    }
    engine.finish().map(|(r, _)| r)
}

/// Decompresses every member of an archive and checks its CRC-32, size and
/// SHA-256 against the index, writing nothing. Each damaged or missing
/// file is reported through `obs` and counted in `problems`.
pub fn verify(archive: &Path, opts: &ExtractOptions, obs: &dyn Observer) -> Result<ExtractReport> {
    let mut scanner = Scanner::open(archive)?.with_keys(opts.keys.clone());
    scanner.unlock(obs)?;
    if let Ok(m) = std::fs::metadata(archive) {
        obs.start(m.len());
    }
    let mut engine = Engine::new(None, opts, obs)?;
    if let Err(e) = run_scanner(&mut scanner, &mut engine, obs) {
        let _ = engine.drain();
        return Err(e);
    }
    engine.finish().map(|(r, _)| r)
}

fn run_scanner(scanner: &mut Scanner, engine: &mut Engine<'_>, obs: &dyn Observer) -> Result<()> {
    while let Some(item) = scanner.next(obs)? {
        match item {
            Item::File { path, size, .. } => {
                if scanner.version() >= format::ZSTD_VERSION {
                    engine.frames = scanner.frames();
                }
                let r = engine.member(path, size, &mut scanner.data());
                engine.fatal_or_problem(r)?;
                obs.advance(size);
            }
            Item::Index { dir, entries, .. } => {
                let r = engine.index(&dir, entries);
                engine.fatal_or_problem(r)?;
            }
            // Version 3: the manifest comes first and has every SHA-256;
            // the indexes are second copies (taken for what the manifest
            // lost to damage).
            Item::Entries { entries, .. } => {
                engine.links_in_index = true;
                let r = engine.index(b"", entries);
                engine.fatal_or_problem(r)?;
            }
            Item::Manifest { text } if scanner.version() >= 3 => {
                engine.links_in_index = true;
                let (entries, _) = crate::read::parse_entries(&text);
                let r = engine.index(b"", entries);
                engine.fatal_or_problem(r)?;
            }
            // Parts of files split across volumes belong to the set, not to
            // this volume's own tree (see `volumes`).
            Item::Header { .. }
            | Item::Container { .. }
            | Item::Manifest { .. }
            | Item::Other { .. }
            | Item::Part { .. }
            | Item::Volumes { .. } => {}
        }
        engine.collect(false)?;
    }
    Ok(())
}

/// Restores a tree of launched members (see [`crate::launch`]) into `dest`.
pub fn expand(launched: &Path, dest: &Path, opts: &ExtractOptions, obs: &dyn Observer) -> Result<ExtractReport> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    walk::walk(
        launched,
        &walk::Options::default(),
        |e| files.push((e.path.clone(), e.kind, e.meta.size)),
        |e| errors.push(e),
    )?;
    let mut engine = Engine::new(Some(dest), opts, obs)?;
    for e in errors {
        engine.problem(Error::Walk(e));
    }
    obs.start(files.iter().map(|f| f.2).sum());
    for (rel, kind, size) in files {
        if kind != walk::Kind::File {
            continue;
        }
        let abs = walk::join(launched, &rel);
        let read_err = |source| Error::Read { path: abs.clone(), source };
        match MemberName::parse(&rel) {
            MemberName::File(path) => {
                let mut f = File::open(&abs).map_err(read_err)?;
                let r = engine.member(path, size, &mut f);
                engine.fatal_or_problem(r)?;
                obs.advance(size);
            }
            MemberName::Index(dir) => {
                let text = std::fs::read(&abs).map_err(read_err)?;
                match parse_index(&text, &dir) {
                    Ok(entries) => {
                        let r = engine.index(&dir, entries);
                        engine.fatal_or_problem(r)?;
                    }
                    Err(source) => {
                        engine.problem(Error::Manifest { what: format!("index `{}`", abs.display()), source })
                    }
                }
            }
            MemberName::Header => {
                let text = std::fs::read(&abs).map_err(read_err)?;
                let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
                let version = first
                    .strip_prefix(format::HEADER_MAGIC.as_bytes())
                    .and_then(|v| v.strip_prefix(b" "))
                    .and_then(|v| std::str::from_utf8(v).ok());
                if !version.is_some_and(format::version_supported) {
                    return Err(Error::Version { path: abs, found: lossy(first), supported: format::FORMAT_VERSION });
                }
            }
            MemberName::Manifest
            | MemberName::Pad
            | MemberName::Volumes
            | MemberName::ManifestGz
            | MemberName::TreeTar
            | MemberName::Pack(_) => {}
            MemberName::Part(..) => {
                engine.problem(Error::Member {
                    member: lossy(&rel),
                    message: "part of a file split across volumes: extract the whole volume set".into(),
                });
            }
            MemberName::Container(_) | MemberName::Other(_) => {
                engine.problem(Error::Member { member: lossy(&rel), message: "not a launched member; skipped".into() });
            }
        }
        engine.collect(false)?;
    }
    engine.finish().map(|(r, _)| r)
}
