//! `pybackup launch`: every container unpacked into its compressed members.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::*;
use crate::ui::Ui;

/// `pybackup launch`.
pub fn run(a: &LaunchArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ui = Ui::new(g.quiet, g.no_progress, "launch");
    let r = xtar::launch(&a.archive, &a.dir, a.overwrite, &ui)
        .with_context(|| format!("cannot launch `{}`", a.archive.display()))?;
    ui.finish();
    if g.verbose {
        ui.say(&format!("pybackup: {} members written to `{}`", r.members, a.dir.display()));
    }
    Ok(code(r.problems == 0))
}
