//! Recreating the directory structure recorded in a manifest (the original
//! tool's `expandDirStruct`): every directory, empty ones included, with
//! its mode and mtime.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;
use manifest::{Kind, Manifest};

use crate::dest::Dest;
use crate::{Error, ExtractReport, Observer, Result};

/// Creates every directory of `m` below `dest` and sets its mode and mtime
/// (deepest first). Entries that are not directories are ignored.
pub fn expand_structure(m: &Manifest, dest: &Path, obs: &dyn Observer) -> Result<ExtractReport> {
    let mut d = Dest::new(dest, false)?;
    let mut report = ExtractReport::default();
    let mut dirs: Vec<&manifest::Entry> = m.entries.iter().filter(|e| e.kind == Kind::Dir).collect();
    for e in &dirs {
        if !e.path.is_empty() {
            if let Err(err) = d.ensure_dir(&e.path, &e.path) {
                report.problems += 1;
                obs.warning(&err);
            }
        }
    }
    dirs.sort_by(|a, b| manifest::cmp_paths(&b.path, &a.path));
    for e in dirs {
        if e.path.is_empty() && !d.created {
            continue;
        }
        let abs = d.abs(&e.path);
        if !abs.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let r = std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(e.mode))
            .and_then(|()| filetime::set_file_mtime(&abs, FileTime::from_unix_time(e.mtime.sec, e.mtime.nsec)));
        match r {
            Ok(()) => report.dirs += 1,
            Err(source) => {
                report.problems += 1;
                obs.warning(&Error::Write { path: abs, source });
            }
        }
    }
    Ok(report)
}
