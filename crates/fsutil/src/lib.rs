//! File-system primitives that every writer in the workspace shares, so
//! that each has one home:
//!
//! - [`write_new`] and [`write_bytes`]: create or replace a file
//!   atomically. The content goes to a temporary file beside the target
//!   (`.NAME.XXXXXX.partial`), which is fsynced, renamed over the target
//!   (or linked without replacing, when overwriting was not asked for),
//!   and the directory is fsynced, so after a crash the target holds
//!   either its old content or the whole new content, never a part.
//! - [`remove_stale`]: remove the temporary files that a killed run left.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("Latest");
//! fsutil::write_bytes(&out, b"20261129T000000Z\n", false).unwrap();
//! assert!(matches!(fsutil::write_bytes(&out, b"x", false), Err(fsutil::Error::Exists { .. })));
//! fsutil::write_bytes(&out, b"20261130T000000Z\n", true).unwrap();
//! assert_eq!(std::fs::read(&out).unwrap(), b"20261130T000000Z\n");
//! ```

use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target exists and replacing it was not asked for.
    #[error("refusing to overwrite existing `{}`", path.display())]
    Exists {
        /// The target.
        path: PathBuf,
    },
    /// Writing, syncing or renaming failed.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The target.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Suffix of the temporary files of [`write_new`].
pub const PARTIAL_SUFFIX: &str = ".partial";

/// The directory a path is in (`.` for a bare name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates the file `out` through `write`, which gets a new, empty file
/// (readable and writable, mode 0666 less the umask) and the final path,
/// for messages. The file is written under a temporary name in the same
/// directory, fsynced, and moved to `out` only when `write` succeeded;
/// then the directory is fsynced, so the rename is durable too. Temporary
/// files that an earlier, killed run left for the same name are removed
/// first. An existing `out` is replaced only if `overwrite`; otherwise
/// [`Error::Exists`], even if `out` appeared while `write` ran.
pub fn write_new<T, E: From<Error>>(
    out: &Path,
    overwrite: bool,
    write: impl FnOnce(&File, &Path) -> Result<T, E>,
) -> Result<T, E> {
    if !overwrite && out.symlink_metadata().is_ok() {
        return Err(Error::Exists { path: out.to_path_buf() }.into());
    }
    remove_stale_temps(out);
    let tmp = temp_beside(out)?;
    let value = write(tmp.as_file(), out)?;
    // Fsyncs the file, renames it, fsyncs the directory.
    persist(tmp, out, overwrite)?;
    Ok(value)
}

/// Removes the temporary files that runs killed earlier left for `out`
/// (`.NAME.XXXXXX.partial` beside it): never renamed, they are incomplete
/// by construction. Returns how many were removed.
pub fn remove_stale_temps(out: &Path) -> usize {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_stale(dir_of(out), format!(".{name}.").as_bytes(), PARTIAL_SUFFIX.as_bytes())
}

/// A new temporary file beside `out`, named `.NAME.XXXXXX.partial`
/// (mode 0666 less the umask), for [`persist`]; it is removed if dropped.
pub fn temp_beside(out: &Path) -> Result<tempfile::NamedTempFile> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(PARTIAL_SUFFIX)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir_of(out))
        .map_err(|source| Error::Write { path: out.to_path_buf(), source })
}

/// Fsyncs the complete temporary file `tmp` and moves it to `out` (in
/// the same directory), replacing an existing `out` only if `overwrite`;
/// then fsyncs the directory.
pub fn persist(tmp: tempfile::NamedTempFile, out: &Path, overwrite: bool) -> Result<()> {
    tmp.as_file().sync_all().map_err(|source| Error::Write { path: out.to_path_buf(), source })?;
    rename_into_place(tmp.into_temp_path(), out, overwrite)
}

/// Like [`persist`], for a temporary file already closed (kept by its
/// path, which holds no file descriptor): it is opened again to be
/// fsynced first.
pub fn persist_path(tmp: tempfile::TempPath, out: &Path, overwrite: bool) -> Result<()> {
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(|source| Error::Write { path: out.to_path_buf(), source })?;
    rename_into_place(tmp, out, overwrite)
}

/// Renames a synced temporary file to `out` and fsyncs the directory.
fn rename_into_place(tmp: tempfile::TempPath, out: &Path, overwrite: bool) -> Result<()> {
    let write_err = |source| Error::Write { path: out.to_path_buf(), source };
    if overwrite {
        tmp.persist(out).map_err(|e| write_err(e.error))?;
    } else {
        tmp.persist_noclobber(out).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists { path: out.to_path_buf() }
            } else {
                write_err(e.error)
            }
        })?;
    }
    sync_dir(dir_of(out)).map_err(write_err)
}

