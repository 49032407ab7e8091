//! `pybackup restore`: a snapshot, or part of it, restored.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::*;
use crate::ui::Ui;

pub fn run(a: &RestoreArgs, jobs: usize, verbose: bool, ui: &Ui) -> anyhow::Result<ExitCode> {
    let (repo, snap) = split_spec(&a.source);
    let paths = a.paths.iter().map(|p| request_path(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let opts = xtar::ExtractOptions { overwrite: a.overwrite, jobs, paths, keys };
    let rules = cli::rule_set(&a.exclude, &a.exclude_glob, &a.include_glob)?;
    let r = repo::restore_with(&repo, snap.as_deref(), &filter(&a.filter), &rules, &a.dest, &opts, ui)
        .with_context(|| format!("cannot restore `{}`", a.source))?;
    ui.finish();
    report_restore(ui, verbose, &r);
    Ok(code(r.is_clean()))
}
