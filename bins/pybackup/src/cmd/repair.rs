//! `pybackup repair`: damaged or missing files rebuilt from their recovery data.

use std::path::PathBuf;
use std::process::ExitCode;

use parity::{FileState, RepairOptions};
use serde_json::json;

use crate::cmd::*;
use crate::ui::{human, Ui};

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

pub fn run(a: &RepairArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let mut parity_files: Vec<PathBuf> = Vec::new();
    for f in &a.files {
        let found = if f.to_string_lossy().ends_with(parity::SUFFIX) {
            let mut v = parity::find_parity(&parity::base_of(f));
            if !v.contains(f) {
                v.insert(0, f.clone());
            }
            v
        } else {
            parity::find_parity(&parity::base_of(f))
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
    Ok(code(if a.dry_run { all_intact } else { r.is_complete() }))
}
