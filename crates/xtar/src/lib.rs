//! The `.xtar` container: compress each file first, then tar the members.
//!
//! An `.xtar` is a tar archive. In format version 3 (what
//! [`compress_to_path`] writes by default) the manifest comes first, then
//! the regular files as entries of zip packs, smallest first, then a tar of
//! everything without data; in version 2 (what [`ArchiveWriter`] writes:
//! volume sets, backup sets) each regular file or symlink is a member
//! `PATH.zip` and each directory a nested container `PATH.xtar` with its
//! index. Every name is a full path from the archive root, so damage costs
//! only the files it touches, and stock `tar` plus `unzip` can still recover
//! everything. `docs/format/xtar.md` is the normative specification.
//!
//! ```
//! use xtar::{compress_to_path, extract, CompressOptions, ExtractOptions, Silent};
//!
//! let src = tempfile::tempdir().unwrap();
//! std::fs::create_dir(src.path().join("empty")).unwrap();
//! std::fs::write(src.path().join("hello.txt"), b"hello, world\n").unwrap();
//!
//! let out = tempfile::tempdir().unwrap();
//! let archive = out.path().join("backup.xtar");
//! compress_to_path(src.path(), &archive, &CompressOptions::default(), false, &Silent).unwrap();
//!
//! let dest = out.path().join("restored");
//! let report = extract(&archive, &dest, &ExtractOptions::default(), &Silent).unwrap();
//! assert!(report.is_clean());
//! assert_eq!(std::fs::read(dest.join("hello.txt")).unwrap(), b"hello, world\n");
//! assert!(dest.join("empty").is_dir());
//! ```

pub mod codec;
mod compress;
mod dest;
mod error;
mod extract;
mod files_at;
pub mod format;
mod launch;
mod list;
pub mod pieces;
mod progress;
pub mod read;
mod salvage;
pub mod scan;
mod structure;
mod unseal;

mod writer;

use std::fs::File;
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use compress::Compressed;
pub use error::{Error, Result};
pub use extract::Restorer;
pub use extract::{expand, extract, verify, ExtractOptions, ExtractReport, Fate, Verified};
pub use files_at::{check_without_key, check_without_key_in, FilesAt, KeylessCheck};
pub use launch::{launch, LaunchReport};
pub use list::{archive_manifest, archive_manifest_keyed, list, list_keyed, Listed};
pub use progress::{Observer, Silent};
pub use salvage::{salvage, FileState, SalvageOptions, SalvageReport, SalvagedFile};
pub use structure::expand_structure;
pub use unseal::Keys;
pub use writer::{
    plan, request_path, root_label, stream_zip, walk_source, write_archive, write_entries, ArchiveWriter, Codec,
    CompressOptions, CompressSummary, Extra, ListSkip, PackedWriter, Select, Step, Stored, Streamed, TreeSink, Written,
    PACK_BYTES, PACK_FILES,
};

/// Compresses `src` into a new archive at `out`.
///
/// The archive is written under a temporary name in the same directory and
/// renamed to `out` only when complete and synced, so `out` never holds a
/// partial archive. An existing `out` is replaced only if `overwrite`.
/// Neither `out` nor the temporary file is ever archived into itself.
pub fn compress_to_path(
    src: &Path,
    out: &Path,
    opts: &CompressOptions,
    overwrite: bool,
    obs: &dyn Observer,
) -> Result<CompressSummary> {
    write_new_file(out, overwrite, |file, out| {
        let mut opts = opts.clone();
        for f in [file.metadata(), std::fs::metadata(out)].into_iter().flatten() {
            opts.skip_inodes.push((f.dev(), f.ino()));
        }
        write_archive(src, file, out, &opts, obs)
    })
}

/// Creates the file `out` through `write`, atomically: see
/// [`fsutil::write_new`]. An existing `out` is replaced only if
/// `overwrite`.
pub fn write_new_file<T>(out: &Path, overwrite: bool, write: impl FnOnce(&File, &Path) -> Result<T>) -> Result<T> {
    fsutil::write_new(out, overwrite, write)
}

/// Compresses `src` and copies the archive to `w` (for example standard
/// output). The archive is staged in a temporary file in `work_dir`, because
/// container sizes are patched after their members are written.
pub fn compress_to_writer(
    src: &Path,
    w: &mut dyn Write,
    work_dir: &Path,
    opts: &CompressOptions,
    obs: &dyn Observer,
) -> Result<CompressSummary> {
    let staged = tempfile::Builder::new()
        .prefix(".xtar-stage-")
        .tempfile_in(work_dir)
        .map_err(|source| Error::Write { path: work_dir.to_path_buf(), source })?;
    let mut opts = opts.clone();
    let m = staged.as_file().metadata().map_err(|source| Error::Write { path: staged.path().to_path_buf(), source })?;
    opts.skip_inodes.push((m.dev(), m.ino()));
    let summary = write_archive(src, staged.as_file(), staged.path(), &opts, obs)?;
    let mut f: &File = staged.as_file();
    f.rewind().map_err(|source| Error::Read { path: staged.path().to_path_buf(), source })?;
    std::io::copy(&mut f, w).map_err(|source| Error::Write { path: "<output>".into(), source })?;
    w.flush().map_err(|source| Error::Write { path: "<output>".into(), source })?;
    Ok(summary)
}
