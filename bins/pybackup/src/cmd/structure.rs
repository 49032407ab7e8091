//! `pybackup struct`: save a tree's directories, or recreate them.

use std::process::ExitCode;

use ::manifest::{Kind, Manifest};
use anyhow::Context;

use crate::cmd::*;
use crate::ui::Ui;

pub fn run(c: &StructCommand, ui: &Ui) -> anyhow::Result<ExitCode> {
    match c {
        StructCommand::Store { dir, file, overwrite, walk } => {
            let (mut m, problems) = tree_manifest(dir, walk.options()?, false, 1, ui)?;
            m.entries.retain(|e| e.kind == Kind::Dir);
            write_file(file, &m.to_text(), *overwrite)?;
            if !ui.quiet() {
                ui.say(&format!("pybackup: {} directories saved to `{}`", m.entries.len(), file.display()));
            }
            Ok(code(problems == 0))
        }
        StructCommand::Expand { dest, file } => {
            let text = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
            let m = Manifest::parse(&text).with_context(|| format!("cannot parse `{}`", file.display()))?;
            let r = xtar::expand_structure(&m, dest, ui)?;
            if !ui.quiet() {
                ui.say(&format!("pybackup: {} directories recreated under `{}`", r.dirs, dest.display()));
            }
            Ok(code(r.is_clean()))
        }
    }
}
