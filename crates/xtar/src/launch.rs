//! `launch`: unpack every container of an archive into its members, the
//! `.zip` files and the indexes, in a tree (what the stock-tool recipe in
//! the spec produces after its `tar` step).

use std::io::{Read, Write};
use std::path::Path;

use crate::dest::{is_fatal, Dest};
use crate::error::lossy;
use crate::format::{self, CONTAINER_SUFFIX};
use crate::read::{Item, Scanner};
use crate::{Error, Observer, Result};

/// What `launch` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchReport {
    /// Members written (zips, indexes, header and manifest).
    pub members: u64,
    /// Members not written; each was reported through [`Observer::warning`].
    pub problems: u64,
}

/// Writes every member of `archive` below `dir`, under its full path.
pub fn launch(archive: &Path, dir: &Path, overwrite: bool, obs: &dyn Observer) -> Result<LaunchReport> {
    let mut scanner = Scanner::open(archive)?;
    if let Ok(m) = std::fs::metadata(archive) {
        obs.start(m.len());
    }
    let mut dest = Dest::new(dir, overwrite)?;
    let mut report = LaunchReport::default();
    while let Some(item) = scanner.next(obs)? {
        if scanner.version() >= 3 {
            return Err(Error::VersionNotHandled {
                path: archive.to_path_buf(),
                version: scanner.version(),
                what: "launch writes the members of the nested layout (versions 1 and 2); \
                       use `extract`, or `tar -xf` and `unzip` as in the format's recovery recipe",
            });
        }
        let result = match item {
            Item::File { path, size, .. } => {
                let name = format::file_member_name(&path);
                let r = write_member(&mut dest, &name, &mut scanner.data(), size);
                obs.advance(size);
                r
            }
            Item::Index { dir, text, .. } => {
                let name = format::index_name(&dir);
                write_member(&mut dest, &name, &mut &text[..], text.len() as u64)
            }
            Item::Header { text, .. } => {
                write_member(&mut dest, format::HEADER_NAME, &mut &text[..], text.len() as u64)
            }
            Item::Manifest { text } => {
                write_member(&mut dest, format::MANIFEST_NAME, &mut &text[..], text.len() as u64)
            }
            Item::Part { path, part, size, .. } => {
                let name = format::part_name(&path, part);
                let r = write_member(&mut dest, &name, &mut scanner.data(), size);
                obs.advance(size);
                r
            }
            Item::Volumes { text } => write_member(&mut dest, format::VOLUMES_NAME, &mut &text[..], text.len() as u64),
            Item::Container { path } => dest.ensure_dir(&path, &[&path[..], CONTAINER_SUFFIX].concat()),
            Item::Entries { .. } => continue,
            Item::Other { name } => {
                obs.warning(&Error::Member { member: lossy(&name), message: "unknown member; skipped".into() });
                report.problems += 1;
                continue;
            }
        };
        match result {
            Ok(()) => report.members += 1,
            Err(Error::Write { path, source }) if is_fatal(&source) => return Err(Error::Write { path, source }),
            Err(e) => {
                report.problems += 1;
                obs.warning(&e);
            }
        }
    }
    Ok(report)
}

fn write_member(dest: &mut Dest, name: &[u8], r: &mut dyn Read, size: u64) -> Result<()> {
    let parent = dest.prepare(name)?;
    let tmp = tempfile::Builder::new()
        .prefix(".xtar-tmp-")
        .tempfile_in(&parent)
        .map_err(|source| Error::Write { path: parent.clone(), source })?;
    let (f, tmp) = tmp.into_parts();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
    let copied = std::io::copy(&mut r.take(size), &mut w).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Member { member: lossy(name), message: format!("cannot read member: {e}") }
        } else {
            Error::Write { path: tmp.to_path_buf(), source: e }
        }
    })?;
    w.flush().map_err(|source| Error::Write { path: tmp.to_path_buf(), source })?;
    if copied != size {
        return Err(Error::Member { member: lossy(name), message: "archive ends inside this member".into() });
    }
    dest.persist(tmp, name)
}
