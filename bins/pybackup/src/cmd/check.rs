//! `pybackup check`: every snapshot can be restored.

use std::process::ExitCode;

use crate::cmd::*;
use crate::ui::Ui;

pub fn run(a: &CheckArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let read = match (a.read_data, a.read_data_subset) {
        (_, Some(part)) => part,
        (true, None) => repo::ReadData::All,
        (false, None) => repo::ReadData::None,
    };
    let r = repo::check_reading(&a.repo, read, &keys, ui)?;
    for p in &r.problems {
        eprintln!("pybackup: {p}");
    }
    if !ui.quiet() {
        ui.say(&format!(
            "pybackup: {} snapshots, {} archives, {} stored files {}: {}",
            r.snapshots,
            r.archives,
            r.members,
            if r.read > 0 {
                format!("located, those of {} archive(s) read and hashed", r.read)
            } else {
                "located".into()
            },
            if r.is_clean() { "no problems".to_string() } else { format!("{} problems", r.problems.len()) }
        ));
    }
    Ok(code(r.is_clean()))
}
