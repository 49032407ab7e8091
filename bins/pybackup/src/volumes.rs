//! Volume sets on the command line: `compress --volume-size`, and
//! extract, list, verify and salvage given any volume of a set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ::volumes::{self as vols, Place, SetReport, VolumeSet};
use anyhow::Context;
use serde_json::json;

use crate::code;
use crate::output::{json_path, write_display_path};
use crate::ui::{human, Ui};

/// The volume set `archive` belongs to, unless it is to be read alone
/// (`--single-volume`, standard input, not named like a volume, or no
/// set table found: a plain archive).
pub fn set_of(archive: &Path, single: bool) -> anyhow::Result<Option<VolumeSet>> {
    if single || archive == Path::new("-") {
        return Ok(None);
    }
    let found = vols::find_set(&[archive.to_path_buf()])
        .with_context(|| format!("cannot read the volume set of `{}`", archive.display()))?;
    Ok(found.ok())
}

/// The set's base name for an output given with `-o`: `NAME.xtar` and
/// `NAME` both give `NAME` (volumes `NAME.001.xtar`, …).
pub fn base_of_output(out: &Path) -> PathBuf {
    match out.to_str().and_then(|s| s.strip_suffix(".xtar")) {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => out.to_path_buf(),
    }
}

/// Says which volumes are missing and which files they take with them.
fn say_lost(ui: &Ui, set: &VolumeSet, r: &SetReport) {
    for k in &r.missing_volumes {
        ui.say_warning(&format!(
            "volume {k} of {} (`{}`) is missing",
            set.table.count,
            set.names[*k as usize - 1].display()
        ));
    }
    if !r.lost.is_empty() {
        ui.say_warning(&format!("{} files are lost with the missing volumes (named above)", r.lost.len()));
    }
}

pub fn extract_cmd(
    set: &VolumeSet,
    archive: &Path,
    dest: &Path,
    opts: &xtar::ExtractOptions,
    verbose: bool,
    ui: &Ui,
) -> anyhow::Result<ExitCode> {
    let r = vols::extract_set(set, Some(dest), opts, ui)
        .with_context(|| format!("cannot extract the volume set of `{}`", archive.display()))?;
    ui.finish();
    say_lost(ui, set, &r);
    crate::report_restore(ui, verbose, &r.report);
    Ok(code(r.report.is_clean()))
}

pub fn verify_cmd(set: &VolumeSet, archive: &Path, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let opts = xtar::ExtractOptions { jobs, ..Default::default() };
    let r = vols::extract_set(set, None, &opts, ui)
        .with_context(|| format!("cannot verify the volume set of `{}`", archive.display()))?;
    ui.finish();
    say_lost(ui, set, &r);
    if !ui.quiet() {
        let present = set.table.count as usize - r.missing_volumes.len();
        ui.say(&format!(
            "pybackup: {} volumes of {} present; {} files ({}) verified, {} links, {} dirs; {} damaged or missing",
            present,
            set.table.count,
            r.report.files,
            human(r.report.bytes),
            r.report.links,
            r.report.dirs,
            r.report.problems
        ));
    }
    Ok(code(r.report.is_clean()))
}

fn place_text(p: &Place) -> String {
    match p {
        Place::None => "-".into(),
        Place::Whole(v) => v.to_string(),
        Place::Parts(vs) => vs.iter().map(u32::to_string).collect::<Vec<_>>().join("+"),
    }
}

/// Lists the set from its table: every entry with the volumes that hold
/// it; files on missing volumes are marked.
pub fn list_cmd(set: &VolumeSet, as_json: bool, ui: &Ui) -> anyhow::Result<ExitCode> {
    let missing = set.missing();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (place, e) in &set.table.entries {
        let lost = e.kind == manifest::Kind::File && e.size > 0 && place.volumes().iter().any(|v| missing.contains(v));
        if as_json {
            let mut v = json!({
                "type": "entry",
                "path": json_path(&e.path),
                "kind": e.kind.name(),
                "size": e.size,
                "volumes": place.volumes(),
            });
            if lost {
                v["lost"] = json!(true);
            }
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
        } else {
            let l = xtar::Listed { entry: e.clone(), stored: None };
            write!(out, "{:>7} ", place_text(place))?;
            crate::output::text_listed(&mut out, &l)?;
            if lost {
                out.write_all(b"        (lost: its volume is missing) ")?;
                write_display_path(&mut out, &e.path)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    for k in &missing {
        ui.say_warning(&format!("volume {k} (`{}`) is missing", set.names[*k as usize - 1].display()));
    }
    Ok(code(missing.is_empty()))
}

pub fn salvage_cmd(set: &VolumeSet, a: &crate::flags::SalvageArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let opts = xtar::SalvageOptions { overwrite: a.overwrite, keep_damaged: a.keep_damaged, jobs };
    let (reports, joined) = vols::salvage_set(set, &a.dest, &opts, ui)
        .with_context(|| format!("cannot salvage the volume set of `{}`", a.archive.display()))?;
    ui.finish();
    let mut text = Vec::new();
    let mut complete = joined.report.is_clean();
    for (k, r) in &reports {
        crate::salvage::write_report(&mut text, r, a.json)?;
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
                format!("  (on missing volume {})\n", place_text(&Place::Parts(gone.clone()))).as_bytes(),
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
