//! `pybackup extract`: an archive, or a whole volume set, restored.

use std::path::Path;
use std::process::ExitCode;

use ::volumes::VolumeSet;
use anyhow::Context;

use crate::cmd::*;
use crate::ui::Ui;

/// `pybackup extract`.
pub fn run(a: &ExtractArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ui = Ui::new(g.quiet, g.no_progress, "extract");
    let paths = a.paths.iter().map(|p| xtar::request_path(p)).collect::<Result<Vec<_>, _>>()?;
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let opts = xtar::ExtractOptions { overwrite: a.overwrite, jobs: jobs(g), paths, keys };
    if let Some(set) = set_of(&a.archive, a.single_volume)? {
        return run_set(&set, &a.archive, &a.dest, &opts, g.verbose, &ui);
    }
    let r = xtar::extract(&a.archive, &a.dest, &opts, &ui)
        .with_context(|| format!("cannot extract `{}`", a.archive.display()))?;
    ui.finish();
    report_restore(&ui, g.verbose, &r);
    Ok(code(r.is_clean()))
}

pub fn run_set(
    set: &VolumeSet,
    archive: &Path,
    dest: &Path,
    opts: &xtar::ExtractOptions,
    verbose: bool,
    ui: &Ui,
) -> anyhow::Result<ExitCode> {
    let r = ::volumes::extract_set(set, Some(dest), opts, ui)
        .with_context(|| format!("cannot extract the volume set of `{}`", archive.display()))?;
    ui.finish();
    say_lost(ui, set, &r);
    report_restore(ui, verbose, &r.report);
    Ok(code(r.report.is_clean()))
}
