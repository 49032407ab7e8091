//! `pybackup salvage`: every intact file of a damaged archive or set, and the report of what was recovered.

use std::io::Write;
use std::process::ExitCode;

use ::volumes::{Place, VolumeSet};
use anyhow::Context;
use serde_json::json;
use xtar::{FileState, SalvageReport, Verified};

use crate::cmd::*;
use crate::ui::{human, Ui};

pub fn run(a: &SalvageArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let (archive, _fetched) = fetched(&a.archive, ui)?;
    let a = &SalvageArgs { archive, ..a.clone() };
    if let Some(set) = set_of(&a.archive, a.single_volume)? {
        return run_set(&set, a, jobs, ui);
    }
    let opts = xtar::SalvageOptions {
        overwrite: a.overwrite,
        keep_damaged: a.keep_damaged,
        jobs,
        keys: crate::cmd::key::open_keys(&a.open)?,
    };
    let r = xtar::salvage(&a.archive, &a.dest, &opts, ui)
        .with_context(|| format!("cannot salvage `{}`", a.archive.display()))?;
    ui.finish();
    let mut text = Vec::new();
    write_report(&mut text, &r, a.json)?;
    std::io::stdout().lock().write_all(&text)?;
    if let Some(path) = &a.report {
        std::fs::write(path, &text).with_context(|| format!("cannot write the report to `{}`", path.display()))?;
    }
    let (intact, damaged, missing, refused) = r.counts();
    ui.say(&format!(
        "pybackup: salvage of `{}`: {intact} intact, {damaged} damaged, {missing} missing, {refused} not written; \
         {} unreadable in {} regions{}",
        a.archive.display(),
        human(r.bad_bytes),
        r.bad_regions.len(),
        if r.names_complete { "" } else { "; some names may be lost (manifest and indexes damaged)" }
    ));
    Ok(code(r.is_complete()))
}

pub fn run_set(set: &VolumeSet, a: &crate::flags::SalvageArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let opts = xtar::SalvageOptions {
        overwrite: a.overwrite,
        keep_damaged: a.keep_damaged,
        jobs,
        keys: crate::cmd::key::open_keys(&a.open)?,
    };
    let (reports, joined) = ::volumes::salvage_set(set, &a.dest, &opts, ui)
        .with_context(|| format!("cannot salvage the volume set of `{}`", a.archive.display()))?;
    ui.finish();
    let mut text = Vec::new();
    let mut complete = joined.report.is_clean();
    for (k, r) in &reports {
        write_report(&mut text, r, a.json)?;
        let (intact, damaged, missing, refused) = r.counts();
        complete &= r.is_complete();
        let line = format!(
            "volume {k}: {intact} intact, {damaged} damaged, {missing} missing, {refused} not written; {} unreadable",
            human(r.bad_bytes)
        );
        if a.json {
            serde_json::to_writer(&mut text, &json!({"type": "volume", "volume": k, "summary": line}))?;
            text.push(b'\n');
        } else {
            text.extend_from_slice(format!("{line}\n").as_bytes());
        }
    }
    for (path, gone) in &joined.lost {
        if a.json {
            serde_json::to_writer(&mut text, &json!({"type": "lost", "path": json_path(path), "volumes": gone}))?;
            text.push(b'\n');
        } else {
            text.extend_from_slice(b"lost     ");
            write_display_path(&mut text, path)?;
            text.extend_from_slice(
                format!("  (on missing volume {})\n", crate::cmd::list::place_text(&Place::Parts(gone.clone())))
                    .as_bytes(),
            );
        }
    }
    std::io::stdout().lock().write_all(&text)?;
    if let Some(path) = &a.report {
        std::fs::write(path, &text).with_context(|| format!("cannot write the report to `{}`", path.display()))?;
    }
    complete &= joined.missing_volumes.is_empty();
    ui.say(&format!(
        "pybackup: salvage of the volume set of `{}`: {} of {} volumes present, {} split files joined, {} files lost with missing volumes",
        a.archive.display(),
        set.table.count as usize - joined.missing_volumes.len(),
        set.table.count,
        joined.report.files,
        joined.lost.len()
    ));
    Ok(code(complete))
}

fn state_name(s: &FileState) -> &'static str {
    match s {
        FileState::Intact(_) => "intact",
        FileState::Damaged => "damaged",
        FileState::Missing => "missing",
        FileState::Refused => "refused",
    }
}

fn verified_name(v: Verified) -> &'static str {
    match v {
        Verified::Sha256 => "sha256",
        Verified::Crc32 => "crc32",
        Verified::Index => "index",
        Verified::Link => "link",
    }
}

/// Text: one aligned line per file (`STATE CHECK PATH  detail`), then a
/// summary. JSON Lines: one `file` object per file, then a `summary`.
pub(crate) fn write_report(out: &mut impl Write, r: &SalvageReport, json: bool) -> std::io::Result<()> {
    let (intact, damaged, missing, refused) = r.counts();
    if json {
        for f in &r.files {
            let v = match &f.state {
                FileState::Intact(v) => Some(verified_name(*v)),
                _ => None,
            };
            let o = json!({
                "type": "file",
                "path": json_path(&f.path),
                "state": state_name(&f.state),
                "checked": v,
                "detail": (!f.detail.is_empty()).then_some(&f.detail),
                "kept": f.kept.as_ref().map(|p| p.display().to_string()),
            });
            writeln!(out, "{o}")?;
        }
        let regions: Vec<_> = r.bad_regions.iter().map(|(a, b)| json!([a, b])).collect();
        let o = json!({
            "type": "summary",
            "intact": intact, "damaged": damaged, "missing": missing, "refused": refused,
            "dirs": r.dirs,
            "archive_bytes": r.archive_bytes,
            "bad_bytes": r.bad_bytes,
            "bad_regions": regions,
            "manifest_complete": r.manifest_complete,
            "indexes_complete": r.indexes_complete,
            "dirs_known": r.dirs_known,
            "names_complete": r.names_complete,
            "found_by_zip_header": r.found_by_zip_header,
            "packs_whole": r.packs.map(|p| p.0),
            "packs_found": r.packs.map(|p| p.1),
            "complete": r.is_complete(),
        });
        return writeln!(out, "{o}");
    }
    for f in &r.files {
        let check = match &f.state {
            FileState::Intact(v) => verified_name(*v),
            _ => "-",
        };
        write!(out, "{:<8} {:<6} ", state_name(&f.state), check)?;
        write_display_path(out, &f.path)?;
        if !f.detail.is_empty() {
            write!(out, "  ({})", f.detail)?;
        }
        if let Some(k) = &f.kept {
            write!(out, "  [kept as {}]", k.display())?;
        }
        writeln!(out)?;
    }
    let second = match r.packs {
        Some((whole, seen)) => format!("{whole}/{seen} packs with their central directory"),
        None => format!("{}/{} indexes whole", r.indexes_complete, r.dirs_known),
    };
    writeln!(
        out,
        "# {intact} intact, {damaged} damaged, {missing} missing, {refused} refused; {} dirs; \
         manifest {}; {second}; {} of {} bytes unreadable",
        r.dirs,
        if r.manifest_complete { "whole" } else { "damaged or lost" },
        r.bad_bytes,
        r.archive_bytes
    )
}
