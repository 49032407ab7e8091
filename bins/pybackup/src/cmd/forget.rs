//! `pybackup forget`: retention.

use std::io::Write;
use std::process::ExitCode;

use crate::cmd::*;
use crate::ui::{human, Ui};

pub fn run(a: &ForgetArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let policy = repo::Policy {
        keep_last: a.keep_last,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
    };
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let plan = repo::forget(&a.repo, &policy, &filter(&a.filter), a.dry_run, &keys, ui)?;
    let verb = if a.dry_run { "would" } else { "did" };
    // Quiet: nothing but errors (and the plan of a dry run, which is the
    // point of one).
    let mut out: Box<dyn Write> =
        if ui.quiet() && !a.dry_run { Box::new(std::io::sink()) } else { Box::new(std::io::stdout().lock()) };
    for n in &plan.keep {
        writeln!(out, "keep     {n}")?;
    }
    for n in &plan.forget {
        writeln!(out, "forget   {n}")?;
    }
    for (n, members, bytes) in &plan.consolidate {
        writeln!(out, "rewrite  {n}.xtar  (keeps {members} files, {}, that kept snapshots need)", human(*bytes))?;
    }
    for n in &plan.rebase {
        writeln!(out, "rebase   {n}  (its record was listed relative to a forgotten snapshot)")?;
    }
    for n in &plan.delete {
        writeln!(out, "delete   {n}.xtar")?;
    }
    for n in &plan.unreadable {
        writeln!(out, "skip     {n}.xtar  (its record cannot be read; left alone)")?;
    }
    if !ui.quiet() {
        ui.say(&format!(
            "pybackup: {verb} keep {} snapshots, forget {}, rewrite {} and delete {} archives",
            plan.keep.len(),
            plan.forget.len(),
            plan.consolidate.len(),
            plan.delete.len()
        ));
    }
    Ok(code(plan.unreadable.is_empty()))
}
