//! `pybackup protect`: recovery data for any files.

use std::process::ExitCode;
use std::time::Instant;

use parity::ProtectOptions;
use serde_json::json;

use crate::cmd::*;
use crate::ui::Ui;

pub fn run(a: &ProtectArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let base = a.output.clone().unwrap_or_else(|| parity::base_of(&a.files[0]));
    let opts = ProtectOptions {
        redundancy: a.redundancy,
        block: a.block_size,
        volume_size: a.volume_size,
        overwrite: a.overwrite,
        ..ProtectOptions::default()
    };
    let r = parity::protect(&a.files, &base, &opts)?;
    if a.json {
        println!(
            "{}",
            json!({
                "parity_files": r.parity_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "percent": r.layout.percent,
                "redundancy": a.redundancy.to_string(),
                "promise": {
                    "volumes": r.promise.volumes,
                    "of": r.promise.of,
                    "scattered_percent": r.promise.scattered_percent,
                },
                "block_size": r.layout.block,
                "groups": r.layout.groups,
                "data_blocks": r.layout.data_blocks(),
                "recovery_blocks": r.layout.recovery_blocks(),
                "data_bytes": r.data_bytes,
                "parity_bytes": r.parity_bytes,
                "passes": r.passes,
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    } else if !ui.quiet() {
        say_protected(&r, a.redundancy, ui, started.elapsed().as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}