/// Writes `bytes` to `out` atomically, as [`write_new`] does.
pub fn write_bytes(out: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    write_new(out, overwrite, |mut f, out| {
        f.write_all(bytes).map_err(|source| Error::Write { path: out.to_path_buf(), source })
    })
}

/// Fsyncs a directory, so that renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the files in `dir` named `PREFIX`, six random letters or
/// digits (as `tempfile` makes them), then `SUFFIX`. Nothing else can
/// match, so no user file is touched unless it has exactly such a name.
/// Errors are ignored: this only tidies up. Returns how many were removed.
pub fn remove_stale(dir: &Path, prefix: &[u8], suffix: &[u8]) -> usize {
    remove_matching(dir, |n| {
        n.len() == prefix.len() + 6 + suffix.len()
            && n.starts_with(prefix)
            && n.ends_with(suffix)
            && n[prefix.len()..prefix.len() + 6].iter().all(u8::is_ascii_alphanumeric)
    })
}

/// The final name a temporary file of [`write_new`] was for
/// (`.NAME.XXXXXX.partial` → `NAME`), if the name is one.
pub fn partial_target(file_name: &[u8]) -> Option<&[u8]> {
    let rest = file_name.strip_prefix(b".")?.strip_suffix(PARTIAL_SUFFIX.as_bytes())?;
    let (name, rand) = rest.split_at(rest.len().checked_sub(7)?);
    let rand = rand.strip_prefix(b".")?;
    (!name.is_empty() && rand.iter().all(u8::is_ascii_alphanumeric)).then_some(name)
}

/// Removes the regular files in `dir` whose names `stale` accepts.
/// Errors are ignored. Returns how many were removed.
pub fn remove_matching(dir: &Path, stale: impl Fn(&[u8]) -> bool) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        if stale(name.as_bytes()) && e.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Something read at offsets: a file, or an object of a remote store read
/// by ranges. Archives are read through it, so that the same code reads
/// them on a disk and in an object store.
pub trait Source: Send + Sync {
    /// Reads bytes at `offset` into `buf`; returns how many (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
    /// Its length in bytes.
    fn size(&self) -> std::io::Result<u64>;
    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
}

/// A size as people write it (`500M`, `4GiB`, `1000000`), for clap and
/// config files.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("`{s}` is not a size like 500M or 4GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        "t" | "tib" => 1 << 40,
        "tb" => 1_000_000_000_000,
        _ => return Err(format!("`{s}`: unknown unit (use K, M, G, T, or KB, MB, GB, TB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

/// Whether `name` is a part of a parted object: `part-` and six digits.
pub fn is_part_name(name: &[u8]) -> bool {
    name.len() == 11 && name.starts_with(b"part-") && name[5..].iter().all(u8::is_ascii_digit)
}

/// An object stored as a directory of parts `part-000000`, `part-000001`,
/// … (a WebDAV store writes objects over its part size so), read as their
/// concatenation.
pub struct Parts {
    parts: Vec<(File, u64)>,
    /// Where each part starts in the whole.
    starts: Vec<u64>,
    size: u64,
}

impl Parts {
    /// The parts in directory `dir`: `None` when it holds none; an error
    /// when their numbers skip one.
    pub fn open(dir: &std::path::Path) -> std::io::Result<Option<Parts>> {
        let mut names: Vec<(Vec<u8>, std::ffi::OsString)> = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            if is_part_name(name.as_encoded_bytes()) && e.file_type()?.is_file() {
                names.push((name.as_encoded_bytes().to_vec(), name));
            }
        }
        if names.is_empty() {
            return Ok(None);
        }
        names.sort();
        let (mut parts, mut starts, mut size) = (Vec::new(), Vec::new(), 0u64);
        for (i, (name, os_name)) in names.iter().enumerate() {
            if name[5..] != *format!("{i:06}").as_bytes() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: its parts skip from part-{i:06} to {}", dir.display(), String::from_utf8_lossy(name)),
                ));
            }
            let f = File::open(dir.join(os_name))?;
            let len = f.metadata()?.len();
            starts.push(size);
            size += len;
            parts.push((f, len));
        }
        Ok(Some(Parts { parts, starts, size }))
    }
}

