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
