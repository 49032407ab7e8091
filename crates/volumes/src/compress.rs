//! Compressing a tree to wherever it goes: one archive, a stream, or a
//! volume set, with recovery data when asked.

use std::io::Write;
use std::path::{Path, PathBuf};

use xtar::{CompressOptions, CompressSummary, Observer};

use crate::write::{compress_volumes, VolumeOptions};
use crate::{Error, Result};

/// Where a compressed tree goes.
pub enum Output<'w> {
    /// One archive at this path.
    File(PathBuf),
    /// A stream (standard output); the archive is staged in `work_dir`
    /// first, because container sizes are patched after their members.
    Stream {
        /// Where the archive goes.
        to: &'w mut dyn Write,
        /// Where it is staged.
        work_dir: PathBuf,
    },
    /// A volume set `BASE.001.xtar`, … of volumes of at most `size` bytes.
    Volumes {
        /// The set's base name.
        base: PathBuf,
        /// The largest volume, in bytes.
        size: u64,
    },
}

/// What to compress a tree into, and how.
pub struct Job<'w> {
    /// Where it goes.
    pub output: Output<'w>,
    /// How to compress.
    pub opts: CompressOptions,
    /// Replace existing outputs (archive, volumes, parity volumes).
    pub overwrite: bool,
    /// Add recovery data beside the output (parity volumes cut to the
    /// volume size, for a set).
    pub redundancy: Option<parity::Redundancy>,
}

/// What [`compress`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Counts (`bytes_out`: of the archive or the whole set).
    pub summary: CompressSummary,
    /// The archive or the volumes, with their sizes (none for a stream).
    pub files: Vec<(PathBuf, u64)>,
    /// Files cut into parts across volumes.
    pub split_files: u64,
    /// The recovery data, when asked for.
    pub protected: Option<parity::ProtectReport>,
}

/// Compresses the tree at `src` as `job` says.
pub fn compress(src: &Path, job: Job<'_>, obs: &dyn Observer) -> Result<Outcome> {
    let mut out = Outcome::default();
    let parity_volume_size = match job.output {
        Output::Stream { to, work_dir } => {
            if job.redundancy.is_some() {
                return Err(Error::Set {
                    path: PathBuf::from("-"),
                    message: "recovery data needs an output file, not a stream".into(),
                });
            }
            out.summary = xtar::compress_to_writer(src, to, &work_dir, &job.opts, obs)?;
            return Ok(out);
        }
        Output::File(path) => {
            out.summary = xtar::compress_to_path(src, &path, &job.opts, job.overwrite, obs)?;
            out.files.push((path, out.summary.bytes_out));
            None
        }
        Output::Volumes { base, size } if !job.opts.recipients.is_empty() => {
            let (summary, files) = cut_sealed(src, &base, size, &job.opts, job.overwrite, obs)?;
            out.summary = summary;
            out.files = files;
            Some(size)
        }
        Output::Volumes { base, size } => {
            let v = compress_volumes(src, &base, &job.opts, &VolumeOptions { size, overwrite: job.overwrite }, obs)?;
            out.summary = v.summary;
            out.files = v.volumes;
            out.split_files = v.split_files;
            Some(size)
        }
    };
    if let (Some(redundancy), Some((first, _))) = (job.redundancy, out.files.first()) {
        let files: Vec<PathBuf> = out.files.iter().map(|(p, _)| p.clone()).collect();
        let popts = parity::ProtectOptions {
            redundancy,
            volume_size: parity_volume_size,
            overwrite: job.overwrite,
            ..parity::ProtectOptions::default()
        };
        out.protected = Some(parity::protect(&files, &parity::base_of(first), &popts)?);
    }
    Ok(out)
}

/// An encrypted volume set (volumes.md §6): the version 4 archive of `src`,
/// staged beside the set, cut into pieces `BASE.xtar.001`, … of `size`
/// bytes (the last one shorter), each written whole under a temporary
/// name and renamed. Existing pieces are refused unless `overwrite`, and
/// then pieces beyond the new last one are removed, so that no old piece
/// reads as part of the new archive.
fn cut_sealed(
    src: &Path,
    base: &Path,
    size: u64,
    opts: &CompressOptions,
    overwrite: bool,
    obs: &dyn Observer,
) -> Result<(CompressSummary, Vec<(PathBuf, u64)>)> {
    use std::io::{Read, Seek};
    use std::os::unix::fs::MetadataExt;
    let mut whole = base.as_os_str().to_os_string();
    whole.push(".xtar");
    let whole = PathBuf::from(whole);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| xtar::Error::Write { path: path.clone(), source }
    };
    let old = xtar::pieces::Pieces::find(&xtar::pieces::piece_path(&whole, 1)).map_err(io_err(&whole))?;
    if let (Some(old), false) = (&old, overwrite) {
        if let Some((_, p, _)) = old.found.first() {
            return Err(Error::Xtar(xtar::Error::Write {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a piece of an encrypted volume set is already there (--overwrite replaces the set)",
                ),
            }));
        }
    }
    let dir = match whole.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut staged = tempfile::Builder::new().prefix(".xtar-cut-").tempfile_in(&dir).map_err(io_err(&dir))?;
    let mut sopts = opts.clone();
    let m = staged.as_file().metadata().map_err(io_err(staged.path()))?;
    sopts.skip_inodes.push((m.dev(), m.ino()));
    let summary = xtar::write_archive(src, staged.as_file(), staged.path(), &sopts, obs)?;
    let total = staged.as_file().metadata().map_err(io_err(staged.path()))?.len();
    staged.as_file_mut().rewind().map_err(io_err(staged.path()))?;
    let mut files = Vec::new();
    let mut k = 1u32;
    let mut left = total;
    while left > 0 || k == 1 {
        let n = left.min(size);
        let path = xtar::pieces::piece_path(&whole, k);
        let from = staged.as_file_mut();
        fsutil::write_new(&path, overwrite, |f, p| -> xtar::Result<()> {
            let mut w = f;
            let copied = std::io::copy(&mut Read::by_ref(from).take(n), &mut w).map_err(io_err(p))?;
            if copied != n {
                return Err(io_err(p)(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(())
        })?;
        files.push((path, n));
        left -= n;
        k += 1;
    }
    // An overwritten set that had more pieces: the old ones beyond the
    // new end would read as part of the new archive.
    if let Some(old) = old {
        for (j, p, _) in &old.found {
            if *j >= k {
                std::fs::remove_file(p).map_err(io_err(p))?;
            }
        }
    }
    Ok((summary, files))
}
