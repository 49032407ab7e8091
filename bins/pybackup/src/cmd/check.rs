//! `pybackup check`: every snapshot can be restored.

use std::process::ExitCode;

use crate::cmd::*;
use crate::ui::Ui;

pub fn run(a: &CheckArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let r = repo::check(&a.repo, a.read_data, &keys, ui)?;
    for p in &r.problems {
        eprintln!("pybackup: {p}");
    }
    if !ui.quiet() {
        ui.say(&format!(
            "pybackup: {} snapshots, {} archives, {} stored files {}: {}",
            r.snapshots,
            r.archives,
            r.members,
            if a.read_data { "read and hashed" } else { "located" },
            if r.is_clean() { "no problems".to_string() } else { format!("{} problems", r.problems.len()) }
        ));
    }
    Ok(code(r.is_clean()))
}
