//! One module per command: each turns its flags into library calls and
//! the results into output and an exit code. What several share is here.

use std::path::{Path, PathBuf};

use ::manifest::Manifest;
use ::volumes::{SetReport, VolumeSet};
use anyhow::Context;

use crate::flags::*;
use crate::output::*;
use crate::ui::{chain, human, Ui};

pub mod backup;
pub mod check;
pub mod compress;
pub mod config;
pub mod copy;
pub mod diff;
pub mod expand;
pub mod extract;
pub mod forget;
pub mod key;
pub mod launch;
pub mod list;
pub mod manifest;
pub mod migrate;
pub mod protect;
pub mod repair;
pub mod restore;
pub mod run;
pub mod salvage;
pub mod schedule;
pub mod snapshots;
pub mod status;
pub mod structure;
pub mod verify;

/// An archive named by a store URL (`s3://BUCKET/PREFIX/Archives/NAME.xtar`)
/// brought to a temporary file (verify and salvage read every byte of it
/// anyway); a local path as it is. The temporary file goes with the guard.
pub fn fetched(archive: &Path, ui: &Ui) -> anyhow::Result<(PathBuf, Option<tempfile::TempPath>)> {
    if !repo::is_remote(archive) {
        return Ok((archive.to_path_buf(), None));
    }
    let url = archive.to_str().context("a store URL is text")?;
    let (dir, name) = url.rsplit_once('/').context("expected s3://BUCKET/PREFIX/OBJECT")?;
    let store = store::open(dir)?;
    let size = store.size(name)?.with_context(|| format!("{}: no object `{name}`", store.describe()))?;
    let mut tmp = tempfile::Builder::new().prefix(".pybackup-fetch-").suffix(".xtar").tempfile()?;
    let mut from = store::ObjectReader::new(store.as_ref(), name, size);
    std::io::copy(&mut from, tmp.as_file_mut()).with_context(|| format!("cannot download `{url}`"))?;
    ui.say(&format!("pybackup: {url}: {} downloaded to read it", human(size)));
    let path = tmp.into_temp_path();
    Ok((path.to_path_buf(), Some(path)))
}

/// A path asked for inside an archive or snapshot, as it spells it.
pub fn request_path(p: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(xtar::request_path(p)?)
}

/// The snapshots a command looks at.
pub fn filter(f: &FilterArgs) -> repo::Filter {
    use std::os::unix::ffi::OsStrExt;
    repo::Filter {
        host: f.host.as_ref().map(|h| h.as_bytes().to_vec()),
        // Recorded roots are canonical: so is the one asked for, when it
        // still exists.
        root: f.path.as_ref().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()).as_os_str().as_bytes().to_vec()),
    }
}

