//! The backup-set commands: backup, snapshots, restore, forget, check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::flags::{BackupArgs, CheckArgs, ForgetArgs, RestoreArgs, SnapshotsArgs};
use crate::ui::{human, Ui};
use crate::{code, normalize_request, report_restore, walk_options};

/// Splits `REPO@SNAPSHOT`; a path that exists as given is a repository
/// with no snapshot named.
pub fn split_spec(s: &str) -> (PathBuf, Option<String>) {
    if Path::new(s).exists() {
        return (PathBuf::from(s), None);
    }
    match s.rsplit_once('@') {
        Some((repo, snap)) if !repo.is_empty() => (PathBuf::from(repo), Some(snap.to_string())),
        _ => (PathBuf::from(s), None),
    }
}

pub fn backup_cmd(a: &BackupArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut opts = repo::BackupOptions::default();
    opts.compress.level = a.level.value();
    opts.compress.jobs = jobs;
    opts.compress.walk = walk_options(&a.walk)?;
    opts.checksum = a.checksum;
    if let Some(c) = a.checkpoint {
        opts.checkpoint_bytes = c;
    }
    let r = repo::backup(&a.src, &a.repo, &opts, ui)
        .with_context(|| format!("cannot back up `{}` into `{}`", a.src.display(), a.repo.display()))?;
    ui.finish();
    let s = r.stats;
    if a.json {
        let v = json!({
            "snapshot": r.name, "parent": r.parent, "files": s.files, "bytes": s.bytes,
            "added": s.added, "changed": s.changed, "removed": s.removed,
            "stored": s.stored, "stored_bytes": s.stored_bytes, "resumed": r.resumed,
            "hashed": r.hashed, "archives": r.archives, "bytes_written": r.bytes_written,
            "warnings": r.warnings, "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{v}");
    } else if !ui.quiet() {
        ui.say(&format!(
            "pybackup: snapshot {}: {} files ({}); {} added, {} changed, {} removed; stored {} files ({}) in {} archive(s), {} written{} in {:.1} s",
            r.name,
            s.files,
            human(s.bytes),
            s.added,
            s.changed,
            s.removed,
            s.stored,
            human(s.stored_bytes),
            r.archives.len(),
            human(r.bytes_written),
            if r.resumed > 0 { format!(", {} files reused from an interrupted run", r.resumed) } else { String::new() },
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(code(r.warnings == 0 && ui.warnings() == 0))
}

pub fn snapshots_cmd(a: &SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let repo = repo::Repo::open(&a.repo)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut problems = 0;
    if !a.json {
        writeln!(
            out,
            "{:<24} {:>9} {:>10} {:>7} {:>7} {:>7} {:>10}  status",
            "snapshot", "files", "size", "added", "changed", "removed", "archive"
        )?;
    }
    for (name, info) in repo.infos()? {
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                problems += 1;
                eprintln!("pybackup: warning: {e}");
                continue;
            }
        };
        if !a.all && info.status != repo::Status::Complete {
            continue;
        }
        let s = info.stats;
        if a.json {
            let v = json!({
                "snapshot": name, "time": humantime::format_rfc3339_micros(info.time).to_string(),
                "status": info.status.word(), "parent": info.parent, "files": s.files, "bytes": s.bytes,
                "added": s.added, "changed": s.changed, "removed": s.removed, "stored": s.stored,
                "stored_bytes": s.stored_bytes, "archive_bytes": info.archive_bytes,
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{:<24} {:>9} {:>10} {:>7} {:>7} {:>7} {:>10}  {}",
                name,
                s.files,
                human(s.bytes),
                s.added,
                s.changed,
                s.removed,
                human(info.archive_bytes),
                info.status.word()
            )?;
        }
    }
    out.flush()?;
    Ok(code(problems == 0))
}

pub fn restore_cmd(a: &RestoreArgs, jobs: usize, verbose: bool, ui: &Ui) -> anyhow::Result<ExitCode> {
    let (repo, snap) = split_spec(&a.source);
    let paths = a.paths.iter().map(|p| normalize_request(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let opts = xtar::ExtractOptions { overwrite: a.overwrite, jobs, paths };
    let r = repo::restore(&repo, snap.as_deref(), &a.dest, &opts, ui)
        .with_context(|| format!("cannot restore `{}`", a.source))?;
    ui.finish();
    report_restore(ui, verbose, &r);
    Ok(code(r.is_clean()))
}

pub fn forget_cmd(a: &ForgetArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let policy = repo::Policy {
        keep_last: a.keep_last,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
    };
    let plan = repo::forget(&a.repo, &policy, a.dry_run, ui)?;
    let verb = if a.dry_run { "would" } else { "did" };
    let mut out = std::io::stdout().lock();
    for n in &plan.keep {
        writeln!(out, "keep     {n}")?;
    }
    for n in &plan.forget {
        writeln!(out, "forget   {n}")?;
    }
    for (n, members, bytes) in &plan.consolidate {
        writeln!(out, "rewrite  {n}.xtar  (keeps {members} files, {}, that kept snapshots need)", human(*bytes))?;
    }
    for n in &plan.delete {
        writeln!(out, "delete   {n}.xtar")?;
    }
    for n in &plan.unreadable {
        writeln!(out, "skip     {n}.xtar  (its record cannot be read; left alone)")?;
    }
    if !ui.quiet() {
        ui.say(&format!(
            "pybackup: {verb} keep {} snapshots, forget {}, rewrite {} and delete {} archives",
            plan.keep.len(),
            plan.forget.len(),
            plan.consolidate.len(),
            plan.delete.len()
        ));
    }
    Ok(code(plan.unreadable.is_empty()))
}

pub fn check_cmd(a: &CheckArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let r = repo::check(&a.repo, a.read_data, ui)?;
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