impl Source for Parts {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let i = self.starts.partition_point(|&s| s <= offset) - 1;
        let (f, len) = &self.parts[i];
        let within = offset - self.starts[i];
        let n = buf.len().min((len - within) as usize);
        std::os::unix::fs::FileExt::read_at(f, &mut buf[..n], within)
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.size)
    }
}

/// A reader of the bytes `[pos, end)` of a [`Source`], with positioned
/// reads (several readers share one open file).
pub struct ReadAt<'a> {
    /// The file.
    pub f: &'a dyn Source,
    /// Where the next read starts.
    pub pos: u64,
    /// Where reading stops.
    pub end: u64,
}

impl std::io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.f.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parts_read_as_one_object() {
        let t = tempfile::tempdir().unwrap();
        let whole: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for (i, chunk) in whole.chunks(4096).enumerate() {
            std::fs::write(t.path().join(format!("part-{i:06}")), chunk).unwrap();
        }
        std::fs::write(t.path().join("not-a-part"), b"x").unwrap();
        let p = crate::Parts::open(t.path()).unwrap().unwrap();
        assert_eq!(crate::Source::size(&p).unwrap(), 10_000);
        for (off, len) in [(0usize, 10_000usize), (4090, 20), (8191, 2), (9_999, 1)] {
            let mut buf = vec![0u8; len];
            crate::Source::read_exact_at(&p, &mut buf, off as u64).unwrap();
            assert_eq!(buf, whole[off..off + len]);
        }
        std::fs::remove_file(t.path().join("part-000001")).unwrap();
        assert!(crate::Parts::open(t.path()).is_err(), "a missing part is an error");
        let empty = tempfile::tempdir().unwrap();
        assert!(crate::Parts::open(empty.path()).unwrap().is_none());
    }

    #[derive(Debug)]
    enum Outer {
        Fs,
        Failed,
    }
    impl From<Error> for Outer {
        fn from(_: Error) -> Outer {
            Outer::Fs
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("a.xtar");
        std::fs::write(&out, b"old").unwrap();
        let r: Result<(), Outer> = write_new(&out, true, |mut f, _| {
            f.write_all(b"half of the new").unwrap();
            Err(Outer::Failed)
        });
        assert!(matches!(r, Err(Outer::Failed)));
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        assert_eq!(names(t.path()), vec!["a.xtar"]);
    }

    #[test]
    fn replaces_only_when_asked_and_the_new_file_is_whole() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("Latest");
        write_bytes(&out, b"one", false).unwrap();
        let e = write_bytes(&out, b"two", false).unwrap_err();
        assert!(matches!(e, Error::Exists { .. }), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"one");
        write_bytes(&out, b"two", true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        assert_eq!(names(t.path()), vec!["Latest"]);
    }

    #[test]
    fn a_file_that_appears_meanwhile_is_not_replaced() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("x");
        let r: Result<(), Error> = write_new(&out, false, |mut f, out| {
            std::fs::write(out, b"someone else's").unwrap();
            f.write_all(b"ours").map_err(|source| Error::Write { path: out.into(), source })
        });
        assert!(matches!(r, Err(Error::Exists { .. })));
        assert_eq!(std::fs::read(&out).unwrap(), b"someone else's");
        assert_eq!(names(t.path()), vec!["x"]);
    }

    #[test]
    fn stale_temporaries_of_the_same_name_go_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        for n in [".a.xtar.Ab12Cd.partial", ".a.xtar.toolong7.partial", ".b.xtar.Ab12Cd.partial", "a.xtar.partial"] {
            std::fs::write(t.path().join(n), b"x").unwrap();
        }
        write_bytes(&t.path().join("a.xtar"), b"new", false).unwrap();
        assert_eq!(
            names(t.path()),
            vec![".a.xtar.toolong7.partial", ".b.xtar.Ab12Cd.partial", "a.xtar", "a.xtar.partial"]
        );
    }

    #[test]
    fn partial_targets() {
        assert_eq!(partial_target(b".a.xtar.Ab12Cd.partial"), Some(&b"a.xtar"[..]));
        assert_eq!(partial_target(b".a.xtar.Ab1.partial"), None);
        assert_eq!(partial_target(b"a.xtar.Ab12Cd.partial"), None);
        assert_eq!(partial_target(b"..Ab12Cd.partial"), None);
        assert_eq!(partial_target(b".x.Ab-2Cd.partial"), None);
    }
}
