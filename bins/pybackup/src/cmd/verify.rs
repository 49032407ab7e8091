//! `pybackup verify`: every member checked, an archive against a tree, or a whole set.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use ::volumes::VolumeSet;
use anyhow::Context;

use crate::cmd::*;
use crate::ui::{human, Ui};

pub fn run(a: &VerifyArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let (archive, _fetched) = fetched(&a.archive, ui)?;
    let a = &VerifyArgs { archive, ..a.clone() };
    if let Some(set) = set_of(&a.archive, a.single_volume || a.against.is_some())? {
        return run_set(&set, &a.archive, jobs, ui);
    }
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let opts = xtar::ExtractOptions { jobs, keys: keys.clone(), ..Default::default() };
    let r = xtar::verify(&a.archive, &opts, ui).with_context(|| format!("cannot verify `{}`", a.archive.display()))?;
    ui.finish();
    let mut clean = r.is_clean();
    if !ui.quiet() {
        ui.say(&format!(
            "pybackup: {} files ({}) verified, {} links, {} dirs; {} damaged or missing",
            r.files,
            human(r.bytes),
            r.links,
            r.dirs,
            r.problems
        ));
    }
    if let Some(dir) = &a.against {
        let archived = xtar::archive_manifest_keyed(&a.archive, &keys, ui)?;
        let (live, problems) = tree_manifest(dir, walk::Options::default(), true, jobs, ui)?;
        let changes = ::manifest::diff(&archived, &live, |_| true);
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for c in &changes {
            crate::cmd::diff::write_change(&mut out, c)?;
        }
        out.flush()?;
        if !ui.quiet() {
            ui.say(&crate::cmd::diff::summary(&changes).replace("no differences", "the tree matches the archive"));
        }
        clean &= changes.is_empty() && problems == 0;
    }
    Ok(code(clean))
}

pub fn run_set(set: &VolumeSet, archive: &Path, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let opts = xtar::ExtractOptions { jobs, ..Default::default() };
    let r = ::volumes::extract_set(set, None, &opts, ui)
        .with_context(|| format!("cannot verify the volume set of `{}`", archive.display()))?;
    ui.finish();
    say_lost(ui, set, &r);
    if !ui.quiet() {
        let present = set.table.count as usize - r.missing_volumes.len();
        ui.say(&format!(
            "pybackup: {} volumes of {} present; {} files ({}) verified, {} links, {} dirs; {} damaged or missing",
            present,
            set.table.count,
            r.report.files,
            human(r.report.bytes),
            r.report.links,
            r.report.dirs,
            r.report.problems
        ));
    }
    Ok(code(r.report.is_clean()))
}
