//! `pybackup manifest`: the manifest of a tree.

use std::io::Write;
use std::process::ExitCode;

use crate::cmd::*;
use crate::ui::Ui;

pub fn run(a: &ManifestArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let (m, problems) = tree_manifest(&a.dir, a.walk.options()?, !a.no_hash, jobs, ui)?;
    let text = m.to_text();
    match &a.output {
        Some(p) => write_file(p, &text, a.overwrite)?,
        None => std::io::stdout().lock().write_all(&text)?,
    }
    Ok(code(problems == 0))
}
