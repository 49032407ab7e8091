//! Writing below a destination directory safely: every path is checked,
//! parents are created or verified to be real directories (never followed
//! symlinks), and files appear under their final name only when complete.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::lossy;
use crate::format::check_member_path;
use crate::{Error, Result};

/// A destination directory.
pub(crate) struct Dest {
    root: PathBuf,
    overwrite: bool,
    safe: HashSet<Vec<u8>>,
    /// Whether this run created the root.
    pub(crate) created: bool,
}

/// Moves finished files into a destination, from any thread.
#[derive(Debug, Clone)]
pub(crate) struct Placer {
    root: PathBuf,
    overwrite: bool,
}

impl Placer {
    /// Moves a complete temporary file to its final name `rel`, refusing
    /// to replace an existing file unless overwriting was asked for.
    pub(crate) fn persist(&self, tmp: TempPath, rel: &[u8]) -> Result<()> {
        let target = self.root.join(OsStr::from_bytes(rel));
        if self.overwrite {
            if target.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                return Err(Error::Exists { path: target });
            }
            tmp.persist(&target).map_err(|e| Error::Write { path: target.clone(), source: e.error })
        } else {
            tmp.persist_noclobber(&target).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    Error::Exists { path: target.clone() }
                } else {
                    Error::Write { path: target.clone(), source: e.error }
                }
            })
        }
    }
}

/// Whether an I/O error means that no further writes can succeed.
pub(crate) fn is_fatal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EROFS) | Some(libc::EFBIG))
}

impl Dest {
    pub(crate) fn new(root: &Path, overwrite: bool) -> Result<Dest> {
        let created = !root.exists();
        std::fs::create_dir_all(root).map_err(|source| Error::Write { path: root.to_path_buf(), source })?;
        if !created {
            fsutil::remove_stale(root, b".xtar-tmp-", b"");
        }
        let mut safe = HashSet::new();
        safe.insert(Vec::new());
        Ok(Dest { root: root.to_path_buf(), overwrite, safe, created })
    }

    /// The absolute path of a relative member path (not checked).
    pub(crate) fn abs(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    fn write_err(&self, rel: &[u8], source: io::Error) -> Error {
        Error::Write { path: self.abs(rel), source }
    }

    /// Checks `rel` and makes sure every directory above it exists and is
    /// a real directory. Returns the absolute path of its parent.
    pub(crate) fn prepare(&mut self, rel: &[u8]) -> Result<PathBuf> {
        check_member_path(rel).map_err(|reason| Error::Unsafe { member: lossy(rel), reason: reason.into() })?;
        let parent = manifest::parent_of(rel);
        self.ensure_dir(parent, rel)?;
        Ok(self.abs(parent))
    }

    /// Creates (or verifies) the directory `dir` and all above it.
    pub(crate) fn ensure_dir(&mut self, dir: &[u8], member: &[u8]) -> Result<()> {
        if self.safe.contains(dir) {
            return Ok(());
        }
        check_member_path(dir).map_err(|reason| Error::Unsafe { member: lossy(member), reason: reason.into() })?;
        let mut end = 0;
        while end < dir.len() {
            end = dir[end..].iter().position(|&b| b == b'/').map_or(dir.len(), |i| end + i);
            let prefix = &dir[..end];
            end += 1;
            if self.safe.contains(prefix) {
                continue;
            }
            let abs = self.abs(prefix);
            match std::fs::symlink_metadata(&abs) {
                Ok(m) if m.is_dir() => {
                    fsutil::remove_stale(&abs, b".xtar-tmp-", b"");
                }
                Ok(m) => {
                    let what = if m.file_type().is_symlink() { "a symbolic link" } else { "not a directory" };
                    return Err(Error::Unsafe {
                        member: lossy(member),
                        reason: format!(
                            "`{}` in the destination is {what}; refusing to write through it",
                            abs.display()
                        ),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(e)
                        if e.kind() == io::ErrorKind::AlreadyExists
                            && abs.symlink_metadata().is_ok_and(|m| m.is_dir()) => {}
                    Err(e) => return Err(self.write_err(prefix, e)),
                },
                Err(e) => return Err(self.write_err(prefix, e)),
            }
            self.safe.insert(prefix.to_vec());
        }
        Ok(())
    }

    /// What a worker thread needs to move files into place.
    pub(crate) fn placer(&self) -> Placer {
        Placer { root: self.root.clone(), overwrite: self.overwrite }
    }

    /// Moves a complete temporary file to its final name, refusing to
    /// replace an existing file unless overwriting was asked for.
    pub(crate) fn persist(&self, tmp: TempPath, rel: &[u8]) -> Result<()> {
        self.placer().persist(tmp, rel)
    }

    /// Makes room for a link at `rel`: fails if something is there, unless
    /// overwriting, in which case a file or link there is removed.
    pub(crate) fn clear_for_link(&self, rel: &[u8]) -> Result<PathBuf> {
        let target = self.abs(rel);
        match target.symlink_metadata() {
            Err(_) => Ok(target),
            Ok(m) if self.overwrite && !m.is_dir() => {
                std::fs::remove_file(&target).map_err(|source| Error::Write { path: target.clone(), source })?;
                Ok(target)
            }
            Ok(_) => Err(Error::Exists { path: target }),
        }
    }
}
