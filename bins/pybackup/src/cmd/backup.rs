//! `pybackup backup`: a new snapshot in a repository.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::cmd::*;
use crate::ui::{human, Ui};

pub fn run(a: &BackupArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut opts = repo::BackupOptions::default();
    opts.compress.level = a.level.value();
    opts.compress.jobs = jobs;
    opts.compress.walk = a.walk.options()?;
    opts.checksum = a.checksum;
    opts.host = a.host.as_ref().map(|h| h.as_bytes().to_vec());
    opts.parent = a.parent.clone();
    opts.keys = crate::cmd::key::open_keys(&a.open)?;
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
            "record": if r.delta { "changes" } else { "whole" }, "record_bytes": r.record_bytes,
            "copies_written": r.copies_written,
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