/// Worker threads: `-j`, or one per CPU.
pub fn jobs(g: &Global) -> usize {
    g.jobs.filter(|&n| n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub use cli::code;

pub fn report_restore(ui: &Ui, verbose: bool, r: &xtar::ExtractReport) {
    if verbose || r.problems > 0 {
        ui.say(&format!(
            "pybackup: {} files ({}), {} dirs, {} links restored; {} problems",
            r.files,
            human(r.bytes),
            r.dirs,
            r.links,
            r.problems
        ));
    }
}

/// Takes the manifest of a directory, reporting unreadable entries.
pub fn tree_manifest(
    dir: &Path,
    walk: walk::Options,
    hash: bool,
    jobs: usize,
    ui: &Ui,
) -> anyhow::Result<(Manifest, u64)> {
    let mut problems = 0;
    let opts = ::manifest::BuildOptions { walk, hash, jobs };
    let m = ::manifest::build(dir, &opts, |e| {
        problems += 1;
        ui.say_warning(&chain(&e));
    })
    .with_context(|| format!("cannot read `{}`", dir.display()))?;
    Ok((m, problems))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_file(path: &Path, bytes: &[u8], overwrite: bool) -> anyhow::Result<()> {
    Ok(fsutil::write_bytes(path, bytes, overwrite)?)
}

/// Splits `REPO@SNAPSHOT`; a path that exists as given is a repository
/// with no snapshot named. In a URL, an `@` of its authority
/// (`sftp://USER@HOST/…`) is not a snapshot's.
pub fn split_spec(s: &str) -> (PathBuf, Option<String>) {
    if Path::new(s).exists() {
        return (PathBuf::from(s), None);
    }
    let path_from = match s.find("://") {
        Some(i) => s[i + 3..].find('/').map_or(s.len(), |j| i + 3 + j),
        None => 0,
    };
    match s[path_from..].rfind('@').map(|i| path_from + i) {
        Some(i) if i > 0 => (PathBuf::from(&s[..i]), Some(s[i + 1..].to_string())),
        _ => (PathBuf::from(s), None),
    }
}

/// The volume set `archive` belongs to, unless it is to be read alone
/// (`--single-volume`, standard input, not named like a volume, or no
/// set table found: a plain archive).
pub fn set_of(archive: &Path, single: bool) -> anyhow::Result<Option<VolumeSet>> {
    if single || archive == Path::new("-") {
        return Ok(None);
    }
    let found = ::volumes::find_set(&[archive.to_path_buf()])
        .with_context(|| format!("cannot read the volume set of `{}`", archive.display()))?;
    Ok(found.ok())
}

/// Says which volumes are missing and which files they take with them.
pub fn say_lost(ui: &Ui, set: &VolumeSet, r: &SetReport) {
    for k in &r.missing_volumes {
        ui.say_warning(&format!(
            "volume {k} of {} (`{}`) is missing",
            set.table.count,
            set.names[*k as usize - 1].display()
        ));
    }
    if !r.lost.is_empty() {
        ui.say_warning(&format!("{} files are lost with the missing volumes (named above)", r.lost.len()));
    }
}

pub fn say_protected(r: &parity::ProtectReport, asked: parity::Redundancy, ui: &Ui, took: f64) {
    ui.say(&format!(
        "pybackup: {} recovery data for {} ({}): {} in {} parity volume(s), {} blocks of {} bytes in {} group(s), {:.2} % overhead, in {:.1} s",
        asked,
        if r.layout.files.len() == 1 { "1 file".to_string() } else { format!("{} files", r.layout.files.len()) },
        human(r.data_bytes),
        human(r.parity_bytes),
        r.parity_files.len(),
        r.layout.recovery_blocks(),
        r.layout.block,
        r.layout.groups,
        r.parity_bytes as f64 / r.data_bytes.max(1) as f64 * 100.0,
        took
    ));
    let p = r.promise;
    let scattered = p.scattered_percent.floor();
    ui.say(&match p.volumes {
        0 => format!(
            "pybackup: the recovery data rebuilds up to {scattered:.0} % of scattered sectors, but not one whole lost volume (ask for 1vol)"
        ),
        n => format!(
            "pybackup: any {n} of the {} volumes (data and parity alike) can be lost, or {scattered:.0} % of scattered sectors: `pybackup repair` rebuilds them",
            p.of
        ),
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn specs() {
        let split = |s: &str| {
            let (r, n) = super::split_spec(s);
            (r.display().to_string(), n)
        };
        assert_eq!(split("/no/such/repo@2024-01-01"), ("/no/such/repo".into(), Some("2024-01-01".into())));
        assert_eq!(split("sftp://ann@nas:22/r"), ("sftp://ann@nas:22/r".into(), None));
        assert_eq!(split("sftp://ann@nas/r@latest"), ("sftp://ann@nas/r".into(), Some("latest".into())));
        assert_eq!(split("sftp://ann@nas"), ("sftp://ann@nas".into(), None));
        assert_eq!(split("s3://b/p@x"), ("s3://b/p".into(), Some("x".into())));
    }
}
