//! `pybackup expand`: the tree rebuilt from launched members.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::*;
use crate::ui::Ui;

/// `pybackup expand`.
pub fn run(a: &ExpandArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ui = Ui::new(g.quiet, g.no_progress, "expand");
    let opts = xtar::ExtractOptions { overwrite: a.overwrite, jobs: jobs(g), ..Default::default() };
    let r =
        xtar::expand(&a.dir, &a.dest, &opts, &ui).with_context(|| format!("cannot expand `{}`", a.dir.display()))?;
    ui.finish();
    report_restore(&ui, g.verbose, &r);
    Ok(code(r.is_clean()))
}
