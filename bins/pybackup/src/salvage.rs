//! `pybackup salvage`: the report of what was recovered.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use xtar::{FileState, SalvageReport, Verified};

use crate::code;
use crate::flags::SalvageArgs;
use crate::output::{json_path, write_display_path};
use crate::ui::{human, Ui};

pub fn salvage_cmd(a: &SalvageArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    if let Some(set) = crate::volumes::set_of(&a.archive, a.single_volume)? {
        return crate::volumes::salvage_cmd(&set, a, jobs, ui);
    }
    let opts = xtar::SalvageOptions { overwrite: a.overwrite, keep_damaged: a.keep_damaged, jobs };
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
    writeln!(
        out,
        "# {intact} intact, {damaged} damaged, {missing} missing, {refused} refused; {} dirs; \
         manifest {}; {}/{} indexes whole; {} of {} bytes unreadable",
        r.dirs,
        if r.manifest_complete { "whole" } else { "damaged or lost" },
        r.indexes_complete,
        r.dirs_known,
        r.bad_bytes,
        r.archive_bytes
    )
}
