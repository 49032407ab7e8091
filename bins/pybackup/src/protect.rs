//! `protect`, `repair`, and `compress --redundancy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use parity::{FileState, ProtectOptions, RepairOptions};
use serde_json::json;

use crate::flags::{ProtectArgs, RepairArgs};
use crate::ui::{human, Ui};

/// The set name of an archive or volume: without `.xtar` and a `.NNN`
/// volume number.
pub fn base_of(file: &Path) -> PathBuf {
    let s = file.as_os_str().to_string_lossy();
    let s = s
        .strip_suffix(parity::SUFFIX)
        .map(|r| r.trim_end_matches(|c: char| c.is_ascii_digit()))
        .and_then(|r| r.strip_suffix(".p"))
        .unwrap_or(&s);
    let s = s.strip_suffix(".xtar").unwrap_or(s);
    let s = match s.rsplit_once('.') {
        Some((head, num)) if num.len() == 3 && num.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => s,
    };
    PathBuf::from(s)
}

fn say_protected(r: &parity::ProtectReport, asked: parity::Redundancy, ui: &Ui, took: f64) {
    ui.say(&format!(
        "pybackup: {} recovery data for {} ({}): {} in {} parity volume(s), {} blocks of {} bytes in {} group(s), {:.2} % overhead, in {:.1} s",
        asked,
        if r.layout.files.len() == 1 { "1 file".to_string() } else { format!("{} files", r.layout.files.len()) },
        human(r.data_bytes),
        human(r.parity_bytes),
        r.parity_files.len(),
        r.layout.recovery_blocks(),
        r.layout.block,
        r.layout.groups,
        r.parity_bytes as f64 / r.data_bytes.max(1) as f64 * 100.0,
        took
    ));
    let p = r.promise;
    let scattered = p.scattered_percent.floor();
    ui.say(&match p.volumes {
        0 => format!(
            "pybackup: the recovery data rebuilds up to {scattered:.0} % of scattered sectors, but not one whole lost volume (ask for 1vol)"
        ),
        n => format!(
            "pybackup: any {n} of the {} volumes (data and parity alike) can be lost, or {scattered:.0} % of scattered sectors: `pybackup repair` rebuilds them",
            p.of
        ),
    });
}

/// `compress --redundancy`: protects the archive just written.
/// With volumes, parity volumes are cut to the same size (`volume_size`).
pub fn after_compress(
    files: &[PathBuf],
    base: &Path,
    redundancy: parity::Redundancy,
    volume_size: Option<u64>,
    overwrite: bool,
    ui: &Ui,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let opts = ProtectOptions { redundancy, volume_size, overwrite, ..ProtectOptions::default() };
    let r = parity::protect(files, base, &opts)
        .with_context(|| format!("cannot add recovery data to `{}`", files[0].display()))?;
    if !ui.quiet() {
        say_protected(&r, redundancy, ui, started.elapsed().as_secs_f64());
    }
    Ok(())
}

pub fn protect_cmd(a: &ProtectArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let base = a.output.clone().unwrap_or_else(|| base_of(&a.files[0]));
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

fn describe(state: &FileState) -> String {
    match state {
        FileState::Intact => "intact".into(),
        FileState::Repaired { blocks } => format!("repaired ({blocks} blocks rebuilt)"),
        FileState::Rebuilt => "missing: rebuilt".into(),
        FileState::Missing { repairable: true } => "missing (can be rebuilt)".into(),
        FileState::Missing { repairable: false } => "missing: cannot be rebuilt".into(),
        FileState::Damaged { blocks, repairable: true, .. } => format!("damaged: {blocks} blocks (can be repaired)"),
        FileState::Damaged { blocks, repairable: false, left, partial } => {
            let bytes: u64 = left.iter().map(|r| r.end - r.start).sum();
            let mut s =
                format!("damaged: {blocks} blocks; {} in {} ranges cannot be rebuilt", human(bytes), left.len());
            let shown: Vec<String> = left.iter().take(5).map(|r| format!("{}..{}", r.start, r.end)).collect();
            if !shown.is_empty() {
                s.push_str(&format!(" (bytes {}{})", shown.join(", "), if left.len() > 5 { ", ..." } else { "" }));
            }
            if let Some(p) = partial {
                s.push_str(&format!("; what could be rebuilt is in `{}`", p.display()));
            }
            s
        }
    }
}

fn state_json(state: &FileState) -> serde_json::Value {
    match state {
        FileState::Intact => json!({"state": "intact"}),
        FileState::Repaired { blocks } => json!({"state": "repaired", "blocks": blocks}),
        FileState::Rebuilt => json!({"state": "rebuilt"}),
        FileState::Missing { repairable } => json!({"state": "missing", "repairable": repairable}),
        FileState::Damaged { blocks, repairable, left, partial } => json!({
            "state": "damaged",
            "blocks": blocks,
            "repairable": repairable,
            "left": left.iter().map(|r| [r.start, r.end]).collect::<Vec<_>>(),
            "partial": partial.as_ref().map(|p| p.display().to_string()),
        }),
    }
}

pub fn repair_cmd(a: &RepairArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let mut parity_files: Vec<PathBuf> = Vec::new();
    for f in &a.files {
        let found = if f.to_string_lossy().ends_with(parity::SUFFIX) {
            let mut v = parity::find_parity(&base_of(f));
            if !v.contains(f) {
                v.insert(0, f.clone());
            }
            v
        } else {
            parity::find_parity(&base_of(f))
        };
        for p in found {
            if !parity_files.contains(&p) {
                parity_files.push(p);
            }
        }
    }
    if parity_files.is_empty() {
        anyhow::bail!(
            "no parity volumes (NAME.pNN{}) found for {}",
            parity::SUFFIX,
            a.files.iter().map(|f| format!("`{}`", f.display())).collect::<Vec<_>>().join(", ")
        );
    }
    let r = parity::repair(&parity_files, &RepairOptions { dry_run: a.dry_run, ..RepairOptions::default() })?;
    let all_intact = r.files.iter().chain(&r.parity).all(|f| f.state == FileState::Intact);
    if a.json {
        let files = |v: &[parity::FileOutcome]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|f| {
                    let mut o = state_json(&f.state);
                    o["path"] = json!(f.path.display().to_string());
                    o
                })
                .collect()
        };
        println!(
            "{}",
            json!({
                "complete": r.is_complete(),
                "files": files(&r.files),
                "parity": files(&r.parity),
                "short_groups": r.short.iter().map(|(g, lost, have)| json!({"group": g, "lost": lost, "recovery": have})).collect::<Vec<_>>(),
                "unknown_checksums": r.unknown_checksums,
            })
        );
    } else {
        for f in r.files.iter().chain(&r.parity) {
            if f.state != FileState::Intact || !ui.quiet() {
                println!("{}: {}", f.path.display(), describe(&f.state));
            }
        }
        for (g, lost, have) in &r.short {
            eprintln!("pybackup: group {g} lost {lost} blocks but has only {have} intact recovery blocks");
        }
        if !ui.quiet() {
            ui.say(&format!(
                "pybackup: {}",
                if all_intact {
                    "every file is intact".to_string()
                } else if a.dry_run {
                    if r.short.is_empty() {
                        "damage found; all of it can be repaired".into()
                    } else {
                        "damage found; not all of it can be repaired".into()
                    }
                } else if r.is_complete() {
                    "repaired: every file is intact now".into()
                } else {
                    "damage is left that the recovery data cannot rebuild".into()
                }
            ));
        }
    }
    Ok(crate::code(if a.dry_run { all_intact } else { r.is_complete() }))
}
